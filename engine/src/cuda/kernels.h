#pragma once
// Launchers for the CUDA op kernels (kernels.cu). Plain C++ declarations only:
// the executor (cuda_session.cpp) calls these without seeing CUDA headers
// (ONNX Runtime's clip.cc / clip_impl.h / clip_impl.cu split). `stream` is a
// cudaStream_t passed as void*. Every launcher checks the launch and throws
// mlaudit::Error naming the kernel on failure.
#include <cstdint>

namespace mlaudit::engine::cuda {

constexpr int kMaxRank = 6;

/// Broadcast iteration over an output of up to 6 dims: per-operand element strides (0 on broadcast dims).
struct BroadcastDesc {
  int rank = 0;
  int64_t out_dims[kMaxRank] = {};
  int64_t a_strides[kMaxRank] = {};
  int64_t b_strides[kMaxRank] = {};
};

/// Sum over the reduced dims of an input: out_dims has the reduced dims set to 1,
/// red_dims has the kept dims set to 1, in_strides are the input's element strides.
struct ReduceDesc {
  int rank = 0;
  int64_t out_dims[kMaxRank] = {};
  int64_t red_dims[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
};

/// Elementwise unary ops with their ONNX attributes a (alpha, min) and b (beta, max).
enum class UnaryOp : int { Neg, Abs, Relu, LeakyRelu, Sigmoid, Tanh, Exp, Log, Sqrt, Erf, Elu, Softplus, HardSigmoid, Sign, Clip };
/// Broadcasting binary ops (Min/Max serve the variadic Min/Max fold).
enum class BinaryOp : int { Add, Sub, Mul, Div, Pow, Min, Max };

/// 2-D convolution / pooling geometry (NCHW), as ops_nn.cpp resolves it.
struct ConvGeom {
  int64_t n, c, h, w, oc, kh, kw, oh, ow, group, sh, sw, dh, dw, pt, pl;
};

void launch_fill(float* y, int64_t n, float value, void* stream);
/// y = a * x + b * y (elementwise, same length); y is not read when b == 0 (so y = a * x scales in place).
void launch_axpby(const float* x, float* y, int64_t n, float a, float b, void* stream);
void launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float a, float b, void* stream);
/// gx = gy * f'(x, y) for the op (Sign: 0; Clip: passes where a <= x <= b).
void launch_unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float a,
                           float b, void* stream);
void launch_binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastDesc& d, void* stream);
/// Gradients of y = op(a, b) at the broadcast output shape (ga_full / gb_full may be null); y is the forward output.
void launch_binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                            float* ga_full, float* gb_full, const BroadcastDesc& d, void* stream);
/// Variadic Min/Max gradient to the first input attaining the extremum: operand `a` is input k
/// (broadcast), `b` is unused; taken (output-sized, 0/1) marks elements already given away.
void launch_extremum_grad(const float* x, const float* y, const float* gy, float* taken, float* gx_full,
                          const BroadcastDesc& d, void* stream);
/// y[o] = scale * sum over the reduced dims (double accumulation).
void launch_reduce_sum(const float* x, float* y, const ReduceDesc& d, double scale, void* stream);
/// y[i] = x[map[i]] (map[i] < 0: y[i] = fill when overwrite, else y[i] unchanged).
void launch_gather_map(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite, void* stream);
/// gx[map[i]] += gy[i] for map[i] >= 0 (atomic: maps may repeat, e.g. Gather).
void launch_scatter_add_map(const float* gy, const int64_t* map, float* gx, int64_t n, void* stream);
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
/// y = a[c] * x + b[c] over [n, c, area] (BatchNormalization folded to a scale and shift).
void launch_channel_affine(const float* x, const float* a, const float* b, float* y, int64_t n, int64_t c, int64_t area,
                           void* stream);
/// gx[i] = gy[i / area] * scale (GlobalAveragePool backward).
void launch_expand_scale(const float* gy, float* gx, int64_t n, int64_t area, float scale, void* stream);
/// Softmax / LogSoftmax over `len` with stride `inner`, one thread per (outer, inner) row.
void launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, bool log, void* stream);
void launch_softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t len, int64_t inner,
                             bool log, void* stream);

}  // namespace mlaudit::engine::cuda
