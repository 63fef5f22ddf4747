// ops_index.cpp: indexing and data-movement ops: Split, Expand, Tile, Range, ConstantOfShape,
// Size, GatherElements, GatherND, ScatterND, CumSum, TopK, Trilu, DepthToSpace, SpaceToDepth,
// Einsum, NonZero, OneHot.
//
// Every index, axis, shape and attribute comes from an untrusted model and is checked before
// any memory is touched; data is moved as raw elements (float32, int64 and bool alike) and
// the vector-Jacobian products scatter the output gradient back along the same index maps.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

// Largest output these ops build from values read out of a model (Expand's shape, Tile's
// repeats, Range's count, ...): the loader's own tensor ceiling (LoadLimits::max_tensor_elements).
constexpr int64_t kMaxOutputElements = int64_t(1) << 31;

// Schema version in force for the node (resolved at load; the model opset for graphs built
// in code, which compares the same way against since-versions).
int64_t version_of(const OpContext& ctx) { return ctx.node.since_version > 0 ? ctx.node.since_version : ctx.opset; }

// A shape read from the model: non-negative dims and a bounded element count.
Shape checked_shape(const OpContext& ctx, const Shape& s, const char* what) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) op_error(ctx, fmt::format("{} {} has a negative dimension", what, shape_str(s)));
    if (d != 0 && n > kMaxOutputElements / d)
      op_error(ctx, fmt::format("{} {} has more than {} elements", what, shape_str(s), kMaxOutputElements));
    n *= d;
  }
  if (n > kMaxOutputElements) op_error(ctx, fmt::format("{} {} has more than {} elements", what, shape_str(s), kMaxOutputElements));
  return s;
}

// Integer tensor input (int64 after loading) as a vector.
std::vector<int64_t> int_values(const OpContext& ctx, const Tensor& t, const char* what) {
  if (t.dtype() != DType::Int64) op_error(ctx, fmt::format("{} must be an integer tensor, got {}", what, dtype_name(t.dtype())));
  return std::vector<int64_t>(t.i64(), t.i64() + t.numel());
}

// Integer scalar input (a 0-d or one-element tensor).
int64_t int_scalar(const OpContext& ctx, const Tensor& t, const char* what) {
  auto v = int_values(ctx, t, what);
  if (v.size() != 1) op_error(ctx, fmt::format("{} must hold one value, got shape {}", what, shape_str(t.shape())));
  return v[0];
}

// Optional input k: present and not an omitted ("") input.
bool has_input(const Inputs& in, size_t k) { return k < in.size() && in[k] != nullptr && !in[k]->empty(); }

std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) n *= s[i];
  return n;
}

// Calls f with a value of the unsigned integer type as wide as one element: data movement is
// the same for float32, int64 and bool.
template <class F>
void by_element_size(size_t bytes, F f) {
  switch (bytes) {
    case 1: f(uint8_t{}); break;
    case 4: f(uint32_t{}); break;
    case 8: f(uint64_t{}); break;
    default: throw Error("engine", fmt::format("unexpected element size {}", bytes));
  }
}

// Checked index into an axis of size `dim`: negative values count from the end.
int64_t checked_index(const OpContext& ctx, int64_t i, int64_t dim, const char* what) {
  if (i < -dim || i >= dim) op_error(ctx, fmt::format("{} value {} out of range [-{}, {})", what, i, dim, dim));
  return i < 0 ? i + dim : i;
}

// Zero tensor of the shape of forward input k (its gradient).
Tensor zeros_like(const Tensor& t) { return Tensor(DType::Float32, t.shape()); }

// Generic permutation of any dtype (used by DepthToSpace/SpaceToDepth through 6-D views).
Tensor permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const size_t r = x.rank();
  Shape ys(r);
  auto xst = strides_of(x.shape());
  std::vector<int64_t> step(r);
  for (size_t i = 0; i < r; ++i) {
    ys[i] = x.shape()[perm[i]];
    step[i] = xst[perm[i]];
  }
  Tensor y = Tensor::uninitialized(x.dtype(), ys);
  if (y.numel() == 0) return y;
  by_element_size(dtype_size(x.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw());
    T* py = static_cast<T*>(y.raw());
    std::vector<int64_t> idx(r, 0);
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
  });
  return y;
}

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return inv;
}

// ---------------------------------------------------------------- Split

// Sizes of the parts along the axis, by version: split attribute (1, 2, 11), split input
// (1, 13+), num_outputs with an uneven last chunk (18), else equal parts.
std::vector<int64_t> split_sizes(const OpContext& ctx, const Inputs& in, int64_t dim) {
  const int64_t v = version_of(ctx);
  const int64_t parts = static_cast<int64_t>(ctx.node.outputs.size());
  if (parts < 1) op_error(ctx, "needs at least one output");
  std::vector<int64_t> split;
  bool given = false;
  if ((v == 1 || v >= 13) && has_input(in, 1)) {
    split = int_values(ctx, *in[1], "split");
    given = true;
  } else if (v < 13 && ctx.node.has("split")) {
    split = ctx.node.get_ints("split");
    given = true;
  }
  if (given) {
    if (static_cast<int64_t>(split.size()) != parts)
      op_error(ctx, fmt::format("split has {} entries for {} outputs", split.size(), parts));
    int64_t total = 0;
    for (int64_t s : split) {
      if (s < 0 || s > dim) op_error(ctx, fmt::format("split size {} out of range for an axis of size {}", s, dim));
      total += s;
    }
    if (total != dim) op_error(ctx, fmt::format("split sizes sum to {}, the axis has size {}", total, dim));
    return split;
  }
  int64_t n = parts;
  bool uneven = false;
  if (v >= 18 && ctx.node.has("num_outputs")) {
    n = ctx.node.get_int("num_outputs", 0);
    if (n != parts) op_error(ctx, fmt::format("num_outputs {} differs from the {} outputs", n, parts));
    uneven = true;
  }
  if (dim % n != 0 && !uneven)
    op_error(ctx, fmt::format("an axis of size {} cannot be split into {} equal parts", dim, n));
  // Opset 18: chunks of ceil(dim / n), the last one smaller.
  const int64_t chunk = (dim + n - 1) / n;
  std::vector<int64_t> sizes;
  int64_t left = dim;
  for (int64_t k = 0; k < n; ++k) {
    sizes.push_back(std::min(chunk, left));
    left -= sizes.back();
  }
  return sizes;
}

void split_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "cannot split a scalar");
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), x.rank());
  const int64_t dim = x.shape()[axis];
  auto sizes = split_sizes(ctx, in, dim);
  const int64_t outer = prod(x.shape(), 0, axis);
  const int64_t inner = prod(x.shape(), axis + 1, x.rank()) * dtype_size(x.dtype());
  auto* px = static_cast<const uint8_t*>(x.raw());
  int64_t off = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    Shape s = x.shape();
    s[axis] = sizes[k];
    Tensor y = Tensor::uninitialized(x.dtype(), s);
    auto* py = static_cast<uint8_t*>(y.raw());
    const int64_t chunk = sizes[k] * inner;
    if (chunk)
      for (int64_t o = 0; o < outer; ++o) std::memcpy(py + o * chunk, px + (o * dim + off) * inner, chunk);
    off += sizes[k];
    out[k] = y;
  }
}

