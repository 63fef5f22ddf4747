// Group metrics, disparities, entropy indices and bootstrap intervals.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "fairness_test_util.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/metrics.h"
#include "mlaudit/fairness/report.h"

using namespace mlaudit;
using namespace mlaudit::fairness;
using mlaudit::test::close;

namespace {

// Tolerance for values that are exact ratios of small integers: both sides divide
// the same integers in double, so only the last bit or two may differ.
constexpr double kExact = 1e-12;

size_t metric_index(const std::string& name) {
  const auto& names = group_metric_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return i;
  FAIL("no metric " << name);
  return 0;
}

const GroupResult& group(const Evaluation& ev, const std::string& attr, const std::string& g) {
  for (const auto& r : ev.groups)
    if (r.attribute == attr && r.group == g) return r;
  FAIL("no group " << attr << "/" << g);
  return ev.groups.front();
}

const Disparity& disparity(const Evaluation& ev, const std::string& attr, const std::string& name,
                           const std::string& reference = "") {
  for (const auto& d : ev.disparities)
    if (d.attribute == attr && d.name == name && d.reference == reference) return d;
  FAIL("no disparity " << attr << "/" << name);
  return ev.disparities.front();
}

Decisions toy_decisions(const nlohmann::json& j) {
  Decisions d;
  for (int v : j["y_true"]) d.y_true.push_back(uint8_t(v));
  for (int v : j["y_pred"]) d.y_pred.push_back(uint8_t(v));
  return d;
}

// Synthetic table: two attributes, group-dependent rates, scores in [0,1].
struct Synthetic {
  Decisions d;
  std::vector<std::string> sex, race;
};
Synthetic synthetic(size_t n, uint64_t seed, bool scores) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Synthetic s;
  const char* races[] = {"A", "B", "C"};
  for (size_t i = 0; i < n; ++i) {
    bool male = u(rng) < 0.6;
    int race = u(rng) < 0.5 ? 0 : (u(rng) < 0.6 ? 1 : 2);
    double p = 0.3 + 0.2 * male + 0.1 * race;
    uint8_t y = u(rng) < p;
    double score = std::clamp(0.25 + 0.3 * y + 0.1 * male + 0.05 * race + 0.5 * (u(rng) - 0.5), 0.0, 1.0);
    s.d.y_true.push_back(y);
    s.d.y_pred.push_back(score >= 0.5);
    if (scores) s.d.scores.push_back(std::round(score * 100) / 100);  // ties on purpose
    s.sex.push_back(male ? "male" : "female");
    s.race.push_back(races[race]);
  }
  return s;
}

}  // namespace

TEST_CASE("fairness: Fairlearn's documented toy example", "[fairness]") {
  auto j = test::fairness_fixture("toy.json");
  Decisions d = toy_decisions(j);
  std::vector<std::string> g = j["groups_of_rows"];
  Options o;
  o.bootstrap = 0;
  auto ev = evaluate(d, {categorical_attribute("group", g)}, o);
  // The values quoted in the issue (Fairlearn user guide).
  CHECK(close(disparity(ev, "group", "demographic_parity_difference").estimate.value, 0.25, 0, kExact));
  CHECK(close(disparity(ev, "group", "demographic_parity_ratio").estimate.value, 2.0 / 3.0, 0, kExact));
  CHECK(close(disparity(ev, "group", "equalized_odds_difference").estimate.value, 1.0, 0, kExact));
  CHECK(close(disparity(ev, "group", "equalized_odds_ratio").estimate.value, 0.0, 0, kExact));
  CHECK(disparity(ev, "group", "demographic_parity_ratio").four_fifths_rule == "fail");
  // Every disparity and per-group metric against Fairlearn / scikit-learn (fixture from tools/fairness_goldens.py).
  for (auto& [name, value] : j["disparities"].items())
    CHECK(close(disparity(ev, "group", name).estimate.value, value.get<double>(), 0, kExact));
  for (auto& [gname, metrics] : j["groups"].items()) {
    const auto& r = group(ev, "group", gname);
    CHECK(r.count == metrics["count"].get<int64_t>());
    for (auto& [m, v] : metrics.items()) {
      if (m == "count") continue;
      INFO(gname << " " << m);
      CHECK(close(r.metrics[metric_index(m)].value, v.get<double>(), 0, kExact));
    }
  }
}

