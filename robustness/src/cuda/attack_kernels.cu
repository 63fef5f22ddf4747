// CUDA kernels of the robustness module's device loops (attack_loops.cpp: PGD, APGD-CE/DLR/T,
// Square L-inf/L2, smoothing sampling) with their host launchers (attack_kernels.h). One thread per
// element or row in grid-stride loops; the CPU twins are apgd.cpp, square.cpp, losses.cpp (top4.h is
// shared with them) and smoothing.cpp. Launch helpers: mlaudit/engine/device_kernels.cuh.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attack_kernels.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "top4.h"

namespace mlaudit::robustness::cuda {

namespace {

__global__ void fill_kernel(float* y, int64_t n, float v) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = v;
}

__global__ void divide_kernel(const float* a, const float* b, float* y, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = a[i] / b[i];
}

// ---- attack / smoothing ----

__device__ int64_t row_argmax(const float* row, int64_t k) {
  int64_t best = 0;
  for (int64_t j = 1; j < k; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

__global__ void ce_seed_kernel(const float* logits, const int64_t* labels, float* seed, int64_t k, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const float* row = logits + i * k;
    float m = row[row_argmax(row, k)];
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += exp(double(row[j] - m));
    for (int64_t j = 0; j < k; ++j) seed[i * k + j] = float(exp(double(row[j] - m)) / s) - (labels[i] == j ? 1.f : 0.f);
  }
}

__global__ void correct_kernel(const float* logits, const int64_t* labels, float* correct, int64_t k, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) correct[i] = row_argmax(logits + i * k, k) == labels[i] ? 1.f : 0.f;
}

#ifdef MLAUDIT_CUDA_HOST_EMULATION
__global__ void argmax_histogram_kernel(const float* logits, int64_t k, unsigned long long* counts, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) atomicAdd(counts + row_argmax(logits + i * k, k), 1ULL);
}
#else
// Block-local histogram in shared memory (most samples land on one class: one global atomic per
// class per block instead of one per sample on the same address); k <= kHistMax classes.
constexpr int kHistMax = 1024;
__global__ void argmax_histogram_kernel(const float* logits, int64_t k, unsigned long long* counts, int64_t n) {
  __shared__ unsigned int local[kHistMax];
  for (int64_t c = threadIdx.x; c < k; c += blockDim.x) local[c] = 0;
  __syncthreads();
  MLAUDIT_GRID_STRIDE(i, n) atomicAdd(local + row_argmax(logits + i * k, k), 1u);
  __syncthreads();
  for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
    if (local[c]) atomicAdd(counts + c, (unsigned long long)local[c]);
}
__global__ void argmax_histogram_global_kernel(const float* logits, int64_t k, unsigned long long* counts, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) atomicAdd(counts + row_argmax(logits + i * k, k), 1ULL);
}
#endif

__global__ void row_norms_kernel(const float* x, float* norms, int64_t d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(x[i * d + j]) * x[i * d + j];
    norms[i] = float(sqrt(s));
  }
}

__global__ void pgd_step_linf_kernel(float* x, const float* x0, const float* g, float alpha, float eps, float lo, float hi,
                                     int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    float s = g[i] > 0 ? 1.f : (g[i] < 0 ? -1.f : 0.f);
    float v = x[i] + alpha * s;
    v = fminf(fmaxf(v, x0[i] - eps), x0[i] + eps);
    x[i] = fminf(fmaxf(v, lo), hi);
  }
}

__global__ void l2_step_kernel(float* x, const float* g, const float* gnorms, int64_t d, float alpha, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    float nrm = gnorms[i / d];
    x[i] += nrm > 0 ? alpha * g[i] / nrm : 0.f;
  }
}

__global__ void diff_kernel(const float* x, const float* x0, float* y, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = x[i] - x0[i];
}

__global__ void l2_project_kernel(float* x, const float* x0, const float* dnorms, int64_t d, float eps, float lo, float hi,
                                  int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    float nrm = dnorms[i / d];
    float f = nrm > eps ? eps / nrm : 1.f;
    float v = x0[i] + (x[i] - x0[i]) * f;
    x[i] = fminf(fmaxf(v, lo), hi);
  }
}

// ---- APGD (Croce & Hein 2020, Algorithm 1; robustness/src/apgd.cpp is the CPU twin) ----

__global__ void row_absmax_kernel(const float* x, float* out, int64_t d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    float m = 0.f;
    for (int64_t j = 0; j < d; ++j) m = fmaxf(m, fabsf(x[i * d + j]));
    out[i] = m;
  }
}

__global__ void scaled_start_kernel(float* xa, const float* x0, const float* t, const float* tnorm, int64_t d, float eps,
                                    float lo, float hi, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) xa[i] = fminf(fmaxf(x0[i] + eps * t[i] / (tnorm[i / d] + 1e-12f), lo), hi);
}

// Per-row cross-entropy, its logit gradient (softmax - onehot) and whether argmax == label.
__global__ void ce_loss_seed_kernel(const float* logits, const int64_t* labels, float* seed, float* loss, float* correct,
                                    int64_t k, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const float* row = logits + i * k;
    int64_t am = row_argmax(row, k);
    float m = row[am];
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += exp(double(row[j] - m));
    for (int64_t j = 0; j < k; ++j) seed[i * k + j] = float(exp(double(row[j] - m)) / s) - (labels[i] == j ? 1.f : 0.f);
    loss[i] = float(log(s) + double(m) - double(row[labels[i]]));
    correct[i] = am == labels[i] ? 1.f : 0.f;
  }
}

