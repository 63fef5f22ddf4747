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
//
// Max pooling (after a ReLU) is relaxed as in DeepPoly (Singh et al., POPL
// 2019, Sec. 5, "Maxpool") and auto_LiRPA's BoundMaxPool (Xu et al., NeurIPS
// 2020): with r_j = relu(z_j) in [rl_j, ru_j] over a window and j* the input
// with the largest lower bound (first on ties),
//   lower:  max_j r_j >= r_{j*}                       (always);
//   upper:  max_j r_j <= r_{j*}  when rl_{j*} >= max_{j != j*} ru_j (then the max is exactly r_{j*}),
//           max_j r_j <= max_j ru_j                    otherwise (a constant).
// Its interval bounds are [max_j rl_j, max_j ru_j].
#include "mlaudit/verify/bounds.h"

#include "conv_products.h"
#include "gpu_products.h"

#include <Eigen/Dense>
#include <Eigen/Sparse>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

namespace mlaudit::verify {
namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXd;
using ConstMap = Eigen::Map<const RowMat>;
using SparseMap = Eigen::Map<const Eigen::SparseMatrix<double, Eigen::RowMajor, int>>;

constexpr double kUnit = 1.1102230246251565e-16;  // 2^-53

double gamma(int64_t n) { return 2.0 * double(n + 2) * kUnit; }

ConstMap weight_of(const AffineLayer& L) { return ConstMap(L.weight.data(), L.out, L.in); }
SparseMap sparse_of(const AffineLayer& L) {
  return SparseMap(L.out, L.in, Eigen::Index(L.csr_val.size()), L.csr_row.data(), L.csr_col.data(), L.csr_val.data());
}
Eigen::Map<const Vec> bias_of(const AffineLayer& L) { return Eigen::Map<const Vec>(L.bias.data(), L.out); }

// W x, |W| x and Lambda W, on the compressed copy when the layer has one. Lambda W (and G W^T
// below) go to the GPU when the Network asks for it and the product is large (gpu_products.h;
// why the rounding allowance gamma(max(in, out)) |Lambda| |W| |a| still covers it:
// gpu_products.cpp). W x and |W| x are matrix-vector products and stay on the CPU.
// A layer that is exactly a convolution (L.conv) runs them as GEMMs over im2col columns
// (conv_products.h: the same sums, so the same allowances).
Vec conv_mul(const AffineLayer& L, const Vec& x, bool absolute) {
  Vec y(L.out);
  detail::layer_conv_forward(L, x.data(), 1, y.data(), absolute);
  return y;
}
Vec mul(const AffineLayer& L, const Vec& x) {
  if (L.conv) return conv_mul(L, x, false);
  return L.sparse() ? Vec(sparse_of(L) * x) : Vec(weight_of(L) * x);
}
Vec abs_mul(const AffineLayer& L, const Vec& x) {
  if (L.conv) return conv_mul(L, x, true);
  return L.sparse() ? Vec(sparse_of(L).cwiseAbs() * x) : Vec(weight_of(L).cwiseAbs() * x);
}
RowMat left_mul(const RowMat& lambda, const AffineLayer& L) {
  if (detail::ProductBackend* device = detail::current_products(); device && lambda.rows() > 0) {
    RowMat out(lambda.rows(), L.in);
    if (device->left_mul(lambda.data(), lambda.rows(), L, out.data())) return out;
  }
  // CROWN's intermediate bounds start from unit rows that stay mostly zero for a few layers: the
  // compressed rows skip the zeros, the GEMM would not (it pays above about 1 non-zero in 10).
  if (L.conv && (!L.sparse() || 10 * (lambda.array() != 0).count() > lambda.size())) {
    RowMat out(lambda.rows(), L.in);
    detail::layer_conv_transpose(L, lambda.data(), lambda.rows(), out.data());
    return out;
  }
  if (!L.sparse()) return lambda * weight_of(L);
  // Row i of Lambda W = sum_k Lambda(i, k) W(k, :), over the non-zeros of W.
  RowMat out = RowMat::Zero(lambda.rows(), L.in);
  for (Eigen::Index i = 0; i < lambda.rows(); ++i) {
    double* dst = out.row(i).data();
    for (int64_t k = 0; k < L.out; ++k) {
      double c = lambda(i, k);
      if (c == 0) continue;
      for (int p = L.csr_row[size_t(k)]; p < L.csr_row[size_t(k + 1)]; ++p) dst[L.csr_col[size_t(p)]] += c * L.csr_val[size_t(p)];
    }
  }
  return out;
}

// The max-pool relaxation of one pooled layer (see the header comment).
struct PoolRelaxation {
  std::vector<int64_t> arg;    // j*: the window input with the largest ReLU lower bound
  std::vector<char> exact;     // rl_{j*} >= max_{j != j*} ru_j: the max equals r_{j*}
  std::vector<double> upper;   // max_j ru_j (the constant upper bound otherwise)
};

PoolRelaxation pool_relaxation(const MaxPool& mp, const std::vector<double>& lo, const std::vector<double>& up) {
  PoolRelaxation pr;
  const size_t P = mp.windows.size();
  pr.arg.resize(P);
  pr.exact.resize(P);
  pr.upper.resize(P);
  for (size_t i = 0; i < P; ++i) {
    const auto& w = mp.windows[i];
    int64_t best = w[0];
    double best_l = std::max(0.0, lo[size_t(w[0])]);
    for (int64_t j : w)
      if (std::max(0.0, lo[size_t(j)]) > best_l) {
        best_l = std::max(0.0, lo[size_t(j)]);
        best = j;
      }
    double other_u = -std::numeric_limits<double>::infinity(), max_u = 0;
    for (int64_t j : w) {
      double ru = std::max(0.0, up[size_t(j)]);
      max_u = std::max(max_u, ru);
      if (j != best) other_u = std::max(other_u, ru);
    }
    pr.arg[i] = best;
    pr.exact[i] = best_l >= other_u;
    pr.upper[i] = max_u;
  }
  return pr;
}

// Interval bounds of a_k = pool_k(relu(z_k)) from z_k's bounds (exact: max(0, .) and max are monotone).
void activation_bounds(const Network& net, size_t k, const std::vector<double>& zlo, const std::vector<double>& zup,
                       std::vector<double>& alo, std::vector<double>& aup) {
  std::vector<double> rlo(zlo.size()), rup(zup.size());
  for (size_t j = 0; j < zlo.size(); ++j) {
    rlo[j] = std::max(0.0, zlo[j]);
    rup[j] = std::max(0.0, zup[j]);
  }
  if (const MaxPool* mp = net.pool(k)) {
    alo = mp->apply(rlo);
    aup = mp->apply(rup);
  } else {
    alo = std::move(rlo);
    aup = std::move(rup);
  }
}

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

// Bounds of |a_k| for a_k = pool_k(relu(z_k)): the upper bound after the ReLU (and the max).
Vec activation_magnitude(const Network& net, size_t k, const std::vector<double>& up) {
  std::vector<double> r(up.size());
  for (size_t j = 0; j < up.size(); ++j) r[j] = std::max(0.0, up[j]);
  if (const MaxPool* mp = net.pool(k)) r = mp->apply(r);
  Vec m(Eigen::Index(r.size()));
  for (size_t j = 0; j < r.size(); ++j) m[Eigen::Index(j)] = r[j];
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

// Rows of layer k that are >= 0 by construction (AffineLayer::nonneg): lower bound at least 0.
void apply_known_signs(const Network& net, size_t k, std::vector<double>& lo) {
  const std::vector<char>& nonneg = net.layers[k].nonneg;
  for (size_t j = 0; j < nonneg.size() && j < lo.size(); ++j)
    if (nonneg[j]) lo[j] = std::max(lo[j], 0.0);
}

}  // namespace

void apply_splits(const ReluSplits& splits, LayerBounds& bounds) {
  for (size_t k = 0; k < splits.size() && k + 1 < bounds.lower.size(); ++k)
    apply_splits(splits, k, bounds.lower[k], bounds.upper[k]);
}

namespace {

// Result of back-substituting objective rows Lambda (coefficients on z_start)
// down to the input: lower bounds, input coefficients, constants.
struct Backsub {
  RowMat input_coef;   // [m, n0]
  Vec constant;        // [m]
  Vec slack;           // [m] rounding-error allowance
  Vec lower;           // [m] concretised lower bound (slack already subtracted)

