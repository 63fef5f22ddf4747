// Convolution kernels: im2col/col2im (the cuBLAS path and weight gradients), the direct
// convolution forward (with fused ReLU / ReLU + 2x2 max pool epilogues) and backward data, bias add.
// Launchers declared in conv_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the op is conv.cpp. Grid-stride loops, except the direct kernels (register tiles).
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "conv_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

#ifndef MLAUDIT_CUDA_HOST_EMULATION
using ::mlaudit::engine::device_kernels::check_launch;
#endif

// The output position whose window tap k (dilation dil, stride st, padding pad) reads input
// position pos, or -1 when none does: pos = o*st - pad + k*dil (col2im and backward data).
__device__ inline int64_t tap_output(int64_t pos, int64_t pad, int64_t k, int64_t dil, int64_t st, int64_t out) {
  int64_t num = pos + pad - k * dil;
  if (num < 0 || num % st) return -1;
  int64_t o = num / st;
  return o < out ? o : -1;
}

// im2col: col[(c*kh + ki)*kw + kj][oi*ow + oj] = x[c][oi*sh - pt + ki*dh][oj*sw - pl + kj*dw] (0 outside).
__global__ void im2col_kernel(const float* x, float* col, ConvGeom g, int64_t channels, int64_t image_stride, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oj = i % g.ow, t = i / g.ow;
    int64_t oi = t % g.oh;
    t /= g.oh;
    int64_t kj = t % g.kw;
    t /= g.kw;
    int64_t ki = t % g.kh;
    t /= g.kh;
    int64_t c = t % channels;
    int64_t img = t / channels;
    int64_t hi = oi * g.sh - g.pt + ki * g.dh, wj = oj * g.sw - g.pl + kj * g.dw;
    col[i] = (hi >= 0 && hi < g.h && wj >= 0 && wj < g.w) ? x[img * image_stride + (c * g.h + hi) * g.w + wj] : 0.f;
  }
}

// col2im: x[c][hi][wj] = sum over (ki, kj) with a matching output position of col[...].
__global__ void col2im_kernel(const float* col, float* x, ConvGeom g, int64_t channels, int64_t image_stride, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t wj = i % g.w, t = i / g.w;
    int64_t hi = t % g.h;
    t /= g.h;
    int64_t c = t % channels;
    int64_t img = t / channels;
    double acc = 0;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      int64_t oi = tap_output(hi, g.pt, ki, g.dh, g.sh, g.oh);
      if (oi < 0) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        int64_t oj = tap_output(wj, g.pl, kj, g.dw, g.sw, g.ow);
        if (oj < 0) continue;
        acc += col[((((img * channels + c) * g.kh + ki) * g.kw + kj) * g.oh + oi) * g.ow + oj];
      }
    }
    x[img * image_stride + (c * g.h + hi) * g.w + wj] = float(acc);
  }
}

// ---- direct convolution (no column buffer) ----
// Forward: y[n,o,i,j] = b[o] + sum_{c,ki,kj} x[n, grp*icg + c, i*sh - pt + ki*dh, j*sw - pl + kj*dw] w[o,c,ki,kj].
// Backward data (transposed): gx[n,c,hi,wj] = sum_{o,ki,kj} gy[n,o,(hi+pt-ki*dh)/sh,(wj+pl-kj*dw)/sw] w[o,c_local,ki,kj]
// over the (ki,kj) whose numerators divide by the stride and land inside the output.
// Each thread owns PIX pixels (flattened over images and rows, strided by the block so loads and
// stores coalesce) times CB channels of one group; the block stages the weights of a chunk of the
// reduced channels in shared memory as [r][ki][kj][CB] so each thread reads CB weights with CB/4
// float4 loads (broadcast across the warp) per input value. KS > 0 fixes the kernel size at compile time.
#ifndef MLAUDIT_CUDA_HOST_EMULATION
constexpr int kConvThreads = 128;
constexpr int kConvPix = 2;
// Pixels per thread: the pooled epilogues own a 2x2 quad; a single channel per group (e.g. the
// input gradient of a first layer on grayscale images) takes 8 pixels so each staged weight
// still feeds several FMAs; otherwise 2 pixels x CB channels (4 pixels for all tiles measured
// slower on the H100: PGD-50 27,458 vs 44,840 images/s).
__host__ __device__ constexpr int conv_pix(int cb, int epi) { return epi >= 2 ? 4 : (cb == 1 ? 8 : kConvPix); }

