// Elementwise ops: unary activations, broadcasting binary ops, variadic Sum/Min/Max, Cast.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

// ---------- broadcasting helpers ----------

// Offsets into a tensor of shape `s` when iterating over `out` (0 stride on broadcast dims).
std::vector<int64_t> aligned_strides(const Shape& s, const Shape& out) {
  size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    size_t k = s.size() - 1 - i;
    size_t ko = r - 1 - i;
    st[ko] = s[k] == 1 ? 0 : acc;
    acc *= s[k];
  }
  return st;
}

template <class T, class F>
void broadcast_apply(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  const int64_t n = out.numel();
  if (a.shape() == b.shape()) {
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    return;
  }
  if (b.numel() == 1) {
    T v = pb[0];
    if (a.numel() == n) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], v);
      return;
    }
  }
  if (a.numel() == 1 && b.numel() == n) {
    T v = pa[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(v, pb[i]);
    return;
  }
  const Shape& os = out.shape();
  size_t r = os.size();
  auto sa = aligned_strides(a.shape(), os), sb = aligned_strides(b.shape(), os);
  if (r == 0) {
    po[0] = f(pa[0], pb[0]);
    return;
  }
  // Iterate rows of the innermost dim.
  int64_t inner = os[r - 1];
  int64_t rows = inner ? n / inner : 0;
  std::vector<int64_t> idx(r, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t row = 0; row < rows; ++row) {
    T* o = po + row * inner;
    const T* xa = pa + oa;
    const T* xb = pb + ob;
    int64_t ia = sa[r - 1], ib = sb[r - 1];
    // Unit/zero inner strides get their own loops so they vectorise (e.g. [N,F] op [F]).
    if (ia == 1 && ib == 1) {
      for (int64_t j = 0; j < inner; ++j) o[j] = f(xa[j], xb[j]);
    } else if (ia == 1 && ib == 0) {
      const T v = xb[0];
      for (int64_t j = 0; j < inner; ++j) o[j] = f(xa[j], v);
    } else if (ia == 0 && ib == 1) {
      const T v = xa[0];
      for (int64_t j = 0; j < inner; ++j) o[j] = f(v, xb[j]);
    } else {
      for (int64_t j = 0; j < inner; ++j) o[j] = f(xa[j * ia], xb[j * ib]);
    }
    for (size_t k = r - 1; k-- > 0;) {
      if (++idx[k] < os[k]) {
        oa += sa[k];
        ob += sb[k];
        break;
      }
      oa -= sa[k] * (os[k] - 1);
      ob -= sb[k] * (os[k] - 1);
      idx[k] = 0;
    }
  }
}

// Materialise `t` broadcast to `shape`.
Tensor expand_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  Tensor zero(t.dtype(), shape);
  Tensor out(t.dtype(), shape);
  if (t.dtype() == DType::Float32)
    broadcast_apply<float>(t, zero, out, [](float x, float) { return x; });
  else
    broadcast_apply<int64_t>(t, zero, out, [](int64_t x, int64_t) { return x; });
  return out;
}

// ---------- binary ops ----------

enum class BinOp { Add, Sub, Mul, Div, Pow };

template <BinOp K>
void binary_forward(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = input(ctx, in, 0);
  Tensor b_conv;
  if constexpr (K == BinOp::Pow) {
    // Pow allows an exponent of another numeric type; the result has the base's type.
    if (in.size() > 1 && in[1] && in[1]->dtype() != a.dtype()) b_conv = in[1]->to(a.dtype());
  }
  const Tensor& b = b_conv.empty() ? input(ctx, in, 1) : b_conv;
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
    if constexpr (K == BinOp::Add) broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) { return x + y; });
    if constexpr (K == BinOp::Sub) broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) { return x - y; });
    if constexpr (K == BinOp::Mul) broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) { return x * y; });
    if constexpr (K == BinOp::Div) {
      const int64_t* pb = b.i64();
      for (int64_t i = 0; i < b.numel(); ++i)
        if (pb[i] == 0) op_error(ctx, "integer division by zero");
      broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) { return x / y; });
    }
    if constexpr (K == BinOp::Pow)
      broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) { return (int64_t)std::pow((double)x, (double)y); });
  } else {
    op_error(ctx, fmt::format("unsupported input type {}", dtype_name(a.dtype())));
  }
}

template <class F>
Tensor map2(const Tensor& x, const Tensor& y, F f) {
  Tensor out(x.shape());
  const float* px = x.f32();
  const float* py = y.f32();
  float* po = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) po[i] = f(px[i], py[i]);
  return out;
}
template <class F>
Tensor map3(const Tensor& x, const Tensor& y, const Tensor& z, F f) {
  Tensor out(x.shape());
  const float* px = x.f32();
  const float* py = y.f32();
  const float* pz = z.f32();
  float* po = out.f32();
  for (int64_t i = 0; i < out.numel(); ++i) po[i] = f(px[i], py[i], pz[i]);
  return out;
}

