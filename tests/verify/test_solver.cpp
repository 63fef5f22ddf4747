// Complete verification: agreement with exhaustive Z3 on tiny networks,
// counterexample re-checks, the watchdog, the twin network for fairness.
#include <catch2/catch.hpp>

#include <chrono>
#include <random>

#include "box_lp.h"
#include "mlaudit/verify/solver.h"
#include "mlaudit/verify/verify.h"
#include "test_util.h"
#include "verify_test_util.h"

using namespace mlaudit::verify;
using mlaudit::verify::testing::layer;
using mlaudit::verify::testing::random_network;

namespace {

// A random property: box around a random centre, unsafe when output 0 exceeds a
// threshold chosen near the sampled range (so both verdicts occur).
Property random_property(const Network& net, std::mt19937_64& rng) {
  Property p;
  p.num_inputs = net.input_size();
  p.num_outputs = net.output_size();
  SubProperty s;
  std::uniform_real_distribution<double> c(-1, 1), u(0, 1);
  for (int64_t i = 0; i < net.input_size(); ++i) {
    double m = c(rng), r = 0.1 + 0.4 * u(rng);
    s.box.lower.push_back(m - r);
    s.box.upper.push_back(m + r);
  }
  double best = -1e30;
  for (int k = 0; k < 200; ++k) {
    std::vector<double> x;
    for (size_t i = 0; i < s.box.lower.size(); ++i) x.push_back(s.box.lower[i] + u(rng) * (s.box.upper[i] - s.box.lower[i]));
    best = std::max(best, net.forward(x)[0] - net.forward(x)[1]);
  }
  // Unsafe: y0 - y1 >= threshold, i.e. -y0 + y1 + threshold <= 0.
  double threshold = best + (u(rng) - 0.5) * 0.2;
  OutputConstraint oc{{-1, 1}, threshold};
  s.unsafe.push_back({oc});
  p.cases.push_back(s);
  return p;
}

}  // namespace

TEST_CASE("BaB verdicts agree with exhaustive Z3 on tiny networks", "[verify][solver][z3]") {
  std::mt19937_64 rng(5);
  int sat = 0, unsat = 0, decided = 0, runs = 0;
  for (int trial = 0; trial < 30; ++trial) {
    Network net = random_network({3, 6, 6, 2}, 77 + uint64_t(trial));
    Property p = random_property(net, rng);
    Deadline none(30);
    // Reference: Z3 on the whole box, every ReLU from interval bounds (complete).
    LayerBounds ibp = interval_bounds(net, p.cases[0].box);
    // Time limits scale under the sanitizer (test::time_scale, MLAUDIT_TEST_TIME_SCALE).
    VerifyResult ref = z3_check(net, p.cases[0].box, ibp, p.cases[0].unsafe, 30 * mlaudit::test::time_scale(), none);
    INFO("z3 reference: " << verdict_name(ref.verdict) << " " << ref.reason);
    // Unknown only when counterexamples exist solely on the region's boundary
    // (threshold at the exact maximum); such a trial decides nothing, nor does a reference
    // that ran out of time (under a sanitizer's slowdown).
    if (ref.verdict == Verdict::Unknown || ref.verdict == Verdict::Timeout) continue;
    VerifyOptions o;
    o.timeout_s = 30 * mlaudit::test::time_scale();
    o.z3_leaf_timeout_s *= mlaudit::test::time_scale();
    o.threads = 2;
    // Both complete strategies: input splitting and ReLU splitting with Z3 leaves.
    for (int strategy = 0; strategy < 2; ++strategy) {
      o.input_split_max_dims = strategy == 0 ? 12 : 0;
      o.z3_max_unstable = 3;
      VerifyResult r = verify_property(net, p, o);
      INFO("trial " << trial << " strategy " << strategy << " method " << r.method << " reason " << r.reason);
      // A time-limited procedure may stop undecided; only a contradicting verdict is wrong.
      if (r.verdict == Verdict::Unsat || r.verdict == Verdict::Sat) ++decided;
      ++runs;
      if (ref.verdict == Verdict::Unsat) {
        CHECK(r.verdict != Verdict::Sat);
      } else {
        // Z3's exact model can sit on the boundary and be rejected in float32;
        // the BaB must still never claim a proof.
        CHECK(r.verdict != Verdict::Unsat);
        if (r.verdict == Verdict::Sat) {
          REQUIRE(r.counterexample);
          CHECK(violates(p.cases[0].unsafe, net.forward(r.counterexample->input)));
          for (size_t i = 0; i < r.counterexample->input.size(); ++i) {
            CHECK(r.counterexample->input[i] >= p.cases[0].box.lower[i]);
            CHECK(r.counterexample->input[i] <= p.cases[0].box.upper[i]);
          }
        }
      }
    }
    (ref.verdict == Verdict::Sat ? sat : unsat)++;
  }
  // The generator must exercise both answers for the agreement to mean anything.
  CHECK(sat >= 5);
  CHECK(unsat >= 5);
  // And the BaB must decide most of them within its limit (all of them at normal speed:
  // measured 60 of 60 runs), or agreement would hold vacuously.
  CHECK(decided >= runs * 8 / 10);
}

