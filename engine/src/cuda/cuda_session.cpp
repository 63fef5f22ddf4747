// CUDA device executor: the CPU Executor's plan (session.cpp) run with float32 values in pooled
// device memory. Every node is dispatched through the CUDA op table (op_table.h: one entry per op
// type with its forward, VJP and support check; the ops' host code is organised by family,
// <family>.cpp, and their kernels are <family>_impl.cu); a node without an entry, or whose check
// fails, runs through the per-op CPU fallback. int64 shape arithmetic stays on the host. Also
// here: the Conv -> Relu (-> MaxPool) fusions, the host values and index maps the ops ask for.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "conv_impl.h"
#include "cuda_executor.h"
#include "elementwise_impl.h"
#include "mlaudit/engine/error.h"
#include "op_table.h"
#include "ops.h"
#include "ops_common.h"
#include "pool_impl.h"

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

}  // namespace

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
  const Stream& st = *stream_;
  const CudaOpDef* def = find_kernel(node, g_.opset, &in);
  if (!def) {
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
    detail::find_op(node.op_type)->forward(ctx, hin, houts);
    for (size_t k = 0; k < houts.size(); ++k)
      if (!houts[k].empty()) out[k] = to_device(houts[k], st);
    return;
  }
  if (!def->forward)
    throw UnsupportedError("engine", fmt::format("cuda: op '{}' at node '{}' has no CUDA kernel", node.op_type, node.name));
  def->forward(OpCall{*this, i, ctx, st}, in, out);
}

void CudaExecutor::backward_node(size_t i, const std::vector<const DValue*>& in, const std::vector<const DValue*>& out,
                                 const std::vector<const DValue*>& gout, const std::vector<bool>& need,
                                 std::vector<DValue>& gin) const {
  const Node& node = g_.nodes[i];
  const CudaOpDef* def = find_kernel(node, g_.opset, &in);
  if (!def) {
    host_fallback_backward(i, in, out, gout, need, gin);
    return;
  }
  if (!gout[0]) return;
  if (!def->backward) return;  // Shape, Constant: no gradient flows
  OpContext ctx{node, g_.opset};
  def->backward(OpCall{*this, i, ctx, *stream_}, in, out, gout, need, gin);
}

bool CudaExecutor::constant_input(size_t node, size_t k) const {
  int s = plan_.node_inputs[node][k];
  return s >= 0 && plan_.is_constant[s];
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

}  // namespace mlaudit::engine
