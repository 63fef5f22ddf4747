// Dense and convolutional ops: Gemm, MatMul, Conv (oneDNN), pooling,
// BatchNormalization, Softmax/LogSoftmax, ReduceMean/ReduceSum.
#include <dnnl.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <mutex>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "cpu/conv_direct.h"
#include "cpu/fusion.h"
#include "cpu/layout.h"
#include "cpu/row_gemm.h"
#include "cpu/weight_cache.h"
#include "ops.h"
#include "vector_math.h"

namespace mlaudit::engine::detail {

namespace {

// ---------------- Gemm ----------------

struct GemmDims {
  int64_t m, n, k;
  bool ta, tb;
};

// A [R, C] matrix's transpose, contiguous.
Tensor transpose_2d(const Tensor& a) {
  const int64_t r = a.shape()[0], c = a.shape()[1];
  Tensor t = Tensor::uninitialized(DType::Float32, Shape{c, r});
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) t.f32()[j * r + i] = a.f32()[i * c + j];
  return t;
}

GemmDims gemm_dims(const OpContext& ctx, const Tensor& a, const Tensor& b) {
  if (a.rank() != 2 || b.rank() != 2)
    op_error(ctx, fmt::format("expects 2-D inputs, got {} and {}", shape_str(a.shape()), shape_str(b.shape())));
  GemmDims d;
  d.ta = ctx.node.get_int("transA", 0) != 0;
  d.tb = ctx.node.get_int("transB", 0) != 0;
  d.m = d.ta ? a.shape()[1] : a.shape()[0];
  d.k = d.ta ? a.shape()[0] : a.shape()[1];
  int64_t kb = d.tb ? b.shape()[1] : b.shape()[0];
  d.n = d.tb ? b.shape()[0] : b.shape()[1];
  if (kb != d.k)
    op_error(ctx, fmt::format("inner dimensions differ: A {} and B {} (transA={}, transB={})", shape_str(a.shape()),
                              shape_str(b.shape()), d.ta, d.tb));
  return d;
}

void gemm_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = float_input(ctx, in, 0);
  const Tensor& b = float_input(ctx, in, 1);
  GemmDims d = gemm_dims(ctx, a, b);
  float alpha = ctx.node.get_float("alpha", 1.f), beta = ctx.node.get_float("beta", 1.f);
  bool has_c = in.size() > 2 && in[2] && !in[2]->empty();
  // With C every element is written below (no zero fill); without, sgemm's beta = 0 ignores y.
  Tensor y = Tensor::uninitialized(DType::Float32, Shape{d.m, d.n});
  if (has_c) {
    const Tensor& c = float_input(ctx, in, 2);
    Shape bs = broadcast_shape(ctx, c.shape(), y.shape());
    if (bs != y.shape()) op_error(ctx, fmt::format("C of shape {} does not broadcast to {}", shape_str(c.shape()), shape_str(y.shape())));
    // y = beta * broadcast(C): one scaled row (or column value) per output row, vectorised.
    const float* pc = c.f32();
    float* py = y.f32();
    const Shape& cs = c.shape();
    const int64_t cr = cs.size() == 2 ? cs[0] : 1, cc = cs.empty() ? 1 : cs.back();
#pragma omp parallel for if (d.m * d.n > 262144) schedule(static)
    for (int64_t i = 0; i < d.m; ++i) {
      const float* crow = pc + (cr == 1 ? 0 : i) * cc;
      float* yrow = py + i * d.n;
      if (cc == 1) {
        const float v = beta * crow[0];
        for (int64_t j = 0; j < d.n; ++j) yrow[j] = v;
      } else {
        for (int64_t j = 0; j < d.n; ++j) yrow[j] = beta * crow[j];
      }
    }
  }
  // Row-invariant product (cpu/row_gemm.h): a row's output does not depend on the batch. A
  // transposed A (rare) is copied to rows first.
  const std::shared_ptr<const PackedB> pb = packed_weight(ctx.node, b, b.shape()[1], d.tb, d.k, d.n);
  if (!d.ta) {
    row_gemm(d.m, a.f32(), a.shape()[1], *pb, alpha, has_c, y.f32(), d.n);
  } else {
    const Tensor at = transpose_2d(a);
    row_gemm(d.m, at.f32(), d.k, *pb, alpha, has_c, y.f32(), d.n);
  }
  out[0] = y;
}

void gemm_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!g[0]) return;
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  const Tensor& gy = *g[0];
  GemmDims d = gemm_dims(ctx, a, b);
  float alpha = ctx.node.get_float("alpha", 1.f), beta = ctx.node.get_float("beta", 1.f);
  if (need[0]) {
    // op(A) = G op(B)^T; A = op(A) or its transpose.
    if (!d.ta) {
      // Row i of dA = alpha * row i of G times op(B)^T (N x K): row-invariant as the forward.
      gin[0] = Tensor::uninitialized(DType::Float32, a.shape());
      const std::shared_ptr<const PackedB> pbt = packed_weight(ctx.node, b, b.shape()[1], !d.tb, d.n, d.k);
      row_gemm(d.m, gy.f32(), d.n, *pbt, alpha, false, gin[0].f32(), d.k);
    } else {
      gin[0] = Tensor(a.shape());
      sgemm(d.tb, true, d.k, d.m, d.n, alpha, b.f32(), b.shape()[1], gy.f32(), d.n, 0.f, gin[0].f32(), d.m);
    }
  }
  if (need[1]) {
    // op(B) = op(A)^T G
    gin[1] = Tensor(b.shape());
    if (!d.tb) sgemm(!d.ta, false, d.k, d.n, d.m, alpha, a.f32(), a.shape()[1], gy.f32(), d.n, 0.f, gin[1].f32(), d.n);
    else sgemm(true, d.ta, d.n, d.k, d.m, alpha, gy.f32(), d.n, a.f32(), a.shape()[1], 0.f, gin[1].f32(), d.k);
  }
  if (need.size() > 2 && need[2] && in[2]) {
    // reduce_to_shape may return gy itself: scale into a fresh tensor.
    Tensor reduced = reduce_to_shape(gy, in[2]->shape());
    Tensor gc = Tensor::uninitialized(DType::Float32, reduced.shape());
    for (int64_t i = 0; i < gc.numel(); ++i) gc.f32()[i] = beta * reduced.f32()[i];
    gin[2] = gc;
  }
}

// ---------------- MatMul (numpy semantics) ----------------

// Runs fn(bi) for every matrix of a batched product. Many small matrices (attention scores
// [N, heads, L, d] x [N, heads, d, L]) go one matrix per thread: each oneDNN sgemm call opens
// its own parallel region, whose start-up costs more than a 32x16x32 product; inside this
// region oneDNN sees omp_in_parallel() and runs each call on its calling thread.
template <class Fn>
void for_each_matrix(int64_t nb, int64_t flops_per_matrix, const Fn& fn) {
  const int threads = std::max(1, num_threads());
  if (threads > 1 && nb >= 2 * threads && flops_per_matrix <= (int64_t(1) << 20)) {
    std::exception_ptr error;  // an exception must not leave the parallel region
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t bi = 0; bi < nb; ++bi) {
      try {
        fn(bi);
      } catch (...) {
#pragma omp critical(mlaudit_matmul_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    for (int64_t bi = 0; bi < nb; ++bi) fn(bi);
  }
}


void matmul_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& a = float_input(ctx, in, 0);
  const Tensor& b = float_input(ctx, in, 1);
  MatMulPlan p = matmul_plan(ctx, a.shape(), b.shape());
  // Every element is written below (sgemm with beta = 0 writes C, zeros when k = 0).
  Tensor y = Tensor::uninitialized(DType::Float32, p.out_shape);
  int64_t nb = shape_numel(p.batch);
  // Common case: A batched [.., M, K], B a plain matrix: one GEMM over all rows.
  // Row-invariant products (cpu/row_gemm.h): a row's output does not depend on the batch.
  if (p.b_batch.empty() && (p.a_batch == p.batch)) {
    const std::shared_ptr<const PackedB> pb = packed_weight(ctx.node, b, p.n, false, p.k, p.n);
    row_gemm(nb * p.m, a.f32(), p.k, *pb, 1.f, false, y.f32(), p.n);
  } else {
    for_each_matrix(nb, p.m * p.n * p.k, [&](int64_t bi) {
      const float* pa = a.f32() + batch_offset(bi, p.batch, p.a_batch) * p.m * p.k;
      const std::shared_ptr<const PackedB> pb =
          pack_b(b.f32() + batch_offset(bi, p.batch, p.b_batch) * p.k * p.n, p.n, false, p.k, p.n);
      row_gemm(p.m, pa, p.k, *pb, 1.f, false, y.f32() + bi * p.m * p.n, p.n);
    });
  }
  out[0] = y;
}

