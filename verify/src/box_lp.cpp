// min over a box of the largest of a few affine functions, by the revised
// primal simplex on the LP dual (box_lp.h). Textbook method (Chvatal,
// "Linear Programming", 1983, ch. 7 (revised simplex) and ch. 3 (Bland's
// rule, which cannot cycle)); the problems are tiny (at most ~13 rows: the
// varying input dimensions plus one), so each iteration refactors the basis.
#include "box_lp.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

namespace mlaudit::verify::detail {

MinMaxAffine min_max_affine(const std::vector<std::vector<double>>& a, const std::vector<double>& c,
                            const InputBox& box) {
  MinMaxAffine out;
  const size_t m = a.size(), n = box.lower.size();
  if (m == 0) return out;
  // Fixed dimensions (lower == upper) fold into the constants.
  std::vector<size_t> vary;
  for (size_t j = 0; j < n; ++j)
    if (box.upper[j] > box.lower[j]) vary.push_back(j);
  std::vector<double> cc(c);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j)
      if (!(box.upper[j] > box.lower[j])) cc[i] += a[i][j] * box.lower[j];
  const Eigen::Index nv = Eigen::Index(vary.size()), rows = nv + 1, cols = Eigen::Index(m) + 2 * nv;
  // Columns: y_i = [a_i; 1] (cost c_i), p_j = [-e_j; 0] (cost l_j), q_j = [e_j; 0] (cost -u_j).
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(rows, cols);
  Eigen::VectorXd cost(cols), b = Eigen::VectorXd::Zero(rows);
  b[nv] = 1;
  for (size_t i = 0; i < m; ++i) {
    for (Eigen::Index r = 0; r < nv; ++r) A(r, Eigen::Index(i)) = a[i][vary[size_t(r)]];
    A(nv, Eigen::Index(i)) = 1;
    cost[Eigen::Index(i)] = cc[i];
  }
  for (Eigen::Index r = 0; r < nv; ++r) {
    A(r, Eigen::Index(m) + r) = -1;
    cost[Eigen::Index(m) + r] = box.lower[vary[size_t(r)]];
    A(r, Eigen::Index(m) + nv + r) = 1;
    cost[Eigen::Index(m) + nv + r] = -box.upper[vary[size_t(r)]];
  }
  // Starting basis: the function with the best own lower bound over the box
  // (y = e_i0), with p_j or q_j carrying a_i0's j-th coefficient (feasible, non-singular).
  size_t i0 = 0;
  double best = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < m; ++i) {
    double v = cc[i];
    for (size_t r = 0; r < vary.size(); ++r) {
      const double coef = a[i][vary[r]];
      v += coef >= 0 ? coef * box.lower[vary[r]] : coef * box.upper[vary[r]];
    }
    if (v > best) {
      best = v;
      i0 = i;
    }
  }
  std::vector<Eigen::Index> basis(static_cast<size_t>(rows));
  for (Eigen::Index r = 0; r < nv; ++r)
    basis[size_t(r)] = A(r, Eigen::Index(i0)) >= 0 ? Eigen::Index(m) + r : Eigen::Index(m) + nv + r;
  basis[size_t(nv)] = Eigen::Index(i0);

  // Relative tolerances for "positive" reduced costs and pivots: far above the
  // rounding of these small solves, far below any margin a proof needs.
  constexpr double kTol = 1e-11;
  Eigen::VectorXd xb, pi;
  const int max_iterations = 50 * int(cols + rows);
  for (int it = 0; it < max_iterations; ++it) {
    Eigen::MatrixXd B(rows, rows);
    Eigen::VectorXd cb(rows);
    for (Eigen::Index r = 0; r < rows; ++r) {
      B.col(r) = A.col(basis[size_t(r)]);
      cb[r] = cost[basis[size_t(r)]];
    }
    Eigen::FullPivLU<Eigen::MatrixXd> lu(B);
    if (!lu.isInvertible()) return out;
    xb = lu.solve(b);
    pi = Eigen::FullPivLU<Eigen::MatrixXd>(B.transpose()).solve(cb);
    // Entering column: the lowest index with a positive reduced cost (Bland).
    Eigen::Index enter = -1;
    for (Eigen::Index k = 0; k < cols && enter < 0; ++k) {
      if (std::find(basis.begin(), basis.end(), k) != basis.end()) continue;
      const double dot = pi.dot(A.col(k));
      const double scale = 1 + std::fabs(cost[k]) + pi.cwiseAbs().dot(A.col(k).cwiseAbs());
      if (cost[k] - dot > kTol * scale) enter = k;
    }
    if (enter < 0) {
      out.solved = true;
      break;
    }
    const Eigen::VectorXd w = lu.solve(A.col(enter));
    // Leaving row: minimum ratio, ties to the lowest basic index (Bland).
    Eigen::Index leave = -1;
    double ratio = std::numeric_limits<double>::infinity();
    for (Eigen::Index r = 0; r < rows; ++r) {
      if (!(w[r] > kTol)) continue;
      const double q = std::max(0.0, xb[r]) / w[r];
      const bool better = leave < 0 || q < ratio - kTol * (1 + ratio);
      const bool tie = leave >= 0 && q <= ratio + kTol * (1 + ratio) && basis[size_t(r)] < basis[size_t(leave)];
      if (better || tie) {
        ratio = std::min(ratio, q);
        leave = r;
      }
    }
    if (leave < 0) return out;  // unbounded: impossible for a finite box, so numerical trouble
    basis[size_t(leave)] = enter;
  }
  if (!out.solved) return out;
  out.weights.assign(m, 0.0);
  double value = 0, total = 0;
  for (Eigen::Index r = 0; r < rows; ++r) {
    value += cost[basis[size_t(r)]] * xb[r];
    if (basis[size_t(r)] < Eigen::Index(m)) {
      const double y = std::max(0.0, xb[r]);
      out.weights[size_t(basis[size_t(r)])] = y;
      total += y;
    }
  }
  if (!(total > 0)) {
    out.solved = false;
    return out;
  }
  for (double& y : out.weights) y /= total;
  out.value = value;
  out.point = box.lower;
  for (size_t r = 0; r < vary.size(); ++r)
    out.point[vary[r]] = std::clamp(-pi[Eigen::Index(r)], box.lower[vary[r]], box.upper[vary[r]]);
  return out;
}

}  // namespace mlaudit::verify::detail
