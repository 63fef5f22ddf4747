// The CPU fast paths for small convolutional networks (issue #20): the direct stride-1
// convolution (engine/src/cpu/conv_direct.*) against a double-precision reference, forward and
// input gradient, and the CPU graph fusions (engine/src/cpu/fusion.*: Conv+Relu, Pad into
// AveragePool / Conv) against the same graph run op by op (MLAUDIT_NO_FUSE=1), bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"

using namespace mlaudit;
using engine::Graph;
using engine::Node;
using engine::Shape;
using engine::Tensor;

namespace {

Tensor random_tensor(Shape s, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(std::move(s));
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = u(rng);
  return t;
}

struct ConvCase {
  int64_t n, c, h, w, oc, kh, kw;
  std::vector<int64_t> pads;  // top, left, bottom, right
  int64_t dil;
  bool one_d;  // NCW input (h must be 1)
  int64_t stride = 1;
};

Graph conv_graph(const ConvCase& k, std::mt19937& rng) {
  Graph g;
  g.source = "conv";
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, k.one_d ? Shape{-1, k.c, k.w} : Shape{-1, k.c, k.h, k.w}});
  g.initializers["w"] = random_tensor(k.one_d ? Shape{k.oc, k.c, k.kw} : Shape{k.oc, k.c, k.kh, k.kw}, rng);
  g.initializers["b"] = random_tensor({k.oc}, rng);
  Node conv;
  conv.name = "conv";
  conv.op_type = "Conv";
  conv.inputs = {"x", "w", "b"};
  conv.outputs = {"y"};
  if (k.stride != 1) conv.attributes["strides"] = engine::Attribute::of_ints({k.stride, k.stride});
  if (k.one_d) {
    conv.attributes["pads"] = engine::Attribute::of_ints({k.pads[1], k.pads[3]});
    conv.attributes["dilations"] = engine::Attribute::of_ints({k.dil});
  } else {
    conv.attributes["pads"] = engine::Attribute::of_ints(k.pads);
    conv.attributes["dilations"] = engine::Attribute::of_ints({k.dil, k.dil});
  }
  g.nodes.push_back(conv);
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  return g;
}

// Rounding bound of one output: a sum of T products (one fused multiply-add each) and a bias,
// added in some order in float32, differs from the exact sum by at most gamma_{T+1} times the
// sum of the terms' magnitudes (Higham, Accuracy and Stability, eq. 3.5), gamma_m = m u / (1 - m u),
// u = 2^-24. The double reference's own error is below 1e-15 relative and is ignored.
double gamma(int64_t m) {
  const double u = std::ldexp(1.0, -24);
  return m * u / (1 - m * u);
}

}  // namespace

