// `mlaudit verify` on tree-ensemble models: the same modes and JSON contract as networks
// (docs/verify.md, "Tree ensembles"), exact verdicts, the tree-only options and their errors.
// Expected distances come from tests/fixtures/trees/verify/milp_goldens.json (an independent
// MILP, tools/trees_verify_goldens.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/npy.h"
#include "test_util.h"

using mlaudit::test::run_cli;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string trees(const std::string& name) { return mlaudit::test::source_path("tests/fixtures/trees/" + name); }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

json goldens() {
  std::ifstream in(trees("verify/milp_goldens.json"));
  return json::parse(in);
}

// Both sides are exact (docs/dev/verify.md); 1e-6 is the brief's tolerance for the MILP.
constexpr double kDistanceTolerance = 1e-6;

std::vector<double> row(const std::string& npy, int64_t i) {
  auto t = mlaudit::datasets::read_npy_float(trees(npy));
  auto d = t.to_doubles();
  const int64_t F = t.dim(1);
  return std::vector<double>(d.begin() + i * F, d.begin() + (i + 1) * F);
}

// A VNN-LIB file: the box [x - eps, x + eps] and the given output assertion.
std::string write_vnnlib(const std::string& path, const std::vector<double>& x, double eps, int outputs,
                         const std::string& assertion) {
  std::ofstream f(path);
  for (size_t i = 0; i < x.size(); ++i) f << "(declare-const X_" << i << " Real)\n";
  for (int j = 0; j < outputs; ++j) f << "(declare-const Y_" << j << " Real)\n";
  f.precision(17);
  for (size_t i = 0; i < x.size(); ++i)
    f << "(assert (>= X_" << i << " " << x[i] - eps << "))\n(assert (<= X_" << i << " " << x[i] + eps << "))\n";
  f << assertion << "\n";
  return path;
}

}  // namespace

TEST_CASE("verify --data on a tree model: exact verdicts, clique-bound share, minimal distances", "[verify][trees][cli]") {
  const std::string dir = mlaudit::test::temp_dir("verify-trees-data");
  const json g = goldens()["models"]["xgb_binary"]["rows"];
  auto r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --data " + trees("credit_x.npy") +
                   " --eps 0.05,0.2 --clip-min=-inf --clip-max=inf --limit 20 --minimal-distance --out " + dir + "/v.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "tree ensemble"));
  CHECK(contains(r.output, "decided by the clique bound"));
  auto j = json::parse(mlaudit::test::read_text(dir + "/v.json"));
  CHECK(j["schema"] == "mlaudit.verify/1");
  CHECK(j["kind"] == "local_robustness");
  CHECK(j["model_kind"] == "tree_ensemble");
  CHECK(j["tree_ensemble"]["trees"] == 40);
  CHECK(j["tree_ensemble"]["head"] == "binary_margin");
  CHECK(j["domain"][0].is_null());
  CHECK(j["inputs"].contains("model"));
  REQUIRE(j["by_eps"].size() == 2);
  for (const auto& e : j["by_eps"]) {
    CHECK(e["samples"] == 20);
    CHECK(e["verified"].get<int>() + e["falsified"].get<int>() == 20);  // exact: no unknown, no timeout
    CHECK(e["decided_by_clique_bound"].get<int>() <= 20);
  }
  REQUIRE(j["per_sample"].size() == 40);
  for (const auto& s : j["per_sample"]) {
    const double golden = g[s["index"].get<size_t>()]["distance"].get<double>();
    const double eps = s["eps"].get<double>();
    INFO("sample " << s["index"] << " eps " << eps);
    CHECK((s["verdict"] == "falsified") == (golden <= eps));
    CHECK((s["method"] == "clique-bound" || s["method"] == "tree-bab"));
    if (s["verdict"] == "falsified") {
      CHECK(s["counterexample_linf"].get<double>() <= eps);
      CHECK(s["margin"].get<double>() <= 0);
    }
  }
  REQUIRE(j["minimal_distance"].size() == 20);
  for (const auto& m : j["minimal_distance"]) {
    const auto& gr = g[m["index"].get<size_t>()];
    CHECK(m["status"] == "found");
    CHECK(std::fabs(m["distance"].get<double>() - gr["distance"].get<double>()) <= kDistanceTolerance);
    CHECK(m["adversarial_label"] != m["label"]);
    CHECK(m["counterexample"].size() == 7);
  }
  fs::remove_all(dir);
}

