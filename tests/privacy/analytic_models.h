#pragma once
// Closed-form models for the privacy tests: gradients known exactly.
#include <vector>

#include "mlaudit/engine/model.h"

namespace mlaudit::privacy::test {

/// Affine classifier logits = W x + b on flattened inputs (any sample shape).
class LinearModel : public engine::Model {
 public:
  LinearModel(engine::Shape sample_shape, std::vector<std::vector<float>> w, std::vector<float> b)
      : sample_(std::move(sample_shape)), w_(std::move(w)), b_(std::move(b)) {}
  engine::Shape input_shape() const override {
    engine::Shape s = {-1};
    s.insert(s.end(), sample_.begin(), sample_.end());
    return s;
  }
  engine::Tensor forward(const engine::Tensor& x) const override {
    const int64_t n = x.dim(0), d = x.numel() / n, k = int64_t(w_.size());
    engine::Tensor out({n, k});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) {
        double s = b_[size_t(c)];
        for (int64_t j = 0; j < d; ++j) s += double(w_[size_t(c)][size_t(j)]) * x.f32()[i * d + j];
        out.f32()[i * k + c] = float(s);
      }
    return out;
  }
  // d<seed, W x + b>/dx = W^T seed.
  engine::Tensor input_gradient(const engine::Tensor& x, const engine::SeedFn& seed,
                                engine::Tensor* output = nullptr) const override {
    const engine::Tensor z = forward(x);
    if (output) *output = z;
    const engine::Tensor s = seed(z);
    const int64_t n = x.dim(0), d = x.numel() / n, k = int64_t(w_.size());
    engine::Tensor g(x.shape());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c)
        for (int64_t j = 0; j < d; ++j) g.f32()[i * d + j] += s.f32()[i * k + c] * w_[size_t(c)][size_t(j)];
    return g;
  }

 private:
  engine::Shape sample_;
  std::vector<std::vector<float>> w_;
  std::vector<float> b_;
};

}  // namespace mlaudit::privacy::test
