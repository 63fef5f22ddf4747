#pragma once
// Membership inference attacks on an engine::Model (logits [N,C]): loss, confidence
// and modified-entropy thresholds, offline LiRA and the label-only boundary-distance
// attack, each scored by ROC AUC, best balanced accuracy and TPR at low FPR.
// Convention everywhere: a higher score means "member".
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::privacy {

/// ROC curve with one point per distinct score (scikit-learn's roc_curve with
/// drop_intermediate=False): the first point is (0,0) at threshold +inf; point k
/// predicts "member" for score >= thresholds[k].
struct RocCurve {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<double> thresholds;
  std::vector<int64_t> true_positives;   ///< members with score >= threshold
  std::vector<int64_t> false_positives;  ///< non-members with score >= threshold
};

/// ROC of `scores` against `is_member` (1 member, 0 non-member); ties share a point.
/// Throws InputError when the sizes differ, a score is NaN or a class is empty.
RocCurve roc_curve(const std::vector<double>& scores, const std::vector<uint8_t>& is_member);
/// Area under the ROC (trapezoid over distinct thresholds, ties counted one half:
/// equal to scikit-learn's roc_auc_score and to the Mann-Whitney U / (P N)).
double roc_auc(const RocCurve& roc);
/// Largest TPR among ROC points with FPR <= max_fpr (Carlini et al. 2022, Sec. IV.A).
double tpr_at_fpr(const RocCurve& roc, double max_fpr);
/// max over thresholds of (TPR + TNR) / 2 with one global threshold.
double best_balanced_accuracy(const RocCurve& roc);
/// max of (TPR + TNR) / 2 when every class gets its own threshold (Song & Mittal 2021,
/// Sec. 3.2): the balanced accuracy is 1/2 + 1/2 sum_c (TP_c/P - FP_c/N), so each class's
/// term is maximised on its own. `classes` holds each sample's label.
double best_balanced_accuracy_per_class(const std::vector<double>& scores, const std::vector<uint8_t>& is_member,
                                        const std::vector<int64_t>& classes);
/// Same curve without the points that lie on a straight line between their
/// neighbours (scikit-learn's drop_intermediate): the area is unchanged.
RocCurve thin_roc(const RocCurve& roc);

/// Metrics of one attack over one member / non-member evaluation.
struct AttackReport {
  std::string name;
  double auc = 0;
  double balanced_accuracy = 0;            ///< best of the global and per-class threshold rules
  std::string threshold_mode = "global";   ///< which rule gave balanced_accuracy ("global", "per_class")
  double balanced_accuracy_global = 0;
  double tpr_at_fpr_0_001 = 0;
  double tpr_at_fpr_0_01 = 0;
  RocCurve roc;                            ///< thinned curve (thin_roc) for reports
  std::vector<double> scores;              ///< members first, then non-members
  int64_t members = 0;
  int64_t non_members = 0;
};

/// Evaluate attack scores (members first, then non-members). `classes` (may be
/// empty) enables the per-class threshold rule. Thresholds are chosen on the
/// evaluated samples themselves: an upper bound on a deployed attacker's accuracy.
AttackReport evaluate_scores(const std::string& name, const std::vector<double>& member_scores,
                             const std::vector<double>& non_member_scores,
                             const std::vector<int64_t>& member_classes = {},
                             const std::vector<int64_t>& non_member_classes = {});

// ---- per-sample attack scores from logits [N,C] and labels (higher = member) ----

/// Loss attack (Yeom et al. 2018): minus the cross-entropy, log softmax(z)_y.
std::vector<double> loss_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels);
/// Confidence attack (Song & Mittal 2021, Eq. 3): softmax(z)_y.
std::vector<double> confidence_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels);
/// Modified-entropy attack (Song & Mittal 2021, Eq. 5): minus
/// Mentr = -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i).
std::vector<double> modified_entropy_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels);
/// Logit-scaled confidence phi = log(p_y / (1 - p_y)) = z_y - logsumexp_{i!=y} z_i
/// (Carlini et al. 2022, Sec. IV.B, computed from logits so it never saturates).
std::vector<double> logit_scaled_confidence(const engine::Tensor& logits, const std::vector<int64_t>& labels);

/// Options of offline LiRA.
struct LiraOptions {
  /// -1: auto (global variance with fewer than 64 reference models, as Carlini et al. 2022
  /// recommend for small shadow sets), 0: per-example variance, 1: global variance.
  int fixed_variance = -1;
};

