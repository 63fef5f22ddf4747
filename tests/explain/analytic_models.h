#pragma once
// Analytic engine::Model subclasses whose outputs and gradients are known in closed form.
#include <algorithm>
#include <cmath>
#include <vector>

#include "mlaudit/engine/model.h"

namespace mlaudit::test {

using engine::Shape;
using engine::Tensor;

/// y = W x + b on the flattened sample; W is [C, D] row-major.
class LinearModel : public engine::Model {
 public:
  LinearModel(Shape sample_shape, int64_t classes, std::vector<float> w, std::vector<float> b)
      : sample_(std::move(sample_shape)), c_(classes), w_(std::move(w)), b_(std::move(b)) {
    d_ = engine::shape_numel(sample_);
  }
  Shape input_shape() const override {
    Shape s{-1};
    s.insert(s.end(), sample_.begin(), sample_.end());
    return s;
  }
  Tensor forward(const Tensor& x) const override {
    const int64_t n = x.shape()[0];
    Tensor y({n, c_});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < c_; ++k) {
        double s = b_[k];
        for (int64_t j = 0; j < d_; ++j) s += double(w_[k * d_ + j]) * x.f32()[i * d_ + j];
        y.f32()[i * c_ + k] = float(s);
      }
    return y;
  }
  Tensor input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* output) const override {
    Tensor y = forward(x);
    Tensor s = seed(y);
    Tensor g(x.shape());
    const int64_t n = x.shape()[0];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d_; ++j) {
        double v = 0;
        for (int64_t k = 0; k < c_; ++k) v += double(s.f32()[i * c_ + k]) * w_[k * d_ + j];
        g.f32()[i * d_ + j] = float(v);
      }
    if (output) *output = y;
    return g;
  }
  float w(int64_t k, int64_t j) const { return w_[k * d_ + j]; }

 private:
  Shape sample_;
  int64_t c_, d_;
  std::vector<float> w_, b_;
};

/// The IG paper's toy network (Sundararajan et al. 2017, Sec. 2 remark):
/// f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2)), one output. ReLU'(0) = 0 as in PyTorch.
class IgToyModel : public engine::Model {
 public:
  Shape input_shape() const override { return {-1, 2}; }
  Tensor forward(const Tensor& x) const override {
    const int64_t n = x.shape()[0];
    Tensor y({n, 1});
    for (int64_t i = 0; i < n; ++i) y.f32()[i] = std::max(0.f, h(x.f32() + 2 * i));
    return y;
  }
  Tensor input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* output) const override {
    Tensor y = forward(x);
    Tensor s = seed(y);
    const int64_t n = x.shape()[0];
    Tensor g(x.shape());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.f32() + 2 * i;
      if (h(xi) > 0) {
        g.f32()[2 * i] = s.f32()[i] * (xi[0] > 0 ? 1.f : 0.f);
        g.f32()[2 * i + 1] = -s.f32()[i] * (xi[1] > 0 ? 1.f : 0.f);
      }
    }
    if (output) *output = y;
    return g;
  }

 private:
  static float h(const float* x) { return std::max(0.f, x[0]) - 1.f - std::max(0.f, x[1]); }
};

/// Non-additive model with two outputs: f0 = x0 x1 + x2 - x3^2 (one row of four features), f1 = -f0.
class ProductModel : public engine::Model {
 public:
  Shape input_shape() const override { return {-1, 4}; }
  static double value(const float* x) { return double(x[0]) * x[1] + x[2] - double(x[3]) * x[3]; }
  Tensor forward(const Tensor& x) const override {
    const int64_t n = x.shape()[0];
    Tensor y({n, 2});
    for (int64_t i = 0; i < n; ++i) {
      y.f32()[2 * i] = float(value(x.f32() + 4 * i));
      y.f32()[2 * i + 1] = -y.f32()[2 * i];
    }
    return y;
  }
  Tensor input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* output) const override {
    Tensor y = forward(x);
    Tensor s = seed(y);
    const int64_t n = x.shape()[0];
    Tensor g(x.shape());
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x.f32() + 4 * i;
      const float a = s.f32()[2 * i] - s.f32()[2 * i + 1];
      g.f32()[4 * i] = a * xi[1];
      g.f32()[4 * i + 1] = a * xi[0];
      g.f32()[4 * i + 2] = a;
      g.f32()[4 * i + 3] = -2 * a * xi[3];
    }
    if (output) *output = y;
    return g;
  }
};

}  // namespace mlaudit::test

namespace mlaudit::test {

/// Forward-only non-additive model of ten features (for sampled KernelSHAP):
/// f = x0 x1 + x2 x3 x4 + sin(x5) + x6^2 - x7 x8 + x9, one output.
class TenFeatureModel : public engine::Model {
 public:
  Shape input_shape() const override { return {-1, 10}; }
  static double value(const float* x) {
    return double(x[0]) * x[1] + double(x[2]) * x[3] * x[4] + std::sin(double(x[5])) + double(x[6]) * x[6] -
           double(x[7]) * x[8] + x[9];
  }
  Tensor forward(const Tensor& x) const override {
    const int64_t n = x.shape()[0];
    Tensor y({n, 1});
    for (int64_t i = 0; i < n; ++i) y.f32()[i] = float(value(x.f32() + 10 * i));
    return y;
  }
  Tensor input_gradient(const Tensor&, const engine::SeedFn&, Tensor*) const override {
    throw std::logic_error("TenFeatureModel is forward-only");
  }
};

}  // namespace mlaudit::test