template <BinOp K>
void binary_backward(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& gout,
                     const std::vector<bool>& need, std::vector<Tensor>& gin) {
  const Tensor& a = input(ctx, in, 0);
  if (a.dtype() != DType::Float32 || !gout[0]) return;
  const Tensor b = input(ctx, in, 1).to(DType::Float32);  // Pow may have an int64 exponent
  const Tensor& g = *gout[0];
  const Shape& s = g.shape();
  Tensor ea = expand_to(a, s), eb = expand_to(b, s);
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
  if (need[1]) {
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
    gin[1] = reduce_to_shape(gb, b.shape());
  }
}

// ---------- variadic Sum / Min / Max ----------

enum class VarOp { Sum, Min, Max };

template <VarOp K, class T>
Tensor variadic_fold(const OpContext& ctx, const Inputs& in) {
  Tensor acc = input(ctx, in, 0).clone();
  for (size_t k = 1; k < in.size(); ++k) {
    const Tensor& b = input(ctx, in, k);
    if (b.dtype() != acc.dtype()) op_error(ctx, "inputs differ in type");
    Tensor next(acc.dtype(), broadcast_shape(ctx, acc.shape(), b.shape()));
    if constexpr (K == VarOp::Sum) broadcast_apply<T>(acc, b, next, [](T x, T y) { return x + y; });
    if constexpr (K == VarOp::Min) broadcast_apply<T>(acc, b, next, [](T x, T y) { return std::min(x, y); });
    if constexpr (K == VarOp::Max) broadcast_apply<T>(acc, b, next, [](T x, T y) { return std::max(x, y); });
    acc = next;
  }
  return acc;
}

template <VarOp K>
void variadic_forward(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  if (in.empty()) op_error(ctx, "needs at least one input");
  const Tensor& first = input(ctx, in, 0);
  if (first.dtype() == DType::Float32) out[0] = variadic_fold<K, float>(ctx, in);
  else if (first.dtype() == DType::Int64) out[0] = variadic_fold<K, int64_t>(ctx, in);
  else op_error(ctx, fmt::format("unsupported input type {}", dtype_name(first.dtype())));
}

template <VarOp K>
void variadic_backward(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& gout,
                       const std::vector<bool>& need, std::vector<Tensor>& gin) {
  if (!gout[0] || in[0]->dtype() != DType::Float32) return;
  const Tensor& g = *gout[0];
  if constexpr (K == VarOp::Sum) {
    for (size_t k = 0; k < in.size(); ++k)
      if (need[k]) gin[k] = reduce_to_shape(g, in[k]->shape());
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

// Unary ops: forward y = f(x), backward dx = g * d(x, y). The functors are
// template arguments so the loops inline and vectorise; attributes are read
// once per call, never per element.

template <class F>
void unary_map(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out, F f) {
  const Tensor& x = float_input(ctx, in, 0);
  out[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  float* py = out[0].f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
}

template <class D>
void unary_grad(const Inputs& in, const Inputs& outs, const Inputs& gout, const std::vector<bool>& need,
                std::vector<Tensor>& gin, D d) {
  if (!need[0] || !gout[0]) return;
  const Tensor& x = *in[0];
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* py = outs[0]->f32();
  const float* pg = gout[0]->f32();
  float* pd = gin[0].f32();
  const int64_t n = x.numel();
#pragma omp parallel for simd if (n > 262144) schedule(static)
  for (int64_t i = 0; i < n; ++i) pd[i] = pg[i] * d(px[i], py[i]);
}

inline float sigmoid(float x) { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }

// MLAUDIT_UNARY(Name, params, forward expr of x, derivative expr of x and y):
// `params` declares locals computed once from the node's attributes.
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

#define NOPARAMS (void)0

MLAUDIT_UNARY(Neg, NOPARAMS, -x, -1.f)
MLAUDIT_UNARY(Abs, NOPARAMS, std::fabs(x), x > 0 ? 1.f : (x < 0 ? -1.f : 0.f))
MLAUDIT_UNARY(Relu, NOPARAMS, x > 0 ? x : 0.f, x > 0 ? 1.f : 0.f)
MLAUDIT_UNARY(LeakyRelu, const float alpha = n.get_float("alpha", 0.01f), x >= 0 ? x : x * alpha, x > 0 ? 1.f : alpha)
MLAUDIT_UNARY(Sigmoid, NOPARAMS, sigmoid(x), y * (1.f - y))
MLAUDIT_UNARY(Tanh, NOPARAMS, std::tanh(x), 1.f - y * y)
MLAUDIT_UNARY(Exp, NOPARAMS, std::exp(x), y)
MLAUDIT_UNARY(Log, NOPARAMS, std::log(x), 1.f / x)
MLAUDIT_UNARY(Sqrt, NOPARAMS, std::sqrt(x), 0.5f / y)
// d erf(x)/dx = 2/sqrt(pi) exp(-x^2)
MLAUDIT_UNARY(Erf, NOPARAMS, std::erf(x), 1.1283791670955126f * std::exp(-x * x))
MLAUDIT_UNARY(Elu, const float alpha = n.get_float("alpha", 1.f), x > 0 ? x : alpha * (std::exp(x) - 1.f),
              x > 0 ? 1.f : y + alpha)
// softplus(x) = log(1+exp(x)), computed stably; derivative sigmoid(x)
MLAUDIT_UNARY(Softplus, NOPARAMS, x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)), sigmoid(x))
// hardsigmoid(x) = max(0, min(1, alpha x + beta)); slope alpha strictly inside (0, 1)
MLAUDIT_UNARY(HardSigmoid, const float alpha = n.get_float("alpha", 0.2f); const float beta = n.get_float("beta", 0.5f),
              std::max(0.f, std::min(1.f, alpha * x + beta)),
              (alpha * x + beta > 0.f && alpha * x + beta < 1.f) ? alpha : 0.f)
// sign has zero derivative almost everywhere
MLAUDIT_UNARY(Sign, NOPARAMS, x > 0 ? 1.f : (x < 0 ? -1.f : 0.f), 0.f)

// Identity / Dropout (inference): y = x; Dropout's optional mask output is all true.
void identity_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  out[0] = input(ctx, in, 0);
  if (out.size() > 1) {
    Tensor mask(DType::Bool, in[0]->shape());
    bool* p = mask.data<bool>();
    for (int64_t i = 0; i < mask.numel(); ++i) p[i] = true;
    out[1] = mask;
  }
}
void identity_bwd(const OpContext&, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                  std::vector<Tensor>& gin) {
  if (need[0] && g[0]) gin[0] = *g[0];
}

