// Recovered tree ensembles (engine/trees.h) against the engine's own forward on the converters'
// models (tests/fixtures/trees, tools/export_tree_models.py) and on real data rows, plus the
// refusals: a pipeline's preprocessing before the trees, splits and heads it cannot read.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/trees.h"
#include "test_util.h"

using namespace mlaudit;
using engine::TreeEnsemble;

namespace {

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/trees/" + name); }

struct Case {
  const char* model;
  const char* data;
  TreeEnsemble::Head head;
  int64_t outputs;
  int64_t trees;
};

}  // namespace

TEST_CASE("tree ensembles recovered from converter exports reproduce the engine on real rows", "[trees]") {
  const std::vector<Case> cases = {
      {"xgb_binary", "credit_x", TreeEnsemble::Head::BinaryMargin, 1, 40},
      {"lgbm_binary", "credit_x", TreeEnsemble::Head::BinaryMargin, 1, 40},
      {"sk_gbt_binary", "credit_x", TreeEnsemble::Head::BinaryMargin, 1, 40},
      {"sk_rf_binary", "credit_x", TreeEnsemble::Head::BinaryMargin, 1, 15},
      {"small_xgb", "small_x", TreeEnsemble::Head::BinaryMargin, 1, 3},
      {"xgb_multi", "three_x", TreeEnsemble::Head::Classes, 3, 45},
      {"sk_dt_multi", "three_x", TreeEnsemble::Head::Classes, 3, 1},
      {"sk_gbt_reg", "income_x", TreeEnsemble::Head::Regression, 1, 30},
      {"xgb_reg", "income_x", TreeEnsemble::Head::Regression, 1, 30},
      {"lgbm_reg", "income_x", TreeEnsemble::Head::Regression, 1, 30},
      // scikit-learn Pipelines: a Scaler (StandardScaler) / Mul+Add (MinMaxScaler) folded into the thresholds
      {"sk_pipe_gbt", "credit_x", TreeEnsemble::Head::BinaryMargin, 1, 20},
      {"sk_pipe_rf_reg", "income_x", TreeEnsemble::Head::Regression, 1, 8},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.model) {
      engine::Graph g = engine::load_onnx(fixture(std::string(c.model) + ".onnx"));
      REQUIRE(engine::has_tree_ensemble(g));
      TreeEnsemble t = engine::extract_tree_ensemble(g);
      CHECK(t.head == c.head);
      CHECK(t.outputs == c.outputs);
      CHECK(t.tree_count() == c.trees);
      engine::Tensor x = datasets::read_npy_float(fixture(std::string(c.data) + ".npy"));
      REQUIRE(x.shape()[1] == t.features);
      engine::Session s(engine::load_onnx(fixture(std::string(c.model) + ".onnx")));
      engine::Tensor y = s.forward(x);
      const int64_t cols = y.shape().size() == 2 ? y.shape()[1] : 1;
      int decided = 0;
      for (int64_t r = 0; r < x.shape()[0]; ++r) {
        std::vector<double> raw = t.raw(x.f32() + r * t.features);
        std::vector<double> o = t.output(raw);
        REQUIRE(static_cast<int64_t>(o.size()) == cols);
        for (int64_t k = 0; k < cols; ++k) CHECK(o[k] == Approx(y.f32()[r * cols + k]).margin(1e-5).epsilon(1e-5));
        if (t.head != TreeEnsemble::Head::Regression) {
          const float* row = y.f32() + r * cols;
          int64_t engine_class = std::max_element(row, row + cols) - row;
          CHECK(t.decide(raw) == engine_class);
          ++decided;
        }
      }
      if (t.head != TreeEnsemble::Head::Regression) CHECK(decided == x.shape()[0]);
    }
  }
}

TEST_CASE("recovered trees: thresholds, NaN routing and normalised splits", "[trees]") {
  engine::Graph g = engine::load_onnx(fixture("small_xgb.onnx"));
  TreeEnsemble t = engine::extract_tree_ensemble(g);
  auto th = t.thresholds();
  REQUIRE(static_cast<int64_t>(th.size()) == t.features);
  size_t total = 0;
  for (const auto& v : th) {
    total += v.size();
    for (size_t i = 1; i < v.size(); ++i) CHECK(v[i - 1] < v[i]);
  }
  CHECK(total > 0);
  // XGBoost writes BRANCH_LT: x < t goes yes; a value exactly at the threshold goes no.
  engine::Session s(engine::load_onnx(fixture("small_xgb.onnx")));
  for (const auto& n : t.nodes) {
    if (n.leaf()) continue;
    CHECK_FALSE(n.leq);
  }
  // NaN in every feature: the missing-value branches, as the engine takes them.
  engine::Tensor x(engine::DType::Float32, {1, t.features});
  for (int64_t f = 0; f < t.features; ++f) x.f32()[f] = std::nanf("");
  engine::Tensor y = s.forward(x);
  std::vector<double> o = t.output(t.raw(x.f32()));
  CHECK(o[1] == Approx(y.f32()[1]).margin(1e-6));
}