// acc[p][c] += v[p] * w[c] for the PIX pixels and CB channels of a thread (w: CB staged weights,
// read as broadcast float4s).
template <int CB, int PIX>
__device__ __forceinline__ void fma_tile(float (&acc)[PIX][CB], const float (&v)[PIX], const float* w) {
  if constexpr (CB % 4 != 0) {
#pragma unroll
    for (int c = 0; c < CB; ++c) {
      const float wc = w[c];
#pragma unroll
      for (int p = 0; p < PIX; ++p) acc[p][c] = fmaf(v[p], wc, acc[p][c]);
    }
    return;
  }
  const float4* w4 = reinterpret_cast<const float4*>(w);
#pragma unroll
  for (int c4 = 0; c4 < CB / 4; ++c4) {
    float4 wv = w4[c4];
#pragma unroll
    for (int p = 0; p < PIX; ++p) {
      acc[p][4 * c4 + 0] = fmaf(v[p], wv.x, acc[p][4 * c4 + 0]);
      acc[p][4 * c4 + 1] = fmaf(v[p], wv.y, acc[p][4 * c4 + 1]);
      acc[p][4 * c4 + 2] = fmaf(v[p], wv.z, acc[p][4 * c4 + 2]);
      acc[p][4 * c4 + 3] = fmaf(v[p], wv.w, acc[p][4 * c4 + 3]);
    }
  }
}

