// Bound propagation: paper worked examples, an independent NumPy golden, and
// soundness properties on random networks.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mlaudit/verify/bounds.h"
#include "test_util.h"
#include "verify_test_util.h"

using namespace mlaudit::verify;
using mlaudit::verify::testing::layer;
using mlaudit::verify::testing::random_network;

// Exact small-integer examples: the only error is our outward rounding
// (a few ulps of the values, ~1e-15), so 1e-9 absolute is far above it and far
// below any difference a wrong relaxation would make (>= 0.25 here).
constexpr double kExactTol = 1e-9;

TEST_CASE("DeepPoly paper Figure 3 network: bounds of every neuron", "[verify][bounds][golden]") {
  // Singh et al., "An Abstract Domain for Certifying Neural Networks", POPL 2019, Fig. 3:
  // x1, x2 in [-1, 1]; x3 = x1 + x2, x4 = x1 - x2; x5, x6 = relu; x7 = x5 + x6,
  // x8 = x5 - x6; x9, x10 = relu; x11 = x9 + x10 + 1, x12 = x10.
  Network net;
  net.layers.push_back(layer({{1, 1}, {1, -1}}, {0, 0}));
  net.layers.push_back(layer({{1, 1}, {1, -1}}, {0, 0}));
  net.layers.push_back(layer({{1, 1}, {0, 1}}, {1, 0}));
  InputBox box{{-1, -1}, {1, 1}};
  LayerBounds b = crown_bounds(net, box, {}, true, /*refine_stable=*/true);
  // Paper values: x3, x4 in [-2, 2]; x7 in [0, 3]; x8 in [-2, 2]; x11 in [1, 5.5]; x12 in [0, 2].
  CHECK(b.lower[0][0] == Approx(-2).margin(kExactTol));
  CHECK(b.upper[0][0] == Approx(2).margin(kExactTol));
  CHECK(b.lower[0][1] == Approx(-2).margin(kExactTol));
  CHECK(b.upper[0][1] == Approx(2).margin(kExactTol));
  CHECK(b.lower[1][0] == Approx(0).margin(kExactTol));
  CHECK(b.upper[1][0] == Approx(3).margin(kExactTol));
  CHECK(b.lower[1][1] == Approx(-2).margin(kExactTol));
  CHECK(b.upper[1][1] == Approx(2).margin(kExactTol));
  CHECK(b.lower[2][0] == Approx(1).margin(kExactTol));
  CHECK(b.upper[2][0] == Approx(5.5).margin(kExactTol));
  CHECK(b.lower[2][1] == Approx(0).margin(kExactTol));
  CHECK(b.upper[2][1] == Approx(2).margin(kExactTol));
  // The paper's conclusion: x11 - x12 > 0 is proved (lower bound 1 by back-substitution).
  OutputConstraint diff{{1, -1}, 0};
  auto obj = crown_objective(net, box, b, {diff});
  CHECK(obj[0].lower == Approx(1).margin(kExactTol));
  // Outward rounding never makes a bound tighter than the exact value.
  CHECK(b.lower[2][0] <= 1.0);
  CHECK(b.upper[2][0] >= 5.5);
}

TEST_CASE("CROWN on a hand-computable two-neuron network is exact where IBP is loose", "[verify][bounds][golden]") {
  // x in [-1, 2]; z1 = x, z2 = 1 - x; y = relu(z1) + relu(z2).
  // True range: y = 1 - x on [-1, 0], 1 on [0, 1], x on [1, 2] -> [1, 2].
  // CROWN: both neurons have l = -1, u = 2 (u > -l, so lower slope 1):
  //   lower y >= z1 + z2 = 1; upper y <= 2/3 (z1 + 1) + 2/3 (z2 + 1) = 2/3 * 3 = 2.
  // IBP: relu(z) in [0, 2] each -> y in [0, 4].
  Network net;
  net.layers.push_back(layer({{1}, {-1}}, {0, 1}));
  net.layers.push_back(layer({{1, 1}}, {0}));
  InputBox box{{-1}, {2}};
  LayerBounds ibp = interval_bounds(net, box);
  CHECK(ibp.lower[1][0] == Approx(0).margin(kExactTol));
  CHECK(ibp.upper[1][0] == Approx(4).margin(kExactTol));
  LayerBounds cr = crown_bounds(net, box);
  CHECK(cr.lower[1][0] == Approx(1).margin(kExactTol));
  CHECK(cr.upper[1][0] == Approx(2).margin(kExactTol));
  CHECK(unstable_relu_count(net, cr) == 2);
}

