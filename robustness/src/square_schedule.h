#pragma once
// Square attack schedules shared by the robustness module's CPU loop (square.cpp) and its CUDA
// device loop (cuda/attack_loops.cpp). Header-only.
#include <algorithm>
#include <cmath>
#include <vector>

namespace mlaudit::robustness {

/// Square's p, the fraction of features changed per query (Andriushchenko et al. 2020, Sec. 4, and
/// the reference p_selection): piecewise constant on a 10,000-query scale, rescaled to the budget.
inline double square_p_selection(double p_init, int it, int n_queries) {
  const int t = int(double(it) / n_queries * 10000);
  if (t <= 10) return p_init;
  if (t <= 50) return p_init / 2;
  if (t <= 200) return p_init / 4;
  if (t <= 500) return p_init / 8;
  if (t <= 1000) return p_init / 16;
  if (t <= 2000) return p_init / 32;
  if (t <= 4000) return p_init / 64;
  if (t <= 6000) return p_init / 128;
  if (t <= 8000) return p_init / 256;
  return p_init / 512;
}

namespace detail {

// eta^(r,s) of the L2 attack (Andriushchenko et al. 2020, Sec. 3.2): concentric
// rectangles weighted 1/(k+1)^2 around the centre, normalised to unit L2 norm.
inline std::vector<double> square_eta_rectangles(int rows, int cols) {
  std::vector<double> e(size_t(rows * cols), 0.0);
  int r0 = rows / 2, c0 = cols / 2;
  for (int k = 0; k < std::max(rows / 2 + 1, cols / 2 + 1); ++k) {
    for (int a = std::max(r0, 0); a < std::min(r0 + 2 * k + 1, rows); ++a)
      for (int b = std::max(c0, 0); b < std::min(c0 + 2 * k + 1, cols); ++b)
        e[size_t(a * cols + b)] += 1.0 / ((k + 1.0) * (k + 1.0));
    --r0;
    --c0;
  }
  double n = 0;
  for (double v : e) n += v * v;
  n = std::sqrt(n);
  for (double& v : e) v /= n;
  return e;
}

}  // namespace detail

/// Meta pseudo-Gaussian pattern of side s (Andriushchenko et al. 2020, Sec. 3.2):
/// +eta on the top half, -eta on the bottom half, unit L2 norm (row-major s x s).
inline std::vector<double> square_meta_pattern(int s) {
  std::vector<double> m(static_cast<size_t>(s * s));
  auto top = detail::square_eta_rectangles(s / 2, s), bottom = detail::square_eta_rectangles(s - s / 2, s);
  for (int a = 0; a < s / 2; ++a)
    for (int b = 0; b < s; ++b) m[size_t(a * s + b)] = top[size_t(a * s + b)];
  for (int a = s / 2; a < s; ++a)
    for (int b = 0; b < s; ++b) m[size_t(a * s + b)] = -bottom[size_t((a - s / 2) * s + b)];
  double n = 0;
  for (double v : m) n += v * v;
  n = std::sqrt(n);
  for (double& v : m) v /= n;
  return m;
}

}  // namespace mlaudit::robustness
