// AutoAttack "standard" (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial
// robustness with an ensemble of diverse parameter-free attacks"): APGD-CE, APGD-T
// (9 targets), FAB-T (9 targets, 1 restart, 100 iterations), Square (5000 queries), each
// stage run only on the points still robust, worst case per sample. On a model without input
// gradients (tree ensembles) the white-box stages cannot run: the black-box subset runs instead,
// Square (score-based), then HopSkipJump (decision-based, Chen et al. 2020) and, under L2, the
// Boundary attack (Brendel et al. 2018) on the points the earlier stages left, a point counting
// as broken when a decision attack's smallest adversarial lies within eps.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "common.h"

namespace mlaudit::robustness::detail {
namespace {
// L2 Square tiles the image in 5x5 blocks: it needs [N,C,H,W] with H, W >= 5.
bool square_applicable(const engine::Tensor& x, Norm norm) {
  return norm == Norm::Linf || (x.rank() == 4 && x.dim(2) >= 5 && x.dim(3) >= 5);
}
}  // namespace

SubsetResult autoattack(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                        const AttackConfig& cfg_in, RowRngs& rng) {
  SubsetResult r = make_subset_result(x);
  const int64_t n = x.dim(0), d = sample_dim(x);
  AttackConfig cfg = cfg_in;
  const int iters = cfg_in.steps > 0 ? cfg_in.steps : 100;
  engine::Tensor probe = m.forward(x.slice_rows(0, 1));
  const int64_t classes = probe.dim(1);
  const std::vector<std::string> stages = autoattack_stages(cfg_in.gradients_available, cfg_in.norm);
  for (const auto& stage : stages) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < n; ++i)
      if (!r.found[size_t(i)]) rows.push_back(i);
    if (rows.empty()) break;
    if (stage == "apgd-t" && classes < 4) continue;  // targeted DLR needs 4 classes (warned)
    if (stage == "square" && !square_applicable(x, cfg.norm)) continue;  // L2 Square needs images (warned)
    engine::Tensor xs = x.gather_rows(rows);
    std::vector<int64_t> ys;
    for (auto i : rows) ys.push_back(y[size_t(i)]);
    SubsetResult s;
    RowRngs rows_rng = rng.subset(rows);  // each row keeps its own stream through the stages
    if (stage == "apgd-ce") {
      cfg.steps = iters; cfg.restarts = 1;
      s = apgd(m, xs, ys, cfg, rows_rng, Loss::CrossEntropy);
    } else if (stage == "apgd-t") {
      cfg.steps = iters; cfg.restarts = 1; cfg.n_target_classes = 9;
      s = apgd_targeted(m, xs, ys, cfg, rows_rng);
    } else if (stage == "fab-t") {
      // AutoAttack standard: fab.n_restarts = 1, fab.n_target_classes = 9, n_iter = 100.
      cfg.steps = iters; cfg.restarts = 1; cfg.n_target_classes = 9;
      s = fab_targeted(m, xs, ys, cfg, rows_rng);
    } else if (stage == "hsja") {
      // ART's defaults (50 iterations); --steps, as for every stage, sets the iterations.
      cfg.steps = cfg_in.steps; cfg.restarts = 1;
      s = hop_skip_jump(m, xs, ys, cfg, rows_rng);
    } else if (stage == "boundary") {
      // L2 only: Foolbox 3's defaults (25,000 steps); --steps sets them, --queries caps them.
      cfg.steps = cfg_in.steps; cfg.restarts = 1;
      s = boundary_attack(m, xs, ys, cfg, rows_rng);
    } else {
      cfg.queries = cfg_in.queries > 0 ? cfg_in.queries : 5000; cfg.p_init = 0.8;
      s = square(m, xs, ys, cfg, rows_rng);
    }
    // How the stage ran (fused device loop or host loop), once per distinct note.
    for (const auto& note : s.notes)
      if (std::find(r.notes.begin(), r.notes.end(), note) == r.notes.end()) r.notes.push_back(note);
    // Fresh forward pass before a stage's candidate counts.
    auto ok = verify_adversarial(m, xs, s.adversarial, ys, cfg.norm, cfg.eps, cfg.clip_min, cfg.clip_max, cfg.batch);
    for (size_t k = 0; k < rows.size(); ++k) {
      const size_t i = size_t(rows[k]);
      r.gradient_calls[i] += s.gradient_calls[k];
      r.queries[i] += s.queries[k] + 1;
      if (ok[k]) {
        r.found[i] = 1;
        r.stage[i] = stage;
        std::copy_n(s.adversarial.f32() + int64_t(k) * d, d, r.adversarial.f32() + int64_t(i) * d);
      }
    }
  }
  return r;
}

