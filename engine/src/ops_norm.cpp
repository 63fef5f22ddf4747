// ops_norm.cpp: normalisation layers (LayerNormalization, GroupNormalization,
// InstanceNormalization, LpNormalization, MeanVarianceNormalization), ConvTranspose, Resize
// and Upsample, each with its vector-Jacobian product. BatchNormalization and the pooling ops
// live in ops_nn.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

bool has_input(const Inputs& in, size_t k) { return k < in.size() && in[k] != nullptr && !in[k]->empty(); }

// Largest output (elements) a resizing op may allocate: a crafted scale or size must be refused
// with a message, not answered with an allocation failure.
constexpr int64_t kMaxResizeElements = int64_t(1) << 32;

// Flat index into a tensor of shape `from` of every element of `to`, when `from` broadcasts to
// `to` (numpy rules, leading unit dims of `from` dropped first); false when it does not.
bool broadcast_index(Shape from, const Shape& to, std::vector<int64_t>& index) {
  while (from.size() > to.size() && from.front() == 1) from.erase(from.begin());
  if (from.size() > to.size()) return false;
  const size_t r = to.size(), lead = r - from.size();
  std::vector<int64_t> stride(r, 0);
  int64_t s = 1;
  for (size_t i = r; i-- > lead;) {
    int64_t d = from[i - lead];
    if (d != to[i] && d != 1) return false;
    stride[i] = d == 1 ? 0 : s;
    s *= d;
  }
  index.assign(static_cast<size_t>(shape_numel(to)), 0);
  std::vector<int64_t> pos(r, 0);
  int64_t off = 0;
  for (size_t n = 0; n < index.size(); ++n) {
    index[n] = off;
    for (size_t k = r; k-- > 0;) {
      if (++pos[k] < to[k]) {
        off += stride[k];
        break;
      }
      off -= stride[k] * (to[k] - 1);
      pos[k] = 0;
    }
  }
  return true;
}

// ---------------- row normalisation: Layer-, Group- and InstanceNormalization ----------------
// The input is viewed as [rows, len] (each op's normalised elements are contiguous):
//   xhat = (x - mean) * inv,  inv = 1 / sqrt(var + eps),  var the population variance,
//   y = xhat * scale[p] + bias[p]  with p = param_of(row, j) the affine parameter of an element.
// VJP (Ba et al. 2016, and any normalisation layer): with gh = gy * scale[p],
//   dx = inv * (gh - mean(gh) - xhat * mean(gh * xhat)),  dscale[p] += gy * xhat,  dbias[p] += gy;
// LayerNormalization's Mean and InvStdDev outputs add  g_mean / len  and
//   g_inv * d inv / dx = -g_inv * inv^2 * xhat / len.

struct RowStats {
  std::vector<double> mean, inv;
};

RowStats row_stats(const float* x, int64_t rows, int64_t len, double eps) {
  RowStats s;
  s.mean.assign(rows, 0.0);
  s.inv.assign(rows, 0.0);
#pragma omp parallel for if (rows * len > 65536) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x + r * len;
    // Two passes in double, each over 8 independent accumulators (a fixed summation order
    // that the compiler may vectorise; one serial accumulator would not be).
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= len; j += 8)
      for (int l = 0; l < 8; ++l) acc[l] += p[j + l];
    double m = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < len; ++j) m += p[j];
    m = len ? m / len : 0.0;
    double sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    j = 0;
    for (; j + 8 <= len; j += 8)
      for (int l = 0; l < 8; ++l) {
        const double d = p[j + l] - m;
        sq[l] += d * d;
      }
    double v = ((sq[0] + sq[1]) + (sq[2] + sq[3])) + ((sq[4] + sq[5]) + (sq[6] + sq[7]));
    for (; j < len; ++j) v += (p[j] - m) * (p[j] - m);
    v = len ? v / len : 0.0;
    s.mean[r] = m;
    s.inv[r] = 1.0 / std::sqrt(v + eps);
  }
  return s;
}

template <class ParamOf>
void row_norm_forward(const float* x, float* y, const RowStats& st, int64_t rows, int64_t len, const float* scale,
                      const float* bias, ParamOf param_of) {
#pragma omp parallel for if (rows * len > 65536) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len; ++j) {
      const int64_t p = param_of(r, j);
      const double xhat = (x[r * len + j] - st.mean[r]) * st.inv[r];
      y[r * len + j] = float(xhat * scale[p] + (bias ? bias[p] : 0.f));
    }
}

struct RowNormGrads {
  float* gx = nullptr;              ///< [rows * len] or nullptr
  std::vector<double>* gscale = nullptr;  ///< per parameter, accumulated
  std::vector<double>* gbias = nullptr;
};

template <class ParamOf>
void row_norm_backward(const float* x, const float* gy, const float* g_mean, const float* g_inv, const RowStats& st,
                       int64_t rows, int64_t len, const float* scale, ParamOf param_of, RowNormGrads out) {
  if (out.gx) {
#pragma omp parallel for if (rows * len > 65536) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* px = x + r * len;
      const double m = st.mean[r], inv = st.inv[r];
      // Both sums over four interleaved partial sums each, added in a fixed order (a single
      // running sum is a chain of dependent additions, 4 cycles per element).
      double part_gh[4] = {0, 0, 0, 0}, part_ghx[4] = {0, 0, 0, 0};
      if (gy) {
        int64_t j = 0;
        for (; j + 4 <= len; j += 4)
          for (int l = 0; l < 4; ++l) {
            const double gh = double(gy[r * len + j + l]) * scale[param_of(r, j + l)];
            part_gh[l] += gh;
            part_ghx[l] += gh * (px[j + l] - m) * inv;
          }
        for (; j < len; ++j) {
          const double gh = double(gy[r * len + j]) * scale[param_of(r, j)];
          part_gh[0] += gh;
          part_ghx[0] += gh * (px[j] - m) * inv;
        }
      }
      const double sum_gh = (part_gh[0] + part_gh[1]) + (part_gh[2] + part_gh[3]);
      const double sum_gh_xhat = (part_ghx[0] + part_ghx[1]) + (part_ghx[2] + part_ghx[3]);
      const double mean_gh = len ? sum_gh / len : 0.0, mean_gh_xhat = len ? sum_gh_xhat / len : 0.0;
      const double gm = g_mean ? double(g_mean[r]) / len : 0.0;
      const double gi = g_inv ? -double(g_inv[r]) * inv * inv / len : 0.0;
      for (int64_t j = 0; j < len; ++j) {
        const double xhat = (px[j] - m) * inv;
        double v = gm + gi * xhat;
        if (gy) v += inv * (double(gy[r * len + j]) * scale[param_of(r, j)] - mean_gh - xhat * mean_gh_xhat);
        out.gx[r * len + j] = float(v);
      }
    }
  }
  if (!gy || (!out.gscale && !out.gbias)) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len; ++j) {
      const int64_t p = param_of(r, j);
      const double g = gy[r * len + j];
      if (out.gscale) (*out.gscale)[p] += g * (x[r * len + j] - st.mean[r]) * st.inv[r];
      if (out.gbias) (*out.gbias)[p] += g;
    }
}

