// ONNX graph -> affine/ReLU chain: hand-built graphs, real models against
// onnxruntime outputs, unsupported ops named.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "conv_products.h"
#include "mlaudit/verify/bounds.h"
#include "mlaudit/verify/network.h"
#include "test_util.h"
#include "verify_test_util.h"

using namespace mlaudit;
using namespace mlaudit::verify;
using mlaudit::verify::testing::graph_node;
using mlaudit::verify::testing::random_tensor;

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
  g.nodes.push_back(graph_node("Sub", "sub", {"input", "mean"}, {"s"}));
  auto flat = graph_node("Flatten", "flat", {"s"}, {"f"});
  flat.attributes["axis"] = engine::Attribute::of_int(1);
  g.nodes.push_back(flat);
  g.nodes.push_back(graph_node("MatMul", "mm", {"f", "W1"}, {"m"}));
  g.nodes.push_back(graph_node("Add", "add", {"m", "b1"}, {"a"}));
  g.nodes.push_back(graph_node("Relu", "relu", {"a"}, {"r"}));
  auto gemm = graph_node("Gemm", "gemm", {"r", "W2", "b2"}, {"y"});
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
  auto pool = graph_node("MaxPool", "pool1", {"input"}, {"y"});
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

TEST_CASE("A convolution too large to fold is refused at once, naming the node", "[verify][network][errors]") {
  // A 300x300 kernel over a 1x1 input padded by 5,000 on every side: 94 million outputs, each with
  // 90,000 taps. Refused before any allocation or loop of that size (an untrusted model).
  std::mt19937_64 rng(5);
  engine::Graph g;
  g.source = "huge.onnx";
  g.inputs.push_back({"input", engine::DType::Float32, {1, 1, 1, 1}});
  g.outputs.push_back({"y", engine::DType::Float32, {1, 1, 9702, 9702}});
  g.initializers["Wc"] = random_tensor({1, 1, 300, 300}, rng);
  auto conv = graph_node("Conv", "big_conv", {"input", "Wc"}, {"y"});
  conv.attributes["kernel_shape"] = engine::Attribute::of_ints({300, 300});
  conv.attributes["pads"] = engine::Attribute::of_ints({5000, 5000, 5000, 5000});
  g.nodes.push_back(conv);
  CHECK_THROWS_WITH(network_from_graph(g),
                    "verify: unsupported op 'Conv' at node 'big_conv' (layer too large for the dense verifier)");
  auto strided = graph_node("Conv", "zero_stride", {"input", "Wc"}, {"y"});
  strided.attributes["kernel_shape"] = engine::Attribute::of_ints({300, 300});
  strided.attributes["strides"] = engine::Attribute::of_ints({0, 1});
  g.nodes = {strided};
  CHECK_THROWS_WITH(network_from_graph(g), "verify: unsupported op 'Conv' at node 'zero_stride' (strides, dilations, "
                                           "group and kernel_shape must be positive)");
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
  auto conv = graph_node("Conv", "conv", {"input", "Wc", "bc"}, {"c"});
  conv.attributes["kernel_shape"] = engine::Attribute::of_ints({3, 3});
  conv.attributes["pads"] = engine::Attribute::of_ints({1, 1, 1, 1});
  conv.attributes["strides"] = engine::Attribute::of_ints({1, 1});
  g.nodes.push_back(conv);
  g.nodes.push_back(graph_node("BatchNormalization", "bn", {"c", "scale", "bias", "mean", "var"}, {"b"}));
  g.nodes.push_back(graph_node("Relu", "relu", {"b"}, {"r"}));
  auto avg = graph_node("AveragePool", "avg", {"r"}, {"p"});
  avg.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
  avg.attributes["strides"] = engine::Attribute::of_ints({2, 2});
  g.nodes.push_back(avg);
  auto flat = graph_node("Flatten", "flat", {"p"}, {"f"});
  g.nodes.push_back(flat);
  auto gemm = graph_node("Gemm", "fc", {"f", "Wf", "bf"}, {"y"});
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

namespace {

// One layer (Conv or AveragePool, optionally after an elementwise Mul by `scale`) then a ReLU and a
// Gemm to two outputs, on input [1, C, H, W].
Network one_conv_network(int64_t C, int64_t H, int64_t W, const std::string& op, std::map<std::string, engine::Attribute> attrs,
                         engine::Shape weight, std::mt19937_64& rng, const engine::Shape& scale = {}) {
  engine::Graph g;
  g.source = "conv";
  g.opset = 13;
  g.inputs.push_back({"input", engine::DType::Float32, {1, C, H, W}});
  std::string live = "input";
  if (!scale.empty()) {
    g.initializers["s"] = random_tensor(scale, rng, 0.5, 2.0);
    g.nodes.push_back(graph_node("Mul", "mul", {live, "s"}, {"scaled"}));
    live = "scaled";
  }
  engine::Node n = op == "Conv" ? graph_node("Conv", "layer", {live, "Wc", "bc"}, {"c"}) : graph_node(op, "layer", {live}, {"c"});
  if (op == "Conv") {
    g.initializers["Wc"] = random_tensor(weight, rng);
    g.initializers["bc"] = random_tensor({weight[0]}, rng);
  }
  n.attributes = std::move(attrs);
  g.nodes.push_back(n);
  g.nodes.push_back(graph_node("Relu", "relu", {"c"}, {"r"}));
  g.nodes.push_back(graph_node("Flatten", "flat", {"r"}, {"f"}));
  // The Gemm's width is the first layer's output size, read off the graph converted up to "c".
  g.outputs.push_back({"y", engine::DType::Float32, {1, 2}});
  engine::Graph upto_c = g;
  upto_c.outputs[0].name = "c";
  upto_c.nodes.resize(upto_c.nodes.size() - 2);  // without the Relu and the Flatten
  const int64_t width = network_from_graph(upto_c).layers[0].out;
  g.initializers["Wf"] = random_tensor({2, width}, rng);
  g.initializers["bf"] = random_tensor({2}, rng);
  auto gemm = graph_node("Gemm", "fc", {"f", "Wf", "bf"}, {"y"});
  gemm.attributes["transB"] = engine::Attribute::of_int(1);
  g.nodes.push_back(gemm);
  return network_from_graph(g);
}

// Max |a - b| relative to the sum of the products' magnitudes (the scale of any rounding).
double worst_gap(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& mag) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / std::max(mag[i], 1e-300));
  return worst;
}

}  // namespace