__device__ float clamp_ball_box(float v, float c, float eps, float lo, float hi) {
  return fminf(fmaxf(fminf(fmaxf(v, c - eps), c + eps), lo), hi);
}

// L-inf momentum step of active rows: z = P(x + eta sign(g)); x' = P(x + a (z - x) + (1 - a)(x - x_old)); x_old = x.
__global__ void apgd_step_linf_kernel(float* x, float* x_old, const float* x0, const float* g, const float* step,
                                      const float* active, int64_t d, float a, float eps, float lo, float hi, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t r = i / d;
    if (active[r] == 0.f) continue;
    float xi = x[i], c = x0[i];
    float sg = g[i] > 0 ? 1.f : (g[i] < 0 ? -1.f : 0.f);
    float z = clamp_ball_box(xi + step[r] * sg, c, eps, lo, hi);
    z = xi + a * (z - xi) + (1.f - a) * (xi - x_old[i]);
    x_old[i] = xi;
    x[i] = clamp_ball_box(z, c, eps, lo, hi);
  }
}

// L2, first half: z = x + eta g / (||g|| + 1e-12) for active rows (then projected by the caller).
__global__ void apgd_l2_grad_step_kernel(const float* x, const float* g, const float* gnorm, const float* step,
                                         const float* active, float* z, int64_t d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t r = i / d;
    z[i] = active[r] != 0.f ? x[i] + step[r] * g[i] / (gnorm[r] + 1e-12f) : x[i];
  }
}

// L2, second half: x' = x + a (z - x) + (1 - a)(x - x_old); x_old = x (active rows; projected by the caller).
__global__ void apgd_momentum_kernel(float* x, float* x_old, const float* z, const float* active, int64_t d, float a,
                                     int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    if (active[i / d] == 0.f) continue;
    float xi = x[i];
    x[i] = xi + a * (z[i] - xi) + (1.f - a) * (xi - x_old[i]);
    x_old[i] = xi;
  }
}

// After an evaluation: count loss increases, track the best loss, mark rows to copy
// (improve: x/grad -> best) and rows broken (misclassified: x -> adv, row deactivated).
__global__ void apgd_track_kernel(const float* loss, float* loss_prev, float* loss_best, float* inc, float* active,
                                  const float* correct, float* found, float* improve, float* broke, int first, int64_t n) {
  MLAUDIT_GRID_STRIDE(r, n) {
    improve[r] = 0.f;
    broke[r] = 0.f;
    if (active[r] == 0.f) continue;
    if (first) {
      loss_best[r] = loss[r];
      improve[r] = 1.f;
    } else {
      if (loss[r] > loss_prev[r]) inc[r] += 1.f;
      if (loss[r] > loss_best[r]) {
        loss_best[r] = loss[r];
        improve[r] = 1.f;
      }
    }
    loss_prev[r] = loss[r];
    if (correct[r] == 0.f) {
      found[r] = 1.f;
      broke[r] = 1.f;
      active[r] = 0.f;
    }
  }
}

// Checkpoint: halve eta and restart from the best point when (1) at most rho * k of the last k
// steps increased the loss or (2) eta was not reduced last time and the best loss did not improve.
__global__ void apgd_checkpoint_kernel(float* inc, float* reduced_last, float* loss_best_last, const float* loss_best,
                                       float* step, const float* active, float* restart, float k_period, float rho,
                                       int64_t n) {
  MLAUDIT_GRID_STRIDE(r, n) {
    restart[r] = 0.f;
    if (active[r] != 0.f) {
      bool osc = inc[r] <= k_period * rho;
      bool no_impr = reduced_last[r] == 0.f && loss_best_last[r] >= loss_best[r];
      bool reduce = osc || no_impr;
      reduced_last[r] = reduce ? 1.f : 0.f;
      loss_best_last[r] = loss_best[r];
      if (reduce) {
        step[r] *= 0.5f;
        restart[r] = 1.f;
      }
    }
    inc[r] = 0.f;
  }
}

// dst[row] = src[row] for rows with mask[row] != 0.
__global__ void masked_row_copy_kernel(const float* src, float* dst, const float* mask, int64_t d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    if (mask[i / d] != 0.f) dst[i] = src[i];
  }
}

__global__ void uniform_start_kernel(float* x, const float* x0, const float* u, float eps, float lo, float hi, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) x[i] = fminf(fmaxf(x0[i] + eps * (2.f * u[i] - 1.f), lo), hi);
}

__global__ void add_noise_kernel(const float* x, const float* noise, float* y, int64_t d, float sigma, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = x[i % d] + sigma * noise[i];
}

// Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"): a counter-based
// generator, so element e's noise depends only on (seed, e) — not on the batch split or the thread
// layout — and the same code runs in the host emulation.
__device__ inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

__device__ inline void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c[0], hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c[2], hi1, lo1);
    uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// Smoothing samples without a noise buffer: y[i] = x[i % d] + sigma * z_{base + i}, z standard normal
