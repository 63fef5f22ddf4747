#pragma once
// Result JSON of the privacy module (issue #19: each module builds its own result JSON):
// `privacy`'s per-attack report entries and the per-sample scores of its parts, shared by the
// command and `mlaudit merge`, so the merged report is the one privacy writes (the metrics come
// from evaluate_attack on the scores of every sample in the same order).
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>

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