// The gradient is the output gradients concatenated back along the axis (zero for unused parts).
void split_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  if (!need[0]) return;
  const Tensor& x = *in[0];
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), x.rank());
  const int64_t dim = x.shape()[axis];
  const int64_t outer = prod(x.shape(), 0, axis), inner = prod(x.shape(), axis + 1, x.rank());
  auto sizes = split_sizes(ctx, in, dim);  // (an unused output has no forward value to read)
  gin[0] = zeros_like(x);
  float* pd = gin[0].f32();
  int64_t off = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const int64_t len = sizes[k];
    if (k < g.size() && g[k] && len)
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(pd + (o * dim + off) * inner, g[k]->f32() + o * len * inner, len * inner * sizeof(float));
    off += len;
  }
}

// ---------------------------------------------------------------- Expand, Tile

// x broadcast (numpy rules, right-aligned) to `out_shape`.
Tensor broadcast_to(const Tensor& x, const Shape& out_shape) {
  Tensor y = Tensor::uninitialized(x.dtype(), out_shape);
  const size_t r = out_shape.size();
  if (y.numel() == 0) return y;
  std::vector<int64_t> st(r, 0);
  auto xst = strides_of(x.shape());
  for (size_t i = 0; i < x.rank(); ++i) {
    size_t k = r - x.rank() + i;
    st[k] = x.shape()[i] == 1 ? 0 : xst[i];
  }
  by_element_size(dtype_size(x.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw());
    T* py = static_cast<T*>(y.raw());
    if (r == 0) {
      py[0] = px[0];
      return;
    }
    const int64_t inner = out_shape[r - 1], rows = y.numel() / inner, is = st[r - 1];
    std::vector<int64_t> idx(r, 0);
    int64_t off = 0;
    for (int64_t row = 0; row < rows; ++row) {
      T* o = py + row * inner;
      for (int64_t j = 0; j < inner; ++j) o[j] = px[off + j * is];
      for (size_t k = r - 1; k-- > 0;) {
        if (++idx[k] < out_shape[k]) {
          off += st[k];
          break;
        }
        off -= st[k] * (out_shape[k] - 1);
        idx[k] = 0;
      }
    }
  });
  return y;
}

void expand_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  auto target = int_values(ctx, input(ctx, in, 1), "shape");
  if (input(ctx, in, 1).rank() != 1) op_error(ctx, "shape must be 1-D");
  Shape s(target.begin(), target.end());
  for (int64_t d : s)
    if (d < 0) op_error(ctx, fmt::format("shape {} has a negative dimension", shape_str(s)));
  Shape out_shape = checked_shape(ctx, broadcast_shape(ctx, x.shape(), s), "output shape");
  out[0] = broadcast_to(x, out_shape);
}

void expand_bwd(const OpContext&, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (need[0] && g[0]) gin[0] = reduce_to_shape(*g[0], in[0]->shape());
}

std::vector<int64_t> tile_repeats(const OpContext& ctx, const Inputs& in, int64_t r) {
  std::vector<int64_t> reps;
  if (version_of(ctx) < 6) {
    // Tile-1: inputs (input, tiles, axis): `tiles` copies along one axis.
    int64_t tiles = int_scalar(ctx, input(ctx, in, 1), "tiles");
    int64_t axis = norm_axis(ctx, int_scalar(ctx, input(ctx, in, 2), "axis"), r);
    reps.assign(r, 1);
    reps[axis] = tiles;
  } else {
    reps = int_values(ctx, input(ctx, in, 1), "repeats");
  }
  if (static_cast<int64_t>(reps.size()) != r)
    op_error(ctx, fmt::format("repeats has {} entries for an input of rank {}", reps.size(), r));
  for (int64_t v : reps)
    if (v < 0) op_error(ctx, fmt::format("negative repeat count {}", v));
  return reps;
}

// Input offset of each output element of a tile: sum_k (i_k mod d_k) * stride_k.
template <class F>
void tile_visit(const Shape& xs, const Shape& ys, F f) {
  const size_t r = xs.size();
  auto xst = strides_of(xs);
  const int64_t n = shape_numel(ys);
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < n; ++o) {
    int64_t off = 0;
    for (size_t k = 0; k < r; ++k) off += (idx[k] % xs[k]) * xst[k];
    f(off, o);
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < ys[k]) break;
      idx[k] = 0;
    }
  }
}

void tile_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t r = x.rank();
  auto reps = tile_repeats(ctx, in, r);
  Shape s = x.shape();
  for (int64_t k = 0; k < r; ++k) {
    if (reps[k] != 0 && s[k] > kMaxOutputElements / reps[k]) op_error(ctx, "output too large");
    s[k] *= reps[k];
  }
  Tensor y = Tensor::uninitialized(x.dtype(), checked_shape(ctx, s, "output shape"));
  if (y.numel())
    by_element_size(dtype_size(x.dtype()), [&](auto tag) {
      using T = decltype(tag);
      const T* px = static_cast<const T*>(x.raw());
      T* py = static_cast<T*>(y.raw());
      tile_visit(x.shape(), s, [&](int64_t i, int64_t o) { py[o] = px[i]; });
    });
  out[0] = y;
}

void tile_bwd(const OpContext&, const Inputs& in, const Inputs& outs, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  gin[0] = zeros_like(*in[0]);
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  if (outs[0]->numel()) tile_visit(in[0]->shape(), outs[0]->shape(), [&](int64_t i, int64_t o) { pd[i] += pg[o]; });
}

// ---------------------------------------------------------------- Range, ConstantOfShape, Size