// from Philox (counter = the element's global index rounded down to 4) and Box-Muller.
__global__ void noisy_samples_kernel(const float* x, float* y, int64_t d, float sigma, uint32_t k0, uint32_t k1,
                                     int64_t base, int64_t first_group, int64_t groups, int64_t n) {
  MLAUDIT_GRID_STRIDE(t, groups) {
    const int64_t g0 = (first_group + t) * 4;  // global index of the group's first element
    uint32_t c[4] = {uint32_t(uint64_t(g0)), uint32_t(uint64_t(g0) >> 32), 0x6d6c6175u /* "mlau" */, 0u};
    philox4x32_10(c, k0, k1);
    float z[4];
    for (int h = 0; h < 2; ++h) {
      // u1 in (0, 1], u2 in [0, 1): Box-Muller's radius and angle.
      float u1 = (float(c[2 * h] >> 8) + 1.f) * (1.f / 16777216.f);
      float u2 = float(c[2 * h + 1] >> 8) * (1.f / 16777216.f);
      float r = sqrtf(-2.f * logf(u1));
      z[2 * h] = r * cosf(6.283185307179586f * u2);
      z[2 * h + 1] = r * sinf(6.283185307179586f * u2);
    }
    for (int q = 0; q < 4; ++q) {
      int64_t i = g0 + q - base;  // index within this batch
      if (i >= 0 && i < n) y[i] = x[i % d] + sigma * z[q];
    }
  }
}

__global__ void tile_rows_kernel(const float* x, float* y, int64_t rows, int64_t d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = x[((i / d) % rows) * d + i % d];
}

// ---- APGD-DLR / APGD-T losses, counter-based draws, Square L-inf (attack_loops.cpp) ----

// Four 32-bit Philox words for (seed, row, it, block): a row's draws depend only on its global
// index and the iteration, never on the batch split or on which rows are still active.
__device__ inline void philox_block(uint64_t seed, uint64_t row, uint32_t it, uint32_t block, uint32_t out[4]) {
  out[0] = uint32_t(row);
  out[1] = uint32_t(row >> 32);
  out[2] = it;
  out[3] = block;
  philox4x32_10(out, uint32_t(seed), uint32_t(seed >> 32));
}
__device__ inline uint32_t philox_word(uint64_t seed, uint64_t row, uint32_t it, uint32_t idx) {
  uint32_t o[4];
  philox_block(seed, row, it, idx >> 2, o);
  return o[idx & 3u];
}

// y[i] = draw at global element index base + i: uniform t = 2u - 1 in (-1, 1] (u in (0, 1]) or
// standard normal (Box-Muller), four per Philox call (counter = index rounded down to 4).
__global__ void philox_fill_kernel(float* y, uint32_t k0, uint32_t k1, int64_t base, int64_t first_group, int64_t groups,
                                   int64_t n, int normal) {
  MLAUDIT_GRID_STRIDE(t, groups) {
    const int64_t g0 = (first_group + t) * 4;
    uint32_t c[4] = {uint32_t(uint64_t(g0)), uint32_t(uint64_t(g0) >> 32), 0x61706764u /* "apgd" */, 0u};
    philox4x32_10(c, k0, k1);
    float z[4];
    for (int h = 0; h < 2; ++h) {
      float u1 = (float(c[2 * h] >> 8) + 1.f) * (1.f / 16777216.f);  // (0, 1]
      float u2 = (float(c[2 * h + 1] >> 8) + 1.f) * (1.f / 16777216.f);
      if (normal) {
        float r = sqrtf(-2.f * logf(u1));
        z[2 * h] = r * cosf(6.283185307179586f * u2);
        z[2 * h + 1] = r * sinf(6.283185307179586f * u2);
      } else {
        z[2 * h] = 2.f * u1 - 1.f;
        z[2 * h + 1] = 2.f * u2 - 1.f;
      }
    }
    for (int q = 0; q < 4; ++q) {
      int64_t i = g0 + q - base;
      if (i >= 0 && i < n) y[i] = z[q];
    }
  }
}

// y[r, j] = draw for (original row rowid[r], element j) keyed by `seed`: uniform 2u - 1 in (-1, 1]
// (word j % 4 of Philox block j / 4) or standard normal (Box-Muller on words 0, 1 of block j / 2:
// cos for even j, sin for odd j). Independent of the batch a row lands in.
__global__ void philox_rows_kernel(float* y, const int64_t* rowid, int64_t d, uint64_t seed, int normal, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / d, j = i % d;
    const uint64_t row = uint64_t(rowid[r]);
    uint32_t c[4];
    if (normal) {
      philox_block(seed, row, 0x61706764u /* "apgd" */, uint32_t(j / 2), c);
      const float u1 = (float(c[0] >> 8) + 1.f) * (1.f / 16777216.f);
      const float u2 = float(c[1] >> 8) * (1.f / 16777216.f);
      const float rad = sqrtf(-2.f * logf(u1));
      y[i] = (j % 2 == 0) ? rad * cosf(6.283185307179586f * u2) : rad * sinf(6.283185307179586f * u2);
    } else {
      philox_block(seed, row, 0x61706764u, uint32_t(j / 4), c);
      y[i] = 2.f * ((float(c[j % 4] >> 8) + 1.f) * (1.f / 16777216.f)) - 1.f;
    }
  }
}

