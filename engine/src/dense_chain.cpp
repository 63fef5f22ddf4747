// DenseChain: recognition of single-chain dense graphs and their fused, cache-blocked forward.
#include "dense_chain.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::engine {

namespace detail {
// Block kernels (dense_chain_avx2.cpp, dense_chain_avx512.cpp): one block of rows per call.
void dense_chain_block_8(const std::vector<DenseChain::Step>& steps, size_t end, int64_t in_width, int64_t out_width,
                         int64_t max_width, const float* x, int64_t rows, float* y, float* scratch);
void dense_chain_block_16(const std::vector<DenseChain::Step>& steps, size_t end, int64_t in_width, int64_t out_width,
                          int64_t max_width, const float* x, int64_t rows, float* y, float* scratch);
void dense_chain_mix_block_8(const std::vector<DenseChain::Step>& steps, size_t head, int64_t out_width,
                             int64_t max_width, const float* const* T, const float* const* base, int64_t chunks,
                             float* y, float* scratch);
void dense_chain_mix_block_16(const std::vector<DenseChain::Step>& steps, size_t head, int64_t out_width,
                              int64_t max_width, const float* const* T, const float* const* base, int64_t chunks,
                              float* y, float* scratch);
void dense_chain_mix_tables_8(const float* wt, const float* bias, float alpha, int64_t K, int64_t H, int64_t Hp,
                              const float* ax, const float* ab, const std::vector<std::vector<int64_t>>& groups,
                              uint64_t mask, int64_t chunks, float* D, float* T, float* base);
void dense_chain_mix_tables_16(const float* wt, const float* bias, float alpha, int64_t K, int64_t H, int64_t Hp,
                               const float* ax, const float* ab, const std::vector<std::vector<int64_t>>& groups,
                               uint64_t mask, int64_t chunks, float* D, float* T, float* base);
bool dense_chain_have_16();
int64_t dense_chain_rows_8();  // rows per block of each kernel
int64_t dense_chain_rows_16();
}  // namespace detail

