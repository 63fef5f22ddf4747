// Elementwise ops: unary activations, broadcasting binary ops, variadic Sum/Mean/Min/Max, Clip, Cast,
// Identity/Dropout. Every since-version from 1: opset < 7 binary ops carry the legacy
// `broadcast`/`axis` attributes (broadcast.h), version-1 ops an ignored `consumed_inputs`
// attribute, and Sum/Mean/Min/Max before opset 8 require equal shapes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "broadcast.h"
#include "cpu/fusion.h"
#include "mlaudit/engine/error.h"
#include "ops.h"
#include "vector_math.h"

namespace mlaudit::engine::detail {

namespace {

// ---------- integer arithmetic ----------

// int64 arithmetic wraps (two's complement, as ONNX Runtime's kernels do on every platform):
// signed overflow is undefined behaviour in C++, so it is done in uint64.
inline int64_t wrap_add(int64_t x, int64_t y) { return int64_t(uint64_t(x) + uint64_t(y)); }
inline int64_t wrap_sub(int64_t x, int64_t y) { return int64_t(uint64_t(x) - uint64_t(y)); }
inline int64_t wrap_mul(int64_t x, int64_t y) { return int64_t(uint64_t(x) * uint64_t(y)); }
inline int64_t wrap_neg(int64_t x) { return int64_t(0 - uint64_t(x)); }
// Truncating division; the caller rules out y == 0; INT64_MIN / -1 (a hardware trap) wraps.
inline int64_t trunc_div(int64_t x, int64_t y) { return y == -1 ? wrap_neg(x) : x / y; }

// A double converted to int64 the way x86's cvttsd2si does (truncation; NaN and out-of-range
// values give INT64_MIN) without the undefined behaviour of a plain cast.
inline int64_t double_to_i64(double v) {
  if (!(v > -9223372036854775808.0 && v < 9223372036854775808.0)) return std::numeric_limits<int64_t>::min();
  return int64_t(v);
}

// base^exp over int64 by squaring, wrapping on overflow; exp >= 0.
inline int64_t int_pow(int64_t base, int64_t exp) {
  uint64_t result = 1, b = uint64_t(base);
  while (exp > 0) {
    if (exp & 1) result *= b;
    b *= b;
    exp >>= 1;
  }
  return int64_t(result);
}

// ---------- binary ops ----------

enum class BinOp { Add, Sub, Mul, Div, Pow };

// Pow with an int64 base: an int64 exponent is exact (a negative one truncates 1/base^|e|
// towards zero, so only |base| = 1 survives); a float exponent goes through double and is
// truncated, as ONNX Runtime does.
void int_pow_forward(const OpContext& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  if (b.dtype() == DType::Int64) {
    bool zero_to_negative = false;  // reported after the loop: broadcast loops must not throw
    broadcast_apply<int64_t>(a, b, out, [&](int64_t x, int64_t e) -> int64_t {
      if (e >= 0) return int_pow(x, e);
      if (x == 0) zero_to_negative = true;
      if (x == 1) return 1;
      if (x == -1) return (e & 1) ? -1 : 1;
      return 0;
    });
    if (zero_to_negative) op_error(ctx, "0 raised to a negative integer power");
  } else if (b.dtype() == DType::Float32) {
    broadcast_map2<int64_t, float, int64_t>(
        a, b, out, [](int64_t x, float e) { return double_to_i64(std::pow(double(x), double(e))); });
  } else {
    op_error(ctx, fmt::format("unsupported exponent type {}", dtype_name(b.dtype())));
  }
}

template <BinOp K>
void binary_forward(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = input(ctx, in, 0);
  Tensor b = legacy_broadcast_operand(ctx, a, input(ctx, in, 1));
  if constexpr (K == BinOp::Pow) {
    // From Pow-12 the exponent may have another numeric type; the result has the base's type.
    if (a.dtype() == DType::Float32 && b.dtype() == DType::Int64) b = b.to(DType::Float32);
    if (a.dtype() == DType::Int64) {
      out[0] = Tensor(DType::Int64, broadcast_shape(ctx, a.shape(), b.shape()));
      int_pow_forward(ctx, a, b, out[0]);
      return;
    }
  }
  if (a.dtype() != b.dtype())
    op_error(ctx, fmt::format("input types differ ({} and {})", dtype_name(a.dtype()), dtype_name(b.dtype())));
  Shape s = broadcast_shape(ctx, a.shape(), b.shape());
  if (a.dtype() == DType::Float32) {
    out[0] = Tensor::uninitialized(DType::Float32, s);
    if constexpr (K == BinOp::Add) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return x + y; });
    if constexpr (K == BinOp::Sub) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return x - y; });
    if constexpr (K == BinOp::Mul) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return x * y; });
    if constexpr (K == BinOp::Div) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return x / y; });
    if constexpr (K == BinOp::Pow) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return std::pow(x, y); });
  } else if (a.dtype() == DType::Int64) {
    out[0] = Tensor(DType::Int64, s);
    if constexpr (K == BinOp::Add) broadcast_apply<int64_t>(a, b, out[0], wrap_add);
    if constexpr (K == BinOp::Sub) broadcast_apply<int64_t>(a, b, out[0], wrap_sub);
    if constexpr (K == BinOp::Mul) broadcast_apply<int64_t>(a, b, out[0], wrap_mul);
    if constexpr (K == BinOp::Div) {
      const int64_t* pb = b.i64();
      for (int64_t i = 0; i < b.numel(); ++i)
        if (pb[i] == 0) op_error(ctx, "integer division by zero");
      broadcast_apply<int64_t>(a, b, out[0], trunc_div);
    }
  } else {
    op_error(ctx, fmt::format("unsupported input type {}", dtype_name(a.dtype())));
  }
}

