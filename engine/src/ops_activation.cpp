// ops_activation.cpp: further element-wise activations (Gelu, HardSwish, Mish, PRelu, Selu, Celu,
// ...), trigonometric and rounding ops, Mod, IsNaN/IsInf, Hardmax, comparisons, boolean logic
// and Where. Each kernel handles every since-version of its op in onnx_op_versions.inc: the
// legacy (opset < 7) broadcast/axis form of the comparisons and logic ops goes through
// broadcast.h's legacy_broadcast_operand, Selu-1's defaults differ from Selu-6's, Hardmax's
// axis changes meaning at 13, Mod's float fmod=0 arrives at 28. Later since-versions of these
// ops only add element types (float16, bfloat16, ...) that the engine computes as float32.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "broadcast.h"
#include "vector_math.h"
#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

inline float sigmoid_of(float x) { return x >= 0 ? 1.f / (1.f + std::exp(-x)) : std::exp(x) / (1.f + std::exp(x)); }
// softplus(x) = log(1 + e^x), stable for large |x|.
inline float softplus_of(float x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// ---------- Gelu ----------

// approximate = "none": y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x),
// phi(x) = exp(-x^2/2) / sqrt(2 pi).
// approximate = "tanh": u = sqrt(2/pi) (x + 0.044715 x^3), y = 0.5 x (1 + tanh u);
// dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
constexpr float kSqrt1_2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;

inline float gelu_tanh_grad(float x) {
  const float t = std::tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
}

bool gelu_uses_tanh(const OpContext& ctx) {
  const std::string mode = ctx.node.get_string("approximate", "none");
  if (mode != "none" && mode != "tanh") op_error(ctx, fmt::format("unknown approximate '{}' (none or tanh)", mode));
  return mode == "tanh";
}

// Forward over a contiguous block through the vectorised exp/sigmoid (vector_math.h):
//  tanh form: 0.5 (1 + tanh u) = sigmoid(2u), so y = x sigmoid(2u);
//  erf form:  1 + erf(x / sqrt 2) = erfc(-x / sqrt 2), and for a = |v|, t = 1 / (1 + a/2),
//             erfc(a) = t exp(-a^2 + P(t)) with Numerical Recipes' erfcc polynomial P (fractional
//             error below 1.2e-7 everywhere, 2.3 in section 6.2), erfc(-a) = 2 - erfc(a).
//             Using erfc keeps the negative tail relatively accurate where 1 + erf cancels.
// 1 + erf(x[i] / sqrt 2) for i < m <= kGeluChunk into ope[] (`t` is scratch): the erfc form above.
constexpr int64_t kGeluChunk = 256;
void gelu_one_plus_erf(const float* x, float* ope, float* t, int64_t m) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) {
    const float a = std::fabs(x[i] * kSqrt1_2);
    const float ti = 1.f / (1.f + 0.5f * a);
    t[i] = ti;
    ope[i] = -a * a - 1.26551223f +
             ti * (1.00002368f +
                   ti * (0.37409196f +
                         ti * (0.09678418f +
                               ti * (-0.18628806f +
                                     ti * (0.27886807f +
                                           ti * (-1.13520398f +
                                                 ti * (1.48851587f + ti * (-0.82215223f + ti * 0.17087277f))))))));
  }
  exp_array(ope, ope, m);
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) {
    const float erfc_a = t[i] * ope[i];  // erfc(|x| / sqrt 2)
    // 1 + erf(x / sqrt 2) = erfc(-x / sqrt 2): erfc(|.|) for x < 0, 2 - erfc(|.|) for x >= 0
    // (the sign bit picks the arm: at -0 both are 1).
    const float two_minus = 2.f - erfc_a;
    ope[i] = std::signbit(x[i]) ? erfc_a : two_minus;
  }
}

void gelu_block(const float* x, float* y, int64_t n, bool tanh_form) {
  float arg[kGeluChunk], t[kGeluChunk];
  for (int64_t b = 0; b < n; b += kGeluChunk) {
    const int64_t m = std::min(kGeluChunk, n - b);
    const float* xb = x + b;
    float* yb = y + b;
    if (tanh_form) {
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) arg[i] = 2.f * kSqrt2OverPi * (xb[i] + kGeluCubic * xb[i] * xb[i] * xb[i]);
      sigmoid_array(arg, arg, m);
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) yb[i] = xb[i] * arg[i];
      continue;
    }
    gelu_one_plus_erf(xb, arg, t, m);
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) {
      const float value = 0.5f * xb[i] * arg[i];
      yb[i] = std::isnan(xb[i]) ? xb[i] : value;  // NaN in, the same NaN out
    }
  }
}