void range_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& start = input(ctx, in, 0);
  const Tensor& limit = input(ctx, in, 1);
  const Tensor& delta = input(ctx, in, 2);
  for (const Tensor* t : {&start, &limit, &delta}) {
    if (t->numel() != 1) op_error(ctx, fmt::format("start, limit and delta must be scalars, got shape {}", shape_str(t->shape())));
    if (t->dtype() != start.dtype()) op_error(ctx, "start, limit and delta differ in type");
  }
  if (start.dtype() == DType::Float32) {
    // n = max(ceil((limit - start) / delta), 0); output[i] = start + i * delta.
    const double s = start.f32()[0], l = limit.f32()[0], d = delta.f32()[0];
    if (d == 0 || !std::isfinite(d) || !std::isfinite(s) || !std::isfinite(l)) op_error(ctx, "delta must be finite and non-zero, start and limit finite");
    const double count = std::max(0.0, std::ceil((l - s) / d));
    if (count > double(kMaxOutputElements)) op_error(ctx, fmt::format("range of {} elements is too large", count));
    const int64_t n = static_cast<int64_t>(count);
    Tensor y(DType::Float32, {n});
    const float fs = static_cast<float>(s), fd = static_cast<float>(d);
    for (int64_t i = 0; i < n; ++i) y.f32()[i] = fs + static_cast<float>(i) * fd;
    out[0] = y;
  } else if (start.dtype() == DType::Int64) {
    const __int128 s = start.i64()[0], l = limit.i64()[0], d = delta.i64()[0];
    if (d == 0) op_error(ctx, "delta must be non-zero");
    __int128 span = l - s;
    __int128 count = d > 0 ? (span > 0 ? (span + d - 1) / d : 0) : (span < 0 ? (-span + (-d) - 1) / (-d) : 0);
    if (count > kMaxOutputElements) op_error(ctx, "range is too large");
    const int64_t n = static_cast<int64_t>(count);
    Tensor y(DType::Int64, {n});
    for (int64_t i = 0; i < n; ++i) y.i64()[i] = static_cast<int64_t>(s + i * d);
    out[0] = y;
  } else {
    op_error(ctx, fmt::format("unsupported type {}", dtype_name(start.dtype())));
  }
}

void constant_of_shape_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& st = input(ctx, in, 0);
  if (st.rank() != 1) op_error(ctx, fmt::format("shape input must be 1-D, got {}", shape_str(st.shape())));
  auto dims = int_values(ctx, st, "shape");
  Shape s = checked_shape(ctx, Shape(dims.begin(), dims.end()), "shape");
  Tensor value = Tensor::scalar(0.f);
  if (ctx.node.has("value")) {
    const Attribute& a = ctx.node.attributes.at("value");
    if (a.kind != Attribute::Kind::Tensor || a.t.empty()) op_error(ctx, "attribute 'value' is not a tensor");
    if (a.t.numel() != 1) op_error(ctx, fmt::format("attribute 'value' must hold one element, got shape {}", shape_str(a.t.shape())));
    value = a.t;
  }
  Tensor y = Tensor::uninitialized(value.dtype(), s);
  by_element_size(dtype_size(value.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T v = *static_cast<const T*>(value.raw());
    T* py = static_cast<T*>(y.raw());
    std::fill(py, py + y.numel(), v);
  });
  out[0] = y;
}

void size_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  out[0] = Tensor::from_ints({}, {input(ctx, in, 0).numel()});
}

// ---------------------------------------------------------------- GatherElements

// Data offset of every element of `indices` (same rank as data): its own position with the
// axis coordinate replaced by the (checked) index value.
std::vector<int64_t> gather_elements_offsets(const OpContext& ctx, const Tensor& data, const Tensor& indices) {
  const int64_t r = data.rank();
  if (r == 0) op_error(ctx, "data must have rank >= 1");
  if (static_cast<int64_t>(indices.rank()) != r)
    op_error(ctx, fmt::format("indices {} and data {} differ in rank", shape_str(indices.shape()), shape_str(data.shape())));
  if (indices.dtype() != DType::Int64) op_error(ctx, "indices must be an integer tensor");
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), r);
  for (int64_t k = 0; k < r; ++k)
    if (k != axis && indices.shape()[k] > data.shape()[k])
      op_error(ctx, fmt::format("indices {} exceed data {} on axis {}", shape_str(indices.shape()), shape_str(data.shape()), k));
  auto dst = strides_of(data.shape());
  const int64_t dim = data.shape()[axis];
  const int64_t* pi = indices.i64();
  std::vector<int64_t> offs(indices.numel());
  std::vector<int64_t> idx(r, 0);
  for (int64_t n = 0; n < indices.numel(); ++n) {
    int64_t off = 0;
    for (int64_t k = 0; k < r; ++k) off += (k == axis ? checked_index(ctx, pi[n], dim, "indices") : idx[k]) * dst[k];
    offs[n] = off;
    for (int64_t k = r; k-- > 0;) {
      if (++idx[k] < indices.shape()[k]) break;
      idx[k] = 0;
    }
  }
  return offs;
}

void gather_elements_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& data = input(ctx, in, 0);
  const Tensor& indices = input(ctx, in, 1);
  auto offs = gather_elements_offsets(ctx, data, indices);
  Tensor y = Tensor::uninitialized(data.dtype(), indices.shape());
  by_element_size(dtype_size(data.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T* pd = static_cast<const T*>(data.raw());
    T* py = static_cast<T*>(y.raw());
    for (size_t n = 0; n < offs.size(); ++n) py[n] = pd[offs[n]];
  });
  out[0] = y;
}

void gather_elements_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g,
                         const std::vector<bool>& need, std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  auto offs = gather_elements_offsets(ctx, *in[0], *in[1]);
  gin[0] = zeros_like(*in[0]);
  for (size_t n = 0; n < offs.size(); ++n) gin[0].f32()[offs[n]] += g[0]->f32()[n];
}

// ---------------------------------------------------------------- GatherND, ScatterND

// Index tuples of the last axis of `indices` resolved to element offsets of slices of `data`:
// shared by GatherND (with batch_dims) and ScatterND (batch_dims 0).
struct NdPlan {
  Shape out_shape;      ///< GatherND's output (ScatterND's expected updates shape)
  int64_t slice = 1;    ///< elements per gathered slice
  std::vector<int64_t> offsets;  ///< element offset into data of each slice, in indices order
};

NdPlan nd_plan(const OpContext& ctx, const Tensor& data, const Tensor& indices, int64_t batch_dims) {
  const int64_t r = data.rank(), q = indices.rank();
  if (r < 1 || q < 1) op_error(ctx, "data and indices must have rank >= 1");
  if (indices.dtype() != DType::Int64) op_error(ctx, "indices must be an integer tensor");
  if (batch_dims < 0 || batch_dims >= std::min(r, q))
    op_error(ctx, fmt::format("batch_dims {} out of range for data rank {} and indices rank {}", batch_dims, r, q));
  const int64_t k = indices.shape()[q - 1];
  if (k < 1 || k > r - batch_dims)
    op_error(ctx, fmt::format("indices' last dimension {} must be in [1, {}]", k, r - batch_dims));
  for (int64_t i = 0; i < batch_dims; ++i)
    if (indices.shape()[i] != data.shape()[i])
      op_error(ctx, fmt::format("batch dimension {} differs: data {} vs indices {}", i, shape_str(data.shape()), shape_str(indices.shape())));
  NdPlan p;
  p.out_shape.assign(indices.shape().begin(), indices.shape().end() - 1);
  p.out_shape.insert(p.out_shape.end(), data.shape().begin() + batch_dims + k, data.shape().end());
  p.slice = prod(data.shape(), batch_dims + k, r);
  const int64_t batches = prod(data.shape(), 0, batch_dims);
  const int64_t per_batch_data = prod(data.shape(), batch_dims, r);
  const int64_t tuples = batches ? prod(indices.shape(), 0, q - 1) / batches : 0;
  const int64_t* pi = indices.i64();
  p.offsets.resize(batches * tuples);
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t j = 0; j < tuples; ++j) {
      const int64_t* t = pi + (b * tuples + j) * k;
      int64_t off = 0;
      for (int64_t c = 0; c < k; ++c) off = off * data.shape()[batch_dims + c] + checked_index(ctx, t[c], data.shape()[batch_dims + c], "indices");
      p.offsets[b * tuples + j] = b * per_batch_data + off * p.slice;
    }
  return p;
}

