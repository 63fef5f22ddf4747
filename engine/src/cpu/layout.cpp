// Channel-blocked activations (layout.h).
#include "layout.h"

#include <dnnl.hpp>

#include <set>
#include <string>

#include "mlaudit/engine/error.h"

namespace mlaudit::engine::detail {

int64_t cpu_channel_block() {
  static const int64_t b = [] {
    const auto isa = dnnl::get_effective_cpu_isa();
    return (isa == dnnl::cpu_isa::avx512_core || isa == dnnl::cpu_isa::avx512_core_vnni ||
            isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx)
               ? int64_t(16)
               : int64_t(8);
  }();
  return b;
}

namespace {
int64_t block_of(const Node& n, const char* attr, size_t k) {
  auto it = n.attributes.find(attr);
  if (it == n.attributes.end() || k >= it->second.ints.size()) return 0;
  return it->second.ints[k];
}

template <bool ToBlocked>
Tensor convert(const Tensor& x, int64_t b) {
  if (x.rank() != 4 || b <= 0 || x.dim(1) % b != 0)
    throw Error("engine", "internal: blocked layout conversion of a tensor of shape " + shape_str(x.shape()));
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3), CB = C / b;
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  float* py = y.f32();
#pragma omp parallel for collapse(2) if (x.numel() > 65536) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < CB; ++cb) {
      const int64_t base = (n * CB + cb) * HW * b;  // same offset of the block's first element in both layouts
      for (int64_t i = 0; i < HW; ++i)
        for (int64_t l = 0; l < b; ++l) {
          const int64_t blocked = base + i * b + l, plain = base + l * HW + i;
          if (ToBlocked) py[blocked] = px[plain];
          else py[plain] = px[blocked];
        }
    }
  return y;
}
}  // namespace

int64_t blocked_input(const Node& n, size_t k) { return block_of(n, kBlockedInputsAttribute, k); }
int64_t blocked_output(const Node& n, size_t k) { return block_of(n, kBlockedOutputsAttribute, k); }

Tensor to_blocked(const Tensor& x, int64_t b) { return convert<true>(x, b); }
Tensor from_blocked(const Tensor& x, int64_t b) { return convert<false>(x, b); }

bool layout_free_op(const Node& n, size_t& data_inputs) {
  static const std::set<std::string> unary = {"Relu",    "Sigmoid",  "Tanh",     "LeakyRelu", "HardSigmoid",
                                              "HardSwish", "Elu",     "Selu",     "Celu",      "Softplus",
                                              "Softsign", "Mish",     "Gelu",     "Erf",       "Exp",
                                              "Neg",     "Abs",      "Identity", "Sqrt",      "Reciprocal"};
  static const std::set<std::string> binary = {"Add", "Sub", "Mul", "Div", "Max", "Min"};
  if (!n.domain.empty() || n.outputs.size() != 1) return false;
  if (unary.count(n.op_type) && n.inputs.size() == 1) return data_inputs = 1, true;
  if (n.op_type == "Clip" && !n.inputs.empty()) return data_inputs = 1, true;
  if (binary.count(n.op_type) && n.inputs.size() == 2) return data_inputs = 2, true;
  return false;
}

namespace {
template <class F>
void channel_broadcast(const Tensor& big, const Tensor& per_channel, int64_t b, bool big_first, Tensor& y, F f) {
  const int64_t N = big.dim(0), C = big.dim(1), HW = big.dim(2) * big.dim(3), CB = C / b;
  const float* px = big.f32();
  const float* ps = per_channel.f32();
  float* py = y.f32();
#pragma omp parallel for collapse(2) if (big.numel() > 65536) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t cb = 0; cb < CB; ++cb) {
      const int64_t base = (n * CB + cb) * HW * b;
      const float* s = ps + n * C + cb * b;
      for (int64_t i = 0; i < HW; ++i)
        for (int64_t l = 0; l < b; ++l) {
          const float x = px[base + i * b + l];
          py[base + i * b + l] = big_first ? f(x, s[l]) : f(s[l], x);
        }
    }
}
}  // namespace

