// Ops of engine/src/ops_rnn.cpp (RNN, GRU, LSTM): values against onnxruntime (or the onnx
// reference / the spec's torch formula where onnxruntime has no kernel: layout 1, opset < 7;
// tools/engine_goldens_rnn.py), vector-Jacobian products (backpropagation through time) against
// PyTorch autograd and against finite differences, PyTorch-exported classifiers, every
// since-version, edge cases and errors naming the node.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string rnn_dir() { return test::source_path("tests/fixtures/engine/ops_rnn"); }

/// Deterministic float tensor with values in [-0.5, 0.5): 0.37 k mod 1 - 0.5.
Tensor wave(Shape s) {
  Tensor t(std::move(s));
  for (int64_t k = 0; k < t.numel(); ++k) t.f32()[k] = static_cast<float>(std::fmod(0.37 * double(k), 1.0) - 0.5);
  return t;
}

/// One-node RNN/GRU/LSTM with X [T, B, I], W, R (and optional B) for `gates` gates.
OneNode rnn_node(const std::string& op, int64_t opset, int64_t gates, int64_t T, int64_t B, int64_t I, int64_t H,
                 int64_t dirs = 1, int outputs = 2) {
  OneNode n(op, opset, outputs);
  n.in("x", wave({T, B, I})).in("w", wave({dirs, gates * H, I})).in("r", wave({dirs, gates * H, H}));
  n.attr("hidden_size", H);
  return n;
}

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("rnn ops: forward matches onnxruntime", "[engine][ops][rnn]") {
  CHECK(test::check_op_forward(rnn_dir()) >= 45);  // 27 generated cases + 18 onnx node tests
}

TEST_CASE("rnn ops: vector-Jacobian product matches PyTorch autograd", "[engine][ops][rnn][grad]") {
  CHECK(test::check_op_vjp(rnn_dir()) >= 121);  // every float input of the 27 generated cases
}

TEST_CASE("rnn ops: VJP agrees with central finite differences of the forward", "[engine][ops][rnn][fd]") {
  // The cells are smooth except at Relu, HardSigmoid and LeakyRelu kinks (three cases; random
  // pre-activations, none within the step's reach) and at +-clip (two cases, whose clip the
  // generator picks so that every pre-activation stays >= 0.03 from it: with_clip).
  CHECK(test::check_op_finite_differences(rnn_dir(), {}) >= 121);
}

// ---------------------------------------------------------------- version coverage

TEST_CASE("rnn ops: every since-version from the op's first is handled", "[engine][ops][rnn]") {
  auto table = engine::op_support_table();
  for (const std::string op : {"RNN", "GRU", "LSTM"}) {
    INFO(op);
    auto row = std::find_if(table.begin(), table.end(), [&](const auto& r) { return r.domain.empty() && r.op_type == op; });
    REQUIRE(row != table.end());
    CHECK(row->first_opset == 1);
    CHECK(row->unsupported_versions.empty());
  }
}

// ---------------------------------------------------------------- hand-worked values

TEST_CASE("RNN: one unit, identity weights, hand-computed tanh recursion", "[engine][ops][rnn]") {
  // X = [1, 2] over T = 2, B = 1, I = H = 1, W = 1, R = 0.5: h1 = tanh(1), h2 = tanh(2 + 0.5 h1).
  OneNode n("RNN", 22, 2);
  n.in("x", floats({2, 1, 1}, {1, 2})).in("w", floats({1, 1, 1}, {1})).in("r", floats({1, 1, 1}, {0.5f}));
  n.attr("hidden_size", int64_t(1));
  auto out = n.run();
  const double h1 = std::tanh(1.0), h2 = std::tanh(2.0 + 0.5 * h1);
  REQUIRE(out.at(0).shape() == Shape{2, 1, 1, 1});
  // float32 tanh and one multiply-add: within a few ulps of 1.
  CHECK(values(out[0])[0] == Approx(h1).epsilon(1e-6));
  CHECK(values(out[0])[1] == Approx(h2).epsilon(1e-6));
  CHECK(values(out[1])[0] == Approx(h2).epsilon(1e-6));
}

TEST_CASE("sequence_lens 0: Y is zero and Y_h keeps initial_h", "[engine][ops][rnn]") {
  OneNode n = rnn_node("GRU", 22, 3, 2, 2, 3, 2);
  n.omit().init("lens", ints({2}, {0, 2})).in("h0", floats({1, 2, 2}, {0.25f, -0.5f, 0.1f, 0.2f}));
  auto out = n.run();
  auto y = values(out.at(0));  // [T, D, B, H]
  for (int64_t t = 0; t < 2; ++t) {
    CHECK(y[static_cast<size_t>(t * 4 + 0)] == 0.0);
    CHECK(y[static_cast<size_t>(t * 4 + 1)] == 0.0);
  }
  auto yh = values(out.at(1));
  CHECK(yh[0] == 0.25);
  CHECK(yh[1] == -0.5);
  CHECK(yh[2] != 0.1);  // the second row ran two steps
}

