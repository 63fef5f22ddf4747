#pragma once
// The CUDA backend's op table, after the CPU's OpDef table (ops.h): one entry per op type of the
// default domain, holding the op's device forward, its device VJP and its support check (the
// schema versions and attributes the device kernels handle). The executor (cuda_session.cpp)
// dispatches every node through it; a node without an entry, or whose check fails, runs through
// the per-op CPU fallback. The table is built from one registrar per op family (<family>.cpp,
// whose kernels are <family>_impl.h / <family>_impl.cu), and its keys are the backend's op list
// (CudaBackend::ops(), cuda_supported_ops(), `mlaudit info --ops`). Plain C++.
#include <map>
#include <string>
#include <vector>

#include "cuda_executor.h"
#include "ops.h"

namespace mlaudit::engine::cuda {

/// A node's values: nullptr for an omitted input (or an absent gradient).
using Values = std::vector<const DValue*>;

/// What an op's forward / backward gets besides its values.
struct OpCall {
  const CudaExecutor& ex;         ///< the executor: host values of small inputs, caches, fused conv
  size_t node;                    ///< index of the node in ex.graph()
  const detail::OpContext& ctx;   ///< the node and the model's opset
  const Stream& stream;           ///< the executor's stream (kernels take stream.get())
};

/// Device forward: fills `out` (sized to the node's outputs). Called when at least one input is on
/// the device; a node whose inputs are all host values (int64/bool shape arithmetic) runs the CPU op.
using CudaForwardFn = void (*)(const OpCall& c, const Values& in, std::vector<DValue>& out);
/// Device VJP: gout[0] is present; fills gin[k] for every k with need[k] (a shared buffer may alias).
using CudaBackwardFn = void (*)(const OpCall& c, const Values& in, const Values& out, const Values& gout,
                                const std::vector<bool>& need, std::vector<DValue>& gin);
/// Whether the device kernels run the node at the model's opset (schema versions, attributes);
/// with `in`, also for these input values (shapes). in == nullptr: shapes not known (the answer
/// for the node as such, CudaBackend::supports_op).
using CudaSupportFn = bool (*)(const Node& node, int64_t opset, const Values* in);

struct CudaOpDef {
  CudaForwardFn forward = nullptr;    ///< nullptr: no device forward (Constant: evaluated once at construction)
  CudaBackwardFn backward = nullptr;  ///< nullptr: no gradient flows (Shape, Constant)
  CudaSupportFn supported = nullptr;  ///< nullptr: every schema version and attribute of the op
};

/// Op type (default domain) -> entry.
using CudaOpTable = std::map<std::string, CudaOpDef>;
/// The table (built once from the registrars below).
const CudaOpTable& op_table();
/// The entry that runs the node on the device (default domain, entry present, its check passing
/// for `in`), else nullptr: the node takes the per-op CPU fallback.
const CudaOpDef* find_kernel(const Node& node, int64_t opset, const Values* in);

// Registrars, one per op family.
void register_elementwise_ops(CudaOpTable& t);  ///< elementwise.cpp: unary activations, Add..Pow, Sum/Min/Max
void register_gemm_ops(CudaOpTable& t);         ///< gemm.cpp: Gemm, MatMul (cuBLAS)
void register_conv_ops(CudaOpTable& t);         ///< conv.cpp: Conv
void register_pool_ops(CudaOpTable& t);         ///< pool.cpp: MaxPool, AveragePool, GlobalAveragePool
void register_norm_ops(CudaOpTable& t);         ///< norm.cpp: BatchNormalization
void register_reduction_ops(CudaOpTable& t);    ///< reduction.cpp: Softmax, LogSoftmax, ReduceMean, ReduceSum
void register_index_map_ops(CudaOpTable& t);    ///< index_map.cpp: Transpose, Slice, Gather, Pad, Concat
void register_shape_ops(CudaOpTable& t);        ///< shape.cpp: Identity, Dropout, Cast, Flatten, Reshape, Squeeze, Unsqueeze, Shape, Constant

}  // namespace mlaudit::engine::cuda
