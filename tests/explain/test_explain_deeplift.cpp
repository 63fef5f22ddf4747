// DeepLIFT (rescale rule): closed forms on hand-built graphs, summation-to-delta, and goldens
// from Captum 0.9's DeepLift on the bundled models (tools/explain_deeplift_goldens.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"
#include "golden_util.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::explain;
using mlaudit::test::explain_fixture;
using mlaudit::test::max_scaled_error;
using mlaudit::test::source_path;

namespace {

bool have_goldens() {
  return std::filesystem::exists(source_path("models/fmnist_cnn.onnx")) &&
         std::filesystem::exists(explain_fixture("deeplift.json"));
}

nlohmann::json meta() {
  std::ifstream in(explain_fixture("deeplift.json"));
  return nlohmann::json::parse(in);
}

engine::Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
  engine::Node n;
  n.op_type = op;
  n.name = op + "_" + out.at(0);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

engine::Graph graph_with(const std::string& input, const std::string& output) {
  engine::Graph g;
  g.source = "test-graph";
  g.opset = 13;
  engine::ValueInfo vi;
  vi.name = input;
  vi.shape = {-1, -1};
  g.inputs.push_back(vi);
  engine::ValueInfo vo;
  vo.name = output;
  g.outputs.push_back(vo);
  return g;
}

// The IG paper's toy network f = ReLU(ReLU(x1) - 1 - ReLU(x2)) as an ONNX graph:
// Relu(x) -> Gemm(w = [1, -1]^T, b = -1) -> Relu.
engine::Graph toy_graph() {
  engine::Graph g = graph_with("x", "f");
  g.initializers["w"] = Tensor::from_floats({2, 1}, {1.f, -1.f});
  g.initializers["b"] = Tensor::from_floats({1}, {-1.f});
  g.nodes.push_back(node("Relu", {"x"}, {"h"}));
  g.nodes.push_back(node("Gemm", {"h", "w", "b"}, {"z"}));
  g.nodes.push_back(node("Relu", {"z"}, {"f"}));
  return g;
}

// A small dense net with every elementwise nonlinearity of the rescale rule.
engine::Graph mixed_graph() {
  engine::Graph g = graph_with("x", "y");
  const std::vector<float> w1{0.5f, -1.f, 0.3f, 0.8f, -0.2f, 1.1f, -0.7f, 0.4f, 0.9f, -0.6f, 0.2f, 0.1f};  // [3,4]
  const std::vector<float> w2{1.f, -0.5f, 0.7f, 0.2f, -1.2f, 0.4f, 0.3f, 0.9f};                            // [4,2]
  g.initializers["w1"] = Tensor::from_floats({3, 4}, w1);
  g.initializers["b1"] = Tensor::from_floats({4}, {0.1f, -0.2f, 0.05f, 0.3f});
  g.initializers["w2"] = Tensor::from_floats({4, 2}, w2);
  g.initializers["b2"] = Tensor::from_floats({2}, {0.2f, -0.1f});
  g.nodes.push_back(node("Gemm", {"x", "w1", "b1"}, {"a"}));
  g.nodes.push_back(node("Sigmoid", {"a"}, {"s"}));
  g.nodes.push_back(node("Tanh", {"a"}, {"t"}));
  g.nodes.push_back(node("Add", {"s", "t"}, {"u"}));  // a value used twice: gradients add up
  g.nodes.push_back(node("Gemm", {"u", "w2", "b2"}, {"v"}));
  engine::Node lr = node("LeakyRelu", {"v"}, {"y"});
  lr.attributes["alpha"] = engine::Attribute::of_float(0.1f);
  g.nodes.push_back(lr);
  return g;
}

}  // namespace

TEST_CASE("deeplift on the IG paper's toy network at (3,1) gives (1.5, -0.5) exactly", "[explain][deeplift]") {
  // Rescale rule by hand: top Relu multiplier (1 - 0) / (1 - (-1)) = 1/2; Relu(x1): 3/3, Relu(x2): 1/1,
  // so attr = (3 * 1/2, 1 * (-1/2)).
  auto r = deeplift(toy_graph(), Tensor::from_floats({1, 2}, {3.f, 1.f}), Tensor({1, 2}), {0});
  CHECK(r.attributions.f32()[0] == Approx(1.5).margin(1e-6));
  CHECK(r.attributions.f32()[1] == Approx(-0.5).margin(1e-6));
  CHECK(r.output_x[0] == Approx(1.0));
  CHECK(r.output_baseline[0] == Approx(0.0));
  CHECK(std::fabs(r.gap[0]) < 1e-6);
}

