// BatchNormalization (inference) on the device (kernel: norm_impl.cu): folded on the host to a
// per-channel scale and shift, uploaded once per node when the statistics are initializers.
#include <algorithm>
#include <cmath>

#include "norm_impl.h"
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::op_error;

void batchnorm_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Node& node = c.ctx.node;
  const size_t i = c.node;
  const Stream& st = c.stream;
  const DValue& x = float_input_at(c, in, 0);
  if (x.shape.size() < 2) op_error(c.ctx, fmt::format("expects [N,C,...], got {}", shape_str(x.shape)));
  if (node.get_int("training_mode", 0) != 0) op_error(c.ctx, "training_mode=1 is not supported (inference only)");
  int64_t n = x.shape[0], C = x.shape[1];
  int64_t area = (n * C) != 0 ? x.numel() / (n * C) : 0;
  Tensor scale = c.ex.host_value(i, 1, float_input_at(c, in, 1)), bias = c.ex.host_value(i, 2, float_input_at(c, in, 2)),
         mean = c.ex.host_value(i, 3, float_input_at(c, in, 3)), var = c.ex.host_value(i, 4, float_input_at(c, in, 4));
  if (scale.numel() != C || bias.numel() != C || mean.numel() != C || var.numel() != C)
    op_error(c.ctx, fmt::format("scale/B/mean/var must have {} elements (channels)", C));
  float eps = node.get_float("epsilon", 1e-5f);
  // y = a x + b with a = scale / sqrt(var + eps), b = bias - a mean (inference BatchNorm, ops_nn.cpp bn_coeffs).
  Tensor a(Shape{C}), b(Shape{C});
  for (int64_t ch = 0; ch < C; ++ch) {
    a.f32()[ch] = scale.f32()[ch] / std::sqrt(var.f32()[ch] + eps);
    b.f32()[ch] = bias.f32()[ch] - a.f32()[ch] * mean.f32()[ch];
  }
  // The folded coefficients are uploaded once per node when the statistics are initializers
  // (no host sync in the steady state, so PGD iterations stay capturable as a CUDA graph).
  bool constant_stats = true;
  for (size_t k = 1; k <= 4; ++k) constant_stats = constant_stats && c.ex.constant_input(i, k);
  std::string key = fmt::format("{}#bn{}", i, C);
  auto& cache = c.ex.buffer_cache();
  DValue da;
  auto cached = cache.find(key);
  if (constant_stats && cached != cache.end()) {
    da.buf = cached->second;
  } else {
    Tensor ab(Shape{2 * C});
    std::copy(a.f32(), a.f32() + C, ab.f32());
    std::copy(b.f32(), b.f32() + C, ab.f32() + C);
    da = to_device(ab, st);
    if (constant_stats) cache[key] = da.buf;
  }
  DValue y = device_tensor(x.shape);
  launch_channel_affine(x.f(), da.f(), da.f() + C, y.f(), n, C, area, st.get());
  out[0] = y;
  for (size_t k = 1; k < out.size(); ++k) out[k] = *in[std::min<size_t>(k + 2, in.size() - 1)];
}

void batchnorm_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                        std::vector<DValue>& gin) {
  if (!need[0]) return;
  const Node& node = c.ctx.node;
  const size_t i = c.node;
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const DValue& x = *in[0];
  int64_t n = x.shape[0], C = x.shape[1];
  int64_t area = (n * C) != 0 ? x.numel() / (n * C) : 0;
  // dx = a * dy with a = scale / sqrt(var + eps); the forward cached [a; b] when the statistics are constant.
  DValue da;
  auto& cache = c.ex.buffer_cache();
  auto cached = cache.find(fmt::format("{}#bn{}", i, C));
  if (cached != cache.end()) {
    da.buf = cached->second;
  } else {
    Tensor scale = c.ex.host_value(i, 1, *in[1]), var = c.ex.host_value(i, 4, *in[4]);
    float eps = node.get_float("epsilon", 1e-5f);
    Tensor a(Shape{C});
    for (int64_t ch = 0; ch < C; ++ch) a.f32()[ch] = scale.f32()[ch] / std::sqrt(var.f32()[ch] + eps);
    da = to_device(a, st);
  }
  DValue gx = device_tensor(x.shape);
  launch_channel_affine(gy.f(), da.f(), nullptr, gx.f(), n, C, area, st.get());
  gin[0] = gx;
}

// BatchNormalization before 9 with spatial=0 (per-element statistics) runs on the CPU.
bool batchnorm_supported(const Node& node, int64_t, const Values*) {
  return !(node.since_version < 9 && node.get_int("spatial", 1) == 0);
}

}  // namespace

void register_norm_ops(CudaOpTable& t) {
  t["BatchNormalization"] = CudaOpDef{batchnorm_forward, batchnorm_backward, batchnorm_supported};
}

}  // namespace mlaudit::engine::cuda
