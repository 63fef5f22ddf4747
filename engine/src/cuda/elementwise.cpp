// Element-wise ops on the device (kernels: elementwise_impl.cu): the unary activations, the
// broadcasting binary ops Add/Sub/Mul/Div/Pow and the variadic Sum/Min/Max.
#include <limits>
#include <utility>

#include "elementwise_impl.h"
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::op_error;

// The (a, b) attributes of a unary node for launch_unary(_backward): alpha/beta, or Clip's bounds.
std::pair<float, float> unary_params(const OpCall& c, const Values& in) {
  const Node& node = c.ctx.node;
  const std::string& op = node.op_type;
  float a = 0, b = 0;
  if (op == "LeakyRelu") a = node.get_float("alpha", 0.01f);
  if (op == "Elu") a = node.get_float("alpha", 1.f);
  if (op == "HardSigmoid") {
    a = node.get_float("alpha", 0.2f);
    b = node.get_float("beta", 0.5f);
  }
  if (op == "Clip") {
    // ops_elementwise.cpp clip_bounds: attributes before opset 11, optional inputs after.
    a = -std::numeric_limits<float>::infinity();
    b = std::numeric_limits<float>::infinity();
    if (c.ctx.opset < 11) {
      a = node.get_float("min", a);
      b = node.get_float("max", b);
    } else {
      if (in.size() > 1 && in[1]) a = float(c.ex.host_value(c.node, 1, *in[1]).to_doubles().at(0));
      if (in.size() > 2 && in[2]) b = float(c.ex.host_value(c.node, 2, *in[2]).to_doubles().at(0));
    }
  }
  return {a, b};
}

const std::map<std::string, UnaryOp>& unary_ops() {
  static const std::map<std::string, UnaryOp> m = {
      {"Neg", UnaryOp::Neg},         {"Abs", UnaryOp::Abs},         {"Relu", UnaryOp::Relu},
      {"LeakyRelu", UnaryOp::LeakyRelu}, {"Sigmoid", UnaryOp::Sigmoid}, {"Tanh", UnaryOp::Tanh},
      {"Exp", UnaryOp::Exp},         {"Log", UnaryOp::Log},         {"Sqrt", UnaryOp::Sqrt},
      {"Erf", UnaryOp::Erf},         {"Elu", UnaryOp::Elu},         {"Softplus", UnaryOp::Softplus},
      {"HardSigmoid", UnaryOp::HardSigmoid}, {"Sign", UnaryOp::Sign}, {"Clip", UnaryOp::Clip}};
  return m;
}

const std::map<std::string, BinaryOp>& binary_ops() {
  static const std::map<std::string, BinaryOp> m = {{"Add", BinaryOp::Add}, {"Sub", BinaryOp::Sub}, {"Mul", BinaryOp::Mul},
                                                    {"Div", BinaryOp::Div}, {"Pow", BinaryOp::Pow}};
  return m;
}

void unary_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const DValue& x = float_input_at(c, in, 0);
  auto [a, b] = unary_params(c, in);
  DValue y = device_tensor(x.shape);
  launch_unary(unary_ops().at(c.ctx.node.op_type), x.f(), y.f(), x.numel(), a, b, c.stream.get());
  out[0] = y;
}

void unary_backward(const OpCall& c, const Values& in, const Values& out, const Values& gout, const std::vector<bool>& need,
                    std::vector<DValue>& gin) {
  if (!need[0]) return;
  const DValue& x = *in[0];
  const DValue& gy = *gout[0];
  auto [a, b] = unary_params(c, in);
  DValue gx = device_tensor(x.shape);
  launch_unary_backward(unary_ops().at(c.ctx.node.op_type), x.f(), out[0] ? out[0]->f() : nullptr, gy.f(), gx.f(),
                        x.numel(), a, b, c.stream.get());
  gin[0] = gx;
}

// Clip-1's open bounds run on the CPU.
bool clip_supported(const Node& node, int64_t, const Values*) { return node.since_version >= 6; }

