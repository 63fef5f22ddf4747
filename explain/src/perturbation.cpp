// Perturbation family: occlusion, KernelSHAP, LIME and permutation importance.
#include <Eigen/Dense>
#include <fmt/format.h>

#include <algorithm>
#ifdef __BMI2__
#include <immintrin.h>
#endif
#include <atomic>
#include <deque>
#include <exception>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>

#include "detail.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

using detail::row_size;

namespace {

void check_targets(const std::vector<int64_t>& targets, int64_t n, const char* what) {
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("{}: {} targets for {} rows", what, targets.size(), n));
}

// Validates a group map for rows of d elements; returns the number of groups.
int64_t check_groups(const std::vector<int64_t>& groups, int64_t d, const char* what) {
  if (static_cast<int64_t>(groups.size()) != d)
    throw InputError("explain", fmt::format("{}: feature groups have {} entries for {} features", what, groups.size(), d));
  int64_t g = 0;
  for (int64_t v : groups) {
    if (v < 0) throw InputError("explain", fmt::format("{}: negative feature group id {}", what, v));
    g = std::max(g, v + 1);
  }
  std::vector<char> seen(g, 0);
  for (int64_t v : groups) seen[v] = 1;
  for (int64_t v = 0; v < g; ++v)
    if (!seen[v]) throw InputError("explain", fmt::format("{}: feature group {} has no member", what, v));
  return g;
}

std::vector<std::vector<int64_t>> group_members(const std::vector<int64_t>& groups, int64_t d, int64_t& count,
                                                const char* what) {
  std::vector<int64_t> g = groups;
  if (g.empty()) {
    g.resize(d);
    std::iota(g.begin(), g.end(), 0);
  }
  count = check_groups(g, d, what);
  std::vector<std::vector<int64_t>> members(count);
  for (int64_t j = 0; j < d; ++j) members[g[j]].push_back(j);
  return members;
}

// Target column of a forward pass over a batch.
void target_column(const Tensor& y, int64_t target, std::vector<double>& out) {
  if (y.rank() != 2)
    throw InputError("explain", fmt::format("model output must be [N,C], got {}", engine::shape_str(y.shape())));
  const int64_t n = y.shape()[0], c = y.shape()[1];
  if (target < 0 || target >= c) throw InputError("explain", fmt::format("target {} out of range for {} outputs", target, c));
  out.resize(n);
  for (int64_t i = 0; i < n; ++i) out[i] = y.f32()[i * c + target];
}

double binom(int m, int k) {
  double r = 1;
  for (int i = 1; i <= k; ++i) r = r * (m - k + i) / i;
  return r;
}

}  // namespace

// ---------------------------------------------------------------- occlusion

Tensor occlusion(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, const OcclusionOptions& opts) {
  detail::check_batch(x, "occlusion");
  const int64_t n = x.shape()[0], d = row_size(x);
  check_targets(targets, n, "occlusion");
  const engine::Shape rs = detail::row_shape(x);
  const size_t r = rs.size();
  if (opts.window.size() != r)
    throw InputError("explain", fmt::format("--window: {} values for samples of shape {}", opts.window.size(),
                                            engine::shape_str(rs)));
  engine::Shape stride = opts.stride.empty() ? opts.window : opts.stride;
  if (stride.size() != r)
    throw InputError("explain", fmt::format("--stride: {} values for samples of shape {}", stride.size(),
                                            engine::shape_str(rs)));
  std::vector<int64_t> count(r), strides_elem(r, 1);
  int64_t windows = 1;
  for (size_t k = 0; k < r; ++k) {
    if (opts.window[k] < 1 || opts.window[k] > rs[k] || stride[k] < 1)
      throw InputError("explain", fmt::format("--window/--stride: window {} stride {} do not fit axis {} of size {}",
                                              opts.window[k], stride[k], k + 1, rs[k]));
    // Captum: windows per axis = floor((size - window) / stride) + 1
    count[k] = (rs[k] - opts.window[k]) / stride[k] + 1;
    windows *= count[k];
  }
  for (int k = static_cast<int>(r) - 2; k >= 0; --k) strides_elem[k] = strides_elem[k + 1] * rs[k + 1];
  // Flat element indices of every window.
  std::vector<std::vector<int64_t>> cover(windows);
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int64_t> start(r);
    int64_t rem = w;
    for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
      start[k] = (rem % count[k]) * stride[k];
      rem /= count[k];
    }
    int64_t cells = 1;
    for (size_t k = 0; k < r; ++k) cells *= opts.window[k];
    for (int64_t c = 0; c < cells; ++c) {
      int64_t rc = c, flat = 0;
      for (int k = static_cast<int>(r) - 1; k >= 0; --k) {
        flat += (start[k] + rc % opts.window[k]) * strides_elem[k];
        rc /= opts.window[k];
      }
      cover[w].push_back(flat);
    }
  }
  const std::vector<double> fx = target_outputs(model, x, targets);
  Tensor out(x.shape());
  const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);
  std::vector<double> total(d), weight(d), col;
  for (int64_t i = 0; i < n; ++i) {
    std::fill(total.begin(), total.end(), 0.0);
    std::fill(weight.begin(), weight.end(), 0.0);
    const float* xi = x.f32() + i * d;
    for (int64_t w0 = 0; w0 < windows; w0 += chunk) {
      const int64_t w1 = std::min(windows, w0 + chunk);
      Tensor batch(detail::batch_shape(w1 - w0, rs));
      for (int64_t w = w0; w < w1; ++w) {
        float* q = batch.f32() + (w - w0) * d;
        std::memcpy(q, xi, sizeof(float) * d);
        for (int64_t e : cover[w]) q[e] = opts.baseline;
      }
      target_column(model.forward(batch), targets[i], col);
      for (int64_t w = w0; w < w1; ++w) {
        const double diff = fx[i] - col[w - w0];  // Captum: eval_diff = f(x) - f(occluded)
        for (int64_t e : cover[w]) {
          total[e] += diff;
          weight[e] += 1;
        }
      }
    }
    for (int64_t j = 0; j < d; ++j) out.f32()[i * d + j] = weight[j] > 0 ? static_cast<float>(total[j] / weight[j]) : 0.f;
    if (opts.progress) opts.progress(i + 1, n);
  }
  return out;
}

