// Ops of engine/src/ops_ml.cpp (the ai.onnx.ml domain): values against onnxruntime (fixtures by
// tools/ml_goldens.py: hand-built models per op version, post_transform, aggregate function,
// node mode and SVM kernel; scikit-learn, XGBoost and LightGBM models; ONNX's own ai.onnx.ml
// node tests), the gradient refusal for tree models, edge cases, and errors naming the node for
// malformed attributes (the arrays come from untrusted files).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <limits>
#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string ml_dir() { return test::source_path("tests/fixtures/engine/ops_ml"); }

// One ai.onnx.ml node in a graph built in code (default-domain opset 17); its inputs take any shape.
struct MlNode : OneNode {
  MlNode(const std::string& op, int64_t ml_opset, std::vector<std::pair<std::string, DType>> outputs = {{"Y", DType::Float32}})
      : OneNode(op, 17, outputs) {
    g.ml_opset = ml_opset;
    node.domain = "ai.onnx.ml";
    declare_input_shapes = false;
  }
};

// A valid two-tree regressor over 3 features: tree 0 splits x0 <= 0.5 (leaves 1, 2), tree 1 is
// node 0 (x2 > 0) -> 1, 2. Tests break one attribute at a time.
MlNode tree_regressor(const Tensor& x) {
  MlNode n("TreeEnsembleRegressor", 3);
  n.in("X", x)
      .attr("n_targets", int64_t(1))
      .attr("nodes_treeids", std::vector<int64_t>{0, 0, 0, 1, 1, 1})
      .attr("nodes_nodeids", std::vector<int64_t>{0, 1, 2, 0, 1, 2})
      .attr("nodes_featureids", std::vector<int64_t>{0, 0, 0, 2, 0, 0})
      .attr("nodes_modes", strs_attr({"BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_GT", "LEAF", "LEAF"}))
      .attr("nodes_values", std::vector<float>{0.5f, 0, 0, 0.f, 0, 0})
      .attr("nodes_truenodeids", std::vector<int64_t>{1, 0, 0, 1, 0, 0})
      .attr("nodes_falsenodeids", std::vector<int64_t>{2, 0, 0, 2, 0, 0})
      .attr("target_ids", std::vector<int64_t>{0, 0, 0, 0})
      .attr("target_nodeids", std::vector<int64_t>{1, 2, 1, 2})
      .attr("target_treeids", std::vector<int64_t>{0, 0, 1, 1})
      .attr("target_weights", std::vector<float>{1.f, 2.f, 10.f, 20.f});
  return n;
}

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("ml ops: forward matches onnxruntime", "[engine][ops][ml]") {
  // 121 cases: every op and version of the ml domain the engine registers, converted models
  // (scikit-learn, XGBoost, LightGBM) and ONNX's numeric ai.onnx.ml node tests.
  CHECK(test::check_op_forward(ml_dir()) >= 115);
}

TEST_CASE("ml ops: forward-only (no gradient cases, every op registered not differentiable)", "[engine][ops][ml][grad]") {
  CHECK(test::check_op_vjp(ml_dir()) == 0);
  CHECK(test::check_op_finite_differences(ml_dir(), {}) == 0);
  int ml_ops = 0;
  for (const auto& row : engine::op_support_table()) {
    if (row.domain != "ai.onnx.ml") continue;
    INFO(row.op_type);
    CHECK_FALSE(row.differentiable);
    CHECK_FALSE(row.gradient);
    ++ml_ops;
  }
  CHECK(ml_ops == 15);
}

TEST_CASE("ml ops: string class labels leave the label output uncomputed", "[engine][ops][ml]") {
  // tree_classifier_strings: the label output is a string tensor, listed as opaque by the loader;
  // the Session's output 0 is the probabilities.
  auto s = engine::Session::load(ml_dir() + "/tree_classifier_strings/model.onnx");
  REQUIRE(s->outputs().size() == 1);
  CHECK(s->outputs()[0].name == "scores");
  REQUIRE(s->graph().opaque_outputs.size() == 1);
  CHECK(s->graph().opaque_outputs[0].name == "label");
}

