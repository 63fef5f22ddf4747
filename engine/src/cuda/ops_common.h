#pragma once
// Host helpers the CUDA op families share (ops_common.cpp): input access with the CPU ops' error
// messages, views, broadcast descriptors, reductions to a shape, window geometry. Plain C++.
#include <fmt/format.h>

#include "common_impl.h"
#include "op_table.h"

namespace mlaudit::engine::cuda {

/// Input k, which must be present (InputError naming the node otherwise).
inline const DValue& input_at(const OpCall& c, const Values& in, size_t k) {
  if (k >= in.size() || !in[k]) detail::op_error(c.ctx, fmt::format("missing input {}", k));
  return *in[k];
}
/// Input k as a float32 device value.
inline const DValue& float_input_at(const OpCall& c, const Values& in, size_t k) {
  const DValue& v = input_at(c, in, k);
  if (!v.on_device()) detail::op_error(c.ctx, fmt::format("input {} is {}, expected float32", k, dtype_name(v.dtype)));
  return v;
}

/// The same buffer viewed with another shape.
DValue alias(const DValue& v, const Shape& shape);
/// Broadcast descriptor of a op b -> out (up to kMaxRank dims; InputError naming the node beyond).
BroadcastDesc make_bcast(const detail::OpContext& ctx, const Shape& a, const Shape& b, const Shape& out);
/// x (shape `from`) summed down to the broadcast-compatible shape `to`, times scale (a new buffer).
DValue reduce_copy(const DValue& x, const Shape& to, const Stream& s, double scale = 1.0);
/// reduce_copy unless x already has the shape (then x itself).
DValue reduce_to(const DValue& x, const Shape& to, const Stream& s);
/// v materialised broadcast to `shape`.
DValue broadcast_to(const detail::OpContext& ctx, const DValue& v, const Shape& shape, const Stream& s);

/// detail::conv_window / pool_window (the CPU ops' own geometry) as the kernels' ConvGeom.
ConvGeom to_geom(const detail::Window2d& p);
ConvGeom conv_geom(const detail::OpContext& ctx, const Shape& x, const Shape& w);
ConvGeom pool_geom(const detail::OpContext& ctx, const Shape& x, int64_t& pb, int64_t& pr, bool& include_pad);

/// Conv forward and backward data run the direct kernels (conv_impl.cu) unless
/// MLAUDIT_CUDA_CONV=im2col selects im2col + cuBLAS (kept for comparison and as the reference
/// path of the benchmark). The executor's Conv+Relu(+MaxPool) fusions need the direct kernels.
bool direct_conv_enabled();
/// Support check of the 2-D window ops (Conv, MaxPool, AveragePool, GlobalAveragePool): input 0 is
/// 4-D (NCHW); 1-D (NCW) nodes run through the CPU fallback. True without shapes (in == nullptr).
bool four_d_input(const Node& node, int64_t opset, const Values* in);

}  // namespace mlaudit::engine::cuda
