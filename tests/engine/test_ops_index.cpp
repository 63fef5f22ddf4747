// Ops of engine/src/ops_index.cpp and the shape ops of ops_shape.cpp: values against
// onnxruntime and vector-Jacobian products against PyTorch autograd (fixtures by
// tools/engine_goldens_index.py, one model per op version whose semantics differ), VJPs
// against finite differences, old since-versions no runtime ships a kernel for, edge cases
// and errors naming the node.
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string index_dir() { return test::source_path("tests/fixtures/engine/ops_index"); }

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("index ops: forward matches onnxruntime", "[engine][ops][index]") {
  CHECK(test::check_op_forward(index_dir()) >= 86);
}

TEST_CASE("index ops: vector-Jacobian product matches PyTorch autograd", "[engine][ops][index][grad]") {
  CHECK(test::check_op_vjp(index_dir()) >= 70);
}

TEST_CASE("index ops: VJP agrees with central finite differences of the forward", "[engine][ops][index][fd]") {
  // Every case is linear in each float input separately (data movement, einsum, one-hot
  // values) or, for TopK, piecewise linear with distinct inputs whose gaps exceed the step.
  CHECK(test::check_op_finite_differences(index_dir(), {}) >= 70);
}

// ---------------------------------------------------------------- old since-versions

TEST_CASE("Concat-1 defaults the axis to 1, Concat-4 requires it", "[engine][ops][index]") {
  OneNode c("Concat", 1);
  c.in("a", iota({2, 1})).in("b", iota({2, 2}));
  auto y = c.run().at(0);
  CHECK(y.shape() == Shape{2, 3});
  CHECK(values(y) == std::vector<double>{0, 0, 1, 1, 2, 3});
  OneNode c4("Concat", 4);
  c4.in("a", iota({2, 1})).in("b", iota({2, 2}));
  CHECK_THROWS_WITH(c4.run(), Catch::Contains("Concat at node 'Concat_0': attribute 'axis' is required"));
}

TEST_CASE("Tile-1 takes tiles and axis inputs", "[engine][ops][index]") {
  OneNode t("Tile", 1);
  t.in("x", iota({2, 2})).init("tiles", scalar_int(3)).init("axis", scalar_int(1));
  auto y = t.run().at(0);
  CHECK(y.shape() == Shape{2, 6});
  CHECK(values(y) == std::vector<double>{0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3});
}

TEST_CASE("Split-1 takes split as an input, Split-2 as an attribute", "[engine][ops][index]") {
  OneNode s1("Split", 1, 2);
  s1.in("x", iota({5})).init("split", ints({2}, {3, 2}));
  auto y = s1.run();
  CHECK(values(y[0]) == std::vector<double>{0, 1, 2});
  CHECK(values(y[1]) == std::vector<double>{3, 4});
  OneNode s2("Split", 2, 2);
  s2.in("x", iota({5})).attr("split", std::vector<int64_t>{1, 4});
  y = s2.run();
  CHECK(y[0].shape() == Shape{1});
  CHECK(y[1].shape() == Shape{4});
}

TEST_CASE("Split-18: num_outputs with an uneven last chunk, the gradient concatenates", "[engine][ops][index]") {
  OneNode s("Split", 18, 3);
  s.in("x", iota({7})).attr("num_outputs", 3);
  auto y = s.run();
  CHECK(y[0].shape() == Shape{3});
  CHECK(y[2].shape() == Shape{1});
  CHECK(values(y[2]) == std::vector<double>{6});
  // Output 1's seed omitted: its part of the gradient is zero.
  auto g = s.gradient({Tensor::full({3}, 1.f), Tensor(), Tensor::full({1}, 2.f)}).at(0);
  CHECK(values(g) == std::vector<double>{1, 1, 1, 0, 0, 0, 2});
}

