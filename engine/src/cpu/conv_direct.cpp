// Direct stride-1 convolution for few-channel networks (conv_direct.h): the driver (padding,
// weight packing, threads, row copies) and the 8-float register tiles.
#include "conv_direct.h"

#include "../vector_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"

#define MLAUDIT_CD_NS cd8
#define MLAUDIT_CD_LANES 8
#include "conv_direct_kernels.h"

namespace mlaudit::engine::detail {

void direct_conv_tiles_8(const DirectConvImage& g, int ocb, int64_t ob_begin, int64_t ob_end, const float* xp,
                         const float* wpack, const float* bias, bool relu, float* yflat) {
  if (ocb == 4) cd8::conv_tiles<4, 3>(g, ob_begin, ob_end, xp, wpack, bias, relu, yflat);
  else cd8::conv_tiles<1, 6>(g, ob_begin, ob_end, xp, wpack, bias, relu, yflat);
}

int direct_conv_ocb(int lanes, int64_t cout) {
  if (cout == 1) return 1;  // one channel (the input gradient of a grey-scale first layer)
  if (lanes == 16 && cout >= 8 && (cout % 8 == 0 || cout % 8 > 4)) return 8;
  return 4;
}

int64_t direct_conv_tile_width(int lanes, int ocb) { return (ocb == 1 ? 6 : 3) * lanes; }

namespace {

bool direct_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("MLAUDIT_DIRECT_CONV");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// The geometry every image of a call shares.
struct Plan {
  int64_t cin, cout, h, w, kh, kw, dh, dw, pt, pl, pb, pr, sh, sw;
  int64_t hp, wp, oh, ow;
  int64_t hq, wq;  // one stride phase of the padded plane: rows r = a*sh + ph, columns c = b*sw + pw
  int lanes, ocb;
  int64_t flat, flat_stride, in_floats;  // positions computed, output channel stride, padded input size
  std::vector<int64_t> taps;
  std::vector<float> wpack;  // [cout / ocb][cin][kh][kw][ocb], zero for missing channels
};

// Geometry of a convolution of a [cin, h, w] plane with kernel [cout, cin, kh, kw] given in
// `weight_at(oc, ic, i, j)`. A stride sh x sw is made a stride-1 convolution by splitting the
// padded plane into its sh*sw phases (rows r = a*sh + ph, columns c = b*sw + pw): output
// (oh, ow)'s tap (i, j) reads padded (oh*sh + i*dh, ow*sw + j*dw), which is row oh + i*dh / sh,
// column ow + j*dw / sw of phase ((i*dh) % sh, (j*dw) % sw); so every tap is still one
// contiguous run of positions.
template <class WeightAt>
Plan make_plan(int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t dh, int64_t dw,
               int64_t pt, int64_t pl, int64_t pb, int64_t pr, int64_t sh, int64_t sw, WeightAt weight_at) {
  Plan q;
  q.cin = cin, q.cout = cout, q.h = h, q.w = w, q.kh = kh, q.kw = kw, q.dh = dh, q.dw = dw;
  q.pt = pt, q.pl = pl, q.pb = pb, q.pr = pr, q.sh = sh, q.sw = sw;
  q.hp = h + pt + pb;
  q.wp = w + pl + pr;
  q.oh = (q.hp - (kh - 1) * dh - 1) / sh + 1;
  q.ow = (q.wp - (kw - 1) * dw - 1) / sw + 1;
  q.hq = (q.hp + sh - 1) / sh;
  q.wq = (q.wp + sw - 1) / sw;
  q.lanes = direct_conv_have_16() ? 16 : 8;
  q.ocb = direct_conv_ocb(q.lanes, cout);
  const int64_t tile = direct_conv_tile_width(q.lanes, q.ocb);
  q.flat = (q.oh * q.wq + tile - 1) / tile * tile;
  q.flat_stride = q.flat;
  int64_t last = 0;
  for (int64_t ic = 0; ic < cin; ++ic)
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j) {
        const int64_t phase = (ic * sh + (i * dh) % sh) * sw + (j * dw) % sw;
        q.taps.push_back(phase * q.hq * q.wq + (i * dh / sh) * q.wq + j * dw / sw);
        last = std::max(last, q.taps.back());
      }
  // Reads reach flat - 1 + the largest tap offset; the planes' tail stays zero.
  q.in_floats = std::max(cin * sh * sw * q.hq * q.wq, q.flat + last) + 16;
  const int64_t blocks = (cout + q.ocb - 1) / q.ocb, T = cin * kh * kw;
  q.wpack.assign(blocks * T * q.ocb, 0.f);
  for (int64_t oc = 0; oc < cout; ++oc)
    for (int64_t ic = 0; ic < cin; ++ic)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j) {
          const int64_t t = (ic * kh + i) * kw + j;
          q.wpack[((oc / q.ocb) * T + t) * q.ocb + oc % q.ocb] = weight_at(oc, ic, i, j);
        }
  return q;
}

