// CUDA kernels of the explain module's device loops (attribution_loops.cpp: integrated gradients,
// SmoothGrad) with their host launchers (attribution_kernels.h). Launch helpers:
// mlaudit/engine/device_kernels.cuh.
#include <cstdint>

#include "attribution_kernels.h"
#include "mlaudit/engine/device_kernels.cuh"

namespace mlaudit::explain::cuda {

namespace {

__global__ void ig_points_kernel(const float* base, const float* diff, const float* alphas, float* points, int64_t d,
                                 int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t j = i % d;
#ifdef MLAUDIT_CUDA_HOST_EMULATION
    const float step = alphas[i / d] * diff[j];
#else
    const float step = __fmul_rn(alphas[i / d], diff[j]);  // no FMA: two roundings, as the CPU's a * (x - b) then + b
#endif
    points[i] = step + base[j];
  }
}

__global__ void accumulate_rows_kernel(const float* g, float* acc, int64_t m, int64_t d, double scale, int squared) {
  MLAUDIT_GRID_STRIDE(j, d) {
    double s = 0;
    for (int64_t r = 0; r < m; ++r) {
      float v = g[r * d + j];
      if (squared) v = v * v;
      s += double(v);
    }
    acc[j] = acc[j] + float(scale * s);
  }
}

__global__ void add_noise_kernel(const float* x, const float* noise, float* y, int64_t d, float sigma, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = x[i % d] + sigma * noise[i];
}

}  // namespace

void launch_ig_points(const float* base, const float* diff, const float* alphas, float* points, int64_t m, int64_t d,
                      void* s) {
  const int64_t total = m * d;
  MLAUDIT_LAUNCH(ig_points_kernel, total, s, base, diff, alphas, points, d, total);
}

void launch_accumulate_rows(const float* g, float* acc, int64_t m, int64_t d, double scale, bool squared, void* s) {
  MLAUDIT_LAUNCH(accumulate_rows_kernel, d, s, g, acc, m, d, scale, squared ? 1 : 0);
}

void launch_add_noise(const float* x, const float* noise, float* y, int64_t n, int64_t d, float sigma, void* s) {
  const int64_t total = n * d;
  MLAUDIT_LAUNCH(add_noise_kernel, total, s, x, noise, y, d, sigma, total);
}

}  // namespace mlaudit::explain::cuda
