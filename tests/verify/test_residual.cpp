// Residual networks (skip connections: an Add of two values computed from the input, Concat): the
// loader carries a value read after a ReLU layer through that layer as extra rows
// (verify/src/network.cpp), an exact rewriting of the network. Checked against auto_LiRPA, which
// propagates bounds over the graph itself (tools/verify_residual_golden.py), against the engine's
// forward pass, by sampling, and on the wirings it must refuse.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/verify/bounds.h"
#include "mlaudit/verify/network.h"
#include "mlaudit/verify/solver.h"
#include "test_util.h"
#include "verify_test_util.h"

using namespace mlaudit;
using namespace mlaudit::verify;
using mlaudit::verify::testing::graph_node;
using mlaudit::verify::testing::random_tensor;
using mlaudit::verify::testing::margin_objectives;
using mlaudit::verify::testing::sample_in_box;

namespace {

int64_t nonneg_rows(const Network& net) {
  int64_t n = 0;
  for (const auto& L : net.layers)
    for (char c : L.nonneg) n += c != 0;
  return n;
}

// The network's double forward against the engine's float32 forward of the same graph.
void check_forward_matches_engine(const Network& net, engine::Session& session, std::mt19937_64& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  for (int s = 0; s < 20; ++s) {
    std::vector<float> xf(static_cast<size_t>(net.input_size()));
    for (auto& v : xf) v = float(u(rng));
    std::vector<double> x(xf.begin(), xf.end());
    std::vector<double> y = net.forward(x);
    std::vector<double> ref = session.forward(engine::Tensor::from_floats(net.input_shape, xf)).to_doubles();
    REQUIRE(y.size() == ref.size());
    // float32 activations against double: a few float32 ulps of the largest partial sums.
    for (size_t k = 0; k < y.size(); ++k) CHECK(test::close(y[k], ref[k], 1e-5, 1e-5));
  }
}

}  // namespace

TEST_CASE("Residual networks exported by PyTorch: IBP and CROWN bounds equal auto_LiRPA's", "[verify][residual][golden]") {
  // tools/verify_residual_golden.py: a torchvision-style ResNet (identity and 1x1-projection
  // shortcuts, global average pooling as ReduceMean) and a pre-activation residual MLP (skips that
  // read an affine map of the input and a sum that is not a ReLU output), exported by torch's
  // default exporter; auto_LiRPA 0.3 bounds in float64 with every intermediate neuron
  // back-substituted, which crown_bounds(refine_stable, !intersect_ibp) computes.
  for (const std::string name : {"resnet_small", "preact_mlp"}) {
    INFO(name);
    std::ifstream f(test::source_path("tests/fixtures/verify/" + name + "_lirpa.json"));
    REQUIRE(f.good());
    auto j = nlohmann::json::parse(f);
    Network net = load_network(test::source_path("tests/fixtures/verify/" + name + ".onnx"));
    const int64_t classes = net.output_size();
    int inexact = 0;
    for (const auto& c : j["cases"]) {
      InputBox box{c["box_lower"].get<std::vector<double>>(), c["box_upper"].get<std::vector<double>>()};
      INFO("eps " << c["eps"].get<double>());
      // The same float32 weights in float64 on both sides: only the order of sums and our outward
      // rounding (~1e-14 relative) differ. The carried copies of the input (preact_mlp's first skip,
      // as relu(x) - relu(-x)) sit on boxes inside [0, 1], where their ReLUs are stable up to the
      // rounding allowance: 1e-9.
      auto y = net.forward(c["input"].get<std::vector<double>>());
      for (size_t k = 0; k < y.size(); ++k) CHECK(test::close(y[k], c["output"][k].get<double>(), 1e-9, 1e-9));
      LayerBounds ibp = interval_bounds(net, box);
      LayerBounds cr = crown_bounds(net, box, {}, true, /*refine_stable=*/true, nullptr, /*intersect_ibp=*/false);
      for (size_t k = 0; k < y.size(); ++k) {
        CHECK(test::close(ibp.lower.back()[k], c["ibp_lower"][k].get<double>(), 1e-9, 1e-9));
        CHECK(test::close(ibp.upper.back()[k], c["ibp_upper"][k].get<double>(), 1e-9, 1e-9));
        CHECK(test::close(cr.lower.back()[k], c["crown_lower"][k].get<double>(), 1e-9, 1e-9));
        CHECK(test::close(cr.upper.back()[k], c["crown_upper"][k].get<double>(), 1e-9, 1e-9));
      }
      auto obj = crown_objective(net, box, cr, margin_objectives(c["label"].get<int64_t>(), classes));
      for (size_t r = 0; r < obj.size(); ++r)
        CHECK(test::close(obj[r].lower, c["margin_crown_lower"][r].get<double>(), 1e-9, 1e-9));
      if (std::fabs(cr.lower.back()[0] - ibp.lower.back()[0]) > 1e-3) ++inexact;
    }
    CHECK(inexact > 0);  // the goldens exercise the ReLU relaxations (CROWN differs from IBP)
  }
}

