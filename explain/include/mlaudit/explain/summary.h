// explain's aggregates over all rows: `global_ranking`, the checks, their warnings and `passed`.
// `mlaudit explain` computes them from its rows, `mlaudit merge` from what each part carries in
// shard.explain (per-feature sums of |attribution|, the largest gaps, per-row correlations and
// sensitivities), through the same functions, so a merged report equals one process's.
// Header-only: `mlaudit merge` (mlaudit_cli_core) reads it without linking the explain module.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "mlaudit/engine/error.h"

namespace mlaudit::explain::summary {

/// Correctly rounded sum of doubles (Shewchuk's partials, as Python's math.fsum). The partials
/// are non-overlapping and add up to the exact sum, so adding a slice's partials to another's
/// gives the exact sum of both and value() rounds it once: the result depends neither on the
/// order of the terms nor on how the rows were split into shards.
class ExactSum {
 public:
  void add(double x) {
    if (!std::isfinite(x)) {
      special_ += x;  // inf and nan: their sum does not depend on the order either
      return;
    }
    size_t i = 0;
    for (double y : partials_) {
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double hi = x + y;
      const double lo = y - (hi - x);
      if (lo != 0) partials_[i++] = lo;
      x = hi;
    }
    partials_.resize(i);
    if (x != 0) partials_.push_back(x);
  }
  void add(const ExactSum& other) {
    for (double p : other.partials_) add(p);
    special_ += other.special_;
  }
  /// The exact sum rounded to nearest (ties to even), as math.fsum.
  double value() const {
    if (special_ != 0 || std::isnan(special_)) return special_;
    size_t n = partials_.size();
    if (n == 0) return 0.0;
    double hi = partials_[--n], lo = 0;
    while (n > 0) {
      const double x = hi, y = partials_[--n];
      hi = x + y;
      lo = y - (hi - x);
      if (lo != 0) break;
    }
    // Half-way case: the rest of the partials decide the rounding direction.
    if (n > 0 && ((lo < 0 && partials_[n - 1] < 0) || (lo > 0 && partials_[n - 1] > 0))) {
      const double y = lo * 2, x = hi + y;
      if (y == x - hi) hi = x;
    }
    return hi;
  }
  /// The partials (exact as JSON numbers), then "inf", "-inf" or "nan" when a term was not finite.
  nlohmann::json to_json() const {
    nlohmann::json j = partials_;
    if (std::isnan(special_)) j.push_back("nan");
    else if (special_ != 0) j.push_back(special_ > 0 ? "inf" : "-inf");
    return j;
  }
  static ExactSum from_json(nlohmann::json& j) {
    ExactSum s;
    for (auto& v : j) {
      if (v.is_string()) {
        const std::string t = v.get<std::string>();
        if (t != "inf" && t != "-inf" && t != "nan")
          throw InputError("merge", fmt::format("a part is malformed (a sum holds '{}'): merge reads the files that "
                                                "--shard I/N writes", t.substr(0, 40)));
        s.special_ += t == "inf" ? std::numeric_limits<double>::infinity()
                      : t == "-inf" ? -std::numeric_limits<double>::infinity()
                                    : std::numeric_limits<double>::quiet_NaN();
      } else {
        s.add(v.get<double>());
      }
    }
    return s;
  }

 private:
  std::vector<double> partials_;
  double special_ = 0;
};

/// A per-row number read back from JSON: NaN is written as null.
inline double number(nlohmann::json& v) { return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>(); }

/// An integer field, checked (a JSON float converted to an integer type is undefined behaviour).
inline int64_t integer(nlohmann::json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  throw InputError("merge", fmt::format("a part is malformed (an integer field holds {}): merge reads the files that "
                                        "--shard I/N writes", v.dump().substr(0, 40)));
}

/// What explain's aggregates are computed from. A part carries it for its rows (to_json); merge
/// combines the parts' (combine) and computes the aggregates of the whole run.
struct Aggregates {
  std::string method;
  int64_t rows = 0;
  int64_t first_row = 0;           ///< global index of the first row (flagged_rows are global)
  bool is_image = false;
  int top_k = 10;
  std::vector<std::string> names;  ///< tabular: every feature's name; images: none
  std::vector<ExactSum> abs_sum;   ///< per feature: sum over the rows of |attribution|
  /// Largest relative gap: IG completeness, DeepLIFT summation-to-delta, TreeSHAP local accuracy.
  double max_gap = 0;
  double max_gap_threshold = 0.05;  ///< --max-gap (IG, DeepLIFT)
  bool deeplift_captum = false;
  double max_abs_efficiency_gap = 0;  ///< KernelSHAP: largest |sum(phi) - (f(x) - E f)|
  bool randomization = false;
  std::string layer;
  double randomization_threshold = 0.5;
  std::vector<double> rank_correlation;  ///< per row, in row order
  bool stability = false;
  double stability_radius = 0.02;
  int stability_samples = 10;
  std::vector<double> max_sensitivity;  ///< per row, in row order