// ---------------------------------------------------------------- gradients

TEST_CASE("ml ops: a tree model blocks gradients and names the node", "[engine][ops][ml][grad]") {
  for (const std::string name : {"sklearn_random_forest_binary", "tree_ensemble_v5_sum_2t", "svm_classifier_rbf_3c"}) {
    INFO(name);
    auto s = engine::Session::load(ml_dir() + "/" + name + "/model.onnx");
    REQUIRE_FALSE(s->gradient_blockers().empty());
    const engine::Node& blocker = *s->gradient_blockers().front();
    CHECK(blocker.domain == "ai.onnx.ml");
    Tensor x(DType::Float32, {1, 1});  // refused before the input is looked at
    auto seed = [](const Tensor& out) { return Tensor::full(out.shape(), 1.f); };
    CHECK_THROWS_AS(s->input_gradient(x, seed), UnsupportedError);
    CHECK_THROWS_WITH(s->input_gradient(x, seed), Catch::Contains("not differentiable") && Catch::Contains("kernel-shap") &&
                                                      Catch::Contains(blocker.name));
  }
}

// ---------------------------------------------------------------- versions

TEST_CASE("ml ops: TreeEnsembleRegressor at ml opset 5 (deprecated) is refused by name", "[engine][ops][ml]") {
  MlNode n = tree_regressor(floats({1, 3}, {0, 0, 0}));
  n.g.ml_opset = 5;
  CHECK_THROWS_AS(n.run(), UnsupportedError);
  CHECK_THROWS_WITH(n.run(), Catch::Contains("TreeEnsembleRegressor") && Catch::Contains("version 5") &&
                                 Catch::Contains("TreeEnsembleRegressor_0"));
}

TEST_CASE("ml ops: the tree regressor at ml opsets 1 and 3 gives the same sums", "[engine][ops][ml]") {
  Tensor x = floats({3, 3}, {0.f, 0, 1, 1, 0, -1, 0.5f, 9, 0});
  for (int64_t opset : {1, 3}) {
    MlNode n = tree_regressor(x);
    n.g.ml_opset = opset;
    auto y = n.run();
    REQUIRE(y[0].shape() == Shape{3, 1});
    // Row 0: leaf 1 (1) + x2 > 0 (10); row 1: 2 + 20; row 2: x0 = 0.5 <= 0.5 -> 1, x2 = 0 -> 20.
    CHECK(y[0].to_doubles() == std::vector<double>{11, 22, 21});
  }
}

TEST_CASE("ml ops: LabelEncoder v1 int64 -> string is not computed, string keys are refused", "[engine][ops][ml]") {
  {
    MlNode n("LabelEncoder", 1, {{"Y", DType::Int64}});
    n.in("X", ints({2}, {0, 1})).attr("classes_strings", strs_attr({"a", "b"}));
    engine::Graph g = n.graph();
    g.outputs.clear();  // the string output is opaque; nothing asks for it
    g.outputs.push_back({"X2", DType::Int64, {}});
    g.nodes[0].outputs = {"Y"};
    engine::Node id;
    id.name = "identity";
    id.op_type = "Identity";
    id.inputs = {"X"};
    id.outputs = {"X2"};
    g.nodes.push_back(id);
    CHECK(engine::Session(g).run(n.feeds)[0].to_doubles() == std::vector<double>{0, 1});
  }
  {
    MlNode n("LabelEncoder", 2, {{"Y", DType::Int64}});
    n.in("X", ints({1}, {0})).attr("keys_strings", strs_attr({"a"})).attr("values_int64s", std::vector<int64_t>{1});
    CHECK_THROWS_AS(n.run(), UnsupportedError);
    CHECK_THROWS_WITH(n.run(), Catch::Contains("string keys") && Catch::Contains("LabelEncoder_0"));
  }
}