TEST_CASE("LeakyReLU folded as a x + (1 - a) relu(x): CROWN equals auto_LiRPA's where their slope rules agree", "[verify][residual][golden]") {
  // tools/verify_residual_golden.py: Linear(5->10), LeakyReLU(0.1), Linear(10->10), LeakyReLU(0.3),
  // Linear(10->3). Folded, the ReLU's adaptive lower slope (1 when u > -l, else 0) gives the leaky
  // ReLU the lower slope 1 or a: the area-minimising choice. auto_LiRPA 0.3's BoundLeakyRelu picks 1
  // when its chord slope (u - a l) / (u - l) exceeds 0.5, i.e. u > -(1 - 2a) l: the two rules differ
  // only for (1 - 2a)(-l) < u <= -l. Where no neuron of a case lies in that band, the CROWN bounds
  // must be equal; elsewhere both are sound (checked by sampling) and may differ. Tolerance 1e-8:
  // auto_LiRPA computes every leaky neuron's slopes, stable ones too, through the chord formula
  // with a 1e-8 guard (ub = max(ub, lb + 1e-8)), where ours treats stable neurons exactly; the
  // differences seen are up to 1.3e-9.
  std::ifstream f(test::source_path("tests/fixtures/verify/leaky_mlp_lirpa.json"));
  REQUIRE(f.good());
  auto j = nlohmann::json::parse(f);
  Network net = load_network(test::source_path("tests/fixtures/verify/leaky_mlp.onnx"));
  REQUIRE(net.layers.size() == 3);
  const double slope[2] = {0.1, 0.3};
  std::mt19937_64 rng(9);
  int compared = 0, unstable_seen = 0;
  for (const auto& c : j["cases"]) {
    InputBox box{c["box_lower"].get<std::vector<double>>(), c["box_upper"].get<std::vector<double>>()};
    INFO("eps " << c["eps"].get<double>());
    auto y = net.forward(c["input"].get<std::vector<double>>());
    for (size_t k = 0; k < y.size(); ++k) CHECK(test::close(y[k], c["output"][k].get<double>(), 1e-9, 1e-9));
    LayerBounds cr = crown_bounds(net, box, {}, true, true, nullptr, false);
    bool band = false;
    for (size_t k = 0; k < 2; ++k)
      for (size_t i = 0; i < 10; ++i) {  // the leaky value's own rows come first in each layer
        const double l = cr.lower[k][i], u = cr.upper[k][i], a = slope[k];
        if (l < 0 && u > 0) ++unstable_seen;
        if (l < 0 && u > 0 && u > -(1 - 2 * a) * l && u <= -l) band = true;
      }
    for (int s = 0; s < 200; ++s) {
      auto ys = net.forward(sample_in_box(box, rng, s));
      for (size_t k = 0; k < ys.size(); ++k) {
        CHECK(ys[k] >= cr.lower.back()[k]);
        CHECK(ys[k] <= cr.upper.back()[k]);
      }
    }
    if (band) continue;
    ++compared;
    for (size_t k = 0; k < y.size(); ++k) {
      CHECK(test::close(cr.lower.back()[k], c["crown_lower"][k].get<double>(), 1e-8, 1e-8));
      CHECK(test::close(cr.upper.back()[k], c["crown_upper"][k].get<double>(), 1e-8, 1e-8));
    }
    auto obj = crown_objective(net, box, cr, margin_objectives(c["label"].get<int64_t>(), 3));
    for (size_t r = 0; r < obj.size(); ++r)
      CHECK(test::close(obj[r].lower, c["margin_crown_lower"][r].get<double>(), 1e-8, 1e-8));
  }
  WARN(compared << " of " << j["cases"].size() << " cases compared; " << unstable_seen << " unstable leaky neurons");
  CHECK(compared >= 2);
  CHECK(unstable_seen > 0);
}

