// Sanity checks of explanations: rank correlation, model randomization, max-sensitivity.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "detail.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

namespace {
// Ranks 1..n with ties given their average rank (as scipy.stats.rankdata "average").
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double avg = 0.5 * (i + j) + 1;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2)
    throw InputError("explain", fmt::format("spearman: need two equally long vectors (got {} and {})", a.size(), b.size()));
  // Pearson correlation of the average ranks (Spearman 1904).
  const auto ra = average_ranks(a), rb = average_ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa == 0 || sbb == 0) return saa == sbb ? 1.0 : 0.0;  // a constant vector has no rank information
  return sab / std::sqrt(saa * sbb);
}

std::vector<double> randomization_correlation(const Tensor& original, const Tensor& randomized) {
  if (original.shape() != randomized.shape() || original.rank() < 1)
    throw InputError("explain", "randomization check: attribution shapes differ");
  const int64_t n = original.shape()[0], d = detail::row_size(original);
  std::vector<double> out(n);
  std::vector<double> a(d), b(d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      a[j] = std::fabs(original.f32()[i * d + j]);
      b[j] = std::fabs(randomized.f32()[i * d + j]);
    }
    out[i] = d >= 2 ? spearman(a, b) : 1.0;
  }
  return out;
}

engine::Graph randomize_last_layer(const engine::Graph& graph, uint64_t seed, std::string* layer) {
  engine::Graph g = graph;  // initializers share storage: replaced tensors are fresh below
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    const engine::Node& node = *it;
    if (node.op_type != "Gemm" && node.op_type != "MatMul" && node.op_type != "Conv") continue;
    std::vector<size_t> params;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const engine::Tensor* t = g.initializer(node.inputs[k]);
      if (t && t->dtype() == engine::DType::Float32 && t->numel() > 0) params.push_back(k);
    }
    if (params.empty()) continue;
    // Weight: the largest parameter; its std sets the scale of the new draw.
    detail::Rng rng(seed);
    double s = 0, s2 = 0;
    int64_t cnt = 0;
    for (size_t k : params) {
      const engine::Tensor& t = g.initializers.at(node.inputs[k]);
      if (t.rank() < 2) continue;
      for (int64_t e = 0; e < t.numel(); ++e) {
        s += t.f32()[e];
        s2 += double(t.f32()[e]) * t.f32()[e];
        ++cnt;
      }
    }
    const double sd = cnt > 1 ? std::sqrt(std::max(0.0, s2 / cnt - (s / cnt) * (s / cnt))) : 0.1;
    for (size_t k : params) {
      engine::Tensor fresh(g.initializers.at(node.inputs[k]).shape());
      for (int64_t e = 0; e < fresh.numel(); ++e) fresh.f32()[e] = static_cast<float>(rng.normal() * (sd > 0 ? sd : 0.1));
      g.initializers[node.inputs[k]] = fresh;
    }
    if (layer) *layer = node.describe();
    return g;
  }
  throw InputError("explain", fmt::format("randomization check: {} has no Gemm/MatMul/Conv node with initializer weights",
                                          graph.source));
}

std::vector<double> max_sensitivity(const Model& model, const Tensor& x, const ExplainFn& explain, double radius,
                                    int samples, uint64_t seed, int64_t row_offset) {
  detail::check_batch(x, "max-sensitivity");
  if (samples < 1 || !(radius > 0)) throw InputError("explain", "max-sensitivity: needs samples >= 1 and radius > 0");
  const int64_t n = x.shape()[0], d = detail::row_size(x);
  const Tensor base = explain(model, x);
  std::vector<double> norm(n, 0.0), best(n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) norm[i] += double(base.f32()[i * d + j]) * base.f32()[i * d + j];
    norm[i] = std::sqrt(norm[i]);
  }
  // One stream per row, keyed by its index in the whole data set (detail::row_seed): a row's
  // perturbations do not depend on the other rows checked with it (--shard).
  std::vector<detail::Rng> rngs;
  rngs.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) rngs.emplace_back(detail::row_seed(seed, row_offset + i));
  for (int s = 0; s < samples; ++s) {
    Tensor xp = x.clone();
    // Captum's default_perturb_func: x - U(-radius, radius) per element
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = i * d; e < (i + 1) * d; ++e)
        xp.f32()[e] -= static_cast<float>((2 * rngs[size_t(i)].uniform() - 1) * radius);
    const Tensor a = explain(model, xp);
    for (int64_t i = 0; i < n; ++i) {
      double dn = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double df = double(a.f32()[i * d + j]) - base.f32()[i * d + j];
        dn += df * df;
      }
      // ||A(x+delta) - A(x)|| / ||A(x)||  (Captum normalises by the unperturbed explanation's norm)
      best[i] = std::max(best[i], std::sqrt(dn) / (norm[i] > 0 ? norm[i] : 1.0));
    }
  }
  return best;
}

}  // namespace mlaudit::explain