  /// Row i as an ObjectiveBound (the slack taken off the constant).
  ObjectiveBound row(Eigen::Index i) const {
    ObjectiveBound o;
    o.lower = lower[i];
    o.constant = constant[i] - slack[i];
    o.input_coef.assign(input_coef.row(i).data(), input_coef.row(i).data() + input_coef.cols());
    return o;
  }
  /// Replace `o` by row i when that is tighter.
  void keep_tighter(ObjectiveBound& o, Eigen::Index i) const {
    if (lower[i] > o.lower) o = row(i);
  }
};

// Back-substitution (CROWN Thm 3.2 / DeepPoly back-substitution, Sec. 4.3):
// objective Lambda z_s + c with z_s = W_s a_{s-1} + b_s; for each ReLU layer k
// below, each coefficient picks the lower relaxation (alpha z) when it is
// non-negative and the upper chord when negative; the affine layers substitute
// exactly; at the input, min over the box of Lambda x is taken per sign.
// `row_slopes` (alpha-CROWN with one slope set per row) overrides `slopes`.
// `splits` + `row_betas` (beta-CROWN, one multiplier set per row): the Lagrangian term
// -beta_j s_j z_j of each split neuron's constraint s_j z_j >= 0 joins the row's coefficient on z_j
// (beta >= 0, so on the split region the bound can only decrease: still a lower bound there).
Backsub back_substitute(const Network& net, const InputBox& box, const LayerBounds& bounds, size_t start,
                        RowMat lambda, Vec constant, const ReluSlopes* slopes,
                        std::vector<std::vector<std::vector<double>>>* relu_coef = nullptr,
                        const std::vector<RowMat>* row_slopes = nullptr, const ReluSplits* splits = nullptr,
                        const std::vector<RowMat>* row_betas = nullptr) {
  const detail::ProductScope products(net);  // GPU products when net.product_device asks (gpu_products.h)
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
    // Rounding of Lambda W: each entry sums at most L.out products, so
    // gamma(max(in, out)) * |Lambda| |W| |a_{kk-1}|max (any summation order; gpu_products.cpp).
    Vec amag = kk == 0 ? box_magnitude(box) : activation_magnitude(net, kk - 1, bounds.upper[kk - 1]);
    Vec wa = abs_mul(L, amag);
    slack += gamma(std::max(L.in, L.out)) * (lambda.cwiseAbs() * wa);
    lambda = left_mul(lambda, L);
    if (kk == 0) break;
    const size_t r = kk - 1;
    const auto& lo = bounds.lower[r];
    const auto& up = bounds.upper[r];
    if (const MaxPool* mp = net.pool(r)) {
      // Max pool of layer kk-1 (header comment): a coefficient c on max_j r_j
      // moves to r_{j*} when the max is exact or c >= 0 (lower bound r_{j*});
      // otherwise c max_j ru_j joins the constant. Overlapping windows add
      // coefficients; each addition's rounding (<= u |c|) times |r_{j*}| <= ru_{j*}
      // goes into the slack.
      PoolRelaxation pr = pool_relaxation(*mp, lo, up);
      RowMat unpooled = RowMat::Zero(m, mp->in);
      for (size_t i = 0; i < pr.arg.size(); ++i) {
        const auto j = Eigen::Index(pr.arg[i]);
        const double ru = std::max(0.0, up[size_t(j)]);
        for (Eigen::Index row = 0; row < m; ++row) {
          double c = lambda(row, Eigen::Index(i));
          if (c == 0) continue;
          if (pr.exact[i] || c >= 0) {
            unpooled(row, j) += c;
            slack[row] += kUnit * std::fabs(c) * ru;
          } else {
            constant[row] += c * pr.upper[i];
            magnitude_const[row] += -c * pr.upper[i];
          }
        }
      }
      lambda = std::move(unpooled);
    }
    // ReLU of layer kk-1.
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
          lambda(i, j) = c * (row_slopes ? (*row_slopes)[r](i, j) : alpha);
        } else {
          lambda(i, j) = c * s_up;
          constant[i] += c * t_up;
          magnitude_const[i] += -c * t_up;
        }
      }
    }
    if (splits && row_betas && r < splits->size() && !(*splits)[r].empty()) {
      // Split multipliers: coefficient on z_j gains -beta_j s_j; the addition's rounding
      // (<= u |result|) times |z_j| <= max(|l_j|, |u_j|) goes into the slack.
      const auto& sp = (*splits)[r];
      const RowMat& beta = (*row_betas)[r];
      // (A layer without multipliers yet, e.g. its first split being tried: beta = 0 there.)
      if (beta.rows() == m && beta.cols() == lambda.cols())
      for (Eigen::Index j = 0; j < lambda.cols(); ++j) {
        if (sp[size_t(j)] == 0) continue;
        const double zmax = std::max(std::fabs(lo[size_t(j)]), std::fabs(up[size_t(j)]));
        for (Eigen::Index i = 0; i < m; ++i) {
          const double bj = beta(i, j);
          if (!(bj > 0)) continue;
          lambda(i, j) -= bj * double(sp[size_t(j)]);
          slack[i] += kUnit * std::fabs(lambda(i, j)) * zmax;
        }
      }
    }
  }
  // Concretise: min over the box of Lambda x is sum_j (c_j >= 0 ? c_j l_j : c_j u_j).
  // The constant's allowance also covers each Lambda b (a sum of up to L.out
  // terms per layer) and their accumulation over the layers: gamma of the widest
  // layer plus 4 per layer bounds every one of those sums.
  int64_t widest = lambda.cols();
  for (const AffineLayer& L : net.layers) widest = std::max({widest, L.in, L.out});
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
    slack[i] += gamma(widest + int64_t(net.layers.size()) * 4) * mag;
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
    Vec mid = mul(L, c) + bias_of(L);
    Vec rad = abs_mul(L, r);
    Vec err = gamma(L.in) * (abs_mul(L, Vec(c.cwiseAbs() + r)) + bias_of(L).cwiseAbs() + rad);
    std::vector<double> nlo(static_cast<size_t>(L.out)), nup(static_cast<size_t>(L.out));
    for (int64_t i = 0; i < L.out; ++i) {
      nlo[size_t(i)] = mid[i] - rad[i] - err[i];
      nup[size_t(i)] = mid[i] + rad[i] + err[i];
    }
    apply_known_signs(net, k, nlo);
    if (k + 1 < net.layers.size()) apply_splits(splits, k, nlo, nup);
    b.lower.push_back(nlo);
    b.upper.push_back(nup);
    if (k + 1 < net.layers.size()) activation_bounds(net, k, nlo, nup, lo, up);
  }
  return b;
}