std::vector<std::string> sanity_warnings(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                                         const AttackConfig& cfg, bool white_box, int64_t* classes) {
  std::vector<std::string> w;
  const int64_t n = std::min<int64_t>(x.dim(0), cfg.batch);
  engine::Tensor xs = x.slice_rows(0, n);
  std::vector<int64_t> ys(y.begin(), y.begin() + n);
  // Randomised model: two forward passes on the same batch disagree.
  engine::Tensor a = m.forward(xs), b = m.forward(xs);
  double maxdiff = 0;
  for (int64_t k = 0; k < a.numel(); ++k) maxdiff = std::max(maxdiff, std::fabs(double(a.f32()[k]) - b.f32()[k]));
  if (maxdiff > 1e-5)
    w.push_back(fmt::format("the model output is random (two passes differ by up to {:.3g}): use an EoT-based evaluation", maxdiff));
  // Softmax-looking output: rows in [0,1] summing to 1.
  const int64_t c = a.dim(1);
  if (classes) *classes = c;
  bool probs = true;
  for (int64_t i = 0; i < n && probs; ++i) {
    double s = 0;
    for (int64_t j = 0; j < c; ++j) {
      const float v = a.f32()[i * c + j];
      probs = probs && v >= 0 && v <= 1;
      s += v;
    }
    probs = probs && std::fabs(s - 1) < 1e-4;
  }
  if (probs) w.push_back("the model outputs look like probabilities (softmax); attacks expect logits");
  if (white_box) {
    // Zero gradients of the CE loss.
    engine::Tensor g = loss_gradient(m, xs, Loss::CrossEntropy, ys, nullptr, nullptr, nullptr);
    const int64_t d = sample_dim(xs);
    int64_t zero = 0;
    for (int64_t i = 0; i < n; ++i) {
      bool all0 = true;
      for (int64_t k = 0; k < d && all0; ++k) all0 = g.f32()[i * d + k] == 0.f;
      zero += all0;
    }
    if (zero > 0)
      w.push_back(fmt::format("{} of {} points have a zero input gradient: gradient masking may make white-box attacks "
                              "unreliable (try --attack square or hsja, which need no gradient)",
                              zero, n));
  }
  return w;
}

std::vector<std::string> autoattack_warnings(const engine::Model& m, const engine::Tensor& x,
                                             const std::vector<int64_t>& y, const AttackResult& r,
                                             const AttackConfig& cfg) {
  int64_t c = 0;
  std::vector<std::string> w = sanity_warnings(m, x, y, cfg, true, &c);
  if (!square_applicable(x, cfg.norm)) w.push_back("the L2 Square stage needs image inputs [N,C,H,W] (H,W >= 5) and was skipped");
  if (c < 4) w.push_back(fmt::format("the model has {} classes: APGD-T (targeted DLR) needs at least 4 and was skipped", c));
  if (c < 10) w.push_back(fmt::format("the model has {} classes: FAB-T tried the {} other classes as targets (AutoAttack uses 9)", c, c - 1));
  // Black-box beating white-box.
  const auto by_square = std::count(r.stage.begin(), r.stage.end(), std::string("square"));
  if (by_square > 0)
    w.push_back(fmt::format("Square (black-box) broke {} points the white-box APGD stages did not: gradients may be unreliable", by_square));
  return w;
}

}  // namespace mlaudit::robustness::detail