// Gradient of the erf form over a contiguous block: d[i] = g[i] (Phi(x) + x phi(x)), Phi from the
// forward's erfc form, phi(x) = exp(-x^2/2) / sqrt(2 pi) through the vectorised exp.
void gelu_erf_grad_block(const float* x, const float* g, float* d, int64_t n) {
  float ope[kGeluChunk], t[kGeluChunk], e[kGeluChunk];
  for (int64_t b = 0; b < n; b += kGeluChunk) {
    const int64_t m = std::min(kGeluChunk, n - b);
    const float* xb = x + b;
    gelu_one_plus_erf(xb, ope, t, m);
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) e[i] = -0.5f * xb[i] * xb[i];
    exp_array(e, e, m);
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) d[b + i] = g[b + i] * (0.5f * ope[i] + xb[i] * kInvSqrt2Pi * e[i]);
  }
}

void gelu_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const bool tanh_form = gelu_uses_tanh(ctx);
  const Tensor& x = float_input(ctx, in, 0);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const int64_t n = x.numel();
  const float* px = x.f32();
  float* py = y.f32();
  constexpr int64_t kGrain = 1 << 14;  // elements per parallel piece: fork/join costs microseconds
#pragma omp parallel for if (n > 2 * kGrain) schedule(static)
  for (int64_t b = 0; b < n; b += kGrain) gelu_block(px + b, py + b, std::min(kGrain, n - b), tanh_form);
  out[0] = y;
}
void gelu_bwd(const OpContext& ctx, const Inputs& in, const Inputs& o, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (gelu_uses_tanh(ctx)) return unary_grad(in, o, g, need, gin, [](float x, float) { return gelu_tanh_grad(x); });
  unary_grad_array(in, g, need, gin, gelu_erf_grad_block);
}

// ---------- unary activations with gradients ----------

MLAUDIT_UNARY(Reciprocal, MLAUDIT_NOPARAMS, 1.f / x, -y * y)
// hardswish(x) = x max(0, min(1, x/6 + 1/2)); derivative 0 below -3, 1 above 3, x/3 + 1/2 between.
MLAUDIT_UNARY(HardSwish, MLAUDIT_NOPARAMS, x * std::max(0.f, std::min(1.f, x * (1.f / 6.f) + 0.5f)),
              x < -3.f ? 0.f : (x > 3.f ? 1.f : x * (1.f / 3.f) + 0.5f))
// mish(x) = x tanh(softplus x); derivative tanh(sp) + x sigmoid(x) (1 - tanh^2(sp)).
MLAUDIT_UNARY(Mish, MLAUDIT_NOPARAMS, x * std::tanh(softplus_of(x)),
              std::tanh(softplus_of(x)) + x * sigmoid_of(x) * (1.f - std::tanh(softplus_of(x)) * std::tanh(softplus_of(x))))
// selu(x) = gamma (x if x > 0 else alpha (e^x - 1)); Selu-1's default constants are the
// shorter ones of its schema (1.6732, 1.0507), Selu-6's the full-precision ones.
MLAUDIT_UNARY(Selu,
              const bool v1 = ctx.opset < 6;
              const float alpha = n.get_float("alpha", v1 ? 1.6732f : 1.67326319217681884765625f);
              const float gamma = n.get_float("gamma", v1 ? 1.0507f : 1.05070102214813232421875f),
              x > 0 ? gamma * x : gamma * alpha * (std::exp(x) - 1.f), x > 0 ? gamma : gamma * alpha * std::exp(x))
// celu(x) = max(0, x) + min(0, alpha (e^(x/alpha) - 1)); derivative [x > 0] + e^(x/alpha) where the
// second term is negative (x < 0 for the usual alpha > 0).
MLAUDIT_UNARY(Celu, const float alpha = n.get_float("alpha", 1.f),
              std::max(0.f, x) + std::min(0.f, alpha * std::expm1(x / alpha)),
              (x > 0 ? 1.f : 0.f) + (alpha * std::expm1(x / alpha) < 0.f ? std::exp(x / alpha) : 0.f))
