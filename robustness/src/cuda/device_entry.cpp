// mlaudit/robustness/device.h: the device loops for a Session, through the engine's public device
// API (device_program(session): the session's graph on the device), never a cast.
#include <fmt/format.h>

#include <optional>

#include "attack_loops.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/robustness/device.h"

namespace mlaudit::robustness {

namespace {

// f(program) for a session on the CUDA backend; nullopt when the session is not on a CUDA device
// (the callers then run their CPU loop).
template <class F>
auto on_device(const engine::Session& session, const char* what, F f)
    -> std::optional<decltype(f(std::declval<const engine::cuda::Program&>()))> {
  const engine::cuda::Program* program = engine::cuda::device_program(session);
  if (!program) return std::nullopt;
  const engine::Graph& g = session.graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1)
    throw InputError("robustness", fmt::format("{}: {} needs a single-input, single-output model", g.source, what));
  return f(*program);
}

}  // namespace

std::optional<DevicePgdResult> device_pgd(const engine::Session& session, const engine::Tensor& x, const engine::Tensor& labels,
                                          const DevicePgdOptions& o) {
  return on_device(session, "pgd", [&](const engine::cuda::Program& p) { return cuda::pgd_on(p, x, labels, o); });
}

std::optional<DevicePgdResult> device_apgd_ce(const engine::Session& session, const engine::Tensor& x,
                                              const engine::Tensor& labels, const DeviceApgdOptions& o) {
  return on_device(session, "apgd", [&](const engine::cuda::Program& p) { return cuda::apgd_ce_on(p, x, labels, o); });
}

std::optional<DevicePgdResult> device_apgd(const engine::Session& session, const engine::Tensor& x,
                                           const engine::Tensor& labels, const DeviceApgdOptions& o) {
  return on_device(session, "apgd", [&](const engine::cuda::Program& p) { return cuda::apgd_on(p, x, labels, o); });
}

std::optional<DevicePgdResult> device_square(const engine::Session& session, const engine::Tensor& x,
                                             const engine::Tensor& labels, const DeviceSquareOptions& o) {
  return on_device(session, "square", [&](const engine::cuda::Program& p) { return cuda::square_on(p, x, labels, o); });
}

std::optional<engine::Tensor> device_smoothing_counts(const engine::Session& session, const engine::Tensor& x, float sigma,
                                                      int64_t n, int64_t batch, uint64_t seed) {
  return on_device(session, "smoothing",
                   [&](const engine::cuda::Program& p) { return cuda::smoothing_on(p, x, sigma, n, batch, seed); });
}

}  // namespace mlaudit::robustness