namespace {

constexpr int64_t kMaxWidth = 16384;  // wider layers gain nothing from the fusion

// n floats of v (grown when needed, kept between calls) starting at a 64-byte boundary, so that
// the kernels' 16-float loads and stores of block rows never straddle two cache lines.
float* aligned_floats(std::vector<float>& v, size_t n) {
  if (v.size() < n + 16) v.resize(n + 16);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// Constant operand of an element-wise step as one value per feature (or one scalar): shapes
// [], [1], [w] and [1, w] broadcast over rows without widening the row; anything else does not fit.
bool per_feature(const Tensor& c, std::vector<float>& out) {
  if (c.dtype() != DType::Float32) return false;
  const Shape& s = c.shape();
  if (s.size() > 2 || (s.size() == 2 && s[0] != 1)) return false;
  out.assign(c.f32(), c.f32() + c.numel());
  return c.numel() >= 1;
}

}  // namespace

std::unique_ptr<DenseChain> DenseChain::compile(const Graph& g) {
  if (g.inputs.size() != 1 || g.outputs.size() != 1) return nullptr;
  const ValueInfo& input = g.inputs[0];
  if ((input.dtype != DType::Float32 && input.dtype != DType::Float64) || input.shape.size() != 2) return nullptr;
  // Every intermediate value must have exactly one reader (the next node) and not be a graph output.
  std::map<std::string, int> readers;
  for (const Node& n : g.nodes)
    for (const std::string& s : n.inputs)
      if (!s.empty()) ++readers[s];

  auto chain = std::unique_ptr<DenseChain>(new DenseChain());
  std::string cur = input.name;
  int64_t w = input.shape[1] > 0 ? input.shape[1] : -1;  // current row width (-1: not known yet)
  const int64_t in_known = w;
  bool ended = false;  // a Softmax must be the last node
  for (const Node& n : g.nodes) {
    if (ended || readers[cur] != 1 || n.domain != "" || n.outputs.size() != 1 || n.outputs[0].empty()) return nullptr;
    // Inputs other than the data input must be constants.
    int data_pos = -1;
    std::vector<const Tensor*> consts;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.inputs[k].empty()) {
        consts.push_back(nullptr);
      } else if (n.inputs[k] == cur && data_pos < 0) {
        data_pos = static_cast<int>(k);
      } else if (const Tensor* t = g.initializer(n.inputs[k])) {
        consts.push_back(t);
      } else {
        return nullptr;
      }
    }
    if (data_pos < 0) return nullptr;
    Step st;
    const std::string& op = n.op_type;
    if (op == "Sub" || op == "Add" || op == "Mul" || op == "Div") {
      if (n.inputs.size() != 2 || !consts[0] || !per_feature(*consts[0], st.c)) return nullptr;
      const bool first = data_pos == 0;
      st.kind = op == "Add" ? Kind::Add : op == "Mul" ? Kind::Mul : op == "Sub" ? (first ? Kind::Sub : Kind::SubFrom)
                                                                               : (first ? Kind::Div : Kind::DivInto);
      if (st.c.size() > 1) {
        if (w >= 0 && static_cast<int64_t>(st.c.size()) != w) return nullptr;
        w = static_cast<int64_t>(st.c.size());
      }
    } else if (op == "Gemm" || op == "MatMul") {
      if (data_pos != 0 || consts.empty() || !consts[0] || consts[0]->dtype() != DType::Float32 || consts[0]->rank() != 2) return nullptr;
      const Tensor& b = *consts[0];
      const bool gemm = op == "Gemm";
      if (gemm && n.get_int("transA", 0) != 0) return nullptr;
      const bool tb = gemm && n.get_int("transB", 0) != 0;
      const int64_t K = tb ? b.shape()[1] : b.shape()[0], N = tb ? b.shape()[0] : b.shape()[1];
      if ((w >= 0 && K != w) || K > kMaxWidth || N > kMaxWidth || N < 1) return nullptr;
      st.kind = Kind::Dense;
      st.in = K;
      st.out = N;
      st.alpha = gemm ? n.get_float("alpha", 1.f) : 1.f;
      st.w.resize(N * K);
      for (int64_t j = 0; j < N; ++j)
        for (int64_t k = 0; k < K; ++k) st.w[j * K + k] = tb ? b.f32()[j * K + k] : b.f32()[k * N + j];
      st.bias.assign(N, 0.f);
      if (gemm && consts.size() > 1 && consts[1]) {
        std::vector<float> c;
        if (!per_feature(*consts[1], c) || (c.size() != 1 && static_cast<int64_t>(c.size()) != N)) return nullptr;
        const float beta = n.get_float("beta", 1.f);
        for (int64_t j = 0; j < N; ++j) st.bias[j] = beta * c[c.size() == 1 ? 0 : j];
      }
      w = N;
    } else if (op == "Relu" || op == "LeakyRelu" || op == "Sigmoid" || op == "Tanh") {
      st.kind = op == "Relu" ? Kind::Relu : op == "LeakyRelu" ? Kind::LeakyRelu : op == "Sigmoid" ? Kind::Sigmoid : Kind::Tanh;
      st.slope = op == "LeakyRelu" ? n.get_float("alpha", 0.01f) : 0.f;
      // Relu / LeakyRelu right after a dense layer: applied in its store.
      if ((st.kind == Kind::Relu || st.kind == Kind::LeakyRelu) && !chain->steps_.empty() &&
          chain->steps_.back().kind == Kind::Dense && chain->steps_.back().act == Kind::Dense) {
        chain->steps_.back().act = st.kind;
        chain->steps_.back().slope = st.slope;
        cur = n.outputs[0];
        continue;
      }
    } else if (op == "Identity" || op == "Flatten") {
      // Flatten of [N, w] at axis 1 (or -1) leaves rows as they are.
      const int64_t axis = op == "Flatten" ? n.get_int("axis", 1) : 1;
      if (axis != 1 && axis != -1) return nullptr;
      cur = n.outputs[0];
      continue;
    } else if (op == "Softmax" || op == "LogSoftmax") {
      const int64_t axis = n.get_int("axis", g.opset < 13 ? 1 : -1);
      if (axis != 1 && axis != -1) return nullptr;
      st.kind = op == "Softmax" ? Kind::Softmax : Kind::LogSoftmax;
      ended = true;
    } else {
      return nullptr;
    }
    if (st.kind != Kind::Dense) st.in = st.out = w;
    chain->steps_.push_back(std::move(st));
    cur = n.outputs[0];
  }
  if (cur != g.outputs[0].name || chain->steps_.empty()) return nullptr;
  // The input width: the graph's, else the first vector constant's or dense layer's; widths of
  // element-wise steps before it were unknown (only scalars) and are now fixed.
  int64_t width = in_known;
  for (const Step& st : chain->steps_)
    if (width < 0 && st.in > 0) width = st.in;
  if (width <= 0 || width > kMaxWidth) return nullptr;
  int64_t max_width = width;
  double flops = 0;
  for (Step& st : chain->steps_) {
    if (st.kind == Kind::Dense) {
      if (st.in != width) return nullptr;
      width = st.out;
      flops += 2.0 * st.in * st.out;
    } else {
      if (st.in >= 0 && st.in != width) return nullptr;
      st.in = st.out = width;
      flops += width;
    }
    if (st.c.size() == 1) st.c.assign(width, st.c[0]);  // a scalar, one value per feature
    max_width = std::max(max_width, width);
  }
  chain->in_width_ = in_known > 0 ? in_known : chain->steps_.front().in;
  chain->out_width_ = width;
  chain->max_width_ = max_width;
  chain->flops_per_row_ = flops;
  chain->softmax_ = chain->steps_.back().kind == Kind::Softmax || chain->steps_.back().kind == Kind::LogSoftmax;
  chain->log_softmax_ = chain->steps_.back().kind == Kind::LogSoftmax;
  for (size_t s = 0; s < chain->steps_.size() && chain->head_ < 0; ++s)
    if (chain->steps_[s].kind == Kind::Dense) {
      const Step& dn = chain->steps_[s];
      chain->head_ = static_cast<int>(s);
      const int64_t hp = (dn.out + 15) / 16 * 16;
      chain->head_hp_ = hp;
      chain->head_wt_.assign(dn.in * hp, 0.f);
      for (int64_t j = 0; j < dn.out; ++j)
        for (int64_t k = 0; k < dn.in; ++k) chain->head_wt_[k * hp + j] = dn.w[j * dn.in + k];
      chain->head_bias_.assign(hp, 0.f);
      std::copy(dn.bias.begin(), dn.bias.end(), chain->head_bias_.begin());
    }
  // MLAUDIT_DENSE_LANES=8 keeps the 8-float kernels on an AVX-512 machine (tests compare them).
  const char* lanes = std::getenv("MLAUDIT_DENSE_LANES");
  chain->wide_ = detail::dense_chain_have_16() && !(lanes && std::string(lanes) == "8");
  return chain;
}

