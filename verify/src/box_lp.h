#pragma once
// A small exact LP used by branch and bound (bab.cpp): the minimum over an
// input box of the largest of a few affine functions, with its LP-dual weights.
// Solved in double precision; callers use the weights only to *propose* a
// certificate that they then check soundly (outward-rounded back-substitution),
// so float error here can cost a proof but never make one wrong.
#include <vector>

#include "mlaudit/verify/vnnlib.h"

namespace mlaudit::verify::detail {

/// Result of min_box max_i (a_i . x + c_i).
struct MinMaxAffine {
  bool solved = false;        ///< false: the simplex hit its iteration limit (numerical trouble)
  double value = 0;           ///< t* = min over the box of max_i (a_i . x + c_i) (in double)
  std::vector<double> weights;  ///< y* >= 0, sum 1: min_box sum_i y_i (a_i . x + c_i) = t* (LP duality)
  std::vector<double> point;    ///< x* in the box attaining t*
};

/// min over `box` of max_i (a[i] . x + c[i]) by the primal simplex (Bland's
/// rule) on its dual: maximise c . y + l . p - u . q subject to
/// sum_i y_i a_i = p - q, sum_i y_i = 1, y, p, q >= 0. Every feasible (y, p, q)
/// gives a lower bound (for x in the box, sum_i y_i (a_i . x + c_i) = c . y +
/// (p - q) . x >= c . y + l . p - u . q); the optimum equals t* (strong
/// duality), and the simplex multipliers of the final basis give x* (= -pi on
/// the n coupling rows) and t* (pi on the normalisation row).
/// Needs at least one function; a and the box must have equal dimension.
MinMaxAffine min_max_affine(const std::vector<std::vector<double>>& a, const std::vector<double>& c,
                            const InputBox& box);

}  // namespace mlaudit::verify::detail