/// Offline LiRA (Carlini et al. 2022, Alg. 1 offline): per example, fit N(mu_out, sigma_out^2)
/// to phi on reference models trained without it; the one-sided test statistic
/// Lambda = Pr[Z < phi_target] = Phi(s) with s = (phi_target - mu_out) / sigma_out. Returns s
/// (monotone in Lambda, so ROC and AUC are Lambda's, without Phi's saturation near 1).
/// `reference_phi[r][i]` is phi of sample i on reference model r (needs >= 2 models).
std::vector<double> lira_offline_scores(const std::vector<double>& target_phi,
                                        const std::vector<std::vector<double>>& reference_phi,
                                        const LiraOptions& opts = {});

/// Distance from each x[i] to the model's decision boundary (e.g. L2 norm of a
/// minimal adversarial perturbation), for samples the model classifies as labels[i].
/// Provided by the caller (the CLI wires the robustness module's DeepFool).
using BoundaryDistanceFn =
    std::function<std::vector<double>(const engine::Tensor& x, const std::vector<int64_t>& labels)>;

/// Label-only attack (Choquette-Choo et al. 2021, Sec. 4.2 boundary distance): the
/// distance to the boundary for correctly classified samples, 0 for misclassified ones.
std::vector<double> label_only_scores(const engine::Model& model, const engine::Tensor& x,
                                      const std::vector<int64_t>& labels, const BoundaryDistanceFn& distance,
                                      int batch = 256);

/// Names accepted in MembershipOptions::attacks.
const std::vector<std::string>& membership_attack_names();

/// What run_membership_inference runs.
struct MembershipOptions {
  std::vector<std::string> attacks = {"loss", "confidence", "entropy"};
  std::vector<const engine::Model*> reference_models;  ///< for "lira": trained without the targets
  LiraOptions lira;
  BoundaryDistanceFn boundary_distance;                ///< for "label-only"
  /// The distance function's own batch, when its results depend on which samples share a call
  /// (a convolution's rounding does): membership_scores on a slice then calls it on whole blocks
  /// of this many correctly classified samples, aligned as in the whole run, so each sample is
  /// computed with the same neighbours. 0: every sample's distance is its own.
  int64_t distance_batch = 0;
  int batch = 256;                                     ///< samples per model call
  /// Called after each slow step: each LiRA reference model, label-only's members and non-members.
  engine::ProgressFn progress;
};

/// Logits of x under the model in batches.
engine::Tensor batched_logits(const engine::Model& model, const engine::Tensor& x, int batch);

/// Per-sample scores of each requested attack (opts.attacks order) for samples [first, end) of
/// the list "members, then non-members" (end < 0: to the end), for `--shard I/N`: a slice's
/// scores equal those samples' scores in the whole run. Every model output (the target's logits,
/// LiRA's reference models, which LiRA's global variance pools over all samples) is computed over
/// all samples in the whole run's batches; only label-only's boundary search, the expensive part,
/// runs on the slice (widened to whole blocks of opts.distance_batch). Same checks and throws as
/// run_membership_inference.
std::vector<std::vector<double>> membership_scores(const engine::Model& target, const engine::Tensor& xm,
                                                   const std::vector<int64_t>& ym, const engine::Tensor& xn,
                                                   const std::vector<int64_t>& yn, const MembershipOptions& opts,
                                                   int64_t first = 0, int64_t end = -1);

/// The metrics of attack `name` from the scores of all members then all non-members (what
/// run_membership_inference reports; `mlaudit merge` calls it on the parts' joined scores).
/// Per-class thresholds use the labels ym, yn for every attack but "lira" (whose score is
/// already calibrated per example).
AttackReport evaluate_attack(const std::string& name, const std::vector<double>& scores, const std::vector<int64_t>& ym,
                             const std::vector<int64_t>& yn);

/// Run the requested attacks on members (xm, ym) and non-members (xn, yn). Throws
/// InputError on an unknown attack name, mismatched shapes or labels out of range,
/// "lira" without >= 2 reference models, "label-only" without a distance function.
std::vector<AttackReport> run_membership_inference(const engine::Model& target, const engine::Tensor& xm,
                                                   const std::vector<int64_t>& ym, const engine::Tensor& xn,
                                                   const std::vector<int64_t>& yn, const MembershipOptions& opts);

}  // namespace mlaudit::privacy
