// HopSkipJumpAttack (Chen, Jordan, Wainwright, "HopSkipJumpAttack: A Query-Efficient
// Decision-Based Attack", IEEE S&P 2020, Alg. 2), untargeted, L2 and Linf, labels only.
//
// Loop (authors' hsja.py, the order ART follows too): from a point on the boundary,
//   1. estimate the gradient direction of the decision function by Monte Carlo (Eq. 14-16):
//      B_t = min(init_eval * sqrt(t), max_eval) unit-L2 random vectors u_b (L2: Gaussian, Linf:
//      uniform in [-1,1]), queries phi(x_t + delta_t u_b) in {-1,+1}, baseline-subtracted mean
//      of phi * u_b, then v_t = grad/||grad||_2 (L2) or sign(grad) (Linf);
//   2. geometric step search (Sec. 4.1): xi_t = ||x_t - x*|| / sqrt(t), halved until
//      x_t + xi_t v_t is adversarial;
//   3. binary search back to the boundary between x* and that point (Alg. 1), to threshold theta.
// Defaults: ART's HopSkipJump (max_iter 50, max_eval 1e4, init_eval 100, init_size 100,
// geometric step search; the authors' code runs 40 iterations and tries 1e4 random starts);
// the binary-search threshold and probe radius are the paper's (Sec. 5, gamma = 1 in the
// authors' code): theta = d^(-3/2) (L2), d^(-2) (Linf); delta_1 = 0.1 (clip_max - clip_min),
// delta_t = sqrt(d) theta dist_{t-1} (L2), d theta dist_{t-1} (Linf), dist_{t-1} the distance
// before the last binary search. ART uses theta = 0.01/sqrt(d) and 0.01/d instead.
// Start (ART, authors): uniform random points of the domain until one is adversarial, then a
// binary search on the blend (1-a) x* + a x_rand to 0.001.
//
// Every row advances through the same phases in lock step so one model call evaluates the
// candidates of all rows (a whole gradient estimate of many rows in one call); each row draws from
// its own stream (RowRngs) and the host work runs in parallel over rows, so results do not depend
// on --threads, --batch or on which rows share a batch. The row's smallest adversarial point is
// what is returned (the end of each binary search is one).
#include <algorithm>
#include <cmath>
#include <limits>

#include "common.h"