Tensor to_float_tensor(const Shape& shape, const std::vector<double>& v) {
  Tensor t = Tensor::uninitialized(DType::Float32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(v[i]);
  return t;
}

// ---------------- LayerNormalization (17) ----------------
// Normalises over axes [axis, rank); Scale and B broadcast to X.shape[axis:]. Optional outputs
// Mean and InvStdDev have shape X.shape[:axis] + [1] * (rank - axis). stash_type only selects the
// precision of the statistics: they are always computed in double here.

struct LayerNormPlan {
  int64_t axis, rows, len;
  std::vector<int64_t> scale_index, bias_index;  ///< element j of a row -> parameter element
  Shape stat_shape;
};

LayerNormPlan layer_norm_plan(const OpContext& ctx, const Inputs& in) {
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& scale = float_input(ctx, in, 1);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) op_error(ctx, "scalar input");
  LayerNormPlan p;
  p.axis = norm_axis(ctx, ctx.node.get_int("axis", -1), rank);
  Shape inner(x.shape().begin() + p.axis, x.shape().end());
  p.rows = shape_numel(Shape(x.shape().begin(), x.shape().begin() + p.axis));
  p.len = shape_numel(inner);
  if (!broadcast_index(scale.shape(), inner, p.scale_index))
    op_error(ctx, fmt::format("Scale of shape {} does not broadcast to the normalised shape {}", shape_str(scale.shape()),
                              shape_str(inner)));
  if (has_input(in, 2) && !broadcast_index(float_input(ctx, in, 2).shape(), inner, p.bias_index))
    op_error(ctx, fmt::format("B of shape {} does not broadcast to the normalised shape {}", shape_str(in[2]->shape()),
                              shape_str(inner)));
  p.stat_shape = Shape(x.shape().begin(), x.shape().begin() + p.axis);
  p.stat_shape.resize(rank, 1);
  return p;
}

// The affine parameters expanded to one row (len values), so rows index them by j.
std::vector<float> expand_row(const float* param, const std::vector<int64_t>& index) {
  std::vector<float> row(index.size());
  for (size_t j = 0; j < index.size(); ++j) row[j] = param[index[j]];
  return row;
}

void layer_norm_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  LayerNormPlan p = layer_norm_plan(ctx, in);
  const Tensor& x = *in[0];
  const double eps = ctx.node.get_float("epsilon", 1e-5f);
  RowStats st = row_stats(x.f32(), p.rows, p.len, eps);
  std::vector<float> scale = expand_row(in[1]->f32(), p.scale_index);
  std::vector<float> bias = p.bias_index.empty() ? std::vector<float>() : expand_row(in[2]->f32(), p.bias_index);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  // y = (x - mean) * inv * scale + bias, in float once the statistics are known (contiguous
  // parameters per row, so the inner loop vectorises).
  const float* px = x.f32();
  float* py = y.f32();
  const float* ps = scale.data();
  const float* pb = bias.empty() ? nullptr : bias.data();
  const int64_t rows = p.rows, len = p.len;
#pragma omp parallel for if (rows * len > 65536) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float m = float(st.mean[r]), a = float(st.inv[r]);
    const float* xr = px + r * len;
    float* yr = py + r * len;
    if (pb)
      for (int64_t j = 0; j < len; ++j) yr[j] = (xr[j] - m) * a * ps[j] + pb[j];
    else
      for (int64_t j = 0; j < len; ++j) yr[j] = (xr[j] - m) * a * ps[j];
  }
  out[0] = y;
  if (out.size() > 1) out[1] = to_float_tensor(p.stat_shape, st.mean);
  if (out.size() > 2) out[2] = to_float_tensor(p.stat_shape, st.inv);
}

void layer_norm_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                    std::vector<Tensor>& gin) {
  LayerNormPlan p = layer_norm_plan(ctx, in);
  const Tensor& x = *in[0];
  const float* gy = g[0] ? g[0]->f32() : nullptr;
  const float* g_mean = g.size() > 1 && g[1] ? g[1]->f32() : nullptr;
  const float* g_inv = g.size() > 2 && g[2] ? g[2]->f32() : nullptr;
  const double eps = ctx.node.get_float("epsilon", 1e-5f);
  RowStats st = row_stats(x.f32(), p.rows, p.len, eps);
  std::vector<float> scale = expand_row(in[1]->f32(), p.scale_index);
  std::vector<double> gscale(p.len, 0.0), gbias(p.len, 0.0);
  RowNormGrads out;
  if (need[0]) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
    out.gx = gin[0].f32();
  }
  const bool need_scale = need.size() > 1 && need[1], need_bias = need.size() > 2 && need[2] && has_input(in, 2);
  if (need_scale) out.gscale = &gscale;
  if (need_bias) out.gbias = &gbias;
  row_norm_backward(x.f32(), gy, g_mean, g_inv, st, p.rows, p.len, scale.data(), [](int64_t, int64_t j) { return j; },
                    out);
  // Per-row-element sums, reduced to each parameter's own (broadcast) shape.
  Shape inner(x.shape().begin() + p.axis, x.shape().end());
  if (need_scale) gin[1] = reduce_to_shape(to_float_tensor(inner, gscale), in[1]->shape()).reshape(in[1]->shape());
  if (need_bias) gin[2] = reduce_to_shape(to_float_tensor(inner, gbias), in[2]->shape()).reshape(in[2]->shape());
}

// ---------------- GroupNormalization (18: scale/bias per group; 21: per channel) ----------------
// InstanceNormalization (1, 6, 22) is the same with one group per channel and per-channel affine.

struct GroupNormPlan {
  int64_t n, c, groups, area, rows, len;
  bool per_channel;  ///< scale/bias per channel (GroupNormalization-21, InstanceNormalization)
};

GroupNormPlan group_norm_plan(const OpContext& ctx, const Inputs& in, bool instance) {
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& scale = float_input(ctx, in, 1);
  const Tensor& bias = float_input(ctx, in, 2);
  if (x.rank() < (instance ? 3u : 2u))
    op_error(ctx, fmt::format("expects [N,C,{}...], got {}", instance ? "D1," : "", shape_str(x.shape())));
  GroupNormPlan p;
  p.n = x.shape()[0];
  p.c = x.shape()[1];
  p.area = shape_numel(Shape(x.shape().begin() + 2, x.shape().end()));
  if (instance) {
    p.groups = p.c;
    p.per_channel = true;
  } else {
    if (!ctx.node.has("num_groups")) op_error(ctx, "missing attribute num_groups");
    p.groups = ctx.node.get_int("num_groups", 0);
    if (p.groups <= 0 || p.c % p.groups != 0)
      op_error(ctx, fmt::format("num_groups {} does not divide the {} channels", p.groups, p.c));
    p.per_channel = ctx.node.since_version >= 21;
  }
  const int64_t params = p.per_channel ? p.c : p.groups;
  if (scale.numel() != params || bias.numel() != params || scale.rank() != 1 || bias.rank() != 1)
    op_error(ctx, fmt::format("scale {} and bias {} must be [{}] (one per {})", shape_str(scale.shape()),
                              shape_str(bias.shape()), params, p.per_channel ? "channel" : "group"));
  p.rows = p.n * p.groups;
  p.len = p.groups ? (p.c / p.groups) * p.area : 0;  // InstanceNormalization of zero channels: no rows
  return p;
}