TEST_CASE("fairness: zero denominators are undefined with a reason, never 0 or inf", "[fairness]") {
  // Group "x" has no favorable labels (TPR undefined); nobody is selected anywhere (ratio 0/0).
  Decisions d;
  d.y_true = {0, 0, 1, 0, 1, 1};
  d.y_pred = {0, 0, 0, 0, 0, 0};
  std::vector<std::string> g = {"x", "x", "y", "y", "y", "y"};
  Options o;
  o.bootstrap = 0;
  auto ev = evaluate(d, {categorical_attribute("a", g)}, o);
  const auto& x = group(ev, "a", "x");
  CHECK_FALSE(x.metrics[metric_index("tpr")].defined());
  CHECK_THAT(x.metrics[metric_index("tpr")].reason, Catch::Contains("favorable label"));
  CHECK_FALSE(x.metrics[metric_index("ppv")].defined());
  CHECK_THAT(x.metrics[metric_index("ppv")].reason, Catch::Contains("no favorable decisions"));
  CHECK(x.metrics[metric_index("fpr")].value == 0.0);
  const auto& ratio = disparity(ev, "a", "demographic_parity_ratio");
  CHECK_FALSE(ratio.estimate.defined());
  CHECK_THAT(ratio.estimate.reason, Catch::Contains("0 in every group"));
  CHECK(ratio.four_fifths_rule.empty());
  CHECK(disparity(ev, "a", "demographic_parity_difference").estimate.value == 0.0);
  const auto& eo = disparity(ev, "a", "equal_opportunity_difference");
  CHECK_FALSE(eo.estimate.defined());
  CHECK_THAT(eo.estimate.reason, Catch::Contains("group 'x'"));
  // The JSON carries null and the reason.
  auto j = evaluation_json(ev);
  bool seen = false;
  for (auto& r : j["disparities"])
    if (r["name"] == "demographic_parity_ratio") {
      CHECK(r["value"].is_null());
      CHECK(r["reason"].get<std::string>().find("0 in every group") != std::string::npos);
      seen = true;
    }
  CHECK(seen);
}

TEST_CASE("fairness: small groups are flagged, not dropped", "[fairness]") {
  auto s = synthetic(500, 1, false);
  s.sex[3] = "other";  // one-row group
  Options o;
  o.bootstrap = 50;
  o.min_group_size = 30;
  auto ev = evaluate(s.d, {categorical_attribute("sex", s.sex)}, o);
  const auto& other = group(ev, "sex", "other");
  CHECK(other.count == 1);
  CHECK(other.small_group);
  CHECK_FALSE(group(ev, "sex", "male").small_group);
  auto j = evaluation_json(ev);
  REQUIRE(j["summary"]["small_groups"].size() == 1);
  CHECK(j["summary"]["small_groups"][0]["group"] == "other");
  // In resamples without the row, its metrics are undefined and counted.
  CHECK(other.metrics[metric_index("selection_rate")].undefined_resamples > 0);
}

TEST_CASE("fairness: closed forms for ratios, reference group and AUC with ties", "[fairness]") {
  // Group p: selection 3/4; group q: selection 1/4 (by hand).
  Decisions d;
  d.y_true = {1, 1, 0, 0, 1, 1, 0, 0};
  d.y_pred = {1, 1, 1, 0, 1, 0, 0, 0};
  d.scores = {0.9, 0.6, 0.6, 0.2, 0.7, 0.3, 0.3, 0.1};
  std::vector<std::string> g = {"p", "p", "p", "p", "q", "q", "q", "q"};
  Options o;
  o.bootstrap = 0;
  o.reference = {{"a", "p"}};
  auto ev = evaluate(d, {categorical_attribute("a", g)}, o);
  CHECK(close(disparity(ev, "a", "demographic_parity_ratio").estimate.value, (1.0 / 4) / (3.0 / 4), 0, kExact));
  CHECK(close(disparity(ev, "a", "demographic_parity_difference", "p").estimate.value, 0.5, 0, kExact));
  CHECK(close(disparity(ev, "a", "demographic_parity_ratio", "p").estimate.value, 1.0 / 3.0, 0, kExact));
  // AUC of p: positives {0.9, 0.6}, negatives {0.6, 0.2}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
  CHECK(close(group(ev, "a", "p").metrics[metric_index("auc")].value, 3.5 / 4, 0, kExact));
  // AUC of q: positives {0.7, 0.3}, negatives {0.3, 0.1}: 1 + 1 + 0.5 + 1 = 3.5 of 4; overall attribute groups.
  CHECK(close(group(ev, "a", "q").metrics[metric_index("auc")].value, 3.5 / 4, 0, kExact));
  // Brier of p: ((0.1)^2 + 0.4^2 + 0.6^2 + 0.2^2) / 4.
  CHECK(close(group(ev, "a", "p").metrics[metric_index("brier_score")].value, (0.01 + 0.16 + 0.36 + 0.04) / 4, 0, kExact));
  // ECE of p with 10 bins: bins 9 {0.9,y=1}, 6 {0.6,0.6; y=1,0}, 2 {0.2,y=0}: (1*0.1 + 2*0.1 + 1*0.2)/4.
  CHECK(close(group(ev, "a", "p").metrics[metric_index("ece")].value, (0.1 + 2 * 0.1 + 0.2) / 4, 0, kExact));
  REQUIRE_THROWS_WITH(evaluate(d, {categorical_attribute("a", g)}, Options{.bootstrap = 0, .reference = {{"a", "zz"}}}),
                      Catch::Contains("attribute 'a' has no group 'zz'"));
}

