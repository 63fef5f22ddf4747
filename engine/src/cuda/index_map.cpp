// Data-movement ops on the device (kernels: index_map_impl.cu): Transpose, Slice, Gather, Pad and
// Concat run as device gathers through index maps that the CPU op itself computes once per shape
// (CudaExecutor::index_map), so their semantics are the CPU backend's by construction; the VJP
// scatter-adds through the same maps.
#include "index_map_impl.h"
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

void index_map_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Node& node = c.ctx.node;
  const bool pad = node.op_type == "Pad";
  Shape os;
  float fill = 0.f;
  if (pad) {
    // ops_shape.cpp pad_spec: attribute before opset 11, optional input 2 after.
    if (c.ctx.opset < 11) fill = node.get_float("value", 0.f);
    else if (in.size() > 2 && in[2]) fill = float(c.ex.host_value(c.node, 2, *in[2]).to_doubles().at(0));
  }
  DValue y;
  bool first = true;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!in[k] || !in[k]->on_device()) continue;
    if (pad && k != 0) continue;  // the constant value is not data
    const BufferPtr& map = c.ex.index_map(c.node, in, k, &os);
    if (first) y = device_tensor(os);
    launch_gather_map(in[k]->f(), static_cast<const int64_t*>(map->get()), y.f(), shape_numel(os), fill, first,
                      c.stream.get());
    first = false;
  }
  out[0] = y;
}

void index_map_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                        std::vector<DValue>& gin) {
  const DValue& gy = *gout[0];
  const bool pad = c.ctx.node.op_type == "Pad";
  for (size_t k = 0; k < in.size(); ++k) {
    if (!need[k] || !in[k] || !in[k]->on_device()) continue;
    if (pad && k != 0) continue;
    Shape os;
    const BufferPtr& map = c.ex.index_map(c.node, in, k, &os);
    DValue gx = device_zeros(in[k]->shape, c.stream);
    launch_scatter_add_map(gy.f(), static_cast<const int64_t*>(map->get()), gx.f(), shape_numel(os), c.stream.get());
    gin[k] = gx;
  }
}

}  // namespace

void register_index_map_ops(CudaOpTable& t) {
  for (const char* op : {"Transpose", "Slice", "Gather", "Pad", "Concat"})
    t[op] = CudaOpDef{index_map_forward, index_map_backward, nullptr};
}

}  // namespace mlaudit::engine::cuda