TEST_CASE("ml ops: LabelEncoder v4 default_tensor and NaN keys, v2 never matches NaN", "[engine][ops][ml]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t opset : {2, 4}) {
    MlNode n("LabelEncoder", opset);
    n.in("X", floats({3}, {nan, 1.f, 2.f})).attr("keys_floats", std::vector<float>{nan, 1.f}).attr("values_floats", std::vector<float>{7.f, 8.f});
    if (opset == 4) n.attr("default_tensor", tensor_attr(floats({1}, {-5.f})));
    auto y = n.run()[0].to_doubles();
    if (opset == 4) {
      CHECK(y == std::vector<double>{7, 8, -5});
    } else {
      CHECK(y[1] == 8);
      CHECK(y[2] == 0);  // default_float -0.0
      CHECK(y[0] == 0);
    }
  }
}

// ---------------------------------------------------------------- edge cases

TEST_CASE("ml ops: empty batches and 1-D rows", "[engine][ops][ml]") {
  {
    MlNode n = tree_regressor(Tensor(DType::Float32, {0, 3}));
    CHECK(n.run()[0].shape() == Shape{0, 1});
  }
  {
    MlNode n = tree_regressor(floats({3}, {0, 0, 1}));
    auto y = n.run();
    CHECK(y[0].shape() == Shape{1, 1});
    CHECK(y[0].to_doubles() == std::vector<double>{11});
  }
  {
    MlNode n("LinearClassifier", 1, {{"scores", DType::Float32}, {"label", DType::Int64}});
    n.node.outputs = {"label", "scores"};
    n.in("X", Tensor(DType::Float32, {0, 2}))
        .attr("coefficients", std::vector<float>{1, 2, 3, 4})
        .attr("intercepts", std::vector<float>{0, 1})
        .attr("classlabels_ints", std::vector<int64_t>{4, 5})
        .attr("post_transform", str_attr("SOFTMAX"));
    auto y = n.run();
    CHECK(y[0].shape() == Shape{0, 2});
    CHECK(y[1].shape() == Shape{0});
  }
}

TEST_CASE("ml ops: tree ensembles share subtrees (a DAG) but not cycles", "[engine][ops][ml]") {
  // LightGBM-style set membership: two BRANCH_EQ nodes whose true branches meet at one leaf.
  MlNode n("TreeEnsembleRegressor", 1);
  n.in("X", floats({3, 1}, {1, 3, 5}))
      .attr("n_targets", int64_t(1))
      .attr("nodes_treeids", std::vector<int64_t>{0, 0, 0, 0})
      .attr("nodes_nodeids", std::vector<int64_t>{0, 1, 2, 3})
      .attr("nodes_featureids", std::vector<int64_t>{0, 0, 0, 0})
      .attr("nodes_modes", strs_attr({"BRANCH_EQ", "BRANCH_EQ", "LEAF", "LEAF"}))
      .attr("nodes_values", std::vector<float>{1, 3, 0, 0})
      .attr("nodes_truenodeids", std::vector<int64_t>{2, 2, 0, 0})
      .attr("nodes_falsenodeids", std::vector<int64_t>{1, 3, 0, 0})
      .attr("target_ids", std::vector<int64_t>{0, 0})
      .attr("target_nodeids", std::vector<int64_t>{2, 3})
      .attr("target_treeids", std::vector<int64_t>{0, 0})
      .attr("target_weights", std::vector<float>{1, -1});
  CHECK(n.run()[0].to_doubles() == std::vector<double>{1, 1, -1});
  n.attr("nodes_falsenodeids", std::vector<int64_t>{1, 0, 0, 0});  // node 1 false -> node 0: a cycle
  throws_naming_node(n, "cycle");
}

// ---------------------------------------------------------------- malformed attributes

