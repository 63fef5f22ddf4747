#pragma once
// The verifier's view of a model: a chain of affine maps with ReLU between
// them, in double precision. Every supported ONNX op (Gemm, MatMul, Add, Sub,
// Mul, Div by constants, Flatten/Reshape, Conv, BatchNormalization,
// AveragePool) folds into one of the affine maps.
#include <cstdint>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"

namespace mlaudit::verify {

/// One affine map y = W x + b; W is row-major [out, in].
struct AffineLayer {
  int64_t in = 0;
  int64_t out = 0;
  std::vector<double> weight;
  std::vector<double> bias;

  /// W x + b.
  std::vector<double> apply(const std::vector<double>& x) const;
};

/// y = A_{L-1}(relu(A_{L-2}(... relu(A_0 x)))): ReLU after every layer but the last.
struct Network {
  std::vector<AffineLayer> layers;
  engine::Shape input_shape;  ///< model input shape with batch 1 (for reports and the engine check)

  int64_t input_size() const { return layers.empty() ? 0 : layers.front().in; }
  int64_t output_size() const { return layers.empty() ? 0 : layers.back().out; }
  /// Number of ReLU neurons.
  int64_t relu_count() const;
  /// Exact-as-possible forward in double precision.
  std::vector<double> forward(const std::vector<double>& x) const;
  /// Forward with every value rounded to float32 after each layer (the ONNX runtime's arithmetic, up to summation order).
  std::vector<float> forward_f32(const std::vector<float>& x) const;
  /// Pre-activation values of every layer (the last entry is the output).
  std::vector<std::vector<double>> pre_activations(const std::vector<double>& x) const;
};

/// Convert an engine graph (one float input, one output) into a Network.
/// Throws UnsupportedError "verify: unsupported op 'X' at node 'Y'" for ops or
/// wirings outside the supported set (the caller reports that as `unknown`).
Network network_from_graph(const engine::Graph& graph);
/// load_onnx + network_from_graph.
Network load_network(const std::string& onnx_path);

}  // namespace mlaudit::verify