  nlohmann::json to_json() const {
    nlohmann::json sums = nlohmann::json::array();
    for (const auto& s : abs_sum) sums.push_back(s.to_json());
    nlohmann::json j = {{"method", method}, {"rows", rows}, {"first_row", first_row}, {"is_image", is_image},
                        {"top_k", top_k}, {"names", names}, {"abs_sum", sums}, {"max_gap", max_gap},
                        {"max_gap_threshold", max_gap_threshold}, {"deeplift_captum", deeplift_captum},
                        {"max_abs_efficiency_gap", max_abs_efficiency_gap}};
    if (randomization)
      j["randomization"] = {{"layer", layer}, {"threshold", randomization_threshold}, {"rank_correlation", rank_correlation}};
    if (stability)
      j["stability"] = {{"radius", stability_radius}, {"perturbations", stability_samples}, {"max_sensitivity", max_sensitivity}};
    return j;
  }
  /// Non-const access only: a missing key reads as null and get<> throws (merge reports a
  /// malformed part), never reading past the end.
  static Aggregates from_json(nlohmann::json& j) {
    Aggregates a;
    a.method = j["method"].get<std::string>();
    // Row counts within what --shard writes, so that the sums below cannot overflow.
    a.rows = integer(j["rows"]);
    a.first_row = integer(j["first_row"]);
    if (a.rows < 0 || a.rows > (int64_t(1) << 40) || a.first_row < 0 || a.first_row > (int64_t(1) << 40))
      throw InputError("merge", fmt::format("a part is malformed (rows {} from row {}): merge reads the files that "
                                            "--shard I/N writes", a.rows, a.first_row));
    a.is_image = j["is_image"].get<bool>();
    a.top_k = int(std::clamp<int64_t>(integer(j["top_k"]), 1, 1 << 30));
    for (auto& n : j["names"]) a.names.push_back(n.get<std::string>());
    for (auto& s : j["abs_sum"]) a.abs_sum.push_back(ExactSum::from_json(s));
    a.max_gap = number(j["max_gap"]);
    a.max_gap_threshold = j["max_gap_threshold"].get<double>();
    a.deeplift_captum = j["deeplift_captum"].get<bool>();
    a.max_abs_efficiency_gap = number(j["max_abs_efficiency_gap"]);
    if (j.contains("randomization")) {
      auto& r = j["randomization"];
      a.randomization = true;
      a.layer = r["layer"].get<std::string>();
      a.randomization_threshold = r["threshold"].get<double>();
      for (auto& v : r["rank_correlation"]) a.rank_correlation.push_back(number(v));
    }
    if (j.contains("stability")) {
      auto& s = j["stability"];
      a.stability = true;
      a.stability_radius = s["radius"].get<double>();
      a.stability_samples = int(std::clamp<int64_t>(integer(s["perturbations"]), 0, 1 << 30));
      for (auto& v : s["max_sensitivity"]) a.max_sensitivity.push_back(number(v));
    }
    return a;
  }
};

/// Appends the next slice's aggregates (`b`, rows following `a`'s) to `a`. False when they do
/// not fit (another feature count or method): parts of one run always fit.
inline bool combine(Aggregates& a, const Aggregates& b) {
  if (a.abs_sum.size() != b.abs_sum.size() || a.method != b.method || a.first_row + a.rows != b.first_row ||
      a.randomization != b.randomization || a.stability != b.stability)
    return false;
  a.rows += b.rows;
  for (size_t j = 0; j < a.abs_sum.size(); ++j) a.abs_sum[j].add(b.abs_sum[j]);
  // The maximum of the slices' maxima, as explain's std::max over the rows (which never takes a NaN).
  a.max_gap = std::max(a.max_gap, b.max_gap);
  a.max_abs_efficiency_gap = std::max(a.max_abs_efficiency_gap, b.max_abs_efficiency_gap);
  a.rank_correlation.insert(a.rank_correlation.end(), b.rank_correlation.begin(), b.rank_correlation.end());
  a.max_sensitivity.insert(a.max_sensitivity.end(), b.max_sensitivity.begin(), b.max_sensitivity.end());
  return true;
}

/// global_ranking: features by mean |attribution| (exact sum / rows), largest first, ties in
/// feature order; images list the top_k, tabular data every feature with its name.
inline nlohmann::json ranking(const Aggregates& a) {
  const int64_t d = int64_t(a.abs_sum.size());
  std::vector<double> mean_abs(size_t(d), 0.0);
  for (int64_t j = 0; j < d; ++j) mean_abs[size_t(j)] = a.rows ? a.abs_sum[size_t(j)].value() / double(a.rows) : 0.0;
  std::vector<int64_t> idx(static_cast<size_t>(d));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t p, int64_t q) { return mean_abs[size_t(p)] > mean_abs[size_t(q)]; });
  nlohmann::json out = nlohmann::json::array();
  for (int64_t m = 0; m < std::min<int64_t>(d, a.is_image ? a.top_k : d); ++m) {
    const int64_t f = idx[size_t(m)];
    nlohmann::json e{{"feature", f}, {"mean_abs_attribution", mean_abs[size_t(f)]}};
    if (!a.is_image && size_t(f) < a.names.size()) e["name"] = a.names[size_t(f)];
    out.push_back(e);
  }
  return out;
}

