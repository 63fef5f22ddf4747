// Host helpers shared by the CUDA op families (ops_common.h) and the executor's public
// binary() / sum_to_shape() (cuda_executor.h).
#include "ops_common.h"

#include <cstdlib>

#include "elementwise_impl.h"
#include "mlaudit/engine/error.h"
#include "reduction_impl.h"

namespace mlaudit::engine::cuda {

using detail::OpContext;
using detail::op_error;

DValue alias(const DValue& v, const Shape& shape) {
  DValue a = v;
  a.shape = shape;
  return a;
}

BroadcastDesc make_bcast(const OpContext& ctx, const Shape& a, const Shape& b, const Shape& out) {
  if (out.size() > static_cast<size_t>(kMaxRank)) op_error(ctx, fmt::format("rank {} exceeds the CUDA backend's {}", out.size(), kMaxRank));
  BroadcastDesc d;
  d.rank = static_cast<int>(out.size());
  auto strides = [&](const Shape& s, int64_t* st) {
    int64_t acc = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t k = s.size() - 1 - i, ko = out.size() - 1 - i;
      st[ko] = s[k] == 1 ? 0 : acc;
      acc *= s[k];
    }
  };
  for (size_t i = 0; i < out.size(); ++i) d.out_dims[i] = out[i];
  strides(a, d.a_strides);
  strides(b, d.b_strides);
  return d;
}

// Sum x (shape `from`) down to the broadcast-compatible shape `to` (session.cpp reduce_to_shape).
DValue reduce_copy(const DValue& x, const Shape& to, const Stream& s, double scale) {
  DValue y = device_tensor(to);
  const Shape& from = x.shape;
  if (from.size() > static_cast<size_t>(kMaxRank)) throw UnsupportedError("engine", "cuda: reduction of rank > 6");
  ReduceDesc d;
  d.rank = static_cast<int>(from.size());
  int64_t st = 1;
  for (int k = d.rank - 1; k >= 0; --k) {
    size_t i = from.size() - 1 - k;
    int64_t t = i < to.size() ? to[to.size() - 1 - i] : 1;
    d.in_strides[k] = st;
    st *= from[k];
    d.out_dims[k] = t;
    d.red_dims[k] = (t == 1) ? from[k] : 1;
  }
  if (d.rank == 0) {
    copy_device(y.buf->get(), x.buf->get(), sizeof(float), s);
    if (scale != 1.0) launch_axpby(y.f(), y.f(), 1, float(scale), 0.f, s.get());
    return y;
  }
  launch_reduce_sum(x.f(), y.f(), d, scale, s.get());
  return y;
}

DValue reduce_to(const DValue& x, const Shape& to, const Stream& s) {
  if (x.shape == to) return x;
  return reduce_copy(x, to, s);
}

// Materialise v broadcast to `shape` (fmax(v, v) = v through the broadcasting kernel).
DValue broadcast_to(const OpContext& ctx, const DValue& v, const Shape& shape, const Stream& s) {
  DValue y = device_tensor(shape);
  launch_binary(BinaryOp::Max, v.f(), v.f(), y.f(), make_bcast(ctx, v.shape, v.shape, shape), s.get());
  return y;
}

ConvGeom to_geom(const detail::Window2d& p) {
  return ConvGeom{p.n, p.c, p.h, p.w, p.oc, p.kh, p.kw, p.oh, p.ow, p.group, p.sh, p.sw, p.dh, p.dw, p.pt, p.pl};
}

ConvGeom conv_geom(const OpContext& ctx, const Shape& x, const Shape& w) { return to_geom(detail::conv_window(ctx, x, w)); }

ConvGeom pool_geom(const OpContext& ctx, const Shape& x, int64_t& pb, int64_t& pr, bool& include_pad) {
  detail::Window2d p = detail::pool_window(ctx, x);
  pb = p.pb;
  pr = p.pr;
  include_pad = p.count_include_pad;
  return to_geom(p);
}

bool direct_conv_enabled() {
  static const bool direct = [] {
    const char* e = std::getenv("MLAUDIT_CUDA_CONV");
    return !(e && std::string(e) == "im2col");
  }();
  return direct;
}

DValue binary(BinaryOp op, const DValue& a, const DValue& b, const Stream& s) {
  Node node;
  node.name = "fused";
  node.op_type = "broadcast";
  OpContext ctx{node, 13};
  Shape os = detail::broadcast_shape(ctx, a.shape, b.shape);
  DValue y = device_tensor(os);
  launch_binary(op, a.f(), b.f(), y.f(), make_bcast(ctx, a.shape, b.shape, os), s.get());
  return y;
}

DValue sum_to_shape(const DValue& x, const Shape& to, const Stream& s, double scale) { return reduce_copy(x, to, s, scale); }

}  // namespace mlaudit::engine::cuda
