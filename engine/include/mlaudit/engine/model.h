#pragma once
// The narrow interface that attacks, attributions and the verifier's falsifier
// use: a differentiable map from one input batch to one output batch.
#include <cstdint>
#include <functional>
#include <vector>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

class Session;

/// Given the model output (e.g. logits [N,C]), returns d(scalar)/d(output), same shape.
using SeedFn = std::function<Tensor(const Tensor& output)>;

/// Rows that mix one input row x with other rows b_k, group by group: the synthetic rows of
/// coalition methods (KernelSHAP takes a coalition's feature groups from x and the rest from a
/// background row).
struct Mixtures {
  const float* x = nullptr;  ///< one input row (row-size floats)
  /// Features of each group, as flat indices into a row (groups[q]: group q).
  const std::vector<std::vector<int64_t>>* groups = nullptr;
  std::vector<const float*> rows;  ///< the rows b_k
  /// Per b_k, the groups to mix (bit q: groups[q]; at most 24 bits set). Its 2^n patterns
  /// (n set bits): pattern p takes the group of the i-th set bit from x where bit i of p is
  /// set, and from b_k elsewhere (p = 0: b_k itself; all ones: x on every mixed group).
  std::vector<uint64_t> masks;
};
/// Model outputs on every pattern of a batch of Mixtures.
struct MixtureOutputs {
  int64_t outputs = 0;        ///< values per row (C)
  std::vector<float> values;  ///< [rows][outputs]
  /// offsets[i][k]: the row of pattern 0 of item i's row b_k; pattern p is row offsets[i][k] + p.
  std::vector<std::vector<int64_t>> offsets;
};

/// Checks a batch of Mixtures against rows of `row_size` values: one mask per row, x and
/// groups given, group features inside the row, masks naming given groups only and at most
/// 24 of them. Throws InputError naming the problem.
void check_mixtures(const std::vector<Mixtures>& batch, int64_t row_size);

/// A differentiable model with one input and one output, batch along axis 0.
/// Implementations are safe to call from several threads at once.
class Model {
 public:
  virtual ~Model() = default;
  /// Input shape with -1 for dynamic dims (batch first).
  virtual Shape input_shape() const = 0;
  /// Output for a batch of inputs.
  virtual Tensor forward(const Tensor& x) const = 0;
  /// Vector-Jacobian product: seed(output)^T * d output / d x, one forward and
  /// one backward pass. When `output` is given it receives the forward output.
  virtual Tensor input_gradient(const Tensor& x, const SeedFn& seed, Tensor* output = nullptr) const = 0;
  /// Outputs (which must be [N,C]) on every pattern of every item of `batch`, rows of
  /// `row_shape` (the input shape without its batch axis). The rows of patterns 0 and all-ones
  /// are left unset (zero) unless `ends` is true: callers that know f(b_k) and f(x) skip them.
  /// This default builds the rows and runs forward() on at most `max_rows` rows per call; a
  /// model may evaluate the patterns faster (Session does for dense chains: the first layer's
  /// pre-activation of a pattern is b_k's plus the mixed groups' deltas), with values equal to
  /// forward()'s within float rounding.
  virtual void forward_mixtures(const std::vector<Mixtures>& batch, const Shape& row_shape, int64_t max_rows,
                                bool ends, MixtureOutputs& out) const;
  /// The engine Session holding this model's weights and activations on a device (CUDA), when
  /// it is one: the modules' fused device loops (robustness/device.h, explain/device.h) run
  /// through it via engine::cuda::device_program (engine/device.h). nullptr otherwise (a CPU
  /// session, or any other Model), and callers then run their host loops.
  virtual const Session* device_resident() const { return nullptr; }
};

/// Gradient of output[i, classes[i]] w.r.t. x[i] for every sample.
Tensor logit_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& classes,
                      Tensor* logits = nullptr);
/// Gradient of the summed cross-entropy loss (softmax of the output) w.r.t. x;
/// per-sample losses in `losses` when given.
Tensor cross_entropy_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& labels,
                              Tensor* logits = nullptr, std::vector<float>* losses = nullptr);
/// Argmax along the last axis of a [N,C] tensor.
std::vector<int64_t> argmax_rows(const Tensor& logits);
/// Row-wise softmax of a [N,C] tensor.
Tensor softmax_rows(const Tensor& logits);

}  // namespace mlaudit::engine
