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

nlohmann::json privacy_report(const PrivacyRun& run, const std::vector<AttackReport>& reports, double seconds) {
  nlohmann::json j;
  j["schema"] = "mlaudit.privacy/1";
  j["tool_version"] = run.tool_version;
  j["model"] = run.model;
  j["inputs"] = run.inputs ? *run.inputs : nlohmann::json::object();
  j["members"] = {{"file", run.members_file}, {"count", run.members}};
  j["non_members"] = {{"file", run.non_members_file}, {"count", run.non_members}};
  j["score_convention"] = "higher score means member; loss score is minus the cross-entropy";
  j["tpr_at_fpr_convention"] = "largest TPR among ROC points with FPR <= target";
  j["threshold_note"] = "balanced accuracy uses the best threshold on the evaluated samples (an upper bound for a real attacker)";
  if (run.lira) {
    j["reference_models"] = run.reference_models;
    const int fv = run.lira_options.fixed_variance;
    j["lira_variance"] = fv == 1 || (fv < 0 && run.reference_models.size() < 64) ? "global" : "per-example";
  }
  if (!run.label_only_distance.empty()) j["label_only_distance"] = run.label_only_distance;
  j["timing"] = {{"seconds", seconds}, {"note", "attacks only: model loading and file I/O excluded"}};
  j["attacks"] = nlohmann::json::array();
  for (const auto& r : reports) j["attacks"].push_back(attack_json(r));
  return j;
}

nlohmann::json privacy_part_samples(const std::vector<std::string>& attacks, const std::vector<std::vector<double>>& scores,
                                    const std::vector<int64_t>& ym, const std::vector<int64_t>& yn, int64_t first,
                                    int64_t end) {
  nlohmann::json samples = nlohmann::json::array();
  const int64_t m = int64_t(ym.size());
  for (int64_t g = first; g < end; ++g) {
    const bool member = g < m;
    nlohmann::json s = {{"index", g}, {"member", member}, {"row", member ? g : g - m},
                        {"label", member ? ym[size_t(g)] : yn[size_t(g - m)]}, {"scores", nlohmann::json::object()}};
    for (size_t k = 0; k < attacks.size(); ++k) s["scores"][attacks[k]] = score_json(scores[k][size_t(g - first)]);
    samples.push_back(s);
  }
  return samples;
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
