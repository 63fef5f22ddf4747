// Ops of engine/src/ops_quant.cpp ((De)QuantizeLinear, DynamicQuantizeLinear, MatMulInteger,
// ConvInteger, QLinearMatMul, QLinearConv, CastLike, ScatterElements/Scatter), Cast's float16 /
// bfloat16 / narrow-integer targets and the loader's narrow element types: values against
// onnxruntime (tools/engine_goldens_quant.py), ScatterElements' VJP against PyTorch autograd and
// finite differences, refused versions/attributes and errors naming the node.
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

std::string quant_dir() { return test::source_path("tests/fixtures/engine/ops_quant"); }

// The loader's record of a quantized output type (onnx_loader.cpp): TensorProto.DataType numbers.
constexpr int64_t kUInt8 = 2, kInt8 = 3;

}  // namespace

// ---------------------------------------------------------------- fixtures

TEST_CASE("quant ops: forward matches onnxruntime", "[engine][ops][quant]") {
  // Integer outputs (every quantized value) must match exactly; float outputs (dequantized values,
  // float16-rounded casts) to op_cases.h's float32 tolerance: both sides compute x / scale and
  // (x - zp) * scale in float32 and requantize with the same float32 multiplier, so no
  // off-by-one rounding allowance is needed.
  CHECK(test::check_op_forward(quant_dir()) >= 45);
}

TEST_CASE("quant ops: the onnx package's node tests of these ops pass", "[engine][ops][quant]") {
  // tests/fixtures/engine/ops_quant/node_tests: onnx.backend.test's expected outputs (float ones to
  // op_cases.h's float32 tolerance, integer ones exactly).
  CHECK(test::check_op_forward(test::source_path("tests/fixtures/engine/ops_quant/node_tests")) >= 59);
}

TEST_CASE("quantized and float16 torch models run as onnxruntime runs them", "[engine][ops][quant][models]") {
  // tests/fixtures/engine/ops_quant/models: Linear-ReLU-Linear and a small conv net exported with
  // the TorchScript exporter, then onnxruntime.quantization.quantize_dynamic, quantize_static (QDQ)
  // and onnxconverter_common's float16 converter (keep_io_types). Each case's rtol/atol and why are
  // in tools/engine_goldens_quant.py (write_model_cases): dynamic ~float32 rounding, QDQ two
  // requantization quanta through the last layer, float16 1e-2. (When written, the dynamic and
  // QDQ cases matched onnxruntime bit for bit and float16 within 0.09 of its tolerance.)
  const std::string root = test::source_path("tests/fixtures/engine/ops_quant/models");
  auto cases = test::load_op_cases(root);
  int n = 0;
  for (const auto& c : cases) {
    test::OpCase k = test::read_op_case(root, c);
    INFO("case " << k.name);
    auto session = engine::Session::load(root + "/" + k.name + "/model.onnx");
    auto out = session->run(k.inputs);
    REQUIRE(out.size() == 1);
    REQUIRE(out[0].shape() == k.outputs[0].shape());
    const double rtol = c["rtol"].get<double>(), atol = c["atol"].get<double>();
    auto got = out[0].to_doubles(), want = k.outputs[0].to_doubles();
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]) / (atol + rtol * std::abs(want[i])));
    CHECK(worst <= 1.0);
    ++n;
  }
  CHECK(n >= 6);
}

TEST_CASE("a QDQ model's input gradient is refused, naming QuantizeLinear", "[engine][ops][quant][models]") {
  // Quantizing activations is a step function; straight-through estimators are a research choice,
  // so gradient commands refuse the path instead of returning zeros or a surrogate.
  const std::string root = test::source_path("tests/fixtures/engine/ops_quant/models");
  auto session = engine::Session::load(root + "/mlp_qdq/model.onnx");
  Tensor x = Tensor::full({1, 8}, 0.5f);
  CHECK_THROWS_WITH(session->gradient({x}, {Tensor::full({1, 3}, 1.f)}), Catch::Contains("QuantizeLinear"));
}

TEST_CASE("quant ops: ScatterElements VJP matches PyTorch autograd", "[engine][ops][quant][grad]") {
  CHECK(test::check_op_vjp(quant_dir()) >= 13);
}

TEST_CASE("quant ops: VJP agrees with central finite differences of the forward", "[engine][ops][quant][fd]") {
  // ScatterElements (none, add) is linear in data and updates; Cast float16 round trips are
  // piecewise constant (their straight-through VJP is not a derivative), so they are skipped.
  CHECK(test::check_op_finite_differences(quant_dir(), {"Cast"}) >= 12);
}

// ---------------------------------------------------------------- registration