// Parameter of element j of row r (row = sample * groups + group).
struct GroupParam {
  int64_t groups, channels_per_group, area;
  bool per_channel;
  int64_t operator()(int64_t r, int64_t j) const {
    const int64_t group = r % groups;
    return per_channel ? group * channels_per_group + j / std::max<int64_t>(area, 1) : group;
  }
};

GroupParam group_param(const GroupNormPlan& p) {
  return GroupParam{std::max<int64_t>(p.groups, 1), p.groups ? p.c / p.groups : 0, p.area, p.per_channel};
}

template <bool Instance>
void group_norm_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  GroupNormPlan p = group_norm_plan(ctx, in, Instance);
  const Tensor& x = *in[0];
  RowStats st = row_stats(x.f32(), p.rows, p.len, ctx.node.get_float("epsilon", 1e-5f));
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  row_norm_forward(x.f32(), y.f32(), st, p.rows, p.len, in[1]->f32(), in[2]->f32(), group_param(p));
  out[0] = y;
}

template <bool Instance>
void group_norm_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                    std::vector<Tensor>& gin) {
  if (!g[0]) return;
  GroupNormPlan p = group_norm_plan(ctx, in, Instance);
  const Tensor& x = *in[0];
  RowStats st = row_stats(x.f32(), p.rows, p.len, ctx.node.get_float("epsilon", 1e-5f));
  const int64_t params = in[1]->numel();
  std::vector<double> gscale(params, 0.0), gbias(params, 0.0);
  RowNormGrads out;
  if (need[0]) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
    out.gx = gin[0].f32();
  }
  if (need[1]) out.gscale = &gscale;
  if (need[2]) out.gbias = &gbias;
  row_norm_backward(x.f32(), g[0]->f32(), nullptr, nullptr, st, p.rows, p.len, in[1]->f32(), group_param(p), out);
  if (need[1]) gin[1] = to_float_tensor(in[1]->shape(), gscale);
  if (need[2]) gin[2] = to_float_tensor(in[2]->shape(), gbias);
}

// ---------------- LpNormalization (1, 22) ----------------
// y = x / ||x||_p along `axis` (p 1 or 2); a zero vector maps to zero (as onnxruntime).
// VJP, n = ||x||_p: p = 2: dx = (g - y <g, y>) / n;  p = 1: dx = g / n - sign(x) <g, x> / n^2.

struct LineDims {
  int64_t outer, len, inner;
};

LineDims line_dims(const OpContext& ctx, const Shape& s, int64_t axis_attr) {
  const int64_t rank = static_cast<int64_t>(s.size());
  if (rank == 0) op_error(ctx, "scalar input");
  const int64_t axis = norm_axis(ctx, axis_attr, rank);
  LineDims d{1, s[axis], 1};
  for (int64_t i = 0; i < axis; ++i) d.outer *= s[i];
  for (int64_t i = axis + 1; i < rank; ++i) d.inner *= s[i];
  return d;
}

int64_t lp_order(const OpContext& ctx) {
  const int64_t p = ctx.node.get_int("p", 2);
  if (p != 1 && p != 2) op_error(ctx, fmt::format("p must be 1 or 2, got {}", p));
  return p;
}

double lp_norm_line(const float* x, int64_t len, int64_t stride, int64_t p) {
  double acc = 0;
  for (int64_t k = 0; k < len; ++k) {
    const double v = x[k * stride];
    acc += p == 1 ? std::abs(v) : v * v;
  }
  return p == 1 ? acc : std::sqrt(acc);
}

void lp_norm_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  const int64_t p = lp_order(ctx);
  LineDims d = line_dims(ctx, x.shape(), ctx.node.get_int("axis", -1));
  Tensor y(x.shape());
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t i = 0; i < d.inner; ++i) {
      const int64_t base = o * d.len * d.inner + i;
      const double n = lp_norm_line(x.f32() + base, d.len, d.inner, p);
      if (n == 0) continue;
      for (int64_t k = 0; k < d.len; ++k) y.f32()[base + k * d.inner] = float(x.f32()[base + k * d.inner] / n);
    }
  out[0] = y;
}

void lp_norm_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                 std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  const int64_t p = lp_order(ctx);
  LineDims d = line_dims(ctx, x.shape(), ctx.node.get_int("axis", -1));
  gin[0] = Tensor(x.shape());
  const float* px = x.f32();
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  for (int64_t o = 0; o < d.outer; ++o)
    for (int64_t i = 0; i < d.inner; ++i) {
      const int64_t base = o * d.len * d.inner + i;
      const double n = lp_norm_line(px + base, d.len, d.inner, p);
      if (n == 0) continue;  // the forward is constant zero there (subgradient 0)
      double dot = 0;
      for (int64_t k = 0; k < d.len; ++k) dot += double(pg[base + k * d.inner]) * px[base + k * d.inner];
      for (int64_t k = 0; k < d.len; ++k) {
        const int64_t j = base + k * d.inner;
        const double xv = px[j];
        pd[j] = p == 2 ? float((pg[j] - xv * dot / (n * n)) / n)
                       : float(pg[j] / n - (xv > 0 ? 1.0 : xv < 0 ? -1.0 : 0.0) * dot / (n * n));
      }
    }
}

// ---------------- MeanVarianceNormalization (9, 13) ----------------
// y = (x - E[x]) / (sqrt(E[(x - E[x])^2]) + 1e-9) over `axes` (default [0, 2, 3]), as the ONNX
// function body. VJP with c = x - m, s = sqrt(mean(c^2)), d = s + 1e-9, over each group of n:
//   dx_j = (g_j - mean(g)) / d - c_j / (n s d^2) * sum_i g_i c_i.

constexpr double kMvnEpsilon = 1e-9;

struct MvnPlan {
  std::vector<int64_t> group;  ///< element -> group (the element with reduced axes set to 0)
  int64_t groups, count;
};

MvnPlan mvn_plan(const OpContext& ctx, const Shape& s) {
  const int64_t rank = static_cast<int64_t>(s.size());
  std::vector<bool> reduced(rank, false);
  for (int64_t a : ctx.node.get_ints("axes", {0, 2, 3})) {
    int64_t k = norm_axis(ctx, a, rank);
    if (reduced[k]) op_error(ctx, fmt::format("axis {} repeated in axes", a));
    reduced[k] = true;
  }
  Shape kept = s;
  MvnPlan p;
  p.count = 1;
  for (int64_t i = 0; i < rank; ++i)
    if (reduced[i]) {
      p.count *= s[i];
      kept[i] = 1;
    }
  p.groups = shape_numel(kept);
  if (!broadcast_index(kept, s, p.group)) op_error(ctx, "internal: MVN group map");
  return p;
}

