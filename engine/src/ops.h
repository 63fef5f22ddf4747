#pragma once
// Internal op table: forward and vector-Jacobian product per ONNX op (float32,
// with int64 for shape arithmetic). Used by the CPU backend.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine::detail {

/// Inputs of a node: nullptr for an omitted optional input.
using Inputs = std::vector<const Tensor*>;

/// Everything a kernel may need besides its tensors.
struct OpContext {
  const Node& node;
  int64_t opset;
};

/// Forward: fills `outputs` (already sized to node.outputs.size()).
using ForwardFn = void (*)(const OpContext&, const Inputs& inputs, std::vector<Tensor>& outputs);
/// Backward: given inputs, forward outputs and output gradients (nullptr = zero),
/// fills grad_inputs[k] for every k with need[k] (shape of input k).
using BackwardFn = void (*)(const OpContext&, const Inputs& inputs, const Inputs& outputs, const Inputs& grad_outputs,
                            const std::vector<bool>& need, std::vector<Tensor>& grad_inputs);

struct OpDef {
  ForwardFn forward = nullptr;
  BackwardFn backward = nullptr;  ///< nullptr: no gradient flows (shape ops on int64, Shape, Sign...)
  /// False when the op's float outputs are not differentiable functions of its float inputs
  /// in the engine (tree ensembles, SVMs, label encoders...): commands that need input
  /// gradients refuse a model whose gradient path crosses such a node, naming it.
  bool differentiable = true;
  /// Oldest schema version (since-version) of the op this implementation handles; a node
  /// whose model opset resolves to an older version is refused by name.
  int64_t min_version = 1;
  /// Schema versions (since-versions) at or above min_version whose semantics this
  /// implementation does not handle; a node resolved to one of them is refused by name.
  std::vector<int64_t> unsupported_versions = {};
};

/// The default ONNX domain is spelled "" (ONNX also accepts "ai.onnx"); ONNX-ML is "ai.onnx.ml".
inline constexpr const char* kMlDomain = "ai.onnx.ml";
/// "" for "ai.onnx" (the default domain's two spellings), else the domain unchanged.
std::string canonical_domain(const std::string& domain);

/// Op table lookup (nullptr when unsupported): default domain, or the given domain.
const OpDef* find_op(const std::string& op_type);
const OpDef* find_op(const std::string& domain, const std::string& op_type);
/// Op table lookup for a node (its domain and op type).
const OpDef* find_op(const Node& node);
/// Registration, one call per op (called from each ops_*.cpp registrar function).
void register_op(const std::string& op_type, OpDef def);
void register_op(const std::string& domain, const std::string& op_type, OpDef def);
/// Every registered op: (domain, op type) -> definition, sorted.
std::vector<std::pair<std::pair<std::string, std::string>, const OpDef*>> registered_ops();
void register_elementwise_ops();
void register_nn_ops();
void register_shape_ops();
void register_activation_ops();  ///< ops_activation.cpp: further element-wise activations, logic, comparisons
void register_index_ops();       ///< ops_index.cpp: split, gather/scatter, tile/expand, top-k, einsum...
void register_norm_ops();        ///< ops_norm.cpp: normalisation layers, ConvTranspose, Resize
void register_reduce_ops();      ///< ops_reduce.cpp: ReduceMax/Min/Prod/L1/L2/LogSumExp..., ArgMax/ArgMin
void register_ml_ops();          ///< ops_ml.cpp: the ai.onnx.ml domain
void register_rnn_ops();         ///< ops_rnn.cpp: RNN, GRU, LSTM
void register_quant_ops();       ///< ops_quant.cpp: (De)QuantizeLinear, integer MatMul/Conv, ScatterElements...

/// f(begin, count) over [0, n) in blocks of 16,384 floats (an array kernel's unit: it stays in
/// cache), the blocks over threads when n exceeds 262,144. Each element is computed alone, so
/// the values do not depend on the split.
void for_float_blocks(int64_t n, const std::function<void(int64_t, int64_t)>& f);

/// The gradient of input 0 of a float unary op by an array kernel(x, g, dx, count) over
/// for_float_blocks (nothing when the input needs none, has no gradient or is not float).
void unary_grad_array(const Inputs& in, const Inputs& g, const std::vector<bool>& need, std::vector<Tensor>& gin,
                      void (*kernel)(const float* x, const float* g, float* dx, int64_t count));