MLAUDIT_UNARY(ThresholdedRelu, const float alpha = n.get_float("alpha", 1.f), x > alpha ? x : 0.f,
              x > alpha ? 1.f : 0.f)
// softsign(x) = x / (1 + |x|); derivative 1 / (1 + |x|)^2.
MLAUDIT_UNARY(Softsign, MLAUDIT_NOPARAMS, x / (1.f + std::fabs(x)), 1.f / ((1.f + std::fabs(x)) * (1.f + std::fabs(x))))
MLAUDIT_UNARY(Cos, MLAUDIT_NOPARAMS, std::cos(x), -std::sin(x))
MLAUDIT_UNARY(Sin, MLAUDIT_NOPARAMS, std::sin(x), std::cos(x))
MLAUDIT_UNARY(Tan, MLAUDIT_NOPARAMS, std::tan(x), 1.f + y * y)
MLAUDIT_UNARY(Atan, MLAUDIT_NOPARAMS, std::atan(x), 1.f / (1.f + x * x))
MLAUDIT_UNARY(Asin, MLAUDIT_NOPARAMS, std::asin(x), 1.f / std::sqrt(1.f - x * x))
MLAUDIT_UNARY(Acos, MLAUDIT_NOPARAMS, std::acos(x), -1.f / std::sqrt(1.f - x * x))
MLAUDIT_UNARY(Sinh, MLAUDIT_NOPARAMS, std::sinh(x), std::cosh(x))
MLAUDIT_UNARY(Cosh, MLAUDIT_NOPARAMS, std::cosh(x), std::sinh(x))
MLAUDIT_UNARY(Asinh, MLAUDIT_NOPARAMS, std::asinh(x), 1.f / std::sqrt(x * x + 1.f))
MLAUDIT_UNARY(Acosh, MLAUDIT_NOPARAMS, std::acosh(x), 1.f / std::sqrt(x * x - 1.f))
MLAUDIT_UNARY(Atanh, MLAUDIT_NOPARAMS, std::atanh(x), 1.f / (1.f - x * x))

// ---------- piecewise-constant unary ops (no gradient flows) ----------

void floor_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  unary_map(ctx, in, out, [](float x) { return std::floor(x); });
}
void ceil_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  unary_map(ctx, in, out, [](float x) { return std::ceil(x); });
}
// Halves round to even: nearbyint in the default rounding mode (round-to-nearest-even).
void round_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  unary_map(ctx, in, out, [](float x) { return std::nearbyint(x); });
}

template <class F>
Tensor float_predicate(const OpContext& ctx, const Inputs& in, F f) {
  const Tensor& x = float_input(ctx, in, 0);
  Tensor y(DType::Bool, x.shape());
  const float* px = x.f32();
  bool* py = y.data<bool>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = f(px[i]);
  return y;
}
void isnan_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  out[0] = float_predicate(ctx, in, [](float x) { return std::isnan(x); });
}
void isinf_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const bool neg = ctx.node.get_int("detect_negative", 1) != 0;
  const bool pos = ctx.node.get_int("detect_positive", 1) != 0;
  out[0] = float_predicate(ctx, in, [=](float x) { return std::isinf(x) && (x > 0 ? pos : neg); });
}

// ---------- Shrink ----------

// y = x + bias if x < -lambd, x - bias if x > lambd, else 0; derivative 1 outside [-lambd, lambd].
// Integer inputs compute in double and convert back (ONNX Runtime does the same arithmetic).
void shrink_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const float lambd = ctx.node.get_float("lambd", 0.5f);
  const float bias = ctx.node.get_float("bias", 0.f);
  const Tensor& x = input(ctx, in, 0);
  if (x.dtype() == DType::Int64) {
    out[0] = unary_map_i64(x, [=](int64_t v) -> int64_t {
      const double d = double(v);
      const double r = d < -lambd ? d + bias : (d > lambd ? d - bias : 0.0);
      return r >= 9.2233720368547758e18 || r < -9.2233720368547758e18 ? std::numeric_limits<int64_t>::min()
                                                                        : int64_t(r);
    });
    return;
  }
  unary_map(ctx, in, out, [=](float v) { return v < -lambd ? v + bias : (v > lambd ? v - bias : 0.f); });
}
void shrink_bwd(const OpContext& ctx, const Inputs& in, const Inputs& o, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  const float lambd = ctx.node.get_float("lambd", 0.5f);
  unary_grad(in, o, g, need, gin, [=](float x, float) { return (x < -lambd || x > lambd) ? 1.f : 0.f; });
}

