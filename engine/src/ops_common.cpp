#include <dnnl.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {
// (domain, op type) -> definition; std::map keeps the listing sorted.
std::map<std::pair<std::string, std::string>, OpDef>& table() {
  static std::map<std::pair<std::string, std::string>, OpDef> t;
  return t;
}
void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_elementwise_ops();
    register_nn_ops();
    register_shape_ops();
    register_activation_ops();
    register_index_ops();
    register_norm_ops();
    register_reduce_ops();
    register_ml_ops();
    register_rnn_ops();
    register_quant_ops();
  });
}
}  // namespace

std::string canonical_domain(const std::string& domain) { return domain == "ai.onnx" ? std::string() : domain; }

void register_op(const std::string& op_type, OpDef def) { register_op("", op_type, std::move(def)); }

void register_op(const std::string& domain, const std::string& op_type, OpDef def) {
  table()[{canonical_domain(domain), op_type}] = std::move(def);
}

const OpDef* find_op(const std::string& op_type) { return find_op("", op_type); }

const OpDef* find_op(const std::string& domain, const std::string& op_type) {
  ensure_registered();
  auto it = table().find({canonical_domain(domain), op_type});
  return it == table().end() ? nullptr : &it->second;
}

const OpDef* find_op(const Node& node) { return find_op(node.domain, node.op_type); }

std::vector<std::pair<std::pair<std::string, std::string>, const OpDef*>> registered_ops() {
  ensure_registered();
  std::vector<std::pair<std::pair<std::string, std::string>, const OpDef*>> out;
  for (const auto& [key, def] : table()) out.emplace_back(key, &def);
  return out;
}

void op_error(const OpContext& ctx, const std::string& message) {
  throw InputError("engine", fmt::format("{} at node '{}': {}", ctx.node.op_type, ctx.node.name, message));
}

const Tensor& input(const OpContext& ctx, const Inputs& in, size_t k) {
  if (k >= in.size() || in[k] == nullptr || in[k]->empty()) op_error(ctx, fmt::format("missing input {}", k));
  return *in[k];
}

const Tensor& float_input(const OpContext& ctx, const Inputs& in, size_t k) {
  const Tensor& t = input(ctx, in, k);
  if (t.dtype() != DType::Float32)
    op_error(ctx, fmt::format("input {} is {}, expected float32", k, dtype_name(t.dtype())));
  return t;
}

int64_t norm_axis(const OpContext& ctx, int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) op_error(ctx, fmt::format("axis {} out of range for rank {}", axis, rank));
  return a;
}

// Resolve pads for auto_pad (SAME_UPPER/SAME_LOWER/VALID) or explicit pads.
void resolve_pads(const OpContext& ctx, int64_t in, int64_t k, int64_t s, int64_t d, int64_t& pad_begin,
                  int64_t& pad_end, int64_t explicit_begin, int64_t explicit_end) {
  std::string ap = ctx.node.get_string("auto_pad", "NOTSET");
  if (ap == "NOTSET") {
    pad_begin = explicit_begin;
    pad_end = explicit_end;
  } else if (ap == "VALID") {
    pad_begin = pad_end = 0;
  } else if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
    int64_t out = (in + s - 1) / s;
    int64_t total = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
    pad_begin = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
    pad_end = total - pad_begin;
  } else {
    op_error(ctx, fmt::format("unknown auto_pad '{}'", ap));
  }
}

