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
LayerBounds crown_bounds(const Network& net, const InputBox& box, const ReluSplits& splits = {},
                         bool output_layer = true, bool refine_stable = false, const LayerBounds* prior = nullptr);

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

/// alpha-CROWN (Xu et al., ICLR 2021): maximise the CROWN lower bound of one
/// objective over the lower ReLU slopes by projected gradient ascent
/// (`iterations` Adam steps, learning rate `lr`); returns the best bound found
/// (always a sound bound: every slope in [0,1] gives one).
ObjectiveBound alpha_crown_objective(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                     const OutputConstraint& objective, int iterations = 20, double lr = 0.1);

/// Number of unstable ReLUs (lower < 0 < upper) in the hidden layers.
int64_t unstable_relu_count(const Network& net, const LayerBounds& bounds);

}  // namespace mlaudit::verify
