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

// ---- fused attack / smoothing kernels (accelerated.cpp) ----

/// Cross-entropy seed d/dlogits sum_i CE(logits_i, y_i) = softmax(logits_i) - onehot(y_i); rows [n, k].
void launch_ce_seed(const float* logits, const int64_t* labels, float* seed, int64_t n, int64_t k, void* stream);
/// correct[i] = argmax(logits_i) == labels[i] (first maximum), as 0/1 floats.
void launch_correct(const float* logits, const int64_t* labels, float* correct, int64_t n, int64_t k, void* stream);
/// counts[argmax(logits_i)] += 1 (first maximum; counts has k entries).
void launch_argmax_histogram(const float* logits, int64_t n, int64_t k, unsigned long long* counts, void* stream);
/// Per-row L2 norms of [n, d].
void launch_row_norms(const float* x, float* norms, int64_t n, int64_t d, void* stream);
/// One PGD step (Madry et al. 2018, eq. 2) on [n, d]: L-inf: x += alpha*sign(g), L2: x += alpha*g/||g||;
/// then projection to the eps-ball around x0 (L-inf: clamp; L2: rescale, needs ball_norms after the step)
/// and to the box [lo, hi]. l2: norms holds ||g_i|| on entry.
void launch_pgd_step_linf(float* x, const float* x0, const float* g, int64_t n_elems, float alpha, float eps, float lo,
                          float hi, void* stream);
void launch_l2_step(float* x, const float* g, const float* gnorms, int64_t n, int64_t d, float alpha, void* stream);
/// x = x0 + (x - x0) * min(1, eps / ||x - x0||) per row, then clamp to [lo, hi].
void launch_l2_project(float* x, const float* x0, float* tmp_norms, int64_t n, int64_t d, float eps, float lo, float hi,
                       void* stream);
// ---- APGD (accelerated.cpp apgd_on; per-row state as float arrays, 0/1 for flags) ----

/// out[i] = max_j |x[i, j]| (rows of [n, d]).
void launch_row_absmax(const float* x, float* out, int64_t n, int64_t d, void* stream);
/// xa = clamp(x0 + eps * t / (||t_row|| + 1e-12), lo, hi) with the row norms given (APGD's random start).
void launch_scaled_start(float* xa, const float* x0, const float* t, const float* tnorm, int64_t n, int64_t d, float eps,
                         float lo, float hi, void* stream);
/// Per row of [n, k] logits: CE loss, its logit gradient softmax - onehot, and argmax == label as 0/1.
void launch_ce_loss_seed(const float* logits, const int64_t* labels, float* seed, float* loss, float* correct, int64_t n,
                         int64_t k, void* stream);
/// APGD L-inf momentum step (eq. 2, a = momentum weight) on active rows, per-row step sizes.
void launch_apgd_step_linf(float* x, float* x_old, const float* x0, const float* g, const float* step, const float* active,
                           int64_t n, int64_t d, float a, float eps, float lo, float hi, void* stream);
/// APGD L2: z = x + step g / (||g|| + 1e-12) on active rows (z = x elsewhere).
void launch_apgd_l2_grad_step(const float* x, const float* g, const float* gnorm, const float* step, const float* active,
                              float* z, int64_t n, int64_t d, void* stream);
/// APGD momentum combination x' = x + a (z - x) + (1 - a)(x - x_old), x_old = x, on active rows.
void launch_apgd_momentum(float* x, float* x_old, const float* z, const float* active, int64_t n, int64_t d, float a,
                          void* stream);
/// After an evaluation: loss-increase counts, best loss, rows to copy to the best point (improve)
/// and rows newly misclassified (broke: found = 1, active = 0). first: the start point.
void launch_apgd_track(const float* loss, float* loss_prev, float* loss_best, float* inc, float* active,
                       const float* correct, float* found, float* improve, float* broke, bool first, int64_t n, void* stream);
/// Checkpoint conditions (Sec. 3.2): reduce = inc <= rho k or (not reduced last and no improvement);
/// halves step and sets restart for those rows; resets inc.
void launch_apgd_checkpoint(float* inc, float* reduced_last, float* loss_best_last, const float* loss_best, float* step,
                            const float* active, float* restart, float k_period, float rho, int64_t n, void* stream);
/// dst rows = src rows where mask[row] != 0 ([n, d]).
void launch_masked_row_copy(const float* src, float* dst, const float* mask, int64_t n, int64_t d, void* stream);
/// x = clamp(x0 + eps * (2u - 1), lo, hi) for u uniform in (0, 1] (random start, L-inf).
void launch_uniform_start(float* x, const float* x0, const float* u, int64_t n_elems, float eps, float lo, float hi,
                          void* stream);
/// y[i] = x[i % d] + sigma * noise[i] for i < n*d (smoothing samples of one image).
void launch_add_noise(const float* x, const float* noise, float* y, int64_t n, int64_t d, float sigma, void* stream);
/// Smoothing samples y[i] = x[i % d] + sigma * z for i < rows*d, z ~ N(0, 1) from counter-based Philox4x32-10
/// keyed by `seed` at global element index base + i (independent of how the samples are batched).
void launch_noisy_samples(const float* x, float* y, int64_t rows, int64_t d, float sigma, uint64_t seed, int64_t base,
                          void* stream);
