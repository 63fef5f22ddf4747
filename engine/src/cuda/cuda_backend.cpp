// The CUDA backend: the backend contract (backend.h) over the CUDA op table (op_table.h); its
// graph compute is the device executor (cuda_executor.h). The engine's CUDA entry points
// (cuda_supported_ops, make_cuda_session, make_cuda_backend) are thin forwards to it.
#include <algorithm>

#include "backend.h"
#include "op_table.h"

namespace mlaudit::engine {

namespace cuda {

const CudaOpTable& op_table() {
  static const CudaOpTable table = [] {
    CudaOpTable t;
    register_elementwise_ops(t);
    register_gemm_ops(t);
    register_conv_ops(t);
    register_pool_ops(t);
    register_norm_ops(t);
    register_reduction_ops(t);
    register_index_map_ops(t);
    register_shape_ops(t);
    return t;
  }();
  return table;
}

const CudaOpDef* find_kernel(const Node& node, int64_t opset, const Values* in) {
  if (!node.domain.empty()) return nullptr;
  auto it = op_table().find(node.op_type);
  if (it == op_table().end()) return nullptr;
  if (it->second.supported && !it->second.supported(node, opset, in)) return nullptr;
  return &it->second;
}

namespace {

// The executor for the graph when a device is present (nodes without a CUDA kernel run on the
// CPU, one by one: CudaExecutor::host_fallback_*).
std::unique_ptr<DeviceSession> device_session(const Graph& graph) {
  if (device_count() == 0) return nullptr;
  return std::make_unique<CudaExecutor>(graph);
}

class CudaBackend final : public Backend {
 public:
  std::string name() const override { return "cuda"; }
  std::vector<BackendOp> ops() const override {
    std::vector<BackendOp> out;
    for (const auto& [op, def] : op_table()) out.emplace_back("", op);
    return out;
  }
  bool supports_op(const Node& node, int64_t opset) const override { return find_kernel(node, opset, nullptr) != nullptr; }
  std::unique_ptr<BackendGraph> compute(const Graph& graph) const override { return device_session(graph); }
};

}  // namespace

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }

std::vector<std::string> cuda_supported_ops() {
  std::vector<std::string> ops;
  for (const auto& [domain, op] : cuda::CudaBackend().ops()) ops.push_back(op);
  return ops;
}

std::unique_ptr<DeviceSession> make_cuda_session(const Graph& graph) { return cuda::device_session(graph); }

}  // namespace mlaudit::engine