void matmul_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!g[0]) return;
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  MatMulPlan p = matmul_plan(ctx, a.shape(), b.shape());
  const Tensor& gy = *g[0];
  int64_t nb = shape_numel(p.batch);
  // Gradients in the broadcast batch shape, then reduced to each operand.
  if (need[0]) {
    // Row i of dA = row i of G times B^T (N x K), row-invariant as the forward.
    Tensor ga = Tensor::uninitialized(DType::Float32, [&] { Shape s = p.batch; s.push_back(p.m); s.push_back(p.k); return s; }());
    if (p.b_batch.empty()) {
      const std::shared_ptr<const PackedB> pbt = packed_weight(ctx.node, b, p.n, true, p.n, p.k);
      row_gemm(nb * p.m, gy.f32(), p.n, *pbt, 1.f, false, ga.f32(), p.k);
    } else {
      for_each_matrix(nb, p.m * p.n * p.k, [&](int64_t bi) {
        const std::shared_ptr<const PackedB> pbt =
            pack_b(b.f32() + batch_offset(bi, p.batch, p.b_batch) * p.k * p.n, p.n, true, p.n, p.k);
        row_gemm(p.m, gy.f32() + bi * p.m * p.n, p.n, *pbt, 1.f, false, ga.f32() + bi * p.m * p.k, p.k);
      });
    }
    Shape a2 = p.a_batch;
    a2.push_back(p.m);
    a2.push_back(p.k);
    gin[0] = reduce_to_shape(ga, a2).reshape(a.shape());
  }
  if (need[1]) {
    Tensor gb(DType::Float32, [&] { Shape s = p.batch; s.push_back(p.k); s.push_back(p.n); return s; }());
    for_each_matrix(nb, p.m * p.n * p.k, [&](int64_t bi) {
      const float* pa = a.f32() + batch_offset(bi, p.batch, p.a_batch) * p.m * p.k;
      sgemm(true, false, p.k, p.n, p.m, 1.f, pa, p.k, gy.f32() + bi * p.m * p.n, p.n, 0.f, gb.f32() + bi * p.k * p.n, p.n);
    });
    Shape b2 = p.b_batch;
    b2.push_back(p.k);
    b2.push_back(p.n);
    gin[1] = reduce_to_shape(gb, b2).reshape(b.shape());
  }
}

// ---------------- Conv (oneDNN) ----------------

using ConvParams = Window2d;

// 1-D convolution (NCW, PyTorch Conv1d) runs as 2-D with H = 1: the plain layouts coincide.
ConvParams conv_params(const OpContext& ctx, const Tensor& x, const Tensor& w) {
  return conv_window_1d_or_2d(ctx, x.shape(), w.shape());
}

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

// oneDNN primitives, cached per shape. The primitive picks its own (blocked)
// layouts ("any"); user tensors are plain NCHW/OIHW and are reordered in and out.
// What one forward execution needs besides the primitive, built at its first run and reused:
// memory objects over the caller's tensors (their data handles set per call), the reorder
// buffers and primitives when the primitive's layouts differ from the tensors', the arguments.
struct ConvRun {
  bool ready = false;
  dnnl::memory user_src, user_dst, bias, src_tmp, dst_tmp;
  dnnl::reorder src_reorder, dst_reorder;
  bool reorder_src = false, reorder_dst = false;
  std::unordered_map<int, dnnl::memory> args;
};

struct ConvPrims {
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_pd;
  std::unique_ptr<dnnl::convolution_backward_data> bwd;
  ConvRun runs[4];  // by (input blocked, output blocked)
  dnnl::memory::desc wei_user;  // the weights' plain OIHW / GOIHW descriptor
  std::mutex mu;  // one execution at a time per entry (scratchpad and ConvRun are per entry)
};

// The calling thread's oneDNN stream (in-order, CPU: executions complete before they return).
dnnl::stream& cpu_stream();

// What a forward primitive computes besides the convolution: its post-op, Relu
// (eltwise_relu, NaN -> 0 like the Relu op) for a forward-only node with a fused Relu (a
// gradient graph keeps the output before the mask). No clip post-op: oneDNN's eltwise_clip
// turns NaN into a bound, ONNX Clip keeps it (apply_fused_clip runs after the primitive instead).
struct ConvEpilogue {
  bool relu = false;
};

using ConvKey = std::array<int64_t, 20>;

ConvKey conv_key(const ConvParams& p, bool bias, const ConvEpilogue& e) {
  return {p.n,  p.c,  p.h,  p.w,  p.oc, p.kh, p.kw, p.oh, p.ow,        p.group,     p.sh,        p.sw,
          p.dh, p.dw, p.pt, p.pl, p.pb, p.pr, bias, e.relu};
}

dnnl::memory::desc md(const dnnl::memory::dims& d, dnnl::memory::format_tag tag) {
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, tag);
}

struct ConvDescs {
  dnnl::memory::desc src, wei, bias, dst;          // user (plain) layouts
  dnnl::memory::desc src_any, wei_any, dst_any;    // let the primitive choose
  dnnl::memory::dims strides, dil, pl, pr;
};

ConvDescs conv_descs(const ConvParams& p) {
  using tag = dnnl::memory::format_tag;
  ConvDescs d;
  dnnl::memory::dims src_dims{p.n, p.c, p.h, p.w}, dst_dims{p.n, p.oc, p.oh, p.ow};
  dnnl::memory::dims wei_dims = p.group == 1 ? dnnl::memory::dims{p.oc, p.c, p.kh, p.kw}
                                             : dnnl::memory::dims{p.group, p.oc / p.group, p.c / p.group, p.kh, p.kw};
  d.src = md(src_dims, tag::nchw);
  d.wei = md(wei_dims, p.group == 1 ? tag::oihw : tag::goihw);
  d.bias = md({p.oc}, tag::x);
  d.dst = md(dst_dims, tag::nchw);
  d.src_any = md(src_dims, tag::any);
  d.wei_any = md(wei_dims, tag::any);
  d.dst_any = md(dst_dims, tag::any);
  d.strides = {p.sh, p.sw};
  d.dil = {p.dh - 1, p.dw - 1};  // oneDNN counts dilation from 0
  d.pl = {p.pt, p.pl};
  d.pr = {p.pb, p.pr};
  return d;
}

ConvPrims& conv_prims(const ConvParams& p, bool bias, const ConvEpilogue& e = {}) {
  static std::mutex mu;
  static std::map<ConvKey, std::unique_ptr<ConvPrims>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = conv_key(p, bias, e);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  ConvDescs d = conv_descs(p);
  auto prims = std::make_unique<ConvPrims>();
  // forward_training even for forward-only nodes: oneDNN 2.6 then picks its blocked-layout jit
  // kernels; with forward_inference it takes brgconv on nhwc, measured 1.3x slower on ResNet-18
  // at batch 64 (its 512-channel 2x2 convolutions 3x slower) and no faster at batch 1.
  const auto prop = dnnl::prop_kind::forward_training;
  auto desc = bias ? dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                     d.bias, d.dst_any, d.strides, d.dil, d.pl, d.pr)
                   : dnnl::convolution_forward::desc(prop, dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                     d.dst_any, d.strides, d.dil, d.pl, d.pr);
  dnnl::primitive_attr attr;
  if (e.relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  prims->fwd_pd = dnnl::convolution_forward::primitive_desc(desc, attr, cpu_engine());
  prims->wei_user = d.wei;
  prims->fwd = dnnl::convolution_forward(prims->fwd_pd);
  if (cache.size() > 256) cache.clear();  // bound memory when shapes keep changing
  auto& ref = *prims;
  cache[key] = std::move(prims);
  return ref;
}

// A plain NCHW descriptor in oneDNN's nChw{b}c order (cpu/layout.h); b = 0: unchanged.
dnnl::memory::desc blocked_desc(const dnnl::memory::desc& plain, int64_t b) {
  return b == 0 ? plain : md(plain.dims(), b == 16 ? dnnl::memory::format_tag::nChw16c : dnnl::memory::format_tag::nChw8c);
}

// `user` viewed in `want`'s layout: the same memory when layouts agree, else a reordered copy.
dnnl::memory to_layout(const dnnl::memory& user, const dnnl::memory::desc& want, dnnl::stream& s) {
  if (user.get_desc() == want) return user;
  dnnl::memory m(want, cpu_engine());
  dnnl::reorder(user, m).execute(s, const_cast<dnnl::memory&>(user), m);
  return m;
}

// Relu fused into this Conv by fuse_cpu_graph (cpu/fusion.h): the node's output is the Relu's.
bool fused_relu(const Node& n) { return n.get_int(kFusedReluAttribute, 0) != 0; }

// A convolution's weights in the layout its primitive wants, reordered once per constant weight
// tensor and layout (cpu/weight_cache.h).
struct ReorderedWeights {
  dnnl::memory::desc desc;
  dnnl::memory mem;
};

dnnl::memory weights_in_layout(const Node& node, const Tensor& w, const dnnl::memory::desc& user_desc,
                               const dnnl::memory::desc& want, dnnl::stream& s) {
  auto user = [&] { return dnnl::memory(user_desc, cpu_engine(), const_cast<float*>(w.f32())); };
  if (user_desc == want) return user();
  if (!node.get_int(kConstWeightsAttribute, 0) || !w.storage()) return to_layout(user(), want, s);
  static WeightCache<ReorderedWeights> cache;
  return cache
      .get(
          w, [&](const ReorderedWeights& r) { return r.desc == want; },
          [&] {
            dnnl::memory m = to_layout(user(), want, s);
            s.wait();
            return ReorderedWeights{want, m};
          },
          [](const ReorderedWeights& r) { return r.desc.get_size(); })
      .mem;
}

// The epilogue of a forward Conv node: post-ops only in forward-only graphs
// (fuse_cpu_inference_graph marks their convolutions).
ConvEpilogue conv_epilogue(const Node& n) {
  return ConvEpilogue{n.get_int(kInferenceAttribute, 0) != 0 && fused_relu(n)};
}