namespace {
// Which input of a blocked channel-broadcast node is the [N,C,H,W] one (0 or 1), or -1.
int big_input(const Node& n, const std::vector<const Tensor*>& in) {
  if (!n.domain.empty() || in.size() != 2 || !in[0] || !in[1] || n.outputs.size() != 1) return -1;
  const int64_t b = blocked_input(n, 0);
  if (!b || blocked_input(n, 1) != b || blocked_output(n, 0) != b) return -1;
  const Tensor &x0 = *in[0], &x1 = *in[1];
  if (x0.dtype() != DType::Float32 || x1.dtype() != DType::Float32 || x0.rank() != 4 || x1.rank() != 4) return -1;
  const int big = (x1.dim(2) == 1 && x1.dim(3) == 1) ? 0 : 1;
  const Tensor& bt = big == 0 ? x0 : x1;
  const Tensor& st = big == 0 ? x1 : x0;
  if (st.dim(2) != 1 || st.dim(3) != 1 || bt.dim(0) != st.dim(0) || bt.dim(1) != st.dim(1) || bt.dim(1) % b) return -1;
  return big;
}
}  // namespace

bool blocked_channel_broadcast_backward(const Node& n, const std::vector<const Tensor*>& in,
                                        const std::vector<const Tensor*>& grad_out, const std::vector<bool>& need,
                                        std::vector<Tensor>& grad_in) {
  const int big = big_input(n, in);
  const bool add = n.op_type == "Add", sub = n.op_type == "Sub", mul = n.op_type == "Mul";
  if (big < 0 || !(add || sub || mul) || grad_out.empty() || !grad_out[0] || grad_in.size() < 2) return false;
  const int small = 1 - big;
  const Tensor& g = *grad_out[0];
  const Tensor& bt = *in[big];
  const Tensor& st = *in[small];
  if (g.shape() != bt.shape()) return false;
  const int64_t b = blocked_input(n, 0);
  const int64_t N = bt.dim(0), C = bt.dim(1), HW = bt.dim(2) * bt.dim(3), CB = C / b;
  const float* pg = g.f32();
  const float* px = bt.f32();
  // Sub (a - b) negates the gradient of b.
  const bool negate_small = sub && small == 1;
  if (need[big]) {
    if (add || (sub && big == 0)) {
      grad_in[big] = g;
    } else {  // the forward's blocked walk over g: g * s (Mul) or -g (the subtrahend of Sub)
      Tensor d = Tensor::uninitialized(DType::Float32, bt.shape());
      if (mul) channel_broadcast(g, st, b, true, d, [](float gg, float s) { return gg * s; });
      else channel_broadcast(g, st, b, true, d, [](float gg, float) { return -gg; });
      grad_in[big] = d;
    }
  }
  if (need[small]) {
    Tensor d = Tensor::uninitialized(DType::Float32, st.shape());  // [N,C,1,1]: plain [N,C] order
    float* pd = d.f32();
#pragma omp parallel for collapse(2) if (bt.numel() > 65536) schedule(static)
    for (int64_t nn = 0; nn < N; ++nn)
      for (int64_t cb = 0; cb < CB; ++cb) {
        const int64_t base = (nn * CB + cb) * HW * b;
        float acc[16] = {};
        for (int64_t i = 0; i < HW; ++i)
#pragma omp simd
          for (int64_t l = 0; l < b; ++l) {
            const float gg = pg[base + i * b + l];
            acc[l] += mul ? gg * px[base + i * b + l] : (negate_small ? -gg : gg);
          }
        for (int64_t l = 0; l < b; ++l) pd[nn * C + cb * b + l] = acc[l];
      }
    grad_in[small] = d;
  }
  return true;
}

bool blocked_channel_broadcast(const Node& n, const std::vector<const Tensor*>& in, std::vector<Tensor>& out) {
  const int big_at = big_input(n, in);
  if (big_at < 0 || out.size() != 1) return false;
  const bool first_big = big_at == 0;
  const Tensor& big = *in[big_at];
  const Tensor& small = *in[1 - big_at];
  const int64_t b = blocked_input(n, 0);
  Tensor y = Tensor::uninitialized(DType::Float32, big.shape());
  if (n.op_type == "Mul") channel_broadcast(big, small, b, first_big, y, [](float a, float c) { return a * c; });
  else if (n.op_type == "Add") channel_broadcast(big, small, b, first_big, y, [](float a, float c) { return a + c; });
  else if (n.op_type == "Sub") channel_broadcast(big, small, b, first_big, y, [](float a, float c) { return a - c; });
  else if (n.op_type == "Div") channel_broadcast(big, small, b, first_big, y, [](float a, float c) { return a / c; });
  else return false;
  out[0] = y;
  return true;
}

}  // namespace mlaudit::engine::detail
