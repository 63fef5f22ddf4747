#pragma once
// Launchers of the convolution kernels (conv_impl.cu): im2col/col2im, the direct convolution
// forward (with fused epilogues) and backward data, bias add. Plain C++ (common_impl.h).
#include <cstdint>

#include "common_impl.h"

namespace mlaudit::engine::cuda {

/// Unfold `images` images (`channels` channels each, image stride `image_stride` floats in x) to
/// per-image column blocks [channels*kh*kw, oh*ow] stored one after another.
void launch_im2col(const float* x, float* col, const ConvGeom& g, int64_t images, int64_t channels, int64_t image_stride,
                   void* stream);
/// Fold columns back into x (overwriting the group's channels), summing overlaps
/// (Caffe col2im: one thread per input pixel, no atomics).
void launch_col2im(const float* col, float* x, const ConvGeom& g, int64_t images, int64_t channels, int64_t image_stride,
                   void* stream);
/// Direct convolution, NCHW, any stride/padding/dilation/groups, without a column buffer:
/// y = conv(x, w) + bias (bias may be null). Shared-memory weight staging, register tiles.
/// epilogue 1 applies ReLU; 2 applies ReLU and 2x2 stride-2 max pooling, writing y as [n, oc, oh/2, ow/2];
/// 3 is 2 plus the full-resolution ReLU output written to `full` (even oh and ow only).
void launch_conv_forward_direct(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g, void* stream,
                                int epilogue = 0, float* full = nullptr);
/// Backward data of the direct convolution: gx = conv_transpose(gy, w) (overwrites gx).
void launch_conv_backward_data_direct(const float* gy, const float* w, float* gx, const ConvGeom& g, void* stream);
/// y[n, o, :] += bias[o] for y of shape [n, oc, area].
void launch_bias_add(float* y, const float* bias, int64_t n, int64_t oc, int64_t area, void* stream);

}  // namespace mlaudit::engine::cuda