// Applies the fused Clip of a node to y (the paths that do not run it as a post-op).
void apply_fused_clip(const Node& n, Tensor& y) {
  if (!n.has(kFusedClipAttribute)) return;
  auto b = n.get_floats(kFusedClipAttribute);
  if (b.size() != 2) return;
  const float lo = b[0], hi = b[1];
  float* py = y.f32();
  const int64_t count = y.numel();
#pragma omp parallel for simd if (parallel : count > 262144) schedule(static)
  for (int64_t i = 0; i < count; ++i) py[i] = std::min(std::max(py[i], lo), hi);
}

void conv_fwd_plain(const OpContext& ctx, const Inputs& in, Tensor& y);

void maxpool_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out);

void conv_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& w = float_input(ctx, in, 1);
  bool has_bias = in.size() > 2 && in[2] && !in[2]->empty();
  ConvParams p = conv_params(ctx, x, w);
  if (has_bias && (float_input(ctx, in, 2).rank() != 1 || in[2]->numel() != p.oc))
    op_error(ctx, fmt::format("bias of shape {} is not [{}] (the output channels)", shape_str(in[2]->shape()), p.oc));
  const bool pool2 = ctx.node.get_int(kFusedMaxPoolAttribute, 0) != 0;
  if (pool2 && p.n > 0 && p.spatial_rank == 2 && p.oh >= 2 && p.ow >= 2 && direct_conv_suits(p)) {
    Tensor y = Tensor::uninitialized(DType::Float32, Shape{p.n, p.oc, p.oh / 2, p.ow / 2});
    direct_conv_forward(p, x.f32(), w.f32(), has_bias ? in[2]->f32() : nullptr, fused_relu(ctx.node), y.f32(), true);
    apply_fused_clip(ctx.node, y);  // clip is monotone: clipping the pooled maxima is exact
    out[0] = y;
    return;
  }
  Tensor y = Tensor::uninitialized(DType::Float32, window_output_shape(p));
  conv_fwd_plain(ctx, in, y);
  if (pool2) {
    // Not on the direct path: the convolution, then the MaxPool op itself (the node that
    // fuse_cpu_inference_graph took in had no other attributes than defaults).
    Node pool;
    pool.name = ctx.node.name + "/maxpool";
    pool.op_type = "MaxPool";
    pool.since_version = 12;
    pool.attributes["kernel_shape"] = Attribute::of_ints({2, 2});
    pool.attributes["strides"] = Attribute::of_ints({2, 2});
    std::vector<Tensor> pooled(1);
    maxpool_fwd(OpContext{pool, ctx.opset}, Inputs{&y}, pooled);
    out[0] = pooled[0];
    return;
  }
  out[0] = y;
}

void conv_fwd_plain(const OpContext& ctx, const Inputs& in, Tensor& y) {
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& w = float_input(ctx, in, 1);
  bool has_bias = in.size() > 2 && in[2] && !in[2]->empty();
  ConvParams p = conv_params(ctx, x, w);
  if (p.n == 0) return;
  const bool relu = fused_relu(ctx.node);
  if (direct_conv_suits(p) && !ctx.node.get_int(kOneDnnAttribute, 0)) {
    direct_conv_forward(p, x.f32(), w.f32(), has_bias ? in[2]->f32() : nullptr, relu, y.f32());
    apply_fused_clip(ctx.node, y);
    return;
  }
  const ConvEpilogue epi = conv_epilogue(ctx.node);
  ConvPrims& prims = conv_prims(p, has_bias, epi);
  // Channel-blocked input / output (cpu/layout.h): the same dims in oneDNN's nChw{B}c order.
  const int64_t bin = blocked_input(ctx.node, 0), bout = blocked_output(ctx.node, 0);
  if ((bin && (p.spatial_rank != 2 || p.c % bin)) || (bout && (p.spatial_rank != 2 || p.oc % bout)))
    op_error(ctx, "internal: a channel-blocked tensor whose channels are not a multiple of the block");
  auto& eng = cpu_engine();
  {
    std::lock_guard<std::mutex> lock(prims.mu);
    dnnl::stream& s = cpu_stream();
    ConvRun& r = prims.runs[(bin ? 2 : 0) + (bout ? 1 : 0)];
    if (!r.ready) {
      ConvDescs d = conv_descs(p);
      d.src = blocked_desc(d.src, bin);
      d.dst = blocked_desc(d.dst, bout);
      r.user_src = dnnl::memory(d.src, eng, DNNL_MEMORY_NONE);
      r.user_dst = dnnl::memory(d.dst, eng, DNNL_MEMORY_NONE);
      if (has_bias) r.bias = dnnl::memory(d.bias, eng, DNNL_MEMORY_NONE);
      r.reorder_src = prims.fwd_pd.src_desc() != d.src;
      r.reorder_dst = prims.fwd_pd.dst_desc() != d.dst;
      if (r.reorder_src) {
        r.src_tmp = dnnl::memory(prims.fwd_pd.src_desc(), eng);
        r.src_reorder = dnnl::reorder(r.user_src, r.src_tmp);
      }
      if (r.reorder_dst) {
        r.dst_tmp = dnnl::memory(prims.fwd_pd.dst_desc(), eng);
        r.dst_reorder = dnnl::reorder(r.dst_tmp, r.user_dst);
      }
      r.args = {{DNNL_ARG_SRC, r.reorder_src ? r.src_tmp : r.user_src}, {DNNL_ARG_DST, r.reorder_dst ? r.dst_tmp : r.user_dst}};
      if (has_bias) r.args[DNNL_ARG_BIAS] = r.bias;
      r.ready = true;
    }
    r.user_src.set_data_handle(const_cast<float*>(x.f32()));
    r.user_dst.set_data_handle(y.f32());
    if (has_bias) r.bias.set_data_handle(const_cast<float*>(float_input(ctx, in, 2).f32()));
    r.args[DNNL_ARG_WEIGHTS] = weights_in_layout(ctx.node, w, prims.wei_user, prims.fwd_pd.weights_desc(), s);
    if (r.reorder_src) r.src_reorder.execute(s, r.user_src, r.src_tmp);
    prims.fwd.execute(s, r.args);
    if (r.reorder_dst) r.dst_reorder.execute(s, r.dst_tmp, r.user_dst);
    s.wait();
    r.args.erase(DNNL_ARG_WEIGHTS);  // not kept alive past the call (non-constant weights)
  }
  if (relu && !epi.relu) {  // else done by the primitive's post-op
    float* py = y.f32();
    const int64_t count = y.numel();
#pragma omp parallel for simd if (parallel : count > 262144) schedule(static)
    for (int64_t i = 0; i < count; ++i) py[i] = py[i] > 0 ? py[i] : 0.f;
  }
  apply_fused_clip(ctx.node, y);  // after the Relu: the graph's order
}

// Weight gradient by direct accumulation (rarely needed: only when weights depend on an input).
void conv_weight_grad(const ConvParams& p, const Tensor& x, const Tensor& gy, Tensor& gw) {
  int64_t icg = p.c / p.group, ocg = p.oc / p.group;
  for (int64_t n = 0; n < p.n; ++n)
    for (int64_t o = 0; o < p.oc; ++o) {
      int64_t gidx = o / ocg;
      for (int64_t ic = 0; ic < icg; ++ic)
        for (int64_t ki = 0; ki < p.kh; ++ki)
          for (int64_t kj = 0; kj < p.kw; ++kj) {
            double acc = 0;
            for (int64_t oi = 0; oi < p.oh; ++oi) {
              int64_t hi = oi * p.sh - p.pt + ki * p.dh;
              if (hi < 0 || hi >= p.h) continue;
              for (int64_t oj = 0; oj < p.ow; ++oj) {
                int64_t wj = oj * p.sw - p.pl + kj * p.dw;
                if (wj < 0 || wj >= p.w) continue;
                acc += double(gy.f32()[((n * p.oc + o) * p.oh + oi) * p.ow + oj]) *
                       x.f32()[((n * p.c + gidx * icg + ic) * p.h + hi) * p.w + wj];
              }
            }
            gw.f32()[((o * icg + ic) * p.kh + ki) * p.kw + kj] += float(acc);
          }
    }
}