LayerBounds crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits, bool output_layer,
                         bool refine_stable, const LayerBounds* prior, bool intersect_ibp) {
  LayerBounds ibp = interval_bounds(net, box, splits);
  LayerBounds b;
  constexpr int64_t kChunk = 128;  // rows per back-substitution (bounds the memory of wide CNN layers)
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
      std::vector<double> clo(rows.size()), cup(rows.size());
      for (size_t first = 0; first < rows.size(); first += size_t(kChunk)) {
        const Eigen::Index m = Eigen::Index(std::min<size_t>(size_t(kChunk), rows.size() - first));
        RowMat lambda = RowMat::Zero(2 * m, L.out);
        for (Eigen::Index i = 0; i < m; ++i) {
          lambda(i, rows[first + size_t(i)]) = 1.0;
          lambda(m + i, rows[first + size_t(i)]) = -1.0;
        }
        Backsub bs = back_substitute(net, box, b, k, std::move(lambda), Vec::Zero(2 * m), nullptr);
        for (Eigen::Index i = 0; i < m; ++i) {
          clo[first + size_t(i)] = bs.lower[i];
          cup[first + size_t(i)] = -bs.lower[m + i];
        }
      }
      for (size_t i = 0; i < rows.size(); ++i) {
        size_t j = size_t(rows[i]);
        if (intersect_ibp) {
          lo[j] = std::max(lo[j], clo[i]);
          up[j] = std::min(up[j], cup[i]);
        } else {
          lo[j] = clo[i];
          up[j] = cup[i];
          if (prior && k < prior->lower.size()) {
            lo[j] = std::max(lo[j], prior->lower[k][j]);
            up[j] = std::min(up[j], prior->upper[k][j]);
          }
        }
      }
    }
    apply_known_signs(net, k, lo);
    if (!last) apply_splits(splits, k, lo, up);
    b.lower.push_back(std::move(lo));
    b.upper.push_back(std::move(up));
  }
  return b;
}