TEST_CASE("recovered trees: the bundled Adult model and a model behind a pipeline step", "[trees]") {
  engine::Graph g = engine::load_onnx(test::source_path("models/adult/adult_gbt.onnx"));
  TreeEnsemble t = engine::extract_tree_ensemble(g);
  CHECK(t.head == TreeEnsemble::Head::BinaryMargin);
  CHECK(t.link == TreeEnsemble::Link::Logistic);
  CHECK(t.tree_count() == 200);
  CHECK(t.base[0] != 0.0);

  // A scikit-learn pipeline with a scaler in front of the trees: refused by name.
  engine::Graph p = engine::load_onnx(test::source_path("tests/fixtures/zoo/sk_logreg_pipeline/model.onnx"));
  CHECK_FALSE(engine::has_tree_ensemble(p));
  try {
    engine::extract_tree_ensemble(p);
    FAIL("a linear model was read as trees");
  } catch (const mlaudit::UnsupportedError& e) {
    CHECK_THAT(e.what(), Catch::Contains("has no tree ensemble"));
  }
  // A neural network: no tree node at all.
  engine::Graph cnn = engine::load_onnx(test::source_path("tests/fixtures/zoo/tabular_mlp_ts/model.onnx"));
  CHECK_FALSE(engine::has_tree_ensemble(cnn));
  CHECK_THROWS_AS(engine::extract_tree_ensemble(cnn), mlaudit::UnsupportedError);
}

TEST_CASE("info names a tree ensemble and whether exact tree methods read it", "[trees][cli]") {
  auto r = test::run_cli("info -m " + test::source_path("models/credit_gbt.onnx"));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("trees:      100 trees of depth <= 4"));
  CHECK_THAT(r.output, Catch::Contains("binary margin"));
  auto j = test::run_cli("info --json -m " + test::source_path("tests/fixtures/trees/xgb_multi.onnx"));
  REQUIRE(j.exit_code == 0);
  CHECK_THAT(j.output, Catch::Contains("\"exact_methods\": true"));
  CHECK_THAT(j.output, Catch::Contains("\"trees\": 45"));
}

TEST_CASE("recovered trees: a Scaler with negative and tiny scales folds exactly into the thresholds", "[trees]") {
  // The StandardScaler pipeline with its scales negated on some features and shrunk on others:
  // the folded splits (x >= x_min with swapped children; thresholds far from the data) must
  // still reproduce the engine, which runs the Scaler itself, on real rows and at the folded
  // thresholds and their float neighbours.
  engine::Graph g = engine::load_onnx(fixture("sk_pipe_gbt.onnx"));
  bool found = false;
  for (auto& n : g.nodes)
    if (n.op_type == "Scaler") {
      auto& sc = n.attributes.at("scale").floats;
      for (size_t f = 0; f < sc.size(); ++f) sc[f] *= f % 3 == 0 ? -1.0f : (f % 3 == 1 ? 1e-30f : -7.5f);
      found = true;
    }
  REQUIRE(found);
  TreeEnsemble t = engine::extract_tree_ensemble(g);
  engine::Session s(g);
  engine::Tensor x = datasets::read_npy_float(fixture("credit_x.npy"));
  // Rows: the data, then each folded threshold of each node and its two float neighbours on
  // the first data row.
  std::vector<float> rows(x.f32(), x.f32() + x.numel());
  for (const auto& n : t.nodes) {
    if (n.leaf() || !std::isfinite(n.threshold)) continue;
    for (float v : {std::nextafter(n.threshold, -INFINITY), n.threshold, std::nextafter(n.threshold, INFINITY)}) {
      std::vector<float> r(x.f32(), x.f32() + t.features);
      r[size_t(n.feature)] = v;
      rows.insert(rows.end(), r.begin(), r.end());
    }
  }
  const int64_t n_rows = int64_t(rows.size()) / t.features;
  engine::Tensor all = engine::Tensor::from_floats({n_rows, t.features}, rows);
  engine::Tensor y = s.forward(all);
  int64_t swapped = 0;
  for (const auto& n : t.nodes) swapped += !n.leaf() && !n.leq;
  CHECK(swapped > 0);  // negative scales became x >= x_min splits
  for (int64_t r = 0; r < n_rows; ++r) {
    std::vector<double> o = t.output(t.raw(all.f32() + r * t.features));
    INFO("row " << r);
    CHECK(o[1] == Approx(y.f32()[r * 2 + 1]).margin(1e-6));
  }
}
