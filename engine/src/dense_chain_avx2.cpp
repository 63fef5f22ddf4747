// DenseChain block kernel with 8-float registers (AVX2 in the release build's x86-64-v3,
// generic vector code in other builds).
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "dense_chain.h"

#define MLAUDIT_DC_NS dc8
#define MLAUDIT_DC_LANES 8
#define MLAUDIT_DC_H 2
#include "dense_chain_kernels.h"