Shape broadcast_shape(const OpContext& ctx, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      op_error(ctx, fmt::format("shapes {} and {} cannot be broadcast", shape_str(a), shape_str(b)));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void for_float_blocks(int64_t n, const std::function<void(int64_t, int64_t)>& f) {
  constexpr int64_t kBlock = 16384;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for if (n > 262144) schedule(static)
  for (int64_t b = 0; b < blocks; ++b) f(b * kBlock, std::min(kBlock, n - b * kBlock));
}

void unary_grad_array(const Inputs& in, const Inputs& g, const std::vector<bool>& need, std::vector<Tensor>& gin,
                      void (*kernel)(const float* x, const float* g, float* dx, int64_t count)) {
  if (!need[0] || !g[0] || in[0]->dtype() != DType::Float32) return;
  const Tensor& x = *in[0];
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  for_float_blocks(x.numel(), [&](int64_t b, int64_t m) { kernel(px + b, pg + b, pd + b, m); });
}

Tensor reduce_to_shape(const Tensor& grad, const Shape& to) {
  if (grad.shape() == to) return grad;
  Tensor out(DType::Float32, to);
  const Shape& from = grad.shape();
  size_t r = from.size();
  // Trailing axes reduced (ReduceMean over H, W; the global pools' shape): each output sums one
  // contiguous run of `inner` floats from 0.f in index order, as the general walk below does, but
  // eight runs at a time (independent sums, so the adds overlap) and over threads.
  size_t split = r;
  while (split > 0 && to.size() == r && to[split - 1] == 1) --split;
  bool trailing = to.size() == r && split < r;
  for (size_t i = 0; trailing && i < split; ++i) trailing = to[i] == from[i];
  if (trailing) {
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < r; ++i) (i < split ? outer : inner) *= from[i];
    const float* g = grad.f32();
    float* o = out.f32();
    const int64_t groups = (outer + 7) / 8;
#pragma omp parallel for if (outer * inner > 65536) schedule(static)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t r0 = gi * 8, rows = std::min<int64_t>(8, outer - r0);
      if (rows == 8) {
        float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        const float* base = g + r0 * inner;
        for (int64_t k = 0; k < inner; ++k)
#pragma GCC unroll 8
          for (int j = 0; j < 8; ++j) acc[j] += base[j * inner + k];
        for (int j = 0; j < 8; ++j) o[r0 + j] = acc[j];
      } else {
        for (int64_t j = 0; j < rows; ++j) {
          float acc = 0.f;
          const float* row = g + (r0 + j) * inner;
          for (int64_t k = 0; k < inner; ++k) acc += row[k];
          o[r0 + j] = acc;
        }
      }
    }
    return out;
  }
  // One contiguous block of axes reduced between kept ones ([A, R, B] -> [A, 1, B], B > 1: a
  // ReduceMean over a sequence axis, a bias gradient over N of [N, C, ...]): each output sums its
  // R terms from 0.f in index order, as the general walk below does, B outputs side by side.
  if (to.size() == r) {
    size_t lo = r, hi = 0;
    bool ok = true;
    for (size_t i = 0; i < r; ++i) {
      if (to[i] == from[i]) continue;
      if (to[i] != 1) ok = false;
      lo = std::min(lo, i);
      hi = std::max(hi, i + 1);
    }
    for (size_t i = lo; ok && i < hi; ++i) ok = to[i] == 1;
    if (ok && lo < hi) {
      int64_t A = 1, R = 1, B = 1;
      for (size_t i = 0; i < r; ++i) (i < lo ? A : i < hi ? R : B) *= from[i];
      const float* g = grad.f32();
      float* o = out.f32();  // zeros
#pragma omp parallel for if (A * R * B > 262144 && A > 1) schedule(static)
      for (int64_t a = 0; a < A; ++a)
        for (int64_t k = 0; k < R; ++k) {
          const float* row = g + (a * R + k) * B;
          float* orow = o + a * B;
#pragma omp simd
          for (int64_t j = 0; j < B; ++j) orow[j] += row[j];
        }
      return out;
    }
  }
  // Strides of `to` aligned to `from` (0 where broadcast).
  std::vector<int64_t> stride(r, 0);
  int64_t s = 1;
  for (size_t i = 0; i < r; ++i) {
    size_t k = r - 1 - i;
    if (i < to.size()) {
      int64_t d = to[to.size() - 1 - i];
      stride[k] = d == 1 ? 0 : s;
      s *= d;
    }
  }
  const float* g = grad.f32();
  float* o = out.f32();
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t n = 0; n < grad.numel(); ++n) {
    o[off] += g[n];
    for (size_t k = r; k-- > 0;) {
      if (++idx[k] < from[k]) {
        off += stride[k];
        break;
      }
      off -= stride[k] * (from[k] - 1);
      idx[k] = 0;
    }
  }
  return out;
}

