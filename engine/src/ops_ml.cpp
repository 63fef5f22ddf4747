// ops_ml.cpp: the ai.onnx.ml domain.
#include "ops.h"

namespace mlaudit::engine::detail {

void register_ml_ops() {}

}  // namespace mlaudit::engine::detail
