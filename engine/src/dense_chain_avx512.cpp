// DenseChain block kernel with 16-float registers (AVX-512F), called only when the CPU reports
// AVX-512F at run time. The kernels are compiled under `#pragma GCC target("avx512f")`; the
// standard headers are included before it, so no library template gets AVX-512 code that
// another translation unit could end up calling (the kernels live in their own namespace).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "dense_chain.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLAUDIT_DC_HAVE_16 1
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12 warns, once _mm512_max_ps is inlined into some kernels, that the _mm512_undefined_ps()
// it passes for lanes a mask would keep (none: the mask is all ones) may be used uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MLAUDIT_DC_NS dc16
#define MLAUDIT_DC_LANES 16
#define MLAUDIT_DC_H 3
#include "dense_chain_kernels.h"
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace mlaudit::engine::detail {
bool dense_chain_have_16() {
#ifdef MLAUDIT_DC_HAVE_16
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
#else
  return false;
#endif
}
#ifndef MLAUDIT_DC_HAVE_16
int64_t dense_chain_rows_16() { return 0; }
// Never called (dense_chain_have_16() is false); defined so that the chain links everywhere.
void dense_chain_block_16(const std::vector<DenseChain::Step>&, size_t, int64_t, int64_t, int64_t, const float*, int64_t,
                          float*, float*) {}
void dense_chain_mix_tables_16(const float*, const float*, float, int64_t, int64_t, int64_t, const float*, const float*,
                               const std::vector<std::vector<int64_t>>&, uint64_t, int64_t, float*, float*, float*) {}
void dense_chain_mix_block_16(const std::vector<DenseChain::Step>&, size_t, int64_t, int64_t, const float* const*,
                              const float* const*, int64_t, float*, float*) {}
#endif
}  // namespace mlaudit::engine::detail
