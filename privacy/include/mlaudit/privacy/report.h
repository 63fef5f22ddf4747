#pragma once
// Result JSON of the privacy module (issue #19: each module builds its own result JSON):
// `privacy`'s per-attack report entries and the per-sample scores of its parts, shared by the
// command and `mlaudit merge`, so the merged report is the one privacy writes (the metrics come
// from evaluate_attack on the scores of every sample in the same order).
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mlaudit/privacy/backdoor.h"
#include "mlaudit/privacy/membership.h"

namespace mlaudit::privacy {

/// A score in a part: a number, or "inf" / "-inf" (label-only gives +inf to a sample whose
/// boundary DeepFool did not reach; JSON has no infinity, and null would lose the sign).
nlohmann::json score_json(double v);

/// The score score_json wrote (json's type_error on anything else, which merge reports as a
/// malformed part).
double score_value(const nlohmann::json& v);

/// One entry of mlaudit.privacy/1's "attacks": the metrics and the thinned ROC.
nlohmann::json attack_json(const AttackReport& r);

/// What a `privacy` report names besides its scores: the model and the member/non-member files
/// (paths as given, counts), the files' provenance, the reference models and how the
/// label-only distance was measured ("" when label-only did not run).
struct PrivacyRun {
  std::string model, members_file, non_members_file;
  int64_t members = 0, non_members = 0;
  const nlohmann::json* inputs = nullptr;     ///< {model, members, non_members[, *_labels]} provenance
  std::vector<std::string> reference_models;  ///< LiRA's (empty: LiRA did not run)
  bool lira = false;
  LiraOptions lira_options;
  std::string label_only_distance;
  std::string tool_version;
};

/// mlaudit.privacy/1: schema, model, inputs, the two sets, the score and metric conventions,
/// LiRA's reference models and variance mode, the label-only distance method, the timing and
/// one entry per attack (attack_json; a shard's part has none: see privacy_part_samples).
nlohmann::json privacy_report(const PrivacyRun& run, const std::vector<AttackReport>& reports, double seconds);

/// A part's per-sample records (`samples`) for items [first, end) of "members, then
/// non-members": global index, membership, row in its file, label and every attack's score
/// (score_json); `scores[k][i - first]` is attack k's score of item i.
nlohmann::json privacy_part_samples(const std::vector<std::string>& attacks, const std::vector<std::vector<double>>& scores,
                                    const std::vector<int64_t>& member_labels, const std::vector<int64_t>& non_member_labels,
                                    int64_t first, int64_t end);

/// mlaudit.backdoor/1's "neural_cleanse" block: method, config, one entry per class (mask L1,
/// anomaly index - null when infinite -, attack success, epochs, gradient calls, flagged) and the
/// MAD statistics. `trigger_png(trigger, flagged)` names the PNG a class's trigger is written to
/// ("" for none: then the entry has no trigger_png).
nlohmann::json neural_cleanse_json(const NeuralCleanseResult& r, const NeuralCleanseConfig& cfg,
                                   const std::function<std::string(const ReversedTrigger&, bool)>& trigger_png);

/// mlaudit.backdoor/1's "strip" block for the screened inputs of `file`: the clean pool's
/// entropy statistics, the threshold, every input's entropy and the flagged inputs (indices).
nlohmann::json strip_json(const StripResult& s, const StripConfig& cfg, const std::string& file);

}  // namespace mlaudit::privacy