std::vector<int64_t> grid_superpixels(const Shape& sample_shape, int64_t size) {
  if (sample_shape.size() < 2)
    throw InputError("explain", fmt::format("superpixels need image samples [...,H,W], got {}", engine::shape_str(sample_shape)));
  if (size < 1) throw ParameterError("explain", "superpixel", fmt::format(": size {} must be at least 1", size));
  const int64_t h = sample_shape[sample_shape.size() - 2], w = sample_shape.back();
  const int64_t gh = (h + size - 1) / size, gw = (w + size - 1) / size;
  const int64_t planes = engine::shape_numel(sample_shape) / (h * w);
  std::vector<int64_t> g;
  g.reserve(planes * h * w);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) g.push_back((r / size) * gw + c / size);
  (void)gh;
  return g;
}

// ---------------------------------------------------------------- KernelSHAP

namespace {

struct Coalitions {
  std::vector<std::vector<uint8_t>> masks;
  std::vector<double> weights;
  bool exact = false;
  std::vector<uint64_t> bits;  // masks as bit sets when M <= 64 (filled by pack_bits)
  void pack_bits(int m) {
    bits.clear();
    if (m > 64) return;
    for (const auto& mk : masks) {
      uint64_t b = 0;
      for (int v = 0; v < m; ++v) b |= uint64_t(mk[v] != 0) << v;
      bits.push_back(b);
    }
  }
};

// shap.KernelExplainer.explain: the coalition plan for M varying features and a budget.
Coalitions plan_coalitions(int m, int64_t nsamples_opt, detail::Rng& rng) {
  Coalitions c;
  int64_t nsamples = nsamples_opt > 0 ? nsamples_opt : 2 * int64_t(m) + 2048;  // shap "auto"
  int64_t max_samples = int64_t(1) << 30;
  if (m <= 30) {
    max_samples = (int64_t(1) << m) - 2;
    nsamples = std::min(nsamples, max_samples);
  }
  const int num_subset_sizes = (m - 1 + 1) / 2;   // ceil((M-1)/2)
  const int num_paired = (m - 1) / 2;             // floor((M-1)/2)
  // Shapley kernel per subset size s: (M-1) / (s (M-s)), paired sizes doubled, normalised.
  std::vector<double> weight_vector(num_subset_sizes);
  for (int s = 1; s <= num_subset_sizes; ++s) weight_vector[s - 1] = (m - 1.0) / (s * double(m - s));
  for (int s = 0; s < num_paired; ++s) weight_vector[s] *= 2;
  const double wsum = std::accumulate(weight_vector.begin(), weight_vector.end(), 0.0);
  for (auto& w : weight_vector) w /= wsum;

  int num_full = 0;
  double samples_left_d = static_cast<double>(nsamples);
  std::vector<double> remaining = weight_vector;
  std::vector<uint8_t> mask(m);
  for (int s = 1; s <= num_subset_sizes; ++s) {
    double nsubsets = binom(m, s);
    if (s <= num_paired) nsubsets *= 2;
    if (samples_left_d * remaining[s - 1] / nsubsets >= 1.0 - 1e-8) {
      ++num_full;
      samples_left_d -= nsubsets;
      if (remaining[s - 1] < 1.0) {
        const double scale = 1 - remaining[s - 1];
        for (auto& v : remaining) v /= scale;
      }
      double w = weight_vector[s - 1] / binom(m, s);
      if (s <= num_paired) w /= 2.0;
      // itertools.combinations order: lexicographic index tuples.
      std::vector<int> idx(s);
      std::iota(idx.begin(), idx.end(), 0);
      while (true) {
        std::fill(mask.begin(), mask.end(), 0);
        for (int v : idx) mask[v] = 1;
        c.masks.push_back(mask);
        c.weights.push_back(w);
        if (s <= num_paired) {
          for (auto& v : mask) v = 1 - v;
          c.masks.push_back(mask);
          c.weights.push_back(w);
        }
        int k = s - 1;
        while (k >= 0 && idx[k] == m - s + k) --k;
        if (k < 0) break;
        ++idx[k];
        for (int j = k + 1; j < s; ++j) idx[j] = idx[j - 1] + 1;
      }
    } else {
      break;
    }
  }
  const size_t nfixed = c.masks.size();
  int64_t samples_left = nsamples - static_cast<int64_t>(nfixed);
  c.exact = num_full == num_subset_sizes;
  if (!c.exact && samples_left > 0) {
    std::vector<double> rem = weight_vector;
    for (int s = 0; s < num_paired; ++s) rem[s] /= 2;  // two samples drawn each time below
    rem.erase(rem.begin(), rem.begin() + num_full);
    const double rs = std::accumulate(rem.begin(), rem.end(), 0.0);
    std::vector<double> cdf(rem.size());
    double acc = 0;
    for (size_t k = 0; k < rem.size(); ++k) cdf[k] = (acc += rem[k] / rs);
    std::map<std::vector<uint8_t>, size_t> used;
    std::vector<int> perm(m);
    const int64_t draws = 4 * samples_left;
    for (int64_t pos = 0; samples_left > 0 && pos < draws; ++pos) {
      const double u = rng.uniform();
      const size_t ind = std::min<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin(), cdf.size() - 1);
      const int s = static_cast<int>(ind) + num_full + 1;
      std::iota(perm.begin(), perm.end(), 0);
      rng.shuffle(perm);
      std::fill(mask.begin(), mask.end(), 0);
      for (int k = 0; k < s; ++k) mask[perm[k]] = 1;
      auto it = used.find(mask);
      bool is_new = it == used.end();
      size_t at = 0;
      if (is_new) {
        at = c.masks.size();
        used.emplace(mask, at);
        --samples_left;
        c.masks.push_back(mask);
        c.weights.push_back(1.0);
      } else {
        at = it->second;
        c.weights[at] += 1.0;
      }
      if (samples_left > 0 && s <= num_paired) {
        for (auto& v : mask) v = 1 - v;
        if (is_new) {
          --samples_left;
          c.masks.push_back(mask);
          c.weights.push_back(1.0);
        } else {
          c.weights[at + 1] += 1.0;
        }
      }
    }
    // Normalise the random samples' weights to the kernel weight left over.
    double weight_left = 0;
    for (int s = num_full; s < num_subset_sizes; ++s) weight_left += weight_vector[s];
    double wr = 0;
    for (size_t k = nfixed; k < c.weights.size(); ++k) wr += c.weights[k];
    if (wr > 0)
      for (size_t k = nfixed; k < c.weights.size(); ++k) c.weights[k] *= weight_left / wr;
  }
  return c;
}

}  // namespace

