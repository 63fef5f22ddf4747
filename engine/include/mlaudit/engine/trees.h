#pragma once
// A tree-ensemble model (ONNX-ML TreeEnsembleClassifier / TreeEnsembleRegressor / TreeEnsemble,
// as skl2onnx, onnxmltools (XGBoost, LightGBM) and other converters write them) recovered as
// plain trees, in the form that exact methods need: TreeSHAP walks the trees, the tree verifier
// reasons over the threshold boxes, the exact-tree attack searches leaf regions.
//
// Only the graph shapes such converters produce are recovered: the model input (optionally
// through Cast/Identity, and through per-feature scaling -- a Scaler, or Mul/Add/Sub/Div by
// constants, as skl2onnx writes StandardScaler/MinMaxScaler pipelines -- which is folded into
// the thresholds exactly, see trees.cpp) feeds one tree-ensemble node whose score output is the audited output
// (optionally through Cast/Identity; ZipMap and label outputs beside it are ignored). Every
// interior node is normalised to "x[feature] <= threshold" or "x[feature] < threshold" taking
// `yes` (BRANCH_GTE / BRANCH_GT are the same tests with the children swapped). BRANCH_EQ / NEQ /
// MEMBER splits, MIN/MAX aggregates and PROBIT / SOFTMAX_ZERO heads are refused by name.
//
// The model's decision is a function of the raw scores (sums of leaf values plus base values):
//   Regression   outputs = raw (one column per target; post transform NONE)
//   Classes      K = classes raw columns, class = first argmax of raw (the post transform,
//                NONE / LOGISTIC / SOFTMAX, is monotone and keeps the argmax)
//   BinaryMargin one raw column m (XGBoost / LightGBM / scikit-learn gradient boosting binary
//                models), class 1 iff m > margin_threshold (0 with a LOGISTIC head, 0.5 when
//                the weights are probabilities), and the audited output is [1 - p, p].
// extract_tree_ensemble() checks its reading against the engine's own forward on probe rows
// built from the thresholds (classes and scores must agree), so a convention it misreads is
// refused instead of silently giving wrong proofs or attributions.
#include <cstdint>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"

namespace mlaudit::engine {

struct TreeEnsemble {
  struct Node {
    int32_t feature = -1;  ///< -1 for a leaf
    float threshold = 0;
    bool leq = true;          ///< yes iff x <= threshold (true) or x < threshold (false)
    bool missing_yes = false; ///< a NaN feature takes `yes`
    int32_t yes = -1, no = -1;
    int32_t value = -1;  ///< leaf: offset into `values` (`outputs` floats per leaf)
    bool leaf() const { return feature < 0; }
  };
  enum class Head { Regression, Classes, BinaryMargin };
  enum class Link { Identity, Logistic, Softmax };

  std::vector<Node> nodes;      ///< every tree's nodes
  std::vector<int32_t> roots;   ///< one per tree, indices into `nodes`
  std::vector<float> values;    ///< leaf values, `outputs` per leaf (already divided by the tree count for AVERAGE)
  std::vector<double> base;     ///< raw score offset per output column (`outputs` values)
  int64_t features = 0;         ///< input row width
  int64_t outputs = 0;          ///< raw score columns
  Head head = Head::Classes;
  Link link = Link::Identity;   ///< the post transform from raw scores to the audited output
  double margin_threshold = 0;  ///< BinaryMargin: class 1 iff raw > threshold
  int64_t classes = 0;          ///< columns of the audited output (2 for BinaryMargin; targets for Regression)
  std::string node_name;        ///< the tree node, for messages
  std::string op_type;          ///< TreeEnsembleClassifier / TreeEnsembleRegressor / TreeEnsemble

  /// The leaf a row reaches in tree t (the engine's traversal, NaN rules included).
  int32_t leaf_of(int64_t tree, const float* x) const;
  /// Raw scores of one row (`outputs` values), summed in double from float leaf values.
  std::vector<double> raw(const float* x) const;
  /// The class the model gives raw scores (first argmax; BinaryMargin: raw > threshold);
  /// -1 for a regressor.
  int64_t decide(const std::vector<double>& raw) const;
  /// The audited output row (class probabilities / scores, or the regression targets).
  std::vector<double> output(const std::vector<double>& raw) const;
  /// Sorted distinct thresholds per feature (the cells of the input space the trees see).
  std::vector<std::vector<float>> thresholds() const;
  int64_t tree_count() const { return static_cast<int64_t>(roots.size()); }
  int64_t leaf_count() const;
  /// Longest root-to-leaf path (edges) over all trees.
  int64_t max_depth() const;
  /// "100 trees of depth <= 4, 1,400 leaves, binary margin (LOGISTIC)" for messages and `info`.
  std::string describe() const;
};

/// True when the graph contains a tree-ensemble node (whatever else it has).
bool has_tree_ensemble(const Graph& g);
/// Recovers the ensemble behind output `output` ("" = the audited output the engine picks).
/// Throws UnsupportedError naming the node or shape it cannot read (a pipeline with a scaler or
/// one-hot encoder before the trees, an EQ split, a PROBIT head...) and InputError for a
/// malformed ensemble.
TreeEnsemble extract_tree_ensemble(const Graph& g, const std::string& output = "");

}  // namespace mlaudit::engine