TEST_CASE("verify --vnnlib on tree models: argmax and regression properties exact, others refused", "[verify][trees][cli]") {
  const std::string dir = mlaudit::test::temp_dir("verify-trees-vnnlib");
  // Row 1 of xgb_binary is class 0 with minimal distance 0.0055 (golden): Y_1 >= Y_0 (class 1
  // wins) is reachable at eps 0.01, not at 0.005.
  const double d = goldens()["models"]["xgb_binary"]["rows"][1]["distance"].get<double>();
  const auto x = row("credit_x.npy", 1);
  for (auto [eps, expect] : {std::pair<double, std::string>{2 * d, "sat"}, {0.9 * d, "unsat"}}) {
    auto p = write_vnnlib(dir + "/p.vnnlib", x, eps, 2, "(assert (>= Y_1 Y_0))");
    auto r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --vnnlib " + p + " --result " + dir + "/r.txt --out " +
                     dir + "/v.json");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(mlaudit::test::read_text(dir + "/r.txt").rfind(expect + "\n", 0) == 0);
    auto j = json::parse(mlaudit::test::read_text(dir + "/v.json"));
    CHECK(j["result"] == expect);
    CHECK(j["kind"] == "vnnlib_property");
    if (expect == "sat") {
      auto cx = j["counterexample"]["input"].get<std::vector<double>>();
      auto y = j["counterexample"]["output"].get<std::vector<double>>();
      for (size_t i = 0; i < cx.size(); ++i) CHECK(std::fabs(cx[i] - x[i]) <= eps);
      CHECK(y[1] >= y[0]);
    } else {
      CHECK(j["counterexample"].is_null());
    }
  }
  // A regressor: its output is the raw score, any linear property is exact.
  auto xr = row("income_x.npy", 0);
  auto p = write_vnnlib(dir + "/reg.vnnlib", xr, 0.5, 1, "(assert (>= Y_0 1000000000))");
  auto r = run_cli("verify --model " + trees("xgb_reg.onnx") + " --vnnlib " + p + " -q");
  CHECK(r.exit_code == 0);
  CHECK(contains(r.output, "unsat"));
  p = write_vnnlib(dir + "/reg2.vnnlib", xr, 0.5, 1, "(assert (>= Y_0 -1000000000))");
  r = run_cli("verify --model " + trees("xgb_reg.onnx") + " --vnnlib " + p + " -q");
  CHECK(contains(r.output, "sat"));
  // A threshold on a probability under the logistic link is not decided: unknown with the reason.
  p = write_vnnlib(dir + "/prob.vnnlib", x, 0.1, 2, "(assert (>= Y_1 0.7))");
  r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --vnnlib " + p + " --out " + dir + "/u.json");
  CHECK(r.exit_code == 0);
  auto j = json::parse(mlaudit::test::read_text(dir + "/u.json"));
  CHECK(j["result"] == "unknown");
  CHECK(contains(j["reason"].get<std::string>(), "only comparisons of two output columns"));
  fs::remove_all(dir);
}

TEST_CASE("verify --fairness on tree models: partitions, boxes around rows, a score delta", "[verify][trees][cli]") {
  const std::string dir = mlaudit::test::temp_dir("verify-trees-fair");
  {
    std::ofstream f(dir + "/ranges.csv");
    f << "feature,min,max\nage,18,80\nincome,10,150\ndebt_ratio,0,1\nyears_employed,0,40\nnum_credit_lines,0,15\n"
         "late_payments,0,10\nsex,0,1\n";
  }
  const std::string features = mlaudit::test::source_path("datasets/credit/features.txt");
  auto r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --fairness --protected sex --features " + features +
                   " --domain " + dir + "/ranges.csv --partitions 1 --out " + dir + "/f.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = json::parse(mlaudit::test::read_text(dir + "/f.json"));
  CHECK(j["kind"] == "individual_fairness");
  CHECK(j["model_kind"] == "tree_ensemble");
  CHECK(j["boxes"] == "partitions");
  REQUIRE(j["partitions"].size() == 1);
  const std::string v = j["partitions"][0]["verdict"];
  CHECK((v == "proved" || v == "counterexample"));
  for (const auto& p : j["counterexample_pairs"]) {
    auto a = p["input_a"].get<std::vector<double>>(), b = p["input_b"].get<std::vector<double>>();
    for (size_t i = 0; i + 1 < a.size(); ++i) CHECK(a[i] == b[i]);  // only sex differs
    CHECK(a[6] != b[6]);
    auto ya = p["output_a"].get<std::vector<double>>(), yb = p["output_b"].get<std::vector<double>>();
    CHECK((ya[1] > ya[0]) != (yb[1] > yb[0]));
  }
  // Boxes of radius 0.5 around 5 rows with a score delta.
  r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --fairness --protected sex --features " + features +
              " --domain " + dir + "/ranges.csv --data " + trees("credit_x.npy") + " --eps 0.5 --limit 5 --delta 0.25 --out " +
              dir + "/s.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  j = json::parse(mlaudit::test::read_text(dir + "/s.json"));
  CHECK(j["boxes"] == "samples");
  CHECK(j["score_delta"] == 0.25);
  CHECK(j["partitions"].size() == 5);
  CHECK(j["summary"]["proved"].get<int>() + j["summary"]["counterexample"].get<int>() == 5);
  fs::remove_all(dir);
}

TEST_CASE("verify on tree models: bad input exits 2 with one line", "[verify][trees][cli][errors]") {
  const std::string dir = mlaudit::test::temp_dir("verify-trees-err");
  auto r = run_cli("verify --model " + trees("xgb_reg.onnx") + " --data " + trees("income_x.npy") +
                   " --eps 0.1 --clip-min=-inf --clip-max=inf --out " + dir + "/x.json");
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.output));
  CHECK(contains(r.output, "is a regressor: local robustness needs a decision"));
  // The credit rows are not in the default [0, 1] domain: the usual domain error.
  r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --data " + trees("credit_x.npy") + " --eps 0.1 --out " + dir +
              "/x.json");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--clip-min=-inf --clip-max=inf"));
  const std::string mlp = mlaudit::test::source_path("tests/fixtures/verify/domain_mlp.onnx");
  r = run_cli("verify --model " + mlp + " --data " + mlaudit::test::source_path("tests/fixtures/verify/domain_x.npy") +
              " --eps 0.1 --clip-min=-inf --clip-max=inf --minimal-distance --out " + dir + "/x.json");
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.output));
  CHECK(contains(r.output, "--minimal-distance is for tree-ensemble models"));
  r = run_cli("verify --model " + trees("xgb_binary.onnx") + " --data " + trees("credit_x.npy") +
              " --eps 0.1 --clip-min=-inf --clip-max=inf --delta 0.1 --out " + dir + "/x.json");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--delta is not used in --data mode"));
  fs::remove_all(dir);
}
