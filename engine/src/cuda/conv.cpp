// Conv on the device (kernels: conv_impl.cu): the direct kernels for forward and backward data
// (windows up to 16x16), im2col + cuBLAS for weight gradients and for everything with
// MLAUDIT_CUDA_CONV=im2col. 2-D (NCHW) only: 1-D nodes run through the CPU fallback. The
// executor fuses Conv -> Relu (-> MaxPool 2x2/2) chains into the direct kernel's epilogues
// (CudaExecutor::find_fusions, conv_fused).
#include <algorithm>

#include "conv_impl.h"
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::op_error;

// The direct kernels stage up to 32 channels x the window in shared memory: windows up to 16x16.
bool direct_conv(const ConvGeom& g) { return direct_conv_enabled() && g.kh * g.kw <= 256; }

// Images per im2col chunk so the column buffer stays within min(512 MiB, free/4) (batch adapts to free memory).
int64_t conv_chunk(int64_t images, int64_t col_floats_per_image) {
  size_t free_b = 0, total_b = 0;
  memory_info(free_b, total_b);
  size_t budget = std::min<size_t>(size_t(512) << 20, free_b / 4);
  int64_t per = std::max<int64_t>(1, col_floats_per_image * int64_t(sizeof(float)));
  return std::clamp<int64_t>(int64_t(budget) / per, 1, std::max<int64_t>(images, 1));
}

void conv_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Stream& st = c.stream;
  void* s = st.get();
  const DValue& x = float_input_at(c, in, 0);
  const DValue& w = float_input_at(c, in, 1);
  bool has_bias = in.size() > 2 && in[2];
  if (has_bias && float_input_at(c, in, 2).numel() != w.shape[0]) op_error(c.ctx, "bias length differs from the output channels");
  ConvGeom g = conv_geom(c.ctx, x.shape, w.shape);
  if (direct_conv(g)) {
    out[0] = c.ex.conv_fused(c.node, in, 0);  // the direct kernel without an epilogue
    return;
  }
  DValue y = device_tensor({g.n, g.oc, g.oh, g.ow});
  int64_t icg = g.c / g.group, ocg = g.oc / g.group, K = icg * g.kh * g.kw, P = g.oh * g.ow;
  int64_t chunk = conv_chunk(g.n, K * P);
  BufferPtr col = allocate(size_t(std::min(chunk, std::max<int64_t>(g.n, 1)) * K * P) * sizeof(float));
  for (int64_t grp = 0; grp < g.group; ++grp)
    for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
      int64_t nb = std::min(chunk, g.n - n0);
      launch_im2col(x.f() + n0 * g.c * g.h * g.w + grp * icg * g.h * g.w, col->f32(), g, nb, icg, g.c * g.h * g.w, s);
      // Y_n[grp] (ocg x P) = W_grp (ocg x K) * col_n (K x P), one GEMM per image, weights shared (stride 0).
      st.sgemm_batched(false, false, ocg, P, K, 1.f, w.f() + grp * ocg * K, K, 0, col->f32(), P, K * P, 0.f,
                       y.f() + n0 * g.oc * P + grp * ocg * P, P, g.oc * P, nb);
    }
  if (has_bias) launch_bias_add(y.f(), in[2]->f(), g.n, g.oc, P, s);
  out[0] = y;
}

void conv_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                   std::vector<DValue>& gin) {
  const Stream& st = c.stream;
  void* s = st.get();
  const DValue& gy = *gout[0];
  const DValue& x = *in[0];
  const DValue& w = *in[1];
  ConvGeom g = conv_geom(c.ctx, x.shape, w.shape);
  int64_t icg = g.c / g.group, ocg = g.oc / g.group, K = icg * g.kh * g.kw, P = g.oh * g.ow;
  int64_t chunk = conv_chunk(g.n, K * P);
  // The column buffer serves the weight gradient (and backward data on the im2col path).
  BufferPtr col = (need[1] || !direct_conv(g))
                      ? allocate(size_t(std::min(chunk, std::max<int64_t>(g.n, 1)) * K * P) * sizeof(float))
                      : BufferPtr();
  if (need[0] && direct_conv(g)) {
    DValue gx = device_tensor(x.shape);
    launch_conv_backward_data_direct(gy.f(), w.f(), gx.f(), g, s);
    gin[0] = gx;
  } else if (need[0]) {
    DValue gx = device_tensor(x.shape);
    for (int64_t grp = 0; grp < g.group; ++grp)
      for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
        int64_t nb = std::min(chunk, g.n - n0);
        // col_n (K x P) = W_grp^T (K x ocg) * gY_n[grp] (ocg x P), then col2im folds it back.
        st.sgemm_batched(true, false, K, P, ocg, 1.f, w.f() + grp * ocg * K, K, 0, gy.f() + n0 * g.oc * P + grp * ocg * P,
                         P, g.oc * P, 0.f, col->f32(), P, K * P, nb);
        launch_col2im(col->f32(), gx.f() + n0 * g.c * g.h * g.w + grp * icg * g.h * g.w, g, nb, icg, g.c * g.h * g.w, s);
      }
    gin[0] = gx;
  }
  if (need[1]) {
    // gW_grp (ocg x K) = sum_n gY_n[grp] (ocg x P) * col_n^T (P x K).
    DValue gw = device_zeros(w.shape, st);
    for (int64_t grp = 0; grp < g.group; ++grp)
      for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
        int64_t nb = std::min(chunk, g.n - n0);
        launch_im2col(x.f() + n0 * g.c * g.h * g.w + grp * icg * g.h * g.w, col->f32(), g, nb, icg, g.c * g.h * g.w, s);
        for (int64_t j = 0; j < nb; ++j)
          st.sgemm(false, true, ocg, K, P, 1.f, gy.f() + (n0 + j) * g.oc * P + grp * ocg * P, P, col->f32() + j * K * P, P,
                   1.f, gw.f() + grp * ocg * K, K);
      }
    gin[1] = gw;
  }
  if (need.size() > 2 && need[2] && in[2]) {
    DValue flat = alias(gy, {g.n, g.oc, P});
    gin[2] = alias(reduce_copy(flat, {1, g.oc, 1}, st), in[2]->shape);
  }
}

}  // namespace

// The device convolution and pooling kernels are 2-D (NCHW); 1-D (NCW) nodes run on the CPU.
bool four_d_input(const Node&, int64_t, const Values* in) {
  if (!in) return true;  // decided per run, with the shapes
  return !in->empty() && (*in)[0] && (*in)[0]->shape.size() == 4;
}

void register_conv_ops(CudaOpTable& t) { t["Conv"] = CudaOpDef{conv_forward, conv_backward, four_d_input}; }

}  // namespace mlaudit::engine::cuda
