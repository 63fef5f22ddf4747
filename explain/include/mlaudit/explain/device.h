#pragma once
// Integrated gradients and SmoothGrad on the CUDA device (explain/src/cuda): path points / noisy
// samples, forward and input gradient and the per-input sums run on the device, through the
// engine's public device API (mlaudit/engine/device.h) on the Session's graph. Same options and
// results as integrated_gradients() / smoothgrad() (attribution.h) within float rounding; SmoothGrad
// draws its noise on the host with the CPU path's generator, so both paths average the same samples.
// std::nullopt when the model is not a Session on a CUDA device (Model::device_resident()), or is
// one the device loops do not take (not single-input single-output, or a fixed batch axis): callers
// then run the CPU functions. `mlaudit explain --device cuda` uses them. Plain C++: no CUDA types.
#include <cstdint>
#include <optional>
#include <vector>

#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

#ifdef MLAUDIT_WITH_CUDA
std::optional<IgResult> device_integrated_gradients(const engine::Model& model, const engine::Tensor& x,
                                                    const engine::Tensor& baseline, const std::vector<int64_t>& targets,
                                                    const IgOptions& opts = {});
std::optional<engine::Tensor> device_smoothgrad(const engine::Model& model, const engine::Tensor& x,
                                                const std::vector<int64_t>& targets, const SmoothGradOptions& opts = {});
#else
// Builds without the CUDA backend: never on a device.
inline std::optional<IgResult> device_integrated_gradients(const engine::Model&, const engine::Tensor&, const engine::Tensor&,
                                                           const std::vector<int64_t>&, const IgOptions& = {}) {
  return std::nullopt;
}
inline std::optional<engine::Tensor> device_smoothgrad(const engine::Model&, const engine::Tensor&, const std::vector<int64_t>&,
                                                       const SmoothGradOptions& = {}) {
  return std::nullopt;
}
#endif

}  // namespace mlaudit::explain
