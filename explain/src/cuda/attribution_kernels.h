#pragma once
// Launchers of the explain module's CUDA kernels (attribution_kernels.cu): the steps of the device
// integrated-gradients and SmoothGrad loops (attribution_loops.cpp). Plain C++ declarations: `stream`
// is the Program's cudaStream_t passed as void*. tests/cuda compiles the same kernels for the host.
#include <cstdint>

namespace mlaudit::explain::cuda {

/// IG path points [m, d]: points[r, j] = base[j] + alphas[r] * diff[j].
void launch_ig_points(const float* base, const float* diff, const float* alphas, float* points, int64_t m, int64_t d,
                      void* stream);
/// acc[j] += float(scale * sum_r g[r, j]) over the m rows of g [m, d] (squared: of g[r, j]^2, the square in
/// float), the sum in double in row order.
void launch_accumulate_rows(const float* g, float* acc, int64_t m, int64_t d, double scale, bool squared, void* stream);
/// y[i] = x[i % d] + sigma * noise[i] for i < n*d (SmoothGrad samples of one input).
void launch_add_noise(const float* x, const float* noise, float* y, int64_t n, int64_t d, float sigma, void* stream);

}  // namespace mlaudit::explain::cuda