void binary_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const std::string& op = c.ctx.node.op_type;
  const DValue& a = float_input_at(c, in, 0);
  DValue b = input_at(c, in, 1);
  if (!b.on_device()) {
    if (op != "Pow") op_error(c.ctx, fmt::format("input types differ ({} and {})", "float32", dtype_name(b.dtype)));
    b = to_device(b.host.to(DType::Float32), c.stream);
  }
  Shape os = detail::broadcast_shape(c.ctx, a.shape, b.shape);
  DValue y = device_tensor(os);
  launch_binary(binary_ops().at(op), a.f(), b.f(), y.f(), make_bcast(c.ctx, a.shape, b.shape, os), c.stream.get());
  out[0] = y;
}

void binary_backward(const OpCall& c, const Values& in, const Values& out, const Values& gout, const std::vector<bool>& need,
                     std::vector<DValue>& gin) {
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const DValue& a = *in[0];
  DValue b = *in[1];
  if (!b.on_device()) b = to_device(b.host.to(DType::Float32), st);
  const Shape& os = gy.shape;
  DValue ga, gb;
  if (need[0]) ga = device_tensor(os);
  if (need.size() > 1 && need[1]) gb = device_tensor(os);
  launch_binary_backward(binary_ops().at(c.ctx.node.op_type), a.f(), b.f(), out[0] ? out[0]->f() : nullptr, gy.f(),
                         ga.empty() ? nullptr : ga.f(), gb.empty() ? nullptr : gb.f(), make_bcast(c.ctx, a.shape, b.shape, os),
                         st.get());
  if (!ga.empty()) gin[0] = reduce_to(ga, a.shape, st);
  if (!gb.empty()) gin[1] = reduce_to(gb, b.shape, st);
}

// The legacy broadcast/axis form of the binary ops (< 7) runs on the CPU.
bool binary_supported(const Node&, int64_t opset, const Values*) { return opset >= 7; }

void variadic_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const std::string& op = c.ctx.node.op_type;
  BinaryOp bop = op == "Sum" ? BinaryOp::Add : (op == "Min" ? BinaryOp::Min : BinaryOp::Max);
  DValue acc = float_input_at(c, in, 0);
  for (size_t k = 1; k < in.size(); ++k) {
    const DValue& b = float_input_at(c, in, k);
    Shape os = detail::broadcast_shape(c.ctx, acc.shape, b.shape);
    DValue next = device_tensor(os);
    launch_binary(bop, acc.f(), b.f(), next.f(), make_bcast(c.ctx, acc.shape, b.shape, os), c.stream.get());
    acc = next;
  }
  out[0] = acc;
}

void sum_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                  std::vector<DValue>& gin) {
  for (size_t k = 0; k < in.size(); ++k)
    if (need[k]) gin[k] = reduce_to(*gout[0], in[k]->shape, c.stream);
}

// The gradient goes to the first input attaining the extremum (ops_elementwise.cpp variadic_backward).
void extremum_backward(const OpCall& c, const Values& in, const Values& out, const Values& gout,
                       const std::vector<bool>& need, std::vector<DValue>& gin) {
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const Shape& os = gy.shape;
  DValue taken = device_zeros(os, st);
  for (size_t k = 0; k < in.size(); ++k) {
    DValue gk = device_tensor(os);
    launch_extremum_grad(in[k]->f(), out[0]->f(), gy.f(), taken.f(), gk.f(), make_bcast(c.ctx, in[k]->shape, os, os), st.get());
    if (need[k]) gin[k] = reduce_to(gk, in[k]->shape, st);
  }
}

// Same-shape-only variadic ops (< 8) run on the CPU.
bool variadic_supported(const Node&, int64_t opset, const Values*) { return opset >= 8; }

}  // namespace

void register_elementwise_ops(CudaOpTable& t) {
  for (const auto& [op, code] : unary_ops())
    t[op] = CudaOpDef{unary_forward, unary_backward, op == "Clip" ? clip_supported : nullptr};
  for (const auto& [op, code] : binary_ops()) t[op] = CudaOpDef{binary_forward, binary_backward, binary_supported};
  t["Sum"] = CudaOpDef{variadic_forward, sum_backward, variadic_supported};
  t["Min"] = CudaOpDef{variadic_forward, extremum_backward, variadic_supported};
  t["Max"] = CudaOpDef{variadic_forward, extremum_backward, variadic_supported};
}

}  // namespace mlaudit::engine::cuda
