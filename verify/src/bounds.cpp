// Bound propagation: IBP, CROWN/DeepPoly back-substitution, alpha-CROWN.
//
// Floating-point soundness. Everything is computed in double precision. Each
// computed bound is widened by an a-priori bound on the rounding error of the
// dot products that produced it (Higham, "Accuracy and Stability of Numerical
// Algorithms", Thm 3.1: |fl(sum) - sum| <= gamma_n * sum|terms|, gamma_n =
// n u / (1 - n u), u = 2^-53). We use 2 (n + 2) u, counting the bias add and
// the concretisation, times the sum of term magnitudes, which we track
// alongside every back-substitution (|Lambda| |W| |a|_max per layer). ReLU
// upper-relaxation slopes and intercepts are rounded up. So float error can
// only loosen a bound, never make a proof unsound.
#include "mlaudit/verify/bounds.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

namespace mlaudit::verify {
namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;
using ConstMap = Eigen::Map<const RowMat>;

constexpr double kUnit = 1.1102230246251565e-16;  // 2^-53

double gamma(int64_t n) { return 2.0 * double(n + 2) * kUnit; }

ConstMap weight_of(const AffineLayer& L) { return ConstMap(L.weight.data(), L.out, L.in); }
Eigen::Map<const Vec> bias_of(const AffineLayer& L) { return Eigen::Map<const Vec>(L.bias.data(), L.out); }

// Slope and intercept of the ReLU upper relaxation over [l, u] with l < 0 < u:
// relu(z) <= u (z - l) / (u - l)   (the chord; CROWN Sec. 3.2, DeepPoly Fig. 4),
// both rounded up so the line stays above the chord.
inline void upper_chord(double l, double u, double& slope, double& intercept) {
  slope = (u / (u - l)) * (1 + 8 * kUnit);
  intercept = (-slope * l) * (1 + 8 * kUnit);
}

// Adaptive lower slope (CROWN Sec. 3.2, DeepPoly Sec. 4.2): relu(z) >= alpha z,
// alpha = 1 when u > -l (smaller area), else 0.
inline double default_lower_slope(double l, double u) { return u > -l ? 1.0 : 0.0; }

// Bounds of a_k = relu(z_k) magnitudes: max(|lower|, |upper|) after the ReLU.
Vec activation_magnitude(const std::vector<double>& lo, const std::vector<double>& up) {
  Vec m(lo.size());
  for (size_t j = 0; j < lo.size(); ++j) m[Eigen::Index(j)] = std::max(0.0, up[j]);
  return m;
}

Vec box_magnitude(const InputBox& box) {
  Vec m(box.lower.size());
  for (size_t j = 0; j < box.lower.size(); ++j) m[Eigen::Index(j)] = std::max(std::fabs(box.lower[j]), std::fabs(box.upper[j]));
  return m;
}

// Apply split decisions to layer k's pre-activation bounds.
void apply_splits(const ReluSplits& splits, size_t k, std::vector<double>& lo, std::vector<double>& up) {
  if (k >= splits.size() || splits[k].empty()) return;
  for (size_t j = 0; j < lo.size(); ++j) {
    if (splits[k][j] > 0) lo[j] = std::max(lo[j], 0.0);
    else if (splits[k][j] < 0) up[j] = std::min(up[j], 0.0);
  }
}

// Result of back-substituting objective rows Lambda (coefficients on z_start)
// down to the input: lower bounds, input coefficients, constants.
struct Backsub {
  RowMat input_coef;   // [m, n0]
  Vec constant;        // [m]
  Vec slack;           // [m] rounding-error allowance
  Vec lower;           // [m] concretised lower bound (slack already subtracted)
};

// Back-substitution (CROWN Thm 3.2 / DeepPoly back-substitution, Sec. 4.3):
// objective Lambda z_s + c with z_s = W_s a_{s-1} + b_s; for each ReLU layer k
// below, each coefficient picks the lower relaxation (alpha z) when it is
// non-negative and the upper chord when negative; the affine layers substitute
// exactly; at the input, min over the box of Lambda x is taken per sign.
Backsub back_substitute(const Network& net, const InputBox& box, const LayerBounds& bounds, size_t start,
                        RowMat lambda, Vec constant, const ReluSlopes* slopes,
                        std::vector<std::vector<std::vector<double>>>* relu_coef = nullptr) {
  const Eigen::Index m = lambda.rows();
  Vec slack = Vec::Zero(m);
  Vec magnitude_const = constant.cwiseAbs();
  if (relu_coef) relu_coef->assign(size_t(m), std::vector<std::vector<double>>(net.layers.size() - 1));
  for (size_t kk = start + 1; kk-- > 0;) {
    const AffineLayer& L = net.layers[kk];
    // z_kk = W a + b: constant += Lambda b; Lambda <- Lambda W.
    Vec lb = lambda * bias_of(L);
    magnitude_const += lambda.cwiseAbs() * bias_of(L).cwiseAbs();
    constant += lb;
    // Rounding of Lambda W: gamma_in * |Lambda| |W| |a_{kk-1}|max.
    Vec amag = kk == 0 ? box_magnitude(box) : activation_magnitude(bounds.lower[kk - 1], bounds.upper[kk - 1]);
    Vec wa = weight_of(L).cwiseAbs() * amag;
    slack += gamma(L.in) * (lambda.cwiseAbs() * wa);
    lambda = lambda * weight_of(L);
    if (kk == 0) break;
    // ReLU of layer kk-1.
    const size_t r = kk - 1;
    const auto& lo = bounds.lower[r];
    const auto& up = bounds.upper[r];
    for (Eigen::Index j = 0; j < lambda.cols(); ++j) {
      double l = lo[size_t(j)], u = up[size_t(j)];
      if (relu_coef)
        for (Eigen::Index i = 0; i < m; ++i) (*relu_coef)[size_t(i)][r].push_back(lambda(i, j));
      if (l >= 0) continue;  // active: a = z
      if (u <= 0) {          // inactive: a = 0
        lambda.col(j).setZero();
        continue;
      }
      double s_up, t_up;
      upper_chord(l, u, s_up, t_up);
      double alpha = slopes ? (*slopes)[r][size_t(j)] : default_lower_slope(l, u);
      for (Eigen::Index i = 0; i < m; ++i) {
        double c = lambda(i, j);
        if (c >= 0) {
          lambda(i, j) = c * alpha;
        } else {
          lambda(i, j) = c * s_up;
          constant[i] += c * t_up;
          magnitude_const[i] += -c * t_up;
        }
      }
    }
  }
  // Concretise: min over the box of Lambda x is sum_j (c_j >= 0 ? c_j l_j : c_j u_j).
  Backsub out;
  out.lower.resize(m);
  for (Eigen::Index i = 0; i < m; ++i) {
    double v = constant[i], mag = magnitude_const[i];
    for (Eigen::Index j = 0; j < lambda.cols(); ++j) {
      double c = lambda(i, j);
      double x = c >= 0 ? box.lower[size_t(j)] : box.upper[size_t(j)];
      v += c * x;
      mag += std::fabs(c * x);
    }
    slack[i] += gamma(lambda.cols() + int64_t(net.layers.size()) * 4) * mag;
    out.lower[i] = v - slack[i];
  }
  out.input_coef = std::move(lambda);
  out.constant = std::move(constant);
  out.slack = std::move(slack);
  return out;
}

}  // namespace

