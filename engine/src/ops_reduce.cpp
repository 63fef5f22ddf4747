// ops_reduce.cpp: ReduceMax/Min/Prod/L1/L2/LogSumExp/SumSquare/LogSum and ArgMax/ArgMin.
//
// Versions (ONNX 1.23.2 since-versions, see onnx_op_versions.inc):
//   Reduce*  1, 11, 13      axes is an attribute (an absent or empty list reduces every axis);
//                           11 documents negative axes and 12/13 only add element types, so
//                           one code path serves all three.
//   Reduce*  18             axes is an optional int64 input; noop_with_empty_axes = 1 turns an
//                           absent/empty axes into the identity reduction (ReduceLogSum is then
//                           log x, ReduceSumSquare x^2, ...).
//   ReduceMax/Min 20        adds bool (False < True: Max is "any", Min is "all").
//   ReduceLogSum/LogSumExp 28  integer inputs are no longer allowed.
//   ArgMax/ArgMin 1, 11     axis attribute (first index of the extremum);
//                 12, 13    select_last_index (13 only adds bfloat16).
// Element types: float32 (float64 is converted at load) computed with double accumulators;
// int64 (int32/uint8 converted at load) computed as ONNX's reference does, with wrap-around
// products and sums and the float-valued reductions (L2, LogSum, LogSumExp) truncated to int64.
//
// Reduction over an empty set gives the operator's identity: -inf (Max, LogSum, LogSumExp),
// +inf (Min), 1 (Prod), 0 (L1, L2, SumSquare); the lowest/highest int64 for integer Max/Min.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

enum class Reduction { Max, Min, Prod, L1, L2, LogSumExp, SumSquare, LogSum };

/// The node's schema version; graphs built in code without a resolved version use the opset.
int64_t schema_version(const OpContext& ctx) { return ctx.node.since_version > 0 ? ctx.node.since_version : ctx.opset; }

// Enough work per thread for OpenMP's fork/join to pay off.
constexpr int64_t kParallelWork = int64_t(1) << 16;

/// The input elements of one reduction group, as offsets from the group's base: `starts.size()`
/// runs of `len` elements `stride` apart. Reduced axes adjacent in the input are merged into one
/// run, so reducing trailing or all axes stores one offset rather than one per element.
/// Iterating yields the offsets in row-major order.
class Group {
 public:
  std::vector<int64_t> starts;
  int64_t len = 1, stride = 1;

  class Iterator {
   public:
    Iterator(const Group* g, size_t run) : g_(g), run_(run) {}
    int64_t operator*() const { return g_->starts[run_] + j_ * g_->stride; }
    Iterator& operator++() {
      if (++j_ == g_->len) {
        j_ = 0;
        ++run_;
      }
      return *this;
    }
    bool operator!=(const Iterator& o) const { return run_ != o.run_ || j_ != o.j_; }

   private:
    const Group* g_;
    size_t run_;
    int64_t j_ = 0;
  };
  Iterator begin() const { return Iterator(this, len == 0 ? starts.size() : 0); }
  Iterator end() const { return Iterator(this, starts.size()); }
  int64_t size() const { return static_cast<int64_t>(starts.size()) * len; }
  bool empty() const { return size() == 0; }
  /// Offset of the k-th element (0 <= k < size()).
  int64_t operator[](int64_t k) const { return starts[k / len] + (k % len) * stride; }
};

/// One reduction laid out over the input: output element o reduces the input elements at
/// base(o) + every offset of `group` (each input element belongs to exactly one group).
struct ReducePlan {
  Shape out_shape;                    ///< keepdims applied
  int64_t out_count = 0;              ///< elements of the output
  Group group;
  std::vector<int64_t> kept_dims;     ///< non-reduced input dims, outermost first
  std::vector<int64_t> kept_strides;  ///< their input strides

  /// Input offset of the first element reduced into output element o (row-major over kept_dims).
  int64_t base(int64_t o) const {
    int64_t off = 0;
    for (size_t i = kept_dims.size(); i-- > 0;) {
      off += (o % kept_dims[i]) * kept_strides[i];
      o /= kept_dims[i];
    }
    return off;
  }
};

