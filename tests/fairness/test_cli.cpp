// `mlaudit fairness` end to end: model-driven decisions, .npy tables, built-in readers, errors.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "fairness_test_util.h"
#include "json_util.h"
#include "mlaudit/datasets/npy.h"

using namespace mlaudit;
using mlaudit::test::close;
using mlaudit::test::run_cli;

namespace {

using test::read_json;

const nlohmann::json* find(const nlohmann::json& arr, const std::string& attr, const std::string& key,
                           const std::string& value) {
  for (const auto& r : arr)
    if (r["attribute"] == attr && r[key] == value && (!r.contains("reference") || r["reference"].is_null())) return &r;
  return nullptr;
}

const std::string kFeatures = "age,income,debt_ratio,years_employed,num_credit_lines,late_payments,sex";

}  // namespace

TEST_CASE("fairness CLI: bundled credit model, intervals and counterfactual flips", "[fairness][cli]") {
  if (!test::file_exists(test::source_path("models/credit_mlp.onnx"))) {
    WARN("models/credit_mlp.onnx is absent; skipping");
    return;
  }
  auto gold = test::fairness_fixture("credit_counterfactual.json");
  std::string out = test::temp_dir("fairness-cli") + "/F.json";
  auto r = run_cli("fairness --data " + test::source_path("datasets/credit/credit_test.csv") +
                   " --label approved --protected sex,age --bins age:25,45 --model " +
                   test::source_path("models/credit_mlp.onnx") + " --features " + kFeatures +
                   " --counterfactual --bootstrap 200 --seed 3 --reference sex=1 --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(out);
  CHECK(j["schema"] == "mlaudit.fairness/1");
  CHECK(j.contains("tool_version"));
  // Provenance of both inputs (SHA-256: 64 hex digits).
  CHECK(j["inputs"]["model"]["sha256"].get<std::string>().size() == 64);
  CHECK(j["inputs"]["data"]["path"].get<std::string>().find("credit_test.csv") != std::string::npos);
  CHECK(j["data"]["rows"] == 2000);
  CHECK(j["data"]["rows_dropped"] == 0);
  // Selection rates and DP difference equal onnxruntime's decisions (exact: same argmax on 2000 rows, see the
  // counterfactual golden); rates are k/n, so 1e-12.
  for (const char* s : {"0", "1"}) {
    const auto* g = find(j["groups"], "sex", "group", s);
    REQUIRE(g != nullptr);
    CHECK(close((*g)["selection_rate"]["value"].get<double>(), gold["selection_rate_by_sex"][s].get<double>(), 0, 1e-12));
    CHECK(close((*g)["tpr"]["value"].get<double>(), gold["tpr_by_sex"][s].get<double>(), 0, 1e-12));
    auto iv = (*g)["selection_rate"]["interval"];
    CHECK(iv[0].get<double>() <= (*g)["selection_rate"]["value"].get<double>());
    CHECK((*g)["auc"]["value"].is_number());  // model scores give AUC / Brier / ECE
  }
  const auto* dp = find(j["disparities"], "sex", "name", "demographic_parity_difference");
  REQUIRE(dp != nullptr);
  CHECK(close((*dp)["value"].get<double>(), gold["demographic_parity_difference"].get<double>(), 0, 1e-12));
  CHECK(find(j["groups"], "age", "group", "age<25") != nullptr);
  CHECK(find(j["groups"], "sex&age", "group", "1&age>=45") != nullptr);
  bool has_ref = false;
  for (const auto& d : j["disparities"]) has_ref = has_ref || (d["attribute"] == "sex" && d["reference"] == "1");
  CHECK(has_ref);
  REQUIRE(j["counterfactual"].size() == 2);
  const auto& cf = j["counterfactual"][0];
  CHECK(cf["attribute"] == "sex");
  CHECK(close(cf["flip_rate"].get<double>(), gold["flip_rate"].get<double>(), 0, 1e-12));
  CHECK(cf["flipped"].size() == 20);
  CHECK(j["counterfactual"][1]["flip_rate"].is_null());
  CHECK(j["counterfactual"][1]["reason"].get<std::string>().find("binned") != std::string::npos);
  CHECK(j["individual"]["consistency"]["value"].is_number());
  REQUIRE(j["summary"]["four_fifths_rule"].size() >= 3);
}

TEST_CASE("fairness CLI: .npy table reproduces Fairlearn's toy example", "[fairness][cli]") {
  auto toy = test::fairness_fixture("toy.json");
  std::vector<float> cells;
  for (size_t i = 0; i < toy["y_true"].size(); ++i) {
    cells.push_back(toy["y_true"][i].get<float>());
    cells.push_back(toy["y_pred"][i].get<float>());
    cells.push_back(float(toy["groups_of_rows"][i].get<std::string>()[0] - 'a'));
  }
  std::string dir = test::temp_dir("fairness-npy");
  datasets::write_npy(dir + "/t.npy", engine::Tensor::from_floats({int64_t(cells.size() / 3), 3}, cells));
  auto r = run_cli("fairness --data " + dir + "/t.npy --columns y,yhat,g --label y --prediction yhat --protected g "
                   "--bootstrap 0 --out " + dir + "/F.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/F.json");
  // Exact ratios of small integers (see the toy golden test).
  CHECK(close((*find(j["disparities"], "g", "name", "demographic_parity_difference"))["value"].get<double>(), 0.25, 0, 1e-12));
  CHECK(close((*find(j["disparities"], "g", "name", "demographic_parity_ratio"))["value"].get<double>(), 2.0 / 3, 0, 1e-12));
  CHECK(close((*find(j["disparities"], "g", "name", "equalized_odds_difference"))["value"].get<double>(), 1.0, 0, 1e-12));
  CHECK((*find(j["disparities"], "g", "name", "equalized_odds_ratio"))["value"].get<double>() == 0.0);
  CHECK((*find(j["disparities"], "g", "name", "demographic_parity_ratio"))["four_fifths_rule"] == "fail");
  CHECK(j["groups"][0]["selection_rate"]["interval"].is_null());  // --bootstrap 0
}

TEST_CASE("fairness CLI: COMPAS with ProPublica's filter states the dropped rows", "[fairness][cli]") {
  std::string compas = test::shared_dataset("compas/compas-scores-two-years.csv");
  if (!test::file_exists(compas)) {
    WARN("COMPAS is absent; skipping");
    return;
  }
  std::string out = test::temp_dir("fairness-compas") + "/F.json";
  auto r = run_cli("fairness --dataset compas --data " + compas +
                   " --score decile_score --threshold 5 --protected race,sex --bootstrap 100 --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(out);
  CHECK(j["data"]["rows_read"] == 7214);
  CHECK(j["data"]["rows"] == 6172);
  CHECK(j["data"]["rows_dropped"] == 7214 - 6172);
  REQUIRE(j["data"]["dropped"].size() >= 1);
  CHECK(j["data"]["dropped"][0]["reason"].get<std::string>().find("ProPublica filter") != std::string::npos);
  // decile scores are 1..10, not probabilities: AUC yes, Brier/ECE left out with the reason.
  const auto* g = find(j["groups"], "race", "group", "African-American");
  REQUIRE(g != nullptr);
  CHECK((*g)["auc"]["value"].is_number());
  CHECK((*g)["brier_score"]["value"].is_null());
  CHECK(j["summary"]["small_groups"].size() >= 1);  // e.g. Native American
}

TEST_CASE("fairness CLI: bad input exits 2 with one line and writes nothing", "[fairness][cli]") {
  std::string dir = test::temp_dir("fairness-bad");
  std::string out = dir + "/F.json";
  auto missing = run_cli("fairness --data " + dir + "/nope.csv --label y --prediction p --protected g --out " + out);
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("nope.csv") != std::string::npos);
  std::ofstream(dir + "/t.csv") << "y,p,g,s\n1,1,a,0.3\n0,1,b,x\n";
  auto col = run_cli("fairness --data " + dir + "/t.csv --label y --prediction p --protected race --out " + out);
  CHECK(col.exit_code == 2);
  CHECK(col.output.find("race") != std::string::npos);
  auto thr = run_cli("fairness --data " + dir + "/t.csv --label y --score s --protected g --out " + out);
  CHECK(thr.exit_code == 2);
  CHECK(thr.output.find("--score needs --threshold") != std::string::npos);
  auto num = run_cli("fairness --data " + dir + "/t.csv --label y --score s --threshold 0.5 --protected g --out " + out);
  CHECK(num.exit_code == 2);
  CHECK(num.output.find("row 2: column 's' value 'x' is not a number") != std::string::npos);
  auto ds = run_cli("fairness --dataset iris --data " + dir + "/t.csv --out " + out);
  CHECK(ds.exit_code == 2);
  CHECK(ds.output.find("'iris' is not one of adult, german, compas") != std::string::npos);
  auto cf = run_cli("fairness --data " + dir + "/t.csv --label y --prediction p --protected g --counterfactual --out " + out);
  CHECK(cf.exit_code == 2);
  CHECK(cf.output.find("--counterfactual needs --model") != std::string::npos);
  auto ci = run_cli("fairness --data " + dir + "/t.csv --label y --prediction p --protected g --ci 2 --out " + out);
  CHECK(ci.exit_code == 2);
  CHECK(ci.output.find("--ci 2 is not in (0,1)") != std::string::npos);
  CHECK_FALSE(test::file_exists(out));
  auto help = run_cli("fairness --help");
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--counterfactual") != std::string::npos);
  CHECK(help.output.find("--ci arg (=0.95)") != std::string::npos);  // as written, not 0.94999999999999996
  CHECK(help.output.find("9999999") == std::string::npos);
}

TEST_CASE("fairness CLI: a gradient-boosted tree model (XGBoost via onnxmltools): decisions, scores and flips equal "
          "onnxruntime + Fairlearn",
          "[fairness][cli][trees]") {
  auto gold = test::fairness_fixture("credit_gbt.json");  // tools/fairness_tree_goldens.py
  const std::string dir = test::temp_dir("fairness-gbt");
  const std::string base = "fairness --data " + test::source_path("datasets/credit/credit_test.csv") +
                           " --label-column approved --protected sex --model " + test::source_path("models/credit_gbt.onnx") +
                           " --features " + kFeatures + " --bootstrap 0";
  // Rates are k/n of identical decisions: exact up to float printing (1e-12). A row whose
  // probability ties 0.7 in float32 would differ between engines; none does (the test would show it).
  struct Mode {
    const char* name;
    std::string args;
  };
  for (const Mode& m : {Mode{"argmax", " --counterfactual"}, Mode{"threshold_0.7", " --threshold 0.7"}}) {
    DYNAMIC_SECTION(m.name) {
      auto r = run_cli(base + m.args + " --out " + dir + "/" + m.name + ".json");
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      auto j = read_json(dir + "/" + m.name + ".json");
      const auto& g = gold[m.name];
      for (const char* s : {"0", "1"}) {
        const auto* row = find(j["groups"], "sex", "group", s);
        REQUIRE(row != nullptr);
        CHECK(close((*row)["selection_rate"]["value"].get<double>(), g["selection_rate_by_sex"][s].get<double>(), 0, 1e-12));
        CHECK(close((*row)["tpr"]["value"].get<double>(), g["tpr_by_sex"][s].get<double>(), 0, 1e-12));
        CHECK((*row)["auc"]["value"].is_number());  // the model's scores are read
      }
      for (const char* name : {"demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"}) {
        const auto* d = find(j["disparities"], "sex", "name", name);
        REQUIRE(d != nullptr);
        CHECK(close((*d)["value"].get<double>(), g[name].get<double>(), 0, 1e-12));
      }
      if (std::string(m.name) == "argmax") {
        const auto& cf = j["counterfactual"][0];
        CHECK(close(cf["flip_rate"].get<double>(), gold["flip_rate"].get<double>(), 0, 1e-12));
        REQUIRE(cf["flipped"].size() == 20);
        for (size_t k = 0; k < 20; ++k) CHECK(cf["flipped"][k]["row"] == gold["first_flipped"][k]);
      }
    }
  }
}
