// ops_quant.cpp: (De)QuantizeLinear, DynamicQuantizeLinear, integer MatMul/Conv (MatMulInteger,
// ConvInteger, QLinearMatMul, QLinearConv), CastLike, ScatterElements (and deprecated Scatter).
//
// Quantized tensors are held as Int64 carrying the uint8/int8/int16... value (the loader widens
// them). The range an op saturates to is its output type's, which ONNX gives as the type of
// y_zero_point (uint8 when absent): the loader records that type on the node as the internal
// attribute "mlaudit.zero_point_type" (onnx_loader.cpp, annotate_quantized_types) before the
// int64 widening forgets it. Integer accumulation is exact in int64; requantization follows
// onnxruntime (MLAS): the float32 multiplier a_scale * b_scale / y_scale times the int32-exact
// accumulator, rounded half to even, plus the zero point, saturated.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

// ---------------------------------------------------------------- quantized ranges

struct QRange {
  int64_t lo, hi;
};

// Saturation range of an ONNX integer type (TensorProto.DataType number); float8/float4 and
// the other types the engine cannot represent are refused by name.
QRange quant_range(const OpContext& ctx, int64_t type) {
  switch (type) {
    case 2: return {0, 255};                // UINT8
    case 3: return {-128, 127};             // INT8
    case 4: return {0, 65535};              // UINT16
    case 5: return {-32768, 32767};         // INT16
    case 6: return {INT32_MIN, INT32_MAX};  // INT32
    case 21: return {0, 15};                // UINT4
    case 22: return {-8, 7};                // INT4
    default:
      op_error(ctx, fmt::format("quantized type {} is not supported (the engine quantizes to int4/uint4, int8/uint8, "
                                "int16/uint16 and int32; float8/float4 types are refused)",
                                type));
  }
}

// The node's output type as recorded by the loader (uint8 when the loader saw none, e.g. a
// node built in code without a zero point).
QRange node_range(const OpContext& ctx) { return quant_range(ctx, ctx.node.get_int("mlaudit.zero_point_type", 2)); }

int64_t saturate(double v, QRange r) {
  if (!(v >= double(r.lo))) return std::isnan(v) ? 0 : r.lo;
  if (v > double(r.hi)) return r.hi;
  return static_cast<int64_t>(v);
}

const Tensor* optional_input(const Inputs& in, size_t k) { return k < in.size() ? in[k] : nullptr; }

// Int64 input k (a quantized tensor), or op_error.
const Tensor& int_input(const OpContext& ctx, const Inputs& in, size_t k, const char* what) {
  const Tensor& t = input(ctx, in, k);
  if (t.dtype() != DType::Int64)
    op_error(ctx, fmt::format("input {} ('{}') must be an integer (quantized) tensor, got {}", k, what,
                              dtype_name(t.dtype())));
  return t;
}

// How scale / zero point index a tensor x viewed as [outer, A, inner] along `axis`:
// per-tensor (one value), per-axis (A values, 1-D) or blocked (shape of x with A -> ceil(A / block)).
struct QuantLayout {
  int64_t outer = 1, axis_len = 1, inner = 1;
  int64_t block = 0;  ///< 0: per-tensor or per-axis
  bool per_axis = false;
  int64_t blocks = 1;  ///< ceil(A / block) when blocked

  // Index into scale / zero point of element (o, a, i).
  int64_t at(int64_t o, int64_t a, int64_t i) const {
    if (block > 0) return (o * blocks + a / block) * inner + i;
    return per_axis ? a : 0;
  }
};