/// Throws InputError naming the node.
[[noreturn]] void op_error(const OpContext& ctx, const std::string& message);
/// Input k, which must be present.
const Tensor& input(const OpContext& ctx, const Inputs& in, size_t k);
/// Input k as float32 (throws when it is not float).
const Tensor& float_input(const OpContext& ctx, const Inputs& in, size_t k);
/// Normalise a possibly negative axis against a rank: an axis of a tensor, so a scalar (rank 0)
/// has none (callers index shape()[axis]; allowing axis 0 on a scalar let Squeeze read past an
/// empty shape, found by fuzz/fuzz_onnx).
int64_t norm_axis(const OpContext& ctx, int64_t axis, int64_t rank);

/// Pads of one spatial axis: explicit, or resolved from auto_pad (VALID, SAME_UPPER, SAME_LOWER).
void resolve_pads(const OpContext& ctx, int64_t in, int64_t k, int64_t s, int64_t d, int64_t& pad_begin,
                  int64_t& pad_end, int64_t explicit_begin, int64_t explicit_end);

/// Resolved geometry of a 2-D convolution or pooling window over NCHW input: sizes, strides,
/// dilations and begin/end pads (auto_pad applied), output size. Shared by the CPU ops and
/// the CUDA executor so both validate and size a node the same way.
struct Window2d {
  int64_t n, c, h, w, oc, kh, kw, oh, ow, group;
  int64_t sh, sw, dh, dw, pt, pl, pb, pr;
  bool count_include_pad = false;  ///< AveragePool only
  int64_t spatial_rank = 2;        ///< 1: an NCW node run as NCHW with H = 1 (kh = sh = dh = 1, no H pads)
};
/// Conv with input shape x and weight shape w (kernel from the weights; group checked).
Window2d conv_window(const OpContext& ctx, const Shape& x, const Shape& w);
/// MaxPool / AveragePool with input shape x (kernel_shape, ceil_mode, count_include_pad); oc = c.
Window2d pool_window(const OpContext& ctx, const Shape& x);
/// conv_window that also takes 1-D convolution (NCW input, OIW weights; 1-entry kernel_shape,
/// strides and dilations, 2-entry pads) as 2-D with H = 1.
Window2d conv_window_1d_or_2d(const OpContext& ctx, const Shape& x, const Shape& w);
/// pool_window that also takes 1-D pooling (NCW input) as 2-D with H = 1.
Window2d pool_window_1d_or_2d(const OpContext& ctx, const Shape& x);
/// Output shape of a window op: [N, OC, OH, OW], or [N, OC, OW] when spatial_rank is 1.
Shape window_output_shape(const Window2d& g);

/// MatMul with numpy semantics: 1-D operands promoted, batch dims broadcast. Shared by the
/// CPU op and the CUDA executor.
struct MatMulPlan {
  Shape out_shape;
  Shape batch;        ///< broadcast batch dims
  int64_t m, k, n;
  bool a_vec, b_vec;  ///< 1-D operands
  Shape a_batch, b_batch;
};
MatMulPlan matmul_plan(const OpContext& ctx, const Shape& as, const Shape& bs);
/// Offset (in matrices) of batch index `bi` of the broadcast batch into an operand's batch.
int64_t batch_offset(int64_t bi, const Shape& batch, const Shape& own);

/// Shape of numpy-style broadcasting of a and b (throws with the node named).
Shape broadcast_shape(const OpContext& ctx, const Shape& a, const Shape& b);
/// Sum `grad` (of shape `from`) down to `to` (reverse of broadcasting).
Tensor reduce_to_shape(const Tensor& grad, const Shape& to);

/// The Sigmoid op's value at x (out of line: also called by code built for other instruction sets).
float sigmoid_value(float x);
/// The Softmax (or, with log, LogSoftmax) op along one line of `len` values `stride` apart:
/// y from x (they may be the same memory).
void softmax_line(const float* x, float* y, int64_t len, int64_t stride, bool log);

/// Row-major GEMM C = alpha*op(A)*op(B) + beta*C via oneDNN's sgemm.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace mlaudit::engine::detail
