// Row-invariant GEMM (row_gemm.h): register tiles of up to 6 rows x 16 columns with 8-float
// registers (AVX2 + FMA, the release build's baseline) or 6 rows x 64 columns with 16-float
// registers (AVX-512F, chosen at run time). Both run, for every output, the same chain
//   acc = 0; acc = fma(a[i][k], b[k][j], acc) for k = 0..K-1; out = acc * alpha (+ c)
// with explicit fused multiply-adds (the final scale-and-add too, when alpha != 1), so they
// give the same bits. The loops over a tile's rows and panels are unrolled (GCC keeps the
// accumulators in registers only then: at -O2 it left them in memory, 3x slower).
#include "row_gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "fusion.h"
#include "weight_cache.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "../ops.h"

namespace mlaudit::engine::detail {

namespace {

constexpr int64_t kPanel = 16;
// K is taken in blocks of this many terms when it is longer (a block of B's panels stays in
// cache while the row tiles pass); a row's partial sums wait in a float buffer between blocks,
// which keeps every output's chain of fused multiply-adds, in the same order, bit for bit.
constexpr int64_t kKBlock = 1024;

// One tile's work: rows a[r * lda + kk] (kk < k) times the panels at b (panel_stride apart);
// starts from acc_in (a partial-sum buffer, ld_in floats a row) or from 0; raw_out stores the
// sums to c whole and padded (a partial), else c gets the epilogue (alpha, + c) for its `cols`.
struct TileArgs {
  const float* a;
  int64_t lda;
  const float* b;
  int64_t panel_stride, k;
  const float* acc_in;
  int64_t ld_in;
  float alpha;
  bool accumulate, raw_out;
  float* c;
  int64_t ldc, cols;
};

// ---- 8-float tiles (AVX2 + FMA): R rows x one panel (two registers per row) ----

template <int R>
__attribute__((target("avx2,fma"))) void tile8(const TileArgs& t) {
  __m256 lo[R], hi[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    lo[r] = t.acc_in ? _mm256_load_ps(t.acc_in + r * t.ld_in) : _mm256_setzero_ps();
    hi[r] = t.acc_in ? _mm256_load_ps(t.acc_in + r * t.ld_in + 8) : _mm256_setzero_ps();
  }
  const float* a = t.a;
  const float* bp = t.b;
  for (int64_t kk = 0; kk < t.k; ++kk) {
    const __m256 b0 = _mm256_load_ps(bp + kk * kPanel), b1 = _mm256_load_ps(bp + kk * kPanel + 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * t.lda + kk);
      lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
      hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
    }
  }
  if (t.raw_out) {  // a partial sum: the whole padded panel, no epilogue
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(t.c + r * t.ldc, lo[r]);
      _mm256_store_ps(t.c + r * t.ldc + 8, hi[r]);
    }
    return;
  }
  const __m256 va = _mm256_set1_ps(t.alpha);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(t.cols, 8))), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::max<int64_t>(t.cols - 8, 0))), lane);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = t.c + r * t.ldc;
    __m256 v0 = lo[r], v1 = hi[r];
    if (t.accumulate) {
      const __m256 c0 = _mm256_maskload_ps(cr, m0), c1 = _mm256_maskload_ps(cr + 8, m1);
      if (t.alpha != 1.f) {
        v0 = _mm256_fmadd_ps(v0, va, c0);
        v1 = _mm256_fmadd_ps(v1, va, c1);
      } else {
        v0 = _mm256_add_ps(c0, v0);
        v1 = _mm256_add_ps(c1, v1);
      }
    } else if (t.alpha != 1.f) {
      v0 = _mm256_mul_ps(v0, va);
      v1 = _mm256_mul_ps(v1, va);
    }
    _mm256_maskstore_ps(cr, m0, v0);
    _mm256_maskstore_ps(cr + 8, m1, v1);
  }
}

// ---- 16-float tiles (AVX-512F): R rows x P panels (one register per row and panel) ----