QuantLayout quant_layout(const OpContext& ctx, const Shape& x, const Tensor& scale, const Tensor* zero_point) {
  QuantLayout q;
  const int64_t block = ctx.node.since_version >= 21 ? ctx.node.get_int("block_size", 0) : 0;
  if (block < 0) op_error(ctx, fmt::format("block_size {} must not be negative", block));
  // A one-element scale and zero point are per-tensor whatever their ranks ([] vs [1]: onnxruntime's
  // QDQ quantizer writes such pairs for biases).
  if (zero_point && zero_point->shape() != scale.shape() && !(zero_point->numel() == 1 && scale.numel() == 1 && block == 0))
    op_error(ctx, fmt::format("zero point shape {} differs from the scale's {}", shape_str(zero_point->shape()),
                              shape_str(scale.shape())));
  const bool scalar = scale.rank() == 0 || (scale.rank() == 1 && scale.shape()[0] == 1 && block == 0);
  if (scalar && block == 0) {
    q.inner = shape_numel(x);  // one line of every element, one scale
    return q;
  }
  if (ctx.node.since_version < 13)
    op_error(ctx, fmt::format("scale must be a scalar before opset 13 (got shape {})", shape_str(scale.shape())));
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 1), static_cast<int64_t>(x.size()));
  for (int64_t d = 0; d < axis; ++d) q.outer *= x[d];
  q.axis_len = x[axis];
  for (size_t d = axis + 1; d < x.size(); ++d) q.inner *= x[d];
  if (block == 0) {
    if (scale.rank() != 1 || scale.shape()[0] != q.axis_len)
      op_error(ctx, fmt::format("per-axis scale must be 1-D of length {} (axis {} of {}), got {}", q.axis_len, axis,
                                shape_str(x), shape_str(scale.shape())));
    q.per_axis = true;
    return q;
  }
  q.block = block;
  q.blocks = (q.axis_len + block - 1) / block;
  Shape want = x;
  want[axis] = q.blocks;
  if (scale.shape() != want)
    op_error(ctx, fmt::format("blocked scale (block_size {}) must have shape {}, got {}", block, shape_str(want),
                              shape_str(scale.shape())));
  return q;
}

// ---------------------------------------------------------------- QuantizeLinear

void check_precision(const OpContext& ctx) {
  if (ctx.node.since_version >= 23) {
    int64_t precision = ctx.node.get_int("precision", 0);
    if (precision != 0 && precision != 1)
      op_error(ctx, fmt::format("precision {} is not supported (the engine divides by the scale in float32)", precision));
  }
}

// y = saturate(round_half_even(x / y_scale) + y_zero_point), in float32 as onnxruntime computes it.
void quantize_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  check_precision(ctx);
  const Tensor& x_in = input(ctx, in, 0);
  if (x_in.dtype() == DType::Bool) op_error(ctx, "input 'x' must be numeric");
  Tensor x = x_in.to(DType::Float32);
  const Tensor& scale = float_input(ctx, in, 1);
  const Tensor* zp = optional_input(in, 2);
  if (zp && zp->dtype() != DType::Int64) op_error(ctx, "y_zero_point must be an integer tensor");
  const QRange r = node_range(ctx);
  const QuantLayout q = quant_layout(ctx, x.shape(), scale, zp);
  Tensor y(DType::Int64, x.shape());
  const float* px = x.f32();
  const float* ps = scale.f32();
  const int64_t* pz = zp ? zp->i64() : nullptr;
  int64_t* py = y.i64();
  for (int64_t o = 0; o < q.outer; ++o)
    for (int64_t a = 0; a < q.axis_len; ++a)
      for (int64_t i = 0; i < q.inner; ++i) {
        int64_t e = (o * q.axis_len + a) * q.inner + i, s = q.at(o, a, i);
        float v = std::nearbyint(px[e] / ps[s]);
        py[e] = saturate(double(v) + double(pz ? pz[s] : 0), r);
      }
  out[0] = y;
}

// ---------------------------------------------------------------- DequantizeLinear