template <class F>
Tensor map2(const Tensor& x, const Tensor& y, F f) {
  Tensor out = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* py = y.f32();
  float* po = out.f32();
  const int64_t n = out.numel();
#pragma omp parallel for simd if (parallel : n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = f(px[i], py[i]);
  return out;
}
template <class F>
Tensor map3(const Tensor& x, const Tensor& y, const Tensor& z, F f) {
  Tensor out = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* py = y.f32();
  const float* pz = z.f32();
  float* po = out.f32();
  const int64_t n = out.numel();
#pragma omp parallel for simd if (parallel : n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = f(px[i], py[i], pz[i]);
  return out;
}

template <BinOp K>
void binary_backward(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& gout,
                     const std::vector<bool>& need, std::vector<Tensor>& gin) {
  const Tensor& a = input(ctx, in, 0);
  if (a.dtype() != DType::Float32 || !gout[0]) return;
  const Tensor& b_in = input(ctx, in, 1);
  // Pow may have an int64 exponent; before opset 7, B is seen through its legacy alignment.
  const Tensor b = legacy_broadcast_operand(ctx, a, b_in).to(DType::Float32);
  const Tensor& g = *gout[0];
  const Shape& s = g.shape();
  // The operands at the output's shape, materialised only where a derivative reads them
  // (Add and Sub read neither).
  Tensor ea, eb;
  if constexpr (K != BinOp::Add && K != BinOp::Sub) {
    if (need[1] || K == BinOp::Pow) ea = expand_to(a, s);
    if (need[0] || K == BinOp::Div) eb = expand_to(b, s);
  }
  if (need[0]) {
    Tensor ga;
    if constexpr (K == BinOp::Add || K == BinOp::Sub) ga = g;
    if constexpr (K == BinOp::Mul) ga = map2(g, eb, [](float gg, float y) { return gg * y; });
    if constexpr (K == BinOp::Div) ga = map2(g, eb, [](float gg, float y) { return gg / y; });
    // d(a^b)/da = b a^(b-1)
    if constexpr (K == BinOp::Pow)
      ga = map3(g, ea, eb, [](float gg, float x, float y) { return y == 0.f ? 0.f : gg * y * std::pow(x, y - 1.f); });
    gin[0] = reduce_to_shape(ga, a.shape());
  }
  if (need[1] && b_in.dtype() == DType::Float32) {
    Tensor gb;
    if constexpr (K == BinOp::Add) gb = g;
    if constexpr (K == BinOp::Sub) gb = map2(g, g, [](float gg, float) { return -gg; });
    if constexpr (K == BinOp::Mul) gb = map2(g, ea, [](float gg, float x) { return gg * x; });
    // d(a/b)/db = -a/b^2
    if constexpr (K == BinOp::Div) gb = map3(g, ea, eb, [](float gg, float x, float y) { return -gg * x / (y * y); });
    // d(a^b)/db = a^b ln a (0 where a^b = 0, as PyTorch)
    if constexpr (K == BinOp::Pow) {
      Tensor eo = expand_to(*outs[0], s);
      gb = map3(g, ea, eo, [](float gg, float x, float o) { return o == 0.f ? 0.f : gg * o * std::log(x); });
    }
    gin[1] = reduce_to_shape(gb, b.shape()).reshape(b_in.shape());
  }
}