LayerBounds interval_bounds(const Network& net, const InputBox& box, const ReluSplits& splits) {
  LayerBounds b;
  std::vector<double> lo = box.lower, up = box.upper;
  for (size_t k = 0; k < net.layers.size(); ++k) {
    const AffineLayer& L = net.layers[k];
    Eigen::Map<const Vec> l(lo.data(), Eigen::Index(lo.size())), u(up.data(), Eigen::Index(up.size()));
    // Midpoint-radius form: W [c - r, c + r] + b = [W c + b - |W| r, W c + b + |W| r].
    Vec c = 0.5 * (l + u), r = 0.5 * (u - l);
    auto W = weight_of(L);
    Vec mid = W * c + bias_of(L);
    Vec rad = W.cwiseAbs() * r;
    Vec err = gamma(L.in) * (W.cwiseAbs() * (c.cwiseAbs() + r) + bias_of(L).cwiseAbs() + rad);
    std::vector<double> nlo(static_cast<size_t>(L.out)), nup(static_cast<size_t>(L.out));
    for (int64_t i = 0; i < L.out; ++i) {
      nlo[size_t(i)] = mid[i] - rad[i] - err[i];
      nup[size_t(i)] = mid[i] + rad[i] + err[i];
    }
    if (k + 1 < net.layers.size()) apply_splits(splits, k, nlo, nup);
    b.lower.push_back(nlo);
    b.upper.push_back(nup);
    if (k + 1 < net.layers.size()) {
      lo.resize(nlo.size());
      up.resize(nup.size());
      for (size_t j = 0; j < nlo.size(); ++j) {
        lo[j] = std::max(0.0, nlo[j]);
        up[j] = std::max(0.0, nup[j]);
      }
    }
  }
  return b;
}