// ---------- Hardmax ----------

// 1 at the first maximum of each line (len values `stride` apart), 0 elsewhere.
void hardmax_line(const float* x, float* y, int64_t len, int64_t stride) {
  int64_t best = 0;
  for (int64_t j = 1; j < len; ++j)
    if (x[j * stride] > x[best * stride]) best = j;
  for (int64_t j = 0; j < len; ++j) y[j * stride] = j == best ? 1.f : 0.f;
}

// Hardmax-1/11 coerce the input to 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis default 1)
// and take each row; Hardmax-13 works along the single dim `axis` (default -1).
void hardmax_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  const Shape& s = x.shape();
  const int64_t rank = int64_t(s.size());
  const bool per_axis = ctx.opset >= 13;
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", per_axis ? -1 : 1), rank);
  out[0] = Tensor(DType::Float32, s);
  if (x.numel() == 0) return;
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (d < axis) outer *= s[d];
    else if (d == axis || !per_axis) len *= s[d];
    else inner *= s[d];
  }
  const float* px = x.f32();
  float* py = out[0].f32();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) hardmax_line(px + o * len * inner + i, py + o * len * inner + i, len, inner);
}

// ---------- Mod ----------

// fmod=1: C fmod, the remainder has the dividend's sign (A - trunc(A/B) B).
// fmod=0: Python %, the remainder has the divisor's sign (A - floor(A/B) B); for floats only
// from Mod-28 (Mod-10/13 require fmod=1 on floats). Integer division by zero is refused.
bool mod_is_fmod(const OpContext& ctx, DType t) {
  const int64_t f = ctx.node.get_int("fmod", 0);
  if (f != 0 && f != 1) op_error(ctx, fmt::format("fmod must be 0 or 1, got {}", f));
  if (t == DType::Float32 && f == 0 && ctx.opset < 28)
    op_error(ctx, fmt::format("fmod=0 on float input is defined from opset 28 (model opset {}); Mod-10/13 "
                              "require fmod=1 for floats",
                              ctx.opset));
  return f == 1;
}

inline float mod_floor(float x, float y) {
  float r = std::fmod(x, y);
  if (r != 0.f && ((r < 0.f) != (y < 0.f))) r += y;
  else if (r == 0.f) r = std::copysign(0.f, y);
  return r;
}

void mod_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = input(ctx, in, 0);
  const Tensor& b = input(ctx, in, 1);
  if (a.dtype() != b.dtype())
    op_error(ctx, fmt::format("input types differ ({} and {})", dtype_name(a.dtype()), dtype_name(b.dtype())));
  const bool fmod = mod_is_fmod(ctx, a.dtype());
  Shape s = broadcast_shape(ctx, a.shape(), b.shape());
  if (a.dtype() == DType::Float32) {
    out[0] = Tensor::uninitialized(DType::Float32, s);
    if (fmod) broadcast_apply<float>(a, b, out[0], [](float x, float y) { return std::fmod(x, y); });
    else broadcast_apply<float>(a, b, out[0], mod_floor);
  } else if (a.dtype() == DType::Int64) {
    const int64_t* pb = b.i64();
    for (int64_t i = 0; i < b.numel(); ++i)
      if (pb[i] == 0) op_error(ctx, "integer modulus by zero");
    out[0] = Tensor(DType::Int64, s);
    // y == -1 is special-cased: INT64_MIN % -1 traps on x86.
    if (fmod) {
      broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) -> int64_t { return y == -1 ? 0 : x % y; });
    } else {
      broadcast_apply<int64_t>(a, b, out[0], [](int64_t x, int64_t y) -> int64_t {
        if (y == -1) return 0;
        int64_t r = x % y;
        return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
      });
    }
  } else {
    op_error(ctx, fmt::format("unsupported input type {}", dtype_name(a.dtype())));
  }
}

