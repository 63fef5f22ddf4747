#pragma once
// Models with closed-form outputs and input gradients for the robustness tests.
#include <cmath>
#include <vector>

#include "mlaudit/engine/model.h"

namespace mlaudit::test {

/// z = W x + b with W [C,D]; input [N, shape...] flattened to D.
class LinearModel : public engine::Model {
 public:
  LinearModel(engine::Shape input, int64_t classes, std::vector<float> w, std::vector<float> b)
      : input_(std::move(input)), c_(classes), w_(std::move(w)), b_(std::move(b)) {
    d_ = 1;
    for (size_t i = 1; i < input_.size(); ++i) d_ *= input_[i];
  }
  engine::Shape input_shape() const override { return input_; }
  engine::Tensor forward(const engine::Tensor& x) const override {
    const int64_t n = x.dim(0);
    engine::Tensor z({n, c_});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c_; ++k) {
        double s = b_[size_t(k)];
        for (int64_t j = 0; j < d_; ++j) s += double(w_[size_t(k * d_ + j)]) * x.f32()[i * d_ + j];
        z.f32()[i * c_ + k] = float(s);
      }
    ++forward_calls;
    return z;
  }
  // d<seed, Wx+b>/dx = seed^T W.
  engine::Tensor input_gradient(const engine::Tensor& x, const engine::SeedFn& seed, engine::Tensor* output) const override {
    engine::Tensor z = forward(x);
    engine::Tensor s = seed(z);
    engine::Tensor g(x.shape());
    const int64_t n = x.dim(0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c_; ++k) {
        const float sk = s.f32()[i * c_ + k];
        if (sk == 0) continue;
        for (int64_t j = 0; j < d_; ++j) g.f32()[i * d_ + j] += sk * w_[size_t(k * d_ + j)];
      }
    if (output) *output = z;
    ++gradient_calls;
    return g;
  }
  float weight(int64_t k, int64_t j) const { return w_[size_t(k * d_ + j)]; }
  float bias(int64_t k) const { return b_[size_t(k)]; }
  int64_t dim() const { return d_; }
  mutable int64_t forward_calls = 0;
  mutable int64_t gradient_calls = 0;

 private:
  engine::Shape input_;
  int64_t c_, d_;
  std::vector<float> w_, b_;
};

/// z = W2 tanh(W1 x + b1) + b2: a smooth non-linear model with an exact gradient.
class TanhMlp : public engine::Model {
 public:
  TanhMlp(int64_t d, int64_t hidden, int64_t classes, unsigned seed) : d_(d), h_(hidden), c_(classes) {
    uint64_t s = seed * 2654435761u + 1;
    auto rnd = [&]() { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return double((s >> 11) & 0xFFFFF) / 0xFFFFF - 0.5; };
    w1_.resize(size_t(h_ * d_)); b1_.resize(size_t(h_)); w2_.resize(size_t(c_ * h_)); b2_.resize(size_t(c_));
    for (auto& v : w1_) v = float(4.0 * rnd() / std::sqrt(double(d_)));
    for (auto& v : b1_) v = float(rnd());
    for (auto& v : w2_) v = float(3.0 * rnd());
    for (auto& v : b2_) v = float(0.5 * rnd());
  }
  engine::Shape input_shape() const override { return {-1, d_}; }
  engine::Tensor forward(const engine::Tensor& x) const override { return run(x, nullptr); }
  engine::Tensor input_gradient(const engine::Tensor& x, const engine::SeedFn& seed, engine::Tensor* output) const override {
    std::vector<double> hid;
    engine::Tensor z = run(x, &hid);
    engine::Tensor s = seed(z);
    engine::Tensor g(x.shape());
    const int64_t n = x.dim(0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t u = 0; u < h_; ++u) {
        double gh = 0;
        for (int64_t k = 0; k < c_; ++k) gh += double(s.f32()[i * c_ + k]) * w2_[size_t(k * h_ + u)];
        const double t = hid[size_t(i * h_ + u)];
        gh *= 1 - t * t;
        for (int64_t j = 0; j < d_; ++j) g.f32()[i * d_ + j] += float(gh * w1_[size_t(u * d_ + j)]);
      }
    if (output) *output = z;
    return g;
  }

 private:
  engine::Tensor run(const engine::Tensor& x, std::vector<double>* hid) const {
    const int64_t n = x.dim(0);
    engine::Tensor z({n, c_});
    std::vector<double> h(size_t(n * h_));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t u = 0; u < h_; ++u) {
        double a = b1_[size_t(u)];
        for (int64_t j = 0; j < d_; ++j) a += double(w1_[size_t(u * d_ + j)]) * x.f32()[i * d_ + j];
        h[size_t(i * h_ + u)] = std::tanh(a);
      }
      for (int64_t k = 0; k < c_; ++k) {
        double a = b2_[size_t(k)];
        for (int64_t u = 0; u < h_; ++u) a += double(w2_[size_t(k * h_ + u)]) * h[size_t(i * h_ + u)];
        z.f32()[i * c_ + k] = float(a);
      }
    }
    if (hid) *hid = h;
    return z;
  }
  int64_t d_, h_, c_;
  std::vector<float> w1_, b1_, w2_, b2_;
};

/// Always returns the same logits (every noisy copy agrees): for smoothing closed forms.
class ConstantModel : public engine::Model {
 public:
  ConstantModel(int64_t d, std::vector<float> logits) : d_(d), z_(std::move(logits)) {}
  engine::Shape input_shape() const override { return {-1, d_}; }
  engine::Tensor forward(const engine::Tensor& x) const override {
    const int64_t n = x.dim(0), c = int64_t(z_.size());
    engine::Tensor z({n, c});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c; ++k) z.f32()[i * c + k] = z_[size_t(k)];
    return z;
  }
  engine::Tensor input_gradient(const engine::Tensor& x, const engine::SeedFn& seed, engine::Tensor* output) const override {
    engine::Tensor z = forward(x);
    seed(z);
    if (output) *output = z;
    return engine::Tensor(x.shape());
  }

 private:
  int64_t d_;
  std::vector<float> z_;
};

}  // namespace mlaudit::test