/// summary["global_ranking"], ["checks"], ["warnings"] and ["passed"]; returns whether a
/// sanity check failed (the --gate).
inline bool write_aggregates(nlohmann::json& summary, const Aggregates& a) {
  summary["global_ranking"] = ranking(a);
  nlohmann::json checks = nlohmann::json::object();
  nlohmann::json warnings = nlohmann::json::array();
  bool gate_failed = false;
  const double max_gap = a.max_gap;
  if (a.method == "integrated-gradients") {
    const double thr = a.max_gap_threshold;
    const bool ok = max_gap <= thr;
    checks["completeness"] = {{"max_relative_gap", max_gap}, {"threshold", thr}, {"passed", ok}};
    if (!ok) {
      warnings.push_back(fmt::format("IG completeness gap {:.4f} exceeds {:.4f}: increase --steps", max_gap, thr));
      gate_failed = true;
    }
  }
  if (a.method == "deeplift") {
    const double thr = a.max_gap_threshold;
    const bool ok = max_gap <= thr;
    checks["summation_to_delta"] = {{"max_relative_gap", max_gap}, {"threshold", thr}, {"passed", ok}};
    if (!ok) {
      warnings.push_back(fmt::format("DeepLIFT summation-to-delta gap {:.4f} exceeds {:.4f}{}", max_gap, thr,
                                     a.deeplift_captum ? " (expected with --deeplift-captum on MaxPool nets)" : ""));
      gate_failed = true;
    }
  }
  if (a.method == "tree-shap") {
    // sum of attributions + E f = f(x), exact up to double rounding
    const bool ok = max_gap <= 1e-6;
    checks["local_accuracy"] = {{"max_relative_gap", max_gap}, {"threshold", 1e-6}, {"passed", ok}};
    if (!ok) {
      warnings.push_back(fmt::format("TreeSHAP local accuracy gap {:.3g} exceeds 1e-6", max_gap));
      gate_failed = true;
    }
  }
  if (a.method == "kernel-shap") {
    const double worst = a.max_abs_efficiency_gap;
    checks["efficiency"] = {{"max_abs_gap", worst}, {"passed", worst < 1e-6}};
  }
  const double n = double(a.rows);
  if (a.randomization) {
    const auto& rho = a.rank_correlation;
    nlohmann::json flagged = nlohmann::json::array();
    for (size_t i = 0; i < rho.size(); ++i)
      if (rho[i] > a.randomization_threshold) flagged.push_back(a.first_row + int64_t(i));
    const double mean_rho = std::accumulate(rho.begin(), rho.end(), 0.0) / n;
    checks["randomization"] = {{"layer", a.layer},
                               {"rank_correlation", rho},
                               {"mean_rank_correlation", mean_rho},
                               {"threshold", a.randomization_threshold},
                               {"flagged_rows", flagged},
                               {"passed", flagged.empty()}};
    if (!flagged.empty()) {
      warnings.push_back(fmt::format("{} of {} explanations barely change when {} is randomized (Spearman > {})",
                                     flagged.size(), a.rows, a.layer, a.randomization_threshold));
      gate_failed = true;
    }
  }
  if (a.stability) {
    const auto& sens = a.max_sensitivity;
    const double mean = std::accumulate(sens.begin(), sens.end(), 0.0) / n;
    checks["stability"] = {{"radius", a.stability_radius}, {"perturbations", a.stability_samples},
                           {"max_sensitivity", sens}, {"mean_max_sensitivity", mean}};
  }
  summary["checks"] = checks;
  summary["warnings"] = warnings;
  summary["passed"] = !gate_failed;
  return gate_failed;
}

}  // namespace mlaudit::explain::summary
