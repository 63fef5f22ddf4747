#pragma once
// Result JSON of the explain module (issue #19: each module builds its own result JSON): one
// row's record of mlaudit.explain/1's "samples". The aggregates over all rows are summary.h's.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "mlaudit/engine/trees.h"
#include "mlaudit/explain/attribution.h"
#include "mlaudit/explain/tree_shap.h"

namespace mlaudit::explain {

/// What the per-sample methods return besides the attributions, for their records.
struct MethodExtras {
  IgResult ig;
  DeepLiftResult dl;
  KernelShapResult shap;
  LimeResult lime;
  TreeShapResult tree;
};

/// Row i's record (its d attributions at `a`): global index first_row + i, target, output_x (the
/// audited output; tree-shap: the explained margin or probability, with audited_output_x,
/// expected_value and local_accuracy_gap), the top_k features by |attribution| (named by
/// `names` when given: tabular data), the label when `label` is given, and the method's own
/// check: IG's completeness, DeepLIFT's summation-to-delta (output_baseline and the gap),
/// KernelSHAP's expected value, efficiency gap, coalitions and exactness, LIME's fit. `gap`
/// receives the row's relative gap (IG, DeepLIFT, tree-shap; else 0). `ensemble` is tree-shap's.
nlohmann::json sample_record(const std::string& method, const float* a, int64_t d, int64_t i, int64_t first_row,
                             int64_t target, double output_x, const int64_t* label, const MethodExtras& extras,
                             const engine::TreeEnsemble* ensemble, const std::vector<std::string>& names, int64_t top_k,
                             double* gap);

}  // namespace mlaudit::explain
