// Run-time choice between the AVX2 + FMA kernels (vector_math_avx2.cpp) and the portable
// std::exp forms below.
#include "vector_math.h"

#include <algorithm>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <cmath>
#include <limits>

namespace mlaudit::engine::detail {

bool vector_math_avx2_compiled();  // vector_math_avx2.cpp: false where it could not emit AVX2

bool vector_math_uses_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool have =
      vector_math_avx2_compiled() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
#else
  return false;
#endif
}

void exp_array_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

namespace {
// e^x / (1 + e^x) for x < 0 keeps e^x from overflowing and the small result accurate.
inline float sigmoid_scalar(float v) { return v >= 0 ? 1.f / (1.f + std::exp(-v)) : std::exp(v) / (1.f + std::exp(v)); }
}  // namespace

void sigmoid_array_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_scalar(x[i]);
}

void silu_array_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_scalar(x[i]);
}

void softmax_row_scalar(const float* x, float* y, int64_t len, bool log) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < len; ++k) m = std::max(m, x[k]);
  double s = 0;
  for (int64_t k = 0; k < len; ++k) s += std::exp(double(x[k] - m));
  const double ls = std::log(s);
  for (int64_t k = 0; k < len; ++k) {
    const double z = double(x[k] - m);
    y[k] = log ? float(z - ls) : float(std::exp(z - ls));
  }
}

namespace {
bool use_avx512() {
  static const bool on = vector_math_uses_avx2() && vector_math_avx512_usable();
  return on;
}
}  // namespace

void exp_array(const float* x, float* y, int64_t n) {
  if (use_avx512()) exp_array_avx512(x, y, n);
  else if (vector_math_uses_avx2()) exp_array_avx2(x, y, n);
  else exp_array_scalar(x, y, n);
}

void sigmoid_array(const float* x, float* y, int64_t n) {
  if (use_avx512()) sigmoid_array_avx512(x, y, n);
  else if (vector_math_uses_avx2()) sigmoid_array_avx2(x, y, n);
  else sigmoid_array_scalar(x, y, n);
}

void silu_array(const float* x, float* y, int64_t n) {
  if (use_avx512()) silu_array_avx512(x, y, n);
  else if (vector_math_uses_avx2()) silu_array_avx2(x, y, n);
  else silu_array_scalar(x, y, n);
}

void relu_mask_multiply(const float* g, const float* y, float* out, int64_t n) {
  int64_t i = 0;
#ifdef __AVX2__
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  for (; i + 8 <= n; i += 8) {
    const __m256 keep = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + i), zero, _CMP_GT_OQ), one);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), keep));
  }
#endif
  for (; i < n; ++i) out[i] = g[i] * (y[i] > 0 ? 1.f : 0.f);
}

void softmax_row(const float* x, float* y, int64_t len, bool log) {
  if (vector_math_uses_avx2()) softmax_row_avx2(x, y, len, log);
  else softmax_row_scalar(x, y, len, log);
}

}  // namespace mlaudit::engine::detail
