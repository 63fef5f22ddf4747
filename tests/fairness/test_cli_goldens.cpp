// `mlaudit fairness` against independent goldens (tools/fairness_compas_goldens.py, pandas +
// scikit-learn): ProPublica's COMPAS table from one command, Adult's base rates from one command,
// numeric protected attributes refused or binned, bootstrap intervals that say when they exclude
// their estimate, favorable values that match no row refused.
#include <catch2/catch.hpp>

#include <fstream>

#include "fairness_test_util.h"
#include "json_util.h"

using namespace mlaudit;
using mlaudit::test::close;
using mlaudit::test::run_cli;
using test::read_json;

namespace {

// Every compared value is a ratio of integer counts (or a Mann-Whitney sum over integer ranks)
// computed in double on both sides; one or two roundings apart, so 1e-12 absolute.
constexpr double kCounts = 1e-12;

const nlohmann::json* group_of(const nlohmann::json& j, const std::string& attr, const std::string& g) {
  for (const auto& r : j["groups"])
    if (r["attribute"] == attr && r["group"] == g) return &r;
  return nullptr;
}

const nlohmann::json* disparity_of(const nlohmann::json& j, const std::string& attr, const std::string& name) {
  for (const auto& r : j["disparities"])
    if (r["attribute"] == attr && r["name"] == name && r["reference"].is_null()) return &r;
  return nullptr;
}

bool have(const std::string& rel) {
  if (test::file_exists(test::shared_dataset(rel))) return true;
  WARN("shared dataset " << test::shared_dataset(rel) << " is absent; skipping");
  return false;
}

std::string compas_csv() { return test::shared_dataset("compas/compas-scores-two-years.csv"); }
std::string adult_data() { return test::shared_dataset("adult/adult.data"); }

// The COMPAS golden's per-group metrics against a report, with ProPublica's positive class.
void compare_compas(const nlohmann::json& j, const nlohmann::json& gold, bool with_auc) {
  for (auto& [attr, body] : gold["attributes"].items()) {
    for (auto& [g, m] : body["groups"].items()) {
      INFO(attr << " / " << g);
      const auto* r = group_of(j, attr, g);
      REQUIRE(r != nullptr);
      CHECK((*r)["count"] == m["count"]);
      for (const char* key : {"fpr", "fnr", "tpr", "tnr", "ppv", "npv", "accuracy", "base_rate", "selection_rate"}) {
        INFO(key);
        if (m[key].is_null()) {
          CHECK((*r)[key]["value"].is_null());
          continue;
        }
        CHECK(close((*r)[key]["value"].get<double>(), m[key].get<double>(), 0, kCounts));
      }
      if (with_auc && !m["auc"].is_null()) CHECK(close((*r)["auc"]["value"].get<double>(), m["auc"].get<double>(), 0, kCounts));
    }
    for (auto& [name, v] : body["disparities"].items()) {
      INFO(attr << " " << name);
      const auto* d = disparity_of(j, attr, name);
      REQUIRE(d != nullptr);
      CHECK(close((*d)["value"].get<double>(), v.get<double>(), 0, kCounts));
    }
  }
}

}  // namespace

