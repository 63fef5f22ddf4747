#pragma once
// Kernel-side helpers for the .cu files of the engine and of the modules that run their own
// device loops (robustness/src/cuda, explain/src/cuda): grid-stride loops and checked launches
// on a stream passed as void*. Included by .cu files only (public headers stay plain C++).
//
// With MLAUDIT_CUDA_HOST_EMULATION defined (tests/cuda's host emulation), the same kernel bodies
// compile as C++ and run as serial loops: __global__/__device__ vanish, atomicAdd is a plain add.
#ifndef MLAUDIT_CUDA_HOST_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>
#include <string>

#include "mlaudit/engine/error.h"

#ifdef MLAUDIT_CUDA_HOST_EMULATION
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef MLAUDIT_CUDA_ATOMIC_ADD_DEFINED
#define MLAUDIT_CUDA_ATOMIC_ADD_DEFINED
template <class T>
T atomicAdd(T* p, T v) {
  T old = *p;
  *p += v;
  return old;
}
#endif
/// Host and device function (a function the CPU code and the kernels share).
#define MLAUDIT_HOST_DEVICE
#define MLAUDIT_GRID_STRIDE(i, n) for (int64_t i = 0; i < (n); ++i)
#define MLAUDIT_LAUNCH(kernel, n, stream, ...) \
  do {                                         \
    (void)(stream);                            \
    if ((n) > 0) kernel(__VA_ARGS__);          \
  } while (0)
#else
#define MLAUDIT_HOST_DEVICE __host__ __device__

namespace mlaudit::engine::device_kernels {

constexpr int kBlock = 256;

inline int grid_for(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return static_cast<int>(b);
}

inline void check_launch(const char* kernel) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw Error("engine", std::string("cuda: kernel ") + kernel + " failed: " + cudaGetErrorString(e));
}

}  // namespace mlaudit::engine::device_kernels

#define MLAUDIT_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

#define MLAUDIT_LAUNCH(kernel, n, stream, ...)                                                                    \
  do {                                                                                                            \
    if ((n) > 0) {                                                                                                \
      kernel<<<::mlaudit::engine::device_kernels::grid_for(n), ::mlaudit::engine::device_kernels::kBlock, 0,       \
               static_cast<cudaStream_t>(stream)>>>(__VA_ARGS__);                                                 \
      ::mlaudit::engine::device_kernels::check_launch(#kernel);                                                  \
    }                                                                                                             \
  } while (0)
#endif