template <int R, int P>
__attribute__((target("avx512f"))) void tile16(const TileArgs& t) {
  __m512 acc[R][P];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p)
      acc[r][p] = t.acc_in ? _mm512_load_ps(t.acc_in + r * t.ld_in + p * kPanel) : _mm512_setzero_ps();
  const float* a = t.a;
  for (int64_t kk = 0; kk < t.k; ++kk) {
    __m512 bv[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) bv[p] = _mm512_load_ps(t.b + p * t.panel_stride + kk * kPanel);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * t.lda + kk]);
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_fmadd_ps(av, bv[p], acc[r][p]);
    }
  }
  if (t.raw_out) {  // a partial sum: the whole padded panels, no epilogue
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int p = 0; p < P; ++p) _mm512_store_ps(t.c + r * t.ldc + p * kPanel, acc[r][p]);
    return;
  }
  const __m512 va = _mm512_set1_ps(t.alpha);
  __mmask16 mask[P];
#pragma GCC unroll 16
  for (int p = 0; p < P; ++p) {
    const int64_t left = std::clamp<int64_t>(t.cols - p * kPanel, 0, kPanel);
    mask[p] = __mmask16(left >= 16 ? 0xFFFFu : ((1u << left) - 1));
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) {
      float* cr = t.c + r * t.ldc + p * kPanel;
      __m512 v = acc[r][p];
      if (t.accumulate) {
        const __m512 old = _mm512_maskz_loadu_ps(mask[p], cr);
        v = t.alpha != 1.f ? _mm512_fmadd_ps(v, va, old) : _mm512_add_ps(old, v);
      } else if (t.alpha != 1.f) {
        v = _mm512_mul_ps(v, va);
      }
      _mm512_mask_storeu_ps(cr, mask[p], v);
    }
}

bool have_avx512() {
  static const bool have = __builtin_cpu_supports("avx512f");
  return have;
}

std::atomic<int> forced_lanes{0};  // row_gemm_force_tiles (tests)

bool use_wide_tiles() {
  const int f = forced_lanes.load(std::memory_order_relaxed);
  return f == 8 ? false : have_avx512();
}

using Tile8 = void (*)(const TileArgs&);
using Tile16 = void (*)(const TileArgs&);

constexpr int kRows8 = 6, kRows16 = 6, kPanels16 = 4;

Tile8 tile8_for(int rows) {
  static const Tile8 t[kRows8] = {tile8<1>, tile8<2>, tile8<3>, tile8<4>, tile8<5>, tile8<6>};
  return t[rows - 1];
}

template <int P>
Tile16 tile16_rows(int rows) {
  static const Tile16 t[kRows16] = {tile16<1, P>, tile16<2, P>, tile16<3, P>, tile16<4, P>, tile16<5, P>, tile16<6, P>};
  return t[rows - 1];
}

Tile16 tile16_for(int rows, int panels) {
  switch (panels) {
    case 1: return tile16_rows<1>(rows);
    case 2: return tile16_rows<2>(rows);
    case 3: return tile16_rows<3>(rows);
    default: return tile16_rows<4>(rows);
  }
}

}  // namespace

std::shared_ptr<const PackedB> pack_b(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n) {
  auto out = std::make_shared<PackedB>();
  out->k = k;
  out->n = n;
  out->panels = (n + kPanel - 1) / kPanel;
  const size_t count = size_t(std::max<int64_t>(out->panels * k * kPanel, 1));
  void* mem = std::aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
  if (!mem) throw std::bad_alloc();
  out->data.reset(static_cast<float*>(mem));
  float* d = out->data.get();
  for (int64_t p = 0; p < out->panels; ++p) {
    const int64_t j0 = p * kPanel, w = std::min(kPanel, n - j0);
    float* dp = d + p * k * kPanel;
    for (int64_t kk = 0; kk < k; ++kk) {
      float* row = dp + kk * kPanel;
      if (trans)
        for (int64_t j = 0; j < w; ++j) row[j] = b[(j0 + j) * ldb + kk];
      else
        std::memcpy(row, b + kk * ldb + j0, size_t(w) * sizeof(float));
      for (int64_t j = w; j < kPanel; ++j) row[j] = 0.f;
    }
  }
  return out;
}