int64_t gather_nd_batch_dims(const OpContext& ctx) { return version_of(ctx) >= 12 ? ctx.node.get_int("batch_dims", 0) : 0; }

void gather_nd_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& data = input(ctx, in, 0);
  NdPlan p = nd_plan(ctx, data, input(ctx, in, 1), gather_nd_batch_dims(ctx));
  Tensor y = Tensor::uninitialized(data.dtype(), p.out_shape);
  const size_t bytes = p.slice * dtype_size(data.dtype());
  auto* pd = static_cast<const uint8_t*>(data.raw());
  auto* py = static_cast<uint8_t*>(y.raw());
  if (bytes)
    for (size_t j = 0; j < p.offsets.size(); ++j) std::memcpy(py + j * bytes, pd + p.offsets[j] * dtype_size(data.dtype()), bytes);
  out[0] = y;
}

void gather_nd_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                   std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  NdPlan p = nd_plan(ctx, *in[0], *in[1], gather_nd_batch_dims(ctx));
  gin[0] = zeros_like(*in[0]);
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  for (size_t j = 0; j < p.offsets.size(); ++j)
    for (int64_t e = 0; e < p.slice; ++e) pd[p.offsets[j] + e] += pg[j * p.slice + e];
}

enum class Reduction { None, Add, Mul, Max, Min };

Reduction scatter_reduction(const OpContext& ctx) {
  const int64_t v = version_of(ctx);
  if (v < 16) return Reduction::None;
  std::string r = ctx.node.get_string("reduction", "none");
  if (r == "none") return Reduction::None;
  if (r == "add") return Reduction::Add;
  if (r == "mul") return Reduction::Mul;
  if (v >= 18 && r == "max") return Reduction::Max;
  if (v >= 18 && r == "min") return Reduction::Min;
  op_error(ctx, fmt::format("unknown reduction '{}' at version {}", r, v));
}

NdPlan scatter_plan(const OpContext& ctx, const Tensor& data, const Tensor& indices, const Tensor& updates) {
  NdPlan p = nd_plan(ctx, data, indices, 0);
  if (updates.dtype() != data.dtype()) op_error(ctx, "updates and data differ in type");
  if (updates.shape() != p.out_shape)
    op_error(ctx, fmt::format("updates have shape {}, expected {}", shape_str(updates.shape()), shape_str(p.out_shape)));
  return p;
}

template <class T>
void scatter_apply(const NdPlan& p, Reduction red, const T* pu, T* py) {
  for (size_t j = 0; j < p.offsets.size(); ++j)
    for (int64_t e = 0; e < p.slice; ++e) {
      T& d = py[p.offsets[j] + e];
      const T u = pu[j * p.slice + e];
      if constexpr (std::is_same_v<T, bool>) {
        d = u;  // bool data: reduction none only (checked by the caller)
      } else {
        switch (red) {
          case Reduction::None: d = u; break;
          case Reduction::Add: d = d + u; break;
          case Reduction::Mul: d = d * u; break;
          case Reduction::Max: d = std::max(d, u); break;
          case Reduction::Min: d = std::min(d, u); break;
        }
      }
    }
}

void scatter_nd_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& data = input(ctx, in, 0);
  const Tensor& updates = input(ctx, in, 2);
  NdPlan p = scatter_plan(ctx, data, input(ctx, in, 1), updates);
  Reduction red = scatter_reduction(ctx);
  Tensor y = data.clone();
  switch (data.dtype()) {
    case DType::Float32: scatter_apply(p, red, updates.f32(), y.f32()); break;
    case DType::Int64: scatter_apply(p, red, updates.i64(), y.i64()); break;
    case DType::Bool:
      if (red != Reduction::None) op_error(ctx, "reductions on bool data are not supported");
      scatter_apply(p, red, updates.data<bool>(), y.data<bool>());
      break;
    default: op_error(ctx, fmt::format("unsupported type {}", dtype_name(data.dtype())));
  }
  out[0] = y;
}

// reduction none: y = data with the indexed slices overwritten (the last write wins), so
// d/d data is g with those slices zeroed and d/d updates[j] = g at its slice when j wrote last;
// reduction add: d/d data = g, d/d updates[j] = g at its slice.
void scatter_nd_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                    std::vector<Tensor>& gin) {
  Reduction red = scatter_reduction(ctx);
  if (red != Reduction::None && red != Reduction::Add)
    op_error(ctx, "gradients are only available for reduction 'none' and 'add'");
  if (!g[0]) return;
  NdPlan p = scatter_plan(ctx, *in[0], *in[1], *in[2]);
  const float* pg = g[0]->f32();
  // Last writer of each written slice (reduction none).
  std::vector<bool> last(p.offsets.size(), true);
  if (red == Reduction::None) {
    std::vector<int64_t> order(p.offsets.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p.offsets[a] < p.offsets[b]; });
    for (size_t i = 0; i + 1 < order.size(); ++i)
      if (p.offsets[order[i]] == p.offsets[order[i + 1]]) last[order[i]] = false;
  }
  if (need[0]) {
    gin[0] = g[0]->clone();
    if (red == Reduction::None)
      for (size_t j = 0; j < p.offsets.size(); ++j)
        std::fill(gin[0].f32() + p.offsets[j], gin[0].f32() + p.offsets[j] + p.slice, 0.f);
  }
  if (need.size() > 2 && need[2]) {
    gin[2] = zeros_like(*in[2]);
    float* pu = gin[2].f32();
    for (size_t j = 0; j < p.offsets.size(); ++j)
      if (last[j]) std::memcpy(pu + j * p.slice, pg + p.offsets[j], p.slice * sizeof(float));
  }
}

// ---------------------------------------------------------------- CumSum

int64_t cumsum_axis(const OpContext& ctx, const Inputs& in, int64_t r) {
  const Tensor& a = input(ctx, in, 1);
  if (a.rank() > 1) op_error(ctx, "axis must be a scalar");
  return norm_axis(ctx, int_scalar(ctx, a, "axis"), r);
}

// y along each line: inclusive or exclusive running sums, forwards or reversed.
template <class T, class Acc>
void cumsum_lines(const T* x, T* y, const Shape& s, int64_t axis, bool exclusive, bool reverse) {
  const int64_t dim = s[axis], outer = prod(s, 0, axis), inner = prod(s, axis + 1, s.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      Acc acc = 0;
      for (int64_t step = 0; step < dim; ++step) {
        const int64_t j = reverse ? dim - 1 - step : step;
        const int64_t at = (o * dim + j) * inner + i;
        if (exclusive) {
          y[at] = static_cast<T>(acc);
          acc += x[at];
        } else {
          acc += x[at];
          y[at] = static_cast<T>(acc);
        }
      }
    }
}

