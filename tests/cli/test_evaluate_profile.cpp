// mlaudit evaluate (accuracy with intervals), mlaudit profile (cost of a forward pass) and
// info --out: the commands behind the audit's performance and efficiency sections and its
// model summary; engine::estimate_flops on hand-counted graphs.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "json_util.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/cost.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;

namespace {

std::string src(const std::string& p) { return test::source_path(p); }

// Accuracy and per-class counts of `model` on (x, y), from the engine's forward directly.
void reference_accuracy(const std::string& model, const engine::Tensor& x, const std::vector<int64_t>& y, int64_t& hits,
                        std::vector<int64_t>& per_class_count, std::vector<int64_t>& per_class_hits) {
  engine::SessionOptions o;
  o.binary_two_classes = true;
  auto s = engine::Session::load(model, o);
  auto pred = engine::argmax_rows(s->forward(x));
  hits = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (size_t(y[i]) >= per_class_count.size()) per_class_count.resize(size_t(y[i]) + 1), per_class_hits.resize(size_t(y[i]) + 1);
    ++per_class_count[size_t(y[i])];
    if (pred[i] == y[i]) ++hits, ++per_class_hits[size_t(y[i])];
  }
}

engine::Attribute ints_attr(std::vector<int64_t> v) {
  engine::Attribute a;
  a.kind = engine::Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

}  // namespace

TEST_CASE("evaluate: accuracy, per-class accuracy and both intervals on the bundled CNN", "[cli][evaluate]") {
  auto dir = test::temp_dir("evaluate");
  const std::string out = dir + "/perf.json";
  auto r = test::run_cli("-q evaluate --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") +
                         " --labels " + src("datasets/demo/fmnist_y.npy") + " --bootstrap 500 --seed 3 --out " + out);
  REQUIRE(r.exit_code == 0);
  auto j = test::read_json(out);
  CHECK(j["schema"] == "mlaudit.performance/1");
  engine::Tensor x = datasets::read_npy_float(src("datasets/demo/fmnist_x.npy"));
  std::vector<int64_t> y = datasets::read_npy_labels(src("datasets/demo/fmnist_y.npy")).to_int64s();
  int64_t hits = 0;
  std::vector<int64_t> count, hit;
  reference_accuracy(src("models/fmnist_cnn.onnx"), x, y, hits, count, hit);
  const double n = double(y.size());
  CHECK(j["samples"].get<int64_t>() == int64_t(y.size()));
  CHECK(j["accuracy"].get<double>() == Approx(double(hits) / n).epsilon(1e-12));
  CHECK(j["bootstrap"].get<int64_t>() == 500);
  // The percentile interval brackets the point estimate; the exact interval counts the hits.
  CHECK(j["accuracy_interval"][0].get<double>() <= j["accuracy"].get<double>());
  CHECK(j["accuracy_interval"][1].get<double>() >= j["accuracy"].get<double>());
  CHECK(j["accuracy_ci"]["k"].get<int64_t>() == hits);
  CHECK(j["accuracy_ci"]["n"].get<int64_t>() == int64_t(y.size()));
  int64_t total = 0;
  for (const auto& c : j["per_class"]) {
    const size_t k = c["class"].get<size_t>();
    CHECK(c["count"].get<int64_t>() == (k < count.size() ? count[k] : 0));
    if (c["count"].get<int64_t>() > 0) CHECK(c["accuracy"].get<double>() == Approx(double(hit[k]) / double(count[k])));
    total += c["count"].get<int64_t>();
  }
  CHECK(total == int64_t(y.size()));
  // --limit keeps the first rows; the same seed gives the same interval.
  auto again = test::run_cli("-q evaluate --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") +
                             " --labels " + src("datasets/demo/fmnist_y.npy") + " --bootstrap 500 --seed 3 --out " + dir + "/again.json");
  REQUIRE(again.exit_code == 0);
  CHECK(test::read_json(dir + "/again.json")["accuracy_interval"] == j["accuracy_interval"]);
  auto limited = test::run_cli("-q evaluate --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") +
                               " --labels " + src("datasets/demo/fmnist_y.npy") + " --limit 50 --out " + dir + "/l.json");
  REQUIRE(limited.exit_code == 0);
  CHECK(test::read_json(dir + "/l.json")["samples"].get<int64_t>() == 50);
}