TEST_CASE("engine conv: the direct small-channel path (strides 1 to 3) matches a double reference, forward and input gradient") {
  const std::vector<ConvCase> cases = {
      {3, 1, 28, 28, 8, 3, 3, {1, 1, 1, 1}, 1, false},   // MNIST first layer
      {2, 8, 14, 14, 16, 3, 3, {0, 0, 0, 0}, 1, false},  // issue #20's second layer
      {2, 3, 13, 17, 6, 5, 5, {0, 0, 0, 0}, 1, false},   // LeNet-5, odd sizes, 6 channels
      {1, 16, 9, 9, 32, 3, 3, {1, 0, 2, 1}, 1, false},   // uneven pads, 32 outputs
      {2, 5, 11, 10, 3, 3, 3, {2, 2, 2, 2}, 2, false},   // dilation 2
      {2, 7, 6, 5, 13, 1, 1, {0, 0, 0, 0}, 1, false},    // 1x1, 13 outputs (a partial tile)
      {2, 4, 1, 40, 9, 1, 5, {0, 2, 0, 2}, 1, true},     // Conv1d
      {2, 16, 28, 28, 32, 3, 3, {1, 1, 1, 1}, 1, false, 2},  // ResNet-style downsampling
      {2, 3, 15, 16, 10, 5, 5, {2, 1, 0, 2}, 1, false, 3},   // stride 3, odd sizes, uneven pads
      {1, 2, 12, 13, 5, 3, 3, {1, 1, 1, 1}, 2, false, 2},    // stride 2 with dilation 2
  };
  std::mt19937 rng(20);
  for (const auto& k : cases) {
    CAPTURE(k.n, k.c, k.h, k.w, k.oc, k.kh, k.kw, k.dil, k.one_d, k.stride);
    Graph g = conv_graph(k, rng);
    const Tensor& w = g.initializers.at("w");
    const Tensor& b = g.initializers.at("b");
    engine::Session s(g);
    Tensor x = random_tensor(k.one_d ? Shape{k.n, k.c, k.w} : Shape{k.n, k.c, k.h, k.w}, rng);
    std::vector<Tensor> outs;
    const int64_t oh = (k.h + k.pads[0] + k.pads[2] - (k.kh - 1) * k.dil - 1) / k.stride + 1;
    const int64_t ow = (k.w + k.pads[1] + k.pads[3] - (k.kw - 1) * k.dil - 1) / k.stride + 1;
    Tensor seed = random_tensor(k.one_d ? Shape{k.n, k.oc, ow} : Shape{k.n, k.oc, oh, ow}, rng);
    Tensor gx = s.gradient({x}, {seed}, &outs).at(0);
    const Tensor& y = outs.at(0);
    REQUIRE(y.numel() == k.n * k.oc * oh * ow);
    const float* px = x.f32();
    const float* pw = w.f32();
    std::vector<double> ref_gx(x.numel(), 0.0), mag_gx(x.numel(), 0.0);
    const int64_t taps = k.c * k.kh * k.kw;
    double worst = 0;
    for (int64_t n = 0; n < k.n; ++n)
      for (int64_t o = 0; o < k.oc; ++o)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            double sum = b.f32()[o], mag = std::fabs(b.f32()[o]);
            const int64_t yo = ((n * k.oc + o) * oh + i) * ow + j;
            for (int64_t c = 0; c < k.c; ++c)
              for (int64_t a = 0; a < k.kh; ++a)
                for (int64_t e = 0; e < k.kw; ++e) {
                  const int64_t hi = i * k.stride - k.pads[0] + a * k.dil, wj = j * k.stride - k.pads[1] + e * k.dil;
                  if (hi < 0 || hi >= k.h || wj < 0 || wj >= k.w) continue;
                  const int64_t xi = ((n * k.c + c) * k.h + hi) * k.w + wj;
                  const double wv = pw[((o * k.c + c) * k.kh + a) * k.kw + e];
                  sum += wv * px[xi];
                  mag += std::fabs(wv * px[xi]);
                  ref_gx[xi] += wv * seed.f32()[yo];
                  mag_gx[xi] += std::fabs(wv * seed.f32()[yo]);
                }
            const double err = std::fabs(y.f32()[yo] - sum), bound = gamma(taps + 1) * mag + 1e-30;
            worst = std::max(worst, err / bound);
          }
    CHECK(worst <= 1.0);
    double worst_g = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double err = std::fabs(gx.f32()[i] - ref_gx[i]);
      worst_g = std::max(worst_g, err / (gamma(k.oc * k.kh * k.kw) * mag_gx[i] + 1e-30));
    }
    CHECK(worst_g <= 1.0);
    // Rows are independent of the batch: image 0 alone gives the same bits.
    Tensor y0 = s.forward(x.slice_rows(0, 1));
    for (int64_t i = 0; i < y0.numel(); ++i) REQUIRE(y0.f32()[i] == y.f32()[i]);
  }
}

