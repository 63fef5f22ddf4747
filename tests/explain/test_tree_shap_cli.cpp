// `mlaudit explain --method tree-shap` / `--method shap` end to end: the automatic choice, the
// attributions against shap's goldens, interactions, the JSON summary and the error texts.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "json_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/tensor.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;
using json = nlohmann::json;
using test::run_cli;

namespace {

// The attributions file is float32: values up to ~3 keep ~2e-7 of rounding; shap's goldens are
// matched to 1e-6 in the library test (test_tree_shap.cpp says why), so 1e-6 here as well.
constexpr double kShapAbs = 1e-6;
// Sums of seven float32-rounded attributions against the JSON's double f(x): 7 x 2e-7 of rounding.
constexpr double kFloat32Sum = 5e-6;

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/trees/" + name); }

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return json::parse(in);
}

Tensor gather(const Tensor& all, const std::vector<int64_t>& rows) {
  const int64_t w = all.shape()[1];
  std::vector<float> out;
  for (int64_t r : rows) out.insert(out.end(), all.f32() + r * w, all.f32() + (r + 1) * w);
  return Tensor::from_floats({static_cast<int64_t>(rows.size()), w}, out);
}

// The golden's rows and background of xgb_binary written as .npy files in `dir`.
json write_golden_inputs(const std::string& dir) {
  json g = read_json_file(fixture("shap/xgb_binary.json"));
  const Tensor data = datasets::read_npy_float(fixture("credit_x.npy"));
  const Tensor train = datasets::read_npy_float(fixture("shap/credit_train_x.npy"));
  datasets::write_npy(dir + "/x.npy", gather(data, g["rows"].get<std::vector<int64_t>>()));
  datasets::write_npy(dir + "/bg.npy", gather(train, g["background_rows"].get<std::vector<int64_t>>()));
  return g;
}

}  // namespace

TEST_CASE("cli explain: --method shap on a tree model runs exact TreeSHAP and matches shap", "[explain][cli][tree-shap]") {
  const std::string dir = test::temp_dir("treeshap");
  const json g = write_golden_inputs(dir);
  auto r = run_cli(fmt::format("explain --model {} --data {}/x.npy --background {}/bg.npy --method shap --target 1 "
                               "--out {}/r.json --attributions {}/a.npy",
                               fixture("xgb_binary.onnx"), dir, dir, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("--method shap: tree ensemble (40 trees): exact TreeSHAP instead of KernelSHAP") != std::string::npos);
  const json s = read_json_file(dir + "/r.json");
  CHECK(s["method"] == "tree-shap");
  CHECK(s["method_requested"] == "shap");
  CHECK(s["options"]["feature_perturbation"] == "interventional");
  CHECK(s["options"]["model_output"] == "raw");
  CHECK(s["options"]["background_rows"] == 100);
  CHECK(s["checks"]["local_accuracy"]["passed"] == true);
  CHECK(s["checks"]["local_accuracy"]["max_relative_gap"].get<double>() <= 1e-6);
  CHECK(std::fabs(s["expected_value"][0].get<double>() - g["interventional"]["expected_value"][0].get<double>()) <= kShapAbs);
  const Tensor a = datasets::read_npy_float(dir + "/a.npy");
  const auto want = g["interventional"]["values"].get<std::vector<double>>();
  REQUIRE(a.numel() == static_cast<int64_t>(want.size()));
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, std::fabs(a.f32()[i] - want[i]));
  CHECK(worst <= kShapAbs);
  // every row: sum of attributions + expected value = f(x) (the margin of class 1)
  for (const auto& row : s["samples"]) {
    const int64_t i = row["index"];
    double sum = row["expected_value"].get<double>();
    for (int64_t j = 0; j < 7; ++j) sum += a.f32()[i * 7 + j];
    CHECK(std::fabs(sum - row["output_x"].get<double>()) <= kFloat32Sum);
    CHECK(std::fabs(row["local_accuracy_gap"].get<double>()) <= 1e-6);
  }

  // class 0 is the negated margin: attributions flip sign
  auto r0 = run_cli(fmt::format("explain --model {} --data {}/x.npy --background {}/bg.npy --method tree-shap --target 0 "
                                "--attributions {}/a0.npy",
                                fixture("xgb_binary.onnx"), dir, dir, dir));
  REQUIRE(r0.exit_code == 0);
  const Tensor a0 = datasets::read_npy_float(dir + "/a0.npy");
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a0.f32()[i] == -a.f32()[i]);

  // probability output: shap's per-reference rescaling
  auto rp = run_cli(fmt::format("explain --model {} --data {}/x.npy --background {}/bg.npy --method tree-shap --target 1 "
                                "--shap-model-output probability --out {}/rp.json --attributions {}/ap.npy",
                                fixture("xgb_binary.onnx"), dir, dir, dir, dir));
  INFO(rp.output);
  REQUIRE(rp.exit_code == 0);
  const Tensor ap = datasets::read_npy_float(dir + "/ap.npy");
  const auto wantp = g["probability"]["values"].get<std::vector<double>>();
  worst = 0;
  for (int64_t i = 0; i < ap.numel(); ++i) worst = std::max(worst, std::fabs(ap.f32()[i] - wantp[i]));
  CHECK(worst <= kShapAbs);
  CHECK(read_json_file(dir + "/rp.json")["options"]["model_output"] == "probability");
}

