// CUDA device executor: the CPU Executor's plan (session.cpp) run with float32
// values in pooled device memory. cuBLAS for Gemm/MatMul, direct convolution kernels
// for Conv forward and backward data (im2col + cuBLAS for weight gradients, and for
// everything with MLAUDIT_CUDA_CONV=im2col), own kernels elsewhere
// (kernels.cu). Data-movement ops (Transpose, Slice, Gather, Pad, Concat) run as
// device gathers through index maps that the CPU op itself computes once per
// shape (so their semantics are the CPU backend's by construction); int64 shape
// arithmetic stays on the host.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "cuda_executor.h"
#include "kernels.h"
#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine {

namespace cuda {

using detail::OpContext;
using detail::op_error;

DValue device_tensor(const Shape& shape) {
  DValue v;
  v.shape = shape;
  v.dtype = DType::Float32;
  v.buf = allocate(static_cast<size_t>(shape_numel(shape)) * sizeof(float));
  return v;
}

DValue device_zeros(const Shape& shape, const Stream& s) {
  DValue v = device_tensor(shape);
  memset_zero(v.buf->get(), static_cast<size_t>(v.numel()) * sizeof(float), s);
  return v;
}

DValue to_device(const Tensor& t, const Stream& s) {
  DValue v;
  v.shape = t.shape();
  v.dtype = t.dtype();
  if (t.dtype() == DType::Float32) {
    v.buf = allocate(t.nbytes());
    upload(v.buf->get(), t.raw(), t.nbytes(), s);
  } else {
    v.host = t;
  }
  return v;
}

Tensor to_host(const DValue& v, const Stream& s) {
  if (!v.on_device()) return v.host;
  Tensor t(DType::Float32, v.shape);
  download(t.raw(), v.buf->get(), t.nbytes(), s);
  return t;
}

namespace {

DValue alias(const DValue& v, const Shape& shape) {
  DValue a = v;
  a.shape = shape;
  return a;
}

BroadcastDesc make_bcast(const OpContext& ctx, const Shape& a, const Shape& b, const Shape& out) {
  if (out.size() > static_cast<size_t>(kMaxRank)) op_error(ctx, fmt::format("rank {} exceeds the CUDA backend's {}", out.size(), kMaxRank));
  BroadcastDesc d;
  d.rank = static_cast<int>(out.size());
  auto strides = [&](const Shape& s, int64_t* st) {
    int64_t acc = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t k = s.size() - 1 - i, ko = out.size() - 1 - i;
      st[ko] = s[k] == 1 ? 0 : acc;
      acc *= s[k];
    }
  };
  for (size_t i = 0; i < out.size(); ++i) d.out_dims[i] = out[i];
  strides(a, d.a_strides);
  strides(b, d.b_strides);
  return d;
}

// Sum x (shape `from`) down to the broadcast-compatible shape `to` (session.cpp reduce_to_shape).
DValue reduce_copy(const DValue& x, const Shape& to, const Stream& s, double scale = 1.0) {
  DValue y = device_tensor(to);
  const Shape& from = x.shape;
  if (from.size() > static_cast<size_t>(kMaxRank)) throw UnsupportedError("engine", "cuda: reduction of rank > 6");
  ReduceDesc d;
  d.rank = static_cast<int>(from.size());
  int64_t st = 1;
  for (int k = d.rank - 1; k >= 0; --k) {
    size_t i = from.size() - 1 - k;
    int64_t t = i < to.size() ? to[to.size() - 1 - i] : 1;
    d.in_strides[k] = st;
    st *= from[k];
    d.out_dims[k] = t;
    d.red_dims[k] = (t == 1) ? from[k] : 1;
  }
  if (d.rank == 0) {
    copy_device(y.buf->get(), x.buf->get(), sizeof(float), s);
    if (scale != 1.0) launch_axpby(y.f(), y.f(), 1, float(scale), 0.f, s.get());
    return y;
  }
  launch_reduce_sum(x.f(), y.f(), d, scale, s.get());
  return y;
}

DValue reduce_to(const DValue& x, const Shape& to, const Stream& s) {
  if (x.shape == to) return x;
  return reduce_copy(x, to, s);
}

// Materialise v broadcast to `shape` (fmax(v, v) = v through the broadcasting kernel).
DValue broadcast_to(const OpContext& ctx, const DValue& v, const Shape& shape, const Stream& s) {
  DValue y = device_tensor(shape);
  launch_binary(BinaryOp::Max, v.f(), v.f(), y.f(), make_bcast(ctx, v.shape, v.shape, shape), s.get());
  return y;
}

const std::map<std::string, UnaryOp>& unary_ops() {
  static const std::map<std::string, UnaryOp> m = {
      {"Neg", UnaryOp::Neg},         {"Abs", UnaryOp::Abs},         {"Relu", UnaryOp::Relu},
      {"LeakyRelu", UnaryOp::LeakyRelu}, {"Sigmoid", UnaryOp::Sigmoid}, {"Tanh", UnaryOp::Tanh},
      {"Exp", UnaryOp::Exp},         {"Log", UnaryOp::Log},         {"Sqrt", UnaryOp::Sqrt},
      {"Erf", UnaryOp::Erf},         {"Elu", UnaryOp::Elu},         {"Softplus", UnaryOp::Softplus},
      {"HardSigmoid", UnaryOp::HardSigmoid}, {"Sign", UnaryOp::Sign}, {"Clip", UnaryOp::Clip}};
  return m;
}

const std::map<std::string, BinaryOp>& binary_ops() {
  static const std::map<std::string, BinaryOp> m = {{"Add", BinaryOp::Add}, {"Sub", BinaryOp::Sub}, {"Mul", BinaryOp::Mul},
                                                    {"Div", BinaryOp::Div}, {"Pow", BinaryOp::Pow}};
  return m;
}

bool is_index_map_op(const std::string& op) {
  return op == "Transpose" || op == "Slice" || op == "Gather" || op == "Pad" || op == "Concat";
}
bool is_shape_only_op(const std::string& op) {
  return op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze";
}

// ---- geometry: detail::conv_window / pool_window (the CPU ops' own) as the kernels' ConvGeom ----

ConvGeom to_geom(const detail::Window2d& p) {
  return ConvGeom{p.n, p.c, p.h, p.w, p.oc, p.kh, p.kw, p.oh, p.ow, p.group, p.sh, p.sw, p.dh, p.dw, p.pt, p.pl};
}

ConvGeom conv_geom(const OpContext& ctx, const Shape& x, const Shape& w) { return to_geom(detail::conv_window(ctx, x, w)); }

ConvGeom pool_geom(const OpContext& ctx, const Shape& x, int64_t& pb, int64_t& pr, bool& include_pad) {
  detail::Window2d p = detail::pool_window(ctx, x);
  pb = p.pb;
  pr = p.pr;
  include_pad = p.count_include_pad;
  return to_geom(p);
}

// MLAUDIT_CUDA_PROFILE=1: every node is timed (stream synchronised around it, so CUDA graph
// capture is off) and a per-op table goes to stderr at exit. For finding where device time goes.
struct OpProfile {
  static constexpr int kWarm = 2;
  std::map<std::string, std::pair<double, int64_t>> ms;  // "fwd Conv" -> (total ms, calls)
  std::map<std::string, int64_t> seen;                    // calls so far, counting the skipped warm-up
  ~OpProfile() {
    if (ms.empty()) return;
    double total = 0;
    for (const auto& [k, v] : ms) total += v.first;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [k, v] : ms) rows.emplace_back(v.first, k);
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "mlaudit cuda profile (ms, share, calls; first %d calls per op excluded as warm-up):\n", kWarm);
    for (const auto& [t, k] : rows)
      std::fprintf(stderr, "  %-28s %10.2f %6.1f%% %8lld\n", k.c_str(), t, 100.0 * t / total, (long long)ms[k].second);
  }
};

}  // namespace

