// CUDA kernels for the engine's ops and the fused attack/smoothing loops, with
// their host launchers (declared in kernels.h). Deliberately simple: one thread
// per output element in grid-stride loops, double accumulation in reductions.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).
#ifndef MLAUDIT_CUDA_HOST_EMULATION
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.h"
#include "mlaudit/engine/error.h"

#ifdef MLAUDIT_CUDA_HOST_EMULATION
// Host emulation (tests/cuda: test_cuda_emulated): the same kernel bodies compiled as C++ and run
// as serial loops, so the executor and the kernels' index arithmetic are tested without a GPU.
#define __global__
#define __device__
template <class T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p += v;
  return old;
}
#endif

namespace mlaudit::engine::cuda {

namespace {

#ifdef MLAUDIT_CUDA_HOST_EMULATION
#define MLAUDIT_GRID_STRIDE(i, n) for (int64_t i = 0; i < (n); ++i)
#define MLAUDIT_LAUNCH(kernel, n, stream, ...) \
  do {                                         \
    (void)(stream);                            \
    if ((n) > 0) kernel(__VA_ARGS__);          \
  } while (0)
#else
constexpr int kBlock = 256;

int grid_for(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return static_cast<int>(b);
}

void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw Error("engine", std::string("cuda: kernel ") + kernel + " failed: " + cudaGetErrorString(e));
}

#define MLAUDIT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

#define MLAUDIT_LAUNCH(kernel, n, stream, ...)                                                   \
  do {                                                                                           \
    if ((n) > 0) {                                                                               \
      kernel<<<grid_for(n), kBlock, 0, static_cast<cudaStream_t>(stream)>>>(__VA_ARGS__);       \
      check_launch(#kernel);                                                                     \
    }                                                                                            \
  } while (0)
#endif

__device__ float sigmoidf_(float x) { return x >= 0 ? 1.f / (1.f + expf(-x)) : expf(x) / (1.f + expf(x)); }

// Forward formulas of ops_elementwise.cpp's MLAUDIT_UNARY table.
__device__ float unary_f(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return fabsf(x);
    case UnaryOp::Relu: return x > 0 ? x : 0.f;
    case UnaryOp::LeakyRelu: return x >= 0 ? x : x * a;
    case UnaryOp::Sigmoid: return sigmoidf_(x);
    case UnaryOp::Tanh: return tanhf(x);
    case UnaryOp::Exp: return expf(x);
    case UnaryOp::Log: return logf(x);
    case UnaryOp::Sqrt: return sqrtf(x);
    case UnaryOp::Erf: return erff(x);
    case UnaryOp::Elu: return x > 0 ? x : a * (expf(x) - 1.f);
    case UnaryOp::Softplus: return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case UnaryOp::HardSigmoid: return fmaxf(0.f, fminf(1.f, a * x + b));
    case UnaryOp::Sign: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case UnaryOp::Clip: return fminf(fmaxf(x, a), b);
  }
  return 0.f;
}

// Derivatives d(x, y) of the same table (ops_elementwise.cpp DER(...)).
__device__ float unary_d(UnaryOp op, float x, float y, float a, float b) {
  switch (op) {
    case UnaryOp::Neg: return -1.f;
    case UnaryOp::Abs: return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f);
    case UnaryOp::Relu: return x > 0 ? 1.f : 0.f;
    case UnaryOp::LeakyRelu: return x > 0 ? 1.f : a;
    case UnaryOp::Sigmoid: return y * (1.f - y);
    case UnaryOp::Tanh: return 1.f - y * y;
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return 1.f / x;
    case UnaryOp::Sqrt: return 0.5f / y;
    case UnaryOp::Erf: return 1.1283791670955126f * expf(-x * x);  // 2/sqrt(pi) exp(-x^2)
    case UnaryOp::Elu: return x > 0 ? 1.f : y + a;
    case UnaryOp::Softplus: return sigmoidf_(x);
    case UnaryOp::HardSigmoid: {
      float t = a * x + b;
      return (t > 0.f && t < 1.f) ? a : 0.f;
    }
    case UnaryOp::Sign: return 0.f;
    case UnaryOp::Clip: return (x >= a && x <= b) ? 1.f : 0.f;  // PyTorch clamp: passes on the closed interval
  }
  return 0.f;
}