namespace {

// Constrained WLS of shap's KernelExplainer.solve: with the last varying feature eliminated
// through sum(phi) = f(x) - E f, phi_{0..m-2} = (X' W X)^{-1} X' W y. X and W depend only on
// the coalition plan, so the projection P = (X' W X)^{-1} X' W is factorised once per plan and
// shared by every sample with the same plan (exact enumeration: every sample with m features).
struct WlsProjection {
  bool invertible = false;
  Eigen::MatrixXd X;  // S x (m-1)
  Eigen::VectorXd W;
  Eigen::FullPivLU<Eigen::MatrixXd> lu;  // of X' W X
  Eigen::MatrixXd P;  // (m-1) x S, only for plans shared by several samples
};

WlsProjection make_projection(const Coalitions& plan, int m, bool shared) {
  const int64_t S = static_cast<int64_t>(plan.masks.size());
  WlsProjection p;
  p.X.resize(S, m - 1);
  p.W.resize(S);
  for (int64_t s = 0; s < S; ++s) {
    const double last = plan.masks[s][m - 1];
    for (int v = 0; v < m - 1; ++v) p.X(s, v) = double(plan.masks[s][v]) - last;
    p.W(s) = plan.weights[s];
  }
  Eigen::MatrixXd WX = p.W.asDiagonal() * p.X;
  p.lu.compute(p.X.transpose() * WX);
  p.invertible = p.lu.isInvertible();
  if (p.invertible && shared) p.P = p.lu.solve(WX.transpose());
  return p;
}

// phi of the m varying features from the coalition means ey (shap's solve with l1_reg=False).
std::vector<double> solve_phi(const WlsProjection& proj, const Coalitions& plan, int m, const std::vector<double>& ey,
                              double fnull, double fx) {
  const int64_t S = static_cast<int64_t>(plan.masks.size());
  const double diff = fx - fnull;
  Eigen::VectorXd y(S);
  for (int64_t s = 0; s < S; ++s) y(s) = (ey[s] - fnull) - double(plan.masks[s][m - 1]) * diff;
  Eigen::VectorXd w;
  if (proj.invertible) {
    w = proj.P.size() ? Eigen::VectorXd(proj.P * y) : Eigen::VectorXd(proj.lu.solve(proj.X.transpose() * (proj.W.asDiagonal() * y)));
  } else {
    // shap falls back to least squares on sqrt(W) X (singular normal equations)
    Eigen::VectorXd sw = proj.W.cwiseSqrt();
    w = (sw.asDiagonal() * proj.X).completeOrthogonalDecomposition().solve(sw.asDiagonal() * y);
  }
  std::vector<double> pv(m);
  double wsum = 0;
  for (int v = 0; v < m - 1; ++v) wsum += pv[v] = w(v);
  pv[m - 1] = diff - wsum;
  return pv;
}

// Per-sample work of one block: the plan, and for every (coalition, background row) where its
// model value comes from (a row of the block's evaluated batch, f(x), or f(background row)).
struct ShapWork {
  int64_t i = 0;
  int m = 0;
  std::vector<int64_t> varying;
  std::shared_ptr<const Coalitions> plan;
  std::shared_ptr<const WlsProjection> proj;
  std::vector<int64_t> ref;  // S*B: >= 0 block row, -1 f(x), <= -2 background row (-2 - k)
  // Exact plans (every coalition present): item `mix` of the block's Model::forward_mixtures
  // batch (its masks: per background row k, the varying groups where it differs from x, bit v
  // for varying group v) gives the model's values on every pattern. ref is then empty.
  int64_t mix = -1;
};

}  // namespace

