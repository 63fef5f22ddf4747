// `privacy`'s per-attack report entries and the per-sample records of its parts, shared by the
// command and `mlaudit merge` (merge.cpp), so the merged report is the one privacy writes: the
// metrics come from privacy::evaluate_attack on the scores of every sample in the same order.
// Header-only, as shard.h; the caller links mlaudit_privacy.
#pragma once

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "mlaudit/privacy/membership.h"

namespace mlaudit::cli::privacy_summary {

/// A score in a part: a number, or "inf" / "-inf" (label-only gives +inf to a sample whose
/// boundary DeepFool did not reach; JSON has no infinity, and null would lose the sign).
inline nlohmann::json score_json(double v) {
  if (std::isfinite(v)) return v;
  return v > 0 ? "inf" : "-inf";
}

/// The score score_json wrote (get<> throws json's type_error on anything else, which merge
/// reports as a malformed part).
inline double score_value(nlohmann::json& v) {
  if (v.is_string()) {
    if (v == "inf") return std::numeric_limits<double>::infinity();
    if (v == "-inf") return -std::numeric_limits<double>::infinity();
  }
  return v.get<double>();
}

/// One entry of the report's "attacks": the metrics and the thinned ROC.
inline nlohmann::json attack_json(const privacy::AttackReport& r) {
  nlohmann::json a;
  a["name"] = r.name;
  a["auc"] = r.auc;
  a["balanced_accuracy"] = r.balanced_accuracy;
  a["threshold_mode"] = r.threshold_mode;
  a["balanced_accuracy_global_threshold"] = r.balanced_accuracy_global;
  a["tpr_at_fpr_0.001"] = r.tpr_at_fpr_0_001;
  a["tpr_at_fpr_0.01"] = r.tpr_at_fpr_0_01;
  nlohmann::json thr = nlohmann::json::array();
  for (double t : r.roc.thresholds) thr.push_back(std::isfinite(t) ? nlohmann::json(t) : nlohmann::json(nullptr));
  a["roc"] = {{"fpr", r.roc.fpr}, {"tpr", r.roc.tpr}, {"thresholds", thr}};
  return a;
}

}  // namespace mlaudit::cli::privacy_summary
