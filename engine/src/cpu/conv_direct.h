#pragma once
// Direct convolution for networks with few channels (the small CNNs audits run on
// MNIST-sized images), where oneDNN's blocked kernels spend more time reordering plain NCHW
// tensors in and out than computing. conv_direct_kernels.h has the register tiles.
#include <cstdint>

#include "../ops.h"

namespace mlaudit::engine::detail {

/// One image's convolution in flattened-plane form (conv_direct_kernels.h).
struct DirectConvImage {
  int64_t cout;             ///< output channels
  int64_t taps;             ///< cin * kh * kw
  const int64_t* tap_offsets;  ///< flat input offset of each tap (ic, kh, kw), in that order
  int64_t flat;             ///< positions computed: OH * Wp rounded up to the tile width
  int64_t flat_stride;      ///< floats between output channels of the flat output
};

/// True when `p` takes the direct path: groups 1, stride up to 4, padding and dilation any, few
/// channels (see the threshold in conv_direct.cpp). MLAUDIT_DIRECT_CONV=0 turns it off.
bool direct_conv_suits(const Window2d& p);
/// The shape part of direct_conv_suits (input/output channels, kernel, groups, strides): what the
/// graph passes (cpu/fusion.cpp) use to know which convolutions go to oneDNN.
bool direct_conv_shape(int64_t c, int64_t oc, int64_t kh, int64_t kw, int64_t group, int64_t sh, int64_t sw);

/// y = conv(x, w) + bias (bias may be null), then max(y, 0) when `relu`; x NCHW, w OIHW, y
/// NCHW [n, oc, oh, ow]. Each output sums its taps (ic, kh, kw) in order with one fused
/// multiply-add per term from 0, then adds the bias: bits independent of batch, threads and
/// vector width. pool2: y is instead MaxPool 2x2 stride 2 (no padding, floor) of that output,
/// [n, oc, oh/2, ow/2] (fusion.h, kFusedMaxPoolAttribute), the same values as the two ops.
void direct_conv_forward(const Window2d& p, const float* x, const float* w, const float* bias, bool relu, float* y,
                         bool pool2 = false);

/// True when the input gradient of `p` takes the direct path (direct_conv_suits, stride 1, padding
/// no wider than the dilated kernel minus one, so the transposed convolution has pads >= 0).
bool direct_conv_backward_suits(const Window2d& p);

/// gx = d/dx <gy, conv(x, w)> (the transposed convolution), as a stride-1 convolution of gy
/// padded by (k-1)*d - pad with the kernel flipped and its channel axes swapped; gx is
/// written, not accumulated. gy may be masked first: when relu_mask is non-null, gy is taken
/// as gy * (relu_mask > 0 ? 1 : 0) (the gradient through a fused Relu whose output is relu_mask).
void direct_conv_backward_data(const Window2d& p, const float* w, const float* gy, const float* relu_mask, float* gx);

// Entry points of the per-width kernels (conv_direct.cpp: 8 floats; conv_direct_avx512.cpp: 16).
bool direct_conv_have_16();
int direct_conv_ocb(int lanes, int64_t cout);   ///< output channels per register tile: 1, 4 or 8
int64_t direct_conv_tile_width(int lanes, int ocb);  ///< positions per register tile
/// Output-channel blocks [ob_begin, ob_end) of one image (block ob: channels ob*ocb ...).
void direct_conv_tiles_8(const DirectConvImage& g, int ocb, int64_t ob_begin, int64_t ob_end, const float* xp,
                         const float* wpack, const float* bias, bool relu, float* yflat);
void direct_conv_tiles_16(const DirectConvImage& g, int ocb, int64_t ob_begin, int64_t ob_end, const float* xp,
                          const float* wpack, const float* bias, bool relu, float* yflat);

}  // namespace mlaudit::engine::detail