namespace {

// x [N,2,12,12] -> Conv(2->4, 3x3, pad 1) -> Relu -> Pad(spatial 1,0,1,2) -> AveragePool(2x2/2,
// count_include_pad) -> Pad(1 all round) -> Conv(4->3, 3x3, stride 2 when `strided`) -> Relu
// -> output; plus, when `shared`, the first Relu's output is a second graph output (so that
// Conv+Relu still fuses but the value stays visible).
Graph fusion_graph(std::mt19937& rng, bool strided, bool shared) {
  Graph g;
  g.source = "fusion";
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {-1, 2, 12, 12}});
  g.initializers["w1"] = random_tensor({4, 2, 3, 3}, rng);
  g.initializers["b1"] = random_tensor({4}, rng);
  g.initializers["w2"] = random_tensor({3, 4, 3, 3}, rng);
  g.initializers["p1"] = Tensor::from_ints({8}, {0, 0, 1, 0, 0, 0, 1, 2});
  g.initializers["p2"] = Tensor::from_ints({8}, {0, 0, 1, 1, 0, 0, 1, 1});
  auto add = [&](const std::string& op, std::vector<std::string> in, const std::string& out) -> Node& {
    Node n;
    n.name = out;
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    g.nodes.push_back(n);
    return g.nodes.back();
  };
  add("Conv", {"x", "w1", "b1"}, "c1").attributes["pads"] = engine::Attribute::of_ints({1, 1, 1, 1});
  add("Relu", {"c1"}, "r1");
  add("Pad", {"r1", "p1"}, "pad1");
  Node& pool = add("AveragePool", {"pad1"}, "pool");
  pool.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
  pool.attributes["strides"] = engine::Attribute::of_ints({2, 2});
  pool.attributes["count_include_pad"] = engine::Attribute::of_int(1);
  add("Pad", {"pool", "p2"}, "pad2");
  Node& c2 = add("Conv", {"pad2", "w2"}, "c2");
  if (strided) c2.attributes["strides"] = engine::Attribute::of_ints({2, 2});
  add("Relu", {"c2"}, "y");
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  if (shared) g.outputs.push_back({"r1", engine::DType::Float32, {}});
  return g;
}

}  // namespace

TEST_CASE("engine CPU fusion: Conv+Relu and Pad into AveragePool or Conv give the unfused graph's bits") {
  for (bool strided : {false, true})
    for (bool shared : {false, true}) {
      CAPTURE(strided, shared);
      std::mt19937 rng(3);
      Graph g = fusion_graph(rng, strided, shared);
      Tensor x = random_tensor({3, 2, 12, 12}, rng);
      ::setenv("MLAUDIT_NO_FUSE", "1", 1);
      engine::Session plain(g);
      ::unsetenv("MLAUDIT_NO_FUSE");
      engine::Session fused(g);
      std::vector<Tensor> out_plain, out_fused;
      std::vector<Tensor> seeds;
      for (const auto& o : plain.run({x})) seeds.push_back(random_tensor(o.shape(), rng));
      // Gradients where the seed is exactly 0 and where Relu's input is exactly 0 follow the
      // same rule fused and unfused: x > 0 passes the gradient, anything else gives 0.
      seeds[0].f32()[0] = 0.f;
      Tensor g_plain = plain.gradient({x}, seeds, &out_plain).at(0);
      Tensor g_fused = fused.gradient({x}, seeds, &out_fused).at(0);
      REQUIRE(out_plain.size() == out_fused.size());
      for (size_t k = 0; k < out_plain.size(); ++k) {
        REQUIRE(out_plain[k].shape() == out_fused[k].shape());
        for (int64_t i = 0; i < out_plain[k].numel(); ++i) REQUIRE(out_plain[k].f32()[i] == out_fused[k].f32()[i]);
      }
      Tensor f_plain = plain.run({x}).at(0), f_fused = fused.run({x}).at(0);
      for (int64_t i = 0; i < f_plain.numel(); ++i) REQUIRE(f_plain.f32()[i] == f_fused.f32()[i]);
      for (int64_t i = 0; i < g_plain.numel(); ++i) REQUIRE(g_plain.f32()[i] == g_fused.f32()[i]);
    }
}
