// FGSM and PGD on the cross-entropy loss.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>

#include "common.h"
#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::robustness::detail {
namespace {

// One ascent step of size `alpha` along the steepest direction of the norm:
// Linf: alpha * sign(g); L2: alpha * g / ||g||_2.
void ascent_step(float* xa, const float* g, int64_t d, Norm norm, double alpha) {
  if (norm == Norm::Linf) {
    for (int64_t k = 0; k < d; ++k) xa[k] += float(alpha * ((g[k] > 0) - (g[k] < 0)));
    return;
  }
  const double gn = vector_norm(g, d, Norm::L2) + 1e-12;
  for (int64_t k = 0; k < d; ++k) xa[k] += float(alpha * g[k] / gn);
}

// Uniform random point of the eps-ball (Linf: uniform cube; L2: direction from a
// Gaussian, radius eps * U^(1/d), i.e. uniform in the ball as in ART's random_sphere).
void random_start(float* xa, int64_t d, Norm norm, double eps, std::mt19937_64& rng) {
  if (norm == Norm::Linf) {
    std::uniform_real_distribution<double> u(-eps, eps);
    for (int64_t k = 0; k < d; ++k) xa[k] += float(u(rng));
    return;
  }
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> v(static_cast<size_t>(d));
  double s = 0;
  for (auto& e : v) { e = g(rng); s += e * e; }
  const double r = eps * std::pow(std::uniform_real_distribution<double>(0, 1)(rng), 1.0 / double(d)) / (std::sqrt(s) + 1e-12);
  for (int64_t k = 0; k < d; ++k) xa[k] += float(v[size_t(k)] * r);
}

// PGD as the module's fused device loop (robustness::device_pgd: the whole iteration on the GPU,
// replayed as a CUDA graph) when the model is a Session running on CUDA and the options are
// the ones that loop implements: one run (no restarts), cross-entropy, Linf or L2, random
// start or not. The device loop keeps the final iterate (torchattacks semantics), the host
// loop the first misclassified one; both are re-checked by run_attack's fresh forward pass.
// std::nullopt: run the host loop (with a note saying why when the model is on a device).
std::optional<SubsetResult> pgd_on_device(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                                          const AttackConfig& cfg, int steps, double alpha, RowRngs& rng,
                                          std::vector<std::string>& notes) {
  const engine::Session* session = m.device_resident();
  if (!session) return std::nullopt;  // CPU session: host loop, no note
  if (cfg.restarts != 1) {
    notes.push_back("pgd: the fused device loop runs one start; --restarts > 1 ran the host loop (per-step device calls)");
    return std::nullopt;
  }
  DevicePgdOptions o;
  o.norm = norm_name(cfg.norm);
  o.eps = float(cfg.eps);
  o.alpha = float(alpha);
  o.steps = steps;
  o.random_start = cfg.random_start;
  o.clip_min = float(cfg.clip_min);
  o.clip_max = float(cfg.clip_max);
  o.seed = rng.device_seed();
  o.batch = 0;  // adapt to free device memory
  const int64_t n = x.dim(0), d = sample_dim(x);
  auto res = robustness::device_pgd(*session, x, engine::Tensor::from_ints({n}, y), o);
  if (!res) {
    notes.push_back("pgd: the device session declined the fused loop; ran the host loop");
    return std::nullopt;
  }
  SubsetResult r = make_subset_result(x);
  for (int64_t i = 0; i < n; ++i) {
    r.gradient_calls[size_t(i)] = steps;
    r.queries[size_t(i)] = 1;
    if (res->robust[size_t(i)]) continue;
    r.found[size_t(i)] = 1;
    std::copy_n(res->x_adv.f32() + i * d, d, r.adversarial.f32() + i * d);
  }
  r.notes.push_back(fmt::format("pgd ran as the fused device loop (robustness::device_pgd, {} backend, CUDA graph {}, device batch {}, cuRAND start)",
                                session->backend_name(), res->cuda_graph ? "yes" : "no", res->batch));
  return r;
}

}  // namespace

SubsetResult fgsm(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                  const AttackConfig& cfg, RowRngs&) {
  // x_adv = clip(x + eps * sign(grad_x CE(f(x), y)))   (Goodfellow et al. 2015, Eq. 3)
  SubsetResult r = make_subset_result(x);
  const int64_t n = x.dim(0), d = sample_dim(x);
  engine::Tensor g = loss_gradient(m, x, Loss::CrossEntropy, y, nullptr, nullptr, nullptr);
  for (int64_t i = 0; i < n; ++i) {
    float* xa = r.adversarial.f32() + i * d;
    ascent_step(xa, g.f32() + i * d, d, cfg.norm, cfg.eps);
    project(xa, x.f32() + i * d, d, cfg.norm, cfg.eps, cfg.clip_min, cfg.clip_max);
    r.gradient_calls[size_t(i)] = 1;
  }
  engine::Tensor logits = m.forward(r.adversarial);
  for (int64_t i = 0; i < n; ++i) {
    r.queries[size_t(i)] = 1;
    r.found[size_t(i)] = row_argmax(logits, i) != y[size_t(i)];
  }
  return r;
}

