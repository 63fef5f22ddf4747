// DenseChain's block kernels, included by one source file per vector width: each defines
// MLAUDIT_DC_NS (its own namespace, so no inline function or template is shared between
// translation units built with different instruction sets), MLAUDIT_DC_LANES (floats per
// register) and MLAUDIT_DC_H (registers per feature row of a block), then includes this
// header, which also defines that width's entry points dense_chain_rows_<lanes>(),
// dense_chain_block_<lanes>(), dense_chain_mix_tables_<lanes>() and
// dense_chain_mix_block_<lanes>() (declared in dense_chain.cpp).
//
// Layout: a block of BR = H*L rows is held feature-major, [width][BR], so a register holds one
// feature of L rows and every lane does useful work whatever the layer widths (a layer with
// 2 outputs wastes nothing). A dense layer's output j of row r is
//   act(alpha * sum_{k=0..K-1} w[j][k] * a[k][r] + bias[j])
// summed in order k = 0..K-1 with one fused multiply-add per term (where the target has FMA:
// the release build's x86-64-v3 and AVX-512), so every vector width, block split and thread
// count gives the same bits.

namespace mlaudit::engine::MLAUDIT_DC_NS {

constexpr int L = MLAUDIT_DC_LANES;
constexpr int H = MLAUDIT_DC_H;  // registers per feature row of a block
constexpr int64_t BR = H * L;  // rows per block
typedef float vf __attribute__((vector_size(4 * L)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// v > 0 ? v : 0 lane by lane (NaN and -0 give +0), in one max instruction: x86's max returns
// its second operand unless the first is greater.
inline vf relu(vf v) {
#if MLAUDIT_DC_LANES == 16
  return (vf)_mm512_max_ps((__m512)v, _mm512_setzero_ps());
#elif defined(__AVX__)
  return (vf)_mm256_max_ps((__m256)v, _mm256_setzero_ps());
#else
  return v > 0 ? v : vf{};
#endif
}

// Relu / LeakyRelu fused into a dense layer's store (the executor's formulas, lane by lane).
inline vf activate(const DenseChain::Step& st, vf v) {
  if (st.act == DenseChain::Kind::Relu) return relu(v);
  if (st.act == DenseChain::Kind::LeakyRelu) return v >= 0 ? v : v * st.slope;
  return v;
}

// Outputs j0..j0+J-1 of a dense layer for the block: J x 2 accumulators stay in registers
// (12 or 16 independent FMA chains cover the FMA latency of two pipes).
template <int J>
inline void dense_outputs(const DenseChain::Step& st, int64_t j0, const float* in, float* out) {
  const int64_t K = st.in;
  const float* w = st.w.data() + j0 * K;
  vf acc[J][H];
#pragma GCC unroll 8
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) acc[j][h] = vf{};
  for (int64_t k = 0; k < K; ++k) {
    vf a[H];
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h) a[h] = load(in + k * BR + h * L);
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) {
      const float wk = w[j * K + k];
#pragma GCC unroll 4
      for (int h = 0; h < H; ++h) acc[j][h] += wk * a[h];
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < J; ++j) {
    const float b = st.bias[j0 + j];
#pragma GCC unroll 4
    for (int h = 0; h < H; ++h)
      store(out + (j0 + j) * BR + h * L, activate(st, st.alpha == 1.f ? acc[j][h] + b : st.alpha * acc[j][h] + b));
  }
}

// Outputs per pass: J x 2 accumulators plus two input registers and a broadcast fit the
// register file (32 registers with AVX-512, 16 with AVX2).
constexpr int kJ = L == 16 ? 8 : 6;

inline void dense(const DenseChain::Step& st, const float* in, float* out) {
  int64_t j = 0;
  for (; j + kJ <= st.out; j += kJ) dense_outputs<kJ>(st, j, in, out);
  switch (st.out - j) {
    case 7: dense_outputs<7>(st, j, in, out); break;
    case 6: dense_outputs<6>(st, j, in, out); break;
    case 5: dense_outputs<5>(st, j, in, out); break;
    case 4: dense_outputs<4>(st, j, in, out); break;
    case 3: dense_outputs<3>(st, j, in, out); break;
    case 2: dense_outputs<2>(st, j, in, out); break;
    case 1: dense_outputs<1>(st, j, in, out); break;
    default: break;
  }
}

// An element-wise step on one register (k: the feature's constant), the executor's formulas.
template <DenseChain::Kind K>
inline vf elementwise(vf v, float k, float slope) {
  using Kind = DenseChain::Kind;
  if constexpr (K == Kind::Sub) return v - k;
  if constexpr (K == Kind::SubFrom) return k - v;
  if constexpr (K == Kind::Add) return v + k;
  if constexpr (K == Kind::Mul) return v * k;
  if constexpr (K == Kind::Div) return v / k;
  if constexpr (K == Kind::DivInto) return k / v;
  if constexpr (K == Kind::Relu) return relu(v);
  if constexpr (K == Kind::LeakyRelu) return v >= 0 ? v : v * slope;
  return v;
}

// An element-wise step on every feature row j of the block (c: its per-feature constant).
template <DenseChain::Kind K>
inline void each(float* a, int64_t w, const float* c, float slope) {
  for (int64_t j = 0; j < w; ++j) {
    const float k = c ? c[j] : 0.f;
    for (int h = 0; h < H; ++h) store(a + j * BR + h * L, elementwise<K>(load(a + j * BR + h * L), k, slope));
  }
}

/// Steps [from, end) of the chain on the block held feature-major in `a` (`o`: a second buffer
/// of the same size); returns the buffer that holds the result.
inline float* run_steps(const std::vector<DenseChain::Step>& steps, size_t from, size_t end, float* a, float* o) {
  using Kind = DenseChain::Kind;
  for (size_t s = from; s < end; ++s) {
    const DenseChain::Step& st = steps[s];
    const int64_t w = st.in;
    const float* c = st.c.empty() ? nullptr : st.c.data();
    switch (st.kind) {
      case Kind::Sub: each<Kind::Sub>(a, w, c, 0.f); break;
      case Kind::SubFrom: each<Kind::SubFrom>(a, w, c, 0.f); break;
      case Kind::Add: each<Kind::Add>(a, w, c, 0.f); break;
      case Kind::Mul: each<Kind::Mul>(a, w, c, 0.f); break;
      case Kind::Div: each<Kind::Div>(a, w, c, 0.f); break;
      case Kind::DivInto: each<Kind::DivInto>(a, w, c, 0.f); break;
      case Kind::Relu: each<Kind::Relu>(a, w, c, 0.f); break;
      case Kind::LeakyRelu: each<Kind::LeakyRelu>(a, w, c, st.slope); break;
      case Kind::Sigmoid:  // the op's own vectorised kernel: the same bits as the op-by-op Sigmoid
        detail::sigmoid_array(a, a, w * BR);
        break;
      case Kind::Tanh:
        for (int64_t i = 0; i < w * BR; ++i) a[i] = std::tanh(a[i]);
        break;
      case Kind::Softmax:
      case Kind::LogSoftmax:
        break;  // on the output rows, by DenseChain::forward (always the last step)
      case Kind::Dense:
        dense(st, a, o);
        {
          float* t = a;  // (no std::swap: a library template instantiated under another ISA)
          a = o;
          o = t;
        }
        break;
    }
  }
  return a;
}

/// The block's `rows` rows from feature-major `a` into row-major y.
inline void transpose_out(const float* a, int64_t out_width, int64_t rows, float* y) {
  if (out_width == 1) {
    std::memcpy(y, a, sizeof(float) * rows);
    return;
  }
  if (out_width == 2) {
    // Interleave the two feature rows, L rows per step.
    int64_t r = 0;
    for (; r + L <= rows; r += L) {
      const vf u = load(a + r), v = load(a + BR + r);
#if MLAUDIT_DC_LANES == 16
      store(y + 2 * r, __builtin_shufflevector(u, v, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
      store(y + 2 * r + L, __builtin_shufflevector(u, v, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
#else
      store(y + 2 * r, __builtin_shufflevector(u, v, 0, 8, 1, 9, 2, 10, 3, 11));
      store(y + 2 * r + L, __builtin_shufflevector(u, v, 4, 12, 5, 13, 6, 14, 7, 15));
#endif
    }
    for (; r < rows; ++r) {
      y[2 * r] = a[r];
      y[2 * r + 1] = a[BR + r];
    }
    return;
  }
  for (int64_t j = 0; j < out_width; ++j)
    for (int64_t r = 0; r < rows; ++r) y[r * out_width + j] = a[j * BR + r];
}

/// `rows` (<= BR) rows of x through steps [0, end) of the chain into y (out_width values per
/// row; x may be y: every row is read before any is written); `scratch` holds
/// 2 * max_width * BR floats.
inline void run_block(const std::vector<DenseChain::Step>& steps, size_t end, int64_t in_width, int64_t out_width,
                      int64_t max_width, const float* x, int64_t rows, float* y, float* scratch) {
  float* a = scratch;
  // Transpose in; lanes of missing rows are zero.
#if MLAUDIT_DC_LANES == 16
  if (rows == BR && BR * in_width < (int64_t(1) << 31)) {
    // A full block: one AVX-512 gather per register (16 rows of one feature). (Applying a
    // leading normalisation in the register here measured slower than its own pass.)
    const __m512i step = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(static_cast<int>(in_width)));
    for (int64_t j = 0; j < in_width; ++j)
      for (int h = 0; h < H; ++h)
        store(a + j * BR + h * L, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, step, x + h * L * in_width + j, 4));
  } else
#endif
  for (int64_t j = 0; j < in_width; ++j) {
    float* aj = a + j * BR;
    for (int64_t r = 0; r < rows; ++r) aj[r] = x[r * in_width + j];
    for (int64_t r = rows; r < BR; ++r) aj[r] = 0.f;
  }
  transpose_out(run_steps(steps, 0, end, a, scratch + max_width * BR), out_width, rows, y);
}

// Mixture chunks (DenseChain::forward_mixtures): 16 rows, patterns hi * 16 + lo of one mixture
// entry, whose first dense layer's pre-activation is base[j] + T[j * 16 + lo] (output j).
constexpr int64_t kChunk = 16;
static_assert(BR % kChunk == 0, "a block holds whole mixture chunks");

/// The tables of one mixture entry: x and b after the chain's leading element-wise steps (ax,
/// ab), the first dense layer's transposed weights wt [K][Hp] and bias [Hp] (zero past H; Hp a
/// multiple of 16). D [max(n, 4)][Hp] (scratch): the delta of the q-th mixed group,
/// alpha * sum over its features f of wt[f][j] * (ax[f] - ab[f]) (zero for q >= n).
/// base [chunks][Hp]: base[0] = b's pre-activation (alpha * sum_k wt[k][j] * ab[k] + bias[j],
/// k in order as the dense kernel sums), base[h] = base[h without its top bit] + D[4 + top bit].
/// T [H][16]: lane lo = sum of D[q][j] over the set bits q < 4 of lo, in increasing q (each
/// delta times 1 or 0, exact; adding 0 changes no sum).
inline void mix_tables(const float* wt, const float* bias, float alpha, int64_t K, int64_t H, int64_t Hp,
                       const float* ax, const float* ab, const std::vector<std::vector<int64_t>>& groups,
                       uint64_t mask, int64_t chunks, float* D, float* T, float* base) {
  constexpr int64_t C16 = 16;
  const int n = __builtin_popcountll(mask);
  const int nq = n < 4 ? 4 : n;
  for (int64_t i = n * Hp; i < nq * Hp; ++i) D[i] = 0.f;
  int q = 0;
  for (uint64_t g = mask; g; g &= g - 1, ++q) {
    // (The first product is stored as it is: 0 + p, which a fused multiply-add would give, is p.)
    float* Dq = D + q * Hp;
    bool first = true;
    for (int64_t f : groups[__builtin_ctzll(g)]) {
      const float diff = ax[f] - ab[f];
      const float* wf = wt + f * Hp;
      for (int64_t j = 0; j < Hp; j += L) store(Dq + j, first ? load(wf + j) * diff : load(Dq + j) + load(wf + j) * diff);
      first = false;
    }
    if (first)
      for (int64_t j = 0; j < Hp; ++j) Dq[j] = 0.f;
    if (alpha != 1.f)
      for (int64_t j = 0; j < Hp; j += L) store(Dq + j, load(Dq + j) * alpha);
  }
  for (int64_t j = 0; j < Hp; j += L) {
    vf acc{};
    for (int64_t k = 0; k < K; ++k) acc += load(wt + k * Hp + j) * ab[k];
    store(base + j, alpha == 1.f ? acc + load(bias + j) : alpha * acc + load(bias + j));
  }
  alignas(64) static const float m[4][C16] = {{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
                                              {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1},
                                              {0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
                                              {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}};
  for (int64_t h = 0; h < C16; h += L) {
    const vf m0 = load(m[0] + h), m1 = load(m[1] + h), m2 = load(m[2] + h), m3 = load(m[3] + h);
    for (int64_t j = 0; j < H; ++j)
      store(T + j * C16 + h, ((D[j] * m0 + D[Hp + j] * m1) + D[2 * Hp + j] * m2) + D[3 * Hp + j] * m3);
  }
  for (int64_t h = 1; h < chunks; ++h) {
    const int top = 63 - __builtin_clzll(static_cast<uint64_t>(h));
    const float* from = base + (h & ~(int64_t(1) << top)) * Hp;
    const float* delta = D + (4 + top) * Hp;
    float* to = base + h * Hp;
    for (int64_t j = 0; j < Hp; j += L) store(to + j, load(from + j) + load(delta + j));
  }
}

/// The first dense layer's outputs (activation ACT: Relu, LeakyRelu, or Dense for none) of
/// `chunks` mixture chunks, feature-major into a.
template <DenseChain::Kind ACT>
inline void mix_fill(int64_t H, const float* const* T, const float* const* base, int64_t chunks, float slope,
                     float* a) {
  for (int64_t c = 0; c < chunks; ++c) {
    const float* Tc = T[c];
    const float* bc = base[c];
    float* ac = a + c * kChunk;
    // Four outputs at a time, their loads grouped before their stores (for all the compiler
    // knows the stores could alias the tables, so it cannot reorder them itself): measured
    // 30-40% faster than one output per iteration.
    constexpr int HC = kChunk / L;
    auto act = [slope](vf v) {
      return ACT == DenseChain::Kind::Relu        ? relu(v)
             : ACT == DenseChain::Kind::LeakyRelu ? (v >= 0 ? v : v * slope)
                                                  : v;
    };
    int64_t j = 0;
    for (; j + 4 <= H; j += 4) {
      vf v[4][HC];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u)
#pragma GCC unroll 2
        for (int h = 0; h < HC; ++h) v[u][h] = load(Tc + (j + u) * kChunk + h * L) + bc[j + u];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u)
#pragma GCC unroll 2
        for (int h = 0; h < HC; ++h) store(ac + (j + u) * BR + h * L, act(v[u][h]));
    }
    for (; j < H; ++j)
#pragma GCC unroll 2
      for (int h = 0; h < HC; ++h) store(ac + j * BR + h * L, act(load(Tc + j * kChunk + h * L) + bc[j]));
  }
}

/// `chunks` (<= BR / 16) mixture chunks through the chain into y (16 rows each): the first dense
/// layer (steps[head]) is formed from each chunk's tables with its activation, then the steps
/// after it run as in run_block.
inline void run_mix_block(const std::vector<DenseChain::Step>& steps, size_t head, int64_t out_width,
                          int64_t max_width, const float* const* T, const float* const* base, int64_t chunks,
                          float* y, float* scratch) {
  const DenseChain::Step& dn = steps[head];
  const int64_t H = dn.out;
  float* a = scratch;
  if (dn.act == DenseChain::Kind::Relu)
    mix_fill<DenseChain::Kind::Relu>(H, T, base, chunks, 0.f, a);
  else if (dn.act == DenseChain::Kind::LeakyRelu)
    mix_fill<DenseChain::Kind::LeakyRelu>(H, T, base, chunks, dn.slope, a);
  else
    mix_fill<DenseChain::Kind::Dense>(H, T, base, chunks, 0.f, a);
  if (chunks * kChunk < BR)
    for (int64_t j = 0; j < H; ++j)
      for (int64_t r = chunks * kChunk; r < BR; ++r) a[j * BR + r] = 0.f;
  transpose_out(run_steps(steps, head + 1, steps.size(), a, scratch + max_width * BR), out_width, chunks * kChunk, y);
}

}  // namespace mlaudit::engine::MLAUDIT_DC_NS

#define MLAUDIT_DC_CAT2(a, b) a##b
#define MLAUDIT_DC_CAT(a, b) MLAUDIT_DC_CAT2(a, b)
namespace mlaudit::engine::detail {
int64_t MLAUDIT_DC_CAT(dense_chain_rows_, MLAUDIT_DC_LANES)() { return MLAUDIT_DC_NS::BR; }
void MLAUDIT_DC_CAT(dense_chain_block_, MLAUDIT_DC_LANES)(const std::vector<DenseChain::Step>& steps, size_t end,
                                                         int64_t in_width, int64_t out_width, int64_t max_width,
                                                         const float* x, int64_t rows, float* y, float* scratch) {
  MLAUDIT_DC_NS::run_block(steps, end, in_width, out_width, max_width, x, rows, y, scratch);
}
void MLAUDIT_DC_CAT(dense_chain_mix_tables_, MLAUDIT_DC_LANES)(const float* wt, const float* bias, float alpha, int64_t K,
                                                              int64_t H, int64_t Hp, const float* ax, const float* ab,
                                                              const std::vector<std::vector<int64_t>>& groups,
                                                              uint64_t mask, int64_t chunks, float* D, float* T,
                                                              float* base) {
  MLAUDIT_DC_NS::mix_tables(wt, bias, alpha, K, H, Hp, ax, ab, groups, mask, chunks, D, T, base);
}
void MLAUDIT_DC_CAT(dense_chain_mix_block_, MLAUDIT_DC_LANES)(const std::vector<DenseChain::Step>& steps, size_t head,
                                                             int64_t out_width, int64_t max_width, const float* const* T,
                                                             const float* const* base, int64_t chunks, float* y,
                                                             float* scratch) {
  MLAUDIT_DC_NS::run_mix_block(steps, head, out_width, max_width, T, base, chunks, y, scratch);
}
}  // namespace mlaudit::engine::detail
