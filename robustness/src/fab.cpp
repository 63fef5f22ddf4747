// FAB, the fast adaptive boundary attack (Croce & Hein, "Minimally distorted adversarial
// examples with a fast adaptive boundary attack", ICML 2020), untargeted and targeted
// (FAB-T, the third stage of AutoAttack "standard"), Linf and L2.
//
// Each iteration linearises the decision boundary at the current iterate x1 (Sec. 3.1):
//   f_k(z) - f_y(z) ~ df + dg.(z - x1),  hyperplane {z : dg.z = dg.x1 - df},
// projects both x1 and the original x0 onto that hyperplane intersected with the input
// box (Sec. 3.2, the box-constrained projections of fab_projections.py), and steps
// (Eq. 8, "biased gradient step"):
//   x1 <- clip((1 - a)(x1 + eta d1) + a (x0 + eta d2)),  a = min(||d1|| / (||d1|| + ||d2||), alpha_max),
// then, when x1 is adversarial, records it if it is the smallest so far and moves back
// towards x0 (Eq. 9): x1 <- x0 + beta (x1 - x0). Defaults alpha_max 0.1, eta 1.05, beta 0.9,
// 100 iterations, as in the paper and the reference implementation (fra31/auto-attack, fab_pt.py).
// The projections below follow the reference code line by line (including its 1e-8 / 1e12
// guards), in double precision.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common.h"

