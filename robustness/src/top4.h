#pragma once
// top4: the four largest logits of a row, shared by the CPU DLR losses (losses.cpp) and the
// device APGD loss kernel (cuda/attack_kernels.cu), so the two never disagree on ties.
#include <cstdint>

#if defined(__CUDACC__) && !defined(MLAUDIT_CUDA_HOST_EMULATION)
#define MLAUDIT_TOP4_HD __host__ __device__
#else
#define MLAUDIT_TOP4_HD
#endif

namespace mlaudit::robustness::detail {

/// Indices of the four largest entries of z[0..c), descending, the first index on ties
/// (idx[k] = -1 when c < k + 1).
MLAUDIT_TOP4_HD inline void top4(const float* z, int64_t c, int64_t idx[4]) {
  for (int k = 0; k < 4; ++k) idx[k] = -1;
  for (int64_t j = 0; j < c; ++j) {
    for (int k = 0; k < 4; ++k) {
      if (idx[k] < 0 || z[j] > z[idx[k]]) {
        for (int m = 3; m > k; --m) idx[m] = idx[m - 1];
        idx[k] = j;
        break;
      }
    }
  }
}

}  // namespace mlaudit::robustness::detail