void cumsum_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "input must have rank >= 1");
  const int64_t axis = cumsum_axis(ctx, in, x.rank());
  const bool exclusive = ctx.node.get_int("exclusive", 0) != 0, reverse = ctx.node.get_int("reverse", 0) != 0;
  Tensor y(x.dtype(), x.shape());
  if (x.dtype() == DType::Float32) cumsum_lines<float, double>(x.f32(), y.f32(), x.shape(), axis, exclusive, reverse);
  else if (x.dtype() == DType::Int64) cumsum_lines<int64_t, int64_t>(x.i64(), y.i64(), x.shape(), axis, exclusive, reverse);
  else op_error(ctx, fmt::format("unsupported type {}", dtype_name(x.dtype())));
  out[0] = y;
}

// d/dx_j of sum_i g_i y_i: the running sum of g taken in the opposite direction, same exclusivity.
void cumsum_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  const int64_t axis = cumsum_axis(ctx, in, x.rank());
  const bool exclusive = ctx.node.get_int("exclusive", 0) != 0, reverse = ctx.node.get_int("reverse", 0) != 0;
  gin[0] = zeros_like(x);
  cumsum_lines<float, double>(g[0]->f32(), gin[0].f32(), x.shape(), axis, exclusive, !reverse);
}

// ---------------------------------------------------------------- TopK

struct TopKPlan {
  int64_t axis, k, dim, outer, inner;
  bool largest, sorted;
};

TopKPlan topk_plan(const OpContext& ctx, const Inputs& in) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "input must have rank >= 1");
  const int64_t v = version_of(ctx);
  TopKPlan p;
  p.axis = norm_axis(ctx, ctx.node.get_int("axis", -1), x.rank());
  if (v >= 10) {
    const Tensor& kt = input(ctx, in, 1);
    if (kt.rank() > 1) op_error(ctx, "K must be a 1-element tensor");
    p.k = int_scalar(ctx, kt, "K");
  } else {
    if (!ctx.node.has("k")) op_error(ctx, "attribute 'k' is required");
    p.k = ctx.node.get_int("k", 0);
  }
  p.dim = x.shape()[p.axis];
  if (p.k < 0 || p.k > p.dim) op_error(ctx, fmt::format("K = {} out of range [0, {}] for axis {}", p.k, p.dim, p.axis));
  p.largest = v < 11 || ctx.node.get_int("largest", 1) != 0;
  p.sorted = v < 11 || ctx.node.get_int("sorted", 1) != 0;
  p.outer = prod(x.shape(), 0, p.axis);
  p.inner = prod(x.shape(), p.axis + 1, x.rank());
  return p;
}

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  else return false;
}

template <class T>
void topk_lines(const TopKPlan& p, const T* x, T* values, int64_t* indices) {
  std::vector<int64_t> order(p.dim);
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      auto at = [&](int64_t j) { return x[(o * p.dim + j) * p.inner + i]; };
      std::iota(order.begin(), order.end(), 0);
      // Ties go to the lower index (as onnxruntime and the ONNX reference do).
      // NaN ranks above every number, so the order stays a strict weak ordering.
      auto greater = [](T a, T b) {
        if (is_nan(a) || is_nan(b)) return is_nan(a) && !is_nan(b);
        return a > b;
      };
      auto before = [&](int64_t a, int64_t b) {
        T va = at(a), vb = at(b);
        if (greater(va, vb)) return p.largest;
        if (greater(vb, va)) return !p.largest;
        return a < b;
      };
      std::partial_sort(order.begin(), order.begin() + p.k, order.end(), before);
      for (int64_t j = 0; j < p.k; ++j) {
        const int64_t dst = (o * p.k + j) * p.inner + i;
        values[dst] = at(order[j]);
        indices[dst] = order[j];
      }
    }
}

void topk_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  TopKPlan p = topk_plan(ctx, in);
  Shape s = x.shape();
  s[p.axis] = p.k;
  Tensor values(x.dtype(), s), indices(DType::Int64, s);
  if (x.dtype() == DType::Float32) topk_lines(p, x.f32(), values.f32(), indices.i64());
  else if (x.dtype() == DType::Int64) topk_lines(p, x.i64(), values.i64(), indices.i64());
  else op_error(ctx, fmt::format("unsupported type {}", dtype_name(x.dtype())));
  out[0] = values;
  if (out.size() > 1) out[1] = indices;
}

// Values are copies of input elements: their gradient goes back to the selected positions.
void topk_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  TopKPlan p = topk_plan(ctx, in);
  // Recompute the selection (the indices output may be unused by the graph).
  Shape s = in[0]->shape();
  s[p.axis] = p.k;
  Tensor values(DType::Float32, s), indices(DType::Int64, s);
  topk_lines(p, in[0]->f32(), values.f32(), indices.i64());
  const int64_t* idx = indices.i64();
  gin[0] = zeros_like(*in[0]);
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t j = 0; j < p.k; ++j)
      for (int64_t i = 0; i < p.inner; ++i) {
        const int64_t src = (o * p.k + j) * p.inner + i;
        pd[(o * p.dim + idx[src]) * p.inner + i] += pg[src];
      }
}

// ---------------------------------------------------------------- Trilu

// Calls f(offset, keep) for each element of the stacked matrices [..., N, M]:
// upper keeps j - i >= k, lower keeps j - i <= k.
template <class F>
void trilu_visit(const OpContext& ctx, const Inputs& in, const Shape& s, F f) {
  if (s.size() < 2) op_error(ctx, fmt::format("input must have rank >= 2, got {}", shape_str(s)));
  int64_t k = 0;
  if (has_input(in, 1)) {
    if (in[1]->rank() > 1) op_error(ctx, "k must be a scalar");
    k = int_scalar(ctx, *in[1], "k");
  }
  const bool upper = ctx.node.get_int("upper", 1) != 0;
  const int64_t n = s[s.size() - 2], m = s.back(), mats = prod(s, 0, s.size() - 2);
  for (int64_t b = 0; b < mats; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const int64_t d = j - i;
        f((b * n + i) * m + j, upper ? d >= k : d <= k);
      }
}

void trilu_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  Tensor y(x.dtype(), x.shape());
  by_element_size(dtype_size(x.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x.raw());
    T* py = static_cast<T*>(y.raw());
    trilu_visit(ctx, in, x.shape(), [&](int64_t at, bool keep) {
      if (keep) py[at] = px[at];
    });
  });
  out[0] = y;
}