TEST_CASE("evaluate: a CSV table with a label column and feature list (credit MLP)", "[cli][evaluate]") {
  auto dir = test::temp_dir("evaluate-csv");
  auto r = test::run_cli("-q evaluate --model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/credit/credit_test.csv") +
                         " --label-column approved --features @" + src("datasets/credit/features.txt") + " --out " + dir + "/p.json");
  REQUIRE(r.exit_code == 0);
  auto j = test::read_json(dir + "/p.json");
  auto table = datasets::read_csv(src("datasets/credit/credit_test.csv"));
  engine::Tensor x = table.matrix({"age", "income", "debt_ratio", "years_employed", "num_credit_lines", "late_payments", "sex"});
  std::vector<int64_t> y;
  for (double v : table.numbers("approved")) y.push_back(int64_t(std::llround(v)));
  int64_t hits = 0;
  std::vector<int64_t> count, hit;
  reference_accuracy(src("models/credit_mlp.onnx"), x, y, hits, count, hit);
  CHECK(j["samples"].get<int64_t>() == int64_t(y.size()));
  CHECK(j["accuracy"].get<double>() == Approx(double(hits) / double(y.size())).epsilon(1e-12));
}

TEST_CASE("evaluate and profile: bad input exits 2 with one line", "[cli][evaluate]") {
  const std::string m = " --model " + src("models/fmnist_cnn.onnx");
  const std::string x = " --data " + src("datasets/demo/fmnist_x.npy");
  struct Case {
    std::string args, expect;
  };
  for (const auto& c : std::vector<Case>{
           {"evaluate" + m + x, "--labels' is required"},
           {"evaluate" + m + x + " --labels " + src("datasets/demo/credit_y.npy"), "inputs but"},
           {"evaluate" + m + x + " --labels " + src("datasets/demo/fmnist_y.npy") + " --ci 1.5", "--ci 1.5"},
           {"evaluate" + m + " --data " + src("datasets/credit/credit_test.csv"), "--label-column and --features"},
           {"profile" + m + " --runs 0", "--runs must be >= 1"},
           {"profile" + m + " --clip-min 1 --clip-max 0", "input range [1, 0] is empty"},
       }) {
    INFO(c.args);
    auto r = test::run_cli(c.args);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(c.expect) != std::string::npos);
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  }
}

TEST_CASE("profile: latency, throughput and operations of the bundled CNN", "[cli][profile]") {
  auto dir = test::temp_dir("profile");
  auto r = test::run_cli("-q profile --model " + src("models/fmnist_cnn.onnx") + " --runs 20 --batch 16 --out " + dir + "/e.json");
  REQUIRE(r.exit_code == 0);
  auto j = test::read_json(dir + "/e.json");
  CHECK(j["schema"] == "mlaudit.efficiency/1");
  CHECK(j["latency_runs"].get<int64_t>() == 20);
  CHECK(j["latency_p50_ms"].get<double>() > 0);
  CHECK(j["latency_p99_ms"].get<double>() >= j["latency_p50_ms"].get<double>());
  CHECK(j["batch"].get<int64_t>() == 16);
  CHECK(j["throughput_per_s"].get<double>() > 0);
  // FLOPs equal the graph's count, which info reports too.
  const double flops = engine::estimate_flops(engine::load_onnx(src("models/fmnist_cnn.onnx")));
  CHECK(j["flops"].get<double>() == flops);
  auto info = test::run_cli("-q info --model " + src("models/fmnist_cnn.onnx") + " --out " + dir + "/i.json");
  REQUIRE(info.exit_code == 0);
  CHECK(info.output.empty());
  auto i = test::read_json(dir + "/i.json");
  CHECK(i["schema"] == "mlaudit.info/1");
  CHECK(i["flops"].get<double>() == flops);
  CHECK(i["parameters"].get<int64_t>() == j["parameters"].get<int64_t>());
}

