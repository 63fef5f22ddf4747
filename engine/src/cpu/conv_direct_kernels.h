// Direct convolution of one zero-padded image (strided ones split into stride phases by
// conv_direct.cpp's make_plan, so every tap reads a contiguous run), included by one source file per vector
// width: each defines MLAUDIT_CD_NS (its own namespace, so no inline function or template is
// shared between translation units built with different instruction sets) and MLAUDIT_CD_LANES
// (floats per register), then includes this header, which defines conv_direct_image_<lanes>().
//
// Flattened-plane form: with the input padded to Hp x Wp, output (oh, ow) of a stride-1
// convolution reads input (oh + kh*dh, ow + kw*dw), i.e. flat position f = oh*Wp + ow plus the
// tap's offset kh*dh*Wp + kw*dw. So every tap is one contiguous vector load per L outputs; the
// positions with ow >= OW (Wp - OW per row) are computed and dropped when rows are copied out.
// A register tile holds OCB output channels x V vectors of positions; each tap loads V input
// vectors and broadcasts OCB weights (OCB*V fused multiply-adds per tap).
//
// Each output is sum_{t = 0..T-1} w[t] * x[t] over the taps t = (ic, kh, kw) in that order, one
// fused multiply-add per term from 0, then + bias, then max(., 0) when relu: the same bits for
// every vector width, tile, thread count and batch split.

namespace mlaudit::engine::MLAUDIT_CD_NS {

constexpr int L = MLAUDIT_CD_LANES;
typedef float vf __attribute__((vector_size(4 * L)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
// s in every lane, one broadcast (vf{} + s would add +0 first: -0 + 0 is +0).
inline vf splat(float s) {
#if MLAUDIT_CD_LANES == 16
  return (vf)_mm512_set1_ps(s);
#elif defined(__AVX__)
  return (vf)_mm256_set1_ps(s);
#else
  vf v;
  for (int i = 0; i < L; ++i) v[i] = s;
  return v;
#endif
}

// v > 0 ? v : 0 lane by lane (NaN gives 0, as std::max(v, 0.f) with v first does not, but the
// executor's Relu does: x > 0 ? x : 0).
inline vf relu(vf v) { return v > 0 ? v : vf{}; }

template <int OCB, int V>
void conv_tiles(const detail::DirectConvImage& g, int64_t ob_begin, int64_t ob_end, const float* xp, const float* wpack,
                const float* bias, bool relu_out, float* yflat) {
  const int64_t T = g.taps;
  const int64_t* off = g.tap_offsets;
  for (int64_t ob = ob_begin; ob < ob_end; ++ob) {
    const float* wb = wpack + ob * T * OCB;
    const int64_t oc0 = ob * OCB;
    for (int64_t f0 = 0; f0 < g.flat; f0 += V * L) {
      vf acc[OCB][V];
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[o][v] = vf{};
      const float* src = xp + f0;
      for (int64_t t = 0; t < T; ++t) {
        const float* s = src + off[t];
        vf xv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) xv[v] = load(s + v * L);
        const float* wt = wb + t * OCB;
#pragma GCC unroll 8
        for (int o = 0; o < OCB; ++o) {
          const vf wv = splat(wt[o]);
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc[o][v] += wv * xv[v];
        }
      }
#pragma GCC unroll 8
      for (int o = 0; o < OCB; ++o) {
        if (oc0 + o >= g.cout) break;
        const vf b = splat(bias ? bias[oc0 + o] : 0.f);
        float* dst = yflat + (oc0 + o) * g.flat_stride + f0;
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) {
          vf r = acc[o][v];
          if (bias) r += b;
          if (relu_out) r = relu(r);
          store(dst + v * L, r);
        }
      }
    }
  }
}

}  // namespace mlaudit::engine::MLAUDIT_CD_NS