// ---------- variadic Sum / Mean / Min / Max ----------

enum class VarOp { Sum, Mean, Min, Max };

template <VarOp K, class T>
Tensor variadic_fold(const OpContext& ctx, const Inputs& in) {
  Tensor acc = input(ctx, in, 0).clone();
  for (size_t k = 1; k < in.size(); ++k) {
    const Tensor& b = input(ctx, in, k);
    if (b.dtype() != acc.dtype()) op_error(ctx, "inputs differ in type");
    // Before opset 8 these ops do not broadcast: all inputs have one shape.
    if (ctx.opset < 8 && b.shape() != acc.shape())
      op_error(ctx, fmt::format("input shapes {} and {} differ (inputs broadcast only from opset 8)",
                                shape_str(acc.shape()), shape_str(b.shape())));
    Tensor next(acc.dtype(), broadcast_shape(ctx, acc.shape(), b.shape()));
    if constexpr (K == VarOp::Sum || K == VarOp::Mean) {
      if constexpr (std::is_same_v<T, int64_t>) broadcast_apply<T>(acc, b, next, wrap_add);
      else broadcast_apply<T>(acc, b, next, [](T x, T y) { return x + y; });
    }
    if constexpr (K == VarOp::Min) broadcast_apply<T>(acc, b, next, [](T x, T y) { return std::min(x, y); });
    if constexpr (K == VarOp::Max) broadcast_apply<T>(acc, b, next, [](T x, T y) { return std::max(x, y); });
    acc = next;
  }
  if constexpr (K == VarOp::Mean) {
    const float inv = 1.f / float(in.size());
    float* p = acc.f32();
    for (int64_t i = 0; i < acc.numel(); ++i) p[i] *= inv;
  }
  return acc;
}

template <VarOp K>
void variadic_forward(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  if (in.empty()) op_error(ctx, "needs at least one input");
  const Tensor& first = input(ctx, in, 0);
  if (first.dtype() == DType::Float32) out[0] = variadic_fold<K, float>(ctx, in);
  else if (first.dtype() == DType::Int64 && K != VarOp::Mean) out[0] = variadic_fold<K, int64_t>(ctx, in);
  else op_error(ctx, fmt::format("unsupported input type {}", dtype_name(first.dtype())));
}

template <VarOp K>
void variadic_backward(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& gout,
                       const std::vector<bool>& need, std::vector<Tensor>& gin) {
  if (!gout[0] || input(ctx, in, 0).dtype() != DType::Float32) return;
  const Tensor& g = *gout[0];
  if constexpr (K == VarOp::Sum) {
    for (size_t k = 0; k < in.size(); ++k)
      if (need[k]) gin[k] = reduce_to_shape(g, in[k]->shape());
  } else if constexpr (K == VarOp::Mean) {
    // d mean / d x_k = 1/n
    const float inv = 1.f / float(in.size());
    Tensor gs = map2(g, g, [inv](float gg, float) { return gg * inv; });
    for (size_t k = 0; k < in.size(); ++k)
      if (need[k]) gin[k] = reduce_to_shape(gs, in[k]->shape());
  } else {
    // The gradient goes to the first input that attains the extremum.
    const Shape& s = g.shape();
    Tensor taken(s);
    for (size_t k = 0; k < in.size(); ++k) {
      Tensor e = expand_to(*in[k], s);
      Tensor gk(s);
      const float* pe = e.f32();
      const float* po = outs[0]->f32();
      float* pt = taken.f32();
      for (int64_t i = 0; i < g.numel(); ++i) {
        if (pt[i] == 0.f && pe[i] == po[i]) {
          gk.f32()[i] = g.f32()[i];
          pt[i] = 1.f;
        }
      }
      if (need[k]) gin[k] = reduce_to_shape(gk, in[k]->shape());
    }
  }
}