TEST_CASE("estimate_flops: hand counts for a conv, a gemm and a tree ensemble", "[engine][cost]") {
  // Conv 1->4, 3x3, pad 1 on 1x5x5 (+bias), Relu, Flatten, Gemm 100->3 (+bias).
  engine::Graph g;
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {-1, 1, 5, 5}});
  g.outputs.push_back({"y", engine::DType::Float32, {-1, 3}});
  g.initializers["W"] = engine::Tensor(engine::Shape{4, 1, 3, 3});
  g.initializers["B"] = engine::Tensor(engine::Shape{4});
  g.initializers["G"] = engine::Tensor(engine::Shape{100, 3});
  g.initializers["C"] = engine::Tensor(engine::Shape{3});
  engine::Node conv{"conv", "Conv", "", {"x", "W", "B"}, {"c"}, {}};
  conv.attributes["kernel_shape"] = ints_attr({3, 3});
  conv.attributes["pads"] = ints_attr({1, 1, 1, 1});
  g.nodes.push_back(conv);
  g.nodes.push_back({"relu", "Relu", "", {"c"}, {"r"}, {}});
  g.nodes.push_back({"flat", "Flatten", "", {"r"}, {"f"}, {}});
  g.nodes.push_back({"fc", "Gemm", "", {"f", "G", "C"}, {"y"}, {}});
  // conv: 100 outputs x (2 x 9 + 1); relu: 100; flatten: 0; gemm: 3 x (2 x 100 + 1)
  CHECK(engine::estimate_flops(g) == 100.0 * 19 + 100 + 3 * 201);

  // Two trees: depth 2 (root, an inner node, three leaves) and depth 1 (a stump).
  engine::Graph t;
  t.opset = 13;
  t.ml_opset = 3;
  t.inputs.push_back({"x", engine::DType::Float32, {-1, 2}});
  t.outputs.push_back({"y", engine::DType::Float32, {-1, 1}});
  engine::Node n{"trees", "TreeEnsembleRegressor", "ai.onnx.ml", {"x"}, {"y"}, {}};
  n.attributes["nodes_treeids"] = ints_attr({0, 0, 0, 0, 0, 1, 1, 1});
  n.attributes["nodes_nodeids"] = ints_attr({0, 1, 2, 3, 4, 0, 1, 2});
  n.attributes["nodes_featureids"] = ints_attr({0, 1, 0, 0, 0, 1, 0, 0});
  engine::Attribute thresholds;
  thresholds.kind = engine::Attribute::Kind::Floats;
  thresholds.floats = {0.5f, 0.5f, 0, 0, 0, 0.25f, 0, 0};
  n.attributes["nodes_values"] = thresholds;
  n.attributes["nodes_truenodeids"] = ints_attr({1, 3, 0, 0, 0, 1, 0, 0});
  n.attributes["nodes_falsenodeids"] = ints_attr({2, 4, 0, 0, 0, 2, 0, 0});
  engine::Attribute modes;
  modes.kind = engine::Attribute::Kind::Strings;
  modes.strings = {"BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"};
  n.attributes["nodes_modes"] = modes;
  engine::Attribute one;
  one.i = 1;
  n.attributes["n_targets"] = one;
  n.attributes["target_treeids"] = ints_attr({0, 0, 0, 1, 1});
  n.attributes["target_nodeids"] = ints_attr({2, 3, 4, 1, 2});
  n.attributes["target_ids"] = ints_attr({0, 0, 0, 0, 0});
  engine::Attribute w;
  w.kind = engine::Attribute::Kind::Floats;
  w.floats = {1, 2, 3, 4, 5};
  n.attributes["target_weights"] = w;
  t.nodes.push_back(n);
  // (2 comparisons + 1 leaf add) + (1 + 1)
  CHECK(engine::estimate_flops(t) == 5.0);
}
