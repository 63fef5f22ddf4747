#pragma once
// Row-invariant matrix product for the forward (and input-gradient) GEMMs of Gemm and MatMul:
//   C[i][j] = alpha * sum_{k=0..K-1} A[i][k] * B[k][j]  (+ C[i][j] when accumulate)
// where the sum of every output is one fused multiply-add chain in order k = 0, 1, ..., K-1,
// started from 0. Rows are computed by register tiles of a few rows; every row of a tile, and
// a row of a short tile at the end, goes through the same operations, so an output row's bits
// depend on its own row of A and on B only: not on how many rows the call has, where the row
// sits in it, the thread count or the vector width (AVX2 and AVX-512 tiles give the same bits;
// dense_chain.h sums its layers the same way). A library sgemm chooses kernels and splits K by
// the matrix sizes: the same image got other last bits at batch 1 and batch 256, so explain's
// and attack's shards, run --batch and the KernelSHAP thread split all changed results.
//
// B is packed once into panels of 16 columns ([panel][k][16], zero-padded past N); a constant
// weight (an initializer: kConstWeightsAttribute) keeps its packing in a cache keyed by its
// storage, as the convolutions' reordered weights are.
#include <cstdint>
#include <memory>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine::detail {

/// A K x N matrix in panels of 16 columns, zero-padded to a multiple of 16.
struct PackedB {
  int64_t k = 0, n = 0, panels = 0;
  std::unique_ptr<float[], void (*)(float*)> data{nullptr, [](float* p) { std::free(p); }};
  const float* panel(int64_t p) const { return data.get() + p * k * 16; }
};

/// Packs the logical K x N matrix L(k, n) = trans ? b[n * ldb + k] : b[k * ldb + n].
std::shared_ptr<const PackedB> pack_b(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n);

/// pack_b, cached when `node` marks its weight input constant and `w` is the weight's tensor
/// (the cache entry dies with the tensor's storage).
std::shared_ptr<const PackedB> packed_weight(const Node& node, const Tensor& w, int64_t ldb, bool trans, int64_t k,
                                             int64_t n);

/// C[i * ldc + j] (i < m, j < b.n) = alpha * (A row i . column j of B) [+ C[i * ldc + j] when
/// accumulate]; A row i is a[i * lda .. + b.k). Threads split rows and panels when the product
/// is large and the caller is not inside a parallel region.
void row_gemm(int64_t m, const float* a, int64_t lda, const PackedB& b, float alpha, bool accumulate, float* c,
              int64_t ldc);

/// Tests: 8 forces the 8-float (AVX2) tiles, 16 the 16-float (AVX-512) ones where the CPU has
/// them, 0 restores the run-time choice. Returns whether the request can be met.
bool row_gemm_force_tiles(int lanes);

}  // namespace mlaudit::engine::detail
