// Ops of engine/src/ops_reduce.cpp: values against references, vector-Jacobian products against
// finite differences, errors naming the node.
//
// Fixtures (tools/engine_goldens_reduce.py): one model per since-version of every reduction
// (axes attribute 1/11/12/13, axes input 18, bool at 20, no integers at 28) and of ArgMax/ArgMin
// (1/11 first index, 12/13 select_last_index), with onnxruntime forwards and PyTorch float64
// autograd VJPs. The hand-written cases below pin the edge cases no runtime comparison reaches
// (empty sets, infinities, NaN, int64 wrap-around, scalars) and the error text for bad models.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string reduce_dir() { return test::source_path("tests/fixtures/engine/ops_reduce"); }

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::vector<std::string> kReductions = {"ReduceMax", "ReduceMin",       "ReduceProd",      "ReduceL1",
                                              "ReduceL2",  "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum"};

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("reduce ops: forward matches onnxruntime", "[engine][ops][reduce]") {
  CHECK(test::check_op_forward(reduce_dir()) >= 100);
}

TEST_CASE("reduce ops: vector-Jacobian product matches PyTorch autograd", "[engine][ops][reduce][grad]") {
  CHECK(test::check_op_vjp(reduce_dir()) >= 70);
}

TEST_CASE("reduce ops: VJP agrees with central finite differences of the forward", "[engine][ops][reduce][fd]") {
  // ReduceMax/ReduceMin: the tie cases have a kink exactly at the input (their golden is
  // PyTorch's even split, not a derivative), so both ops rest on the autograd goldens.
  CHECK(test::check_op_finite_differences(reduce_dir(), {"ReduceMax", "ReduceMin"}) >= 50);
}

// ---------------------------------------------------------------- every since-version

TEST_CASE("every reduction runs at every since-version with its axes in the right place", "[engine][ops][reduce]") {
  const Tensor x = floats({2, 2}, {1.f, 2.f, 3.f, 4.f});
  // Row sums of [1, 2; 3, 4] per op, reduced over axis 1.
  const std::vector<std::pair<std::string, std::vector<double>>> want = {
      {"ReduceMax", {2, 4}},
      {"ReduceMin", {1, 3}},
      {"ReduceProd", {2, 12}},
      {"ReduceL1", {3, 7}},
      {"ReduceL2", {std::sqrt(5.0), 5}},
      {"ReduceLogSumExp", {std::log(std::exp(1.0) + std::exp(2.0)), std::log(std::exp(3.0) + std::exp(4.0))}},
      {"ReduceSumSquare", {5, 25}},
      {"ReduceLogSum", {std::log(3.0), std::log(7.0)}}};
  for (const auto& [op, row] : want)
    for (int64_t opset : {1, 11, 12, 13, 18, 20, 28}) {
      INFO(op << " at opset " << opset);
      OneNode n(op, opset);
      n.in("x", x);
      if (opset >= 18)
        n.init("axes", ints({1}, {1}));
      else
        n.attr("axes", std::vector<int64_t>{1});
      n.attr("keepdims", 0);
      Tensor y = n.run().at(0);
      CHECK(y.shape() == Shape{2});
      CHECK(test::worst_ratio(y, floats({2}, {float(row[0]), float(row[1])}), 1e-6, 1e-6) <= 1.0);
    }
}

TEST_CASE("ArgMax/ArgMin honour select_last_index only from version 12", "[engine][ops][reduce]") {
  const Tensor x = floats({1, 4}, {3.f, 1.f, 3.f, 1.f});
  for (int64_t opset : {1, 11, 12, 13}) {
    INFO("opset " << opset);
    OneNode amax("ArgMax", opset), amin("ArgMin", opset);
    amax.in("x", x).attr("axis", 1).attr("select_last_index", 1);
    amin.in("x", x).attr("axis", 1).attr("select_last_index", 1);
    const double last_max = opset >= 12 ? 2 : 0, last_min = opset >= 12 ? 3 : 1;
    CHECK(values(amax.run().at(0)) == std::vector<double>{last_max});
    CHECK(values(amin.run().at(0)) == std::vector<double>{last_min});
    CHECK(amax.run().at(0).dtype() == DType::Int64);
  }
}

// ---------------------------------------------------------------- edge cases