__global__ void fill_kernel(float* y, int64_t n, float v) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = v;
}
__global__ void axpby_kernel(const float* x, float* y, int64_t n, float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = b == 0.f ? a * x[i] : a * x[i] + b * y[i];
}
__global__ void unary_kernel(UnaryOp op, const float* x, float* y, int64_t n, float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) y[i] = unary_f(op, x[i], a, b);
}
__global__ void unary_backward_kernel(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                                      float a, float b) {
  MLAUDIT_GRID_STRIDE(i, n) gx[i] = gy[i] * unary_d(op, x[i], y ? y[i] : 0.f, a, b);
}

// Offsets of output element i into a and b under broadcasting.
__device__ void bcast_offsets(const BroadcastDesc& d, int64_t i, int64_t& oa, int64_t& ob) {
  oa = 0;
  ob = 0;
  for (int k = d.rank - 1; k >= 0; --k) {
    int64_t idx = i % d.out_dims[k];
    i /= d.out_dims[k];
    oa += idx * d.a_strides[k];
    ob += idx * d.b_strides[k];
  }
}

__device__ float binary_f(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Pow: return powf(x, y);
    case BinaryOp::Min: return fminf(x, y);
    case BinaryOp::Max: return fmaxf(x, y);
  }
  return 0.f;
}

__global__ void binary_kernel(BinaryOp op, const float* a, const float* b, float* y, BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    y[i] = binary_f(op, a[oa], b[ob]);
  }
}

// ops_elementwise.cpp binary_backward: Mul/Div/Pow partials (Pow: d/da = b a^(b-1) (0 when b = 0),
// d/db = a^b ln a (0 where a^b = 0)).
__global__ void binary_backward_kernel(BinaryOp op, const float* a, const float* b, const float* y, const float* gy,
                                       float* ga, float* gb, BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    float x = a[oa], z = b[ob], g = gy[i];
    float da = 0.f, db = 0.f;
    switch (op) {
      case BinaryOp::Add: da = g; db = g; break;
      case BinaryOp::Sub: da = g; db = -g; break;
      case BinaryOp::Mul: da = g * z; db = g * x; break;
      case BinaryOp::Div: da = g / z; db = -g * x / (z * z); break;
      case BinaryOp::Pow: {
        da = z == 0.f ? 0.f : g * z * powf(x, z - 1.f);
        float o = y[i];
        db = o == 0.f ? 0.f : g * o * logf(x);
        break;
      }
      default: break;
    }
    if (ga) ga[i] = da;
    if (gb) gb[i] = db;
  }
}

__global__ void extremum_grad_kernel(const float* x, const float* y, const float* gy, float* taken, float* gx,
                                     BroadcastDesc d, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oa, ob;
    bcast_offsets(d, i, oa, ob);
    float g = 0.f;
    if (taken[i] == 0.f && x[oa] == y[i]) {
      g = gy[i];
      taken[i] = 1.f;
    }
    gx[i] = g;
  }
}

__global__ void reduce_sum_kernel(const float* x, float* y, ReduceDesc d, int64_t n_out, int64_t n_red, double scale) {
  MLAUDIT_GRID_STRIDE(o, n_out) {
    int64_t base = 0, rem = o;
    for (int k = d.rank - 1; k >= 0; --k) {
      base += (rem % d.out_dims[k]) * d.in_strides[k];
      rem /= d.out_dims[k];
    }
    double acc = 0;
    for (int64_t r = 0; r < n_red; ++r) {
      int64_t off = 0, rr = r;
      for (int k = d.rank - 1; k >= 0; --k) {
        off += (rr % d.red_dims[k]) * d.in_strides[k];
        rr /= d.red_dims[k];
      }
      acc += x[base + off];
    }
    y[o] = float(acc * scale);
  }
}

__global__ void gather_map_kernel(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t m = map[i];
    if (m >= 0) y[i] = x[m];
    else if (overwrite) y[i] = fill;
  }
}

__global__ void scatter_add_map_kernel(const float* gy, const int64_t* map, float* gx, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t m = map[i];
    if (m >= 0) atomicAdd(gx + m, gy[i]);
  }
}

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

// First maximum in scan order of window (oi, oj) of plane; -1 when the window is empty
// (ops_nn.cpp window_argmax).
__device__ int64_t window_argmax(const float* plane, const ConvGeom& g, int64_t oi, int64_t oj) {
  float best = -INFINITY;
  int64_t arg = -1;
  for (int64_t ki = 0; ki < g.kh; ++ki) {
    int64_t hi = oi * g.sh - g.pt + ki * g.dh;
    if (hi < 0 || hi >= g.h) continue;
    for (int64_t kj = 0; kj < g.kw; ++kj) {
      int64_t wj = oj * g.sw - g.pl + kj * g.dw;
      if (wj < 0 || wj >= g.w) continue;
      float v = plane[hi * g.w + wj];
      if (v > best || arg < 0) {
        best = v;
        arg = hi * g.w + wj;
      }
    }
  }
  return arg;
}