/// Which axes are reduced: the axes attribute (before 18) or the axes input (from 18), with
/// ONNX's defaults for an absent or empty list; every axis is checked against the rank.
std::vector<bool> reduced_axes(const OpContext& ctx, const Inputs& in, int64_t rank) {
  const int64_t version = schema_version(ctx);
  std::vector<int64_t> axes;
  bool noop = false;
  if (version >= 18) {
    if (ctx.node.has("axes"))
      op_error(ctx, fmt::format("axes is an input from opset 18, not an attribute (version {})", version));
    if (in.size() > 1 && in[1] && !in[1]->empty()) {
      const Tensor& a = *in[1];
      if (a.dtype() != DType::Int64) op_error(ctx, fmt::format("axes must be int64, got {}", dtype_name(a.dtype())));
      if (a.rank() > 1) op_error(ctx, fmt::format("axes must be 1-D, got shape {}", shape_str(a.shape())));
      axes = a.to_int64s();
    }
    noop = ctx.node.get_int("noop_with_empty_axes", 0) != 0;
  } else {
    if (in.size() > 1 && in[1])
      op_error(ctx, fmt::format("takes a single input before opset 18 (axes is an attribute at version {})", version));
    axes = ctx.node.get_ints("axes", {});
  }
  std::vector<bool> mask(rank, axes.empty() && !noop);
  for (int64_t a : axes) {
    if (rank == 0) op_error(ctx, fmt::format("axis {} given for a scalar (rank 0) input", a));
    int64_t k = norm_axis(ctx, a, rank);
    if (mask[k]) op_error(ctx, fmt::format("axes lists axis {} more than once", a));
    mask[k] = true;
  }
  return mask;
}

ReducePlan make_plan(const OpContext& ctx, const Inputs& in, const Shape& shape) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<bool> mask = reduced_axes(ctx, in, rank);
  const bool keep = ctx.node.get_int("keepdims", 1) != 0;
  std::vector<int64_t> strides(rank, 1);
  for (int64_t i = rank - 1; i > 0; --i) strides[i - 1] = strides[i] * shape[i];

  ReducePlan p;
  p.out_count = 1;
  // Reduced dims with their strides; a reduced axis right after another reduced axis is
  // merged into it (row-major: the outer stride is the inner stride times the inner dim).
  std::vector<int64_t> red_dims, red_strides;
  for (int64_t i = 0; i < rank; ++i) {
    if (mask[i]) {
      if (i > 0 && mask[i - 1]) {
        red_dims.back() *= shape[i];
        red_strides.back() = strides[i];
      } else {
        red_dims.push_back(shape[i]);
        red_strides.push_back(strides[i]);
      }
      if (keep) p.out_shape.push_back(1);
    } else {
      p.kept_dims.push_back(shape[i]);
      p.kept_strides.push_back(strides[i]);
      p.out_count *= shape[i];
      p.out_shape.push_back(shape[i]);
    }
  }
  // The innermost merged dim is the run; the others are enumerated (odometer, row-major).
  Group& g = p.group;
  if (!red_dims.empty()) {
    g.len = red_dims.back();
    g.stride = red_strides.back();
    red_dims.pop_back();
    red_strides.pop_back();
  }
  int64_t runs = 1;
  for (int64_t d : red_dims) runs *= d;
  g.starts.reserve(static_cast<size_t>(runs));
  std::vector<int64_t> idx(red_dims.size(), 0);
  int64_t off = 0;
  for (int64_t n = 0; n < runs; ++n) {
    g.starts.push_back(off);
    for (size_t k = red_dims.size(); k-- > 0;) {
      if (++idx[k] < red_dims[k]) {
        off += red_strides[k];
        break;
      }
      off -= red_strides[k] * (red_dims[k] - 1);
      idx[k] = 0;
    }
  }
  return p;
}