std::shared_ptr<const PackedB> packed_weight(const Node& node, const Tensor& w, int64_t ldb, bool trans, int64_t k,
                                             int64_t n) {
  if (!node.get_int(kConstWeightsAttribute, 0) || !w.storage()) return pack_b(w.f32(), ldb, trans, k, n);
  struct Packing {
    int64_t ldb, k, n;
    bool trans;
    std::shared_ptr<const PackedB> packed;
  };
  static WeightCache<Packing> cache;
  return cache
      .get(
          w, [&](const Packing& p) { return p.ldb == ldb && p.trans == trans && p.k == k && p.n == n; },
          [&] { return Packing{ldb, k, n, trans, pack_b(w.f32(), ldb, trans, k, n)}; },
          [](const Packing& p) { return size_t(p.packed->panels * p.k) * kPanel * sizeof(float); })
      .packed;
}

bool row_gemm_force_tiles(int lanes) {
  if (lanes == 16 && !have_avx512()) return false;
  forced_lanes.store(lanes == 8 || lanes == 16 ? lanes : 0);
  return true;
}

void row_gemm(int64_t m, const float* a, int64_t lda, const PackedB& b, float alpha, bool accumulate, float* c,
              int64_t ldc) {
  if (m <= 0 || b.n <= 0) return;
  const bool wide = use_wide_tiles();
  const int64_t rows_per_tile = wide ? kRows16 : kRows8;
  const int64_t panels_per_tile = wide ? kPanels16 : 1;
  const int64_t row_tiles = (m + rows_per_tile - 1) / rows_per_tile;
  const int64_t col_tiles = (b.panels + panels_per_tile - 1) / panels_per_tile;
  const int64_t tiles = row_tiles * col_tiles;
  const int64_t panel_stride = b.k * kPanel;
  const int64_t k_blocks = std::max<int64_t>(1, (b.k + kKBlock - 1) / kKBlock);
  // Partial sums between K blocks: [m][panels * 16], 64-byte rows.
  const int64_t ld_part = b.panels * kPanel;
  std::unique_ptr<float[], void (*)(float*)> part(nullptr, [](float* p) { std::free(p); });
  if (k_blocks > 1) {
    part.reset(static_cast<float*>(std::aligned_alloc(64, size_t(m * ld_part) * sizeof(float))));
    if (!part) throw std::bad_alloc();
  }
  auto run_tile = [&](int64_t t, int64_t kb) {
    // Column tiles outermost: a thread's panels of B stay in cache while its row tiles pass.
    const int64_t ct = t / row_tiles, rt = t % row_tiles;
    const int64_t r0 = rt * rows_per_tile, rows = std::min(rows_per_tile, m - r0);
    const int64_t p0 = ct * panels_per_tile, panels = std::min(panels_per_tile, b.panels - p0);
    const int64_t j0 = p0 * kPanel, k0 = kb * kKBlock, kc = std::min(kKBlock, b.k - k0);
    const bool last = kb + 1 == k_blocks;
    float* partial = part ? part.get() + r0 * ld_part + j0 : nullptr;
    TileArgs args{a + r0 * lda + k0,
                  lda,
                  b.panel(p0) + k0 * kPanel,
                  panel_stride,
                  k_blocks > 1 ? kc : b.k,
                  kb > 0 ? partial : nullptr,
                  ld_part,
                  alpha,
                  accumulate,
                  !last,
                  last ? c + r0 * ldc + j0 : partial,
                  last ? ldc : ld_part,
                  std::min(panels * kPanel, b.n - j0)};
    if (wide) tile16_for(int(rows), int(panels))(args);
    else tile8_for(int(rows))(args);
  };
  const int threads = std::max(1, num_threads());
  const double flops = 2.0 * double(m) * double(b.n) * double(b.k);
  const bool parallel = threads > 1 && tiles > 1 && flops > double(1 << 18) && !omp_in_parallel();
  for (int64_t kb = 0; kb < k_blocks; ++kb) {
    if (parallel) {
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t t = 0; t < tiles; ++t) run_tile(t, kb);
    } else {
      for (int64_t t = 0; t < tiles; ++t) run_tile(t, kb);
    }
  }
}

}  // namespace mlaudit::engine::detail