TEST_CASE("Falsifier finds a planted counterexample and it is re-checked in float32", "[verify][solver]") {
  // y = x0 - x1 on [0,1]^2; unsafe when y >= 0.99: only near (1, 0).
  Network net;
  net.layers.push_back(layer({{1, -1}}, {0}));
  SubProperty s{{{0, 0}, {1, 1}}, {{OutputConstraint{{-1}, 0.99}}}};
  VerifyOptions o;
  Deadline d(10);
  auto cex = falsify(net, s, o, d, 1);
  REQUIRE(cex);
  CHECK(cex->output[0] >= 0.99);
  CHECK(net.forward(cex->input)[0] >= 0.99);
}

TEST_CASE("A concrete check that disagrees blocks a sat answer", "[verify][solver]") {
  Network net;
  net.layers.push_back(layer({{1, -1}}, {0}));
  Property p;
  p.num_inputs = 2;
  p.num_outputs = 1;
  p.cases.push_back(SubProperty{{{0, 0}, {1, 1}}, {{OutputConstraint{{-1}, 0.5}}}});
  VerifyOptions o;
  o.timeout_s = 2;
  // A "runtime" that always answers 0: no candidate can be confirmed.
  o.concrete = [](const std::vector<float>&) { return std::vector<float>{0.0f}; };
  VerifyResult r = verify_property(net, p, o);
  CHECK(r.verdict != Verdict::Sat);
  CHECK(r.verdict != Verdict::Unsat);
}

TEST_CASE("The Z3 watchdog holds the time limit", "[verify][solver][z3]") {
  // Many unstable ReLUs: far beyond what Z3 decides in 0.3 s.
  Network net = random_network({8, 40, 40, 40, 2}, 4242, 0.05);
  InputBox box{std::vector<double>(8, -1.0), std::vector<double>(8, 1.0)};
  LayerBounds ibp = interval_bounds(net, box);
  REQUIRE(unstable_relu_count(net, ibp) > 60);
  std::vector<OutputConjunction> unsafe{{OutputConstraint{{-1, 1}, 1e6}}};  // y0 - y1 >= 1e6: unreachable but hard for Z3
  Deadline none(60);
  auto t0 = std::chrono::steady_clock::now();
  VerifyResult r = z3_check(net, box, ibp, unsafe, 0.3, none);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // 0.3 s limit; the watchdog re-interrupts every 20 ms, so allow 1.5 s for
  // Z3 to unwind and free its state on a loaded 2-core machine.
  CHECK(s < 1.8);
  CHECK(r.verdict != Verdict::Sat);
  if (r.verdict != Verdict::Unsat) CHECK(r.verdict == Verdict::Timeout);
}

TEST_CASE("The query deadline holds and is never reported as a proof", "[verify][solver]") {
  Network net = random_network({30, 60, 60, 60, 2}, 31337, 0.05);
  Property p;
  p.num_inputs = 30;
  p.num_outputs = 2;
  // Unsafe: y0 - y1 >= 0 on a wide box: very likely reachable, but the property
  // is chosen so neither side is instant.
  SubProperty s{{std::vector<double>(30, -1.0), std::vector<double>(30, 1.0)}, {{OutputConstraint{{-1, 1}, 50}}}};
  p.cases.push_back(s);
  VerifyOptions o;
  o.timeout_s = 0.5;
  o.threads = 2;
  auto t0 = std::chrono::steady_clock::now();
  VerifyResult r = verify_property(net, p, o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 3.0);
  CHECK(r.verdict != Verdict::Sat);
}