/// double -> int64 as x86's cvttsd2si (and so numpy's astype) does: truncation, with NaN and
/// out-of-range values giving the lowest int64 instead of undefined behaviour.
int64_t truncate_to_int64(double v) {
  constexpr double kLimit = 9223372036854775808.0;  // 2^63
  if (!(v > -kLimit - 1024.0 && v < kLimit)) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

// ---------------- float32 ----------------

float reduce_float_group(Reduction kind, const float* x, const Group& group) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  switch (kind) {
    case Reduction::Max:
    case Reduction::Min: {
      // NaN propagates (numpy's max/min, PyTorch's amax/amin).
      const bool is_max = kind == Reduction::Max;
      float best = is_max ? -kInf : kInf;
      for (int64_t g : group) {
        float v = x[g];
        if (std::isnan(v)) return v;
        if (is_max ? v > best : v < best) best = v;
      }
      return best;
    }
    case Reduction::Prod: {
      double prod = 1;
      for (int64_t g : group) prod *= x[g];
      return float(prod);
    }
    case Reduction::L1: {
      double s = 0;
      for (int64_t g : group) s += std::fabs(double(x[g]));
      return float(s);
    }
    case Reduction::L2:
    case Reduction::SumSquare: {
      double s = 0;
      for (int64_t g : group) s += double(x[g]) * x[g];
      return float(kind == Reduction::L2 ? std::sqrt(s) : s);
    }
    case Reduction::LogSum: {
      double s = 0;
      for (int64_t g : group) s += x[g];
      return float(std::log(s));  // log 0 = -inf for an empty or zero sum
    }
    case Reduction::LogSumExp: {
      // log sum exp x = m + log sum exp(x - m) with m = max x: no term overflows and the
      // largest is exactly 1, so the sum (in double) is in [1, n].
      float m = -kInf;
      for (int64_t g : group)
        if (x[g] > m) m = x[g];
      if (std::isinf(m)) {  // empty, all -inf, or some +inf: the limit is m (NaN still propagates)
        for (int64_t g : group)
          if (std::isnan(x[g])) return x[g];
        return m;
      }
      double s = 0;
      for (int64_t g : group) s += std::exp(double(x[g]) - m);
      return float(double(m) + std::log(s));
    }
  }
  return 0.f;
}

// ---------------- int64 ----------------

int64_t reduce_int_group(Reduction kind, const int64_t* x, const Group& group) {
  switch (kind) {
    case Reduction::Max: {
      int64_t best = std::numeric_limits<int64_t>::min();
      for (int64_t g : group) best = std::max(best, x[g]);
      return best;
    }
    case Reduction::Min: {
      int64_t best = std::numeric_limits<int64_t>::max();
      for (int64_t g : group) best = std::min(best, x[g]);
      return best;
    }
    // Products and sums wrap around modulo 2^64 like numpy's int64 (no signed overflow).
    case Reduction::Prod: {
      uint64_t prod = 1;
      for (int64_t g : group) prod *= static_cast<uint64_t>(x[g]);
      return static_cast<int64_t>(prod);
    }
    case Reduction::L1: {
      uint64_t s = 0;
      for (int64_t g : group) s += x[g] < 0 ? uint64_t(0) - static_cast<uint64_t>(x[g]) : static_cast<uint64_t>(x[g]);
      return static_cast<int64_t>(s);
    }
    case Reduction::SumSquare: {
      uint64_t s = 0;
      for (int64_t g : group) s += static_cast<uint64_t>(x[g]) * static_cast<uint64_t>(x[g]);
      return static_cast<int64_t>(s);
    }
    case Reduction::L2: {
      double s = 0;
      for (int64_t g : group) s += double(x[g]) * double(x[g]);
      return truncate_to_int64(std::sqrt(s));
    }
    case Reduction::LogSum: {
      uint64_t s = 0;
      for (int64_t g : group) s += static_cast<uint64_t>(x[g]);
      return truncate_to_int64(std::log(double(static_cast<int64_t>(s))));
    }
    case Reduction::LogSumExp: {
      if (group.empty()) return truncate_to_int64(-std::numeric_limits<double>::infinity());
      int64_t m = std::numeric_limits<int64_t>::min();
      for (int64_t g : group) m = std::max(m, x[g]);
      double s = 0;
      for (int64_t g : group) s += std::exp(double(x[g]) - double(m));
      return truncate_to_int64(double(m) + std::log(s));
    }
  }
  return 0;
}

