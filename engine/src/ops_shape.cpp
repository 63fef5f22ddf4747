// Shape and data-movement ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
// Concat, Slice, Gather, Pad, Constant, Shape. They work on float32 and int64
// (shape arithmetic as PyTorch exports it: Shape -> Gather -> Concat -> Reshape).
#include <fmt/format.h>

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

// Schema version in force for the node (resolved at load; the model opset for graphs built
// in code, which compares the same way against since-versions).
int64_t version_of(const OpContext& ctx) { return ctx.node.since_version > 0 ? ctx.node.since_version : ctx.opset; }

// Integer tensor input (int64 after loading) as a vector.
std::vector<int64_t> int_values(const OpContext& ctx, const Tensor& t, const char* what) {
  if (t.dtype() != DType::Int64) op_error(ctx, fmt::format("{} must be an integer tensor, got {}", what, dtype_name(t.dtype())));
  return std::vector<int64_t>(t.i64(), t.i64() + t.numel());
}

bool has_input(const Inputs& in, size_t k) { return k < in.size() && in[k] != nullptr && !in[k]->empty(); }

// ---- reshape family: the gradient is the output gradient reshaped back ----

void reshape_like_bwd(const OpContext&, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                      std::vector<Tensor>& gin) {
  if (need[0] && g[0]) gin[0] = g[0]->reshape(in[0]->shape());
}

void flatten_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  int64_t r = x.rank();
  int64_t axis = ctx.node.get_int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) op_error(ctx, fmt::format("axis {} out of range for rank {}", ctx.node.get_int("axis", 1), r));
  int64_t a = 1, b = 1;
  for (int64_t i = 0; i < axis; ++i) a *= x.shape()[i];
  for (int64_t i = axis; i < r; ++i) b *= x.shape()[i];
  out[0] = x.reshape({a, b});
}

void reshape_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  std::vector<int64_t> target;
  if (version_of(ctx) < 5) {
    if (!ctx.node.has("shape")) op_error(ctx, "attribute 'shape' is required");
    target = ctx.node.get_ints("shape");
  } else {
    const Tensor& s = input(ctx, in, 1);
    if (s.rank() != 1) op_error(ctx, fmt::format("shape input must be 1-D, got {}", shape_str(s.shape())));
    target = int_values(ctx, s, "shape");
  }
  // allowzero (Reshape-14): a 0 is a zero-size dim instead of "copy the input's dim".
  const bool allowzero = version_of(ctx) >= 14 && ctx.node.get_int("allowzero", 0) != 0;
  Shape shape(target.begin(), target.end());
  if (allowzero && std::count(shape.begin(), shape.end(), 0) && std::count(shape.begin(), shape.end(), -1))
    op_error(ctx, fmt::format("shape {} has both 0 and -1 with allowzero", shape_str(shape)));
  if (std::count(shape.begin(), shape.end(), -1) > 1) op_error(ctx, fmt::format("shape {} has more than one -1", shape_str(shape)));
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.rank()) op_error(ctx, fmt::format("shape {}: 0 copies a missing dimension", shape_str(shape)));
      shape[i] = x.shape()[i];
    }
    if (shape[i] < -1) op_error(ctx, fmt::format("invalid target shape {}", shape_str(shape)));
  }
  try {
    out[0] = x.reshape(shape);
  } catch (const InputError&) {
    op_error(ctx, fmt::format("cannot reshape {} to {}", shape_str(x.shape()), shape_str(Shape(target.begin(), target.end()))));
  }
}

// Squeeze/Unsqueeze axes: attribute before version 13, optional input from 13.
std::vector<int64_t> axes_of(const OpContext& ctx, const Inputs& in, int64_t input_version) {
  if (version_of(ctx) >= input_version) {
    if (has_input(in, 1)) return int_values(ctx, *in[1], "axes");
    return {};
  }
  return ctx.node.get_ints("axes");
}

