#pragma once
// Adversarial attacks on an engine::Model (logits [N,C]): white-box (FGSM, PGD,
// APGD-CE/DLR/T, FAB, FAB-T, CW-L2, DeepFool), score-based black-box (Square), decision-based
// black-box (HopSkipJump, Boundary: labels only, for models without gradients) and the
// AutoAttack "standard" composition (its black-box subset on models without gradients). Every reported adversarial example is re-checked by
// a fresh forward pass (inside the ball, inside the domain, label changed).
#include <cstdint>
#include <string>
#include <vector>

#include "mlaudit/engine/model.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::robustness {

/// Threat-model norm.
enum class Norm { Linf, L2 };
/// Parse "linf" or "l2"; throws InputError otherwise.
Norm parse_norm(const std::string& s);
/// "linf" / "l2".
const char* norm_name(Norm n);

/// Options shared by every attack; 0 in steps/step_size means "the attack's published default".
struct AttackConfig {
  Norm norm = Norm::Linf;
  double eps = 8.0 / 255.0;       ///< radius of the threat ball, in input units
  int steps = 0;                  ///< iterations (FGSM 1, PGD 10, APGD 100, FAB 100, CW 1000, DeepFool 50)
  int restarts = 1;               ///< restarts (PGD, APGD, FAB), each only on still-robust points
  double step_size = 0;           ///< PGD step (default 2.5*eps/steps, Madry et al. 2018)
  bool random_start = true;       ///< PGD uniform random start inside the ball
  int queries = 5000;             ///< Square attack query budget per point
  double p_init = 0.8;            ///< Square attack initial fraction of pixels changed
  int n_target_classes = 9;       ///< APGD-T, FAB-T: targets tried (top-2..top-(n+1) clean classes)
  double clip_min = 0.0;          ///< input domain lower bound
  double clip_max = 1.0;          ///< input domain upper bound
  uint64_t seed = 0;              ///< RNG seed (random starts, Square windows)
  int batch = 256;                ///< samples per model call
  // Carlini-Wagner L2 (Carlini & Wagner 2017; Foolbox/ART defaults except steps).
  int binary_search_steps = 9;
  double cw_learning_rate = 0.01;
  double cw_initial_const = 1e-3;
  double cw_confidence = 0.0;
  // DeepFool (Moosavi-Dezfooli et al. 2016).
  double overshoot = 0.02;
  // Decision-based attacks (labels only). HopSkipJump (Chen, Jordan, Wainwright 2020): ART's
  // HopSkipJump defaults; steps = max_iter (default 50). Boundary (Brendel, Rauber, Bethge 2018):
  // Foolbox 3's BoundaryAttack defaults; steps default 25000.
  int max_queries = 0;            ///< hsja, boundary: model queries per point before it stops (0: no cap, steps bound it)
  int hsja_max_eval = 10000;      ///< HSJA: most queries of one gradient estimate
  int hsja_init_eval = 100;       ///< HSJA: queries of the first gradient estimate (grows as sqrt(t))
  int init_size = 100;            ///< HSJA: random uniform draws tried for a first adversarial point
  double spherical_step = 0.01;   ///< boundary: initial orthogonal (spherical) step, relative to the distance
  double source_step = 0.01;      ///< boundary: initial step towards the original, relative to the distance
  double source_step_convergence = 1e-7;  ///< boundary: a point stops once its source step falls below this
  double step_adaptation = 1.5;   ///< boundary: factor the step sizes are multiplied or divided by
  int update_stats_every_k = 10;  ///< boundary: steps between success-rate checks (and spherical queries)
  /// false: the model has no input gradients (tree ensembles, SVMs exported without them);
  /// autoattack then runs its black-box subset (Square, HopSkipJump) instead of failing.
  bool gradients_available = true;
  /// run_attack: called after each batch of attacked points (done, total clean-correct points).
  engine::ProgressFn progress;
};