// r = a - q b with q = trunc(a/b) (fmod=1) or floor(a/b) (fmod=0), piecewise constant:
// dr/da = 1, dr/db = -q. q is recovered from the forward's own remainder, (a - r)/b rounded to
// the nearest integer, so it agrees with the branch the forward took (as PyTorch's fmod and
// remainder backward do with trunc/floor of a/b).
void mod_bwd(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& gout,
             const std::vector<bool>& need, std::vector<Tensor>& gin) {
  const Tensor& a = input(ctx, in, 0);
  const Tensor& b = input(ctx, in, 1);
  if (a.dtype() != DType::Float32 || !gout[0]) return;
  const Tensor& g = *gout[0];
  const Shape& s = g.shape();
  if (need[0]) gin[0] = reduce_to_shape(g, a.shape());
  if (need[1]) {
    Tensor ea = expand_to(a, s), eb = expand_to(b, s);
    Tensor gb(s);
    const float *pa = ea.f32(), *pb = eb.f32(), *pr = outs[0]->f32(), *pg = g.f32();
    float* po = gb.f32();
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double q = std::nearbyint((double(pa[i]) - double(pr[i])) / double(pb[i]));
      po[i] = float(-double(pg[i]) * q);
    }
    gin[1] = reduce_to_shape(gb, b.shape());
  }
}

// ---------- PRelu ----------

// The slope as numpy broadcasting should see it. PRelu-7+: unidirectionally broadcastable to X.
// PRelu-1/6 (Caffe2's operator): a single shared slope, one slope per element (same shape as X),
// or a 1-D slope of X's channel count (dim 1), one per channel.
Tensor prelu_slope(const OpContext& ctx, const Tensor& x, const Tensor& slope) {
  const Shape& xs = x.shape();
  const Shape& ss = slope.shape();
  if (ctx.opset >= 7) {
    if (ss.size() > xs.size() || broadcast_shape(ctx, xs, ss) != xs)
      op_error(ctx, fmt::format("slope {} is not unidirectionally broadcastable to X {}", shape_str(ss), shape_str(xs)));
    return slope;
  }
  if (slope.numel() == 1) return slope.reshape({});
  if (ss == xs) return slope;
  if (ss.size() == 1 && xs.size() >= 2 && ss[0] == xs[1]) {
    Shape per_channel(xs.size() - 1, 1);
    per_channel[0] = ss[0];
    return slope.reshape(per_channel);
  }
  op_error(ctx, fmt::format("slope {} is neither one value, X's shape {} nor one per channel (opset {} < 7)",
                            shape_str(ss), shape_str(xs), ctx.opset));
}

void prelu_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const Tensor& slope_in = input(ctx, in, 1);
  if (x.dtype() != slope_in.dtype())
    op_error(ctx, fmt::format("input types differ ({} and {})", dtype_name(x.dtype()), dtype_name(slope_in.dtype())));
  Tensor slope = prelu_slope(ctx, x, slope_in);
  if (x.dtype() == DType::Float32) {
    out[0] = Tensor::uninitialized(DType::Float32, x.shape());
    broadcast_apply<float>(x, slope, out[0], [](float v, float a) { return v < 0 ? a * v : v; });
  } else if (x.dtype() == DType::Int64) {
    out[0] = Tensor(DType::Int64, x.shape());
    broadcast_apply<int64_t>(x, slope, out[0],
                             [](int64_t v, int64_t a) { return v < 0 ? int64_t(uint64_t(a) * uint64_t(v)) : v; });
  } else {
    op_error(ctx, fmt::format("unsupported input type {}", dtype_name(x.dtype())));
  }
}

// dy/dx = 1 where x >= 0, slope where x < 0; dy/dslope = x where x < 0 (summed over broadcast).
void prelu_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& gout, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  const Tensor& x = input(ctx, in, 0);
  if (x.dtype() != DType::Float32 || !gout[0]) return;
  const Tensor& slope_in = input(ctx, in, 1);
  Tensor slope = prelu_slope(ctx, x, slope_in);
  const Tensor& g = *gout[0];
  if (need[0]) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
    Tensor gx_slope = Tensor::uninitialized(DType::Float32, x.shape());
    broadcast_apply<float>(x, slope, gx_slope, [](float v, float a) { return v < 0 ? a : 1.f; });
    const float *pg = g.f32(), *pd = gx_slope.f32();
    float* po = gin[0].f32();
    for (int64_t i = 0; i < x.numel(); ++i) po[i] = pg[i] * pd[i];
  }
  if (need[1]) {
    Tensor gs = Tensor::uninitialized(DType::Float32, x.shape());
    broadcast_apply<float>(x, g, gs, [](float v, float gg) { return v < 0 ? gg * v : 0.f; });
    gin[1] = reduce_to_shape(gs, slope.shape()).reshape(slope_in.shape());
  }
}