void DenseChain::leading(float* x, int64_t n) const {
  const bool wide = wide_;
  const int64_t br = wide ? detail::dense_chain_rows_16() : detail::dense_chain_rows_8();
  const auto block = wide ? detail::dense_chain_block_16 : detail::dense_chain_block_8;
  static thread_local std::vector<float> scratch_tl;
  float* const scratch = aligned_floats(scratch_tl, static_cast<size_t>(2 * max_width_ * br));
  for (int64_t r0 = 0; r0 < n; r0 += br) {
    float* xb = x + r0 * in_width_;
    block(steps_, static_cast<size_t>(head_), in_width_, in_width_, max_width_, xb, std::min(br, n - r0), xb, scratch);
  }
}

void DenseChain::forward_mixtures(const std::vector<Mixtures>& batch, MixtureOutputs& out) const {
  if (head_ < 0) throw UnsupportedError("engine", "dense chain: no dense layer to mix rows through");
  constexpr int64_t kChunk = 16;  // patterns per chunk (the kernels' mixture chunk)
  constexpr int kLo = 4;          // pattern bits within a chunk
  const Step& dn = steps_[head_];
  const int64_t d = in_width_, H = dn.out, K = dn.in, Hp = head_hp_;
  struct Entry {
    size_t item;  // its Mixtures item (x)
    const float* b;
    const std::vector<std::vector<int64_t>>* groups;
    uint64_t mask;
    int64_t chunk0, chunks;
    size_t table;  // offset of its T [H][16], then base [chunks][Hp], in `tables`
  };
  std::vector<Entry> entries;
  out.outputs = out_width_;
  out.offsets.assign(batch.size(), {});
  int64_t chunks = 0;
  size_t table_size = 0;
  check_mixtures(batch, d);
  for (size_t i = 0; i < batch.size(); ++i) {
    const Mixtures& m = batch[i];
    out.offsets[i].resize(m.rows.size());
    for (size_t k = 0; k < m.rows.size(); ++k) {
      const uint64_t mask = m.masks[k];
      const int n = __builtin_popcountll(mask);
      const int64_t nc = n <= kLo ? 1 : int64_t(1) << (n - kLo);
      out.offsets[i][k] = chunks * kChunk;
      entries.push_back({i, m.rows[k], m.groups, mask, chunks, nc, table_size});
      chunks += nc;
      table_size += static_cast<size_t>(H * kChunk + nc * Hp);
    }
  }
  out.values.resize(static_cast<size_t>(chunks * kChunk * out_width_));  // every row is written below
  // Kept per thread between calls (KernelSHAP makes one call per sample or block).
  // (Named through plain pointers inside the parallel regions below: there, a thread_local name
  // would resolve to each worker's own instance.)
  static thread_local std::vector<float> tables_tl;
  static thread_local std::vector<int64_t> chunk_entry_tl;
  float* const tables = aligned_floats(tables_tl, table_size);
  const int threads_avail = std::max(1, num_threads());
  const bool outer = !omp_in_parallel();

  // t(x) and t(b), the leading element-wise steps, on copies of the rows: items' x, then every
  // entry's b.
  static thread_local std::vector<float> rows_tl;
  rows_tl.resize((batch.size() + entries.size()) * d);
  float* const axs = rows_tl.data();
  float* const abs = axs + batch.size() * d;
  for (size_t i = 0; i < batch.size(); ++i) std::copy(batch[i].x, batch[i].x + d, axs + i * d);
  const int64_t ne = static_cast<int64_t>(entries.size());
  for (int64_t e = 0; e < ne; ++e) std::copy(entries[e].b, entries[e].b + d, abs + e * d);
  if (head_ > 0) leading(axs, static_cast<int64_t>(batch.size()) + ne);
  // Per entry, the kernels' tables (mix_tables): the first layer's pre-activation of b, each
  // mixed group's delta D[q], T[j][lo] = sum of D[q][j] over the set bits q < 4 of lo
  // (increasing q) and base[h] = base[h without its top bit] + D[4 + top bit] (base[0]: b's).
  // Pattern hi * 16 + lo is then base[hi][j] + T[j][lo].
  const int t1 = outer && ne * H * d > 200000 ? threads_avail : 1;
  const auto tables_of = wide_ ? detail::dense_chain_mix_tables_16 : detail::dense_chain_mix_tables_8;
#pragma omp parallel num_threads(t1) if (t1 > 1)
  {
    std::vector<float> D;
#pragma omp for schedule(static)
    for (int64_t e = 0; e < ne; ++e) {
      const Entry& en = entries[e];
      float* const Dp = aligned_floats(D, static_cast<size_t>(std::max(__builtin_popcountll(en.mask), kLo) * Hp));
      float* T = tables + en.table;
      tables_of(head_wt_.data(), head_bias_.data(), dn.alpha, K, H, Hp, axs + en.item * d, abs + e * d, *en.groups,
                en.mask, en.chunks, Dp, T, T + H * kChunk);
    }
  }

  // Blocks of whole chunks through the kernels.
  const bool wide = wide_;
  const int64_t br = wide ? detail::dense_chain_rows_16() : detail::dense_chain_rows_8();
  const auto block = wide ? detail::dense_chain_mix_block_16 : detail::dense_chain_mix_block_8;
  const int64_t per_block = br / kChunk;
  const int64_t blocks = (chunks + per_block - 1) / per_block;
  // Chunk c's entry: chunk ranges are consecutive in entry order.
  chunk_entry_tl.resize(chunks);
  int64_t* const chunk_entry = chunk_entry_tl.data();
  for (int64_t e = 0; e < ne; ++e)
    std::fill(chunk_entry + entries[e].chunk0, chunk_entry + entries[e].chunk0 + entries[e].chunks, e);
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads_avail, blocks)));
  const bool parallel = threads > 1 && outer && flops_per_row_ * double(chunks * kChunk) > 1e6 * threads;
  float* const values = out.values.data();
