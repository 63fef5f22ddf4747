#pragma once
// Device runtime for the CUDA backend (device_api.cu): the public part (status checks, the pooled
// device allocator, streams, host<->device copies, cuBLAS GEMM and cuRAND) is declared in
// mlaudit/engine/device.h for the modules' device loops; this header adds what only the engine
// and its tests use. Plain C++ only; handles are opaque pointers.
#include <cstddef>

#include "mlaudit/engine/device.h"

namespace mlaudit::engine::cuda {

/// Bytes currently held by the pool (in use + cached) and cached only.
void pool_stats(size_t& held_bytes, size_t& cached_bytes);
/// Release cached (unused) blocks back to the driver.
void pool_trim();

/// Open cuBLAS and cuRAND and resolve every function the backend calls (done at their first use
/// otherwise; they are not linked, so a process that never uses the GPU never loads them).
/// Throws Error naming the library or symbol. Needs no device.
void load_libraries();

}  // namespace mlaudit::engine::cuda