namespace {

// CROWN lower bounds of objectives on layer `start`'s pre-activations (the output when start is the last layer).
std::vector<ObjectiveBound> objective_bounds(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                             size_t start, const std::vector<OutputConstraint>& objectives,
                                             const ReluSlopes* slopes,
                                             std::vector<std::vector<std::vector<double>>>* relu_coef) {
  const Eigen::Index m = Eigen::Index(objectives.size()), width = Eigen::Index(net.layers[start].out);
  RowMat lambda(m, width);
  Vec c(m);
  for (Eigen::Index i = 0; i < m; ++i) {
    for (Eigen::Index j = 0; j < width; ++j) lambda(i, j) = objectives[size_t(i)].coef[size_t(j)];
    c[i] = objectives[size_t(i)].constant;
  }
  Backsub bs = back_substitute(net, box, bounds, start, std::move(lambda), std::move(c), slopes, relu_coef);
  std::vector<ObjectiveBound> out;
  for (Eigen::Index i = 0; i < m; ++i) out.push_back(bs.row(i));
  return out;
}

}  // namespace

std::vector<ObjectiveBound> crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                            const std::vector<OutputConstraint>& objectives, const ReluSlopes* slopes,
                                            std::vector<std::vector<std::vector<double>>>* relu_coef) {
  return objective_bounds(net, box, bounds, net.layers.size() - 1, objectives, slopes, relu_coef);
}

std::vector<ObjectiveBound> crown_hidden_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                                   size_t layer, const std::vector<OutputConstraint>& objectives) {
  return objective_bounds(net, box, bounds, layer, objectives, nullptr, nullptr);
}

