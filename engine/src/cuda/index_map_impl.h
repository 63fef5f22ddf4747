#pragma once
// Launchers of the index-map kernels (index_map_impl.cu) that run the data-movement ops
// (Transpose, Slice, Gather, Pad, Concat) as gathers through maps the CPU op computes. Plain C++.
#include <cstdint>

namespace mlaudit::engine::cuda {

/// y[i] = x[map[i]] (map[i] < 0: y[i] = fill when overwrite, else y[i] unchanged).
void launch_gather_map(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite, void* stream);
/// gx[map[i]] += gy[i] for map[i] >= 0 (atomic: maps may repeat, e.g. Gather).
void launch_scatter_add_map(const float* gy, const int64_t* map, float* gx, int64_t n, void* stream);

}  // namespace mlaudit::engine::cuda