TEST_CASE("Twin network computes the model on both protected values", "[verify][fairness]") {
  Network net = random_network({4, 8, 2}, 9);
  Network twin = twin_network(net, 2, 0.0, 1.0);
  REQUIRE(twin.input_size() == 3);
  REQUIRE(twin.output_size() == 4);
  std::vector<double> xs{0.3, -0.7, 1.1};
  auto y = twin.forward(xs);
  auto ya = net.forward({0.3, -0.7, 0.0, 1.1});
  auto yb = net.forward({0.3, -0.7, 1.0, 1.1});
  // Same operations in a different summation order: 1e-12 absolute.
  for (int j = 0; j < 2; ++j) {
    CHECK(y[size_t(j)] == Approx(ya[size_t(j)]).margin(1e-12));
    CHECK(y[size_t(2 + j)] == Approx(yb[size_t(j)]).margin(1e-12));
  }
}

TEST_CASE("Fairness: a model ignoring the protected feature is proved, one keyed on it is not", "[verify][fairness]") {
  // Logits [0, x0 - 0.5 + w * p]: decision flips with p near x0 = 0.5 when w != 0.
  for (double w : {0.0, 0.3}) {
    Network net;
    net.layers.push_back(layer({{1, 0, w}, {-1, 0, -w}}, {-0.5, 0.5}));
    net.layers.push_back(layer({{0, 0}, {1, -1}}, {0, 0}));
    FairnessOptions o;
    o.protected_index = 2;
    o.protected_values = {0, 1};
    o.domain = InputBox{{0, 0, 0}, {1, 1, 1}};
    o.splits_per_feature = 2;
    o.solver.timeout_s = 10;
    auto parts = verify_fairness(net, o);
    REQUIRE(parts.size() == 4);
    int proved = 0, cex = 0;
    for (const auto& p : parts) {
      if (p.verdict == Verdict::Unsat) ++proved;
      if (p.verdict == Verdict::Sat) {
        ++cex;
        // The pair differs only in the protected feature and flips the decision.
        CHECK(p.counterexample_a[0] == p.counterexample_b[0]);
        CHECK(p.counterexample_a[2] != p.counterexample_b[2]);
        bool da = p.output_a[1] > p.output_a[0], db = p.output_b[1] > p.output_b[0];
        CHECK(da != db);
      }
    }
    if (w == 0.0) CHECK(proved == 4);
    else CHECK(cex >= 1);
  }
}

TEST_CASE("Conjunctions: the best combination of row bounds refutes what single rows and their sum cannot",
          "[verify][solver]") {
  // On x in [0, 1]: row 1 >= 2x - 0.9, row 2 >= -x + 0.6. Each row alone dips
  // below 0 (-0.9 at x = 0, -0.4 at x = 1) and so does their sum (x - 0.3,
  // -0.3 at x = 0), but max(row1, row2) >= 0.1 everywhere (the lines cross at
  // x = 0.5): lambda = (1/3, 2/3) gives the constant 0.1.
  InputBox box{{0.0}, {1.0}};
  std::vector<ObjectiveBound> rows(2);
  rows[0].input_coef = {2.0};
  rows[0].constant = -0.9;
  rows[0].lower = -0.9;
  rows[1].input_coef = {-1.0};
  rows[1].constant = 0.6;
  rows[1].lower = -0.4;
  ObjectiveBound c = combine_row_bounds(rows, 2, box);
  CHECK(c.lower > 0);
  CHECK(c.lower <= 0.1 + 1e-12);  // the LP optimum; no combination can exceed it
  // Shift row 2 down by 0.2: now x = 0.5 has both rows at -0.1 (a real point of
  // the conjunction), so no combination may prove it empty.
  rows[1].constant = 0.4;
  rows[1].lower = -0.6;
  ObjectiveBound d = combine_row_bounds(rows, 2, box);
  CHECK(d.lower <= 0);
  // The exact LP optimum -0.1, less the outward rounding allowance (a few ulps of the terms, far below 1e-12).
  CHECK(d.lower > -0.1 - 1e-12);
}

