#pragma once
// Helpers shared by the verify tests: hand-built and random networks.
#include <random>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/verify/network.h"
#include "mlaudit/verify/vnnlib.h"

namespace mlaudit::verify::testing {

/// A node of a hand-built engine graph.
inline engine::Node graph_node(const std::string& op, const std::string& name, std::vector<std::string> in,
                               std::vector<std::string> out) {
  engine::Node n;
  n.op_type = op;
  n.name = name;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

/// A float32 tensor of uniform values in [lo, hi] (an initializer of a hand-built graph).
inline engine::Tensor random_tensor(engine::Shape s, std::mt19937_64& rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<float> d{float(lo), float(hi)};
  std::vector<float> v(static_cast<size_t>(engine::shape_numel(s)));
  for (auto& x : v) x = d(rng);
  return engine::Tensor::from_floats(s, v);
}

/// Layer from rows of W and b.
inline AffineLayer layer(const std::vector<std::vector<double>>& W, const std::vector<double>& b) {
  AffineLayer L;
  L.out = int64_t(W.size());
  L.in = int64_t(W[0].size());
  for (const auto& row : W) L.weight.insert(L.weight.end(), row.begin(), row.end());
  L.bias = b;
  return L;
}

/// Random ReLU network with float32-representable weights (as ONNX models have).
inline Network random_network(const std::vector<int64_t>& sizes, uint64_t seed, double bias_scale = 0.3) {
  std::mt19937_64 rng(seed);
  Network net;
  for (size_t k = 0; k + 1 < sizes.size(); ++k) {
    std::normal_distribution<double> w(0.0, 1.0 / std::sqrt(double(sizes[k])));
    std::normal_distribution<double> b(0.0, bias_scale);
    AffineLayer L;
    L.in = sizes[k];
    L.out = sizes[k + 1];
    for (int64_t i = 0; i < L.in * L.out; ++i) L.weight.push_back(double(float(w(rng))));
    for (int64_t i = 0; i < L.out; ++i) L.bias.push_back(double(float(b(rng))));
    net.layers.push_back(L);
  }
  net.input_shape = {1, sizes[0]};
  return net;
}

/// Margins y_label - y_j (j != label) as objectives coef . y.
inline std::vector<OutputConstraint> margin_objectives(int64_t label, int64_t classes) {
  std::vector<OutputConstraint> rows;
  for (int64_t j = 0; j < classes; ++j) {
    if (j == label) continue;
    OutputConstraint c;
    c.coef.assign(size_t(classes), 0.0);
    c.coef[size_t(label)] = 1;
    c.coef[size_t(j)] = -1;
    rows.push_back(c);
  }
  return rows;
}

/// A point of the box: a corner one time in four (where linear bounds are tight), uniform otherwise.
inline std::vector<double> sample_in_box(const InputBox& box, std::mt19937_64& rng, int s) {
  std::uniform_real_distribution<double> u01(0, 1);
  std::vector<double> x(box.lower.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double t = s % 4 == 0 ? double(u01(rng) < 0.5) : u01(rng);
    x[i] = box.lower[i] + t * (box.upper[i] - box.lower[i]);
  }
  return x;
}

}  // namespace mlaudit::verify::testing
