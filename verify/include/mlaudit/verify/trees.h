#pragma once
// Exact verification of tree ensembles (engine::TreeEnsemble): L-infinity local robustness,
// the minimal adversarial L-infinity distance, VNN-LIB output properties and individual
// fairness, in the model's own float32 terms.
//
// What is reasoned over: the model compares a float32 feature with a float32 threshold
// (x <= t or x < t), so the input space splits into threshold cells, closed intervals of
// float32 values per feature, on which every tree reaches one leaf and the raw scores are
// constant. A query box is such a float32 box (linf_box() turns a real L-inf ball into the set
// of float32 points in it, exactly). A "verified" is a proof that no float32 point of the box
// is unsafe; a "falsified" carries a float32 point of the box whose engine output (the
// ConcreteForward passed in, the engine's Session in the CLI) was checked to be unsafe.
//
// Methods (docs/dev/verify.md, "Tree ensembles"):
//   1. the multi-level clique bound of Chen et al., "Robustness verification of tree-based
//      models", NeurIPS 2019 (Section 3.2): leaves of groups of trees whose boxes intersect
//      the query box and each other (cliques) are merged level by level; the sum over groups of
//      the best clique is a sound bound, exact when one group remains;
//   2. exact branch and bound over the box, splitting at tree thresholds (per-tree reachable
//      leaf sets, bound = sum over trees of the worst reachable leaf); a box where every tree
//      reaches one leaf is a cell, decided exactly by one forward at a point of it.
// Raw scores are sums of float leaf values; the engine may sum them in float32 in any order
// and map them through a logistic / softmax, so a bound prunes only when it clears the
// decision by `slack` (1e-5 plus the float32 summation error bound gamma_T * sum |leaf|),
// and every cell within the slack is decided by the engine's forward itself.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "mlaudit/engine/trees.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/verify/solver.h"
#include "mlaudit/verify/verify.h"
#include "mlaudit/verify/vnnlib.h"

