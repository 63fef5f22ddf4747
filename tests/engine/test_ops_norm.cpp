// Ops of engine/src/ops_norm.cpp (normalisation layers, ConvTranspose, Resize, Upsample) and the
// window ops of ops_nn.cpp (1-D Conv and pooling, pooling and BatchNormalization versions, global
// pooling): values against onnxruntime and vector-Jacobian products against PyTorch autograd
// (fixtures by tools/engine_goldens_norm.py, one model per op version whose semantics differ),
// VJPs against finite differences, edge cases and errors naming the node.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "op_cases.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::test;

namespace {

std::string norm_dir() { return test::source_path("tests/fixtures/engine/ops_norm"); }

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("norm ops: forward matches onnxruntime", "[engine][ops][norm]") {
  CHECK(test::check_op_forward(norm_dir()) >= 51);
}

TEST_CASE("norm ops: vector-Jacobian product matches PyTorch autograd", "[engine][ops][norm][grad]") {
  CHECK(test::check_op_vjp(norm_dir()) >= 78);
}

TEST_CASE("norm ops: VJP agrees with central finite differences of the forward", "[engine][ops][norm][fd]") {
  // Max-type cases use distinct values whose gaps exceed the step; nearest-neighbour Resize is
  // linear in X (a gather); LpNormalization p=1 inputs stay 0.05 away from the |x| kink.
  CHECK(test::check_op_finite_differences(norm_dir(), {}) >= 78);
}

// ---------------------------------------------------------------- versions and edge cases

TEST_CASE("Upsample-1 is refused by name, Upsample-7 reads the scales attribute", "[engine][ops][norm]") {
  OneNode u1("Upsample", 1);
  u1.in("x", iota({1, 1, 2, 2})).attr("height_scale", Attribute::of_float(2.f)).attr("width_scale", Attribute::of_float(2.f));
  CHECK_THROWS_WITH(u1.run(), Catch::Contains("'Upsample' version 1") && Catch::Contains("supported versions: 7, 9, 10"));
  OneNode u7("Upsample", 7);
  u7.in("x", iota({1, 1, 1, 2})).attr("scales", floats_attr({1.f, 1.f, 2.f, 2.f}));
  auto y = u7.run().at(0);
  CHECK(y.shape() == Shape{1, 1, 2, 4});
  CHECK(values(y) == std::vector<double>{0, 0, 1, 1, 0, 0, 1, 1});
  OneNode down("Upsample", 9);
  down.in("x", iota({1, 1, 2, 2})).init("s", floats({4}, {1.f, 1.f, 0.5f, 1.f}));
  CHECK_THROWS_WITH(down.run(), Catch::Contains("Upsample at node 'Upsample_0': Upsample scale 0.5 for axis 2 is below 1"));
}

TEST_CASE("Resize: an empty batch resizes to an empty batch, unit scales copy", "[engine][ops][norm]") {
  OneNode r("Resize", 13);
  r.in("x", Tensor(Shape{0, 1, 2, 2})).omit().init("s", floats({4}, {1.f, 1.f, 2.f, 2.f}));
  CHECK(r.run().at(0).shape() == Shape{0, 1, 4, 4});
  OneNode id("Resize", 19);
  id.in("x", iota({1, 2, 2, 3})).omit().init("s", floats({4}, {1.f, 1.f, 1.f, 1.f})).attr("mode", str_attr("linear"));
  auto y = id.run().at(0);
  CHECK(values(y) == values(iota({1, 2, 2, 3})));
  // The gradient of an identity resize is the seed.
  auto g = id.gradient({iota({1, 2, 2, 3})}).at(0);
  CHECK(values(g) == values(iota({1, 2, 2, 3})));
}

TEST_CASE("Resize-18 axes: negative axes and nearest_mode ceil", "[engine][ops][norm]") {
  OneNode r("Resize", 18);
  r.in("x", iota({1, 3})).omit().omit().init("sizes", ints({1}, {5})).attr("axes", std::vector<int64_t>{-1})
      .attr("nearest_mode", str_attr("ceil")).attr("coordinate_transformation_mode", str_attr("asymmetric"));
  // x_original = i * 3/5 = 0, 0.6, 1.2, 1.8, 2.4 -> ceil 0, 1, 2, 2, 3 -> clamped to 2
  auto y = r.run().at(0);
  CHECK(y.shape() == Shape{1, 5});
  CHECK(values(y) == std::vector<double>{0, 1, 2, 2, 2});
}

TEST_CASE("LayerNormalization: negative axis equals its positive spelling", "[engine][ops][norm]") {
  Tensor x = floats({2, 3}, {1.f, 2.f, 4.f, -1.f, 0.f, 3.f});
  OneNode a("LayerNormalization", 17, 3), b("LayerNormalization", 17, 3);
  a.in("x", x).init("s", Tensor::full({3}, 1.f)).attr("axis", -1);
  b.in("x", x).init("s", Tensor::full({3}, 1.f)).attr("axis", 1);
  auto ya = a.run(), yb = b.run();
  CHECK(values(ya[0]) == values(yb[0]));
  CHECK(ya[1].shape() == Shape{2, 1});  // Mean: X.shape[:axis] + [1]
  CHECK(ya[1].to_doubles()[0] == Approx(7.0 / 3));
}

TEST_CASE("InstanceNormalization and GroupNormalization take zero channels or an empty batch", "[engine][ops][norm]") {
  OneNode in0("InstanceNormalization", 22);
  in0.in("x", Tensor(Shape{2, 0, 3})).init("s", Tensor(Shape{0})).init("b", Tensor(Shape{0}));
  CHECK(in0.run().at(0).shape() == Shape{2, 0, 3});
  OneNode gn("GroupNormalization", 21);
  gn.in("x", Tensor(Shape{0, 4, 3})).init("s", Tensor::full({4}, 1.f)).init("b", Tensor::full({4}, 0.f)).attr("num_groups", 2);
  CHECK(gn.run().at(0).shape() == Shape{0, 4, 3});
}

TEST_CASE("LpNormalization maps a zero vector to zero with zero gradient", "[engine][ops][norm]") {
  OneNode lp("LpNormalization", 22);
  lp.in("x", Tensor(Shape{2, 3}));
  CHECK(values(lp.run().at(0)) == std::vector<double>(6, 0.0));
  CHECK(values(lp.gradient({Tensor::full({2, 3}, 1.f)}).at(0)) == std::vector<double>(6, 0.0));
}

TEST_CASE("ConvTranspose: output_shape may include the N and C dims", "[engine][ops][norm]") {
  OneNode c("ConvTranspose", 22);
  c.in("x", iota({1, 1, 2, 2})).init("w", Tensor::full({1, 1, 2, 2}, 1.f)).attr("strides", std::vector<int64_t>{2, 2})
      .attr("output_shape", std::vector<int64_t>{1, 1, 4, 4});
  auto y = c.run().at(0);
  CHECK(y.shape() == Shape{1, 1, 4, 4});
  CHECK(values(y) == std::vector<double>{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3});
}

TEST_CASE("Conv1d with auto_pad SAME_UPPER keeps the length", "[engine][ops][norm]") {
  OneNode c("Conv", 11);
  c.in("x", iota({1, 1, 5})).init("w", Tensor::full({1, 1, 3}, 1.f)).attr("auto_pad", str_attr("SAME_UPPER"));
  auto y = c.run().at(0);
  CHECK(y.shape() == Shape{1, 1, 5});
  CHECK(values(y) == std::vector<double>{1, 3, 6, 9, 7});
}

TEST_CASE("BatchNormalization-6 ignores is_test, InstanceNormalization-1 runs", "[engine][ops][norm]") {
  OneNode bn("BatchNormalization", 6);
  bn.in("x", iota({1, 2, 2})).init("s", Tensor::full({2}, 2.f)).init("b", Tensor::full({2}, 1.f))
      .init("m", Tensor::full({2}, 1.f)).init("v", Tensor::full({2}, 4.f)).attr("is_test", 0)
      .attr("epsilon", Attribute::of_float(0.f));
  CHECK(values(bn.run().at(0)) == std::vector<double>{0, 1, 2, 3});  // 2 (x - 1) / 2 + 1
  OneNode in1("InstanceNormalization", 1);
  in1.in("x", floats({1, 1, 2}, {1.f, 3.f})).init("s", Tensor::full({1}, 1.f)).init("b", Tensor::full({1}, 0.f))
      .attr("epsilon", Attribute::of_float(0.f));
  CHECK(values(in1.run().at(0)) == std::vector<double>{-1, 1});
}

// ---------------------------------------------------------------- errors naming the node

TEST_CASE("norm ops: bad axes and attributes name the node", "[engine][ops][norm]") {
  OneNode ln("LayerNormalization", 17);
  ln.in("x", iota({2, 3})).init("s", Tensor::full({3}, 1.f)).attr("axis", 2);
  CHECK_THROWS_WITH(ln.run(), Catch::Contains("LayerNormalization at node 'LayerNormalization_0': axis 2 out of range for rank 2"));
  OneNode ls("LayerNormalization", 17);
  ls.in("x", iota({2, 3})).init("s", Tensor::full({2}, 1.f));
  CHECK_THROWS_WITH(ls.run(), Catch::Contains("Scale of shape [2] does not broadcast to the normalised shape [3]"));
  OneNode gn("GroupNormalization", 21);
  gn.in("x", iota({1, 4, 2})).init("s", Tensor::full({4}, 1.f)).init("b", Tensor::full({4}, 0.f)).attr("num_groups", 3);
  CHECK_THROWS_WITH(gn.run(), Catch::Contains("num_groups 3 does not divide the 4 channels"));
  OneNode g18("GroupNormalization", 18);
  g18.in("x", iota({1, 4, 2})).init("s", Tensor::full({4}, 1.f)).init("b", Tensor::full({4}, 0.f)).attr("num_groups", 2);
  CHECK_THROWS_WITH(g18.run(), Catch::Contains("must be [2] (one per group)"));
  OneNode lp("LpNormalization", 22);
  lp.in("x", iota({2, 3})).attr("p", 3);
  CHECK_THROWS_WITH(lp.run(), Catch::Contains("LpNormalization at node 'LpNormalization_0': p must be 1 or 2, got 3"));
  OneNode mvn("MeanVarianceNormalization", 13);
  mvn.in("x", iota({2, 3})).attr("axes", std::vector<int64_t>{1, -1});
  CHECK_THROWS_WITH(mvn.run(), Catch::Contains("axis -1 repeated in axes"));
  OneNode mvn_axis("MeanVarianceNormalization", 13);
  mvn_axis.in("x", iota({2, 3}));  // default axes [0, 2, 3] need rank 4
  CHECK_THROWS_WITH(mvn_axis.run(), Catch::Contains("axis 2 out of range for rank 2"));
}

TEST_CASE("BatchNormalization: training mode and parameter shapes are refused by name", "[engine][ops][norm]") {
  OneNode bn("BatchNormalization", 15);
  bn.in("x", iota({2, 2})).init("s", Tensor::full({2}, 1.f)).init("b", Tensor::full({2}, 0.f))
      .init("m", Tensor::full({2}, 0.f)).init("v", Tensor::full({2}, 1.f)).attr("training_mode", 1);
  CHECK_THROWS_WITH(bn.run(), Catch::Contains("BatchNormalization at node 'BatchNormalization_0': training_mode=1"));
  OneNode shape("BatchNormalization", 15);
  shape.in("x", iota({2, 3})).init("s", Tensor::full({2}, 1.f)).init("b", Tensor::full({2}, 0.f))
      .init("m", Tensor::full({2}, 0.f)).init("v", Tensor::full({2}, 1.f));
  CHECK_THROWS_WITH(shape.run(), Catch::Contains("scale/B/mean/var must have 3 elements (channels)"));
}

TEST_CASE("ConvTranspose, Conv and pooling: shape mismatches name the node", "[engine][ops][norm]") {
  OneNode ct("ConvTranspose", 22);
  ct.in("x", iota({1, 3, 2, 2})).init("w", Tensor::full({2, 1, 2, 2}, 1.f));
  CHECK_THROWS_WITH(ct.run(), Catch::Contains("ConvTranspose at node 'ConvTranspose_0': input [1,3,2,2] and weights "
                                              "[2,1,2,2] do not match group=1"));
  OneNode ct_pads("ConvTranspose", 22);
  ct_pads.in("x", iota({1, 1, 2, 2})).init("w", Tensor::full({1, 1, 2, 2}, 1.f)).attr("pads", std::vector<int64_t>{2, 2, 2, 2});
  CHECK_THROWS_WITH(ct_pads.run(), Catch::Contains("output size -1 is not positive"));
  OneNode ct_stride("ConvTranspose", 22);
  ct_stride.in("x", iota({1, 1, 2, 2})).init("w", Tensor::full({1, 1, 2, 2}, 1.f))
      .attr("strides", std::vector<int64_t>{int64_t(1) << 62, 1});
  CHECK_THROWS_WITH(ct_stride.run(), Catch::Contains("value 4611686018427387904 is too large"));
  OneNode c3("Conv", 22);
  c3.in("x", iota({1, 1, 2, 2, 2})).init("w", Tensor::full({1, 1, 1, 1, 1}, 1.f));
  CHECK_THROWS_WITH(c3.run(), Catch::Contains("only 1-D and 2-D convolution is supported"));
  OneNode mp("MaxPool", 12);
  mp.in("x", iota({1, 1, 5})).attr("kernel_shape", std::vector<int64_t>{2, 2});
  CHECK_THROWS_WITH(mp.run(), Catch::Contains("MaxPool at node 'MaxPool_0': kernel_shape must have 1 entry"));
  OneNode big("AveragePool", 19);
  big.in("x", iota({1, 1, 3})).attr("kernel_shape", std::vector<int64_t>{5});
  CHECK_THROWS_WITH(big.run(), Catch::Contains("kernel larger than the padded input [1,1,3]"));
  OneNode gmp("GlobalMaxPool", 22);
  gmp.in("x", iota({2, 3}));
  CHECK_THROWS_WITH(gmp.run(), Catch::Contains("GlobalMaxPool at node 'GlobalMaxPool_0': expects [N,C,D1,...], got [2,3]"));
}

TEST_CASE("Resize: malformed scales, sizes and roi name the node", "[engine][ops][norm]") {
  OneNode len("Resize", 13);
  len.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({2}, {2.f, 2.f}));
  CHECK_THROWS_WITH(len.run(), Catch::Contains("Resize at node 'Resize_0': scales has 2 entries for 4 axes"));
  OneNode both("Resize", 13);
  both.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({4}, {1, 1, 2, 2})).init("z", ints({4}, {1, 1, 4, 4}));
  CHECK_THROWS_WITH(both.run(), Catch::Contains("both scales and sizes are given"));
  OneNode neg("Resize", 13);
  neg.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({4}, {1, 1, -2, 2}));
  CHECK_THROWS_WITH(neg.run(), Catch::Contains("scale -2 for axis 2 is not positive"));
  OneNode huge("Resize", 13);
  huge.in("x", iota({1, 1, 2, 2})).omit().omit().init("z", ints({4}, {1, 1, int64_t(1) << 40, 2}));
  CHECK_THROWS_WITH(huge.run(), Catch::Contains("size 1099511627776 for axis 2 is out of range"));
  OneNode roi("Resize", 13);
  roi.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({4}, {1, 1, 2, 2}))
      .attr("coordinate_transformation_mode", str_attr("tf_crop_and_resize"));
  CHECK_THROWS_WITH(roi.run(), Catch::Contains("roi has 0 entries; tf_crop_and_resize needs 8"));
  OneNode mode("Resize", 13);
  mode.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({4}, {1, 1, 2, 2})).attr("mode", str_attr("area"));
  CHECK_THROWS_WITH(mode.run(), Catch::Contains("unsupported mode 'area'"));
  OneNode axes("Resize", 18);
  axes.in("x", iota({1, 1, 2, 2})).omit().init("s", floats({1}, {2})).attr("axes", std::vector<int64_t>{4});
  CHECK_THROWS_WITH(axes.run(), Catch::Contains("axis 4 out of range for rank 4"));
}