TEST_CASE("IBP and CROWN bounds match an independent NumPy implementation", "[verify][bounds][golden]") {
  std::ifstream f(mlaudit::test::source_path("tests/fixtures/verify/crown_random_net.json"));
  REQUIRE(f.good());
  auto j = nlohmann::json::parse(f);
  Network net;
  for (size_t k = 0; k < j["weights"].size(); ++k)
    net.layers.push_back(layer(j["weights"][k].get<std::vector<std::vector<double>>>(), j["biases"][k].get<std::vector<double>>()));
  InputBox box{j["box_lower"].get<std::vector<double>>(), j["box_upper"].get<std::vector<double>>()};
  LayerBounds ibp = interval_bounds(net, box);
  LayerBounds cr = crown_bounds(net, box, {}, true, /*refine_stable=*/true);
  // Same algorithm in double precision; only summation order and our outward
  // rounding (relative ~1e-14) differ, so 1e-9 relative + 1e-9 absolute.
  for (size_t k = 0; k < net.layers.size(); ++k)
    for (size_t i = 0; i < ibp.lower[k].size(); ++i) {
      INFO("layer " << k << " neuron " << i);
      CHECK(mlaudit::test::close(ibp.lower[k][i], j["ibp_lower"][k][i].get<double>(), 1e-9, 1e-9));
      CHECK(mlaudit::test::close(ibp.upper[k][i], j["ibp_upper"][k][i].get<double>(), 1e-9, 1e-9));
      CHECK(mlaudit::test::close(cr.lower[k][i], j["crown_lower"][k][i].get<double>(), 1e-9, 1e-9));
      CHECK(mlaudit::test::close(cr.upper[k][i], j["crown_upper"][k][i].get<double>(), 1e-9, 1e-9));
    }
}

TEST_CASE("Soundness: sampled concrete values lie within IBP, CROWN and alpha-CROWN bounds", "[verify][bounds][soundness]") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<int64_t> sizes{int64_t(2 + trial % 4), 10, 12, 8, 4};
    Network net = random_network(sizes, 1000 + uint64_t(trial));
    InputBox box;
    std::uniform_real_distribution<double> c(-1, 1), w(0.01, 0.8);
    for (int64_t i = 0; i < sizes[0]; ++i) {
      double m = c(rng), r = w(rng);
      box.lower.push_back(m - r);
      box.upper.push_back(m + r);
    }
    LayerBounds ibp = interval_bounds(net, box);
    LayerBounds cr = crown_bounds(net, box);
    OutputConstraint obj{{1, -1, 0.5, 0}, 0.25};
    auto lin = crown_objective(net, box, cr, {obj});
    auto alpha = alpha_crown_objective(net, box, cr, obj);
    // alpha-CROWN starts from the CROWN slopes and keeps the best bound.
    CHECK(alpha.lower >= lin[0].lower);
    for (size_t k = 0; k < net.layers.size(); ++k)
      for (size_t i = 0; i < cr.lower[k].size(); ++i) {
        // CROWN is intersected with IBP, so never looser.
        CHECK(cr.lower[k][i] >= ibp.lower[k][i]);
        CHECK(cr.upper[k][i] <= ibp.upper[k][i]);
      }
    std::uniform_real_distribution<double> u01(0, 1);
    int violations = 0;
    for (int s = 0; s < 2000; ++s) {
      std::vector<double> x(box.lower.size());
      for (size_t i = 0; i < x.size(); ++i) {
        // Corners are where linear bounds are tight; sample them a quarter of the time.
        double t = s % 4 == 0 ? double(u01(rng) < 0.5) : u01(rng);
        x[i] = box.lower[i] + t * (box.upper[i] - box.lower[i]);
      }
      auto pre = net.pre_activations(x);
      for (size_t k = 0; k < pre.size(); ++k)
        for (size_t i = 0; i < pre[k].size(); ++i)
          if (pre[k][i] < cr.lower[k][i] || pre[k][i] > cr.upper[k][i] || pre[k][i] < ibp.lower[k][i] ||
              pre[k][i] > ibp.upper[k][i])
            ++violations;
      const auto& y = pre.back();
      double v = obj.constant;
      for (size_t j = 0; j < 4; ++j) v += obj.coef[j] * y[j];
      if (v < lin[0].lower || v < alpha.lower) ++violations;
      // The linear bound itself holds pointwise: row(y) >= coef . x + constant.
      double linear = lin[0].constant;
      for (size_t i = 0; i < x.size(); ++i) linear += lin[0].input_coef[i] * x[i];
      if (v < linear) ++violations;
    }
    INFO("trial " << trial);
    CHECK(violations == 0);
  }
}