namespace mlaudit::verify {

/// A box of float32 points: feature i ranges over the float32 values in [lower[i], upper[i]].
struct TreeBox {
  std::vector<float> lower, upper;
  bool empty() const;
};

/// The float32 points of the real box [max(x - eps, clip_min), min(x + eps, clip_max)] per feature,
/// computed exactly (no rounding: lower is the smallest float32 >= the real end).
TreeBox linf_box(const float* x, int64_t features, double eps, double clip_min, double clip_max);

/// The smallest double >= a - b (exact difference of two floats rounded up).
double diff_up(double a, double b);

/// Options of the tree verifier.
struct TreeVerifyOptions {
  double timeout_s = 60;           ///< per query
  bool clique_bound = true;        ///< run Chen et al.'s bound before the exact search
  int64_t clique_limit = 2048;     ///< merge two groups only while their clique count stays under this
  int64_t max_nodes = 0;           ///< branch-and-bound node cap (0: none); reached -> timeout
  /// The model's audited output at a float32 input (the engine's forward). Every counterexample
  /// and every cell within the slack is decided by it. Empty: the ensemble's own output().
  ConcreteForward concrete;
};

/// Outcome of a tree query. Verdict: Unsat = verified, Sat = falsified (counterexample checked
/// by `concrete`), Timeout, Unknown (with `reason`).
struct TreeVerifyResult {
  Verdict verdict = Verdict::Unknown;
  std::string method;                  ///< "clique-bound" (decided by Chen et al.'s bound) or "tree-bab"
  std::string reason;
  std::vector<float> counterexample;   ///< Sat: the input (in the box)
  std::vector<double> counterexample_output;  ///< Sat: the audited output there (concrete forward)
  int64_t counterexample_label = -1;   ///< Sat, classifiers: the decision there
  int64_t nodes = 0;                   ///< branch-and-bound boxes visited
  int clique_levels = 0;               ///< levels the clique bound merged
  double seconds = 0;
};

/// The audited output's decision: first argmax of a classifier's output row; -1 for a regressor.
int64_t tree_decision(const engine::TreeEnsemble& model, const std::vector<double>& output);

/// L-infinity local robustness: is the decision `label` kept at every float32 point of `box`?
/// Throws InputError for a regressor (no decision), a label out of range or a box of the wrong size.
TreeVerifyResult verify_tree_robustness(const engine::TreeEnsemble& model, int64_t label, const TreeBox& box,
                                        const float* anchor, const TreeVerifyOptions& opts);

/// Options of the minimal-distance search.
struct TreeMinimalOptions {
  double clip_min = -std::numeric_limits<double>::infinity();  ///< the input domain
  double clip_max = std::numeric_limits<double>::infinity();
  int64_t label = -1;            ///< the decision to change (-1: the model's decision at x)
  double max_eps = std::numeric_limits<double>::infinity();  ///< search radii up to this
  TreeVerifyOptions verify;      ///< timeout_s bounds the whole search
};

/// Minimal adversarial L-infinity distance.
struct TreeMinimalResult {
  /// "found": distance is the minimum; "none": no float32 point of the domain (within max_eps)
  /// changes the decision; "timeout": lower <= minimum <= upper.
  std::string status;
  double distance = 0;           ///< found: the smallest eps whose linf_box holds a changed decision
  double lower = 0, upper = 0;   ///< proved bounds on it (equal to distance when found)
  int64_t label = -1;            ///< the decision at x
  std::vector<float> counterexample;  ///< found / timeout with upper finite: a point at L-inf distance `upper`
  int64_t adversarial_label = -1;
  std::vector<double> counterexample_output;
  int64_t exact_queries = 0;     ///< exact verifier calls the search made
  int64_t candidates = 0;        ///< candidate radii (one per threshold crossing)
  double seconds = 0;
};

/// The smallest eps at which the decision at x changes: candidate radii are the threshold
/// crossings diff_up(next(t), x_f) / diff_up(x_f, t) (the only radii at which linf_box gains a
/// cell), searched by bisection with the exact verifier; the counterexample is the point of the
/// changed cell nearest x.
TreeMinimalResult minimal_adversarial_linf(const engine::TreeEnsemble& model, const float* x,
                                           const TreeMinimalOptions& opts);

/// VNN-LIB property over the audited output of a tree model. Exact where the output is linear in
/// the raw scores (Regression; classifiers without a link) or the constraint compares two
/// columns of a monotone link (Y_i - Y_j <= 0 under softmax/logistic, an argmax property);
/// any other constraint gives Unknown with the reason.
TreeVerifyResult verify_tree_property(const engine::TreeEnsemble& model, const Property& prop,
                                      const TreeVerifyOptions& opts);

/// Options of individual fairness over a box.
struct TreeFairnessOptions {
  int64_t protected_index = 0;
  std::vector<double> protected_values;  ///< compared pairwise (float32 values)
  /// < 0: the decision must not change. >= 0: also the score must move by at most this: the raw
  /// score (log-odds / margin) of a binary classifier, the output of a one-target regressor.
  double score_delta = -1;
  TreeVerifyOptions verify;
};

/// Individual-fairness verdict of one box.
struct TreeFairnessResult {
  Verdict verdict = Verdict::Unknown;  ///< Unsat: proved; Sat: a counterexample pair
  std::string method, reason;
  std::vector<float> input_a, input_b;          ///< Sat: equal but for the protected feature
  std::vector<double> output_a, output_b;       ///< Sat: the audited outputs (concrete forward)
  double score_a = 0, score_b = 0;              ///< Sat with score_delta: the scores compared
  int64_t nodes = 0;
  double seconds = 0;
};

/// For every float32 x in `box` (the protected feature's range is ignored) and every pair of
/// protected values (a, b): decision(x with p = a) == decision(x with p = b) (and |score_a -
/// score_b| <= score_delta when given). Two copies of the ensemble share the non-protected
/// features (the trees' splits on p are resolved by a and b); the same bound and search decide.
TreeFairnessResult verify_tree_fairness(const engine::TreeEnsemble& model, const TreeBox& box,
                                        const float* anchor, const TreeFairnessOptions& opts);

// ---- Drivers: the `verify` command's modes on a tree model (same result types as the networks'). --

/// The VerifyResult of a tree query (VNN-COMP wording, counterexample input and output).
VerifyResult to_verify_result(const TreeVerifyResult& r);

/// Local robustness of every sample at every eps (as verify_robustness): the query box is
/// linf_box(x, eps, clip_min, clip_max); labels default to the model's decisions (`opts.solver`
/// gives the timeout per query, `concrete` the engine's forward). Data outside the domain or not
/// finite, and labels outside the classes, are refused (InputError).
std::vector<SampleVerdict> verify_tree_robustness_data(const engine::TreeEnsemble& model, const engine::Tensor& data,
                                                       const std::vector<int64_t>& labels, const RobustnessOptions& opts,
                                                       const TreeVerifyOptions& tree_opts);

/// The minimal adversarial L-inf distance of every sample (labels as above) within the domain.
std::vector<TreeMinimalResult> tree_minimal_distances(const engine::TreeEnsemble& model, const engine::Tensor& data,
                                                      const std::vector<int64_t>& labels, double clip_min, double clip_max,
                                                      const TreeVerifyOptions& tree_opts,
                                                      const engine::ProgressFn& progress = {});

/// Individual fairness over the partitions of `opts.domain` (the same grid as verify_fairness),
/// each decided exactly; `score_delta` as in TreeFairnessOptions.
std::vector<FairnessPartition> verify_tree_fairness_partitions(const engine::TreeEnsemble& model,
                                                               const FairnessOptions& opts, double score_delta,
                                                               const TreeVerifyOptions& tree_opts);

/// Individual fairness around data points: one box per sample, the non-protected features within
/// eps of the sample (intersected with opts.domain), the protected one taking every value.
std::vector<FairnessPartition> verify_tree_fairness_samples(const engine::TreeEnsemble& model, const engine::Tensor& data,
                                                            double eps, const FairnessOptions& opts, double score_delta,
                                                            const TreeVerifyOptions& tree_opts);

}  // namespace mlaudit::verify