void squeeze_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  int64_t r = x.rank();
  auto axes = axes_of(ctx, in, 13);
  std::vector<bool> drop(r, false);
  if (axes.empty()) {
    for (int64_t i = 0; i < r; ++i) drop[i] = x.shape()[i] == 1;
  } else {
    for (int64_t a : axes) {
      int64_t k = norm_axis(ctx, a, r);
      if (x.shape()[k] != 1) op_error(ctx, fmt::format("cannot squeeze axis {} of size {}", a, x.shape()[k]));
      drop[k] = true;
    }
  }
  Shape s;
  for (int64_t i = 0; i < r; ++i)
    if (!drop[i]) s.push_back(x.shape()[i]);
  out[0] = x.reshape(s);
}

void unsqueeze_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  auto axes = axes_of(ctx, in, 13);
  if (axes.empty()) op_error(ctx, "axes are required");
  int64_t r = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> ins(r, false);
  for (int64_t a : axes) {
    int64_t k = norm_axis(ctx, a, r);
    if (ins[k]) op_error(ctx, "repeated axis");
    ins[k] = true;
  }
  Shape s;
  size_t j = 0;
  for (int64_t i = 0; i < r; ++i) s.push_back(ins[i] ? 1 : x.shape()[j++]);
  out[0] = x.reshape(s);
}

// ---- Transpose ----

// y = x with its axes permuted (y's axis i is x's axis perm[i]). Size-1 axes are dropped and
// axes that stay adjacent and in order are merged, so e.g. [B,S,H,D] -> [B,H,S,D] (attention
// heads, perm [0,2,1,3]) becomes three axes. When x's innermost axis stays innermost, whole
// rows are copied; otherwise the two axes that are innermost in x and in y are copied in
// square tiles (both sides touch a few cache lines per tile: [B,H,S,D] -> [B,H,D,S]).
template <class T>
void permute(const Tensor& x, Tensor& y, const std::vector<int64_t>& perm) {
  const size_t r = x.rank();
  const Shape& xs = x.shape();
  std::vector<int64_t> xstride(r, 1);
  for (size_t i = r; i-- > 1;) xstride[i - 1] = xstride[i] * xs[i];
  // Output-order axes after coalescing: extent and input stride.
  std::vector<int64_t> ext, in_st;
  int64_t prev = -2;
  for (size_t i = 0; i < r; ++i) {
    const int64_t a = perm[i];
    if (xs[a] == 1) continue;
    if (a == prev + 1 && !ext.empty()) {
      ext.back() *= xs[a];
      in_st.back() = xstride[a];
    } else {
      ext.push_back(xs[a]);
      in_st.push_back(xstride[a]);
    }
    prev = a;
  }
  const T* px = x.data<T>();
  T* py = y.data<T>();
  const int64_t n = y.numel();
  const size_t cr = ext.size();
  if (cr <= 1) {  // the identity on memory order
    std::copy(px, px + n, py);
    return;
  }
  std::vector<int64_t> out_st(cr, 1);
  for (size_t i = cr; i-- > 1;) out_st[i - 1] = out_st[i] * ext[i];
  // The input's innermost axis (stride 1) in output order.
  size_t unit = 0;
  for (size_t i = 0; i < cr; ++i)
    if (in_st[i] == 1) unit = i;
  const size_t last = cr - 1;
  // Walk every axis except the copied ones (`last`, and `unit` when it differs), calling
  // copy(in_offset, out_offset) once per position; the outermost axis only over [a0, a1) (so
  // threads take slices of it) unless it is a copied one.
  const bool split_outer = unit != 0;
  auto walk = [&](int64_t a0, int64_t a1, auto copy) {
    std::vector<int64_t> idx(cr, 0);
    const size_t first = split_outer ? 1 : 0;
    for (int64_t a = split_outer ? a0 : 0; a < (split_outer ? a1 : 1); ++a) {
      int64_t in_off = split_outer ? a * in_st[0] : 0, out_off = split_outer ? a * out_st[0] : 0;
      std::fill(idx.begin(), idx.end(), 0);
      for (bool more = true; more;) {
        copy(in_off, out_off);
        more = false;
        for (size_t k = last; k-- > first;) {
          if (k == unit) continue;
          if (++idx[k] < ext[k]) {
            in_off += in_st[k];
            out_off += out_st[k];
            more = true;
            break;
          }
          in_off -= in_st[k] * (ext[k] - 1);
          out_off -= out_st[k] * (ext[k] - 1);
          idx[k] = 0;
        }
      }
    }
  };
  // Threads take slices of the outermost axis of a large tensor (each position is written once,
  // so the result does not depend on the split).
  auto run = [&](auto copy) {
    const int64_t outer = split_outer ? ext[0] : 1;
    if (n < (int64_t(1) << 16) || outer < 2 || omp_in_parallel()) return walk(0, outer, copy);
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      walk(outer * t / nt, outer * (t + 1) / nt, copy);
    }
  };
  if (unit == last) {  // rows stay rows
    const int64_t row = ext[last];
    if (row <= 64)  // short rows: an inline loop, not a library call per row
      run([&](int64_t i, int64_t o) {
        const T* src = px + i;
        T* dst = py + o;
        for (int64_t b = 0; b < row; ++b) dst[b] = src[b];
      });
    else
      run([&](int64_t i, int64_t o) { std::copy(px + i, px + i + row, py + o); });
    return;
  }
  // y[o + a*out_st[unit] + b] = x[i + a + b*in_st[last]] for a < ext[unit], b < ext[last].
  constexpr int64_t kTile = 16;
  const int64_t na = ext[unit], nb = ext[last], ys_a = out_st[unit], xs_b = in_st[last];
  run([&](int64_t i, int64_t o) {
    for (int64_t a0 = 0; a0 < na; a0 += kTile) {
      const int64_t a1 = std::min(na, a0 + kTile);
      for (int64_t b0 = 0; b0 < nb; b0 += kTile) {
        const int64_t b1 = std::min(nb, b0 + kTile);
        for (int64_t a = a0; a < a1; ++a) {
          const T* src = px + i + a;
          T* dst = py + o + a * ys_a;
          for (int64_t b = b0; b < b1; ++b) dst[b] = src[b * xs_b];
        }
      }
    }
  });
}