TEST_CASE("cli explain: tree-path-dependent TreeSHAP with --interactions", "[explain][cli][tree-shap]") {
  const std::string dir = test::temp_dir("treeshap-pd");
  write_golden_inputs(dir);
  auto r = run_cli(fmt::format("explain --model {} --data {}/x.npy --background {} --method tree-shap "
                               "--feature-perturbation tree-path-dependent --target 1 --out {}/r.json "
                               "--attributions {}/a.npy --interactions {}/i.npy",
                               fixture("xgb_binary.onnx"), dir, fixture("shap/credit_train_x.npy"), dir, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json s = read_json_file(dir + "/r.json");
  CHECK(s["method"] == "tree-shap");
  CHECK_FALSE(s.contains("method_requested"));
  CHECK(s["options"]["feature_perturbation"] == "tree_path_dependent");
  CHECK(s["options"]["covers"].get<std::string>().find("rows of --background reaching each node (4000 rows)") !=
        std::string::npos);
  CHECK(s["interactions_max_local_accuracy_gap"].get<double>() <= 1e-6);
  const Tensor a = datasets::read_npy_float(dir + "/a.npy");
  const Tensor in = datasets::read_npy_float(dir + "/i.npy");
  REQUIRE(in.shape() == engine::Shape{20, 7, 7});
  // interaction rows sum to the SHAP values
  double worst = 0;
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t f = 0; f < 7; ++f) {
      double sum = 0;
      for (int64_t b = 0; b < 7; ++b) sum += in.f32()[(i * 7 + f) * 7 + b];
      worst = std::max(worst, std::fabs(sum - a.f32()[i * 7 + f]));
    }
  CHECK(worst <= kFloat32Sum);
  CHECK(worst >= 0);
  double off_diagonal = 0;
  for (int64_t i = 0; i < 20; ++i) off_diagonal += std::fabs(in.f32()[(i * 7 + 1) * 7 + 2]);
  CHECK(off_diagonal > 1e-3);  // the trees do interact: a file of zeros would fail here
}

TEST_CASE("cli explain: --method shap on a network falls back to KernelSHAP and says so", "[explain][cli][tree-shap]") {
  const std::string dir = test::temp_dir("treeshap-mlp");
  auto r = run_cli(fmt::format("explain --model {} --data {} --background {} --method shap --limit 2 --out {}/r.json",
                               test::source_path("models/credit_mlp.onnx"), test::source_path("datasets/demo/credit_x.npy"),
                               test::source_path("datasets/demo/credit_background.npy"), dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const json s = read_json_file(dir + "/r.json");
  CHECK(s["method"] == "kernel-shap");
  CHECK(s["method_requested"] == "shap");
  CHECK(s["method_choice"] == "not a tree ensemble: KernelSHAP");
}

TEST_CASE("cli explain: tree-shap input errors exit 2 with one line", "[explain][cli][tree-shap]") {
  const std::string dir = test::temp_dir("treeshap-err");
  const std::string xgb = fixture("xgb_binary.onnx"), x = fixture("credit_x.npy"), bg = fixture("shap/credit_train_x.npy");
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {fmt::format("--model {} --data {} --background {} --method tree-shap",
                   test::source_path("models/credit_mlp.onnx"), test::source_path("datasets/demo/credit_x.npy"),
                   test::source_path("datasets/demo/credit_background.npy")),
       "--method tree-shap needs a tree-ensemble model"},
      {fmt::format("--model {} --data {} --method tree-shap", xgb, x), "--method tree-shap needs --background B.npy"},
      {fmt::format("--model {} --data {} --background {} --method tree-shap --feature-perturbation tree-path-dependent "
                   "--shap-model-output probability", xgb, x, bg),
       "--shap-model-output probability needs --feature-perturbation interventional"},
      {fmt::format("--model {} --data {} --background {} --method tree-shap --interactions {}/i.npy", xgb, x, bg, dir),
       "--interactions needs --feature-perturbation tree-path-dependent"},
      {fmt::format("--model {} --data {} --background {} --method kernel-shap --feature-perturbation interventional", xgb,
                   x, bg),
       "--feature-perturbation applies to --method tree-shap only"},
      {fmt::format("--model {} --data {} --background {} --method tree-shap --output softmax", xgb, x, bg),
       "use --shap-model-output probability instead of --output softmax"},
      {fmt::format("--model {} --data {} --background {} --method tree-shap --feature-perturbation conditional", xgb, x, bg),
       "'conditional' is not interventional or tree-path-dependent"},
      {fmt::format("--model {} --data {} --background {} --method tree-shap", xgb, x, fixture("three_x.npy")),
       "rows must match the data's"},
  };
  for (const auto& c : cases) {
    auto r = run_cli("explain " + c.args + " --out " + dir + "/r.json");
    INFO(c.args << "\n" << r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(c.message) != std::string::npos);
    CHECK(r.output.find("mlaudit: error:") != std::string::npos);
  }
}