TEST_CASE("Reshape-1 reads the shape attribute, allowzero only from Reshape-14", "[engine][ops][index]") {
  OneNode r1("Reshape", 1);
  r1.in("x", iota({2, 3})).attr("shape", std::vector<int64_t>{3, -1});
  CHECK(r1.run().at(0).shape() == Shape{3, 2});
  // At version 13 allowzero does not exist: 0 copies the input dim.
  OneNode r13("Reshape", 13);
  r13.in("x", iota({2, 3})).init("s", ints({2}, {0, 3})).attr("allowzero", 1);
  CHECK(r13.run().at(0).shape() == Shape{2, 3});
  OneNode r14("Reshape", 14);
  r14.in("x", Tensor(Shape{0, 3})).init("s", ints({2}, {0, -1})).attr("allowzero", 1);
  CHECK_THROWS_WITH(r14.run(), Catch::Contains("has both 0 and -1 with allowzero"));
}

TEST_CASE("TopK-1 reads k from its attribute and always takes the largest", "[engine][ops][index]") {
  OneNode t("TopK", 1, 2);
  t.in("x", floats({5}, {0.5f, 3.f, -1.f, 3.f, 2.f})).attr("k", 3).attr("largest", 0);
  auto y = t.run();
  CHECK(values(y[0]) == std::vector<double>{3, 3, 2});
  CHECK(values(y[1]) == std::vector<double>{1, 3, 4});  // ties: the lower index first
}

TEST_CASE("Pad-1 reads 'paddings', wrap needs Pad-19", "[engine][ops][index]") {
  OneNode p1("Pad", 1);
  p1.in("x", iota({2})).attr("paddings", std::vector<int64_t>{1, 2}).attr("value", Attribute::of_float(-1.f));
  CHECK(values(p1.run().at(0)) == std::vector<double>{-1, 0, 1, -1, -1});
  OneNode p18("Pad", 18);
  p18.in("x", iota({2})).init("p", ints({2}, {1, 1})).attr("mode", str_attr("wrap"));
  CHECK_THROWS_WITH(p18.run(), Catch::Contains("unknown mode 'wrap' at version 18"));
  OneNode p19("Pad", 19);
  p19.in("x", iota({3})).init("p", ints({2}, {2, 4})).attr("mode", str_attr("wrap"));
  CHECK(values(p19.run().at(0)) == std::vector<double>{1, 2, 0, 1, 2, 0, 1, 2, 0});
}

TEST_CASE("Pad reflect mirrors repeatedly (numpy.pad) and accumulates gradients", "[engine][ops][index]") {
  OneNode p("Pad", 13);
  p.in("x", iota({3})).init("p", ints({2}, {3, 1})).attr("mode", str_attr("reflect"));
  auto y = p.run().at(0);
  // numpy.pad([0,1,2], (3,1), 'reflect') = [1,2,1,0,1,2,1]
  CHECK(values(y) == std::vector<double>{1, 2, 1, 0, 1, 2, 1});
  auto g = p.gradient({Tensor::full({7}, 1.f)}).at(0);
  CHECK(values(g) == std::vector<double>{1, 4, 2});
}

TEST_CASE("Squeeze/Unsqueeze: attribute axes before 13, input from 13", "[engine][ops][index]") {
  OneNode u11("Unsqueeze", 11);
  u11.in("x", iota({3})).attr("axes", std::vector<int64_t>{0, -1});
  CHECK(u11.run().at(0).shape() == Shape{1, 3, 1});
  OneNode u13("Unsqueeze", 13);
  u13.in("x", iota({3})).init("axes", ints({1}, {1}));
  CHECK(u13.run().at(0).shape() == Shape{3, 1});
  OneNode s13("Squeeze", 13);
  s13.in("x", iota({1, 3, 1})).omit();
  CHECK(s13.run().at(0).shape() == Shape{3});
}

TEST_CASE("Shape start/end from Shape-15", "[engine][ops][index]") {
  OneNode s("Shape", 15);
  s.in("x", iota({2, 3, 4})).attr("start", -2);
  CHECK(values(s.run().at(0)) == std::vector<double>{3, 4});
}

// ---------------------------------------------------------------- edge cases