std::vector<int64_t> perm_of(const OpContext& ctx, int64_t r) {
  std::vector<int64_t> perm = ctx.node.get_ints("perm");
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r) op_error(ctx, "perm length differs from the input rank");
  std::vector<bool> seen(r, false);
  for (auto& p : perm) {
    p = norm_axis(ctx, p, r);
    if (seen[p]) op_error(ctx, "perm repeats an axis");
    seen[p] = true;
  }
  return perm;
}

Tensor transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape s;
  for (auto p : perm) s.push_back(x.shape()[p]);
  Tensor y = Tensor::uninitialized(x.dtype(), s);  // permute writes every element
  if (y.numel() == 0) return y;
  if (x.dtype() == DType::Float32) permute<float>(x, y, perm);
  else if (x.dtype() == DType::Int64) permute<int64_t>(x, y, perm);
  else if (x.dtype() == DType::Bool) permute<bool>(x, y, perm);
  else throw InputError("engine", "Transpose: unsupported type");
  return y;
}

void transpose_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  out[0] = transpose(x, perm_of(ctx, x.rank()));
}

void transpose_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                   std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  auto perm = perm_of(ctx, in[0]->rank());
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  gin[0] = transpose(*g[0], inv);
}

// ---- Concat ----

// Concat-1 defaults the axis to 1; from Concat-4 it is required.
int64_t concat_axis(const OpContext& ctx) {
  if (version_of(ctx) < 4) return ctx.node.get_int("axis", 1);
  if (!ctx.node.has("axis")) op_error(ctx, "attribute 'axis' is required");
  return ctx.node.get_int("axis", 0);
}