TEST_CASE("ml ops: malformed tree attributes are errors naming the node", "[engine][ops][ml]") {
  Tensor x = floats({2, 3}, {0, 0, 0, 1, 1, 1});
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_truenodeids", std::vector<int64_t>{7, 0, 0, 1, 0, 0});
    throws_naming_node(n, "node id 7, which tree 0 does not have");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_falsenodeids", std::vector<int64_t>{2, 0, 0, 2, 0});
    throws_naming_node(n, "must have the same length");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("target_weights", std::vector<float>{1.f, 2.f, 10.f});
    throws_naming_node(n, "same length");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_truenodeids", std::vector<int64_t>{0, 0, 0, 1, 0, 0});
    throws_naming_node(n, "points to itself");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("target_ids", std::vector<int64_t>{0, -1, 0, 0});
    throws_naming_node(n, "target_ids value -1 out of range [0, 1)");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_featureids", std::vector<int64_t>{0, 0, 0, 3, 0, 0});
    throws_naming_node(n, "feature index 3 beyond the input width 3");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_featureids", std::vector<int64_t>{-2, 0, 0, 2, 0, 0});
    throws_naming_node(n, "negative feature index -2");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_nodeids", std::vector<int64_t>{0, 1, 1, 0, 1, 2});
    throws_naming_node(n, "defined twice");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("target_nodeids", std::vector<int64_t>{1, 2, 1, 9});
    throws_naming_node(n, "does not exist");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("nodes_modes", strs_attr({"BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_SOMETIMES", "LEAF", "LEAF"}));
    throws_naming_node(n, "unknown node mode 'BRANCH_SOMETIMES'");
  }
  {
    MlNode n = tree_regressor(x);
    n.attr("n_targets", int64_t(0));
    throws_naming_node(n, "n_targets = 0");
  }
  {
    MlNode n = tree_regressor(floats({2, 2, 3}, std::vector<float>(12, 0.f)));
    throws_naming_node(n, "1-D [F] or 2-D [N, F]");
  }
  {
    // Classifier: class id beyond the labels, and a single class label.
    MlNode n("TreeEnsembleClassifier", 1, {{"label", DType::Int64}, {"scores", DType::Float32}});
    n.in("X", x)
        .attr("nodes_treeids", std::vector<int64_t>{0})
        .attr("nodes_nodeids", std::vector<int64_t>{0})
        .attr("nodes_featureids", std::vector<int64_t>{0})
        .attr("nodes_modes", strs_attr({"LEAF"}))
        .attr("nodes_values", std::vector<float>{0})
        .attr("nodes_truenodeids", std::vector<int64_t>{0})
        .attr("nodes_falsenodeids", std::vector<int64_t>{0})
        .attr("class_ids", std::vector<int64_t>{2})
        .attr("class_nodeids", std::vector<int64_t>{0})
        .attr("class_treeids", std::vector<int64_t>{0})
        .attr("class_weights", std::vector<float>{1})
        .attr("classlabels_int64s", std::vector<int64_t>{0, 1});
    throws_naming_node(n, "class_ids value 2 out of range [0, 2)");
    n.attr("classlabels_int64s", std::vector<int64_t>{0});
    throws_naming_node(n, "at least 2");
  }
}