TEST_CASE("deeplift: summation-to-delta holds for Sigmoid/Tanh/LeakyRelu graphs, batch size is irrelevant", "[explain][deeplift]") {
  const engine::Graph g = mixed_graph();
  const int64_t n = 7;
  std::vector<float> xs, bs;
  for (int64_t i = 0; i < n * 3; ++i) {
    xs.push_back(std::sin(0.7f * i) * 2.f);
    bs.push_back(std::cos(1.3f * i) * 0.5f);
  }
  bs[1] = xs[1];  // one feature equal to its baseline (|dx| = 0 < eps: ordinary gradient, zero attribution)
  const Tensor x = Tensor::from_floats({n, 3}, xs), b = Tensor::from_floats({n, 3}, bs);
  std::vector<int64_t> targets{0, 1, 0, 1, 0, 1, 1};
  DeepLiftOptions o1;
  o1.batch_rows = 1;
  DeepLiftOptions o3;
  o3.batch_rows = 3;
  DeepLift dl(g);
  auto r1 = dl.attribute(x, b, targets, o1);
  auto r3 = dl.attribute(x, b, targets, o3);
  for (int64_t i = 0; i < n; ++i) {
    // Summation-to-delta (Shrikumar et al. 2017, eq. 1): exact up to float32 rounding of the multipliers.
    CHECK(std::fabs(r1.gap[i]) <= 1e-5 * std::max(1.0, std::fabs(r1.output_x[i] - r1.output_baseline[i])));
    CHECK(r1.relative_gap[i] < 1e-4);
  }
  CHECK(r1.attributions.f32()[1] == 0.f);
  // Rows never interact: chunking changes nothing (bit-identical).
  CHECK(max_scaled_error(r3.attributions, r1.attributions) == 0.0);
  // x == baseline: every attribution is 0 and the gap is 0.
  auto same = dl.attribute(x, x, targets);
  for (int64_t k = 0; k < same.attributions.numel(); ++k) CHECK(same.attributions.f32()[k] == 0.f);
}

TEST_CASE("deeplift: a linear graph gives w * (x - b), like every attribution method", "[explain][deeplift]") {
  engine::Graph g = graph_with("x", "y");
  g.initializers["w"] = Tensor::from_floats({3, 1}, {2.f, -1.f, 0.5f});
  g.nodes.push_back(node("MatMul", {"x", "w"}, {"y"}));
  auto r = deeplift(g, Tensor::from_floats({1, 3}, {1.f, 2.f, 3.f}), Tensor::from_floats({1, 3}, {0.5f, 0.f, -1.f}), {0});
  CHECK(r.attributions.f32()[0] == Approx(2.f * 0.5f));
  CHECK(r.attributions.f32()[1] == Approx(-1.f * 2.f));
  CHECK(r.attributions.f32()[2] == Approx(0.5f * 4.f));
}

TEST_CASE("deeplift: errors name the problem", "[explain][deeplift]") {
  engine::Graph soft = toy_graph();
  soft.nodes.push_back(node("Softmax", {"f"}, {"p"}));
  soft.outputs[0].name = "p";
  CHECK_THROWS_AS(DeepLift(soft), UnsupportedError);
  DeepLift dl(toy_graph());
  const Tensor x = Tensor::from_floats({1, 2}, {3.f, 1.f});
  CHECK_THROWS_WITH(dl.attribute(x, Tensor({2, 2}), {0}), Catch::Contains("baseline shape"));
  CHECK_THROWS_WITH(dl.attribute(x, Tensor({1, 2}), {3}), Catch::Contains("target 3 out of range"));
  CHECK_THROWS_WITH(dl.attribute(x, Tensor({1, 2}), {0, 0}), Catch::Contains("2 targets for 1 rows"));
}