// Per-row loss, d loss / d logits and argmax == label for APGD's three losses (losses.cpp eval_loss):
// CE = logsumexp(z) - z_y; DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12) (Croce & Hein 2020,
// eq. 6); targeted DLR = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) (eq. 7).
__global__ void apgd_loss_seed_kernel(int loss_kind, const float* logits, const int64_t* labels, const int64_t* targets,
                                      float* seed, float* loss, float* correct, int64_t k, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const float* z = logits + i * k;
    float* g = seed + i * k;
    const int64_t y = labels[i];
    int64_t am = row_argmax(z, k);
    correct[i] = am == y ? 1.f : 0.f;
    if (loss_kind == 0) {
      float m = z[am];
      double s = 0;
      for (int64_t j = 0; j < k; ++j) s += exp(double(z[j] - m));
      for (int64_t j = 0; j < k; ++j) g[j] = float(exp(double(z[j] - m)) / s) - (y == j ? 1.f : 0.f);
      loss[i] = float(log(s) + double(m) - double(z[y]));
      continue;
    }
    for (int64_t j = 0; j < k; ++j) g[j] = 0.f;
    int64_t t[4];
    detail::top4(z, k, t);
    if (loss_kind == 1) {
      const int64_t other = t[0] == y ? t[1] : t[0];
      const double num = double(z[y]) - z[other];
      const double den = double(z[t[0]]) - z[t[2]] + 1e-12;
      loss[i] = float(-num / den);
      g[y] += float(-1.0 / den);
      g[other] += float(1.0 / den);
      g[t[0]] += float(num / (den * den));
      g[t[2]] -= float(num / (den * den));
    } else {
      const int64_t tg = targets[i];
      const double num = double(z[y]) - z[tg];
      const double den = double(z[t[0]]) - 0.5 * (double(z[t[2]]) + z[t[3]]) + 1e-12;
      const double q = num / (den * den);
      loss[i] = float(-num / den);
      g[y] += float(-1.0 / den);
      g[tg] += float(1.0 / den);
      g[t[0]] += float(q);
      g[t[2]] -= float(0.5 * q);
      g[t[3]] -= float(0.5 * q);
    }
  }
}

// out[i] = the class of rank `rank` (0 = largest) in row i, ties in index order (std::stable_sort descending).
__global__ void rank_class_kernel(const float* logits, int64_t* out, int64_t k, int64_t rank, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const float* z = logits + i * k;
    out[i] = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t above = 0;
      for (int64_t l = 0; l < k; ++l) above += (z[l] > z[j] || (z[l] == z[j] && l < j)) ? 1 : 0;
      if (above == rank) {
        out[i] = j;
        break;
      }
    }
  }
}

// Square L-inf initialisation (Andriushchenko et al. 2020, Alg. 2 init): vertical stripes, one
// random sign per (row, channel, column): xb = clamp(x0 + eps * sign, lo, hi).
__global__ void square_init_linf_kernel(float* xb, const float* x0, SquareGeom g, float eps, float lo, float hi, uint64_t seed,
                                        int64_t row_base, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / g.d, j = i % g.d, col = j % g.w, ch = j / (g.h * g.w);
    const uint32_t word = philox_word(seed, uint64_t(row_base + r), 0xFFFFFFFFu, uint32_t(ch * g.w + col));
    const float sgn = (word & 1u) ? 1.f : -1.f;
    xb[i] = fminf(fmaxf(x0[i] + eps * sgn, lo), hi);
  }
}

// Square L-inf proposal, per working row (rows whose margin is still > 0): the s x s window's
// corner uniform in [0, h - s) x [0, w - s) and one sign per channel, signs redrawn (up to 20
// tries) while x0 + 2 eps sign would leave the window unchanged (square.cpp, the reference's loop).
// params[3r..3r+2] = (vh, vw, s), s = 0 for rows that are not proposed.
__global__ void square_propose_rows_kernel(const float* xb, const float* x0, const int64_t* rowid, const float* margin,
                                           int* params, float* signs, SquareGeom g, int64_t s, float eps, float lo,
                                           float hi, uint64_t seed, int64_t row_base, uint32_t it, int64_t n) {
  MLAUDIT_GRID_STRIDE(r, n) {
    const int64_t gr = rowid[r];
    if (!(margin[gr] > 0.f)) {
      params[3 * r + 2] = 0;
      continue;
    }
    const uint64_t key = uint64_t(row_base + gr);
    uint32_t o[4];
    philox_block(seed, key, it, 0, o);
    const int64_t vh = g.h - s <= 1 ? 0 : int64_t(o[0] % uint32_t(g.h - s));
    const int64_t vw = g.w - s <= 1 ? 0 : int64_t(o[1] % uint32_t(g.w - s));
    const float* a = x0 + gr * g.d;
    const float* b = xb + gr * g.d;
    float* sg = signs + r * g.c;
    for (int t = 0; t < 20; ++t) {
      for (int64_t ch = 0; ch < g.c; ++ch)
        sg[ch] = (philox_word(seed, key, it, uint32_t(4 + t * g.c + ch)) & 1u) ? 1.f : -1.f;
      bool same = true;
      for (int64_t ch = 0; ch < g.c && same; ++ch)
        for (int64_t p = 0; p < s && same; ++p)
          for (int64_t q = 0; q < s && same; ++q) {
            const int64_t e = (ch * g.h + vh + p) * g.w + vw + q;
            same = fabsf(fminf(fmaxf(a[e] + 2.f * eps * sg[ch], lo), hi) - b[e]) < 1e-7f;
          }
      if (!same) break;
    }
    params[3 * r] = int(vh);
    params[3 * r + 1] = int(vw);
    params[3 * r + 2] = int(s);
  }
}

