// Result JSON of the robustness module's runs (report.h).
#include "mlaudit/robustness/report.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/robustness/corruptions.h"

namespace mlaudit::robustness {

namespace {
// The fields every robustness report opens with.
nlohmann::json report_head(const char* schema, const std::string& tool_version, const std::string& model,
                           const std::string& data, const nlohmann::json& inputs) {
  return {{"schema", schema}, {"tool_version", tool_version}, {"model", model}, {"data", data}, {"inputs", inputs}};
}
}  // namespace

nlohmann::json certify_report(const std::vector<CertifyRecord>& records, const SmoothingConfig& cfg,
                              const std::vector<double>& radii, const std::string& model, const std::string& data,
                              const nlohmann::json& inputs, double seconds, const std::string& tool_version) {
  nlohmann::json j = report_head("mlaudit.certify/1", tool_version, model, data, inputs);
  j["method"] = "randomized smoothing CERTIFY (Cohen, Rosenfeld, Kolter 2019), one-sided Clopper-Pearson bound, L2 radius";
  j["config"] = {{"sigma", cfg.sigma}, {"n0", cfg.n0}, {"n", cfg.n}, {"alpha", cfg.alpha}, {"batch", cfg.batch}, {"seed", cfg.seed},
                 {"rng", "xoshiro256** stream per noisy copy seeded by (seed, sample, copy), Box-Muller normals; independent of --batch and --threads"}};
  const bool on_device = !records.empty() && records.front().device;
  j["sampler"] = on_device ? "device: robustness::device_smoothing_counts (counter-based Philox4x32-10 noise in the sampling kernel, forward and argmax histogram on the GPU)"
                           : "host: noise filled in parallel, one stream per noisy copy";
  if (on_device) j["config"]["rng"] = "Philox4x32-10 keyed by seed*2+1 (N0) and seed*2+2 (N), counter = sample element index";
  j["n_samples"] = records.size();
  j["per_sample"] = nlohmann::json::array();
  for (const auto& r : records)
    j["per_sample"].push_back({{"index", r.index}, {"label", r.label}, {"prediction", r.prediction}, {"radius", r.radius},
                               {"correct", r.correct}, {"count_a", r.count_a}, {"pa_lower", r.pa_lower}, {"seconds", r.seconds}});
  certify_aggregates(j, radii, seconds);
  return j;
}

void certify_aggregates(nlohmann::json& j, const std::vector<double>& radii, double seconds) {
  nlohmann::json& per = j["per_sample"];
  const int64_t n = int64_t(per.size());
  int64_t abstained = 0;
  for (auto& r : per) abstained += r["prediction"].get<int64_t>() < 0;
  nlohmann::json acc = nlohmann::json::array();
  for (double radius : radii) {
    int64_t hits = 0;  // an abstention is never correct (certified_accuracy's rule)
    for (auto& r : per)
      hits += r["correct"].get<bool>() && r["prediction"].get<int64_t>() >= 0 && r["radius"].get<double>() >= radius;
    acc.push_back({{"radius", radius},
                   {"accuracy", n == 0 ? 0.0 : double(hits) / double(n)},
                   {"accuracy_ci", datasets::proportion_json(hits, n)}});
  }
  j["n_samples"] = n;
  j["certified_accuracy"] = acc;
  j["abstain_rate"] = n == 0 ? 0.0 : double(abstained) / double(n);
  j["seconds"] = seconds;
  j["seconds_per_sample"] = n == 0 ? 0.0 : seconds / double(n);
}

nlohmann::json corrupt_report(const CorruptionReport& rep, const std::vector<std::string>& corruptions, bool images,
                              const std::string& model, const std::string& data, const nlohmann::json& inputs,
                              const std::string& tool_version) {
  nlohmann::json j = report_head("mlaudit.corrupt/1", tool_version, model, data, inputs);
  j["reference"] = images ? "Hendrycks & Dietterich 2019, CIFAR-10-C severity constants; noise drawn per sample from a stream "
                            "keyed by (seed, corruption, severity, sample index)"
                          : "feature_noise: x + N(0, (c*std)^2), c = 0.1,0.2,0.3,0.5,1.0; feature_dropout: cell -> column "
                            "mean with p = 0.1..0.5";
  std::vector<CorruptCount> counts;
  for (const auto& s : rep.scores) counts.push_back({s.corruption, s.severity, s.correct});
  corrupt_aggregates(j, rep.n, rep.clean_correct, corruptions, counts);
  return j;
}

void corrupt_aggregates(nlohmann::json& j, int64_t n, int64_t clean_correct, const std::vector<std::string>& corruptions,
                               const std::vector<CorruptCount>& counts) {
  auto acc = [n](int64_t k) { return n ? double(k) / double(n) : 0.0; };
  const double clean = acc(clean_correct);
  j["n_samples"] = n;
  j["clean_accuracy"] = clean;
  j["clean_accuracy_ci"] = datasets::proportion_json(clean_correct, n);
  j["clean_correct"] = clean_correct;
  j["corruptions"] = nlohmann::json::array();
  double all = 0;
  for (const auto& c : corruptions) {
    nlohmann::json e = {{"name", c}, {"by_severity", nlohmann::json::array()}};
    double sum = 0;
    int k = 0;
    for (const auto& s : counts)
      if (s.corruption == c) {
        e["by_severity"].push_back({{"severity", s.severity}, {"accuracy", acc(s.correct)},
                                    {"accuracy_ci", datasets::proportion_json(s.correct, n)}, {"correct", s.correct}});
        sum += acc(s.correct);
        ++k;
      }
    const double mean = k ? sum / k : 0.0;
    e["mean_accuracy"] = mean;
    e["relative_drop"] = clean > 0 ? (clean - mean) / clean : 0.0;
    j["corruptions"].push_back(e);
  }
  for (const auto& s : counts) all += acc(s.correct);
  const double mean_all = counts.empty() ? 0.0 : all / double(counts.size());
  j["mean_corruption_accuracy"] = mean_all;
  j["relative_drop"] = clean > 0 ? (clean - mean_all) / clean : 0.0;
}

namespace {
// The median as the commands' percentile(v, 0.5) computes it (linear between the two middle
// values), 0 when empty.
double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double pos = 0.5 * double(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}
}  // namespace

nlohmann::json attack_eps_entry(double eps, const std::vector<uint8_t>& correct, const std::vector<uint8_t>& broken,
                                const std::vector<double>& norm, int64_t gradient_calls, int64_t queries, int64_t rejected,
                                const std::vector<std::string>& warnings) {
  const int64_t n = int64_t(correct.size());
  std::vector<double> norms;
  int64_t n_correct = 0, n_broken = 0, robust = 0;
  for (int64_t i = 0; i < n; ++i) {
    n_correct += correct[size_t(i)];
    if (broken[size_t(i)]) {
      ++n_broken;
      norms.push_back(norm[size_t(i)]);
    } else {
      robust += correct[size_t(i)];
    }
  }
  double mean = 0;
  for (double v : norms) mean += v / double(norms.size());
  nlohmann::json e = {{"eps", eps},
                      {"robust_accuracy", n ? double(robust) / double(n) : 0.0},
                      {"robust_accuracy_ci", datasets::proportion_json(robust, n)},
                      {"attack_success_rate", n_correct ? double(n_broken) / double(n_correct) : 0.0},
                      {"mean_perturbation_norm", mean},
                      {"median_perturbation_norm", median(norms)},
                      {"gradient_calls", gradient_calls},
                      {"queries", queries},
                      {"rejected_candidates", rejected}};
  if (!warnings.empty()) e["warnings"] = warnings;
  return e;
}

nlohmann::json minimal_norms_json(const std::vector<double>& norms, int64_t queries) {
  std::vector<double> sorted = norms;
  std::sort(sorted.begin(), sorted.end());
  auto q = [&](double p) { return sorted.empty() ? 0.0 : sorted[std::min(sorted.size() - 1, size_t(p * double(sorted.size() - 1) + 0.5))]; };
  double mean = 0;
  for (double v : norms) mean += v / double(norms.size());
  return {{"found", norms.size()}, {"mean", mean}, {"median", median(norms)}, {"min", sorted.empty() ? 0.0 : sorted.front()},
          {"p25", q(0.25)}, {"p75", q(0.75)}, {"max", sorted.empty() ? 0.0 : sorted.back()}, {"values", sorted},
          {"queries", queries}};
}

}  // namespace mlaudit::robustness

