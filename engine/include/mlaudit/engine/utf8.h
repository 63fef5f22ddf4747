#pragma once
// UTF-8 validation and escaping: they live in the common library (common/, mlaudit_common), which datasets and
// reports link without the engine; this header keeps the engine's include path.
#include "mlaudit/common/utf8.h"
