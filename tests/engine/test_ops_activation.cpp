// Ops of engine/src/ops_activation.cpp and the version history of ops_elementwise.cpp: values
// against onnxruntime (or, where no runtime has a kernel, the onnx reference or the spec's
// formula in torch: tools/engine_goldens_activation.py), vector-Jacobian products against
// PyTorch autograd and against finite differences, old since-versions, edge cases and errors
// naming the node.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string activation_dir() { return test::source_path("tests/fixtures/engine/ops_activation"); }

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("activation ops: forward matches onnxruntime", "[engine][ops][activation]") {
  CHECK(test::check_op_forward(activation_dir()) >= 100);
}

TEST_CASE("activation ops: vector-Jacobian product matches PyTorch autograd", "[engine][ops][activation][grad]") {
  CHECK(test::check_op_vjp(activation_dir()) >= 76);
}

TEST_CASE("activation ops: VJP agrees with central finite differences of the forward",
          "[engine][ops][activation][fd]") {
  // Every fixture input sits at least 0.1 from its op's kinks and jumps, and the directional
  // step is 1e-2 * N(0,1) per coordinate, so the step crosses none of them.
  CHECK(test::check_op_finite_differences(activation_dir(), {}) >= 76);
}

// ---------------------------------------------------------------- version coverage

TEST_CASE("activation ops: every since-version from the op's first is handled", "[engine][ops][activation]") {
  // The ops of this part and the element-wise ops whose older versions it implements: none
  // refuses a version (no min_version above the first, no unsupported_versions).
  const std::vector<std::string> ops = {
      "Gelu", "Mod", "Reciprocal", "HardSwish", "Mish", "PRelu", "Selu", "Celu", "ThresholdedRelu", "Softsign",
      "Floor", "Ceil", "Round", "Cos", "Sin", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh",
      "Atanh", "Shrink", "IsNaN", "IsInf", "Mean", "Hardmax", "Equal", "Less", "Greater", "LessOrEqual",
      "GreaterOrEqual", "Not", "And", "Or", "Xor", "Where", "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Min", "Max",
      "Relu", "LeakyRelu", "Elu", "HardSigmoid", "Softplus", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs",
      "Clip", "Erf", "Sign", "Cast", "Identity", "Dropout"};
  auto table = engine::op_support_table();
  for (const auto& op : ops) {
    INFO(op);
    int64_t first = 0;
    for (int64_t v = 1; v <= engine::newest_known_opset("") && first == 0; ++v)
      first = engine::op_since_version("", op, v);
    REQUIRE(first > 0);
    auto row = std::find_if(table.begin(), table.end(), [&](const auto& r) { return r.domain.empty() && r.op_type == op; });
    REQUIRE(row != table.end());
    CHECK(row->first_opset == first);
    CHECK(row->unsupported_versions.empty());
  }
}

// ---------------------------------------------------------------- old since-versions

