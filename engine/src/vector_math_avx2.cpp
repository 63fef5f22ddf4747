// AVX2 + FMA forms of the vector_math.h kernels, 8 floats per register. Called only when the
// CPU reports both at run time (vector_math.cpp). As in dense_chain_avx512.cpp, only the
// functions of this file are compiled for AVX2 (a target attribute on each), not the library
// templates the standard headers bring in, so no other translation unit can end up calling
// AVX2 code through a shared inline function.
//
// exp(x), after Cephes expf (S. L. Moshier, Cephes Math Library, 1989):
//   n = round(x log2 e),  r = x - n ln2  (Cody-Waite: ln2 = C1 + C2, C1 with 9 significant
//   bits so n C1 is exact; |r| <= ln2/2 + tiny),
//   e^r ~ 1 + r + r^2 P(r), P of degree 5 (Cephes' minimax coefficients, relative error of
//   the polynomial ~1e-8 on |r| <= ln2/2),
//   e^x = e^r 2^n1 2^n2 with n1 = floor(n/2), n2 = n - n1, each power built in the exponent
//   bits. Splitting 2^n keeps both factors normal over the whole clamped range n in
//   [-150, 128]: results that are normal are scaled exactly; subnormal results get one
//   rounding (gradual underflow), overflow gives inf and deep underflow 0.
// x is clamped to [-104, 89] first (e^-104 < 2^-150 rounds to 0, e^89 > FLT_MAX), which
// also sends -inf to 0 and +inf to inf; NaN inputs are passed through at the end.
#include <cmath>
#include <cstdint>
#include <limits>

#include "vector_math.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MLAUDIT_VM_HAVE_AVX2 1
#define MLAUDIT_VM_TARGET __attribute__((target("avx2,fma")))
#if defined(__GNUC__) && !defined(__clang__)
// Helpers pass __m256 by value; they are inlined into functions of the same target, so the
// "AVX vector return without AVX enabled changes the ABI" note of non-AVX builds is moot.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#endif

namespace mlaudit::engine::detail {

#ifdef MLAUDIT_VM_HAVE_AVX2

bool vector_math_avx2_compiled() { return true; }

namespace {

MLAUDIT_VM_TARGET inline __m256 exp8(__m256 x) {
  const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.f)), _mm256_set1_ps(89.f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);  // C1 = 355/512
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);       // C2 = ln2 - C1
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  return _mm256_blendv_ps(y, _mm256_add_ps(x, x), is_nan);
}

// 1/(1 + e^-|x|) for x >= 0, e^-|x|/(1 + e^-|x|) for x < 0: e^-|x| <= 1 never overflows and
// the small values of the negative side keep their relative accuracy (~3 ulp in all).
MLAUDIT_VM_TARGET inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 e = exp8(_mm256_or_ps(x, _mm256_set1_ps(-0.f)));  // e^-|x|
  const __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

// Lanes [0, rem) set, rem in [1, 7].
MLAUDIT_VM_TARGET inline __m256i tail_mask(int64_t rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

MLAUDIT_VM_TARGET inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

MLAUDIT_VM_TARGET inline double horizontal_sum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

MLAUDIT_VM_TARGET inline __m256d widen_sum(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

}  // namespace

MLAUDIT_VM_TARGET void exp_array_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mask, exp8(_mm256_maskload_ps(x + i, mask)));
  }
}

MLAUDIT_VM_TARGET void sigmoid_array_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sigmoid8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mask, sigmoid8(_mm256_maskload_ps(x + i, mask)));
  }
}

MLAUDIT_VM_TARGET void silu_array_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, sigmoid8(v)));
  }
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    const __m256 v = _mm256_maskload_ps(x + i, mask);
    _mm256_maskstore_ps(y + i, mask, _mm256_mul_ps(v, sigmoid8(v)));
  }
}

// The same steps 16 lanes at a time (AVX-512F): every lane computes exactly what exp8 /
// sigmoid8 compute (same operations in the same order, the same NaN rules of min/max), so
// results do not depend on which width ran.
#define MLAUDIT_VM_TARGET512 __attribute__((target("avx512f,avx2,fma")))

namespace {

MLAUDIT_VM_TARGET512 inline __m512 exp16(__m512 x) {
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.f)), _mm512_set1_ps(89.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.f));
  const __m512i ni = _mm512_cvtps_epi32(n);
  const __m512i n1 = _mm512_srai_epi32(ni, 1);
  const __m512i n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  y = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
  return _mm512_mask_blend_ps(is_nan, y, _mm512_add_ps(x, x));
}

