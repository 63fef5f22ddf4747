#pragma once
// Small Conv -> Relu (-> MaxPool 2x2/2) graphs for the CUDA executor's fused paths
// (conv+ReLU in every forward, conv+ReLU+pool in forwards without a backward): odd
// spatial sizes (pooling drops the last row/column), strides, padding, groups and more
// than 16 output channels (two channel blocks), each followed by a Gemm so the fused
// value feeds further ops. Shared by test_cuda (GPU) and test_cuda_emulated.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"

namespace mlaudit::test {

struct FusionCase {
  std::string name;
  int64_t c, h, w, oc, k, stride, pad, group;
  bool pool;
};

inline std::vector<FusionCase> fusion_cases() {
  return {
      {"3x3 pad1 pool (even)", 2, 8, 8, 6, 3, 1, 1, 1, true},
      {"3x3 pad0 pool (odd 7x7 -> 3x3)", 3, 9, 9, 5, 3, 1, 0, 1, true},
      {"3x3 stride2 pool, 20 channels", 4, 13, 11, 20, 3, 2, 1, 1, true},
      {"5x5 groups2 pool", 4, 12, 12, 6, 5, 1, 2, 2, true},
      {"3x3 relu only (no pool)", 2, 7, 7, 17, 3, 1, 1, 1, false},
  };
}

/// Conv -> Relu [-> MaxPool] -> Flatten -> Gemm(out 3), deterministic random weights.
inline engine::Graph fusion_graph(const FusionCase& fc) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.5f);
  engine::Graph g;
  g.source = "fusion:" + fc.name;
  g.opset = 13;
  g.inputs.push_back({"x", engine::DType::Float32, {-1, fc.c, fc.h, fc.w}});
  g.outputs.push_back({"y", engine::DType::Float32, {}});
  engine::Tensor w(engine::Shape{fc.oc, fc.c / fc.group, fc.k, fc.k}), b(engine::Shape{fc.oc});
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = nd(rng);
  for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] = nd(rng);
  g.initializers["W"] = w;
  g.initializers["B"] = b;
  int64_t oh = (fc.h + 2 * fc.pad - fc.k) / fc.stride + 1, ow = (fc.w + 2 * fc.pad - fc.k) / fc.stride + 1;
  if (fc.pool) {
    oh /= 2;
    ow /= 2;
  }
  int64_t feat = fc.oc * oh * ow;
  engine::Tensor fw(engine::Shape{3, feat}), fb(engine::Shape{3});
  for (int64_t i = 0; i < fw.numel(); ++i) fw.f32()[i] = nd(rng);
  g.initializers["FW"] = fw;
  g.initializers["FB"] = fb;
  engine::Node conv{"conv", "Conv", "", {"x", "W", "B"}, {"c"}, {}};
  conv.attributes["kernel_shape"] = engine::Attribute::of_ints({fc.k, fc.k});
  conv.attributes["strides"] = engine::Attribute::of_ints({fc.stride, fc.stride});
  conv.attributes["pads"] = engine::Attribute::of_ints({fc.pad, fc.pad, fc.pad, fc.pad});
  engine::Attribute grp;
  grp.i = fc.group;
  conv.attributes["group"] = grp;
  g.nodes.push_back(conv);
  g.nodes.push_back({"relu", "Relu", "", {"c"}, {"r"}, {}});
  std::string last = "r";
  if (fc.pool) {
    engine::Node pool{"pool", "MaxPool", "", {"r"}, {"p"}, {}};
    pool.attributes["kernel_shape"] = engine::Attribute::of_ints({2, 2});
    pool.attributes["strides"] = engine::Attribute::of_ints({2, 2});
    g.nodes.push_back(pool);
    last = "p";
  }
  g.nodes.push_back({"flat", "Flatten", "", {last}, {"f"}, {}});
  engine::Node gemm{"fc", "Gemm", "", {"f", "FW", "FB"}, {"y"}, {}};
  engine::Attribute tb;
  tb.i = 1;
  gemm.attributes["transB"] = tb;
  g.nodes.push_back(gemm);
  return g;
}

/// Deterministic input batch for a case.
inline engine::Tensor fusion_input(const FusionCase& fc, int64_t n) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  engine::Tensor x(engine::Shape{n, fc.c, fc.h, fc.w});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = ud(rng);
  return x;
}

}  // namespace mlaudit::test