namespace {
// acc[p] += src[p * stride] for p in [begin, end), four at a time for strides 1 and 2 (for
// stride 2 a load of 8 floats keeps every other one, so it reads src[2 end - 1], the float
// after the last value added: the caller's table holds it).
inline void add_strided(double* acc, const float* src, int64_t stride, int64_t begin, int64_t end) {
  typedef float f4 __attribute__((vector_size(16)));
  typedef float f8 __attribute__((vector_size(32)));
  typedef double d4 __attribute__((vector_size(32)));
  int64_t p = begin;
  if (stride == 1 || stride == 2) {
    for (; p + 4 <= end; p += 4) {
      f4 v;
      if (stride == 1) {
        std::memcpy(&v, src + p, sizeof v);
      } else {
        f8 w;
        std::memcpy(&w, src + 2 * p, sizeof w);
        v = __builtin_shufflevector(w, w, 0, 2, 4, 6);
      }
      d4 a;
      std::memcpy(&a, acc + p, sizeof a);
      a += __builtin_convertvector(v, d4);
      std::memcpy(acc + p, &a, sizeof a);
    }
  }
  for (; p < end; ++p) acc[p] += src[p * stride];
}

// The bits of v selected by mask, packed into the low bits in order (BMI2's PEXT).
inline uint64_t extract_bits(uint64_t v, uint64_t mask) {
#ifdef __BMI2__
  return _pext_u64(v, mask);
#else
  uint64_t out = 0;
  for (int q = 0; mask; mask &= mask - 1, ++q) out |= ((v >> __builtin_ctzll(mask)) & 1u) << q;
  return out;
#endif
}
}  // namespace

