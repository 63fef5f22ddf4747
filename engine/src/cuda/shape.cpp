// Ops that move no data on the device: Identity and Dropout (inference) pass their input,
// Flatten/Reshape/Squeeze/Unsqueeze view it with the shape the CPU op computes, Cast to float
// passes (to integer/bool: a host result), Shape and Constant are host values (Constant nodes are
// evaluated once when the executor is built). No kernels of their own.
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

void identity_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  out[0] = input_at(c, in, 0);
  if (out.size() > 1) {
    Tensor mask(DType::Bool, in[0]->shape);
    bool* p = mask.data<bool>();
    for (int64_t e = 0; e < mask.numel(); ++e) p[e] = true;
    out[1] = to_device(mask, c.stream);
  }
}

void identity_backward(const OpCall&, const Values&, const Values&, const Values& gout, const std::vector<bool>& need,
                       std::vector<DValue>& gin) {
  if (need[0]) gin[0] = *gout[0];
}

// Dropout before 10 (a float mask) and in training mode (a ratio and training_mode input) runs on the CPU.
bool dropout_supported(const Node& node, int64_t opset, const Values*) { return opset >= 10 && node.inputs.size() <= 2; }

void cast_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  int64_t to = c.ctx.node.get_int("to", 1);
  if (to == 1 || to == 11) {
    out[0] = input_at(c, in, 0);
    return;
  }
  // Float to integer/bool: a host result (shape arithmetic), as the CPU op computes it.
  Tensor hx = to_host(input_at(c, in, 0), c.stream);
  detail::Inputs hin{&hx};
  std::vector<Tensor> houts(1);
  detail::find_op(c.ctx.node.op_type)->forward(c.ctx, hin, houts);
  out[0] = to_device(houts[0], c.stream);
}

void cast_backward(const OpCall&, const Values&, const Values& out, const Values& gout, const std::vector<bool>& need,
                   std::vector<DValue>& gin) {
  if (need[0] && out[0] && out[0]->on_device()) gin[0] = *gout[0];
}

// Cast-1's string type names run on the CPU.
bool cast_supported(const Node& node, int64_t, const Values*) { return node.since_version >= 6; }

void shape_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  out[0] = to_device(c.ex.host_eval(c.node, in).at(0), c.stream);
}

void view_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const DValue& x = input_at(c, in, 0);
  out[0] = alias(x, c.ex.host_eval(c.node, in).at(0).shape());
}

void view_backward(const OpCall&, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                   std::vector<DValue>& gin) {
  if (need[0]) gin[0] = alias(*gout[0], in[0]->shape);
}

}  // namespace

void register_shape_ops(CudaOpTable& t) {
  t["Identity"] = CudaOpDef{identity_forward, identity_backward, nullptr};
  t["Dropout"] = CudaOpDef{identity_forward, identity_backward, dropout_supported};
  t["Cast"] = CudaOpDef{cast_forward, cast_backward, cast_supported};
  for (const char* op : {"Flatten", "Reshape", "Squeeze", "Unsqueeze"}) t[op] = CudaOpDef{view_forward, view_backward, nullptr};
  t["Shape"] = CudaOpDef{shape_forward, nullptr, nullptr};  // int64 output: no gradient flows
  t["Constant"] = CudaOpDef{};  // evaluated once on the host when the executor is built
}

}  // namespace mlaudit::engine::cuda