TEST_CASE("Einsum: int64 operands, broadcast ellipsis, repeated labels in the gradient", "[engine][ops][index]") {
  OneNode e("Einsum", 12);
  e.in("a", ints({2, 2}, {1, 2, 3, 4})).in("b", ints({2}, {10, 1})).attr("equation", str_attr("ij,j->i"));
  CHECK(values(e.run().at(0)) == std::vector<double>{12, 34});
  // "...ij,...jk->...ik": batch [2,1] against [3] broadcasts to [2,3].
  OneNode b("Einsum", 12);
  b.in("a", Tensor::full({2, 1, 2, 2}, 1.f)).in("b", Tensor::full({3, 2, 1}, 2.f)).attr("equation", str_attr("...ij,...jk->...ik"));
  auto y = b.run().at(0);
  CHECK(y.shape() == Shape{2, 3, 2, 1});
  CHECK(values(y) == std::vector<double>(12, 4.0));
  // d/dA of sum(seed * trace-like diag): "ii->i" sends the seed to the diagonal only.
  OneNode d("Einsum", 12);
  d.in("x", iota({2, 2})).attr("equation", str_attr("ii->i"));
  auto g = d.gradient({floats({2}, {5.f, 7.f})}).at(0);
  CHECK(values(g) == std::vector<double>{5, 0, 0, 7});
  // Broadcast operand ([1,2] against [3,2]): its gradient sums over the broadcast rows.
  OneNode s("Einsum", 12);
  s.in("a", floats({1, 2}, {1.f, 2.f})).in("b", iota({3, 2})).attr("equation", str_attr("ij,ij->ij"));
  g = s.gradient({Tensor::full({3, 2}, 1.f)}).at(0);
  CHECK(values(g) == std::vector<double>{0 + 2 + 4, 1 + 3 + 5});
}

TEST_CASE("ScatterND: last write wins in the gradient, reduction mul has none", "[engine][ops][index]") {
  OneNode s("ScatterND", 13);
  s.in("x", iota({3})).init("i", ints({2, 1}, {1, 1})).in("u", floats({2}, {10.f, 20.f}));
  CHECK(values(s.run().at(0)) == std::vector<double>{0, 20, 2});
  auto g = s.gradient({floats({3}, {1.f, 2.f, 3.f})});
  CHECK(values(g[0]) == std::vector<double>{1, 0, 3});
  CHECK(values(g[1]) == std::vector<double>{0, 2});
  OneNode m("ScatterND", 16);
  m.in("x", iota({3})).init("i", ints({1, 1}, {1})).in("u", floats({1}, {2.f})).attr("reduction", str_attr("mul"));
  CHECK(values(m.run().at(0)) == std::vector<double>{0, 2, 2});
  CHECK_THROWS_WITH(m.gradient({Tensor::full({3}, 1.f)}), Catch::Contains("only available for reduction 'none' and 'add'"));
  OneNode x("ScatterND", 16);
  x.in("x", iota({3})).init("i", ints({1, 1}, {1})).in("u", floats({1}, {2.f})).attr("reduction", str_attr("max"));
  CHECK_THROWS_WITH(x.run(), Catch::Contains("unknown reduction 'max' at version 16"));
}

TEST_CASE("Empty and degenerate shapes", "[engine][ops][index]") {
  OneNode t("Tile", 13);
  t.in("x", iota({2, 3})).init("r", ints({2}, {0, 2}));
  CHECK(t.run().at(0).shape() == Shape{0, 6});
  OneNode k("TopK", 11, 2);
  k.in("x", iota({2, 3})).init("k", ints({1}, {0}));
  CHECK(k.run().at(0).shape() == Shape{2, 0});
  OneNode n("NonZero", 13);
  n.in("x", Tensor::scalar(2.f));
  CHECK(n.run().at(0).shape() == Shape{1, 1});
  OneNode sl("Slice", 13);
  sl.in("x", iota({4})).init("s", ints({1}, {std::numeric_limits<int64_t>::max()}))
      .init("e", ints({1}, {std::numeric_limits<int64_t>::min()})).init("a", ints({1}, {0}))
      .init("st", ints({1}, {-std::numeric_limits<int64_t>::max()}));
  CHECK(values(sl.run().at(0)) == std::vector<double>{3});
  OneNode c("CumSum", 14);
  c.in("x", Tensor(Shape{0, 2})).init("a", scalar_int(0));
  CHECK(c.run().at(0).shape() == Shape{0, 2});
}

