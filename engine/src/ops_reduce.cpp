// ops_reduce.cpp: ReduceMax/Min/Prod/L1/L2/LogSumExp..., ArgMax/ArgMin.
#include "ops.h"

namespace mlaudit::engine::detail {

void register_reduce_ops() {}

}  // namespace mlaudit::engine::detail
