// Boundary attack (Brendel, Rauber, Bethge, "Decision-Based Adversarial Attacks: Reliable
// Attacks Against Black-Box Machine Learning Models", ICLR 2018, Sec. 3), L2, labels only, as
// Foolbox 3's BoundaryAttack with its defaults: steps 25000, spherical_step 0.01, source_step
// 0.01, source_step_convergance 1e-7, step_adaptation 1.5, update_stats_every_k 10.
//
// Start (Foolbox's LinearSearchBlendedUniformNoiseAttack(steps=50)): uniform noise of the
// domain, drawn until adversarial (at most 1000 draws), then the first adversarial blend
// (1-e) x* + e noise over e = 1/50, 2/50, ..., 1.
// Step (Sec. 3.2, Foolbox's draw_proposals): with u = x* - x_adv, eta ~ N(0, I) made orthogonal
// to u, scaled to spherical_step ||u||, the spherical candidate x* + (eta - u)/sqrt(1 +
// spherical_step^2) (back on the sphere of radius ||u|| around x*, clipped), then a step of
// source_step ||u|| towards x* (corrected for the clip), clipped. It replaces x_adv when
// adversarial and closer. Every update_stats_every_k steps the spherical candidate is queried
// too, and over the last 100 spherical / 30 full outcomes: spherical success > 0.5 multiplies
// both steps by step_adaptation, < 0.2 divides them; full success > 0.25 multiplies the source
// step, < 0.1 divides it (each window restarts after it changed a step). A row whose source step
// is below source_step_convergance has converged and is not moved; as in Foolbox, its statistics
// keep adapting on check steps (Foolbox keeps querying a converged row until every row of its
// batch has converged at once), so a row whose steps grow again resumes. Foolbox's stop (the
// whole batch converged) depends on the batch; here, in its large-batch limit, every row runs
// all `steps` steps, which keeps a row's result independent of its batch neighbours.
// Differences to Foolbox that do not change a row's result: eta is drawn per row (Foolbox shares
// one draw across its batch; the authors' code draws per row), a converged row's candidate is
// queried only on check steps (the one use of its outcome), and the start stops querying a row
// once it has its point.
#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace mlaudit::robustness::detail {
namespace {

/// Success outcomes over the last `maxlen` checks since the window was last cleared
/// (Foolbox's ArrayQueue for one row: mean over a full window only).
class OutcomeWindow {
 public:
  explicit OutcomeWindow(int maxlen) : values_(size_t(maxlen), 0) {}
  void append(bool v) {
    values_[next_] = v;
    next_ = (next_ + 1) % values_.size();
    filled_ = std::min(filled_ + 1, values_.size());
  }
  void clear() { filled_ = 0; }
  bool full() const { return filled_ == values_.size(); }
  double mean() const {
    double s = 0;
    for (auto v : values_) s += v;
    return s / double(values_.size());
  }

 private:
  std::vector<uint8_t> values_;
  size_t next_ = 0, filled_ = 0;
};

struct BoundaryRow {
  std::vector<float> best;  // current adversarial point
  double spherical_step = 0, source_step = 0;
  OutcomeWindow spherical_stats{100}, step_stats{30};
};

}  // namespace

