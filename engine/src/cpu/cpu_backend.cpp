#include "backend.h"

#include <fmt/format.h>

#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {
class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  bool supports_op(const Node& node) const override { return detail::find_op(node) != nullptr; }
  void forward(const detail::OpContext& ctx, const detail::Inputs& inputs, std::vector<Tensor>& outputs) const override {
    const detail::OpDef* op = detail::find_op(ctx.node);
    if (!op) throw UnsupportedError("engine", fmt::format("unsupported op '{}' at node '{}'", ctx.node.op_type, ctx.node.name));
    op->forward(ctx, inputs, outputs);
  }
  void backward(const detail::OpContext& ctx, const detail::Inputs& inputs, const detail::Inputs& outputs,
                const detail::Inputs& grad_outputs, const std::vector<bool>& need,
                std::vector<Tensor>& grad_inputs) const override {
    const detail::OpDef* op = detail::find_op(ctx.node);
    if (op && op->backward) op->backward(ctx, inputs, outputs, grad_outputs, need, grad_inputs);
  }
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace mlaudit::engine