bool profiling() {
  static const bool on = [] {
    const char* e = std::getenv("MLAUDIT_CUDA_PROFILE");
    return e && *e && std::string(e) != "0";
  }();
  return on;
}

namespace {

OpProfile& op_profile() {
  static OpProfile p;
  return p;
}

// Runs fn, timing it under the op's key when profiling.
template <class F>
void profiled(const Stream& st, const char* phase, const std::string& op, F&& fn) {
  if (!profiling()) {
    fn();
    return;
  }
  st.synchronize();
  auto t0 = std::chrono::steady_clock::now();
  fn();
  st.synchronize();
  std::string key = std::string(phase) + " " + op;
  if (op_profile().seen[key]++ < OpProfile::kWarm) return;
  auto& e = op_profile().ms[key];
  e.first += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  e.second += 1;
}

// Conv forward and backward data run the direct kernels (kernels.cu) unless MLAUDIT_CUDA_CONV=im2col
// selects im2col + cuBLAS (kept for comparison and as the reference path of the benchmark).
bool direct_conv_enabled() {
  static const bool direct = [] {
    const char* e = std::getenv("MLAUDIT_CUDA_CONV");
    return !(e && std::string(e) == "im2col");
  }();
  return direct;
}
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

using detail::batch_offset;
using detail::matmul_plan;
using detail::MatMulPlan;

void softmax_dims(const OpContext& ctx, const Shape& s, int64_t& outer, int64_t& len, int64_t& inner) {
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

}  // namespace

DValue binary(BinaryOp op, const DValue& a, const DValue& b, const Stream& s) {
  Node node;
  node.name = "fused";
  node.op_type = "broadcast";
  OpContext ctx{node, 13};
  Shape os = detail::broadcast_shape(ctx, a.shape, b.shape);
  DValue y = device_tensor(os);
  launch_binary(op, a.f(), b.f(), y.f(), make_bcast(ctx, a.shape, b.shape, os), s.get());
  return y;
}

DValue sum_to_shape(const DValue& x, const Shape& to, const Stream& s, double scale) { return reduce_copy(x, to, s, scale); }

// ------------------------------------------------------------------ executor

CudaExecutor::CudaExecutor(const Graph& graph) : g_(graph) {
  stream_ = std::make_unique<Stream>();
  StreamScope scope(*stream_);
  make_plan();
  // Initializers are uploaded once and stay resident.
  constants_.resize(plan_.names.size());
  for (const auto& [name, t] : g_.initializers) constants_[plan_.slot.at(name)] = to_device(t, *stream_);
  // Constant nodes are evaluated once on the host.
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    if (g_.nodes[i].op_type != "Constant") continue;
    OpContext ctx{g_.nodes[i], g_.opset};
    std::vector<Tensor> outs(g_.nodes[i].outputs.size());
    detail::find_op("Constant")->forward(ctx, {}, outs);
    for (size_t k = 0; k < outs.size(); ++k) {
      int s = plan_.node_outputs[i][k];
      if (s < 0) continue;
      constants_[s] = to_device(outs[k], *stream_);
      plan_.is_constant[s] = true;
      plan_.keep[s] = true;
    }
  }
  stream_->synchronize();
}

CudaExecutor::~CudaExecutor() = default;

void CudaExecutor::make_plan() {
  plan_ = make_execution_plan(g_);
  find_fusions();
}

void CudaExecutor::find_fusions() {
  fuse_relu_.assign(g_.nodes.size(), -1);
  fuse_pool_.assign(g_.nodes.size(), -1);
  pool_conv_.assign(g_.nodes.size(), -1);
  if (!direct_conv_enabled()) return;
  // Readers of every value (graph outputs count as a reader that cannot be fused away).
  std::map<std::string, std::vector<int>> readers;
  for (size_t i = 0; i < g_.nodes.size(); ++i)
    for (const auto& name : g_.nodes[i].inputs)
      if (!name.empty()) readers[name].push_back(static_cast<int>(i));
  for (const auto& o : g_.outputs) readers[o.name].push_back(-1);
  auto only_reader = [&](const std::string& value) {
    auto it = readers.find(value);
    return it != readers.end() && it->second.size() == 1 ? it->second[0] : -1;
  };
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& conv = g_.nodes[i];
    if (conv.op_type != "Conv" || conv.outputs.size() != 1 || conv.inputs.size() < 2) continue;
    // Only 2-D convolutions with a constant weight whose window the direct kernels take.
    const Tensor* w = g_.initializer(conv.inputs[1]);
    if (!w || w->rank() != 4 || w->shape()[2] * w->shape()[3] > 256) continue;
    int r = only_reader(conv.outputs[0]);
    if (r < 0 || g_.nodes[r].op_type != "Relu" || g_.nodes[r].outputs.size() != 1) continue;
    fuse_relu_[i] = r;
    int m = only_reader(g_.nodes[r].outputs[0]);
    if (m < 0) continue;
    const Node& pool = g_.nodes[m];
    auto ints_or = [&](const char* attr, std::vector<int64_t> def) { return pool.get_ints(attr, def); };
    bool plain = pool.op_type == "MaxPool" && (pool.outputs.size() == 1 || pool.outputs[1].empty()) &&
                 ints_or("kernel_shape", {}) == std::vector<int64_t>{2, 2} &&
                 ints_or("strides", {1, 1}) == std::vector<int64_t>{2, 2} &&
                 ints_or("pads", {0, 0, 0, 0}) == std::vector<int64_t>{0, 0, 0, 0} &&
                 ints_or("dilations", {1, 1}) == std::vector<int64_t>{1, 1} && pool.get_int("ceil_mode", 0) == 0 &&
                 pool.get_int("storage_order", 0) == 0;
    auto ap = pool.attributes.find("auto_pad");
    if (ap != pool.attributes.end() && ap->second.s != "NOTSET" && ap->second.s != "VALID") plain = false;
    if (plain) {
      fuse_pool_[i] = m;
      pool_conv_[m] = static_cast<int>(i);
    }
  }
}

bool CudaExecutor::conv_pool_even(size_t i, const std::vector<const DValue*>& in) const {
  OpContext ctx{g_.nodes[i], g_.opset};
  if (in.size() < 2 || !in[0] || !in[1] || in[0]->shape.size() != 4 || in[1]->shape.size() != 4) return false;
  ConvGeom g = conv_geom(ctx, in[0]->shape, in[1]->shape);
  return g.oh % 2 == 0 && g.ow % 2 == 0;
}