TEST_CASE("ml ops: malformed TreeEnsemble (v5) attributes are errors naming the node", "[engine][ops][ml]") {
  auto make = [] {
    MlNode n("TreeEnsemble", 5);
    n.in("X", floats({1, 2}, {0, 1}))
        .attr("n_targets", int64_t(1))
        .attr("tree_roots", std::vector<int64_t>{0})
        .attr("nodes_modes", tensor_attr(ints({1}, {0})))
        .attr("nodes_featureids", std::vector<int64_t>{1})
        .attr("nodes_splits", tensor_attr(floats({1}, {0.5f})))
        .attr("nodes_truenodeids", std::vector<int64_t>{0})
        .attr("nodes_falsenodeids", std::vector<int64_t>{1})
        .attr("nodes_trueleafs", std::vector<int64_t>{1})
        .attr("nodes_falseleafs", std::vector<int64_t>{1})
        .attr("leaf_targetids", std::vector<int64_t>{0, 0})
        .attr("leaf_weights", tensor_attr(floats({2}, {3.f, 4.f})));
    return n;
  };
  CHECK(make().run()[0].to_doubles() == std::vector<double>{4});
  {
    MlNode n = make();
    n.attr("nodes_falsenodeids", std::vector<int64_t>{2});
    throws_naming_node(n, "false leaf index 2 out of range [0, 2)");
  }
  {
    MlNode n = make();
    n.attr("leaf_targetids", std::vector<int64_t>{0, 1});
    throws_naming_node(n, "leaf_targetids value 1 out of range [0, 1)");
  }
  {
    MlNode n = make();
    n.attr("tree_roots", std::vector<int64_t>{1});
    throws_naming_node(n, "tree_roots value 1 out of range [0, 1)");
  }
  {
    MlNode n = make();
    n.attr("nodes_modes", tensor_attr(ints({1}, {9})));
    throws_naming_node(n, "invalid mode 9");
  }
  {
    MlNode n = make();
    n.attr("nodes_featureids", std::vector<int64_t>{2});
    throws_naming_node(n, "feature index 2 beyond the input width 2");
  }
  {
    MlNode n = make();
    n.attr("leaf_weights", tensor_attr(floats({1}, {3.f})));
    throws_naming_node(n, "must have the same length");
  }
}