TEST_CASE("A skip that reads the model input: exact on boxes where inputs change sign once shifted by the box", "[verify][residual][golden]") {
  // preact_mlp's first skip reads h = W x + b, so the loader carries x as relu(x) and relu(-x);
  // on these boxes (tools/verify_residual_golden.py, points in [-1, 1]^6, radius 0.1 and 0.4) some
  // inputs change sign and those copies are unstable ReLUs. specialise_input_copies shifts them by
  // the box's lower bound (x - lo >= 0, exact): CROWN then equals auto_LiRPA's graph propagation.
  std::ifstream f(test::source_path("tests/fixtures/verify/preact_mlp_signed_lirpa.json"));
  REQUIRE(f.good());
  auto j = nlohmann::json::parse(f);
  Network net = load_network(test::source_path("tests/fixtures/verify/preact_mlp.onnx"));
  REQUIRE(!net.layers[0].input_copy.empty());
  std::mt19937_64 rng(4);
  int looser_before = 0, fewer_unstable = 0;
  for (const auto& c : j["cases"]) {
    InputBox box{c["box_lower"].get<std::vector<double>>(), c["box_upper"].get<std::vector<double>>()};
    INFO("eps " << c["eps"].get<double>());
    auto spec = specialise_input_copies(net, box.lower);
    REQUIRE(spec);
    CHECK(specialise_input_copies(*spec, box.lower) != nullptr);  // still tagged: a second shift is harmless
    LayerBounds plain = crown_bounds(net, box, {}, true, true, nullptr, false);
    LayerBounds cr = crown_bounds(*spec, box, {}, true, true, nullptr, false);
    CHECK(unstable_relu_count(*spec, cr) <= unstable_relu_count(net, plain));
    if (unstable_relu_count(*spec, cr) < unstable_relu_count(net, plain)) ++fewer_unstable;
    for (size_t k = 0; k < 3; ++k) {
      CHECK(test::close(cr.lower.back()[k], c["crown_lower"][k].get<double>(), 1e-9, 1e-9));
      CHECK(test::close(cr.upper.back()[k], c["crown_upper"][k].get<double>(), 1e-9, 1e-9));
      CHECK(plain.lower.back()[k] <= cr.lower.back()[k] + 1e-12);
      if (plain.lower.back()[k] < cr.lower.back()[k] - 1e-6) ++looser_before;
    }
    auto obj = crown_objective(*spec, box, cr, margin_objectives(c["label"].get<int64_t>(), 3));
    for (size_t r = 0; r < obj.size(); ++r)
      CHECK(test::close(obj[r].lower, c["margin_crown_lower"][r].get<double>(), 1e-9, 1e-9));
    // The same function on the box: forward passes agree at sampled points (and the bounds hold).
    for (int s = 0; s < 200; ++s) {
      auto x = sample_in_box(box, rng, s);
      auto a = net.forward(x), b = spec->forward(x);
      for (size_t k = 0; k < a.size(); ++k) {
        CHECK(test::close(a[k], b[k], 1e-12, 1e-12));
        CHECK(b[k] >= cr.lower.back()[k]);
        CHECK(b[k] <= cr.upper.back()[k]);
      }
    }
  }
  CHECK(looser_before > 0);  // the copies were loose before the shift (radius 0.4: inputs change sign)
  CHECK(fewer_unstable > 0);
  // No copies, nothing to specialise.
  CHECK(specialise_input_copies(load_network(test::source_path("tests/fixtures/verify/resnet_small.onnx")),
                                std::vector<double>(64, 0.0)) == nullptr);
}