// ---------- unary ops ----------

inline float sigmoid(float x) { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }

MLAUDIT_UNARY(NegF, MLAUDIT_NOPARAMS, -x, -1.f)
MLAUDIT_UNARY(AbsF, MLAUDIT_NOPARAMS, std::fabs(x), x > 0 ? 1.f : (x < 0 ? -1.f : 0.f))
void ReluF_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  unary_map(ctx, in, out, [](float x) { return x > 0 ? x : 0.f; });
}
// Relu's backward g * (x > 0 ? 1 : 0) through relu_mask_multiply (vector_math.h), which
// vectorises where the macro's loop becomes a branch; the same products.
void Relu_bwd(const OpContext&, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  unary_grad_array(in, g, need, gin, [](const float* x, const float* gy, float* dx, int64_t n) {
    relu_mask_multiply(gy, x, dx, n);
  });
}
MLAUDIT_UNARY(LeakyRelu, const float alpha = n.get_float("alpha", 0.01f), x >= 0 ? x : x * alpha, x > 0 ? 1.f : alpha)
MLAUDIT_UNARY(Tanh, MLAUDIT_NOPARAMS, std::tanh(x), 1.f - y * y)

// y = f(x) by an array kernel of vector_math.h, in blocks (threads take blocks of large inputs).
void unary_array_map(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out,
                     void (*kernel)(const float*, float*, int64_t)) {
  const Tensor& x = float_input(ctx, in, 0);
  out[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  float* py = out[0].f32();
  for_float_blocks(x.numel(), [&](int64_t b, int64_t m) { kernel(px + b, py + b, m); });
}

// Sigmoid and Exp: forward by the vectorised kernels (vector_math.h, ~3 and ~2 ulp); their
// derivatives y (1 - y) and y need only the output.
void Sigmoid_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  if (!ctx.node.get_int(kFusedTimesInputAttribute, 0)) return unary_array_map(ctx, in, out, sigmoid_array);
  // SiLU fused by fuse_cpu_inference_graph: x * sigmoid(x), the Mul's float product, in one pass.
  unary_array_map(ctx, in, out, silu_array);
}
// The fused SiLU's backward over a contiguous block: s = sigmoid_array(x) again (the forward's
// bits), then what Mul' and Sigmoid' and the sum of their two gradients give x:
//   d = g s + (g x) (s (1 - s)),
// each product and the sum rounded on its own, as the unfused nodes do: the two terms are
// stored before the sum (a loop of its own, pure additions), so no compiler fuses g s + ... into
// one multiply-add - the same bits as the unfused graph's gradient.
void silu_grad_block(const float* x, const float* g, float* d, int64_t n) {
  constexpr int64_t kChunk = 256;
  float s[kChunk], first[kChunk], second[kChunk];
  for (int64_t b = 0; b < n; b += kChunk) {
    const int64_t m = std::min(kChunk, n - b);
    sigmoid_array(x + b, s, m);
    for (int64_t i = 0; i < m; ++i) {
      first[i] = g[b + i] * s[i];
      const float gx = g[b + i] * x[b + i];
      const float ds = s[i] * (1.f - s[i]);
      second[i] = gx * ds;
    }
    for (int64_t i = 0; i < m; ++i) d[b + i] = first[i] + second[i];
  }
}

void Sigmoid_bwd(const OpContext& ctx, const Inputs& in, const Inputs& o, const Inputs& g, const std::vector<bool>& nd,
                 std::vector<Tensor>& gi) {
  if (!ctx.node.get_int(kFusedTimesInputAttribute, 0))
    return unary_grad(in, o, g, nd, gi, [](float, float y) { return y * (1.f - y); });
  unary_grad_array(in, g, nd, gi, silu_grad_block);
}
void Exp_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) { unary_array_map(ctx, in, out, exp_array); }
void Exp_bwd(const OpContext&, const Inputs& in, const Inputs& o, const Inputs& g, const std::vector<bool>& nd,
             std::vector<Tensor>& gi) {
  unary_grad(in, o, g, nd, gi, [](float, float y) { return y; });
}