__global__ void maxpool_kernel(const float* x, float* y, ConvGeom g, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oj = i % g.ow, t = i / g.ow;
    int64_t oi = t % g.oh, pc = t / g.oh;
    const float* plane = x + pc * g.h * g.w;
    int64_t arg = window_argmax(plane, g, oi, oj);
    y[i] = arg < 0 ? -INFINITY : plane[arg];
  }
}

__global__ void maxpool_backward_kernel(const float* x, const float* gy, float* gx, ConvGeom g, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oj = i % g.ow, t = i / g.ow;
    int64_t oi = t % g.oh, pc = t / g.oh;
    int64_t arg = window_argmax(x + pc * g.h * g.w, g, oi, oj);
    if (arg >= 0) atomicAdd(gx + pc * g.h * g.w + arg, gy[i]);
  }
}

// MaxPool 2x2 stride 2 backward fused with the ReLU backward before it: one thread per pooled
// output writes all four window elements (no zero fill, no atomics): the first maximum in scan
// order gets gy where x > 0 (ReLU's mask; x is the ReLU output, > 0 exactly where its input is),
// the rest 0. Rows/columns no window covers (odd sizes) are zeroed by the caller.
__global__ void maxpool2_relu_backward_kernel(const float* x, const float* gy, float* gx, int64_t h, int64_t w,
                                              int64_t ph, int64_t pw, int64_t n) {
  const int64_t parea = ph * pw;
  const int iw = int(w), ipw = int(pw);
  MLAUDIT_GRID_STRIDE(i, n) {
    const int64_t pc = i / parea;
    const int r = int(i - pc * parea), pi = r / ipw, pj = r - pi * ipw;
    const int64_t base = pc * h * w + int64_t(2 * pi) * iw + 2 * pj;
    const float* x0 = x + base;
    const float v0 = x0[0], v1 = x0[1], v2 = x0[iw], v3 = x0[iw + 1];
    // First maximum in scan order (ops_nn.cpp window_argmax).
    int arg = 0;
    float best = v0;
    if (v1 > best) { best = v1; arg = 1; }
    if (v2 > best) { best = v2; arg = 2; }
    if (v3 > best) { best = v3; arg = 3; }
    const float g = gy[i];
    const float o0 = (arg == 0 && v0 > 0.f) ? g : 0.f, o1 = (arg == 1 && v1 > 0.f) ? g : 0.f;
    const float o2 = (arg == 2 && v2 > 0.f) ? g : 0.f, o3 = (arg == 3 && v3 > 0.f) ? g : 0.f;
    float* g0 = gx + base;
#ifndef MLAUDIT_CUDA_HOST_EMULATION
    if ((iw & 1) == 0) {  // even rows: the pairs are 8-byte aligned
      *reinterpret_cast<float2*>(g0) = make_float2(o0, o1);
      *reinterpret_cast<float2*>(g0 + iw) = make_float2(o2, o3);
      continue;
    }
#endif
    g0[0] = o0;
    g0[1] = o1;
    g0[iw] = o2;
    g0[iw + 1] = o3;
  }
}

// ops_nn.cpp avg_divisor.
__device__ int64_t avg_divisor(const ConvGeom& g, int64_t pb, int64_t pr, bool include_pad, int64_t oi, int64_t oj) {
  int64_t h0 = oi * g.sh - g.pt, w0 = oj * g.sw - g.pl;
  int64_t lo_h = include_pad ? -g.pt : 0, hi_h = include_pad ? g.h + pb : g.h;
  int64_t lo_w = include_pad ? -g.pl : 0, hi_w = include_pad ? g.w + pr : g.w;
  int64_t ch = 0, cw = 0;
  for (int64_t k = 0; k < g.kh; ++k) {
    int64_t hi = h0 + k * g.dh;
    if (hi >= lo_h && hi < hi_h) ++ch;
  }
  for (int64_t k = 0; k < g.kw; ++k) {
    int64_t wj = w0 + k * g.dw;
    if (wj >= lo_w && wj < hi_w) ++cw;
  }
  return ch * cw > 1 ? ch * cw : 1;
}