TEST_CASE("Residual networks: structure and forward pass and sampled soundness", "[verify][residual]") {
  std::mt19937_64 rng(21);
  SECTION("ResNet: the identity shortcut rides as rows >= 0, the projection's inputs as copies") {
    const std::string path = test::source_path("tests/fixtures/verify/resnet_small.onnx");
    Network net = load_network(path);
    // stem, block 1 (conv, conv + shortcut), block 2 (conv, conv + projection), fc: one layer per ReLU + output.
    CHECK(net.layers.size() == 6);
    CHECK(net.input_size() == 64);
    CHECK(net.output_size() == 3);
    // Each block's first ReLU layer carries the block input (4 x 8 x 8 ReLU outputs) through it.
    // Block 1's ReLU layer carries the block input (4 x 8 x 8 ReLU outputs, >= 0: its own rows);
    // block 2's carries the entries its stride-2 1x1 projection reads (4 x 4 x 4: the exporter
    // computes the projection before the block's body, so the carried value has mixed signs and
    // rides as the ReLU outputs it reads).
    CHECK(net.layers[1].out == 256 + 256);
    CHECK(net.layers[3].out == 128 + 64);
    CHECK(nonneg_rows(net) == 256 + 64);
    // Every layer but the output keeps its convolution's structure: the stem alone, the others
    // with the carried rows or the shortcut (identity, or the 1x1 projection) as rest rows.
    for (size_t k = 0; k + 1 < net.layers.size(); ++k) {
      INFO("layer " << k);
      REQUIRE(net.layers[k].conv);
      CHECK(net.layers[k].conv->rest_row.empty() == (k == 0));
    }
    // Their products equal the dense matrix's (the same sums in another order).
    for (size_t k = 0; k + 1 < net.layers.size(); ++k) {
      const AffineLayer& L = net.layers[k];
      std::vector<double> x(size_t(L.in)), g(size_t(L.out));
      std::uniform_real_distribution<double> v(-1, 1);
      for (auto& e : x) e = v(rng);
      for (auto& e : g) e = v(rng);
      std::vector<double> y = L.apply(x), gi = L.apply_transpose(g);
      for (int64_t i = 0; i < L.out; ++i) {
        double ref = L.bias[size_t(i)];
        for (int64_t j = 0; j < L.in; ++j) ref += L.weight[size_t(i * L.in + j)] * x[size_t(j)];
        CHECK(test::close(y[size_t(i)], ref, 1e-12, 1e-12));
      }
      for (int64_t j = 0; j < L.in; ++j) {
        double ref = 0;
        for (int64_t i = 0; i < L.out; ++i) ref += L.weight[size_t(i * L.in + j)] * g[size_t(i)];
        CHECK(test::close(gi[size_t(j)], ref, 1e-12, 1e-12));
      }
    }
    auto session = engine::Session::load(path);
    check_forward_matches_engine(net, *session, rng, 0, 1);
    // Bounds hold at sampled points of a box (IBP, CROWN, every hidden layer too).
    std::vector<double> x0(64);
    std::uniform_real_distribution<double> u(0, 1);
    for (auto& v : x0) v = u(rng);
    InputBox box;
    for (double v : x0) {
      box.lower.push_back(std::max(0.0, v - 0.05));
      box.upper.push_back(std::min(1.0, v + 0.05));
    }
    LayerBounds ibp = interval_bounds(net, box), cr = crown_bounds(net, box);
    CHECK(unstable_relu_count(net, cr) > 0);
    for (int s = 0; s < 300; ++s) {
      auto z = net.pre_activations(sample_in_box(box, rng, s));
      for (size_t k = 0; k < z.size(); ++k)
        for (size_t i = 0; i < z[k].size(); ++i) {
          CHECK(z[k][i] >= cr.lower[k][i]);
          CHECK(z[k][i] <= cr.upper[k][i]);
          CHECK(z[k][i] >= ibp.lower[k][i]);
        }
    }
    // Carried rows are never unstable: their lower bound is clamped at 0 (they are ReLU outputs).
    for (size_t k = 0; k < net.layers.size(); ++k)
      for (size_t i = 0; i < net.layers[k].nonneg.size(); ++i)
        if (net.layers[k].nonneg[i]) CHECK(cr.lower[k][i] >= 0);
  }
  SECTION("pre-activation MLP: the first skip reads the input, carried as relu(x) - relu(-x)") {
    const std::string path = test::source_path("tests/fixtures/verify/preact_mlp.onnx");
    Network net = load_network(path);
    CHECK(net.layers.size() == 6);  // relu(h), relu(t1), relu(h2), relu(t2), relu(h3), output
    // Layer 0: h's 8 rows, then the 6 inputs as +x and -x (the skip reads h = W x + b).
    CHECK(net.layers[0].out == 8 + 2 * 6);
    CHECK(net.layers[0].nonneg.empty());
    auto session = engine::Session::load(path);
    check_forward_matches_engine(net, *session, rng, -3, 3);  // negative inputs too: the copies are exact
  }
}