void trilu_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  gin[0] = zeros_like(*in[0]);
  float* pd = gin[0].f32();
  const float* pg = g[0]->f32();
  trilu_visit(ctx, in, in[0]->shape(), [&](int64_t at, bool keep) {
    if (keep) pd[at] = pg[at];
  });
}

// ---------------------------------------------------------------- DepthToSpace, SpaceToDepth

// The 6-D view of the input and the permutation both ops are defined by (ONNX spec):
//   DepthToSpace DCR: [N, b, b, C/b², H, W] perm (0,3,4,1,5,2) -> [N, C/b², H*b, W*b]
//   DepthToSpace CRD: [N, C/b², b, b, H, W] perm (0,1,4,2,5,3)
//   SpaceToDepth DCR: [N, C, H/b, b, W/b, b] perm (0,3,5,1,2,4) -> [N, C*b², H/b, W/b]
//   SpaceToDepth CRD: [N, C, H/b, b, W/b, b] perm (0,1,3,5,2,4)   (mode since opset 28)
struct BlockPlan {
  Shape view, out_shape;
  std::vector<int64_t> perm;
};

BlockPlan block_plan(const OpContext& ctx, const Shape& x, bool depth_to_space) {
  if (x.size() != 4) op_error(ctx, fmt::format("input must be 4-D (NCHW), got {}", shape_str(x)));
  const int64_t b = ctx.node.get_int("blocksize", 0);
  if (b <= 0 || b > (int64_t(1) << 20)) op_error(ctx, fmt::format("blocksize must be positive, got {}", b));
  const int64_t v = version_of(ctx);
  const bool has_mode = depth_to_space ? v >= 11 : v >= 28;
  const std::string mode = has_mode ? ctx.node.get_string("mode", "DCR") : "DCR";
  if (mode != "DCR" && mode != "CRD") op_error(ctx, fmt::format("unknown mode '{}' (DCR or CRD)", mode));
  const int64_t n = x[0], c = x[1], h = x[2], w = x[3];
  BlockPlan p;
  if (depth_to_space) {
    if (c % (b * b) != 0) op_error(ctx, fmt::format("channels {} not divisible by blocksize² = {}", c, b * b));
    const int64_t cc = c / (b * b);
    p.view = mode == "DCR" ? Shape{n, b, b, cc, h, w} : Shape{n, cc, b, b, h, w};
    p.perm = mode == "DCR" ? std::vector<int64_t>{0, 3, 4, 1, 5, 2} : std::vector<int64_t>{0, 1, 4, 2, 5, 3};
    p.out_shape = {n, cc, h * b, w * b};
  } else {
    if (h % b != 0 || w % b != 0) op_error(ctx, fmt::format("spatial size {}x{} not divisible by blocksize {}", h, w, b));
    p.view = {n, c, h / b, b, w / b, b};
    p.perm = mode == "DCR" ? std::vector<int64_t>{0, 3, 5, 1, 2, 4} : std::vector<int64_t>{0, 1, 3, 5, 2, 4};
    p.out_shape = {n, c * b * b, h / b, w / b};
  }
  return p;
}

template <bool DepthToSpace>
void block_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  BlockPlan p = block_plan(ctx, x.shape(), DepthToSpace);
  out[0] = permute(x.reshape(p.view), p.perm).reshape(p.out_shape);
}

template <bool DepthToSpace>
void block_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  BlockPlan p = block_plan(ctx, in[0]->shape(), DepthToSpace);
  Shape permuted(p.perm.size());
  for (size_t i = 0; i < p.perm.size(); ++i) permuted[i] = p.view[p.perm[i]];
  gin[0] = permute(g[0]->reshape(permuted), inverse_perm(p.perm)).reshape(in[0]->shape());
}

// ---------------------------------------------------------------- Einsum

// Parsed equation: each operand's dims as label ids (a-z: 0-25, A-Z: 26-51, ellipsis dims
// 52...), the output labels, and every label's size.
struct EinsumPlan {
  std::vector<std::vector<int>> terms;
  std::vector<int> out;
  std::vector<int64_t> size;  ///< per label id (0: unused)
  std::vector<bool> used;
};

constexpr int kEllipsisBase = 52;

int einsum_label(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}

// Label ids of one term; -2 marks the ellipsis.
std::vector<int> einsum_term(const OpContext& ctx, const std::string& t) {
  std::vector<int> ids;
  bool ellipsis = false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '.') {
      if (t.compare(i, 3, "...") != 0 || ellipsis) op_error(ctx, fmt::format("malformed ellipsis in term '{}'", t));
      ellipsis = true;
      ids.push_back(-2);
      i += 2;
      continue;
    }
    int l = einsum_label(t[i]);
    if (l < 0) op_error(ctx, fmt::format("invalid character '{}' in equation", t[i]));
    ids.push_back(l);
  }
  return ids;
}

EinsumPlan einsum_plan(const OpContext& ctx, const std::vector<Shape>& shapes) {
  std::string eq;
  for (char c : ctx.node.get_string("equation", "")) if (c != ' ') eq += c;
  if (eq.empty()) op_error(ctx, "attribute 'equation' is required");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= lhs.size(); ++i)
    if (i == lhs.size() || lhs[i] == ',') {
      parts.push_back(lhs.substr(start, i - start));
      start = i + 1;
    }
  if (parts.size() != shapes.size())
    op_error(ctx, fmt::format("equation '{}' names {} operands, the node has {}", eq, parts.size(), shapes.size()));
  EinsumPlan p;
  std::vector<std::vector<int>> raw;
  int64_t ell = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    raw.push_back(einsum_term(ctx, parts[k]));
    const int64_t letters = std::count_if(raw[k].begin(), raw[k].end(), [](int l) { return l >= 0; });
    const bool has_ell = letters != static_cast<int64_t>(raw[k].size());
    const int64_t r = shapes[k].size();
    if (has_ell ? r < letters : r != letters)
      op_error(ctx, fmt::format("term '{}' does not match operand {} of shape {}", parts[k], k, shape_str(shapes[k])));
    if (has_ell) ell = std::max(ell, r - letters);
  }
  const int nl = kEllipsisBase + static_cast<int>(ell);
  p.size.assign(nl, 1);
  p.used.assign(nl, false);
  std::vector<int64_t> seen_size(nl, -1);
  std::vector<int> count(nl, 0);
  for (size_t k = 0; k < raw.size(); ++k) {
    const int64_t r = shapes[k].size();
    const int64_t letters = std::count_if(raw[k].begin(), raw[k].end(), [](int l) { return l >= 0; });
    std::vector<int> term;
    for (int l : raw[k]) {
      if (l != -2) {
        term.push_back(l);
        continue;
      }
      const int64_t e = r - letters;  // this operand's ellipsis dims, right-aligned to the widest
      for (int64_t i = 0; i < e; ++i) term.push_back(kEllipsisBase + static_cast<int>(ell - e + i));
    }
    for (size_t d = 0; d < term.size(); ++d) {
      const int l = term[d];
      const int64_t n = shapes[k][d];
      ++count[l];
      p.used[l] = true;
      // Equal sizes, or 1 broadcast against n.
      if (seen_size[l] < 0 || seen_size[l] == 1) {
        if (seen_size[l] < 0 || n != 1) seen_size[l] = n;
      } else if (n != 1 && n != seen_size[l]) {
        op_error(ctx, fmt::format("a label of term '{}' has sizes {} and {}", parts[k], seen_size[l], n));
      }
      p.size[l] = seen_size[l];
    }
    p.terms.push_back(term);
  }
  if (arrow != std::string::npos) {
    for (int l : einsum_term(ctx, eq.substr(arrow + 2))) {
      if (l == -2) {
        for (int i = 0; i < ell; ++i) p.out.push_back(kEllipsisBase + i);
        continue;
      }
      if (!p.used[l]) op_error(ctx, fmt::format("output label '{}' does not appear in the inputs", eq.substr(arrow + 2)));
      if (std::count(p.out.begin(), p.out.end(), l)) op_error(ctx, "output repeats a label");
      p.out.push_back(l);
    }
  } else {
    // Implicit output: the ellipsis dims, then labels used exactly once in ASCII order.
    for (int i = 0; i < ell; ++i) p.out.push_back(kEllipsisBase + i);
    std::vector<int> once;
    for (int l = 0; l < kEllipsisBase; ++l)
      if (count[l] == 1) once.push_back(l);
    auto ch = [](int l) { return l < 26 ? 'a' + l : 'A' + (l - 26); };
    std::sort(once.begin(), once.end(), [&](int a, int b) { return ch(a) < ch(b); });
    p.out.insert(p.out.end(), once.begin(), once.end());
  }
  return p;
}

