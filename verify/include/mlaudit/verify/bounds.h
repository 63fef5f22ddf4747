#pragma once
// Incomplete verification: sound bounds on every neuron and on linear output
// objectives over an input box. Interval bound propagation (IBP), CROWN /
// DeepPoly back-substitution, and alpha-CROWN (optimised lower ReLU slopes).
#include <cstdint>
#include <vector>

#include "mlaudit/verify/network.h"
#include "mlaudit/verify/vnnlib.h"

namespace mlaudit::verify {

/// Pre-activation bounds per layer: lower[k][j] <= z_k[j] <= upper[k][j], where
/// z_k = layers[k](a_{k-1}); the last entry bounds the network output.
struct LayerBounds {
  std::vector<std::vector<double>> lower;
  std::vector<std::vector<double>> upper;
};

/// ReLU split decisions of a branch: per hidden layer and neuron, +1 = active
/// (z >= 0), -1 = inactive (z <= 0), 0 = free. Empty = no splits.
using ReluSplits = std::vector<std::vector<int8_t>>;

/// Lower ReLU slopes for alpha-CROWN, per hidden layer and neuron, in [0,1].
using ReluSlopes = std::vector<std::vector<double>>;

/// Apply split decisions to hidden-layer bounds: an active split lifts the lower bound to 0, an
/// inactive one lowers the upper bound to 0 (valid on the branch where the splits hold).
void apply_splits(const ReluSplits& splits, LayerBounds& bounds);

/// Interval bound propagation (Gowal et al., "On the Effectiveness of Interval
/// Bound Propagation...", 2018); bounds are rounded outward.
LayerBounds interval_bounds(const Network& net, const InputBox& box, const ReluSplits& splits = {});

/// CROWN (Zhang et al., NeurIPS 2018) / DeepPoly (Singh et al., POPL 2019):
/// every layer's bounds by back-substitution to the input, using the bounds of
/// earlier layers for the ReLU relaxations; intersected with IBP; rounded outward.
/// With `output_layer` false the last (output) layer is bounded by IBP only.
/// Hidden neurons that IBP already proves stable keep their IBP bounds (their
/// relaxation is exact either way) unless `refine_stable` is set.
/// `prior` (bounds valid on a superset of the box, e.g. the parent branch's)
/// is intersected in layer by layer, before the bounds feed later relaxations.
/// With `intersect_ibp` false, back-substituted neurons keep the plain CROWN
/// bound (as auto_LiRPA computes it; used to compare against it).
/// Max-pooled layers use the DeepPoly / auto_LiRPA max-pool relaxation (bounds.cpp).
LayerBounds crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits = {},
                         bool output_layer = true, bool refine_stable = false, const LayerBounds* prior = nullptr,
                         bool intersect_ibp = true);

/// A linear lower bound of one objective row over the box:
/// row(y) >= input_coef . x + constant >= lower for every x in the box.
struct ObjectiveBound {
  double lower = 0;
  std::vector<double> input_coef;
  double constant = 0;
};

/// Lower bound of each objective (coef . y + constant) over the box given
/// hidden-layer bounds (CROWN back-substitution from the output). `slopes`
/// overrides the lower ReLU slopes (alpha-CROWN); empty = the adaptive CROWN choice.
/// When `relu_coef` is given it receives, per row and hidden layer, the
/// back-substituted coefficient of each ReLU output (used by branching heuristics).
std::vector<ObjectiveBound> crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                            const std::vector<OutputConstraint>& objectives,
                                            const ReluSlopes* slopes = nullptr,
                                            std::vector<std::vector<std::vector<double>>>* relu_coef = nullptr);

/// The same for objectives on hidden layer `layer`'s pre-activations
/// (coef . z_layer + constant), using the bounds of the layers below it.
std::vector<ObjectiveBound> crown_hidden_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                                   size_t layer, const std::vector<OutputConstraint>& objectives);

/// alpha-CROWN (Xu et al., ICLR 2021): maximise the CROWN lower bound of one
/// objective over the lower ReLU slopes of every ReLU layer by projected
/// gradient ascent (Adam; auto_LiRPA's defaults: 20 iterations, lr 0.5, decay
/// 0.98 per step, best slopes kept); returns the better of that and CROWN
/// (always sound: every slope in [0,1] gives a valid bound).
ObjectiveBound alpha_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                     const OutputConstraint& objective, int iterations = 20, double lr = 0.5,
                                     double lr_decay = 0.98);

