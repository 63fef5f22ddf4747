#pragma once
// Graph rewrites the CPU executor applies to its own copy of a graph at load (the Session's
// graph, which the CUDA executor, the verifier and the reports read, is left as loaded).
#include "mlaudit/engine/graph.h"

namespace mlaudit::engine::detail {

/// Conv attribute set by fuse_cpu_graph: the node also applies Relu (x > 0 ? x : 0) and its
/// output is the Relu's; its backward masks the output gradient by the output's sign first.
inline constexpr const char* kFusedReluAttribute = "mlaudit.fused_relu";

/// Conv attribute set by fuse_cpu_inference_graph: the node's output is that of the MaxPool
/// (kernel 2x2, stride 2, no padding, floor, dilation 1, no indices output) that read it.
/// Forward only: the executor runs such a graph only when it keeps no values for a backward.
inline constexpr const char* kFusedMaxPoolAttribute = "mlaudit.fused_maxpool2x2";

/// Conv, Gemm and MatMul attribute set by fuse_cpu_graph when the weight input (input 1) is a
/// graph initializer: its storage is the same, unchanged tensor on every run, so a layout
/// conversion (a oneDNN reorder, a GEMM packing) of it may be kept.
inline constexpr const char* kConstWeightsAttribute = "mlaudit.const_weights";

/// Conv attribute set by fuse_cpu_inference_graph: the node runs in a forward-only graph (no
/// backward reads its primitive; oneDNN may pick its inference kernels and post-ops).
inline constexpr const char* kInferenceAttribute = "mlaudit.inference";

/// Conv attribute set by fuse_cpu_inference_graph: floats [lo, hi] of the Clip that read the
/// node's output (after its fused Relu, if any); the node's output is the Clip's.
inline constexpr const char* kFusedClipAttribute = "mlaudit.fused_clip";

/// Conv attribute set by fuse_cpu_inference_graph: run on oneDNN although the direct kernels
/// would take the shape (16 or 32 channels in a chain of blocked activations, cpu/layout.h).
inline constexpr const char* kOneDnnAttribute = "mlaudit.onednn";

/// Sigmoid attribute set by fuse_cpu_inference_graph: the node's output is x * sigmoid(x), the
/// Mul (SiLU / Swish) that read the Sigmoid's output and its input; same float product.
inline constexpr const char* kFusedTimesInputAttribute = "mlaudit.times_input";

/// The graph with, where the intermediate value has no other reader and is no graph output:
///  - Conv followed by Relu fused into the Conv (kFusedReluAttribute);
///  - Pad (constant mode, value 0, constant pads on the two spatial axes of a 4-D tensor only)
///    followed by AveragePool with count_include_pad = 1 and no padding of its own, or by Conv
///    without padding of its own (auto_pad NOTSET), fused as that op's own pads.
/// Values are bit-identical to the unfused graph's: an average over a zero-padded window with
/// count_include_pad sums the same terms (the zeros add nothing) over the same divisor, and the
/// convolution kernels pad with zeros at the same positions. Also: Constant nodes (a `value`
/// tensor) become initializers, and Conv, Gemm and MatMul nodes whose weight is an initializer are marked
/// (kConstWeightsAttribute). MLAUDIT_NO_FUSE=1 turns it off.
Graph fuse_cpu_graph(const Graph& g);

/// A graph from fuse_cpu_graph with, in addition, Conv followed by a 2x2/2 MaxPool (see
/// kFusedMaxPoolAttribute) fused into the Conv where the Conv's output has no other reader and
/// is no graph output. Exact (max is exact, the Conv computes the same values either way), but
/// the pre-pool values are gone, so it serves forward passes without backward. Likewise a
/// Clip with constant bounds after a Conv (kFusedClipAttribute), Sigmoid and the Mul of its input
/// and output (kFusedTimesInputAttribute); every Conv is marked
/// kInferenceAttribute. `changed` tells whether any node was changed. MLAUDIT_NO_FUSE=1 turns it off.
Graph fuse_cpu_inference_graph(const Graph& fused, bool& changed);

/// A graph from fuse_cpu_graph whose activations between oneDNN convolutions stay channel-blocked
/// (cpu/layout.h) for forward and backward passes: as fuse_cpu_inference_graph's blocking, less
/// the ops without a blocked backward; the gradient of a blocked value is blocked. Graph inputs
/// and outputs are never blocked. MLAUDIT_NO_FUSE=1 or MLAUDIT_BLOCKED=0 turn it off.
Graph block_cpu_gradient_graph(const Graph& fused);

}  // namespace mlaudit::engine::detail