TEST_CASE("quant ops: QuantizeLinear refuses gradients, integer ops pass none", "[engine][ops][quant]") {
  auto table = engine::op_support_table();
  auto row = [&](const std::string& op) {
    auto it = std::find_if(table.begin(), table.end(), [&](const auto& r) { return r.domain.empty() && r.op_type == op; });
    REQUIRE(it != table.end());
    return *it;
  };
  CHECK_FALSE(row("QuantizeLinear").differentiable);
  CHECK_FALSE(row("DynamicQuantizeLinear").differentiable);
  for (const char* op : {"DequantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv"}) {
    INFO(op);
    CHECK(row(op).differentiable);
    CHECK_FALSE(row(op).gradient);
  }
  CHECK(row("ScatterElements").gradient);
  CHECK(row("CastLike").gradient);
}

TEST_CASE("quant ops: every since-version from the op's first is handled", "[engine][ops][quant]") {
  // QuantizeLinear/DequantizeLinear refuse by name, per node, what they cannot do (float8/float4
  // output types, a non-float32 precision, output_dtype other than float/float16/bfloat16); no
  // since-version is refused as a whole.
  const std::vector<std::string> ops = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                                        "ConvInteger",    "QLinearMatMul",    "QLinearConv",           "CastLike",
                                        "ScatterElements", "Scatter",         "Cast"};
  auto table = engine::op_support_table();
  for (const auto& op : ops) {
    INFO(op);
    int64_t first = 0;
    for (int64_t v = 1; v <= engine::newest_known_opset("") && first == 0; ++v) first = engine::op_since_version("", op, v);
    REQUIRE(first > 0);
    auto row = std::find_if(table.begin(), table.end(), [&](const auto& r) { return r.domain.empty() && r.op_type == op; });
    REQUIRE(row != table.end());
    CHECK(row->first_opset == first);
    CHECK(row->unsupported_versions.empty());
  }
}

// ---------------------------------------------------------------- hand-written cases

TEST_CASE("QuantizeLinear: saturation follows the recorded output type", "[engine][ops][quant]") {
  auto make = [](int64_t type) {
    OneNode q("QuantizeLinear", 13);
    q.in("x", floats({4}, {-300.f, -0.5f, 1.5f, 300.f})).init("s", Tensor::scalar(1.f)).init("zp", scalar_int(0));
    q.attr("mlaudit.zero_point_type", type);
    return q;
  };
  CHECK(values(make(kUInt8).run().at(0)) == std::vector<double>{0, 0, 2, 255});     // ties to even: -0.5 -> 0
  CHECK(values(make(kInt8).run().at(0)) == std::vector<double>{-128, 0, 2, 127});
  // Built in code without the record: uint8, ONNX's type when y_zero_point is absent.
  OneNode plain("QuantizeLinear", 13);
  plain.in("x", floats({2}, {-3.f, 3.f})).init("s", Tensor::scalar(1.f));
  CHECK(values(plain.run().at(0)) == std::vector<double>{0, 3});
}

TEST_CASE("QuantizeLinear / DequantizeLinear: refused types, versions and bad shapes", "[engine][ops][quant]") {
  OneNode f8("QuantizeLinear", 19);
  f8.in("x", floats({2}, {1.f, 2.f})).init("s", Tensor::scalar(1.f)).attr("mlaudit.zero_point_type", int64_t(17));
  throws_naming_node(f8, "quantized type 17 is not supported");

  OneNode precision("QuantizeLinear", 25);
  precision.in("x", floats({2}, {1.f, 2.f})).init("s", Tensor::scalar(1.f)).attr("precision", int64_t(10));
  throws_naming_node(precision, "precision 10 is not supported");

  OneNode per_axis_old("QuantizeLinear", 10);
  per_axis_old.in("x", floats({2, 2}, {1, 2, 3, 4})).init("s", floats({2}, {1, 1}));
  throws_naming_node(per_axis_old, "scale must be a scalar before opset 13");

  OneNode bad_len("DequantizeLinear", 13);
  bad_len.in("x", ints({2, 3}, {1, 2, 3, 4, 5, 6})).init("s", floats({2}, {1, 1})).attr("axis", int64_t(1));
  throws_naming_node(bad_len, "per-axis scale must be 1-D of length 3");

  // A [1] scale with a [] zero point is per-tensor (onnxruntime's QDQ quantizer writes biases so).
  OneNode one_elem("DequantizeLinear", 13);
  one_elem.in("x", ints({3}, {1, 2, 3})).init("s", floats({1}, {0.5f})).init("z", scalar_int(1));
  CHECK(values(one_elem.run().at(0)) == std::vector<double>{0, 0.5, 1});

  OneNode bad_axis("DequantizeLinear", 13);
  bad_axis.in("x", ints({2, 3}, {1, 2, 3, 4, 5, 6})).init("s", floats({2}, {1, 1})).attr("axis", int64_t(5));
  throws_naming_node(bad_axis, "axis 5");

  OneNode bad_block("DequantizeLinear", 21);
  bad_block.in("x", ints({2, 3}, {1, 2, 3, 4, 5, 6})).init("s", floats({2, 1}, {1, 1})).attr("axis", int64_t(1));
  bad_block.attr("block_size", int64_t(2));
  throws_naming_node(bad_block, "blocked scale (block_size 2) must have shape [2,2]");

  OneNode zp_shape("DequantizeLinear", 13);
  zp_shape.in("x", ints({3}, {1, 2, 3})).init("s", floats({3}, {1, 1, 1})).init("zp", scalar_int(0)).attr("axis", int64_t(0));
  throws_naming_node(zp_shape, "zero point shape [] differs from the scale's [3]");

  OneNode float_x("DequantizeLinear", 13);
  float_x.in("x", floats({2}, {1, 2})).init("s", Tensor::scalar(1.f));
  throws_naming_node(float_x, "must be an integer (quantized) tensor");
}

