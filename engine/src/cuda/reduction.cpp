// Reductions on the device (kernels: reduction_impl.cu, elementwise_impl.cu): Softmax and
// LogSoftmax along an axis, ReduceMean and ReduceSum over axes from the attribute or the input.
#include <algorithm>

#include "elementwise_impl.h"
#include "ops_common.h"
#include "reduction_impl.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::op_error;

void softmax_dims(const detail::OpContext& ctx, const Shape& s, int64_t& outer, int64_t& len, int64_t& inner) {
  int64_t r = static_cast<int64_t>(s.size());
  if (r == 0) op_error(ctx, "scalar input");
  int64_t axis = detail::norm_axis(ctx, ctx.node.get_int("axis", ctx.opset < 13 ? 1 : -1), r);
  outer = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= s[i];
  len = 1;
  inner = 1;
  if (ctx.opset < 13) {
    for (int64_t i = axis; i < r; ++i) len *= s[i];
  } else {
    len = s[axis];
    for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
  }
}

void softmax_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const DValue& x = float_input_at(c, in, 0);
  int64_t outer, len, inner;
  softmax_dims(c.ctx, x.shape, outer, len, inner);
  DValue y = device_tensor(x.shape);
  launch_softmax(x.f(), y.f(), outer, len, inner, c.ctx.node.op_type == "LogSoftmax", c.stream.get());
  out[0] = y;
}

void softmax_backward(const OpCall& c, const Values& in, const Values& out, const Values& gout, const std::vector<bool>& need,
                      std::vector<DValue>& gin) {
  if (!need[0]) return;
  const DValue& gy = *gout[0];
  int64_t outer, len, inner;
  softmax_dims(c.ctx, in[0]->shape, outer, len, inner);
  DValue gx = device_tensor(in[0]->shape);
  launch_softmax_backward(out[0]->f(), gy.f(), gx.f(), outer, len, inner, c.ctx.node.op_type == "LogSoftmax", c.stream.get());
  gin[0] = gx;
}

// The reduced axes of ReduceMean/ReduceSum node over x of rank r (attribute before opset 18 / 13,
// optional input 1 after; none: all, unless noop_with_empty_axes).
std::vector<bool> reduced_axes(const OpCall& c, const Values& in, int64_t r) {
  const Node& node = c.ctx.node;
  bool mean = node.op_type == "ReduceMean";
  bool from_input = mean ? c.ctx.opset >= 18 : c.ctx.opset >= 13;
  std::vector<int64_t> axes;
  bool have = false;
  if (from_input) {
    if (in.size() > 1 && in[1]) {
      axes = c.ex.host_value(c.node, 1, *in[1]).to_int64s();
      have = true;
    }
  } else if (node.has("axes")) {
    axes = node.get_ints("axes");
    have = true;
  }
  std::vector<bool> mask(r, false);
  if (!have || axes.empty()) {
    if (node.get_int("noop_with_empty_axes", 0) == 0) std::fill(mask.begin(), mask.end(), true);
  } else {
    for (int64_t a : axes) mask[detail::norm_axis(c.ctx, a, r)] = true;
  }
  return mask;
}

void reduce_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const DValue& x = float_input_at(c, in, 0);
  bool mean = c.ctx.node.op_type == "ReduceMean";
  int64_t r = static_cast<int64_t>(x.shape.size());
  std::vector<bool> mask = reduced_axes(c, in, r);
  Shape kept = x.shape, squeezed;
  int64_t count = 1;
  for (int64_t k = 0; k < r; ++k) {
    if (mask[k]) {
      count *= kept[k];
      kept[k] = 1;
    } else {
      squeezed.push_back(x.shape[k]);
    }
  }
  DValue y = reduce_copy(x, kept, c.stream, mean && count > 0 ? 1.0 / double(count) : 1.0);
  out[0] = c.ctx.node.get_int("keepdims", 1) != 0 ? y : alias(y, squeezed);
}

void reduce_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                     std::vector<DValue>& gin) {
  if (!need[0]) return;
  const DValue& gy = *gout[0];
  const DValue& x = *in[0];
  // The output gradient, with the reduced dims restored as 1, broadcast back over x (scaled by 1/count for the mean).
  int64_t r = static_cast<int64_t>(x.shape.size());
  bool mean = c.ctx.node.op_type == "ReduceMean";
  std::vector<bool> mask = reduced_axes(c, in, r);
  Shape kept = x.shape;
  int64_t count = 1;
  for (int64_t k = 0; k < r; ++k)
    if (mask[k]) {
      count *= kept[k];
      kept[k] = 1;
    }
  DValue gx = broadcast_to(c.ctx, alias(gy, kept), x.shape, c.stream);
  if (mean && count > 0) launch_axpby(gx.f(), gx.f(), gx.numel(), 1.f / float(count), 0.f, c.stream.get());
  gin[0] = gx;
}

}  // namespace

void register_reduction_ops(CudaOpTable& t) {
  t["Softmax"] = CudaOpDef{softmax_forward, softmax_backward, nullptr};
  t["LogSoftmax"] = CudaOpDef{softmax_forward, softmax_backward, nullptr};
  t["ReduceMean"] = CudaOpDef{reduce_forward, reduce_backward, nullptr};
  t["ReduceSum"] = CudaOpDef{reduce_forward, reduce_backward, nullptr};
}

}  // namespace mlaudit::engine::cuda
