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