TEST_CASE("DequantizeLinear: empty input and negative per-axis axis", "[engine][ops][quant]") {
  OneNode empty("DequantizeLinear", 13);
  empty.in("x", Tensor(DType::Int64, {0, 3})).init("s", floats({3}, {1, 2, 3})).attr("axis", int64_t(-1));
  CHECK(empty.run().at(0).shape() == Shape{0, 3});
  OneNode neg("DequantizeLinear", 13);
  neg.in("x", ints({2, 2}, {1, 2, 3, 4})).init("s", floats({2}, {0.5f, 2.f})).init("zp", ints({2}, {1, 0}));
  neg.attr("axis", int64_t(-1));
  CHECK(values(neg.run().at(0)) == std::vector<double>{0, 4, 1, 8});
}

TEST_CASE("MatMulInteger / ConvInteger / QLinearMatMul: bad shapes are named", "[engine][ops][quant]") {
  OneNode inner("MatMulInteger", 10);
  inner.in("a", ints({2, 3}, {1, 2, 3, 4, 5, 6})).in("b", ints({2, 2}, {1, 2, 3, 4}));
  throws_naming_node(inner, "inner dimensions differ");

  OneNode zp("MatMulInteger", 10);
  zp.in("a", ints({2, 2}, {1, 2, 3, 4})).in("b", ints({2, 2}, {1, 2, 3, 4})).init("azp", ints({3}, {0, 0, 0}));
  throws_naming_node(zp, "a_zero_point must be a scalar or hold 2 values");

  OneNode conv("ConvInteger", 10);
  conv.in("x", Tensor(DType::Int64, {1, 2, 3, 3})).in("w", Tensor(DType::Int64, {1, 3, 2, 2}));
  CHECK_THROWS_AS(conv.run(), InputError);

  OneNode q("QLinearMatMul", 21);
  q.in("a", ints({1, 2}, {1, 2})).init("as", Tensor::scalar(1.f)).init("az", scalar_int(0));
  q.in("b", ints({2, 1}, {1, 2})).init("bs", Tensor::scalar(1.f)).init("bz", scalar_int(0));
  q.init("ys", floats({2}, {1, 1})).init("yz", scalar_int(0));
  throws_naming_node(q, "y_scale and y_zero_point must be scalars");
}

TEST_CASE("QLinearMatMul: requantization rounds half to even and saturates", "[engine][ops][quant]") {
  // acc = [1*1, 3*1, 5*1, 300*1] with multiplier 0.5: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 150 + 128 -> 255.
  OneNode q("QLinearMatMul", 10);
  q.in("a", ints({4, 1}, {1, 3, 5, 300})).init("as", Tensor::scalar(0.5f)).init("az", scalar_int(0));
  q.in("b", ints({1, 1}, {1})).init("bs", Tensor::scalar(1.f)).init("bz", scalar_int(0));
  q.init("ys", Tensor::scalar(1.f)).init("yz", scalar_int(128)).attr("mlaudit.zero_point_type", kUInt8);
  CHECK(values(q.run().at(0)) == std::vector<double>{128, 130, 130, 255});
}

