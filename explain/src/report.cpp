// Per-sample records of mlaudit.explain/1 (report.h).
#include "mlaudit/explain/report.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <nlohmann/json.hpp>

namespace mlaudit::explain {

namespace {

// IG's completeness and DeepLIFT's summation-to-delta check of row r: the same four fields.
template <class Result>
void gap_check(nlohmann::json& row, const char* name, const Result& x, size_t r, double& gap) {
  row["output_baseline"] = x.output_baseline[r];
  row[name] = {{"attribution_sum", x.attribution_sum[r]},
               {"output_difference", x.output_x[r] - x.output_baseline[r]},
               {"relative_gap", x.relative_gap[r]}};
  gap = x.relative_gap[r];
}

}  // namespace

nlohmann::json sample_record(const std::string& method, const float* a, int64_t d, int64_t i, int64_t first_row,
                             int64_t target, double output_x, const int64_t* label, const MethodExtras& extras,
                             const engine::TreeEnsemble* ensemble, const std::vector<std::string>& names, int64_t top_k,
                             double* gap) {
  using json = nlohmann::json;
  std::vector<int64_t> idx(static_cast<size_t>(d));
  std::iota(idx.begin(), idx.end(), 0);
  const int k = static_cast<int>(std::min<int64_t>(top_k, d));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t p, int64_t q) { return std::fabs(a[p]) > std::fabs(a[q]); });
  json top = json::array();
  for (int m = 0; m < k; ++m) {
    json e{{"feature", idx[size_t(m)]}, {"value", a[idx[size_t(m)]]}};
    if (!names.empty()) e["name"] = names[size_t(idx[size_t(m)])];
    top.push_back(e);
  }
  json row{{"index", first_row + i}, {"target", target}, {"output_x", output_x}, {"top_features", top}};
  double g = 0;
  if (method == "tree-shap" && ensemble) {
    // the explained quantity (margin or probability of the target) and its base value
    double base = 0, out_x = 0;
    const auto col = tree_shap_column(*ensemble, extras.tree, i, target, &base, &out_x);
    double sum = base;
    for (double v : col) sum += v;
    row["output_x"] = out_x;
    row["audited_output_x"] = output_x;  // the session's audited output (what other methods explain)
    row["expected_value"] = base;
    row["local_accuracy_gap"] = sum - out_x;
    g = std::fabs(sum - out_x) / std::max(1.0, std::fabs(out_x));
  }
  if (label) row["label"] = *label;
  const size_t r = size_t(i);
  if (method == "integrated-gradients") {
    gap_check(row, "completeness", extras.ig, r, g);
  } else if (method == "deeplift") {
    gap_check(row, "summation_to_delta", extras.dl, r, g);
  } else if (method == "kernel-shap") {
    row["expected_value"] = extras.shap.expected_value[r];
    row["efficiency_gap"] = extras.shap.efficiency_gap[r];
    row["coalitions"] = extras.shap.coalitions[r];
    row["exact"] = static_cast<bool>(extras.shap.exact[r]);
  } else if (method == "lime") {
    row["r2"] = extras.lime.r2[r];
    row["intercept"] = extras.lime.intercept[r];
    row["local_prediction"] = extras.lime.local_pred[r];
  }
  if (gap) *gap = g;
  return row;
}

}  // namespace mlaudit::explain
