#pragma once
// Launchers of the element-wise kernels (elementwise_impl.cu): unary activations, broadcasting
// binary ops, the variadic Min/Max gradient, fill and axpby. Plain C++ (common_impl.h).
#include <cstdint>

#include "common_impl.h"

namespace mlaudit::engine::cuda {

/// Elementwise unary ops with their ONNX attributes a (alpha, min) and b (beta, max).
enum class UnaryOp : int { Neg, Abs, Relu, LeakyRelu, Sigmoid, Tanh, Exp, Log, Sqrt, Erf, Elu, Softplus, HardSigmoid, Sign, Clip };
/// Broadcasting binary ops (Min/Max serve the variadic Min/Max fold).
enum class BinaryOp : int { Add, Sub, Mul, Div, Pow, Min, Max };

void launch_fill(float* y, int64_t n, float value, void* stream);
/// y = a * x + b * y (elementwise, same length); y is not read when b == 0 (so y = a * x scales in place).
void launch_axpby(const float* x, float* y, int64_t n, float a, float b, void* stream);
void launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float a, float b, void* stream);
/// gx = gy * f'(x, y) for the op (Sign: 0; Clip: passes where a <= x <= b).
void launch_unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float a,
                           float b, void* stream);
void launch_binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastDesc& d, void* stream);
/// Gradients of y = op(a, b) at the broadcast output shape (ga_full / gb_full may be null); y is the forward output.
void launch_binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                            float* ga_full, float* gb_full, const BroadcastDesc& d, void* stream);
/// Variadic Min/Max gradient to the first input attaining the extremum: operand `a` is input k
/// (broadcast), `b` is unused; taken (output-sized, 0/1) marks elements already given away.
void launch_extremum_grad(const float* x, const float* y, const float* gy, float* taken, float* gx_full,
                          const BroadcastDesc& d, void* stream);

}  // namespace mlaudit::engine::cuda
