#pragma once
// Verification tasks the CLI runs: a VNN-LIB query against an ONNX model, local
// robustness over a data set, and individual fairness (Fairify-style).
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/verify/solver.h"

namespace mlaudit::verify {

/// The norms `mlaudit verify --norm` proves local robustness for: bound propagation and the
/// box/LP relaxations bound L-infinity balls only (the table `audit --check` validates against).
inline const std::vector<std::string>& robustness_norms() {
  static const std::vector<std::string> norms = {"linf"};
  return norms;
}


/// VNN-COMP result file text: the verdict line, and for `sat` the assignment
/// "((X_0 v)\n ... (Y_0 v))".
std::string vnncomp_result_text(const VerifyResult& r);

/// Open branches (VerifyResult::open_branches) as JSON, for another process's verify_branches:
/// [{"case": c, "whole_case": bool, "lower": [...], "upper": [...], "splits": [[layer, neuron,
/// +1|-1], ...], "open": [conjunction, ...], "depth": d}, ...]; doubles round-trip exactly.
nlohmann::json open_branches_json(const std::vector<OpenBranch>& branches);
/// The branches of such an array (an untrusted file: every field is type- and range-checked
/// against the network; verify_branches checks them against the property). Errors throw
/// InputError "verify: <source>: open branch i: ...".
std::vector<OpenBranch> parse_open_branches(const nlohmann::json& j, const Network& net, const std::string& source);

/// mlaudit.verify/1 of one VNN-LIB query (kind vnnlib_property): result (the VNN-COMP word),
/// verdict, seconds, method, reason, branches, the property's input boxes, the counterexample,
/// and `inputs` (the files' provenance).
nlohmann::json vnnlib_report(const VerifyResult& r, const Property& prop, const std::string& model,
                             const std::string& vnnlib, double timeout_s, const nlohmann::json& inputs,
                             const std::string& tool_version);

/// mlaudit.branches/1: a split query's open branches (r.open_branches), the time it had left of
/// `timeout_s`, and the provenance of its model and property (`inputs`: {model, vnnlib}).
nlohmann::json branches_json(const VerifyResult& r, const std::string& model, const std::string& vnnlib, double timeout_s,
                             const nlohmann::json& inputs, const std::string& tool_version);
/// The branches of a mlaudit.branches/1 document, refused (InputError naming `source`) when it is
/// not one or its model's or property's sha256 differs from `inputs`'; `open_undecided` receives
/// whether its query left an undecided leaf in its own part.
std::vector<OpenBranch> read_branches_json(const nlohmann::json& j, const Network& net, const nlohmann::json& inputs,
                                           const std::string& source, bool* open_undecided);

/// A verdict as robustness reports word it: Unsat "verified", Sat "falsified", Timeout
/// "timeout", Unknown "unknown" (the solver's own words, verdict_name, are VNN-COMP's).
const char* robustness_word(Verdict v);
/// A verdict as fairness reports word it: Unsat "proved", Sat "counterexample", Timeout
/// "timeout", Unknown "unknown".
const char* fairness_word(Verdict v);

/// Per-sample outcome of local robustness verification.
struct SampleVerdict {
  int64_t index = 0;
  int64_t label = 0;
  double eps = 0;
  Verdict verdict = Verdict::Unknown;  ///< Unsat: robust (proved), Sat: falsified; written by robustness_word
  double margin = 0;    ///< falsified: y_label - max_{j != label} y_j at the counterexample (<= 0)
  std::vector<double> counterexample;  ///< falsified: the input (float32 values, inside the domain and the ball)
  double counterexample_linf = 0;      ///< falsified: max_i |counterexample_i - x_i| (<= eps)
  std::string method;
  std::string reason;
  double seconds = 0;
};

/// Options of robustness over data. The input domain [clip_min, clip_max] has the
/// same defaults as `attack` (0 and 1, pixel data); +-infinity leaves a side unbounded.
struct RobustnessOptions {
  std::vector<double> eps;
  double clip_min = 0;
  double clip_max = 1;
  VerifyOptions solver;  ///< timeout_s is per sample and eps
  engine::ProgressFn progress;  ///< called after each (sample, eps) query (done, total)
};

/// L-infinity local robustness of every sample (label from `labels` or, when
/// empty, the model's prediction): the query box is the ball [x - eps, x + eps]
/// intersected with the domain. Data outside the domain, non-finite data and
/// labels outside [0, classes) are refused (datasets/validate.h, InputError); a
/// counterexample is reported only when it lies in the query box. An unsupported
/// network gives `unknown` with `unsupported_reason` for every sample.
std::vector<SampleVerdict> verify_robustness(const Network* net, const std::string& unsupported_reason,
                                             const engine::Tensor& data, const std::vector<int64_t>& labels,
                                             const RobustnessOptions& opts);

/// JSON report ("schema": "mlaudit.verify/1") of robustness verdicts with the
/// verified robust accuracy and time per sample for each eps, and the domain
/// used ("domain": [clip_min, clip_max], null for an unbounded side).
nlohmann::json robustness_report(const std::vector<SampleVerdict>& verdicts, const RobustnessOptions& opts,
                                 const std::string& model_path, const std::string& tool_version);

/// One by_eps row of that report: the verdict counts of `samples` queries at `eps` (keys
/// verified/falsified/unknown/timeout), the verified robust accuracy with its Clopper-Pearson
/// interval and the mean seconds per sample. `mlaudit merge` rebuilds rows of merged parts with it.
nlohmann::json robustness_eps_row(double eps, int64_t samples, int64_t verified, int64_t falsified, int64_t unknown,
                                  int64_t timeout, double seconds);

/// [lo, hi] as JSON, an infinite end as null (JSON has no infinity).
nlohmann::json domain_json(double lo, double hi);

/// One partition of the input domain and its fairness verdict.
struct FairnessPartition {
  InputBox box;            ///< over all model features (the protected one spans its values)
  Verdict verdict = Verdict::Unknown;  ///< Unsat: proved fair, Sat: a counterexample pair; written by fairness_word
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
