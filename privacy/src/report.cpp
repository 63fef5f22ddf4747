// Result JSON of the privacy module (report.h).
#include "mlaudit/privacy/report.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace mlaudit::privacy {

nlohmann::json score_json(double v) {
  if (std::isfinite(v)) return v;
  return v > 0 ? "inf" : "-inf";
}

double score_value(const nlohmann::json& v) {
  if (v.is_string()) {
    if (v == "inf") return std::numeric_limits<double>::infinity();
    if (v == "-inf") return -std::numeric_limits<double>::infinity();
  }
  return v.get<double>();
}

nlohmann::json attack_json(const AttackReport& r) {
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

}  // namespace mlaudit::privacy