template <int CB, int KS, bool TRANS, int EPI>
__global__ void __launch_bounds__(kConvThreads) conv_direct_kernel(const float* __restrict__ in, const float* __restrict__ w,
                                                                    const float* __restrict__ bias, float* __restrict__ out,
                                                                    float* __restrict__ full, ConvGeom g, int r_chunk) {
  extern __shared__ float4 smem4[];
  float* ws = reinterpret_cast<float*>(smem4);
  // EPI (forward only): 0 plain, 1 ReLU, 2 ReLU then 2x2 stride-2 max pooling (a thread owns the
  // 2x2 quad of one pooled pixel; max and ReLU commute, so the pooled value is relu(max + bias)),
  // 3 as 2 and also the full-resolution ReLU output in `full` (kept for a backward; even sizes only).
  constexpr int PIX = conv_pix(CB, EPI);
  // 32-bit geometry inside the loops (the launcher checks every per-image extent fits).
  const int kh = KS > 0 ? KS : int(g.kh), kw = KS > 0 ? KS : int(g.kw);
  const int kk = kh * kw;
  const int sh = int(g.sh), sw = int(g.sw), dh = int(g.dh), dw = int(g.dw), pt = int(g.pt), pl = int(g.pl);
  const int icg = int(g.c / g.group), ocg = int(g.oc / g.group);
  // TRANS: the "output" is the input gradient [n, c, h, w], reduced over the group's output channels.
  const int out_c = int(TRANS ? g.c : g.oc), out_cg = TRANS ? icg : ocg, red_cg = TRANS ? ocg : icg;
  const int in_c = int(TRANS ? g.oc : g.c), in_h = int(TRANS ? g.oh : g.h), in_w = int(TRANS ? g.ow : g.w);
  const int out_h = int(TRANS ? g.h : g.oh), out_w = int(TRANS ? g.w : g.ow);
  const int area = out_h * out_w, in_area = in_h * in_w;
  const int64_t total = g.n * int64_t(area);
  const int cblocks = (out_cg + CB - 1) / CB;
  const int grp = int(blockIdx.y) / cblocks, cb0 = (int(blockIdx.y) % cblocks) * CB;
  const int out_c0 = grp * out_cg + cb0;  // first output channel of this block
  const int in_c0 = grp * red_cg;         // first reduced (input-side) channel of the group

  float acc[PIX][CB];
  const float* base[PIX];
  bool live[PIX];
  int oi[PIX], oj[PIX];
  // KS > 0: window offsets are linear in (ki, kj) — off0 + ki*step_h + kj*step_w — with the
  // validity of each window row/column precomputed as bit masks (forward at any stride,
  // backward data at stride 1; the launcher uses KS = 0 otherwise).
  const int hdir = TRANS ? -dh : dh, wdir = TRANS ? -dw : dw;
  const int step_h = hdir * in_w, step_w = wdir;
  int off0[PIX];
  unsigned rmask[PIX], cmask[PIX];
#pragma unroll
  for (int p = 0; p < PIX; ++p) {
    int64_t n;
    if constexpr (EPI >= 2) {
      const int pw = out_w / 2, parea = (out_h / 2) * pw;
      int64_t q = int64_t(blockIdx.x) * kConvThreads + threadIdx.x;
      live[p] = q < g.n * int64_t(parea);
      if (!live[p]) q = 0;
      n = q / parea;
      int r = int(q - n * parea);
      oi[p] = 2 * (r / pw) + (p >> 1);
      oj[p] = 2 * (r % pw) + (p & 1);
    } else {
      int64_t q = (int64_t(blockIdx.x) * PIX + p) * kConvThreads + threadIdx.x;
      live[p] = q < total;
      if (!live[p]) q = 0;
      n = q / area;
      int r = int(q - n * area);
      oi[p] = r / out_w;
      oj[p] = r - oi[p] * out_w;
    }
    base[p] = in + (n * in_c + in_c0) * int64_t(in_area);
    off0[p] = 0;
    rmask[p] = cmask[p] = 0;
    if (KS > 0) {
      const int h0 = TRANS ? oi[p] + pt : oi[p] * sh - pt, w0 = TRANS ? oj[p] + pl : oj[p] * sw - pl;
      off0[p] = h0 * in_w + w0;
#pragma unroll
      for (int k = 0; k < (KS > 0 ? KS : 1); ++k) {
        int hi = h0 + k * hdir, wj = w0 + k * wdir;
        if (live[p] && hi >= 0 && hi < in_h) rmask[p] |= 1u << k;
        if (live[p] && wj >= 0 && wj < in_w) cmask[p] |= 1u << k;
      }
    }
#pragma unroll
    for (int c = 0; c < CB; ++c) acc[p][c] = 0.f;
  }
  for (int r0 = 0; r0 < red_cg; r0 += r_chunk) {
    const int rc = min(r_chunk, red_cg - r0);
    __syncthreads();
    for (int e = threadIdx.x; e < rc * kk * CB; e += kConvThreads) {
      int c = e % CB, t = e / CB, k = t % kk, rr = t / kk;
      int oc_local = cb0 + c;
      float v = 0.f;
      if (oc_local < out_cg)
        v = TRANS ? w[(int64_t(grp * ocg + r0 + rr) * icg + oc_local) * kk + k]
                  : w[(int64_t(grp * ocg + oc_local) * icg + r0 + rr) * kk + k];
      ws[e] = v;
    }
    __syncthreads();
    for (int rr = 0; rr < rc; ++rr) {
      const float* wr = ws + rr * kk * CB;
      const int plane = (r0 + rr) * in_area;
      if constexpr (KS > 0) {
#pragma unroll
        for (int ki = 0; ki < (KS > 0 ? KS : 1); ++ki) {
#pragma unroll
          for (int kj = 0; kj < (KS > 0 ? KS : 1); ++kj) {
            float v[PIX];
#pragma unroll
            for (int p = 0; p < PIX; ++p)
              v[p] = ((rmask[p] >> ki) & (cmask[p] >> kj) & 1u) ? __ldg(base[p] + (plane + off0[p] + ki * step_h + kj * step_w)) : 0.f;
            fma_tile<CB, PIX>(acc, v, wr + (ki * kw + kj) * CB);
          }
        }
      } else {
      for (int ki = 0; ki < kh; ++ki) {
        for (int kj = 0; kj < kw; ++kj) {
          float v[PIX];
#pragma unroll
          for (int p = 0; p < PIX; ++p) {
            int hi, wj;
            if (!TRANS) {
              hi = oi[p] * sh - pt + ki * dh;
              wj = oj[p] * sw - pl + kj * dw;
            } else {
              int hn = oi[p] + pt - ki * dh, wn = oj[p] + pl - kj * dw;
              hi = (hn >= 0 && hn % sh == 0) ? hn / sh : -1;
              wj = (wn >= 0 && wn % sw == 0) ? wn / sw : -1;
            }
            bool ok = live[p] && hi >= 0 && hi < in_h && wj >= 0 && wj < in_w;
            v[p] = ok ? __ldg(base[p] + plane + hi * in_w + wj) : 0.f;
          }
          fma_tile<CB, PIX>(acc, v, wr + (ki * kw + kj) * CB);
        }
      }
      }
    }
  }
  if constexpr (EPI >= 2) {
    if (!live[0]) return;
    const int pw = out_w / 2, parea = (out_h / 2) * pw;
    int64_t q = int64_t(blockIdx.x) * kConvThreads + threadIdx.x;
    int64_t n = q / parea;
    int r = int(q - n * parea);
    float* o = out + (n * out_c + out_c0) * int64_t(parea) + r;
#pragma unroll
    for (int c = 0; c < CB; ++c) {
      if (cb0 + c >= out_cg) continue;
      const float b = bias ? bias[out_c0 + c] : 0.f;
      float m = fmaxf(fmaxf(acc[0][c], acc[1][c]), fmaxf(acc[2][c], acc[3][c]));
      o[int64_t(c) * parea] = fmaxf(m + b, 0.f);
      if constexpr (EPI == 3) {
        float* f = full + (n * out_c + out_c0 + c) * int64_t(area);
#pragma unroll
        for (int p = 0; p < PIX; ++p) f[oi[p] * out_w + oj[p]] = fmaxf(acc[p][c] + b, 0.f);
      }
    }
  } else {
#pragma unroll
    for (int p = 0; p < PIX; ++p) {
      if (!live[p]) continue;
      int64_t q = (int64_t(blockIdx.x) * PIX + p) * kConvThreads + threadIdx.x;
      int64_t n = q / area;
      int r = int(q - n * area);
      float* o = out + (n * out_c + out_c0) * int64_t(area) + r;
#pragma unroll
      for (int c = 0; c < CB; ++c) {
        if (cb0 + c >= out_cg) continue;
        float v = acc[p][c] + ((!TRANS && bias) ? bias[out_c0 + c] : 0.f);
        o[int64_t(c) * area] = EPI == 1 ? fmaxf(v, 0.f) : v;
      }
    }
  }
}

