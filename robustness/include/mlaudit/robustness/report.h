#pragma once
// Result JSON of the robustness module's runs (issue #19: each module builds its own result
// JSON; the command keeps flags and files, merge recomputes the aggregates with these functions).
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

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

}  // namespace mlaudit::robustness