void conv_bwd(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& g, const std::vector<bool>& need,
              std::vector<Tensor>& gin) {
  if (!g[0]) return;
  const Tensor& x = *in[0];
  const Tensor& w = *in[1];
  ConvParams p = conv_params(ctx, x, w);
  bool has_bias = in.size() > 2 && in[2] && !in[2]->empty();
  // A fused Relu (fuse_cpu_graph): its output y is this node's output, and the gradient reaching
  // the convolution is gy * (y > 0 ? 1 : 0), Relu's backward on y's sign (y > 0 iff x > 0).
  const Tensor* relu_out = fused_relu(ctx.node) && outs.size() > 0 ? outs[0] : nullptr;
  if (fused_relu(ctx.node) && !relu_out) op_error(ctx, "fused Relu: the output is needed for the gradient");
  // Channel-blocked input / output (a gradient graph's blocked chain, cpu/layout.h): the
  // gradients of blocked values are blocked too; only the input gradient is taken there.
  const int64_t bin = blocked_input(ctx.node, 0), bout = blocked_output(ctx.node, 0);
  if ((bin || bout) && ((need.size() > 1 && need[1]) || (need.size() > 2 && need[2])))
    op_error(ctx, "internal: weight or bias gradient of a channel-blocked convolution");
  const bool direct = need[0] && p.n > 0 && !bin && !bout && direct_conv_backward_suits(p) &&
                      !ctx.node.get_int(kOneDnnAttribute, 0);
  Tensor masked;
  if (relu_out && !(direct && !need[1] && !(need.size() > 2 && need[2]))) {
    masked = Tensor::uninitialized(DType::Float32, g[0]->shape());
    const float* pg = g[0]->f32();
    const float* py = relu_out->f32();
    float* pm = masked.f32();
    for_float_blocks(masked.numel(), [&](int64_t b, int64_t m) { relu_mask_multiply(pg + b, py + b, pm + b, m); });
  }
  const Tensor& gy = masked.empty() ? *g[0] : masked;
  if (need[0] && direct) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
    direct_conv_backward_data(p, w.f32(), gy.f32(), masked.empty() && relu_out ? relu_out->f32() : nullptr, gin[0].f32());
  } else if (need[0]) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());  // oneDNN writes every element
    if (p.n > 0) {
      ConvPrims& prims = conv_prims(p, has_bias);
      ConvDescs d = conv_descs(p);
      auto& eng = cpu_engine();
      std::lock_guard<std::mutex> lock(prims.mu);
      if (!prims.bwd) {
        auto bd = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, d.src_any, d.wei_any,
                                                        d.dst_any, d.strides, d.dil, d.pl, d.pr);
        prims.bwd_pd = dnnl::convolution_backward_data::primitive_desc(bd, eng, prims.fwd_pd);
        prims.bwd = std::make_unique<dnnl::convolution_backward_data>(prims.bwd_pd);
      }
      dnnl::stream& s = cpu_stream();
      dnnl::memory user_diff_src(blocked_desc(d.src, bin), eng, gin[0].f32());
      dnnl::memory user_diff_dst(blocked_desc(d.dst, bout), eng, const_cast<float*>(gy.f32()));
      dnnl::memory wei = weights_in_layout(ctx.node, w, d.wei, prims.bwd_pd.weights_desc(), s);
      dnnl::memory diff_dst = to_layout(user_diff_dst, prims.bwd_pd.diff_dst_desc(), s);
      bool src_plain = prims.bwd_pd.diff_src_desc() == user_diff_src.get_desc();
      dnnl::memory diff_src = src_plain ? user_diff_src : dnnl::memory(prims.bwd_pd.diff_src_desc(), eng);
      prims.bwd->execute(s, {{DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_DST, diff_dst}});
      if (!src_plain) dnnl::reorder(diff_src, user_diff_src).execute(s, diff_src, user_diff_src);
      s.wait();
    }
  }
  if (need[1]) {
    gin[1] = Tensor(w.shape());
    conv_weight_grad(p, x, gy, gin[1]);
  }
  if (need.size() > 2 && need[2] && has_bias) {
    gin[2] = Tensor(in[2]->shape());
    for (int64_t n = 0; n < p.n; ++n)
      for (int64_t o = 0; o < p.oc; ++o)
        for (int64_t i = 0; i < p.oh * p.ow; ++i) gin[2].f32()[o] += gy.f32()[(n * p.oc + o) * p.oh * p.ow + i];
  }
}

// ---------------- Pooling ----------------

using PoolParams = Window2d;

// 1-D pooling (NCW, PyTorch MaxPool1d/AvgPool1d) runs as 2-D with H = 1. Attributes outside a
// version's schema are ignored: count_include_pad before AveragePool-7.
PoolParams pool_params(const OpContext& ctx, const Tensor& x) {
  PoolParams p = pool_window_1d_or_2d(ctx, x.shape());
  if (ctx.node.op_type == "AveragePool" && ctx.node.since_version > 0 && ctx.node.since_version < 7)
    p.count_include_pad = false;
  return p;
}

template <class F>
void for_each_window(const PoolParams& p, F f) {
  const int64_t planes = p.n * p.c;
#pragma omp parallel for if (planes * p.oh * p.ow > 16384) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc)
    for (int64_t oi = 0; oi < p.oh; ++oi)
      for (int64_t oj = 0; oj < p.ow; ++oj) f(pc, oi, oj);
}

// True when every window lies inside the input (no padding reached, e.g. 2x2/2 pooling).
bool windows_inside(const PoolParams& p) {
  return p.pt == 0 && p.pl == 0 && (p.oh - 1) * p.sh + (p.kh - 1) * p.dh < p.h && (p.ow - 1) * p.sw + (p.kw - 1) * p.dw < p.w;
}

// Calls f(flat) for each tap of window (oi, oj) inside the input, flat = row * W + column of
// the plane, in scan order (rows, then columns); stops early when f returns true.
template <class F>
void window_taps(const PoolParams& p, int64_t oi, int64_t oj, F f) {
  for (int64_t ki = 0; ki < p.kh; ++ki) {
    const int64_t r = oi * p.sh - p.pt + ki * p.dh;
    if (r < 0 || r >= p.h) continue;
    for (int64_t kj = 0; kj < p.kw; ++kj) {
      const int64_t c = oj * p.sw - p.pl + kj * p.dw;
      if (c >= 0 && c < p.w && f(r * p.w + c)) return;
    }
  }
}

// Argmax (flat index within the plane, first maximum in scan order) of window (oi, oj); -1 if empty.
__attribute__((always_inline)) inline int64_t window_argmax(const PoolParams& p, const float* plane, int64_t oi, int64_t oj, bool inside) {
  float best = -std::numeric_limits<float>::infinity();
  int64_t arg = -1;
  const int64_t h0 = oi * p.sh - p.pt, w0 = oj * p.sw - p.pl;
  if (inside && p.kh == 2 && p.kw == 2 && p.dh == 1 && p.dw == 1) {
    // 2x2 window (the common case), first maximum in scan order.
    const float* r0 = plane + h0 * p.w + w0;
    const float* r1 = r0 + p.w;
    int64_t base = h0 * p.w + w0;
    int64_t a = base;
    float m = r0[0];
    if (r0[1] > m) { m = r0[1]; a = base + 1; }
    if (r1[0] > m) { m = r1[0]; a = base + p.w; }
    if (r1[1] > m) { a = base + p.w + 1; }
    return a;
  }
  if (inside) {
    for (int64_t ki = 0; ki < p.kh; ++ki) {
      const float* row = plane + (h0 + ki * p.dh) * p.w + w0;
      for (int64_t kj = 0; kj < p.kw; ++kj) {
        float v = row[kj * p.dw];
        if (v > best || arg < 0) {
          best = v;
          arg = (h0 + ki * p.dh) * p.w + w0 + kj * p.dw;
        }
      }
    }
    return arg;
  }
  for (int64_t ki = 0; ki < p.kh; ++ki) {
    int64_t hi = h0 + ki * p.dh;
    if (hi < 0 || hi >= p.h) continue;
    for (int64_t kj = 0; kj < p.kw; ++kj) {
      int64_t wj = w0 + kj * p.dw;
      if (wj < 0 || wj >= p.w) continue;
      float v = plane[hi * p.w + wj];
      if (v > best || arg < 0) {
        best = v;
        arg = hi * p.w + wj;
      }
    }
  }
  return arg;
}

// MaxPool of a channel-blocked tensor (cpu/layout.h) into a blocked output: the b channels of a
// block side by side, each plane taking the values the plain paths below take, bit for bit:
// 2x2/2 windows inside the input as max(max(r0, r0'), max(r1, r1')), any other window as the
// scan-order fold m = v > m ? v : m from its first tap inside the input (-inf when none).
void maxpool_blocked(const PoolParams& p, int64_t b, bool inside, const float* px, float* py) {
  const int64_t CB = p.c / b, H = p.h, W = p.w, OH = p.oh, OW = p.ow;
  const bool two = inside && p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.dh == 1 && p.dw == 1;
#pragma omp parallel for collapse(2) if (p.n * p.c * OH * OW > 16384) schedule(static)
  for (int64_t nb = 0; nb < p.n * CB; ++nb)
    for (int64_t oi = 0; oi < OH; ++oi) {
      const float* plane = px + nb * H * W * b;
      float* orow = py + (nb * OH + oi) * OW * b;
      for (int64_t oj = 0; oj < OW; ++oj) {
        float* o = orow + oj * b;
        if (two) {
          const float* r0 = plane + (2 * oi * W + 2 * oj) * b;
          const float* r1 = r0 + W * b;
#pragma omp simd
          for (int64_t l = 0; l < b; ++l) o[l] = std::max(std::max(r0[l], r0[b + l]), std::max(r1[l], r1[b + l]));
          continue;
        }
        bool first = true;
        window_taps(p, oi, oj, [&](int64_t flat) {
          const float* v = plane + flat * b;
          if (first) {
            for (int64_t l = 0; l < b; ++l) o[l] = v[l];
            first = false;
            return false;
          }
#pragma omp simd
          for (int64_t l = 0; l < b; ++l) o[l] = v[l] > o[l] ? v[l] : o[l];
          return false;
        });
        if (first)
          for (int64_t l = 0; l < b; ++l) o[l] = -std::numeric_limits<float>::infinity();
      }
    }
}