KernelShapResult kernel_shap(const Model& model, const Tensor& x, const Tensor& background,
                             const std::vector<int64_t>& targets, const KernelShapOptions& opts) {
  detail::check_batch(x, "kernel-shap");
  detail::check_batch(background, "kernel-shap background");
  const int64_t n = x.shape()[0], d = row_size(x);
  check_targets(targets, n, "kernel-shap");
  if (row_size(background) != d)
    throw InputError("explain", fmt::format("kernel-shap: background rows {} do not match input rows {}",
                                            engine::shape_str(background.shape()), engine::shape_str(x.shape())));
  int64_t G = 0;
  const auto members = group_members(opts.groups, d, G, "kernel-shap");
  const int64_t B = background.shape()[0];
  const engine::Shape rs = detail::row_shape(x);
  const float* bg = background.f32();

  // Forward of the background (shap's fnull: uniform background weights) and of x.
  auto forward_all = [&](const Tensor& t) {
    std::vector<Tensor> parts;
    const int64_t rows = t.shape()[0];
    for (int64_t b = 0; b < rows; b += 4096) parts.push_back(model.forward(t.slice_rows(b, std::min(rows, b + 4096))));
    return parts.size() == 1 ? parts[0] : engine::concat_rows(parts);
  };
  const Tensor bg_out = forward_all(background);
  const std::vector<double> fx_all = target_outputs(model, x, targets);
  if (bg_out.rank() != 2)
    throw InputError("explain", fmt::format("model output must be [N,C], got {}", engine::shape_str(bg_out.shape())));
  const int64_t C = bg_out.shape()[1];
  const float* const bg_f = bg_out.f32();  // f(background row k), all outputs

  KernelShapResult res;
  res.num_groups = G;
  res.attributions = Tensor(x.shape());
  res.phi.assign(n, std::vector<double>(G, 0.0));
  res.output_x = fx_all;
  res.expected_value.resize(n);
  res.efficiency_gap.resize(n);
  res.coalitions.assign(n, 0);
  res.exact.assign(n, true);
  // Per-sample exact flags written by the workers (std::vector<bool> packs bits: not thread-safe).
  std::vector<uint8_t> exact_flags(n, 1);

  // Model rows per forward call: batch_rows, and at most 2^24 floats (64 MiB) of input.
  const int64_t want_rows = opts.batch_rows > 0 ? opts.batch_rows : std::clamp<int64_t>(32768 / d, 1, 4096);
  const int64_t rows_cap = std::max<int64_t>(1, std::min<int64_t>(want_rows, (int64_t(1) << 24) / d));
  // Exact plans (no randomness) and their projections, shared by all samples with the same m.
  std::map<int, std::pair<std::shared_ptr<const Coalitions>, std::shared_ptr<const WlsProjection>>> exact_cache;

  std::mutex cache_mutex;
  // Samples [i_begin, i_end) with their own batch buffer: blocks of samples share forward calls.
  auto process = [&](int64_t i_begin, int64_t i_end) {
    // Batch buffer of synthetic rows; values of evaluated rows of the current block.
    Tensor batch = Tensor::uninitialized(engine::DType::Float32, detail::batch_shape(rows_cap, rs));
    float* const batch_data = batch.f32();
    int64_t batch_fill = 0;
    std::vector<float> outs;  // model outputs [row][C] of every synthetic row of the block
    auto rows_done = [&]() { return static_cast<int64_t>(outs.size()) / C; };
    auto flush = [&]() {
      if (batch_fill == 0) return;
      const Tensor y = model.forward(batch_fill == rows_cap ? batch : batch.first_rows(batch_fill));
      if (y.rank() != 2 || y.shape()[0] != batch_fill || y.shape()[1] != C)
        throw InputError("explain", fmt::format("model output must be [N,{}], got {}", C, engine::shape_str(y.shape())));
      outs.insert(outs.end(), y.f32(), y.f32() + batch_fill * C);
      batch_fill = 0;
    };

    std::vector<ShapWork> block;
    int64_t block_refs = 0;
    // Exact plans of the block: one Mixtures item per sample (x with every background row, over
    // its varying groups), evaluated together.
    std::vector<engine::Mixtures> mix;
    std::deque<std::vector<std::vector<int64_t>>> mix_groups;  // features of each varying group
    int64_t mix_rows = 0;
    engine::MixtureOutputs mixed;
    std::vector<double> ey, acc;  // per sample in finish_block: E f(coalition), one mask's pattern sums
    std::vector<uint64_t> order;  // background rows by their mask
    std::vector<int64_t> counts;  // counting sort of the masks
    auto finish_block = [&]() {
      flush();
      if (!mix.empty()) {
        model.forward_mixtures(mix, rs, rows_cap, false, mixed);
        if (mixed.outputs != 0 && mixed.outputs != C)
          throw InputError("explain", fmt::format("model output must be [N,{}], got {} values per row", C, mixed.outputs));
      }
      for (ShapWork& w : block) {
        const int64_t i = w.i;
        const int64_t S = static_cast<int64_t>(w.plan->masks.size());
        const double fnull = res.expected_value[i], fx = fx_all[i];
        const int64_t t = targets[i];
        ey.assign(S, 0.0);
        if (w.mix >= 0) {
          // Background rows with the same mask share their pattern table: their values are
          // summed per pattern (pattern 0: f(row k); all ones: f(x)), then every coalition adds
          // the sum at its pattern, the coalition's bits on the mask (PEXT).
          const std::vector<int64_t>& off = mixed.offsets[w.mix];
          const std::vector<uint64_t>& kmask = mix[w.mix].masks;
          // Rows by (mask, k): masks have at most 20 bits, so both fit one 64-bit key. With few
          // groups, a counting sort on the mask (stable, so k stays increasing within a mask).
          order.resize(B);
          if (w.m <= 12) {
            counts.assign((size_t(1) << w.m) + 1, 0);
            for (int64_t k = 0; k < B; ++k) ++counts[kmask[k] + 1];
            for (size_t c = 1; c < counts.size(); ++c) counts[c] += counts[c - 1];
            for (int64_t k = 0; k < B; ++k) order[counts[kmask[k]]++] = (kmask[k] << 32) | static_cast<uint64_t>(k);
          } else {
            for (int64_t k = 0; k < B; ++k) order[k] = (kmask[k] << 32) | static_cast<uint64_t>(k);
            std::sort(order.begin(), order.end());
          }
          for (int64_t r0 = 0; r0 < B;) {
            const uint64_t km = order[r0] >> 32;
            int64_t r1 = r0;
            while (r1 < B && (order[r1] >> 32) == km) ++r1;
            const int64_t full = (int64_t(1) << __builtin_popcountll(km)) - 1;
            acc.assign(full + 1, 0.0);
            for (int64_t r = r0; r < r1; ++r) {
              const int64_t k = static_cast<int64_t>(order[r] & 0xFFFFFFFFu);
              const float* tab = mixed.values.data() + off[k] * C + t;
              add_strided(acc.data(), tab, C, 1, full);
              acc[0] += bg_f[k * C + t];
              acc[full] += fx;
            }
            for (int64_t s = 0; s < S; ++s) ey[s] += acc[extract_bits(w.plan->bits[s], km)];
            r0 = r1;
          }
          for (int64_t s = 0; s < S; ++s) ey[s] /= B;
        } else {
          for (int64_t s = 0; s < S; ++s) {
            double sum = 0;
            for (int64_t k = 0; k < B; ++k) {
              const int64_t r = w.ref[s * B + k];
              sum += r >= 0 ? double(outs[r * C + t]) : r == -1 ? fx : double(bg_f[(-2 - r) * C + t]);
            }
            ey[s] = sum / B;
          }
        }
        const std::vector<double> pv = solve_phi(*w.proj, *w.plan, w.m, ey, fnull, fx);
        for (int v = 0; v < w.m; ++v) res.phi[i][w.varying[v]] = std::fabs(pv[v]) < 1e-10 ? 0.0 : pv[v];
      }
      block.clear();
      block_refs = 0;
      outs.clear();
      mix.clear();
      mix_groups.clear();
      mix_rows = 0;
    };

    std::vector<int64_t> diff_pos;
    std::vector<int64_t> slot;
    std::vector<uint8_t> differs;
    for (int64_t i = i_begin; i < i_end; ++i) {
      const float* xi = x.f32() + i * d;
      const int64_t t = targets[i];
      if (t < 0 || t >= C) throw InputError("explain", fmt::format("target {} out of range for {} outputs", t, C));
      double fnull = 0;
      for (int64_t k = 0; k < B; ++k) fnull += bg_f[k * C + t];
      fnull /= B;
      res.expected_value[i] = fnull;
      // differs[k * G + g]: background row k differs from x in some member of group g.
      // (Branch-free: the comparisons are unpredictable.)
      differs.resize(B * G);
      for (int64_t k = 0; k < B; ++k)
        for (int64_t g = 0; g < G; ++g) {
          uint8_t any = 0;
          for (int64_t j : members[g]) any |= bg[k * d + j] != xi[j];
          differs[k * G + g] = any;
        }
      // Varying groups: some background row differs from x in some member (shap.varying_groups).
      std::vector<int64_t> varying;
      for (int64_t g = 0; g < G; ++g) {
        bool any = false;
        for (int64_t k = 0; k < B && !any; ++k) any = differs[k * G + g] != 0;
        if (any) varying.push_back(g);
      }
      const int m = static_cast<int>(varying.size());
      if (m == 1) res.phi[i][varying[0]] = fx_all[i] - fnull;
      if (m <= 1) continue;

      ShapWork w;
      w.i = i;
      w.m = m;
      w.varying = varying;
      std::unique_lock<std::mutex> cache_lock(cache_mutex);
      auto cached = exact_cache.find(m);
      const bool hit = cached != exact_cache.end();
      if (hit) {
        w.plan = cached->second.first;
        w.proj = cached->second.second;
      }
      cache_lock.unlock();
      if (!hit) {
        detail::Rng rng(detail::row_seed(opts.seed, opts.row_offset + i));
        auto plan = std::make_shared<Coalitions>(plan_coalitions(m, opts.samples, rng));
        plan->pack_bits(m);
        auto proj = std::make_shared<WlsProjection>(make_projection(*plan, m, plan->exact));
        w.plan = plan;
        w.proj = proj;
        if (plan->exact) {
          std::lock_guard<std::mutex> lock(cache_mutex);
          exact_cache.emplace(m, std::make_pair(plan, proj));
        }
      }
      exact_flags[i] = w.plan->exact ? 1 : 0;
      const int64_t S = static_cast<int64_t>(w.plan->masks.size());
      res.coalitions[i] = S;
      if (w.plan->exact && m <= 20 && !w.plan->bits.empty()) {
        // Every coalition is present, so for background row k every pattern over the groups
        // where it differs from x occurs: the model is evaluated on each pattern once
        // (memoisation by construction), patterns none (row k) and all (x) excepted.
        engine::Mixtures item;
        item.x = xi;
        mix_groups.emplace_back();
        for (int v = 0; v < m; ++v) mix_groups.back().push_back(members[varying[v]]);
        item.groups = &mix_groups.back();
        item.rows.resize(B);
        item.masks.resize(B);
        for (int64_t k = 0; k < B; ++k) {
          uint64_t km = 0;
          for (int v = 0; v < m; ++v)
            km |= uint64_t(differs[k * G + varying[v]]) << v;
          item.masks[k] = km;
          item.rows[k] = bg + k * d;
          mix_rows += int64_t(1) << __builtin_popcountll(km);
        }
        w.mix = static_cast<int64_t>(mix.size());
        mix.push_back(std::move(item));
        block_refs += S * B;
        block.push_back(std::move(w));
        if (rows_done() + batch_fill + mix_rows >= rows_cap || block_refs >= (int64_t(1) << 22)) finish_block();
        continue;
      }
      w.ref.resize(S * B);
      // Synthetic row of (coalition s, background row k): x on the coalition's groups, row k elsewhere.
      // It only depends on the coalition's bits over the groups where row k differs from x, so equal
      // rows are evaluated once (memoisation, exact); no such bit is row k itself, all of them is x.
      // Element mask of every coalition (1: take x), so building a row is one select loop.
      // (Skipped beyond 64 MiB of masks: rows are then built group by group.)
      const bool use_elem = S * d <= (int64_t(1) << 24);
      std::vector<uint32_t> elem(use_elem ? S * d : 0, 0u);  // all ones: x, zero: background (bitwise select)
      for (int64_t s = 0; use_elem && s < S; ++s)
        for (int v = 0; v < m; ++v)
          if (w.plan->masks[s][v])
            for (int64_t j : members[varying[v]]) elem[s * d + j] = ~0u;
      for (int64_t k = 0; k < B; ++k) {
        diff_pos.clear();
        for (int v = 0; v < m; ++v)
          if (differs[k * G + varying[v]]) diff_pos.push_back(v);
        const int64_t nd = static_cast<int64_t>(diff_pos.size());
        const bool dedup = nd <= 20 && !w.plan->bits.empty();
        if (dedup) slot.assign(int64_t(1) << nd, -3);
        uint64_t diff_mask = 0;
        for (int64_t q = 0; q < nd; ++q) diff_mask |= uint64_t(1) << diff_pos[q];
        for (int64_t s = 0; s < S; ++s) {
          int64_t key = 0;
          if (dedup) {
            // The coalition's bits at diff_pos, packed (bit q of the key: bit diff_pos[q]).
            key = static_cast<int64_t>(extract_bits(w.plan->bits[s], diff_mask));
            if (key == 0) {
              w.ref[s * B + k] = -2 - k;
              continue;
            }
            if (key == (int64_t(1) << nd) - 1) {
              w.ref[s * B + k] = -1;
              continue;
            }
            if (slot[key] != -3) {
              w.ref[s * B + k] = slot[key];
              continue;
            }
          }
          if (batch_fill == rows_cap) flush();
          float* row = batch_data + batch_fill * d;
          const float* bk = bg + k * d;
          if (use_elem) {
            // Branch-free select on the bits (vectorises; values copied exactly).
            const uint32_t* __restrict em = elem.data() + s * d;
            const uint32_t* __restrict xb = reinterpret_cast<const uint32_t*>(xi);
            const uint32_t* __restrict bb = reinterpret_cast<const uint32_t*>(bk);
            uint32_t* __restrict rb = reinterpret_cast<uint32_t*>(row);
            for (int64_t j = 0; j < d; ++j) rb[j] = (xb[j] & em[j]) | (bb[j] & ~em[j]);
          } else {
            std::memcpy(row, bk, sizeof(float) * d);
            for (int v = 0; v < m; ++v)
              if (w.plan->masks[s][v])
                for (int64_t j : members[varying[v]]) row[j] = xi[j];
          }
          const int64_t r = rows_done() + batch_fill;
          ++batch_fill;
          w.ref[s * B + k] = r;
          if (dedup) slot[key] = r;
        }
      }
      block_refs += static_cast<int64_t>(w.ref.size());
      block.push_back(std::move(w));
      // Bound the block's bookkeeping: finish once it holds a forward call's worth of rows
      // (or 4M references, 32 MiB, when memoisation leaves few rows per sample).
      if (rows_done() + batch_fill + mix_rows >= rows_cap || block_refs >= (int64_t(1) << 22)) finish_block();
    }
    finish_block();
  };
  // Samples in parallel when there are several: each worker's forward calls then run their ops
  // on one thread (nested OpenMP regions are inactive), which beats splitting the small ops of a
  // tiny model across threads. Values do not depend on the split (rows are evaluated independently).
  const int threads = std::max(1, engine::num_threads());
  if (threads > 1 && n > 1) {
    std::atomic<int64_t> next{0};
    // Grabs of n / (16 threads) samples: with n / (4 threads) the last grab left the other
    // thread idle (CPU/wall 1.91 against 1.96 on 200 credit rows with 2 threads).
    const int64_t grain = std::max<int64_t>(1, n / (16 * int64_t(threads)));
    std::exception_ptr error;
    std::mutex error_mutex, progress_mutex;
    int64_t finished = 0;
#pragma omp parallel num_threads(threads)
    {
      while (true) {
        const int64_t i0 = next.fetch_add(grain);
        if (i0 >= n) break;
        try {
          process(i0, std::min(n, i0 + grain));
          if (opts.progress) {
            std::lock_guard<std::mutex> lock(progress_mutex);
            finished += std::min(n, i0 + grain) - i0;
            opts.progress(finished, n);
          }
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next.store(n);
        }
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    // in up to 64 parts only to report progress (rows are evaluated independently; parts of
    // several rows keep most of the shared forward calls)
    const int64_t part = opts.progress ? std::max<int64_t>(1, (n + 63) / 64) : n;
    for (int64_t i = 0; i < n; i += part) {
      process(i, std::min(n, i + part));
      if (opts.progress) opts.progress(std::min(n, i + part), n);
    }
  }

  for (int64_t i = 0; i < n; ++i) {
    res.exact[i] = exact_flags[i] != 0;
    double sum = 0;
    for (double v : res.phi[i]) sum += v;
    res.efficiency_gap[i] = sum - (fx_all[i] - res.expected_value[i]);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j : members[g]) res.attributions.f32()[i * d + j] = static_cast<float>(res.phi[i][g]);
  }
  return res;
}

// ---------------------------------------------------------------- LIME

namespace {
// Weighted ridge with intercept as sklearn.linear_model.Ridge(alpha).fit(X, y, sample_weight):
// centre X and y by their weighted means, solve (Xc' W Xc + alpha I) b = Xc' W yc.
void weighted_ridge(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const Eigen::VectorXd& w, double alpha,
                    Eigen::VectorXd& coef, double& intercept, double& r2) {
  const double ws = w.sum();
  Eigen::RowVectorXd xm = (w.transpose() * X) / ws;
  const double ym = w.dot(y) / ws;
  Eigen::MatrixXd Xc = X.rowwise() - xm;
  Eigen::VectorXd yc = y.array() - ym;
  Eigen::MatrixXd A = Xc.transpose() * w.asDiagonal() * Xc;
  A.diagonal().array() += alpha;
  coef = A.ldlt().solve(Xc.transpose() * (w.asDiagonal() * yc));
  intercept = ym - xm.dot(coef);
  // sklearn's score with sample_weight: 1 - sum w (y - yhat)^2 / sum w (y - ybar_w)^2
  Eigen::VectorXd resid = y - ((X * coef).array() + intercept).matrix();
  const double ss_res = (w.array() * resid.array().square()).sum();
  const double ss_tot = (w.array() * yc.array().square()).sum();
  r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1.0;
}
}  // namespace

LimeResult lime(const Model& model, const Tensor& x, const Tensor& background, const std::vector<int64_t>& targets,
                const LimeOptions& opts) {
  detail::check_batch(x, "lime");
  const int64_t n = x.shape()[0], d = row_size(x);
  check_targets(targets, n, "lime");
  const engine::Shape rs = detail::row_shape(x);
  const bool image = !opts.groups.empty();
  if (opts.ridge_alpha < 0) throw InputError("explain", "lime: ridge alpha must be non-negative");
  int64_t G = d;
  std::vector<std::vector<int64_t>> members;
  std::vector<double> mean(d, 0.0), scale(d, 1.0);
  if (image) {
    members = group_members(opts.groups, d, G, "lime");
  } else {
    detail::check_batch(background, "lime background (--background)");
    if (row_size(background) != d)
      throw InputError("explain", fmt::format("lime: background rows {} do not match input rows {}",
                                              engine::shape_str(background.shape()), engine::shape_str(x.shape())));
    // sklearn StandardScaler(with_mean=False) on the training data: population std, 0 -> 1.
    const int64_t B = background.shape()[0];
    for (int64_t j = 0; j < d; ++j) {
      double s = 0, s2 = 0;
      for (int64_t k = 0; k < B; ++k) s += background.f32()[k * d + j];
      mean[j] = s / B;
      for (int64_t k = 0; k < B; ++k) s2 += std::pow(background.f32()[k * d + j] - mean[j], 2);
      const double sd = std::sqrt(s2 / B);
      scale[j] = sd > 0 ? sd : 1.0;
    }
  }
  int64_t samples = opts.samples > 0 ? opts.samples : (image ? 1000 : 5000);
  if (opts.noise) {
    if (image || opts.noise->rank() != 2 || opts.noise->shape()[1] != d)
      throw InputError("explain", fmt::format("lime: fixed noise must be [samples, {}] for tabular rows, got {}", d,
                                              engine::shape_str(opts.noise->shape())));
    samples = opts.noise->shape()[0];
  }
  if (samples < 2) throw InputError("explain", "lime: --samples must be at least 2");
  const double width = opts.kernel_width > 0 ? opts.kernel_width : (image ? 0.25 : 0.75 * std::sqrt(double(d)));
  LimeResult res;
  res.attributions = Tensor(x.shape());
  res.r2.resize(n);
  res.intercept.resize(n);
  res.local_pred.resize(n);
  std::vector<double> col;
  for (int64_t i = 0; i < n; ++i) {
    detail::Rng rng(detail::row_seed(opts.seed, opts.row_offset + i));
    const float* xi = x.f32() + i * d;
    Eigen::MatrixXd Z(samples, G);
    Eigen::VectorXd y(samples), w(samples);
    Tensor data(detail::batch_shape(samples, rs));
    float* q = data.f32();
    if (image) {
      // lime_image: z ~ Bernoulli(1/2)^G with z_0 = 1; off superpixels take their mean value.
      std::vector<float> fudge(G);
      for (int64_t g = 0; g < G; ++g) {
        double s = 0;
        for (int64_t j : members[g]) s += xi[j];
        fudge[g] = static_cast<float>(s / members[g].size());
      }
      for (int64_t k = 0; k < samples; ++k) {
        float* row = q + k * d;
        std::memcpy(row, xi, sizeof(float) * d);
        int64_t on = 0;
        for (int64_t g = 0; g < G; ++g) {
          const int z = k == 0 ? 1 : static_cast<int>(rng.next() >> 63);
          Z(k, g) = z;
          on += z;
          if (!z)
            for (int64_t j : members[g]) row[j] = fudge[g];
        }
        // cosine distance to the all-on vector: 1 - |z|_1 / (sqrt(|z|_1) sqrt(G))
        const double dist = on == 0 ? 1.0 : 1.0 - on / (std::sqrt(double(on)) * std::sqrt(double(G)));
        w(k) = std::sqrt(std::exp(-dist * dist / (width * width)));
      }
    } else {
      // lime_tabular (sample_around_instance=True): x + N(0,1) * scale; row 0 is x itself.
      for (int64_t k = 0; k < samples; ++k) {
        float* row = q + k * d;
        double dist2 = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double e = k == 0 ? 0.0 : (opts.noise ? double(opts.noise->f32()[k * d + j]) : rng.normal());
          row[j] = static_cast<float>(xi[j] + e * scale[j]);
          Z(k, j) = (row[j] - mean[j]) / scale[j];
          const double dz = (double(row[j]) - xi[j]) / scale[j];
          dist2 += dz * dz;
        }
        // kernel sqrt(exp(-d^2 / width^2)) on the euclidean distance of standardised rows
        w(k) = std::sqrt(std::exp(-dist2 / (width * width)));
      }
    }
    const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);
    for (int64_t b = 0; b < samples; b += chunk) {
      const int64_t e = std::min(samples, b + chunk);
      target_column(model.forward(data.slice_rows(b, e)), targets[i], col);
      for (int64_t k = b; k < e; ++k) y(k) = col[k - b];
    }
    Eigen::VectorXd coef;
    double intercept = 0, r2 = 0;
    weighted_ridge(Z, y, w, opts.ridge_alpha, coef, intercept, r2);
    res.r2[i] = r2;
    res.intercept[i] = intercept;
    res.local_pred[i] = intercept + Z.row(0).dot(coef);
    if (opts.progress) opts.progress(i + 1, n);
    float* out = res.attributions.f32() + i * d;
    if (image) {
      for (int64_t g = 0; g < G; ++g)
        for (int64_t j : members[g]) out[j] = static_cast<float>(coef(g));
    } else {
      for (int64_t j = 0; j < d; ++j) out[j] = static_cast<float>(coef(j));
    }
  }
  return res;
}

