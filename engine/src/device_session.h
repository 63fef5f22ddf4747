#pragma once
// Hook for device backends that keep weights and activations in device memory:
// a Session built for such a device forwards run()/gradient() to a DeviceSession.
// Plain C++ only: no CUDA types here (ONNX Runtime's clip_impl.h pattern).
#include <memory>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

class DeviceSession {
 public:
  virtual ~DeviceSession() = default;
  /// "cuda".
  virtual std::string name() const = 0;
  /// Forward: host tensors in (one per graph input), host tensors out.
  virtual std::vector<Tensor> run(const std::vector<Tensor>& inputs) const = 0;
  /// VJP as Session::gradient: seeds per output (empty = zero), gradients per input.
  virtual std::vector<Tensor> gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                                       std::vector<Tensor>* outputs) const = 0;
};

/// Op types the CUDA backend runs (forward and backward); empty without a CUDA build.
std::vector<std::string> cuda_supported_ops();
/// A CUDA session for the graph, or nullptr when the build has no CUDA backend or
/// no device is present. Throws UnsupportedError naming the first op it cannot run.
std::unique_ptr<DeviceSession> make_cuda_session(const Graph& graph);

}  // namespace mlaudit::engine