TEST_CASE("Add-6 legacy broadcast: B aligned at axis, suffix without it, equal shapes with broadcast=0",
          "[engine][ops][activation]") {
  OneNode a("Add", 6);
  a.in("a", iota({2, 3, 2})).in("b", floats({3}, {10, 20, 30})).attr("broadcast", int64_t(1)).attr("axis", int64_t(1));
  auto y = a.run().at(0);
  CHECK(y.shape() == Shape{2, 3, 2});
  CHECK(values(y) == std::vector<double>{10, 11, 22, 23, 34, 35, 16, 17, 28, 29, 40, 41});
  // The gradient of B sums over A's other dims and keeps B's own shape.
  auto g = a.gradient({Tensor::full({2, 3, 2}, 1.f)});
  CHECK(g.at(1).shape() == Shape{3});
  CHECK(values(g.at(1)) == std::vector<double>{4, 4, 4});

  OneNode s("Sub", 1);
  s.in("a", iota({2, 2})).in("b", floats({2}, {1, 2})).attr("broadcast", int64_t(1));
  CHECK(values(s.run().at(0)) == std::vector<double>{-1, -1, 1, 1});

  OneNode off("Mul", 6);
  off.in("a", iota({2, 3})).in("b", floats({3}, {1, 2, 3}));
  CHECK_THROWS_WITH(off.run(), Catch::Contains("Mul at node 'Mul_0': shapes [2,3] and [3] differ and broadcast=0"));

  OneNode far("Div", 6);
  far.in("a", iota({2, 3})).in("b", floats({3}, {1, 2, 3})).attr("broadcast", int64_t(1)).attr("axis", int64_t(2));
  CHECK_THROWS_WITH(far.run(), Catch::Contains("Div at node 'Div_0': B [3] does not fit A [2,3] at axis 2"));

  OneNode mismatch("Add", 6);
  mismatch.in("a", iota({2, 3})).in("b", floats({2}, {1, 2})).attr("broadcast", int64_t(1));
  CHECK_THROWS_WITH(mismatch.run(), Catch::Contains("B [2] does not match A [2,3]"));

  // From opset 7 the attributes are gone and numpy broadcasting applies to both operands.
  OneNode numpy("Add", 7);
  numpy.in("a", iota({2, 1})).in("b", floats({3}, {10, 20, 30}));
  CHECK(numpy.run().at(0).shape() == Shape{2, 3});
}

TEST_CASE("Sum/Mean/Max before opset 8 require equal shapes", "[engine][ops][activation]") {
  for (const char* op : {"Sum", "Mean", "Max"}) {
    INFO(op);
    OneNode s(op, 6);
    s.in("a", iota({2, 3})).in("b", iota({3}));
    CHECK_THROWS_WITH(s.run(), Catch::Contains("input shapes [2,3] and [3] differ (inputs broadcast only from opset 8)"));
    OneNode s8(op, 8);
    s8.in("a", iota({2, 3})).in("b", iota({3}));
    CHECK(s8.run().at(0).shape() == Shape{2, 3});
  }
}

TEST_CASE("Hardmax-11 coerces to 2-D, Hardmax-13 takes one axis", "[engine][ops][activation]") {
  // x[i, j, k] = 4 i + 2 j + k: per row of the coerced [2, 4] the last element wins; along
  // axis 1 alone, j = 1 wins for every (i, k).
  OneNode h11("Hardmax", 11);
  h11.in("x", iota({2, 2, 2})).attr("axis", int64_t(1));
  CHECK(values(h11.run().at(0)) == std::vector<double>{0, 0, 0, 1, 0, 0, 0, 1});
  OneNode h13("Hardmax", 13);
  h13.in("x", iota({2, 2, 2})).attr("axis", int64_t(1));
  CHECK(values(h13.run().at(0)) == std::vector<double>{0, 0, 1, 1, 0, 0, 1, 1});
  OneNode bad("Hardmax", 13);
  bad.in("x", iota({2, 2, 2})).attr("axis", int64_t(3));
  CHECK_THROWS_WITH(bad.run(), Catch::Contains("Hardmax at node 'Hardmax_0': axis 3 out of range for rank 3"));
  OneNode empty("Hardmax", 13);
  empty.in("x", Tensor(Shape{0, 4}));
  CHECK(empty.run().at(0).shape() == Shape{0, 4});
}

