// Pooling on the device (kernels: pool_impl.cu): MaxPool and AveragePool (2-D windows, NCHW),
// GlobalAveragePool (a reduction over each plane). MaxPool's Indices output comes from the CPU op.
#include "ops_common.h"
#include "pool_impl.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::op_error;

void window_pool_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Node& node = c.ctx.node;
  const std::string& op = node.op_type;
  const Stream& st = c.stream;
  void* s = st.get();
  const DValue& x = float_input_at(c, in, 0);
  int64_t pb, pr;
  bool inc;
  ConvGeom g = pool_geom(c.ctx, x.shape, pb, pr, inc);
  DValue y = device_tensor({g.n, g.c, g.oh, g.ow});
  if (op == "MaxPool") launch_maxpool(x.f(), y.f(), g, s);
  else launch_avgpool(x.f(), y.f(), g, pb, pr, inc, s);
  out[0] = y;
  if (op == "MaxPool" && out.size() > 1 && !node.outputs[1].empty()) {
    // The Indices output (int64, shape arithmetic) comes from the CPU op on a host copy.
    Tensor hx = to_host(x, st);
    detail::Inputs hin{&hx};
    std::vector<Tensor> houts(out.size());
    detail::find_op(op)->forward(c.ctx, hin, houts);
    out[1] = to_device(houts[1], st);
  }
}

void window_pool_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                          std::vector<DValue>& gin) {
  if (!need[0]) return;
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const DValue& x = *in[0];
  int64_t pb, pr;
  bool inc;
  ConvGeom g = pool_geom(c.ctx, x.shape, pb, pr, inc);
  DValue gx = device_zeros(x.shape, st);
  if (c.ctx.node.op_type == "MaxPool") launch_maxpool_backward(x.f(), gy.f(), gx.f(), g, st.get());
  else launch_avgpool_backward(gy.f(), gx.f(), g, pb, pr, inc, st.get());
  gin[0] = gx;
}

void global_average_pool_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Stream& st = c.stream;
  const DValue& x = float_input_at(c, in, 0);
  if (x.shape.size() < 3) op_error(c.ctx, fmt::format("expects [N,C,...], got {}", shape_str(x.shape)));
  Shape ys = x.shape;
  int64_t planes = ys[0] * ys[1];
  int64_t area = planes ? x.numel() / planes : 0;
  for (size_t k = 2; k < ys.size(); ++k) ys[k] = 1;
  DValue flat = alias(x, {planes, area});
  DValue y = area ? reduce_copy(flat, {planes, 1}, st, 1.0 / double(area)) : device_zeros({planes, 1}, st);
  out[0] = alias(y, ys);
}

void global_average_pool_backward(const OpCall& c, const Values& in, const Values&, const Values& gout,
                                  const std::vector<bool>& need, std::vector<DValue>& gin) {
  if (!need[0]) return;
  const DValue& gy = *gout[0];
  const DValue& x = *in[0];
  int64_t planes = x.shape[0] * x.shape[1];
  int64_t area = planes ? x.numel() / planes : 0;
  DValue gx = device_tensor(x.shape);
  launch_expand_scale(gy.f(), gx.f(), planes, area, area ? 1.f / float(area) : 0.f, c.stream.get());
  gin[0] = gx;
}

}  // namespace

void register_pool_ops(CudaOpTable& t) {
  t["MaxPool"] = CudaOpDef{window_pool_forward, window_pool_backward, four_d_input};
  t["AveragePool"] = CudaOpDef{window_pool_forward, window_pool_backward, four_d_input};
  t["GlobalAveragePool"] = CudaOpDef{global_average_pool_forward, global_average_pool_backward, four_d_input};
}

}  // namespace mlaudit::engine::cuda