// y = (x - x_zero_point) * x_scale, in float32. DequantizeLinear-23+'s output_dtype float16 /
// bfloat16 is accepted and still computed (and held) in float32, as every float in the engine.
void dequantize_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = int_input(ctx, in, 0, "x");
  const Tensor& scale = float_input(ctx, in, 1);
  const Tensor* zp = optional_input(in, 2);
  if (zp && zp->dtype() != DType::Int64) op_error(ctx, "x_zero_point must be an integer tensor");
  int64_t output_dtype = ctx.node.since_version >= 23 ? ctx.node.get_int("output_dtype", 0) : 0;
  if (output_dtype != 0 && output_dtype != 1 && output_dtype != 10 && output_dtype != 16)
    op_error(ctx, fmt::format("output_dtype {} is not supported (float, float16, bfloat16: computed in float32)",
                              output_dtype));
  const QuantLayout q = quant_layout(ctx, x.shape(), scale, zp);
  Tensor y(DType::Float32, x.shape());
  const int64_t* px = x.i64();
  const float* ps = scale.f32();
  const int64_t* pz = zp ? zp->i64() : nullptr;
  float* py = y.f32();
  for (int64_t o = 0; o < q.outer; ++o)
    for (int64_t a = 0; a < q.axis_len; ++a)
      for (int64_t i = 0; i < q.inner; ++i) {
        int64_t e = (o * q.axis_len + a) * q.inner + i, s = q.at(o, a, i);
        py[e] = static_cast<float>(px[e] - (pz ? pz[s] : 0)) * ps[s];
      }
  out[0] = y;
}

// ---------------------------------------------------------------- DynamicQuantizeLinear

// uint8 quantization with the range [min(0, min x), max(0, max x)] (onnxruntime's formula:
// scale = (max - min) / 255, 1 when the range is empty; zero point = saturate(round(-min / scale))).
void dynamic_quantize_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  const float* px = x.f32();
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (std::isnan(px[i])) op_error(ctx, "input 'x' contains NaN: no quantization range");
    lo = std::min(lo, px[i]);
    hi = std::max(hi, px[i]);
  }
  const QRange r{0, 255};
  float scale = hi == lo ? 1.f : (hi - lo) / 255.f;
  float zp_f = std::max(0.f, std::min(255.f, 0.f - lo / scale));
  int64_t zp = static_cast<int64_t>(std::nearbyint(zp_f));
  Tensor y(DType::Int64, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) y.i64()[i] = saturate(double(std::nearbyint(px[i] / scale)) + double(zp), r);
  out[0] = y;
  if (out.size() > 1) out[1] = Tensor::scalar(scale);
  if (out.size() > 2) out[2] = Tensor::from_ints({}, {zp});
}

// ---------------------------------------------------------------- integer MatMul

// Zero point of a matmul operand: one value, or one per row of A (numel m) / column of B (numel n).
struct ZeroPoints {
  const int64_t* v = nullptr;
  bool per_line = false;
  int64_t at(int64_t line) const { return v ? v[per_line ? line : 0] : 0; }
};

ZeroPoints matmul_zero_points(const OpContext& ctx, const Tensor* zp, int64_t lines, const char* name) {
  ZeroPoints z;
  if (!zp) return z;
  if (zp->dtype() != DType::Int64) op_error(ctx, fmt::format("{} must be an integer tensor", name));
  if (zp->rank() > 2 || (zp->numel() != 1 && zp->numel() != lines))
    op_error(ctx, fmt::format("{} must be a scalar or hold {} values (one per row/column), got shape {}", name, lines,
                              shape_str(zp->shape())));
  z.v = zp->i64();
  z.per_line = zp->numel() != 1;
  return z;
}

// Scales of a matmul operand: one value, or one per row (A) / column (B).
struct Scales {
  const float* v = nullptr;
  bool per_line = false;
  float at(int64_t line) const { return v[per_line ? line : 0]; }
};

Scales matmul_scales(const OpContext& ctx, const Tensor& s, int64_t lines, const char* name) {
  if (s.dtype() != DType::Float32) op_error(ctx, fmt::format("{} must be a float tensor", name));
  if (s.rank() > 2 || (s.numel() != 1 && s.numel() != lines))
    op_error(ctx, fmt::format("{} must be a scalar or hold {} values, got shape {}", name, lines, shape_str(s.shape())));
  return Scales{s.f32(), s.numel() != 1};
}