TEST_CASE("Conjunctions: a combination is never accepted where the rows meet at a point", "[verify][solver]") {
  // Rows a x + c and -(a x + c) with a = 0.1, c = 0.3 (as doubles): max(row1, row2)
  // = |a x + c| >= 0 with equality at x = -c / a (about -3) inside [-5, 0], so
  // the conjunction {both <= 0} is not empty and the exact LP optimum is 0. A
  // float LP may land an ulp above 0; the outward-rounded bound must not.
  InputBox box{{-5.0}, {0.0}};
  std::vector<ObjectiveBound> rows(2);
  rows[0].input_coef = {0.1};
  rows[0].constant = 0.3;
  rows[0].lower = -0.2;
  rows[1].input_coef = {-0.1};
  rows[1].constant = -0.3;
  rows[1].lower = -0.3;
  CHECK(combine_row_bounds(rows, 2, box).lower <= 0);
}

TEST_CASE("Box LP: min over a box of the max of affine functions", "[verify][solver][lp]") {
  using mlaudit::verify::detail::min_max_affine;
  SECTION("hand-solved") {
    // max(x, -x) = |x| on [-1, 1]: t* = 0 at x* = 0, weights (1/2, 1/2).
    auto abs_lp = min_max_affine({{1.0}, {-1.0}}, {0.0, 0.0}, InputBox{{-1.0}, {1.0}});
    REQUIRE(abs_lp.solved);
    CHECK(abs_lp.value == Approx(0.0).margin(1e-15));
    CHECK(abs_lp.point[0] == Approx(0.0).margin(1e-15));
    CHECK(abs_lp.weights[0] == Approx(0.5));
    // max(2x - 0.9, -x + 0.6) on [0, 1]: the lines cross at x = 0.5, value 0.1, weights (1/3, 2/3).
    auto cross = min_max_affine({{2.0}, {-1.0}}, {-0.9, 0.6}, InputBox{{0.0}, {1.0}});
    REQUIRE(cross.solved);
    CHECK(cross.value == Approx(0.1));
    CHECK(cross.point[0] == Approx(0.5));
    CHECK(cross.weights[0] == Approx(1.0 / 3));
    // A fixed dimension (lower == upper) folds into the constants: max(x0 + x1, -x0 + x1) with x1 = 2.
    auto fixed = min_max_affine({{1.0, 1.0}, {-1.0, 1.0}}, {0.0, 0.0}, InputBox{{-1.0, 2.0}, {1.0, 2.0}});
    REQUIRE(fixed.solved);
    CHECK(fixed.value == Approx(2.0));
    CHECK(fixed.point[1] == 2.0);
  }
  SECTION("random problems: primal and dual values agree, and a grid never beats them") {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> u(-1, 1);
    for (int trial = 0; trial < 200; ++trial) {
      const size_t n = 1 + size_t(trial % 3), m = 1 + size_t(trial % 5);
      std::vector<std::vector<double>> a(m, std::vector<double>(n));
      std::vector<double> c(m);
      InputBox box;
      for (size_t j = 0; j < n; ++j) {
        double lo = u(rng), hi = u(rng);
        box.lower.push_back(std::min(lo, hi));
        box.upper.push_back(std::max(lo, hi));
      }
      for (size_t i = 0; i < m; ++i) {
        for (double& v : a[i]) v = u(rng);
        c[i] = 0.3 * u(rng);
      }
      auto f = [&](const std::vector<double>& x) {
        double best = -1e300;
        for (size_t i = 0; i < m; ++i) {
          double v = c[i];
          for (size_t j = 0; j < n; ++j) v += a[i][j] * x[j];
          best = std::max(best, v);
        }
        return best;
      };
      auto lp = min_max_affine(a, c, box);
      INFO("trial " << trial);
      REQUIRE(lp.solved);
      // Strong duality: the point attains the value, and the weights' combination has it as its box minimum.
      // Tolerance: the simplex works in double on O(1) data (a few hundred ulps).
      CHECK(f(lp.point) == Approx(lp.value).margin(1e-12));
      double total = 0, dual = 0;
      std::vector<double> g(n, 0.0);
      for (size_t i = 0; i < m; ++i) {
        CHECK(lp.weights[i] >= 0);
        total += lp.weights[i];
        dual += lp.weights[i] * c[i];
        for (size_t j = 0; j < n; ++j) g[j] += lp.weights[i] * a[i][j];
      }
      for (size_t j = 0; j < n; ++j) dual += std::min(g[j] * box.lower[j], g[j] * box.upper[j]);
      CHECK(total == Approx(1.0));
      CHECK(dual == Approx(lp.value).margin(1e-12));
      // The minimum: no point of a 21^n grid does better.
      const int steps = 20;
      std::vector<int> idx(n, 0);
      for (;;) {
        std::vector<double> x(n);
        for (size_t j = 0; j < n; ++j) x[j] = box.lower[j] + (box.upper[j] - box.lower[j]) * idx[j] / steps;
        CHECK(f(x) >= lp.value - 1e-12);
        size_t j = 0;
        while (j < n && ++idx[j] > steps) idx[j++] = 0;
        if (j == n) break;
      }
    }
  }
}