TEST_CASE("reductions over an empty set give the operator's identity", "[engine][ops][reduce]") {
  const Tensor x(Shape{2, 0});
  const std::vector<std::pair<std::string, double>> want = {
      {"ReduceMax", -kInf}, {"ReduceMin", kInf},         {"ReduceProd", 1},      {"ReduceL1", 0},
      {"ReduceL2", 0},      {"ReduceLogSumExp", -kInf}, {"ReduceSumSquare", 0}, {"ReduceLogSum", -kInf}};
  for (const auto& [op, v] : want) {
    INFO(op);
    OneNode n(op, 18);
    n.in("x", x).init("axes", ints({1}, {-1}));
    Tensor y = n.run().at(0);
    CHECK(y.shape() == Shape{2, 1});
    CHECK(values(y) == std::vector<double>{v, v});
    // Nothing to differentiate: the gradient is the (empty) input shape.
    CHECK(n.gradient({Tensor::full({2, 1}, 1.f)}).at(0).shape() == Shape{2, 0});
  }
  OneNode imax("ReduceMax", 18), imin("ReduceMin", 18), bmax("ReduceMax", 20), bmin("ReduceMin", 20);
  imax.in("x", Tensor(DType::Int64, {0, 2})).attr("keepdims", 0);
  imin.in("x", Tensor(DType::Int64, {0, 2})).attr("keepdims", 0);
  bmax.in("x", Tensor(DType::Bool, {0}));
  bmin.in("x", Tensor(DType::Bool, {0}));
  CHECK(imax.run().at(0).to_int64s() == std::vector<int64_t>{std::numeric_limits<int64_t>::min()});
  CHECK(imin.run().at(0).to_int64s() == std::vector<int64_t>{std::numeric_limits<int64_t>::max()});
  CHECK(bmax.run().at(0).to_int64s() == std::vector<int64_t>{0});  // any() of nothing
  CHECK(bmin.run().at(0).to_int64s() == std::vector<int64_t>{1});  // all() of nothing
}

TEST_CASE("reductions keep an empty non-reduced dim and reduce scalars", "[engine][ops][reduce]") {
  OneNode empty_rows("ReduceL2", 13);
  empty_rows.in("x", Tensor(Shape{0, 3})).attr("axes", std::vector<int64_t>{1});
  CHECK(empty_rows.run().at(0).shape() == Shape{0, 1});
  for (const auto& op : kReductions) {
    INFO(op);
    OneNode s(op, 18);
    s.in("x", Tensor::scalar(2.f)).attr("keepdims", 0);
    Tensor y = s.run().at(0);
    CHECK(y.shape() == Shape{});
    CHECK(y.numel() == 1);
  }
}

TEST_CASE("noop_with_empty_axes applies only the element-wise steps", "[engine][ops][reduce]") {
  const Tensor x = floats({3}, {0.5f, 2.f, 4.f});
  OneNode logsum("ReduceLogSum", 18), sumsq("ReduceSumSquare", 18), empty_axes("ReduceMax", 18);
  logsum.in("x", x).attr("noop_with_empty_axes", 1);
  sumsq.in("x", x).attr("noop_with_empty_axes", 1);
  CHECK(test::worst_ratio(logsum.run().at(0), floats({3}, {std::log(0.5f), std::log(2.f), std::log(4.f)}), 1e-6, 1e-7) <= 1.0);
  CHECK(values(sumsq.run().at(0)) == std::vector<double>{0.25, 4, 16});
  // An explicitly empty axes input with noop 0 reduces every axis.
  empty_axes.in("x", x).in("axes", Tensor(DType::Int64, {0})).attr("keepdims", 0);
  CHECK(values(empty_axes.run().at(0)) == std::vector<double>{4});
}

TEST_CASE("ReduceLogSumExp is stable and defined at infinities", "[engine][ops][reduce]") {
  OneNode big("ReduceLogSumExp", 13);
  big.in("x", floats({3}, {1000.f, 1000.f, -1000.f}));
  // log(2 e^1000) = 1000 + log 2: a naive float (or double) sum of exponentials overflows.
  CHECK(test::worst_ratio(big.run().at(0), floats({1}, {1000.f + std::log(2.f)}), 1e-6, 0) <= 1.0);
  auto g = values(big.gradient({Tensor::full({1}, 1.f)}).at(0));
  CHECK(g == std::vector<double>{0.5, 0.5, 0});

  const float inf = std::numeric_limits<float>::infinity();
  OneNode all_minus_inf("ReduceLogSumExp", 13), plus_inf("ReduceLogSumExp", 13);
  all_minus_inf.in("x", floats({2}, {-inf, -inf}));
  plus_inf.in("x", floats({2}, {inf, 0.f}));
  CHECK(values(all_minus_inf.run().at(0)) == std::vector<double>{-kInf});
  CHECK(values(plus_inf.run().at(0)) == std::vector<double>{kInf});
  // Infinite outputs send no gradient (rather than NaN from exp(-inf - -inf)).
  CHECK(values(all_minus_inf.gradient({Tensor::full({1}, 1.f)}).at(0)) == std::vector<double>{0, 0});
}