template <int CB, int KS, bool TRANS, int EPI>
void conv_direct_launch(const float* in, const float* w, const float* bias, float* out, float* full, const ConvGeom& g,
                        void* s) {
  const int64_t out_cg = TRANS ? g.c / g.group : g.oc / g.group, red_cg = TRANS ? g.oc / g.group : g.c / g.group;
  const int64_t total = g.n * (TRANS ? g.h * g.w : g.oh * g.ow);
  const int kk = int(g.kh * g.kw);
  // Up to 8192 staged weights (32 KiB of shared memory) per chunk of reduced channels.
  int r_chunk = int(std::max<int64_t>(1, std::min<int64_t>(red_cg, 8192 / (int64_t(kk) * CB))));
  size_t smem = size_t(r_chunk) * kk * CB * sizeof(float);
  const int64_t per_block = EPI >= 2 ? int64_t(kConvThreads) : int64_t(kConvThreads) * conv_pix(CB, EPI);
  const int64_t items = EPI >= 2 ? g.n * (g.oh / 2) * (g.ow / 2) : total;
  int64_t bx = (items + per_block - 1) / per_block;
  int64_t by = g.group * ((out_cg + CB - 1) / CB);
  const int64_t per_image = std::max(g.c * g.h * g.w, g.oc * g.oh * g.ow);
  if (bx > 0x7fffffffLL || by > 65535 || per_image >= (int64_t(1) << 31))
    throw Error("engine", "cuda: convolution too large for the direct kernel (per-image extent or grid)");
  if (bx == 0) return;
  dim3 grid{unsigned(bx), unsigned(by), 1u};
  conv_direct_kernel<CB, KS, TRANS, EPI><<<grid, kConvThreads, smem, static_cast<cudaStream_t>(s)>>>(in, w, bias, out, full, g, r_chunk);
  check_launch(TRANS ? "conv_direct_backward_data" : "conv_direct_forward");
}

