// The CPU fast paths for small convolutional networks (issue #20): the direct stride-1
// convolution (engine/src/cpu/conv_direct.*) against a double-precision reference, forward and
// input gradient, and the CPU graph fusions (engine/src/cpu/fusion.*: Conv+Relu, Pad into
// AveragePool / Conv; Conv(+Relu)+MaxPool 2x2/2 in forward-only runs) against the same graph run
// op by op (MLAUDIT_NO_FUSE=1), bit for bit; AveragePool's row-at-a-time sums and the trailing-axes
// ReduceSum/ReduceMean against sequential references, bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"
#include "../../engine/src/cpu/fusion.h"
#include "../../engine/src/cpu/layout.h"

using namespace mlaudit;
using engine::Graph;
using engine::Node;
using engine::Shape;
using engine::Tensor;

namespace {

// Append a node named after its one output to g.
Node& add_node(Graph& g, const std::string& op, std::vector<std::string> in, const std::string& out) {
  Node n;
  n.name = out;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = {out};
  g.nodes.push_back(n);
  return g.nodes.back();
}

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
    return add_node(g, op, std::move(in), out);
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

namespace {

// x [N,c,h,w] -> Conv(c->oc, 3x3, pad `pad`, stride `stride`) [-> Relu] -> MaxPool(2x2/2) -> Flatten
// -> output; `conv_out` also makes the Conv's (or Relu's) output a graph output, which keeps the
// MaxPool out of the Conv.
Graph conv_pool_graph(std::mt19937& rng, int64_t c, int64_t h, int64_t w, int64_t oc, int64_t pad, int64_t stride,
                      bool relu, bool conv_out) {
  Graph g;
  g.source = "conv_pool";
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {-1, c, h, w}});
  g.initializers["w"] = random_tensor({oc, c, 3, 3}, rng);
  g.initializers["b"] = random_tensor({oc}, rng);
  auto add = [&](const std::string& op, std::vector<std::string> in, const std::string& out) -> Node& {
    return add_node(g, op, std::move(in), out);
  };
  Node& conv = add("Conv", {"x", "w", "b"}, "c");
  conv.attributes["pads"] = engine::Attribute::of_ints({pad, pad, pad, pad});
  conv.attributes["strides"] = engine::Attribute::of_ints({stride, stride});
  if (relu) add("Relu", {"c"}, "r");
  Node& pool = add("MaxPool", {relu ? "r" : "c"}, "p");
  pool.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
  pool.attributes["strides"] = engine::Attribute::of_ints({2, 2});
  add("Flatten", {"p"}, "y");
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  if (conv_out) g.outputs.push_back({relu ? "r" : "c", engine::DType::Float32, {}});
  return g;
}