// xn[r] = xb[rowid[r]] with the window moved by 2 eps sign and projected to the ball and the box.
__global__ void square_propose_linf_kernel(const float* xb, const float* x0, const int64_t* rowid, const int* params,
                                           const float* signs, float* xn, SquareGeom g, float eps, float lo, float hi,
                                           int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / g.d, j = i % g.d, gr = rowid[r];
    float v = xb[gr * g.d + j];
    const int s = params[3 * r + 2];
    if (s > 0) {
      const int64_t col = j % g.w, row = (j / g.w) % g.h, ch = j / (g.h * g.w);
      const int64_t vh = params[3 * r], vw = params[3 * r + 1];
      if (row >= vh && row < vh + s && col >= vw && col < vw + s)
        v = clamp_ball_box(v + 2.f * eps * signs[r * g.c + ch], x0[gr * g.d + j], eps, lo, hi);
    }
    xn[i] = v;
  }
}

// Margin loss z_y - max_{j != y} z_j of working row r (Square's loss and success criterion).
// init: margin = it, queries = 1. Else, for rows with margin > 0: one more query, and accept
// (accept[r] = 1, margin lowered) when the proposal's margin is lower.
__global__ void square_margin_kernel(const float* logits, const int64_t* labels, const int64_t* rowid, float* margin,
                                     float* queries, float* accept, int64_t k, int init, int64_t n) {
  MLAUDIT_GRID_STRIDE(r, n) {
    const int64_t gr = rowid[r], y = labels[gr];
    const float* z = logits + r * k;
    float best = -3.402823466e38f;
    for (int64_t j = 0; j < k; ++j)
      if (j != y) best = fmaxf(best, z[j]);
    const float m = z[y] - best;
    accept[r] = 0.f;
    if (init) {
      margin[gr] = m;
      queries[gr] = 1.f;
      continue;
    }
    if (!(margin[gr] > 0.f)) continue;
    queries[gr] += 1.f;
    if (m < margin[gr]) {
      margin[gr] = m;
      accept[r] = 1.f;
    }
  }
}

// ---- Square L2 (square.cpp's L2 branch; pattern = the unit-norm meta pseudo-Gaussian of side s,
// computed on the host: only its transposition is random) ----

// Init: a grid of s x s tiles from (sp, sp), each with a random transposition and a random sign per
// channel: delta = pattern * sign on the tiles, 0 elsewhere (scaled to norm eps by the caller).
__global__ void square_init_l2_kernel(float* delta, const float* pattern, SquareGeom g, int64_t s, int64_t sp, int64_t ntr,
                                      int64_t ntc, uint64_t seed, int64_t row_base, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / g.d, j = i % g.d, col = j % g.w, row = (j / g.w) % g.h, ch = j / (g.h * g.w);
    float v = 0.f;
    if (row >= sp && col >= sp) {
      const int64_t tr = (row - sp) / s, tc = (col - sp) / s;
      if (tr < ntr && tc < ntc) {
        const int64_t a = (row - sp) % s, b = (col - sp) % s, tile = tr * ntc + tc;
        const uint64_t key = uint64_t(row_base + r);
        const bool tp = philox_word(seed, key, 0xFFFFFFFEu, uint32_t(tile * (g.c + 1))) & 1u;
        const float sgn = (philox_word(seed, key, 0xFFFFFFFEu, uint32_t(tile * (g.c + 1) + 1 + ch)) & 1u) ? 1.f : -1.f;
        v = (tp ? pattern[b * s + a] : pattern[a * s + b]) * sgn;
      }
    }
    delta[i] = v;
  }
}