MLAUDIT_UNARY(Log, MLAUDIT_NOPARAMS, std::log(x), 1.f / x)
MLAUDIT_UNARY(Sqrt, MLAUDIT_NOPARAMS, std::sqrt(x), 0.5f / y)
// d erf(x)/dx = 2/sqrt(pi) exp(-x^2)
MLAUDIT_UNARY(Erf, MLAUDIT_NOPARAMS, std::erf(x), 1.1283791670955126f * std::exp(-x * x))
MLAUDIT_UNARY(Elu, const float alpha = n.get_float("alpha", 1.f), x > 0 ? x : alpha * (std::exp(x) - 1.f),
              x > 0 ? 1.f : y + alpha)
// softplus(x) = log(1+exp(x)), computed stably; derivative sigmoid(x)
MLAUDIT_UNARY(Softplus, MLAUDIT_NOPARAMS, x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)), sigmoid(x))
// hardsigmoid(x) = max(0, min(1, alpha x + beta)); slope alpha strictly inside (0, 1)
MLAUDIT_UNARY(HardSigmoid, const float alpha = n.get_float("alpha", 0.2f); const float beta = n.get_float("beta", 0.5f),
              std::max(0.f, std::min(1.f, alpha * x + beta)),
              (alpha * x + beta > 0.f && alpha * x + beta < 1.f) ? alpha : 0.f)
// sign has zero derivative almost everywhere
MLAUDIT_UNARY(SignF, MLAUDIT_NOPARAMS, x > 0 ? 1.f : (x < 0 ? -1.f : 0.f), 0.f)

// Neg, Abs, Relu (from 14) and Sign also take integers (Neg/Abs from 6, Sign from 9); the
// float form differentiates, the integer form computes exactly (INT64_MIN wraps like ORT).
#define MLAUDIT_INT_TOO(NAME, INT_EXPR)                                                  \
  void NAME##_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {    \
    const Tensor& x = input(ctx, in, 0);                                                  \
    if (x.dtype() == DType::Int64) out[0] = unary_map_i64(x, [](int64_t v) -> int64_t { return INT_EXPR; }); \
    else NAME##F_fwd(ctx, in, out);                                                       \
  }
MLAUDIT_INT_TOO(Neg, wrap_neg(v))
MLAUDIT_INT_TOO(Abs, v < 0 ? wrap_neg(v) : v)
MLAUDIT_INT_TOO(Relu, v > 0 ? v : 0)
MLAUDIT_INT_TOO(Sign, v > 0 ? 1 : (v < 0 ? -1 : 0))
#undef MLAUDIT_INT_TOO

// Identity / Dropout (inference): y = x; Dropout's optional mask output is all ones (bool from
// Dropout-10, the data's float type before). Dropout-12+ takes training_mode as an input: a
// true one asks for random dropout, which is refused. Dropout-1/6's is_test=0 is treated as
// inference too: models of that era (Caffe2 exports) set it whatever the deployment.
void identity_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  out[0] = input(ctx, in, 0);
  if (ctx.node.op_type != "Dropout") return;
  if (in.size() > 2 && in[2] && !in[2]->empty()) {
    if (in[2]->numel() != 1) op_error(ctx, "training_mode must be a scalar");
    if (in[2]->to_doubles()[0] != 0)
      op_error(ctx, "training_mode=true (random dropout) is not supported; export the model in inference mode");
  }
  if (out.size() > 1) {
    if (ctx.node.since_version != 0 && ctx.node.since_version < 10) {
      out[1] = Tensor::full(in[0]->shape(), 1.f);
    } else {
      Tensor mask(DType::Bool, in[0]->shape());
      bool* p = mask.data<bool>();
      for (int64_t i = 0; i < mask.numel(); ++i) p[i] = true;
      out[1] = mask;
    }
  }
}
void identity_bwd(const OpContext&, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                  std::vector<Tensor>& gin) {
  if (need[0] && g[0] && in[0]->dtype() == DType::Float32) gin[0] = *g[0];
}