bool same_bits(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

TEST_CASE("engine CPU fusion: Conv(+Relu)+MaxPool 2x2/2 in forward-only runs gives the unfused graph's bits") {
  struct Case {
    int64_t c, h, w, oc, pad, stride;
  };
  // Direct path (few channels; even and odd outputs, stride 2) and oneDNN's path (48 channels).
  const std::vector<Case> cases = {{1, 28, 28, 16, 1, 1}, {3, 13, 11, 8, 1, 1}, {8, 14, 14, 16, 0, 1},
                                   {2, 17, 16, 4, 1, 2},  {4, 12, 12, 48, 1, 1}, {40, 9, 10, 6, 0, 1}};
  for (const Case& k : cases)
    for (bool relu : {true, false})
      for (bool conv_out : {false, true})
        for (int64_t n : {1, 5}) {
          CAPTURE(k.c, k.h, k.w, k.oc, k.pad, k.stride, relu, conv_out, n);
          std::mt19937 rng(11);
          Graph g = conv_pool_graph(rng, k.c, k.h, k.w, k.oc, k.pad, k.stride, relu, conv_out);
          Tensor x = random_tensor({n, k.c, k.h, k.w}, rng);
          // NaN goes through max the same way fused and unfused (windows with NaN and numbers
          // where the convolution has no padding: max's operand order decides what comes out).
          x.f32()[0] = std::nanf("");
          x.f32()[x.numel() / 2 + 3] = std::nanf("");
          ::setenv("MLAUDIT_NO_FUSE", "1", 1);
          engine::Session plain(g);
          ::unsetenv("MLAUDIT_NO_FUSE");
          engine::Session fused(g);
          std::vector<Tensor> a = plain.run({x}), b = fused.run({x});
          REQUIRE(a.size() == b.size());
          for (size_t o = 0; o < a.size(); ++o) {
            REQUIRE(a[o].shape() == b[o].shape());
            for (int64_t i = 0; i < a[o].numel(); ++i) REQUIRE(same_bits(a[o].f32()[i], b[o].f32()[i]));
          }
          // The gradient pass keeps the pre-pool values (the MaxPool stays its own node there).
          std::vector<Tensor> seeds, out_plain, out_fused;
          for (const auto& o : a) seeds.push_back(random_tensor(o.shape(), rng));
          Tensor x2 = random_tensor({n, k.c, k.h, k.w}, rng);
          Tensor ga = plain.gradient({x2}, seeds, &out_plain).at(0), gb = fused.gradient({x2}, seeds, &out_fused).at(0);
          for (int64_t i = 0; i < ga.numel(); ++i) REQUIRE(ga.f32()[i] == gb.f32()[i]);
          Tensor f = fused.run({x2}).at(0);
          for (int64_t i = 0; i < f.numel(); ++i) REQUIRE(f.f32()[i] == out_plain[0].f32()[i]);
        }
}

TEST_CASE("engine AveragePool: windows summed a row at a time equal the per-window double sum in scan order, bit for bit") {
  struct Case {
    int64_t h, w, k, s, d, pad;
    bool ceil, include_pad;
  };
  const std::vector<Case> cases = {{12, 12, 2, 2, 1, 1, false, true}, {12, 12, 2, 2, 1, 1, false, false},
                                   {13, 11, 3, 2, 1, 1, true, true},  {13, 11, 3, 2, 1, 1, true, false},
                                   {10, 9, 3, 1, 2, 2, false, true},  {7, 8, 3, 3, 1, 0, true, false},
                                   {9, 9, 5, 1, 1, 2, false, false},  {6, 17, 2, 3, 2, 1, false, true}};
  for (const Case& k : cases) {
    CAPTURE(k.h, k.w, k.k, k.s, k.d, k.pad, k.ceil, k.include_pad);
    std::mt19937 rng(7);
    Graph g;
    g.source = "avgpool";
    g.opset = 19;
    g.inputs.push_back({"x", engine::DType::Float32, {-1, 3, k.h, k.w}});
    Node pool;
    pool.name = "pool";
    pool.op_type = "AveragePool";
    pool.since_version = 19;
    pool.inputs = {"x"};
    pool.outputs = {"y"};
    pool.attributes["kernel_shape"] = engine::Attribute::of_ints({k.k, k.k});
    pool.attributes["strides"] = engine::Attribute::of_ints({k.s, k.s});
    pool.attributes["dilations"] = engine::Attribute::of_ints({k.d, k.d});
    pool.attributes["pads"] = engine::Attribute::of_ints({k.pad, k.pad, k.pad, k.pad});
    pool.attributes["ceil_mode"] = engine::Attribute::of_int(k.ceil);
    pool.attributes["count_include_pad"] = engine::Attribute::of_int(k.include_pad);
    g.nodes.push_back(pool);
    g.outputs.push_back({"y", engine::DType::Float32, {}});
    engine::Session s(g);
    Tensor x = random_tensor({2, 3, k.h, k.w}, rng, -3.f, 3.f);
    Tensor y = s.run({x}).at(0);
    const int64_t oh = y.shape()[2], ow = y.shape()[3];
    for (int64_t pc = 0; pc < 6; ++pc)
      for (int64_t oi = 0; oi < oh; ++oi)
        for (int64_t oj = 0; oj < ow; ++oj) {
          double sum = 0;
          int64_t ch = 0, cw = 0;
          for (int64_t ki = 0; ki < k.k; ++ki) {
            const int64_t r = oi * k.s - k.pad + ki * k.d;
            if (k.include_pad ? (r >= -k.pad && r < k.h + k.pad) : (r >= 0 && r < k.h)) ++ch;
          }
          for (int64_t kj = 0; kj < k.k; ++kj) {
            const int64_t c = oj * k.s - k.pad + kj * k.d;
            if (k.include_pad ? (c >= -k.pad && c < k.w + k.pad) : (c >= 0 && c < k.w)) ++cw;
          }
          for (int64_t ki = 0; ki < k.k; ++ki)
            for (int64_t kj = 0; kj < k.k; ++kj) {
              const int64_t r = oi * k.s - k.pad + ki * k.d, c = oj * k.s - k.pad + kj * k.d;
              if (r >= 0 && r < k.h && c >= 0 && c < k.w) sum += x.f32()[(pc * k.h + r) * k.w + c];
            }
          const float want = float(sum / double(std::max<int64_t>(1, ch * cw)));
          REQUIRE(y.f32()[(pc * oh + oi) * ow + oj] == want);
        }
  }
}

namespace {
// x -> ReduceMean or ReduceSum (opset 18, axes an initializer) -> y.
Graph reduce_graph(bool mean, Shape input_shape, const std::vector<int64_t>& axes) {
  Graph g;
  g.source = "reduce";
  g.opset = 18;
  g.inputs.push_back({"x", engine::DType::Float32, std::move(input_shape)});
  g.initializers["axes"] = Tensor::from_ints({int64_t(axes.size())}, axes);
  Node& n = add_node(g, mean ? "ReduceMean" : "ReduceSum", {"x", "axes"}, "y");
  n.since_version = 18;
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  return g;
}
}  // namespace

TEST_CASE("engine ReduceSum/ReduceMean over trailing axes: the blocked sums equal the sequential float sum, bit for bit") {
  // Shapes with an outer size below, at and above a multiple of 8 and one large enough for threads.
  const std::vector<Shape> shapes = {{1, 3, 5, 7}, {2, 4, 3, 3}, {3, 13, 14, 14}, {64, 32, 14, 14}};
  for (const Shape& shape : shapes)
    for (bool mean : {false, true})
      for (int64_t axes : {1, 2, 3}) {
        CAPTURE(shape, mean, axes);
        std::mt19937 rng(5);
        std::vector<int64_t> ax;
        for (int64_t a = 4 - axes; a < 4; ++a) ax.push_back(a);
        engine::Session s(reduce_graph(mean, {-1, shape[1], shape[2], shape[3]}, ax));
        Tensor x = random_tensor(shape, rng, -2.f, 3.f);
        Tensor y = s.run({x}).at(0);
        int64_t inner = 1;
        for (int64_t a : ax) inner *= shape[a];
        REQUIRE(y.numel() * inner == x.numel());
        for (int64_t o = 0; o < y.numel(); ++o) {
          float acc = 0.f;
          for (int64_t k = 0; k < inner; ++k) acc += x.f32()[o * inner + k];
          if (mean) acc /= float(inner);
          REQUIRE(y.f32()[o] == acc);
        }
      }
}

TEST_CASE("engine ReduceSum/ReduceMean over a middle block of axes: the side-by-side sums equal the sequential float sum, bit for bit") {
  // [A, R..., B] reduced over the R axes (a transformer's mean over positions; a bias gradient's
  // sum over N): reference sums each output's terms from 0.f in index order.
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
  };
  const std::vector<Case> cases = {{{64, 32, 64}, {1}}, {{3, 5, 7, 9}, {1, 2}}, {{7, 4, 6}, {0}}, {{2, 300, 2, 600}, {1}},
                                   {{4, 1, 5, 3}, {2}}};
  for (const Case& c : cases)
    for (bool mean : {false, true}) {
      CAPTURE(c.shape, c.axes, mean);
      std::mt19937 rng(9);
      engine::Session s(reduce_graph(mean, c.shape, c.axes));
      Tensor x = random_tensor(c.shape, rng, -2.f, 3.f);
      Tensor y = s.run({x}).at(0);
      const int64_t lo = c.axes.front(), hi = c.axes.back() + 1;
      int64_t A = 1, R = 1, B = 1;
      for (int64_t i = 0; i < int64_t(c.shape.size()); ++i) (i < lo ? A : i < hi ? R : B) *= c.shape[i];
      REQUIRE(y.numel() == A * B);
      for (int64_t a = 0; a < A; ++a)
        for (int64_t b = 0; b < B; ++b) {
          float acc = 0.f;
          for (int64_t k = 0; k < R; ++k) acc += x.f32()[(a * R + k) * B + b];
          if (mean) acc /= float(R);
          REQUIRE(y.f32()[a * B + b] == acc);
        }
    }
}

