// mlaudit/explain/device.h: integrated gradients and SmoothGrad for a model whose Session runs on
// the CUDA device (Model::device_resident(), then the engine's device_program(session)); the work is
// attribution_loops.cpp's.
#include <fmt/format.h>

#include "attribution_loops.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/device.h"

namespace mlaudit::explain {

namespace {

// The Session's graph on the device when the device loops can run it (one input without a fixed
// batch axis, one output: the audited one), else nullptr.
const engine::cuda::Program* program_of(const engine::Model& model) {
  const engine::Session* session = model.device_resident();
  if (!session) return nullptr;
  const engine::Graph& g = session->graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1) return nullptr;
  if (!g.inputs[0].shape.empty() && g.inputs[0].shape[0] > 0) return nullptr;  // Session slices such batches
  return engine::cuda::device_program(*session);
}

}  // namespace

std::optional<IgResult> device_integrated_gradients(const engine::Model& model, const Tensor& x, const Tensor& baseline,
                                                    const std::vector<int64_t>& targets, const IgOptions& opts) {
  const engine::cuda::Program* program = program_of(model);
  if (!program) return std::nullopt;
  return cuda::integrated_gradients_result_on(*program, model, x, baseline, targets, opts);
}

std::optional<Tensor> device_smoothgrad(const engine::Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                                        const SmoothGradOptions& opts) {
  const engine::cuda::Program* program = program_of(model);
  if (!program) return std::nullopt;
  return cuda::smoothgrad_options_on(*program, x, targets, opts);
}

}  // namespace mlaudit::explain