TEST_CASE("Hidden-layer objectives: linear bounds hold pointwise, also on a split region", "[verify][bounds][soundness]") {
  // crown_hidden_objective feeds the activation-pattern LP (bab.cpp), which
  // needs each bound to hold at every point of the region, not just its
  // minimum. Objectives -s z_kj on every neuron of layers 1 and 2; with the
  // first unstable neuron of layer 0 split active, sampled points of the region
  // (z >= 0 there) must satisfy every bound.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 8; ++trial) {
    std::vector<int64_t> sizes{3, 8, 8, 6, 2};
    Network net = random_network(sizes, 500 + uint64_t(trial));
    InputBox box{{-0.6, -0.4, -0.5}, {0.5, 0.7, 0.3}};
    ReluSplits splits(net.layers.size() - 1);
    for (size_t k = 0; k + 1 < net.layers.size(); ++k) splits[k].assign(size_t(net.layers[k].out), 0);
    LayerBounds root = crown_bounds(net, box);
    int split_neuron = -1;
    for (size_t j = 0; j < root.lower[0].size() && split_neuron < 0; ++j)
      if (root.lower[0][j] < 0 && root.upper[0][j] > 0) split_neuron = int(j);
    if (split_neuron >= 0) splits[0][size_t(split_neuron)] = 1;
    LayerBounds b = crown_bounds(net, box, splits, false, false, &root);
    std::vector<std::pair<size_t, std::vector<ObjectiveBound>>> per_layer;
    for (size_t k : {size_t(1), size_t(2)}) {
      std::vector<OutputConstraint> rows;
      for (int64_t j = 0; j < net.layers[k].out; ++j)
        for (double sign : {1.0, -1.0}) {
          OutputConstraint row;
          row.coef.assign(size_t(net.layers[k].out), 0.0);
          row.coef[size_t(j)] = -sign;
          rows.push_back(row);
        }
      per_layer.emplace_back(k, crown_hidden_objective(net, box, b, k, rows));
    }
    int violations = 0, inside = 0;
    for (int s = 0; s < 3000; ++s) {
      auto x = mlaudit::verify::testing::sample_in_box(box, rng, s);
      auto pre = net.pre_activations(x);
      if (split_neuron >= 0 && pre[0][size_t(split_neuron)] < 0) continue;  // outside the split region
      ++inside;
      for (const auto& [k, bounds] : per_layer)
        for (size_t r = 0; r < bounds.size(); ++r) {
          const double value = (r % 2 == 0 ? -1.0 : 1.0) * pre[k][r / 2];
          double linear = bounds[r].constant;
          for (size_t i = 0; i < x.size(); ++i) linear += bounds[r].input_coef[i] * x[i];
          if (value < linear || value < bounds[r].lower) ++violations;
        }
    }
    INFO("trial " << trial << ", " << inside << " samples in the region");
    CHECK(inside > 50);  // the region holds a fair share of the box (93 of 3000 at the least, trial 4)
    CHECK(violations == 0);
  }
}

