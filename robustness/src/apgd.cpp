// Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an
// ensemble of diverse parameter-free attacks", ICML 2020), Algorithm 1, following
// the structure of the reference implementation (fra31/auto-attack, autopgd_base.py).
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>

#include "common.h"
#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::robustness {

std::vector<int> apgd_checkpoints(int n_iter) {
  // Reference integer form: first period n_iter_2 = max(int(0.22 n), 1), each next
  // period shorter by size_decr = max(int(0.03 n), 1) down to n_iter_min = max(int(0.06 n), 1),
  // i.e. p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06). A checkpoint is the
  // number of iterations done when the step-size conditions are evaluated.
  std::vector<int> w = {0};
  int k = std::max(int(0.22 * n_iter), 1);
  const int decr = std::max(int(0.03 * n_iter), 1), kmin = std::max(int(0.06 * n_iter), 1);
  int pos = 0;
  while (pos + k <= n_iter) {
    pos += k;
    w.push_back(pos);
    k = std::max(k - decr, kmin);
  }
  return w;
}

namespace detail {

void apgd_single_run(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                     const std::vector<int64_t>* target, const AttackConfig& cfg, RowRngs& rng, Loss loss,
                     engine::Tensor& adv, std::vector<uint8_t>& found, std::vector<int64_t>& gradient_calls) {
  const int64_t n = x.dim(0), d = sample_dim(x);
  const int n_iter = cfg.steps > 0 ? cfg.steps : 100;
  const double eps = cfg.eps, lo = cfg.clip_min, hi = cfg.clip_max;
  // Rows of this run: not yet broken.
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < n; ++i)
    if (!found[size_t(i)]) rows.push_back(i);
  if (rows.empty()) return;
  const size_t r = rows.size();
  engine::Tensor x0 = x.gather_rows(rows);
  std::vector<int64_t> yr, tr;
  for (auto i : rows) {
    yr.push_back(y[size_t(i)]);
    if (target) tr.push_back((*target)[size_t(i)]);
  }

  // Random start: Linf x + eps * t / ||t||_inf, t ~ U[-1,1]^d; L2 x + eps * t / ||t||_2, t ~ N(0,I).
  engine::Tensor xa = x0.clone();
  {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::normal_distribution<float> g(0.f, 1.f);
    std::vector<float> t(static_cast<size_t>(d));
    for (size_t k = 0; k < r; ++k) {
      for (auto& e : t) e = cfg.norm == Norm::Linf ? u(rng[size_t(rows[k])]) : g(rng[size_t(rows[k])]);
      const double tn = vector_norm(t.data(), d, cfg.norm) + 1e-12;
      float* xk = xa.f32() + int64_t(k) * d;
      for (int64_t j = 0; j < d; ++j) xk[j] = float(std::clamp(double(xk[j]) + eps * t[size_t(j)] / tn, lo, hi));
    }
  }

  // Per-row state.
  engine::Tensor x_old = xa.clone(), x_best = xa.clone(), grad(xa.shape()), grad_best(xa.shape());
  std::vector<double> step(r, 2.0 * eps);  // eta^(0) = 2 eps
  std::vector<float> loss_best(r), loss_best_last_check(r);
  std::vector<uint8_t> reduced_last_check(r, 1), active(r, 1);
  // loss history: hist[k][0] = loss at the start point, hist[k][i+1] = after iteration i.
  std::vector<std::vector<float>> hist(r, std::vector<float>(size_t(n_iter) + 1, 0.f));

  auto eval_active = [&](const std::vector<size_t>& act, engine::Tensor& logits, std::vector<float>& values) {
    std::vector<int64_t> idx(act.begin(), act.end());
    std::vector<int64_t> ya, ta;
    for (auto k : act) {
      ya.push_back(yr[k]);
      if (target) ta.push_back(tr[k]);
    }
    engine::Tensor xin = act.size() == r ? xa : xa.gather_rows(idx);
    engine::Tensor g = loss_gradient(m, xin, loss, ya, target ? &ta : nullptr, &logits, &values);
    for (size_t j = 0; j < act.size(); ++j) {
      std::copy_n(g.f32() + int64_t(j) * d, d, grad.f32() + int64_t(act[j]) * d);
      gradient_calls[size_t(rows[act[j]])] += 1;
    }
  };
  // A row whose current iterate is misclassified is broken: record it, stop optimising it.
  auto harvest = [&](const std::vector<size_t>& act, const engine::Tensor& logits) {
    for (size_t j = 0; j < act.size(); ++j) {
      const size_t k = act[j];
      if (row_argmax(logits, int64_t(j)) != yr[k]) {
        found[size_t(rows[k])] = 1;
        std::copy_n(xa.f32() + int64_t(k) * d, d, adv.f32() + rows[k] * d);
        active[k] = 0;
      }
    }
  };
  auto active_list = [&]() {
    std::vector<size_t> a;
    for (size_t k = 0; k < r; ++k)
      if (active[k]) a.push_back(k);
    return a;
  };