// Per-label element strides of a tensor laid out as `term` with shape `s`: repeated labels
// (diagonals) add their strides, size-1 dims broadcast (stride 0).
std::vector<int64_t> label_strides(const std::vector<int>& term, const Shape& s, size_t nl) {
  std::vector<int64_t> st(nl, 0);
  auto ts = strides_of(s);
  for (size_t d = 0; d < term.size(); ++d)
    if (s[d] != 1) st[term[d]] += ts[d];
  return st;
}

// dst[dst_strides . outer] += sum over the inner labels of prod_k src_k[strides_k . labels]:
// one einsum contraction; parallel over outer combinations when those write distinct elements.
template <class T, class Acc>
void einsum_loop(const std::vector<int>& outer, const std::vector<int>& inner, const std::vector<int64_t>& size,
                 const std::vector<const T*>& src, const std::vector<std::vector<int64_t>>& src_st, T* dst,
                 const std::vector<int64_t>& dst_st, bool parallel) {
  int64_t n_outer = 1, n_inner = 1;
  for (int l : outer) n_outer *= size[l];
  for (int l : inner) n_inner *= size[l];
  const size_t ns = src.size();
  auto body = [&](int64_t o) {
    std::vector<int64_t> base(ns, 0);
    int64_t dst_off = 0, rem = o;
    for (size_t i = outer.size(); i-- > 0;) {
      const int l = outer[i];
      const int64_t v = rem % size[l];
      rem /= size[l];
      dst_off += v * dst_st[l];
      for (size_t k = 0; k < ns; ++k) base[k] += v * src_st[k][l];
    }
    Acc acc = 0;
    std::vector<int64_t> idx(inner.size(), 0), off = base;
    for (int64_t c = 0; c < n_inner; ++c) {
      Acc term = 1;
      for (size_t k = 0; k < ns; ++k) term *= static_cast<Acc>(src[k][off[k]]);
      acc += term;
      for (size_t i = inner.size(); i-- > 0;) {
        const int l = inner[i];
        if (++idx[i] < size[l]) {
          for (size_t k = 0; k < ns; ++k) off[k] += src_st[k][l];
          break;
        }
        for (size_t k = 0; k < ns; ++k) off[k] -= src_st[k][l] * (size[l] - 1);
        idx[i] = 0;
      }
    }
    dst[dst_off] += static_cast<T>(acc);
  };
  if (n_inner == 0) return;
  if (parallel && n_outer > 64) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < n_outer; ++o) body(o);
  } else {
    for (int64_t o = 0; o < n_outer; ++o) body(o);
  }
}

std::vector<Shape> operand_shapes(const OpContext& ctx, const Inputs& in) {
  std::vector<Shape> shapes;
  for (size_t k = 0; k < in.size(); ++k) shapes.push_back(input(ctx, in, k).shape());
  if (shapes.empty()) op_error(ctx, "needs at least one input");
  return shapes;
}

template <class T, class Acc>
Tensor einsum_forward(const EinsumPlan& p, const Inputs& in) {
  Shape os;
  for (int l : p.out) os.push_back(p.size[l]);
  Tensor y(in[0]->dtype(), os);
  std::vector<int> inner;
  for (size_t l = 0; l < p.used.size(); ++l)
    if (p.used[l] && !std::count(p.out.begin(), p.out.end(), static_cast<int>(l))) inner.push_back(static_cast<int>(l));
  std::vector<const T*> src;
  std::vector<std::vector<int64_t>> st;
  for (size_t k = 0; k < in.size(); ++k) {
    src.push_back(in[k]->data<T>());
    st.push_back(label_strides(p.terms[k], in[k]->shape(), p.size.size()));
  }
  auto dst_st = label_strides(p.out, os, p.size.size());
  einsum_loop<T, Acc>(p.out, inner, p.size, src, st, y.data<T>(), dst_st, true);
  return y;
}

void einsum_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  EinsumPlan p = einsum_plan(ctx, operand_shapes(ctx, in));
  Shape os;
  for (int l : p.out) os.push_back(p.size[l]);
  checked_shape(ctx, os, "output shape");
  const DType t = in[0]->dtype();
  for (auto* x : in)
    if (x->dtype() != t) op_error(ctx, "operands differ in type");
  if (t == DType::Float32) out[0] = einsum_forward<float, double>(p, in);
  else if (t == DType::Int64) out[0] = einsum_forward<int64_t, int64_t>(p, in);
  else op_error(ctx, fmt::format("unsupported type {}", dtype_name(t)));
}

