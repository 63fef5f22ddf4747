// ops_index.cpp: split, gather/scatter, tile/expand, top-k, einsum....
#include "ops.h"

namespace mlaudit::engine::detail {

void register_index_ops() {}

}  // namespace mlaudit::engine::detail
