#include <dnnl.h>
#include <fmt/format.h>

#include <mutex>
#include <unordered_map>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {
std::unordered_map<std::string, OpDef>& table() {
  static std::unordered_map<std::string, OpDef> t;
  return t;
}
void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_elementwise_ops();
    register_nn_ops();
    register_shape_ops();
  });
}
}  // namespace

void register_op(const std::string& op_type, OpDef def) { table()[op_type] = def; }

const OpDef* find_op(const std::string& op_type) {
  ensure_registered();
  auto it = table().find(op_type);
  return it == table().end() ? nullptr : &it->second;
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
  if (a < 0 || a >= std::max<int64_t>(rank, 1)) op_error(ctx, fmt::format("axis {} out of range for rank {}", axis, rank));
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

Tensor reduce_to_shape(const Tensor& grad, const Shape& to) {
  if (grad.shape() == to) return grad;
  Tensor out(DType::Float32, to);
  const Shape& from = grad.shape();
  size_t r = from.size();
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
