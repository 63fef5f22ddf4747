#pragma once
// What a forward pass costs, from the graph alone (the efficiency section, `mlaudit profile`,
// `mlaudit info`): floating-point operations per batch-1 forward.
#include "mlaudit/engine/graph.h"

namespace mlaudit::engine {

/// Operations of one batch-1 forward (dynamic dims taken as 1): Conv and Gemm/MatMul count
/// 2 per multiply-add (+1 per bias), tree ensembles one comparison per level of each tree's
/// deepest path plus one leaf add per tree, shape and data-movement ops 0, every
/// other op one per output element. Throws InputError when shapes cannot be inferred.
double estimate_flops(const Graph& g);

}  // namespace mlaudit::engine
