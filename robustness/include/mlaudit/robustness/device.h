#pragma once
// The robustness module's device loops (robustness/src/cuda): PGD, APGD (CE, DLR, APGD-T), Square
// and randomized-smoothing sampling with every row's state on the CUDA device (no host round trip
// per step). They run on the Session's graph through the engine's public device API
// (mlaudit/engine/device.h: device_program(session), forward and input gradient on device arrays)
// with the module's own kernels. Each function returns std::nullopt when the session is not on a
// CUDA device, so callers keep their CPU loop as the fallback. Plain C++: no CUDA types.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::robustness {

/// Projected gradient descent (Madry et al. 2018, "Towards Deep Learning Models Resistant to
/// Adversarial Attacks", eq. 2) on the summed cross-entropy loss.
struct DevicePgdOptions {
  std::string norm = "linf";   ///< "linf" (sign step, clamp to the box) or "l2" (normalised step, ball projection)
  float eps = 0.1f;            ///< radius of the threat ball
  float alpha = 0.01f;         ///< step size
  int steps = 50;              ///< iterations
  bool random_start = true;    ///< uniform start in the L-inf ball (L2: uniform radius along a Gaussian direction)
  float clip_min = 0.f;        ///< input box
  float clip_max = 1.f;
  uint64_t seed = 0;           ///< cuRAND Philox seed of the random start
  int64_t batch = 0;           ///< samples per device batch; 0 = adapt to free device memory
  bool use_cuda_graph = true;  ///< capture one iteration as a CUDA graph and replay it (falls back to eager launches)
};

/// Result of device_pgd, device_apgd and device_square.
struct DevicePgdResult {
  engine::Tensor x_adv;                ///< adversarial inputs, same shape as x
  std::vector<uint8_t> robust; ///< 1 where the model still predicts the label on x_adv
  int64_t robust_count = 0;
  int64_t batch = 0;           ///< device batch size used
  bool cuda_graph = false;     ///< whether the iteration ran as a captured CUDA graph
  std::vector<int64_t> queries; ///< device_square: forward evaluations per row (init included); empty otherwise
};

/// APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
/// diverse parameter-free attacks", Algorithm 1; AutoAttack's defaults): 100 iterations, eta^(0) = 2 eps,
/// momentum 0.75, checkpoint step halving with restart from the best point, rho = 0.75; loss CE,
/// DLR (eq. 6) or targeted DLR (APGD-T, eq. 7: AutoAttack standard = 9 targets, 1 restart each).
struct DeviceApgdOptions {
  std::string norm = "linf";  ///< "linf" or "l2"
  float eps = 0.1f;           ///< radius of the threat ball
  int steps = 100;            ///< iterations (n_iter)
  float clip_min = 0.f;       ///< input box
  float clip_max = 1.f;
  uint64_t seed = 0;          ///< Philox key of the random starts (counter = global element index: batch-split independent)
  int64_t batch = 0;          ///< samples per device batch; 0 = adapt to free device memory
  std::string loss = "ce";    ///< "ce" (APGD-CE), "dlr" (APGD-DLR) or "dlr-targeted" (APGD-T); device_apgd_ce forces "ce"
  int restarts = 1;           ///< runs from fresh random starts on the rows still robust (per target for APGD-T)
  int n_target_classes = 9;   ///< APGD-T: target the 2nd .. (n+1)-th largest clean logits (capped at classes - 1)
};

/// Square attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020, Alg. 2 and 3), AutoAttack's defaults:
/// random search, p schedule from p_init (the published piecewise-constant schedule rescaled to n_queries),
/// margin loss. L-inf: s x s window updates of +-2 eps per channel, vertical-stripe init; L2: meta
/// pseudo-Gaussian window updates within the budget left in the ball, tile-grid init (images, H, W >= 5).
struct DeviceSquareOptions {
  std::string norm = "linf";  ///< "linf" or "l2"
  float eps = 0.1f;           ///< radius of the threat ball
  int n_queries = 5000;       ///< forward evaluations per row, init included
  double p_init = 0.8;        ///< initial fraction of the features changed
  float clip_min = 0.f;       ///< input box
  float clip_max = 1.f;
  uint64_t seed = 0;          ///< Philox key: a row's draws depend on (seed, row, iteration) only
  int64_t batch = 0;          ///< samples per device batch; 0 = adapt to free device memory
  int check_every = 10;       ///< iterations between the host's looks at the rows still unbroken (early stop, smaller forwards)
};
#ifdef MLAUDIT_WITH_CUDA
/// PGD with the whole loop on the device; std::nullopt when `session` is not on CUDA.
/// x: [N, ...] float inputs, labels: N int64 class indices. Throws InputError on bad shapes/options.
std::optional<DevicePgdResult> device_pgd(const engine::Session& session, const engine::Tensor& x, const engine::Tensor& labels,
                                          const DevicePgdOptions& options = {});