TEST_CASE("ml ops: bad indices, shapes and attribute sizes of the other ops are errors naming the node",
          "[engine][ops][ml]") {
  {
    MlNode n("ArrayFeatureExtractor", 1);
    n.in("X", floats({2, 3}, {0, 1, 2, 3, 4, 5})).in("idx", ints({2}, {0, 3}));
    throws_naming_node(n, "indices value 3 out of range [0, 3)");
  }
  {
    MlNode n("ArrayFeatureExtractor", 1);
    n.in("X", floats({2, 3}, {0, 1, 2, 3, 4, 5})).in("idx", ints({1}, {-1}));
    throws_naming_node(n, "indices value -1 out of range [0, 3)");
  }
  {
    MlNode n("LinearClassifier", 1, {{"label", DType::Int64}, {"scores", DType::Float32}});
    n.in("X", floats({1, 3}, {1, 2, 3})).attr("coefficients", std::vector<float>{1, 2, 3, 4}).attr("intercepts", std::vector<float>{0, 0});
    n.attr("classlabels_ints", std::vector<int64_t>{0, 1});
    throws_naming_node(n, "4 coefficients for 2 classes and 3 input features (expected 6)");
  }
  {
    MlNode n("LinearRegressor", 1);
    n.in("X", floats({1, 2}, {1, 2})).attr("coefficients", std::vector<float>{1, 2, 3}).attr("targets", int64_t(2));
    throws_naming_node(n, "3 coefficients for 2 targets");
  }
  {
    MlNode n("SVMClassifier", 1, {{"label", DType::Int64}, {"scores", DType::Float32}});
    n.in("X", floats({1, 2}, {1, 2}))
        .attr("kernel_type", str_attr("RBF"))
        .attr("kernel_params", std::vector<float>{0.5f, 0, 3})
        .attr("vectors_per_class", std::vector<int64_t>{1, 1})
        .attr("support_vectors", std::vector<float>{1, 2, 3})
        .attr("coefficients", std::vector<float>{1, -1})
        .attr("rho", std::vector<float>{0})
        .attr("classlabels_ints", std::vector<int64_t>{0, 1});
    throws_naming_node(n, "3 support vector values for 2 vectors of the input's 2 features");
    n.attr("support_vectors", std::vector<float>{1, 2, 3, 4}).attr("vectors_per_class", std::vector<int64_t>{2, -1});
    throws_naming_node(n, "vectors_per_class value -1");
    n.attr("vectors_per_class", std::vector<int64_t>{1, 1}).attr("rho", std::vector<float>{});
    throws_naming_node(n, "'rho' is empty");
  }
  {
    MlNode n("SVMRegressor", 1);
    n.in("X", floats({1, 2}, {1, 2}))
        .attr("n_supports", int64_t(2))
        .attr("support_vectors", std::vector<float>{1, 2, 3, 4})
        .attr("coefficients", std::vector<float>{1})
        .attr("rho", std::vector<float>{0});
    throws_naming_node(n, "1 coefficients for 2 support vectors");
  }
  {
    MlNode n("Scaler", 1);
    n.in("X", floats({2, 3}, {0, 1, 2, 3, 4, 5})).attr("scale", std::vector<float>{1, 2}).attr("offset", std::vector<float>{0, 0});
    throws_naming_node(n, "expected 1 or the feature count 3");
  }
  {
    MlNode n("FeatureVectorizer", 1);
    n.in("a", floats({2, 1}, {0, 1})).in("b", floats({3, 1}, {0, 1, 2})).attr("inputdimensions", std::vector<int64_t>{1, 1});
    throws_naming_node(n, "input 1 has 3 rows, input 0 has 2");
  }
  {
    MlNode n("Binarizer", 1);
    n.in("X", floats({2}, {0.f, std::numeric_limits<float>::quiet_NaN()}));
    throws_naming_node(n, "index 1 is NaN");
  }
  {
    MlNode n("OneHotEncoder", 1);
    n.in("X", ints({2}, {1, 4})).attr("cats_int64s", std::vector<int64_t>{1, 2}).attr("zeros", int64_t(0));
    throws_naming_node(n, "not a known category");
  }
  {
    MlNode n("OneHotEncoder", 1);
    n.in("X", ints({1}, {1})).attr("cats_strings", strs_attr({"a"}));
    CHECK_THROWS_AS(n.run(), UnsupportedError);
    CHECK_THROWS_WITH(n.run(), Catch::Contains("cats_strings") && Catch::Contains("OneHotEncoder_0"));
  }
  {
    MlNode n("LabelEncoder", 2, {{"Y", DType::Int64}});
    n.in("X", ints({1}, {0})).attr("keys_int64s", std::vector<int64_t>{1, 2}).attr("values_int64s", std::vector<int64_t>{1});
    throws_naming_node(n, "2 keys but 1 values");
  }
  {
    MlNode n("Imputer", 1);
    n.in("X", floats({1, 2}, {0, 1}));
    throws_naming_node(n, "exactly one of 'imputed_value_floats' and 'imputed_value_int64s'");
  }
  {
    MlNode n("Normalizer", 1);
    n.in("X", floats({1, 2}, {0, 1})).attr("norm", str_attr("L3"));
    throws_naming_node(n, "unknown norm 'L3'");
  }
  {
    MlNode n("LinearRegressor", 1);
    n.in("X", floats({1, 1}, {1})).attr("coefficients", std::vector<float>{1}).attr("post_transform", str_attr("TANH"));
    throws_naming_node(n, "unknown post_transform 'TANH'");
  }
}

