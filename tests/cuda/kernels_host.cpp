// The CUDA kernels of engine/src/cuda/kernels.cu compiled as C++ for the host emulation
// (test_cuda_emulated): same source, serial loops instead of grid-stride launches.
#define MLAUDIT_CUDA_HOST_EMULATION 1
#include "kernels.cu"
