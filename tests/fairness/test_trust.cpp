// Results users can trust (issue #18): the positive class of the error rates, label-only base
// rates, numeric protected attributes (refused or binned) and intervals that exclude their estimate.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

#include "fairness_test_util.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/attributes.h"
#include "mlaudit/fairness/metrics.h"
#include "mlaudit/fairness/report.h"

using namespace mlaudit;
using namespace mlaudit::fairness;
using mlaudit::test::close;

namespace {

// Values here are ratios of small integers computed the same way on both sides: only the last
// bit or two can differ.
constexpr double kExact = 1e-12;

double metric(const Evaluation& ev, const std::string& attr, const std::string& g, const std::string& name) {
  const auto& names = group_metric_names();
  for (const auto& r : ev.groups)
    if (r.attribute == attr && r.group == g)
      for (size_t m = 0; m < names.size(); ++m)
        if (names[m] == name) return r.metrics[m].value;
  FAIL("no metric " << attr << "/" << g << "/" << name);
  return 0;
}

// Fairlearn's toy example (tests/fixtures/fairness/toy.json) as decisions and one attribute.
struct Toy {
  Decisions d;
  Attribute g;
};
Toy toy() {
  auto j = test::fairness_fixture("toy.json");
  Toy t;
  for (int v : j["y_true"]) t.d.y_true.push_back(uint8_t(v));
  for (int v : j["y_pred"]) t.d.y_pred.push_back(uint8_t(v));
  std::vector<std::string> groups = j["groups_of_rows"];
  t.g = categorical_attribute("g", groups);
  return t;
}

}  // namespace

TEST_CASE("fairness: the unfavorable positive class swaps the conditional rates, not the parity rates", "[fairness]") {
  auto t = toy();
  Options o;
  o.bootstrap = 0;
  auto fav = evaluate(t.d, {t.g}, o);
  o.positive = PositiveClass::Unfavorable;
  auto unfav = evaluate(t.d, {t.g}, o);
  for (const std::string g : {"a", "b", "c"}) {
    INFO(g);
    // Positive = unfavorable swaps TP <-> TN and FP <-> FN: FPR <-> FNR, TPR <-> TNR, PPV <-> NPV.
    CHECK(close(metric(unfav, "g", g, "fpr"), metric(fav, "g", g, "fnr"), 0, kExact));
    CHECK(close(metric(unfav, "g", g, "fnr"), metric(fav, "g", g, "fpr"), 0, kExact));
    CHECK(close(metric(unfav, "g", g, "tpr"), metric(fav, "g", g, "tnr"), 0, kExact));
    CHECK(close(metric(unfav, "g", g, "ppv"), metric(fav, "g", g, "npv"), 0, kExact));
    // Rates of the favorable outcome and accuracy do not depend on the positive class.
    CHECK(metric(unfav, "g", g, "base_rate") == metric(fav, "g", g, "base_rate"));
    CHECK(metric(unfav, "g", g, "selection_rate") == metric(fav, "g", g, "selection_rate"));
    CHECK(metric(unfav, "g", g, "accuracy") == metric(fav, "g", g, "accuracy"));
  }
  auto j = evaluation_json(unfav);
  CHECK(j["settings"]["positive"] == "unfavorable");
  CHECK(evaluation_json(fav)["settings"]["positive"] == "favorable");
}

TEST_CASE("fairness: labels only reports count, base rate and base-rate parity", "[fairness]") {
  auto t = toy();
  Options o;
  o.bootstrap = 50;
  o.labels_only = true;
  Decisions d = t.d;
  d.y_pred.clear();  // no decisions at all
  auto ev = evaluate(d, {t.g}, o);
  auto j = evaluation_json(ev);
  // Expected base rates counted from the fixture's rows.
  auto fx = test::fairness_fixture("toy.json");
  std::map<std::string, std::pair<int, int>> pos_n;
  for (size_t i = 0; i < fx["y_true"].size(); ++i) {
    auto& c = pos_n[fx["groups_of_rows"][i].get<std::string>()];
    c.first += fx["y_true"][i].get<int>();
    ++c.second;
  }
  double lo = 1, hi = 0;
  for (const auto& g : j["groups"]) {
    const auto& c = pos_n.at(g["group"].get<std::string>());
    double rate = double(c.first) / c.second;
    CHECK(close(g["base_rate"]["value"].get<double>(), rate, 0, kExact));
    CHECK(g["count"] == c.second);
    CHECK_FALSE(g.contains("selection_rate"));
    CHECK_FALSE(g.contains("fpr"));
    lo = std::min(lo, rate);
    hi = std::max(hi, rate);
  }
  std::set<std::string> names;
  for (const auto& x : j["disparities"]) names.insert(x["name"].get<std::string>());
  CHECK(names == std::set<std::string>{"base_rate_difference", "base_rate_ratio"});
  for (const auto& x : j["disparities"]) {
    double want = x["name"] == "base_rate_difference" ? hi - lo : lo / hi;
    CHECK(close(x["value"].get<double>(), want, 0, kExact));
    CHECK_FALSE(x.contains("four_fifths_rule"));  // the four-fifths rule is about decisions
  }
  CHECK(j["individual"]["generalized_entropy_index"]["value"].is_null());
  CHECK(j["settings"]["labels_only"] == true);
}