namespace {

// A MobileNet/ResNet-like block chain whose convolutions go to oneDNN (more than 32 channels or
// grouped), so the forward-only graph keeps their activations channel-blocked (cpu/layout.h):
// Conv+Relu -> depthwise Conv -> Clip(0, 6) -> 1x1 Conv -> Add (residual) -> Relu -> Sigmoid*x
// (SiLU) -> Conv; a squeeze branch GlobalAveragePool -> 1x1 Conv gives a [N,64,1,1] blocked
// value that an Add and a Mul broadcast against (per-channel, computed in blocked order forward
// and backward); GlobalAveragePool ->
// Flatten is the output. `side_out` also makes the residual sum a graph output (kept NCHW).
Graph blocked_chain_graph(std::mt19937& rng, int64_t c, bool side_out, int64_t wd = 64) {
  Graph g;
  g.source = "blocked_chain";
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {-1, c, -1, -1}});
  auto init = [&](const std::string& name, Shape s, float scale) {
    g.initializers[name] = random_tensor(std::move(s), rng, -scale, scale);
  };
  init("w1", {wd, c, 3, 3}, 0.2f);
  init("b1", {wd}, 0.1f);
  init("wd", {wd, 1, 3, 3}, 0.5f);
  init("w2", {wd, wd, 1, 1}, 0.2f);
  init("w3", {wd, wd, 3, 3}, 0.1f);
  init("ws", {wd, wd, 1, 1}, 0.2f);
  init("wc", {wd, wd, 1, 9}, 0.1f);
  g.initializers["lo"] = Tensor::scalar(0.f);
  g.initializers["hi"] = Tensor::scalar(6.f);
  auto add = [&](const std::string& op, std::vector<std::string> in, const std::string& out) -> Node& {
    return add_node(g, op, std::move(in), out);
  };
  auto pads = [](Node& n, int64_t p) { n.attributes["pads"] = engine::Attribute::of_ints({p, p, p, p}); };
  pads(add("Conv", {"x", "w1", "b1"}, "c1"), 1);
  add("Relu", {"c1"}, "r1");
  Node& dw = add("Conv", {"r1", "wd"}, "d");
  pads(dw, 1);
  dw.attributes["group"] = engine::Attribute::of_int(wd);
  add("Clip", {"d", "lo", "hi"}, "d6");
  add("Conv", {"d6", "w2"}, "c2");
  add("Add", {"c2", "r1"}, "res");
  add("Relu", {"res"}, "r2");
  add("Sigmoid", {"r2"}, "s");
  add("Mul", {"r2", "s"}, "silu");
  pads(add("Conv", {"silu", "w3"}, "c3"), 1);
  add("GlobalAveragePool", {"c3"}, "sq");
  add("Conv", {"sq", "ws"}, "ex");
  add("Add", {"c3", "ex"}, "c3e");
  add("Mul", {"ex", "c3e"}, "c3m");  // the squeeze-excitation scale, per-channel operand first
  add("Conv", {"r1", "wc"}, "col");   // [N, wd, H, 1]: an Add broadcasting it over W takes the NCHW fallback
  add("Add", {"c3m", "col"}, "c3w");
  add("GlobalAveragePool", {"c3w"}, "gap");
  add("Flatten", {"gap"}, "y");
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  if (side_out) g.outputs.push_back({"res", engine::DType::Float32, {}});
  return g;
}

}  // namespace

