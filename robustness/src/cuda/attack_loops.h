#pragma once
// The device loops of mlaudit/robustness/device.h on a Program (the engine's public device API),
// for device_entry.cpp (which finds a Session's Program) and the tests (which run them on the host
// emulation). Each loop holds the Program's lock for its whole run. Plain C++.
#include <cstdint>

#include "mlaudit/engine/device.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/robustness/device.h"

namespace mlaudit::robustness::cuda {

DevicePgdResult pgd_on(const engine::cuda::Program& program, const engine::Tensor& x, const engine::Tensor& labels,
                       const DevicePgdOptions& options);
/// APGD with the loss forced to "ce".
DevicePgdResult apgd_ce_on(const engine::cuda::Program& program, const engine::Tensor& x, const engine::Tensor& labels,
                           const DeviceApgdOptions& options);
/// APGD with options.loss.
DevicePgdResult apgd_on(const engine::cuda::Program& program, const engine::Tensor& x, const engine::Tensor& labels,
                        const DeviceApgdOptions& options);
DevicePgdResult square_on(const engine::cuda::Program& program, const engine::Tensor& x, const engine::Tensor& labels,
                          const DeviceSquareOptions& options);
/// Smoothing counts int64 [B, classes].
engine::Tensor smoothing_on(const engine::cuda::Program& program, const engine::Tensor& x, float sigma, int64_t n,
                            int64_t batch, uint64_t seed);

}  // namespace mlaudit::robustness::cuda