template <bool TRANS, int EPI>
void conv_direct_dispatch(const float* in, const float* w, const float* bias, float* out, float* full, const ConvGeom& g,
                          void* s) {
  const int64_t out_cg = TRANS ? g.c / g.group : g.oc / g.group;
  // The mask fast path (KS = 3): forward at any stride, backward data at stride 1.
  const bool k3 = g.kh == 3 && g.kw == 3 && (!TRANS || (g.sh == 1 && g.sw == 1));
#define MLAUDIT_CONV_CB(CB)                                           \
  (k3 ? conv_direct_launch<CB, 3, TRANS, EPI>(in, w, bias, out, full, g, s) \
      : conv_direct_launch<CB, 0, TRANS, EPI>(in, w, bias, out, full, g, s))
  if (out_cg == 1 && EPI < 2) MLAUDIT_CONV_CB(1);
  else if (out_cg <= 4) MLAUDIT_CONV_CB(4);
  else if (out_cg <= 8) MLAUDIT_CONV_CB(8);
  else if (out_cg <= 16 || EPI >= 2) MLAUDIT_CONV_CB(16);  // the pooled epilogue holds 4 pixels: 16 channels at most
  else MLAUDIT_CONV_CB(32);
#undef MLAUDIT_CONV_CB
}
#endif

__global__ void bias_add_kernel(float* y, const float* bias, int64_t oc, int64_t area, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] += bias[(i / area) % oc];
}

}  // namespace

