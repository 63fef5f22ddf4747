#pragma once
// Channel-blocked activations in the CPU executor's forward-only graph (fusion.h,
// block_cpu_inference_graph). A blocked value keeps its logical NCHW shape [N, C, H, W] and
// element count, but its storage is oneDNN's nChw{B}c order: [N][C/B][H][W][B] (C a multiple of
// B). Consecutive oneDNN convolutions and the element-wise ops between them then pass tensors
// in the layout the kernels compute in, instead of reordering to and from NCHW at every Conv.
#include <cstdint>
#include <vector>

#include "mlaudit/engine/graph.h"

namespace mlaudit::engine::detail {

/// Node attribute (ints, one per input): B when input k arrives blocked, else 0.
inline constexpr const char* kBlockedInputsAttribute = "mlaudit.blocked_in";
/// Node attribute (ints, one per output): B when output k is to be written blocked, else 0.
inline constexpr const char* kBlockedOutputsAttribute = "mlaudit.blocked_out";

/// The channel block of this machine's oneDNN f32 convolutions: 16 with AVX-512, else 8.
int64_t cpu_channel_block();

/// Input k's / output k's block (0: plain).
int64_t blocked_input(const Node& n, size_t k);
int64_t blocked_output(const Node& n, size_t k);

/// x (4-D, plain NCHW) in blocked order, and back. C must be a multiple of b.
Tensor to_blocked(const Tensor& x, int64_t b);
Tensor from_blocked(const Tensor& x, int64_t b);

/// Element-wise ops (same values at every position whatever the order of the elements) that
/// may compute on blocked tensors when all their data inputs are blocked and equally shaped:
/// `data_inputs` is how many leading inputs are data (Clip's bounds are not).
bool layout_free_op(const Node& n, size_t& data_inputs);

/// An Add/Sub/Mul/Div node on two blocked inputs of which one is [N, C, H, W] and the other
/// [N, C, 1, 1] (a squeeze-excitation scale, a per-channel shift): computes the blocked output
/// into out[0] directly (a [N, C, 1, 1] blocked tensor is stored as plain [N, C]) and returns
/// true; false (nothing written) for any other node or shapes. Same operations as the op's.
bool blocked_channel_broadcast(const Node& n, const std::vector<const Tensor*>& in, std::vector<Tensor>& out);

/// The backward of such a node (Add, Sub, Mul) into blocked input gradients: the big input's
/// as the op's backward computes it element by element, the per-channel input's summed over
/// H x W from 0 in index order as reduce_to_shape sums it, so the same bits. False (nothing
/// written) for any other node or shapes.
bool blocked_channel_broadcast_backward(const Node& n, const std::vector<const Tensor*>& in,
                                        const std::vector<const Tensor*>& grad_out, const std::vector<bool>& need,
                                        std::vector<Tensor>& grad_in);

}  // namespace mlaudit::engine::detail
