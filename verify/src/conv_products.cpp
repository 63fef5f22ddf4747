// Convolution products for the bound propagation (conv_products.h). For one group, with
// K_g [Mg, Cg KH KW] its kernel rows and cols(x) [Cg KH KW, OH OW] the in-bounds taps of x (0 for
// padding), W x is K_g cols(x); W^T y is col2im(K_g^T y). Rows are processed together, their
// columns side by side, so one GEMM serves every row (CROWN's Lambda W with Lambda's rows).
#include "conv_products.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mlaudit::verify::detail {
namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

int64_t taps(const ConvGeometry& g) { return (g.channels / g.groups) * g.kernel_h * g.kernel_w; }

// Rows per GEMM, so that the column buffer stays near 4 M doubles (32 MB).
int64_t chunk_rows(const ConvGeometry& g) {
  const int64_t per_row = taps(g) * g.out_height * g.out_width;
  return std::max<int64_t>(1, (int64_t(1) << 22) / std::max<int64_t>(per_row, 1));
}

// Visit every in-bounds tap of group `grp`: f(q, p, i) with q the tap's row in cols (c, ky, kx),
// p = oy OW + ox the output position, i the input index (c + g0, iy, ix).
template <class F>
void each_tap(const ConvGeometry& g, int64_t grp, F&& f) {
  const int64_t cg = g.channels / g.groups, g0 = grp * cg;
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t ky = 0; ky < g.kernel_h; ++ky)
      for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
        const int64_t q = (c * g.kernel_h + ky) * g.kernel_w + kx;
        for (int64_t oy = 0; oy < g.out_height; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          const int64_t base = ((g0 + c) * g.height + iy) * g.width;
          for (int64_t ox = 0; ox < g.out_width; ++ox) {
            const int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
            if (ix < 0 || ix >= g.width) continue;
            f(q, oy * g.out_width + ox, base + ix);
          }
        }
      }
}

}  // namespace

void conv_forward(const ConvGeometry& g, const double* x, int64_t rows, double* y, bool absolute) {
  const int64_t in = g.channels * g.height * g.width, P = g.out_height * g.out_width, out = g.maps * P;
  const int64_t Q = taps(g), mg = g.maps / g.groups, step = chunk_rows(g);
  const std::vector<double>& k = absolute ? g.abs_kernel : g.kernel;
  RowMat cols, res;
  std::vector<double> xpad(size_t(in + 1), 0.0);  // the row and a 0 that padding taps read
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    const int64_t nr = std::min(step, rows - r0);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      cols.resize(Q, nr * P);
      const int32_t* idx = g.tap_index.data() + grp * Q * P;
      for (int64_t r = 0; r < nr; ++r) {
        std::copy_n(x + (r0 + r) * in, in, xpad.data());
        const double* xr = xpad.data();
        for (int64_t q = 0; q < Q; ++q) {
          double* dst = cols.data() + q * nr * P + r * P;
          const int32_t* iq = idx + q * P;
          for (int64_t p = 0; p < P; ++p) dst[p] = xr[iq[p]];
        }
      }
      Eigen::Map<const RowMat> kg(k.data() + grp * mg * Q, mg, Q);
      res.noalias() = kg * cols;  // [mg, nr P]
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t m = 0; m < mg; ++m)
          std::copy_n(res.data() + m * nr * P + r * P, P, y + (r0 + r) * out + (grp * mg + m) * P);
    }
  }
}