LayerBounds crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits, bool output_layer,
                         bool refine_stable, const LayerBounds* prior) {
  LayerBounds ibp = interval_bounds(net, box, splits);
  LayerBounds b;
  for (size_t k = 0; k < net.layers.size(); ++k) {
    const AffineLayer& L = net.layers[k];
    bool last = k + 1 == net.layers.size();
    std::vector<double> lo = ibp.lower[k], up = ibp.upper[k];
    if (prior && k < prior->lower.size())
      for (size_t j = 0; j < lo.size(); ++j) {
        lo[j] = std::max(lo[j], prior->lower[k][j]);
        up[j] = std::min(up[j], prior->upper[k][j]);
      }
    if (k > 0 && (!last || output_layer)) {
      // Rows [W; -W] on a_{k-1}: lower bounds of z_k and of -z_k. Skip neurons
      // IBP already proves stable (their relaxation cannot change).
      std::vector<int64_t> rows;
      for (int64_t j = 0; j < L.out; ++j)
        if (last || refine_stable || (lo[size_t(j)] < 0 && up[size_t(j)] > 0)) rows.push_back(j);
      if (!rows.empty()) {
        const Eigen::Index m = Eigen::Index(rows.size());
        RowMat lambda = RowMat::Zero(2 * m, L.out);
        for (Eigen::Index i = 0; i < m; ++i) {
          lambda(i, rows[size_t(i)]) = 1.0;
          lambda(m + i, rows[size_t(i)]) = -1.0;
        }
        Backsub bs = back_substitute(net, box, b, k, std::move(lambda), Vec::Zero(2 * m), nullptr);
        for (Eigen::Index i = 0; i < m; ++i) {
          size_t j = size_t(rows[size_t(i)]);
          lo[j] = std::max(lo[j], bs.lower[i]);
          up[j] = std::min(up[j], -bs.lower[m + i]);
        }
      }
    }
    if (!last) apply_splits(splits, k, lo, up);
    b.lower.push_back(std::move(lo));
    b.upper.push_back(std::move(up));
  }
  return b;
}


std::vector<ObjectiveBound> crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                            const std::vector<OutputConstraint>& objectives, const ReluSlopes* slopes,
                                            std::vector<std::vector<std::vector<double>>>* relu_coef) {
  const size_t last = net.layers.size() - 1;
  const Eigen::Index m = Eigen::Index(objectives.size());
  RowMat lambda(m, net.output_size());
  Vec c(m);
  for (Eigen::Index i = 0; i < m; ++i) {
    for (int64_t j = 0; j < net.output_size(); ++j) lambda(i, j) = objectives[size_t(i)].coef[size_t(j)];
    c[i] = objectives[size_t(i)].constant;
  }
  Backsub bs = back_substitute(net, box, bounds, last, std::move(lambda), std::move(c), slopes, relu_coef);
  std::vector<ObjectiveBound> out(static_cast<size_t>(m));
  for (Eigen::Index i = 0; i < m; ++i) {
    auto& o = out[size_t(i)];
    o.lower = bs.lower[i];
    o.constant = bs.constant[i] - bs.slack[i];
    o.input_coef.assign(bs.input_coef.row(i).data(), bs.input_coef.row(i).data() + bs.input_coef.cols());
  }
  return out;
}