  {
    std::vector<size_t> all = active_list();
    engine::Tensor logits;
    std::vector<float> values;
    eval_active(all, logits, values);
    for (size_t k = 0; k < r; ++k) {
      loss_best[k] = values[k];
      hist[k][0] = values[k];
    }
    grad_best = grad.clone();
    harvest(all, logits);
  }
  loss_best_last_check = loss_best;

  int k_period = std::max(int(0.22 * n_iter), 1);
  const int size_decr = std::max(int(0.03 * n_iter), 1), n_iter_min = std::max(int(0.06 * n_iter), 1);
  int counter = 0;
  constexpr double rho = 0.75;   // condition 1 threshold (Sec. 3.2)
  std::vector<float> z(static_cast<size_t>(d));
  for (int i = 0; i < n_iter; ++i) {
    std::vector<size_t> act = active_list();
    if (act.empty()) break;
    // Momentum step (Eq. 2): z = P(x + eta * step(g)); x' = P(x + a (z - x) + (1 - a)(x - x_old)),
    // a = 0.75 after the first iteration.
    const double a = i > 0 ? 0.75 : 1.0;
    for (size_t k : act) {
      float* xk = xa.f32() + int64_t(k) * d;
      float* xo = x_old.f32() + int64_t(k) * d;
      const float* gk = grad.f32() + int64_t(k) * d;
      const float* x0k = x0.f32() + int64_t(k) * d;
      if (cfg.norm == Norm::Linf) {
        for (int64_t j = 0; j < d; ++j) z[size_t(j)] = xk[j] + float(step[k] * ((gk[j] > 0) - (gk[j] < 0)));
      } else {
        const double gn = vector_norm(gk, d, Norm::L2) + 1e-12;
        for (int64_t j = 0; j < d; ++j) z[size_t(j)] = xk[j] + float(step[k] * gk[j] / gn);
      }
      project(z.data(), x0k, d, cfg.norm, eps, lo, hi);
      for (int64_t j = 0; j < d; ++j) {
        const float prev = xk[j];
        z[size_t(j)] = float(prev + a * (z[size_t(j)] - prev) + (1 - a) * (prev - xo[j]));
        xo[j] = prev;
      }
      project(z.data(), x0k, d, cfg.norm, eps, lo, hi);
      std::copy_n(z.data(), d, xk);
    }
    engine::Tensor logits;
    std::vector<float> values;
    eval_active(act, logits, values);
    for (size_t j = 0; j < act.size(); ++j) {
      const size_t k = act[j];
      hist[k][size_t(i) + 1] = values[j];
      if (values[j] > loss_best[k]) {
        loss_best[k] = values[j];
        std::copy_n(xa.f32() + int64_t(k) * d, d, x_best.f32() + int64_t(k) * d);
        std::copy_n(grad.f32() + int64_t(k) * d, d, grad_best.f32() + int64_t(k) * d);
      }
    }
    harvest(act, logits);
    if (++counter == k_period) {
      // Checkpoint w_j = i: halve eta and restart from x_max when
      // (1) fewer than rho * k of the last k steps increased the loss, or
      // (2) eta was not reduced at the last checkpoint and f_max did not improve.
      for (size_t k = 0; k < r; ++k) {
        if (!active[k]) continue;
        int increased = 0;
        for (int c = 0; c < k_period; ++c) increased += hist[k][size_t(i + 1 - c)] > hist[k][size_t(i - c)];
        const bool osc = increased <= k_period * rho;
        const bool no_impr = !reduced_last_check[k] && loss_best_last_check[k] >= loss_best[k];
        const bool reduce = osc || no_impr;
        reduced_last_check[k] = reduce;
        loss_best_last_check[k] = loss_best[k];
        if (reduce) {
          step[k] /= 2.0;
          std::copy_n(x_best.f32() + int64_t(k) * d, d, xa.f32() + int64_t(k) * d);
          std::copy_n(grad_best.f32() + int64_t(k) * d, d, grad.f32() + int64_t(k) * d);
        }
      }
      k_period = std::max(k_period - size_decr, n_iter_min);
      counter = 0;
    }
  }
}

