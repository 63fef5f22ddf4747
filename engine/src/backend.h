#pragma once
// The narrow backend table (after ggml's ggml-backend-impl.h): a backend says
// which ops it supports and runs one node's forward or vector-Jacobian product.
// Public engine headers only forward-declare it; CUDA types never leak out.
#include <memory>
#include <string>

#include "ops.h"

namespace mlaudit::engine {

class Backend {
 public:
  virtual ~Backend() = default;
  /// "cpu", "cuda".
  virtual std::string name() const = 0;
  /// Whether this backend can run (forward and backward) the node.
  virtual bool supports_op(const Node& node) const = 0;
  /// Forward of one node.
  virtual void forward(const detail::OpContext& ctx, const detail::Inputs& inputs, std::vector<Tensor>& outputs) const = 0;
  /// Vector-Jacobian product of one node (see detail::BackwardFn).
  virtual void backward(const detail::OpContext& ctx, const detail::Inputs& inputs, const detail::Inputs& outputs,
                        const detail::Inputs& grad_outputs, const std::vector<bool>& need,
                        std::vector<Tensor>& grad_inputs) const = 0;
};

/// The CPU backend (oneDNN for Conv and GEMM, OpenMP loops elsewhere).
std::unique_ptr<Backend> make_cpu_backend();

/// Number of CUDA devices visible (0 when the build has no CUDA backend or no GPU is present).
int cuda_device_count();

}  // namespace mlaudit::engine
