// Pooling kernels: MaxPool, AveragePool (ops_nn.cpp semantics), their VJPs, the fused 2x2 max
// pool + ReLU backward, and GlobalAveragePool's backward (expand_scale).
// Launchers declared in pool_impl.h (plain C++; ONNX Runtime's *_impl.h / *_impl.cu split); the
// host code of the ops is pool.cpp. One thread per output element in grid-stride loops.
// Semantics follow engine/src/ops_*.cpp exactly (cited per kernel).

#include <cmath>
#include <cstdint>

#include "pool_impl.h"
#include "mlaudit/engine/device_kernels.cuh"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

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

__global__ void expand_scale_kernel(const float* gy, float* gx, int64_t area, float scale, int64_t n) {
  MLAUDIT_GRID_STRIDE(i, n) gx[i] = gy[i / area] * scale;
}

}  // namespace

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
void launch_expand_scale(const float* gy, float* gx, int64_t n, int64_t area, float scale, void* s) {
  int64_t total = n * area;
  MLAUDIT_LAUNCH(expand_scale_kernel, total, s, gy, gx, area, scale, total);
}

}  // namespace mlaudit::engine::cuda