void mvn_stats(const float* x, const MvnPlan& p, std::vector<double>& mean, std::vector<double>& sd) {
  mean.assign(p.groups, 0.0);
  sd.assign(p.groups, 0.0);
  for (size_t i = 0; i < p.group.size(); ++i) mean[p.group[i]] += x[i];
  for (auto& m : mean) m = p.count ? m / p.count : 0.0;
  for (size_t i = 0; i < p.group.size(); ++i) {
    const double c = x[i] - mean[p.group[i]];
    sd[p.group[i]] += c * c;
  }
  for (auto& v : sd) v = std::sqrt(p.count ? v / p.count : 0.0);
}

void mvn_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  MvnPlan p = mvn_plan(ctx, x.shape());
  std::vector<double> mean, sd;
  mvn_stats(x.f32(), p, mean, sd);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  for (size_t i = 0; i < p.group.size(); ++i) {
    const int64_t k = p.group[i];
    y.f32()[i] = float((x.f32()[i] - mean[k]) / (sd[k] + kMvnEpsilon));
  }
  out[0] = y;
}

void mvn_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  MvnPlan p = mvn_plan(ctx, x.shape());
  std::vector<double> mean, sd;
  mvn_stats(x.f32(), p, mean, sd);
  const float* pg = g[0]->f32();
  std::vector<double> sum_g(p.groups, 0.0), sum_gc(p.groups, 0.0);
  for (size_t i = 0; i < p.group.size(); ++i) {
    const int64_t k = p.group[i];
    sum_g[k] += pg[i];
    sum_gc[k] += pg[i] * (x.f32()[i] - mean[k]);
  }
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  for (size_t i = 0; i < p.group.size(); ++i) {
    const int64_t k = p.group[i];
    const double d = sd[k] + kMvnEpsilon, c = x.f32()[i] - mean[k];
    double v = (pg[i] - sum_g[k] / p.count) / d;
    if (sd[k] > 0) v -= c / (p.count * sd[k] * d * d) * sum_gc[k];
    gin[0].f32()[i] = float(v);
  }
}

// ---------------- ConvTranspose (1, 11, 22): 1-D and 2-D ----------------
// Y[n, g*OCg + o, oy, ox] = B + sum X[n, ci, iy, ix] W[ci, o, ky, kx] over ci in group g and
// oy = iy*sh - pt + ky*dh, ox = ix*sw - pl + kx*dw. Output size per axis
//   out = s (in - 1) + output_padding + (k - 1) d + 1 - pad_begin - pad_end,
// or output_shape with pads generated (total = full - out, SAME_UPPER puts the odd one at the end,
// otherwise at the beginning; a negative total is clamped to 0 as onnxruntime does), or
// auto_pad SAME_* with out = in * s.

struct DeconvGeom {
  int64_t n, c, h, w, oc, kh, kw, oh, ow, group, sh, sw, dh, dw, pt, pl;
  int spatial_rank;
};

DeconvGeom deconv_geom(const OpContext& ctx, const Shape& x, const Shape& w) {
  const bool one_d = x.size() == 3 && w.size() == 3;
  if (!one_d && (x.size() != 4 || w.size() != 4))
    op_error(ctx, fmt::format("only 1-D and 2-D transposed convolution is supported (input {}, weights {})",
                              shape_str(x), shape_str(w)));
  const size_t r = one_d ? 1 : 2;
  DeconvGeom g{};
  g.spatial_rank = static_cast<int>(r);
  g.n = x[0];
  g.c = x[1];
  g.h = one_d ? 1 : x[2];
  g.w = x.back();
  g.kh = one_d ? 1 : w[2];
  g.kw = w.back();
  g.group = ctx.node.get_int("group", 1);
  if (g.group <= 0 || w[0] != g.c || g.c % g.group != 0)
    op_error(ctx, fmt::format("input {} and weights {} do not match group={} (weights are [C, OC/group, k...])",
                              shape_str(x), shape_str(w), g.group));
  g.oc = w[1] * g.group;
  std::vector<int64_t> kernel = one_d ? std::vector<int64_t>{g.kw} : std::vector<int64_t>{g.kh, g.kw};
  if (ctx.node.get_ints("kernel_shape", kernel) != kernel) op_error(ctx, "kernel_shape does not match the weights");
  auto st = ctx.node.get_ints("strides", std::vector<int64_t>(r, 1));
  auto dl = ctx.node.get_ints("dilations", std::vector<int64_t>(r, 1));
  auto pads = ctx.node.get_ints("pads", std::vector<int64_t>(2 * r, 0));
  auto opad = ctx.node.get_ints("output_padding", std::vector<int64_t>(r, 0));
  auto oshape = ctx.node.get_ints("output_shape", {});
  if (oshape.size() == r + 2) oshape.erase(oshape.begin(), oshape.begin() + 2);
  if (st.size() != r || dl.size() != r || pads.size() != 2 * r || opad.size() != r || (!oshape.empty() && oshape.size() != r))
    op_error(ctx, fmt::format("strides/dilations/pads/output_padding/output_shape must describe {} spatial dim{}", r,
                              r == 1 ? "" : "s"));
  constexpr int64_t kMaxAttr = int64_t(1) << 31;  // keeps the size arithmetic below from overflowing
  for (const auto* list : {&st, &dl, &pads, &opad, &oshape})
    for (auto v : *list)
      if (v > kMaxAttr) op_error(ctx, fmt::format("strides/dilations/pads/output_padding/output_shape value {} is too large", v));
  for (size_t i = 0; i < r; ++i) {
    if (st[i] <= 0 || dl[i] <= 0) op_error(ctx, "strides and dilations must be positive");
    if (opad[i] < 0 || pads[i] < 0 || pads[i + r] < 0) op_error(ctx, "negative pads or output_padding");
    if (!oshape.empty() && oshape[i] <= 0) op_error(ctx, fmt::format("output_shape entry {} is not positive", oshape[i]));
  }
  const std::string auto_pad = ctx.node.get_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    op_error(ctx, fmt::format("unknown auto_pad '{}'", auto_pad));
  const int64_t in_sizes[2] = {g.h, g.w}, kernels[2] = {g.kh, g.kw};
  int64_t outs[2] = {1, 1}, begins[2] = {0, 0};
  for (size_t i = 0; i < r; ++i) {
    const size_t a = one_d ? 1 : i;  // axis slot: H = 0, W = 1
    const int64_t in = in_sizes[a], k = kernels[a];
    const int64_t full = st[i] * (in - 1) + opad[i] + (k - 1) * dl[i] + 1;
    if (!oshape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = !oshape.empty() ? oshape[i] : in * st[i];
      const int64_t total = std::max<int64_t>(0, full - out);
      outs[a] = out;
      begins[a] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else if (auto_pad == "VALID") {
      outs[a] = full;
    } else {
      outs[a] = full - pads[i] - pads[i + r];
      begins[a] = pads[i];
    }
    if (outs[a] <= 0) op_error(ctx, fmt::format("output size {} is not positive (input {})", outs[a], shape_str(x)));
  }
  g.oh = outs[0];
  g.ow = outs[1];
  g.pt = begins[0];
  g.pl = begins[1];
  g.sh = one_d ? 1 : st[0];
  g.sw = st.back();
  g.dh = one_d ? 1 : dl[0];
  g.dw = dl.back();
  if (g.oh * g.ow > kMaxResizeElements) op_error(ctx, fmt::format("output of {} x {} is too large", g.oh, g.ow));
  return g;
}

Shape deconv_output_shape(const DeconvGeom& g) {
  return g.spatial_rank == 1 ? Shape{g.n, g.oc, g.ow} : Shape{g.n, g.oc, g.oh, g.ow};
}

void conv_transpose_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& w = float_input(ctx, in, 1);
  DeconvGeom g = deconv_geom(ctx, x.shape(), w.shape());
  const bool has_bias = has_input(in, 2);
  if (has_bias && (float_input(ctx, in, 2).rank() != 1 || in[2]->numel() != g.oc))
    op_error(ctx, fmt::format("bias of shape {} is not [{}] (the output channels)", shape_str(in[2]->shape()), g.oc));
  Tensor y(deconv_output_shape(g));
  const int64_t icg = g.c / g.group, ocg = g.oc / g.group, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const float* px = x.f32();
  const float* pw = w.f32();
  float* py = y.f32();
  const int64_t planes = g.n * g.oc;
#pragma omp parallel for if (planes * out_plane * icg > 16384) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    const int64_t n = pc / g.oc, oc = pc % g.oc, grp = oc / ocg, o = oc % ocg;
    float* plane = py + pc * out_plane;
    if (has_bias)
      for (int64_t i = 0; i < out_plane; ++i) plane[i] = in[2]->f32()[oc];
    for (int64_t ic = 0; ic < icg; ++ic) {
      const int64_t ci = grp * icg + ic;
      const float* xp = px + (n * g.c + ci) * in_plane;
      for (int64_t ky = 0; ky < g.kh; ++ky)
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const float wv = pw[((ci * ocg + o) * g.kh + ky) * g.kw + kx];
          for (int64_t iy = 0; iy < g.h; ++iy) {
            const int64_t oy = iy * g.sh - g.pt + ky * g.dh;
            if (oy < 0 || oy >= g.oh) continue;
            for (int64_t ix = 0; ix < g.w; ++ix) {
              const int64_t ox = ix * g.sw - g.pl + kx * g.dw;
              if (ox < 0 || ox >= g.ow) continue;
              plane[oy * g.ow + ox] += wv * xp[iy * g.w + ix];
            }
          }
        }
    }
  }
  out[0] = y;
}