void maxpool_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  PoolParams p = pool_params(ctx, x);
  Tensor y = Tensor::uninitialized(DType::Float32, window_output_shape(p));
  const float* px = x.f32();
  float* py = y.f32();
  Tensor idx;
  bool want_idx = out.size() > 1;
  if (want_idx) idx = Tensor(DType::Int64, y.shape());
  int64_t* pi = want_idx ? idx.i64() : nullptr;
  const bool col_major = ctx.node.get_int("storage_order", 0) != 0;
  const bool inside = windows_inside(p);
  const int64_t planes = p.n * p.c;
  if (const int64_t b = blocked_input(ctx.node, 0)) {
    if (pi || p.spatial_rank != 2 || p.c % b || b > 16 || blocked_output(ctx.node, 0) != b)
      op_error(ctx, "internal: channel-blocked MaxPool of shape " + shape_str(x.shape()));
    maxpool_blocked(p, b, inside, px, py);
    out[0] = y;
    return;
  }
  if (!pi && inside && p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.dh == 1 && p.dw == 1) {
    // 2x2/2 pooling without an indices output: a straight max over row pairs.
    const int64_t H = p.h, W = p.w, OH = p.oh, OW = p.ow;
#pragma omp parallel for if (planes * OH * OW > 16384) schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const float* plane = px + pc * H * W;
      float* o = py + pc * OH * OW;
      for (int64_t oi = 0; oi < OH; ++oi) {
        const float* r0 = plane + 2 * oi * W;
        const float* r1 = r0 + W;
        for (int64_t oj = 0; oj < OW; ++oj)
          o[oi * OW + oj] = std::max(std::max(r0[2 * oj], r0[2 * oj + 1]), std::max(r1[2 * oj], r1[2 * oj + 1]));
      }
    }
    out[0] = y;
    return;
  }
  if (!pi && p.spatial_rank == 2) {
    // Values only: per output row, the columns whose windows lie inside the input horizontally
    // are folded tap by tap (taps in scan order, each over the row's outputs side by side: the
    // same fold m = v > m ? v : m from the first tap inside as window_argmax, so the same bits);
    // the other columns go through window_argmax.
    int64_t lo = 0;
    while (lo < p.ow && lo * p.sw - p.pl < 0) ++lo;
    int64_t hi = lo;
    while (hi < p.ow && hi * p.sw - p.pl + (p.kw - 1) * p.dw < p.w) ++hi;
#pragma omp parallel for if (planes * p.oh * p.ow > 16384) schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const float* plane = px + pc * p.h * p.w;
      for (int64_t oi = 0; oi < p.oh; ++oi) {
        float* o = py + (pc * p.oh + oi) * p.ow;
        for (int64_t oj = 0; oj < p.ow; ++oj) {
          if (oj == lo && hi > lo) oj = hi;
          if (oj >= p.ow) break;
          const int64_t arg = window_argmax(p, plane, oi, oj, false);
          o[oj] = arg < 0 ? -std::numeric_limits<float>::infinity() : plane[arg];
        }
        if (hi <= lo) continue;
        bool first = true;
        for (int64_t ki = 0; ki < p.kh; ++ki) {
          const int64_t r = oi * p.sh - p.pt + ki * p.dh;
          if (r < 0 || r >= p.h) continue;
          for (int64_t kj = 0; kj < p.kw; ++kj) {
            const float* row = plane + r * p.w + lo * p.sw - p.pl + kj * p.dw;  // output column lo's tap
            const int64_t sw = p.sw, n = hi - lo;
            float* ol = o + lo;
            if (first) {
              for (int64_t j = 0; j < n; ++j) ol[j] = row[j * sw];
              first = false;
              continue;
            }
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
              const float v = row[j * sw];
              ol[j] = v > ol[j] ? v : ol[j];
            }
          }
        }
        if (first)
          for (int64_t oj = lo; oj < hi; ++oj) o[oj] = -std::numeric_limits<float>::infinity();
      }
    }
    out[0] = y;
    return;
  }
#pragma omp parallel for if (planes * p.oh * p.ow > 16384) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    const float* plane = px + pc * p.h * p.w;
    for (int64_t oi = 0; oi < p.oh; ++oi)
      for (int64_t oj = 0; oj < p.ow; ++oj) {
        int64_t arg = window_argmax(p, plane, oi, oj, inside);
        int64_t o = (pc * p.oh + oi) * p.ow + oj;
        py[o] = arg < 0 ? -std::numeric_limits<float>::infinity() : plane[arg];
        // Indices output: flat index into the input, row-major (storage_order 0) or column-major (1).
        if (pi) {
          int64_t flat = arg;
          if (arg >= 0 && col_major) flat = (arg % p.w) * p.h + arg / p.w;
          pi[o] = arg < 0 ? -1 : pc * p.h * p.w + flat;
        }
      }
  }
  out[0] = y;
  if (want_idx) out[1] = idx;
}

void maxpool_bwd(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& g, const std::vector<bool>& need,
                 std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  PoolParams p = pool_params(ctx, x);
  if (const int64_t b = blocked_input(ctx.node, 0)) {
    // Channel-blocked (cpu/layout.h): each window's first maximum in scan order per channel,
    // b channels side by side, the gradient added into zeros in (oi, oj) order as below.
    if (p.spatial_rank != 2 || p.c % b || b > 16) op_error(ctx, "internal: channel-blocked MaxPool of shape " + shape_str(x.shape()));
    gin[0] = Tensor(x.shape());
    const float* px = x.f32();
    const float* pg = g[0]->f32();
    float* pd = gin[0].f32();
    const int64_t H = p.h, W = p.w, OH = p.oh, OW = p.ow;
#pragma omp parallel for if (p.n * p.c * OH * OW > 16384) schedule(static)
    for (int64_t nb = 0; nb < p.n * (p.c / b); ++nb) {
      const float* plane = px + nb * H * W * b;
      float* d = pd + nb * H * W * b;
      for (int64_t oi = 0; oi < OH; ++oi)
        for (int64_t oj = 0; oj < OW; ++oj) {
          float m[16];
          int64_t arg[16];
          bool first = true;
          window_taps(p, oi, oj, [&](int64_t flat) {
            const int64_t at = flat * b;
#pragma omp simd
            for (int64_t l = 0; l < b; ++l) {  // selects, so the lanes vectorise
              const float v = plane[at + l];
              const bool take = first || v > m[l];
              m[l] = take ? v : m[l];
              arg[l] = take ? at + l : arg[l];
            }
            first = false;
            return false;
          });
          if (first) continue;  // a window with no tap inside the input
          const float* gg = pg + ((nb * OH + oi) * OW + oj) * b;
          for (int64_t l = 0; l < b; ++l) d[arg[l]] += gg[l];
        }
    }
    return;
  }
  const bool inside = windows_inside(p);
  const bool two = inside && p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.dh == 1 && p.dw == 1;
  gin[0] = two ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor(x.shape());  // two: every cell written
  const float* px = x.f32();
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  // The gradient goes to the first maximum of each window (as PyTorch); windows
  // may overlap, so each plane is scattered by one thread.
  const int64_t planes = p.n * p.c;
  if (two) {
    // 2x2/2 windows do not overlap: each window writes its four cells in one pass (0 + g at its
    // first maximum in scan order, 0 elsewhere: the values of adding g into zeros), the row and
    // column no window covers (odd H or W) are zeroed.
    const int64_t H = p.h, W = p.w, OH = p.oh, OW = p.ow;
#pragma omp parallel for if (planes > 64) schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const float* plane = px + pc * H * W;
      float* d = pd + pc * H * W;
      const float* gg = pg + pc * OH * OW;
      for (int64_t oi = 0; oi < OH; ++oi) {
        const float* r0 = plane + 2 * oi * W;
        const float* r1 = r0 + W;
        float* d0 = d + 2 * oi * W;
        float* d1 = d0 + W;
        const float* go = gg + oi * OW;
        // Branch-free (selects only), so the windows of a row vectorise.
#pragma omp simd
        for (int64_t oj = 0; oj < OW; ++oj) {
          const int64_t c = 2 * oj;
          const float x0 = r0[c], x1 = r0[c + 1], x2 = r1[c], x3 = r1[c + 1];
          float m = x0;
          int a = 0;
          const bool t1 = x1 > m;
          m = t1 ? x1 : m;
          a = t1 ? 1 : a;
          const bool t2 = x2 > m;
          m = t2 ? x2 : m;
          a = t2 ? 2 : a;
          a = x3 > m ? 3 : a;
          const float v = 0.f + go[oj];
          d0[c] = a == 0 ? v : 0.f;
          d0[c + 1] = a == 1 ? v : 0.f;
          d1[c] = a == 2 ? v : 0.f;
          d1[c + 1] = a == 3 ? v : 0.f;
        }
        for (int64_t c = 2 * OW; c < W; ++c) d0[c] = d1[c] = 0.f;
      }
      std::fill(d + 2 * OH * W, d + H * W, 0.f);
    }
    return;
  }
  // With the forward's values at hand, a window's first maximum in scan order is its first tap
  // equal to the value (the fold m = v > m ? v : m moves only to a strictly larger value), or
  // its first tap when the value is NaN (only a NaN first tap leaves the fold at NaN).
  const Tensor* y = outs.size() > 0 ? outs[0] : nullptr;
  if (y && y->dtype() == DType::Float32 && y->numel() == planes * p.oh * p.ow) {
    const float* pv = y->f32();
#pragma omp parallel for if (planes > 64) schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const float* plane = px + pc * p.h * p.w;
      float* d = pd + pc * p.h * p.w;
      for (int64_t oi = 0; oi < p.oh; ++oi) {
        for (int64_t oj = 0; oj < p.ow; ++oj) {
          const int64_t o = (pc * p.oh + oi) * p.ow + oj;
          const float m = pv[o];
          const bool nan = std::isnan(m);
          int64_t arg = -1;
          window_taps(p, oi, oj, [&](int64_t flat) {
            if (nan || plane[flat] == m) arg = flat;
            return arg >= 0;
          });
          if (arg >= 0) d[arg] += pg[o];
        }
      }
    }
    return;
  }
