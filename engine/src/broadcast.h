#pragma once
// Element-wise iteration shared by the element-wise op files (ops_elementwise.cpp,
// ops_activation.cpp, ...): numpy-style ("multidirectional") broadcasting of two or three
// operands, the legacy (opset < 7) `broadcast`/`axis` form of binary ops, materialising a
// broadcast operand, and unary maps with their vector-Jacobian products.
//
// Every iterator here checks that each operand's shape broadcasts to the output shape before
// it reads, so a caller's mistake becomes an InputError, never an out-of-bounds read.
#include <omp.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

// ---------- broadcasting ----------

/// Element strides of a tensor of shape `s` when iterating over the broadcast shape `out`
/// (`s` suffix-aligned to `out`; stride 0 on broadcast dims and on `out`'s leading extra dims).
inline std::vector<int64_t> aligned_strides(const Shape& s, const Shape& out) {
  const size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (size_t i = 0; i < s.size() && i < r; ++i) {
    const size_t k = s.size() - 1 - i;
    const size_t ko = r - 1 - i;
    st[ko] = s[k] == 1 ? 0 : acc;
    acc *= s[k];
  }
  return st;
}

/// Throws InputError unless shape `s` broadcasts to `out` (rank at most out's, each
/// suffix-aligned dim equal to out's or 1).
inline void check_broadcasts_to(const Shape& s, const Shape& out) {
  bool ok = s.size() <= out.size();
  for (size_t i = 0; ok && i < s.size(); ++i) {
    const int64_t d = s[s.size() - 1 - i], o = out[out.size() - 1 - i];
    ok = d == o || d == 1;
  }
  if (!ok)
    throw InputError("engine", fmt::format("shape {} does not broadcast to {}", shape_str(s), shape_str(out)));
}

namespace broadcast_detail {

// Calls row(out_offset, offsets, inner, inner_strides) for every innermost row of `out`,
// with offsets[k] the element offset of operand k at the row's start and inner_strides[k]
// its stride along the innermost dim.
template <size_t K, class Row>
void for_each_row(const Shape& out, const std::array<Shape, K>& shapes, Row row) {
  for (const Shape& s : shapes) check_broadcasts_to(s, out);
  const int64_t n = shape_numel(out);
  if (n == 0) return;
  std::array<int64_t, K> off{}, inner_st{};
  const size_t r = out.size();
  if (r == 0) {
    row(int64_t(0), off, int64_t(1), inner_st);
    return;
  }
  std::array<std::vector<int64_t>, K> full_st;
  for (size_t k = 0; k < K; ++k) full_st[k] = aligned_strides(shapes[k], out);
  // Coalesce: drop size-1 dims and merge dim d into the one before it when every operand
  // steps through both as one (stride[d-1] == stride[d] * out[d]: contiguous, or broadcast
  // over both), so [N,C,H,W] op [N,C,1,1] walks rows of H*W, not of W.
  Shape dims;
  std::array<std::vector<int64_t>, K> st;
  for (size_t d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; merge && k < K; ++k) merge = st[k].back() == full_st[k][d] * out[d];
    if (merge) {
      dims.back() *= out[d];
      for (size_t k = 0; k < K; ++k) st[k].back() = full_st[k][d];
    } else {
      dims.push_back(out[d]);
      for (size_t k = 0; k < K; ++k) st[k].push_back(full_st[k][d]);
    }
  }
  if (dims.empty()) {  // every dim 1: one element
    row(int64_t(0), off, int64_t(1), inner_st);
    return;
  }
  const size_t cr = dims.size();
  for (size_t k = 0; k < K; ++k) inner_st[k] = st[k][cr - 1];
  const int64_t inner = dims[cr - 1];
  const int64_t rows = n / inner;
  // Rows [r0, r1): the odometer starts from r0's digits, so threads can take row ranges.
  auto walk = [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> idx(cr, 0);
    std::array<int64_t, K> o = off;
    int64_t rest = r0;
    for (size_t d = cr - 1; d-- > 0;) {
      idx[d] = rest % dims[d];
      rest /= dims[d];
      for (size_t k = 0; k < K; ++k) o[k] += idx[d] * st[k][d];
    }
    for (int64_t i = r0; i < r1; ++i) {
      row(i * inner, o, inner, inner_st);
      for (size_t d = cr - 1; d-- > 0;) {
        if (++idx[d] < dims[d]) {
          for (size_t k = 0; k < K; ++k) o[k] += st[k][d];
          break;
        }
        for (size_t k = 0; k < K; ++k) o[k] -= st[k][d] * (dims[d] - 1);
        idx[d] = 0;
      }
    }
  };
  // Large outputs (a bias added to [N, L, 4d] activations) in parallel: rows write disjoint
  // parts of `out`; every row callback of this header only writes its own output row.
  if (n >= (int64_t(1) << 18) && rows >= 2 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      walk(rows * t / nt, rows * (t + 1) / nt);
    }
  } else {
    walk(0, rows);
  }
}

}  // namespace broadcast_detail