/// Copy with per-sample source: y[i] = x[(i / d) % rows * d + i % d].
void launch_tile_rows(const float* x, float* y, int64_t rows, int64_t d, int64_t n_out, void* stream);

// ---- APGD-DLR / APGD-T and Square (accelerated.cpp apgd_on / square_on) ----

/// APGD's losses (robustness/src/losses.cpp): cross-entropy, DLR (Croce & Hein 2020, eq. 6), targeted DLR (eq. 7).
enum class ApgdLoss : int { CrossEntropy = 0, Dlr = 1, DlrTargeted = 2 };
/// y[i] for i < n: Philox4x32-10 draw at global element index base + i keyed by `seed` (independent of
/// the batch split): uniform in (-1, 1] (normal = false) or standard normal (Box-Muller).
void launch_philox_fill(float* y, int64_t n, uint64_t seed, int64_t base, bool normal, void* stream);
/// y [rows, d]: Philox4x32-10 draws keyed by `seed` with counter (rowid[r], element): uniform in (-1, 1]
/// (normal = false) or standard normal; rowid holds each row's index in the caller's whole input
/// (device int64), so a row's draws do not depend on the batch it is processed in.
void launch_philox_rows(float* y, const int64_t* rowid, int64_t rows, int64_t d, uint64_t seed, bool normal, void* stream);
/// Per row of [n, k] logits: the loss, d loss / d logits into seed, and argmax == label as 0/1.
/// targets (DlrTargeted only): the target class per row.
void launch_apgd_loss_seed(ApgdLoss loss, const float* logits, const int64_t* labels, const int64_t* targets, float* seed,
                           float* loss_out, float* correct, int64_t n, int64_t k, void* stream);
/// out[i] = the class of rank `rank` (0 = largest logit) in row i; ties in index order (stable sort).
void launch_rank_class(const float* logits, int64_t* out, int64_t n, int64_t k, int64_t rank, void* stream);
/// Image layout of Square: [c, h, w] per sample, d = c*h*w (tabular inputs: c = h = 1, w = d).
struct SquareGeom {
  int64_t c, h, w, d;
};
/// Square L-inf init: vertical stripes, xb = clamp(x0 + eps * sign(row, channel, column), lo, hi) over rows x d;
/// Philox keyed by (seed, row_base + row).
void launch_square_init_linf(float* xb, const float* x0, const SquareGeom& g, int64_t rows, float eps, float lo, float hi,
                             uint64_t seed, int64_t row_base, void* stream);
/// Square L-inf proposal for the `rows` working rows (batch rows rowid[r]; rows with margin <= 0 are copied
/// unchanged): an side x side window at a random corner moved by 2 eps * sign per channel, projected; writes
/// xn [rows, d]. params ([rows, 3] ints) and signs ([rows, c]) are scratch.
void launch_square_propose_linf(const float* xb, const float* x0, const int64_t* rowid, const float* margin, int* params,
                                float* signs, float* xn, const SquareGeom& g, int64_t rows, int64_t side, float eps,
                                float lo, float hi, uint64_t seed, int64_t row_base, uint32_t it, void* stream);
/// Square margin z_y - max_{j != y} z_j of the working rows' logits [rows, k]; init: sets margin and queries = 1;
/// otherwise rows with margin > 0 count a query and accept (accept[r] = 1) a lower margin.
void launch_square_margin(const float* logits, const int64_t* labels, const int64_t* rowid, float* margin, float* queries,
                          float* accept, int64_t rows, int64_t k, bool init, void* stream);
/// Square L2 init (square.cpp): delta over rows x d = a grid of side x side tiles from (sp, sp), ntr x ntc of them,
/// each the `pattern` (unit-norm meta pseudo-Gaussian, side x side, row-major) randomly transposed, times a random
/// sign per channel; 0 off the tiles. The caller scales delta to norm eps.
void launch_square_init_l2(float* delta, const float* pattern, const SquareGeom& g, int64_t rows, int64_t side, int64_t sp,
                           int64_t ntr, int64_t ntc, uint64_t seed, int64_t row_base, void* stream);
/// Square L2 proposal for the working rows (square.cpp's L2 step: two windows, the budget left in the ball, the
/// pattern plus the normalised old window per channel); writes xn [rows, d]. rowp ([rows, 8]) and chp ([rows, c, 3]) are scratch.
void launch_square_propose_l2(const float* xb, const float* x0, const int64_t* rowid, const float* margin,
                              const float* pattern, float* rowp, float* chp, float* xn, const SquareGeom& g, int64_t rows,
                              int64_t side, float eps, float lo, float hi, uint64_t seed, int64_t row_base, uint32_t it,
                              void* stream);
/// xb[rowid[r]] = xn[r] where accept[r] != 0 (rows of d floats).
void launch_square_accept_copy(const float* xn, float* xb, const int64_t* rowid, const float* accept, int64_t rows,
                               int64_t d, void* stream);

}  // namespace mlaudit::engine::cuda