/// Outcome of one attack run over a data set; vectors are indexed by sample.
struct AttackResult {
  std::string attack;                 ///< attack name as given
  engine::Tensor adversarial;         ///< same shape as x; x itself where no adversarial was found
  std::vector<int64_t> labels;        ///< true labels
  std::vector<int64_t> clean_prediction;
  std::vector<int64_t> adv_prediction; ///< prediction on `adversarial` (fresh forward pass)
  std::vector<uint8_t> clean_correct;
  std::vector<uint8_t> success;        ///< verified adversarial example (clean-correct points only)
  std::vector<double> perturbation_norm; ///< ||adv - x|| in the attack norm (0 without success)
  std::vector<int64_t> gradient_calls;  ///< forward+backward passes spent on this sample
  std::vector<int64_t> queries;         ///< forward-only passes spent on this sample
  std::vector<std::string> stage;       ///< AutoAttack: stage that broke the point ("" otherwise)
  std::vector<std::string> warnings;    ///< AutoAttack-style sanity warnings
  std::vector<std::string> notes;       ///< how the attack ran: the fused device loop, or why the host loop ran
  int64_t rejected = 0;                 ///< candidates refused by the re-check

  /// Fraction of all samples classified correctly before the attack.
  double clean_accuracy() const;
  /// Fraction of all samples correct and not broken.
  double robust_accuracy() const;
  /// Broken / clean-correct.
  double success_rate() const;
};

/// Names accepted by run_attack.
const std::vector<std::string>& attack_names();
/// The attack name for an accepted spelling: aliases (hop-skip-jump, hopskipjump, boundary-attack)
/// map to their name in attack_names(); other names come back unchanged.
std::string canonical_attack_name(const std::string& name);
/// True for attacks that search a minimal perturbation (cw-l2, deepfool, hsja, boundary) and ignore eps.
bool is_minimal_attack(const std::string& name);
/// True for the decision-based attacks (hsja, boundary): they query labels only, no gradients, no scores.
bool is_decision_attack(const std::string& name);
/// True for the attacks that need no input gradient (square, hsja, boundary).
bool is_black_box_attack(const std::string& name);
/// The stages autoattack runs: apgd-ce, apgd-t, fab-t, square; without gradients its black-box
/// subset square, hsja, and under L2 also boundary (an L2 attack).
std::vector<std::string> autoattack_stages(bool gradients_available, Norm norm = Norm::Linf);
/// "square, hsja" / "square, hsja, boundary": the black-box subset as the notes name it.
std::string autoattack_black_box_text(Norm norm);

/// Run attack `name` (fgsm, pgd, apgd-ce, apgd-dlr, apgd-t, square, fab, fab-t, cw-l2,
/// deepfool, hsja, boundary, autoattack, or an alias of canonical_attack_name) on x [N,...] with integer labels y. Only points the
/// model classifies correctly are attacked. Throws InputError on a bad name,
/// shape mismatch, labels out of range or inconsistent options.
AttackResult run_attack(const std::string& name, const engine::Model& model, const engine::Tensor& x,
                        const std::vector<int64_t>& y, const AttackConfig& cfg);

/// Re-check candidates by a fresh forward pass: ||adv-x|| <= eps (+ float
/// tolerance; eps < 0 skips the ball check), inside [clip_min, clip_max], and
/// argmax != y. Returns one flag per row; `prediction` receives the argmax.
std::vector<uint8_t> verify_adversarial(const engine::Model& model, const engine::Tensor& x,
                                        const engine::Tensor& adv, const std::vector<int64_t>& y,
                                        Norm norm, double eps, double clip_min, double clip_max, int batch,
                                        std::vector<int64_t>* prediction = nullptr);

/// APGD checkpoints w_j = ceil(p_j * n_iter) with p_0 = 0, p_1 = 0.22,
/// p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06) (Croce & Hein 2020, Sec. 3.2),
/// in the integer form of the reference implementation; for 100 iterations
/// 0,22,41,57,70,80,87,93,99.
std::vector<int> apgd_checkpoints(int n_iter);

/// Difference-of-logits-ratio loss (Croce & Hein 2020, Eq. 6) per row of logits [N,C]:
/// -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3); needs C >= 3.
std::vector<float> dlr_loss(const engine::Tensor& logits, const std::vector<int64_t>& y);
/// Targeted DLR (Croce & Hein 2020, Eq. 7): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2); needs C >= 4.
std::vector<float> dlr_targeted_loss(const engine::Tensor& logits, const std::vector<int64_t>& y,
                                     const std::vector<int64_t>& target);

}  // namespace mlaudit::robustness