TEST_CASE("PRelu: slope shapes by version", "[engine][ops][activation]") {
  OneNode p7("PRelu", 7);
  p7.in("x", floats({2, 2}, {-1, 2, -3, 4})).in("s", floats({3}, {0.1f, 0.2f, 0.3f}));
  CHECK_THROWS_WITH(p7.run(), Catch::Contains("PRelu at node 'PRelu_0': shapes [2,2] and [3] cannot be broadcast"));
  // Unidirectional: the slope may not enlarge X.
  OneNode grow("PRelu", 16);
  grow.in("x", floats({1, 2}, {-1, 2})).in("s", floats({3, 1}, {0.1f, 0.2f, 0.3f}));
  CHECK_THROWS_WITH(grow.run(), Catch::Contains("slope [3,1] is not unidirectionally broadcastable to X [1,2]"));
  OneNode p6("PRelu", 6);
  p6.in("x", floats({1, 2, 2}, {-1, -1, -1, 1})).in("s", floats({2}, {0.5f, 0.25f}));
  CHECK(values(p6.run().at(0)) == std::vector<double>{-0.5, -0.5, -0.25, 1});
  OneNode p6bad("PRelu", 6);
  p6bad.in("x", floats({1, 2, 2}, {-1, -1, -1, 1})).in("s", floats({3}, {0.5f, 0.25f, 1.f}));
  CHECK_THROWS_WITH(p6bad.run(), Catch::Contains("neither one value, X's shape [1,2,2] nor one per channel"));
}

TEST_CASE("Clip: attribute forms before 11, scalar inputs after, integers from 12", "[engine][ops][activation]") {
  OneNode c1("Clip", 1);
  c1.in("x", floats({3}, {-5, 0, 5})).attr("max", 1.f);
  CHECK(values(c1.run().at(0)) == std::vector<double>{-5, 0, 1});
  OneNode c13("Clip", 13);
  c13.in("x", ints({4}, {-5, 0, 5, 9})).init("lo", ints({}, {-1})).init("hi", ints({}, {6}));
  auto y = c13.run().at(0);
  CHECK(y.dtype() == DType::Int64);
  CHECK(values(y) == std::vector<double>{-1, 0, 5, 6});
  OneNode not_scalar("Clip", 13);
  not_scalar.in("x", floats({2}, {1, 2})).init("lo", floats({2}, {0, 0}));
  CHECK_THROWS_WITH(not_scalar.run(), Catch::Contains("Clip at node 'Clip_0': min must be a scalar, got shape [2]"));
  OneNode empty_min("Clip", 13);
  empty_min.in("x", floats({2}, {1, 2})).init("lo", Tensor(Shape{0}));
  CHECK_THROWS_WITH(empty_min.run(), Catch::Contains("min must be a scalar, got shape [0]"));
  OneNode mixed("Clip", 13);
  mixed.in("x", floats({2}, {1, 2})).init("lo", ints({}, {0}));
  CHECK_THROWS_WITH(mixed.run(), Catch::Contains("min is int64, input is float32"));
}

TEST_CASE("Cast-1 names the type by string, narrowing wraps, unsupported targets named", "[engine][ops][activation]") {
  OneNode c1("Cast", 1);
  c1.in("x", floats({3}, {1.9f, -1.9f, 0.f})).attr("to", str_attr("INT32"));
  CHECK(values(c1.run().at(0)) == std::vector<double>{1, -1, 0});
  OneNode bad("Cast", 1);
  bad.in("x", floats({1}, {1.f})).attr("to", str_attr("COMPLEX64"));
  CHECK_THROWS_WITH(bad.run(), Catch::Contains("Cast at node 'Cast_0': unknown cast target type 'COMPLEX64'"));
  OneNode complex("Cast", 13);  // COMPLEX64: no such engine type
  complex.in("x", floats({1}, {1.f})).attr("to", int64_t(14));
  CHECK_THROWS_WITH(complex.run(), Catch::Contains("cast to ONNX type 14 is not supported"));
  // NaN and out-of-range floats become INT64_MIN (x86's conversion) instead of undefined behaviour.
  OneNode wild("Cast", 13);
  wild.in("x", floats({3}, {std::nanf(""), 1e30f, -1e30f})).attr("to", int64_t(7));
  auto y = wild.run().at(0);
  for (int64_t i = 0; i < 3; ++i) CHECK(y.i64()[i] == std::numeric_limits<int64_t>::min());
  OneNode i8("Cast", 13);
  i8.in("x", ints({3}, {127, 128, -129})).attr("to", int64_t(3));
  CHECK(values(i8.run().at(0)) == std::vector<double>{127, -128, 127});
}

