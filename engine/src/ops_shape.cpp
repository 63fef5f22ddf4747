// Shape and data-movement ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
// Concat, Slice, Gather, Pad, Constant, Shape. They work on float32 and int64
// (shape arithmetic as PyTorch exports it: Shape -> Gather -> Concat -> Reshape).
#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

bool is_float(const Tensor& t) { return t.dtype() == DType::Float32; }

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
  if (ctx.opset < 5) target = ctx.node.get_ints("shape");
  else {
    const Tensor& s = input(ctx, in, 1);
    if (s.dtype() != DType::Int64) op_error(ctx, "shape input must be int64");
    target = s.to_int64s();
  }
  bool allowzero = ctx.node.get_int("allowzero", 0) != 0;
  Shape shape(target.begin(), target.end());
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

std::vector<int64_t> axes_of(const OpContext& ctx, const Inputs& in, int64_t input_opset) {
  if (ctx.opset >= input_opset) {
    if (in.size() > 1 && in[1] && !in[1]->empty()) return in[1]->to_int64s();
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

template <class T>
void permute(const Tensor& x, Tensor& y, const std::vector<int64_t>& perm) {
  size_t r = x.rank();
  const Shape& xs = x.shape();
  std::vector<int64_t> xstride(r, 1);
  for (size_t i = r; i-- > 1;) xstride[i - 1] = xstride[i] * xs[i];
  const Shape& ys = y.shape();
  std::vector<int64_t> step(r);
  for (size_t i = 0; i < r; ++i) step[i] = xstride[perm[i]];
  std::vector<int64_t> idx(r, 0);
  const T* px = x.data<T>();
  T* py = y.data<T>();
  int64_t off = 0;
  for (int64_t n = 0; n < y.numel(); ++n) {
    py[n] = px[off];
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < ys[k]) {
        off += step[k];
        break;
      }
      off -= step[k] * (ys[k] - 1);
      idx[k] = 0;
    }
  }
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
  Tensor y(x.dtype(), s);
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

void concat_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  std::vector<const Tensor*> parts;
  for (size_t k = 0; k < in.size(); ++k) parts.push_back(&input(ctx, in, k));
  if (parts.empty()) op_error(ctx, "needs at least one input");
  const Tensor& first = *parts[0];
  int64_t r = first.rank();
  int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), r);
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
  int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), r);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= gy.shape()[i];
  for (int64_t i = axis + 1; i < r; ++i) inner *= gy.shape()[i];
  int64_t off = 0, total = gy.shape()[axis];
  for (size_t k = 0; k < in.size(); ++k) {
    int64_t len = in[k]->shape()[axis];
    if (need[k]) {
      gin[k] = Tensor(in[k]->shape());
      for (int64_t o = 0; o < outer; ++o)
        if (len * inner)
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
  if (ctx.opset < 10) {
    starts = ctx.node.get_ints("starts");
    ends = ctx.node.get_ints("ends");
    axes = ctx.node.get_ints("axes");
  } else {
    starts = input(ctx, in, 1).to_int64s();
    ends = input(ctx, in, 2).to_int64s();
    if (in.size() > 3 && in[3] && !in[3]->empty()) axes = in[3]->to_int64s();
    if (in.size() > 4 && in[4] && !in[4]->empty()) steps = in[4]->to_int64s();
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
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = norm_axis(ctx, axes[i], r);
    int64_t dim = s[a], st = steps[i];
    if (st == 0) op_error(ctx, "step 0");
    int64_t b = starts[i], e = ends[i];
    auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(hi, v)); };
    if (b < 0) b += dim;
    if (e < 0 && e > std::numeric_limits<int64_t>::min() / 2) e += dim;
    if (st > 0) {
      b = clampi(b, 0, dim);
      e = clampi(e, 0, dim);
      sp.count[a] = e > b ? (e - b + st - 1) / st : 0;
    } else {
      b = clampi(b, -1, dim - 1);
      e = clampi(e, -1, dim - 1);
      sp.count[a] = b > e ? (b - e + (-st) - 1) / (-st) : 0;
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
  std::vector<int64_t> idx = idx_t.to_int64s();
  int64_t dim = x.shape()[axis];
  for (auto& i : idx) {
    if (i < -dim || i >= dim) op_error(ctx, fmt::format("index {} out of range for axis of size {}", i, dim));
    if (i < 0) i += dim;
  }
  Shape s(x.shape().begin(), x.shape().begin() + axis);
  s.insert(s.end(), idx_t.shape().begin(), idx_t.shape().end());
  s.insert(s.end(), x.shape().begin() + axis + 1, x.shape().end());
  Tensor y(x.dtype(), s);
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
  gin[0] = Tensor(x.shape());
  int64_t ni = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < ni; ++j)
      for (int64_t k = 0; k < inner; ++k) gin[0].f32()[(o * dim + idx[j]) * inner + k] += g[0]->f32()[(o * ni + j) * inner + k];
}