TEST_CASE("Convolution layers keep their structure and their products equal the matrix's", "[verify][network][conv]") {
  std::mt19937_64 rng(11);
  using A = engine::Attribute;
  struct Case {
    std::string what;
    int64_t C, H, W;
    std::string op;
    std::map<std::string, engine::Attribute> attrs;
    engine::Shape weight, scale;
    bool structured;
  };
  std::vector<Case> cases = {
      {"4x4 stride 2 pad 1 (oval21's)", 3, 8, 8, "Conv",
       {{"kernel_shape", A::of_ints({4, 4})}, {"strides", A::of_ints({2, 2})}, {"pads", A::of_ints({1, 1, 1, 1})}},
       {5, 3, 4, 4}, {}, true},
      {"3x2 kernel, dilation 2, uneven pads", 2, 7, 9, "Conv",
       {{"kernel_shape", A::of_ints({3, 2})}, {"dilations", A::of_ints({2, 2})}, {"pads", A::of_ints({2, 0, 1, 3})}},
       {4, 2, 3, 2}, {}, true},
      {"groups 2, stride (1, 2)", 4, 6, 6, "Conv",
       {{"kernel_shape", A::of_ints({3, 3})}, {"group", A::of_int(2)}, {"strides", A::of_ints({1, 2})},
        {"pads", A::of_ints({1, 1, 1, 1})}},
       {6, 2, 3, 3}, {}, true},
      {"per-channel scale before the conv", 3, 6, 6, "Conv",
       {{"kernel_shape", A::of_ints({3, 3})}, {"pads", A::of_ints({1, 1, 1, 1})}}, {4, 3, 3, 3}, {1, 3, 1, 1}, true},
      {"AveragePool counting the padding", 2, 6, 6, "AveragePool",
       {{"kernel_shape", A::of_ints({3, 3})}, {"pads", A::of_ints({1, 1, 1, 1})}, {"count_include_pad", A::of_int(1)}},
       {}, {}, true},
      // Not one convolution: every pixel scaled differently, or border windows averaging fewer inputs.
      {"per-pixel scale before the conv", 2, 5, 5, "Conv", {{"kernel_shape", A::of_ints({3, 3})}}, {3, 2, 3, 3},
       {1, 2, 5, 5}, false},
      {"AveragePool without the padding", 2, 6, 6, "AveragePool",
       {{"kernel_shape", A::of_ints({3, 3})}, {"pads", A::of_ints({1, 1, 1, 1})}}, {}, {}, false},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Network net = one_conv_network(c.C, c.H, c.W, c.op, c.attrs, c.weight, rng, c.scale);
    const AffineLayer& L = net.layers[0];
    REQUIRE(bool(L.conv) == c.structured);
    if (!L.conv) continue;
    // Three rows at once against W's dense rows: x W^T (forward) and y W (transpose), and |W| x.
    const int64_t rows = 3;
    std::uniform_real_distribution<double> u(-1, 1);
    std::vector<double> x(size_t(rows * L.in)), y(size_t(rows * L.out));
    for (auto& v : x) v = u(rng);
    for (auto& v : y) v = u(rng);
    std::vector<double> fw(y.size()), tr(x.size()), ab(y.size());
    detail::conv_forward(*L.conv, x.data(), rows, fw.data());
    detail::conv_forward(*L.conv, x.data(), rows, ab.data(), true);
    detail::conv_transpose(*L.conv, y.data(), rows, tr.data());
    std::vector<double> ref_fw(y.size(), 0.0), ref_ab(y.size(), 0.0), mag_fw(y.size(), 0.0);
    std::vector<double> ref_tr(x.size(), 0.0), mag_tr(x.size(), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < L.out; ++o)
        for (int64_t i = 0; i < L.in; ++i) {
          const double w = L.weight[size_t(o * L.in + i)];
          const double xi = x[size_t(r * L.in + i)], yo = y[size_t(r * L.out + o)];
          ref_fw[size_t(r * L.out + o)] += w * xi;
          ref_ab[size_t(r * L.out + o)] += std::fabs(w) * xi;
          mag_fw[size_t(r * L.out + o)] += std::fabs(w * xi);
          ref_tr[size_t(r * L.in + i)] += w * yo;
          mag_tr[size_t(r * L.in + i)] += std::fabs(w * yo);
        }
    // The same products summed in another order: within a few units of 2^-53 of their magnitudes
    // (a wrong tap or a missed one is off by O(1) of them).
    CHECK(worst_gap(fw, ref_fw, mag_fw) < 1e-14);
    CHECK(worst_gap(ab, ref_ab, mag_fw) < 1e-14);
    CHECK(worst_gap(tr, ref_tr, mag_tr) < 1e-14);
    // CROWN's output bounds with and without the structure agree to rounding, and hold.
    InputBox box;
    for (int64_t i = 0; i < L.in; ++i) {
      const double centre = u(rng);
      box.lower.push_back(centre - 0.05);
      box.upper.push_back(centre + 0.05);
    }
    LayerBounds with = crown_bounds(net, box);
    Network plain = net;
    plain.layers[0].conv.reset();
    LayerBounds without = crown_bounds(plain, box);
    for (size_t j = 0; j < with.lower.back().size(); ++j) {
      CHECK(with.lower.back()[j] == Approx(without.lower.back()[j]).margin(1e-9));
      CHECK(with.upper.back()[j] == Approx(without.upper.back()[j]).margin(1e-9));
    }
    for (int t = 0; t < 20; ++t) {
      std::vector<double> p(size_t(L.in));
      for (size_t i = 0; i < p.size(); ++i) p[i] = box.lower[i] + (box.upper[i] - box.lower[i]) * (0.5 + 0.5 * u(rng));
      auto out = net.forward(p);
      auto ref = plain.forward(p);
      for (size_t j = 0; j < out.size(); ++j) {
        CHECK(out[j] == Approx(ref[j]).margin(1e-12));
        CHECK(out[j] >= with.lower.back()[j]);
        CHECK(out[j] <= with.upper.back()[j]);
      }
    }
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

TEST_CASE("Transpose and Slice and Pad on the data fold exactly (vs the engine)", "[verify][network]") {
  // A channels-last (NHWC) input as TensorFlow exporters write it: Transpose to NCHW, Conv, ReLU,
  // Pad (constant 0.25, one pad negative: a crop), Slice (negative start, step 2, a reversed axis),
  // Transpose back, Flatten, Gemm. Each is an index map of the data.
  std::mt19937_64 rng(17);
  engine::Graph g;
  g.source = "nhwc.onnx";
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {1, 5, 4, 2}});
  g.outputs.push_back({"y", engine::DType::Float32, {1, 3}});
  g.initializers["Wc"] = random_tensor({3, 2, 2, 2}, rng);
  g.initializers["pads"] = engine::Tensor::from_ints({8}, {0, 0, 1, -1, 0, 0, 2, 1});
  g.initializers["pv"] = engine::Tensor::from_floats({}, {0.25f});
  g.initializers["starts"] = engine::Tensor::from_ints({2}, {-5, 3});
  g.initializers["ends"] = engine::Tensor::from_ints({2}, {100, -100});
  g.initializers["axes"] = engine::Tensor::from_ints({2}, {2, 3});
  g.initializers["steps"] = engine::Tensor::from_ints({2}, {2, -1});
  auto t1 = graph_node("Transpose", "to_nchw", {"x"}, {"a"});
  t1.attributes["perm"] = engine::Attribute::of_ints({0, 3, 1, 2});
  g.nodes.push_back(t1);
  g.nodes.push_back(graph_node("Conv", "conv", {"a", "Wc"}, {"c"}));
  g.nodes.push_back(graph_node("Relu", "relu", {"c"}, {"r"}));
  g.nodes.push_back(graph_node("Pad", "pad", {"r", "pads", "pv"}, {"p"}));
  g.nodes.push_back(graph_node("Slice", "slice", {"p", "starts", "ends", "axes", "steps"}, {"s"}));
  auto t2 = graph_node("Transpose", "to_nhwc", {"s"}, {"t"});
  t2.attributes["perm"] = engine::Attribute::of_ints({0, 2, 3, 1});
  g.nodes.push_back(t2);
  auto flat = graph_node("Flatten", "flat", {"t"}, {"f"});
  flat.attributes["axis"] = engine::Attribute::of_int(1);
  g.nodes.push_back(flat);
  // conv: [1,3,4,3]; pad H by (1, 2), W by (-1, 1): [1,3,7,3]; slice H from -5 step 2: rows 2,4,6;
  // W from 2 (3 clamped) down to the start: 3 columns reversed; flattened 3*3*3 = 27
  g.initializers["Wf"] = random_tensor({3, 27}, rng);
  auto gemm = graph_node("Gemm", "fc", {"f", "Wf"}, {"y"});
  gemm.attributes["transB"] = engine::Attribute::of_int(1);
  g.nodes.push_back(gemm);
  Network net = network_from_graph(g);
  REQUIRE(net.layers.size() == 2);
  CHECK(net.layers[0].out == 36);
  CHECK(net.layers[1].in == 36);
  engine::Session session(g);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int s = 0; s < 10; ++s) {
    std::vector<float> xf(40);
    for (auto& v : xf) v = u(rng);
    auto ref = session.forward(engine::Tensor::from_floats({1, 5, 4, 2}, xf)).to_doubles();
    auto y = net.forward(std::vector<double>(xf.begin(), xf.end()));
    REQUIRE(ref.size() == 3);
    for (size_t k = 0; k < 3; ++k) CHECK(test::close(y[k], ref[k], 1e-5, 1e-5));
  }
  auto bad = graph_node("Transpose", "bad_perm", {"x"}, {"y"});
  bad.attributes["perm"] = engine::Attribute::of_ints({0, 1, 1, 2});
  g.nodes = {bad};
  CHECK_THROWS_WITH(network_from_graph(g), "verify: unsupported op 'Transpose' at node 'bad_perm' (perm is not a permutation)");
}
