#pragma once
// Shared checks of the device APGD (CE, DLR, APGD-T: robustness::device_apgd / robustness::cuda::apgd_on) and Square
// (robustness::device_square / robustness::cuda::square_on) against the robustness module's CPU loops
// (robustness/src/apgd.cpp, square.cpp: the same algorithms with other random draws), used by
// test_cuda (GPU) and test_cuda_emulated.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/robustness/attacks.h"

namespace mlaudit::test {

/// Checks invariants of a device APGD result and returns its robust count: every row reported
/// broken is misclassified by a fresh CPU forward and lies in the eps-ball and the box; every row
/// reported robust keeps a point inside the ball.
inline int64_t check_device_attack(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                                   const robustness::DevicePgdResult& res, const std::string& norm, float eps, float clip_min,
                                   float clip_max) {
  struct {
    std::string norm;
    float eps, clip_min, clip_max;
  } o{norm, eps, clip_min, clip_max};
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

inline int64_t check_device_apgd(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                                 const robustness::DevicePgdResult& res, const robustness::DeviceApgdOptions& o) {
  return check_device_attack(cpu, x, labels, res, o.norm, o.eps, o.clip_min, o.clip_max);
}

/// Robust count of the robustness module's CPU APGD (apgd-ce, apgd-dlr or apgd-t per o.loss) with the
/// same budget (o.restarts, o.n_target_classes).
inline int64_t cpu_apgd_robust(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                               const robustness::DeviceApgdOptions& o) {
  robustness::AttackConfig cfg;
  cfg.n_target_classes = o.n_target_classes;
  cfg.norm = o.norm == "linf" ? robustness::Norm::Linf : robustness::Norm::L2;
  cfg.eps = o.eps;
  cfg.steps = o.steps;
  cfg.restarts = o.restarts;
  cfg.clip_min = o.clip_min;
  cfg.clip_max = o.clip_max;
  cfg.seed = 3;
  const char* name = o.loss == "dlr" ? "apgd-dlr" : o.loss == "dlr-targeted" ? "apgd-t" : "apgd-ce";
  auto r = robustness::run_attack(name, cpu, x, labels, cfg);
  int64_t robust = 0;
  for (size_t i = 0; i < labels.size(); ++i) robust += r.clean_correct[i] && !r.success[i];
  return robust;
}

}  // namespace mlaudit::test

namespace mlaudit::test {

/// Robust count of the robustness module's CPU Square (o.norm) with the device options' budget and p_init.
inline int64_t cpu_square_robust(const engine::Model& cpu, const engine::Tensor& x, const std::vector<int64_t>& labels,
                                 const robustness::DeviceSquareOptions& o) {
  robustness::AttackConfig cfg;
  cfg.norm = o.norm == "linf" ? robustness::Norm::Linf : robustness::Norm::L2;
  cfg.eps = o.eps;
  cfg.queries = o.n_queries;
  cfg.p_init = o.p_init;
  cfg.clip_min = o.clip_min;
  cfg.clip_max = o.clip_max;
  cfg.seed = 3;
  auto r = robustness::run_attack("square", cpu, x, labels, cfg);
  int64_t robust = 0;
  for (size_t i = 0; i < labels.size(); ++i) robust += r.clean_correct[i] && !r.success[i];
  return robust;
}

}  // namespace mlaudit::test