TEST_CASE("engine CPU blocked layout: oneDNN conv chains kept channel-blocked give the op-by-op graph's bits") {
  // Width 64: every convolution is oneDNN's; width 16 (one block with AVX-512, two with AVX2):
  // the 1x1 and 3x3 convolutions are direct-path shapes that the pass moves to oneDNN because
  // their activations stay blocked (kOneDnnAttribute).
  for (int64_t wd : {64, 16})
  for (int64_t c : {48, 64})
    for (bool side_out : {false, true})
      for (int64_t n : {1, 3}) {
        CAPTURE(wd, c, side_out, n);
        std::mt19937 rng(5);
        Graph g = blocked_chain_graph(rng, c, side_out, wd);
        Tensor x = random_tensor({n, c, 10, 9}, rng);
        // A NaN goes through the fused Clip as through the op: a NaN tap of the depthwise
        // kernel's channel 5 makes that channel NaN, Clip keeps NaN (ONNX), and the 1x1 Conv
        // after it spreads it to the residual sum (a graph output when side_out).
        if (side_out) g.initializers["wd"].f32()[5 * 9 + 4] = std::nanf("");
        ::setenv("MLAUDIT_NO_FUSE", "1", 1);
        engine::Session plain(g);
        ::unsetenv("MLAUDIT_NO_FUSE");
        ::setenv("MLAUDIT_BLOCKED", "0", 1);
        engine::Session unblocked(g);
        ::unsetenv("MLAUDIT_BLOCKED");
        engine::Session blocked(g);
        std::vector<Tensor> a = plain.run({x}), b = unblocked.run({x}), f = blocked.run({x});
        REQUIRE(a.size() == f.size());
        // Width 64: the same oneDNN kernels sum in the same order blocked or not, bit for bit.
        // Width 16: oneDNN instead of the direct kernels, another order of the same sums: within
        // 1e-5 of the output's largest magnitude (float32 sums of 144-576 terms; measured 1e-7).
        auto close = [&](const Tensor& want, const Tensor& got) {
          REQUIRE(want.shape() == got.shape());
          double scale = 0;
          for (int64_t i = 0; i < want.numel(); ++i)
            if (std::isfinite(want.f32()[i])) scale = std::max(scale, double(std::fabs(want.f32()[i])));
          for (int64_t i = 0; i < want.numel(); ++i) {
            if (wd == 64) {
              REQUIRE(same_bits(want.f32()[i], got.f32()[i]));
            } else if (std::isnan(want.f32()[i])) {
              REQUIRE(std::isnan(got.f32()[i]));
            } else {
              REQUIRE(std::fabs(double(want.f32()[i]) - got.f32()[i]) <= 1e-5 * scale);
            }
          }
        };
        for (size_t o = 0; o < a.size(); ++o) {
          REQUIRE(a[o].shape() == f[o].shape());
          for (int64_t i = 0; i < a[o].numel(); ++i) REQUIRE(same_bits(a[o].f32()[i], b[o].f32()[i]));
          close(a[o], f[o]);
        }
        // The pass did block the chain: the convolutions' outputs and the ops between them.
        bool changed = false;
        Graph resolved = g;
        for (Node& nd : resolved.nodes) nd.since_version = 13;  // as the Session resolves them
        Graph inf = engine::detail::fuse_cpu_inference_graph(engine::detail::fuse_cpu_graph(resolved), changed);
        const int64_t bk = engine::detail::cpu_channel_block();
        auto node = [&](const std::string& out) -> const Node& {
          for (const Node& nd : inf.nodes)
            if (nd.outputs[0] == out) return nd;
          FAIL("no node writes " << out);
          return inf.nodes[0];
        };
        // Conv+Relu fused; blocked unless the residual Add that reads it writes a graph output.
        CHECK(engine::detail::blocked_output(node("r1"), 0) == (side_out ? 0 : bk));
        CHECK(engine::detail::blocked_input(node("d6"), 0) == (side_out ? 0 : bk));  // depthwise Conv+Clip fused
        CHECK(engine::detail::blocked_output(node("d6"), 0) == bk);
        CHECK(engine::detail::blocked_output(node("res"), 0) == (side_out ? 0 : bk));  // a graph output stays NCHW
        CHECK(engine::detail::blocked_output(node("silu"), 0) == (side_out ? 0 : bk));
        CHECK(engine::detail::blocked_output(node("ex"), 0) == bk);    // [N,64,1,1], broadcast by the Add
        CHECK(engine::detail::blocked_input(node("gap"), 0) == bk);
        CHECK(engine::detail::blocked_output(node("gap"), 0) == 0);
        CHECK(engine::detail::blocked_input(node("r1"), 0) == 0);      // reads the graph input
        CHECK(node("d6").has(engine::detail::kFusedClipAttribute));
        CHECK(node("silu").op_type == "Sigmoid");  // Sigmoid and Mul(x, sigmoid(x)) fused
        CHECK(node("silu").has(engine::detail::kFusedTimesInputAttribute));
        {  // the gradient graph blocks the oneDNN chain too (not the direct-path shapes)
          Graph grad_graph = engine::detail::block_cpu_gradient_graph(engine::detail::fuse_cpu_graph(resolved));
          auto gnode = [&](const std::string& out) -> const Node& {
            for (const Node& nd : grad_graph.nodes)
              if (nd.outputs[0] == out) return nd;
            FAIL("no node writes " << out);
            return grad_graph.nodes[0];
          };
          CHECK(engine::detail::blocked_output(gnode("d"), 0) == (wd == 64 ? bk : 0));  // depthwise
          CHECK(engine::detail::blocked_input(gnode("c3e"), 1) == (wd == 64 ? bk : 0));  // broadcast Add
          CHECK(engine::detail::blocked_output(gnode("r2"), 0) == (wd == 64 && !side_out ? bk : 0));
          // SiLU fused in the gradient graph too; its backward gives the two nodes' bits (below)
          CHECK(gnode("silu").op_type == "Sigmoid");
          CHECK(gnode("silu").has(engine::detail::kFusedTimesInputAttribute));
        }
        if (wd == 16) {  // direct-path shapes that the chain keeps on oneDNN
          CHECK(node("c3").get_int(engine::detail::kOneDnnAttribute, 0) == 1);
          CHECK(node("ex").get_int(engine::detail::kOneDnnAttribute, 0) == 1);
        }
        CHECK(node("c3e").op_type == "Add");       // runs as the blocked per-channel broadcast
        CHECK(engine::detail::blocked_input(node("c3e"), 1) == bk);
        CHECK(engine::detail::blocked_input(node("c3m"), 0) == bk);
        CHECK(engine::detail::blocked_input(node("c3w"), 1) == bk);  // broadcast over W: the NCHW fallback
        // Not a test of zeros: the output varies (or is the NaN).
        if (side_out) {
          REQUIRE(std::isnan(a[1].f32()[0]));
        } else {
          REQUIRE(a[0].f32()[0] != a[0].f32()[1]);
        }
        // The gradient (blocked where oneDNN's chain is, SiLU fused) equals the op-by-op graph's.
        std::vector<Tensor> seeds, outs;
        for (const auto& o : a) seeds.push_back(random_tensor(o.shape(), rng));
        Tensor gp = plain.gradient({x}, seeds).at(0), gf = blocked.gradient({x}, seeds, &outs).at(0);
        for (int64_t i = 0; i < gp.numel(); ++i) REQUIRE(same_bits(gp.f32()[i], gf.f32()[i]));
        close(outs[0], f[0]);
      }
}