SubsetResult boundary_attack(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                             const AttackConfig& cfg, RowRngs& rng) {
  SubsetResult r = make_subset_result(x);
  const int64_t n = x.dim(0), d = sample_dim(x);
  if (n == 0 || d == 0) return r;
  const double lo = cfg.clip_min, hi = cfg.clip_max;
  const int steps = cfg.steps > 0 ? cfg.steps : 25000;
  const int64_t budget = cfg.max_queries > 0 ? cfg.max_queries : std::numeric_limits<int64_t>::max();
  DecisionOracle oracle(m, x, y, cfg, r.queries);
  std::vector<BoundaryRow> rows(static_cast<size_t>(n));
  const bool parallel = n * d >= 4096;
  auto x0_of = [&](int64_t i) { return x.f32() + i * d; };

  // Start: uniform noise until adversarial (1000 draws at most), then the first adversarial blend.
  std::vector<std::vector<float>> noise = oracle.uniform_starts(n, 1000, rng);
  std::vector<int64_t> act;
  {
    std::vector<int64_t> blending;
    for (int64_t i = 0; i < n; ++i)
      if (!noise[size_t(i)].empty()) blending.push_back(i);
    const int blend_steps = 50;
    for (int e = 1; e <= blend_steps && !blending.empty(); ++e) {
      const float eps = float(e) / float(blend_steps);  // np.linspace(0, 1, 51, dtype=float32)
      engine::Tensor cand = oracle.candidates(int64_t(blending.size()));
      for (size_t q = 0; q < blending.size(); ++q) {
        const float* x0 = x0_of(blending[q]);
        const float* z = noise[size_t(blending[q])].data();
        float* c = cand.f32() + int64_t(q) * d;
        for (int64_t k = 0; k < d; ++k) c[k] = e == blend_steps ? z[k] : (1 - eps) * x0[k] + eps * z[k];
      }
      auto adv = oracle.is_adversarial(cand, blending);
      std::vector<int64_t> still;
      for (size_t q = 0; q < blending.size(); ++q) {
        const int64_t i = blending[q];
        if (!adv[q]) { still.push_back(i); continue; }
        BoundaryRow& s = rows[size_t(i)];
        s.best.assign(cand.f32() + int64_t(q) * d, cand.f32() + int64_t(q + 1) * d);
        s.spherical_step = cfg.spherical_step;
        s.source_step = cfg.source_step;
        act.push_back(i);
      }
      blending.swap(still);
    }
    std::sort(act.begin(), act.end());
  }

  std::vector<float> spherical(static_cast<size_t>(n * d)), candidate(static_cast<size_t>(n * d));
  std::vector<double> source_norm(static_cast<size_t>(n));
  for (int step = 1; step <= steps; ++step) {
    const bool check = step % cfg.update_stats_every_k == 0;
    std::vector<int64_t> live;
    for (int64_t i : act)
      if (r.queries[size_t(i)] < budget) live.push_back(i);
    act.swap(live);
    if (act.empty()) break;
    // Rows queried this step: the unconverged ones; on check steps every row.
    std::vector<int64_t> stepping;
    for (int64_t i : act)
      if (check || rows[size_t(i)].source_step >= cfg.source_step_convergence) stepping.push_back(i);
    if (stepping.empty()) continue;
    const int64_t na = int64_t(stepping.size());
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t j = 0; j < na; ++j) {
      const int64_t i = stepping[size_t(j)];
      BoundaryRow& s = rows[size_t(i)];
      const float* x0 = x0_of(i);
      float* sph = spherical.data() + j * d;
      float* cand = candidate.data() + j * d;
      // u = x* - x_adv, its norm and direction.
      std::vector<double> u(static_cast<size_t>(d)), eta(static_cast<size_t>(d));
      double un = 0;
      for (int64_t k = 0; k < d; ++k) {
        u[size_t(k)] = double(x0[k]) - s.best[size_t(k)];
        un += u[size_t(k)] * u[size_t(k)];
      }
      un = std::sqrt(un);
      source_norm[size_t(j)] = un;
      // eta ~ N(0, I), orthogonal to u, norm spherical_step * ||u||.
      std::normal_distribution<double> gauss(0.0, 1.0);
      auto& g = rng[size_t(i)];
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) {
        eta[size_t(k)] = gauss(g);
        dot += eta[size_t(k)] * u[size_t(k)] / un;
      }
      double en = 0;
      for (int64_t k = 0; k < d; ++k) {
        eta[size_t(k)] -= dot * u[size_t(k)] / un;
        en += eta[size_t(k)] * eta[size_t(k)];
      }
      en = std::sqrt(en);
      const double scale = en > 0 ? s.spherical_step * un / en : 0.0;
      // Spherical candidate, back on the sphere by Pythagoras: x* + (eta - u) / sqrt(1 + step^2).
      const double pyth = std::sqrt(s.spherical_step * s.spherical_step + 1);
      double nn = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double v = std::clamp(double(x0[k]) + (eta[size_t(k)] * scale - u[size_t(k)]) / pyth, lo, hi);
        sph[k] = float(v);
        const double w = double(x0[k]) - double(sph[k]);
        nn += w * w;
      }
      nn = std::sqrt(nn);
      // Step towards x*: length source_step ||u||, corrected for the spherical candidate's
      // deviation from the sphere, never negative.
      const double length = nn > 0 ? std::max(s.source_step * un + nn - un, 0.0) / nn : 0.0;
      for (int64_t k = 0; k < d; ++k)
        cand[k] = float(std::clamp(double(sph[k]) + length * (double(x0[k]) - sph[k]), lo, hi));
    }
    // One model call: every live row's candidate, plus its spherical candidate on check steps.
    const int64_t per = check ? 2 : 1;
    engine::Tensor batch = oracle.candidates(na * per);
    std::vector<int64_t> owner(static_cast<size_t>(na * per));
    std::copy(candidate.begin(), candidate.begin() + na * d, batch.f32());
    for (int64_t j = 0; j < na; ++j) owner[size_t(j)] = stepping[size_t(j)];
    if (check) {
      std::copy(spherical.begin(), spherical.begin() + na * d, batch.f32() + na * d);
      for (int64_t j = 0; j < na; ++j) owner[size_t(na + j)] = stepping[size_t(j)];
    }
    auto adv = oracle.is_adversarial(batch, owner);
    for (int64_t j = 0; j < na; ++j) {
      const int64_t i = stepping[size_t(j)];
      BoundaryRow& s = rows[size_t(i)];
      const float* cand = batch.f32() + j * d;
      const bool is_adv = adv[size_t(j)];
      // Closer by construction; float rounding can break that, so it is checked (as Foolbox does).
      const bool converged = s.source_step < cfg.source_step_convergence;
      if (!converged && is_adv && distance(cand, x0_of(i), d, Norm::L2) < source_norm[size_t(j)])
        std::copy_n(cand, d, s.best.data());
      if (!check) continue;
      s.spherical_stats.append(adv[size_t(na + j)]);
      s.step_stats.append(is_adv);
      const double a = cfg.step_adaptation;
      if (s.spherical_stats.full()) {
        const double p = s.spherical_stats.mean();
        if (p > 0.5) { s.spherical_step *= a; s.source_step *= a; s.spherical_stats.clear(); }
        else if (p < 0.2) { s.spherical_step /= a; s.source_step /= a; s.spherical_stats.clear(); }
      }
      if (s.step_stats.full()) {
        const double p = s.step_stats.mean();
        if (p > 0.25) { s.source_step *= a; s.step_stats.clear(); }
        else if (p < 0.1) { s.source_step /= a; s.step_stats.clear(); }
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const BoundaryRow& s = rows[size_t(i)];
    if (s.best.empty()) continue;
    r.found[size_t(i)] = 1;
    std::copy(s.best.begin(), s.best.end(), r.adversarial.f32() + i * d);
  }
  return r;
}

}  // namespace mlaudit::robustness::detail