// ---- Pad (constant mode) ----

void pad_spec(const OpContext& ctx, const Inputs& in, int64_t r, std::vector<int64_t>& pads, float& value) {
  std::string mode = ctx.node.get_string("mode", "constant");
  if (mode != "constant") op_error(ctx, fmt::format("mode '{}' is not supported (only constant)", mode));
  value = 0.f;
  if (ctx.opset < 11) {
    pads = ctx.node.get_ints("pads");
    value = ctx.node.get_float("value", 0.f);
  } else {
    pads = input(ctx, in, 1).to_int64s();
    if (in.size() > 2 && in[2] && !in[2]->empty()) value = float(in[2]->to_doubles().at(0));
    if (in.size() > 3 && in[3] && !in[3]->empty()) {
      // axes (opset 18): expand to full pads
      auto axes = in[3]->to_int64s();
      if (pads.size() != 2 * axes.size()) op_error(ctx, "pads length must be twice the axes length");
      std::vector<int64_t> full(2 * r, 0);
      for (size_t i = 0; i < axes.size(); ++i) {
        int64_t a = norm_axis(ctx, axes[i], r);
        full[a] = pads[i];
        full[a + r] = pads[i + axes.size()];
      }
      pads = full;
    }
  }
  if (static_cast<int64_t>(pads.size()) != 2 * r)
    op_error(ctx, fmt::format("pads has {} entries, expected {} for rank {}", pads.size(), 2 * r, r));
}

// Element offsets of the region shared by the input (shape `in`) and the padded
// output (shape `out`): src_off[k] in the input corresponds to dst_off[k] in the output.
void pad_overlap(const Shape& in, const Shape& out, const std::vector<int64_t>& pads, std::vector<int64_t>& src_off,
                 std::vector<int64_t>& dst_off) {
  const int64_t r = static_cast<int64_t>(in.size());
  SliceSpec src, dst;
  src.start.resize(r);
  src.step.assign(r, 1);
  src.count.resize(r);
  dst = src;
  for (int64_t i = 0; i < r; ++i) {
    int64_t b = pads[i];
    src.start[i] = b < 0 ? -b : 0;
    dst.start[i] = b < 0 ? 0 : b;
    src.count[i] = dst.count[i] = std::max<int64_t>(0, std::min(in[i] - src.start[i], out[i] - dst.start[i]));
  }
  slice_visit(in, src, [&](int64_t i, int64_t) { src_off.push_back(i); });
  slice_visit(out, dst, [&](int64_t i, int64_t) { dst_off.push_back(i); });
}

void pad_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  int64_t r = x.rank();
  std::vector<int64_t> pads;
  float value;
  pad_spec(ctx, in, r, pads, value);
  Shape s = x.shape();
  for (int64_t i = 0; i < r; ++i) {
    s[i] += pads[i] + pads[i + r];
    if (s[i] < 0) op_error(ctx, "negative padding removes more than the dimension");
  }
  Tensor y(x.dtype(), s);
  if (x.dtype() == DType::Float32)
    for (int64_t i = 0; i < y.numel(); ++i) y.f32()[i] = value;
  else if (x.dtype() == DType::Int64)
    for (int64_t i = 0; i < y.numel(); ++i) y.i64()[i] = static_cast<int64_t>(value);
  // Copy the overlapping region (negative pads crop).
  std::vector<int64_t> src_off, dst_off;
  pad_overlap(x.shape(), s, pads, src_off, dst_off);
  size_t es = dtype_size(x.dtype());
  for (size_t k = 0; k < src_off.size(); ++k)
    std::memcpy(static_cast<uint8_t*>(y.raw()) + dst_off[k] * es, static_cast<const uint8_t*>(x.raw()) + src_off[k] * es, es);
  out[0] = y;
}

void pad_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  int64_t r = x.rank();
  std::vector<int64_t> pads;
  float value;
  pad_spec(ctx, in, r, pads, value);
  std::vector<int64_t> src_off, dst_off;
  pad_overlap(x.shape(), g[0]->shape(), pads, src_off, dst_off);
  gin[0] = Tensor(x.shape());
  for (size_t k = 0; k < src_off.size(); ++k) gin[0].f32()[src_off[k]] = g[0]->f32()[dst_off[k]];
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
  } else {
    op_error(ctx, "no supported value attribute (value, value_float(s), value_int(s))");
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
  register_op("Pad", {pad_fwd, pad_bwd, true, 2});  // Pad-1 calls its pads "paddings"
  register_op("Constant", {constant_fwd, nullptr});
  register_op("Shape", {shape_fwd, nullptr});
}

}  // namespace mlaudit::engine::detail