void conv_transpose(const ConvGeometry& g, const double* y, int64_t rows, double* x) {
  const int64_t in = g.channels * g.height * g.width, P = g.out_height * g.out_width, out = g.maps * P;
  const int64_t Q = taps(g), mg = g.maps / g.groups, step = chunk_rows(g);
  RowMat ys, cols;
  std::vector<double> xpad(size_t(in + 1));  // the row and a slot that padding taps write
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    const int64_t nr = std::min(step, rows - r0);
    for (int64_t r = 0; r < nr; ++r) std::fill_n(x + (r0 + r) * in, in, 0.0);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      ys.resize(mg, nr * P);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t m = 0; m < mg; ++m)
          std::copy_n(y + (r0 + r) * out + (grp * mg + m) * P, P, ys.data() + m * nr * P + r * P);
      Eigen::Map<const RowMat> kg(g.kernel.data() + grp * mg * Q, mg, Q);
      cols.noalias() = kg.transpose() * ys;  // [Q, nr P]
      const int32_t* idx = g.tap_index.data() + grp * Q * P;
      for (int64_t r = 0; r < nr; ++r) {
        double* xr = x + (r0 + r) * in;
        std::copy_n(xr, in, xpad.data());
        for (int64_t q = 0; q < Q; ++q) {
          const double* src = cols.data() + q * nr * P + r * P;
          const int32_t* iq = idx + q * P;
          for (int64_t p = 0; p < P; ++p) xpad[size_t(iq[p])] += src[p];
        }
        std::copy_n(xpad.data(), in, xr);
      }
    }
  }
}

std::shared_ptr<const ConvGeometry> match_convolution(ConvGeometry g, const AffineLayer& L) {
  if (g.groups <= 0 || g.channels % g.groups != 0 || g.maps % g.groups != 0) return nullptr;
  const int64_t P = g.out_height * g.out_width, CHW = g.channels * g.height * g.width, off = g.in_offset;
  if (off < 0 || L.in < off + CHW || L.out < g.maps * P) return nullptr;
  const int64_t Q = taps(g), mg = g.maps / g.groups;
  // The tap table holds C KH KW x OH OW indices: no structure where that outgrows the matrix's own
  // scale (a huge kernel over heavy padding; the compressed rows serve such a layer).
  if (double(g.groups) * double(Q) * double(P) > 3e7) return nullptr;
  g.kernel.assign(size_t(g.maps * Q), 0.0);
  std::vector<char> seen(g.kernel.size(), 0);
  std::vector<int64_t> nonzero_taps(size_t(L.out), 0);  // per output row
  auto w = [&](int64_t o, int64_t i) { return L.weight[size_t(o * L.in + off + i)]; };
  bool ok = true;
  for (int64_t grp = 0; grp < g.groups && ok; ++grp)
    for (int64_t m = 0; m < mg && ok; ++m) {
      const int64_t mm = grp * mg + m;
      each_tap(g, grp, [&](int64_t q, int64_t p, int64_t i) {
        const int64_t o = mm * P + p;
        const double v = w(o, i);
        const size_t kq = size_t(mm * Q + q);
        if (!seen[kq]) {
          seen[kq] = 1;
          g.kernel[kq] = v;
        } else if (!(v == g.kernel[kq])) {
          ok = false;
        }
        nonzero_taps[size_t(o)] += v != 0;
      });
    }
  if (!ok) return nullptr;
  // Nothing outside the taps: each row's non-zero count equals its taps' non-zero count (distinct
  // taps of one output read distinct inputs, so no entry is counted twice).
  const int64_t conv_rows = g.maps * P;
  const bool alone = L.in == CHW && L.out == conv_rows;
  for (int64_t o = 0; o < conv_rows; ++o) {
    int64_t nnz = 0;
    if (alone && L.sparse()) {
      nnz = L.csr_row[size_t(o + 1)] - L.csr_row[size_t(o)];
    } else {
      for (int64_t i = 0; i < CHW; ++i) nnz += w(o, i) != 0;
    }
    if (nnz != nonzero_taps[size_t(o)]) return nullptr;
  }
  // Everything else of W (a skip connection's rows and columns) as compressed rows.
  if (!alone) {
    g.rest_row.assign(1, 0);
    for (int64_t o = 0; o < L.out; ++o) {
      const double* row = &L.weight[size_t(o * L.in)];
      for (int64_t j = 0; j < L.in; ++j) {
        if (row[j] == 0 || (o < conv_rows && j >= off && j < off + CHW)) continue;
        if (g.rest_col.size() >= size_t(std::numeric_limits<int>::max())) return nullptr;
        g.rest_col.push_back(int(j));
        g.rest_val.push_back(row[j]);
      }
      g.rest_row.push_back(int(g.rest_col.size()));
    }
  }
  // Input index of every tap (group, q, p); C H W (one past the row) in the padding.
  const int64_t in = g.channels * g.height * g.width;
  if (in >= int64_t(std::numeric_limits<int32_t>::max())) return nullptr;
  g.tap_index.assign(size_t(g.groups * Q * P), int32_t(in));
  for (int64_t grp = 0; grp < g.groups; ++grp)
    each_tap(g, grp, [&](int64_t q, int64_t p, int64_t i) { g.tap_index[size_t((grp * Q + q) * P + p)] = int32_t(i); });
  g.abs_kernel.resize(g.kernel.size());
  for (size_t i = 0; i < g.kernel.size(); ++i) g.abs_kernel[i] = std::fabs(g.kernel[i]);
  return std::make_shared<const ConvGeometry>(std::move(g));
}