// acc[b, i, j] = sum_k (A[b, i, k] - a_zp[i]) (B[b, k, j] - b_zp[j]), exact in int64.
Tensor integer_matmul(const OpContext& ctx, const Tensor& a, const Tensor& b, const Tensor* a_zp_t, const Tensor* b_zp_t,
                      MatMulPlan& plan) {
  plan = matmul_plan(ctx, a.shape(), b.shape());
  ZeroPoints a_zp = matmul_zero_points(ctx, a_zp_t, plan.m, "a_zero_point");
  ZeroPoints b_zp = matmul_zero_points(ctx, b_zp_t, plan.n, "b_zero_point");
  Tensor acc(DType::Int64, plan.out_shape);
  const int64_t m = plan.m, k = plan.k, n = plan.n;
  const int64_t batches = shape_numel(plan.batch);
  const int64_t* pa = a.i64();
  const int64_t* pb = b.i64();
  int64_t* pc = acc.i64();
#pragma omp parallel for if (batches * m * n * k > 65536)
  for (int64_t bi = 0; bi < batches; ++bi) {
    const int64_t* am = pa + batch_offset(bi, plan.batch, plan.a_batch) * m * k;
    const int64_t* bm = pb + batch_offset(bi, plan.batch, plan.b_batch) * k * n;
    int64_t* cm = pc + bi * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t s = 0;
        for (int64_t t = 0; t < k; ++t) s += (am[i * k + t] - a_zp.at(i)) * (bm[t * n + j] - b_zp.at(j));
        cm[i * n + j] = s;
      }
  }
  return acc;
}

void matmul_integer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = int_input(ctx, in, 0, "A");
  const Tensor& b = int_input(ctx, in, 1, "B");
  MatMulPlan plan;
  out[0] = integer_matmul(ctx, a, b, optional_input(in, 2), optional_input(in, 3), plan);
}

// y = saturate(round_half_even(acc * (a_scale * b_scale / y_scale)) + y_zp), the multiplier in
// float32 as onnxruntime computes it.
void qlinear_matmul_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = int_input(ctx, in, 0, "a");
  const Tensor& b = int_input(ctx, in, 3, "b");
  MatMulPlan plan;
  Tensor acc = integer_matmul(ctx, a, b, &input(ctx, in, 2), &input(ctx, in, 5), plan);
  Scales a_scale = matmul_scales(ctx, input(ctx, in, 1), plan.m, "a_scale");
  Scales b_scale = matmul_scales(ctx, input(ctx, in, 4), plan.n, "b_scale");
  const Tensor& y_scale = float_input(ctx, in, 6);
  const Tensor& y_zp = int_input(ctx, in, 7, "y_zero_point");
  if (y_scale.numel() != 1 || y_zp.numel() != 1) op_error(ctx, "y_scale and y_zero_point must be scalars");
  const QRange r = node_range(ctx);
  const int64_t m = plan.m, n = plan.n;
  int64_t* pc = acc.i64();
  for (int64_t e = 0; e < acc.numel(); ++e) {
    int64_t j = e % n, i = (e / n) % m;
    float multiplier = a_scale.at(i) * b_scale.at(j) / y_scale.f32()[0];
    float v = std::nearbyint(static_cast<float>(pc[e]) * multiplier);
    pc[e] = saturate(double(v) + double(y_zp.i64()[0]), r);
  }
  out[0] = acc;
}

// ---------------------------------------------------------------- integer Conv