namespace mlaudit::robustness::detail {
namespace {

constexpr double kAlphaMax = 0.1;  // max weight of the step from x0 (Sec. 3.3)
constexpr double kEta = 1.05;      // overshoot of the projection (Sec. 3.3)
constexpr double kBeta = 0.9;      // backward step after a success (Sec. 3.3)

// Minimal-Linf displacement d with w.(t + d) = b and t + d in [0,1]^D (reference
// projection_linf). When the hyperplane cannot be reached inside the box, d moves every
// coordinate to the box corner closest to it.
void projection_linf(const double* t, const double* w_in, double b_in, int64_t D, double* d) {
  std::vector<double> w(w_in, w_in + D), a(static_cast<size_t>(D)), p(static_cast<size_t>(D)), s(static_cast<size_t>(D)), sb(static_cast<size_t>(D));
  std::vector<int64_t> indp(static_cast<size_t>(D));
  double wt = 0;
  for (int64_t i = 0; i < D; ++i) wt += w[size_t(i)] * t[i];
  // Orient the hyperplane so that t lies on its non-negative side.
  const double sign = (wt - b_in >= 0) ? 1.0 : -1.0;
  double b = b_in * sign;
  wt *= sign;
  double b0 = 0;
  for (int64_t i = 0; i < D; ++i) {
    auto k = size_t(i);
    w[k] *= sign;
    a[k] = w[k] < 0 ? 1.0 : 0.0;             // corner that lowers w.z
    d[i] = w[k] != 0 ? a[k] - t[i] : 0.0;    // full move to that corner
    p[k] = a[k] - t[i] * (2 * a[k] - 1);     // room towards the corner, |a - t|
    b0 += w[k] * d[i];
  }
  b -= wt;  // required change of w.z (<= 0)
  std::iota(indp.begin(), indp.end(), int64_t(0));
  std::sort(indp.begin(), indp.end(), [&](int64_t i, int64_t j) { return p[size_t(i)] < p[size_t(j)] || (p[size_t(i)] == p[size_t(j)] && i < j); });
  // Coordinates by decreasing room: capping the first k+1 at lambda changes w.z by sb[k] - s[k] lambda.
  double cs = 0, csb = b0;
  for (int64_t k = 0; k < D; ++k) {
    const auto i = size_t(indp[size_t(D - 1 - k)]);
    cs += std::fabs(w[i]);
    csb += -w[i] * d[i];
    s[size_t(k)] = cs;
    sb[size_t(k)] = csb;
  }
  const double b2 = sb[size_t(D - 1)] - s[size_t(D - 1)] * p[size_t(indp[0])];
  const bool c_l = b - b2 > 0;                 // reached before any coordinate saturates
  const bool c2 = (b - b0 > 0) && !c_l;        // reached after some saturate
  if (c_l) {
    double lambda = std::max((b - sb[size_t(D - 1)]) / (-s[size_t(D - 1)]), 0.0);
    if (std::isnan(lambda)) lambda = 0;
    for (int64_t i = 0; i < D; ++i) d[i] = (2 * a[size_t(i)] - 1) * lambda;
  } else if (c2) {
    double lb = 0, ub = double(D - 1);
    const int nitermax = int(std::ceil(std::log2(double(D))));
    for (int it = 0; it < nitermax; ++it) {
      const double mid = std::floor((lb + ub) / 2);
      const auto c = size_t(mid);
      const auto idx = size_t(indp[size_t(D - 1) - c]);
      const double v = sb[c] - s[c] * p[idx];
      if (b - v > 0) lb = mid;
      else ub = mid;
    }
    const auto l = size_t(lb);
    double lambda = std::max((b - sb[l]) / (-s[l]), 0.0);
    if (std::isnan(lambda)) lambda = 0;
    for (int64_t i = 0; i < D; ++i) {
      auto k = size_t(i);
      d[i] = a[k] > 0 ? std::min(lambda, d[i]) : std::max(-lambda, d[i]);
    }
  }
  for (int64_t i = 0; i < D; ++i)
    if (w[size_t(i)] == 0) d[i] = 0;
}

// Minimal-L2 displacement d with w.(t + d) = b and t + d in [0,1]^D (reference projection_l2):
// d(lambda) = -lambda w with each coordinate frozen once it reaches the box (at lambda = r_i).
void projection_l2(const double* t, const double* w_in, double b_in, int64_t D, double* d) {
  constexpr double kBig = 1e12, kTiny = 1e-8;
  std::vector<double> w(w_in, w_in + D), r(static_cast<size_t>(D)), rs(static_cast<size_t>(D)), rs2(static_cast<size_t>(D)), ws(static_cast<size_t>(D)), s(static_cast<size_t>(D) + 1);
  std::vector<int64_t> indr(static_cast<size_t>(D));
  double c = -b_in;
  for (int64_t i = 0; i < D; ++i) c += w[size_t(i)] * t[i];
  const double sg = c >= 0 ? 1.0 : -1.0;
  c *= sg;
  for (int64_t i = 0; i < D; ++i) {
    auto k = size_t(i);
    w[k] *= sg;
    if (std::fabs(w[k]) < kTiny) {
      r[k] = kBig;
    } else {
      r[k] = std::clamp(std::max(t[i] / w[k], (t[i] - 1) / w[k]), -kBig, kBig);
      if (r[k] == -kBig) r[k] = kBig;
    }
  }
  std::iota(indr.begin(), indr.end(), int64_t(0));
  std::sort(indr.begin(), indr.end(), [&](int64_t i, int64_t j) { return r[size_t(i)] < r[size_t(j)] || (r[size_t(i)] == r[size_t(j)] && i < j); });
  double w5 = 0;
  for (int64_t k = 0; k < D; ++k) {
    rs[size_t(k)] = r[size_t(indr[size_t(k)])];
    rs2[size_t(k)] = k + 1 < D ? r[size_t(indr[size_t(k + 1)])] : 0.0;
    w5 += w[size_t(indr[size_t(k)])] * w[size_t(indr[size_t(k)])];
  }
  double cum = 0;
  for (int64_t k = 0; k < D; ++k) {
    auto q = size_t(k);
    if (rs[q] == kBig) rs[q] = 0;
    if (rs2[q] == kBig) rs2[q] = 0;
    cum += w[size_t(indr[q])] * w[size_t(indr[q])];
    ws[q] = w5 - cum;  // weight of the coordinates still free after the k+1 smallest r saturate
  }
  double dw = 0;
  for (int64_t i = 0; i < D; ++i) {
    auto k = size_t(i);
    d[i] = std::fabs(w[k]) > kTiny ? -(r[k] * w[k]) : 0.0;
    dw += d[i] * w[k];
  }
  // s[k] + c: signed distance of t + d(rs[k]) to the hyperplane, piecewise linear in lambda.
  s[0] = -w5 * rs[0];
  double acc = 0;
  for (int64_t k = 0; k < D; ++k) {
    acc += (-rs2[size_t(k)] + rs[size_t(k)]) * ws[size_t(k)];
    s[size_t(k) + 1] = acc - w5 * rs[0];
  }
  const bool c4 = s[0] + c < 0;   // reached before any coordinate saturates
  const bool c3 = dw + c > 0;     // not reachable inside the box: keep the saturated move
  if (c4) {
    const double alpha = c / w5;
    for (int64_t i = 0; i < D; ++i) d[i] = -alpha * w[size_t(i)];
  } else if (!c3) {
    double lb = 0, ub = double(D - 1);
    const int nitermax = int(std::ceil(std::log2(double(D))));
    for (int it = 0; it < nitermax; ++it) {
      const double mid = std::floor((lb + ub) / 2);
      if (s[size_t(mid)] + c > 0) lb = mid;
      else ub = mid;
    }
    const auto l = size_t(lb);
    const double alpha = ws[l] == 0 ? 0.0 : (s[l] + c) / ws[l] + rs[l];
    for (int64_t i = 0; i < D; ++i)
      if (!(alpha > r[size_t(i)])) d[i] = -alpha * w[size_t(i)];
  }
  for (int64_t i = 0; i < D; ++i)
    if (!(std::fabs(w[size_t(i)]) > kTiny)) d[i] = 0;
}

// Projection onto {w.z = b} within the box [lo, hi]^D: the reference projections assume
// [0,1]; the affine change z = lo + (hi - lo) u scales both norms uniformly, so the
// minimiser maps back exactly (w_u = (hi - lo) w, b_u = b - lo sum(w), d = (hi - lo) d_u).
void project_hyperplane(const float* t, const double* w, double b, int64_t D, Norm norm, double lo, double hi, double* d) {
  const double span = hi - lo;
  std::vector<double> tu(static_cast<size_t>(D)), wu(static_cast<size_t>(D));
  double bu = b;
  for (int64_t i = 0; i < D; ++i) {
    tu[size_t(i)] = (double(t[i]) - lo) / span;
    wu[size_t(i)] = w[i] * span;
    bu -= lo * w[i];
  }
  if (norm == Norm::Linf) projection_linf(tu.data(), wu.data(), bu, D, d);
  else projection_l2(tu.data(), wu.data(), bu, D, d);
  for (int64_t i = 0; i < D; ++i) d[i] *= span;
}

double norm_of(const double* v, int64_t n, Norm norm) {
  double r = 0;
  if (norm == Norm::Linf) {
    for (int64_t i = 0; i < n; ++i) r = std::max(r, std::fabs(v[i]));
    return r;
  }
  for (int64_t i = 0; i < n; ++i) r += v[i] * v[i];
  return std::sqrt(r);
}

// Dual norm of the gradient: the Linf distance to a hyperplane is |f| / ||w||_1, the L2 one |f| / ||w||_2.
double dual_norm(const float* v, int64_t n, Norm norm) {
  double r = 0;
  if (norm == Norm::Linf) {
    for (int64_t i = 0; i < n; ++i) r += std::fabs(double(v[i]));
    return r;
  }
  for (int64_t i = 0; i < n; ++i) r += double(v[i]) * v[i];
  return std::sqrt(r);
}

// One FAB run (reference attack_single_run) on every row of x0 for n_iter iterations.
// `target` non-null: targeted version (one hyperplane f_t - f_y per row). Fills best_adv /
// best_norm (infinity when no adversarial iterate was met) and the call counters.
void fab_single_run(const engine::Model& m, const engine::Tensor& x0, const std::vector<int64_t>& y,
                    const std::vector<int64_t>* target, const AttackConfig& cfg, bool random_start, int n_iter,
                    RowRngs& rng, engine::Tensor& best_adv, std::vector<double>& best_norm,
                    std::vector<int64_t>& gradient_calls, std::vector<int64_t>& queries) {
  const int64_t bs = x0.dim(0), D = sample_dim(x0);
  const double lo = cfg.clip_min, hi = cfg.clip_max;
  best_adv = x0.clone();
  best_norm.assign(size_t(bs), std::numeric_limits<double>::infinity());
  engine::Tensor x1 = x0.clone();
  if (random_start) {
    // Reference: x1 = x0 + 0.5 * min(res, eps) * t / ||t||, t uniform in [-1,1]^D (Linf) or Gaussian (L2).
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::normal_distribution<double> g(0.0, 1.0);
    std::vector<double> t(static_cast<size_t>(D));
    for (int64_t i = 0; i < bs; ++i) {
      for (auto& v : t) v = cfg.norm == Norm::Linf ? u(rng[size_t(i)]) : g(rng[size_t(i)]);
      const double tn = norm_of(t.data(), D, cfg.norm) + 1e-300;
      float* xi = x1.f32() + i * D;
      for (int64_t k = 0; k < D; ++k) xi[k] = float(std::clamp(double(xi[k]) + cfg.eps * t[size_t(k)] / tn * 0.5, lo, hi));
    }
  }
  const int64_t classes = m.forward(x0.slice_rows(0, 1)).dim(1);
  std::vector<double> w(size_t(bs * D)), b(static_cast<size_t>(bs)), best_dist(static_cast<size_t>(bs));
  std::vector<double> d1(size_t(bs * D)), d2(size_t(bs * D));
  for (int it = 0; it < n_iter; ++it) {
    // Linearisation: df (logit difference) and dg (its input gradient) per row.
    engine::Tensor logits;
    // Seed of d(f_o - f_y)/dx with o = other(i) per row (rows where o == y get no seed).
    auto diff_seed = [&](auto other) {
      return [&, other](const engine::Tensor& z) {
        engine::Tensor s(z.shape());
        const int64_t c = z.dim(1);
        for (int64_t i = 0; i < bs; ++i) {
          const int64_t o = other(i);
          if (o == y[size_t(i)]) continue;
          s.f32()[i * c + o] += 1.f;
          s.f32()[i * c + y[size_t(i)]] -= 1.f;
        }
        return s;
      };
    };
    // Row i's hyperplane w.x = b of the linearised boundary: w = dg, b = -df + dg.x1.
    auto set_hyperplane = [&](int64_t i, const float* gi, double df) {
      double wx = 0;
      for (int64_t q = 0; q < D; ++q) {
        w[size_t(i * D + q)] = gi[q];
        wx += double(gi[q]) * x1.f32()[i * D + q];
      }
      b[size_t(i)] = -df + wx;
    };
    if (target) {
      // Targeted: the single hyperplane f_t - f_y = 0 (reference get_diff_logits_grads_batch_targeted).
      engine::Tensor g = m.input_gradient(x1, diff_seed([&](int64_t i) { return (*target)[size_t(i)]; }), &logits);
      const int64_t c = logits.dim(1);
      for (int64_t i = 0; i < bs; ++i) {
        gradient_calls[size_t(i)] += 1;
        const double df = double(logits.f32()[i * c + (*target)[size_t(i)]]) - logits.f32()[i * c + y[size_t(i)]];
        set_hyperplane(i, g.f32() + i * D, df);
      }
    } else {
      // Untargeted: the closest linearised boundary over all classes k != y, distance
      // |f_k - f_y| / ||grad f_k - grad f_y||_dual (reference get_diff_logits_grads_batch).
      std::fill(best_dist.begin(), best_dist.end(), std::numeric_limits<double>::infinity());
      for (int64_t k = 0; k < classes; ++k) {
        engine::Tensor g = m.input_gradient(x1, diff_seed([k](int64_t) { return k; }), &logits);
        const int64_t c = logits.dim(1);
        for (int64_t i = 0; i < bs; ++i) {
          gradient_calls[size_t(i)] += 1;
          if (k == y[size_t(i)]) continue;
          const float* gi = g.f32() + i * D;
          const double df = double(logits.f32()[i * c + k]) - logits.f32()[i * c + y[size_t(i)]];
          const double dist = std::fabs(df) / (1e-12 + dual_norm(gi, D, cfg.norm));
          if (dist < best_dist[size_t(i)]) {
            best_dist[size_t(i)] = dist;
            set_hyperplane(i, gi, df);
          }
        }
      }
    }
    // Projections of x1 and x0 and the biased step (Eq. 8), row by row.
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < bs; ++i) {
      float* xi = x1.f32() + i * D;
      const float* oi = x0.f32() + i * D;
      double* p1 = d1.data() + i * D;
      double* p2 = d2.data() + i * D;
      project_hyperplane(xi, w.data() + i * D, b[size_t(i)], D, cfg.norm, lo, hi, p1);
      project_hyperplane(oi, w.data() + i * D, b[size_t(i)], D, cfg.norm, lo, hi, p2);
      const double a1 = std::max(norm_of(p1, D, cfg.norm), 1e-8), a2 = std::max(norm_of(p2, D, cfg.norm), 1e-8);
      const double alpha = std::min(std::max(a1 / (a1 + a2), 0.0), kAlphaMax);
      for (int64_t k = 0; k < D; ++k) {
        const double v = (double(xi[k]) + kEta * p1[k]) * (1 - alpha) + (double(oi[k]) + p2[k] * kEta) * alpha;
        xi[k] = float(std::clamp(v, lo, hi));
      }
    }
    // Keep the smallest adversarial iterate, then step back towards x0 (Eq. 9).
    engine::Tensor z = m.forward(x1);
    for (int64_t i = 0; i < bs; ++i) {
      queries[size_t(i)] += 1;
      if (row_argmax(z, i) == y[size_t(i)]) continue;
      float* xi = x1.f32() + i * D;
      const float* oi = x0.f32() + i * D;
      const double t = distance(xi, oi, D, cfg.norm);
      if (t < best_norm[size_t(i)]) {
        best_norm[size_t(i)] = t;
        std::copy_n(xi, D, best_adv.f32() + i * D);
      }
      for (int64_t k = 0; k < D; ++k) xi[k] = float(double(oi[k]) + (double(xi[k]) - oi[k]) * kBeta);
    }
  }
}

// Reference perturb(): restarts (random start after the first) and, targeted, the targets
// ranked 2..n_target_classes+1 by the clean logits; each run only on rows not yet broken
// within eps, a row counting as broken when FAB's point is misclassified (fresh forward
// pass) and ||adv - x|| <= eps.
SubsetResult fab_attack(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                        const AttackConfig& cfg, RowRngs& rng, bool targeted) {
  SubsetResult r = make_subset_result(x);
  const int64_t n = x.dim(0), d = sample_dim(x);
  if (n == 0) return r;
  const int n_iter = cfg.steps > 0 ? cfg.steps : 100;
  engine::Tensor clean = m.forward(x);
  const int64_t classes = clean.dim(1);
  for (int64_t i = 0; i < n; ++i) r.queries[size_t(i)] += 1;
  const int n_targets = targeted ? int(std::min<int64_t>(cfg.n_target_classes, classes - 1)) : 1;
  for (int tc = 0; tc < n_targets; ++tc) {
    for (int restart = 0; restart < cfg.restarts; ++restart) {
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < n; ++i)
        if (!r.found[size_t(i)]) rows.push_back(i);
      if (rows.empty()) return r;
      engine::Tensor xs = x.gather_rows(rows);
      std::vector<int64_t> ys, ts;
      for (auto i : rows) {
        ys.push_back(y[size_t(i)]);
        if (targeted) {
          // Target: the (tc+2)-th largest clean logit (reference: sort(...)[1][:, -target_class]).
          const float* z = clean.f32() + i * classes;
          std::vector<int64_t> order(static_cast<size_t>(classes));
          std::iota(order.begin(), order.end(), int64_t(0));
          std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return z[a] > z[b]; });
          ts.push_back(order[size_t(tc + 1)]);
        }
      }
      std::vector<int64_t> gc(rows.size(), 0), qc(rows.size(), 0);
      engine::Tensor adv;
      std::vector<double> norms;
      RowRngs rows_rng = rng.subset(rows);
      fab_single_run(m, xs, ys, targeted ? &ts : nullptr, cfg, restart > 0, n_iter, rows_rng, adv, norms, gc, qc);
      engine::Tensor z = m.forward(adv);
      for (size_t k = 0; k < rows.size(); ++k) {
        const size_t i = size_t(rows[k]);
        r.gradient_calls[i] += gc[k];
        r.queries[i] += qc[k] + 1;
        const bool broken = row_argmax(z, int64_t(k)) != ys[k] &&
                            distance(adv.f32() + int64_t(k) * d, xs.f32() + int64_t(k) * d, d, cfg.norm) <= cfg.eps;
        if (!broken) continue;
        r.found[i] = 1;
        std::copy_n(adv.f32() + int64_t(k) * d, d, r.adversarial.f32() + int64_t(i) * d);
      }
    }
  }
  return r;
}

}  // namespace

SubsetResult fab(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                 const AttackConfig& cfg, RowRngs& rng) {
  return fab_attack(m, x, y, cfg, rng, false);
}

SubsetResult fab_targeted(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                          const AttackConfig& cfg, RowRngs& rng) {
  return fab_attack(m, x, y, cfg, rng, true);
}

}  // namespace mlaudit::robustness::detail
