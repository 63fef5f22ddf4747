#pragma once
// Error types shared by every mlaudit module (InputError, UnsupportedError): they live in the common library (common/, mlaudit_common), which datasets and
// reports link without the engine; this header keeps the engine's include path.
#include "mlaudit/common/error.h"
