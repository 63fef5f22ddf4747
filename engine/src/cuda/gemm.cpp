// Gemm and MatMul on the device: cuBLAS SGEMM on the executor's stream (Stream::sgemm, row-major
// through the transposed column-major problem); no kernels of their own.
#include "elementwise_impl.h"
#include "ops_common.h"

namespace mlaudit::engine::cuda {

namespace {

using detail::batch_offset;
using detail::matmul_plan;
using detail::MatMulPlan;
using detail::op_error;

void gemm_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Node& node = c.ctx.node;
  const Stream& st = c.stream;
  void* s = st.get();
  const DValue& a = float_input_at(c, in, 0);
  const DValue& b = float_input_at(c, in, 1);
  if (a.shape.size() != 2 || b.shape.size() != 2)
    op_error(c.ctx, fmt::format("expects 2-D inputs, got {} and {}", shape_str(a.shape), shape_str(b.shape)));
  bool ta = node.get_int("transA", 0) != 0, tb = node.get_int("transB", 0) != 0;
  int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
  int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
  if (kb != k)
    op_error(c.ctx, fmt::format("inner dimensions differ: A {} and B {} (transA={}, transB={})", shape_str(a.shape),
                                shape_str(b.shape), ta, tb));
  float alpha = node.get_float("alpha", 1.f), beta = node.get_float("beta", 1.f);
  DValue y = device_tensor({m, n});
  bool has_c = in.size() > 2 && in[2];
  if (has_c) {
    const DValue& cv = float_input_at(c, in, 2);
    Shape bs = detail::broadcast_shape(c.ctx, cv.shape, y.shape);
    if (bs != y.shape)
      op_error(c.ctx, fmt::format("C of shape {} does not broadcast to {}", shape_str(cv.shape), shape_str(y.shape)));
    launch_binary(BinaryOp::Max, cv.f(), cv.f(), y.f(), make_bcast(c.ctx, cv.shape, cv.shape, y.shape), s);
    if (beta != 1.f) launch_axpby(y.f(), y.f(), y.numel(), beta, 0.f, s);
  }
  st.sgemm(ta, tb, m, n, k, alpha, a.f(), a.shape[1], b.f(), b.shape[1], has_c ? 1.f : 0.f, y.f(), n);
  out[0] = y;
}

void gemm_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                   std::vector<DValue>& gin) {
  const Node& node = c.ctx.node;
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const DValue& a = *in[0];
  const DValue& b = *in[1];
  bool ta = node.get_int("transA", 0) != 0, tb = node.get_int("transB", 0) != 0;
  int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1], n = tb ? b.shape[0] : b.shape[1];
  float alpha = node.get_float("alpha", 1.f), beta = node.get_float("beta", 1.f);
  if (need[0]) {
    // op(A) = G op(B)^T; A = op(A) or its transpose (ops_nn.cpp gemm_bwd).
    DValue ga = device_tensor(a.shape);
    if (!ta) st.sgemm(false, !tb, m, k, n, alpha, gy.f(), n, b.f(), b.shape[1], 0.f, ga.f(), k);
    else st.sgemm(tb, true, k, m, n, alpha, b.f(), b.shape[1], gy.f(), n, 0.f, ga.f(), m);
    gin[0] = ga;
  }
  if (need[1]) {
    // op(B) = op(A)^T G
    DValue gb = device_tensor(b.shape);
    if (!tb) st.sgemm(!ta, false, k, n, m, alpha, a.f(), a.shape[1], gy.f(), n, 0.f, gb.f(), n);
    else st.sgemm(true, ta, n, k, m, alpha, gy.f(), n, a.f(), a.shape[1], 0.f, gb.f(), k);
    gin[1] = gb;
  }
  if (need.size() > 2 && need[2] && in[2]) gin[2] = reduce_copy(gy, in[2]->shape, st, beta);
}

void matmul_forward(const OpCall& c, const Values& in, std::vector<DValue>& out) {
  const Stream& st = c.stream;
  const DValue& a = float_input_at(c, in, 0);
  const DValue& b = float_input_at(c, in, 1);
  MatMulPlan p = matmul_plan(c.ctx, a.shape, b.shape);
  DValue y = device_tensor(p.out_shape);
  int64_t nb = shape_numel(p.batch);
  if (p.b_batch.empty() && p.a_batch == p.batch) {
    st.sgemm(false, false, nb * p.m, p.n, p.k, 1.f, a.f(), p.k, b.f(), p.n, 0.f, y.f(), p.n);
  } else {
    for (int64_t bi = 0; bi < nb; ++bi)
      st.sgemm(false, false, p.m, p.n, p.k, 1.f, a.f() + batch_offset(bi, p.batch, p.a_batch) * p.m * p.k, p.k,
               b.f() + batch_offset(bi, p.batch, p.b_batch) * p.k * p.n, p.n, 0.f, y.f() + bi * p.m * p.n, p.n);
  }
  out[0] = y;
}

void matmul_backward(const OpCall& c, const Values& in, const Values&, const Values& gout, const std::vector<bool>& need,
                     std::vector<DValue>& gin) {
  const Stream& st = c.stream;
  const DValue& gy = *gout[0];
  const DValue& a = *in[0];
  const DValue& b = *in[1];
  MatMulPlan p = matmul_plan(c.ctx, a.shape, b.shape);
  int64_t nb = shape_numel(p.batch);
  if (need[0]) {
    Shape full = p.batch, a2 = p.a_batch;
    full.push_back(p.m);
    full.push_back(p.k);
    a2.push_back(p.m);
    a2.push_back(p.k);
    DValue ga = device_tensor(full);
    for (int64_t bi = 0; bi < nb; ++bi)
      st.sgemm(false, true, p.m, p.k, p.n, 1.f, gy.f() + bi * p.m * p.n, p.n,
               b.f() + batch_offset(bi, p.batch, p.b_batch) * p.k * p.n, p.n, 0.f, ga.f() + bi * p.m * p.k, p.k);
    gin[0] = alias(reduce_to(ga, a2, st), a.shape);
  }
  if (need[1]) {
    Shape full = p.batch, b2 = p.b_batch;
    full.push_back(p.k);
    full.push_back(p.n);
    b2.push_back(p.k);
    b2.push_back(p.n);
    DValue gb = device_tensor(full);
    for (int64_t bi = 0; bi < nb; ++bi)
      st.sgemm(true, false, p.k, p.n, p.m, 1.f, a.f() + batch_offset(bi, p.batch, p.a_batch) * p.m * p.k, p.k,
               gy.f() + bi * p.m * p.n, p.n, 0.f, gb.f() + bi * p.k * p.n, p.n);
    gin[1] = alias(reduce_to(gb, b2, st), b.shape);
  }
}

}  // namespace

void register_gemm_ops(CudaOpTable& t) {
  t["Gemm"] = CudaOpDef{gemm_forward, gemm_backward, nullptr};
  t["MatMul"] = CudaOpDef{matmul_forward, matmul_backward, nullptr};
}

}  // namespace mlaudit::engine::cuda