template <Reduction Kind>
void reduce_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t version = schema_version(ctx);
  constexpr bool kMinMax = Kind == Reduction::Max || Kind == Reduction::Min;
  if (x.dtype() == DType::Bool) {
    if (!kMinMax) op_error(ctx, "bool input is not allowed");
    if (version < 20) op_error(ctx, fmt::format("bool input needs opset 20 or later (version {})", version));
  } else if (x.dtype() == DType::Int64) {
    if ((Kind == Reduction::LogSum || Kind == Reduction::LogSumExp) && version >= 28)
      op_error(ctx, fmt::format("int64 input is not allowed from opset 28 (version {})", version));
  } else if (x.dtype() != DType::Float32) {
    op_error(ctx, fmt::format("input 0 is {}, expected float32 or int64", dtype_name(x.dtype())));
  }
  const ReducePlan p = make_plan(ctx, in, x.shape());
  Tensor y = Tensor::uninitialized(x.dtype(), p.out_shape);
  const int64_t work = p.out_count * std::max<int64_t>(1, p.group.size());
  if (x.dtype() == DType::Float32) {
    const float* px = x.f32();
    float* py = y.f32();
#pragma omp parallel for if (work > kParallelWork) schedule(static)
    for (int64_t o = 0; o < p.out_count; ++o) py[o] = reduce_float_group(Kind, px + p.base(o), p.group);
  } else if (x.dtype() == DType::Int64) {
    const int64_t* px = x.i64();
    int64_t* py = y.i64();
#pragma omp parallel for if (work > kParallelWork) schedule(static)
    for (int64_t o = 0; o < p.out_count; ++o) py[o] = reduce_int_group(Kind, px + p.base(o), p.group);
  } else {
    // bool, False < True: Max is "any" (false over an empty set), Min is "all" (true).
    const bool* px = x.data<bool>();
    bool* py = y.data<bool>();
    for (int64_t o = 0; o < p.out_count; ++o) {
      const bool* xb = px + p.base(o);
      bool acc = Kind == Reduction::Min;
      for (int64_t g : p.group) acc = Kind == Reduction::Max ? (acc || xb[g]) : (acc && xb[g]);
      py[o] = acc;
    }
  }
  out[0] = std::move(y);
}

// Vector-Jacobian products, per group with y the forward output and g its gradient:
//   Max/Min    g / (number of x_k equal to y) to each such x_k (ties split evenly, as
//              PyTorch's amax/amin), 0 elsewhere
//   Prod       g * prod_{j != k} x_j from prefix and suffix products (no division, so zeros
//              in the group are exact)
//   L1         g * sign(x_k)
//   L2         g * x_k / y (0 when y = 0, the minimum-norm subgradient)
//   SumSquare  2 g x_k
//   LogSum     g / sum x
//   LogSumExp  g * exp(x_k - y) (softmax, y recomputed in double; 0 when y is infinite)
template <Reduction Kind>
void reduce_bwd(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& grad_out,
                const std::vector<bool>& need, std::vector<Tensor>& grad_in) {
  if (!need[0] || !grad_out[0]) return;
  const Tensor& x = input(ctx, in, 0);
  if (x.dtype() != DType::Float32) return;
  const ReducePlan p = make_plan(ctx, in, x.shape());
  const Tensor& y = input(ctx, outs, 0);
  const Tensor& gy = *grad_out[0];
  if (y.numel() != p.out_count || gy.numel() != p.out_count)
    op_error(ctx, fmt::format("output gradient of shape {} does not match the output {}", shape_str(gy.shape()),
                              shape_str(p.out_shape)));
  Tensor gx(x.shape());
  const float* px = x.f32();
  const float* py = y.f32();
  const float* pg = gy.f32();
  float* pd = gx.f32();
  const int64_t work = p.out_count * std::max<int64_t>(1, p.group.size());
#pragma omp parallel if (work > kParallelWork)
  {
    std::vector<double> suffix;  // Prod: products of the group's trailing elements
#pragma omp for schedule(static)
    for (int64_t o = 0; o < p.out_count; ++o) {
      const int64_t b = p.base(o);
      const float* xs = px + b;
      float* ds = pd + b;
      const double g = pg[o];
      const double yo = py[o];
      if constexpr (Kind == Reduction::Max || Kind == Reduction::Min) {
        int64_t ties = 0;
        for (int64_t k : p.group) ties += xs[k] == py[o];
        if (ties == 0) continue;  // NaN maximum: no element equals it
        const float share = float(g / double(ties));
        for (int64_t k : p.group)
          if (xs[k] == py[o]) ds[k] = share;
      } else if constexpr (Kind == Reduction::Prod) {
        const int64_t n = p.group.size();
        suffix.assign(static_cast<size_t>(n) + 1, 1.0);
        for (int64_t k = n; k-- > 0;) suffix[k] = suffix[k + 1] * xs[p.group[k]];
        double prefix = 1;
        for (int64_t k = 0; k < n; ++k) {
          ds[p.group[k]] = float(g * prefix * suffix[k + 1]);
          prefix *= xs[p.group[k]];
        }
      } else if constexpr (Kind == Reduction::L1) {
        for (int64_t k : p.group) ds[k] = float(xs[k] > 0 ? g : xs[k] < 0 ? -g : 0.0);
      } else if constexpr (Kind == Reduction::L2) {
        if (yo == 0) continue;
        for (int64_t k : p.group) ds[k] = float(g * xs[k] / yo);
      } else if constexpr (Kind == Reduction::SumSquare) {
        for (int64_t k : p.group) ds[k] = float(2 * g * xs[k]);
      } else if constexpr (Kind == Reduction::LogSum) {
        double s = 0;
        for (int64_t k : p.group) s += xs[k];
        for (int64_t k : p.group) ds[k] = float(g / s);
      } else if constexpr (Kind == Reduction::LogSumExp) {
        if (std::isinf(yo)) continue;
        // y again in double: the float output's rounding (ulp(1000) ~ 6e-5) would bias every
        // softmax weight exp(x_k - y) by that much relative error.
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t k : p.group) m = std::max(m, double(xs[k]));
        double s = 0;
        for (int64_t k : p.group) s += std::exp(double(xs[k]) - m);
        const double lse = m + std::log(s);
        for (int64_t k : p.group) ds[k] = float(g * std::exp(double(xs[k]) - lse));
      }
    }
  }
  grad_in[0] = std::move(gx);
}