TEST_CASE("beta-CROWN on several branches at once equals separate calls, branch by branch",
          "[verify][bounds][beta]") {
  // beta_crown_branches optimises the rows of all branches in one pass (the branch and bound's
  // batches); each row keeps its own branch's bounds, splits and warm start, so every bound,
  // linear form and optimised state must match a separate beta_crown_objectives call (up to the
  // summation order of the shared products), warm starts included.
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<int64_t> sizes{4, 10, 10, 3};
    Network net = random_network(sizes, 1700 + uint64_t(trial));
    InputBox box{{-0.8, -0.5, -0.6, -0.7}, {0.6, 0.7, 0.5, 0.4}};
    LayerBounds root = crown_bounds(net, box);
    // Three branches: no split, one neuron active, two neurons split the other way.
    std::vector<ReluSplits> splits(3, ReluSplits(net.layers.size() - 1));
    for (auto& sp : splits)
      for (size_t k = 0; k + 1 < net.layers.size(); ++k) sp[k].assign(size_t(net.layers[k].out), 0);
    int made = 0;
    for (size_t k = 0; k + 1 < net.layers.size(); ++k)
      for (size_t j = 0; j < root.lower[k].size(); ++j)
        if (root.lower[k][j] < 0 && root.upper[k][j] > 0 && made < 3) {
          if (made == 0) splits[1][k][j] = 1;
          else splits[2][k][j] = -1;
          ++made;
        }
    std::vector<LayerBounds> bounds(3, root);
    for (size_t b = 0; b < 3; ++b) apply_splits(splits[b], bounds[b]);
    OutputConstraint o1{{1.0, -1.0, 0.5}, 0.1}, o2{{-0.5, 1.0, 0.0}, -0.2};
    const std::vector<std::vector<OutputConstraint>> objs = {{o1}, {o1, o2}, {o2}};
    // Per branch and row: the separate calls' states and the batched call's.
    std::vector<std::vector<SplitMultipliers>> alone_state(3), batch_state(3);
    for (size_t b = 0; b < 3; ++b) {
      alone_state[b].resize(objs[b].size());
      batch_state[b].resize(objs[b].size());
    }
    for (int round = 0; round < 2; ++round) {  // round 1: warm-started from round 0's states
      std::vector<BranchObjectives> branches;
      for (size_t b = 0; b < 3; ++b) {
        BranchObjectives br{&box, &bounds[b], &splits[b], objs[b], {}};
        for (auto& st : batch_state[b]) br.states.push_back(&st);
        branches.push_back(br);
      }
      auto together = beta_crown_branches(net, branches);
      for (size_t b = 0; b < 3; ++b) {
        std::vector<SplitMultipliers*> states;
        for (auto& st : alone_state[b]) states.push_back(&st);
        auto alone = beta_crown_objectives(net, box, bounds[b], splits[b], objs[b], states);
        REQUIRE(together[b].size() == alone.size());
        for (size_t i = 0; i < alone.size(); ++i) {
          INFO("trial " << trial << " round " << round << " branch " << b << " row " << i);
          CHECK(together[b][i].lower == Approx(alone[i].lower).margin(1e-9));
          CHECK(together[b][i].constant == Approx(alone[i].constant).margin(1e-9));
          REQUIRE(together[b][i].input_coef.size() == alone[i].input_coef.size());
          for (size_t j = 0; j < alone[i].input_coef.size(); ++j)
            CHECK(together[b][i].input_coef[j] == Approx(alone[i].input_coef[j]).margin(1e-9));
          const auto& ta = batch_state[b][i].alpha;
          const auto& aa = alone_state[b][i].alpha;
          REQUIRE(ta.size() == aa.size());
          for (size_t k = 0; k < aa.size(); ++k)
            for (size_t j = 0; j < aa[k].size(); ++j) CHECK(ta[k][j] == Approx(aa[k][j]).margin(1e-9));
        }
      }
    }
  }
}

