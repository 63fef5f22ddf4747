#pragma once
// Shared by the GPU-product tests (test_gpu_bounds_emulated.cpp, test_gpu_bounds.cpp): a seeded
// small CNN, box sampling and the comparison of two sets of bounds.
#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "mlaudit/verify/bounds.h"
#include "mlaudit/verify/network.h"
#include "verify_test_util.h"

namespace mlaudit::verify::testing {

/// 3x3 convolution, stride 1, zero padding 1, on a C x H x W input (row-major CHW), as an affine
/// layer with float32-representable He-scaled weights, compressed like the ONNX loader's.
inline AffineLayer conv3x3_layer(int64_t cin, int64_t h, int64_t w, int64_t cout, std::mt19937_64& rng) {
  std::normal_distribution<double> wd(0.0, std::sqrt(2.0 / double(cin * 9)));
  std::normal_distribution<double> bd(0.0, 0.1);
  std::vector<double> kernel(size_t(cout * cin * 9));
  for (auto& v : kernel) v = double(float(wd(rng)));
  AffineLayer L;
  L.in = cin * h * w;
  L.out = cout * h * w;
  L.weight.assign(size_t(L.in * L.out), 0.0);
  for (int64_t co = 0; co < cout; ++co) {
    const double b = double(float(bd(rng)));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t row = (co * h + y) * w + x;
        L.bias.push_back(b);
        for (int64_t ci = 0; ci < cin; ++ci)
          for (int64_t dy = -1; dy <= 1; ++dy)
            for (int64_t dx = -1; dx <= 1; ++dx) {
              const int64_t yy = y + dy, xx = x + dx;
              if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
              L.weight[size_t(row * L.in + (ci * h + yy) * w + xx)] = kernel[size_t(((co * cin + ci) * 3 + dy + 1) * 3 + dx + 1)];
            }
      }
  }
  L.compress();
  return L;
}

/// 2x2 max pooling, stride 2, on C x H x W (H, W even).
inline MaxPool maxpool2x2(int64_t c, int64_t h, int64_t w) {
  MaxPool mp;
  mp.in = c * h * w;
  mp.node = "pool";
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; y += 2)
      for (int64_t x = 0; x < w; x += 2)
        mp.windows.push_back({(ch * h + y) * w + x, (ch * h + y) * w + x + 1, (ch * h + y + 1) * w + x, (ch * h + y + 1) * w + x + 1});
  return mp;
}

/// A seeded small CNN shaped like the bundled one: 1x12x12 -> conv 4 -> relu -> maxpool -> conv 8
/// -> relu -> maxpool -> dense 72 -> 24 -> relu -> dense 10.
inline Network small_cnn(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Network net;
  net.layers.push_back(conv3x3_layer(1, 12, 12, 4, rng));
  net.layers.push_back(conv3x3_layer(4, 6, 6, 8, rng));
  for (auto [in, out] : {std::pair<int64_t, int64_t>{72, 24}, {24, 10}}) {
    std::normal_distribution<double> wd(0.0, std::sqrt(2.0 / double(in)));
    AffineLayer L;
    L.in = in;
    L.out = out;
    for (int64_t i = 0; i < in * out; ++i) L.weight.push_back(double(float(wd(rng))));
    for (int64_t i = 0; i < out; ++i) L.bias.push_back(0.05 * double(i % 3));
    net.layers.push_back(L);
  }
  net.pools = {maxpool2x2(4, 12, 12), maxpool2x2(8, 6, 6), std::nullopt};
  net.input_shape = {1, 1, 12, 12};
  return net;
}

/// L-infinity box of radius eps around x0, clipped to [0, 1].
inline InputBox linf_box(const std::vector<double>& x0, double eps) {
  InputBox box;
  for (double v : x0) {
    box.lower.push_back(std::max(0.0, v - eps));
    box.upper.push_back(std::min(1.0, v + eps));
  }
  return box;
}

/// Largest |a - b| / (1 + |b|) over every bound of every layer (infinity on a shape mismatch).
inline double max_relative_gap(const LayerBounds& a, const LayerBounds& b) {
  if (a.lower.size() != b.lower.size()) return INFINITY;
  double gap = 0;
  for (size_t k = 0; k < a.lower.size(); ++k) {
    if (a.lower[k].size() != b.lower[k].size()) return INFINITY;
    for (size_t j = 0; j < a.lower[k].size(); ++j) {
      gap = std::max(gap, std::fabs(a.lower[k][j] - b.lower[k][j]) / (1 + std::fabs(b.lower[k][j])));
      gap = std::max(gap, std::fabs(a.upper[k][j] - b.upper[k][j]) / (1 + std::fabs(b.upper[k][j])));
    }
  }
  return gap;
}

/// Number of sampled concrete pre-activations outside the bounds (n samples of the box).
inline int64_t sampled_violations(const Network& net, const InputBox& box, const LayerBounds& b, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t violations = 0;
  for (int s = 0; s < n; ++s) {
    auto pre = net.pre_activations(sample_in_box(box, rng, s));
    for (size_t k = 0; k < pre.size(); ++k)
      for (size_t i = 0; i < pre[k].size(); ++i)
        if (pre[k][i] < b.lower[k][i] || pre[k][i] > b.upper[k][i]) ++violations;
  }
  return violations;
}

}  // namespace mlaudit::verify::testing
