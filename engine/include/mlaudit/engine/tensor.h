#pragma once
// engine::Tensor, Shape, DType: they live in the common library (common/, mlaudit_common), which datasets and
// reports link without the engine; this header keeps the engine's include path.
#include "mlaudit/common/tensor.h"
