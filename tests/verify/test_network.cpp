// ONNX graph -> affine/ReLU chain: hand-built graphs, real models against
// onnxruntime outputs, unsupported ops named.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/verify/network.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::verify;

namespace {

engine::Node node(const std::string& op, const std::string& name, std::vector<std::string> in, std::vector<std::string> out) {
  engine::Node n;
  n.op_type = op;
  n.name = name;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}


engine::Tensor random_tensor(engine::Shape s, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<float> d{float(lo), float(hi)};
  std::vector<float> v(static_cast<size_t>(engine::shape_numel(s)));
  for (auto& x : v) x = d(rng);
  return engine::Tensor::from_floats(s, v);
}

}  // namespace

TEST_CASE("Graph conversion folds Sub/Flatten/MatMul/Add/Gemm into affine layers", "[verify][network]") {
  engine::Graph g;
  g.source = "hand";
  g.inputs.push_back({"input", engine::DType::Float32, {1, 1, 1, 3}});
  g.outputs.push_back({"y", engine::DType::Float32, {1, 2}});
  g.initializers["mean"] = engine::Tensor::from_floats({1, 1, 1, 3}, {0.5f, -1.0f, 2.0f});
  g.initializers["W1"] = engine::Tensor::from_floats({3, 2}, {1, 2, 3, 4, 5, 6});
  g.initializers["b1"] = engine::Tensor::from_floats({2}, {0.5f, -100.0f});
  g.initializers["W2"] = engine::Tensor::from_floats({2, 2}, {1, -1, 2, 0.5f});  // Gemm transB: [out, in]
  g.initializers["b2"] = engine::Tensor::from_floats({2}, {0.25f, 0.0f});
  g.nodes.push_back(node("Sub", "sub", {"input", "mean"}, {"s"}));
  auto flat = node("Flatten", "flat", {"s"}, {"f"});
  flat.attributes["axis"] = engine::Attribute::of_int(1);
  g.nodes.push_back(flat);
  g.nodes.push_back(node("MatMul", "mm", {"f", "W1"}, {"m"}));
  g.nodes.push_back(node("Add", "add", {"m", "b1"}, {"a"}));
  g.nodes.push_back(node("Relu", "relu", {"a"}, {"r"}));
  auto gemm = node("Gemm", "gemm", {"r", "W2", "b2"}, {"y"});
  gemm.attributes["transB"] = engine::Attribute::of_int(1);
  g.nodes.push_back(gemm);
  Network net = network_from_graph(g);
  REQUIRE(net.layers.size() == 2);
  CHECK(net.input_size() == 3);
  CHECK(net.output_size() == 2);
  // By hand at x = (1, 1, 1): s = (0.5, 2, -1); m = s W1 = (0.5 + 6 - 5, 1 + 8 - 6) = (1.5, 3);
  // a = (2, -97); r = (2, 0); y = W2 r + b2 = (2 + 0.25, 4) = (2.25, 4).
  auto y = net.forward({1, 1, 1});
  CHECK(y[0] == Approx(2.25).margin(1e-12));  // exact small binary fractions
  CHECK(y[1] == Approx(4.0).margin(1e-12));
}

TEST_CASE("Unsupported ops and wirings are named", "[verify][network][errors]") {
  engine::Graph g;
  g.source = "pool.onnx";
  g.inputs.push_back({"input", engine::DType::Float32, {1, 1, 4, 4}});
  g.outputs.push_back({"y", engine::DType::Float32, {1, 1, 2, 2}});
  auto pool = node("MaxPool", "pool1", {"input"}, {"y"});
  pool.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
  g.nodes.push_back(pool);
  try {
    network_from_graph(g);
    FAIL("expected UnsupportedError");
  } catch (const UnsupportedError& e) {
    // Max pooling is supported only after a ReLU (here it reads the model input).
    CHECK(std::string(e.what()) == "verify: unsupported op 'MaxPool' at node 'pool1' (MaxPool must directly follow a Relu)");
  }
  engine::Graph two;
  two.source = "two.onnx";
  two.inputs.push_back({"a", engine::DType::Float32, {1, 2}});
  two.inputs.push_back({"b", engine::DType::Float32, {1, 2}});
  two.outputs.push_back({"y", engine::DType::Float32, {1, 2}});
  CHECK_THROWS_WITH(network_from_graph(two), "verify: two.onnx: the verifier needs exactly one graph input, found 2");
}

