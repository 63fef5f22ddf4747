// ops_activation.cpp: further element-wise activations, logic, comparisons.
#include "ops.h"

namespace mlaudit::engine::detail {

void register_activation_ops() {}

}  // namespace mlaudit::engine::detail
