#pragma once
// The explain module's device loops (integrated gradients, SmoothGrad) on a Program (the engine's
// public device API), for device_entry.cpp (which finds a Session's Program) and the tests (which
// run them on the host emulation). Each loop holds the Program's lock for its whole run. Plain C++.
#include <cstdint>
#include <functional>
#include <vector>

#include "mlaudit/engine/device.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain::cuda {

/// Integrated gradients (Sundararajan et al. 2017, eq. 3) with a caller-given quadrature:
/// attr_b = (x_b - base_b) * sum_k w_k grad f_{t_b}(base_b + alpha_k (x_b - base_b)). Path points are
/// built, run and reduced on the device, `batch` points per forward (0: as many as fit in memory).
/// `baseline` has x's shape (empty = zeros). Returns attributions with x's shape.
engine::Tensor integrated_gradients_on(const engine::cuda::Program& program, const engine::Tensor& x,
                                       const engine::Tensor& baseline, const std::vector<int64_t>& targets,
                                       const std::vector<double>& alphas, const std::vector<double>& weights, int64_t batch,
                                       const engine::ProgressFn& progress = {});

/// Writes `count` noisy samples of input row `row`, samples first .. first + count - 1, as [count, d] floats.
using NoisySamples = std::function<void(int64_t row, int64_t first, int64_t count, float* out)>;

/// SmoothGrad (Smilkov et al. 2017): mean over n samples of grad f_{t_b}; squared: mean of grad^2
/// (SmoothGrad-Squared, Hooker et al. 2019). The samples come from `samples` when given (host noise,
/// uploaded), else x_b + N(0, sigmas[b]^2 I) drawn on the device (cuRAND Philox keyed by `seed`);
/// sigmas has one entry per row or one for all. Returns x's shape.
engine::Tensor smoothgrad_on(const engine::cuda::Program& program, const engine::Tensor& x,
                             const std::vector<int64_t>& targets, const std::vector<float>& sigmas, int64_t n, bool squared,
                             int64_t batch, uint64_t seed, const NoisySamples& samples = {},
                             const engine::ProgressFn& progress = {});

/// integrated_gradients() (attribution.h) on the device: its checks, quadrature (opts.rule, opts.steps)
/// and result fields; f_t(x) and f_t(baseline) through `model` (the Program's Session, or a model with
/// the same outputs). Attributions equal the CPU function's within float rounding.
IgResult integrated_gradients_result_on(const engine::cuda::Program& program, const engine::Model& model,
                                        const engine::Tensor& x, const engine::Tensor& baseline,
                                        const std::vector<int64_t>& targets, const IgOptions& opts);
/// smoothgrad() (attribution.h) on the device: its checks, per-row sigmas and noise (opts.noise, or
/// the CPU path's generator keyed by opts.seed, drawn on the host in the same order), so the result
/// equals the CPU function's within float rounding.
engine::Tensor smoothgrad_options_on(const engine::cuda::Program& program, const engine::Tensor& x,
                                     const std::vector<int64_t>& targets, const SmoothGradOptions& opts);

}  // namespace mlaudit::explain::cuda
