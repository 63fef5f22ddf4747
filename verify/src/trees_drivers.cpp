// The `verify` command's modes on a tree ensemble: robustness over data, minimal distances,
// fairness over partitions or around samples, all answered by verify/trees.h's exact queries
// and returned in the networks' result types (the JSON contract is shared).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/verify/trees.h"
#include "verdicts.h"

namespace mlaudit::verify {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Data as float32 (read_npy_float's tensors are float32: the conversion is exact).
std::vector<float> rows_f32(const engine::Tensor& t) {
  const std::vector<double> d = t.to_doubles();
  return std::vector<float>(d.begin(), d.end());
}

int64_t decision_at(const engine::TreeEnsemble& m, const TreeVerifyOptions& o, const float* x) {
  std::vector<float> xv(x, x + m.features);
  if (o.concrete) {
    auto y = o.concrete(xv);
    return tree_decision(m, std::vector<double>(y.begin(), y.end()));
  }
  return tree_decision(m, m.output(m.raw(x)));
}

void check_rows(const engine::TreeEnsemble& m, const engine::Tensor& data, const std::vector<int64_t>& labels) {
  if (data.rank() < 1) throw InputError("verify", "data must have a batch axis");
  const int64_t N = data.dim(0), per = N > 0 ? data.numel() / N : 0;
  if (N > 0 && per != m.features)
    throw InputError("verify", fmt::format("data: {} values per sample, the tree model takes {} features", per, m.features));
  if (!labels.empty() && int64_t(labels.size()) != N)
    throw InputError("verify", fmt::format("labels: {} labels for {} samples", labels.size(), N));
  if (m.head == engine::TreeEnsemble::Head::Regression)
    throw InputError("verify", fmt::format("{} ({}) is a regressor: local robustness needs a decision; state an output "
                                           "property with --vnnlib instead",
                                           m.node_name, m.op_type));
  datasets::check_labels("verify: labels", labels, m.classes);
}

// Partition grid of a domain (verify_fairness's): equal slices of every non-protected feature
// with a non-empty range.
std::vector<InputBox> partition_grid(const FairnessOptions& opts, int64_t n) {
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < n; ++i)
    if (i != opts.protected_index && opts.domain.upper[size_t(i)] > opts.domain.lower[size_t(i)]) dims.push_back(i);
  const double count = std::pow(double(opts.splits_per_feature), double(dims.size()));
  if (count > double(opts.max_partitions))
    throw InputError("verify", fmt::format("{} partitions exceed the limit of {}; lower --partitions", count,
                                           opts.max_partitions));
  std::vector<InputBox> out;
  std::vector<int64_t> idx(dims.size(), 0);
  for (int64_t part = 0; part < int64_t(count); ++part) {
    InputBox b = opts.domain;
    for (size_t d = 0; d < dims.size(); ++d) {
      auto i = size_t(dims[d]);
      double lo = opts.domain.lower[i], w = (opts.domain.upper[i] - lo) / opts.splits_per_feature;
      b.lower[i] = lo + w * double(idx[d]);
      b.upper[i] = idx[d] + 1 == opts.splits_per_feature ? opts.domain.upper[i] : lo + w * double(idx[d] + 1);
    }
    out.push_back(b);
    for (size_t d = 0; d < dims.size(); ++d) {
      if (++idx[d] < opts.splits_per_feature) break;
      idx[d] = 0;
    }
  }
  return out;
}

// The float32 points of a real box.
TreeBox float_box(const InputBox& b) {
  TreeBox t;
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < b.lower.size(); ++i) {
    // Smallest float32 >= lower, largest float32 <= upper (float() rounds to nearest: one step).
    float l = float(b.lower[i]), u = float(b.upper[i]);
    if (std::isfinite(b.lower[i]) && double(l) < b.lower[i]) l = std::nextafter(l, inf);
    if (std::isfinite(b.upper[i]) && double(u) > b.upper[i]) u = std::nextafter(u, -inf);
    t.lower.push_back(l);
    t.upper.push_back(u);
  }
  return t;
}