// acc[n, oc, y, x] = sum (X - x_zp) (W - w_zp[oc]) over the window (padding holds x_zp, so it adds 0).
Tensor integer_conv(const OpContext& ctx, const Tensor& x, const Tensor& w, const Tensor* x_zp_t, const Tensor* w_zp_t,
                    Window2d& g) {
  g = conv_window_1d_or_2d(ctx, x.shape(), w.shape());
  if (x_zp_t && x_zp_t->dtype() != DType::Int64) op_error(ctx, "x_zero_point must be an integer tensor");
  if (x_zp_t && x_zp_t->numel() != 1) op_error(ctx, fmt::format("x_zero_point must be a scalar, got shape {}", shape_str(x_zp_t->shape())));
  ZeroPoints w_zp = matmul_zero_points(ctx, w_zp_t, g.oc, "w_zero_point");
  const int64_t x_zp = x_zp_t ? x_zp_t->i64()[0] : 0;
  Tensor acc(DType::Int64, window_output_shape(g));
  const int64_t cg = g.c / g.group, ocg = g.oc / g.group;
  const int64_t* px = x.i64();
  const int64_t* pw = w.i64();
  int64_t* pc = acc.i64();
#pragma omp parallel for collapse(2) if (g.n * g.oc * g.oh * g.ow * cg * g.kh * g.kw > 65536)
  for (int64_t b = 0; b < g.n; ++b)
    for (int64_t oc = 0; oc < g.oc; ++oc) {
      const int64_t grp = oc / ocg;
      for (int64_t oy = 0; oy < g.oh; ++oy)
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          int64_t s = 0;
          for (int64_t ic = 0; ic < cg; ++ic) {
            const int64_t* xc = px + ((b * g.c) + grp * cg + ic) * g.h * g.w;
            const int64_t* wc = pw + ((oc * cg) + ic) * g.kh * g.kw;
            for (int64_t ky = 0; ky < g.kh; ++ky) {
              int64_t iy = oy * g.sh - g.pt + ky * g.dh;
              if (iy < 0 || iy >= g.h) continue;
              for (int64_t kx = 0; kx < g.kw; ++kx) {
                int64_t ix = ox * g.sw - g.pl + kx * g.dw;
                if (ix < 0 || ix >= g.w) continue;
                s += (xc[iy * g.w + ix] - x_zp) * (wc[ky * g.kw + kx] - w_zp.at(oc));
              }
            }
          }
          pc[((b * g.oc + oc) * g.oh + oy) * g.ow + ox] = s;
        }
    }
  return acc;
}

void conv_integer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = int_input(ctx, in, 0, "x");
  const Tensor& w = int_input(ctx, in, 1, "w");
  Window2d g;
  out[0] = integer_conv(ctx, x, w, optional_input(in, 2), optional_input(in, 3), g);
}

// y = saturate(round_half_even((acc + B[oc]) * (x_scale * w_scale[oc] / y_scale)) + y_zp).
void qlinear_conv_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = int_input(ctx, in, 0, "x");
  const Tensor& w = int_input(ctx, in, 3, "w");
  Window2d g;
  Tensor acc = integer_conv(ctx, x, w, &input(ctx, in, 2), &input(ctx, in, 5), g);
  Scales x_scale = matmul_scales(ctx, input(ctx, in, 1), 1, "x_scale");
  Scales w_scale = matmul_scales(ctx, input(ctx, in, 4), g.oc, "w_scale");
  const Tensor& y_scale = float_input(ctx, in, 6);
  const Tensor& y_zp = int_input(ctx, in, 7, "y_zero_point");
  if (y_scale.numel() != 1 || y_zp.numel() != 1) op_error(ctx, "y_scale and y_zero_point must be scalars");
  const Tensor* bias = optional_input(in, 8);
  if (bias && (bias->dtype() != DType::Int64 || bias->numel() != g.oc))
    op_error(ctx, fmt::format("bias B must be an integer tensor of {} values, got shape {}", g.oc,
                              shape_str(bias->shape())));
  const QRange r = node_range(ctx);
  const int64_t plane = g.oh * g.ow;
  int64_t* pc = acc.i64();
  for (int64_t e = 0; e < acc.numel(); ++e) {
    int64_t oc = (e / plane) % g.oc;
    float multiplier = x_scale.at(0) * w_scale.at(oc) / y_scale.f32()[0];
    float v = std::nearbyint(static_cast<float>(pc[e] + (bias ? bias->i64()[oc] : 0)) * multiplier);
    pc[e] = saturate(double(v) + double(y_zp.i64()[0]), r);
  }
  out[0] = acc;
}

// ---------------------------------------------------------------- CastLike