TEST_CASE("Dropout: inference only, mask type by version", "[engine][ops][activation]") {
  OneNode train("Dropout", 13, 2);
  train.in("x", iota({2})).init("r", floats({}, {0.5f})).init("t", bools({}, {true}));
  CHECK_THROWS_WITH(train.run(), Catch::Contains("training_mode=true (random dropout) is not supported"));
  OneNode eval("Dropout", 13, 2);
  eval.in("x", iota({2})).init("r", floats({}, {0.5f})).init("t", bools({}, {false}));
  auto y = eval.run();
  CHECK(values(y.at(0)) == std::vector<double>{0, 1});
  CHECK(y.at(1).dtype() == DType::Bool);
  OneNode old("Dropout", 7, 2);
  old.in("x", iota({2}));
  CHECK(old.run().at(1).dtype() == DType::Float32);
}

// ---------------------------------------------------------------- integer arithmetic and errors

TEST_CASE("Mod: Python and C remainders, division by zero refused, fmod=0 on floats from opset 28",
          "[engine][ops][activation]") {
  const int64_t min64 = std::numeric_limits<int64_t>::min();
  OneNode m("Mod", 13);
  m.in("a", ints({4}, {-7, 7, min64, 5})).in("b", ints({4}, {3, -3, -1, 5}));
  CHECK(values(m.run().at(0)) == std::vector<double>{2, -2, 0, 0});
  OneNode zero("Mod", 13);
  zero.in("a", ints({2}, {1, 2})).in("b", ints({2}, {1, 0}));
  CHECK_THROWS_WITH(zero.run(), Catch::Contains("Mod at node 'Mod_0': integer modulus by zero"));
  OneNode f13("Mod", 13);
  f13.in("a", floats({1}, {1.5f})).in("b", floats({1}, {1.f}));
  CHECK_THROWS_WITH(f13.run(), Catch::Contains("fmod=0 on float input is defined from opset 28"));
  OneNode f28("Mod", 28);
  f28.in("a", floats({2}, {-1.5f, 1.5f})).in("b", floats({2}, {1.f, -1.f}));
  CHECK(values(f28.run().at(0)) == std::vector<double>{0.5, -0.5});
  OneNode types("Mod", 13);
  types.in("a", ints({1}, {1})).in("b", floats({1}, {1.f}));
  CHECK_THROWS_WITH(types.run(), Catch::Contains("input types differ (int64 and float32)"));
}

TEST_CASE("int64 Div, Pow, Neg wrap instead of trapping", "[engine][ops][activation]") {
  const int64_t min64 = std::numeric_limits<int64_t>::min();
  OneNode d("Div", 14);
  d.in("a", ints({2}, {min64, -7})).in("b", ints({2}, {-1, 2}));
  auto y = d.run().at(0);
  CHECK(y.i64()[0] == min64);  // two's complement wrap, not SIGFPE
  CHECK(y.i64()[1] == -3);
  OneNode dz("Div", 14);
  dz.in("a", ints({1}, {1})).in("b", ints({1}, {0}));
  CHECK_THROWS_WITH(dz.run(), Catch::Contains("integer division by zero"));
  OneNode p("Pow", 15);
  p.in("a", ints({4}, {2, -1, 2, 3})).in("b", ints({4}, {62, -3, -1, 64}));
  y = p.run().at(0);
  CHECK(y.i64()[0] == (int64_t(1) << 62));
  CHECK(y.i64()[1] == -1);
  CHECK(y.i64()[2] == 0);
  OneNode p0("Pow", 15);
  p0.in("a", ints({1}, {0})).in("b", ints({1}, {-1}));
  CHECK_THROWS_WITH(p0.run(), Catch::Contains("0 raised to a negative integer power"));
  OneNode n("Neg", 13);
  n.in("x", ints({2}, {min64, 3}));
  CHECK(n.run().at(0).i64()[0] == min64);
}

