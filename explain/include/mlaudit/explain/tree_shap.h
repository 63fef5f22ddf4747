#pragma once
// Exact SHAP values of tree ensembles (engine::TreeEnsemble, recovered from an ONNX
// TreeEnsemble* node), as shap.TreeExplainer computes them:
//
//   path-dependent  Lundberg et al. 2020, "From local explanations to global understanding with
//                   explainable AI for trees", Algorithm 2 (polynomial time): the value of a
//                   coalition S is E[f(x) | x_S] with the expectation taken along the tree's own
//                   split proportions, the node covers. ONNX stores no covers (nodes_hitrates is
//                   not one), so they are counted here: the rows of a data set (the training data,
//                   ideally) that reach each node. On the unweighted training data these counts
//                   equal scikit-learn's weighted_n_node_samples and LightGBM's internal_count
//                   (without bagging); XGBoost's own covers are hessian sums, not counts.
//   interventional  shap's feature_perturbation="interventional": for each background row r,
//                   the exact Shapley values of the game v(S) = f(x_S, r_not-S) (Chen, Lundberg &
//                   Lee, "Explaining models by propagating Shapley values", the tree algorithm of
//                   shap's tree_shap_indep), averaged over the background rows.
//   interactions    SHAP interaction values (Lundberg et al. 2020, sec. 2.7, path-dependent): the
//                   off-diagonal (i, j) is half the difference of i's SHAP value with j held on
//                   and off; the diagonal is phi_i minus the row's off-diagonal sum.
//
// Values explain each raw output column (the margins the trees sum, plus the base values), or,
// with TreeModelOutput::Probability (interventional only, as shap), the probability of each
// column through the model's link, with shap's per-reference rescaling (see TreeShapOptions).
// Every row satisfies local accuracy: sum_j phi_j + expected_value = f(x) per output column.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/engine/trees.h"