// dX[n, ci, iy, ix] = sum gY[n, g*OCg + o, oy, ox] W[ci, o, ky, kx] (a strided convolution of gY),
// dW[ci, o, ky, kx] = sum_n,iy,ix X[n, ci, iy, ix] gY[n, g*OCg + o, oy, ox], dB = sum of gY per channel.
void conv_transpose_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& gout,
                        const std::vector<bool>& need, std::vector<Tensor>& gin) {
  if (!gout[0]) return;
  const Tensor& x = *in[0];
  const Tensor& w = *in[1];
  DeconvGeom g = deconv_geom(ctx, x.shape(), w.shape());
  const int64_t icg = g.c / g.group, ocg = g.oc / g.group, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const float* px = x.f32();
  const float* pw = w.f32();
  const float* pg = gout[0]->f32();
  // Sum over (ky, kx, iy, ix) of f(iy, ix, oy, ox) for the output positions each input reaches.
  auto for_taps = [&](int64_t ky, int64_t kx, auto f) {
    for (int64_t iy = 0; iy < g.h; ++iy) {
      const int64_t oy = iy * g.sh - g.pt + ky * g.dh;
      if (oy < 0 || oy >= g.oh) continue;
      for (int64_t ix = 0; ix < g.w; ++ix) {
        const int64_t ox = ix * g.sw - g.pl + kx * g.dw;
        if (ox < 0 || ox >= g.ow) continue;
        f(iy * g.w + ix, oy * g.ow + ox);
      }
    }
  };
  if (need[0]) {
    gin[0] = Tensor(x.shape());
    float* pd = gin[0].f32();
    const int64_t planes = g.n * g.c;
#pragma omp parallel for if (planes * out_plane * ocg > 16384) schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const int64_t n = pc / g.c, ci = pc % g.c, grp = ci / icg;
      float* dp = pd + pc * in_plane;
      for (int64_t o = 0; o < ocg; ++o) {
        const float* gp = pg + (n * g.oc + grp * ocg + o) * out_plane;
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const float wv = pw[((ci * ocg + o) * g.kh + ky) * g.kw + kx];
            for_taps(ky, kx, [&](int64_t i, int64_t j) { dp[i] += wv * gp[j]; });
          }
      }
    }
  }
  if (need[1]) {
    gin[1] = Tensor(w.shape());
    float* pd = gin[1].f32();
#pragma omp parallel for if (g.c * ocg * out_plane * g.n > 16384) schedule(static)
    for (int64_t ci = 0; ci < g.c; ++ci) {
      const int64_t grp = ci / icg;
      for (int64_t o = 0; o < ocg; ++o)
        for (int64_t ky = 0; ky < g.kh; ++ky)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            double acc = 0;
            for (int64_t n = 0; n < g.n; ++n) {
              const float* xp = px + (n * g.c + ci) * in_plane;
              const float* gp = pg + (n * g.oc + grp * ocg + o) * out_plane;
              for_taps(ky, kx, [&](int64_t i, int64_t j) { acc += double(xp[i]) * gp[j]; });
            }
            pd[((ci * ocg + o) * g.kh + ky) * g.kw + kx] = float(acc);
          }
    }
  }
  if (need.size() > 2 && need[2] && has_input(in, 2)) {
    std::vector<double> acc(g.oc, 0.0);
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t oc = 0; oc < g.oc; ++oc)
        for (int64_t i = 0; i < out_plane; ++i) acc[oc] += pg[(n * g.oc + oc) * out_plane + i];
    gin[2] = to_float_tensor(in[2]->shape(), acc);
  }
}

// ---------------- Resize (10, 11, 13, 18, 19) and Upsample (7, 9, 10) ----------------
// Separable: each resized axis maps every output index to a few input taps with weights, and
// the op applies the axes one after another (the weights of all supported modes factor per
// axis; tf_crop_and_resize's extrapolated positions are constant along every other axis, so
// interpolating them leaves the constant). The VJP applies the transposed maps in reverse order.
// Coordinates follow the ONNX spec and onnxruntime (float arithmetic, as onnxruntime):
//   half_pixel (x + 0.5) / scale - 0.5;  half_pixel_symmetric adds center * (1 - out / (scale in));
//   pytorch_half_pixel as half_pixel but 0 when out = 1;  align_corners x (in - 1) / (L - 1) with
//   L = scale * in the output width before flooring (out itself when sizes are given);
//   asymmetric x / scale;  tf_half_pixel_for_nn (x + 0.5) / scale;
//   tf_crop_and_resize start (in - 1) + x (end - start) (in - 1) / (L - 1), extrapolated
//   outside [0, in - 1].
// Taps: nearest one (rounded per nearest_mode, clamped); linear and cubic (Keys, coefficient A)
// weights filter((i - x) * s) over i near x, s = 1 or, with antialias when downsampling, the
// scale (the filter stretched by 1/scale and normalised), clamped to the edge or, with
// exclude_outside, renormalised over the taps inside. Resize-10 and Upsample are asymmetric
// with onnxruntime's "simple" nearest (floor when upsampling, ceil when downsampling).