namespace {

// G W^T for a row-major G (m x in): the reverse of left_mul.
RowMat right_mul_t(const RowMat& G, const AffineLayer& L) {
  if (detail::ProductBackend* device = detail::current_products(); device && G.rows() > 0) {
    RowMat out(G.rows(), L.out);
    if (device->right_mul_t(G.data(), G.rows(), L, out.data())) return out;
  }
  if (L.conv) {
    RowMat out(G.rows(), L.out);
    detail::layer_conv_forward(L, G.data(), G.rows(), out.data());
    return out;
  }
  if (!L.sparse()) return G * weight_of(L).transpose();
  RowMat out(G.rows(), L.out);
  for (Eigen::Index i = 0; i < G.rows(); ++i) {
    const double* g = G.row(i).data();
    for (int64_t k = 0; k < L.out; ++k) {
      double s = 0;
      for (int p = L.csr_row[size_t(k)]; p < L.csr_row[size_t(k + 1)]; ++p) s += L.csr_val[size_t(p)] * g[L.csr_col[size_t(p)]];
      out(i, Eigen::Index(k)) = s;
    }
  }
  return out;
}

// alpha-CROWN (Xu et al., "Fast and Complete", ICLR 2021, Sec. 3.1): maximise
// the CROWN lower bound of each row of `lambda0` (coefficients on z_start) over
// the lower ReLU slopes of every ReLU layer below `start`, one slope set per
// row, by projected gradient ascent with Adam (Kingma & Ba 2015) and an
// exponential learning-rate decay, keeping each row's best slopes (auto_LiRPA's
// keep_best). The objective is the back-substitution without rounding slack;
// the caller recomputes the chosen slopes' bound soundly.
//   Forward, per row: mu on a_{start-1} = lambda0 W_start; per layer k below:
//     (max pool) mu_r = unpool(mu) (header comment), (ReLU) nu_k = s_k(alpha) .* mu_r,
//     mu on a_{k-1} = nu_k W_k;  f = lambda0 b_start + sum_k nu_k b_k
//       + sum_{unstable, mu_r < 0} mu_r t + sum_{pool, not exact, c < 0} c max ru
//       + sum_j min(mu_{-1,j} l_j, mu_{-1,j} u_j).
//   Reverse: g_{-1,j} = (mu >= 0 ? l_j : u_j); g_nu_k = g_{k-1} W_k^T + b_k;
//     df/dalpha_kj = g_nu_kj mu_r,kj where the slope is alpha (unstable, mu_r >= 0);
//     g_r = g_nu .* s + (unstable, mu_r < 0 ? t : 0); through the pool,
//     g_i = (taken ? g_r,j* : max ru_i).
// beta-CROWN (Wang et al., NeurIPS 2021, Sec. 3.3): with `splits` and `betas` given, each split
// neuron's multiplier beta_kj >= 0 enters as nu_kj -= beta_kj s_kj (the Lagrangian of s z >= 0), so
// df/dbeta_kj = -s_kj g_nu_kj, ascended by its own Adam step (lr_beta) and projected onto
// beta >= 0; `betas` in: the starting multipliers (rows x neurons per layer), out: the best ones.
// `alpha_init`, when given, replaces the default starting slopes (warm start from a parent branch).
// Rows [first, first + count) of one branch: its input box, hidden-layer bounds and splits
// (optimise_slopes bounds the rows of several branches in one pass; the products serve them all).
struct RowGroup {
  Eigen::Index first = 0, count = 0;
  const InputBox* box = nullptr;
  const LayerBounds* bounds = nullptr;
  const ReluSplits* splits = nullptr;  // null or empty: none
};

std::vector<RowMat> optimise_slopes(const Network& net, const std::vector<RowGroup>& groups, size_t start,
                                    const RowMat& lambda0, int iterations, double lr, double lr_decay,
                                    bool use_beta = false, std::vector<RowMat>* betas = nullptr,
                                    double lr_beta = 0.05, const std::vector<RowMat>* alpha_init = nullptr) {
  use_beta = use_beta && betas;
  const detail::ProductScope products(net);  // GPU products when net.product_device asks (gpu_products.h)
  const Eigen::Index m = lambda0.rows();
  const size_t ng = groups.size();
  // Per layer k and group g: the unstable neurons (in order), the stable slopes (1 active, 0
  // inactive or unstable), the upper chords, the pooling relaxation and the split signs.
  struct LayerGroup {
    std::vector<Eigen::Index> unstable;
    Vec fixed, s_up, t_up;
    std::optional<PoolRelaxation> pool;
    const std::vector<int8_t>* split = nullptr;  // non-null when some neuron of the layer is split
  };
  std::vector<std::vector<LayerGroup>> lg(start, std::vector<LayerGroup>(ng));
  std::vector<RowMat> alpha(start), best_alpha, m1(start), m2(start);
  std::vector<char> layer_split(start, 0);
  for (size_t k = 0; k < start; ++k) {
    const Eigen::Index n = Eigen::Index(groups.empty() ? 0 : groups[0].bounds->lower[k].size());
    alpha[k] = RowMat::Zero(m, n);
    m1[k] = RowMat::Zero(m, n);
    m2[k] = RowMat::Zero(m, n);
    const bool init = alpha_init && k < alpha_init->size() && (*alpha_init)[k].rows() == m && (*alpha_init)[k].cols() == n;
    for (size_t g = 0; g < ng; ++g) {
      const RowGroup& grp = groups[g];
      LayerGroup& L = lg[k][g];
      const auto& lo = grp.bounds->lower[k];
      const auto& up = grp.bounds->upper[k];
      L.fixed = Vec::Zero(n);
      L.s_up = Vec::Zero(n);
      L.t_up = Vec::Zero(n);
      for (Eigen::Index j = 0; j < n; ++j) {
        const double l = lo[size_t(j)], u = up[size_t(j)];
        if (l >= 0) L.fixed[j] = 1;
        if (l < 0 && u > 0) {
          L.unstable.push_back(j);
          upper_chord(l, u, L.s_up[j], L.t_up[j]);
          alpha[k].block(grp.first, j, grp.count, 1).setConstant(default_lower_slope(l, u));
          if (init)
            alpha[k].block(grp.first, j, grp.count, 1) =
                (*alpha_init)[k].block(grp.first, j, grp.count, 1).cwiseMax(0.0).cwiseMin(1.0);
        }
      }
      if (const MaxPool* mp = net.pool(k)) L.pool = pool_relaxation(*mp, lo, up);
      if (use_beta && grp.splits && k < grp.splits->size() && !(*grp.splits)[k].empty())
        for (int8_t v : (*grp.splits)[k])
          if (v != 0) {
            L.split = &(*grp.splits)[k];
            layer_split[k] = 1;
            break;
          }
    }
  }
  best_alpha = alpha;
  // Split multipliers and their Adam moments (only where some row's layer has splits).
  std::vector<RowMat> beta, best_beta, b1, b2;
  if (use_beta) {
    beta.resize(start);
    b1.resize(start);
    b2.resize(start);
    for (size_t k = 0; k < start; ++k) {
      if (!layer_split[k]) continue;
      const Eigen::Index n = alpha[k].cols();
      beta[k] = (k < betas->size() && (*betas)[k].rows() == m && (*betas)[k].cols() == n) ? RowMat((*betas)[k].cwiseMax(0.0))
                                                                                           : RowMat(RowMat::Zero(m, n));
      b1[k] = RowMat::Zero(m, n);
      b2[k] = RowMat::Zero(m, n);
    }
    best_beta = beta;
  }
  Vec best = Vec::Constant(m, -std::numeric_limits<double>::infinity());
  std::vector<RowMat> mur(start), S(start), taken(start);
  for (int it = 1; it <= iterations; ++it) {
    // Forward.
    Vec f = lambda0 * bias_of(net.layers[start]);
    RowMat mu = left_mul(lambda0, net.layers[start]);
    for (size_t kk = start; kk-- > 0;) {
      if (net.pool(kk)) {
        RowMat ur = RowMat::Zero(m, alpha[kk].cols());
        taken[kk] = RowMat::Zero(m, mu.cols());
        for (size_t g = 0; g < ng; ++g) {
          const PoolRelaxation& pr = *lg[kk][g].pool;
          const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
          for (size_t i = 0; i < pr.arg.size(); ++i)
            for (Eigen::Index row = r0; row < r1; ++row) {
              double c = mu(row, Eigen::Index(i));
              if (pr.exact[i] || c >= 0) {
                ur(row, Eigen::Index(pr.arg[i])) += c;
                taken[kk](row, Eigen::Index(i)) = 1;
              } else {
                f[row] += c * pr.upper[i];
              }
            }
        }
        mu = std::move(ur);
      }
      // Stable neurons: slope 1 (active) or 0 (inactive); the unstable ones by row.
      S[kk].resize(m, mu.cols());
      for (size_t g = 0; g < ng; ++g) {
        const LayerGroup& L = lg[kk][g];
        const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
        for (Eigen::Index row = r0; row < r1; ++row) S[kk].row(row) = L.fixed.transpose();
        for (const Eigen::Index j : L.unstable)
          for (Eigen::Index row = r0; row < r1; ++row) {
            if (mu(row, j) >= 0) {
              S[kk](row, j) = alpha[kk](row, j);
            } else {
              S[kk](row, j) = L.s_up[j];
              f[row] += mu(row, j) * L.t_up[j];
            }
          }
      }
      mur[kk] = mu;
      RowMat nu = S[kk].cwiseProduct(mu);
      if (use_beta && layer_split[kk])
        for (size_t g = 0; g < ng; ++g) {
          const std::vector<int8_t>* sp = lg[kk][g].split;
          if (!sp) continue;
          for (Eigen::Index j = 0; j < nu.cols(); ++j)
            if ((*sp)[size_t(j)] != 0)
              nu.block(groups[g].first, j, groups[g].count, 1) -=
                  double((*sp)[size_t(j)]) * beta[kk].block(groups[g].first, j, groups[g].count, 1);
        }
      f += nu * bias_of(net.layers[kk]);
      mu = left_mul(nu, net.layers[kk]);
    }
    RowMat G(m, mu.cols());
    for (size_t g = 0; g < ng; ++g) {
      const InputBox& box = *groups[g].box;
      const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
      for (Eigen::Index j = 0; j < mu.cols(); ++j)
        for (Eigen::Index row = r0; row < r1; ++row) {
          G(row, j) = mu(row, j) >= 0 ? box.lower[size_t(j)] : box.upper[size_t(j)];
          f[row] += mu(row, j) * G(row, j);
        }
    }
    for (Eigen::Index row = 0; row < m; ++row)
      if (f[row] > best[row]) {
        best[row] = f[row];
        for (size_t k = 0; k < start; ++k) best_alpha[k].row(row) = alpha[k].row(row);
        if (use_beta)
          for (size_t k = 0; k < start; ++k)
            if (layer_split[k]) best_beta[k].row(row) = beta[k].row(row);
      }
    if (it == iterations) break;
    // Reverse, with an Adam ascent step per layer, projected onto [0, 1].
    const double bc1 = 1 - std::pow(0.9, it), bc2 = 1 - std::pow(0.999, it);
    for (size_t kk = 0; kk < start; ++kk) {
      RowMat gnu = right_mul_t(G, net.layers[kk]);
      gnu.rowwise() += bias_of(net.layers[kk]).transpose();
      if (use_beta && layer_split[kk])
        for (size_t g = 0; g < ng; ++g) {
          const std::vector<int8_t>* sp = lg[kk][g].split;
          if (!sp) continue;
          const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
          for (Eigen::Index j = 0; j < gnu.cols(); ++j) {
            if ((*sp)[size_t(j)] == 0) continue;
            for (Eigen::Index row = r0; row < r1; ++row) {
              const double grad = -double((*sp)[size_t(j)]) * gnu(row, j);
              double& p = b1[kk](row, j);
              double& q = b2[kk](row, j);
              p = 0.9 * p + 0.1 * grad;
              q = 0.999 * q + 0.001 * grad * grad;
              double& bj = beta[kk](row, j);
              bj = std::max(0.0, bj + lr_beta * (p / bc1) / (std::sqrt(q / bc2) + 1e-8));
            }
          }
        }
      const RowMat& mk = mur[kk];
      RowMat gr = gnu.cwiseProduct(S[kk]);
      for (size_t g = 0; g < ng; ++g) {
        const LayerGroup& L = lg[kk][g];
        const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
        for (const Eigen::Index j : L.unstable)
          for (Eigen::Index row = r0; row < r1; ++row) {
            double c = mk(row, j);
            if (c < 0) gr(row, j) += L.t_up[j];
            double grad = c >= 0 ? gnu(row, j) * c : 0.0;
            double& p = m1[kk](row, j);
            double& q = m2[kk](row, j);
            p = 0.9 * p + 0.1 * grad;
            q = 0.999 * q + 0.001 * grad * grad;
            double& a = alpha[kk](row, j);
            a = std::clamp(a + lr * (p / bc1) / (std::sqrt(q / bc2) + 1e-8), 0.0, 1.0);
          }
      }
      if (net.pool(kk)) {
        G.resize(m, taken[kk].cols());
        for (size_t g = 0; g < ng; ++g) {
          const PoolRelaxation& pr = *lg[kk][g].pool;
          const Eigen::Index r0 = groups[g].first, r1 = r0 + groups[g].count;
          for (size_t i = 0; i < pr.arg.size(); ++i)
            for (Eigen::Index row = r0; row < r1; ++row)
              G(row, Eigen::Index(i)) = taken[kk](row, Eigen::Index(i)) != 0 ? gr(row, Eigen::Index(pr.arg[i])) : pr.upper[i];
        }
      } else {
        G = std::move(gr);
      }
    }
    lr *= lr_decay;
    lr_beta *= lr_decay;
  }
  if (use_beta) *betas = std::move(best_beta);
  return best_alpha;
}

// One branch's rows (every row of lambda0).
std::vector<RowMat> optimise_slopes(const Network& net, const InputBox& box, const LayerBounds& bounds, size_t start,
                                    const RowMat& lambda0, int iterations, double lr, double lr_decay) {
  return optimise_slopes(net, {RowGroup{0, lambda0.rows(), &box, &bounds, nullptr}}, start, lambda0, iterations, lr, lr_decay);
}

}  // namespace