#pragma omp parallel for if (planes > 64) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    const float* plane = px + pc * p.h * p.w;
    for (int64_t oi = 0; oi < p.oh; ++oi)
      for (int64_t oj = 0; oj < p.ow; ++oj) {
        int64_t arg = window_argmax(p, plane, oi, oj, inside);
        if (arg >= 0) pd[pc * p.h * p.w + arg] += pg[(pc * p.oh + oi) * p.ow + oj];
      }
  }
}

// Divisor of an average-pool window: the window clipped to the input, or to the
// padded input when count_include_pad (never counting ceil-mode overhang).
int64_t avg_divisor(const PoolParams& p, int64_t oi, int64_t oj) {
  int64_t h0 = oi * p.sh - p.pt, w0 = oj * p.sw - p.pl;
  int64_t h1 = h0 + (p.kh - 1) * p.dh + 1, w1 = w0 + (p.kw - 1) * p.dw + 1;
  int64_t lo_h = p.count_include_pad ? -p.pt : 0, hi_h = p.count_include_pad ? p.h + p.pb : p.h;
  int64_t lo_w = p.count_include_pad ? -p.pl : 0, hi_w = p.count_include_pad ? p.w + p.pr : p.w;
  int64_t ch = 0, cw = 0;
  for (int64_t k = 0; k < p.kh; ++k) {
    int64_t hi = h0 + k * p.dh;
    if (hi >= lo_h && hi < hi_h) ++ch;
  }
  for (int64_t k = 0; k < p.kw; ++k) {
    int64_t wj = w0 + k * p.dw;
    if (wj >= lo_w && wj < hi_w) ++cw;
  }
  (void)h1;
  (void)w1;
  return std::max<int64_t>(1, ch * cw);
}

// The kernel taps [first, last) of window `o` that land inside an axis of `size` (taps at
// o * stride - pad + k * dil, k = 0..kernel-1; in range for one contiguous run of k).
std::pair<int64_t, int64_t> taps_inside(int64_t o, int64_t stride, int64_t pad, int64_t dil, int64_t kernel,
                                        int64_t size) {
  int64_t first = kernel, last = 0;
  for (int64_t k = 0; k < kernel; ++k) {
    const int64_t at = o * stride - pad + k * dil;
    if (at < 0 || at >= size) continue;
    first = std::min(first, k);
    last = k + 1;
  }
  return {first, std::max(first, last)};
}

// Per-window tap ranges and divisors, shared by every plane.
struct AvgWindows {
  std::vector<std::pair<int64_t, int64_t>> rows, cols;  // per oi, per oj
  std::vector<double> divisor;                          // per (oi, oj)
  explicit AvgWindows(const PoolParams& p) {
    for (int64_t oi = 0; oi < p.oh; ++oi) rows.push_back(taps_inside(oi, p.sh, p.pt, p.dh, p.kh, p.h));
    for (int64_t oj = 0; oj < p.ow; ++oj) cols.push_back(taps_inside(oj, p.sw, p.pl, p.dw, p.kw, p.w));
    for (int64_t oi = 0; oi < p.oh; ++oi)
      for (int64_t oj = 0; oj < p.ow; ++oj) divisor.push_back(double(avg_divisor(p, oi, oj)));
  }
};

void avgpool_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  PoolParams p = pool_params(ctx, x);
  Tensor y = Tensor::uninitialized(DType::Float32, window_output_shape(p));
  const float* px = x.f32();
  float* py = y.f32();
  // Each window sums its taps inside the input in scan order (rows, then columns) in double,
  // divided by avg_divisor: the taps that fall in padding would add zeros. A row of windows is
  // summed together, tap by tap (ki, then kj), into one double per window: every window still
  // adds its own taps in that order from 0, and the loop over the windows of a tap vectorizes.
  const AvgWindows win(p);
  const int64_t planes = p.n * p.c;
  // Per column tap kj, the windows oj whose tap kj lies inside the row: [lo, hi).
  std::vector<std::pair<int64_t, int64_t>> col_windows(p.kw);
  for (int64_t kj = 0; kj < p.kw; ++kj) {
    int64_t lo = p.ow, hi = 0;
    for (int64_t oj = 0; oj < p.ow; ++oj)
      if (kj >= win.cols[oj].first && kj < win.cols[oj].second) lo = std::min(lo, oj), hi = oj + 1;
    col_windows[kj] = {lo, std::max(lo, hi)};
  }
#pragma omp parallel if (planes * p.oh * p.ow > 16384)
  {
    std::vector<double> acc(p.ow);
#pragma omp for schedule(static)
    for (int64_t pc = 0; pc < planes; ++pc) {
      const float* plane = px + pc * p.h * p.w;
      float* o = py + pc * p.oh * p.ow;
      for (int64_t oi = 0; oi < p.oh; ++oi) {
        const auto [r0, r1] = win.rows[oi];
        double* a = acc.data();
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t ki = r0; ki < r1; ++ki) {
          const float* row = plane + (oi * p.sh - p.pt + ki * p.dh) * p.w - p.pl;
          for (int64_t kj = 0; kj < p.kw; ++kj) {
            const auto [lo, hi] = col_windows[kj];
            const float* t = row + kj * p.dw;
            const int64_t sw = p.sw;
            for (int64_t oj = lo; oj < hi; ++oj) a[oj] += t[oj * sw];
          }
        }
        const double* d = win.divisor.data() + oi * p.ow;
        for (int64_t oj = 0; oj < p.ow; ++oj) o[oi * p.ow + oj] = float(a[oj] / d[oj]);
      }
    }
  }
  out[0] = y;
}

void avgpool_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                 std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  PoolParams p = pool_params(ctx, x);
  gin[0] = Tensor(x.shape());
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  const int64_t planes = p.n * p.c;
  const AvgWindows win(p);
  std::vector<float> divisor(win.divisor.begin(), win.divisor.end());
#pragma omp parallel for if (planes > 64) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    float* plane = pd + pc * p.h * p.w;
    for (int64_t oi = 0; oi < p.oh; ++oi) {
      const auto [r0, r1] = win.rows[oi];
      for (int64_t oj = 0; oj < p.ow; ++oj) {
        const auto [c0, c1] = win.cols[oj];
        const float v = pg[(pc * p.oh + oi) * p.ow + oj] / divisor[oi * p.ow + oj];
        for (int64_t ki = r0; ki < r1; ++ki) {
          const int64_t at = (oi * p.sh - p.pt + ki * p.dh) * p.w + oj * p.sw - p.pl;
          for (int64_t kj = c0; kj < c1; ++kj) plane[at + kj * p.dw] += v;
        }
      }
    }
  }
}

// ---------------- GlobalAveragePool / GlobalMaxPool (every version: 1, 22) ----------------
// Over all spatial axes of [N, C, D1, ...]: the output keeps the rank with unit spatial dims.

// Planes (N*C) and plane size of a [N, C, ...] input.
void global_pool_dims(const OpContext& ctx, const Tensor& x, int64_t& planes, int64_t& area) {
  if (x.rank() < 3) op_error(ctx, fmt::format("expects [N,C,D1,...], got {}", shape_str(x.shape())));
  planes = x.shape()[0] * x.shape()[1];
  area = planes ? x.numel() / planes : 0;
}

Shape global_pool_shape(const Shape& x) {
  Shape s = x;
  for (size_t i = 2; i < s.size(); ++i) s[i] = 1;
  return s;
}

void gap_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  int64_t planes, area;
  global_pool_dims(ctx, x, planes, area);
  Tensor y(global_pool_shape(x.shape()));
  const float* px = x.f32();
  float* py = y.f32();
  if (const int64_t b = blocked_input(ctx.node, 0)) {
    // Channel-blocked input (cpu/layout.h): plane (n, c) is every b-th float from its block's
    // start; the same sum in the same order as below.
    if (x.rank() != 4 || x.dim(1) % b || b > 16)
      op_error(ctx, "internal: channel-blocked input of shape " + shape_str(x.shape()));
    // Each block's b planes are summed side by side (b running sums, each in index order).
    const int64_t blocks = planes / b;
#pragma omp parallel for if (planes * area > 65536) schedule(static)
    for (int64_t k = 0; k < blocks; ++k) {
      const float* base = px + k * b * area;
      double acc[16] = {};
      for (int64_t i = 0; i < area; ++i)
        for (int64_t l = 0; l < b; ++l) acc[l] += base[i * b + l];
      for (int64_t l = 0; l < b; ++l) py[k * b + l] = area ? float(acc[l] / area) : 0.f;
    }
    out[0] = y;
    return;
  }
#pragma omp parallel for if (planes * area > 65536) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    double acc = 0;
    for (int64_t i = 0; i < area; ++i) acc += px[pc * area + i];
    py[pc] = area ? float(acc / area) : 0.f;
  }
  out[0] = y;
}