// Scratch of one thread: the padded input plane and the flat output.
struct Scratch {
  std::vector<float> in, out;
};
Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// Zero-pads image x [cin, h, w] into xp [cin, hp, wp] (+ zero tail), x optionally masked
// by mask > 0 element-wise (gradients through a fused Relu).
void pad_image(const Plan& q, const float* x, const float* mask, float* xp) {
  std::memset(xp, 0, sizeof(float) * q.in_floats);
  if (q.sh > 1 || q.sw > 1) {  // stride phases (make_plan); never masked (backward is stride 1)
    for (int64_t c = 0; c < q.cin; ++c)
      for (int64_t i = 0; i < q.h; ++i) {
        const int64_t r = i + q.pt;
        const float* src = x + (c * q.h + i) * q.w;
        float* phase_row = xp + ((c * q.sh + r % q.sh) * q.sw) * q.hq * q.wq + (r / q.sh) * q.wq;
        for (int64_t j = 0; j < q.w; ++j) {
          const int64_t col = j + q.pl;
          phase_row[(col % q.sw) * q.hq * q.wq + col / q.sw] = src[j];
        }
      }
    return;
  }
  for (int64_t c = 0; c < q.cin; ++c)
    for (int64_t i = 0; i < q.h; ++i) {
      const float* src = x + (c * q.h + i) * q.w;
      float* dst = xp + (c * q.hp + i + q.pt) * q.wp + q.pl;
      if (!mask) {
        std::memcpy(dst, src, sizeof(float) * q.w);
      } else {
        relu_mask_multiply(src, mask + (c * q.h + i) * q.w, dst, q.w);
      }
    }
}

// Runs the plan on n images: x [n, cin, h, w] -> y [n, cout, oh, ow]. Work items are
// (image, group of output-channel blocks): a batch of one still uses every thread when it has
// several blocks. A thread pads an image once for consecutive items of that image.
// pool2: y is MaxPool 2x2 stride 2 (no padding, floor) of the convolution's output,
// [n, cout, oh/2, ow/2], taken from the thread's flat output while it is in cache.
void run_plan(const Plan& q, int64_t n, const float* x, const float* mask, const float* bias, bool relu, float* y,
              bool pool2 = false) {
  DirectConvImage g{q.cout, int64_t(q.taps.size()), q.taps.data(), q.flat, q.flat_stride};
  const int64_t ph = q.oh / 2, pw = q.ow / 2;
  const int64_t in_image = q.cin * q.h * q.w, out_image = pool2 ? q.cout * ph * pw : q.cout * q.oh * q.ow;
  const double flops = 2.0 * double(n) * q.cout * q.taps.size() * q.oh * q.ow;
  const int64_t blocks = (q.cout + q.ocb - 1) / q.ocb;
  const int threads = flops > 2e5 ? std::max(1, num_threads()) : 1;
  // Split an image's blocks into groups only when there are fewer images than threads.
  const int64_t groups = n >= threads ? 1 : std::min<int64_t>(blocks, (threads + n - 1) / n);
  const int64_t items = n * groups;
#pragma omp parallel num_threads(int(std::min<int64_t>(threads, items))) if (threads > 1 && items > 1)
  {
    Scratch& s = scratch();
    if (int64_t(s.in.size()) < q.in_floats) s.in.resize(q.in_floats);
    if (int64_t(s.out.size()) < q.cout * q.flat_stride) s.out.resize(q.cout * q.flat_stride);
    int64_t padded = -1;
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t b = item / groups, grp = item % groups;
      const int64_t ob0 = blocks * grp / groups, ob1 = blocks * (grp + 1) / groups;
      if (padded != b) pad_image(q, x + b * in_image, mask ? mask + b * in_image : nullptr, s.in.data());
      padded = b;
      if (q.lanes == 16) direct_conv_tiles_16(g, q.ocb, ob0, ob1, s.in.data(), q.wpack.data(), bias, relu, s.out.data());
      else direct_conv_tiles_8(g, q.ocb, ob0, ob1, s.in.data(), q.wpack.data(), bias, relu, s.out.data());
      float* yb = y + b * out_image;
      if (pool2) {
        // The same expression as MaxPool's 2x2/2 path (ops_nn.cpp): max is exact, so the
        // values (NaN included) are those of the unfused Conv then MaxPool.
        for (int64_t oc = ob0 * q.ocb; oc < std::min(q.cout, ob1 * q.ocb); ++oc)
          for (int64_t oi = 0; oi < ph; ++oi) {
            const float* r0 = s.out.data() + oc * q.flat_stride + 2 * oi * q.wq;
            const float* r1 = r0 + q.wq;
            float* o = yb + (oc * ph + oi) * pw;
#pragma omp simd
            for (int64_t oj = 0; oj < pw; ++oj)
              o[oj] = std::max(std::max(r0[2 * oj], r0[2 * oj + 1]), std::max(r1[2 * oj], r1[2 * oj + 1]));
          }
        continue;
      }
      for (int64_t oc = ob0 * q.ocb; oc < std::min(q.cout, ob1 * q.ocb); ++oc)
        for (int64_t i = 0; i < q.oh; ++i)
          std::memcpy(yb + (oc * q.oh + i) * q.ow, s.out.data() + oc * q.flat_stride + i * q.wq, sizeof(float) * q.ow);
    }
  }
}

}  // namespace

