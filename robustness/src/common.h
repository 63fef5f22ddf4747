#pragma once
// Internals shared by the attack implementations (not installed).
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "mlaudit/robustness/attacks.h"

namespace mlaudit::robustness::detail {

/// One random stream per sample, keyed by the sample's index in the data set and the seed,
/// never by batch, thread or shard: an attack's result for a sample does not depend on
/// --batch, on which other samples share its batch, or on how a run is split.
/// `subset(rows)` views the streams of some rows (draws advance the parent's streams).
class RowRngs {
 public:
  RowRngs(uint64_t seed, const std::vector<int64_t>& sample_index);
  RowRngs subset(const std::vector<int64_t>& rows) const;
  std::mt19937_64& operator[](size_t row) const { return *rows_[row]; }
  size_t size() const { return rows_.size(); }
  /// One seed for a fused device loop that draws for a whole batch (its draws then depend on
  /// the batch; the host loops do not).
  uint64_t device_seed() const;

 private:
  RowRngs() = default;
  std::shared_ptr<std::vector<std::mt19937_64>> own_;
  std::vector<std::mt19937_64*> rows_;
};

/// Losses the white-box and black-box attacks maximise (or minimise, Square).
enum class Loss { CrossEntropy, Dlr, DlrTargeted, Margin };

/// Per-row loss values and, when `seed` is given, d loss / d logits.
void eval_loss(Loss loss, const engine::Tensor& logits, const std::vector<int64_t>& y,
               const std::vector<int64_t>* target, std::vector<float>* values, engine::Tensor* seed);

/// Gradient of the summed per-row loss w.r.t. x: one forward + one backward pass.
engine::Tensor loss_gradient(const engine::Model& model, const engine::Tensor& x, Loss loss,
                             const std::vector<int64_t>& y, const std::vector<int64_t>* target,
                             engine::Tensor* logits, std::vector<float>* values);

/// Elements per sample (product of dims after the first).
int64_t sample_dim(const engine::Tensor& x);
/// ||v|| in the given norm.
double vector_norm(const float* v, int64_t n, Norm norm);
/// ||a-b|| in the given norm.
double distance(const float* a, const float* b, int64_t n, Norm norm);
/// Project x_adv onto {||x_adv - x0|| <= eps} and then clip to [lo, hi]; clipping a
/// point of the ball towards the box containing x0 keeps it in the ball.
void project(float* x_adv, const float* x0, int64_t n, Norm norm, double eps, double lo, double hi);
/// Forward in chunks of `batch` rows.
engine::Tensor forward_batched(const engine::Model& model, const engine::Tensor& x, int batch);
/// Argmax of row i of a [N,C] tensor.
int64_t row_argmax(const engine::Tensor& logits, int64_t i);

/// What an attack found on one subset of (clean-correct) points.
struct SubsetResult {
  engine::Tensor adversarial;          ///< best candidate per row (x where none)
  std::vector<uint8_t> found;          ///< the attack believes the row is broken
  std::vector<int64_t> gradient_calls;
  std::vector<int64_t> queries;
  std::vector<std::string> stage;      ///< AutoAttack stage name per row
  std::vector<std::string> notes;      ///< how the attack ran (device fast path, or why not)
};

SubsetResult make_subset_result(const engine::Tensor& x);

/// FGSM (Goodfellow et al. 2015): x + eps * sign(grad CE); L2: x + eps * g/||g|| (FGM).
SubsetResult fgsm(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                  const AttackConfig& cfg, RowRngs& rng);
/// PGD (Madry et al. 2018) with random start and restarts on cross-entropy.
SubsetResult pgd(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                 const AttackConfig& cfg, RowRngs& rng);
/// APGD (Croce & Hein 2020, Alg. 1) with CE or DLR loss, restarts on still-robust points.
SubsetResult apgd(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                  const AttackConfig& cfg, RowRngs& rng, Loss loss);
/// APGD-T: targeted DLR over the top-2..top-(n+1) classes.
SubsetResult apgd_targeted(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                           const AttackConfig& cfg, RowRngs& rng);
/// Square attack (Andriushchenko et al. 2020), Linf and L2, margin loss, forward passes only.
SubsetResult square(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                    const AttackConfig& cfg, RowRngs& rng);
/// Carlini-Wagner L2 (2017): tanh box, Adam, binary search over c.
SubsetResult cw_l2(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                   const AttackConfig& cfg, RowRngs& rng);
/// DeepFool (Moosavi-Dezfooli et al. 2016), L2 or Linf.
SubsetResult deepfool(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                      const AttackConfig& cfg, RowRngs& rng);

/// FAB (Croce & Hein 2020), untargeted: closest linearised boundary over all classes; restarts
/// after the first from a random start. Success within eps; the point is FAB's minimal one.
SubsetResult fab(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                 const AttackConfig& cfg, RowRngs& rng);
/// FAB-T (AutoAttack standard): targeted FAB over the top-2..top-(n_target_classes+1) clean classes.
SubsetResult fab_targeted(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                          const AttackConfig& cfg, RowRngs& rng);

/// HopSkipJump (Chen, Jordan, Wainwright, IEEE S&P 2020), untargeted, L2 or Linf, labels only:
/// the smallest adversarial point found per row (minimal-perturbation attack, eps ignored).
SubsetResult hop_skip_jump(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                           const AttackConfig& cfg, RowRngs& rng);
/// Boundary attack (Brendel, Rauber, Bethge, ICLR 2018) as Foolbox 3's BoundaryAttack, L2, labels
/// only: the smallest adversarial point found per row (minimal-perturbation attack, eps ignored).
SubsetResult boundary_attack(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                             const AttackConfig& cfg, RowRngs& rng);

/// The box the decision-based attacks draw their random starts from and size their first step
/// by: the domain [clip_min, clip_max] where a side is finite, else (ART's rule for a model
/// without clip values) the smallest / largest value of the data on that side. Candidates are
/// still clipped to the domain itself.
std::pair<double, double> decision_range(const engine::Tensor& x, const AttackConfig& cfg);

/// The label-only oracle of the decision-based attacks: candidate rows are clipped to
/// [clip_min, clip_max] (ART and the authors' code clip before every query), run through the
/// model in calls of at most max_rows() rows, and a row is adversarial when its argmax differs
/// from its owner's label. Each row is one query charged to its owner (`queries[owner]`).
class DecisionOracle {
 public:
  DecisionOracle(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                 const AttackConfig& cfg, std::vector<int64_t>& queries);
  /// An uninitialised candidate batch of `rows` rows shaped like x's rows.
  engine::Tensor candidates(int64_t rows) const;
  /// Clip `rows` in place and query them; owner[k] is the row of x that candidate k belongs to.
  std::vector<uint8_t> is_adversarial(engine::Tensor& rows, const std::vector<int64_t>& owner) const;
  /// Rows per model call: at least --batch, else as many as fit 2^22 input values (16 MiB).
  int64_t max_rows() const { return max_rows_; }
  /// The random starts of the decision-based attacks: per round, one uniform draw of
  /// decision_range() for every row 0..n-1 still without an adversarial one (each row from its
  /// own stream in `rng`), up to `rounds` rounds. Returns each row's first adversarial draw
  /// (empty when none was).
  std::vector<std::vector<float>> uniform_starts(int64_t n, int rounds, RowRngs& rng) const;