#pragma omp parallel num_threads(threads) if (parallel)
  {
    static thread_local std::vector<float> scratch_tl;
    float* const scratch = aligned_floats(scratch_tl, static_cast<size_t>(2 * max_width_ * br));
    const float* T[8];
    const float* base[8];
#pragma omp for schedule(static)
    for (int64_t bl = 0; bl < blocks; ++bl) {
      const int64_t c0 = bl * per_block, nc = std::min(per_block, chunks - c0);
      for (int64_t c = 0; c < nc; ++c) {
        const Entry& en = entries[chunk_entry[c0 + c]];
        T[c] = tables + en.table;
        base[c] = T[c] + H * kChunk + (c0 + c - en.chunk0) * Hp;
      }
      float* yb = values + c0 * kChunk * out_width_;
      block(steps_, static_cast<size_t>(head_), out_width_, max_width_, T, base, nc, yb, scratch);
      if (softmax_)
        for (int64_t r = 0; r < nc * kChunk; ++r)
          detail::softmax_line(yb + r * out_width_, yb + r * out_width_, out_width_, 1, log_softmax_);
    }
  }
}

void DenseChain::forward(const float* x, int64_t n, float* y) const {
  const bool wide = wide_;
  const int64_t br = wide ? detail::dense_chain_rows_16() : detail::dense_chain_rows_8();
  const auto block = wide ? detail::dense_chain_block_16 : detail::dense_chain_block_8;
  const int64_t blocks = (n + br - 1) / br;
  // Threads only when the work pays for a parallel region (about 1 MFLOP per thread) and the
  // caller is not already running on the engine's threads.
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads(), blocks)));
  const bool parallel = threads > 1 && !omp_in_parallel() && flops_per_row_ * double(n) > 1e6 * threads;
#pragma omp parallel num_threads(threads) if (parallel)
  {
    // Per-thread scratch, kept between calls (callers such as KernelSHAP make thousands of them).
    static thread_local std::vector<float> scratch_tl;
    float* const scratch = aligned_floats(scratch_tl, static_cast<size_t>(2 * max_width_ * br));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t r0 = b * br;
      const int64_t rows = std::min(br, n - r0);
      float* yb = y + r0 * out_width_;
      block(steps_, steps_.size(), in_width_, out_width_, max_width_, x + r0 * in_width_, rows, yb, scratch);
      // A final Softmax / LogSoftmax on the block's output rows, as the executor's op computes it.
      if (softmax_)
        for (int64_t r = 0; r < rows; ++r)
          detail::softmax_line(yb + r * out_width_, yb + r * out_width_, out_width_, 1, log_softmax_);
    }
  }
}

}  // namespace mlaudit::engine