// Per working row with margin > 0: windows w1 = (vh, vw), w2 = (vh2, vw2) of side s, transposition
// and channel signs; the budget sqrt(max(eps^2 - ||delta||^2, 0) / c + ||delta_{w1 u w2}||^2), per
// channel n1 = ||delta_{ch, w1}|| and wn = ||pattern * sign + delta_{ch, w1} / (1e-12 + n1)|| + 1e-12,
// and the norm dn of the new delta (w1 <- that window / wn * budget, w2 \ w1 <- 0) + 1e-12.
// rowp[8r..]: vh, vw, vh2, vw2, transposed, budget, dn, proposed; chp[3(rc + ch)..]: sign, n1, wn.
__global__ void square_l2_rows_kernel(const float* xb, const float* x0, const int64_t* rowid, const float* margin,
                                      const float* pattern, float* rowp, float* chp, SquareGeom g, int64_t s, float eps,
                                      uint64_t seed, int64_t row_base, uint32_t it, int64_t n) {
  MLAUDIT_GRID_STRIDE(r, n) {
    const int64_t gr = rowid[r];
    float* rp = rowp + 8 * r;
    if (!(margin[gr] > 0.f)) {
      rp[7] = 0.f;
      continue;
    }
    const uint64_t key = uint64_t(row_base + gr);
    uint32_t o[4];
    philox_block(seed, key, it, 0, o);
    const uint32_t hs = uint32_t(g.h - s), ws = uint32_t(g.w - s);
    const int64_t vh = hs <= 1 ? 0 : o[0] % hs, vw = ws <= 1 ? 0 : o[1] % ws;
    const int64_t vh2 = hs <= 1 ? 0 : o[2] % hs, vw2 = ws <= 1 ? 0 : o[3] % ws;
    const bool tp = philox_word(seed, key, it, 4) & 1u;
    const float* a0 = x0 + gr * g.d;
    const float* b0 = xb + gr * g.d;
    double ni = 0, nw = 0;
    for (int64_t ch = 0; ch < g.c; ++ch)
      for (int64_t row = 0; row < g.h; ++row)
        for (int64_t col = 0; col < g.w; ++col) {
          const int64_t e = (ch * g.h + row) * g.w + col;
          const double v = double(b0[e]) - double(a0[e]);
          ni += v * v;
          const bool in1 = row >= vh && row < vh + s && col >= vw && col < vw + s;
          const bool in2 = row >= vh2 && row < vh2 + s && col >= vw2 && col < vw2 + s;
          if (in1 || in2) nw += v * v;
        }
    const double budget = sqrt(fmax(double(eps) * eps - ni, 0.0) / double(g.c) + nw);
    double dn2 = ni - nw;
    for (int64_t ch = 0; ch < g.c; ++ch) {
      double n1 = 0;
      for (int64_t p = 0; p < s; ++p)
        for (int64_t q = 0; q < s; ++q) {
          const int64_t e = (ch * g.h + vh + p) * g.w + vw + q;
          const double v = double(b0[e]) - double(a0[e]);
          n1 += v * v;
        }
      n1 = sqrt(n1);
      const double sgn = (philox_word(seed, key, it, uint32_t(5 + ch)) & 1u) ? 1.0 : -1.0;
      double wn = 0;
      for (int64_t p = 0; p < s; ++p)
        for (int64_t q = 0; q < s; ++q) {
          const int64_t e = (ch * g.h + vh + p) * g.w + vw + q;
          const double mg = tp ? pattern[q * s + p] : pattern[p * s + q];
          const double v = mg * sgn + (double(b0[e]) - double(a0[e])) / (1e-12 + n1);
          wn += v * v;
        }
      const double wraw = sqrt(wn);
      wn = wraw + 1e-12;
      dn2 += budget * budget * (wraw / wn) * (wraw / wn);
      float* cp = chp + 3 * (r * g.c + ch);
      cp[0] = float(sgn);
      cp[1] = float(n1);
      cp[2] = float(wn);
    }
    rp[0] = float(vh);
    rp[1] = float(vw);
    rp[2] = float(vh2);
    rp[3] = float(vw2);
    rp[4] = tp ? 1.f : 0.f;
    rp[5] = float(budget);
    rp[6] = float(sqrt(fmax(dn2, 0.0)) + 1e-12);
    rp[7] = 1.f;
  }
}

// xn[r] = clamp(x0 + eps * delta' / dn, lo, hi) with delta' the row's new delta (rows not proposed: xb).
__global__ void square_l2_propose_kernel(const float* xb, const float* x0, const int64_t* rowid, const float* pattern,
                                         const float* rowp, const float* chp, float* xn, SquareGeom g, int64_t s, float eps,
                                         float lo, float hi, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / g.d, j = i % g.d, gr = rowid[r];
    const float* rp = rowp + 8 * r;
    const float xv = xb[gr * g.d + j], cv = x0[gr * g.d + j];
    if (rp[7] == 0.f) {
      xn[i] = xv;
      continue;
    }
    const int64_t col = j % g.w, row = (j / g.w) % g.h, ch = j / (g.h * g.w);
    const int64_t vh = int64_t(rp[0]), vw = int64_t(rp[1]), vh2 = int64_t(rp[2]), vw2 = int64_t(rp[3]);
    double v = double(xv) - double(cv);
    if (row >= vh && row < vh + s && col >= vw && col < vw + s) {
      const int64_t p = row - vh, q = col - vw;
      const float* cp = chp + 3 * (r * g.c + ch);
      const double mg = rp[4] != 0.f ? pattern[q * s + p] : pattern[p * s + q];
      v = (mg * cp[0] + v / (1e-12 + double(cp[1]))) / double(cp[2]) * double(rp[5]);
    } else if (row >= vh2 && row < vh2 + s && col >= vw2 && col < vw2 + s) {
      v = 0.0;
    }
    xn[i] = fminf(fmaxf(float(double(cv) + double(eps) * v / double(rp[6])), lo), hi);
  }
}

// xb[rowid[r]] = xn[r] for accepted rows.
__global__ void square_accept_copy_kernel(const float* xn, float* xb, const int64_t* rowid, const float* accept, int64_t d,
                                          int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t r = i / d;
    if (accept[r] != 0.f) xb[rowid[r] * d + i % d] = xn[i];
  }
}

}  // namespace