namespace mlaudit::robustness {

nlohmann::json attack_report_head(const AttackRun& run, const AttackConfig& cfg, const std::vector<int64_t>& labels,
                                  int64_t first_index) {
  nlohmann::json out = report_head("mlaudit.attack/1", run.tool_version, run.model, run.data,
                                   run.inputs ? *run.inputs : nlohmann::json::object());
  out["labels"] = run.labels;
  out["attack"] = run.attack;
  out["norm"] = norm_name(cfg.norm);
  out["n_samples"] = labels.size();
  out["domain"] = {cfg.clip_min, cfg.clip_max};
  out["config"] = {{"steps", cfg.steps}, {"restarts", cfg.restarts}, {"step_size", cfg.step_size}, {"queries", cfg.queries},
                   {"clip_min", cfg.clip_min}, {"clip_max", cfg.clip_max}, {"seed", cfg.seed}, {"batch", cfg.batch}};
  if (run.attack == "hsja")
    out["config"]["hsja"] = {{"max_iter", cfg.steps > 0 ? cfg.steps : 50}, {"max_eval", cfg.hsja_max_eval},
                             {"init_eval", cfg.hsja_init_eval}, {"init_size", cfg.init_size},
                             {"max_queries", cfg.max_queries}, {"step_search", "geometric"},
                             {"threshold", cfg.norm == Norm::L2 ? "d^-3/2" : "d^-2"}};
  if (run.attack == "boundary")
    out["config"]["boundary"] = {{"steps", cfg.steps > 0 ? cfg.steps : 25000}, {"spherical_step", cfg.spherical_step},
                                 {"source_step", cfg.source_step}, {"source_step_convergence", cfg.source_step_convergence},
                                 {"step_adaptation", cfg.step_adaptation}, {"update_stats_every_k", cfg.update_stats_every_k},
                                 {"max_queries", cfg.max_queries}, {"init", "blended uniform noise, 50 blend steps"}};
  if (run.exact_tree)
    out["config"]["exact_tree"] = {{"timeout_s", run.exact_timeout_s}, {"method", "threshold-cell search (verify/trees.h)"}};
  if (run.attack == "autoattack") out["subset"] = autoattack_stages(cfg.gradients_available, cfg.norm);
  if (run.attack == "autoattack" && !cfg.gradients_available)
    out["note"] = "the model has no input gradients: autoattack ran its black-box subset (" + autoattack_black_box_text(cfg.norm) +
                  "); a point counts as broken when square breaks it within eps or a decision attack's smallest "
                  "adversarial lies within eps";
  out["verification"] =
      "every adversarial example re-checked by a fresh forward pass: inside the ball, inside [clip_min, clip_max], label changed";
  nlohmann::json per_sample = nlohmann::json::array();
  for (size_t i = 0; i < labels.size(); ++i) per_sample.push_back({{"index", first_index + int64_t(i)}, {"label", labels[i]}});
  out["by_eps"] = nlohmann::json::array();
  out["per_sample"] = per_sample;
  return out;
}

namespace {

nlohmann::json eps_entry(double eps, const AttackResult& r, const std::vector<uint8_t>& broken) {
  int64_t gcalls = 0, queries = 0;
  for (size_t i = 0; i < r.gradient_calls.size(); ++i) gcalls += r.gradient_calls[i];
  for (size_t i = 0; i < r.queries.size(); ++i) queries += r.queries[i];
  return attack_eps_entry(eps, r.clean_correct, broken, r.perturbation_norm, gcalls, queries, r.rejected, r.warnings);
}

}  // namespace

void attack_report_add_eps(nlohmann::json& j, double eps, const AttackResult& r) {
  j["by_eps"].push_back(eps_entry(eps, r, r.success));
  nlohmann::json& per_sample = j["per_sample"];
  for (size_t i = 0; i < per_sample.size(); ++i) {
    auto& p = per_sample[i];
    p["clean_prediction"] = r.clean_prediction[i];
    p["correct"] = bool(r.clean_correct[i]);
    nlohmann::json e = {{"eps", eps}, {"success", bool(r.success[i])}, {"adv_prediction", r.adv_prediction[i]},
                        {"perturbation_norm", r.perturbation_norm[i]}, {"gradient_calls", r.gradient_calls[i]},
                        {"queries", r.queries[i]}};
    if (!r.stage[i].empty()) e["stage"] = r.stage[i];
    p["by_eps"].push_back(e);
  }
}

void attack_report_add_minimal(nlohmann::json& j, const AttackResult& r, const std::vector<double>& eps_list,
                               const nlohmann::json& exact_points) {
  nlohmann::json& per_sample = j["per_sample"];
  const size_t n = per_sample.size();
  std::vector<double> norms;
  for (size_t i = 0; i < n; ++i)
    if (r.success[i]) norms.push_back(r.perturbation_norm[i]);
  int64_t queries_total = 0;
  for (auto v : r.queries) queries_total += v;
  j["minimal_norms"] = minimal_norms_json(norms, queries_total);
  for (double eps : eps_list) {
    // A minimal-norm attack answers every eps at once: broken iff its minimal norm <= eps.
    std::vector<uint8_t> s(n, 0);
    for (size_t i = 0; i < n; ++i) s[i] = r.success[i] && r.perturbation_norm[i] <= eps * (1 + 1e-6);
    j["by_eps"].push_back(eps_entry(eps, r, s));
  }
  for (size_t i = 0; i < n; ++i) {
    auto& p = per_sample[i];
    p["clean_prediction"] = r.clean_prediction[i];
    p["correct"] = bool(r.clean_correct[i]);
    p["adv_prediction"] = r.adv_prediction[i];
    p["minimal_norm"] = r.success[i] ? nlohmann::json(r.perturbation_norm[i]) : nlohmann::json(nullptr);
    p["gradient_calls"] = r.gradient_calls[i];
    p["queries"] = r.queries[i];
    if (exact_points.is_array() && i < exact_points.size())
      for (const char* k : {"status", "lower_bound", "upper_bound", "seconds"})
        if (exact_points[i].contains(k)) p[k] = exact_points[i][k];
  }
}

void attack_report_finish(nlohmann::json& j, const AttackResult& last, double seconds) {
  const int64_t n = int64_t(j["per_sample"].size());
  j["clean_accuracy"] = last.clean_accuracy();
  int64_t k = 0;
  for (auto c : last.clean_correct) k += c;
  j["clean_accuracy_ci"] = datasets::proportion_json(k, n);
  j["execution"] = last.notes;  // e.g. the fused device loop, or why the host loop ran
  j["seconds"] = seconds;
  j["seconds_per_sample"] = n ? seconds / double(n) : 0.0;
  // Every distinct warning of every eps, once (gradient masking, probabilities, a ball that covers the domain).
  std::vector<std::string> shown;
  for (const auto& e : j["by_eps"])
    if (e.contains("warnings"))
      for (const auto& w : e["warnings"])
        if (std::find(shown.begin(), shown.end(), w.get<std::string>()) == shown.end()) shown.push_back(w.get<std::string>());
  for (const auto& w : last.warnings)
    if (std::find(shown.begin(), shown.end(), w) == shown.end()) shown.push_back(w);
  j["warnings"] = shown;
}

}  // namespace mlaudit::robustness