/// One objective's optimised lower ReLU slopes (alpha, per hidden layer and neuron) and split
/// multipliers (beta, per hidden layer and neuron; 0 where not split), carried from a branch to
/// its children as a warm start. Empty = start from CROWN's slopes and beta = 0.
struct SplitMultipliers {
  ReluSlopes alpha;
  std::vector<std::vector<double>> beta;
};

/// beta-CROWN (Wang et al., "Beta-CROWN: Efficient Bound Propagation with Per-neuron Split
/// Constraints", NeurIPS 2021): lower bound of one objective over the branch {x in box: s z >= 0
/// for each split neuron}. `bounds` must already hold the splits (apply_splits: active split l >= 0,
/// inactive u <= 0). Each split constraint enters by its Lagrange multiplier beta >= 0 (the term
/// -beta s z joins the back-substitution at its layer), optimised jointly with the lower slopes by
/// projected gradient ascent (Adam; lr_alpha 0.1, lr_beta 0.05, decay 0.98, best kept); the
/// chosen values' bound is recomputed with outward rounding, and the result is never looser than
/// CROWN. `state` (optional): in, a warm start; out, the chosen slopes and multipliers.
/// iterations = 0: only the bound at `state`'s slopes and multipliers as they are (no optimisation;
/// CROWN's bound when `state` holds none), one back-substitution, as branching heuristics rank children.
ObjectiveBound beta_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                    const ReluSplits& splits, const OutputConstraint& objective,
                                    SplitMultipliers* state = nullptr, int iterations = 20, double lr_alpha = 0.1,
                                    double lr_beta = 0.05, double lr_decay = 0.98);

/// beta_crown_objective for several objectives of one branch at once: one optimisation over their
/// rows (each row its own slopes, multipliers and Adam moments, as in separate calls), so the
/// products with the weights serve every row together. `states[i]` (null or missing: none) is row
/// i's warm start in and its optimised values out.
std::vector<ObjectiveBound> beta_crown_objectives(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                                  const ReluSplits& splits, const std::vector<OutputConstraint>& objectives,
                                                  const std::vector<SplitMultipliers*>& states, int iterations = 20,
                                                  double lr_alpha = 0.1, double lr_beta = 0.05, double lr_decay = 0.98);

/// One branch's objectives for beta_crown_branches.
struct BranchObjectives {
  const InputBox* box = nullptr;
  const LayerBounds* bounds = nullptr;  ///< with the branch's splits applied (apply_splits)
  const ReluSplits* splits = nullptr;
  std::vector<OutputConstraint> objectives;
  std::vector<SplitMultipliers*> states;  ///< per objective: warm start in, optimised values out (null: none)
};

/// beta_crown_objectives for several branches of one network at once: one optimisation over the rows
/// of all of them (each row with its own branch's bounds, splits and box; the products with the
/// weights serve every row together, so thin per-branch products become GEMMs), then each branch's
/// bound computed soundly on its own. Per branch and row the same as beta_crown_objectives.
std::vector<std::vector<ObjectiveBound>> beta_crown_branches(const Network& net, const std::vector<BranchObjectives>& branches,
                                                             int iterations = 20, double lr_alpha = 0.1,
                                                             double lr_beta = 0.05, double lr_decay = 0.98);

/// alpha-CROWN for the hidden layers too: crown_bounds, then every unstable
/// neuron's lower and upper bound (layers 1..L-2, in order) optimised over its
/// own slopes of all ReLU layers below it (auto_LiRPA with optimised
/// intermediate bounds). Never looser than crown_bounds.
LayerBounds alpha_crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits = {},
                               const LayerBounds* prior = nullptr, int iterations = 20, double lr = 0.5,
                               double lr_decay = 0.98);

/// Number of unstable ReLUs (lower < 0 < upper) in the hidden layers.
int64_t unstable_relu_count(const Network& net, const LayerBounds& bounds);

}  // namespace mlaudit::verify