FairnessPartition fairness_part(const engine::TreeEnsemble& m, const InputBox& box, const float* anchor,
                                const FairnessOptions& opts, double delta, const TreeVerifyOptions& tree_opts) {
  TreeFairnessOptions fo;
  fo.protected_index = opts.protected_index;
  fo.protected_values = opts.protected_values;
  fo.score_delta = delta;
  fo.verify = tree_opts;
  fo.verify.timeout_s = opts.solver.timeout_s;
  FairnessPartition fp;
  fp.box = box;
  TreeBox tb = float_box(box);
  if (tb.empty() && !(box.lower.empty())) {
    // Only the protected feature's range may be empty-looking (it is replaced by the values).
    bool other_empty = false;
    for (size_t i = 0; i < tb.lower.size(); ++i)
      if (int64_t(i) != opts.protected_index && !(tb.lower[i] <= tb.upper[i])) other_empty = true;
    if (other_empty) {
      fp.verdict = Verdict::Unsat;  // no float32 point in the box
      return fp;
    }
  }
  auto r = verify_tree_fairness(m, tb, anchor, fo);
  fp.seconds = r.seconds;
  fp.verdict = r.verdict;
  if (r.verdict == Verdict::Sat) {
    fp.counterexample_a.assign(r.input_a.begin(), r.input_a.end());
    fp.counterexample_b.assign(r.input_b.begin(), r.input_b.end());
    fp.output_a = r.output_a;
    fp.output_b = r.output_b;
  }
  return fp;
}

void check_fairness(const engine::TreeEnsemble& m, const FairnessOptions& opts) {
  if (int64_t(opts.domain.lower.size()) != m.features)
    throw InputError("verify", fmt::format("domain: {} feature ranges for a tree model with {} features",
                                           opts.domain.lower.size(), m.features));
  if (opts.splits_per_feature < 1) throw InputError("verify", "--partitions must be >= 1");
}

}  // namespace

VerifyResult to_verify_result(const TreeVerifyResult& r) {
  VerifyResult v;
  v.verdict = r.verdict;
  v.reason = r.reason;
  v.method = r.method;
  v.seconds = r.seconds;
  v.domains = r.nodes;
  if (r.verdict == Verdict::Sat) {
    Counterexample c;
    c.input.assign(r.counterexample.begin(), r.counterexample.end());
    c.output = r.counterexample_output;
    v.counterexample = c;
  }
  return v;
}

std::vector<SampleVerdict> verify_tree_robustness_data(const engine::TreeEnsemble& m, const engine::Tensor& data,
                                                       const std::vector<int64_t>& labels, const RobustnessOptions& opts,
                                                       const TreeVerifyOptions& tree_opts) {
  check_rows(m, data, labels);
  if (std::isnan(opts.clip_min) || std::isnan(opts.clip_max) || !(opts.clip_min < opts.clip_max))
    throw InputError("verify", fmt::format("the input domain [{}, {}] is empty (--clip-min must be less than --clip-max)",
                                           opts.clip_min, opts.clip_max));
  for (double e : opts.eps)
    if (!(e >= 0) || !std::isfinite(e)) throw InputError("verify", fmt::format("eps {} is not a finite radius >= 0", e));
  datasets::check_in_domain("verify: data", data, opts.clip_min, opts.clip_max);
  const int64_t N = data.dim(0), F = m.features;
  const std::vector<float> all = rows_f32(data);
  std::vector<int64_t> label(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) label[size_t(i)] = labels.empty() ? decision_at(m, tree_opts, &all[size_t(i * F)]) : labels[size_t(i)];
  std::vector<SampleVerdict> out;
  for (double eps : opts.eps)
    for (int64_t i = 0; i < N; ++i) {
      const float* x = &all[size_t(i * F)];
      SampleVerdict v;
      v.index = i;
      v.eps = eps;
      v.label = label[size_t(i)];
      TreeVerifyOptions o = tree_opts;
      o.timeout_s = opts.solver.timeout_s;
      TreeBox box = linf_box(x, F, eps, opts.clip_min, opts.clip_max);
      TreeVerifyResult r = verify_tree_robustness(m, v.label, box, x, o);
      v.seconds = r.seconds;
      v.method = r.method;
      v.reason = r.reason;
      v.verdict = r.verdict;
      if (r.verdict == Verdict::Sat)
        detail::record_falsified(v, std::vector<double>(r.counterexample.begin(), r.counterexample.end()), x,
                                 r.counterexample_output);
      out.push_back(v);
      if (opts.progress) opts.progress(int64_t(out.size()), int64_t(opts.eps.size()) * N);
    }
  return out;
}