 private:
  const engine::Model& model_;
  engine::Shape row_shape_;
  const std::vector<int64_t>& y_;
  std::vector<int64_t>& queries_;
  double lo_, hi_;                ///< the domain (candidates are clipped to it)
  double start_lo_, start_hi_;    ///< decision_range: where the random starts are drawn
  int64_t d_, max_rows_;
};

/// One APGD run (no restarts) from a random start; used by apgd and apgd_targeted.
/// `target` non-null selects targeted DLR. Updates adv/found for rows that break.
void apgd_single_run(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                     const std::vector<int64_t>* target, const AttackConfig& cfg, RowRngs& rng,
                     Loss loss, engine::Tensor& adv, std::vector<uint8_t>& found,
                     std::vector<int64_t>& gradient_calls);

}  // namespace mlaudit::robustness::detail

namespace mlaudit::robustness::detail {
/// AutoAttack "standard" (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T, Square; each stage on still-robust rows.
/// Without input gradients (cfg.gradients_available false): Square, then HopSkipJump within eps.
SubsetResult autoattack(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                        const AttackConfig& cfg, RowRngs& rng);
/// The checks every attack runs (AutoAttack's checks.py): a random model (two passes differ),
/// softmax-looking outputs, and, for white-box attacks, points whose CE input gradient is
/// exactly zero (gradient masking). `classes` receives the model's class count.
std::vector<std::string> sanity_warnings(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                                         const AttackConfig& cfg, bool white_box, int64_t* classes = nullptr);
/// AutoAttack's sanity checks (checks.py): sanity_warnings plus its own stages' limits,
/// zero gradients, and the black-box stage beating the white-box ones.
std::vector<std::string> autoattack_warnings(const engine::Model& m, const engine::Tensor& x,
                                             const std::vector<int64_t>& y, const AttackResult& r,
                                             const AttackConfig& cfg);
}  // namespace mlaudit::robustness::detail
