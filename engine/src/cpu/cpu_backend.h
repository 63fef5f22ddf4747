#pragma once
// The CPU backend: the backend contract (backend.h) over the OpDef table (ops.h). Its graph
// compute is the Session's executor (session.cpp: the CPU rewrites of cpu/fusion.h, the execution
// plan, one node at a time through forward() / backward() below).
#include "backend.h"
#include "ops.h"

namespace mlaudit::engine {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  /// Every registered op of the OpDef table, every domain.
  std::vector<BackendOp> ops() const override;
  /// The OpDef table has the op and handles the schema version the opset resolves to (min_version,
  /// unsupported_versions), as node_support_problem() checks a loaded model.
  bool supports_op(const Node& node, int64_t opset) const override;
  std::unique_ptr<BackendGraph> compute(const Graph& graph) const override;

  /// Forward of one node (its OpDef's forward); UnsupportedError when the table lacks the op.
  void forward(const detail::OpContext& ctx, const detail::Inputs& inputs, std::vector<Tensor>& outputs) const;
  /// Vector-Jacobian product of one node (see detail::BackwardFn); nothing when the op has no backward.
  void backward(const detail::OpContext& ctx, const detail::Inputs& inputs, const detail::Inputs& outputs,
                const detail::Inputs& grad_outputs, const std::vector<bool>& need,
                std::vector<Tensor>& grad_inputs) const;
};

/// The CPU graph compute (session.cpp): the Session's executor over `graph`, bound to `backend`
/// (which must outlive it).
std::unique_ptr<BackendGraph> make_cpu_graph(const Graph& graph, const CpuBackend& backend);

}  // namespace mlaudit::engine
