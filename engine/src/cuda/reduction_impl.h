#pragma once
// Launchers of the reduction kernels (reduction_impl.cu): sums over broadcast dims and
// Softmax/LogSoftmax with their VJPs. Plain C++ (common_impl.h).
#include <cstdint>

#include "common_impl.h"

namespace mlaudit::engine::cuda {

/// y[o] = scale * sum over the reduced dims (double accumulation).
void launch_reduce_sum(const float* x, float* y, const ReduceDesc& d, double scale, void* stream);
/// Softmax / LogSoftmax over `len` with stride `inner`, one thread per (outer, inner) row.
void launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, bool log, void* stream);
void launch_softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t len, int64_t inner,
                             bool log, void* stream);

}  // namespace mlaudit::engine::cuda