void launch_fill(float* y, int64_t n, float value, void* s) { MLAUDIT_LAUNCH(fill_kernel, n, s, y, n, value); }
void launch_divide(const float* a, const float* b, float* y, int64_t n, void* s) {
  MLAUDIT_LAUNCH(divide_kernel, n, s, a, b, y, n);
}
void launch_ce_seed(const float* logits, const int64_t* labels, float* seed, int64_t n, int64_t k, void* s) {
  MLAUDIT_LAUNCH(ce_seed_kernel, n, s, logits, labels, seed, k, n);
}
void launch_correct(const float* logits, const int64_t* labels, float* correct, int64_t n, int64_t k, void* s) {
  MLAUDIT_LAUNCH(correct_kernel, n, s, logits, labels, correct, k, n);
}
void launch_argmax_histogram(const float* logits, int64_t n, int64_t k, unsigned long long* counts, void* s) {
#ifndef MLAUDIT_CUDA_HOST_EMULATION
  if (k > kHistMax) {
    MLAUDIT_LAUNCH(argmax_histogram_global_kernel, n, s, logits, k, counts, n);
    return;
  }
#endif
  MLAUDIT_LAUNCH(argmax_histogram_kernel, n, s, logits, k, counts, n);
}
void launch_row_norms(const float* x, float* norms, int64_t n, int64_t d, void* s) {
  MLAUDIT_LAUNCH(row_norms_kernel, n, s, x, norms, d, n);
}
void launch_pgd_step_linf(float* x, const float* x0, const float* g, int64_t n, float alpha, float eps, float lo, float hi,
                          void* s) {
  MLAUDIT_LAUNCH(pgd_step_linf_kernel, n, s, x, x0, g, alpha, eps, lo, hi, n);
}
void launch_l2_step(float* x, const float* g, const float* gnorms, int64_t n, int64_t d, float alpha, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(l2_step_kernel, total, s, x, g, gnorms, d, alpha, total);
}
void launch_l2_project(float* x, const float* x0, float* tmp, int64_t n, int64_t d, float eps, float lo, float hi, void* s) {
  // tmp holds n*d floats for x - x0 followed by n norms.
  int64_t total = n * d;
  MLAUDIT_LAUNCH(diff_kernel, total, s, x, x0, tmp, total);
  launch_row_norms(tmp, tmp + total, n, d, s);
  MLAUDIT_LAUNCH(l2_project_kernel, total, s, x, x0, tmp + total, d, eps, lo, hi, total);
}
void launch_row_absmax(const float* x, float* out, int64_t n, int64_t d, void* s) {
  MLAUDIT_LAUNCH(row_absmax_kernel, n, s, x, out, d, n);
}
void launch_scaled_start(float* xa, const float* x0, const float* t, const float* tnorm, int64_t n, int64_t d, float eps,
                         float lo, float hi, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(scaled_start_kernel, total, s, xa, x0, t, tnorm, d, eps, lo, hi, total);
}
void launch_ce_loss_seed(const float* logits, const int64_t* labels, float* seed, float* loss, float* correct, int64_t n,
                         int64_t k, void* s) {
  MLAUDIT_LAUNCH(ce_loss_seed_kernel, n, s, logits, labels, seed, loss, correct, k, n);
}
void launch_apgd_step_linf(float* x, float* x_old, const float* x0, const float* g, const float* step, const float* active,
                           int64_t n, int64_t d, float a, float eps, float lo, float hi, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(apgd_step_linf_kernel, total, s, x, x_old, x0, g, step, active, d, a, eps, lo, hi, total);
}
void launch_apgd_l2_grad_step(const float* x, const float* g, const float* gnorm, const float* step, const float* active,
                              float* z, int64_t n, int64_t d, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(apgd_l2_grad_step_kernel, total, s, x, g, gnorm, step, active, z, d, total);
}
void launch_apgd_momentum(float* x, float* x_old, const float* z, const float* active, int64_t n, int64_t d, float a,
                          void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(apgd_momentum_kernel, total, s, x, x_old, z, active, d, a, total);
}
void launch_apgd_track(const float* loss, float* loss_prev, float* loss_best, float* inc, float* active,
                       const float* correct, float* found, float* improve, float* broke, bool first, int64_t n, void* s) {
  MLAUDIT_LAUNCH(apgd_track_kernel, n, s, loss, loss_prev, loss_best, inc, active, correct, found, improve, broke,
                 first ? 1 : 0, n);
}
void launch_apgd_checkpoint(float* inc, float* reduced_last, float* loss_best_last, const float* loss_best, float* step,
                            const float* active, float* restart, float k_period, float rho, int64_t n, void* s) {
  MLAUDIT_LAUNCH(apgd_checkpoint_kernel, n, s, inc, reduced_last, loss_best_last, loss_best, step, active, restart,
                 k_period, rho, n);
}
void launch_masked_row_copy(const float* src, float* dst, const float* mask, int64_t n, int64_t d, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(masked_row_copy_kernel, total, s, src, dst, mask, d, total);
}
void launch_uniform_start(float* x, const float* x0, const float* u, int64_t n, float eps, float lo, float hi, void* s) {
  MLAUDIT_LAUNCH(uniform_start_kernel, n, s, x, x0, u, eps, lo, hi, n);
}
void launch_add_noise(const float* x, const float* noise, float* y, int64_t n, int64_t d, float sigma, void* s) {
  int64_t total = n * d;
  MLAUDIT_LAUNCH(add_noise_kernel, total, s, x, noise, y, d, sigma, total);
}
void launch_noisy_samples(const float* x, float* y, int64_t rows, int64_t d, float sigma, uint64_t seed, int64_t base,
                          void* s) {
  const int64_t n = rows * d;
  if (n <= 0) return;
  const int64_t first_group = base / 4, last_group = (base + n - 1) / 4, groups = last_group - first_group + 1;
  MLAUDIT_LAUNCH(noisy_samples_kernel, groups, s, x, y, d, sigma, uint32_t(seed), uint32_t(seed >> 32), base, first_group,
                 groups, n);
}
void launch_tile_rows(const float* x, float* y, int64_t rows, int64_t d, int64_t n_out, void* s) {
  MLAUDIT_LAUNCH(tile_rows_kernel, n_out, s, x, y, rows, d, n_out);
}

