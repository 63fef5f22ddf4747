#pragma once
// Verification tasks the CLI runs: a VNN-LIB query against an ONNX model, local
// robustness over a data set, and individual fairness (Fairify-style).
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "mlaudit/engine/tensor.h"
#include "mlaudit/verify/solver.h"

namespace mlaudit::verify {

/// VNN-COMP result file text: the verdict line, and for `sat` the assignment
/// "((X_0 v)\n ... (Y_0 v))".
std::string vnncomp_result_text(const VerifyResult& r);

/// Per-sample outcome of local robustness verification.
struct SampleVerdict {
  int64_t index = 0;
  int64_t label = 0;
  double eps = 0;
  std::string verdict;  ///< "verified", "falsified", "unknown", "timeout"
  double margin = 0;    ///< falsified: y_label - max_{j != label} y_j at the counterexample (<= 0)
  std::string method;
  std::string reason;
  double seconds = 0;
};

/// Options of robustness over data.
struct RobustnessOptions {
  std::vector<double> eps;
  double clip_min = -1e30;
  double clip_max = 1e30;
  VerifyOptions solver;  ///< timeout_s is per sample and eps
};

/// L-infinity local robustness of every sample (label from `labels` or, when
/// empty, the model's prediction). An unsupported network gives `unknown` with
/// `unsupported_reason` for every sample.
std::vector<SampleVerdict> verify_robustness(const Network* net, const std::string& unsupported_reason,
                                             const engine::Tensor& data, const std::vector<int64_t>& labels,
                                             const RobustnessOptions& opts);

/// JSON report ("schema": "mlaudit.verify/1") of robustness verdicts with the
/// verified robust accuracy and time per sample for each eps.
nlohmann::json robustness_report(const std::vector<SampleVerdict>& verdicts, const RobustnessOptions& opts,
                                 const std::string& model_path, const std::string& tool_version);

/// One partition of the input domain and its fairness verdict.
struct FairnessPartition {
  InputBox box;            ///< over all model features (the protected one spans its values)
  std::string verdict;     ///< "proved", "counterexample", "unknown", "timeout"
  std::vector<double> counterexample_a, counterexample_b;  ///< the pair, when found
  std::vector<double> output_a, output_b;
  double seconds = 0;
};

/// Options of individual-fairness verification.
struct FairnessOptions {
  int64_t protected_index = 0;
  std::vector<double> protected_values;  ///< values of the protected attribute compared pairwise
  InputBox domain;                       ///< ranges of every feature
  int splits_per_feature = 2;            ///< partitions: this many equal slices per non-protected feature
  int64_t max_partitions = 4096;
  double decision_tolerance = 1e-6;      ///< a flip needs the other decision to win by more than this (logit units)
  VerifyOptions solver;                  ///< timeout_s is per partition
};

/// Prove that no input in each partition changes its decision (argmax) when
/// only the protected attribute changes (Biswas & Rajan, "Fairify", ICSE 2023:
/// partition the domain, decide each part exactly). Uses a twin network (two
/// copies sharing the non-protected inputs) so bounds relate the two decisions.
std::vector<FairnessPartition> verify_fairness(const Network& net, const FairnessOptions& opts);

/// The twin network: input = the non-protected features, output = [y(x, p=a), y(x, p=b)].
Network twin_network(const Network& net, int64_t protected_index, double a, double b);

}  // namespace mlaudit::verify
