#include "mlaudit/engine/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {
void check_rows(const Tensor& out, size_t n, const char* what) {
  if (out.rank() != 2 || out.shape()[0] != static_cast<int64_t>(n))
    throw InputError("engine", fmt::format("{}: expected model output [N={},C], got {}", what, n, shape_str(out.shape())));
}
}  // namespace

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  if (logits.rank() != 2) throw InputError("engine", fmt::format("argmax: expected [N,C], got {}", shape_str(logits.shape())));
  const int64_t n = logits.shape()[0], c = logits.shape()[1];
  std::vector<int64_t> out(n, 0);
  const float* p = logits.f32();
  for (int64_t i = 0; i < n; ++i) out[i] = std::max_element(p + i * c, p + (i + 1) * c) - (p + i * c);
  return out;
}

Tensor softmax_rows(const Tensor& logits) {
  if (logits.rank() != 2) throw InputError("engine", fmt::format("softmax: expected [N,C], got {}", shape_str(logits.shape())));
  const int64_t n = logits.shape()[0], c = logits.shape()[1];
  Tensor out(logits.shape());
  const float* p = logits.f32();
  float* q = out.f32();
  for (int64_t i = 0; i < n; ++i) {
    float m = *std::max_element(p + i * c, p + (i + 1) * c);
    double s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(double(p[i * c + j] - m));
    for (int64_t j = 0; j < c; ++j) q[i * c + j] = float(std::exp(double(p[i * c + j] - m)) / s);
  }
  return out;
}

Tensor logit_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& classes, Tensor* logits) {
  return m.input_gradient(
      x,
      [&](const Tensor& out) {
        check_rows(out, classes.size(), "logit_gradient");
        Tensor seed(out.shape());
        const int64_t c = out.shape()[1];
        for (size_t i = 0; i < classes.size(); ++i) {
          if (classes[i] < 0 || classes[i] >= c)
            throw InputError("engine", fmt::format("class {} out of range for {} outputs", classes[i], c));
          seed.f32()[i * c + classes[i]] = 1.0f;
        }
        return seed;
      },
      logits);
}

Tensor cross_entropy_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& labels, Tensor* logits,
                              std::vector<float>* losses) {
  return m.input_gradient(
      x,
      [&](const Tensor& out) {
        check_rows(out, labels.size(), "cross_entropy_gradient");
        // d CE / d z = softmax(z) - onehot(y)
        Tensor seed = softmax_rows(out);
        const int64_t c = out.shape()[1];
        if (losses) losses->assign(labels.size(), 0.f);
        for (size_t i = 0; i < labels.size(); ++i) {
          if (labels[i] < 0 || labels[i] >= c)
            throw InputError("engine", fmt::format("label {} out of range for {} outputs", labels[i], c));
          float& s = seed.f32()[i * c + labels[i]];
          if (losses) (*losses)[i] = -std::log(std::max(s, 1e-30f));
          s -= 1.0f;
        }
        return seed;
      },
      logits);
}

}  // namespace mlaudit::engine
