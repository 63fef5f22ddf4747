#pragma once
// CPU reference loops the fused device loops must follow (test_cuda, test_cuda_emulated).
//
// PGD: CPU reference PGD (Madry et al. 2018, eq. 2) without a random start, the loop the fused device
// PGD must follow: x <- Proj_{ball(x0, eps) ∩ [lo, hi]}(x + alpha * step(grad CE)), step = sign(g)
// for L-inf and g / ||g||_2 for L2 (projection: clamp / rescale to radius eps, then the box).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/model.h"

namespace mlaudit::test {

inline engine::Tensor pgd_reference(const engine::Model& model, const engine::Tensor& x, const std::vector<int64_t>& labels,
                                    const robustness::DevicePgdOptions& o) {
  const bool linf = o.norm == "linf";
  engine::Tensor xa = x.clone();
  int64_t n = x.shape()[0], d = x.numel() / n;
  for (int t = 0; t < o.steps; ++t) {
    engine::Tensor g = engine::cross_entropy_gradient(model, xa, labels);
    for (int64_t i = 0; i < n; ++i) {
      float* xi = xa.f32() + i * d;
      const float* gi = g.f32() + i * d;
      const float* x0 = x.f32() + i * d;
      double gn = 0;
      for (int64_t j = 0; j < d; ++j) gn += double(gi[j]) * gi[j];
      gn = std::sqrt(gn);
      for (int64_t j = 0; j < d; ++j)
        xi[j] += linf ? o.alpha * float((gi[j] > 0) - (gi[j] < 0)) : (gn > 0 ? float(o.alpha * gi[j] / gn) : 0.f);
      double dn = 0;
      for (int64_t j = 0; j < d; ++j) dn += double(xi[j] - x0[j]) * (xi[j] - x0[j]);
      dn = std::sqrt(dn);
      for (int64_t j = 0; j < d; ++j) {
        float v = xi[j];
        if (linf) v = std::min(std::max(v, x0[j] - o.eps), x0[j] + o.eps);
        else if (dn > o.eps) v = float(x0[j] + (xi[j] - x0[j]) * (o.eps / dn));
        xi[j] = std::min(std::max(v, o.clip_min), o.clip_max);
      }
    }
  }
  return xa;
}

/// Integrated gradients on the CPU model (Sundararajan et al. 2017, eq. 3 with the given quadrature):
/// attr_b = (x_b - base_b) * sum_k w_k grad f_t(base_b + alpha_k (x_b - base_b)); base empty = zeros.
inline engine::Tensor ig_reference(const engine::Model& model, const engine::Tensor& x, const engine::Tensor& base_in,
                                   const std::vector<int64_t>& targets, const std::vector<double>& alphas,
                                   const std::vector<double>& weights) {
  engine::Tensor base = base_in.empty() ? engine::Tensor(x.shape()) : base_in;
  int64_t n = x.shape()[0], d = x.numel() / n, m = static_cast<int64_t>(alphas.size());
  engine::Tensor out(x.shape());
  for (int64_t b = 0; b < n; ++b) {
    engine::Shape ps = x.shape();
    ps[0] = m;
    engine::Tensor points(ps);
    for (int64_t k = 0; k < m; ++k)
      for (int64_t j = 0; j < d; ++j) {
        float xb = x.f32()[b * d + j], bb = base.f32()[b * d + j];
        points.f32()[k * d + j] = bb + float(alphas[k]) * (xb - bb);
      }
    engine::Tensor g = engine::logit_gradient(model, points, std::vector<int64_t>(size_t(m), targets[size_t(b)]));
    for (int64_t j = 0; j < d; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < m; ++k) acc += weights[k] * g.f32()[k * d + j];
      out.f32()[b * d + j] = float(acc * (x.f32()[b * d + j] - base.f32()[b * d + j]));
    }
  }
  return out;
}

}  // namespace mlaudit::test
