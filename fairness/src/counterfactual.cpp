// Counterfactual flip test (the "flip test" of Black, Yeom & Fredrikson 2020,
// "FlipTest", restricted to the direct intervention on the protected feature:
// x' = x with the attribute's encoding set to another group; Kusner et al. 2017
// call a decision counterfactually fair for that intervention when it does not change).
#include "mlaudit/fairness/counterfactual.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "mlaudit/engine/error.h"

namespace mlaudit::fairness {
namespace {

// Favorable-class softmax probability and decision of each row of logits [N,C].
void decide(const engine::Tensor& logits, const DecisionRule& rule, std::vector<uint8_t>& dec,
            std::vector<double>& score, size_t offset) {
  if (logits.rank() != 2)
    throw InputError("fairness", fmt::format("model output has shape {}, expected [N,C] logits",
                                             engine::shape_str(logits.shape())));
  const int64_t n = logits.dim(0), c = logits.dim(1);
  if (rule.favorable_class < 0 || rule.favorable_class >= c)
    throw InputError("fairness", fmt::format("favorable class {} is not an output class (model has {})",
                                             rule.favorable_class, c));
  engine::Tensor lf = logits.to(engine::DType::Float32);
  const float* l = lf.f32();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = l + i * c;
    // softmax_k = exp(l_k - max) / sum_j exp(l_j - max)
    double mx = row[0];
    int64_t arg = 0;
    for (int64_t k = 1; k < c; ++k)
      if (row[k] > mx) {
        mx = row[k];
        arg = k;
      }
    double z = 0;
    for (int64_t k = 0; k < c; ++k) z += std::exp(double(row[k]) - mx);
    double s = std::exp(double(row[rule.favorable_class]) - mx) / z;
    score[offset + i] = s;
    dec[offset + i] = std::isnan(rule.threshold) ? uint8_t(arg == rule.favorable_class) : uint8_t(s >= rule.threshold);
  }
}

}  // namespace

void model_decisions(const engine::Model& m, const engine::Tensor& x, const DecisionRule& rule,
                     std::vector<uint8_t>& decisions, std::vector<double>& scores, int64_t batch) {
  if (x.rank() != 2) throw InputError("fairness", fmt::format("features have shape {}, expected [N,F]", engine::shape_str(x.shape())));
  const int64_t n = x.dim(0);
  decisions.assign(n, 0);
  scores.assign(n, 0.0);
  batch = std::max<int64_t>(1, batch);
  for (int64_t b = 0; b < n; b += batch) {
    int64_t e = std::min(n, b + batch);
    engine::Tensor out = m.forward(b == 0 && e == n ? x : x.slice_rows(b, e));
    if (out.rank() != 2 || out.dim(0) != e - b)
      throw InputError("fairness", fmt::format("model returned shape {} for a batch of {} rows",
                                               engine::shape_str(out.shape()), e - b));
    decide(out, rule, decisions, scores, size_t(b));
  }
}

