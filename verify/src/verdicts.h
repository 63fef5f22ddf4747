#pragma once
// Bookkeeping shared by the network and tree drivers (drivers.cpp, trees_drivers.cpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mlaudit/verify/verify.h"

namespace mlaudit::verify::detail {

/// Marks `v` falsified at counterexample `cx` (already checked to lie in the query box): records
/// it, its L-inf distance from the sample `x` (indexable: a vector or a pointer) and the margin
/// y_label - max_{j != label} y_j of the output `y` there.
template <class Row>
void record_falsified(SampleVerdict& v, std::vector<double> cx, const Row& x, const std::vector<double>& y) {
  v.verdict = Verdict::Sat;
  v.counterexample_linf = 0;
  for (size_t k = 0; k < cx.size(); ++k)
    v.counterexample_linf = std::max(v.counterexample_linf, std::fabs(cx[k] - double(x[k])));
  v.counterexample = std::move(cx);
  double other = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < y.size(); ++j)
    if (int64_t(j) != v.label) other = std::max(other, y[j]);
  v.margin = y[size_t(v.label)] - other;
}

}  // namespace mlaudit::verify::detail