// CastLike is Cast with `to` taken from the second input's type: the loader records the file's
// type (mlaudit.target_type); a node built in code falls back to the engine dtype of the input
// (float32, int64 or bool), so there a float16-typed target is seen as float32.
void cast_like_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  input(ctx, in, 0);
  const Tensor& like = input(ctx, in, 1);
  int64_t to = ctx.node.get_int("mlaudit.target_type", 0);
  if (to == 0) to = like.dtype() == DType::Float32 ? 1 : like.dtype() == DType::Bool ? 9 : 7;
  Node cast = ctx.node;
  cast.op_type = "Cast";
  cast.inputs.resize(1);
  cast.attributes["to"] = Attribute{};
  cast.attributes["to"].kind = Attribute::Kind::Int;
  cast.attributes["to"].i = to;
  const OpDef* def = find_op("Cast");
  if (!def) op_error(ctx, "Cast is not registered");
  def->forward(OpContext{cast, ctx.opset}, Inputs{in[0]}, out);
}

void cast_like_bwd(const OpContext&, const Inputs& in, const Inputs& out, const Inputs& g, const std::vector<bool>& need,
                   std::vector<Tensor>& gin) {
  if (need[0] && g[0] && in[0]->dtype() == DType::Float32 && out[0]->dtype() == DType::Float32) gin[0] = *g[0];
}

// ---------------------------------------------------------------- ScatterElements

enum class ScatterReduction { None, Add, Mul, Max, Min };

ScatterReduction scatter_reduction(const OpContext& ctx) {
  if (ctx.node.op_type == "Scatter" || ctx.node.since_version < 16) return ScatterReduction::None;
  std::string r = ctx.node.get_string("reduction", "none");
  if (r == "none") return ScatterReduction::None;
  if (r == "add") return ScatterReduction::Add;
  if (r == "mul") return ScatterReduction::Mul;
  if (ctx.node.since_version >= 18) {
    if (r == "max") return ScatterReduction::Max;
    if (r == "min") return ScatterReduction::Min;
  }
  op_error(ctx, fmt::format("unknown reduction '{}' (opset {}: {})", r, ctx.node.since_version,
                            ctx.node.since_version >= 18 ? "none, add, mul, max, min" : "none, add, mul"));
}

// Target offsets into data of every updates element: position p of indices with its axis
// coordinate replaced by indices[p] (negative counts from the end), each checked.
std::vector<int64_t> scatter_targets(const OpContext& ctx, const Tensor& data, const Tensor& indices,
                                     const Tensor& updates) {
  if (indices.dtype() != DType::Int64) op_error(ctx, "indices must be an integer tensor");
  if (indices.shape() != updates.shape())
    op_error(ctx, fmt::format("indices shape {} differs from updates shape {}", shape_str(indices.shape()),
                              shape_str(updates.shape())));
  if (indices.rank() != data.rank())
    op_error(ctx, fmt::format("indices rank {} differs from data rank {}", indices.rank(), data.rank()));
  if (data.dtype() != updates.dtype())
    op_error(ctx, fmt::format("updates type {} differs from data type {}", dtype_name(updates.dtype()),
                              dtype_name(data.dtype())));
  const int64_t rank = static_cast<int64_t>(data.rank());
  if (rank == 0) op_error(ctx, "data must have rank >= 1");
  const int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 0), rank);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  for (int64_t d = 0; d < rank; ++d)
    if (d != axis && is[d] > ds[d])
      op_error(ctx, fmt::format("indices dim {} is {}, larger than data's {} (shape {} vs {})", d, is[d], ds[d],
                                shape_str(is), shape_str(ds)));
  std::vector<int64_t> data_strides(rank, 1);
  for (int64_t d = rank - 2; d >= 0; --d) data_strides[d] = data_strides[d + 1] * ds[d + 1];
  std::vector<int64_t> targets(indices.numel());
  std::vector<int64_t> pos(rank, 0);
  const int64_t* pi = indices.i64();
  const int64_t n_axis = ds[axis];
  for (int64_t p = 0; p < indices.numel(); ++p) {
    int64_t idx = pi[p];
    if (idx < -n_axis || idx >= n_axis)
      op_error(ctx, fmt::format("indices value {} out of range [-{}, {}) on axis {}", idx, n_axis, n_axis, axis));
    if (idx < 0) idx += n_axis;
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (d == axis ? idx : pos[d]) * data_strides[d];
    targets[p] = off;
    for (int64_t d = rank - 1; d >= 0; --d) {  // next position of indices
      if (++pos[d] < is[d]) break;
      pos[d] = 0;
    }
  }
  return targets;
}

