// Reduction kernels: sums over broadcast dims (ReduceSum/ReduceMean, gradient reductions) and
// Softmax/LogSoftmax with their VJPs (double accumulation, as ops_nn.cpp).
// Launchers declared in reduction_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the ops is reduction.cpp. One thread per output element in grid-stride loops.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <cmath>
#include <cstdint>

#include "reduction_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

__global__ void reduce_sum_kernel(const float* x, float* y, ReduceDesc d, int64_t n_out, int64_t n_red, double scale) {
  MLAUDIT_GRID_STRIDE(o, n_out) {
    int64_t base = 0, rem = o;
    for (int k = d.rank - 1; k >= 0; --k) {
      base += (rem % d.out_dims[k]) * d.in_strides[k];
      rem /= d.out_dims[k];
    }
    double acc = 0;
    for (int64_t r = 0; r < n_red; ++r) {
      int64_t off = 0, rr = r;
      for (int k = d.rank - 1; k >= 0; --k) {
        off += (rr % d.red_dims[k]) * d.in_strides[k];
        rr /= d.red_dims[k];
      }
      acc += x[base + off];
    }
    y[o] = float(acc * scale);
  }
}

// Softmax with max subtraction and double-precision normaliser, as ops_nn.cpp softmax_fwd.
__global__ void softmax_kernel(const float* x, float* y, int64_t len, int64_t inner, bool log, int64_t rows) {
  MLAUDIT_GRID_STRIDE(r, rows) {
    int64_t o = r / inner, in = r % inner;
    const float* xs = x + o * len * inner + in;
    float* ys = y + o * len * inner + in;
    float m = -INFINITY;
    for (int64_t k = 0; k < len; ++k) m = fmaxf(m, xs[k * inner]);
    double s = 0;
    for (int64_t k = 0; k < len; ++k) s += exp(double(xs[k * inner] - m));
    double ls = ::log(s);
    for (int64_t k = 0; k < len; ++k) {
      double z = double(xs[k * inner] - m);
      ys[k * inner] = log ? float(z - ls) : float(exp(z - ls));
    }
  }
}

// Softmax VJP: gx = y * (gy - <gy, y>); LogSoftmax VJP: gx = gy - exp(y) * sum(gy).
__global__ void softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t len, int64_t inner, bool log,
                                        int64_t rows) {
  MLAUDIT_GRID_STRIDE(r, rows) {
    int64_t o = r / inner, in = r % inner;
    int64_t base = o * len * inner + in;
    double s = 0;
    for (int64_t k = 0; k < len; ++k) {
      int64_t j = base + k * inner;
      s += log ? double(gy[j]) : double(gy[j]) * y[j];
    }
    for (int64_t k = 0; k < len; ++k) {
      int64_t j = base + k * inner;
      gx[j] = log ? float(gy[j] - exp(double(y[j])) * s) : float(y[j] * (gy[j] - s));
    }
  }
}

}  // namespace

void launch_reduce_sum(const float* x, float* y, const ReduceDesc& d, double scale, void* s) {
  int64_t n_out = 1, n_red = 1;
  for (int k = 0; k < d.rank; ++k) {
    n_out *= d.out_dims[k];
    n_red *= d.red_dims[k];
  }
  MLAUDIT_LAUNCH(reduce_sum_kernel, n_out, s, x, y, d, n_out, n_red, scale);
}
void launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, bool log, void* s) {
  int64_t rows = outer * inner;
  MLAUDIT_LAUNCH(softmax_kernel, rows, s, x, y, len, inner, log, rows);
}
void launch_softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t len, int64_t inner,
                             bool log, void* s) {
  int64_t rows = outer * inner;
  MLAUDIT_LAUNCH(softmax_backward_kernel, rows, s, y, gy, gx, len, inner, log, rows);
}

}  // namespace mlaudit::engine::cuda