MLAUDIT_VM_TARGET512 inline __m512 sigmoid16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.f);
  const __m512 e = exp16(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)))));
  const __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), e, one);
  return _mm512_div_ps(num, _mm512_add_ps(one, e));
}

}  // namespace

bool vector_math_avx512_usable() {
  static const bool have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
}

MLAUDIT_VM_TARGET512 void exp_array_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, exp16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

MLAUDIT_VM_TARGET512 void sigmoid_array_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, sigmoid16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, sigmoid16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

MLAUDIT_VM_TARGET512 void silu_array_avx512(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(y + i, _mm512_mul_ps(v, sigmoid16(v)));
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid16(v)));
  }
}

// The scalar form's steps (softmax_row_scalar) with the exponentials in float: each e^(x-m) is
// within ~2 ulp, their sum is accumulated in double, and softmax outputs e^(x-m) * (1/s) add
// two roundings (~3 ulp in all); log-softmax outputs (x - m) - log s are formed in double.
// The max ignores NaN lanes as std::max does (a NaN then reaches every output through s).
MLAUDIT_VM_TARGET void softmax_row_avx2(const float* x, float* y, int64_t len, bool log) {
  if (len <= 0) return;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  __m256 vmax = _mm256_set1_ps(neg_inf);
  int64_t k = 0;
  for (; k + 8 <= len; k += 8) vmax = _mm256_max_ps(_mm256_loadu_ps(x + k), vmax);
  float m = horizontal_max(vmax);
  for (; k < len; ++k) m = x[k] > m ? x[k] : m;
  const __m256 vm = _mm256_set1_ps(m);
  __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
  k = 0;
  for (; k + 16 <= len; k += 16) {
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k), vm));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k + 8), vm));
    if (!log) {
      _mm256_storeu_ps(y + k, e0);
      _mm256_storeu_ps(y + k + 8, e1);
    }
    sum0 = widen_sum(sum0, e0);
    sum1 = widen_sum(sum1, e1);
  }
  for (; k + 8 <= len; k += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + k), vm));
    if (!log) _mm256_storeu_ps(y + k, e);
    sum0 = widen_sum(sum0, e);
  }
  const int64_t full = k;
  __m256i mask = _mm256_setzero_si256();
  if (k < len) {
    mask = tail_mask(len - k);
    // Masked-off lanes load 0, whose e^(0-m) must not reach the sum.
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + k, mask), vm)), _mm256_castsi256_ps(mask));
    if (!log) _mm256_maskstore_ps(y + k, mask, e);
    sum1 = widen_sum(sum1, e);
  }
  const double s = horizontal_sum(_mm256_add_pd(sum0, sum1));
  if (log) {
    const double ls = std::log(s);
    for (int64_t j = 0; j < len; ++j) y[j] = float(double(x[j] - m) - ls);
    return;
  }
  const __m256 inv = _mm256_set1_ps(float(1.0 / s));
  for (k = 0; k < full; k += 8) _mm256_storeu_ps(y + k, _mm256_mul_ps(_mm256_loadu_ps(y + k), inv));
  if (full < len) _mm256_maskstore_ps(y + full, mask, _mm256_mul_ps(_mm256_maskload_ps(y + full, mask), inv));
}

#else  // no AVX2 code generation: never called (vector_math_uses_avx2() is false)

bool vector_math_avx2_compiled() { return false; }
void exp_array_avx2(const float* x, float* y, int64_t n) { exp_array_scalar(x, y, n); }
void sigmoid_array_avx2(const float* x, float* y, int64_t n) { sigmoid_array_scalar(x, y, n); }
void silu_array_avx2(const float* x, float* y, int64_t n) { silu_array_scalar(x, y, n); }
bool vector_math_avx512_usable() { return false; }
void exp_array_avx512(const float* x, float* y, int64_t n) { exp_array_scalar(x, y, n); }
void sigmoid_array_avx512(const float* x, float* y, int64_t n) { sigmoid_array_scalar(x, y, n); }
void silu_array_avx512(const float* x, float* y, int64_t n) { silu_array_scalar(x, y, n); }
void softmax_row_avx2(const float* x, float* y, int64_t len, bool log) { softmax_row_scalar(x, y, len, log); }

#endif

}  // namespace mlaudit::engine::detail
