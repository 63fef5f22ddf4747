#pragma once
// The verifier's view of a model: a chain of affine maps with ReLU between
// them (optionally followed by max pooling), in double precision. Every
// supported ONNX op (Gemm, MatMul, Add, Sub, Mul, Div by constants,
// Flatten/Reshape, Conv, BatchNormalization, AveragePool; Add/Sub of two
// values and Concat) folds into one of the affine maps; a MaxPool that follows
// a ReLU is kept as its own step. A value read after a ReLU layer (a skip
// connection) is carried through that layer as extra rows whose ReLU is exact:
// rows >= 0 by construction (AffineLayer::nonneg) or, on the model input, x as
// relu(x) - relu(-x).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::verify {

/// The structure of a layer that is exactly one 2-D convolution (ONNX Conv, or an AveragePool
/// with equal weights, NCHW, batch 1): W[(m, oy, ox), (c, iy, ix)] = kernel[m, c - g0, ky, kx] for
/// every in-bounds tap (iy = oy * stride - pad + ky * dilation, likewise x; g0 the group's first
/// channel) and 0 elsewhere. The loader keeps it only after checking W against it entry by entry
/// (conv_products.cpp); the bound products then run as dense GEMMs over im2col columns.
struct ConvGeometry {
  int64_t channels = 0, height = 0, width = 0;       ///< input C, H, W
  int64_t maps = 0, out_height = 0, out_width = 0;   ///< output M, OH, OW
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  int64_t dilation_h = 1, dilation_w = 1, groups = 1;
  std::vector<double> kernel;      ///< [M, C / groups, KH, KW]
  std::vector<double> abs_kernel;  ///< |kernel|
  std::vector<int32_t> tap_index;  ///< [groups, C/groups KH KW, OH OW]: input index of each tap, C H W = padding
  /// In a layer with more than the convolution (a skip connection): the convolution gives rows
  /// [0, M OH OW) from inputs [in_offset, in_offset + C H W); every other non-zero of W (carried
  /// rows, a shortcut added to the convolution's rows) is in the compressed rows `rest_*` (row
  /// starts [layer out + 1], column indices, values; empty when W is the convolution alone).
  int64_t in_offset = 0;
  std::vector<int> rest_row, rest_col;
  std::vector<double> rest_val;
};

/// One affine map y = W x + b; W is row-major [out, in].
struct AffineLayer {
  int64_t in = 0;
  int64_t out = 0;
  std::vector<double> weight;
  std::vector<double> bias;
  /// Compressed-row copy of W (row starts [out+1], column indices, values),
  /// kept when W is sparse (convolutions); empty for dense layers.
  std::vector<int> csr_row, csr_col;
  std::vector<double> csr_val;
  /// Set when W is exactly a convolution (checked at load); the products then use it.
  std::shared_ptr<const ConvGeometry> conv;
  /// Per output row (empty: none): the row is >= 0 for every input by construction (non-negative
  /// weights on ReLU outputs and a non-negative bias: a skip connection's value carried through
  /// a ReLU layer), so its ReLU is the identity; the bounds clamp its lower bound at 0.
  std::vector<char> nonneg;
  /// Per output row (empty: none): j + 1 when the row carries model input j as relu(x_j) (a skip
  /// connection that reads the input), -(j + 1) as relu(-x_j), 0 otherwise; later layers' rows that copy
  /// such an entry keep its tag. specialise_input_copies uses them.
  std::vector<int64_t> input_copy;

  /// True when the compressed-row copy exists.
  bool sparse() const { return !csr_row.empty(); }
  /// Build the compressed-row copy when at most `max_density` of W is non-zero.
  void compress(double max_density = 0.25);
  /// W x + b.
  std::vector<double> apply(const std::vector<double>& x) const;
  /// W^T g (the vector-Jacobian product of the layer).
  std::vector<double> apply_transpose(const std::vector<double>& g) const;
};

/// Max pooling applied to a hidden layer's ReLU outputs: output i is the max of
/// the ReLU outputs listed in windows[i] (padding cells, -inf in ONNX, are left out).
struct MaxPool {
  int64_t in = 0;                              ///< ReLU outputs pooled (the layer's width)
  std::vector<std::vector<int64_t>> windows;   ///< per output, indices into the ReLU outputs
  std::string node;                            ///< ONNX node name, for messages

  int64_t out() const { return int64_t(windows.size()); }
  /// max over each window of r.
  std::vector<double> apply(const std::vector<double>& r) const;
};

/// y = A_{L-1}(act_{L-2}(A_{L-2}(... act_0(A_0 x)))) with act_k = pool_k o relu
/// (pool_k the identity when pools[k] is empty): ReLU after every layer but the last.
struct Network {
  std::vector<AffineLayer> layers;
  /// Max pooling after hidden layer k's ReLU (empty vector or entry: none).
  std::vector<std::optional<MaxPool>> pools;
  engine::Shape input_shape;  ///< model input shape with batch 1 (for reports and the engine check)
  /// Where the large bound-propagation products (Lambda W in CROWN / alpha-CROWN) run: Cpu, or Cuda /
  /// Auto for the GPU when this build has CUDA and a device is present (else the CPU); docs/verify.md.
  engine::Device product_device = engine::Device::Cpu;
  /// Device copies of the weights for product_device (made on first use by the bounds code; opaque).
  mutable std::shared_ptr<void> product_state;

  /// The pooling after hidden layer k's ReLU, or nullptr.
  const MaxPool* pool(size_t k) const { return k < pools.size() && pools[k] ? &*pools[k] : nullptr; }
  /// True when some hidden layer is max-pooled.
  bool has_pooling() const;
  /// a_k = pool_k(relu(z_k)): the input of layer k + 1 from layer k's pre-activations.
  std::vector<double> activate(size_t k, const std::vector<double>& z) const;

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

/// A skip connection that reads the model input carries each input x_j it reads as relu(x_j) and
/// relu(-x_j) (AffineLayer::input_copy): exact, but its relaxation is loose where the box lets x_j
/// change sign. Given a lower bound lo_j of x_j on every box the caller will bound (finite entries
/// only), this returns the same function on those boxes with the pair as relu(x_j - lo_j) = x_j - lo_j
/// (a row >= 0, flagged nonneg) and 0, and every row that reads the pair compensated in its bias:
/// no unstable ReLU left for the copies. Returns nullptr when the network has no such copies.
std::shared_ptr<const Network> specialise_input_copies(const Network& net, const std::vector<double>& lower);

/// Convert an engine graph (one float input, one output) into a Network.
/// Throws UnsupportedError "verify: unsupported op 'X' at node 'Y'" for ops or
/// wirings outside the supported set (the caller reports that as `unknown`).
Network network_from_graph(const engine::Graph& graph);
/// load_onnx + network_from_graph.
Network load_network(const std::string& onnx_path);

}  // namespace mlaudit::verify