enum class ResizeMode { Nearest, Linear, Cubic };
enum class CoordMode { HalfPixel, HalfPixelSymmetric, PytorchHalfPixel, AlignCorners, Asymmetric, TfHalfPixelForNn, TfCropAndResize };
enum class NearestMode { RoundPreferFloor, RoundPreferCeil, Floor, Ceil, Simple };

struct ResizeAttrs {
  ResizeMode mode = ResizeMode::Nearest;
  CoordMode coord = CoordMode::HalfPixel;
  NearestMode nearest = NearestMode::RoundPreferFloor;
  float cubic_a = -0.75f;
  bool exclude_outside = false;
  bool antialias = false;
  float extrapolation = 0.f;
};

struct AxisTaps {
  int64_t axis, in, out, ntaps;
  std::vector<int64_t> index;  ///< out * ntaps input indices (clamped into [0, in))
  std::vector<double> weight;  ///< out * ntaps
  std::vector<uint8_t> extrapolated;  ///< out: the value is the extrapolation value
};

struct ResizePlan {
  Shape in_shape, out_shape;
  std::vector<AxisTaps> axes;  ///< non-identity axes, ascending
  float extrapolation = 0.f;
};

double cubic_filter(double x, double a) {
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// out_len: the output width before flooring (scale * in with scales, the size with sizes).
float source_coordinate(const ResizeAttrs& at, int64_t i, int64_t in, int64_t out, float out_len, float scale,
                        float roi_start, float roi_end) {
  const float xr = static_cast<float>(i);
  switch (at.coord) {
    case CoordMode::HalfPixel: return (xr + 0.5f) / scale - 0.5f;
    case CoordMode::HalfPixelSymmetric: {
      const float adjustment = static_cast<float>(out) / (scale * static_cast<float>(in));
      const float center = static_cast<float>(in) / 2;
      return center * (1 - adjustment) + (xr + 0.5f) / scale - 0.5f;
    }
    case CoordMode::PytorchHalfPixel: return out > 1 ? (xr + 0.5f) / scale - 0.5f : 0.f;
    case CoordMode::AlignCorners: return out_len == 1.f ? 0.f : xr * static_cast<float>(in - 1) / (out_len - 1);
    case CoordMode::Asymmetric: return xr / scale;
    case CoordMode::TfHalfPixelForNn: return (xr + 0.5f) / scale;
    case CoordMode::TfCropAndResize:
      return out_len != 1.f ? roi_start * static_cast<float>(in - 1) +
                                  xr * (roi_end - roi_start) * static_cast<float>(in - 1) / (out_len - 1)
                            : 0.5f * (roi_start + roi_end) * static_cast<float>(in - 1);
  }
  return 0.f;
}

int64_t nearest_index(NearestMode m, float x, float scale) {
  const double f = std::floor(double(x)), frac = double(x) - f;
  switch (m) {
    case NearestMode::Simple: return static_cast<int64_t>(scale < 1.f ? std::ceil(double(x)) : f);
    case NearestMode::Floor: return static_cast<int64_t>(f);
    case NearestMode::Ceil: return static_cast<int64_t>(std::ceil(double(x)));
    case NearestMode::RoundPreferFloor: return static_cast<int64_t>(frac <= 0.5 ? f : f + 1);
    case NearestMode::RoundPreferCeil: return static_cast<int64_t>(frac < 0.5 ? f : f + 1);
  }
  return static_cast<int64_t>(f);
}

AxisTaps axis_taps(const ResizeAttrs& at, int64_t axis, int64_t in, int64_t out, float out_len, float scale,
                   float roi_start, float roi_end) {
  AxisTaps t;
  t.axis = axis;
  t.in = in;
  t.out = out;
  const double s = (at.antialias && at.mode != ResizeMode::Nearest) ? std::min(double(scale), 1.0) : 1.0;
  const double support = at.mode == ResizeMode::Cubic ? 2.0 : 1.0;
  const int64_t start = static_cast<int64_t>(std::floor(-support / s)) + 1;  // first tap relative to floor(x)
  t.ntaps = at.mode == ResizeMode::Nearest ? 1 : 2 - 2 * start;
  t.index.assign(out * t.ntaps, 0);
  t.weight.assign(out * t.ntaps, 0.0);
  t.extrapolated.assign(out, 0);
  std::vector<double> w(t.ntaps);
  for (int64_t i = 0; i < out; ++i) {
    float x = source_coordinate(at, i, in, out, out_len, scale, roi_start, roi_end);
    if (!std::isfinite(x) || (at.coord == CoordMode::TfCropAndResize && (x < 0 || x > static_cast<float>(in - 1)))) {
      t.extrapolated[i] = 1;
      continue;
    }
    x = std::clamp(x, -1e15f, 1e15f);  // integer casts below stay defined for any finite coordinate
    int64_t* idx = t.index.data() + i * t.ntaps;
    double* wt = t.weight.data() + i * t.ntaps;
    if (at.mode == ResizeMode::Nearest) {
      idx[0] = std::clamp<int64_t>(nearest_index(at.nearest, x, scale), 0, in - 1);
      wt[0] = 1.0;
      continue;
    }
    const int64_t x0 = static_cast<int64_t>(std::floor(double(x)));
    double sum = 0;
    for (int64_t k = 0; k < t.ntaps; ++k) {
      const int64_t j = x0 + start + k;
      const double arg = (double(j) - double(x)) * s;
      w[k] = at.mode == ResizeMode::Linear ? std::max(0.0, 1.0 - std::abs(arg)) : cubic_filter(arg, at.cubic_a);
      sum += w[k];
    }
    if (s < 1.0 && sum != 0)
      for (auto& v : w) v /= sum;
    if (at.exclude_outside) {
      double inside = 0;
      for (int64_t k = 0; k < t.ntaps; ++k) {
        const int64_t j = x0 + start + k;
        if (j < 0 || j >= in) w[k] = 0;
        inside += w[k];
      }
      if (inside != 0)
        for (auto& v : w) v /= inside;
    }
    for (int64_t k = 0; k < t.ntaps; ++k) {
      idx[k] = std::clamp<int64_t>(x0 + start + k, 0, in - 1);
      wt[k] = w[k];
    }
  }
  return t;
}

bool is_identity(const AxisTaps& t) {
  if (t.in != t.out) return false;
  for (int64_t i = 0; i < t.out; ++i) {
    if (t.extrapolated[i]) return false;
    for (int64_t k = 0; k < t.ntaps; ++k) {
      const double w = t.weight[i * t.ntaps + k];
      if (w != 0 && (w != 1 || t.index[i * t.ntaps + k] != i)) return false;
    }
  }
  return true;
}

ResizeMode parse_mode(const OpContext& ctx, const std::string& m, bool cubic_allowed) {
  if (m == "nearest") return ResizeMode::Nearest;
  if (m == "linear" || m == "bilinear") return ResizeMode::Linear;
  if (m == "cubic" && cubic_allowed) return ResizeMode::Cubic;
  op_error(ctx, fmt::format("unsupported mode '{}'", m));
}

ResizeAttrs resize_attrs(const OpContext& ctx, bool upsample) {
  ResizeAttrs at;
  const int64_t v = ctx.node.since_version;
  const bool legacy = upsample || v < 11;  // Resize-10 and Upsample: asymmetric, "simple" nearest
  at.mode = parse_mode(ctx, ctx.node.get_string("mode", "nearest"), !legacy);
  if (legacy) {
    at.coord = CoordMode::Asymmetric;
    at.nearest = NearestMode::Simple;
    return at;
  }
  const std::string cm = ctx.node.get_string("coordinate_transformation_mode", "half_pixel");
  if (cm == "half_pixel") at.coord = CoordMode::HalfPixel;
  else if (cm == "half_pixel_symmetric") at.coord = CoordMode::HalfPixelSymmetric;
  else if (cm == "pytorch_half_pixel") at.coord = CoordMode::PytorchHalfPixel;
  else if (cm == "align_corners") at.coord = CoordMode::AlignCorners;
  else if (cm == "asymmetric") at.coord = CoordMode::Asymmetric;
  else if (cm == "tf_half_pixel_for_nn") at.coord = CoordMode::TfHalfPixelForNn;
  else if (cm == "tf_crop_and_resize") at.coord = CoordMode::TfCropAndResize;
  else op_error(ctx, fmt::format("unknown coordinate_transformation_mode '{}'", cm));
  const std::string nm = ctx.node.get_string("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor") at.nearest = NearestMode::RoundPreferFloor;
  else if (nm == "round_prefer_ceil") at.nearest = NearestMode::RoundPreferCeil;
  else if (nm == "floor") at.nearest = NearestMode::Floor;
  else if (nm == "ceil") at.nearest = NearestMode::Ceil;
  else op_error(ctx, fmt::format("unknown nearest_mode '{}'", nm));
  at.cubic_a = ctx.node.get_float("cubic_coeff_a", -0.75f);
  at.exclude_outside = ctx.node.get_int("exclude_outside", 0) != 0;
  at.extrapolation = ctx.node.get_float("extrapolation_value", 0.f);
  at.antialias = v >= 18 && ctx.node.get_int("antialias", 0) != 0;
  return at;
}

// Scales (float, one per axis of X) or sizes, resolved to output sizes and the per-axis scale
// used by the coordinate transform (sizes: out / in).
ResizePlan resize_plan(const OpContext& ctx, const Inputs& in, bool upsample) {
  const Tensor& x = float_input(ctx, in, 0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const int64_t v = ctx.node.since_version;
  ResizeAttrs at = resize_attrs(ctx, upsample);
  // Axes the scales/sizes/roi describe (Resize-18: attribute axes; otherwise all).
  std::vector<int64_t> axes;
  if (!upsample && v >= 18 && ctx.node.has("axes")) {
    std::vector<bool> seen(rank, false);
    for (int64_t a : ctx.node.get_ints("axes")) {
      int64_t k = norm_axis(ctx, a, rank);
      if (seen[k]) op_error(ctx, fmt::format("axis {} repeated in axes", a));
      seen[k] = true;
      axes.push_back(k);
    }
  } else {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  const size_t na = axes.size();
  std::vector<float> scales;
  std::vector<int64_t> sizes;
  std::vector<float> roi;
  if (upsample) {
    if (v < 9) {
      if (!ctx.node.has("scales")) op_error(ctx, "missing attribute scales");
      scales = ctx.node.get_floats("scales");
    } else {
      const Tensor& s = float_input(ctx, in, 1);
      scales.assign(s.f32(), s.f32() + s.numel());
    }
  } else if (v < 11) {
    const Tensor& s = float_input(ctx, in, 1);
    scales.assign(s.f32(), s.f32() + s.numel());
  } else {
    if (has_input(in, 1) && in[1]->numel() > 0) {
      const Tensor& r = float_input(ctx, in, 1);
      roi.assign(r.f32(), r.f32() + r.numel());
    }
    if (has_input(in, 2) && in[2]->numel() > 0) {
      const Tensor& s = float_input(ctx, in, 2);
      scales.assign(s.f32(), s.f32() + s.numel());
    }
    if (has_input(in, 3) && in[3]->numel() > 0) {
      if (in[3]->dtype() != DType::Int64) op_error(ctx, "sizes must be int64");
      sizes = in[3]->to_int64s();
    }
    if (scales.empty() == sizes.empty())
      op_error(ctx, scales.empty() ? "neither scales nor sizes is given" : "both scales and sizes are given");
  }
  if (!scales.empty() && scales.size() != na)
    op_error(ctx, fmt::format("scales has {} entries for {} axes", scales.size(), na));
  if (!sizes.empty() && sizes.size() != na) op_error(ctx, fmt::format("sizes has {} entries for {} axes", sizes.size(), na));
  if (at.coord == CoordMode::TfCropAndResize && roi.size() != 2 * na)
    op_error(ctx, fmt::format("roi has {} entries; tf_crop_and_resize needs {} (start and end per axis)", roi.size(), 2 * na));

  std::vector<float> axis_scale(rank, 1.f), roi_start(rank, 0.f), roi_end(rank, 1.f);
  const bool by_scales = !scales.empty();
  Shape out_shape = x.shape();
  if (!scales.empty()) {
    for (size_t i = 0; i < na; ++i) {
      const float s = scales[i];
      if (!(s > 0) || !std::isfinite(s)) op_error(ctx, fmt::format("scale {} for axis {} is not positive", s, axes[i]));
      if (upsample && s < 1) op_error(ctx, fmt::format("Upsample scale {} for axis {} is below 1", s, axes[i]));
      const double o = std::floor(double(s * static_cast<float>(x.shape()[axes[i]])));
      if (o > double(kMaxResizeElements))
        op_error(ctx, fmt::format("scale {} gives an output too large for axis {}", s, axes[i]));
      axis_scale[axes[i]] = s;
      out_shape[axes[i]] = static_cast<int64_t>(o);
    }
  } else {
    for (size_t i = 0; i < na; ++i)
      if (sizes[i] < 0 || sizes[i] > kMaxResizeElements)
        op_error(ctx, fmt::format("size {} for axis {} is out of range", sizes[i], axes[i]));
    const std::string policy = v >= 18 ? ctx.node.get_string("keep_aspect_ratio_policy", "stretch") : "stretch";
    if (policy == "stretch") {
      for (size_t i = 0; i < na; ++i) out_shape[axes[i]] = sizes[i];
    } else if (policy == "not_larger" || policy == "not_smaller") {
      float s = policy == "not_larger" ? std::numeric_limits<float>::max() : 0.f;
      for (size_t i = 0; i < na; ++i) {
        const int64_t d = x.shape()[axes[i]];
        if (d == 0) op_error(ctx, fmt::format("keep_aspect_ratio_policy with an empty axis {}", axes[i]));
        const float r = static_cast<float>(sizes[i]) / static_cast<float>(d);
        s = policy == "not_larger" ? std::min(s, r) : std::max(s, r);
      }
      for (size_t i = 0; i < na; ++i) {
        // round_int: halfway cases up
        out_shape[axes[i]] = static_cast<int64_t>(std::floor(double(s) * x.shape()[axes[i]] + 0.5));
        axis_scale[axes[i]] = s;
      }
    } else {
      op_error(ctx, fmt::format("unknown keep_aspect_ratio_policy '{}'", policy));
    }
    for (size_t i = 0; i < na; ++i) {
      const int64_t d = x.shape()[axes[i]];
      if (policy == "stretch") axis_scale[axes[i]] = d ? static_cast<float>(sizes[i]) / static_cast<float>(d) : 1.f;
    }
  }
  if (!roi.empty() && roi.size() == 2 * na)
    for (size_t i = 0; i < na; ++i) {
      roi_start[axes[i]] = roi[i];
      roi_end[axes[i]] = roi[na + i];
    }
  if (shape_numel(out_shape) > kMaxResizeElements)
    op_error(ctx, fmt::format("output shape {} is too large", shape_str(out_shape)));
  ResizePlan p;
  p.in_shape = x.shape();
  p.out_shape = out_shape;
  p.extrapolation = at.extrapolation;
  for (int64_t a = 0; a < rank; ++a) {
    const int64_t isz = x.shape()[a], osz = out_shape[a];
    if (osz == 0 || isz == 0) {
      if (osz != 0) op_error(ctx, fmt::format("cannot resize the empty axis {} to {}", a, osz));
      if (isz != osz) p.axes.push_back(AxisTaps{a, isz, 0, 1, {}, {}, {}});
      continue;
    }
    if (axis_scale[a] == 1.f && osz == isz && at.coord != CoordMode::TfCropAndResize) continue;
    const float out_len = by_scales ? axis_scale[a] * static_cast<float>(isz) : static_cast<float>(osz);
    AxisTaps t = axis_taps(at, a, isz, osz, out_len, axis_scale[a], roi_start[a], roi_end[a]);
    if (!is_identity(t)) p.axes.push_back(std::move(t));
  }
  return p;
}

// One axis of the plan: src [outer, in, inner] -> dst [outer, out, inner].
void apply_axis(const AxisTaps& t, const float* src, float* dst, int64_t outer, int64_t inner, float extrapolation) {
#pragma omp parallel for if (outer * t.out * inner > 65536) schedule(static)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < t.out; ++i) {
      float* d = dst + (o * t.out + i) * inner;
      if (t.extrapolated[i]) {
        std::fill(d, d + inner, extrapolation);
        continue;
      }
      for (int64_t k = 0; k < inner; ++k) {
        double acc = 0;
        for (int64_t j = 0; j < t.ntaps; ++j) {
          const double w = t.weight[i * t.ntaps + j];
          if (w != 0) acc += w * src[(o * t.in + t.index[i * t.ntaps + j]) * inner + k];
        }
        d[k] = float(acc);
      }
    }
}

// Transpose of apply_axis: g_dst [outer, out, inner] -> g_src [outer, in, inner] (zeroed by the caller).
void apply_axis_transposed(const AxisTaps& t, const float* g_dst, float* g_src, int64_t outer, int64_t inner) {
#pragma omp parallel for if (outer * t.out * inner > 65536) schedule(static)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < t.out; ++i) {
      if (t.extrapolated[i]) continue;
      const float* g = g_dst + (o * t.out + i) * inner;
      for (int64_t j = 0; j < t.ntaps; ++j) {
        const double w = t.weight[i * t.ntaps + j];
        if (w == 0) continue;
        float* s = g_src + (o * t.in + t.index[i * t.ntaps + j]) * inner;
        for (int64_t k = 0; k < inner; ++k) s[k] += float(w * g[k]);
      }
    }
}

// Outer and inner extents of axis a of shape s.
void axis_extents(const Shape& s, int64_t a, int64_t& outer, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t i = 0; i < a; ++i) outer *= s[i];
  for (size_t i = a + 1; i < s.size(); ++i) inner *= s[i];
}