namespace {

// A property of a one-input, one-output network: x in [lo, hi], unsafe when "coef y + constant <= 0".
Property one_input_property(double lo, double hi, OutputConstraint unsafe) {
  Property p;
  p.num_inputs = 1;
  p.num_outputs = 1;
  SubProperty s;
  s.box = InputBox{{lo}, {hi}};
  s.unsafe.push_back({std::move(unsafe)});
  p.cases.push_back(s);
  return p;
}

}  // namespace

TEST_CASE("Activation patterns: split constraints close what CROWN with input splits only approaches",
          "[verify][solver]") {
  // h1 = h2 = relu(x0 + x1), y = h1 - h2 = 0 on [-1, 1]^2. Unsafe: y >= 0.5.
  // CROWN relaxes h1 and h2 separately (gap up to 1 at the root; alpha-CROWN
  // cannot close it either, -0.5), so input splitting needs several levels. With
  // the two ReLUs split into patterns: both active gives y = 0 exactly, and
  // "h1 active, h2 inactive" needs z >= 0 and z <= 0 with y = z >= 0.5, which
  // only the LP over the split constraints (z >= 0 from h1, the row, and h2's
  // z <= 0) refutes; likewise the others. So the root box closes at once.
  Network net;
  net.layers.push_back(layer({{1, 1}, {1, 1}}, {0, 0}));
  net.layers.push_back(layer({{1, -1}}, {0}));
  net.input_shape = {1, 2};
  Property p;
  p.num_inputs = 2;
  p.num_outputs = 1;
  SubProperty s;
  s.box = InputBox{{-1, -1}, {1, 1}};
  s.unsafe.push_back({OutputConstraint{{-1.0}, 0.5}});
  p.cases.push_back(s);
  VerifyOptions o;
  o.threads = 1;
  o.timeout_s = 20 * mlaudit::test::time_scale();
  VerifyResult with = verify_property(net, p, o);
  CHECK(with.verdict == Verdict::Unsat);
  CHECK(with.domains == 1);
  o.pattern_max_unstable = -1;
  VerifyResult without = verify_property(net, p, o);
  CHECK(without.verdict == Verdict::Unsat);
  CHECK(without.domains > 1);
}

TEST_CASE("Activation patterns: a conjunction met on a line is never proved empty", "[verify][solver]") {
  // y = relu(x - 1/3) + relu(-(x - 1/3)) = |x - 1/3| on [-1, 1]; unsafe: y <= 0,
  // which holds exactly at x = 1/3 (in double: at the bias's value). Every
  // pattern's LP touches 0 there; the verdict may be sat (if a float32 input
  // hits the tie), unknown or timeout, never unsat.
  const double third = 1.0 / 3;
  Network net;
  net.layers.push_back(layer({{1}, {-1}}, {-third, third}));
  net.layers.push_back(layer({{1, 1}}, {0}));
  net.input_shape = {1, 1};
  Property p = one_input_property(-1, 1, OutputConstraint{{1.0}, 0.0});
  VerifyOptions o;
  o.threads = 1;
  o.timeout_s = 3 * mlaudit::test::time_scale();
  VerifyResult r = verify_property(net, p, o);
  INFO(verdict_name(r.verdict) << " " << r.method << " " << r.reason);
  CHECK(r.verdict != Verdict::Unsat);
}