TEST_CASE("ReduceMax/Min propagate NaN, ArgMax/ArgMin pick the NaN", "[engine][ops][reduce]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = floats({4}, {1.f, nan, 5.f, -2.f});
  OneNode mx("ReduceMax", 13), mn("ReduceMin", 13), am("ArgMax", 13), an("ArgMin", 13);
  mx.in("x", x);
  mn.in("x", x);
  am.in("x", x);
  an.in("x", x);
  CHECK(std::isnan(values(mx.run().at(0))[0]));
  CHECK(std::isnan(values(mn.run().at(0))[0]));
  CHECK(values(am.run().at(0)) == std::vector<double>{1});
  CHECK(values(an.run().at(0)) == std::vector<double>{1});
}

TEST_CASE("reduction gradients at ties, zeros and the origin", "[engine][ops][reduce]") {
  // Ties share the gradient evenly (PyTorch's amax/amin).
  OneNode mx("ReduceMax", 18);
  mx.in("x", floats({2, 3}, {1.f, 3.f, 3.f, 2.f, 2.f, 2.f})).init("axes", ints({1}, {1}));
  CHECK(values(mx.gradient({floats({2, 1}, {1.f, 3.f})}).at(0)) == std::vector<double>{0, 0.5, 0.5, 1, 1, 1});
  // Prod: d/dx_k = prod of the others, exact with one zero and zero with two (no division).
  OneNode pr("ReduceProd", 13);
  pr.in("x", floats({2, 3}, {2.f, 0.f, 3.f, 0.f, 5.f, 0.f})).attr("axes", std::vector<int64_t>{1});
  CHECK(values(pr.gradient({floats({2, 1}, {1.f, 1.f})}).at(0)) == std::vector<double>{0, 6, 0, 0, 0, 0});
  // L2 at the origin: the minimum-norm subgradient 0 rather than 0/0.
  OneNode l2("ReduceL2", 13);
  l2.in("x", floats({2}, {0.f, 0.f}));
  CHECK(values(l2.gradient({floats({1}, {1.f})}).at(0)) == std::vector<double>{0, 0});
  // L1: sign(x), 0 at 0.
  OneNode l1("ReduceL1", 13);
  l1.in("x", floats({3}, {-2.f, 0.f, 1.f}));
  CHECK(values(l1.gradient({floats({1}, {2.f})}).at(0)) == std::vector<double>{-2, 0, 2});
}

TEST_CASE("int64 reductions wrap like numpy and bool Max/Min are any/all", "[engine][ops][reduce]") {
  OneNode prod("ReduceProd", 18), sq("ReduceSumSquare", 18), l1("ReduceL1", 18), l2("ReduceL2", 13);
  const int64_t big = int64_t(1) << 40;
  prod.in("x", ints({2}, {big, big}));  // 2^80 mod 2^64 = 0
  CHECK(prod.run().at(0).to_int64s() == std::vector<int64_t>{0});
  sq.in("x", ints({2}, {3, -4}));
  CHECK(sq.run().at(0).to_int64s() == std::vector<int64_t>{25});
  l1.in("x", ints({2}, {std::numeric_limits<int64_t>::min(), 1}));  // |INT64_MIN| wraps, no UB
  CHECK(l1.run().at(0).to_int64s() == std::vector<int64_t>{std::numeric_limits<int64_t>::min() + 1});
  l2.in("x", ints({2}, {3, 5}));  // sqrt(34) = 5.83 truncated
  CHECK(l2.run().at(0).to_int64s() == std::vector<int64_t>{5});
  CHECK(l2.run().at(0).dtype() == DType::Int64);

  OneNode any("ReduceMax", 20), all("ReduceMin", 20);
  any.in("x", bools({2, 2}, {false, true, false, false})).init("axes", ints({1}, {1})).attr("keepdims", 0);
  all.in("x", bools({2, 2}, {true, true, true, false})).init("axes", ints({1}, {1}));
  Tensor y = any.run().at(0);
  CHECK(y.dtype() == DType::Bool);
  CHECK(y.to_int64s() == std::vector<int64_t>{1, 0});
  CHECK(all.run().at(0).to_int64s() == std::vector<int64_t>{1, 0});
}

// ---------------------------------------------------------------- errors naming the node

