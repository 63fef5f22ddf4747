// The robustness module's CUDA kernels (robustness/src/cuda/attack_kernels.cu) compiled as C++ for
// the host emulation (test_cuda_emulated): same source, serial loops instead of grid-stride launches.
#define MLAUDIT_CUDA_HOST_EMULATION 1
#include "attack_kernels.cu"