void gap_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  int64_t planes, area;
  global_pool_dims(ctx, x, planes, area);
  gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
  float* pg = gin[0].f32();
  const float* gy = g[0]->f32();
  if (const int64_t b = blocked_input(ctx.node, 0)) {  // channel-blocked input: its gradient too
    if (x.rank() != 4 || x.dim(1) % b) op_error(ctx, "internal: channel-blocked input of shape " + shape_str(x.shape()));
#pragma omp parallel for if (planes * area > 262144) schedule(static)
    for (int64_t k = 0; k < planes / b; ++k)
      for (int64_t i = 0; i < area; ++i)
        for (int64_t l = 0; l < b; ++l) pg[(k * area + i) * b + l] = gy[k * b + l] / float(area);
    return;
  }
#pragma omp parallel for if (planes * area > 262144) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    const float v = gy[pc] / float(area);
    std::fill_n(pg + pc * area, area, v);
  }
}

// First maximum of a plane (the element the gradient flows to, as for MaxPool); -1 when empty.
int64_t plane_argmax(const float* p, int64_t area) {
  int64_t arg = area > 0 ? 0 : -1;
  for (int64_t i = 1; i < area; ++i)
    if (p[i] > p[arg]) arg = i;
  return arg;
}

void gmp_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  int64_t planes, area;
  global_pool_dims(ctx, x, planes, area);
  if (area == 0 && planes > 0) op_error(ctx, fmt::format("empty spatial dims in {}", shape_str(x.shape())));
  Tensor y(global_pool_shape(x.shape()));
  const float* px = x.f32();
  float* py = y.f32();
#pragma omp parallel for if (planes * area > 65536) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) py[pc] = px[pc * area + plane_argmax(px + pc * area, area)];
  out[0] = y;
}

void gmp_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  int64_t planes, area;
  global_pool_dims(ctx, x, planes, area);
  gin[0] = Tensor(x.shape());
  const float* px = x.f32();
  const float* gy = g[0]->f32();
  float* pg = gin[0].f32();
  for (int64_t pc = 0; pc < planes; ++pc) {
    int64_t arg = plane_argmax(px + pc * area, area);
    if (arg >= 0) pg[pc * area + arg] = gy[pc];
  }
}

// ---------------- BatchNormalization (inference) ----------------
// y = scale * (x - mean) / sqrt(var + epsilon) + B, per channel (axis 1) of [N, C, D1, ...].
// Versions 1, 6, 7 (spatial attribute; is_test ignored: inference always), 9, 14, 15
// (training_mode=1, batch statistics, is refused). spatial=0 (before 9): scale, B, mean and
// var have shape [C, D1, ...], one set of statistics per activation instead of per channel.

struct BnLayout {
  int64_t n, c, area;
  int64_t params;  ///< coefficients per sample: c (spatial) or c * area (spatial=0)
};

BnLayout bn_layout(const OpContext& ctx, const Tensor& x) {
  if (x.rank() < 2) op_error(ctx, fmt::format("expects [N,C,...], got {}", shape_str(x.shape())));
  if (ctx.node.get_int("training_mode", 0) != 0)
    op_error(ctx, "training_mode=1 (normalising with batch statistics) is not supported; export the model in eval mode");
  BnLayout l;
  l.n = x.shape()[0];
  l.c = x.shape()[1];
  l.area = 1;
  for (size_t i = 2; i < x.rank(); ++i) l.area *= x.shape()[i];
  const bool spatial = ctx.node.since_version >= 9 || ctx.node.get_int("spatial", 1) != 0;
  l.params = spatial ? l.c : l.c * l.area;
  return l;
}

// Per-coefficient a = scale / sqrt(var + eps) and b = B - a * mean.
void bn_coeffs(const OpContext& ctx, const Inputs& in, const BnLayout& l, std::vector<double>& a, std::vector<double>& b) {
  const Tensor& scale = float_input(ctx, in, 1);
  const Tensor& bias = float_input(ctx, in, 2);
  const Tensor& mean = float_input(ctx, in, 3);
  const Tensor& var = float_input(ctx, in, 4);
  if (scale.numel() != l.params || bias.numel() != l.params || mean.numel() != l.params || var.numel() != l.params)
    op_error(ctx, fmt::format("scale/B/mean/var must have {} elements ({}), got {}, {}, {}, {}", l.params,
                              l.params == l.c ? "channels" : "channels x spatial, spatial=0", scale.numel(),
                              bias.numel(), mean.numel(), var.numel()));
  const double eps = ctx.node.get_float("epsilon", 1e-5f);
  a.resize(l.params);
  b.resize(l.params);
  for (int64_t i = 0; i < l.params; ++i) {
    const double v = double(var.f32()[i]) + eps;
    if (!(v > 0)) op_error(ctx, fmt::format("var + epsilon is {} (not positive) at {}", v, i));
    a[i] = scale.f32()[i] / std::sqrt(v);
    b[i] = bias.f32()[i] - a[i] * mean.f32()[i];
  }
}

// Coefficient index of element k of plane (sample, channel ch).
inline int64_t bn_param(const BnLayout& l, int64_t ch, int64_t k) { return l.params == l.c ? ch : ch * l.area + k; }

void bn_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  BnLayout l = bn_layout(ctx, x);
  std::vector<double> a, b;
  bn_coeffs(ctx, in, l, a, b);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const int64_t planes = l.n * l.c;
  if (l.area == 1 && l.params == l.c) {
    // [N, C] (tabular BatchNorm1d): rows of channels, the same arithmetic without a channel
    // modulo per element (a 64-bit division cost more than the multiply-add it indexes).
    const float* px = x.f32();
    float* py = y.f32();
#pragma omp parallel for if (x.numel() > 65536) schedule(static)
    for (int64_t r = 0; r < l.n; ++r)
      for (int64_t ch = 0; ch < l.c; ++ch) py[r * l.c + ch] = float(a[ch] * px[r * l.c + ch] + b[ch]);
    out[0] = y;
    for (size_t k = 1; k < out.size(); ++k) out[k] = in[k % 2 == 1 ? 3 : 4]->clone();
    return;
  }
#pragma omp parallel for if (x.numel() > 65536) schedule(static)
  for (int64_t pc = 0; pc < planes; ++pc) {
    const int64_t ch = pc % l.c;
    const float* px = x.f32() + pc * l.area;
    float* py = y.f32() + pc * l.area;
    for (int64_t k = 0; k < l.area; ++k) {
      const int64_t j = bn_param(l, ch, k);
      py[k] = float(a[j] * px[k] + b[j]);
    }
  }
  out[0] = y;
  // Optional statistics outputs: in inference they are the running statistics, unchanged.
  for (size_t k = 1; k < out.size(); ++k) out[k] = in[k % 2 == 1 ? 3 : 4]->clone();
}

// Gradients of y = scale (x - mean) / s + B with s = sqrt(var + eps), summed over the
// elements sharing a coefficient: dscale = sum g (x - mean) / s, dB = sum g,
// dmean = -sum g scale / s, dvar = -sum g scale (x - mean) / (2 s^3).
void bn_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
            std::vector<Tensor>& gin) {
  if (!g[0]) return;
  const Tensor& x = *in[0];
  BnLayout l = bn_layout(ctx, x);
  std::vector<double> a, b;
  bn_coeffs(ctx, in, l, a, b);
  const float* pg = g[0]->f32();
  const int64_t planes = l.n * l.c;
  if (need[0]) {
    gin[0] = Tensor::uninitialized(DType::Float32, x.shape());
    float* pd = gin[0].f32();
    if (l.area == 1 && l.params == l.c) {  // [N, C]: as in bn_fwd
      for (int64_t r = 0; r < l.n; ++r)
        for (int64_t ch = 0; ch < l.c; ++ch) pd[r * l.c + ch] = float(a[ch] * pg[r * l.c + ch]);
    } else {
      for (int64_t pc = 0; pc < planes; ++pc) {
        const int64_t ch = pc % l.c;  // once per plane, not per element
        for (int64_t k = 0; k < l.area; ++k) pd[pc * l.area + k] = float(a[bn_param(l, ch, k)] * pg[pc * l.area + k]);
      }
    }
  }
  bool any_param = false;
  for (size_t k = 1; k < 5 && k < need.size(); ++k) any_param |= need[k];
  if (!any_param) return;
  const float* scale = in[1]->f32();
  const float* mean = in[3]->f32();
  const float* var = in[4]->f32();
  const double eps = ctx.node.get_float("epsilon", 1e-5f);
  std::vector<double> sum_g(l.params, 0.0), sum_gxc(l.params, 0.0);  // sum g, sum g (x - mean)
  for (int64_t pc = 0; pc < planes; ++pc)
    for (int64_t k = 0; k < l.area; ++k) {
      const int64_t j = bn_param(l, pc % l.c, k);
      const double gv = pg[pc * l.area + k];
      sum_g[j] += gv;
      sum_gxc[j] += gv * (double(x.f32()[pc * l.area + k]) - mean[j]);
    }
  auto param_grad = [&](size_t k, auto value) {
    if (k >= need.size() || !need[k]) return;
    gin[k] = Tensor::uninitialized(DType::Float32, in[k]->shape());
    for (int64_t j = 0; j < l.params; ++j) gin[k].f32()[j] = float(value(j));
  };
  auto inv_s = [&](int64_t j) { return 1.0 / std::sqrt(double(var[j]) + eps); };
  param_grad(1, [&](int64_t j) { return sum_gxc[j] * inv_s(j); });
  param_grad(2, [&](int64_t j) { return sum_g[j]; });
  param_grad(3, [&](int64_t j) { return -sum_g[j] * scale[j] * inv_s(j); });
  param_grad(4, [&](int64_t j) { return -0.5 * sum_gxc[j] * scale[j] * std::pow(inv_s(j), 3); });
}

