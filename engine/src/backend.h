#pragma once
// The backend contract (after ggml's ggml-backend-impl.h), implemented by the CPU backend
// (cpu/cpu_backend.cpp over the OpDef table of ops.h) and the CUDA backend (cuda/cuda_backend.cpp
// over its own op table, cuda/op_table.h). A backend
// - names itself ("cpu", "cuda");
// - lists its op table (ops(): what `mlaudit info --ops`, supported_ops() and
//   cuda_supported_ops() read, never a hand-typed list);
// - says whether its own kernel runs a node at the model's opset (supports_op: op table entry,
//   schema versions, attribute limits);
// - computes whole graphs (compute(): the graph bound to the backend, weights resident where the
//   backend keeps them; run() is the forward, gradient() the VJP).
// Plain C++ only: public engine headers only forward-declare these types, and no CUDA type
// appears here (ONNX Runtime's clip_impl.h pattern).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

/// A graph bound to a backend (ggml's graph_compute): host tensors in, host tensors out.
class BackendGraph {
 public:
  virtual ~BackendGraph() = default;
  /// The backend's name ("cpu", "cuda").
  virtual std::string name() const = 0;
  /// Forward: host tensors in (one per graph input), host tensors out (one per graph output).
  virtual std::vector<Tensor> run(const std::vector<Tensor>& inputs) const = 0;
  /// VJP as Session::gradient: seeds per output (empty = zero), gradients per input.
  virtual std::vector<Tensor> gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                                       std::vector<Tensor>* outputs) const = 0;
};
/// A BackendGraph whose weights and values stay in device memory (the CUDA executor): what a
/// Session built for a device forwards run() / gradient() to (Session::device_session()).
class DeviceSession : public BackendGraph {};

/// One entry of a backend's op table: (domain, op type); the default domain is "".
using BackendOp = std::pair<std::string, std::string>;

class Backend {
 public:
  virtual ~Backend() = default;
  /// "cpu", "cuda".
  virtual std::string name() const = 0;
  /// The backend's op table, sorted: one entry per op it has a kernel for.
  virtual std::vector<BackendOp> ops() const = 0;
  /// Whether the backend's own kernel runs the node (forward and backward) at the model's opset
  /// (the ai.onnx opset, or ai.onnx.ml's for that domain). Shape-dependent limits (the CUDA
  /// kernels' 2-D convolution and pooling) are decided per run, with the shapes.
  virtual bool supports_op(const Node& node, int64_t opset) const = 0;
  /// The graph bound to this backend, or nullptr when the backend cannot run here (no device).
  /// Throws as the backend's executor does (UnsupportedError, InputError).
  virtual std::unique_ptr<BackendGraph> compute(const Graph& graph) const = 0;
};

/// The CPU backend (oneDNN for Conv and GEMM, OpenMP loops elsewhere).
std::unique_ptr<Backend> make_cpu_backend();
/// The CUDA backend (its op table is there in every CUDA build; compute() needs a device), or
/// nullptr when the build has no CUDA backend.
std::unique_ptr<Backend> make_cuda_backend();

/// Number of CUDA devices visible (0 when the build has no CUDA backend or no GPU is present).
int cuda_device_count();
/// Op types the CUDA backend runs (forward and backward): its op table's default-domain keys;
/// empty without a CUDA build. Also declared in mlaudit/engine/device.h.
std::vector<std::string> cuda_supported_ops();
/// make_cuda_backend()->compute(graph): a CUDA session for the graph, or nullptr when the build
/// has no CUDA backend or no device is present. Nodes without a CUDA kernel run through the
/// per-op CPU fallback (docs/dev/cuda.md).
std::unique_ptr<DeviceSession> make_cuda_session(const Graph& graph);

}  // namespace mlaudit::engine