TEST_CASE("fairness: entropy indices from counts equal the row-level AIF360 formulas", "[fairness]") {
  auto s = synthetic(3000, 7, false);
  auto sex = categorical_attribute("sex", s.sex);
  auto race = categorical_attribute("race", s.race);
  Options o;
  o.bootstrap = 0;
  auto ev = evaluate(s.d, {sex, race}, o);
  // Two independent routes (cell counts vs row loop): agreement to rounding of ~3000-term sums.
  const double tol = 1e-12;
  CHECK(close(ev.generalized_entropy_index.value, generalized_entropy_index(s.d, 2.0), 0, tol));
  CHECK(close(ev.theil_index.value, generalized_entropy_index(s.d, 1.0), 0, tol));
  CHECK(close(disparity(ev, "race", "between_group_generalized_entropy_index").estimate.value,
              between_group_generalized_entropy_index(s.d, race, 2.0), 0, tol));
  CHECK(close(disparity(ev, "sex&race", "between_group_theil_index").estimate.value,
              between_group_generalized_entropy_index(s.d, intersect({sex, race}), 1.0), 0, tol));
  // Closed form: b = {0, 2} (one FN, one FP) -> mu = 1, GE(2) = ((0-1) + (4-1)) / (2*2*1) = 0.5.
  Decisions two;
  two.y_true = {1, 0};
  two.y_pred = {0, 1};
  CHECK(close(generalized_entropy_index(two, 2.0), 0.5, 0, kExact));
  CHECK(close(generalized_entropy_index(two, 1.0), std::log(2.0), 0, kExact));  // (0 + 2 ln 2) / 2
}

TEST_CASE("fairness: attributes: bins, intersections, ordering", "[fairness]") {
  auto a = binned_attribute("age", {20, 30, 50, 24.9, 25}, {25, 45});
  REQUIRE(a.groups == std::vector<std::string>{"age<25", "25<=age<45", "age>=45"});
  CHECK(a.codes == std::vector<int32_t>{0, 1, 2, 0, 1});
  auto b = categorical_attribute("n", {"10", "9", "x"});
  CHECK(b.groups == std::vector<std::string>{"10", "9", "x"});  // not all numeric: by name
  auto c = categorical_attribute("n", {"10", "9", "2"});
  CHECK(c.groups == std::vector<std::string>{"2", "9", "10"});  // all numeric: by value
  auto i = intersect({categorical_attribute("s", {"m", "f", "m"}), a = binned_attribute("age", {20, 30, 50}, {25})});
  CHECK(i.name == "s&age");
  CHECK(i.groups == std::vector<std::string>{"f&age>=25", "m&age<25", "m&age>=25"});
  CHECK(i.codes == std::vector<int32_t>{1, 0, 2});
  REQUIRE_THROWS_WITH(binned_attribute("age", {1}, {5, 3}), Catch::Contains("edges must increase"));
}

TEST_CASE("fairness: bootstrap intervals cover, shrink, repeat and do not depend on threads", "[fairness]") {
  auto small = synthetic(1000, 3, false);
  Options o;
  o.bootstrap = 400;
  o.seed = 11;
  o.threads = 1;
  auto sex = categorical_attribute("sex", small.sex);
  auto ev1 = evaluate(small.d, {sex}, o);
  o.threads = 3;
  auto ev3 = evaluate(small.d, {sex}, o);
  for (size_t k = 0; k < ev1.groups.size(); ++k)
    for (size_t m = 0; m < confusion_metric_count(); ++m) {
      const auto& e = ev1.groups[k].metrics[m];
      CHECK(e.lo == ev3.groups[k].metrics[m].lo);  // same seed -> same interval, any thread count
      CHECK(e.hi == ev3.groups[k].metrics[m].hi);
      if (e.defined()) {
        CHECK(e.lo <= e.value);
        CHECK(e.value <= e.hi);
      }
    }
  for (const auto& d : ev1.disparities)
    if (d.estimate.defined()) {
      INFO(d.name);
      CHECK(d.estimate.lo <= d.estimate.value + 1e-12);
      CHECK(d.estimate.value <= d.estimate.hi + 1e-12);
    }
  o.seed = 12;
  auto other = evaluate(small.d, {sex}, o);
  CHECK(other.groups[0].metrics[1].lo != ev1.groups[0].metrics[1].lo);

  // Four times the rows: the interval of a rate narrows by about 2 (sqrt(4)).
  auto big = synthetic(4000, 3, false);
  auto evb = evaluate(big.d, {categorical_attribute("sex", big.sex)}, o);
  double w_small = ev1.groups[0].metrics[1].hi - ev1.groups[0].metrics[1].lo;
  double w_big = evb.groups[0].metrics[1].hi - evb.groups[0].metrics[1].lo;
  CHECK(w_big < 0.7 * w_small);
  CHECK(w_big > 0.3 * w_small);

  // Normal approximation: selection-rate interval ~ p +- 1.96 sqrt(p (1-p) / n_g) (10% slack for Monte Carlo error).
  const auto& g0 = evb.groups[0];
  double p = g0.metrics[1].value;
  double half = 1.96 * std::sqrt(p * (1 - p) / double(g0.count));
  INFO("p=" << p << " n=" << g0.count << " interval " << g0.metrics[1].lo << ".." << g0.metrics[1].hi);
  CHECK(close(g0.metrics[1].hi - g0.metrics[1].lo, 2 * half, 0.1, 0));
}