ObjectiveBound alpha_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                     const OutputConstraint& objective, int iterations, double lr, double lr_decay) {
  const size_t last = net.layers.size() - 1;
  ObjectiveBound best = crown_objective(net, box, bounds, {objective})[0];
  if (last == 0 || iterations <= 0) return best;
  RowMat lambda(1, net.output_size());
  for (int64_t j = 0; j < net.output_size(); ++j) lambda(0, j) = objective.coef[size_t(j)];
  std::vector<RowMat> slopes = optimise_slopes(net, box, bounds, last, lambda, iterations, lr, lr_decay);
  // The optimised slopes' bound, computed soundly (rounded outward).
  Vec c = Vec::Constant(1, objective.constant);
  back_substitute(net, box, bounds, last, lambda, c, nullptr, nullptr, &slopes).keep_tighter(best, 0);
  return best;
}

std::vector<std::vector<ObjectiveBound>> beta_crown_branches(const Network& net, const std::vector<BranchObjectives>& branches,
                                                             int iterations, double lr_alpha, double lr_beta,
                                                             double lr_decay) {
  const size_t last = net.layers.size() - 1;
  const size_t nb = branches.size();
  std::vector<std::vector<ObjectiveBound>> best(nb);
  // Rows of every branch, one after another; a group per branch.
  std::vector<RowGroup> groups;
  Eigen::Index m = 0;
  for (const BranchObjectives& br : branches) {
    groups.push_back(RowGroup{m, Eigen::Index(br.objectives.size()), br.box, br.bounds, br.splits});
    m += Eigen::Index(br.objectives.size());
  }
  if (last == 0 || m == 0) {
    for (size_t b = 0; b < nb; ++b) best[b] = crown_objective(net, *branches[b].box, *branches[b].bounds, branches[b].objectives);
    return best;
  }
  auto state_of = [&](size_t b, size_t i) { return i < branches[b].states.size() ? branches[b].states[i] : nullptr; };
  RowMat lambda(m, net.output_size());
  Vec c(m);
  for (size_t b = 0; b < nb; ++b)
    for (size_t i = 0; i < branches[b].objectives.size(); ++i) {
      const OutputConstraint& o = branches[b].objectives[i];
      const Eigen::Index row = groups[b].first + Eigen::Index(i);
      for (int64_t j = 0; j < net.output_size(); ++j) lambda(row, j) = o.coef[size_t(j)];
      c[row] = o.constant;
    }
  // Warm start, row by row: a parent branch's optimised slopes and multipliers where the row has
  // them (of this network's widths), else CROWN's slopes and beta = 0.
  std::vector<RowMat> alpha0(last), betas(last);
  std::vector<char> warm(nb, 0);
  for (size_t k = 0; k < last; ++k) {
    const Eigen::Index n = Eigen::Index(net.layers[k].out);
    alpha0[k] = RowMat::Zero(m, n);
    betas[k] = RowMat::Zero(m, n);
    for (size_t b = 0; b < nb; ++b) {
      const auto& lo = branches[b].bounds->lower[k];
      const auto& up = branches[b].bounds->upper[k];
      for (Eigen::Index j = 0; j < n; ++j)
        if (lo[size_t(j)] < 0 && up[size_t(j)] > 0)
          alpha0[k].block(groups[b].first, j, groups[b].count, 1).setConstant(default_lower_slope(lo[size_t(j)], up[size_t(j)]));
      for (size_t i = 0; i < branches[b].objectives.size(); ++i) {
        const SplitMultipliers* st = state_of(b, i);
        if (!st) continue;
        const Eigen::Index row = groups[b].first + Eigen::Index(i);
        if (st->alpha.size() == last && Eigen::Index(st->alpha[k].size()) == n) {
          alpha0[k].row(row) = Eigen::Map<const Vec>(st->alpha[k].data(), n).transpose();
          warm[b] = 1;
        }
        if (k < st->beta.size() && Eigen::Index(st->beta[k].size()) == n)
          betas[k].row(row) = Eigen::Map<const Vec>(st->beta[k].data(), n).transpose();
      }
    }
  }
  // Branch b's rows of per-row matrices (an empty matrix stays empty: a layer without multipliers).
  auto rows_of = [&](const std::vector<RowMat>& v, size_t b) {
    std::vector<RowMat> out(v.size());
    for (size_t k = 0; k < v.size(); ++k)
      if (v[k].rows() == m) out[k] = v[k].middleRows(groups[b].first, groups[b].count);
    return out;
  };
  // The sound back-substitution of branch b's rows at the given slopes and multipliers; a row
  // replaces the branch's bound when it is tighter.
  auto sound = [&](size_t b, const std::vector<RowMat>& slopes, const std::vector<RowMat>& mult) {
    const BranchObjectives& br = branches[b];
    const std::vector<RowMat> sb = rows_of(slopes, b), bb = rows_of(mult, b);
    Backsub bs = back_substitute(net, *br.box, *br.bounds, last, lambda.middleRows(groups[b].first, groups[b].count),
                                 c.segment(groups[b].first, groups[b].count), nullptr, nullptr, &sb, br.splits, &bb);
    for (size_t i = 0; i < br.objectives.size(); ++i) bs.keep_tighter(best[b][i], Eigen::Index(i));
  };
  if (iterations <= 0) {
    // Only the bound at the given slopes and multipliers (a parent's, to rank candidate splits:
    // one back-substitution per child), or CROWN's without them.
    for (size_t b = 0; b < nb; ++b) {
      if (!warm[b]) {
        best[b] = crown_objective(net, *branches[b].box, *branches[b].bounds, branches[b].objectives);
        continue;
      }
      best[b].assign(branches[b].objectives.size(), ObjectiveBound{-std::numeric_limits<double>::infinity(), {}, 0});
      sound(b, alpha0, betas);
    }
    return best;
  }
  // Never looser than CROWN.
  for (size_t b = 0; b < nb; ++b) best[b] = crown_objective(net, *branches[b].box, *branches[b].bounds, branches[b].objectives);
  std::vector<RowMat> slopes =
      optimise_slopes(net, groups, last, lambda, iterations, lr_alpha, lr_decay, true, &betas, lr_beta, &alpha0);
  for (size_t b = 0; b < nb; ++b) {
    // The optimised slopes' and multipliers' bound, computed soundly (rounded outward).
    sound(b, slopes, betas);
    for (size_t i = 0; i < branches[b].objectives.size(); ++i) {
      SplitMultipliers* st = state_of(b, i);
      if (!st) continue;
      const Eigen::Index row = groups[b].first + Eigen::Index(i);
      st->alpha.assign(slopes.size(), {});
      st->beta.assign(betas.size(), {});
      for (size_t k = 0; k < slopes.size(); ++k)
        st->alpha[k].assign(slopes[k].row(row).data(), slopes[k].row(row).data() + slopes[k].cols());
      for (size_t k = 0; k < betas.size(); ++k)
        if (betas[k].rows() == m) st->beta[k].assign(betas[k].row(row).data(), betas[k].row(row).data() + betas[k].cols());
    }
  }
  return best;
}