// Clip: min/max from attributes (Clip-1: absent means unbounded; Clip-6: defaults to the float
// range) or from optional scalar inputs (Clip-11+; integer tensors from Clip-12).
template <class T>
void clip_bounds(const OpContext& ctx, const Inputs& in, T& lo, T& hi) {
  lo = std::numeric_limits<T>::lowest();
  hi = std::numeric_limits<T>::max();
  if constexpr (std::is_same_v<T, float>) {
    if (ctx.opset < 11) {
      lo = ctx.node.get_float("min", lo);
      hi = ctx.node.get_float("max", hi);
      return;
    }
  }
  auto bound = [&](size_t k, T& v, const char* what) {
    if (k >= in.size() || !in[k] || in[k]->empty()) return;
    const Tensor& t = *in[k];
    if (t.numel() != 1) op_error(ctx, fmt::format("{} must be a scalar, got shape {}", what, shape_str(t.shape())));
    if (t.dtype() != in[0]->dtype())
      op_error(ctx, fmt::format("{} is {}, input is {}", what, dtype_name(t.dtype()), dtype_name(in[0]->dtype())));
    v = t.data<T>()[0];
  };
  bound(1, lo, "min");
  bound(2, hi, "max");
}
void clip_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.dtype() == DType::Int64 && ctx.opset >= 12) {
    int64_t lo, hi;
    clip_bounds(ctx, in, lo, hi);
    out[0] = unary_map_i64(x, [=](int64_t v) { return std::min(std::max(v, lo), hi); });
    return;
  }
  float lo, hi;
  clip_bounds(ctx, in, lo, hi);
  unary_map(ctx, in, out, [=](float v) { return std::min(std::max(v, lo), hi); });
}
// PyTorch's clamp passes the gradient where lo <= x <= hi.
void clip_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!need[0] || !g[0] || in[0]->dtype() != DType::Float32) return;
  float lo, hi;
  clip_bounds(ctx, in, lo, hi);
  const Tensor& x = *in[0];
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (parallel : n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) pd[i] = (px[i] >= lo && px[i] <= hi) ? pg[i] : 0.f;
}

// Cast-1 names the target type by string; later versions by TensorProto.DataType number.
int64_t cast_target(const OpContext& ctx) {
  auto it = ctx.node.attributes.find("to");
  if (it == ctx.node.attributes.end()) op_error(ctx, "missing attribute 'to'");
  if (it->second.kind != Attribute::Kind::String) return ctx.node.get_int("to", 0);
  static const std::pair<const char*, int64_t> names[] = {
      {"FLOAT", 1},  {"UINT8", 2}, {"INT8", 3},     {"UINT16", 4}, {"INT16", 5},   {"INT32", 6},  {"INT64", 7},
      {"STRING", 8}, {"BOOL", 9},  {"FLOAT16", 10}, {"DOUBLE", 11}, {"UINT32", 12}, {"UINT64", 13},
      {"BFLOAT16", 16}};
  for (const auto& [name, code] : names)
    if (it->second.s == name) return code;
  op_error(ctx, fmt::format("unknown cast target type '{}'", it->second.s));
}

// x rounded to a float format with `digits` significant bits whose smallest subnormal step is
// 2^min_quantum_exp (float16: 11, -24; bfloat16: 8, -133), round-to-nearest-even, overflow to
// +-inf above `max_finite` (float16 65504; bfloat16: float32's own overflow). Exact in double:
// a / q and round(a / q) * q only move the exponent.
float round_to_float_format(float x, int digits, int min_quantum_exp, double max_finite) {
  if (!std::isfinite(x) || x == 0.f) return x;
  double a = std::fabs(static_cast<double>(x));
  int e = 0;
  std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  double q = std::ldexp(1.0, std::max(e - digits, min_quantum_exp));
  double r = std::nearbyint(a / q) * q;  // default rounding mode: to nearest, ties to even
  if (r > max_finite) r = std::numeric_limits<double>::infinity();
  return static_cast<float>(std::copysign(r, static_cast<double>(x)));
}