DValue CudaExecutor::conv_fused(size_t i, const std::vector<const DValue*>& in, int epilogue, DValue* full) const {
  const Node& node = g_.nodes[i];
  OpContext ctx{node, g_.opset};
  if (in.size() < 2 || !in[0] || !in[1] || !in[0]->on_device() || !in[1]->on_device())
    op_error(ctx, "missing or non-float input");
  const DValue& x = *in[0];
  const DValue& w = *in[1];
  bool has_bias = in.size() > 2 && in[2];
  if (has_bias && in[2]->numel() != w.shape[0]) op_error(ctx, "bias length differs from the output channels");
  ConvGeom g = conv_geom(ctx, x.shape, w.shape);
  DValue y = epilogue >= 2 ? device_tensor({g.n, g.oc, g.oh / 2, g.ow / 2}) : device_tensor({g.n, g.oc, g.oh, g.ow});
  if (epilogue == 3) *full = device_tensor({g.n, g.oc, g.oh, g.ow});
  launch_conv_forward_direct(x.f(), w.f(), has_bias ? in[2]->f() : nullptr, y.f(), g, stream_->get(), epilogue,
                             epilogue == 3 ? full->f() : nullptr);
  return y;
}

std::string CudaExecutor::cache_key(size_t node, const std::vector<const DValue*>& in, const std::string& tag) const {
  std::string key = fmt::format("{}#{}", node, tag);
  for (const DValue* v : in) {
    if (!v) {
      key += "|-";
      continue;
    }
    key += "|" + shape_str(v->shape);
    if (!v->on_device()) {
      key += fmt::format(":{}", int(v->dtype));
      for (int64_t x : v->host.to_int64s()) key += fmt::format(",{}", x);
    }
  }
  return key;
}

Tensor CudaExecutor::host_value(size_t node, size_t k, const DValue& v) const {
  int s = plan_.node_inputs[node][k];
  if (s >= 0 && plan_.is_constant[s]) {
    const Tensor* t = g_.initializer(plan_.names[s]);
    if (t) return *t;
  }
  return to_host(v, *stream_);
}

const std::vector<Tensor>& CudaExecutor::host_eval(size_t node, const std::vector<const DValue*>& in) const {
  std::string key = cache_key(node, in, "eval");
  auto it = host_cache_.find(key);
  if (it != host_cache_.end()) return it->second;
  const Node& n = g_.nodes[node];
  OpContext ctx{n, g_.opset};
  std::vector<Tensor> holders(in.size());
  detail::Inputs hin;
  for (size_t j = 0; j < in.size(); ++j) {
    if (!in[j]) {
      hin.push_back(nullptr);
      continue;
    }
    // Device inputs get an uninitialised host placeholder: the ops evaluated here read only shapes
    // (Shape, Flatten, Reshape, ...), and untouched pages cost neither time nor resident memory.
    holders[j] = in[j]->on_device() ? Tensor::uninitialized(DType::Float32, in[j]->shape) : in[j]->host;
    hin.push_back(&holders[j]);
  }
  std::vector<Tensor> outs(n.outputs.size());
  detail::find_op(n.op_type)->forward(ctx, hin, outs);
  if (host_cache_.size() > 4096) host_cache_.clear();
  return host_cache_[key] = std::move(outs);
}

const BufferPtr& CudaExecutor::index_map(size_t node, const std::vector<const DValue*>& in, size_t k,
                                         Shape* out_shape) const {
  std::string key = cache_key(node, in, fmt::format("map{}", k));
  auto it = map_cache_.find(key);
  if (it != map_cache_.end()) {
    *out_shape = map_shape_cache_.at(key);
    return it->second;
  }
  const Node& n = g_.nodes[node];
  // Run the CPU op twice on element indices (base-4096 digits, exact in float32):
  // input k carries its indices, other float inputs carry -1 (a sentinel no index takes).
  constexpr int64_t kBase = 4096;
  // Pad writes its constant where no element lands: make that constant the sentinel too.
  Node sentinel_node = n;
  Tensor minus_one = Tensor::scalar(-1.f);
  bool pad = n.op_type == "Pad";
  if (pad && g_.opset < 11) {
    sentinel_node.attributes["value"] = Attribute::of_float(-1.f);
  }
  OpContext sctx{sentinel_node, g_.opset};
  Tensor digits[2];
  for (int part = 0; part < 2; ++part) {
    std::vector<Tensor> holders(in.size());
    detail::Inputs hin;
    for (size_t j = 0; j < in.size(); ++j) {
      if (!in[j]) {
        hin.push_back(nullptr);
        continue;
      }
      if (in[j]->on_device()) {
        Tensor t(DType::Float32, in[j]->shape);
        float* p = t.f32();
        for (int64_t e = 0; e < t.numel(); ++e) p[e] = j == k ? float(part == 0 ? e / kBase : e % kBase) : -1.f;
        holders[j] = t;
      } else {
        holders[j] = in[j]->host;
      }
      hin.push_back(&holders[j]);
    }
    if (pad && g_.opset >= 11) {
      if (hin.size() < 3) hin.resize(3, nullptr);
      hin[2] = &minus_one;
    }
    std::vector<Tensor> outs(n.outputs.size());
    detail::find_op(n.op_type)->forward(sctx, hin, outs);
    digits[part] = outs.at(0);
  }
  Tensor map(DType::Int64, digits[0].shape());
  const float* hi = digits[0].f32();
  const float* lo = digits[1].f32();
  int64_t* m = map.i64();
  for (int64_t e = 0; e < map.numel(); ++e) m[e] = lo[e] < 0 ? -1 : int64_t(hi[e]) * kBase + int64_t(lo[e]);
  BufferPtr buf = allocate(map.nbytes());
  upload(buf->get(), map.raw(), map.nbytes(), *stream_);
  if (map_cache_.size() > 1024) {
    map_cache_.clear();
    map_shape_cache_.clear();
  }
  map_shape_cache_[key] = map.shape();
  *out_shape = map.shape();
  return map_cache_[key] = buf;
}

std::pair<float, float> CudaExecutor::unary_params(size_t i, const std::vector<const DValue*>& in) const {
  const Node& node = g_.nodes[i];
  const std::string& op = node.op_type;
  float a = 0, b = 0;
  if (op == "LeakyRelu") a = node.get_float("alpha", 0.01f);
  if (op == "Elu") a = node.get_float("alpha", 1.f);
  if (op == "HardSigmoid") {
    a = node.get_float("alpha", 0.2f);
    b = node.get_float("beta", 0.5f);
  }
  if (op == "Clip") {
    // ops_elementwise.cpp clip_bounds: attributes before opset 11, optional inputs after.
    a = -std::numeric_limits<float>::infinity();
    b = std::numeric_limits<float>::infinity();
    if (g_.opset < 11) {
      a = node.get_float("min", a);
      b = node.get_float("max", b);
    } else {
      if (in.size() > 1 && in[1]) a = float(host_value(i, 1, *in[1]).to_doubles().at(0));
      if (in.size() > 2 && in[2]) b = float(host_value(i, 2, *in[2]).to_doubles().at(0));
    }
  }
  return {a, b};
}

