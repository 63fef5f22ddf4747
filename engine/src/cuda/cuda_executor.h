#pragma once
// The CUDA device executor (cuda_session.cpp), the CUDA backend's graph compute (backend.h):
// mirrors the CPU Executor of session.cpp (same plan, requires-grad marking, free after last
// use, reverse walk for the VJP) with float32 values resident in pooled device memory and
// int64/bool shape arithmetic on the host; each node runs through the CUDA op table
// (op_table.h) or the per-op CPU fallback. Internal to engine/src/cuda/; plain C++.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend.h"
#include "device_api.h"
#include "elementwise_impl.h"
#include "plan.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/engine/graph.h"

namespace mlaudit::engine::cuda {

/// A value of the graph: float32 data on the device (buf), other dtypes on the host (host).
struct DValue {
  Shape shape;
  DType dtype = DType::Float32;
  BufferPtr buf;
  Tensor host;
  bool empty() const { return !buf && host.empty(); }
  bool on_device() const { return static_cast<bool>(buf); }
  float* f() const { return buf->f32(); }
  int64_t numel() const { return shape_numel(shape); }
};

/// A fresh (uninitialised) device float tensor of the shape.
DValue device_tensor(const Shape& shape);
/// Zero-filled device float tensor.
DValue device_zeros(const Shape& shape, const Stream& s);
/// Upload a host tensor (float32 goes to the device; other dtypes stay on the host).
DValue to_device(const Tensor& t, const Stream& s);
/// Download a value to a host tensor.
Tensor to_host(const DValue& v, const Stream& s);

/// The executor is also the public device API's Program (mlaudit/engine/device.h): the modules'
/// device loops run forward and input gradient on it through device_program(session).
class CudaExecutor : public DeviceSession, public Program {
 public:
  explicit CudaExecutor(const Graph& graph);
  ~CudaExecutor() override;
  std::string name() const override { return "cuda"; }
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const override;
  std::vector<Tensor> gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                               std::vector<Tensor>* outputs) const override;

  // Program (device_program.cpp): single input, first output, values kept in a Tape.
  DeviceArray forward(const DeviceArray& x, Tape* tape = nullptr) const override;
  DeviceArray input_gradient(const Tape& tape, const DeviceArray& seed) const override;
  int64_t fitting_batch(const Shape& sample, int64_t cap) const override;

  // Device-resident entry points (the Program above and the tests). The caller holds lock().
  /// Forward on device values; keep_all keeps every value for a following backward.
  std::vector<DValue> forward_values(const std::vector<DValue>& inputs, bool keep_all) const;
  /// Graph outputs from a forward's values.
  std::vector<DValue> outputs_of(const std::vector<DValue>& values) const;
  /// VJP on device: seeds per output (empty = zero) -> gradient per graph input.
  std::vector<DValue> backward_values(const std::vector<DValue>& values, const std::vector<DValue>& seeds) const;
  const Stream& stream() const override { return *stream_; }
  std::mutex& lock() const override { return mu_; }
  const Graph& graph() const override { return g_; }

  // Services for the op table's forwards and VJPs (op_table.h, <family>.cpp).
  /// Host value of a (small) input: the initializer when the slot is a constant, else a download.
  Tensor host_value(size_t node, size_t k, const DValue& v) const;
  /// CPU op run on host placeholders (zero tensors for device inputs), cached by input shapes and host contents.
  const std::vector<Tensor>& host_eval(size_t node, const std::vector<const DValue*>& in) const;
  /// Index maps of a data-movement op: for device input k, map[i] = source element of output i (-1: none).
  const BufferPtr& index_map(size_t node, const std::vector<const DValue*>& in, size_t k, Shape* out_shape) const;
  /// Runs Conv node i with the fused epilogue (0: none, 1: ReLU, 2: ReLU + 2x2 max pool, 3: as 2 and the
  /// full-resolution ReLU output into *full); the result has the shape of the last fused node's output.
  DValue conv_fused(size_t i, const std::vector<const DValue*>& in, int epilogue, DValue* full = nullptr) const;
  /// Whether input k of the node is a constant (an initializer or a Constant node's output).
  bool constant_input(size_t node, size_t k) const;
  /// Device buffers cached per node under a key (index maps, BatchNormalization's folded coefficients).
  std::map<std::string, BufferPtr>& buffer_cache() const { return map_cache_; }

 private:
  using Plan = ExecutionPlan;
  void make_plan();
  // Nodes without a CUDA kernel (no op table entry, or its support check fails): the CPU
  // backend's forward / VJP on downloaded values.
  void host_fallback_forward(size_t i, const std::vector<const DValue*>& in, std::vector<DValue>& out) const;
  void host_fallback_backward(size_t i, const std::vector<const DValue*>& in, const std::vector<const DValue*>& out,
                              const std::vector<const DValue*>& gout, const std::vector<bool>& need,
                              std::vector<DValue>& gin) const;
  /// One node through the op table (or the fallback).
  void forward_node(size_t i, const std::vector<const DValue*>& in, std::vector<DValue>& out) const;
  void backward_node(size_t i, const std::vector<const DValue*>& in, const std::vector<const DValue*>& out,
                     const std::vector<const DValue*>& gout, const std::vector<bool>& need, std::vector<DValue>& gin) const;
  std::string cache_key(size_t node, const std::vector<const DValue*>& in, const std::string& tag) const;

  /// Conv -> Relu (-> MaxPool 2x2/2) chains whose intermediate values have no other reader:
  /// fuse_relu_[conv] is the Relu node (or -1), fuse_pool_[conv] the MaxPool node (or -1).
  void find_fusions();
  /// Whether Conv node i's output has even height and width (the kept-values pooled fusion needs it).
  bool conv_pool_even(size_t i, const std::vector<const DValue*>& in) const;

  Graph g_;
  Plan plan_;
  std::vector<int> fuse_relu_, fuse_pool_;
  std::vector<int> pool_conv_;  ///< for a fused MaxPool node, its Conv node (backward fusion); -1 otherwise
  std::unique_ptr<Stream> stream_;
  std::vector<DValue> constants_;  // per slot; empty for non-constants
  mutable std::mutex mu_;
  mutable std::map<std::string, std::vector<Tensor>> host_cache_;
  mutable std::map<std::string, BufferPtr> map_cache_;
  mutable std::map<std::string, Shape> map_shape_cache_;
};

/// op(a, b) with numpy broadcasting (up to 6-D); throws InputError when the shapes do not broadcast.
DValue binary(BinaryOp op, const DValue& a, const DValue& b, const Stream& s);
/// x summed down to the broadcast-compatible shape `to`, times `scale` (a new buffer).
DValue sum_to_shape(const DValue& x, const Shape& to, const Stream& s, double scale = 1.0);

}  // namespace mlaudit::engine::cuda