void layer_conv_forward(const AffineLayer& L, const double* x, int64_t rows, double* y, bool absolute) {
  const ConvGeometry& g = *L.conv;
  const int64_t CHW = g.channels * g.height * g.width, R = g.maps * g.out_height * g.out_width;
  if (L.in == CHW && L.out == R && g.rest_row.empty()) {
    conv_forward(g, x, rows, y, absolute);
    return;
  }
  std::vector<double> xs(size_t(rows * CHW)), ys(size_t(rows * R));
  for (int64_t r = 0; r < rows; ++r) std::copy_n(x + r * L.in + g.in_offset, CHW, xs.data() + r * CHW);
  conv_forward(g, xs.data(), rows, ys.data(), absolute);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x + r * L.in;
    double* yr = y + r * L.out;
    std::copy_n(ys.data() + r * R, R, yr);
    std::fill(yr + R, yr + L.out, 0.0);
    if (g.rest_row.empty()) continue;
    for (int64_t o = 0; o < L.out; ++o) {
      double s = 0;
      for (int p = g.rest_row[size_t(o)]; p < g.rest_row[size_t(o + 1)]; ++p) {
        const double v = g.rest_val[size_t(p)];
        s += (absolute ? std::fabs(v) : v) * xr[g.rest_col[size_t(p)]];
      }
      yr[o] += s;
    }
  }
}

void layer_conv_transpose(const AffineLayer& L, const double* y, int64_t rows, double* x) {
  const ConvGeometry& g = *L.conv;
  const int64_t CHW = g.channels * g.height * g.width, R = g.maps * g.out_height * g.out_width;
  if (L.in == CHW && L.out == R && g.rest_row.empty()) {
    conv_transpose(g, y, rows, x);
    return;
  }
  std::vector<double> ys(size_t(rows * R)), xs(size_t(rows * CHW));
  for (int64_t r = 0; r < rows; ++r) std::copy_n(y + r * L.out, R, ys.data() + r * R);
  conv_transpose(g, ys.data(), rows, xs.data());
  for (int64_t r = 0; r < rows; ++r) {
    const double* yr = y + r * L.out;
    double* xr = x + r * L.in;
    std::fill(xr, xr + L.in, 0.0);
    std::copy_n(xs.data() + r * CHW, CHW, xr + g.in_offset);
    if (g.rest_row.empty()) continue;
    for (int64_t o = 0; o < L.out; ++o) {
      const double c = yr[o];
      if (c == 0) continue;
      for (int p = g.rest_row[size_t(o)]; p < g.rest_row[size_t(o + 1)]; ++p) xr[g.rest_col[size_t(p)]] += c * g.rest_val[size_t(p)];
    }
  }
}

}  // namespace mlaudit::verify::detail