TEST_CASE("reductions refuse bad axes, naming the node", "[engine][ops][reduce]") {
  const Tensor x(Shape{2, 3});
  OneNode out_of_range("ReduceMax", 13);
  out_of_range.in("x", x).attr("axes", std::vector<int64_t>{2});
  CHECK_THROWS_AS(out_of_range.run(), InputError);
  CHECK_THROWS_WITH(out_of_range.run(), Catch::Contains("ReduceMax at node 'ReduceMax_0': axis 2 out of range for rank 2"));

  OneNode negative("ReduceL2", 18);
  negative.in("x", x).init("axes", ints({1}, {-3}));
  CHECK_THROWS_WITH(negative.run(), Catch::Contains("axis -3 out of range for rank 2"));

  OneNode twice("ReduceProd", 18);
  twice.in("x", x).init("axes", ints({2}, {1, -1}));
  CHECK_THROWS_WITH(twice.run(), Catch::Contains("axes lists axis -1 more than once"));

  OneNode attr_at_18("ReduceMin", 18);
  attr_at_18.in("x", x).attr("axes", std::vector<int64_t>{0});
  CHECK_THROWS_WITH(attr_at_18.run(), Catch::Contains("axes is an input from opset 18, not an attribute"));

  OneNode input_at_13("ReduceSumSquare", 13);
  input_at_13.in("x", x).init("axes", ints({1}, {0}));
  CHECK_THROWS_WITH(input_at_13.run(), Catch::Contains("takes a single input before opset 18"));

  OneNode float_axes("ReduceL1", 18);
  float_axes.in("x", x).init("axes", floats({1}, {0.f}));
  CHECK_THROWS_WITH(float_axes.run(), Catch::Contains("axes must be int64, got float32"));

  OneNode matrix_axes("ReduceL1", 18);
  matrix_axes.in("x", x).init("axes", ints({1, 1}, {0}));
  CHECK_THROWS_WITH(matrix_axes.run(), Catch::Contains("axes must be 1-D"));

  OneNode scalar("ReduceLogSumExp", 13);
  scalar.in("x", Tensor::scalar(1.f)).attr("axes", std::vector<int64_t>{0});
  CHECK_THROWS_WITH(scalar.run(), Catch::Contains("axis 0 given for a scalar (rank 0) input"));
}

TEST_CASE("reductions refuse element types their version does not allow", "[engine][ops][reduce]") {
  OneNode bool_at_18("ReduceMax", 18);
  bool_at_18.in("x", bools({2}, {true, false}));
  CHECK_THROWS_WITH(bool_at_18.run(), Catch::Contains("ReduceMax at node 'ReduceMax_0': bool input needs opset 20"));
  OneNode bool_prod("ReduceProd", 20);
  bool_prod.in("x", bools({2}, {true, false}));
  CHECK_THROWS_WITH(bool_prod.run(), Catch::Contains("bool input is not allowed"));
  OneNode int_logsum_28("ReduceLogSum", 28), int_logsum_18("ReduceLogSum", 18);
  int_logsum_28.in("x", ints({2}, {1, 2}));
  int_logsum_18.in("x", ints({2}, {3, 5}));
  CHECK_THROWS_WITH(int_logsum_28.run(), Catch::Contains("int64 input is not allowed from opset 28"));
  CHECK(int_logsum_18.run().at(0).to_int64s() == std::vector<int64_t>{2});  // trunc(log 8)
}

TEST_CASE("ArgMax/ArgMin refuse bad axes, scalars and empty axes", "[engine][ops][reduce]") {
  OneNode axis("ArgMax", 13);
  axis.in("x", Tensor(Shape{2, 3})).attr("axis", -3);
  CHECK_THROWS_WITH(axis.run(), Catch::Contains("ArgMax at node 'ArgMax_0': axis -3 out of range for rank 2"));
  OneNode scalar("ArgMin", 13);
  scalar.in("x", Tensor::scalar(1.f));
  CHECK_THROWS_WITH(scalar.run(), Catch::Contains("input must have rank >= 1"));
  OneNode empty("ArgMax", 11);
  empty.in("x", Tensor(Shape{2, 0})).attr("axis", 1);
  CHECK_THROWS_WITH(empty.run(), Catch::Contains("axis 1 of input [2,0] is empty"));
  OneNode flags("ArgMin", 13);
  flags.in("x", bools({2}, {true, false}));
  CHECK_THROWS_WITH(flags.run(), Catch::Contains("input 0 is bool, expected float32 or int64"));
  // An empty non-reduced dim is fine: an empty index tensor.
  OneNode rows("ArgMax", 13);
  rows.in("x", Tensor(Shape{0, 3})).attr("axis", 1).attr("keepdims", 0);
  CHECK(rows.run().at(0).shape() == Shape{0});
}
