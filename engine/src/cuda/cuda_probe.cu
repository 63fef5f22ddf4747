// CUDA backend entry points. Only .cu files see CUDA headers; the engine calls
// these through plain C declarations. The op kernels land with the CUDA issue.
#include <cuda_runtime.h>

namespace {
// Device-side self-check used by the probe: y = a*x + y.
__global__ void saxpy_kernel(int n, float a, const float* x, float* y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
}  // namespace

extern "C" int mlaudit_cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

extern "C" int mlaudit_cuda_selfcheck() {
  if (mlaudit_cuda_device_count() == 0) return -1;
  const int n = 256;
  float *x = nullptr, *y = nullptr;
  if (cudaMalloc(&x, n * sizeof(float)) != cudaSuccess) return -2;
  if (cudaMalloc(&y, n * sizeof(float)) != cudaSuccess) { cudaFree(x); return -2; }
  cudaMemset(x, 0, n * sizeof(float));
  cudaMemset(y, 0, n * sizeof(float));
  saxpy_kernel<<<(n + 127) / 128, 128>>>(n, 2.f, x, y);
  cudaError_t err = cudaDeviceSynchronize();
  cudaFree(x);
  cudaFree(y);
  return err == cudaSuccess ? 0 : -3;
}