namespace mlaudit::explain {

/// shap's feature_perturbation: which conditional expectation defines a coalition's value.
enum class FeaturePerturbation { Interventional, TreePathDependent };
/// shap's model_output: explain the raw margins, or probabilities through the model's link.
enum class TreeModelOutput { Raw, Probability };

/// Parse "interventional" / "tree-path-dependent" (also shap's "tree_path_dependent"); InputError otherwise.
FeaturePerturbation parse_feature_perturbation(const std::string& text);
/// Parse "raw" / "probability"; InputError otherwise.
TreeModelOutput parse_tree_model_output(const std::string& text);
/// "interventional" / "tree_path_dependent" (shap's spelling), "raw" / "probability".
std::string to_string(FeaturePerturbation p);
std::string to_string(TreeModelOutput o);

struct TreeShapOptions {
  FeaturePerturbation perturbation = FeaturePerturbation::Interventional;  ///< shap's "auto" with a background
  /// Probability (interventional only): per background row r, the raw attributions phi(r) of
  /// column k are scaled by (p_k(x) - p_k(r)) / (m_k(x) - m_k(r)) (shap's dense_independent
  /// rescaling; 1 when the margins are equal), so that they sum to p_k(x) - p_k(r). That factor
  /// is the mean slope of the logistic link on the segment [m_k(r), m_k(x)]. A softmax head,
  /// which shap does not support, gets the same idea in several dimensions: phi_p = J phi_m with
  /// J the mean Jacobian of softmax on the segment from m(r) to m(x) (Gauss-Legendre, 24 points),
  /// so p(x) - p(r) = J (m(x) - m(r)) up to rounding and local accuracy still holds.
  /// An Identity link (random forests averaging probabilities, regressors) makes it equal to Raw.
  TreeModelOutput model_output = TreeModelOutput::Raw;
  /// Per-leaf contribution tables (x-independent, built once; see tree_shap.cpp) for trees whose
  /// paths have at most 12 distinct features, within 256 MiB, where building them costs at most
  /// what the recursions spend on 256 rows; false: always the recursions
  /// (the tests compare the two). Interaction values and rescaled probabilities always recurse.
  bool leaf_tables = true;
  int threads = 0;              ///< rows are split over this many threads; 0 = engine::num_threads()
  engine::ProgressFn progress;  ///< called as rows finish: (rows done, rows)
};

/// SHAP values of N rows: values[(i * features + j) * outputs + k] (shap's [N, F, K] layout).
struct TreeShapResult {
  int64_t rows = 0, features = 0, outputs = 0;
  std::vector<double> values;          ///< [N, F, K]
  std::vector<double> expected_value;  ///< [K] the base value E f (shap's expected_value)
  std::vector<double> output_x;        ///< [N, K] f(x) in the explained units (margin or probability)
  /// max over rows and columns of |sum_j phi + expected_value - f(x)| / max(1, |f(x)|)
  double max_local_accuracy_gap = 0;
  bool probability = false;            ///< explained units: probabilities (else raw margins)
  double at(int64_t row, int64_t feature, int64_t output = 0) const {
    return values[static_cast<size_t>((row * features + feature) * outputs + output)];
  }
};

/// SHAP interaction values: values[((i * F + a) * F + b) * K + k] (shap's [N, F, F, K]).
struct TreeShapInteractions {
  int64_t rows = 0, features = 0, outputs = 0;
  std::vector<double> values;          ///< [N, F, F, K]; row a sums to phi_a
  std::vector<double> expected_value;  ///< [K]
  std::vector<double> output_x;        ///< [N, K] raw f(x)
  double max_local_accuracy_gap = 0;   ///< as TreeShapResult, over the sum of all F x F entries
  double at(int64_t row, int64_t a, int64_t b, int64_t output = 0) const {
    return values[static_cast<size_t>(((row * features + a) * features + b) * outputs + output)];
  }
};

/// Rows of `data` reaching each node of `model` (index as model.nodes): the covers that
/// path-dependent TreeSHAP uses. Throws InputError for a data width other than model.features.
std::vector<double> node_covers(const engine::TreeEnsemble& model, const engine::Tensor& data);

/// Exact TreeSHAP on one ensemble. The constructor flattens the trees into per-node arrays and
/// takes the background: the reference rows (interventional) or the rows whose node counts are
/// the covers (path-dependent). Calls are safe from several threads; results do not depend on
/// the thread count (each row is computed whole by one thread, in a fixed order). The explainer
/// copies what it needs: the ensemble and background may be freed after construction.
class TreeExplainer {
 public:
  /// Throws InputError for an empty or mis-sized background or non-finite background values,
  /// and for Probability with TreePathDependent (shap: only model_output="raw" is supported there).
  TreeExplainer(const engine::TreeEnsemble& model, const engine::Tensor& background, TreeShapOptions opts = {});
  ~TreeExplainer();
  TreeExplainer(const TreeExplainer&) = delete;
  TreeExplainer& operator=(const TreeExplainer&) = delete;

  /// SHAP values of the rows of x ([N, features] float32; NaN takes each split's missing branch).
  TreeShapResult shap_values(const engine::Tensor& x) const;
  /// Path-dependent SHAP interaction values (raw output; shap supports no other combination).
  /// Throws InputError when the explainer is interventional.
  TreeShapInteractions shap_interaction_values(const engine::Tensor& x) const;
  /// E f: the expected value of each explained column (shap's expected_value).
  const std::vector<double>& expected_value() const;
  /// Number of explained columns (raw columns of the ensemble).
  int64_t outputs() const;
  const TreeShapOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The column of a TreeShapResult that explains class `target` of the audited output, as
/// per-row attributions: for a BinaryMargin model (one raw column m, the positive-class margin)
/// class 1 is phi(m) and class 0 is -phi(m), as shap's "probability_doubled" (class 0 explains
/// -m for raw margins, 1 - p for probabilities and for an Identity link, whose raw column is p); otherwise column `target`. base and output_x
/// receive the matching expected value and f(x). Throws InputError for a target out of range.
std::vector<double> tree_shap_column(const engine::TreeEnsemble& model, const TreeShapResult& r, int64_t row,
                                     int64_t target, double* base = nullptr, double* output_x = nullptr);

}  // namespace mlaudit::explain
