#pragma once
// Vectorised transcendental kernels over float arrays: e^x, the logistic sigmoid and one row of
// Softmax/LogSoftmax. With AVX2 + FMA (checked at run time, vector_math_avx2.cpp) they run
// 8 lanes at a time on a Cephes-style exp; elsewhere the scalar forms call std::exp.
//
// Accuracy of the AVX2 exp (tests/engine/test_vector_math.cpp, every 61st float of its
// range against double std::exp): at most 1.01 ulp on normal results (the test holds it to
// 2), under 1 unit of 2^-149 on subnormal ones; exp(-inf) = 0, exp(x > 88.72...) = inf,
// exp(NaN) = NaN. Sigmoid within 2 ulp (test bound 4), softmax rows within ~3 ulp plus what
// the float subtraction x - max costs, as in the scalar form.
#include <cstdint>

namespace mlaudit::engine::detail {

/// Whether the AVX2 + FMA kernels are in use (the CPU has both and the build can emit them).
bool vector_math_uses_avx2();

/// y[i] = e^x[i] for i < n; y may be x.
void exp_array(const float* x, float* y, int64_t n);
/// y[i] = 1 / (1 + e^-x[i]) for i < n, computed without overflow for either sign; y may be x.
void sigmoid_array(const float* x, float* y, int64_t n);
/// y[i] = x[i] * sigmoid(x[i]) (SiLU), the float product of x and sigmoid_array's value; y may be x.
void silu_array(const float* x, float* y, int64_t n);
/// out[i] = g[i] * (y[i] > 0 ? 1 : 0) for i < n (a gradient through Relu, read off its output):
/// the float products, NaN/inf times 0 included; out may be g. (Written as a ternary, the
/// compiler turns it into a branch and does not vectorise.)
void relu_mask_multiply(const float* g, const float* y, float* out, int64_t n);
/// Softmax (log = false) or log-softmax of the contiguous row x[0..len) into y (y may be x):
/// max-shifted, the sum of exponentials accumulated in double.
void softmax_row(const float* x, float* y, int64_t len, bool log);

// The portable forms (std::exp), used when AVX2 + FMA is missing; tests call them directly.
void exp_array_scalar(const float* x, float* y, int64_t n);
void sigmoid_array_scalar(const float* x, float* y, int64_t n);
void silu_array_scalar(const float* x, float* y, int64_t n);
void softmax_row_scalar(const float* x, float* y, int64_t len, bool log);

// The AVX2 + FMA forms; call only when vector_math_uses_avx2().
void exp_array_avx2(const float* x, float* y, int64_t n);
void sigmoid_array_avx2(const float* x, float* y, int64_t n);
void silu_array_avx2(const float* x, float* y, int64_t n);
void softmax_row_avx2(const float* x, float* y, int64_t len, bool log);

// 16-lane (AVX-512F) forms of exp, sigmoid and SiLU: the AVX2 forms' operations lane for lane,
// so the same bits; used when vector_math_avx512_usable() (and the AVX2 forms are in use).
bool vector_math_avx512_usable();
void exp_array_avx512(const float* x, float* y, int64_t n);
void sigmoid_array_avx512(const float* x, float* y, int64_t n);
void silu_array_avx512(const float* x, float* y, int64_t n);

}  // namespace mlaudit::engine::detail