void concat_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  std::vector<const Tensor*> parts;
  for (size_t k = 0; k < in.size(); ++k) parts.push_back(&input(ctx, in, k));
  if (parts.empty()) op_error(ctx, "needs at least one input");
  const Tensor& first = *parts[0];
  int64_t r = first.rank();
  if (r == 0) op_error(ctx, "cannot concatenate scalars");
  int64_t axis = norm_axis(ctx, concat_axis(ctx), r);
  Shape s = first.shape();
  s[axis] = 0;
  for (auto* p : parts) {
    if (p->dtype() != first.dtype() || static_cast<int64_t>(p->rank()) != r)
      op_error(ctx, "inputs differ in type or rank");
    for (int64_t i = 0; i < r; ++i)
      if (i != axis && p->shape()[i] != first.shape()[i])
        op_error(ctx, fmt::format("shapes {} and {} differ outside axis {}", shape_str(first.shape()), shape_str(p->shape()), axis));
    s[axis] += p->shape()[axis];
  }
  Tensor y(first.dtype(), s);
  int64_t outer = 1, inner = dtype_size(first.dtype());
  for (int64_t i = 0; i < axis; ++i) outer *= s[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
  int64_t off = 0;
  auto* py = static_cast<uint8_t*>(y.raw());
  for (auto* p : parts) {
    int64_t chunk = p->shape()[axis] * inner;
    auto* pp = static_cast<const uint8_t*>(p->raw());
    for (int64_t o = 0; o < outer; ++o)
      if (chunk) std::memcpy(py + (o * s[axis] * inner) + off, pp + o * chunk, chunk);
    off += chunk;
  }
  out[0] = y;
}

void concat_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!g[0]) return;
  const Tensor& gy = *g[0];
  int64_t r = gy.rank();
  int64_t axis = norm_axis(ctx, concat_axis(ctx), r);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= gy.shape()[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= gy.shape()[i];
  int64_t off = 0, total = gy.shape()[axis];
  for (size_t k = 0; k < in.size(); ++k) {
    int64_t len = in[k]->shape()[axis];
    if (need[k]) {
      gin[k] = Tensor(in[k]->shape());
      for (int64_t o = 0; o < outer; ++o)
        if (len * inner != 0)
          std::memcpy(gin[k].f32() + o * len * inner, gy.f32() + (o * total + off) * inner, len * inner * sizeof(float));
    }
    off += len;
  }
}

// ---- Slice ----

struct SliceSpec {
  std::vector<int64_t> start, step, count;  // per axis of the input
};

SliceSpec slice_spec(const OpContext& ctx, const Inputs& in, const Shape& s) {
  std::vector<int64_t> starts, ends, axes, steps;
  if (version_of(ctx) < 10) {
    starts = ctx.node.get_ints("starts");
    ends = ctx.node.get_ints("ends");
    axes = ctx.node.get_ints("axes");
  } else {
    starts = int_values(ctx, input(ctx, in, 1), "starts");
    ends = int_values(ctx, input(ctx, in, 2), "ends");
    if (has_input(in, 3)) axes = int_values(ctx, *in[3], "axes");
    if (has_input(in, 4)) steps = int_values(ctx, *in[4], "steps");
  }
  int64_t r = s.size();
  if (starts.size() != ends.size()) op_error(ctx, "starts and ends differ in length");
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size()) op_error(ctx, "axes/steps length differs from starts");
  SliceSpec sp;
  sp.start.assign(r, 0);
  sp.step.assign(r, 1);
  sp.count.assign(s.begin(), s.end());
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = norm_axis(ctx, axes[i], r);
    if (seen[a]) op_error(ctx, fmt::format("axis {} repeated", axes[i]));
    seen[a] = true;
    int64_t dim = s[a], st = steps[i];
    if (st == 0 || st == std::numeric_limits<int64_t>::min()) op_error(ctx, fmt::format("invalid step {}", st));
    int64_t b = starts[i], e = ends[i];
    auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(hi, v)); };
    if (b < 0) b = b < -dim ? -1 - dim : b + dim;  // (clamped below; avoids overflow)
    if (e < 0) e = e < -dim ? -1 - dim : e + dim;
    if (st > 0) {
      b = clampi(b, 0, dim);
      e = clampi(e, 0, dim);
      sp.count[a] = e > b ? (e - b - 1) / st + 1 : 0;
    } else {
      b = clampi(b, -1, dim - 1);
      e = clampi(e, -1, dim - 1);
      sp.count[a] = b > e ? (b - e - 1) / (-st) + 1 : 0;
    }
    sp.start[a] = b;
    sp.step[a] = st;
  }
  return sp;
}