// An element-wise loop that GCC's -O2 cost model would leave scalar: `omp simd` asks for
// vector code (each iteration writes only its own element; `f` must not throw).
#define MLAUDIT_SIMD _Pragma("omp simd")

namespace broadcast_detail {
// body(i) for i < n, as an `omp simd` loop when the output is float (integer bodies keep
// their scalar loop: e.g. Mod's `y == -1 ? 0 : x % y` must never divide on the other arm).
template <class TO, class Body>
inline void element_loop(int64_t n, Body body) {
  if constexpr (std::is_same_v<TO, float>) {
    MLAUDIT_SIMD
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

// element_loop over threads as well when the output is float and large (a residual Add of
// [256,16,28,28] reads 25 MB: one core's bandwidth is the limit). Each element is computed alone,
// so the values do not depend on the split.
template <class TO, class Body>
inline void element_loop_threads(int64_t n, Body body) {
  constexpr int64_t kBlock = 16384;
  if constexpr (std::is_same_v<TO, float>) {
    if (n >= 16 * kBlock) {
      const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t end = std::min(n, (blk + 1) * kBlock);
        MLAUDIT_SIMD
        for (int64_t i = blk * kBlock; i < end; ++i) body(i);
      }
      return;
    }
  }
  element_loop<TO>(n, body);
}
}  // namespace broadcast_detail

/// out[i] = f(a[.], b[.]) over out's shape with a and b broadcast to it. `out` is already
/// allocated with the broadcast shape and element type TO; a, b have element types TA, TB;
/// `f` must not throw (float outputs are computed in `omp simd` loops).
template <class TA, class TB, class TO, class F>
void broadcast_map2(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  const int64_t n = out.numel();
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    broadcast_detail::element_loop_threads<TO>(n, [&](int64_t i) { po[i] = f(pa[i], pb[i]); });
    return;
  }
  if (a.shape() == out.shape() && b.numel() == 1 && b.rank() <= out.rank()) {
    const TB v = pb[0];
    broadcast_detail::element_loop_threads<TO>(n, [&](int64_t i) { po[i] = f(pa[i], v); });
    return;
  }
  if (b.shape() == out.shape() && a.numel() == 1 && a.rank() <= out.rank()) {
    const TA v = pa[0];
    broadcast_detail::element_loop_threads<TO>(n, [&](int64_t i) { po[i] = f(v, pb[i]); });
    return;
  }
  broadcast_detail::for_each_row<2>(
      out.shape(), {a.shape(), b.shape()},
      [&](int64_t o, const std::array<int64_t, 2>& off, int64_t inner, const std::array<int64_t, 2>& st) {
        TO* y = po + o;
        const TA* xa = pa + off[0];
        const TB* xb = pb + off[1];
        // Unit/zero inner strides get their own loops so they vectorise (e.g. [N,F] op [F]).
        if (st[0] == 1 && st[1] == 1) {
          broadcast_detail::element_loop<TO>(inner, [&](int64_t j) { y[j] = f(xa[j], xb[j]); });
        } else if (st[0] == 1 && st[1] == 0) {
          const TB v = xb[0];
          broadcast_detail::element_loop<TO>(inner, [&](int64_t j) { y[j] = f(xa[j], v); });
        } else if (st[0] == 0 && st[1] == 1) {
          const TA v = xa[0];
          broadcast_detail::element_loop<TO>(inner, [&](int64_t j) { y[j] = f(v, xb[j]); });
        } else {
          for (int64_t j = 0; j < inner; ++j) y[j] = f(xa[j * st[0]], xb[j * st[1]]);
        }
      });
}

/// Same-type form of broadcast_map2: a, b and out all of element type T.
template <class T, class F>
void broadcast_apply(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  broadcast_map2<T, T, T>(a, b, out, f);
}

/// out[i] = f(c[.], a[.], b[.]) over out's shape with three operands broadcast to it (Where).
template <class TC, class TA, class TB, class TO, class F>
void broadcast_map3(const Tensor& c, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const TC* pc = c.data<TC>();
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  broadcast_detail::for_each_row<3>(
      out.shape(), {c.shape(), a.shape(), b.shape()},
      [&](int64_t o, const std::array<int64_t, 3>& off, int64_t inner, const std::array<int64_t, 3>& st) {
        TO* y = po + o;
        const TC* xc = pc + off[0];
        const TA* xa = pa + off[1];
        const TB* xb = pb + off[2];
        for (int64_t j = 0; j < inner; ++j) y[j] = f(xc[j * st[0]], xa[j * st[1]], xb[j * st[2]]);
      });
}

/// `t` materialised at `shape` (which its shape must broadcast to); any dtype.
inline Tensor expand_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor out = Tensor::uninitialized(t.dtype(), shape);
  const size_t es = dtype_size(t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  broadcast_detail::for_each_row<1>(
      shape, {t.shape()},
      [&](int64_t o, const std::array<int64_t, 1>& off, int64_t inner, const std::array<int64_t, 1>& st) {
        if (st[0] == 1) {
          std::memcpy(dst + o * es, src + off[0] * es, size_t(inner) * es);
        } else if (st[0] == 0 && es == 4) {  // one element repeated (a per-channel scale over H x W)
          uint32_t v;
          std::memcpy(&v, src + off[0] * es, 4);
          std::fill_n(reinterpret_cast<uint32_t*>(dst + o * es), inner, v);
        } else {
          for (int64_t j = 0; j < inner; ++j) std::memcpy(dst + (o + j) * es, src + (off[0] + j * st[0]) * es, es);
        }
      });
  return out;
}