bool has_cuda_kernel(const Node& node, int64_t opset, const std::vector<const DValue*>& in) {
  static const std::vector<std::string> ops = cuda_supported_ops();
  if (!node.domain.empty() || std::find(ops.begin(), ops.end(), node.op_type) == ops.end()) return false;
  // Old schema versions whose semantics the device kernels do not implement run on the CPU:
  // the legacy broadcast/axis form of binary ops (< 7), same-shape-only variadic ops (< 8),
  // Cast-1's string type names, Clip-1's open bounds, Dropout's float mask (< 10) and training mode.
  const std::string& op = node.op_type;
  if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow") && opset < 7) return false;
  if ((op == "Sum" || op == "Min" || op == "Max") && opset < 8) return false;
  if (op == "Cast" && node.since_version < 6) return false;
  if (op == "Clip" && node.since_version < 6) return false;
  if (op == "Dropout" && (opset < 10 || node.inputs.size() > 2)) return false;
  if (op == "BatchNormalization" && (node.since_version < 9 && node.get_int("spatial", 1) == 0)) return false;
  // The device convolution and pooling kernels are 2-D (NCHW); 1-D (NCW) nodes run on the CPU.
  if ((op == "Conv" || op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool") &&
      (in.empty() || !in[0] || in[0]->shape.size() != 4))
    return false;
  return true;
}

// Per-op CPU fallback (docs/dev/cuda.md): a node without a CUDA kernel runs the CPU backend's
// forward on downloaded inputs, and its outputs go back to the device. Correct for every op
// the CPU runs; it costs a round trip per such node, so `mlaudit info` lists them.
void CudaExecutor::host_fallback_forward(size_t i, const std::vector<const DValue*>& in, std::vector<DValue>& out) const {
  const Node& node = g_.nodes[i];
  OpContext ctx{node, g_.opset};
  std::vector<Tensor> holders(in.size());
  detail::Inputs hin;
  for (size_t j = 0; j < in.size(); ++j) {
    if (!in[j] || in[j]->empty()) {
      hin.push_back(nullptr);
      continue;
    }
    holders[j] = to_host(*in[j], *stream_);
    hin.push_back(&holders[j]);
  }
  std::vector<Tensor> houts(node.outputs.size());
  detail::find_op(node)->forward(ctx, hin, houts);
  for (size_t k = 0; k < houts.size(); ++k)
    if (!houts[k].empty()) out[k] = to_device(houts[k], *stream_);
}

void CudaExecutor::host_fallback_backward(size_t i, const std::vector<const DValue*>& in,
                                          const std::vector<const DValue*>& out, const std::vector<const DValue*>& gout,
                                          const std::vector<bool>& need, std::vector<DValue>& gin) const {
  const Node& node = g_.nodes[i];
  OpContext ctx{node, g_.opset};
  const detail::OpDef* def = detail::find_op(node);
  if (!def || !def->backward) return;
  auto download = [&](const std::vector<const DValue*>& vs, std::vector<Tensor>& holders, detail::Inputs& h) {
    holders.resize(vs.size());
    for (size_t j = 0; j < vs.size(); ++j) {
      if (!vs[j] || vs[j]->empty()) {
        h.push_back(nullptr);
        continue;
      }
      holders[j] = to_host(*vs[j], *stream_);
      h.push_back(&holders[j]);
    }
  };
  std::vector<Tensor> hi, ho, hg;
  detail::Inputs ins, outs, gouts;
  download(in, hi, ins);
  download(out, ho, outs);
  download(gout, hg, gouts);
  std::vector<Tensor> g(in.size());
  def->backward(ctx, ins, outs, gouts, need, g);
  for (size_t k = 0; k < g.size(); ++k)
    if (need[k] && !g[k].empty()) gin[k] = to_device(g[k], *stream_);
}

void CudaExecutor::forward_node(size_t i, const std::vector<const DValue*>& in, std::vector<DValue>& out) const {
  const Node& node = g_.nodes[i];
  OpContext ctx{node, g_.opset};
  const std::string& op = node.op_type;
  const Stream& st = *stream_;
  void* s = st.get();
  if (!has_cuda_kernel(node, g_.opset, in)) {
    host_fallback_forward(i, in, out);
    return;
  }
  bool any_device = false;
  for (const DValue* v : in)
    if (v && v->on_device()) any_device = true;

  if (!any_device) {
    // Host path: int64/bool shape arithmetic (and float results of it, e.g. Cast, go to the device).
    detail::Inputs hin;
    for (const DValue* v : in) hin.push_back(v ? &v->host : nullptr);
    std::vector<Tensor> houts(node.outputs.size());
    detail::find_op(op)->forward(ctx, hin, houts);
    for (size_t k = 0; k < houts.size(); ++k)
      if (!houts[k].empty()) out[k] = to_device(houts[k], st);
    return;
  }
  auto x_at = [&](size_t k) -> const DValue& {
    if (k >= in.size() || !in[k]) op_error(ctx, fmt::format("missing input {}", k));
    return *in[k];
  };
  auto fx_at = [&](size_t k) -> const DValue& {
    const DValue& v = x_at(k);
    if (!v.on_device()) op_error(ctx, fmt::format("input {} is {}, expected float32", k, dtype_name(v.dtype)));
    return v;
  };

  if (auto u = unary_ops().find(op); u != unary_ops().end()) {
    const DValue& x = fx_at(0);
    auto [a, b] = unary_params(i, in);
    DValue y = device_tensor(x.shape);
    launch_unary(u->second, x.f(), y.f(), x.numel(), a, b, s);
    out[0] = y;
    return;
  }
  if (auto bo = binary_ops().find(op); bo != binary_ops().end()) {
    const DValue& a = fx_at(0);
    DValue b = x_at(1);
    if (!b.on_device()) {
      if (op != "Pow") op_error(ctx, fmt::format("input types differ ({} and {})", "float32", dtype_name(b.dtype)));
      b = to_device(b.host.to(DType::Float32), st);
    }
    Shape os = detail::broadcast_shape(ctx, a.shape, b.shape);
    DValue y = device_tensor(os);
    launch_binary(bo->second, a.f(), b.f(), y.f(), make_bcast(ctx, a.shape, b.shape, os), s);
    out[0] = y;
    return;
  }
  if (op == "Sum" || op == "Min" || op == "Max") {
    BinaryOp bop = op == "Sum" ? BinaryOp::Add : (op == "Min" ? BinaryOp::Min : BinaryOp::Max);
    DValue acc = fx_at(0);
    for (size_t k = 1; k < in.size(); ++k) {
      const DValue& b = fx_at(k);
      Shape os = detail::broadcast_shape(ctx, acc.shape, b.shape);
      DValue next = device_tensor(os);
      launch_binary(bop, acc.f(), b.f(), next.f(), make_bcast(ctx, acc.shape, b.shape, os), s);
      acc = next;
    }
    out[0] = acc;
    return;
  }
  if (op == "Identity" || op == "Dropout") {
    out[0] = x_at(0);
    if (out.size() > 1) {
      Tensor mask(DType::Bool, in[0]->shape);
      bool* p = mask.data<bool>();
      for (int64_t e = 0; e < mask.numel(); ++e) p[e] = true;
      out[1] = to_device(mask, st);
    }
    return;
  }
  if (op == "Cast") {
    int64_t to = node.get_int("to", 1);
    if (to == 1 || to == 11) {
      out[0] = x_at(0);
      return;
    }
    // Float to integer/bool: a host result (shape arithmetic), as the CPU op computes it.
    Tensor hx = to_host(x_at(0), st);
    detail::Inputs hin{&hx};
    std::vector<Tensor> houts(1);
    detail::find_op(op)->forward(ctx, hin, houts);
    out[0] = to_device(houts[0], st);
    return;
  }
  if (op == "Shape") {
    out[0] = to_device(host_eval(i, in).at(0), st);
    return;
  }
  if (is_shape_only_op(op)) {
    const DValue& x = x_at(0);
    out[0] = alias(x, host_eval(i, in).at(0).shape());
    return;
  }
  if (is_index_map_op(op)) {
    Shape os;
    float fill = 0.f;
    if (op == "Pad") {
      // ops_shape.cpp pad_spec: attribute before opset 11, optional input 2 after.
      if (g_.opset < 11) fill = node.get_float("value", 0.f);
      else if (in.size() > 2 && in[2]) fill = float(host_value(i, 2, *in[2]).to_doubles().at(0));
    }
    DValue y;
    bool first = true;
    for (size_t k = 0; k < in.size(); ++k) {
      if (!in[k] || !in[k]->on_device()) continue;
      if (op == "Pad" && k != 0) continue;  // the constant value is not data
      const BufferPtr& map = index_map(i, in, k, &os);
      if (first) y = device_tensor(os);
      launch_gather_map(in[k]->f(), static_cast<const int64_t*>(map->get()), y.f(), shape_numel(os), fill, first, s);
      first = false;
    }
    out[0] = y;
    return;
  }
  if (op == "Gemm") {
    const DValue& a = fx_at(0);
    const DValue& b = fx_at(1);
    if (a.shape.size() != 2 || b.shape.size() != 2)
      op_error(ctx, fmt::format("expects 2-D inputs, got {} and {}", shape_str(a.shape), shape_str(b.shape)));
    bool ta = node.get_int("transA", 0) != 0, tb = node.get_int("transB", 0) != 0;
    int64_t m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1];
    int64_t kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1];
    if (kb != k)
      op_error(ctx, fmt::format("inner dimensions differ: A {} and B {} (transA={}, transB={})", shape_str(a.shape),
                                shape_str(b.shape), ta, tb));
    float alpha = node.get_float("alpha", 1.f), beta = node.get_float("beta", 1.f);
    DValue y = device_tensor({m, n});
    bool has_c = in.size() > 2 && in[2];
    if (has_c) {
      const DValue& c = fx_at(2);
      Shape bs = detail::broadcast_shape(ctx, c.shape, y.shape);
      if (bs != y.shape)
        op_error(ctx, fmt::format("C of shape {} does not broadcast to {}", shape_str(c.shape), shape_str(y.shape)));
      launch_binary(BinaryOp::Max, c.f(), c.f(), y.f(), make_bcast(ctx, c.shape, c.shape, y.shape), s);
      if (beta != 1.f) launch_axpby(y.f(), y.f(), y.numel(), beta, 0.f, s);
    }
    st.sgemm(ta, tb, m, n, k, alpha, a.f(), a.shape[1], b.f(), b.shape[1], has_c ? 1.f : 0.f, y.f(), n);
    out[0] = y;
    return;
  }
  if (op == "MatMul") {
    const DValue& a = fx_at(0);
    const DValue& b = fx_at(1);
    MatMulPlan p = matmul_plan(ctx, a.shape, b.shape);
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
    return;
  }
  if (op == "Conv") {
    const DValue& x = fx_at(0);
    const DValue& w = fx_at(1);
    bool has_bias = in.size() > 2 && in[2];
    if (has_bias && fx_at(2).numel() != w.shape[0]) op_error(ctx, "bias length differs from the output channels");
    ConvGeom g = conv_geom(ctx, x.shape, w.shape);
    if (direct_conv(g)) {
      out[0] = conv_fused(i, in, 0);  // the direct kernel without an epilogue
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
    return;
  }
  if (op == "MaxPool" || op == "AveragePool") {
    const DValue& x = fx_at(0);
    int64_t pb, pr;
    bool inc;
    ConvGeom g = pool_geom(ctx, x.shape, pb, pr, inc);
    DValue y = device_tensor({g.n, g.c, g.oh, g.ow});
    if (op == "MaxPool") launch_maxpool(x.f(), y.f(), g, s);
    else launch_avgpool(x.f(), y.f(), g, pb, pr, inc, s);
    out[0] = y;
    if (op == "MaxPool" && out.size() > 1 && !node.outputs[1].empty()) {
      // The Indices output (int64, shape arithmetic) comes from the CPU op on a host copy.
      Tensor hx = to_host(x, st);
      detail::Inputs hin{&hx};
      std::vector<Tensor> houts(out.size());
      detail::find_op(op)->forward(ctx, hin, houts);
      out[1] = to_device(houts[1], st);
    }
    return;
  }
  if (op == "GlobalAveragePool") {
    const DValue& x = fx_at(0);
    if (x.shape.size() < 3) op_error(ctx, fmt::format("expects [N,C,...], got {}", shape_str(x.shape)));
    Shape ys = x.shape;
    int64_t planes = ys[0] * ys[1];
    int64_t area = planes ? x.numel() / planes : 0;
    for (size_t k = 2; k < ys.size(); ++k) ys[k] = 1;
    DValue flat = alias(x, {planes, area});
    DValue y = area ? reduce_copy(flat, {planes, 1}, st, 1.0 / double(area)) : device_zeros({planes, 1}, st);
    out[0] = alias(y, ys);
    return;
  }
  if (op == "BatchNormalization") {
    const DValue& x = fx_at(0);
    if (x.shape.size() < 2) op_error(ctx, fmt::format("expects [N,C,...], got {}", shape_str(x.shape)));
    if (node.get_int("training_mode", 0) != 0) op_error(ctx, "training_mode=1 is not supported (inference only)");
    int64_t n = x.shape[0], c = x.shape[1];
    int64_t area = (n * c) != 0 ? x.numel() / (n * c) : 0;
    Tensor scale = host_value(i, 1, fx_at(1)), bias = host_value(i, 2, fx_at(2)), mean = host_value(i, 3, fx_at(3)),
           var = host_value(i, 4, fx_at(4));
    if (scale.numel() != c || bias.numel() != c || mean.numel() != c || var.numel() != c)
      op_error(ctx, fmt::format("scale/B/mean/var must have {} elements (channels)", c));
    float eps = node.get_float("epsilon", 1e-5f);
    // y = a x + b with a = scale / sqrt(var + eps), b = bias - a mean (inference BatchNorm, ops_nn.cpp bn_coeffs).
    Tensor a(Shape{c}), b(Shape{c});
    for (int64_t ch = 0; ch < c; ++ch) {
      a.f32()[ch] = scale.f32()[ch] / std::sqrt(var.f32()[ch] + eps);
      b.f32()[ch] = bias.f32()[ch] - a.f32()[ch] * mean.f32()[ch];
    }
    // The folded coefficients are uploaded once per node when the statistics are initializers
    // (no host sync in the steady state, so PGD iterations stay capturable as a CUDA graph).
    bool constant_stats = true;
    for (int k = 1; k <= 4; ++k) constant_stats = constant_stats && plan_.is_constant[plan_.node_inputs[i][k]];
    std::string key = fmt::format("{}#bn{}", i, c);
    DValue da;
    auto cached = map_cache_.find(key);
    if (constant_stats && cached != map_cache_.end()) {
      da.buf = cached->second;
    } else {
      Tensor ab(Shape{2 * c});
      std::copy(a.f32(), a.f32() + c, ab.f32());
      std::copy(b.f32(), b.f32() + c, ab.f32() + c);
      da = to_device(ab, st);
      if (constant_stats) map_cache_[key] = da.buf;
    }
    DValue y = device_tensor(x.shape);
    launch_channel_affine(x.f(), da.f(), da.f() + c, y.f(), n, c, area, s);
    out[0] = y;
    for (size_t k = 1; k < out.size(); ++k) out[k] = *in[std::min<size_t>(k + 2, in.size() - 1)];
    return;
  }
  if (op == "Softmax" || op == "LogSoftmax") {
    const DValue& x = fx_at(0);
    int64_t outer, len, inner;
    softmax_dims(ctx, x.shape, outer, len, inner);
    DValue y = device_tensor(x.shape);
    launch_softmax(x.f(), y.f(), outer, len, inner, op == "LogSoftmax", s);
    out[0] = y;
    return;
  }
  if (op == "ReduceMean" || op == "ReduceSum") {
    const DValue& x = fx_at(0);
    bool mean = op == "ReduceMean";
    bool from_input = mean ? g_.opset >= 18 : g_.opset >= 13;
    int64_t r = static_cast<int64_t>(x.shape.size());
    std::vector<int64_t> axes;
    bool have = false;
    if (from_input) {
      if (in.size() > 1 && in[1]) {
        axes = host_value(i, 1, *in[1]).to_int64s();
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
      for (int64_t a : axes) mask[detail::norm_axis(ctx, a, r)] = true;
    }
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
    DValue y = reduce_copy(x, kept, st, mean && count > 0 ? 1.0 / double(count) : 1.0);
    out[0] = node.get_int("keepdims", 1) != 0 ? y : alias(y, squeezed);
    return;
  }
  throw UnsupportedError("engine", fmt::format("cuda: op '{}' at node '{}' has no CUDA kernel", op, node.name));
}

void CudaExecutor::backward_node(size_t i, const std::vector<const DValue*>& in, const std::vector<const DValue*>& out,
                                 const std::vector<const DValue*>& gout, const std::vector<bool>& need,
                                 std::vector<DValue>& gin) const {
  const Node& node = g_.nodes[i];
  if (!has_cuda_kernel(node, g_.opset, in)) {
    host_fallback_backward(i, in, out, gout, need, gin);
    return;
  }
  OpContext ctx{node, g_.opset};
  const std::string& op = node.op_type;
  const Stream& st = *stream_;
  void* s = st.get();
  if (!gout[0]) return;
  const DValue& gy = *gout[0];

  if (auto u = unary_ops().find(op); u != unary_ops().end()) {
    if (!need[0]) return;
    const DValue& x = *in[0];
    auto [a, b] = unary_params(i, in);
    DValue gx = device_tensor(x.shape);
    launch_unary_backward(u->second, x.f(), out[0] ? out[0]->f() : nullptr, gy.f(), gx.f(), x.numel(), a, b, s);
    gin[0] = gx;
    return;
  }
  if (auto bo = binary_ops().find(op); bo != binary_ops().end()) {
    const DValue& a = *in[0];
    DValue b = *in[1];
    if (!b.on_device()) b = to_device(b.host.to(DType::Float32), st);
    const Shape& os = gy.shape;
    DValue ga, gb;
    if (need[0]) ga = device_tensor(os);
    if (need.size() > 1 && need[1]) gb = device_tensor(os);
    launch_binary_backward(bo->second, a.f(), b.f(), out[0] ? out[0]->f() : nullptr, gy.f(), ga.empty() ? nullptr : ga.f(),
                           gb.empty() ? nullptr : gb.f(), make_bcast(ctx, a.shape, b.shape, os), s);
    if (!ga.empty()) gin[0] = reduce_to(ga, a.shape, st);
    if (!gb.empty()) gin[1] = reduce_to(gb, b.shape, st);
    return;
  }
  if (op == "Sum") {
    for (size_t k = 0; k < in.size(); ++k)
      if (need[k]) gin[k] = reduce_to(gy, in[k]->shape, st);
    return;
  }
  if (op == "Min" || op == "Max") {
    // The gradient goes to the first input attaining the extremum (ops_elementwise.cpp variadic_backward).
    const Shape& os = gy.shape;
    DValue taken = device_zeros(os, st);
    for (size_t k = 0; k < in.size(); ++k) {
      DValue gk = device_tensor(os);
      launch_extremum_grad(in[k]->f(), out[0]->f(), gy.f(), taken.f(), gk.f(), make_bcast(ctx, in[k]->shape, os, os), s);
      if (need[k]) gin[k] = reduce_to(gk, in[k]->shape, st);
    }
    return;
  }
  if (op == "Identity" || op == "Dropout") {
    if (need[0]) gin[0] = gy;
    return;
  }
  if (op == "Cast") {
    if (need[0] && out[0] && out[0]->on_device()) gin[0] = gy;
    return;
  }
  if (is_shape_only_op(op)) {
    if (need[0]) gin[0] = alias(gy, in[0]->shape);
    return;
  }
  if (is_index_map_op(op)) {
    for (size_t k = 0; k < in.size(); ++k) {
      if (!need[k] || !in[k] || !in[k]->on_device()) continue;
      if (op == "Pad" && k != 0) continue;
      Shape os;
      const BufferPtr& map = index_map(i, in, k, &os);
      DValue gx = device_zeros(in[k]->shape, st);
      launch_scatter_add_map(gy.f(), static_cast<const int64_t*>(map->get()), gx.f(), shape_numel(os), s);
      gin[k] = gx;
    }
    return;
  }
  if (op == "Gemm") {
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
    return;
  }
  if (op == "MatMul") {
    const DValue& a = *in[0];
    const DValue& b = *in[1];
    MatMulPlan p = matmul_plan(ctx, a.shape, b.shape);
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
    return;
  }
  if (op == "Conv") {
    const DValue& x = *in[0];
    const DValue& w = *in[1];
    ConvGeom g = conv_geom(ctx, x.shape, w.shape);
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
    return;
  }
  if (op == "MaxPool" || op == "AveragePool") {
    if (!need[0]) return;
    const DValue& x = *in[0];
    int64_t pb, pr;
    bool inc;
    ConvGeom g = pool_geom(ctx, x.shape, pb, pr, inc);
    DValue gx = device_zeros(x.shape, st);
    if (op == "MaxPool") launch_maxpool_backward(x.f(), gy.f(), gx.f(), g, s);
    else launch_avgpool_backward(gy.f(), gx.f(), g, pb, pr, inc, s);
    gin[0] = gx;
    return;
  }
  if (op == "GlobalAveragePool") {
    if (!need[0]) return;
    const DValue& x = *in[0];
    int64_t planes = x.shape[0] * x.shape[1];
    int64_t area = planes ? x.numel() / planes : 0;
    DValue gx = device_tensor(x.shape);
    launch_expand_scale(gy.f(), gx.f(), planes, area, area ? 1.f / float(area) : 0.f, s);
    gin[0] = gx;
    return;
  }
  if (op == "BatchNormalization") {
    if (!need[0]) return;
    const DValue& x = *in[0];
    int64_t n = x.shape[0], c = x.shape[1];
    int64_t area = (n * c) != 0 ? x.numel() / (n * c) : 0;
    // dx = a * dy with a = scale / sqrt(var + eps); the forward cached [a; b] when the statistics are constant.
    DValue da;
    auto cached = map_cache_.find(fmt::format("{}#bn{}", i, c));
    if (cached != map_cache_.end()) {
      da.buf = cached->second;
    } else {
      Tensor scale = host_value(i, 1, *in[1]), var = host_value(i, 4, *in[4]);
      float eps = node.get_float("epsilon", 1e-5f);
      Tensor a(Shape{c});
      for (int64_t ch = 0; ch < c; ++ch) a.f32()[ch] = scale.f32()[ch] / std::sqrt(var.f32()[ch] + eps);
      da = to_device(a, st);
    }
    DValue gx = device_tensor(x.shape);
    launch_channel_affine(gy.f(), da.f(), nullptr, gx.f(), n, c, area, s);
    gin[0] = gx;
    return;
  }
  if (op == "Softmax" || op == "LogSoftmax") {
    if (!need[0]) return;
    int64_t outer, len, inner;
    softmax_dims(ctx, in[0]->shape, outer, len, inner);
    DValue gx = device_tensor(in[0]->shape);
    launch_softmax_backward(out[0]->f(), gy.f(), gx.f(), outer, len, inner, op == "LogSoftmax", s);
    gin[0] = gx;
    return;
  }
  if (op == "ReduceMean" || op == "ReduceSum") {
    if (!need[0]) return;
    const DValue& x = *in[0];
    // The output gradient, with the reduced dims restored as 1, broadcast back over x (scaled by 1/count for the mean).
    int64_t r = static_cast<int64_t>(x.shape.size());
    bool mean = op == "ReduceMean";
    bool from_input = mean ? g_.opset >= 18 : g_.opset >= 13;
    std::vector<int64_t> axes;
    bool have = false;
    if (from_input) {
      if (in.size() > 1 && in[1]) {
        axes = host_value(i, 1, *in[1]).to_int64s();
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
      for (int64_t a : axes) mask[detail::norm_axis(ctx, a, r)] = true;
    }
    Shape kept = x.shape;
    int64_t count = 1;
    for (int64_t k = 0; k < r; ++k)
      if (mask[k]) {
        count *= kept[k];
        kept[k] = 1;
      }
    DValue gx = broadcast_to(ctx, alias(gy, kept), x.shape, st);
    if (mean && count > 0) launch_axpby(gx.f(), gx.f(), gx.numel(), 1.f / float(count), 0.f, s);
    gin[0] = gx;
    return;
  }
  // Shape, Constant: no gradient flows.
}

std::vector<DValue> CudaExecutor::forward_values(const std::vector<DValue>& inputs, bool keep_all) const {
  std::vector<DValue> v(plan_.names.size());
  for (size_t s = 0; s < constants_.size(); ++s)
    if (!constants_[s].empty()) v[s] = constants_[s];
  for (size_t k = 0; k < inputs.size(); ++k) v[plan_.input_slots[k]] = inputs[k];
  std::vector<char> done(g_.nodes.size(), 0);
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& node = g_.nodes[i];
    if (node.op_type == "Constant" || done[i]) continue;  // evaluated once at construction / fused
    std::vector<const DValue*> ins;
    for (int s : plan_.node_inputs[i]) ins.push_back(s >= 0 && !v[s].empty() ? &v[s] : nullptr);
    if (fuse_relu_[i] >= 0 && ins.size() >= 2 && ins[0] && ins[1] && ins[0]->on_device() && ins[1]->on_device() &&
        ins[0]->shape.size() == 4) {
      const int r = fuse_relu_[i], m = fuse_pool_[i];
      const int relu_out = plan_.node_outputs[r][0];
      if (m >= 0 && keep_all && conv_pool_even(i, ins)) {
        // Conv + ReLU + MaxPool in one kernel that also writes the ReLU output the backward needs
        // (the Conv's value aliases it, as below).
        DValue full, pooled;
        profiled(*stream_, "fwd", "Conv+Relu+MaxPool(keep)", [&] { pooled = conv_fused(i, ins, 3, &full); });
        if (plan_.node_outputs[i][0] >= 0) v[plan_.node_outputs[i][0]] = full;
        if (relu_out >= 0) v[relu_out] = std::move(full);
        v[plan_.node_outputs[m][0]] = std::move(pooled);
        done[r] = done[m] = 1;
      } else if (m >= 0 && !keep_all) {
        // Conv + ReLU + MaxPool in one kernel; the pre-pool values are never materialised
        // (forward only: a backward would need them).
        DValue y;
        profiled(*stream_, "fwd", "Conv+Relu+MaxPool", [&] { y = conv_fused(i, ins, 2); });
        v[plan_.node_outputs[m][0]] = std::move(y);
        done[r] = done[m] = 1;
      } else {
        // Conv + ReLU: the Conv's value aliases the ReLU's output (the ReLU backward's mask x > 0
        // equals y > 0, and nothing else reads the Conv's output).
        DValue y;
        profiled(*stream_, "fwd", "Conv+Relu", [&] { y = conv_fused(i, ins, 1); });
        if (keep_all && plan_.node_outputs[i][0] >= 0) v[plan_.node_outputs[i][0]] = y;
        if (relu_out >= 0) v[relu_out] = std::move(y);
        done[r] = 1;
      }
    } else {
      std::vector<DValue> outs(node.outputs.size());
      profiled(*stream_, "fwd", node.op_type, [&] { forward_node(i, ins, outs); });
      for (size_t k = 0; k < outs.size(); ++k) {
        int s = plan_.node_outputs[i][k];
        if (s >= 0) v[s] = std::move(outs[k]);
      }
    }
    if (!keep_all) {
      // Release values after their last reader: their blocks go back to the pool for the next node.
      for (int s : plan_.node_inputs[i])
        if (s >= 0 && plan_.last_use[s] == static_cast<int>(i) && !plan_.keep[s]) v[s] = DValue();
    }
  }
  return v;
}

std::vector<DValue> CudaExecutor::outputs_of(const std::vector<DValue>& v) const {
  std::vector<DValue> out;
  for (int s : plan_.output_slots) {
    if (v[s].empty()) throw Error("engine", fmt::format("output '{}' was not computed", plan_.names[s]));
    out.push_back(v[s]);
  }
  return out;
}

std::vector<DValue> CudaExecutor::backward_values(const std::vector<DValue>& v, const std::vector<DValue>& seeds) const {
  const Stream& st = *stream_;
  std::vector<DValue> grad(plan_.names.size());
  // Accumulation never writes in place: gradient buffers may be shared (aliases of reshapes and identities).
  auto accumulate = [&](DValue& into, const DValue& g, const std::string& name) {
    if (g.empty()) return;
    if (into.empty()) {
      into = g;
      return;
    }
    if (into.shape != g.shape)
      throw Error("engine", fmt::format("gradient shape mismatch for value '{}': {} vs {}", name, shape_str(into.shape),
                                        shape_str(g.shape)));
    DValue sum = device_tensor(into.shape);
    BroadcastDesc d;
    d.rank = 1;
    d.out_dims[0] = into.numel();
    d.a_strides[0] = 1;
    d.b_strides[0] = 1;
    launch_binary(BinaryOp::Add, into.f(), g.f(), sum.f(), d, st.get());
    into = sum;
  };
  for (size_t k = 0; k < seeds.size() && k < plan_.output_slots.size(); ++k)
    if (!seeds[k].empty()) accumulate(grad[plan_.output_slots[k]], seeds[k], plan_.names[plan_.output_slots[k]]);
  std::vector<char> done(g_.nodes.size(), 0);
  // MaxPool(2x2/2) backward + the ReLU backward before it, one kernel, straight to the Conv's
  // output gradient (the forward ran Conv+ReLU fused, so the pool input is the ReLU output).
  auto fused_pool_backward = [&](size_t i) {
    if (done[i]) return true;
    if (pool_conv_[i] < 0) return false;
    const int c = pool_conv_[i], r = fuse_relu_[c];
    const int pool_out = plan_.node_outputs[i][0], pool_in = plan_.node_inputs[i][0];
    const int conv_out = plan_.node_outputs[c][0];
    if (pool_out < 0 || pool_in < 0 || conv_out < 0 || grad[pool_out].empty() || !grad[pool_out].on_device() ||
        v[pool_in].empty() || !v[pool_in].on_device() || v[pool_in].shape.size() != 4 || !plan_.requires_grad[conv_out])
      return false;
    const DValue& x = v[pool_in];
    const DValue& gy = grad[pool_out];
    const int64_t planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3];
    if (gy.numel() != planes * (h / 2) * (w / 2)) return false;
    DValue gx;
    profiled(st, "bwd", "MaxPool+Relu", [&] {
      gx = (h % 2 || w % 2) ? device_zeros(x.shape, st) : device_tensor(x.shape);
      launch_maxpool2_relu_backward(x.f(), gy.f(), gx.f(), planes, h, w, st.get());
    });
    accumulate(grad[conv_out], gx, plan_.names[conv_out]);
    if (!plan_.keep[pool_out]) grad[pool_out] = DValue();
    done[r] = 1;
    return true;
  };
  backward_walk(
      plan_, g_.nodes.size(), v, grad, [](const DValue& d) { return d.on_device(); }, fused_pool_backward,
      [&](size_t i, const std::vector<const DValue*>& ins, const std::vector<const DValue*>& outs,
          const std::vector<const DValue*>& gouts, const std::vector<bool>& need, std::vector<DValue>& gin) {
        profiled(st, "bwd", g_.nodes[i].op_type, [&] { backward_node(i, ins, outs, gouts, need, gin); });
      },
      accumulate);
  std::vector<DValue> out;
  for (size_t k = 0; k < g_.inputs.size(); ++k) {
    int s = plan_.input_slots[k];
    if (g_.inputs[k].dtype != DType::Float32) {
      out.emplace_back();
      continue;
    }
    if (grad[s].empty()) grad[s] = device_zeros(v[s].shape, st);
    out.push_back(grad[s]);
  }
  return out;
}