// ---------------- Softmax / LogSoftmax ----------------

// Split into [outer, axis, inner]. Opset < 13 coerces to 2-D at `axis` (default 1).
void softmax_dims(const OpContext& ctx, const Shape& s, int64_t& outer, int64_t& len, int64_t& inner) {
  int64_t r = static_cast<int64_t>(s.size());
  if (r == 0) op_error(ctx, "scalar input");
  if (ctx.opset < 13) {
    int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", 1), r);
    outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    len = 1;
    for (int64_t i = axis; i < r; ++i) len *= s[i];
    inner = 1;
  } else {
    int64_t axis = norm_axis(ctx, ctx.node.get_int("axis", -1), r);
    outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    len = s[axis];
    inner = 1;
    for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
  }
}

template <bool Log>
void softmax_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  int64_t outer, len, inner;
  softmax_dims(ctx, x.shape(), outer, len, inner);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = x.f32();
  float* py = y.f32();
  // Lines are independent: attention scores [N, heads, L, L] are N*heads*L short rows.
  const int64_t lines = outer * inner;
#pragma omp parallel for if (lines * len > 32768) schedule(static)
  for (int64_t t = 0; t < lines; ++t) {
    // contiguous rows need no index division per row (it cost as much as a short row)
    const int64_t base = inner == 1 ? t * len : (t / inner) * len * inner + t % inner;
    softmax_line(px + base, py + base, len, inner, Log);
  }
  out[0] = y;
}

// softmax: dx = y (g - <g, y>);  log-softmax: dx = g - softmax * sum(g)
template <bool Log>
void softmax_bwd(const OpContext& ctx, const Inputs& in, const Inputs& outs, const Inputs& g,
                 const std::vector<bool>& need, std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& y = *outs[0];
  int64_t outer, len, inner;
  softmax_dims(ctx, y.shape(), outer, len, inner);
  gin[0] = Tensor::uninitialized(DType::Float32, y.shape());
  const float* py = y.f32();
  const float* pg = g[0]->f32();
  float* pd = gin[0].f32();
  const int64_t lines = outer * inner;
#pragma omp parallel for if (lines * len > 32768) schedule(static)
  for (int64_t t = 0; t < lines; ++t) {
    const int64_t base = inner == 1 ? t * len : (t / inner) * len * inner + t % inner;
    // <g, y> (log-softmax: sum g) in double over four interleaved partial sums, added in a fixed
    // order (one serial sum was a chain of dependent additions per row).
    double part[4] = {0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 4 <= len; k += 4)
      for (int l = 0; l < 4; ++l) {
        const int64_t j = base + (k + l) * inner;
        part[l] += Log ? double(pg[j]) : double(pg[j]) * py[j];
      }
    for (; k < len; ++k) part[0] += Log ? double(pg[base + k * inner]) : double(pg[base + k * inner]) * py[base + k * inner];
    const double dot = (part[0] + part[1]) + (part[2] + part[3]);
    for (int64_t k = 0; k < len; ++k) {
      const int64_t j = base + k * inner;
      pd[j] = Log ? float(pg[j] - std::exp(double(py[j])) * dot) : float(py[j] * (pg[j] - dot));
    }
  }
}

// ---------------- ReduceMean / ReduceSum ----------------

std::vector<bool> reduce_axes(const OpContext& ctx, const Inputs& in, int64_t rank, bool axes_from_input) {
  // Axes come from the attribute before the version that made them an input (ReduceSum 13,
  // ReduceMean 18) and from the optional input after it; noop_with_empty_axes exists from then on.
  std::vector<int64_t> axes;
  bool have = false;
  if (axes_from_input) {
    if (ctx.node.has("axes")) op_error(ctx, "the 'axes' attribute is not part of this version: axes are an input");
    if (in.size() > 1 && in[1] && !in[1]->empty()) {
      if (in[1]->dtype() != DType::Int64 || in[1]->rank() != 1) op_error(ctx, "axes must be a 1-D int64 tensor");
      axes = in[1]->to_int64s();
      have = true;
    }
  } else {
    if (in.size() > 1 && in[1]) op_error(ctx, "axes as an input are not part of this version: use the 'axes' attribute");
    if (ctx.node.has("axes")) {
      axes = ctx.node.get_ints("axes");
      have = true;
    }
  }
  std::vector<bool> mask(rank, false);
  if (!have || axes.empty()) {
    if (axes_from_input && ctx.node.get_int("noop_with_empty_axes", 0) != 0) return mask;
    std::fill(mask.begin(), mask.end(), true);
    return mask;
  }
  if (rank == 0) op_error(ctx, "axes given for a scalar input");
  for (int64_t a : axes) {
    int64_t k = norm_axis(ctx, a, rank);
    if (mask[k]) op_error(ctx, fmt::format("axis {} is listed twice", a));
    mask[k] = true;
  }
  return mask;
}

template <bool Mean>
void reduce_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = float_input(ctx, in, 0);
  bool from_input = Mean ? ctx.opset >= 18 : ctx.opset >= 13;
  int64_t r = x.rank();
  auto mask = reduce_axes(ctx, in, r, from_input);
  bool keep = ctx.node.get_int("keepdims", 1) != 0;
  Shape kept = x.shape();
  int64_t count = 1;
  for (int64_t i = 0; i < r; ++i)
    if (mask[i]) {
      count *= kept[i];
      kept[i] = 1;
    }
  Tensor acc = reduce_to_shape(x, kept);
  if (acc.raw() == x.raw()) acc = acc.clone();  // nothing reduced: never scale the input in place
  if (Mean && count > 0)
    for (int64_t i = 0; i < acc.numel(); ++i) acc.f32()[i] /= float(count);
  if (!keep) {
    Shape s;
    for (int64_t i = 0; i < r; ++i)
      if (!mask[i]) s.push_back(x.shape()[i]);
    acc = acc.reshape(s);
  }
  out[0] = acc;
}

template <bool Mean>
void reduce_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& g, const std::vector<bool>& need,
                std::vector<Tensor>& gin) {
  if (!need[0] || !g[0]) return;
  const Tensor& x = *in[0];
  bool from_input = Mean ? ctx.opset >= 18 : ctx.opset >= 13;
  int64_t r = x.rank();
  auto mask = reduce_axes(ctx, in, r, from_input);
  Shape kept = x.shape();
  int64_t count = 1;
  for (int64_t i = 0; i < r; ++i)
    if (mask[i]) {
      count *= kept[i];
      kept[i] = 1;
    }
  Tensor gk = g[0]->reshape(kept);
  Tensor zero(x.shape());
  gin[0] = Tensor(x.shape());
  // broadcast gk to x's shape
  Inputs two{&zero, &gk};
  std::vector<Tensor> o(1);
  OpContext add_ctx{ctx.node, ctx.opset};
  find_op("Add")->forward(add_ctx, two, o);
  gin[0] = o[0];
  if (Mean && count > 0)
    for (int64_t i = 0; i < gin[0].numel(); ++i) gin[0].f32()[i] /= float(count);
}

}  // namespace

void register_nn_ops() {
  register_op("Gemm", {gemm_fwd, gemm_bwd});
  register_op("MatMul", {matmul_fwd, matmul_bwd});
  register_op("Conv", {conv_fwd, conv_bwd});
  register_op("MaxPool", {maxpool_fwd, maxpool_bwd});
  register_op("AveragePool", {avgpool_fwd, avgpool_bwd});
  register_op("GlobalAveragePool", {gap_fwd, gap_bwd});
  register_op("GlobalMaxPool", {gmp_fwd, gmp_bwd});
  register_op("BatchNormalization", {bn_fwd, bn_bwd});
  register_op("Softmax", {softmax_fwd<false>, softmax_bwd<false>});
  register_op("LogSoftmax", {softmax_fwd<true>, softmax_bwd<true>});
  register_op("ReduceMean", {reduce_fwd<true>, reduce_bwd<true>});
  register_op("ReduceSum", {reduce_fwd<false>, reduce_bwd<false>});
}

// max-shifted, the sum of exponentials in double (one rounding of the result to float).
// Contiguous lines go to the vectorised row kernel (vector_math.h: ~3 ulp with AVX2 + FMA).
void softmax_line(const float* x, float* y, int64_t len, int64_t stride, bool log) {
  if (stride == 1) {
    softmax_row(x, y, len, log);
    return;
  }
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t k = 0; k < len; ++k) m = std::max(m, x[k * stride]);
  double s = 0;
  for (int64_t k = 0; k < len; ++k) s += std::exp(double(x[k * stride] - m));
  const double ls = std::log(s);
  for (int64_t k = 0; k < len; ++k) {
    const double z = double(x[k * stride] - m);
    y[k * stride] = log ? float(z - ls) : float(std::exp(z - ls));
  }
}

}  // namespace mlaudit::engine::detail