namespace {

// Strides, dilations and pads of a window node (kernel already set in g). For a 1-D node
// (g.spatial_rank 1) the attributes describe W only and H is a unit axis: kh = sh = dh = 1.
void window_attributes(const OpContext& ctx, Window2d& g) {
  const size_t r = static_cast<size_t>(g.spatial_rank);
  auto st = ctx.node.get_ints("strides", std::vector<int64_t>(r, 1));
  auto dl = ctx.node.get_ints("dilations", std::vector<int64_t>(r, 1));
  auto pads = ctx.node.get_ints("pads", std::vector<int64_t>(2 * r, 0));
  if (st.size() != r || dl.size() != r || pads.size() != 2 * r)
    op_error(ctx, fmt::format("strides/dilations/pads must describe {} spatial dim{}", r, r == 1 ? "" : "s"));
  if (r == 1) {
    st.insert(st.begin(), 1);
    dl.insert(dl.begin(), 1);
    pads = {0, pads[0], 0, pads[1]};
  }
  g.sh = st[0];
  g.sw = st[1];
  g.dh = dl[0];
  g.dw = dl[1];
  if (g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0)
    op_error(ctx, "kernel, strides and dilations must be positive");
  for (auto v : pads)
    if (v < 0) op_error(ctx, "negative pads");
  // Bounded so that the window arithmetic below cannot overflow on a crafted model.
  constexpr int64_t kMaxWindowAttr = int64_t(1) << 31;
  for (const auto* list : {&st, &dl, &pads})
    for (auto v : *list)
      if (v > kMaxWindowAttr) op_error(ctx, fmt::format("strides/dilations/pads value {} is too large", v));
  resolve_pads(ctx, g.h, g.kh, g.sh, g.dh, g.pt, g.pb, pads[0], pads[2]);
  resolve_pads(ctx, g.w, g.kw, g.sw, g.dw, g.pl, g.pr, pads[1], pads[3]);
}

// Conv geometry for NCHW (rank 4) or NCW (rank 3, run with H = 1) input.
Window2d conv_window_impl(const OpContext& ctx, const Shape& x, const Shape& w, bool allow_1d) {
  const bool one_d = allow_1d && x.size() == 3 && w.size() == 3;
  if (!one_d && (x.size() != 4 || w.size() != 4))
    op_error(ctx, fmt::format("only {}2-D convolution is supported (input {}, weights {})", allow_1d ? "1-D and " : "",
                              shape_str(x), shape_str(w)));
  Window2d g{};
  g.spatial_rank = one_d ? 1 : 2;
  g.n = x[0];
  g.c = x[1];
  g.h = one_d ? 1 : x[2];
  g.w = x.back();
  g.oc = w[0];
  g.kh = one_d ? 1 : w[2];
  g.kw = w.back();
  g.group = ctx.node.get_int("group", 1);
  if (g.group <= 0 || g.c % g.group || g.oc % g.group || w[1] != g.c / g.group)
    op_error(ctx, fmt::format("input {} and weights {} do not match group={}", shape_str(x), shape_str(w), g.group));
  std::vector<int64_t> kernel = one_d ? std::vector<int64_t>{g.kw} : std::vector<int64_t>{g.kh, g.kw};
  if (ctx.node.get_ints("kernel_shape", kernel) != kernel) op_error(ctx, "kernel_shape does not match the weights");
  window_attributes(ctx, g);
  g.oh = (g.h + g.pt + g.pb - (g.kh - 1) * g.dh - 1) / g.sh + 1;
  g.ow = (g.w + g.pl + g.pr - (g.kw - 1) * g.dw - 1) / g.sw + 1;
  if (g.h + g.pt + g.pb - (g.kh - 1) * g.dh - 1 < 0 || g.w + g.pl + g.pr - (g.kw - 1) * g.dw - 1 < 0)
    op_error(ctx, fmt::format("kernel larger than the padded input {}", shape_str(x)));
  return g;
}

// Pooling geometry for NCHW (rank 4) or NCW (rank 3, run with H = 1) input.
Window2d pool_window_impl(const OpContext& ctx, const Shape& x, bool allow_1d) {
  const bool one_d = allow_1d && x.size() == 3;
  if (!one_d && x.size() != 4)
    op_error(ctx, fmt::format("only {}2-D pooling is supported (input {})", allow_1d ? "1-D and " : "", shape_str(x)));
  Window2d g{};
  g.spatial_rank = one_d ? 1 : 2;
  g.n = x[0];
  g.c = x[1];
  g.h = one_d ? 1 : x[2];
  g.w = x.back();
  g.oc = g.c;
  g.group = 1;
  auto ks = ctx.node.get_ints("kernel_shape");
  if (ks.size() != static_cast<size_t>(g.spatial_rank))
    op_error(ctx, fmt::format("kernel_shape must have {} entr{}", g.spatial_rank, one_d ? "y" : "ies"));
  g.kh = one_d ? 1 : ks[0];
  g.kw = ks.back();
  window_attributes(ctx, g);
  const bool ceil_mode = ctx.node.get_int("ceil_mode", 0) != 0;
  auto out_dim = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t b, int64_t e) {
    int64_t span = in + b + e - (k - 1) * d - 1;
    if (span < 0) op_error(ctx, fmt::format("kernel larger than the padded input {}", shape_str(x)));
    int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    if (ceil_mode && (o - 1) * s >= in + b) --o;  // the last window must start inside the input or left padding
    return o;
  };
  g.oh = out_dim(g.h, g.kh, g.sh, g.dh, g.pt, g.pb);
  g.ow = out_dim(g.w, g.kw, g.sw, g.dw, g.pl, g.pr);
  if (g.oh <= 0 || g.ow <= 0) op_error(ctx, fmt::format("kernel larger than the padded input {}", shape_str(x)));
  g.count_include_pad = ctx.node.get_int("count_include_pad", 0) != 0;
  return g;
}

}  // namespace