// Cast to float32 (FLOAT, DOUBLE: computed in float32), to FLOAT16 / BFLOAT16 (rounded to that
// precision, round-to-nearest-even, and held as float32), to the integer types (computed as int64:
// floats truncate towards zero, then the value wraps to the target's width as a C cast does) and
// to bool (nonzero is true).
void cast_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t to = cast_target(ctx);
  auto to_int = [&](auto narrow) {
    Tensor y(DType::Int64, x.shape());
    int64_t* py = y.i64();
    if (x.dtype() == DType::Float32) {
      const float* px = x.f32();
      for (int64_t i = 0; i < x.numel(); ++i) py[i] = narrow(double_to_i64(px[i]));
    } else {
      Tensor xi = x.to(DType::Int64);
      const int64_t* px = xi.i64();
      for (int64_t i = 0; i < x.numel(); ++i) py[i] = narrow(px[i]);
    }
    return y;
  };
  switch (to) {
    case 1: case 11: out[0] = x.to(DType::Float32); break;
    case 10: case 16: {  // FLOAT16, BFLOAT16
      Tensor y = x.to(DType::Float32).clone();
      float* py = y.f32();
      for (int64_t i = 0; i < y.numel(); ++i)
        py[i] = to == 10 ? round_to_float_format(py[i], 11, -24, 65504.0)
                         : round_to_float_format(py[i], 8, -133, static_cast<double>(std::numeric_limits<float>::max()));
      out[0] = y;
      break;
    }
    case 2: out[0] = to_int([](int64_t v) -> int64_t { return uint8_t(v); }); break;
    case 3: out[0] = to_int([](int64_t v) -> int64_t { return int8_t(v); }); break;
    case 4: out[0] = to_int([](int64_t v) -> int64_t { return uint16_t(v); }); break;
    case 5: out[0] = to_int([](int64_t v) -> int64_t { return int16_t(v); }); break;
    case 6: out[0] = to_int([](int64_t v) -> int64_t { return int32_t(v); }); break;
    case 12: out[0] = to_int([](int64_t v) -> int64_t { return uint32_t(v); }); break;
    case 7: case 13: out[0] = to_int([](int64_t v) { return v; }); break;  // UINT64 kept as its int64 bits
    case 9: out[0] = x.to(DType::Bool); break;
    default: op_error(ctx, fmt::format("cast to ONNX type {} is not supported", to));
  }
}
void cast_bwd(const OpContext&, const Inputs& in, const Inputs& out, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (need[0] && g[0] && in[0]->dtype() == DType::Float32 && out[0]->dtype() == DType::Float32) gin[0] = *g[0];
}

}  // namespace

void register_elementwise_ops() {
  register_op("Add", {binary_forward<BinOp::Add>, binary_backward<BinOp::Add>});
  register_op("Sub", {binary_forward<BinOp::Sub>, binary_backward<BinOp::Sub>});
  register_op("Mul", {binary_forward<BinOp::Mul>, binary_backward<BinOp::Mul>});
  register_op("Div", {binary_forward<BinOp::Div>, binary_backward<BinOp::Div>});
  register_op("Pow", {binary_forward<BinOp::Pow>, binary_backward<BinOp::Pow>});
  register_op("Sum", {variadic_forward<VarOp::Sum>, variadic_backward<VarOp::Sum>});
  register_op("Mean", {variadic_forward<VarOp::Mean>, variadic_backward<VarOp::Mean>});
  register_op("Min", {variadic_forward<VarOp::Min>, variadic_backward<VarOp::Min>});
  register_op("Max", {variadic_forward<VarOp::Max>, variadic_backward<VarOp::Max>});
  register_op("Neg", {Neg_fwd, NegF_bwd});
  register_op("Abs", {Abs_fwd, AbsF_bwd});
  register_op("Relu", {Relu_fwd, Relu_bwd});
  register_op("LeakyRelu", {LeakyRelu_fwd, LeakyRelu_bwd});
  register_op("Sigmoid", {Sigmoid_fwd, Sigmoid_bwd});
  register_op("Tanh", {Tanh_fwd, Tanh_bwd});
  register_op("Exp", {Exp_fwd, Exp_bwd});
  register_op("Log", {Log_fwd, Log_bwd});
  register_op("Sqrt", {Sqrt_fwd, Sqrt_bwd});
  register_op("Erf", {Erf_fwd, Erf_bwd});
  register_op("Elu", {Elu_fwd, Elu_bwd});
  register_op("Softplus", {Softplus_fwd, Softplus_bwd});
  register_op("HardSigmoid", {HardSigmoid_fwd, HardSigmoid_bwd});
  register_op("Sign", {Sign_fwd, SignF_bwd});
  register_op("Identity", {identity_fwd, identity_bwd});
  register_op("Dropout", {identity_fwd, identity_bwd});
  register_op("Clip", {clip_fwd, clip_bwd});
  register_op("Cast", {cast_fwd, cast_bwd});
}

float sigmoid_value(float x) { return sigmoid(x); }

}  // namespace mlaudit::engine::detail