/// APGD-CE with every row's state on the device (one restart); x_adv holds the breaking iterate of
/// broken rows and the best-loss point of robust rows. std::nullopt when `session` is not on CUDA.
std::optional<DevicePgdResult> device_apgd_ce(const engine::Session& session, const engine::Tensor& x, const engine::Tensor& labels,
                                              const DeviceApgdOptions& options = {});

/// APGD with options.loss (CE, DLR or targeted DLR = APGD-T over n_target_classes targets, `restarts`
/// runs each) with every row's state on the device; the DLR gradients w.r.t. the logits are computed on
/// the device. Rows broken by one run are left out of the next. x_adv: breaking iterate of broken rows,
/// best-loss point of the last run for robust ones. std::nullopt when `session` is not on CUDA.
/// Throws InputError for too few classes (DLR: 3, targeted DLR: 4) or bad options.
std::optional<DevicePgdResult> device_apgd(const engine::Session& session, const engine::Tensor& x, const engine::Tensor& labels,
                                           const DeviceApgdOptions& options = {});

/// Square attack (L-inf or L2) with every row's state on the device (best point, margin, query count); the
/// host only looks at the unbroken rows every check_every iterations to shrink the forward batch and stop.
/// robust[i] = the row's margin stayed > 0; x_adv = the best point found (x0 + stripes when never improved);
/// queries filled. std::nullopt when `session` is not on CUDA.
std::optional<DevicePgdResult> device_square(const engine::Session& session, const engine::Tensor& x, const engine::Tensor& labels,
                                             const DeviceSquareOptions& options = {});
/// Randomized-smoothing Monte Carlo counts (Cohen et al. 2019, "Certified Adversarial Robustness via
/// Randomized Smoothing", CERTIFY's SampleUnderNoise): for each of the B inputs x[b], n samples
/// x[b] + N(0, sigma^2 I) drawn in the sampling kernel with counter-based Philox4x32-10 (keyed by `seed`; a
/// sample's noise does not depend on the batch split), classified by argmax, counted per class.
/// Returns int64 [B, classes]; std::nullopt when `session` is not on CUDA. batch 0 adapts to free memory.
std::optional<engine::Tensor> device_smoothing_counts(const engine::Session& session, const engine::Tensor& x, float sigma, int64_t n,
                                              int64_t batch = 0, uint64_t seed = 0);

#else
// Builds without the CUDA backend: never on a device.
inline std::optional<DevicePgdResult> device_pgd(const engine::Session&, const engine::Tensor&, const engine::Tensor&, const DevicePgdOptions& = {}) {
  return std::nullopt;
}
inline std::optional<DevicePgdResult> device_apgd_ce(const engine::Session&, const engine::Tensor&, const engine::Tensor&,
                                                     const DeviceApgdOptions& = {}) {
  return std::nullopt;
}
inline std::optional<DevicePgdResult> device_apgd(const engine::Session&, const engine::Tensor&, const engine::Tensor&, const DeviceApgdOptions& = {}) {
  return std::nullopt;
}
inline std::optional<DevicePgdResult> device_square(const engine::Session&, const engine::Tensor&, const engine::Tensor&,
                                                    const DeviceSquareOptions& = {}) {
  return std::nullopt;
}
inline std::optional<engine::Tensor> device_smoothing_counts(const engine::Session&, const engine::Tensor&, float, int64_t, int64_t = 0, uint64_t = 0) {
  return std::nullopt;
}
#endif

}  // namespace mlaudit::robustness
