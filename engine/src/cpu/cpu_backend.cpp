#include "cpu_backend.h"

#include <fmt/format.h>

#include <algorithm>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"

namespace mlaudit::engine {

std::vector<BackendOp> CpuBackend::ops() const {
  std::vector<BackendOp> out;
  for (const auto& [key, def] : detail::registered_ops()) out.push_back(key);
  return out;
}

bool CpuBackend::supports_op(const Node& node, int64_t opset) const {
  const detail::OpDef* def = detail::find_op(node);
  if (!def) return false;
  int64_t v = op_since_version(node.domain, node.op_type, opset);
  return v >= def->min_version && !std::count(def->unsupported_versions.begin(), def->unsupported_versions.end(), v);
}

std::unique_ptr<BackendGraph> CpuBackend::compute(const Graph& graph) const { return make_cpu_graph(graph, *this); }

void CpuBackend::forward(const detail::OpContext& ctx, const detail::Inputs& inputs, std::vector<Tensor>& outputs) const {
  const detail::OpDef* op = detail::find_op(ctx.node);
  if (!op) throw UnsupportedError("engine", fmt::format("unsupported op '{}' at node '{}'", ctx.node.op_type, ctx.node.name));
  op->forward(ctx, inputs, outputs);
}

void CpuBackend::backward(const detail::OpContext& ctx, const detail::Inputs& inputs, const detail::Inputs& outputs,
                          const detail::Inputs& grad_outputs, const std::vector<bool>& need,
                          std::vector<Tensor>& grad_inputs) const {
  const detail::OpDef* op = detail::find_op(ctx.node);
  if (op && op->backward) op->backward(ctx, inputs, outputs, grad_outputs, need, grad_inputs);
}

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace mlaudit::engine
