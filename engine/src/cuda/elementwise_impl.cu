// Element-wise kernels: unary activations (ops_elementwise.cpp's MLAUDIT_UNARY table) and their
// derivatives, broadcasting binary ops, the variadic Min/Max gradient, fill and axpby.
// Launchers declared in elementwise_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the ops is elementwise.cpp. One thread per output element in grid-stride loops.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <cmath>
#include <cstdint>

#include "elementwise_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

__device__ float sigmoidf_(float x) { return x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x)); }

// Forward formulas of ops_elementwise.cpp's MLAUDIT_UNARY table.
__device__ float unary_f(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Relu: return x > 0 ? x : 0.f;
    case UnaryOp::LeakyRelu: return x >= 0 ? x : x * a;
    case UnaryOp::Sigmoid: return sigmoidf_(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Erf: return erff(x);
    case UnaryOp::Elu: return x > 0 ? x : a * (expf(x) - 1.f);
    case UnaryOp::Softplus: return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case UnaryOp::HardSigmoid: return fmaxf(0.f, fminf(1.f, a * x + b));
    case UnaryOp::Sign: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case UnaryOp::Clip: return fminf(fmaxf(x, a), b);
  }
  return 0.f;
}

// Derivatives d(x, y) of the same table (ops_elementwise.cpp DER(...)).
__device__ float unary_d(UnaryOp op, float x, float y, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -1.f;
    case UnaryOp::Abs: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case UnaryOp::Relu: return x > 0 ? 1.f : 0.f;
    case UnaryOp::LeakyRelu: return x > 0 ? 1.f : a;
    case UnaryOp::Sigmoid: return y * (1.f - y);
    case UnaryOp::Tanh: return 1.f - y * y;
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return 1.f / x;
    case UnaryOp::Sqrt: return 0.5f / y;
    case UnaryOp::Erf: return 1.1283791670955126f * expf(-x * x);  // 2/sqrt(pi) exp(-x^2)
    case UnaryOp::Elu: return x > 0 ? 1.f : y + a;
    case UnaryOp::Softplus: return sigmoidf_(x);
    case UnaryOp::HardSigmoid: {
      float t = a * x + b;
      return (t > 0.f && t < 1.f) ? a : 0.f;
    }
    case UnaryOp::Sign: return 0.f;
    case UnaryOp::Clip: return (x >= a && x <= b) ? 1.f : 0.f;  // PyTorch clamp: passes on the closed interval
  }
  return 0.f;
}

__global__ void fill_kernel(float* y, int64_t n, float v) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = v;
}
__global__ void axpby_kernel(const float* x, float* y, int64_t n, float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = b == 0.f ? a * x[i] : a * x[i] + b * y[i];
}
__global__ void unary_kernel(UnaryOp op, const float* x, float* y, int64_t n, float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = unary_f(op, x[i], a, b);
}
__global__ void unary_backward_kernel(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                                      float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) gx[i] = gy[i] * unary_d(op, x[i], y ? y[i] : 0.f, a, b);
}

// Offsets of output element i into a and b under broadcasting.
__device__ void bcast_offsets(const BroadcastDesc& d, int64_t i, int64_t& oa, int64_t& ob) {
  oa = 0;
  ob = 0;
  for (int k = d.rank - 1; k >= 0; --k) {
    int64_t idx = i % d.out_dims[k];
    i /= d.out_dims[k];
    oa += idx * d.a_strides[k];
    ob += idx * d.b_strides[k];
  }
}

__device__ float binary_f(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Pow: return powf(x, y);
    case BinaryOp::Min: return fminf(x, y);
    case BinaryOp::Max: return fmaxf(x, y);
  }
  return 0.f;
}

__global__ void binary_kernel(BinaryOp op, const float* a, const float* b, float* y, BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    y[i] = binary_f(op, a[oa], b[ob]);
  }
}

// ops_elementwise.cpp binary_backward: Mul/Div/Pow partials (Pow: d/da = b a^(b-1) (0 when b = 0),
// d/db = a^b ln a (0 where a^b = 0)).
__global__ void binary_backward_kernel(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                                       float* ga, float* gb, BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    float x = a[oa], z = b[ob], g = gy[i];
    float da = 0.f, db = 0.f;
    switch (op) {
      case BinaryOp::Add: da = g; db = g; break;
      case BinaryOp::Sub: da = g; db = -g; break;
      case BinaryOp::Mul: da = g * z; db = g * x; break;
      case BinaryOp::Div: da = g / z; db = -g * x / (z * z); break;
      case BinaryOp::Pow: {
        da = z == 0.f ? 0.f : g * z * powf(x, z - 1.f);
        float o = y[i];
        db = o == 0.f ? 0.f : g * o * logf(x);
        break;
      }
      default: break;
    }
    if (ga) ga[i] = da;
    if (gb) gb[i] = db;
  }
}

__global__ void extremum_grad_kernel(const float* x, const float* y, const float* gy, float* taken, float* gx,
                                     BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    float g = 0.f;
    if (taken[i] == 0.f && x[oa] == y[i]) {
      g = gy[i];
      taken[i] = 1.f;
    }
    gx[i] = g;
  }
}

}  // namespace

void launch_fill(float* y, int64_t n, float value, void* s) { MLAUDIT_LAUNCH(fill_kernel, n, s, y, n, value); }
void launch_axpby(const float* x, float* y, int64_t n, float a, float b, void* s) {
  MLAUDIT_LAUNCH(axpby_kernel, n, s, x, y, n, a, b);
}
void launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float a, float b, void* s) {
  MLAUDIT_LAUNCH(unary_kernel, n, s, op, x, y, n, a, b);
}
void launch_unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float a,
                           float b, void* s) {
  MLAUDIT_LAUNCH(unary_backward_kernel, n, s, op, x, y, gy, gx, n, a, b);
}
static int64_t desc_numel(const BroadcastDesc& d) {
  int64_t n = 1;
  for (int k = 0; k < d.rank; ++k) n *= d.out_dims[k];
  return n;
}
void launch_binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastDesc& d, void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(binary_kernel, n, s, op, a, b, y, d, n);
}
void launch_binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy, float* ga,
                            float* gb, const BroadcastDesc& d, void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(binary_backward_kernel, n, s, op, a, b, y, gy, ga, gb, d, n);
}
void launch_extremum_grad(const float* x, const float* y, const float* gy, float* taken, float* gx, const BroadcastDesc& d,
                          void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(extremum_grad_kernel, n, s, x, y, gy, taken, gx, d, n);
}

}  // namespace mlaudit::engine::cuda