TEST_CASE("goldens: deeplift matches Captum's DeepLift on the fmnist CNN (ReLU and MaxPool rules)", "[explain][golden][deeplift]") {
  if (!have_goldens()) {
    WARN("bundled models or deeplift fixtures absent: skipped");
    return;
  }
  const auto m = meta();
  auto session = engine::Session::load(source_path("models/fmnist_cnn.onnx"));
  const Tensor x = datasets::read_npy_float(source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 4);
  const std::vector<int64_t> targets = m["fmnist_targets"].get<std::vector<int64_t>>();
  REQUIRE(resolve_targets(*session, x, parse_target("predicted"), nullptr) == targets);
  DeepLift dl(session->graph());
  struct Case {
    const char* golden;
    const char* delta;
    Tensor baseline;
  };
  std::vector<Case> cases{{"deeplift_fmnist.npy", "deeplift_fmnist_delta", Tensor(x.shape())},
                          {"deeplift_fmnist_ref.npy", "deeplift_fmnist_ref_delta",
                           datasets::read_npy_float(explain_fixture("deeplift_fmnist_baseline.npy"))}};
  DeepLiftOptions compat;
  compat.captum_compat = true;
  for (const auto& c : cases) {
    INFO(c.golden);
    auto r = dl.attribute(x, c.baseline, targets, compat);
    const Tensor want = datasets::read_npy_float(explain_fixture(c.golden));
    // Measured 1.2e-7 of the largest attribution: float32 convolutions (oneDNN vs PyTorch) differ
    // in the last bits and multipliers divide by activation differences; 1e-5 leaves 100x room.
    CHECK(max_scaled_error(r.attributions, want) < 1e-5);
    // Captum's convergence delta (its MaxPool rule loses the share routed to an argmax with
    // |dx| < eps, so it is not 0 on this CNN): ours reproduces it.
    const auto delta = m[c.delta].get<std::vector<double>>();
    for (size_t i = 0; i < delta.size(); ++i) {
      const double scale = std::fabs(r.output_x[i] - r.output_baseline[i]);
      CHECK(std::fabs(r.gap[i] - delta[i]) < 1e-4 * std::max(1.0, scale));
    }
    // The default (chain rule of multipliers) keeps summation-to-delta on the same CNN, where
    // Captum's deltas reach 20% of f(x) - f(b); float32 sums over 784 pixels: 1e-4 relative.
    auto chain = dl.attribute(x, c.baseline, targets);
    for (size_t i = 0; i < delta.size(); ++i) {
      CHECK(chain.relative_gap[i] < 1e-4);
      CHECK(chain.output_x[i] == Approx(r.output_x[i]));
    }
    // Rows never interact: one row per call gives the same attributions.
    DeepLiftOptions one = compat;
    one.batch_rows = 1;
    CHECK(max_scaled_error(dl.attribute(x, c.baseline, targets, one).attributions, r.attributions) < 1e-6);
  }
}

TEST_CASE("goldens: deeplift matches Captum on the credit MLP with summation-to-delta", "[explain][golden][deeplift]") {
  if (!have_goldens()) {
    WARN("bundled models or deeplift fixtures absent: skipped");
    return;
  }
  auto session = engine::Session::load(source_path("models/credit_mlp.onnx"));
  const Tensor x = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 6);
  const Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  const Tensor base = make_baseline("mean", x, &bg);
  auto r = deeplift(session->graph(), x, base, std::vector<int64_t>(6, 1));
  DeepLiftOptions compat;
  compat.captum_compat = true;
  // No nonlinearity feeds another here: both modes coincide.
  CHECK(max_scaled_error(deeplift(session->graph(), x, base, std::vector<int64_t>(6, 1), compat).attributions,
                         r.attributions) == 0.0);
  // Same float32 arithmetic as Captum on a 7-32-16-2 MLP: measured 2.4e-7 of the scale.
  CHECK(max_scaled_error(r.attributions, datasets::read_npy_float(explain_fixture("deeplift_credit.npy"))) < 1e-5);
  for (int64_t i = 0; i < 6; ++i) {
    // ReLU-only graph: sum(attr) = f(x) - f(b) up to float32 rounding (Captum: |delta| <= 5e-7).
    CHECK(r.relative_gap[i] < 1e-4);
  }
}