std::vector<TreeMinimalResult> tree_minimal_distances(const engine::TreeEnsemble& m, const engine::Tensor& data,
                                                      const std::vector<int64_t>& labels, double clip_min, double clip_max,
                                                      const TreeVerifyOptions& tree_opts, const engine::ProgressFn& progress) {
  check_rows(m, data, labels);
  datasets::check_in_domain("verify: data", data, clip_min, clip_max);
  const int64_t N = data.dim(0), F = m.features;
  const std::vector<float> all = rows_f32(data);
  std::vector<TreeMinimalResult> out;
  for (int64_t i = 0; i < N; ++i) {
    TreeMinimalOptions mo;
    mo.clip_min = clip_min;
    mo.clip_max = clip_max;
    mo.label = labels.empty() ? -1 : labels[size_t(i)];
    mo.verify = tree_opts;
    out.push_back(minimal_adversarial_linf(m, &all[size_t(i * F)], mo));
    if (progress) progress(i + 1, N);
  }
  return out;
}

std::vector<FairnessPartition> verify_tree_fairness_partitions(const engine::TreeEnsemble& m, const FairnessOptions& opts,
                                                               double score_delta, const TreeVerifyOptions& tree_opts) {
  check_fairness(m, opts);
  std::vector<FairnessPartition> out;
  for (const auto& box : partition_grid(opts, m.features)) {
    std::vector<float> centre(size_t(m.features));
    for (size_t i = 0; i < centre.size(); ++i) centre[i] = float(box.lower[i] + (box.upper[i] - box.lower[i]) / 2);
    out.push_back(fairness_part(m, box, centre.data(), opts, score_delta, tree_opts));
  }
  return out;
}

std::vector<FairnessPartition> verify_tree_fairness_samples(const engine::TreeEnsemble& m, const engine::Tensor& data,
                                                            double eps, const FairnessOptions& opts, double score_delta,
                                                            const TreeVerifyOptions& tree_opts) {
  check_fairness(m, opts);
  if (!(eps >= 0) || !std::isfinite(eps)) throw InputError("verify", fmt::format("eps {} is not a finite radius >= 0", eps));
  if (data.rank() < 1 || (data.dim(0) > 0 && data.numel() / data.dim(0) != m.features))
    throw InputError("verify", fmt::format("data: rows of {} features expected", m.features));
  const int64_t N = data.dim(0), F = m.features;
  const std::vector<float> all = rows_f32(data);
  std::vector<FairnessPartition> out;
  for (int64_t i = 0; i < N; ++i) {
    const float* x = &all[size_t(i * F)];
    InputBox box = opts.domain;
    for (int64_t f = 0; f < F; ++f) {
      if (!std::isfinite(x[f])) throw InputError("verify", fmt::format("data row {} feature {} is not finite", i, f));
      if (f == opts.protected_index) continue;
      box.lower[size_t(f)] = std::max(opts.domain.lower[size_t(f)], double(x[f]) - eps);
      box.upper[size_t(f)] = std::min(opts.domain.upper[size_t(f)], double(x[f]) + eps);
    }
    // The ball's float32 points exactly (linf_box), intersected with the domain.
    TreeBox ball = linf_box(x, F, eps, -kInf, kInf);
    for (int64_t f = 0; f < F; ++f) {
      if (f == opts.protected_index) continue;
      box.lower[size_t(f)] = std::max(double(ball.lower[size_t(f)]), opts.domain.lower[size_t(f)]);
      box.upper[size_t(f)] = std::min(double(ball.upper[size_t(f)]), opts.domain.upper[size_t(f)]);
    }
    out.push_back(fairness_part(m, box, x, opts, score_delta, tree_opts));
  }
  return out;
}

}  // namespace mlaudit::verify