// d/d operand k of sum(g * einsum(...)): for every label combination,
// grad_k[at term_k] += g[at out] * prod_{j != k} operand_j — the same contraction with the
// output gradient standing in for operand k and term_k as the output (diagonals and
// broadcast dims accumulate through their strides).
void einsum_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!g[0]) return;
  EinsumPlan p = einsum_plan(ctx, operand_shapes(ctx, in));
  const size_t nl = p.size.size();
  Shape os;
  for (int l : p.out) os.push_back(p.size[l]);
  for (size_t k = 0; k < in.size(); ++k) {
    if (!need[k]) continue;
    std::vector<int> outer;
    for (int l : p.terms[k])
      if (!std::count(outer.begin(), outer.end(), l)) outer.push_back(l);
    std::vector<int> inner;
    for (size_t l = 0; l < nl; ++l)
      if (p.used[l] && !std::count(outer.begin(), outer.end(), static_cast<int>(l))) inner.push_back(static_cast<int>(l));
    std::vector<const float*> src{g[0]->f32()};
    std::vector<std::vector<int64_t>> st{label_strides(p.out, os, nl)};
    for (size_t j = 0; j < in.size(); ++j)
      if (j != k) {
        src.push_back(in[j]->f32());
        st.push_back(label_strides(p.terms[j], in[j]->shape(), nl));
      }
    gin[k] = zeros_like(*in[k]);
    auto dst_st = label_strides(p.terms[k], in[k]->shape(), nl);
    // Broadcast (size-1) dims of operand k gather several label values into one element.
    bool distinct = true;
    for (int l : outer) distinct &= dst_st[l] != 0 || p.size[l] == 1;
    einsum_loop<float, double>(outer, inner, p.size, src, st, gin[k].f32(), dst_st, distinct);
  }
}

// ---------------------------------------------------------------- NonZero, OneHot

void nonzero_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  std::vector<int64_t> hits;
  const int64_t n = x.numel();
  switch (x.dtype()) {
    case DType::Float32:
      for (int64_t i = 0; i < n; ++i)
        if (x.f32()[i] != 0.f) hits.push_back(i);
      break;
    case DType::Int64:
      for (int64_t i = 0; i < n; ++i)
        if (x.i64()[i] != 0) hits.push_back(i);
      break;
    case DType::Bool:
      for (int64_t i = 0; i < n; ++i)
        if (x.data<bool>()[i]) hits.push_back(i);
      break;
    default: op_error(ctx, fmt::format("unsupported type {}", dtype_name(x.dtype())));
  }
  // A scalar counts as a 1-D tensor of one element (numpy.nonzero of atleast_1d).
  Shape s = x.rank() == 0 ? Shape{1} : x.shape();
  const int64_t r = s.size(), nnz = hits.size();
  Tensor y(DType::Int64, {r, nnz});
  auto st = strides_of(s);
  for (int64_t j = 0; j < nnz; ++j)
    for (int64_t d = 0; d < r; ++d) y.i64()[d * nnz + j] = (hits[j] / st[d]) % s[d];
  out[0] = y;
}

struct OneHotPlan {
  int64_t depth, axis, outer, inner;
  Shape out_shape;
  std::vector<int64_t> hot;  ///< per index element: its position along the new axis, or -1
};

OneHotPlan one_hot_plan(const OpContext& ctx, const Inputs& in) {
  const Tensor& idx = input(ctx, in, 0);
  const Tensor& depth_t = input(ctx, in, 1);
  const Tensor& values = input(ctx, in, 2);
  if (depth_t.numel() != 1) op_error(ctx, "depth must hold one value");
  if (values.numel() != 2) op_error(ctx, fmt::format("values must hold [off, on], got shape {}", shape_str(values.shape())));
  OneHotPlan p;
  const double depth = depth_t.to_doubles()[0];
  if (!(depth >= 1) || depth > double(kMaxOutputElements)) op_error(ctx, fmt::format("depth {} must be positive", depth));
  p.depth = static_cast<int64_t>(depth);
  const int64_t r = idx.rank();
  int64_t axis = ctx.node.get_int("axis", -1);
  if (axis < -r - 1 || axis > r) op_error(ctx, fmt::format("axis {} out of range for output rank {}", axis, r + 1));
  p.axis = axis < 0 ? axis + r + 1 : axis;
  p.out_shape = idx.shape();
  p.out_shape.insert(p.out_shape.begin() + p.axis, p.depth);
  checked_shape(ctx, p.out_shape, "output shape");
  p.outer = prod(idx.shape(), 0, p.axis);
  p.inner = prod(idx.shape(), p.axis, r);
  // Indices in [-depth, depth) select a position (negative from the end); others none.
  auto vals = idx.to_doubles();
  p.hot.resize(vals.size());
  for (size_t i = 0; i < vals.size(); ++i) {
    double v = std::trunc(vals[i]);
    if (v < 0) v += p.depth;
    p.hot[i] = (v >= 0 && v < p.depth) ? static_cast<int64_t>(v) : -1;
  }
  return p;
}

template <class F>
void one_hot_visit(const OneHotPlan& p, F f) {
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t d = 0; d < p.depth; ++d)
      for (int64_t i = 0; i < p.inner; ++i) f((o * p.depth + d) * p.inner + i, p.hot[o * p.inner + i] == d);
}

void one_hot_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  OneHotPlan p = one_hot_plan(ctx, in);
  const Tensor& values = *in[2];
  Tensor y = Tensor::uninitialized(values.dtype(), p.out_shape);
  by_element_size(dtype_size(values.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T* pv = static_cast<const T*>(values.raw());
    T* py = static_cast<T*>(y.raw());
    one_hot_visit(p, [&](int64_t at, bool hot) { py[at] = pv[hot ? 1 : 0]; });
  });
  out[0] = y;
}

// y = off + (on - off) * onehot: d/d off sums g where not hot, d/d on where hot.
void one_hot_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                 std::vector<Tensor>& gin) {
  if (need.size() < 3 || !need[2] || !g[0]) return;
  OneHotPlan p = one_hot_plan(ctx, in);
  double off = 0, on = 0;
  const float* pg = g[0]->f32();
  one_hot_visit(p, [&](int64_t at, bool hot) { (hot ? on : off) += pg[at]; });
  gin[2] = zeros_like(*in[2]);
  gin[2].f32()[0] = static_cast<float>(off);
  gin[2].f32()[1] = static_cast<float>(on);
}

}  // namespace

void register_index_ops() {
  register_op("Split", {split_fwd, split_bwd});
  register_op("Expand", {expand_fwd, expand_bwd});
  register_op("Tile", {tile_fwd, tile_bwd});
  register_op("Range", {range_fwd, nullptr});
  register_op("ConstantOfShape", {constant_of_shape_fwd, nullptr});
  register_op("Size", {size_fwd, nullptr});
  register_op("GatherElements", {gather_elements_fwd, gather_elements_bwd});
  register_op("GatherND", {gather_nd_fwd, gather_nd_bwd});
  register_op("ScatterND", {scatter_nd_fwd, scatter_nd_bwd});
  register_op("CumSum", {cumsum_fwd, cumsum_bwd});
  register_op("TopK", {topk_fwd, topk_bwd});
  register_op("Trilu", {trilu_fwd, trilu_bwd});
  register_op("DepthToSpace", {block_fwd<true>, block_bwd<true>});
  register_op("SpaceToDepth", {block_fwd<false>, block_bwd<false>});
  register_op("Einsum", {einsum_fwd, einsum_bwd});
  register_op("NonZero", {nonzero_fwd, nullptr});
  register_op("OneHot", {one_hot_fwd, one_hot_bwd});
}

}  // namespace mlaudit::engine::detail