TEST_CASE("fairness CLI: ProPublica's COMPAS table from one command", "[fairness][cli][golden]") {
  if (!have("compas/compas-scores-two-years.csv")) return;
  auto gold = test::fairness_fixture("compas_propublica.json");
  std::string dir = test::temp_dir("fairness-propublica");
  // The documented command (docs/fairness.md): the preset knows decile_score is a risk score and
  // that recidivism / "higher risk" are ProPublica's positive class.
  auto r = run_cli("fairness --dataset compas --data " + compas_csv() +
                   " --score decile_score --threshold 5 --protected race,sex --bootstrap 0 --out " + dir + "/F.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/F.json");
  CHECK(j["data"]["rows"] == gold["rows"]);
  CHECK(j["data"]["positive"]["class"] == "unfavorable");
  CHECK(j["data"]["positive"]["label"] == "two_year_recid != 0");
  CHECK(j["data"]["positive"]["decision"] == "decile_score >= 5");
  CHECK(j["data"]["score_direction"] == "higher-is-unfavorable");
  CHECK(j["data"]["favorable_label"] == "0");
  // ProPublica's figures, to the 4 decimals they are quoted with (the golden holds the exact ratios).
  CHECK(close((*group_of(j, "race", "African-American"))["fpr"]["value"].get<double>(), 0.4234, 0, 5e-5));
  CHECK(close((*group_of(j, "race", "Caucasian"))["fpr"]["value"].get<double>(), 0.2201, 0, 5e-5));
  CHECK(close((*group_of(j, "race", "African-American"))["fnr"]["value"].get<double>(), 0.2848, 0, 5e-5));
  CHECK(close((*group_of(j, "race", "Caucasian"))["fnr"]["value"].get<double>(), 0.4964, 0, 5e-5));
  compare_compas(j, gold, true);
  CHECK(r.output.find("fpr 0.4234 fnr 0.2848") != std::string::npos);  // on the console too
  CHECK(j["inputs"]["data"]["sha256"] == gold["sha256"]);
  CHECK_FALSE(j["inputs"].contains("model"));

  // score_text with the preset's favorable decision "Low" is the same decision (decile >= 5 is Medium/High).
  auto t = run_cli("fairness --dataset compas --data " + compas_csv() +
                   " --prediction score_text --protected race,sex --bootstrap 0 --out " + dir + "/T.json");
  INFO(t.output);
  REQUIRE(t.exit_code == 0);
  auto jt = read_json(dir + "/T.json");
  CHECK(jt["data"]["favorable_prediction"] == "Low");
  compare_compas(jt, gold, false);

  // Explicit values give the same table.
  auto e = run_cli("fairness --dataset compas --data " + compas_csv() +
                   " --prediction score_text --favorable-label 0 --favorable-prediction Low --positive unfavorable "
                   "--protected race,sex --bootstrap 0 --out " + dir + "/E.json");
  REQUIRE(e.exit_code == 0);
  compare_compas(read_json(dir + "/E.json"), gold, false);

  // Fairlearn's convention (positive = favorable) on the same decisions: FPR and FNR trade places.
  auto f = run_cli("fairness --dataset compas --data " + compas_csv() +
                   " --score decile_score --threshold 5 --positive favorable --protected race --bootstrap 0 --out " +
                   dir + "/P.json");
  REQUIRE(f.exit_code == 0);
  auto jf = read_json(dir + "/P.json");
  const auto& aa = gold["attributes"]["race"]["groups"]["African-American"];
  CHECK(close((*group_of(jf, "race", "African-American"))["fpr"]["value"].get<double>(), aa["fnr"].get<double>(), 0, kCounts));
  CHECK(close((*group_of(jf, "race", "African-American"))["fnr"]["value"].get<double>(), aa["fpr"].get<double>(), 0, kCounts));
}

