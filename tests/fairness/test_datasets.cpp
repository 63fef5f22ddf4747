// Built-in readers (Adult, German credit, COMPAS) and goldens from Fairlearn / AIF360 on them.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "fairness_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/datasets.h"
#include "mlaudit/fairness/metrics.h"

using namespace mlaudit;
using namespace mlaudit::fairness;
using mlaudit::test::close;

namespace {

bool have(const std::string& rel) {
  if (test::file_exists(test::shared_dataset(rel))) return true;
  WARN("shared dataset " << test::shared_dataset(rel) << " is absent; skipping");
  return false;
}

std::string write_temp(const std::string& name, const std::string& text) {
  std::string p = test::temp_dir("fairness") + "/" + name;
  std::ofstream(p) << text;
  return p;
}

const std::vector<std::string>& col(const LoadedTable& t, const std::string& name) { return t.table.strings(name); }

// Compare an evaluation with a golden file written by tools/fairness_goldens.py.
// Tolerance: 1e-9 absolute, as the issue asks; both sides sum at most ~15,000
// terms in double, so agreement is ~1e-13 and 1e-9 leaves room only for real errors.
void compare_golden(const Evaluation& ev, const nlohmann::json& gold) {
  const double tol = 1e-9;
  const auto& names = group_metric_names();
  for (auto& [attr, body] : gold["attributes"].items()) {
    for (auto& [gname, metrics] : body["groups"].items()) {
      const GroupResult* r = nullptr;
      for (const auto& g : ev.groups)
        if (g.attribute == attr && g.group == gname) r = &g;
      INFO(attr << " / " << gname);
      REQUIRE(r != nullptr);
      CHECK(r->count == metrics["count"].get<int64_t>());
      for (size_t m = 0; m < names.size(); ++m) {
        INFO(names[m]);
        REQUIRE(metrics.contains(names[m]));
        if (!r->metrics[m].defined()) {
          // Our rule: a zero denominator is null with a reason; scikit-learn's zero_division gives 0.
          CHECK(metrics[names[m]].get<double>() == 0.0);
          CHECK_THAT(r->metrics[m].reason, Catch::Contains("denominator"));
          continue;
        }
        CHECK(close(r->metrics[m].value, metrics[names[m]].get<double>(), 0, tol));
      }
    }
    for (auto& [dname, value] : body["disparities"].items()) {
      bool found = false;
      for (const auto& d : ev.disparities)
        if (d.attribute == attr && d.name == dname && d.reference.empty()) {
          INFO(attr << " " << dname);
          found = true;
          if (!d.estimate.defined()) {
            // Null because some group's metric is null (Fairlearn counts that group as 0).
            CHECK_THAT(d.estimate.reason, Catch::Contains("is undefined for group"));
            continue;
          }
          CHECK(close(d.estimate.value, value.get<double>(), 0, tol));
        }
      CHECK(found);
    }
  }
  const auto& aif = gold["aif360"];
  CHECK(close(ev.generalized_entropy_index.value, aif["generalized_entropy_index"].get<double>(), 0, tol));
  CHECK(close(ev.theil_index.value, aif["theil_index"].get<double>(), 0, tol));
  for (auto& [attr, body] : aif["between_group"].items())
    for (auto& [dname, value] : body.items())
      for (const auto& d : ev.disparities)
        if (d.attribute == attr && d.name == dname) {
          INFO(attr << " " << dname);
          CHECK(close(d.estimate.value, value.get<double>(), 0, tol));
        }
}

Decisions decisions_from(const LoadedTable& t, const std::string& scores_fixture) {
  auto s = datasets::read_npy(test::source_path("tests/fixtures/fairness/" + scores_fixture)).to_doubles();
  const auto& y = col(t, t.label);
  REQUIRE(s.size() == y.size());
  Decisions d;
  for (size_t i = 0; i < s.size(); ++i) {
    d.y_true.push_back(y[i] == t.favorable);
    d.y_pred.push_back(s[i] >= 0.5);
  }
  d.scores = s;
  return d;
}

std::vector<double> feature_matrix(const LoadedTable& t, const std::vector<std::string>& names) {
  std::vector<std::vector<double>> cols;
  for (const auto& n : names) cols.push_back(t.table.numbers(n));
  std::vector<double> x;
  for (size_t i = 0; i < t.table.rows(); ++i)
    for (const auto& c : cols) x.push_back(c[i]);
  return x;
}

}  // namespace

TEST_CASE("fairness: UCI Adult reader", "[fairness][datasets]") {
  if (!have("adult/adult.data")) return;
  auto train = read_adult(test::shared_dataset("adult/adult.data"));
  CHECK(train.rows_read == 32561);
  CHECK(train.table.rows() == 30162);  // AIF360's count after dropping rows with '?'
  REQUIRE(train.dropped.size() == 1);
  CHECK(train.dropped[0].second == 32561 - 30162);
  CHECK(col(train, "sex")[0] == "Male");
  CHECK(col(train, "native-country")[0] == "United-States");
  CHECK(col(train, "income")[0] == "0");
  auto test_split = read_adult(test::shared_dataset("adult/adult.test"));
  CHECK(test_split.rows_read == 16281);  // the "|1x3 Cross validator" line is not a row
  CHECK(test_split.table.rows() == 15060);
  CHECK(col(test_split, "income")[2] == "1");  // ">50K." with the trailing dot
  auto keep = read_adult(test::shared_dataset("adult/adult.test"), false);
  CHECK(keep.table.rows() == 16281);
  CHECK(keep.dropped.empty());
}