// Clip: min/max from attributes (opset < 11) or optional inputs (>= 11).
void clip_bounds(const OpContext& ctx, const Inputs& in, float& lo, float& hi) {
  lo = -std::numeric_limits<float>::infinity();
  hi = std::numeric_limits<float>::infinity();
  if (ctx.opset < 11) {
    lo = ctx.node.get_float("min", lo);
    hi = ctx.node.get_float("max", hi);
  } else {
    if (in.size() > 1 && in[1] && !in[1]->empty()) lo = float(in[1]->to_doubles().at(0));
    if (in.size() > 2 && in[2] && !in[2]->empty()) hi = float(in[2]->to_doubles().at(0));
  }
}
void clip_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  float lo, hi;
  clip_bounds(ctx, in, lo, hi);
  out[0] = Tensor(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) out[0].f32()[i] = std::min(std::max(x.f32()[i], lo), hi);
}
// PyTorch's clamp passes the gradient where lo <= x <= hi.
void clip_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  float lo, hi;
  clip_bounds(ctx, in, lo, hi);
  const Tensor& x = *in[0];
  gin[0] = Tensor(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    float v = x.f32()[i];
    gin[0].f32()[i] = (v >= lo && v <= hi) ? g[0]->f32()[i] : 0.f;
  }
}

// Cast to float32, int64 (or narrower ints, computed as int64) and bool.
void cast_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  int64_t to = ctx.node.get_int("to", 1);
  switch (to) {
    case 1: case 11: out[0] = x.to(DType::Float32); break;   // FLOAT, DOUBLE (computed in float32)
    case 2: case 3: case 4: case 5: case 6: case 7: case 12: case 13:
      out[0] = x.dtype() == DType::Float32 ? x.to(DType::Float64).to(DType::Int64) : x.to(DType::Int64);
      break;
    case 9: out[0] = x.to(DType::Bool); break;
    default: op_error(ctx, fmt::format("cast to ONNX type {} is not supported", to));
  }
}
void cast_bwd(const OpContext&, const Inputs& in, const Inputs& out, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (need[0] && g[0] && out[0]->dtype() == DType::Float32) gin[0] = *g[0];
}

}  // namespace

void register_elementwise_ops() {
  register_op("Add", {binary_forward<BinOp::Add>, binary_backward<BinOp::Add>});
  register_op("Sub", {binary_forward<BinOp::Sub>, binary_backward<BinOp::Sub>});
  register_op("Mul", {binary_forward<BinOp::Mul>, binary_backward<BinOp::Mul>});
  register_op("Div", {binary_forward<BinOp::Div>, binary_backward<BinOp::Div>});
  register_op("Pow", {binary_forward<BinOp::Pow>, binary_backward<BinOp::Pow>});
  register_op("Sum", {variadic_forward<VarOp::Sum>, variadic_backward<VarOp::Sum>});
  register_op("Min", {variadic_forward<VarOp::Min>, variadic_backward<VarOp::Min>});
  register_op("Max", {variadic_forward<VarOp::Max>, variadic_backward<VarOp::Max>});
  register_op("Neg", {Neg_fwd, Neg_bwd});
  register_op("Abs", {Abs_fwd, Abs_bwd});
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
  register_op("Sign", {Sign_fwd, Sign_bwd});
  register_op("Identity", {identity_fwd, identity_bwd});
  register_op("Dropout", {identity_fwd, identity_bwd});
  register_op("Clip", {clip_fwd, clip_bwd});
  register_op("Cast", {cast_fwd, cast_bwd, true, 6});  // Cast-1 names the target type by string
}

float sigmoid_value(float x) { return sigmoid(x); }

}  // namespace mlaudit::engine::detail