TEST_CASE("ml ops: tree ensembles walk blocks of rows as they walk one row, every uniform comparison", "[engine][ops][ml]") {
  // A batch of rows walks each tree side by side when every branch node uses one comparison
  // (ops_ml.cpp leaves_of_block: a fixed number of steps, a leaf's children itself); one row
  // walks alone (leaf_of, onnxruntime's semantics, checked against its goldens above). Random
  // trees of depth up to 6 with uneven leaves, features with NaN (missing_true both ways) and
  // values equal to thresholds: every row's scores in batches of 1, 8 (the block) and 37 (a
  // partial block) equal its scores alone, bit for bit, for a classifier and a regressor.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const char* mode : {"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"}) {
    std::vector<int64_t> tree_ids, node_ids, features, true_ids, false_ids, missing, t_tree, t_node, t_ids, c_ids;
    std::vector<std::string> modes;
    std::vector<float> values, weights;
    const std::vector<float> cuts = {-0.5f, 0.f, 0.25f, 0.5f};
    for (int64_t t = 0; t < 5; ++t) {
      // node k of a complete binary tree of depth 6, cut short where a random draw says leaf
      std::vector<int64_t> open = {0};
      int64_t next_id = 1;
      while (!open.empty()) {
        const int64_t id = open.back();
        open.pop_back();
        const int depth = int(std::log2(double(id + 1)));
        const bool leaf = depth >= 6 || (depth >= 1 && u(rng) < -0.4f);
        tree_ids.push_back(t);
        node_ids.push_back(id);
        if (leaf) {
          modes.push_back("LEAF");
          features.push_back(0), values.push_back(0.f), true_ids.push_back(0), false_ids.push_back(0), missing.push_back(0);
          for (int64_t c = 0; c < 3; ++c) {
            t_tree.push_back(t), t_node.push_back(id), c_ids.push_back(c);
            weights.push_back(std::round(u(rng) * 64.f) / 64.f + 0.001f * float(id));
          }
          continue;
        }
        modes.push_back(mode);
        features.push_back(int64_t(rng() % 4));
        values.push_back(cuts[rng() % cuts.size()]);
        const int64_t a = next_id++, b = next_id++;
        true_ids.push_back(a), false_ids.push_back(b), missing.push_back(int64_t(rng() % 2));
        open.push_back(a), open.push_back(b);
      }
    }
    Tensor x({37, 4});
    for (int64_t i = 0; i < x.numel(); ++i) {
      const uint32_t r = rng() % 10;
      x.f32()[i] = r == 0 ? std::numeric_limits<float>::quiet_NaN() : r == 1 ? cuts[rng() % cuts.size()] : u(rng);
    }
    // The same trees for both ops: the node arrays, then the leaves' weights under the op's prefix.
    auto trees = [&](MlNode& n, const Tensor& rows, const std::string& leaf) -> OneNode& {
      return n.in("X", rows)
          .attr("nodes_treeids", tree_ids).attr("nodes_nodeids", node_ids).attr("nodes_featureids", features)
          .attr("nodes_modes", strs_attr(modes)).attr("nodes_values", values).attr("nodes_truenodeids", true_ids)
          .attr("nodes_falsenodeids", false_ids).attr("nodes_missing_value_tracks_true", missing)
          .attr(leaf + "_treeids", t_tree).attr(leaf + "_nodeids", t_node).attr(leaf + "_ids", c_ids)
          .attr(leaf + "_weights", weights);
    };
    auto classifier = [&](const Tensor& rows) {
      MlNode n("TreeEnsembleClassifier", 3, {{"label", engine::DType::Int64}, {"probabilities", engine::DType::Float32}});
      return trees(n, rows, "class").attr("classlabels_int64s", std::vector<int64_t>{0, 1, 2}).run();
    };
    auto regressor = [&](const Tensor& rows) {
      MlNode n("TreeEnsembleRegressor", 3);
      return trees(n, rows, "target").attr("n_targets", int64_t(3)).run();
    };
    INFO(mode);
    const auto all_c = classifier(x), all_r = regressor(x);
    const auto first8_c = classifier(x.slice_rows(0, 8)), first8_r = regressor(x.slice_rows(0, 8));
    for (int64_t i = 0; i < 37; ++i) {
      INFO("row " << i);
      const auto one_c = classifier(x.slice_rows(i, i + 1)), one_r = regressor(x.slice_rows(i, i + 1));
      CHECK(one_c[0].i64()[0] == all_c[0].i64()[i]);
      CHECK(std::memcmp(one_c[1].f32(), all_c[1].f32() + i * 3, 3 * sizeof(float)) == 0);
      CHECK(std::memcmp(one_r[0].f32(), all_r[0].f32() + i * 3, 3 * sizeof(float)) == 0);
      if (i < 8) CHECK(std::memcmp(first8_r[0].f32() + i * 3, all_r[0].f32() + i * 3, 3 * sizeof(float)) == 0);
    }
  }
}