std::vector<Tensor> CudaExecutor::run(const std::vector<Tensor>& inputs) const {
  std::lock_guard<std::mutex> lock(mu_);
  StreamScope scope(*stream_);
  std::vector<DValue> din;
  for (const auto& t : inputs) din.push_back(to_device(t, *stream_));
  auto outs = outputs_of(forward_values(din, false));
  std::vector<Tensor> host;
  for (const auto& o : outs) host.push_back(to_host(o, *stream_));
  return host;
}

std::vector<Tensor> CudaExecutor::gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                                           std::vector<Tensor>* outputs) const {
  std::lock_guard<std::mutex> lock(mu_);
  StreamScope scope(*stream_);
  std::vector<DValue> din;
  for (const auto& t : inputs) din.push_back(to_device(t, *stream_));
  auto values = forward_values(din, true);
  if (outputs) {
    outputs->clear();
    for (const auto& o : outputs_of(values)) outputs->push_back(to_host(o, *stream_));
  }
  std::vector<DValue> seeds(output_seeds.size());
  for (size_t k = 0; k < output_seeds.size() && k < plan_.output_slots.size(); ++k) {
    if (output_seeds[k].empty()) continue;
    int s = plan_.output_slots[k];
    if (output_seeds[k].shape() != values[s].shape)
      throw InputError("engine", fmt::format("seed for output '{}' has shape {}, the output has {}", plan_.names[s],
                                             shape_str(output_seeds[k].shape()), shape_str(values[s].shape)));
    if (output_seeds[k].dtype() != DType::Float32)
      throw InputError("engine", fmt::format("seed for output '{}' must be float32", plan_.names[s]));
    seeds[k] = to_device(output_seeds[k], *stream_);
  }
  auto grads = backward_values(values, seeds);
  std::vector<Tensor> host;
  for (const auto& g : grads) host.push_back(g.empty() ? Tensor() : to_host(g, *stream_));
  return host;
}

}  // namespace cuda

// ------------------------------------------------------------------ entry points

std::vector<std::string> cuda_supported_ops() {
  // Every op of the CPU backend (engine::supported_ops()), forward and backward.
  std::vector<std::string> ops = {"Add", "Sub", "Mul", "Div", "Pow", "Sum", "Min", "Max", "Neg", "Abs", "Relu", "LeakyRelu",
                                  "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Elu", "Softplus", "HardSigmoid", "Sign",
                                  "Identity", "Dropout", "Clip", "Cast", "Gemm", "MatMul", "Conv", "MaxPool", "AveragePool",
                                  "GlobalAveragePool", "BatchNormalization", "Softmax", "LogSoftmax", "ReduceMean",
                                  "ReduceSum", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat",
                                  "Slice", "Gather", "Pad", "Constant", "Shape"};
  return ops;
}

std::unique_ptr<DeviceSession> make_cuda_session(const Graph& graph) {
  if (cuda::device_count() == 0) return nullptr;
  // Nodes without a CUDA kernel run on the CPU, one by one (CudaExecutor::host_fallback_*).
  return std::make_unique<cuda::CudaExecutor>(graph);
}

}  // namespace mlaudit::engine
