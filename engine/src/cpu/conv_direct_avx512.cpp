// Direct convolution tiles with 16-float registers (AVX-512F), called only when the CPU reports
// AVX-512F at run time. As dense_chain_avx512.cpp: the standard headers come before
// `#pragma GCC target("avx512f")`, the kernels live in their own namespace.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "conv_direct.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MLAUDIT_CD_HAVE_16 1
#pragma GCC push_options
#pragma GCC target("avx512f")
#define MLAUDIT_CD_NS cd16
#define MLAUDIT_CD_LANES 16
#include "conv_direct_kernels.h"
#pragma GCC pop_options
#endif

namespace mlaudit::engine::detail {

bool direct_conv_have_16() {
#ifdef MLAUDIT_CD_HAVE_16
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
#else
  return false;
#endif
}

#ifdef MLAUDIT_CD_HAVE_16
#pragma GCC push_options
#pragma GCC target("avx512f")
void direct_conv_tiles_16(const DirectConvImage& g, int ocb, int64_t ob_begin, int64_t ob_end, const float* xp,
                          const float* wpack, const float* bias, bool relu, float* yflat) {
  if (ocb == 8) cd16::conv_tiles<8, 3>(g, ob_begin, ob_end, xp, wpack, bias, relu, yflat);
  else if (ocb == 4) cd16::conv_tiles<4, 3>(g, ob_begin, ob_end, xp, wpack, bias, relu, yflat);
  else cd16::conv_tiles<1, 6>(g, ob_begin, ob_end, xp, wpack, bias, relu, yflat);
}
#pragma GCC pop_options
#else
// Never called (direct_conv_have_16() is false); defined so that the engine links everywhere.
void direct_conv_tiles_16(const DirectConvImage&, int, int64_t, int64_t, const float*, const float*, const float*, bool,
                          float*) {}
#endif

}  // namespace mlaudit::engine::detail