// Visit (input offset, output offset) pairs of a strided slice.
template <class F>
void slice_visit(const Shape& s, const SliceSpec& sp, F f) {
  size_t r = s.size();
  std::vector<int64_t> stride(r, 1);
  for (size_t i = r; i-- > 1;) stride[i - 1] = stride[i] * s[i];
  int64_t total = 1;
  for (auto c : sp.count) total *= c;
  if (total == 0) return;
  std::vector<int64_t> idx(r, 0);
  int64_t base = 0;
  for (size_t i = 0; i < r; ++i) base += sp.start[i] * stride[i];
  int64_t off = base;
  for (int64_t n = 0; n < total; ++n) {
    f(off, n);
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < sp.count[k]) {
        off += sp.step[k] * stride[k];
        break;
      }
      off -= sp.step[k] * stride[k] * (sp.count[k] - 1);
      idx[k] = 0;
    }
  }
}

void slice_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "scalar input");
  SliceSpec sp = slice_spec(ctx, in, x.shape());
  Tensor y(x.dtype(), Shape(sp.count.begin(), sp.count.end()));
  size_t es = dtype_size(x.dtype());
  auto* px = static_cast<const uint8_t*>(x.raw());
  auto* py = static_cast<uint8_t*>(y.raw());
  slice_visit(x.shape(), sp, [&](int64_t i, int64_t o) { std::memcpy(py + o * es, px + i * es, es); });
  out[0] = y;
}

void slice_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  SliceSpec sp = slice_spec(ctx, in, x.shape());
  gin[0] = Tensor(x.shape());
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  slice_visit(x.shape(), sp, [&](int64_t i, int64_t o) { pd[i] += pg[o]; });
}

// ---- Gather ----

void gather_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const Tensor& idx_t = input(ctx, in, 1);
  if (x.rank() == 0) op_error(ctx, "scalar data");
  int64_t r = x.rank();
  int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), r);
  std::vector<int64_t> idx = int_values(ctx, idx_t, "indices");
  int64_t dim = x.shape()[axis];
  for (auto& i : idx) {
    if (i < -dim || i >= dim) op_error(ctx, fmt::format("index {} out of range for axis of size {}", i, dim));
    if (i < 0) i += dim;
  }
  Shape s(x.shape().begin(), x.shape().begin() + axis);
  s.insert(s.end(), idx_t.shape().begin(), idx_t.shape().end());
  s.insert(s.end(), x.shape().begin() + axis + 1, x.shape().end());
  Tensor y = Tensor::uninitialized(x.dtype(), s);  // every element is copied below
  int64_t outer = 1, inner = dtype_size(x.dtype());
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= x.shape()[i];
  auto* px = static_cast<const uint8_t*>(x.raw());
  auto* py = static_cast<uint8_t*>(y.raw());
  int64_t ni = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j)
      if (inner) std::memcpy(py + (o * ni + j) * inner, px + (o * dim + idx[j]) * inner, inner);
  out[0] = y;
}