TEST_CASE("fairness: German credit and COMPAS readers", "[fairness][datasets]") {
  if (have("german/german.data")) {
    auto g = read_german(test::shared_dataset("german/german.data"));
    CHECK(g.table.rows() == 1000);
    const auto& sex = col(g, "sex");
    CHECK(std::count(sex.begin(), sex.end(), "male") == 690);  // A91+A93+A94 (AIF360)
    const auto& credit = col(g, "credit");
    CHECK(std::count(credit.begin(), credit.end(), "1") == 700);  // 700 good, 300 bad
    CHECK(col(g, "personal_status")[0] == "A93");
    CHECK(col(g, "age")[0] == "67");
  }
  if (have("compas/compas-scores-two-years.csv")) {
    auto c = read_compas(test::shared_dataset("compas/compas-scores-two-years.csv"));
    CHECK(c.rows_read == 7214);
    CHECK(c.table.rows() == 6172);  // ProPublica's analysis filter
    int64_t dropped = 0;
    for (auto& [why, n] : c.dropped) dropped += n;
    CHECK(dropped == 7214 - 6172);
    CHECK(c.table.has("decile_score.1"));
    CHECK(c.table.has("priors_count.1"));
    auto all = read_compas(test::shared_dataset("compas/compas-scores-two-years.csv"), false);
    CHECK(all.table.rows() == 7214);
  }
}

TEST_CASE("fairness: readers reject malformed files with the file and line", "[fairness][datasets]") {
  auto p = write_temp("adult.data", "39, State-gov, 77516, Bachelors, 13\n");
  REQUIRE_THROWS_AS(read_adult(p), InputError);
  REQUIRE_THROWS_WITH(read_adult(p), Catch::Contains(p) && Catch::Contains("line 1: 5 fields, expected 15"));
  auto q = write_temp("adult2.data",
                      "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, "
                      "2174, 0, 40, United-States, maybe\n");
  REQUIRE_THROWS_WITH(read_adult(q), Catch::Contains("income 'maybe'"));
  auto g = write_temp("german.data", "A11 6 A34 A43 1169 A65 A75 4 A99 A101 4 A121 67 A143 A152 2 A173 1 A192 A201 1\n");
  REQUIRE_THROWS_WITH(read_german(g), Catch::Contains("personal_status 'A99'"));
  REQUIRE_THROWS_WITH(read_german("/nonexistent/german.data"), Catch::Contains("/nonexistent/german.data"));
  auto c = write_temp("compas.csv", "id,name\n1,\"unterminated\n");
  REQUIRE_THROWS_WITH(read_compas(c), Catch::Contains("no column 'days_b_screening_arrest'"));
  REQUIRE_THROWS_WITH(read_builtin("iris", p), Catch::Contains("'iris' is not one of adult, german, compas"));
}

TEST_CASE("fairness: goldens from Fairlearn and AIF360 on UCI Adult", "[fairness][golden]") {
  if (!have("adult/adult.test")) return;
  auto t = read_adult(test::shared_dataset("adult/adult.test"));
  auto gold = test::fairness_fixture("adult.json");
  REQUIRE(int64_t(t.table.rows()) == gold["rows"].get<int64_t>());
  Decisions d = decisions_from(t, "adult_scores.npy");
  Options o;
  o.bootstrap = 0;
  auto ev = evaluate(d, {categorical_attribute("sex", col(t, "sex")), categorical_attribute("race", col(t, "race"))}, o);
  compare_golden(ev, gold);
  // kNN consistency: the golden's features have one row whose 5th and 6th neighbours tie at
  // equal distance with different decisions (tools/fairness_goldens.py prints the count), and
  // scikit-learn's ball tree may break that tie differently: at most 1/(k n) = 1.3e-5 apart.
  const auto& c = gold["aif360"]["consistency"];
  std::vector<std::string> feats = c["features"];
  double v = consistency(feature_matrix(t, feats), feats.size(), d.y_pred, 5, 2);
  CHECK(close(v, c["value"].get<double>(), 0, 1.0 / (5.0 * double(d.rows())) + 1e-12));
}

TEST_CASE("fairness: goldens from Fairlearn and AIF360 on German credit", "[fairness][golden]") {
  if (!have("german/german.data")) return;
  auto t = read_german(test::shared_dataset("german/german.data"));
  auto gold = test::fairness_fixture("german.json");
  Decisions d = decisions_from(t, "german_scores.npy");
  Options o;
  o.bootstrap = 0;
  auto age = binned_attribute("age", t.table.numbers("age"), {25});
  age.name = "age_group";
  age.parts = {"age_group"};
  auto ev = evaluate(d, {categorical_attribute("sex", col(t, "sex")), age}, o);
  compare_golden(ev, gold);
  // No distance ties at the 5th neighbour here, so the exact value (1e-9 as asked).
  const auto& c = gold["aif360"]["consistency"];
  std::vector<std::string> feats = c["features"];
  CHECK(close(consistency(feature_matrix(t, feats), feats.size(), d.y_pred, 5, 2), c["value"].get<double>(), 0, 1e-9));
}