void launch_im2col(const float* x, float* col, const ConvGeom& g, int64_t images, int64_t channels, int64_t image_stride,
                   void* s) {
  int64_t n = images * channels * g.kh * g.kw * g.oh * g.ow;
  MLAUDIT_LAUNCH(im2col_kernel, n, s, x, col, g, channels, image_stride, n);
}
void launch_col2im(const float* col, float* x, const ConvGeom& g, int64_t images, int64_t channels, int64_t image_stride,
                   void* s) {
  int64_t n = images * channels * g.h * g.w;
  MLAUDIT_LAUNCH(col2im_kernel, n, s, col, x, g, channels, image_stride, n);
}
void launch_conv_forward_direct(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g, void* s,
                                int epilogue, float* full) {
  if (g.n * g.oh * g.ow == 0 || g.oc == 0) return;
  if (epilogue == 3 && (!full || g.oh % 2 || g.ow % 2))
    throw Error("engine", "cuda: conv epilogue 3 needs a full-resolution buffer and even output sizes");
#ifdef MLAUDIT_CUDA_HOST_EMULATION
  (void)s;
  const int64_t icg = g.c / g.group, ocg = g.oc / g.group;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.oc; ++o) {
      const int64_t grp = o / ocg;
      for (int64_t i = 0; i < g.oh; ++i)
        for (int64_t j = 0; j < g.ow; ++j) {
          float acc = 0.f;
          for (int64_t c = 0; c < icg; ++c)
            for (int64_t ki = 0; ki < g.kh; ++ki)
              for (int64_t kj = 0; kj < g.kw; ++kj) {
                int64_t hi = i * g.sh - g.pt + ki * g.dh, wj = j * g.sw - g.pl + kj * g.dw;
                if (hi < 0 || hi >= g.h || wj < 0 || wj >= g.w) continue;
                acc += x[((n * g.c + grp * icg + c) * g.h + hi) * g.w + wj] * w[((o * icg + c) * g.kh + ki) * g.kw + kj];
              }
          float v = acc + (bias ? bias[o] : 0.f);
          if (epilogue == 3) full[((n * g.oc + o) * g.oh + i) * g.ow + j] = v > 0.f ? v : 0.f;
          if (epilogue >= 2) {
            // Pooled output [n, oc, oh/2, ow/2]: relu(max over the 2x2 quad) (floor: odd edges dropped).
            if (i / 2 >= g.oh / 2 || j / 2 >= g.ow / 2) continue;
            float& dst = y[((n * g.oc + o) * (g.oh / 2) + i / 2) * (g.ow / 2) + j / 2];
            v = v > 0.f ? v : 0.f;
            dst = (i % 2 == 0 && j % 2 == 0) ? v : (v > dst ? v : dst);
          } else {
            y[((n * g.oc + o) * g.oh + i) * g.ow + j] = epilogue == 1 ? (v > 0.f ? v : 0.f) : v;
          }
        }
    }
#else
  if (epilogue == 1) conv_direct_dispatch<false, 1>(x, w, bias, y, nullptr, g, s);
  else if (epilogue == 2) conv_direct_dispatch<false, 2>(x, w, bias, y, nullptr, g, s);
  else if (epilogue == 3) conv_direct_dispatch<false, 3>(x, w, bias, y, full, g, s);
  else conv_direct_dispatch<false, 0>(x, w, bias, y, nullptr, g, s);
#endif
}

void launch_conv_backward_data_direct(const float* gy, const float* w, float* gx, const ConvGeom& g, void* s) {
  if (g.n * g.h * g.w == 0 || g.c == 0) return;
#ifdef MLAUDIT_CUDA_HOST_EMULATION
  (void)s;
  const int64_t icg = g.c / g.group, ocg = g.oc / g.group;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c; ++c) {
      const int64_t grp = c / icg, cl = c % icg;
      for (int64_t hi = 0; hi < g.h; ++hi)
        for (int64_t wj = 0; wj < g.w; ++wj) {
          float acc = 0.f;
          for (int64_t o = 0; o < ocg; ++o)
            for (int64_t ki = 0; ki < g.kh; ++ki) {
              int64_t i = tap_output(hi, g.pt, ki, g.dh, g.sh, g.oh);
              if (i < 0) continue;
              for (int64_t kj = 0; kj < g.kw; ++kj) {
                int64_t j = tap_output(wj, g.pl, kj, g.dw, g.sw, g.ow);
                if (j < 0) continue;
                acc += gy[((n * g.oc + grp * ocg + o) * g.oh + i) * g.ow + j] * w[(((grp * ocg + o) * icg + cl) * g.kh + ki) * g.kw + kj];
              }
            }
          gx[((n * g.c + c) * g.h + hi) * g.w + wj] = acc;
        }
    }
#else
  conv_direct_dispatch<true, 0>(gy, w, nullptr, gx, nullptr, g, s);
#endif
}
void launch_bias_add(float* y, const float* bias, int64_t n, int64_t oc, int64_t area, void* s) {
  int64_t total = n * oc * area;
  MLAUDIT_LAUNCH(bias_add_kernel, total, s, y, bias, oc, area, total);
}

}  // namespace mlaudit::engine::cuda
