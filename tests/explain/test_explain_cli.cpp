// `mlaudit explain` end to end: outputs, JSON schema, heatmaps, gates and input errors.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/tensor.h"
#include "json_util.h"
#include "test_util.h"

using namespace mlaudit;
using mlaudit::test::run_cli;
using mlaudit::test::source_path;
using engine::Tensor;
using json = nlohmann::json;

namespace {

bool have_models() { return std::filesystem::exists(source_path("models/fmnist_cnn.onnx")); }

using test::read_json;

const std::string kCnn = source_path("models/fmnist_cnn.onnx");
const std::string kMlp = source_path("models/credit_mlp.onnx");
const std::string kFx = source_path("datasets/demo/fmnist_x.npy");
const std::string kFy = source_path("datasets/demo/fmnist_y.npy");
const std::string kCx = source_path("datasets/demo/credit_x.npy");
const std::string kCy = source_path("datasets/demo/credit_y.npy");
const std::string kCbg = source_path("datasets/demo/credit_background.npy");
const std::string kNames = source_path("datasets/credit/features.txt");

}  // namespace

TEST_CASE("cli explain: --method gradient --target label returns the input-shaped gradient", "[explain][cli]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("explain-cli");
  auto r = run_cli(fmt::format("explain --model {} --data {} --labels {} --method gradient --target label --out {}/g.npy",
                               kCnn, kFx, kFy, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  Tensor g = datasets::read_npy(dir + "/g.npy");
  CHECK(g.shape() == engine::Shape{200, 1, 28, 28});
  // --target predicted on the first 4 rows: |gradient| equals Captum's saliency golden.
  r = run_cli(fmt::format("explain --model {} --data {} --method gradient --limit 4 --out {}/g4.npy", kCnn, kFx, dir));
  REQUIRE(r.exit_code == 0);
  auto got = datasets::read_npy(dir + "/g4.npy").to_doubles();
  auto want = datasets::read_npy_float(source_path("tests/fixtures/explain/saliency_fmnist.npy")).to_doubles();
  REQUIRE(got.size() == want.size());
  double err = 0;
  for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::fabs(std::fabs(got[i]) - want[i]));
  CHECK(err < 1e-4);  // one float32 backward pass vs PyTorch (max |grad| ~2.3)
}

TEST_CASE("cli explain: IG JSON summary with completeness, ranking and heatmaps", "[explain][cli]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("explain-cli");
  auto r = run_cli(fmt::format("explain --model {} --data {} --method integrated-gradients --limit 3 --steps 32 "
                               "--out {}/ig.npy --json {}/ig.json --heatmap-dir {}/maps --check-randomization",
                               kCnn, kFx, dir, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json j = read_json(dir + "/ig.json");
  CHECK(j["schema"] == "mlaudit.explain/1");
  CHECK(j.contains("tool_version"));
  CHECK(j["samples"].size() == 3);
  CHECK(j["samples"][0]["completeness"]["relative_gap"].get<double>() < 0.05);
  CHECK(j["samples"][0]["top_features"].size() == 10);
  CHECK(j["checks"]["completeness"]["passed"] == true);
  CHECK(j["checks"]["randomization"]["layer"].get<std::string>().find("Gemm") != std::string::npos);
  CHECK(j["checks"]["randomization"]["rank_correlation"].size() == 3);
  for (int i = 0; i < 3; ++i) {
    std::ifstream png(fmt::format("{}/maps/heatmap_{}.png", dir, i), std::ios::binary);
    char sig[4] = {};
    png.read(sig, 4);
    CHECK(std::string(sig + 1, 3) == "PNG");
  }
}

TEST_CASE("cli explain: kernel-shap and permutation on tabular data name the features", "[explain][cli]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("explain-cli");
  auto r = run_cli(fmt::format("explain --model {} --data {} --limit 4 --method kernel-shap --target 1 --background {} "
                               "--feature-names {} --json {}/ks.json --out {}/ks.npy --check-stability",
                               kMlp, kCx, kCbg, kNames, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json j = read_json(dir + "/ks.json");
  CHECK(j["samples"][0]["exact"] == true);
  CHECK(std::fabs(j["samples"][0]["efficiency_gap"].get<double>()) < 1e-6);
  CHECK(j["global_ranking"].size() == 7);
  CHECK(j["global_ranking"][0].contains("name"));
  CHECK(j["checks"]["stability"]["max_sensitivity"].size() == 4);
  // --output softmax explains probabilities: outputs and the background expectation lie in (0,1).
  r = run_cli(fmt::format("explain --model {} --data {} --limit 2 --method kernel-shap --target 1 --background {} "
                          "--output softmax --json {}/ks_p.json",
                          kMlp, kCx, kCbg, dir));
  REQUIRE(r.exit_code == 0);
  json sp = read_json(dir + "/ks_p.json");
  CHECK(sp["output"] == "softmax");
  for (const auto& row : sp["samples"]) {
    CHECK(row["output_x"].get<double>() > 0.0);
    CHECK(row["output_x"].get<double>() < 1.0);
    CHECK(row["expected_value"].get<double>() > 0.0);
    CHECK(row["expected_value"].get<double>() < 1.0);
  }
  r = run_cli(fmt::format("explain --model {} --data {} --labels {} --method permutation --feature-names {} "
                          "--json {}/perm.json --out {}/perm.npy",
                          kMlp, kCx, kCy, kNames, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json p = read_json(dir + "/perm.json");
  CHECK(p["schema"] == "mlaudit.explain/1");
  CHECK(p["global_ranking"].size() == 7);
  CHECK(p["baseline_accuracy"].get<double>() > 0.5);
  CHECK(datasets::read_npy(dir + "/perm.npy").shape() == engine::Shape{7});
}

TEST_CASE("cli explain: completeness gate exits 1 with a warning", "[explain][cli]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("explain-cli");
  // Two left-Riemann points cannot integrate the CNN's path: the gap exceeds 5%.
  auto r = run_cli(fmt::format("explain --model {} --data {} --limit 2 --method integrated-gradients --rule riemann_left "
                               "--steps 2 --json {}/gate.json --gate",
                               kCnn, kFx, dir));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("completeness gap") != std::string::npos);
  CHECK(read_json(dir + "/gate.json")["passed"] == false);
}

TEST_CASE("cli explain: deeplift matches Captum's golden and reports summation-to-delta", "[explain][cli][deeplift]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("explain-cli-dl");
  auto r = run_cli(fmt::format("explain --model {} --data {} --limit 6 --method deeplift --target 1 --baseline mean "
                               "--background {} --feature-names {} --out {}/dl.npy --json {}/dl.json --gate",
                               kMlp, kCx, kCbg, kNames, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto got = datasets::read_npy(dir + "/dl.npy").to_doubles();
  const auto want = datasets::read_npy_float(source_path("tests/fixtures/explain/deeplift_credit.npy")).to_doubles();
  REQUIRE(got.size() == want.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err = std::max(err, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  CHECK(err < 1e-5 * scale);  // Captum DeepLift on the same float32 MLP: measured 2.4e-7 of the scale
  const json j = read_json(dir + "/dl.json");
  CHECK(j["schema"] == "mlaudit.explain/1");
  CHECK(j["method"] == "deeplift");
  CHECK(j["options"]["multipliers"] == "chain-rule");
  CHECK(j["checks"]["summation_to_delta"]["passed"] == true);
  CHECK(j["checks"]["summation_to_delta"]["max_relative_gap"].get<double>() < 1e-4);
  const json& s0 = j["samples"][0]["summation_to_delta"];
  CHECK(s0["attribution_sum"].get<double>() ==
        Approx(s0["output_difference"].get<double>()).margin(1e-4));
  CHECK(j["global_ranking"][0].contains("name"));
  // Captum's hook order on the CNN (ReLU -> MaxPool) breaks summation-to-delta: the gate reports it.
  r = run_cli(fmt::format("explain --model {} --data {} --limit 4 --method deeplift --deeplift-captum "
                          "--baseline {} --max-gap 0.01 --json {}/dlc.json --gate",
                          kCnn, kFx, source_path("tests/fixtures/explain/deeplift_fmnist_baseline.npy"), dir));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("summation-to-delta") != std::string::npos);
  r = run_cli(fmt::format("explain --model {} --data {} --method deeplift --output softmax --out {}/x.npy", kCnn, kFx, dir));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--output softmax is not supported") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir + "/x.npy"));
}

TEST_CASE("cli explain: bad input exits 2 with one line and writes nothing", "[explain][cli]") {
  const std::string dir = mlaudit::test::temp_dir("explain-cli");
  auto r = run_cli(fmt::format("explain --model {} --data /nonexistent/x.npy --out {}/a.npy", kCnn, dir));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("/nonexistent/x.npy") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir + "/a.npy"));
  r = run_cli(fmt::format("explain --model {} --data {} --method magic --out {}/a.npy", kCnn, kFx, dir));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("unknown --method 'magic'") != std::string::npos);
  if (have_models()) {
    r = run_cli(fmt::format("explain --model {} --data {} --target label --out {}/a.npy", kCnn, kFx, dir));
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("needs labels") != std::string::npos);
    r = run_cli(fmt::format("explain --model {} --data {} --method kernel-shap --out {}/a.npy", kMlp, kCx, dir));
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("needs --background") != std::string::npos);
    r = run_cli(fmt::format("explain --model {} --data {} --baseline /nonexistent/b.npy --out {}/a.npy", kMlp, kCx, dir));
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("/nonexistent/b.npy") != std::string::npos);
    r = run_cli(fmt::format("explain --model {} --data {} --feature-names {} --json {}/a.json", kCnn, kFx, kNames, dir));
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("7 names for 784 features") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(dir + "/a.npy"));
  CHECK_FALSE(std::filesystem::exists(dir + "/a.json"));
  r = run_cli("explain --help");
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("--baseline") != std::string::npos);
  // Fractional defaults as written, not as the nearest doubles' 17 digits.
  CHECK(r.output.find("--noise-level arg (=0.15)") != std::string::npos);
  CHECK(r.output.find("--max-gap arg (=0.05)") != std::string::npos);
  CHECK(r.output.find("0000000") == std::string::npos);
}