TEST_CASE("fairness: multinomial cell resampling matches row resampling", "[fairness]") {
  // Without scores, resamples draw cell counts; with scores, rows. Both are the
  // bootstrap of rows, so intervals agree up to Monte Carlo error (B=2000: the
  // 2.5% quantile varies by ~2% of the width; allow 15%).
  auto s = synthetic(2000, 5, true);
  Decisions no_scores = s.d;
  no_scores.scores.clear();
  Options o;
  o.bootstrap = 2000;
  o.seed = 1;
  auto attrs = std::vector<Attribute>{categorical_attribute("sex", s.sex), categorical_attribute("race", s.race)};
  auto rows = evaluate(s.d, attrs, o);
  auto cells = evaluate(no_scores, attrs, o);
  CHECK(rows.bootstrap_method.find("drawn with replacement") != std::string::npos);
  o.threads = 1;
  auto rows1 = evaluate(s.d, attrs, o);
  for (size_t k = 0; k < rows.groups.size(); ++k)
    for (size_t m = 0; m < group_metric_names().size(); ++m) {
      CHECK(rows1.groups[k].metrics[m].lo == rows.groups[k].metrics[m].lo);  // thread count does not matter
      CHECK(rows1.groups[k].metrics[m].hi == rows.groups[k].metrics[m].hi);
    }
  CHECK(cells.bootstrap_method.find("Multinomial") != std::string::npos);
  for (size_t k = 0; k < rows.groups.size(); ++k)
    for (size_t m = 0; m < confusion_metric_count(); ++m) {
      const auto& a = rows.groups[k].metrics[m];
      const auto& b = cells.groups[k].metrics[m];
      INFO(rows.groups[k].attribute << "/" << rows.groups[k].group << " " << group_metric_names()[m]);
      CHECK(a.value == b.value);
      double w = a.hi - a.lo;
      CHECK(std::fabs(a.lo - b.lo) <= 0.15 * w);
      CHECK(std::fabs(a.hi - b.hi) <= 0.15 * w);
    }
  // Score metrics have intervals that cover them.
  for (const auto& g : rows.groups)
    for (const char* m : {"auc", "brier_score", "ece"}) {
      const auto& e = g.metrics[metric_index(m)];
      CHECK(e.lo <= e.value);
      CHECK(e.value <= e.hi);
    }
}

TEST_CASE("fairness: bad input throws InputError naming the problem", "[fairness]") {
  Decisions d;
  d.y_true = {1, 0};
  d.y_pred = {1};
  auto a = categorical_attribute("a", {"x", "y"});
  REQUIRE_THROWS_AS(evaluate(d, {a}), InputError);
  REQUIRE_THROWS_WITH(evaluate(d, {a}), Catch::Contains("2 labels but 1 decisions"));
  d.y_pred = {1, 0};
  REQUIRE_THROWS_WITH(evaluate(d, {a}, Options{.ci = 1.5}), Catch::Contains("--ci 1.5 is not in (0,1)"));
  REQUIRE_THROWS_WITH(evaluate(d, {}), Catch::Contains("no protected attribute"));
  REQUIRE_THROWS_WITH(evaluate(Decisions{}, {a}), Catch::Contains("no rows"));
  d.scores = {0.1, NAN};
  REQUIRE_THROWS_WITH(evaluate(d, {a}), Catch::Contains("finite"));
  d.scores.clear();
  REQUIRE_THROWS_WITH(evaluate(d, {a}, Options{.reference = {{"zz", "x"}}}), Catch::Contains("'zz'"));
}