/// Operand B of a binary op as numpy broadcasting should see it. From opset 7 on (and for ops
/// that never had the legacy form) that is B itself. Before opset 7, Add/Sub/Mul/Div/Pow and the
/// comparisons/logic ops broadcast only with attribute broadcast=1, and then only B to A's shape:
/// B is a single element, or its dims equal a contiguous run of A's dims starting at attribute
/// `axis` (suffix-aligned when absent); B is returned reshaped with trailing 1s so that
/// numpy-style broadcasting gives the same result. With broadcast=0 the shapes must be equal.
inline Tensor legacy_broadcast_operand(const OpContext& ctx, const Tensor& a, const Tensor& b) {
  if (ctx.opset >= 7) return b;
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  if (ctx.node.get_int("broadcast", 0) == 0) {
    if (as != bs)
      op_error(ctx, fmt::format("shapes {} and {} differ and broadcast=0 (before opset 7 operands broadcast only "
                                "with broadcast=1)",
                                shape_str(as), shape_str(bs)));
    return b;
  }
  if (b.numel() == 1) return b.reshape({});
  const int64_t ra = int64_t(as.size()), rb = int64_t(bs.size());
  int64_t axis = ctx.node.has("axis") ? ctx.node.get_int("axis", 0) : ra - rb;
  if (axis < 0) axis += ra;
  if (axis < 0 || axis + rb > ra)
    op_error(ctx, fmt::format("B {} does not fit A {} at axis {} (broadcast=1)", shape_str(bs), shape_str(as),
                              ctx.node.get_int("axis", ra - rb)));
  for (int64_t i = 0; i < rb; ++i)
    if (bs[i] != as[axis + i] && bs[i] != 1)
      op_error(ctx, fmt::format("B {} does not match A {} at axis {} (broadcast=1)", shape_str(bs), shape_str(as), axis));
  Shape s = bs;
  s.resize(size_t(ra - axis), 1);
  return b.reshape(s);
}

// ---------- unary maps ----------

// Unary ops: forward y = f(x), backward dx = g * d(x, y). The functors are template
// arguments so the loops inline and vectorise; attributes are read once per call, never
// per element. The size test is `if (parallel: ...)`: a bare `if` clause on a combined
// `parallel for simd` also applies to its simd part (OpenMP 5.0), and GCC then emits the
// loop unvectorised.

/// y = f(x) over a float32 input 0.
template <class F>
void unary_map(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out, F f) {
  const Tensor& x = float_input(ctx, in, 0);
  out[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  float* py = out[0].f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (parallel : n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
}

/// dx = g * d(x, y) for input 0 of a unary op (nothing when not needed or g is zero).
template <class D>
void unary_grad(const Inputs& in, const Inputs& outs, const Inputs& gout, const std::vector<bool>& need,
                std::vector<Tensor>& gin, D d) {
  if (!need[0] || !gout[0] || in[0]->dtype() != DType::Float32) return;
  const Tensor& x = *in[0];
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* py = outs[0]->f32();
  const float* pg = gout[0]->f32();
  float* pd = gin[0].f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (parallel : n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) pd[i] = pg[i] * d(px[i], py[i]);
}

/// y = f(x) over an int64 input (the integer form of Neg, Abs, Relu, Sign, Shrink...).
template <class F>
Tensor unary_map_i64(const Tensor& x, F f) {
  Tensor y = Tensor::uninitialized(DType::Int64, x.shape());
  const int64_t* px = x.i64();
  int64_t* py = y.i64();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = f(px[i]);
  return y;
}

// MLAUDIT_UNARY(Name, params, forward expr of x, derivative expr of x and y): defines
// Name_fwd and Name_bwd over float32. `params` declares locals computed once from the
// node's attributes (`n` is the node, `ctx` the context).
#define MLAUDIT_UNARY(NAME, PARAMS, FWD, DER)                                                             \
  void NAME##_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {                     \
    const Node& n = ctx.node;                                                                             \
    (void)n;                                                                                              \
    PARAMS;                                                                                               \
    unary_map(ctx, in, out, [=](float x) -> float { return FWD; });                                       \
  }                                                                                                       \
  void NAME##_bwd(const OpContext& ctx, const Inputs& in, const Inputs& o, const Inputs& g,               \
                  const std::vector<bool>& nd, std::vector<Tensor>& gi) {                                 \
    const Node& n = ctx.node;                                                                             \
    (void)n;                                                                                              \
    PARAMS;                                                                                               \
    unary_grad(in, o, g, nd, gi, [=](float x, float y) -> float { (void)x; (void)y; return DER; });       \
  }

#define MLAUDIT_NOPARAMS (void)0

}  // namespace mlaudit::engine::detail