TEST_CASE("Conv, BatchNormalization and AveragePool fold exactly (vs the engine)", "[verify][network]") {
  std::mt19937_64 rng(3);
  engine::Graph g;
  g.source = "cnn";
  g.opset = 13;
  g.inputs.push_back({"input", engine::DType::Float32, {1, 2, 6, 6}});
  g.outputs.push_back({"y", engine::DType::Float32, {1, 3}});
  g.initializers["Wc"] = random_tensor({4, 2, 3, 3}, rng);
  g.initializers["bc"] = random_tensor({4}, rng);
  g.initializers["scale"] = random_tensor({4}, rng, 0.5, 1.5);
  g.initializers["bias"] = random_tensor({4}, rng);
  g.initializers["mean"] = random_tensor({4}, rng);
  g.initializers["var"] = random_tensor({4}, rng, 0.2, 2.0);
  g.initializers["Wf"] = random_tensor({3, 4 * 3 * 3}, rng);
  g.initializers["bf"] = random_tensor({3}, rng);
  auto conv = node("Conv", "conv", {"input", "Wc", "bc"}, {"c"});
  conv.attributes["kernel_shape"] = engine::Attribute::of_ints({3, 3});
  conv.attributes["pads"] = engine::Attribute::of_ints({1, 1, 1, 1});
  conv.attributes["strides"] = engine::Attribute::of_ints({1, 1});
  g.nodes.push_back(conv);
  g.nodes.push_back(node("BatchNormalization", "bn", {"c", "scale", "bias", "mean", "var"}, {"b"}));
  g.nodes.push_back(node("Relu", "relu", {"b"}, {"r"}));
  auto avg = node("AveragePool", "avg", {"r"}, {"p"});
  avg.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
  avg.attributes["strides"] = engine::Attribute::of_ints({2, 2});
  g.nodes.push_back(avg);
  auto flat = node("Flatten", "flat", {"p"}, {"f"});
  g.nodes.push_back(flat);
  auto gemm = node("Gemm", "fc", {"f", "Wf", "bf"}, {"y"});
  gemm.attributes["transB"] = engine::Attribute::of_int(1);
  g.nodes.push_back(gemm);
  Network net = network_from_graph(g);
  REQUIRE(net.layers.size() == 2);
  engine::Session session(g);
  for (int t = 0; t < 5; ++t) {
    engine::Tensor x = random_tensor({1, 2, 6, 6}, rng);
    auto ref = session.forward(x).to_doubles();
    auto xv = x.to_doubles();
    auto y = net.forward(xv);
    // The engine computes in float32 over ~72-term sums of O(1) values:
    // ~1e-6 relative error; 1e-4 absolute leaves a wide margin.
    for (int j = 0; j < 3; ++j) CHECK(y[size_t(j)] == Approx(ref[size_t(j)]).margin(1e-4));
  }
}

TEST_CASE("ACAS Xu networks (Sub normalisation, initializers as inputs) match onnxruntime", "[verify][network][acasxu]") {
  std::string dir = mlaudit::test::shared_dataset("vnncomp2022/acasxu/onnx/");
  if (!std::filesystem::exists(dir)) {
    WARN("ACAS Xu data absent: " << dir);
    return;
  }
  std::ifstream f(mlaudit::test::source_path("tests/fixtures/verify/acasxu_forward.json"));
  REQUIRE(f.good());
  auto j = nlohmann::json::parse(f);
  for (const auto& c : j["cases"]) {
    Network net = load_network(dir + c["onnx"].get<std::string>());
    CHECK(net.layers.size() == 7);
    CHECK(net.relu_count() == 300);
    for (size_t i = 0; i < c["inputs"].size(); ++i) {
      auto x = c["inputs"][i].get<std::vector<double>>();
      auto ref = c["outputs"][i].get<std::vector<double>>();
      std::vector<float> xf(x.begin(), x.end());
      auto y = net.forward(x);
      auto yf = net.forward_f32(xf);
      // onnxruntime is float32 (rel. error ~1e-6 of the O(1)-O(100) logits after 7 layers
      // of 50-term sums); 1e-4 relative + 1e-4 absolute (VNN-COMP's own tolerance is 1e-4 abs).
      for (size_t k = 0; k < ref.size(); ++k) {
        CHECK(mlaudit::test::close(y[k], ref[k], 1e-4, 1e-4));
        CHECK(mlaudit::test::close(yf[k], ref[k], 1e-4, 1e-4));
      }
    }
  }
}

TEST_CASE("Bundled models: credit MLP and the max-pooled CNN convert and match the reference forward", "[verify][network]") {
  std::string credit = mlaudit::test::source_path("models/credit_mlp.onnx");
  std::string fix = mlaudit::test::source_path("tests/fixtures/verify/credit_forward.json");
  if (std::filesystem::exists(credit) && std::filesystem::exists(fix)) {
    Network net = load_network(credit);
    CHECK(net.input_size() == 7);
    CHECK(net.output_size() == 2);
    std::ifstream f(fix);
    auto j = nlohmann::json::parse(f);
    for (size_t i = 0; i < j["inputs"].size(); ++i) {
      auto y = net.forward(j["inputs"][i].get<std::vector<double>>());
      auto ref = j["outputs"][i].get<std::vector<double>>();
      // float32 reference: 1e-4 relative + 1e-4 absolute (see the ACAS Xu case).
      for (size_t k = 0; k < ref.size(); ++k) CHECK(mlaudit::test::close(y[k], ref[k], 1e-4, 1e-4));
    }
  } else {
    WARN("credit model or fixture absent");
  }
  std::string cnn = mlaudit::test::source_path("models/fmnist_cnn.onnx");
  if (std::filesystem::exists(cnn)) {
    // conv-relu-maxpool twice, then two Gemms: four affine layers, two pooled.
    Network net = load_network(cnn);
    REQUIRE(net.layers.size() == 4);
    CHECK(net.pool(0) != nullptr);
    CHECK(net.pool(1) != nullptr);
    CHECK(net.pool(2) == nullptr);
    CHECK(net.layers[0].sparse());
    CHECK(net.layers[1].in == 16 * 14 * 14);
    // Against the engine's float32 forward at random inputs in [0, 1]: the
    // double-precision chain differs by float32 rounding only (1e-4 rel + abs).
    engine::Session session(engine::load_onnx(cnn));
    std::mt19937_64 rng(5);
    for (int t = 0; t < 3; ++t) {
      engine::Tensor x = random_tensor({1, 1, 28, 28}, rng, 0, 1);
      auto ref = session.forward(x).to_doubles();
      auto y = net.forward(x.to_doubles());
      auto yf = net.forward_f32(std::vector<float>(x.f32(), x.f32() + x.numel()));
      for (size_t k = 0; k < ref.size(); ++k) {
        CHECK(mlaudit::test::close(y[k], ref[k], 1e-4, 1e-4));
        CHECK(mlaudit::test::close(double(yf[k]), ref[k], 1e-4, 1e-4));
      }
    }
  }
}
