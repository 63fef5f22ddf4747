// Normalisation kernels: BatchNormalization (inference) folded to a per-channel scale and shift.
// Launchers declared in norm_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the ops is norm.cpp. One thread per output element in grid-stride loops.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <cstdint>

#include "norm_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

__global__ void channel_affine_kernel(const float* x, const float* a, const float* b, float* y, int64_t c, int64_t area,
                                      int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t ch = (i / area) % c;
    y[i] = a[ch] * x[i] + (b ? b[ch] : 0.f);
  }
}

}  // namespace

void launch_channel_affine(const float* x, const float* a, const float* b, float* y, int64_t n, int64_t c, int64_t area,
                           void* s) {
  int64_t total = n * c * area;
  MLAUDIT_LAUNCH(channel_affine_kernel, total, s, x, a, b, y, c, area, total);
}

}  // namespace mlaudit::engine::cuda