TEST_CASE("fairness: numeric protected columns: refused above the limit, quantile bins", "[fairness]") {
  std::vector<std::string> ages;
  for (int i = 0; i < 100; ++i) ages.push_back(std::to_string(18 + i % 40));
  REQUIRE_THROWS_AS(check_numeric_groups("age", ages, 10), InputError);
  REQUIRE_THROWS_WITH(check_numeric_groups("age", ages, 10),
                      Catch::Contains("--protected 'age' is numeric with 40 distinct values") &&
                          Catch::Contains("--bins 'age:q4'"));
  CHECK_NOTHROW(check_numeric_groups("age", ages, 40));
  CHECK_NOTHROW(check_numeric_groups("age", ages, 0));  // 0: no limit
  std::vector<std::string> names(100, "Female");
  names[3] = "Male";
  CHECK_NOTHROW(check_numeric_groups("sex", names, 1));  // categorical: never refused
  // Edges are numpy.quantile(v, [.25, .5, .75]) (linear): v = 1..8 -> 2.75, 4.5, 6.25.
  auto e = quantile_edges("x", {8, 7, 6, 5, 4, 3, 2, 1}, 4);
  REQUIRE(e.size() == 3);
  CHECK(close(e[0], 2.75, 0, kExact));
  CHECK(close(e[1], 4.5, 0, kExact));
  CHECK(close(e[2], 6.25, 0, kExact));
  // Ties merge edges: 0,0,0,0,0,0,1,2 -> quartiles 0, 0, 0.25: only 0.25 lies above the minimum.
  auto t = quantile_edges("x", {0, 0, 0, 0, 0, 0, 1, 2}, 4);
  REQUIRE(t.size() == 1);
  CHECK(close(t[0], 0.25, 0, kExact));
  REQUIRE_THROWS_WITH(quantile_edges("x", {1, 1, 1}, 4), Catch::Contains("gives no edge"));
  REQUIRE_THROWS_WITH(quantile_edges("x", {1, 2}, 1), Catch::Contains("at least 2"));
}

TEST_CASE("fairness: an interval that excludes its estimate carries a note with the reason", "[fairness]") {
  // 60 groups of 6 rows with the same selection probability: max - min over groups grows under
  // resampling and small groups are often drawn empty, the situation of an unbinned age column.
  std::mt19937_64 rng(11);
  Decisions d;
  std::vector<std::string> g;
  for (int k = 0; k < 60; ++k)
    for (int i = 0; i < 6; ++i) {
      d.y_true.push_back(uint8_t(rng() % 2));
      d.y_pred.push_back(uint8_t(rng() % 2));
      g.push_back("g" + std::to_string(k));
    }
  Options o;
  o.bootstrap = 200;
  o.seed = 5;
  auto ev = evaluate(d, {categorical_attribute("g", g)}, o);
  int64_t excluded = 0;
  auto check = [&](const std::string& what, const Estimate& e) {
    INFO(what);
    if (!e.defined() || std::isnan(e.lo)) return;
    bool outside = e.value < e.lo || e.value > e.hi;
    CHECK(outside == !e.interval_note.empty());
    if (outside) {
      ++excluded;
      CHECK_THAT(e.interval_note, Catch::Contains("excludes the estimate"));
      if (e.undefined_resamples > 0)
        CHECK_THAT(e.interval_note, Catch::Contains(std::to_string(e.undefined_resamples) + " of 200 resamples"));
    }
  };
  for (const auto& r : ev.groups)
    for (size_t m = 0; m < confusion_metric_count(); ++m) check(r.group + " " + group_metric_names()[m], r.metrics[m]);
  for (const auto& x : ev.disparities) check(x.name, x.estimate);
  CHECK(excluded > 0);
  CHECK(ev.intervals_excluding_value == excluded);
  CHECK(int64_t(ev.warnings.size()) == excluded);
  CHECK(ev.estimates_with_undefined_resamples > 0);
  auto j = evaluation_json(ev);
  CHECK(j["summary"]["bootstrap"]["intervals_excluding_value"] == excluded);
  bool noted = false;
  for (const auto& x : j["disparities"]) noted = noted || x.contains("interval_note");
  CHECK(noted);
}
