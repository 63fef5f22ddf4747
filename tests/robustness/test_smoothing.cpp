// Randomized smoothing: closed forms (all-agree radius, linear classifier pA) and
// Clopper-Pearson / binomial-test values against scipy/statsmodels fixtures.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analytic_models.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/robustness/smoothing.h"
#include "test_util.h"

using namespace mlaudit;
using robustness::SmoothingConfig;

namespace {
nlohmann::json stats_fixture() {
  std::ifstream f(test::source_path("tests/fixtures/robustness/stats_goldens.json"));
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}
}  // namespace

TEST_CASE("robustness: Clopper-Pearson lower bound and binomial test match scipy/statsmodels", "[robustness][smoothing]") {
  auto fx = stats_fixture();
  for (const auto& c : fx["clopper_pearson"]) {
    const double got = robustness::clopper_pearson_lower(c["k"], c["n"], c["alpha"]);
    // Boost's ibeta_inv and scipy's beta.ppf are both accurate to a few ulps; 1e-9
    // relative leaves room for the different root finders.
    INFO("k=" << c["k"] << " n=" << c["n"]);
    CHECK(test::close(got, c["lower"].get<double>(), 1e-9, 1e-12));
  }
  for (const auto& c : fx["binomtest"]) {
    INFO("k=" << c["k"] << " n=" << c["n"]);
    CHECK(test::close(robustness::binomial_test_two_sided(c["k"], c["n"]), c["pvalue"].get<double>(), 1e-9, 1e-12));
  }
  CHECK(robustness::clopper_pearson_lower(0, 10, 0.01) == 0.0);
  CHECK_THROWS_WITH(robustness::clopper_pearson_lower(11, 10, 0.01), Catch::Contains("0 <= k <= n"));
}

TEST_CASE("robustness: when every noisy sample agrees the radius is sigma * PhiInv(alpha^(1/N))", "[robustness][smoothing]") {
  // Beta(N, 1) has quantile alpha^(1/N): 1.50 sigma, 2.46 sigma, 3.81 sigma for N = 1e2, 1e3, 1e5.
  test::ConstantModel m(1, {0.f, 5.f, 1.f});
  engine::Tensor x = engine::Tensor::from_floats({1, 1}, {0.5f});
  auto fx = stats_fixture();
  const double expect_rounded[] = {1.50, 2.46, 3.81};
  int idx = 0;
  for (const auto& c : fx["phi_inv_all_agree"]) {
    SmoothingConfig cfg;
    cfg.sigma = 0.5;
    cfg.n = c["n"];
    cfg.batch = 10000;
    auto rec = robustness::certify(m, x, cfg, 1);
    CHECK(rec.prediction == 1);
    CHECK(rec.count_a == cfg.n);
    // Boost normal quantile vs scipy norm.ppf: both ~1e-15 relative.
    CHECK(test::close(rec.radius, cfg.sigma * c["phi_inv"].get<double>(), 1e-9, 0));
    CHECK(rec.radius / cfg.sigma == Approx(expect_rounded[idx++]).margin(0.005));
  }
}

TEST_CASE("robustness: a linear classifier gives the analytic pA = Phi(margin / (sigma ||w||))", "[robustness][smoothing]") {
  // f(x) = argmax(w.x + b, 0): under x + N(0, sigma^2 I), w.(x+e) + b ~ N(m, sigma^2 ||w||^2).
  test::LinearModel m({-1, 3}, 2, {0.f, 0.f, 0.f, 1.f, -2.f, 0.5f}, {0.f, 0.1f});
  engine::Tensor x = engine::Tensor::from_floats({1, 3}, {0.4f, 0.1f, 0.2f});
  const double margin = 0.4 - 0.2 + 0.1 + 0.1, wn = std::sqrt(1 + 4 + 0.25);
  SmoothingConfig cfg;
  cfg.sigma = 0.25;
  cfg.n = 100000;
  cfg.batch = 5000;
  const double pa = 0.5 * std::erfc(-margin / (cfg.sigma * wn) / std::sqrt(2.0));
  auto rec = robustness::certify(m, x, cfg, 7);
  REQUIRE(rec.prediction == 1);
  // Binomial count: 5 standard deviations sqrt(pA (1 - pA) / N) ~ 5 * 1.4e-3.
  const double sd = std::sqrt(pa * (1 - pa) / double(cfg.n));
  CHECK(double(rec.count_a) / cfg.n == Approx(pa).margin(5 * sd));
  // The smoothed linear classifier's exact radius is the distance to the hyperplane,
  // margin / ||w||; the certificate is a lower bound below it.
  CHECK(rec.radius < margin / wn);
  CHECK(rec.radius > 0.8 * margin / wn);
  CHECK(rec.pa_lower < double(rec.count_a) / cfg.n);
}