TEST_CASE("Residual networks: robustness proved where CROWN's margins are positive and sat answers hold",
          "[verify][residual]") {
  std::ifstream f(test::source_path("tests/fixtures/verify/resnet_small_lirpa.json"));
  auto j = nlohmann::json::parse(f);
  Network net = load_network(test::source_path("tests/fixtures/verify/resnet_small.onnx"));
  int proved = 0;
  for (const auto& c : j["cases"]) {
    const int64_t label = c["label"];
    Property prop = robustness_property(c["input"].get<std::vector<double>>(), label, net.output_size(),
                                        c["eps"].get<double>(), 0.0, 1.0);
    const InputBox& box = prop.cases.at(0).box;
    VerifyOptions o;
    o.timeout_s = 20 * test::time_scale();
    o.threads = 1;
    VerifyResult r = verify_property(net, prop, o);
    INFO("eps " << c["eps"].get<double>() << ": " << verdict_name(r.verdict) << " by " << r.method << ": " << r.reason);
    bool crown_proves = true;
    for (const auto& m : c["margin_crown_lower"]) crown_proves = crown_proves && m.get<double>() > 1e-6;
    if (crown_proves) CHECK(r.verdict == Verdict::Unsat);  // auto_LiRPA's CROWN alone proves it
    if (r.verdict == Verdict::Unsat) ++proved;
    if (r.verdict == Verdict::Sat) {
      REQUIRE(r.counterexample);
      auto y = net.forward(r.counterexample->input);
      double best_other = -1e300;
      for (int64_t k = 0; k < net.output_size(); ++k)
        if (k != label) best_other = std::max(best_other, y[size_t(k)]);
      CHECK(best_other >= y[size_t(label)] - 1e-6);
      for (size_t i = 0; i < box.lower.size(); ++i) {
        CHECK(r.counterexample->input[i] >= box.lower[i]);
        CHECK(r.counterexample->input[i] <= box.upper[i]);
      }
    }
  }
  CHECK(proved >= 2);
}

