#pragma once
// Result JSON of the robustness module's runs (issue #19: each module builds its own result
// JSON; the command keeps flags and files, merge recomputes the aggregates with these functions).
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "mlaudit/robustness/attacks.h"
#include "mlaudit/robustness/smoothing.h"

namespace mlaudit::robustness {

/// mlaudit.certify/1 of a `certify` run: method, config, sampler, per-sample records (indices as
/// given), certified accuracy per radius with its Clopper-Pearson interval, abstain rate and
/// timings. `inputs`: the files' provenance ({model, data, labels}).
nlohmann::json certify_report(const std::vector<CertifyRecord>& records, const SmoothingConfig& cfg,
                              const std::vector<double>& radii, const std::string& model, const std::string& data,
                              const nlohmann::json& inputs, double seconds, const std::string& tool_version);

/// A mlaudit.certify/1 report's aggregates from its per_sample records: n_samples,
/// certified_accuracy at `radii` (a sample counts at r when it is correct, not abstaining and
/// its radius >= r), abstain_rate, seconds and seconds_per_sample. certify_report writes them;
/// `mlaudit merge` recomputes them from the parts' records, so both are the same arithmetic.
void certify_aggregates(nlohmann::json& report, const std::vector<double>& radii, double seconds);

/// One (corruption, severity) count of `corrupt`: samples still classified correctly.
struct CorruptCount {
  std::string corruption;
  int severity = 0;
  int64_t correct = 0;
};

struct CorruptionReport;

/// mlaudit.corrupt/1 of a `corrupt` run: schema, model, data, inputs (the files' provenance),
/// the reference for the corruptions' constants (`images`: Hendrycks & Dietterich's; else the
/// tabular noise), and corrupt_aggregates over `rep`'s counts in `corruptions` order.
nlohmann::json corrupt_report(const CorruptionReport& rep, const std::vector<std::string>& corruptions, bool images,
                              const std::string& model, const std::string& data, const nlohmann::json& inputs,
                              const std::string& tool_version);

/// `corrupt`'s aggregates (mlaudit.corrupt/1) from counts over n samples: clean accuracy, per
/// corruption and severity accuracy with its interval, the means and relative drops. corrupt
/// writes them from its run, `mlaudit merge` from the parts' summed counts, so both are the same
/// arithmetic.
void corrupt_aggregates(nlohmann::json& report, int64_t n, int64_t clean_correct, const std::vector<std::string>& corruptions,
                        const std::vector<CorruptCount>& counts);

/// One `attack` by_eps entry (mlaudit.attack/1) from per-sample outcomes: `correct[i]`,
/// `broken[i]` (adversarial within eps) and `norm[i]` of each of the n samples, the call counts
/// and the warnings: robust accuracy with its interval, attack success rate, mean and median
/// perturbation norm. attack writes it from its AttackResult, `mlaudit merge` recomputes it from
/// the parts' per-sample records.
nlohmann::json attack_eps_entry(double eps, const std::vector<uint8_t>& correct, const std::vector<uint8_t>& broken,
                                const std::vector<double>& norm, int64_t gradient_calls, int64_t queries, int64_t rejected,
                                const std::vector<std::string>& warnings);

/// What an `attack` report names besides its results: the files (paths as given and their
/// provenance {model, data, labels}), the attack as run and its exact-tree settings.
struct AttackRun {
  std::string attack;  ///< canonical name
  std::string model, data, labels;
  const nlohmann::json* inputs = nullptr;  ///< the files' provenance (copied into the report)
  bool exact_tree = false;           ///< `--attack exact-tree` (verify/trees.h)
  double exact_timeout_s = 0;
  std::string tool_version;
};

/// The head of mlaudit.attack/1: schema, files, attack, norm, n_samples, domain, config (with
/// HopSkipJump's, Boundary's and exact-tree's own settings), AutoAttack's subset and its
/// black-box note, the re-check statement, an empty by_eps, and per_sample with each sample's
/// global index (first_index + i) and label.
nlohmann::json attack_report_head(const AttackRun& run, const AttackConfig& cfg, const std::vector<int64_t>& labels,
                                  int64_t first_index);

/// Adds one eps of a fixed-eps attack to the report: its by_eps entry and each sample's
/// clean prediction, correctness and by_eps record (outcome, prediction, norm, calls, stage).
void attack_report_add_eps(nlohmann::json& report, double eps, const AttackResult& r);

/// Adds a minimal-norm attack's results: minimal_norms, one by_eps entry per eps of `eps_list`
/// (broken iff its minimal norm <= eps, relative slack 1e-6), each sample's minimal_norm (null
/// when none was found) and calls, and exact-tree's per-point status and bounds (`exact_points`,
/// indexed as the samples; may be empty).
void attack_report_add_minimal(nlohmann::json& report, const AttackResult& r, const std::vector<double>& eps_list,
                               const nlohmann::json& exact_points);

/// Completes the report from the last run: clean accuracy with its interval, execution notes,
/// seconds (and per sample) and every distinct warning of every eps and of the run, once.
void attack_report_finish(nlohmann::json& report, const AttackResult& last, double seconds);

/// A minimal-norm attack's "minimal_norms" block from the norms it found (in sample order) and
/// its total queries: found, mean, median, min, p25, p75, max, the sorted values.
nlohmann::json minimal_norms_json(const std::vector<double>& norms, int64_t queries);

}  // namespace mlaudit::robustness
