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