template <class T>
void scatter_apply(T* y, const T* u, const std::vector<int64_t>& targets, ScatterReduction red) {
  for (size_t p = 0; p < targets.size(); ++p) {
    T& dst = y[targets[p]];
    switch (red) {
      case ScatterReduction::None: dst = u[p]; break;
      case ScatterReduction::Add:
        if constexpr (std::is_same_v<T, bool>) dst = dst || u[p];
        else dst = dst + u[p];
        break;
      case ScatterReduction::Mul:
        if constexpr (std::is_same_v<T, bool>) dst = dst && u[p];
        else dst = dst * u[p];
        break;
      case ScatterReduction::Max: dst = std::max(dst, u[p]); break;
      case ScatterReduction::Min: dst = std::min(dst, u[p]); break;
    }
  }
}

void scatter_elements_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& data = input(ctx, in, 0);
  const Tensor& indices = input(ctx, in, 1);
  const Tensor& updates = input(ctx, in, 2);
  const ScatterReduction red = scatter_reduction(ctx);
  std::vector<int64_t> targets = scatter_targets(ctx, data, indices, updates);
  Tensor y = data.clone();
  switch (data.dtype()) {
    case DType::Float32: scatter_apply(y.f32(), updates.f32(), targets, red); break;
    case DType::Int64: scatter_apply(y.i64(), updates.i64(), targets, red); break;
    case DType::Bool: scatter_apply(y.data<bool>(), updates.data<bool>(), targets, red); break;
    default: op_error(ctx, fmt::format("data type {} is not supported", dtype_name(data.dtype())));
  }
  out[0] = y;
}

// reduction none: d data = g with the written positions zeroed, d updates = g gathered at the
// targets; add: d data = g, d updates = g gathered. (With duplicate indices and reduction none
// the forward keeps the last write; every duplicate here receives the gathered gradient.)
void scatter_elements_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g,
                          const std::vector<bool>& need, std::vector<Tensor>& gin) {
  const Tensor& data = *in[0];
  if (data.dtype() != DType::Float32 || !g[0]) return;
  const ScatterReduction red = scatter_reduction(ctx);
  if (red != ScatterReduction::None && red != ScatterReduction::Add)
    op_error(ctx, fmt::format("no gradient for reduction '{}' (only none and add)", ctx.node.get_string("reduction", "")));
  std::vector<int64_t> targets = scatter_targets(ctx, data, *in[1], *in[2]);
  const float* pg = g[0]->f32();
  if (need[0]) {
    gin[0] = g[0]->clone();
    if (red == ScatterReduction::None)
      for (int64_t t : targets) gin[0].f32()[t] = 0.f;
  }
  if (need.size() > 2 && need[2]) {
    gin[2] = Tensor(DType::Float32, in[2]->shape());
    for (size_t p = 0; p < targets.size(); ++p) gin[2].f32()[p] = pg[targets[p]];
  }
}

}  // namespace

void register_quant_ops() {
  // Quantizing activations is a step function: no gradient, and (straight-through estimators
  // being a research choice, not ours) gradient commands refuse a path through it by name.
  register_op("QuantizeLinear", {quantize_fwd, nullptr, /*differentiable=*/false});
  register_op("DynamicQuantizeLinear", {dynamic_quantize_fwd, nullptr, /*differentiable=*/false});
  // Integer inputs: no gradient flows.
  register_op("DequantizeLinear", {dequantize_fwd, nullptr});
  register_op("MatMulInteger", {matmul_integer_fwd, nullptr});
  register_op("QLinearMatMul", {qlinear_matmul_fwd, nullptr});
  register_op("ConvInteger", {conv_integer_fwd, nullptr});
  register_op("QLinearConv", {qlinear_conv_fwd, nullptr});
  register_op("CastLike", {cast_like_fwd, cast_like_bwd});
  register_op("ScatterElements", {scatter_elements_fwd, scatter_elements_bwd});
  register_op("Scatter", {scatter_elements_fwd, scatter_elements_bwd});
}

}  // namespace mlaudit::engine::detail