TEST_CASE("fairness CLI: a favorable value that matches no row is refused", "[fairness][cli]") {
  if (!have("compas/compas-scores-two-years.csv")) return;
  std::string out = test::temp_dir("fairness-favorable") + "/F.json";
  // --favorable is both the label's and the decision's value: "Low" is no two_year_recid value.
  auto both = run_cli("fairness --dataset compas --data " + compas_csv() +
                      " --prediction score_text --favorable Low --protected race --out " + out);
  CHECK(both.exit_code == 2);
  CHECK(both.output.find("--favorable 'Low' matches no row of label column 'two_year_recid' (values: 0, 1)") != std::string::npos);
  CHECK(both.output.find("--favorable-label") != std::string::npos);
  auto pred = run_cli("fairness --dataset compas --data " + compas_csv() +
                      " --prediction score_text --favorable-prediction low --protected race --out " + out);
  CHECK(pred.exit_code == 2);
  CHECK(pred.output.find("--favorable-prediction 'low' matches no row of decision column 'score_text'") != std::string::npos);
  auto mixed = run_cli("fairness --dataset compas --data " + compas_csv() +
                       " --prediction score_text --favorable 0 --favorable-label 0 --protected race --out " + out);
  CHECK(mixed.exit_code == 2);
  CHECK(mixed.output.find("--favorable sets both") != std::string::npos);
  auto dir = run_cli("fairness --dataset compas --data " + compas_csv() +
                     " --score decile_score --threshold 5 --score-direction down --protected race --out " + out);
  CHECK(dir.exit_code == 2);
  CHECK(dir.output.find("--score-direction 'down' is not higher-is-favorable or higher-is-unfavorable") != std::string::npos);
  auto pos = run_cli("fairness --dataset compas --data " + compas_csv() +
                     " --score decile_score --threshold 5 --positive yes --protected race --out " + out);
  CHECK(pos.exit_code == 2);
  CHECK(pos.output.find("--positive 'yes'") != std::string::npos);
  auto lone = run_cli("fairness --dataset compas --data " + compas_csv() +
                      " --score decile_score --threshold 5 --favorable-prediction Low --protected race --out " + out);
  CHECK(lone.exit_code == 2);
  CHECK(lone.output.find("--favorable-prediction needs --prediction") != std::string::npos);
  CHECK_FALSE(test::file_exists(out));
}

TEST_CASE("fairness CLI: Adult base rates from one command", "[fairness][cli][golden]") {
  if (!have("adult/adult.data")) return;
  auto gold = test::fairness_fixture("adult_base_rates.json");
  std::string dir = test::temp_dir("fairness-adult-base");
  // No decision given: labels only, the preset's protected attributes sex, race and sex&race.
  auto r = run_cli("fairness --dataset adult --data " + adult_data() + " --bootstrap 0 --out " + dir + "/F.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/F.json");
  CHECK(j["data"]["rows"] == gold["rows"]);
  CHECK(j["data"]["rows_read"] == gold["rows_read"]);
  CHECK(j["settings"]["labels_only"] == true);
  for (auto& [attr, body] : gold["attributes"].items()) {
    size_t groups = 0;
    for (const auto& g : j["groups"]) groups += g["attribute"] == attr;
    CHECK(groups == body["groups"].size());
    for (auto& [g, m] : body["groups"].items()) {
      INFO(attr << " / " << g);
      const auto* x = group_of(j, attr, g);
      REQUIRE(x != nullptr);
      CHECK((*x)["count"] == m["count"]);
      CHECK(close((*x)["base_rate"]["value"].get<double>(), m["base_rate"].get<double>(), 0, kCounts));
    }
    for (auto& [name, v] : body["disparities"].items()) {
      const auto* d = disparity_of(j, attr, name);
      REQUIRE(d != nullptr);
      CHECK(close((*d)["value"].get<double>(), v.get<double>(), 0, kCounts));
    }
  }
  CHECK(r.output.find("Female               n=9782   base_rate 0.1137") != std::string::npos);
  CHECK(j["inputs"]["data"]["sha256"] == gold["sha256"]);
}