SubsetResult pgd(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                 const AttackConfig& cfg, RowRngs& rng) {
  // Madry et al. 2018: x_{t+1} = Proj_{B(x,eps) ∩ [lo,hi]}(x_t + alpha * step(grad CE)),
  // default alpha = 2.5 * eps / steps so that the iterates can cross the ball.
  const int steps = cfg.steps > 0 ? cfg.steps : 10;
  const double alpha = cfg.step_size > 0 ? cfg.step_size : 2.5 * cfg.eps / steps;
  std::vector<std::string> notes;
  if (auto dev = pgd_on_device(m, x, y, cfg, steps, alpha, rng, notes)) return *dev;
  SubsetResult r = make_subset_result(x);
  r.notes = notes;
  const int64_t d = sample_dim(x);
  for (int restart = 0; restart < cfg.restarts; ++restart) {
    std::vector<int64_t> act;
    for (int64_t i = 0; i < x.dim(0); ++i)
      if (!r.found[size_t(i)]) act.push_back(i);
    if (act.empty()) break;
    engine::Tensor x0 = x.gather_rows(act);
    engine::Tensor xa = x0.clone();
    if (cfg.random_start)
      for (size_t k = 0; k < act.size(); ++k) {
        random_start(xa.f32() + int64_t(k) * d, d, cfg.norm, cfg.eps, rng[size_t(act[k])]);
        project(xa.f32() + int64_t(k) * d, x0.f32() + int64_t(k) * d, d, cfg.norm, cfg.eps, cfg.clip_min, cfg.clip_max);
      }
    // Record rows whose current iterate is misclassified and drop them from the batch.
    auto harvest = [&](const engine::Tensor& logits) {
      std::vector<int64_t> keep;
      for (size_t k = 0; k < act.size(); ++k) {
        const size_t i = size_t(act[k]);
        if (row_argmax(logits, int64_t(k)) != y[i]) {
          r.found[i] = 1;
          std::copy_n(xa.f32() + int64_t(k) * d, d, r.adversarial.f32() + int64_t(i) * d);
        } else {
          keep.push_back(int64_t(k));
        }
      }
      if (keep.size() == act.size()) return;
      std::vector<int64_t> next;
      for (auto k : keep) next.push_back(act[size_t(k)]);
      act = next;
      if (!act.empty()) { xa = xa.gather_rows(keep); x0 = x0.gather_rows(keep); }
    };
    // Labels of the active rows: rebuilt only when rows leave the batch.
    std::vector<int64_t> ya;
    for (auto i : act) ya.push_back(y[size_t(i)]);
    for (int t = 0; t < steps && !act.empty(); ++t) {
      if (ya.size() != act.size()) {
        ya.clear();
        for (auto i : act) ya.push_back(y[size_t(i)]);
      }
      engine::Tensor logits;
      engine::Tensor g = loss_gradient(m, xa, Loss::CrossEntropy, ya, nullptr, &logits, nullptr);
      for (auto i : act) r.gradient_calls[size_t(i)] += 1;
      // Keep the gradient rows aligned with `act` after harvesting.
      std::vector<int64_t> before = act;
      harvest(logits);
      if (act.empty()) break;
      if (act.size() != before.size()) {
        std::vector<int64_t> keep;
        for (size_t k = 0, j = 0; k < before.size(); ++k)
          if (j < act.size() && before[k] == act[j]) { keep.push_back(int64_t(k)); ++j; }
        g = g.gather_rows(keep);
      }
      const int64_t na = int64_t(act.size());
#pragma omp parallel for schedule(static)
      for (int64_t k = 0; k < na; ++k) {
        float* xk = xa.f32() + k * d;
        ascent_step(xk, g.f32() + k * d, d, cfg.norm, alpha);
        project(xk, x0.f32() + k * d, d, cfg.norm, cfg.eps, cfg.clip_min, cfg.clip_max);
      }
    }
    if (!act.empty()) {
      engine::Tensor logits = m.forward(xa);
      for (auto i : act) r.queries[size_t(i)] += 1;
      harvest(logits);
    }
  }
  return r;
}

}  // namespace mlaudit::robustness::detail
