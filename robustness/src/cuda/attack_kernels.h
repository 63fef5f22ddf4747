#pragma once
// Launchers of the robustness module's CUDA kernels (attack_kernels.cu): the steps of the device
// PGD, APGD, Square and smoothing loops (attack_loops.cpp). Plain C++ declarations: `stream` is the
// Program's cudaStream_t passed as void*; every launcher checks the launch and throws on failure.
// tests/cuda compiles the same kernels for the host (MLAUDIT_CUDA_HOST_EMULATION).
#include <cstdint>

namespace mlaudit::robustness::cuda {

/// y[i] = value for i < n.
void launch_fill(float* y, int64_t n, float value, void* stream);
/// y[i] = a[i] / b[i] for i < n (float division).
void launch_divide(const float* a, const float* b, float* y, int64_t n, void* stream);

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
// ---- APGD (attack_loops.cpp apgd_on; per-row state as float arrays, 0/1 for flags) ----

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

// ---- APGD-DLR / APGD-T and Square (attack_loops.cpp apgd_on / square_on) ----

/// APGD's losses (losses.cpp): cross-entropy, DLR (Croce & Hein 2020, eq. 6), targeted DLR (eq. 7).
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

}  // namespace mlaudit::robustness::cuda