TEST_CASE("fairness CLI: a numeric protected column is refused, or binned with its groups stated", "[fairness][cli][golden]") {
  if (!have("adult/adult.data")) return;
  auto gold = test::fairness_fixture("adult_base_rates.json");
  std::string dir = test::temp_dir("fairness-age");
  auto refused = run_cli("fairness --dataset adult --data " + adult_data() + " --protected age --bootstrap 100 --out " + dir + "/R.json");
  CHECK(refused.exit_code == 2);
  CHECK(refused.output.find("--protected 'age' is numeric with 72 distinct values (more than --max-numeric-groups 10)") !=
        std::string::npos);
  CHECK(refused.output.find("--bins 'age:28,37,47' (its quartiles) or --bins 'age:q4'") != std::string::npos);
  CHECK_FALSE(test::file_exists(dir + "/R.json"));

  auto q = run_cli("fairness --dataset adult --data " + adult_data() + " --protected age --bins age:q4 --bootstrap 0 --out " + dir + "/Q.json");
  INFO(q.output);
  REQUIRE(q.exit_code == 0);
  auto j = read_json(dir + "/Q.json");
  const auto& a = j["data"]["attributes"][0];
  CHECK(a["kind"] == "binned");
  CHECK(a["bins"]["edges"] == gold["age_quartiles"]["edges"]);
  CHECK(a["groups"] == nlohmann::json({"age<28", "28<=age<37", "37<=age<47", "age>=47"}));
  for (size_t b = 0; b < 4; ++b) {
    const auto* g = group_of(j, "age", a["groups"][b].get<std::string>());
    REQUIRE(g != nullptr);
    CHECK((*g)["count"] == gold["age_quartiles"]["bins"][b]["count"]);
    CHECK(close((*g)["base_rate"]["value"].get<double>(), gold["age_quartiles"]["bins"][b]["base_rate"].get<double>(), 0, kCounts));
  }
  auto e = run_cli("fairness --dataset adult --data " + adult_data() + " --protected age --bins age:25,45,65 --bootstrap 0 --out " + dir + "/E.json");
  REQUIRE(e.exit_code == 0);
  CHECK(read_json(dir + "/E.json")["data"]["attributes"][0]["groups"] ==
        nlohmann::json({"age<25", "25<=age<45", "45<=age<65", "age>=65"}));
  auto bad = run_cli("fairness --dataset adult --data " + adult_data() + " --protected age --bins age:q1 --out " + dir + "/B.json");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--bins: 'age:q1'") != std::string::npos);
}

TEST_CASE("fairness CLI: undefined resamples are counted and an interval that excludes its estimate is flagged",
          "[fairness][cli]") {
  if (!have("adult/adult.data")) return;
  std::string dir = test::temp_dir("fairness-excl");
  // The case: one group per age (72 groups, some with 1 row), allowed with --max-numeric-groups 0.
  auto r = run_cli("fairness --dataset adult --data " + adult_data() +
                   " --protected age --max-numeric-groups 0 --score hours-per-week --threshold 45 --bootstrap 100 --out " +
                   dir + "/F.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/F.json");
  int64_t excluded = 0, with_undefined = 0;
  auto check = [&](const nlohmann::json& e, const std::string& what) {
    INFO(what);
    if (e["value"].is_null() || e["interval"].is_null()) return;
    double v = e["value"].get<double>(), lo = e["interval"][0].get<double>(), hi = e["interval"][1].get<double>();
    bool outside = v < lo || v > hi;
    CHECK(outside == e.contains("interval_note"));
    excluded += outside;
    with_undefined += e.contains("undefined_resamples");
  };
  for (const auto& g : j["groups"])
    for (const char* m : {"base_rate", "selection_rate", "tpr", "fpr", "accuracy"}) check(g[m], g["group"].get<std::string>() + " " + m);
  for (const auto& d : j["disparities"]) check(d, d["name"].get<std::string>());
  CHECK(excluded >= 1);
  CHECK(with_undefined >= 1);
  CHECK(j["summary"]["bootstrap"]["intervals_excluding_value"].get<int64_t>() >= excluded);
  CHECK(j["summary"]["bootstrap"]["max_undefined_resamples"].get<int64_t>() > 0);
  CHECK(j["warnings"].size() >= 1);
  CHECK(r.output.find("mlaudit: warning: fairness:") != std::string::npos);
  CHECK(r.output.find("excludes the estimate") != std::string::npos);
  CHECK(r.output.find("resamples undefined)") != std::string::npos);
  CHECK(r.output.find("bootstrap: ") != std::string::npos);
}

TEST_CASE("fairness CLI: the German preset cuts age at 25", "[fairness][cli]") {
  if (!have("german/german.data")) return;
  std::string dir = test::temp_dir("fairness-german");
  auto r = run_cli("fairness --dataset german --data " + test::shared_dataset("german/german.data") +
                   " --bootstrap 0 --out " + dir + "/F.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/F.json");
  const auto& age = j["data"]["attributes"][1];
  CHECK(age["name"] == "age");
  CHECK(age["bins"]["origin"] == "preset");
  CHECK(age["groups"] == nlohmann::json({"age<25", "age>=25"}));
}
