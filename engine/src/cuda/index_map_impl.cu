// Index-map kernels of the data-movement ops (Transpose, Slice, Gather, Pad, Concat): a device
// gather through a map the CPU op computed, and its scatter-add VJP.
// Launchers declared in index_map_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the ops is index_map.cpp. One thread per output element in grid-stride loops.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <cstdint>

#include "index_map_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

__global__ void gather_map_kernel(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t m = map[i];
    if (m >= 0) y[i] = x[m];
    else if (overwrite) y[i] = fill;
  }
}

__global__ void scatter_add_map_kernel(const float* gy, const int64_t* map, float* gx, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t m = map[i];
    if (m >= 0) atomicAdd(gx + m, gy[i]);
  }
}

}  // namespace

void launch_gather_map(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite, void* s) {
  MLAUDIT_LAUNCH(gather_map_kernel, n, s, x, map, y, n, fill, overwrite);
}
void launch_scatter_add_map(const float* gy, const int64_t* map, float* gx, int64_t n, void* s) {
  MLAUDIT_LAUNCH(scatter_add_map_kernel, n, s, gy, map, gx, n);
}

}  // namespace mlaudit::engine::cuda