std::vector<ObjectiveBound> beta_crown_objectives(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                                  const ReluSplits& splits, const std::vector<OutputConstraint>& objectives,
                                                  const std::vector<SplitMultipliers*>& states, int iterations,
                                                  double lr_alpha, double lr_beta, double lr_decay) {
  return beta_crown_branches(net, {BranchObjectives{&box, &bounds, &splits, objectives, states}}, iterations, lr_alpha,
                             lr_beta, lr_decay)[0];
}

ObjectiveBound beta_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                    const ReluSplits& splits, const OutputConstraint& objective, SplitMultipliers* state,
                                    int iterations, double lr_alpha, double lr_beta, double lr_decay) {
  return beta_crown_objectives(net, box, bounds, splits, {objective}, {state}, iterations, lr_alpha, lr_beta, lr_decay)[0];
}

LayerBounds alpha_crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits,
                               const LayerBounds* prior, int iterations, double lr, double lr_decay) {
  LayerBounds b = crown_bounds(net, box, splits, true, false, prior);
  for (size_t k = 1; k + 1 < net.layers.size(); ++k) {
    std::vector<int64_t> rows;
    for (size_t j = 0; j < b.lower[k].size(); ++j)
      if (b.lower[k][j] < 0 && b.upper[k][j] > 0) rows.push_back(int64_t(j));
    if (rows.empty()) continue;
    // Rows per optimisation so that one slope matrix stays at about 2^21 doubles.
    int64_t below = 0;
    for (size_t i = 0; i < k; ++i) below += net.layers[i].out;
    const size_t chunk = size_t(std::max<int64_t>(1, (int64_t(1) << 21) / std::max<int64_t>(1, 2 * below)));
    for (size_t first = 0; first < rows.size(); first += chunk) {
      const Eigen::Index m = Eigen::Index(std::min(chunk, rows.size() - first));
      RowMat lambda = RowMat::Zero(2 * m, net.layers[k].out);
      for (Eigen::Index i = 0; i < m; ++i) {
        lambda(i, rows[first + size_t(i)]) = 1.0;
        lambda(m + i, rows[first + size_t(i)]) = -1.0;
      }
      std::vector<RowMat> slopes = optimise_slopes(net, box, b, k, lambda, iterations, lr, lr_decay);
      Backsub bs = back_substitute(net, box, b, k, lambda, Vec::Zero(2 * m), nullptr, nullptr, &slopes);
      for (Eigen::Index i = 0; i < m; ++i) {
        size_t j = size_t(rows[first + size_t(i)]);
        b.lower[k][j] = std::max(b.lower[k][j], bs.lower[i]);
        b.upper[k][j] = std::min(b.upper[k][j], -bs.lower[m + i]);
      }
    }
    apply_splits(splits, k, b.lower[k], b.upper[k]);
  }
  return b;
}

int64_t unstable_relu_count(const Network& net, const LayerBounds& bounds) {
  int64_t n = 0;
  for (size_t k = 0; k + 1 < net.layers.size(); ++k)
    for (size_t j = 0; j < bounds.lower[k].size(); ++j)
      if (bounds.lower[k][j] < 0 && bounds.upper[k][j] > 0) ++n;
  return n;
}

}  // namespace mlaudit::verify
