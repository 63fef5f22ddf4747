// Result JSON of the privacy module (report.h).
#include "mlaudit/privacy/report.h"

#include <algorithm>
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

nlohmann::json neural_cleanse_json(const NeuralCleanseResult& r, const NeuralCleanseConfig& nc,
                                   const std::function<std::string(const ReversedTrigger&, bool)>& trigger_png) {
  nlohmann::json cls = nlohmann::json::array();
  for (size_t i = 0; i < r.triggers.size(); ++i) {
    const auto& t = r.triggers[i];
    const bool flagged = std::find(r.flagged.begin(), r.flagged.end(), t.target) != r.flagged.end();
    nlohmann::json c = {{"class", t.target},
                        {"l1_norm", t.l1_norm},
                        {"anomaly_index", std::isfinite(r.anomaly_index[i]) ? nlohmann::json(r.anomaly_index[i])
                                                                             : nlohmann::json(nullptr)},
                        {"attack_success", t.attack_success},
                        {"reached_success_threshold", t.reached_threshold},
                        {"epochs_run", t.epochs_run},
                        {"gradient_calls", t.gradient_calls},
                        {"flagged", flagged}};
    const std::string png = trigger_png ? trigger_png(t, flagged) : std::string();
    if (!png.empty()) c["trigger_png"] = png;
    cls.push_back(c);
  }
  return {{"method", "Neural Cleanse (Wang et al. 2019), MAD anomaly index"},
          {"config",
           {{"epochs", nc.epochs}, {"batch", nc.batch}, {"learning_rate", nc.learning_rate}, {"init_cost", nc.init_cost},
            {"cost_multiplier", nc.cost_multiplier}, {"patience", nc.patience},
            {"attack_success_threshold", nc.attack_success_threshold}, {"seed", nc.seed}}},
          {"classes", cls},
          {"median_l1", r.median_l1},
          {"mad_l1", r.mad_l1},
          {"anomaly_threshold", r.threshold},
          {"flagged", r.flagged}};
}

nlohmann::json strip_json(const StripResult& s, const StripConfig& sc, const std::string& file) {
  std::vector<int64_t> flagged;
  for (size_t i = 0; i < s.flagged.size(); ++i)
    if (s.flagged[i]) flagged.push_back(int64_t(i));
  return {{"method", "STRIP (Gao et al. 2019), entropy in bits under superimposition"},
          {"file", file},
          {"overlays", sc.overlays},
          {"false_rejection_rate", sc.false_rejection_rate},
          {"clean_mean", s.clean_mean},
          {"clean_std", s.clean_std},
          {"threshold", s.threshold},
          {"clean_entropy", s.clean_entropy},
          {"entropy", s.suspect_entropy},
          {"flagged", flagged},
          {"flagged_fraction", double(flagged.size()) / double(s.flagged.size())}};
}

}  // namespace mlaudit::privacy