TEST_CASE("rnn ops: an empty batch gives empty outputs and gradients", "[engine][ops][rnn]") {
  OneNode n = rnn_node("LSTM", 14, 4, 3, 0, 3, 2, 1, 3);
  auto out = n.run();
  CHECK(out.at(0).shape() == Shape{3, 1, 0, 2});
  CHECK(out.at(1).shape() == Shape{1, 0, 2});
  auto g = n.gradient({Tensor(Shape{3, 1, 0, 2}), Tensor(Shape{1, 0, 2}), Tensor(Shape{1, 0, 2})});
  CHECK(g.at(0).shape() == Shape{3, 0, 3});
}

// ---------------------------------------------------------------- errors naming the node

TEST_CASE("rnn ops: bad attributes and shapes are refused naming the node", "[engine][ops][rnn]") {
  {
    OneNode n = rnn_node("RNN", 22, 1, 2, 2, 3, 4);
    n.attr("direction", str_attr("sideways"));
    throws_naming_node(n, "direction must be forward, reverse or bidirectional, got 'sideways'");
  }
  {
    OneNode n("LSTM", 22, 2);
    n.in("x", wave({2, 2, 3})).in("w", wave({1, 16, 5})).in("r", wave({1, 16, 4}));
    throws_naming_node(n, "W has shape [1,16,5], expected [1,16,3]");
  }
  {
    OneNode n = rnn_node("GRU", 22, 3, 2, 2, 3, 4, 2);  // W for two directions, direction forward
    throws_naming_node(n, "W has shape [2,12,3], expected [1,12,3]");
  }
  {
    OneNode n = rnn_node("RNN", 22, 1, 2, 2, 3, 4);
    n.omit().init("lens", ints({2}, {1, 3}));
    throws_naming_node(n, "sequence_lens[1] = 3 is outside [0, 2]");
  }
  {
    OneNode n = rnn_node("RNN", 22, 1, 2, 2, 3, 4);
    n.omit().init("lens", ints({3}, {1, 1, 1}));
    throws_naming_node(n, "sequence_lens has shape [3], expected [2]");
  }
  {
    OneNode n = rnn_node("LSTM", 22, 4, 2, 2, 3, 4);
    n.attr("activations", strs_attr({"Sigmoid", "Affine", "Tanh"}));
    throws_naming_node(n, "activation 'Affine' is not supported");
  }
  {
    OneNode n = rnn_node("GRU", 22, 3, 2, 2, 3, 4);
    n.attr("activations", strs_attr({"Sigmoid"}));
    throws_naming_node(n, "activations lists 1 functions; 1 directions of 2 need 2");
  }
  {
    OneNode n = rnn_node("RNN", 22, 1, 2, 2, 3, 4);
    n.attr("layout", int64_t(2));
    throws_naming_node(n, "layout must be 0 or 1, got 2");
  }
  {
    OneNode n = rnn_node("RNN", 13, 1, 2, 2, 3, 4);
    n.attr("layout", int64_t(1));
    throws_naming_node(n, "attribute 'layout' exists only from opset 14");
  }
  {
    OneNode n = rnn_node("LSTM", 22, 4, 2, 2, 3, 4);
    n.attr("hidden_size", int64_t(5));
    throws_naming_node(n, "hidden_size 5 does not match R's last dimension 4");
  }
  {
    OneNode n = rnn_node("LSTM", 22, 4, 2, 2, 3, 4);
    n.attr("clip", -1.f);
    throws_naming_node(n, "clip must be positive");
  }
  {
    OneNode n = rnn_node("LSTM", 22, 4, 2, 2, 3, 4);
    n.omit().omit().in("h0", wave({1, 3, 4}));
    throws_naming_node(n, "initial_h has shape [1,3,4], expected [1,2,4]");
  }
  {
    OneNode n = rnn_node("LSTM", 22, 4, 2, 2, 3, 4);
    n.omit().omit().omit().omit().in("p", wave({1, 8}));
    throws_naming_node(n, "P has shape [1,8], expected [1,12]");
  }
  {
    OneNode n("RNN", 22, 2);
    n.in("x", wave({2, 3})).in("w", wave({1, 4, 3})).in("r", wave({1, 4, 4}));
    throws_naming_node(n, "X must have rank 3");
  }
  {
    // An empty input dimension keeps X tiny while T x B is 2^32: the projection is refused.
    OneNode n("RNN", 22, 2);
    n.in("x", Tensor(Shape{65536, 65536, 0})).in("w", Tensor(Shape{1, 4, 0})).in("r", wave({1, 4, 4}));
    throws_naming_node(n, "sequence 65536 x batch 65536 x 4 gate units needs");
  }
}