TEST_CASE("Bool tensors move through Expand, Split, Tile, Trilu, Pad", "[engine][ops][index]") {
  Tensor b(DType::Bool, {1, 3});
  b.data<bool>()[0] = true;
  b.data<bool>()[2] = true;
  OneNode e("Expand", 13);
  e.in("x", b).init("s", ints({2}, {2, 1}));
  auto y = e.run().at(0);
  CHECK(y.dtype() == DType::Bool);
  CHECK(values(y) == std::vector<double>{1, 0, 1, 1, 0, 1});
  OneNode p("Pad", 13);
  p.in("x", b).init("p", ints({4}, {0, 1, 0, 0}));
  CHECK(values(p.run().at(0)) == std::vector<double>{0, 1, 0, 1});
  OneNode t("Trilu", 14);
  t.in("x", Tensor(DType::Bool, {2, 2})).attr("upper", 0);
  CHECK(t.run().at(0).dtype() == DType::Bool);
}

// ---------------------------------------------------------------- errors naming the node

TEST_CASE("index ops reject bad indices, axes and shapes by name", "[engine][ops][index]") {
  const auto throws = throws_naming_node;
  {
    OneNode n("GatherElements", 13);
    n.in("x", iota({2, 3})).in("i", ints({1, 1}, {3})).attr("axis", 1);
    throws(n, "indices value 3 out of range [-3, 3)");
  }
  {
    OneNode n("GatherElements", 13);
    n.in("x", iota({2, 3})).in("i", ints({3, 1}, {0, 0, 0})).attr("axis", 1);
    throws(n, "exceed data [2,3] on axis 0");
  }
  {
    OneNode n("Gather", 13);
    n.in("x", iota({3})).in("i", ints({1}, {-4}));
    throws(n, "index -4 out of range");
  }
  {
    OneNode n("GatherND", 13);
    n.in("x", iota({2, 3})).in("i", ints({1, 2}, {1, 3}));
    throws(n, "indices value 3 out of range [-3, 3)");
  }
  {
    OneNode n("GatherND", 13);
    n.in("x", iota({2, 3})).in("i", ints({2, 1}, {0, 1})).attr("batch_dims", 2);
    throws(n, "batch_dims 2 out of range");
  }
  {
    OneNode n("ScatterND", 13);
    n.in("x", iota({4})).in("i", ints({2, 1}, {0, 1})).in("u", iota({3}));
    throws(n, "updates have shape [3], expected [2]");
  }
  {
    OneNode n("ScatterND", 13);
    n.in("x", iota({4})).in("i", ints({1, 1}, {-5})).in("u", iota({1}));
    throws(n, "indices value -5 out of range [-4, 4)");
  }
  {
    OneNode n("Split", 13, 2);
    n.in("x", iota({5})).init("s", ints({2}, {2, 2}));
    throws(n, "split sizes sum to 4, the axis has size 5");
  }
  {
    OneNode n("Split", 13, 2);
    n.in("x", iota({5}));
    throws(n, "cannot be split into 2 equal parts");
  }
  {
    OneNode n("Split", 13, 1);
    n.in("x", iota({5})).attr("axis", 1);
    throws(n, "axis 1 out of range for rank 1");
  }
  {
    OneNode n("Expand", 13);
    n.in("x", iota({3})).init("s", ints({1}, {4}));
    throws(n, "cannot be broadcast");
  }
  {
    OneNode n("Expand", 13);
    n.in("x", iota({1})).init("s", ints({3}, {1 << 20, 1 << 20, 1 << 20}));
    throws(n, "has more than");
  }
  {
    OneNode n("Tile", 13);
    n.in("x", iota({2, 2})).init("r", ints({1}, {2}));
    throws(n, "repeats has 1 entries for an input of rank 2");
  }
  {
    OneNode n("Range", 11);
    n.in("s", Tensor::scalar(0.f)).in("l", Tensor::scalar(1.f)).in("d", Tensor::scalar(0.f));
    throws(n, "delta must be finite and non-zero");
  }
  {
    OneNode n("Range", 11);
    n.in("s", scalar_int(0)).in("l", scalar_int(std::numeric_limits<int64_t>::max())).in("d", scalar_int(1));
    throws(n, "range is too large");
  }
  {
    OneNode n("ConstantOfShape", 9);
    n.in("s", ints({2}, {2, -1}));
    throws(n, "negative dimension");
  }
  {
    OneNode n("TopK", 11, 2);
    n.in("x", iota({2, 3})).init("k", ints({1}, {4}));
    throws(n, "K = 4 out of range [0, 3]");
  }
  {
    OneNode n("CumSum", 14);
    n.in("x", iota({2, 3})).init("a", scalar_int(2));
    throws(n, "axis 2 out of range for rank 2");
  }
  {
    OneNode n("Trilu", 14);
    n.in("x", iota({3}));
    throws(n, "input must have rank >= 2");
  }
  {
    OneNode n("DepthToSpace", 13);
    n.in("x", iota({1, 6, 2, 2})).attr("blocksize", 2);
    throws(n, "channels 6 not divisible by blocksize");
  }
  {
    OneNode n("SpaceToDepth", 13);
    n.in("x", iota({1, 1, 3, 2})).attr("blocksize", 2);
    throws(n, "not divisible by blocksize 2");
  }
  {
    OneNode n("Einsum", 12);
    n.in("a", iota({2, 3})).in("b", iota({4, 2})).attr("equation", str_attr("ij,jk->ik"));
    throws(n, "has sizes 3 and 4");
  }
  {
    OneNode n("Einsum", 12);
    n.in("a", iota({2, 3})).attr("equation", str_attr("ij,jk->ik"));
    throws(n, "names 2 operands, the node has 1");
  }
  {
    OneNode n("Einsum", 12);
    n.in("a", iota({2, 3})).attr("equation", str_attr("ijk->i"));
    throws(n, "does not match operand 0 of shape [2,3]");
  }
  {
    OneNode n("OneHot", 11);
    n.in("i", ints({2}, {0, 1})).init("d", scalar_int(0)).init("v", floats({2}, {0.f, 1.f}));
    throws(n, "depth 0 must be positive");
  }
  {
    OneNode n("Concat", 13);
    n.in("a", Tensor::scalar(1.f)).in("b", Tensor::scalar(2.f)).attr("axis", 0);
    throws(n, "cannot concatenate scalars");
  }
  {
    OneNode n("Slice", 13);
    n.in("x", iota({4, 4})).init("s", ints({2}, {0, 0})).init("e", ints({2}, {1, 1})).init("a", ints({2}, {1, -1}));
    throws(n, "axis -1 repeated");
  }
  {
    OneNode n("Pad", 13);
    n.in("x", Tensor(Shape{0, 2})).init("p", ints({4}, {1, 0, 0, 0})).attr("mode", str_attr("edge"));
    throws(n, "cannot pad empty axis 0 in a non-constant mode");
  }
  {
    OneNode n("Pad", 13);
    n.in("x", iota({2})).init("p", ints({2}, {-3, 0}));
    throws(n, "remove more than axis 0 of size 2");
  }
}