void gather_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  int64_t r = x.rank();
  int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), r);
  std::vector<int64_t> idx = in[1]->to_int64s();
  int64_t dim = x.shape()[axis];
  for (auto& i : idx)
    if (i < 0) i += dim;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.shape()[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= x.shape()[i];
  int64_t ni = static_cast<int64_t>(idx.size());
  const float* gy = g[0]->f32();
  // Rows of `inner` contiguous elements (e.g. one of q, k, v picked from a fused projection).
  // Indices that are all different (the usual case) each own their rows: those rows are copied
  // and only the others zeroed; repeated indices sum their rows into a zeroed gradient.
  std::vector<char> picked(static_cast<size_t>(dim), 0);
  bool distinct = true;
  for (int64_t i : idx) {
    distinct = distinct && !picked[i];
    picked[i] = 1;
  }
  if (!distinct) {
    gin[0] = Tensor(x.shape());
    float* gx = gin[0].f32();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < ni; ++j) {
        float* dst = gx + (o * dim + idx[j]) * inner;
        const float* src = gy + (o * ni + j) * inner;
        for (int64_t k = 0; k < inner; ++k) dst[k] += src[k];
      }
    return;
  }
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  float* gx = gin[0].f32();
  const size_t row_bytes = static_cast<size_t>(inner) * sizeof(float);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t d = 0; d < dim; ++d)
      if (!picked[d]) std::memset(gx + (o * dim + d) * inner, 0, row_bytes);
    for (int64_t j = 0; j < ni; ++j)
      if (inner) std::memcpy(gx + (o * dim + idx[j]) * inner, gy + (o * ni + j) * inner, row_bytes);
  }
}

// ---- Pad: constant, reflect, edge and (Pad-19) wrap ----

enum class PadMode { Constant, Reflect, Edge, Wrap };

struct PadSpec {
  PadMode mode = PadMode::Constant;
  std::vector<int64_t> pads;  ///< [begin_0..begin_{r-1}, end_0..end_{r-1}]; negative crops
  Tensor value;               ///< one element of the data's type (constant mode)
};

// Pads and value by version: Pad-1 "paddings" and Pad-2 "pads" attributes with a float
// "value"; from Pad-11 inputs pads and constant_value; from Pad-18 an optional axes input.
PadSpec pad_spec(const OpContext& ctx, const Inputs& in, const Tensor& x) {
  const int64_t r = x.rank(), v = version_of(ctx);
  PadSpec sp;
  const std::string mode = ctx.node.get_string("mode", "constant");
  if (mode == "constant") sp.mode = PadMode::Constant;
  else if (mode == "reflect") sp.mode = PadMode::Reflect;
  else if (mode == "edge") sp.mode = PadMode::Edge;
  else if (mode == "wrap" && v >= 19) sp.mode = PadMode::Wrap;
  else op_error(ctx, fmt::format("unknown mode '{}' at version {}", mode, v));
  double value = 0;
  if (v < 11) {
    sp.pads = ctx.node.get_ints(v < 2 ? "paddings" : "pads");
    value = ctx.node.get_float("value", 0.f);
  } else {
    const Tensor& pt = input(ctx, in, 1);
    if (pt.rank() > 1) op_error(ctx, fmt::format("pads must be 1-D, got {}", shape_str(pt.shape())));
    sp.pads = int_values(ctx, pt, "pads");
    if (has_input(in, 2)) {
      const Tensor& c = *in[2];
      if (c.numel() != 1) op_error(ctx, "constant_value must hold one value");
      if (c.dtype() != x.dtype()) op_error(ctx, "constant_value and data differ in type");
      sp.value = c.reshape({});
    }
    if (v >= 18 && has_input(in, 3)) {
      auto axes = int_values(ctx, *in[3], "axes");
      if (sp.pads.size() != 2 * axes.size())
        op_error(ctx, fmt::format("pads has {} entries for {} axes", sp.pads.size(), axes.size()));
      std::vector<int64_t> full(2 * r, 0);
      std::vector<bool> seen(r, false);
      for (size_t i = 0; i < axes.size(); ++i) {
        int64_t a = norm_axis(ctx, axes[i], r);
        if (seen[a]) op_error(ctx, fmt::format("axis {} repeated", axes[i]));
        seen[a] = true;
        full[a] = sp.pads[i];
        full[a + r] = sp.pads[i + axes.size()];
      }
      sp.pads = full;
    }
  }
  if (static_cast<int64_t>(sp.pads.size()) != 2 * r)
    op_error(ctx, fmt::format("pads has {} entries, expected {} for rank {}", sp.pads.size(), 2 * r, r));
  if (sp.value.empty()) {
    sp.value = Tensor(x.dtype(), {});
    if (x.dtype() == DType::Float32) sp.value.f32()[0] = static_cast<float>(value);
    else if (x.dtype() == DType::Int64) sp.value.i64()[0] = static_cast<int64_t>(value);
    else if (x.dtype() == DType::Bool) sp.value.data<bool>()[0] = value != 0;
  }
  return sp;
}