TEST_CASE("Skip connections in hand-built graphs: input skips and Concat and the wirings refused", "[verify][residual][errors]") {
  std::mt19937_64 rng(3);
  SECTION("y = W2 relu(W1 x) + x + (x - x): exact for inputs of either sign, bounds sound on a box across 0") {
    engine::Graph g;
    g.source = "skip.onnx";
    g.opset = 13;
    g.inputs.push_back({"x", engine::DType::Float32, {1, 3}});
    g.outputs.push_back({"y", engine::DType::Float32, {1, 3}});
    g.initializers["W1"] = random_tensor({3, 4}, rng);
    g.initializers["W2"] = random_tensor({4, 3}, rng);
    g.nodes.push_back(graph_node("MatMul", "mm1", {"x", "W1"}, {"h"}));
    g.nodes.push_back(graph_node("Relu", "relu", {"h"}, {"r"}));
    g.nodes.push_back(graph_node("MatMul", "mm2", {"r", "W2"}, {"t"}));
    g.nodes.push_back(graph_node("Add", "skip", {"t", "x"}, {"s"}));
    g.nodes.push_back(graph_node("Sub", "zero", {"x", "x"}, {"z"}));
    g.nodes.push_back(graph_node("Add", "plus_zero", {"s", "z"}, {"y"}));
    Network net = network_from_graph(g);
    REQUIRE(net.layers.size() == 2);
    CHECK(net.layers[0].out == 4 + 2 * 3);
    auto session = std::make_unique<engine::Session>(g);
    check_forward_matches_engine(net, *session, rng, -2, 2);
    InputBox box{{-1, -0.5, 0.2}, {0.5, 1, 0.9}};
    LayerBounds cr = crown_bounds(net, box);
    for (int s = 0; s < 500; ++s) {
      auto y = net.forward(sample_in_box(box, rng, s));
      for (size_t k = 0; k < y.size(); ++k) {
        CHECK(y[k] >= cr.lower.back()[k]);
        CHECK(y[k] <= cr.upper.back()[k]);
      }
    }
  }
  SECTION("Concat of a value and a later ReLU output along the channels equals the engine") {
    engine::Graph g;
    g.source = "concat.onnx";
    g.opset = 13;
    g.inputs.push_back({"x", engine::DType::Float32, {1, 2, 3, 3}});
    g.outputs.push_back({"y", engine::DType::Float32, {1, 2}});
    g.initializers["Wc"] = random_tensor({3, 2, 3, 3}, rng);
    g.initializers["Wf"] = random_tensor({2, 45}, rng);
    auto conv = graph_node("Conv", "conv", {"x", "Wc"}, {"c"});
    conv.attributes["pads"] = engine::Attribute::of_ints({1, 1, 1, 1});
    g.nodes.push_back(graph_node("Relu", "relu0", {"x"}, {"a"}));
    conv.inputs[0] = "a";
    g.nodes.push_back(conv);
    g.nodes.push_back(graph_node("Relu", "relu1", {"c"}, {"r"}));
    auto cat = graph_node("Concat", "cat", {"a", "r"}, {"k"});
    cat.attributes["axis"] = engine::Attribute::of_int(1);
    g.nodes.push_back(cat);
    auto flat = graph_node("Flatten", "flat", {"k"}, {"f"});
    flat.attributes["axis"] = engine::Attribute::of_int(1);
    g.nodes.push_back(flat);
    auto gemm = graph_node("Gemm", "fc", {"f", "Wf"}, {"y"});
    gemm.attributes["transB"] = engine::Attribute::of_int(1);
    g.nodes.push_back(gemm);
    Network net = network_from_graph(g);
    CHECK(net.layers.size() == 3);
    CHECK(nonneg_rows(net) == 18);  // relu0's outputs ride through the conv's ReLU layer
    auto session = std::make_unique<engine::Session>(g);
    check_forward_matches_engine(net, *session, rng, -1, 1);
  }
  SECTION("PRelu with per-channel slopes (0.25, 1.5, -0.5) on a conv net equals the engine and its bounds hold") {
    engine::Graph g;
    g.source = "prelu.onnx";
    g.opset = 13;
    g.inputs.push_back({"x", engine::DType::Float32, {1, 2, 4, 4}});
    g.outputs.push_back({"y", engine::DType::Float32, {1, 2}});
    g.initializers["Wc"] = random_tensor({3, 2, 3, 3}, rng);
    g.initializers["slope"] = engine::Tensor::from_floats({3, 1, 1}, {0.25f, 1.5f, -0.5f});
    g.initializers["Wf"] = random_tensor({2, 48}, rng);
    auto conv = graph_node("Conv", "conv", {"x", "Wc"}, {"c"});
    conv.attributes["pads"] = engine::Attribute::of_ints({1, 1, 1, 1});
    g.nodes.push_back(conv);
    g.nodes.push_back(graph_node("PRelu", "prelu", {"c", "slope"}, {"p"}));
    auto flat = graph_node("Flatten", "flat", {"p"}, {"f"});
    flat.attributes["axis"] = engine::Attribute::of_int(1);
    g.nodes.push_back(flat);
    auto gemm = graph_node("Gemm", "fc", {"f", "Wf"}, {"y"});
    gemm.attributes["transB"] = engine::Attribute::of_int(1);
    g.nodes.push_back(gemm);
    Network net = network_from_graph(g);
    CHECK(net.layers.size() == 2);
    CHECK(net.layers[0].out == 48 + 2 * 32);  // the conv's rows, then the input as relu(x), relu(-x)
    auto session = std::make_unique<engine::Session>(g);
    check_forward_matches_engine(net, *session, rng, -1, 1);
    InputBox box{std::vector<double>(32, -0.3), std::vector<double>(32, 0.4)};
    auto spec = specialise_input_copies(net, box.lower);
    REQUIRE(spec);
    for (const Network* n : std::vector<const Network*>{&net, spec.get()}) {
      LayerBounds cr = crown_bounds(*n, box);
      for (int s = 0; s < 300; ++s) {
        auto y = n->forward(sample_in_box(box, rng, s));
        for (size_t k = 0; k < y.size(); ++k) {
          CHECK(y[k] >= cr.lower.back()[k]);
          CHECK(y[k] <= cr.upper.back()[k]);
        }
      }
    }
  }
  SECTION("refused: a product of two data values, data operands of different shapes, a MaxPool inside a skip") {
    engine::Graph g;
    g.source = "bad.onnx";
    g.inputs.push_back({"x", engine::DType::Float32, {1, 1, 4, 4}});
    g.outputs.push_back({"y", engine::DType::Float32, {1, 1, 4, 4}});
    g.nodes = {graph_node("Relu", "relu", {"x"}, {"r"}), graph_node("Mul", "square", {"r", "x"}, {"y"})};
    CHECK_THROWS_WITH(network_from_graph(g),
                      "verify: unsupported op 'Mul' at node 'square' (a product of two data values is not affine)");
    auto pool = graph_node("MaxPool", "pool", {"r"}, {"p"});
    pool.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
    pool.attributes["strides"] = engine::Attribute::of_ints({2, 2});
    g.nodes = {graph_node("Relu", "relu", {"x"}, {"r"}), pool, graph_node("Add", "mix", {"p", "r"}, {"y"})};
    CHECK_THROWS_WITH(network_from_graph(g), "verify: unsupported op 'MaxPool' at node 'pool' (a MaxPool inside a skip connection)");
    g.nodes = {graph_node("Relu", "relu", {"x"}, {"r"}), graph_node("Relu", "relu2", {"r"}, {"r2"}), pool};
    g.nodes.back().inputs = {"r2"};
    g.nodes.push_back(graph_node("Add", "mix", {"p", "x"}, {"y"}));
    CHECK_THROWS_WITH(network_from_graph(g), "verify: unsupported op 'MaxPool' at node 'pool' (a MaxPool inside a skip connection)");
    auto flat = graph_node("Flatten", "flat", {"r"}, {"f"});
    flat.attributes["axis"] = engine::Attribute::of_int(2);
    g.nodes = {graph_node("Relu", "relu", {"x"}, {"r"}), flat, graph_node("Add", "mix", {"f", "r"}, {"y"})};
    CHECK_THROWS_WITH(network_from_graph(g), "verify: unsupported op 'Add' at node 'mix' (operands of shapes [1,16] and "
                                             "[1,1,4,4] (broadcasting between data values))");
  }
}