namespace mlaudit::robustness::detail {
namespace {

struct HsjaRow {
  std::vector<float> current;   // x_t, adversarial (on the boundary after a binary search)
  std::vector<float> update;    // v_t
  double dist = 0;              // ||x_t - x*|| after the binary search
  double dist_post_update = 0;  // ||x_t - x*|| before it (sets delta_{t+1})
  double best_dist = std::numeric_limits<double>::infinity();
  bool started = false;         // a first adversarial point was found
  bool active = false;          // still iterating
};

// x* + alpha (x - x*) (L2, alpha in [0,1]) or clip(x, x* - alpha, x* + alpha) (Linf, alpha a radius):
// the authors' project().
void project_towards(const float* x0, const float* x, int64_t d, Norm norm, double alpha, float* out) {
  if (norm == Norm::L2) {
    for (int64_t k = 0; k < d; ++k) out[k] = float((1.0 - alpha) * x0[k] + alpha * x[k]);
  } else {
    for (int64_t k = 0; k < d; ++k) out[k] = float(std::clamp(double(x[k]), x0[k] - alpha, x0[k] + alpha));
  }
}

}  // namespace

SubsetResult hop_skip_jump(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                           const AttackConfig& cfg, RowRngs& rng) {
  SubsetResult r = make_subset_result(x);
  const int64_t n = x.dim(0), d = sample_dim(x);
  if (n == 0 || d == 0) return r;
  const Norm norm = cfg.norm;
  const double lo = cfg.clip_min, hi = cfg.clip_max;
  const int max_iter = cfg.steps > 0 ? cfg.steps : 50;
  const int64_t budget = cfg.max_queries > 0 ? cfg.max_queries : std::numeric_limits<int64_t>::max();
  // Paper, Sec. 5: theta = d^(-3/2) for L2, d^(-2) for Linf.
  const double dd = double(d);
  const double theta = norm == Norm::L2 ? 1.0 / (dd * std::sqrt(dd)) : 1.0 / (dd * dd);
  DecisionOracle oracle(m, x, y, cfg, r.queries);
  std::vector<HsjaRow> rows(static_cast<size_t>(n));
  const bool parallel = n * d >= 4096;
  auto x0_of = [&](int64_t i) { return x.f32() + i * d; };
  auto keep_best = [&](int64_t i) {
    HsjaRow& s = rows[size_t(i)];
    if (s.dist < s.best_dist) {
      s.best_dist = s.dist;
      r.found[size_t(i)] = 1;
      std::copy(s.current.begin(), s.current.end(), r.adversarial.f32() + i * d);
    }
  };

  // Binary search between x* and `target` rows (current) to threshold: L2 on alpha in [0,1]
  // with threshold theta; Linf on the radius in [0, dist] with threshold min(dist theta, theta)
  // (authors' binary_search_batch). `blend` selects the start's blend search (L2-style, 0.001).
  auto binary_search = [&](std::vector<int64_t> act, bool blend) {
    const size_t na = act.size();
    std::vector<double> low(na, 0.0), high(na, 1.0), thr(na, blend ? 0.001 : theta);
    const Norm search_norm = blend ? Norm::L2 : norm;
    for (size_t j = 0; j < na; ++j) {
      HsjaRow& s = rows[size_t(act[j])];
      s.dist_post_update = distance(s.current.data(), x0_of(act[j]), d, norm);
      if (search_norm == Norm::Linf) {
        high[j] = distance(s.current.data(), x0_of(act[j]), d, Norm::Linf);
        thr[j] = std::min(high[j] * theta, theta);
      }
    }
    std::vector<size_t> open;
    for (size_t j = 0; j < na; ++j)
      if (high[j] - low[j] > thr[j]) open.push_back(j);
    while (!open.empty()) {
      engine::Tensor cand = oracle.candidates(int64_t(open.size()));
      std::vector<int64_t> owner(open.size());
      for (size_t q = 0; q < open.size(); ++q) {
        const size_t j = open[q];
        const int64_t i = act[j];
        owner[q] = i;
        project_towards(x0_of(i), rows[size_t(i)].current.data(), d, search_norm, (low[j] + high[j]) / 2,
                        cand.f32() + int64_t(q) * d);
      }
      auto adv = oracle.is_adversarial(cand, owner);
      std::vector<size_t> still;
      for (size_t q = 0; q < open.size(); ++q) {
        const size_t j = open[q];
        const double mid = (low[j] + high[j]) / 2;
        (adv[q] ? high[j] : low[j]) = mid;
        if (high[j] - low[j] > thr[j]) still.push_back(j);
      }
      open.swap(still);
    }
    for (size_t j = 0; j < na; ++j) {
      HsjaRow& s = rows[size_t(act[j])];
      std::vector<float> out(static_cast<size_t>(d));
      project_towards(x0_of(act[j]), s.current.data(), d, search_norm, high[j], out.data());
      s.current.swap(out);
      s.dist = distance(s.current.data(), x0_of(act[j]), d, norm);
      keep_best(act[j]);
    }
  };

  // Start: uniform random points of the domain, one per row per round, up to init_size rounds.
  {
    std::vector<std::vector<float>> starts = oracle.uniform_starts(n, cfg.init_size, rng);
    for (int64_t i = 0; i < n; ++i) {
      if (starts[size_t(i)].empty()) continue;
      HsjaRow& s = rows[size_t(i)];
      s.current = std::move(starts[size_t(i)]);
      s.started = s.active = true;
    }
  }
  std::vector<int64_t> act;
  for (int64_t i = 0; i < n; ++i)
    if (rows[size_t(i)].started) act.push_back(i);
  if (act.empty()) return r;
  binary_search(act, true);   // blend search to 0.001 (ART's and the authors' start)
  binary_search(act, false);  // then to the boundary at theta (authors' code, before the loop)

  // delta_1's width: the domain's, or the data's range on an open side (decision_range).
  const auto [range_lo, range_hi] = decision_range(x, cfg);
  const double domain_width = range_hi - range_lo;
  for (int t = 1; t <= max_iter; ++t) {
    // Rows stop when their query budget is spent.
    std::vector<int64_t> live;
    for (int64_t i : act)
      if (r.queries[size_t(i)] < budget) live.push_back(i);
    act.swap(live);
    if (act.empty()) break;
    const int64_t num_evals = std::min<int64_t>(int64_t(cfg.hsja_init_eval * std::sqrt(double(t))), cfg.hsja_max_eval);
    // 1. Gradient-direction estimate, rows in groups whose probes fit one model call.
    const int64_t group = std::max<int64_t>(1, oracle.max_rows() / std::max<int64_t>(num_evals, 1));
    for (size_t g0 = 0; g0 < act.size(); g0 += size_t(group)) {
      const size_t g1 = std::min(act.size(), g0 + size_t(group));
      std::vector<int64_t> evals(g1 - g0), offset(g1 - g0 + 1, 0);
      for (size_t j = g0; j < g1; ++j) {
        const int64_t left = budget - r.queries[size_t(act[j])];
        evals[j - g0] = std::max<int64_t>(1, std::min(num_evals, left));
        offset[j - g0 + 1] = offset[j - g0] + evals[j - g0];
      }
      const int64_t total = offset.back();
      engine::Tensor cand = oracle.candidates(total);
      std::vector<float> noise(static_cast<size_t>(total * d));
      std::vector<double> delta(g1 - g0);
      std::vector<int64_t> owner(static_cast<size_t>(total));
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t jj = 0; jj < int64_t(g1 - g0); ++jj) {
        const int64_t i = act[g0 + size_t(jj)];
        const HsjaRow& s = rows[size_t(i)];
        // delta_1 = 0.1 (clip_max - clip_min); then sqrt(d) theta dist (L2), d theta dist (Linf).
        const double dl = t == 1 ? 0.1 * domain_width
                                 : (norm == Norm::L2 ? std::sqrt(dd) : dd) * theta * s.dist_post_update;
        delta[size_t(jj)] = dl;
        auto& gen = rng[size_t(i)];
        std::normal_distribution<double> gauss(0.0, 1.0);
        std::uniform_real_distribution<double> unif(-1.0, 1.0);
        for (int64_t b = offset[size_t(jj)]; b < offset[size_t(jj) + 1]; ++b) {
          owner[size_t(b)] = i;
          float* u = noise.data() + b * d;
          double nn = 0;
          for (int64_t k = 0; k < d; ++k) {
            const double v = norm == Norm::L2 ? gauss(gen) : unif(gen);
            u[k] = float(v);
            nn += v * v;
          }
          nn = std::sqrt(nn) + 1e-30;
          float* c = cand.f32() + b * d;
          for (int64_t k = 0; k < d; ++k) {
            // Probe clipped to the domain, and the direction taken as the clipped one (authors' code).
            const double p = std::clamp(double(s.current[size_t(k)]) + dl * u[k] / nn, lo, hi);
            c[k] = float(p);
            u[k] = float((p - s.current[size_t(k)]) / dl);
          }
        }
      }
      auto adv = oracle.is_adversarial(cand, owner);
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t jj = 0; jj < int64_t(g1 - g0); ++jj) {
        const int64_t i = act[g0 + size_t(jj)];
        HsjaRow& s = rows[size_t(i)];
        const int64_t b0 = offset[size_t(jj)], b1 = offset[size_t(jj) + 1];
        const double count = double(b1 - b0);
        double mean_f = 0;
        for (int64_t b = b0; b < b1; ++b) mean_f += (adv[size_t(b)] ? 1.0 : -1.0) / count;
        // Baseline (Eq. 16): subtract the mean of phi unless all probes agree (then +-mean u).
        std::vector<double> grad(size_t(d), 0.0);
        for (int64_t b = b0; b < b1; ++b) {
          const double f = adv[size_t(b)] ? 1.0 : -1.0;
          const double w = mean_f == 1.0 ? 1.0 : mean_f == -1.0 ? -1.0 : f - mean_f;
          const float* u = noise.data() + b * d;
          for (int64_t k = 0; k < d; ++k) grad[size_t(k)] += w * u[k] / count;
        }
        s.update.assign(size_t(d), 0.f);
        if (norm == Norm::L2) {
          double gn = 0;
          for (double v : grad) gn += v * v;
          gn = std::sqrt(gn);
          if (gn > 0)
            for (int64_t k = 0; k < d; ++k) s.update[size_t(k)] = float(grad[size_t(k)] / gn);
        } else {
          for (int64_t k = 0; k < d; ++k) s.update[size_t(k)] = float((grad[size_t(k)] > 0) - (grad[size_t(k)] < 0));
        }
      }
    }
    // 2. Geometric step search: xi = dist / sqrt(t), halved until x_t + xi v_t is adversarial.
    //    x_t itself is adversarial, so the halving ends; 64 halvings (2^-64) is x_t in float.
    {
      std::vector<double> eps(act.size());
      for (size_t j = 0; j < act.size(); ++j) eps[j] = rows[size_t(act[j])].dist / std::sqrt(double(t));
      std::vector<size_t> open;
      for (size_t j = 0; j < act.size(); ++j) open.push_back(j);
      for (int halving = 0; halving < 64 && !open.empty(); ++halving) {
        engine::Tensor cand = oracle.candidates(int64_t(open.size()));
        std::vector<int64_t> owner(open.size());
        for (size_t q = 0; q < open.size(); ++q) {
          const size_t j = open[q];
          const HsjaRow& s = rows[size_t(act[j])];
          owner[q] = act[j];
          float* c = cand.f32() + int64_t(q) * d;
          for (int64_t k = 0; k < d; ++k) c[k] = float(s.current[size_t(k)] + eps[j] * s.update[size_t(k)]);
        }
        auto adv = oracle.is_adversarial(cand, owner);  // clips the candidates to the domain
        std::vector<size_t> still;
        for (size_t q = 0; q < open.size(); ++q) {
          const size_t j = open[q];
          if (adv[q]) {
            rows[size_t(act[j])].current.assign(cand.f32() + int64_t(q) * d, cand.f32() + int64_t(q + 1) * d);
          } else {
            eps[j] /= 2;
            still.push_back(j);
          }
        }
        open.swap(still);
      }
    }
    // 3. Back to the boundary.
    binary_search(act, false);
  }
  return r;
}

}  // namespace mlaudit::robustness::detail
