// JSON rendering of fairness results.
#include "mlaudit/fairness/report.h"

#include <cmath>

namespace mlaudit::fairness {
namespace {
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
}  // namespace

nlohmann::json estimate_json(const Estimate& e) {
  nlohmann::json j;
  j["value"] = num(e.value);
  if (std::isnan(e.lo) || std::isnan(e.hi)) j["interval"] = nullptr;
  else j["interval"] = {e.lo, e.hi};
  if (!e.defined()) j["reason"] = e.reason;
  if (e.undefined_resamples > 0) j["undefined_resamples"] = e.undefined_resamples;
  if (!e.interval_note.empty()) j["interval_note"] = e.interval_note;
  return j;
}

nlohmann::json evaluation_json(const Evaluation& ev) {
  nlohmann::json out;
  const auto& names = group_metric_names();
  // Label-only evaluations report base_rate alone (the first metric).
  const size_t metrics = ev.options.labels_only ? 1 : (ev.has_scores ? names.size() : confusion_metric_count());
  nlohmann::json groups = nlohmann::json::array();
  nlohmann::json small = nlohmann::json::array();
  for (const auto& g : ev.groups) {
    nlohmann::json r;
    r["attribute"] = g.attribute;
    r["group"] = g.group;
    r["count"] = g.count;
    r["small_group"] = g.small_group;
    for (size_t m = 0; m < metrics; ++m) r[names[m]] = estimate_json(g.metrics[m]);
    groups.push_back(r);
    if (g.small_group) small.push_back({{"attribute", g.attribute}, {"group", g.group}, {"count", g.count}});
  }
  nlohmann::json disparities = nlohmann::json::array();
  nlohmann::json four_fifths = nlohmann::json::array();
  for (const auto& d : ev.disparities) {
    nlohmann::json r;
    r["attribute"] = d.attribute;
    r["name"] = d.name;
    auto e = estimate_json(d.estimate);
    r["value"] = e["value"];
    r["interval"] = e["interval"];
    if (e.contains("reason")) r["reason"] = e["reason"];
    if (e.contains("undefined_resamples")) r["undefined_resamples"] = e["undefined_resamples"];
    if (e.contains("interval_note")) r["interval_note"] = e["interval_note"];
    r["reference"] = d.reference.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.reference);
    r["formula"] = d.formula;
    if (d.name == "demographic_parity_ratio") {
      r["four_fifths_rule"] = d.four_fifths_rule.empty() ? nlohmann::json(nullptr) : nlohmann::json(d.four_fifths_rule);
      four_fifths.push_back({{"attribute", d.attribute},
                             {"reference", r["reference"]},
                             {"ratio", r["value"]},
                             {"result", r["four_fifths_rule"]}});
    }
    disparities.push_back(r);
  }
  out["groups"] = groups;
  out["disparities"] = disparities;
  out["individual"] = {{"generalized_entropy_index", estimate_json(ev.generalized_entropy_index)},
                       {"theil_index", estimate_json(ev.theil_index)}};
  out["individual"]["generalized_entropy_index"]["alpha"] = ev.options.gei_alpha;
  out["summary"] = {{"attributes", ev.attributes}, {"four_fifths_rule", four_fifths}, {"small_groups", small}};
  out["summary"]["bootstrap"] = {{"resamples", ev.options.bootstrap},
                                 {"estimates_with_undefined_resamples", ev.estimates_with_undefined_resamples},
                                 {"max_undefined_resamples", ev.max_undefined_resamples},
                                 {"intervals_excluding_value", ev.intervals_excluding_value}};
  out["settings"] = {{"bootstrap", ev.options.bootstrap},
                     {"ci", ev.options.ci},
                     {"seed", ev.options.seed},
                     {"bootstrap_method", ev.bootstrap_method},
                     {"interval_method", "percentile (linear interpolation); resamples where a metric is undefined are left out and "
                                         "counted (undefined_resamples); an interval that excludes its estimate carries interval_note"},
                     {"positive", ev.options.positive == PositiveClass::Unfavorable ? "unfavorable" : "favorable"},
                     {"labels_only", ev.options.labels_only},
                     {"min_group_size", ev.options.min_group_size},
                     {"ece_bins", ev.options.ece_bins},
                     {"conventions",
                      "TPR, FPR, TNR, FNR, PPV, NPV count the class named in settings.positive as positive; "
                      "base_rate and selection_rate are rates of the favorable label and decision; "
                      "Fairlearn: difference = max - min over groups, ratio = min / max; to a reference group: "
                      "difference = max_g |m(g) - m(ref)|, ratio = min_g min(m(g)/m(ref), m(ref)/m(g)); "
                      "a metric with a zero denominator is null with a reason (Fairlearn would report 0); "
                      "a disparity is null when any group's metric is null; AIF360 for entropy indices and consistency. "
                      "See docs/fairness.md"}};
  if (!ev.scores_note.empty()) out["settings"]["scores_note"] = ev.scores_note;
  return out;
}

nlohmann::json counterfactual_json(const CounterfactualResult& r) {
  nlohmann::json j;
  j["attribute"] = r.attribute;
  j["rows"] = r.rows;
  j["counterfactuals"] = r.counterfactuals;
  j["flipped_rows"] = r.flipped_rows;
  j["flip_rate"] = r.flip_rate;
  j["pair_flip_rate"] = r.pair_flip_rate;
  j["mean_score_change"] = r.mean_score_change;
  j["mean_abs_score_change"] = r.mean_abs_score_change;
  j["pairs"] = nlohmann::json::array();
  for (const auto& p : r.pairs)
    j["pairs"].push_back({{"from", p.from}, {"to", p.to}, {"rows", p.rows}, {"flips", p.flips},
                          {"flip_rate", p.rows ? double(p.flips) / double(p.rows) : 0.0},
                          {"mean_score_change", p.mean_score_change}});
  j["flipped"] = nlohmann::json::array();
  for (const auto& f : r.examples)
    j["flipped"].push_back({{"row", f.row}, {"from", f.from}, {"to", f.to}, {"decision_before", f.decision_before},
                            {"decision_after", f.decision_after}, {"score_before", f.score_before},
                            {"score_after", f.score_after}});
  return j;
}

}  // namespace mlaudit::fairness