// Per axis, the input coordinate each output coordinate reads (-1: the constant value).
// Output coordinate i maps to u = i - begin; reflect mirrors about the end elements without
// repeating them (period 2(d-1)), edge clamps, wrap is periodic (period d).
std::vector<std::vector<int64_t>> pad_maps(const OpContext& ctx, const Shape& xs, const PadSpec& sp, Shape& out_shape) {
  const int64_t r = xs.size();
  out_shape = xs;
  std::vector<std::vector<int64_t>> maps(r);
  int64_t total = 1;
  for (int64_t k = 0; k < r; ++k) {
    const int64_t d = xs[k], b = sp.pads[k], e = sp.pads[k + r];
    const int64_t limit = int64_t(1) << 31;
    if (b > limit || e > limit || b < -limit || e < -limit) op_error(ctx, fmt::format("pad {} or {} too large", b, e));
    out_shape[k] = d + b + e;
    if (out_shape[k] < 0) op_error(ctx, fmt::format("pads {} and {} remove more than axis {} of size {}", b, e, k, d));
    if (out_shape[k] && total > limit / out_shape[k]) op_error(ctx, "padded output is too large");
    total *= out_shape[k];
    if (sp.mode != PadMode::Constant && d == 0 && out_shape[k] > 0)
      op_error(ctx, fmt::format("cannot pad empty axis {} in a non-constant mode", k));
    maps[k].resize(out_shape[k]);
    for (int64_t i = 0; i < out_shape[k]; ++i) {
      int64_t u = i - b;
      if (u >= 0 && u < d) {
        maps[k][i] = u;
        continue;
      }
      switch (sp.mode) {
        case PadMode::Constant: u = -1; break;
        case PadMode::Edge: u = u < 0 ? 0 : d - 1; break;
        case PadMode::Wrap: u = ((u % d) + d) % d; break;
        case PadMode::Reflect:
          if (d == 1) {
            u = 0;
          } else {
            const int64_t period = 2 * (d - 1);
            u = ((u % period) + period) % period;
            if (u >= d) u = period - u;
          }
          break;
      }
      maps[k][i] = u;
    }
  }
  return maps;
}

// Calls f(input offset or -1, output offset) for every output element.
template <class F>
void pad_visit(const Shape& xs, const Shape& ys, const std::vector<std::vector<int64_t>>& maps, F f) {
  const size_t r = xs.size();
  const int64_t n = shape_numel(ys);
  if (n == 0) return;
  if (r == 0) return f(0, 0);
  std::vector<int64_t> xst(r, 1);
  for (size_t i = r - 1; i > 0; --i) xst[i - 1] = xst[i] * xs[i];
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < n; ++o) {
    int64_t off = 0;
    for (size_t k = 0; k < r && off >= 0; ++k) {
      const int64_t u = maps[k][idx[k]];
      off = u < 0 ? -1 : off + u * xst[k];
    }
    f(off, o);
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < ys[k]) break;
      idx[k] = 0;
    }
  }
}

