// ops_norm.cpp: normalisation layers, ConvTranspose, Resize.
#include "ops.h"

namespace mlaudit::engine::detail {

void register_norm_ops() {}

}  // namespace mlaudit::engine::detail