template <bool Upsample>
void resize_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  ResizePlan p = resize_plan(ctx, in, Upsample);
  Tensor cur = *in[0];
  Shape shape = p.in_shape;
  for (const AxisTaps& t : p.axes) {
    int64_t outer, inner;
    axis_extents(shape, t.axis, outer, inner);
    shape[t.axis] = t.out;
    Tensor next = Tensor::uninitialized(DType::Float32, shape);
    apply_axis(t, cur.f32(), next.f32(), outer, inner, p.extrapolation);
    cur = next;
  }
  out[0] = p.axes.empty() ? cur.clone() : cur;
}

template <bool Upsample>
void resize_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  ResizePlan p = resize_plan(ctx, in, Upsample);
  // Shapes before each axis step, to walk back through them.
  std::vector<Shape> before;
  Shape shape = p.in_shape;
  for (const AxisTaps& t : p.axes) {
    before.push_back(shape);
    shape[t.axis] = t.out;
  }
  Tensor cur = *g[0];
  for (size_t k = p.axes.size(); k-- > 0;) {
    const AxisTaps& t = p.axes[k];
    int64_t outer, inner;
    axis_extents(before[k], t.axis, outer, inner);
    Tensor prev(before[k]);
    apply_axis_transposed(t, cur.f32(), prev.f32(), outer, inner);
    cur = prev;
  }
  gin[0] = p.axes.empty() ? cur.clone() : cur;
}

}  // namespace

void register_norm_ops() {
  register_op("LayerNormalization", {layer_norm_fwd, layer_norm_bwd});
  register_op("GroupNormalization", {group_norm_fwd<false>, group_norm_bwd<false>});
  register_op("InstanceNormalization", {group_norm_fwd<true>, group_norm_bwd<true>});
  register_op("LpNormalization", {lp_norm_fwd, lp_norm_bwd});
  register_op("MeanVarianceNormalization", {mvn_fwd, mvn_bwd});
  register_op("ConvTranspose", {conv_transpose_fwd, conv_transpose_bwd});
  register_op("Resize", {resize_fwd<false>, resize_bwd<false>});
  // Upsample-1 (height_scale/width_scale attributes, experimental) is not handled.
  register_op("Upsample", OpDef{resize_fwd<true>, resize_bwd<true>, true, 7});
}

}  // namespace mlaudit::engine::detail