namespace {

// APGD as the module's fused device loop (robustness::device_apgd: every row's state on the GPU,
// the CE / DLR / targeted-DLR value and logit gradient computed there) when the model is a
// Session on CUDA and the norm is Linf or L2. Restarts and (APGD-T) targets run as in the host
// loops: each run on the rows no earlier run broke. Broken rows keep their breaking iterate, like
// the host loop; run_attack re-checks every candidate. std::nullopt: run the host loop.
std::optional<SubsetResult> apgd_on_device(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                                           const AttackConfig& cfg, RowRngs& rng, Loss loss,
                                           std::vector<std::string>& notes) {
  const engine::Session* session = m.device_resident();
  if (!session) return std::nullopt;
  const char* name = loss == Loss::CrossEntropy ? "apgd-ce" : loss == Loss::Dlr ? "apgd-dlr" : "apgd-t";
  DeviceApgdOptions o;
  o.norm = norm_name(cfg.norm);
  o.eps = float(cfg.eps);
  o.steps = cfg.steps > 0 ? cfg.steps : 100;
  o.clip_min = float(cfg.clip_min);
  o.clip_max = float(cfg.clip_max);
  o.seed = rng.device_seed();
  o.loss = loss == Loss::CrossEntropy ? "ce" : loss == Loss::Dlr ? "dlr" : "dlr-targeted";
  o.restarts = cfg.restarts;
  o.n_target_classes = cfg.n_target_classes;
  const int64_t n = x.dim(0), d = sample_dim(x);
  auto res = robustness::device_apgd(*session, x, engine::Tensor::from_ints({n}, y), o);
  if (!res) {
    notes.push_back(fmt::format("{}: the device session declined the fused loop; ran the host loop", name));
    return std::nullopt;
  }
  SubsetResult r = make_subset_result(x);
  // Upper bound: every run's iterations (rows leave early once broken).
  const int64_t runs = int64_t(o.restarts) * (loss == Loss::DlrTargeted ? std::max(1, o.n_target_classes) : 1);
  for (int64_t i = 0; i < n; ++i) {
    r.gradient_calls[size_t(i)] = int64_t(o.steps + 1) * runs;
    if (loss == Loss::DlrTargeted) r.queries[size_t(i)] += 1;  // the clean forward that ranks the targets
    if (res->robust[size_t(i)]) continue;
    r.found[size_t(i)] = 1;
    std::copy_n(res->x_adv.f32() + i * d, d, r.adversarial.f32() + i * d);
  }
  r.notes.push_back(fmt::format("{} ran as the fused device loop (robustness::device_apgd, {} backend, device batch {}, Philox start)",
                                name, session->backend_name(), res->batch));
  return r;
}

}  // namespace

SubsetResult apgd(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                  const AttackConfig& cfg, RowRngs& rng, Loss loss) {
  std::vector<std::string> notes;
  if (loss == Loss::CrossEntropy || loss == Loss::Dlr)
    if (auto dev = apgd_on_device(m, x, y, cfg, rng, loss, notes)) return *dev;
  SubsetResult r = make_subset_result(x);
  r.notes = notes;
  for (int restart = 0; restart < cfg.restarts; ++restart)
    apgd_single_run(m, x, y, nullptr, cfg, rng, loss, r.adversarial, r.found, r.gradient_calls);
  return r;
}

SubsetResult apgd_targeted(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                           const AttackConfig& cfg, RowRngs& rng) {
  // APGD-T: for target rank t = 2 .. n_target_classes + 1, target the class with the
  // t-th largest clean logit, on the rows still robust (Croce & Hein 2020, Sec. 4).
  std::vector<std::string> notes;
  if (auto dev = apgd_on_device(m, x, y, cfg, rng, Loss::DlrTargeted, notes)) return *dev;
  SubsetResult r = make_subset_result(x);
  r.notes = notes;
  engine::Tensor logits = m.forward(x);
  const int64_t n = x.dim(0), c = logits.dim(1);
  for (int64_t i = 0; i < n; ++i) r.queries[size_t(i)] += 1;
  const int n_targets = int(std::min<int64_t>(cfg.n_target_classes, c - 1));
  std::vector<std::vector<int64_t>> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto& o = order[size_t(i)];
    o.resize(size_t(c));
    for (int64_t j = 0; j < c; ++j) o[size_t(j)] = j;
    const float* z = logits.f32() + i * c;
    std::stable_sort(o.begin(), o.end(), [z](int64_t a, int64_t b) { return z[a] > z[b]; });
  }
  for (int t = 2; t <= n_targets + 1; ++t) {
    std::vector<int64_t> target(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) target[size_t(i)] = order[size_t(i)][size_t(t - 1)];
    for (int restart = 0; restart < cfg.restarts; ++restart)
      apgd_single_run(m, x, y, &target, cfg, rng, Loss::DlrTargeted, r.adversarial, r.found, r.gradient_calls);
  }
  return r;
}

}  // namespace detail
}  // namespace mlaudit::robustness
