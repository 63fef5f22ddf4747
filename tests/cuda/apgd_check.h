#pragma once
// Shared check of the device APGD-CE (engine::device_apgd_ce / cuda::apgd_ce_on) against the
// robustness module's CPU APGD-CE (robustness/src/apgd.cpp, the same algorithm with another random
// start), used by test_cuda (GPU) and test_cuda_emulated.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "mlaudit/engine/accelerated.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/robustness/attacks.h"

namespace mlaudit::test {

/// Checks invariants of a device APGD result and returns its robust count: every row reported
/// broken is misclassified by a fresh CPU forward and lies in the eps-ball and the box; every row
/// reported robust keeps a point inside the ball.
inline int64_t check_device_apgd(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                                 const engine::DevicePgdResult& res, const engine::DeviceApgdOptions& o) {
  const int64_t n = x.shape()[0], d = x.numel() / n;
  const bool linf = o.norm == "linf";
  REQUIRE(res.x_adv.shape() == x.shape());
  REQUIRE(static_cast<int64_t>(res.robust.size()) == n);
  auto pred = engine::argmax_rows(cpu.forward(res.x_adv));
  int64_t robust = 0;
  for (int64_t i = 0; i < n; ++i) {
    double dist = 0;
    for (int64_t j = 0; j < d; ++j) {
      float v = res.x_adv.f32()[i * d + j], delta = v - x.f32()[i * d + j];
      REQUIRE(v >= o.clip_min);
      REQUIRE(v <= o.clip_max);
      dist = linf ? std::max(dist, double(std::fabs(delta))) : dist + double(delta) * delta;
    }
    if (!linf) dist = std::sqrt(dist);
    REQUIRE(dist <= o.eps * (1 + 1e-5) + 1e-6);
    if (!res.robust[size_t(i)]) {
      INFO("row " << i);
      REQUIRE(pred[size_t(i)] != labels[size_t(i)]);  // a reported break is a real one
    }
    robust += res.robust[size_t(i)];
  }
  REQUIRE(robust == res.robust_count);
  return robust;
}

/// Robust count of the robustness module's CPU APGD-CE with the same budget (one restart).
inline int64_t cpu_apgd_robust(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                               const engine::DeviceApgdOptions& o) {
  robustness::AttackConfig cfg;
  cfg.norm = o.norm == "linf" ? robustness::Norm::Linf : robustness::Norm::L2;
  cfg.eps = o.eps;
  cfg.steps = o.steps;
  cfg.restarts = 1;
  cfg.clip_min = o.clip_min;
  cfg.clip_max = o.clip_max;
  cfg.seed = 3;
  auto r = robustness::run_attack("apgd-ce", cpu, x, labels, cfg);
  int64_t robust = 0;
  for (size_t i = 0; i < labels.size(); ++i) robust += r.clean_correct[i] && !r.success[i];
  return robust;
}

}  // namespace mlaudit::test