void pad_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  PadSpec sp = pad_spec(ctx, in, x);
  Shape s;
  auto maps = pad_maps(ctx, x.shape(), sp, s);
  Tensor y = Tensor::uninitialized(x.dtype(), s);
  const size_t es = dtype_size(x.dtype());
  auto* px = static_cast<const uint8_t*>(x.raw());
  auto* py = static_cast<uint8_t*>(y.raw());
  auto* pv = static_cast<const uint8_t*>(sp.value.raw());
  pad_visit(x.shape(), s, maps, [&](int64_t i, int64_t o) { std::memcpy(py + o * es, i < 0 ? pv : px + i * es, es); });
  out[0] = y;
}

// Each output element read at most one input element: its gradient goes back there
// (reflect, edge and wrap read some input elements several times, which accumulate).
void pad_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  PadSpec sp = pad_spec(ctx, in, x);
  Shape s;
  auto maps = pad_maps(ctx, x.shape(), sp, s);
  gin[0] = Tensor(x.shape());
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  pad_visit(x.shape(), s, maps, [&](int64_t i, int64_t o) {
    if (i >= 0) pd[i] += pg[o];
  });
}

// ---- Constant / Shape ----

void constant_fwd(const OpContext& ctx, const Inputs&, std::vector<Tensor>& out) {
  const Node& n = ctx.node;
  if (n.has("value")) {
    const Attribute& a = n.attributes.at("value");
    if (a.kind != Attribute::Kind::Tensor) op_error(ctx, "attribute 'value' is not a tensor");
    out[0] = a.t;
  } else if (n.has("value_float")) {
    out[0] = Tensor::scalar(n.get_float("value_float", 0));
  } else if (n.has("value_floats")) {
    auto v = n.get_floats("value_floats");
    out[0] = Tensor::from_floats({static_cast<int64_t>(v.size())}, v);
  } else if (n.has("value_int")) {
    out[0] = Tensor::from_ints({}, {n.get_int("value_int", 0)});
  } else if (n.has("value_ints")) {
    auto v = n.get_ints("value_ints");
    out[0] = Tensor::from_ints({static_cast<int64_t>(v.size())}, v);
  } else if (n.has("sparse_value")) {
    op_error(ctx, "sparse_value constants are not supported");
  } else if (n.has("value_string") || n.has("value_strings")) {
    op_error(ctx, "string constants are not supported");
  } else {
    op_error(ctx, "no value attribute (value, value_float(s), value_int(s))");
  }
}

void shape_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  int64_t r = x.rank();
  int64_t start = ctx.node.get_int("start", 0), end = ctx.node.get_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::max<int64_t>(0, std::min(r, start));
  end = std::max<int64_t>(start, std::min(r, end));
  std::vector<int64_t> v(x.shape().begin() + start, x.shape().begin() + end);
  out[0] = Tensor::from_ints({static_cast<int64_t>(v.size())}, v);
}

}  // namespace

void register_shape_ops() {
  register_op("Flatten", {flatten_fwd, reshape_like_bwd});
  register_op("Reshape", {reshape_fwd, reshape_like_bwd});
  register_op("Squeeze", {squeeze_fwd, reshape_like_bwd});
  register_op("Unsqueeze", {unsqueeze_fwd, reshape_like_bwd});
  register_op("Transpose", {transpose_fwd, transpose_bwd});
  register_op("Concat", {concat_fwd, concat_bwd});
  register_op("Slice", {slice_fwd, slice_bwd});
  register_op("Gather", {gather_fwd, gather_bwd});
  register_op("Pad", {pad_fwd, pad_bwd});
  register_op("Constant", {constant_fwd, nullptr});
  register_op("Shape", {shape_fwd, nullptr});
}

}  // namespace mlaudit::engine::detail