ObjectiveBound alpha_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                     const OutputConstraint& objective, int iterations, double lr) {
  const size_t hidden = net.layers.size() - 1;
  ReluSlopes alpha(hidden);
  for (size_t k = 0; k < hidden; ++k)
    for (size_t j = 0; j < bounds.lower[k].size(); ++j)
      alpha[k].push_back(default_lower_slope(bounds.lower[k][j], bounds.upper[k][j]));
  ObjectiveBound best = crown_objective(net, box, bounds, {objective}, &alpha)[0];
  // Adam state (Kingma & Ba 2015), as alpha-CROWN uses for the slopes.
  ReluSlopes m1(hidden), m2(hidden);
  for (size_t k = 0; k < hidden; ++k) {
    m1[k].assign(alpha[k].size(), 0.0);
    m2[k].assign(alpha[k].size(), 0.0);
  }
  // Gradient of the bound f(alpha) (computed without rounding slack; the final
  // value is recomputed soundly). Forward = back-substitution for one row:
  //   mu_{L-1} = W_L^T c,  nu_k = s_k(alpha) .* mu_k,  mu_{k-1} = W_k^T nu_k,
  //   f = c.b_L + sum_k nu_k.b_k + sum_{k,j: mu<0, unstable} mu_kj t_kj + sum_j min(mu_{-1,j} l_j, mu_{-1,j} u_j).
  // Reverse mode: g_mu_{-1} = (mu>=0 ? l : u); g_nu_k = W_k g_mu_{k-1} + b_k;
  //   df/dalpha_kj = g_nu_kj * mu_kj when mu_kj >= 0 and unstable;
  //   g_mu_kj = g_nu_kj * s_kj + (mu_kj < 0 && unstable ? t_kj : 0).
  std::vector<Vec> mu(hidden + 1), s(hidden);
  for (int it = 1; it <= iterations; ++it) {
    Vec v = weight_of(net.layers[hidden]).transpose() *
            Eigen::Map<const Vec>(objective.coef.data(), Eigen::Index(objective.coef.size()));
    for (size_t kk = hidden; kk-- > 0;) {
      mu[kk + 1] = v;  // mu index shifted by one: mu[k+1] holds coefficients on a_k
      s[kk].resize(v.size());
      for (Eigen::Index j = 0; j < v.size(); ++j) {
        double l = bounds.lower[kk][size_t(j)], u = bounds.upper[kk][size_t(j)];
        double sj;
        if (l >= 0) sj = 1;
        else if (u <= 0) sj = 0;
        else if (v[j] >= 0) sj = alpha[kk][size_t(j)];
        else {
          double t;
          upper_chord(l, u, sj, t);
        }
        s[kk][j] = sj;
      }
      Vec nu = s[kk].cwiseProduct(v);
      v = weight_of(net.layers[kk]).transpose() * nu;
    }
    mu[0] = v;
    Vec g(v.size());
    for (Eigen::Index j = 0; j < v.size(); ++j) g[j] = v[j] >= 0 ? box.lower[size_t(j)] : box.upper[size_t(j)];
    for (size_t kk = 0; kk < hidden; ++kk) {
      Vec g_nu = weight_of(net.layers[kk]) * g + bias_of(net.layers[kk]);
      const Vec& muk = mu[kk + 1];
      g.resize(muk.size());
      for (Eigen::Index j = 0; j < muk.size(); ++j) {
        double l = bounds.lower[kk][size_t(j)], u = bounds.upper[kk][size_t(j)];
        bool unstable = l < 0 && u > 0;
        double grad_alpha = (unstable && muk[j] >= 0) ? g_nu[j] * muk[j] : 0.0;
        double t = 0, sl = 0;
        if (unstable && muk[j] < 0) upper_chord(l, u, sl, t);
        g[j] = g_nu[j] * s[kk][j] + t;
        if (unstable) {
          // Adam ascent step, projected onto [0, 1].
          double& a = alpha[kk][size_t(j)];
          double& p = m1[kk][size_t(j)];
          double& q = m2[kk][size_t(j)];
          p = 0.9 * p + 0.1 * grad_alpha;
          q = 0.999 * q + 0.001 * grad_alpha * grad_alpha;
          double ph = p / (1 - std::pow(0.9, it)), qh = q / (1 - std::pow(0.999, it));
          a = std::clamp(a + lr * ph / (std::sqrt(qh) + 1e-8), 0.0, 1.0);
        }
      }
    }
    ObjectiveBound cur = crown_objective(net, box, bounds, {objective}, &alpha)[0];
    if (cur.lower > best.lower) best = std::move(cur);
  }
  return best;
}

int64_t unstable_relu_count(const Network& net, const LayerBounds& bounds) {
  int64_t n = 0;
  for (size_t k = 0; k + 1 < net.layers.size(); ++k)
    for (size_t j = 0; j < bounds.lower[k].size(); ++j)
      if (bounds.lower[k][j] < 0 && bounds.upper[k][j] > 0) ++n;
  return n;
}

}  // namespace mlaudit::verify
