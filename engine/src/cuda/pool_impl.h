#pragma once
// Launchers of the pooling kernels (pool_impl.cu): MaxPool, AveragePool, their VJPs, the fused
// 2x2 max pool + ReLU backward, GlobalAveragePool's backward. Plain C++ (common_impl.h).
#include <cstdint>

#include "common_impl.h"

namespace mlaudit::engine::cuda {

/// MaxPool forward (first maximum in scan order; -inf for an empty window).
void launch_maxpool(const float* x, float* y, const ConvGeom& g, void* stream);
/// MaxPool backward: gradient to the first maximum of each window (atomic adds; gx zeroed by the caller).
void launch_maxpool_backward(const float* x, const float* gy, float* gx, const ConvGeom& g, void* stream);
/// MaxPool 2x2 stride 2 (no pads) backward fused with the preceding ReLU's backward: gx over the
/// pool input [planes, h, w] = gy at each window's first maximum where x > 0, else 0 (every element
/// a window covers is written; with odd h or w the uncovered last row/column is left to the caller).
void launch_maxpool2_relu_backward(const float* x, const float* gy, float* gx, int64_t planes, int64_t h, int64_t w,
                                   void* stream);
/// AveragePool forward/backward (divisor as ops_nn.cpp avg_divisor; pb/pr give the bottom/right pads).
void launch_avgpool(const float* x, float* y, const ConvGeom& g, int64_t pb, int64_t pr, bool count_include_pad, void* stream);
void launch_avgpool_backward(const float* gy, float* gx, const ConvGeom& g, int64_t pb, int64_t pr, bool count_include_pad,
                             void* stream);
/// gx[i] = gy[i / area] * scale (GlobalAveragePool backward).
void launch_expand_scale(const float* gy, float* gx, int64_t n, int64_t area, float scale, void* stream);

}  // namespace mlaudit::engine::cuda