CounterfactualResult flip_test(const engine::Model& m, const engine::Tensor& x, const FeatureEncoding& enc,
                               const DecisionRule& rule, int64_t max_examples, int64_t batch) {
  if (x.rank() != 2 || x.dtype() != engine::DType::Float32)
    throw InputError("fairness", fmt::format("flip test needs float32 features [N,F], got {}", engine::shape_str(x.shape())));
  const int64_t n = x.dim(0), F = x.dim(1);
  const size_t G = enc.groups.size();
  if (G < 2) throw InputError("fairness", fmt::format("flip test: attribute '{}' has fewer than two groups", enc.attribute));
  if (enc.columns.empty()) throw InputError("fairness", fmt::format("flip test: attribute '{}' maps to no feature", enc.attribute));
  for (int64_t c : enc.columns)
    if (c < 0 || c >= F) throw InputError("fairness", fmt::format("flip test: feature column {} out of range (F={})", c, F));
  if (enc.one_hot() && enc.columns.size() != G)
    throw InputError("fairness", fmt::format("flip test: '{}' has {} groups but {} one-hot columns", enc.attribute, G, enc.columns.size()));
  if (!enc.one_hot() && enc.values.size() != G)
    throw InputError("fairness", fmt::format("flip test: '{}' has {} groups but {} feature values", enc.attribute, G, enc.values.size()));

  // Each row's own group, read from its features.
  const float* xp = x.f32();
  std::vector<int32_t> own(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = xp + i * F;
    for (size_t g = 0; g < G && own[i] < 0; ++g) {
      bool match;
      if (enc.one_hot()) {
        match = true;
        for (size_t k = 0; k < G; ++k) match = match && row[enc.columns[k]] == (k == g ? 1.0f : 0.0f);
      } else {
        match = row[enc.columns[0]] == enc.values[g];
      }
      if (match) own[i] = static_cast<int32_t>(g);
    }
    if (own[i] < 0)
      throw InputError("fairness", fmt::format("flip test: row {}: the features of '{}' match none of its groups", i, enc.attribute));
  }

  std::vector<uint8_t> dec0, dec1;
  std::vector<double> s0, s1;
  model_decisions(m, x, rule, dec0, s0, batch);

  CounterfactualResult r;
  r.attribute = enc.attribute;
  r.rows = n;
  std::vector<uint8_t> flipped(n, 0);
  std::vector<FlippedRow> flips;
  std::vector<FlipPair> pairs(G * G);
  double sum_change = 0, sum_abs = 0;
  int64_t changed = 0;
  engine::Tensor xc = x.clone();
  float* cp = xc.f32();
  for (size_t g = 0; g < G; ++g) {
    // Intervene: every row gets group g's encoding (rows already in g are skipped below).
    for (int64_t i = 0; i < n; ++i) {
      float* row = cp + i * F;
      if (enc.one_hot())
        for (size_t k = 0; k < G; ++k) row[enc.columns[k]] = k == g ? 1.0f : 0.0f;
      else
        row[enc.columns[0]] = enc.values[g];
    }
    model_decisions(m, xc, rule, dec1, s1, batch);
    for (int64_t i = 0; i < n; ++i) {
      if (own[i] == int32_t(g)) continue;
      FlipPair& p = pairs[size_t(own[i]) * G + g];
      double change = s1[i] - s0[i];
      ++p.rows;
      p.mean_score_change += change;
      sum_change += change;
      sum_abs += std::fabs(change);
      ++r.counterfactuals;
      if (dec1[i] != dec0[i]) {
        ++p.flips;
        ++changed;
        flipped[i] = 1;
        flips.push_back({i, enc.groups[own[i]], enc.groups[g], dec0[i], dec1[i], s0[i], s1[i]});
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) r.flipped_rows += flipped[i];
  r.flip_rate = n ? double(r.flipped_rows) / double(n) : 0.0;
  r.pair_flip_rate = r.counterfactuals ? double(changed) / double(r.counterfactuals) : 0.0;
  r.mean_score_change = r.counterfactuals ? sum_change / double(r.counterfactuals) : 0.0;
  r.mean_abs_score_change = r.counterfactuals ? sum_abs / double(r.counterfactuals) : 0.0;
  for (size_t a = 0; a < G; ++a)
    for (size_t b = 0; b < G; ++b) {
      FlipPair p = pairs[a * G + b];
      if (a == b || p.rows == 0) continue;
      p.from = enc.groups[a];
      p.to = enc.groups[b];
      p.mean_score_change /= double(p.rows);
      r.pairs.push_back(p);
    }
  std::stable_sort(flips.begin(), flips.end(), [](const FlippedRow& a, const FlippedRow& b) { return a.row < b.row; });
  if (int64_t(flips.size()) > max_examples) flips.resize(std::max<int64_t>(0, max_examples));
  r.examples = std::move(flips);
  return r;
}

}  // namespace mlaudit::fairness