// ---------------- ArgMax / ArgMin ----------------

// Index of the extremum along `axis`: the first one, or the last with select_last_index
// (from version 12). NaN counts as the extremum, as in numpy's argmax/argmin.
template <bool IsMax>
void arg_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.dtype() != DType::Float32 && x.dtype() != DType::Int64)
    op_error(ctx, fmt::format("input 0 is {}, expected float32 or int64", dtype_name(x.dtype())));
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) op_error(ctx, "input must have rank >= 1, got a scalar");
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), rank);
  const bool keep = ctx.node.get_int("keepdims", 1) != 0;
  const bool last = schema_version(ctx) >= 12 && ctx.node.get_int("select_last_index", 0) != 0;
  const Shape& s = x.shape();
  const int64_t len = s[axis];
  if (len == 0) op_error(ctx, fmt::format("axis {} of input {} is empty: no index to return", axis, shape_str(s)));
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[i];
  for (int64_t i = axis + 1; i < rank; ++i) inner *= s[i];
  Shape out_shape;
  for (int64_t i = 0; i < rank; ++i)
    if (i != axis) out_shape.push_back(s[i]);
    else if (keep) out_shape.push_back(1);
  Tensor y = Tensor::uninitialized(DType::Int64, out_shape);
  int64_t* py = y.i64();
  auto scan = [&](auto* px) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(px)>>;
#pragma omp parallel for if (outer * inner * len > kParallelWork) schedule(static)
    for (int64_t o = 0; o < outer * inner; ++o) {
      const T* line = px + (o / inner) * len * inner + (o % inner);
      int64_t best = 0;
      T bv = line[0];
      for (int64_t k = 1; k < len; ++k) {
        const T v = line[k * inner];
        bool take;
        if constexpr (std::is_floating_point_v<T>) {
          if (std::isnan(bv)) take = last && std::isnan(v);
          else if (std::isnan(v)) take = true;
          else take = IsMax ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
        } else {
          take = IsMax ? (v > bv || (last && v == bv)) : (v < bv || (last && v == bv));
        }
        if (take) {
          best = k;
          bv = v;
        }
      }
      py[o] = best;
    }
  };
  if (x.dtype() == DType::Float32) scan(x.f32());
  else scan(x.i64());
  out[0] = std::move(y);
}

}  // namespace

void register_reduce_ops() {
  register_op("ReduceMax", {reduce_fwd<Reduction::Max>, reduce_bwd<Reduction::Max>});
  register_op("ReduceMin", {reduce_fwd<Reduction::Min>, reduce_bwd<Reduction::Min>});
  register_op("ReduceProd", {reduce_fwd<Reduction::Prod>, reduce_bwd<Reduction::Prod>});
  register_op("ReduceL1", {reduce_fwd<Reduction::L1>, reduce_bwd<Reduction::L1>});
  register_op("ReduceL2", {reduce_fwd<Reduction::L2>, reduce_bwd<Reduction::L2>});
  register_op("ReduceLogSumExp", {reduce_fwd<Reduction::LogSumExp>, reduce_bwd<Reduction::LogSumExp>});
  register_op("ReduceSumSquare", {reduce_fwd<Reduction::SumSquare>, reduce_bwd<Reduction::SumSquare>});
  register_op("ReduceLogSum", {reduce_fwd<Reduction::LogSum>, reduce_bwd<Reduction::LogSum>});
  // Integer outputs: no gradient flows.
  register_op("ArgMax", {arg_fwd<true>, nullptr});
  register_op("ArgMin", {arg_fwd<false>, nullptr});
}

}  // namespace mlaudit::engine::detail