TEST_CASE("robustness: smoothing abstains near the boundary and PREDICT uses the binomial test", "[robustness][smoothing]") {
  test::LinearModel m({-1, 1}, 2, {0.f, 1.f}, {0.f, -0.5f});  // boundary at x = 0.5
  engine::Tensor x = engine::Tensor::from_floats({1, 1}, {0.5f});
  SmoothingConfig cfg;
  cfg.sigma = 0.5;
  cfg.n = 2000;
  auto rec = robustness::certify(m, x, cfg, 3);
  CHECK(rec.prediction == -1);
  CHECK(rec.radius == 0);
  CHECK(robustness::predict(m, x, cfg, 3) == -1);
  engine::Tensor far = engine::Tensor::from_floats({1, 1}, {3.0f});
  CHECK(robustness::predict(m, far, cfg, 3) == 1);
}

TEST_CASE("robustness: certify_dataset reports per-sample records, certified accuracy and rejects bad options", "[robustness][smoothing]") {
  test::LinearModel m({-1, 1}, 2, {0.f, 1.f}, {0.f, -0.5f});
  engine::Tensor x = engine::Tensor::from_floats({3, 1}, {0.0f, 1.5f, 2.5f});
  SmoothingConfig cfg;
  cfg.sigma = 0.5;
  cfg.n = 1000;
  auto recs = robustness::certify_dataset(m, x, {0, 1, 0}, cfg);
  REQUIRE(recs.size() == 3);
  CHECK(recs[0].correct);
  CHECK(recs[1].correct);
  CHECK_FALSE(recs[2].correct);  // predicted 1, labelled 0
  auto acc = robustness::certified_accuracy(recs, {0.0, 0.5, 10.0});
  CHECK(acc[0] == Approx(2.0 / 3));
  CHECK(acc[2] == 0.0);
  // Same seed, same records (seeded noise).
  auto again = robustness::certify_dataset(m, x, {0, 1, 0}, cfg);
  CHECK(again[1].count_a == recs[1].count_a);
  cfg.sigma = 0;
  CHECK_THROWS_WITH(robustness::certify_dataset(m, x, {0, 1, 0}, cfg), Catch::Contains("robustness: sigma must be > 0"));  // the CLI says --sigma (test_cli.cpp)
  cfg.sigma = 0.5;
  cfg.alpha = 1.5;
  CHECK_THROWS_WITH(robustness::certify_dataset(m, x, {0, 1, 0}, cfg), Catch::Contains("robustness: alpha must be in (0,1)"));
  cfg.alpha = 0.001;
  CHECK_THROWS_WITH(robustness::certify_dataset(m, x, {0, 1}, cfg), Catch::Contains("labels have 2 entries"));
}

TEST_CASE("robustness: smoothing noise counts do not depend on the batch size or the thread count", "[robustness][smoothing]") {
  // Each noisy copy draws from its own stream seeded by (seed, copy index), so splitting the
  // N draws into batches, or filling a batch with 1 or 2 threads, gives the same counts exactly.
  test::LinearModel m({-1, 3}, 2, {0.f, 0.f, 0.f, 1.f, -2.f, 0.5f}, {0.f, 0.1f});
  engine::Tensor x = engine::Tensor::from_floats({1, 3}, {0.4f, 0.1f, 0.2f});
  const int before = engine::num_threads();
  engine::set_num_threads(1);
  auto one_thread = robustness::sample_noise_counts(m, x, 5000, 0.5, 5000, 11);
  engine::set_num_threads(2);
  auto two_threads = robustness::sample_noise_counts(m, x, 5000, 0.5, 5000, 11);
  auto small_batches = robustness::sample_noise_counts(m, x, 5000, 0.5, 7, 11);
  engine::set_num_threads(before);
  CHECK(one_thread == two_threads);
  CHECK(one_thread == small_batches);
  // Both classes occur (margin 0.4 / (0.5 ||w||) ~ 0.35 sd): the counts are not trivially equal.
  CHECK(one_thread[0] > 500);
  CHECK(one_thread[1] > 500);
  // Another seed draws other noise.
  CHECK(robustness::sample_noise_counts(m, x, 5000, 0.5, 5000, 12) != one_thread);
}