// ---------------------------------------------------------------- permutation importance

PermutationResult permutation_importance(const Model& model, const Tensor& x, const std::vector<int64_t>& labels,
                                         const PermutationOptions& opts) {
  detail::check_batch(x, "permutation");
  const int64_t n = x.shape()[0], d = row_size(x);
  if (static_cast<int64_t>(labels.size()) != n)
    throw InputError("explain", fmt::format("permutation: {} labels for {} rows (permutation needs --labels)",
                                            labels.size(), n));
  if (n < 2) throw InputError("explain", "permutation: needs at least 2 rows");
  if (opts.repeats < 1) throw InputError("explain", "permutation: --repeats must be at least 1");
  int64_t G = 0;
  const auto members = group_members(opts.groups, d, G, "permutation");
  const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);
  auto accuracy = [&](const Tensor& data) {
    int64_t correct = 0;
    for (int64_t b = 0; b < n; b += chunk) {
      auto pred = engine::argmax_rows(model.forward(data.slice_rows(b, std::min(n, b + chunk))));
      for (size_t k = 0; k < pred.size(); ++k) correct += pred[k] == labels[b + k];
    }
    return double(correct) / n;
  };
  PermutationResult res;
  res.baseline_accuracy = accuracy(x);
  res.importance_mean.assign(G, 0.0);
  res.importance_std.assign(G, 0.0);
  detail::Rng rng(opts.seed);
  Tensor work = x.clone();
  std::vector<int64_t> perm(n);
  for (int64_t g = 0; g < G; ++g) {
    std::vector<double> drops;
    for (int rep = 0; rep < opts.repeats; ++rep) {
      std::iota(perm.begin(), perm.end(), 0);
      rng.shuffle(perm);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j : members[g]) work.f32()[i * d + j] = x.f32()[perm[i] * d + j];
      drops.push_back(res.baseline_accuracy - accuracy(work));
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j : members[g]) work.f32()[i * d + j] = x.f32()[i * d + j];
    const double m = std::accumulate(drops.begin(), drops.end(), 0.0) / drops.size();
    double v = 0;
    for (double dr : drops) v += (dr - m) * (dr - m);
    res.importance_mean[g] = m;
    res.importance_std[g] = std::sqrt(v / drops.size());  // numpy std (ddof=0), as sklearn
  }
  res.importance = Tensor(detail::row_shape(x));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t j : members[g]) res.importance.f32()[j] = static_cast<float>(res.importance_mean[g]);
  return res;
}

}  // namespace mlaudit::explain
