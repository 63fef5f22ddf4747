#pragma once
#include <algorithm>
#include <cmath>
#include <string>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::test {

/// Largest |a-b| / (atol + rtol*|b|) over all elements (<= 1 means within tolerance),
/// the normalised error of ggml's test-backend-ops.
inline double worst_ratio(const engine::Tensor& a, const engine::Tensor& b, double rtol, double atol) {
  auto x = a.to_doubles(), y = b.to_doubles();
  double worst = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::fabs(x[i] - y[i]) / (atol + rtol * std::fabs(y[i])));
  return worst;
}

}  // namespace mlaudit::test
