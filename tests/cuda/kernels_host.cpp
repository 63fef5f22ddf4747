// The engine's CUDA kernels (engine/src/cuda/*_impl.cu, one file per op family) compiled as C++
// for the host emulation (test_cuda_emulated): same sources, serial loops instead of grid-stride launches.
#define MLAUDIT_CUDA_HOST_EMULATION 1
#include "conv_impl.cu"
#include "elementwise_impl.cu"
#include "index_map_impl.cu"
#include "norm_impl.cu"
#include "pool_impl.cu"
#include "reduction_impl.cu"