// ---------- comparisons and logic ----------

enum class Cmp { Equal, Less, Greater, LessOrEqual, GreaterOrEqual };

template <Cmp K, class T>
void compare_typed(const Tensor& a, const Tensor& b, Tensor& out) {
  if constexpr (K == Cmp::Equal) broadcast_map2<T, T, bool>(a, b, out, [](T x, T y) { return x == y; });
  if constexpr (K == Cmp::Less) broadcast_map2<T, T, bool>(a, b, out, [](T x, T y) { return x < y; });
  if constexpr (K == Cmp::Greater) broadcast_map2<T, T, bool>(a, b, out, [](T x, T y) { return x > y; });
  if constexpr (K == Cmp::LessOrEqual) broadcast_map2<T, T, bool>(a, b, out, [](T x, T y) { return x <= y; });
  if constexpr (K == Cmp::GreaterOrEqual) broadcast_map2<T, T, bool>(a, b, out, [](T x, T y) { return x >= y; });
}

// Boolean C = A op B over float32, int64 or bool operands (broadcast; legacy form before opset 7).
template <Cmp K>
void compare_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = input(ctx, in, 0);
  const Tensor b = legacy_broadcast_operand(ctx, a, input(ctx, in, 1));
  if (a.dtype() != b.dtype())
    op_error(ctx, fmt::format("input types differ ({} and {})", dtype_name(a.dtype()), dtype_name(b.dtype())));
  out[0] = Tensor(DType::Bool, broadcast_shape(ctx, a.shape(), b.shape()));
  switch (a.dtype()) {
    case DType::Float32: compare_typed<K, float>(a, b, out[0]); break;
    case DType::Int64: compare_typed<K, int64_t>(a, b, out[0]); break;
    case DType::Bool: compare_typed<K, bool>(a, b, out[0]); break;
    default: op_error(ctx, fmt::format("unsupported input type {}", dtype_name(a.dtype())));
  }
}

const Tensor& bool_input(const OpContext& ctx, const Inputs& in, size_t k) {
  const Tensor& t = input(ctx, in, k);
  if (t.dtype() != DType::Bool) op_error(ctx, fmt::format("input {} is {}, expected bool", k, dtype_name(t.dtype())));
  return t;
}

enum class Logic { And, Or, Xor };

template <Logic K>
void logic_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = bool_input(ctx, in, 0);
  bool_input(ctx, in, 1);
  const Tensor b = legacy_broadcast_operand(ctx, a, *in[1]);
  out[0] = Tensor(DType::Bool, broadcast_shape(ctx, a.shape(), b.shape()));
  if constexpr (K == Logic::And) broadcast_apply<bool>(a, b, out[0], [](bool x, bool y) { return x && y; });
  if constexpr (K == Logic::Or) broadcast_apply<bool>(a, b, out[0], [](bool x, bool y) { return x || y; });
  if constexpr (K == Logic::Xor) broadcast_apply<bool>(a, b, out[0], [](bool x, bool y) { return x != y; });
}

void not_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = bool_input(ctx, in, 0);
  out[0] = Tensor(DType::Bool, x.shape());
  const bool* px = x.data<bool>();
  bool* py = out[0].data<bool>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = !px[i];
}

// ---------- Where ----------

// output = condition ? X : Y with the three operands broadcast together (numpy.where).
void where_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& c = bool_input(ctx, in, 0);
  const Tensor& x = input(ctx, in, 1);
  const Tensor& y = input(ctx, in, 2);
  if (x.dtype() != y.dtype())
    op_error(ctx, fmt::format("X and Y types differ ({} and {})", dtype_name(x.dtype()), dtype_name(y.dtype())));
  const Shape s = broadcast_shape(ctx, broadcast_shape(ctx, c.shape(), x.shape()), y.shape());
  out[0] = Tensor::uninitialized(x.dtype(), s);
  switch (x.dtype()) {
    case DType::Float32:
      broadcast_map3<bool, float, float, float>(c, x, y, out[0], [](bool k, float u, float v) { return k ? u : v; });
      break;
    case DType::Int64:
      broadcast_map3<bool, int64_t, int64_t, int64_t>(c, x, y, out[0],
                                                       [](bool k, int64_t u, int64_t v) { return k ? u : v; });
      break;
    case DType::Bool:
      broadcast_map3<bool, bool, bool, bool>(c, x, y, out[0], [](bool k, bool u, bool v) { return k ? u : v; });
      break;
    default: op_error(ctx, fmt::format("unsupported input type {}", dtype_name(x.dtype())));
  }
}