TEST_CASE("Gather's gradient sums the picked rows back, distinct and repeated indices", "[engine][ops][index]") {
  // x [2, 5, 3], axis 1: distinct indices copy their rows and zero the others; a repeated index
  // sums its rows (the two code paths of gather_bwd). Negative indices count from the end.
  const Tensor x = iota({2, 5, 3});
  for (const std::vector<int64_t>& idx : std::vector<std::vector<int64_t>>{{4, 0, -4}, {1, 3, 1, -2, 0}, {2}}) {
    INFO("indices " << idx.size() << " first " << idx[0]);
    const int64_t ni = static_cast<int64_t>(idx.size());
    OneNode n("Gather", 13);
    n.in("x", x).in("i", ints({ni}, idx)).attr("axis", 1);
    Tensor seed({2, ni, 3});
    for (int64_t k = 0; k < seed.numel(); ++k) seed.f32()[k] = float(k + 1) * 0.5f;
    const Tensor gx = n.gradient({seed}).at(0);
    REQUIRE(gx.shape() == x.shape());
    std::vector<float> expect(static_cast<size_t>(x.numel()), 0.f);
    for (int64_t o = 0; o < 2; ++o)
      for (int64_t j = 0; j < ni; ++j)
        for (int64_t c = 0; c < 3; ++c) expect[size_t((o * 5 + (idx[j] + 5) % 5) * 3 + c)] += seed.f32()[(o * ni + j) * 3 + c];
    for (int64_t k = 0; k < x.numel(); ++k) CHECK(gx.f32()[k] == expect[size_t(k)]);
  }
}
