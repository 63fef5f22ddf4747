#pragma once
// Counterfactual flip test: change a protected attribute in the model's input
// features, re-run the model, and measure how often the decision changes.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mlaudit/engine/model.h"

namespace mlaudit::fairness {

/// How a protected attribute is encoded among the model's input features.
struct FeatureEncoding {
  std::string attribute;            ///< attribute name in the report
  std::vector<std::string> groups;  ///< group names (index = group code)
  /// One column (scalar encoding: the column takes values[g] for group g) or one
  /// column per group (one-hot: column g is 1 for group g, the others 0).
  std::vector<int64_t> columns;
  std::vector<float> values;        ///< scalar encoding only: feature value of each group
  bool one_hot() const { return columns.size() > 1; }
};

/// How decisions are read from the model output (logits [N,C]).
struct DecisionRule {
  int64_t favorable_class = 1;  ///< class index of the favorable decision
  /// NaN: decision = (argmax == favorable_class); else decision = softmax[:, favorable] >= threshold.
  double threshold = std::numeric_limits<double>::quiet_NaN();
};

/// Decisions (1 = favorable) and favorable-class softmax scores for a batch of features [N,F].
void model_decisions(const engine::Model& m, const engine::Tensor& x, const DecisionRule& rule,
                     std::vector<uint8_t>& decisions, std::vector<double>& scores, int64_t batch = 8192);

/// One row whose decision changed.
struct FlippedRow {
  int64_t row = 0;            ///< row index in the evaluated table
  std::string from, to;       ///< original and counterfactual group
  int decision_before = 0, decision_after = 0;
  double score_before = 0, score_after = 0;
};

/// Flip rate for one (from group -> to group) pair.
struct FlipPair {
  std::string from, to;
  int64_t rows = 0, flips = 0;
  double mean_score_change = 0;
};

/// Result of the flip test of one attribute.
struct CounterfactualResult {
  std::string attribute;
  int64_t rows = 0;                 ///< rows probed
  int64_t counterfactuals = 0;      ///< (row, other group) pairs evaluated
  int64_t flipped_rows = 0;         ///< rows whose decision changes for at least one other group
  double flip_rate = 0;             ///< flipped_rows / rows
  double pair_flip_rate = 0;        ///< changed decisions / counterfactuals
  double mean_score_change = 0;     ///< mean over counterfactuals of score_after - score_before
  double mean_abs_score_change = 0; ///< mean over counterfactuals of |score_after - score_before|
  std::vector<FlipPair> pairs;
  std::vector<FlippedRow> examples; ///< first `max_examples` flips in row order
};

/// For every row of x [N,F] and every group other than the row's own (read from
/// the features), set the encoding's columns to that group and re-run the model.
/// Throws InputError when a column is out of range or a row's encoding matches no group.
CounterfactualResult flip_test(const engine::Model& m, const engine::Tensor& x, const FeatureEncoding& enc,
                               const DecisionRule& rule, int64_t max_examples = 20, int64_t batch = 8192);

}  // namespace mlaudit::fairness