__global__ void avgpool_kernel(const float* x, float* y, ConvGeom g, int64_t pb, int64_t pr, bool inc, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oj = i % g.ow, t = i / g.ow;
    int64_t oi = t % g.oh, pc = t / g.oh;
    double s = 0;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      int64_t hi = oi * g.sh - g.pt + ki * g.dh;
      if (hi < 0 || hi >= g.h) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        int64_t wj = oj * g.sw - g.pl + kj * g.dw;
        if (wj < 0 || wj >= g.w) continue;
        s += x[(pc * g.h + hi) * g.w + wj];
      }
    }
    y[i] = float(s / double(avg_divisor(g, pb, pr, inc, oi, oj)));
  }
}

__global__ void avgpool_backward_kernel(const float* gy, float* gx, ConvGeom g, int64_t pb, int64_t pr, bool inc, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t oj = i % g.ow, t = i / g.ow;
    int64_t oi = t % g.oh, pc = t / g.oh;
    float v = gy[i] / float(avg_divisor(g, pb, pr, inc, oi, oj));
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      int64_t hi = oi * g.sh - g.pt + ki * g.dh;
      if (hi < 0 || hi >= g.h) continue;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        int64_t wj = oj * g.sw - g.pl + kj * g.dw;
        if (wj < 0 || wj >= g.w) continue;
        atomicAdd(gx + (pc * g.h + hi) * g.w + wj, v);
      }
    }
  }
}

__global__ void channel_affine_kernel(const float* x, const float* a, const float* b, float* y, int64_t c, int64_t area,
                                      int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) {
    int64_t ch = (i / area) % c;
    y[i] = a[ch] * x[i] + (b ? b[ch] : 0.f);
  }
}

__global__ void expand_scale_kernel(const float* gy, float* gx, int64_t area, float scale, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) gx[i] = gy[i / area] * scale;
}

// Softmax with max subtraction and double-precision normaliser, as ops_nn.cpp softmax_fwd.
__global__ void softmax_kernel(const float* x, float* y, int64_t len, int64_t inner, bool log, int64_t rows) {
  MLAUDIT_GRID_STRIDE(r, rows) {
    int64_t o = r / inner, in = r % inner;
    const float* xs = x + o * len * inner + in;
    float* ys = y + o * len * inner + in;
    float m = -INFINITY;
    for (int64_t k = 0; k < len; ++k) m = fmaxf(m, xs[k * inner]);
    double s = 0;
    for (int64_t k = 0; k < len; ++k) s += exp(double(xs[k * inner] - m));
    double ls = ::log(s);
    for (int64_t k = 0; k < len; ++k) {
      double z = double(xs[k * inner] - m);
      ys[k * inner] = log ? float(z - ls) : float(exp(z - ls));
    }
  }
}