Window2d conv_window(const OpContext& ctx, const Shape& x, const Shape& w) { return conv_window_impl(ctx, x, w, false); }

Window2d conv_window_1d_or_2d(const OpContext& ctx, const Shape& x, const Shape& w) {
  return conv_window_impl(ctx, x, w, true);
}

Window2d pool_window(const OpContext& ctx, const Shape& x) { return pool_window_impl(ctx, x, false); }

Window2d pool_window_1d_or_2d(const OpContext& ctx, const Shape& x) { return pool_window_impl(ctx, x, true); }

Shape window_output_shape(const Window2d& g) {
  return g.spatial_rank == 1 ? Shape{g.n, g.oc, g.ow} : Shape{g.n, g.oc, g.oh, g.ow};
}

MatMulPlan matmul_plan(const OpContext& ctx, const Shape& as, const Shape& bs) {
  if (as.empty() || bs.empty()) op_error(ctx, "scalar operands are not allowed");
  MatMulPlan p;
  p.a_vec = as.size() == 1;
  p.b_vec = bs.size() == 1;
  Shape a = p.a_vec ? Shape{1, as[0]} : as;
  Shape b = p.b_vec ? Shape{bs[0], 1} : bs;
  p.m = a[a.size() - 2];
  p.k = a.back();
  p.n = b.back();
  if (b[b.size() - 2] != p.k)
    op_error(ctx, fmt::format("inner dimensions differ: {} and {}", shape_str(as), shape_str(bs)));
  p.a_batch = Shape(a.begin(), a.end() - 2);
  p.b_batch = Shape(b.begin(), b.end() - 2);
  p.batch = broadcast_shape(ctx, p.a_batch, p.b_batch);
  p.out_shape = p.batch;
  if (!p.a_vec) p.out_shape.push_back(p.m);
  if (!p.b_vec) p.out_shape.push_back(p.n);
  return p;
}

// Offset (in matrices) of batch index `bi` of the broadcast batch into an operand's batch.
int64_t batch_offset(int64_t bi, const Shape& batch, const Shape& own) {
  int64_t off = 0, stride = 1;
  for (size_t i = 0; i < batch.size(); ++i) {
    size_t k = batch.size() - 1 - i;
    int64_t idx = bi % batch[k];
    bi /= batch[k];
    if (i < own.size()) {
      int64_t d = own[own.size() - 1 - i];
      if (d != 1) off += idx * stride;
      stride *= d;
    }
  }
  return off;
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : c[i * ldc + j] * beta;  // BLAS: C unread when beta = 0
    return;
  }
  dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw Error("engine", fmt::format("oneDNN sgemm failed (status {})", int(st)));
}

}  // namespace mlaudit::engine::detail
