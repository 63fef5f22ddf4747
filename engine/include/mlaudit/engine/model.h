#pragma once
// The narrow interface that attacks, attributions and the verifier's falsifier
// use: a differentiable map from one input batch to one output batch.
#include <functional>
#include <vector>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

/// Given the model output (e.g. logits [N,C]), returns d(scalar)/d(output), same shape.
using SeedFn = std::function<Tensor(const Tensor& output)>;

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
