// DenseChain's block kernels, included by one source file per vector width: each defines
// MLAUDIT_DC_NS (its own namespace, so no inline function or template is shared between
// translation units built with different instruction sets), MLAUDIT_DC_LANES (floats per
// register) and MLAUDIT_DC_H (registers per feature row of a block), then includes this
// header, which also defines that width's entry points dense_chain_rows_<lanes>() and
// dense_chain_block_<lanes>() (declared in dense_chain.cpp).
//
// Layout: a block of 2*L rows is held feature-major, [width][2L], so a register holds one
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

// Relu / LeakyRelu fused into a dense layer's store (the executor's formulas, lane by lane).
inline vf activate(const DenseChain::Step& st, vf v) {
  if (st.act == DenseChain::Kind::Relu) return v > 0 ? v : vf{};
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
  if constexpr (K == Kind::Relu) return v > 0 ? v : vf{};
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

/// Rows [r0, r0 + rows) of x (rows <= BR) through the chain into y; `scratch` holds
/// 2 * max_width * BR floats.
inline void run_block(const std::vector<DenseChain::Step>& steps, int64_t in_width, int64_t out_width,
                      int64_t max_width, const float* x, int64_t rows, float* y, float* scratch) {
  using Kind = DenseChain::Kind;
  float* a = scratch;
  float* o = scratch + max_width * BR;
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
  for (const DenseChain::Step& st : steps) {
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
      case Kind::Sigmoid:
        for (int64_t i = 0; i < w * BR; ++i) a[i] = detail::sigmoid_value(a[i]);
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
          float* t = a;
          a = o;
          o = t;
        }
        break;
    }
  }
  // Transpose out.
  for (int64_t j = 0; j < out_width; ++j)
    for (int64_t r = 0; r < rows; ++r) y[r * out_width + j] = a[j * BR + r];
}

}  // namespace mlaudit::engine::MLAUDIT_DC_NS

#define MLAUDIT_DC_CAT2(a, b) a##b
#define MLAUDIT_DC_CAT(a, b) MLAUDIT_DC_CAT2(a, b)
namespace mlaudit::engine::detail {
int64_t MLAUDIT_DC_CAT(dense_chain_rows_, MLAUDIT_DC_LANES)() { return MLAUDIT_DC_NS::BR; }
void MLAUDIT_DC_CAT(dense_chain_block_, MLAUDIT_DC_LANES)(const std::vector<DenseChain::Step>& steps, int64_t in_width,
                                                         int64_t out_width, int64_t max_width, const float* x,
                                                         int64_t rows, float* y, float* scratch) {
  MLAUDIT_DC_NS::run_block(steps, in_width, out_width, max_width, x, rows, y, scratch);
}
}  // namespace mlaudit::engine::detail