TEST_CASE("comparisons, logic and Where: types and shapes checked", "[engine][ops][activation]") {
  OneNode eq("Equal", 13);
  eq.in("a", floats({2}, {1, 2})).in("b", ints({2}, {1, 2}));
  CHECK_THROWS_WITH(eq.run(), Catch::Contains("Equal at node 'Equal_0': input types differ (float32 and int64)"));
  OneNode lt("Less", 13);
  lt.in("a", iota({2, 3})).in("b", iota({2}));
  CHECK_THROWS_WITH(lt.run(), Catch::Contains("shapes [2,3] and [2] cannot be broadcast"));
  OneNode an("And", 7);
  an.in("a", iota({2})).in("b", bools({2}, {true, false}));
  CHECK_THROWS_WITH(an.run(), Catch::Contains("And at node 'And_0': input 0 is float32, expected bool"));
  OneNode w("Where", 16);
  w.in("c", floats({2}, {1, 0})).in("x", iota({2})).in("y", iota({2}));
  CHECK_THROWS_WITH(w.run(), Catch::Contains("Where at node 'Where_0': input 0 is float32, expected bool"));
  OneNode wt("Where", 16);
  wt.in("c", bools({2}, {true, false})).in("x", iota({2})).in("y", ints({2}, {1, 2}));
  CHECK_THROWS_WITH(wt.run(), Catch::Contains("X and Y types differ (float32 and int64)"));
  OneNode ws("Where", 16);
  ws.in("c", bools({3}, {true, false, true})).in("x", iota({2, 1})).in("y", iota({2}));
  CHECK_THROWS_WITH(ws.run(), Catch::Contains("cannot be broadcast"));
  // Empty dims broadcast to empty outputs.
  OneNode we("Where", 16);
  we.in("c", Tensor(DType::Bool, {0, 3})).in("x", iota({3})).in("y", iota({1}));
  CHECK(we.run().at(0).shape() == Shape{0, 3});
  OneNode ge("GreaterOrEqual", 16);
  ge.in("a", Tensor(Shape{2, 0})).in("b", iota({1}));
  CHECK(ge.run().at(0).shape() == Shape{2, 0});
}

TEST_CASE("Where's gradient goes to the chosen operand, summed over its broadcast dims", "[engine][ops][activation]") {
  OneNode w("Where", 16);
  w.in("c", bools({2, 2}, {true, false, false, false})).in("x", floats({1}, {5})).in("y", iota({2, 2}));
  auto g = w.gradient({floats({2, 2}, {1, 2, 3, 4})});
  CHECK(g.at(0).empty());  // bool condition: no gradient
  CHECK(values(g.at(1)) == std::vector<double>{1});
  CHECK(values(g.at(2)) == std::vector<double>{0, 2, 3, 4});
}

TEST_CASE("Gelu and IsInf read their attributes, bad ones are named", "[engine][ops][activation]") {
  OneNode g("Gelu", 20);
  g.in("x", floats({1}, {1.f})).attr("approximate", str_attr("sigmoid"));
  CHECK_THROWS_WITH(g.run(), Catch::Contains("Gelu at node 'Gelu_0': unknown approximate 'sigmoid' (none or tanh)"));
  OneNode neg("IsInf", 10);
  neg.in("x", floats({3}, {-INFINITY, INFINITY, 1.f})).attr("detect_positive", int64_t(0));
  CHECK(values(neg.run().at(0)) == std::vector<double>{1, 0, 0});
  OneNode ints_in("IsNaN", 13);
  ints_in.in("x", ints({1}, {1}));
  CHECK_THROWS_WITH(ints_in.run(), Catch::Contains("input 0 is int64, expected float32"));
}
