// datasets/validate.h: the shared input checks and the Clopper-Pearson interval.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/common/error.h"
#include "test_util.h"

using namespace mlaudit;

TEST_CASE("Clopper-Pearson intervals match scipy's exact binomial interval", "[datasets][stats]") {
  // Goldens: tools/stats_goldens.py (scipy binomtest(...).proportion_ci(method="exact")). Both
  // invert the regularised incomplete beta function to double precision; 1e-9 leaves room for
  // the two libraries' root finders.
  auto g = nlohmann::json::parse(datasets::read_file(test::source_path("tests/fixtures/datasets/clopper_pearson.json")));
  REQUIRE(g["cases"].size() >= 20);
  for (const auto& c : g["cases"]) {
    const auto p = datasets::clopper_pearson(c["k"], c["n"], c["confidence"]);
    INFO("k " << c["k"] << " n " << c["n"] << " confidence " << c["confidence"]);
    CHECK(p.lower == Approx(c["lower"].get<double>()).margin(1e-9));
    CHECK(p.upper == Approx(c["upper"].get<double>()).margin(1e-9));
    CHECK(p.lower <= p.value);
    CHECK(p.value <= p.upper);
  }
  // No evidence: the whole [0, 1].
  CHECK(datasets::clopper_pearson(0, 0).lower == 0.0);
  CHECK(datasets::clopper_pearson(0, 0).upper == 1.0);
  CHECK_THROWS_AS(datasets::clopper_pearson(3, 2), InputError);
  CHECK_THROWS_AS(datasets::clopper_pearson(1, 2, 1.0), InputError);
}

TEST_CASE("shared input checks name the file, the row and the rule", "[datasets][validate]") {
  CHECK_NOTHROW(datasets::check_labels("attack: --labels y.npy", {0, 9, 3}, 10));
  CHECK_THROWS_WITH(datasets::check_labels("attack: --labels y.npy", {0, 3, 12, -1}, 10),
                    "attack: --labels y.npy: label 12 at row 2 is outside [0, 10): labels range over [-1, 12] but the "
                    "model has 10 output classes");
  CHECK_THROWS_WITH(datasets::check_labels("certify: --labels y.npy", {1}, 1),
                    Catch::Contains("a one-output model"));
  engine::Tensor x = engine::Tensor::full({2, 3}, 0.5f);
  CHECK_NOTHROW(datasets::check_in_domain("attack: --data x.npy", x, 0, 1));
  x.f32()[4] = -0.25f;
  CHECK_THROWS_WITH(datasets::check_in_domain("attack: --data x.npy", x, 0, 1),
                    "attack: --data x.npy: row 1 (element 1 of the row) is -0.25, outside the input domain [0, 1] (data "
                    "range [-0.25, 0.5]); set --clip-min/--clip-max to the domain the model's inputs live in");
  x.f32()[4] = 1.0f + 5e-7f;  // float rounding of a bound is not an error
  CHECK_NOTHROW(datasets::check_in_domain("attack: --data x.npy", x, 0, 1));
  x.f32()[5] = INFINITY;
  CHECK_THROWS_WITH(datasets::check_finite("explain: --data x.npy", x), Catch::Contains("row 1 (element 2 of the row) is +Inf"));
}
