// DenseChain block kernel with 8-float registers (AVX2 in the release build's x86-64-v3,
// generic vector code in other builds).
#include <cmath>
#include <cstring>
#include <limits>

#include "dense_chain.h"

#define MLAUDIT_DC_NS dc8
#define MLAUDIT_DC_LANES 8
#define MLAUDIT_DC_H 2
#include "dense_chain_kernels.h"

namespace mlaudit::engine::detail {
int64_t dense_chain_rows_8() { return dc8::BR; }
void dense_chain_block_8(const std::vector<DenseChain::Step>& steps, int64_t in_width, int64_t out_width,
                         int64_t max_width, const float* x, int64_t rows, float* y, float* scratch) {
  dc8::run_block(steps, in_width, out_width, max_width, x, rows, y, scratch);
}
}  // namespace mlaudit::engine::detail
