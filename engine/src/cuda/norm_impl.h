#pragma once
// Launchers of the normalisation kernels (norm_impl.cu). Plain C++.
#include <cstdint>

namespace mlaudit::engine::cuda {

/// y = a[c] * x + b[c] over [n, c, area] (BatchNormalization folded to a scale and shift; b may be null).
void launch_channel_affine(const float* x, const float* a, const float* b, float* y, int64_t n, int64_t c, int64_t area,
                           void* stream);

}  // namespace mlaudit::engine::cuda
