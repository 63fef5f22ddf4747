// Exported models through every command that applies to them (the issue's bar: "a user's current
// PyTorch or scikit-learn export loads and runs through every command that applies to it"), on
// the zoo's fixtures (tools/export_zoo.py). Labels are the model's own predictions (onnxruntime's
// goldens), so every run has a meaningful clean accuracy of 1.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using nlohmann::json;

namespace {

std::string zoo(const std::string& name) { return test::source_path("tests/fixtures/zoo/" + name); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Argmax of each row of a golden [N, C] output, written as int64 labels.
std::string predicted_labels(const std::string& golden, const std::string& dir, const std::string& tag) {
  engine::Tensor out = datasets::read_npy(golden).to(engine::DType::Float32);
  REQUIRE(out.rank() == 2);
  std::vector<int64_t> y;
  for (int64_t i = 0; i < out.dim(0); ++i) {
    const float* row = out.f32() + i * out.dim(1);
    y.push_back(std::max_element(row, row + out.dim(1)) - row);
  }
  std::string path = dir + "/" + tag + "_y.npy";
  datasets::write_npy(path, engine::Tensor::from_ints({int64_t(y.size())}, y));
  return path;
}

// The rows of an .npy in reverse order (a non-member set that is not byte-identical to the members).
std::string reversed_rows(const std::string& path, const std::string& dir, const std::string& tag) {
  engine::Tensor t = datasets::read_npy(path);
  std::vector<int64_t> rows;
  for (int64_t i = t.dim(0); i-- > 0;) rows.push_back(i);
  std::string out = dir + "/" + tag + "_reversed.npy";
  datasets::write_npy(out, t.gather_rows(rows));
  return out;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  return json::parse(in);
}

}  // namespace

TEST_CASE("zoo CLI: a PyTorch export (GELU, LayerNorm, opset 20) runs through the gradient and black-box commands",
          "[engine][zoo][cli]") {
  const std::string name = "tabular_mlp_dynamo";
  if (!std::ifstream(zoo(name + "/model.onnx"))) {
    WARN("zoo fixtures missing; skipped");
    return;
  }
  std::string dir = test::temp_dir("zoo-cli-torch");
  std::string model = zoo(name + "/model.onnx"), x = zoo(name + "/input_b7.npy");
  std::string y = predicted_labels(zoo(name + "/out0_b7.npy"), dir, "mlp");
  auto r = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack pgd --eps 0.5 --steps 20 --clip-min -100 --clip-max 100 --out {}/pgd.json",
                                     model, x, y, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(read_json(dir + "/pgd.json").dump().find("robust_accuracy") != std::string::npos);
  r = test::run_cli(fmt::format("explain --model {} --data {} --method integrated-gradients --out {}/ig.npy --json {}/ig.json",
                                model, x, dir, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(datasets::read_npy(dir + "/ig.npy").shape() == engine::Shape{7, 12});
  r = test::run_cli(fmt::format("explain --model {} --data {} --method kernel-shap --samples 256 --background {} --out {}/ks.npy", model, x, x, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = test::run_cli(fmt::format("certify --model {} --data {} --labels {} --sigma 0.25 --n0 20 --n 200 --out {}/c.json", model,
                                x, y, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = test::run_cli(fmt::format("corrupt --model {} --data {} --labels {} --severities 1 --out {}/corrupt.json", model, x, y, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
}

TEST_CASE("zoo CLI: scikit-learn and XGBoost tree models run the black-box commands, gradient commands say why not",
          "[engine][zoo][cli]") {
  for (const std::string name : {"sk_random_forest", "xgboost_classifier", "sk_gradient_boosting"}) {
    if (!std::ifstream(zoo(name + "/model.onnx"))) {
      WARN("zoo fixtures missing; skipped");
      return;
    }
    DYNAMIC_SECTION(name) {
      std::string dir = test::temp_dir("zoo-cli-" + name);
      std::string model = zoo(name + "/model.onnx"), x = zoo(name + "/input_b7.npy");
      // The probabilities: out1 (label is out0) for the zipmap-free models; ZipMap's input otherwise.
      std::string probs = zoo(name + "/out1_b7.npy");
      if (!std::ifstream(probs)) probs = zoo(name + "/extra0_b7.npy");
      std::string y = predicted_labels(probs, dir, "tree");

      auto r = test::run_cli(fmt::format("info --model {}", model));
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      CHECK(contains(r.output, "gradients:  no, not differentiable at"));

      // Gradient methods: exit 2, one line naming the node and the black-box alternatives.
      r = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack pgd --eps 0.1 --out {}/pgd.json", model,
                                    x, y, dir));
      INFO(r.output);
      CHECK(r.exit_code == 2);
      CHECK(contains(r.output, "is not differentiable; use a black-box method instead"));
      CHECK(contains(r.output, "TreeEnsemble"));
      CHECK(!std::ifstream(dir + "/pgd.json").good());
      r = test::run_cli(fmt::format("explain --model {} --data {} --method integrated-gradients --out {}/ig.npy", model, x, dir));
      CHECK(r.exit_code == 2);
      CHECK(contains(r.output, "kernel-shap"));
      // verify reads the trees exactly (verify/trees.h) instead of refusing the model.
      r = test::run_cli(fmt::format("verify --model {} --data {} --eps 0.1 --clip-min -1e6 --clip-max 1e6 --out {}/v.json",
                                    model, x, dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      CHECK(contains(r.output, "exact tree verification"));
      CHECK(std::ifstream(dir + "/v.json").good());

      // Black-box methods work.
      r = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack square --eps 0.5 --queries 200 --clip-min -1e6 --clip-max 1e6 --out {}/sq.json",
                                    model, x, y, dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      CHECK(contains(r.output, "is a probability vector"));  // audited through log p
      r = test::run_cli(fmt::format("explain --model {} --data {} --method kernel-shap --samples 256 --background {} --out {}/ks.npy", model, x, x, dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      r = test::run_cli(fmt::format("explain --model {} --data {} --labels {} --method permutation --out {}/perm.npy", model, x, y, dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      r = test::run_cli(fmt::format("corrupt --model {} --data {} --labels {} --severities 1 --out {}/corrupt.json", model, x, y, dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
      r = test::run_cli(fmt::format("privacy --model {} --members {} --member-labels {} --non-members {} --non-member-labels {} "
                                    "--out {}/privacy.json",
                                    model, x, y, reversed_rows(x, dir, "x"), reversed_rows(y, dir, "y"), dir));
      INFO(r.output);
      CHECK(r.exit_code == 0);
    }
  }
}

TEST_CASE("zoo CLI: fairness --model on a scikit-learn pipeline scores with its own probabilities", "[engine][zoo][cli]") {
  const std::string name = "sk_logreg_pipeline";
  if (!std::ifstream(zoo(name + "/model.onnx"))) {
    WARN("zoo fixtures missing; skipped");
    return;
  }
  std::string dir = test::temp_dir("zoo-cli-fairness");
  engine::Tensor x = datasets::read_npy(zoo(name + "/input_b7.npy")).to(engine::DType::Float32);
  // ZipMap's input (the probability tensor onnxruntime computed) is the golden of the scores.
  engine::Tensor p = datasets::read_npy(zoo(name + "/extra0_b7.npy")).to(engine::DType::Float32);
  REQUIRE(x.rank() == 2);
  const int64_t n = x.dim(0), f = x.dim(1);
  std::string csv = "f0";
  for (int64_t k = 1; k < f; ++k) csv += ",f" + std::to_string(k);
  csv += ",group,label\n";
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < f; ++k) csv += fmt::format("{:.9g},", x.f32()[i * f + k]);
    csv += fmt::format("{},{}\n", i % 2 ? "a" : "b", i % 3 ? 1 : 0);
  }
  datasets::write_file_atomic(dir + "/t.csv", csv);
  std::string features = "f0";
  for (int64_t k = 1; k < f; ++k) features += ",f" + std::to_string(k);
  auto r = test::run_cli(fmt::format("fairness --data {}/t.csv --label label --protected group --model {} --features {} "
                                     "--threshold 0.5 --bootstrap 0 --min-group-size 1 --out {}/f.json",
                                     dir, zoo(name + "/model.onnx"), features, dir));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // Selection rate of each group from the golden probabilities: p[:, 1] >= 0.5.
  json j = read_json(dir + "/f.json");
  std::string dumped = j.dump();
  int favourable_a = 0, favourable_b = 0, rows_a = 0, rows_b = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool fav = p.f32()[i * p.dim(1) + 1] >= 0.5f;
    (i % 2 ? favourable_a : favourable_b) += fav;
    (i % 2 ? rows_a : rows_b) += 1;
  }
  bool found = false;
  for (const auto& g : j["groups"]) {
    if (!g.contains("group") || !g.contains("selection_rate")) continue;
    if (g["group"] == "a") {
      CHECK(g["selection_rate"]["value"].get<double>() == Approx(double(favourable_a) / rows_a));
      found = true;
    }
    if (g["group"] == "b") CHECK(g["selection_rate"]["value"].get<double>() == Approx(double(favourable_b) / rows_b));
  }
  INFO(dumped.substr(0, 2000));
  CHECK(found);
}

TEST_CASE("zoo CLI: an audit YAML points at a scikit-learn export and its probability output", "[engine][zoo][cli]") {
  const std::string name = "sk_gradient_boosting";
  if (!std::ifstream(zoo(name + "/model.onnx"))) {
    WARN("zoo fixtures missing; skipped");
    return;
  }
  std::string dir = test::temp_dir("zoo-cli-audit");
  std::string y = predicted_labels(zoo(name + "/extra0_b7.npy"), dir, "gb");
  std::string yaml = "system: {name: zoo audit}\n"
                     "models:\n  gb: {path: " + zoo(name + "/model.onnx") + ", output: proba_output}\n"
                     "datasets:\n  d: {data: " + zoo(name + "/input_b7.npy") + ", labels: " + y + "}\n"
                     "sections:\n"
                     "  performance:\n    - {model: gb, data: d, bootstrap: 100}\n"
                     "  robustness:\n    - {model: gb, data: d, attacks: [square], norm: linf, eps: [0.1], args: [--clip-min, '-1e6', --clip-max, '1e6', --queries, '100']}\n"
                     "gates:\n  - check: accuracy() >= 0.99\n    model: gb\n    name: agrees with its own predictions\n";
  datasets::write_file_atomic(dir + "/audit.yaml", yaml);
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json report = read_json(dir + "/out/report.json");
  CHECK(report.dump().find("\"accuracy\"") != std::string::npos);
  // A name the model does not have stops the audit (exit 2) with the model's outputs listed.
  datasets::write_file_atomic(dir + "/bad.yaml", std::string(yaml).replace(yaml.find("output: proba_output"), 20, "output: nope        "));
  r = test::run_cli("audit --config " + dir + "/bad.yaml --out " + dir + "/out2 --no-pdf");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--output 'nope': the model has no such output"));
}