TEST_CASE("engine CPU MaxPool: values-only and channel-blocked paths give the argmax path's bits (NaN, -inf, padding)") {
  struct Case {
    int64_t k, s, pad, dil;
    bool ceil;
  };
  // 3x3/2 pad 1 (ResNet's stem), 2x2/2 inside (the plain op's fast path), 3x3/1 dilated with
  // padding, 2x2/2 with ceil_mode (windows past the edge).
  const std::vector<Case> cases = {{3, 2, 1, 1, false}, {2, 2, 0, 1, false}, {3, 1, 2, 2, false}, {2, 2, 0, 1, true}};
  const int64_t bk = engine::detail::cpu_channel_block();
  for (const Case& k : cases)
    for (int64_t n : {1, 2}) {
      CAPTURE(k.k, k.s, k.pad, k.dil, k.ceil, n);
      std::mt19937 rng(17);
      Tensor x = random_tensor({n, 2 * bk, 9, 11}, rng);
      // NaN first in some windows and later in others; -inf in a whole plane.
      for (int64_t i : {0, 5, 11 * 3 + 4, 99 + 11 * 8, 99 * 3 + 20}) x.f32()[i] = std::nanf("");
      for (int64_t i = 0; i < 99; ++i) x.f32()[99 * 7 + i] = -std::numeric_limits<float>::infinity();
      auto graph = [&](bool blocked, bool indices = false) {
        Graph g;
        g.source = "pool";
        g.opset = 13;
        g.inputs.push_back({"x", engine::DType::Float32, {-1, 2 * bk, 9, 11}});
        Node& pool = add_node(g, "MaxPool", {"x"}, "y");
        if (indices) pool.outputs.push_back("i");
        pool.attributes["kernel_shape"] = engine::Attribute::of_ints({k.k, k.k});
        pool.attributes["strides"] = engine::Attribute::of_ints({k.s, k.s});
        pool.attributes["pads"] = engine::Attribute::of_ints({k.pad, k.pad, k.pad, k.pad});
        pool.attributes["dilations"] = engine::Attribute::of_ints({k.dil, k.dil});
        pool.attributes["ceil_mode"] = engine::Attribute::of_int(k.ceil ? 1 : 0);
        if (blocked) {  // as block_values would mark it between two blocked convolutions
          pool.attributes[engine::detail::kBlockedInputsAttribute] = engine::Attribute::of_ints({bk});
          pool.attributes[engine::detail::kBlockedOutputsAttribute] = engine::Attribute::of_ints({bk});
        }
        g.outputs.push_back({"y", engine::DType::Float32, {}});
        return g;
      };
      engine::Session plain(graph(false)), blocked(graph(true)), with_indices(graph(false, true));
      // The values-only plain path (row-folded windows) against the path that tracks the
      // argmax per window (taken when the indices output is asked for). Not for 2x2/2 windows
      // inside the input: their values-only path is max(max(a, b), max(c, d)), which the fused
      // Conv+MaxPool kernels share, and which differs from the scan-order fold only when c is
      // NaN (then d cannot win).
      Tensor values = plain.run({x}).at(0), ref = with_indices.run({x}).at(0);
      REQUIRE(values.shape() == ref.shape());
      if (!(k.k == 2 && k.s == 2 && k.pad == 0 && !k.ceil))
        for (int64_t i = 0; i < ref.numel(); ++i) REQUIRE(same_bits(values.f32()[i], ref.f32()[i]));
      // The gradient reaches each window's first maximum in scan order (the fold's choice: a
      // NaN first tap wins, later NaNs never do; 2x2/2 windows too), added into zeros (a -0
      // seed gives +0), computed here window by window.
      {
        Tensor seed = random_tensor(values.shape(), rng);
        seed.f32()[1] = -0.f;
        Tensor gx = plain.gradient({x}, {seed}).at(0);
        Tensor expect(x.shape());
        const int64_t H = 9, W = 11, OH = values.dim(2), OW = values.dim(3);
        for (int64_t pc = 0; pc < n * 2 * bk; ++pc)
          for (int64_t oi = 0; oi < OH; ++oi)
            for (int64_t oj = 0; oj < OW; ++oj) {
              int64_t arg = -1;
              float m = 0.f;
              for (int64_t ki = 0; ki < k.k; ++ki)
                for (int64_t kj = 0; kj < k.k; ++kj) {
                  const int64_t r = oi * k.s - k.pad + ki * k.dil, c = oj * k.s - k.pad + kj * k.dil;
                  if (r < 0 || r >= H || c < 0 || c >= W) continue;
                  const float v = x.f32()[pc * H * W + r * W + c];
                  if (arg < 0 || v > m) m = v, arg = r * W + c;
                }
              if (arg >= 0) expect.f32()[pc * H * W + arg] += seed.f32()[(pc * OH + oi) * OW + oj];
            }
        for (int64_t i = 0; i < expect.numel(); ++i) {
          uint32_t a, b;
          std::memcpy(&a, gx.f32() + i, 4);
          std::memcpy(&b, expect.f32() + i, 4);
          REQUIRE((a == b || (std::isnan(gx.f32()[i]) && std::isnan(expect.f32()[i]))));
        }
      }
      {  // the blocked backward (a gradient graph's): the plain gradient in blocked order
        Tensor seed = random_tensor(values.shape(), rng);
        Tensor gplain = plain.gradient({x}, {seed}).at(0);
        Tensor gblocked = blocked.gradient({engine::detail::to_blocked(x, bk)}, {engine::detail::to_blocked(seed, bk)}).at(0);
        Tensor gwant = engine::detail::to_blocked(gplain, bk);
        REQUIRE(gblocked.shape() == gwant.shape());
        for (int64_t i = 0; i < gwant.numel(); ++i) REQUIRE(same_bits(gblocked.f32()[i], gwant.f32()[i]));
      }
      Tensor want = engine::detail::to_blocked(values, bk);
      Tensor got = blocked.run({engine::detail::to_blocked(x, bk)}).at(0);
      REQUIRE(got.shape() == want.shape());
      int64_t nans = 0;
      for (int64_t i = 0; i < want.numel(); ++i) {
        REQUIRE(same_bits(want.f32()[i], got.f32()[i]));
        nans += std::isnan(want.f32()[i]);
      }
      CHECK(nans > 0);  // the NaN cases were reached
    }
}
