#pragma once
// JSON rendering of fairness results (schema mlaudit.fairness/1).
#include <nlohmann/json.hpp>

#include "mlaudit/fairness/counterfactual.h"
#include "mlaudit/fairness/metrics.h"

namespace mlaudit::fairness {

/// Estimate as {"value", "interval", "reason"?, "undefined_resamples"?}; NaN becomes null.
nlohmann::json estimate_json(const Estimate& e);
/// `groups`, `disparities`, `individual`, `summary` and `settings` of an evaluation.
nlohmann::json evaluation_json(const Evaluation& ev);
/// One `counterfactual` record.
nlohmann::json counterfactual_json(const CounterfactualResult& r);

}  // namespace mlaudit::fairness