TEST_CASE("ScatterElements: out-of-range indices, shape mismatch, bad reduction", "[engine][ops][quant]") {
  OneNode far("ScatterElements", 18);
  far.in("data", floats({2, 3}, {0, 0, 0, 0, 0, 0})).in("indices", ints({1, 1}, {3})).in("updates", floats({1, 1}, {1}));
  far.attr("axis", int64_t(1));
  throws_naming_node(far, "indices value 3 out of range [-3, 3) on axis 1");

  OneNode neg_far("ScatterElements", 13);
  neg_far.in("data", floats({2}, {0, 0})).in("indices", ints({1}, {-3})).in("updates", floats({1}, {1}));
  throws_naming_node(neg_far, "indices value -3 out of range [-2, 2)");

  OneNode mismatch("ScatterElements", 13);
  mismatch.in("data", floats({2, 2}, {0, 0, 0, 0})).in("indices", ints({1, 2}, {0, 1})).in("updates", floats({2}, {1, 2}));
  throws_naming_node(mismatch, "indices shape [1,2] differs from updates shape [2]");

  OneNode wide("ScatterElements", 13);
  wide.in("data", floats({2, 2}, {0, 0, 0, 0})).in("indices", ints({1, 3}, {0, 1, 0})).in("updates", floats({1, 3}, {1, 2, 3}));
  throws_naming_node(wide, "indices dim 1 is 3, larger than data's 2");

  OneNode axis("ScatterElements", 13);
  axis.in("data", floats({2}, {0, 0})).in("indices", ints({1}, {0})).in("updates", floats({1}, {1})).attr("axis", int64_t(1));
  throws_naming_node(axis, "axis 1");

  OneNode max16("ScatterElements", 16);
  max16.in("data", floats({2}, {0, 0})).in("indices", ints({1}, {0})).in("updates", floats({1}, {1}));
  max16.attr("reduction", str_attr("max"));
  throws_naming_node(max16, "unknown reduction 'max' (opset 16: none, add, mul)");
}

TEST_CASE("ScatterElements: empty updates leave data unchanged", "[engine][ops][quant]") {
  OneNode s("ScatterElements", 18);
  s.in("data", floats({2, 2}, {1, 2, 3, 4})).in("indices", Tensor(DType::Int64, {0, 2})).in("updates", Tensor({0, 2}));
  CHECK(values(s.run().at(0)) == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("Cast: float16 and bfloat16 rounding edge cases", "[engine][ops][quant]") {
  auto cast = [](int64_t to, std::vector<float> v) {
    OneNode c("Cast", 19);
    c.in("x", floats({static_cast<int64_t>(v.size())}, v)).attr("to", to);
    return values(c.run().at(0));
  };
  const double inf = std::numeric_limits<double>::infinity();
  // float16: 65504 is the largest finite; 65520 is the tie to 65536, i.e. overflow; 2^-25 ties to 0 (even),
  // 3 * 2^-25 rounds to 2^-23; 1 + 2^-11 ties to 1.
  CHECK(cast(10, {65504.f, 65519.f, 65520.f, -1e6f, std::ldexp(1.f, -25), 3 * std::ldexp(1.f, -25), 1.f + std::ldexp(1.f, -11)}) ==
        std::vector<double>{65504, 65504, inf, -inf, 0, std::ldexp(1.0, -23), 1});
  // bfloat16: 8 significant bits; 1 + 2^-8 ties to 1, 1 + 3 * 2^-8 ties to 1 + 2^-6 (even).
  CHECK(cast(16, {1.f + std::ldexp(1.f, -8), 1.f + 3 * std::ldexp(1.f, -8), 0.f}) ==
        std::vector<double>{1, 1 + std::ldexp(1.0, -6), 0});
  OneNode named("Cast", 1);
  named.in("x", floats({1}, {1.f + std::ldexp(1.f, -12)})).attr("to", str_attr("FLOAT16"));
  CHECK(values(named.run().at(0)) == std::vector<double>{1});
}

TEST_CASE("CastLike: without the loader's record the target is the engine dtype", "[engine][ops][quant]") {
  // Documented limitation: a graph built in code (no mlaudit.target_type) sees a float16-typed
  // target as float32, so no float16 rounding happens; models loaded from ONNX keep the type.
  OneNode c("CastLike", 15);
  c.in("x", floats({1}, {1.f + std::ldexp(1.f, -12)})).in("like", floats({1}, {0.f}));
  CHECK(values(c.run().at(0)) == std::vector<double>{1.0 + std::ldexp(1.0, -12)});
  OneNode toint("CastLike", 21);
  toint.in("x", floats({2}, {2.7f, -2.7f})).in("like", ints({1}, {0}));
  auto y = toint.run().at(0);
  CHECK(y.dtype() == DType::Int64);
  CHECK(values(y) == std::vector<double>{2, -2});
}
