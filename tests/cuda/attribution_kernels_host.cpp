// The explain module's CUDA kernels (explain/src/cuda/attribution_kernels.cu) compiled as C++ for
// the host emulation (test_cuda_emulated): same source, serial loops instead of grid-stride launches.
#define MLAUDIT_CUDA_HOST_EMULATION 1
#include "attribution_kernels.cu"