void launch_philox_fill(float* y, int64_t n, uint64_t seed, int64_t base, bool normal, void* s) {
  if (n <= 0) return;
  const int64_t first_group = base / 4, last_group = (base + n - 1) / 4, groups = last_group - first_group + 1;
  MLAUDIT_LAUNCH(philox_fill_kernel, groups, s, y, uint32_t(seed), uint32_t(seed >> 32), base, first_group, groups, n,
                 normal ? 1 : 0);
}
void launch_apgd_loss_seed(ApgdLoss loss, const float* logits, const int64_t* labels, const int64_t* targets, float* seed,
                           float* loss_out, float* correct, int64_t n, int64_t k, void* s) {
  MLAUDIT_LAUNCH(apgd_loss_seed_kernel, n, s, int(loss), logits, labels, targets, seed, loss_out, correct, k, n);
}
void launch_rank_class(const float* logits, int64_t* out, int64_t n, int64_t k, int64_t rank, void* s) {
  MLAUDIT_LAUNCH(rank_class_kernel, n, s, logits, out, k, rank, n);
}
void launch_square_init_linf(float* xb, const float* x0, const SquareGeom& g, int64_t rows, float eps, float lo, float hi,
                             uint64_t seed, int64_t row_base, void* s) {
  const int64_t total = rows * g.d;
  MLAUDIT_LAUNCH(square_init_linf_kernel, total, s, xb, x0, g, eps, lo, hi, seed, row_base, total);
}
void launch_square_propose_linf(const float* xb, const float* x0, const int64_t* rowid, const float* margin, int* params,
                                float* signs, float* xn, const SquareGeom& g, int64_t rows, int64_t side, float eps,
                                float lo, float hi, uint64_t seed, int64_t row_base, uint32_t it, void* s) {
  MLAUDIT_LAUNCH(square_propose_rows_kernel, rows, s, xb, x0, rowid, margin, params, signs, g, side, eps, lo, hi, seed,
                 row_base, it, rows);
  const int64_t total = rows * g.d;
  MLAUDIT_LAUNCH(square_propose_linf_kernel, total, s, xb, x0, rowid, params, signs, xn, g, eps, lo, hi, total);
}
void launch_square_margin(const float* logits, const int64_t* labels, const int64_t* rowid, float* margin, float* queries,
                          float* accept, int64_t rows, int64_t k, bool init, void* s) {
  MLAUDIT_LAUNCH(square_margin_kernel, rows, s, logits, labels, rowid, margin, queries, accept, k, init ? 1 : 0, rows);
}
void launch_square_accept_copy(const float* xn, float* xb, const int64_t* rowid, const float* accept, int64_t rows,
                               int64_t d, void* s) {
  const int64_t total = rows * d;
  MLAUDIT_LAUNCH(square_accept_copy_kernel, total, s, xn, xb, rowid, accept, d, total);
}

void launch_square_init_l2(float* delta, const float* pattern, const SquareGeom& g, int64_t rows, int64_t side, int64_t sp,
                           int64_t ntr, int64_t ntc, uint64_t seed, int64_t row_base, void* s) {
  const int64_t total = rows * g.d;
  MLAUDIT_LAUNCH(square_init_l2_kernel, total, s, delta, pattern, g, side, sp, ntr, ntc, seed, row_base, total);
}
void launch_square_propose_l2(const float* xb, const float* x0, const int64_t* rowid, const float* margin,
                              const float* pattern, float* rowp, float* chp, float* xn, const SquareGeom& g, int64_t rows,
                              int64_t side, float eps, float lo, float hi, uint64_t seed, int64_t row_base, uint32_t it,
                              void* s) {
  MLAUDIT_LAUNCH(square_l2_rows_kernel, rows, s, xb, x0, rowid, margin, pattern, rowp, chp, g, side, eps, seed, row_base, it,
                 rows);
  const int64_t total = rows * g.d;
  MLAUDIT_LAUNCH(square_l2_propose_kernel, total, s, xb, x0, rowid, pattern, rowp, chp, xn, g, side, eps, lo, hi, total);
}

void launch_philox_rows(float* y, const int64_t* rowid, int64_t rows, int64_t d, uint64_t seed, bool normal, void* s) {
  const int64_t total = rows * d;
  MLAUDIT_LAUNCH(philox_rows_kernel, total, s, y, rowid, d, seed, normal ? 1 : 0, total);
}
}  // namespace mlaudit::robustness::cuda