// Softmax VJP: gx = y * (gy - <gy, y>); LogSoftmax VJP: gx = gy - exp(y) * sum(gy).
__global__ void softmax_backward_kernel(const float* y, const float* gy, float* gx, int64_t len, int64_t inner, bool log,
                                        int64_t rows) {
  MLAUDIT_GRID_STRIDE(r, rows) {
    int64_t o = r / inner, in = r % inner;
    int64_t base = o * len * inner + in;
    double s = 0;
    for (int64_t k = 0; k < len; ++k) {
      int64_t j = base + k * inner;
      s += log ? double(gy[j]) : double(gy[j]) * y[j];
    }
    for (int64_t k = 0; k < len; ++k) {
      int64_t j = base + k * inner;
      gx[j] = log ? float(gy[j] - exp(double(y[j])) * s) : float(y[j] * (gy[j] - s));
    }
  }
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

// ---- APGD-DLR / APGD-T losses, counter-based draws, Square L-inf (accelerated.cpp) ----

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

// Indices of the four largest entries of row z, descending, first index on ties (robustness/src/losses.cpp top4).
__device__ inline void top4_(const float* z, int64_t c, int64_t idx[4]) {
  for (int k = 0; k < 4; ++k) idx[k] = -1;
  for (int64_t j = 0; j < c; ++j) {
    for (int k = 0; k < 4; ++k) {
      if (idx[k] < 0 || z[j] > z[idx[k]]) {
        for (int m = 3; m > k; --m) idx[m] = idx[m - 1];
        idx[k] = j;
        break;
      }
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
    top4_(z, k, t);
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
void launch_axpby(const float* x, float* y, int64_t n, float a, float b, void* s) {
  MLAUDIT_LAUNCH(axpby_kernel, n, s, x, y, n, a, b);
}
void launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float a, float b, void* s) {
  MLAUDIT_LAUNCH(unary_kernel, n, s, op, x, y, n, a, b);
}
void launch_unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float a,
                           float b, void* s) {
  MLAUDIT_LAUNCH(unary_backward_kernel, n, s, op, x, y, gy, gx, n, a, b);
}
static int64_t desc_numel(const BroadcastDesc& d) {
  int64_t n = 1;
  for (int k = 0; k < d.rank; ++k) n *= d.out_dims[k];
  return n;
}
void launch_binary(BinaryOp op, const float* a, const float* b, float* y, const BroadcastDesc& d, void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(binary_kernel, n, s, op, a, b, y, d, n);
}
void launch_binary_backward(BinaryOp op, const float* a, const float* b, const float* y, const float* gy, float* ga,
                            float* gb, const BroadcastDesc& d, void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(binary_backward_kernel, n, s, op, a, b, y, gy, ga, gb, d, n);
}
void launch_extremum_grad(const float* x, const float* y, const float* gy, float* taken, float* gx, const BroadcastDesc& d,
                          void* s) {
  int64_t n = desc_numel(d);
  MLAUDIT_LAUNCH(extremum_grad_kernel, n, s, x, y, gy, taken, gx, d, n);
}
void launch_reduce_sum(const float* x, float* y, const ReduceDesc& d, double scale, void* s) {
  int64_t n_out = 1, n_red = 1;
  for (int k = 0; k < d.rank; ++k) {
    n_out *= d.out_dims[k];
    n_red *= d.red_dims[k];
  }
  MLAUDIT_LAUNCH(reduce_sum_kernel, n_out, s, x, y, d, n_out, n_red, scale);
}
void launch_gather_map(const float* x, const int64_t* map, float* y, int64_t n, float fill, bool overwrite, void* s) {
  MLAUDIT_LAUNCH(gather_map_kernel, n, s, x, map, y, n, fill, overwrite);
}
void launch_scatter_add_map(const float* gy, const int64_t* map, float* gx, int64_t n, void* s) {
  MLAUDIT_LAUNCH(scatter_add_map_kernel, n, s, gy, map, gx, n);
}
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
void launch_maxpool(const float* x, float* y, const ConvGeom& g, void* s) {
  int64_t n = g.n * g.c * g.oh * g.ow;
  MLAUDIT_LAUNCH(maxpool_kernel, n, s, x, y, g, n);
}
void launch_maxpool_backward(const float* x, const float* gy, float* gx, const ConvGeom& g, void* s) {
  int64_t n = g.n * g.c * g.oh * g.ow;
  MLAUDIT_LAUNCH(maxpool_backward_kernel, n, s, x, gy, gx, g, n);
}
void launch_maxpool2_relu_backward(const float* x, const float* gy, float* gx, int64_t planes, int64_t h, int64_t w,
                                   void* s) {
  int64_t ph = h / 2, pw = w / 2, n = planes * ph * pw;
  MLAUDIT_LAUNCH(maxpool2_relu_backward_kernel, n, s, x, gy, gx, h, w, ph, pw, n);
}
void launch_avgpool(const float* x, float* y, const ConvGeom& g, int64_t pb, int64_t pr, bool inc, void* s) {
  int64_t n = g.n * g.c * g.oh * g.ow;
  MLAUDIT_LAUNCH(avgpool_kernel, n, s, x, y, g, pb, pr, inc, n);
}
void launch_avgpool_backward(const float* gy, float* gx, const ConvGeom& g, int64_t pb, int64_t pr, bool inc, void* s) {
  int64_t n = g.n * g.c * g.oh * g.ow;
  MLAUDIT_LAUNCH(avgpool_backward_kernel, n, s, gy, gx, g, pb, pr, inc, n);
}
void launch_channel_affine(const float* x, const float* a, const float* b, float* y, int64_t n, int64_t c, int64_t area,
                           void* s) {
  int64_t total = n * c * area;
  MLAUDIT_LAUNCH(channel_affine_kernel, total, s, x, a, b, y, c, area, total);
}
void launch_expand_scale(const float* gy, float* gx, int64_t n, int64_t area, float scale, void* s) {
  int64_t total = n * area;
  MLAUDIT_LAUNCH(expand_scale_kernel, total, s, gy, gx, area, scale, total);
}
void launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, bool log, void* s) {
  int64_t rows = outer * inner;
  MLAUDIT_LAUNCH(softmax_kernel, rows, s, x, y, len, inner, log, rows);
}
void launch_softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t len, int64_t inner,
                             bool log, void* s) {
  int64_t rows = outer * inner;
  MLAUDIT_LAUNCH(softmax_backward_kernel, rows, s, y, gy, gx, len, inner, log, rows);
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

}  // namespace mlaudit::engine::cuda