// d/dX = g where condition, d/dY = g where not (each summed back over its broadcast dims).
void where_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& gout, const std::vector<bool>& need,
               std::vector<Tensor>& gin) {
  if (!gout[0] || input(ctx, in, 1).dtype() != DType::Float32) return;
  const Tensor& g = *gout[0];
  const Tensor& c = bool_input(ctx, in, 0);
  for (size_t k = 1; k <= 2; ++k) {
    if (!need[k]) continue;
    const bool take = k == 1;
    Tensor gk = Tensor::uninitialized(DType::Float32, g.shape());
    broadcast_map2<bool, float, float>(c, g, gk, [take](bool cond, float gg) { return cond == take ? gg : 0.f; });
    gin[k] = reduce_to_shape(gk, in[k]->shape());
  }
}

}  // namespace

void register_activation_ops() {
  register_op("Gelu", {gelu_fwd, gelu_bwd});
  register_op("Reciprocal", {Reciprocal_fwd, Reciprocal_bwd});
  register_op("HardSwish", {HardSwish_fwd, HardSwish_bwd});
  register_op("Mish", {Mish_fwd, Mish_bwd});
  register_op("Selu", {Selu_fwd, Selu_bwd});
  register_op("Celu", {Celu_fwd, Celu_bwd});
  register_op("ThresholdedRelu", {ThresholdedRelu_fwd, ThresholdedRelu_bwd});
  register_op("Softsign", {Softsign_fwd, Softsign_bwd});
  register_op("Cos", {Cos_fwd, Cos_bwd});
  register_op("Sin", {Sin_fwd, Sin_bwd});
  register_op("Tan", {Tan_fwd, Tan_bwd});
  register_op("Atan", {Atan_fwd, Atan_bwd});
  register_op("Asin", {Asin_fwd, Asin_bwd});
  register_op("Acos", {Acos_fwd, Acos_bwd});
  register_op("Sinh", {Sinh_fwd, Sinh_bwd});
  register_op("Cosh", {Cosh_fwd, Cosh_bwd});
  register_op("Asinh", {Asinh_fwd, Asinh_bwd});
  register_op("Acosh", {Acosh_fwd, Acosh_bwd});
  register_op("Atanh", {Atanh_fwd, Atanh_bwd});
  register_op("Shrink", {shrink_fwd, shrink_bwd});
  // Piecewise constant or non-float outputs: no gradient flows.
  register_op("Floor", {floor_fwd, nullptr});
  register_op("Ceil", {ceil_fwd, nullptr});
  register_op("Round", {round_fwd, nullptr});
  register_op("IsNaN", {isnan_fwd, nullptr});
  register_op("IsInf", {isinf_fwd, nullptr});
  register_op("Hardmax", {hardmax_fwd, nullptr});
  register_op("Mod", {mod_fwd, mod_bwd});
  register_op("PRelu", {prelu_fwd, prelu_bwd});
  register_op("Equal", {compare_fwd<Cmp::Equal>, nullptr});
  register_op("Less", {compare_fwd<Cmp::Less>, nullptr});
  register_op("Greater", {compare_fwd<Cmp::Greater>, nullptr});
  register_op("LessOrEqual", {compare_fwd<Cmp::LessOrEqual>, nullptr});
  register_op("GreaterOrEqual", {compare_fwd<Cmp::GreaterOrEqual>, nullptr});
  register_op("And", {logic_fwd<Logic::And>, nullptr});
  register_op("Or", {logic_fwd<Logic::Or>, nullptr});
  register_op("Xor", {logic_fwd<Logic::Xor>, nullptr});
  register_op("Not", {not_fwd, nullptr});
  register_op("Where", {where_fwd, where_bwd});
}

}  // namespace mlaudit::engine::detail