bool direct_conv_shape(int64_t c, int64_t oc, int64_t kh, int64_t kw, int64_t group, int64_t sh, int64_t sw) {
  if (group != 1 || sh > 4 || sw > 4) return false;
  // Few channels: up to 32 output channels with up to 32 input channels (the MNIST/CIFAR-sized
  // CNNs audits run), where a tap's OCB x V tile does all the work in registers. Wider layers
  // (ResNet's 64+) stay with oneDNN's blocked kernels.
  return oc <= 32 && c <= 32 && kh * kw <= 49;
}

bool direct_conv_suits(const Window2d& p) {
  if (!direct_enabled() || p.n <= 0) return false;
  return direct_conv_shape(p.c, p.oc, p.kh, p.kw, p.group, p.sh, p.sw);
}

bool direct_conv_backward_suits(const Window2d& p) {
  return direct_conv_suits(p) && p.sh == 1 && p.sw == 1 && p.pt <= (p.kh - 1) * p.dh && p.pb <= (p.kh - 1) * p.dh &&
         p.pl <= (p.kw - 1) * p.dw && p.pr <= (p.kw - 1) * p.dw;
}

void direct_conv_forward(const Window2d& p, const float* x, const float* w, const float* bias, bool relu, float* y,
                         bool pool2) {
  const int64_t C = p.c, KH = p.kh, KW = p.kw;
  Plan q = make_plan(p.c, p.oc, p.h, p.w, p.kh, p.kw, p.dh, p.dw, p.pt, p.pl, p.pb, p.pr, p.sh, p.sw,
                     [&](int64_t oc, int64_t ic, int64_t i, int64_t j) { return w[((oc * C + ic) * KH + i) * KW + j]; });
  run_plan(q, p.n, x, nullptr, bias, relu, y, pool2);
}

void direct_conv_backward_data(const Window2d& p, const float* w, const float* gy, const float* relu_mask, float* gx) {
  // gx[ic][h][w] = sum_{oc,i,j} gy[oc][h + pt - i*dh][w + pl - j*dw] * W[oc][ic][i][j]: with
  // i' = kh-1-i, a stride-1 convolution of gy padded by (kh-1)*dh - pt on top (likewise the
  // other sides) with kernel W'[ic][oc][i'][j'] = W[oc][ic][kh-1-i'][kw-1-j'].
  const int64_t C = p.c, KH = p.kh, KW = p.kw;
  Plan q = make_plan(p.oc, p.c, p.oh, p.ow, p.kh, p.kw, p.dh, p.dw, (KH - 1) * p.dh - p.pt, (KW - 1) * p.dw - p.pl,
                     (KH - 1) * p.dh - p.pb, (KW - 1) * p.dw - p.pr, 1, 1, [&](int64_t ic, int64_t oc, int64_t i, int64_t j) {
                       return w[((oc * C + ic) * KH + (KH - 1 - i)) * KW + (KW - 1 - j)];
                     });
  run_plan(q, p.n, gy, relu_mask, nullptr, false, gx);
}

}  // namespace mlaudit::engine::detail
