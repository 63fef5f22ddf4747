// Counterfactual flip test: closed form on a linear model, golden on the bundled credit model.
#include <catch2/catch.hpp>

#include <cmath>

#include "fairness_test_util.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/fairness/counterfactual.h"

using namespace mlaudit;
using namespace mlaudit::fairness;
using mlaudit::test::close;

namespace {

// logits = W x + b with W [2,F]: a model whose decisions we can work out by hand.
class LinearModel : public engine::Model {
 public:
  LinearModel(std::vector<float> w0, std::vector<float> w1, float b1) : w0_(std::move(w0)), w1_(std::move(w1)), b1_(b1) {}
  engine::Shape input_shape() const override { return {-1, int64_t(w0_.size())}; }
  engine::Tensor forward(const engine::Tensor& x) const override {
    const int64_t n = x.dim(0), F = x.dim(1);
    engine::Tensor out(engine::Shape{n, 2});
    for (int64_t i = 0; i < n; ++i) {
      double a = 0, b = b1_;
      for (int64_t k = 0; k < F; ++k) {
        a += w0_[k] * x.f32()[i * F + k];
        b += w1_[k] * x.f32()[i * F + k];
      }
      out.f32()[i * 2] = float(a);
      out.f32()[i * 2 + 1] = float(b);
    }
    return out;
  }
  engine::Tensor input_gradient(const engine::Tensor& x, const engine::SeedFn& seed, engine::Tensor* output) const override {
    engine::Tensor y = forward(x);
    engine::Tensor s = seed(y);
    engine::Tensor g(x.shape());
    for (int64_t i = 0; i < x.dim(0); ++i)
      for (int64_t k = 0; k < x.dim(1); ++k)
        g.f32()[i * x.dim(1) + k] = s.f32()[i * 2] * w0_[k] + s.f32()[i * 2 + 1] * w1_[k];
    if (output) *output = y;
    return g;
  }

 private:
  std::vector<float> w0_, w1_;
  float b1_;
};

}  // namespace

TEST_CASE("fairness: flip test on a linear model matches the closed form", "[fairness][counterfactual]") {
  // Features (income, sex). Class-1 margin = 0.1*income + 2*sex - 1: flips exactly when
  // 0.1*income - 1 and 0.1*income + 1 have different signs, i.e. -10 < income <= 10 (ties at 0 -> class 0).
  LinearModel m({0, 0}, {0.1f, 2.0f}, -1.0f);
  std::vector<float> xs;
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    xs.push_back(float(i - 20));     // income -20..19
    xs.push_back(float(i % 2));      // sex 0/1
  }
  engine::Tensor x = engine::Tensor::from_floats({n, 2}, xs);
  FeatureEncoding enc{"sex", {"0", "1"}, {1}, {0.0f, 1.0f}};
  auto r = flip_test(m, x, enc, DecisionRule{}, 5);
  int expected = 0;
  double change = 0;
  for (int i = 0; i < n; ++i) {
    double inc = i - 20, s = i % 2;
    double before = 0.1 * inc + 2 * s - 1, after = 0.1 * inc + 2 * (1 - s) - 1;
    expected += (before > 0) != (after > 0);
    change += 1 / (1 + std::exp(-after)) - 1 / (1 + std::exp(-before));  // softmax of (0, margin)
  }
  CHECK(r.rows == n);
  CHECK(r.counterfactuals == n);
  CHECK(r.flipped_rows == expected);
  CHECK(close(r.flip_rate, double(expected) / n, 0, 1e-15));
  // float32 logits: relative error ~1e-7 per score.
  CHECK(close(r.mean_score_change, change / n, 0, 1e-6));
  REQUIRE(r.examples.size() == 5);
  CHECK(r.examples[0].row < r.examples[1].row);
  CHECK(r.pairs.size() == 2);
  // One-hot encoding of a 3-group attribute (columns 1..3): decision depends on column 3 only.
  LinearModel m3({0, 0, 0, 0}, {0, 0, 0, 5.0f}, -1.0f);
  engine::Tensor x3 = engine::Tensor::from_floats({3, 4}, {0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});
  FeatureEncoding oh{"race", {"a", "b", "c"}, {1, 2, 3}, {}};
  auto r3 = flip_test(m3, x3, oh, DecisionRule{}, 20);
  CHECK(r3.counterfactuals == 6);
  CHECK(r3.flipped_rows == 3);                  // rows a, b flip to c; row c flips to a or b
  CHECK(close(r3.pair_flip_rate, 4.0 / 6.0, 0, 1e-15));
  // Bad encodings are input errors.
  engine::Tensor bad = engine::Tensor::from_floats({1, 4}, {0, 1, 1, 0});
  REQUIRE_THROWS_WITH(flip_test(m3, bad, oh, DecisionRule{}), Catch::Contains("row 0: the features of 'race' match none"));
  FeatureEncoding out_of_range{"sex", {"0", "1"}, {7}, {0, 1}};
  REQUIRE_THROWS_WITH(flip_test(m, x, out_of_range, DecisionRule{}), Catch::Contains("column 7 out of range"));
}

TEST_CASE("fairness: flip rate on the bundled credit model equals the PyTorch recomputation",
          "[fairness][counterfactual][golden]") {
  std::string model = test::source_path("models/credit_mlp.onnx");
  if (!test::file_exists(model)) {
    WARN("models/credit_mlp.onnx is absent; skipping");
    return;
  }
  auto gold = test::fairness_fixture("credit_counterfactual.json");
  auto table = datasets::read_csv(test::source_path("datasets/credit/credit_test.csv"));
  std::vector<std::string> feats = {"age", "income", "debt_ratio", "years_employed", "num_credit_lines", "late_payments", "sex"};
  engine::Tensor x = table.matrix(feats);
  auto session = engine::Session::load(model);
  FeatureEncoding enc{"sex", {"0", "1"}, {6}, {0.0f, 1.0f}};
  auto r = flip_test(*session, x, enc, DecisionRule{}, 20);
  CHECK(r.rows == gold["rows"].get<int64_t>());
  // Golden: PyTorch (cross-checked with onnxruntime) in tools/fairness_goldens.py. Decisions are argmaxes of float32 logits from two engines; a row whose logits
  // differ by < 1e-5 could in principle go either way, but none does here: exact counts.
  CHECK(r.flipped_rows == gold["flipped_rows"].get<int64_t>());
  CHECK(close(r.flip_rate, gold["flip_rate"].get<double>(), 0, 1e-12));
  // Mean of 2000 softmax differences, each within ~1e-6 between engines.
  CHECK(close(r.mean_score_change, gold["mean_score_change"].get<double>(), 0, 1e-5));
  std::vector<int64_t> first = gold["first_flipped"];
  REQUIRE(r.examples.size() == first.size());
  for (size_t i = 0; i < first.size(); ++i) CHECK(r.examples[i].row == first[i]);
}