TEST_CASE("Split decisions tighten bounds and mark infeasible branches", "[verify][bounds]") {
  // z = x on [-1, 1]; forcing the ReLU inactive clips the upper bound to 0,
  // forcing it active clips the lower bound to 0.
  Network net;
  net.layers.push_back(layer({{1}}, {0}));
  net.layers.push_back(layer({{1}}, {0}));
  InputBox box{{-1}, {1}};
  ReluSplits on{{1}}, off{{-1}};
  LayerBounds a = crown_bounds(net, box, on);
  CHECK(a.lower[0][0] == 0.0);
  LayerBounds b = crown_bounds(net, box, off);
  CHECK(b.upper[0][0] == 0.0);
  CHECK(b.upper[1][0] == Approx(0).margin(kExactTol));
}

TEST_CASE("beta-CROWN: split multipliers give sound bounds on the split region, never looser than CROWN",
          "[verify][bounds][soundness][beta]") {
  // Random networks, two or three unstable neurons split (some active, some inactive), the
  // intermediate bounds those of the unsplit box with the splits applied (as the ReLU branch and
  // bound keeps them). Every sampled point of the region {s z >= 0} must satisfy the beta-CROWN
  // bound and its linear form; the bound is never below CROWN's on the same bounds, and the
  // multipliers must actually help on some trials (else beta would be a no-op this cannot catch).
  std::mt19937_64 rng(11);
  int improved = 0, regions = 0;
  for (int trial = 0; trial < 12; ++trial) {
    std::vector<int64_t> sizes{4, 10, 10, 3};
    Network net = random_network(sizes, 900 + uint64_t(trial));
    InputBox box{{-0.8, -0.5, -0.6, -0.7}, {0.6, 0.7, 0.5, 0.4}};
    LayerBounds root = crown_bounds(net, box);
    ReluSplits splits(net.layers.size() - 1);
    for (size_t k = 0; k + 1 < net.layers.size(); ++k) splits[k].assign(size_t(net.layers[k].out), 0);
    int made = 0;
    for (size_t k = 0; k + 1 < net.layers.size() && made < 3; ++k)
      for (size_t j = 0; j < root.lower[k].size() && made < 3; ++j)
        if (root.lower[k][j] < 0 && root.upper[k][j] > 0) splits[k][j] = int8_t((made++ + trial) % 2 ? 1 : -1);
    LayerBounds b = root;
    apply_splits(splits, b);
    OutputConstraint obj;
    obj.coef = {1.0, -1.0, 0.5};
    obj.constant = 0.1;
    ObjectiveBound crown = crown_objective(net, box, b, {obj})[0];
    SplitMultipliers state;
    ObjectiveBound beta = beta_crown_objective(net, box, b, splits, obj, &state);
    CHECK(beta.lower >= crown.lower);
    // The multipliers' own share: alpha-CROWN alone (the same slopes' optimisation, no beta).
    const ObjectiveBound alpha = alpha_crown_objective(net, box, b, obj);
    if (beta.lower > alpha.lower + 1e-6) ++improved;
    // A warm start from the chosen values is never worse (best values kept).
    ObjectiveBound again = beta_crown_objective(net, box, b, splits, obj, &state);
    CHECK(again.lower >= beta.lower - 1e-12);
    int inside = 0, violations = 0;
    for (int s = 0; s < 4000; ++s) {
      auto x = mlaudit::verify::testing::sample_in_box(box, rng, s);
      auto pre = net.pre_activations(x);
      bool in_region = true;
      for (size_t k = 0; k < splits.size(); ++k)
        for (size_t j = 0; j < splits[k].size(); ++j)
          if (splits[k][j] != 0 && double(splits[k][j]) * pre[k][j] < 0) in_region = false;
      if (!in_region) continue;
      ++inside;
      double value = obj.constant;
      for (size_t i = 0; i < obj.coef.size(); ++i) value += obj.coef[i] * pre.back()[i];
      double linear = beta.constant;
      for (size_t i = 0; i < x.size(); ++i) linear += beta.input_coef[i] * x[i];
      if (value < beta.lower || value < linear) ++violations;
    }
    INFO("trial " << trial << ": " << inside << " samples in the region, crown " << crown.lower << ", alpha " << alpha.lower
                                   << ", beta " << beta.lower);
    CHECK(violations == 0);
    if (inside > 0) ++regions;
  }
  CHECK(regions >= 8);
  CHECK(improved >= 3);
}
