// Session: executes a Graph on a backend, forward and reverse mode.
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/trees.h"

#include <fmt/format.h>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <chrono>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <set>
#include <cstdlib>
#include <thread>
#include <unordered_map>

#include "backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/fusion.h"
#include "cpu/layout.h"
#include "dense_chain.h"
#include "plan.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {
std::atomic<int> g_threads{0};
// A per-thread cap (0: none) for work that must stay on its caller's thread (infer_shapes).
thread_local int tl_threads = 0;
}

void set_num_threads(int n) {
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int t = n <= 0 ? hw : n;
  g_threads = t;
  omp_set_num_threads(t);
}

int num_threads() {
  if (tl_threads > 0) return tl_threads;
  int t = g_threads.load();
  return t > 0 ? t : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device::Cpu;
  if (s == "cuda" || s == "gpu") return Device::Cuda;
  if (s == "auto") return Device::Auto;
  throw InputError("cli", fmt::format("--device: '{}' is not one of cpu, cuda, auto", s));
}

namespace {

void accumulate(Tensor& into, const Tensor& g, const std::string& name) {
  if (g.empty()) return;
  if (into.empty()) {
    into = g;  // shared; copied on write below if another gradient is added
    return;
  }
  if (into.shape() != g.shape())
    throw Error("engine", fmt::format("gradient shape mismatch for value '{}': {} vs {}", name, shape_str(into.shape()),
                                      shape_str(g.shape())));
  if (!into.unique_storage()) into = into.clone();
  float* a = into.f32();
  const float* b = g.f32();
  for (int64_t i = 0; i < into.numel(); ++i) a[i] += b[i];
}

}  // namespace

// MLAUDIT_PROFILE=1: time per op type over the whole process, printed to stderr at exit
// (a development aid for finding where a model's forward pass spends its time). The first
// call of each op type is left out: oneDNN compiles its kernels then.
struct OpProfile {
  bool on = [] {
    const char* e = std::getenv("MLAUDIT_PROFILE");
    return e && (std::string(e) == "1" || std::string(e) == "shapes");
  }();
  bool shapes = [] {  // MLAUDIT_PROFILE=shapes: one row per op type and input shapes
    const char* e = std::getenv("MLAUDIT_PROFILE");
    return e && std::string(e) == "shapes";
  }();
  std::mutex mu;
  std::map<std::string, std::pair<double, int64_t>> by_op;
  // One call of `op` (forward; backward as "op'") on `ins` that took `dt`.
  void add(const std::string& op, const detail::Inputs& ins, std::chrono::steady_clock::duration dt) {
    std::string key = op;
    if (shapes)
      for (const Tensor* t : ins) key += " " + (t ? shape_str(t->shape()) : std::string("-"));
    std::lock_guard<std::mutex> lock(mu);
    auto& e = by_op[key];
    if (e.second++ > 0) e.first += std::chrono::duration<double>(dt).count();  // the first call (JIT, caches) is left out
  }
  ~OpProfile() {
    if (!on || by_op.empty()) return;
    std::vector<std::pair<double, std::string>> rows;
    double total = 0;
    for (const auto& [op, v] : by_op) rows.push_back({v.first, op}), total += v.first;
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "mlaudit profile: %.3f ms in %zu op types\n", total * 1e3, rows.size());
    for (const auto& [t, op] : rows)
      std::fprintf(stderr, "  %-48s %10.3f ms %5.1f%% %8lld calls\n", op.c_str(), t * 1e3, 100 * t / total,
                   static_cast<long long>(by_op[op].second));
  }
};
OpProfile& op_profile() {
  static OpProfile p;
  return p;
}

class Executor {
 public:
  // fuse: run the CPU rewrites of cpu/fusion.h on a private copy of the graph (infer_shapes,
  // which reports every intermediate value, runs the graph as loaded).
  Executor(const Graph& g, const CpuBackend& b, bool fuse = true)
      : Executor(g, b, fuse, fuse ? detail::fuse_cpu_graph(g) : Graph()) {}

  // The graph's outputs for `inputs`, keeping no intermediate values.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const {
    if (infer_) return infer_->run(inputs);
    return outputs_of(forward(inputs, false));
  }

  // Runs the graph. keep_all keeps every value (for backward / shape inference).
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs, bool keep_all) const {
    std::vector<Tensor> v(plan_.names.size());
    for (const auto& [s, t] : constants_) v[s] = t;
    for (size_t k = 0; k < inputs.size(); ++k) v[plan_.input_slots[k]] = inputs[k];
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      const Node& node = g_.nodes[i];
      detail::OpContext ctx{node, g_.opset};
      detail::Inputs ins;
      for (int s : plan_.node_inputs[i]) ins.push_back(s >= 0 && !v[s].empty() ? &v[s] : nullptr);
      std::vector<Tensor> outs(node.outputs.size());
      std::vector<Tensor> unblocked;
      bool reblock = false;
      const auto t0 = op_profile().on ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
      const bool blocked = node.has(detail::kBlockedInputsAttribute);
      if (!blocked || !detail::blocked_channel_broadcast(node, ins, outs)) {
        if (blocked) reblock = unblock_broadcast(node, ins, unblocked);
        b_.forward(ctx, ins, outs);
      }
      if (op_profile().on) op_profile().add(node.op_type, ins, std::chrono::steady_clock::now() - t0);
      if (reblock)
        for (size_t k = 0; k < outs.size(); ++k)
          if (int64_t b = detail::blocked_output(node, k)) outs[k] = detail::to_blocked(outs[k], b);
      for (size_t k = 0; k < outs.size(); ++k) {
        int s = plan_.node_outputs[i][k];
        if (s >= 0) v[s] = std::move(outs[k]);
      }
      if (!keep_all) {
        // Release values after their last reader: memory is reused across nodes.
        for (int s : plan_.node_inputs[i])
          if (s >= 0 && plan_.last_use[s] == static_cast<int>(i) && !plan_.keep[s]) v[s] = Tensor();
      }
    }
    return v;
  }

  // An element-wise node on channel-blocked inputs (cpu/layout.h) computes position by position
  // only when its data inputs have one shape; when they broadcast, they are converted to NCHW
  // here (into `plain`, which `ins` then points into) and the caller blocks the outputs again.
  // Returns whether it converted anything.
  static bool unblock_broadcast(const Node& node, detail::Inputs& ins, std::vector<Tensor>& plain) {
    size_t data = 0;
    if (!detail::layout_free_op(node, data) || data > ins.size()) return false;
    bool same = true;
    for (size_t k = 1; k < data; ++k) same = same && ins[k] && ins[0] && ins[k]->shape() == ins[0]->shape();
    if (same) return false;
    plain.resize(data);
    for (size_t k = 0; k < data; ++k)
      if (ins[k] && detail::blocked_input(node, k)) {
        plain[k] = detail::from_blocked(*ins[k], detail::blocked_input(node, k));
        ins[k] = &plain[k];
      }
    return true;
  }

  std::vector<Tensor> outputs_of(const std::vector<Tensor>& v) const {
    std::vector<Tensor> out;
    for (int s : plan_.output_slots) {
      if (v[s].empty()) throw Error("engine", fmt::format("output '{}' was not computed", plan_.names[s]));
      out.push_back(v[s]);
    }
    return out;
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& v, const std::vector<Tensor>& seeds) const {
    std::vector<Tensor> grad(plan_.names.size());
    for (size_t k = 0; k < seeds.size() && k < plan_.output_slots.size(); ++k) {
      if (seeds[k].empty()) continue;
      int s = plan_.output_slots[k];
      if (seeds[k].shape() != v[s].shape())
        throw InputError("engine", fmt::format("seed for output '{}' has shape {}, the output has {}", plan_.names[s],
                                               shape_str(seeds[k].shape()), shape_str(v[s].shape())));
      if (seeds[k].dtype() != DType::Float32)
        throw InputError("engine", fmt::format("seed for output '{}' must be float32", plan_.names[s]));
      accumulate(grad[s], seeds[k], plan_.names[s]);
    }
    backward_walk(
        plan_, g_.nodes.size(), v, grad, [](const Tensor& t) { return t.dtype() == DType::Float32; },
        [](size_t) { return false; },
        [&](size_t i, const detail::Inputs& ins_in, const detail::Inputs& outs_in, const detail::Inputs& gouts_in,
            const std::vector<bool>& need, std::vector<Tensor>& gin) {
          detail::OpContext ctx{g_.nodes[i], g_.opset};
          // An element-wise node on blocked inputs that broadcast (unblock_broadcast in forward):
          // its backward runs on NCHW copies, and the gradients of blocked inputs are blocked.
          if (g_.nodes[i].has(detail::kBlockedInputsAttribute) &&
              detail::blocked_channel_broadcast_backward(g_.nodes[i], ins_in, gouts_in, need, gin))
            return;
          detail::Inputs ins = ins_in, outs = outs_in, gouts = gouts_in;
          std::vector<Tensor> plain_in, plain_out, plain_g;
          const bool unblock = g_.nodes[i].has(detail::kBlockedInputsAttribute) && unblock_broadcast(g_.nodes[i], ins, plain_in);
          if (unblock) {
            plain_out.resize(outs.size());
            plain_g.resize(gouts.size());
            for (size_t k = 0; k < outs.size(); ++k)
              if (int64_t bk = detail::blocked_output(g_.nodes[i], k)) {
                if (outs[k]) plain_out[k] = detail::from_blocked(*outs[k], bk), outs[k] = &plain_out[k];
                if (k < gouts.size() && gouts[k]) plain_g[k] = detail::from_blocked(*gouts[k], bk), gouts[k] = &plain_g[k];
              }
          }
          auto reblock = [&] {
            if (!unblock) return;
            for (size_t k = 0; k < gin.size() && k < ins.size(); ++k)
              if (int64_t bk = detail::blocked_input(g_.nodes[i], k); bk && !gin[k].empty()) gin[k] = detail::to_blocked(gin[k], bk);
          };
          if (!op_profile().on) {
            b_.backward(ctx, ins, outs, gouts, need, gin);
            return reblock();
          }
          const auto t0 = std::chrono::steady_clock::now();
          b_.backward(ctx, ins, outs, gouts, need, gin);
          reblock();
          op_profile().add(g_.nodes[i].op_type + "'", ins, std::chrono::steady_clock::now() - t0);
        },
        [&](Tensor& into, const Tensor& g, const std::string& name) { accumulate(into, g, name); });
    std::vector<Tensor> out;
    for (size_t k = 0; k < g_.inputs.size(); ++k) {
      int s = plan_.input_slots[k];
      if (g_.inputs[k].dtype != DType::Float32) {
        out.emplace_back();
        continue;
      }
      if (grad[s].empty()) grad[s] = Tensor(v[s].shape());  // the output does not depend on this input
      out.push_back(grad[s]);
    }
    return out;
  }

  const ExecutionPlan& plan() const { return plan_; }

 private:
  // `fused`: fuse_cpu_graph(g) when fusing. The executor runs its channel-blocked form
  // (block_cpu_gradient_graph); forward-only passes (run) take a graph with the rewrites that
  // drop values a backward needs (cpu/fusion.h: fuse_cpu_inference_graph), when there are any.
  Executor(const Graph& g, const CpuBackend& b, bool fuse, const Graph& fused)
      : own_(fuse ? detail::block_cpu_gradient_graph(fused) : Graph()), g_(fuse ? own_ : g), b_(b),
        plan_(make_execution_plan(g_)) {
    for (const auto& [name, t] : g_.initializers) constants_.emplace_back(plan_.slot.at(name), t);
    if (fuse) {
      bool changed = false;
      Graph inference = detail::fuse_cpu_inference_graph(fused, changed);
      if (changed) infer_.reset(new Executor(Owned{}, std::move(inference), b));
    }
  }

  // An executor of `owned` as it is (the forward-only graph).
  struct Owned {};
  Executor(Owned, Graph owned, const CpuBackend& b) : own_(std::move(owned)), g_(own_), b_(b), plan_(make_execution_plan(g_)) {
    for (const auto& [name, t] : g_.initializers) constants_.emplace_back(plan_.slot.at(name), t);
  }

  Graph own_;  // the fused copy (empty when not fusing)
  const Graph& g_;
  const CpuBackend& b_;
  ExecutionPlan plan_;
  std::vector<std::pair<int, Tensor>> constants_;  // initializer slots
  std::unique_ptr<Executor> infer_;                // forward-only graph of run() (null: g_ itself)
};

namespace {
// The CPU backend's graph compute (CpuBackend::compute): the executor a Session runs on the CPU.
class CpuGraph final : public BackendGraph {
 public:
  CpuGraph(const Graph& graph, const CpuBackend& backend) : graph_(resolved(graph)), backend_(backend), ex_(graph_, backend_) {}
  std::string name() const override { return backend_.name(); }
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const override { return ex_.run(inputs); }
  std::vector<Tensor> gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                               std::vector<Tensor>* outputs) const override {
    auto values = ex_.forward(inputs, true);
    if (outputs) *outputs = ex_.outputs_of(values);
    return ex_.backward(values, output_seeds);
  }

 private:
  // Graphs built in code carry no resolved versions (as in Session's constructor).
  static Graph resolved(Graph g) {
    for (auto& n : g.nodes) n.since_version = op_since_version(n.domain, n.op_type, n.domain.empty() ? g.opset : g.ml_opset);
    return g;
  }
  Graph graph_;
  const CpuBackend& backend_;
  Executor ex_;
};
}  // namespace

std::unique_ptr<BackendGraph> make_cpu_graph(const Graph& graph, const CpuBackend& backend) {
  return std::make_unique<CpuGraph>(graph, backend);
}

std::unique_ptr<Session> Session::load(const std::string& path, const SessionOptions& opts) {
  // (select_output runs in the constructor.)
  return std::make_unique<Session>(load_onnx(path, opts.limits), opts);
}

size_t select_output(Graph& g, const std::string& name) {
  auto names = [&] {
    std::vector<std::string> v;
    for (const auto& o : g.outputs) v.push_back(o.name);
    return fmt::format("{}", fmt::join(v, ", "));
  };
  size_t chosen = g.outputs.size();
  if (!name.empty()) {
    for (size_t k = 0; k < g.outputs.size(); ++k)
      if (g.outputs[k].name == name) chosen = k;
    if (chosen == g.outputs.size()) {
      for (const auto& o : g.opaque_outputs)
        if (o.name == name)
          throw InputError("engine", fmt::format("{}: output '{}' is {}, not a tensor{}; tensor outputs: {}", g.source,
                                                 name, o.type, o.hint.empty() ? "" : " (" + o.hint + ")", names()));
      throw InputError("engine", fmt::format("{}: --output '{}': the model has no such output (outputs: {})", g.source,
                                             name, names()));
    }
  } else {
    for (size_t k = 0; k < g.outputs.size() && chosen == g.outputs.size(); ++k)
      if ((g.outputs[k].name == "probabilities" || g.outputs[k].name == "output_probability") &&
          g.outputs[k].dtype == DType::Float32)
        chosen = k;
    for (size_t k = 0; k < g.outputs.size() && chosen == g.outputs.size(); ++k)
      if (g.outputs[k].dtype == DType::Float32) chosen = k;
    if (chosen == g.outputs.size()) chosen = 0;
  }
  if (name.empty()) return chosen;  // every output stays, in the model's order
  std::rotate(g.outputs.begin(), g.outputs.begin() + chosen, g.outputs.begin() + chosen + 1);
  g.outputs.resize(1);
  // Drop the nodes only the other outputs needed (nodes are in topological order).
  std::set<std::string> needed{g.outputs[0].name};
  std::vector<Node> kept;
  for (size_t i = g.nodes.size(); i-- > 0;) {
    bool feeds = false;
    for (const auto& o : g.nodes[i].outputs) feeds |= needed.count(o) != 0;
    if (!feeds) continue;
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty()) needed.insert(in);
    kept.push_back(std::move(g.nodes[i]));
  }
  std::reverse(kept.begin(), kept.end());
  g.nodes = std::move(kept);
  return 0;
}

Session::Session(Graph graph, const SessionOptions& opts) : graph_(std::move(graph)) {
  if (opts.threads > 0) set_num_threads(opts.threads);
  audited_ = select_output(graph_, opts.output);
  // Graphs built in code carry no resolved versions; resolving again is harmless for loaded ones.
  for (auto& n : graph_.nodes)
    n.since_version = op_since_version(n.domain, n.op_type, n.domain.empty() ? graph_.opset : graph_.ml_opset);
  switch (opts.device) {
    case Device::Cuda:
      if (cuda_device_count() == 0)
        throw InputError("engine", "--device cuda: no CUDA device is available (or this build has no CUDA backend); use --device cpu or auto");
      device_ = make_cuda_session(graph_);
      if (!device_) throw InputError("engine", "--device cuda: the CUDA backend could not be started");
      break;
    case Device::Auto:
      // The GPU when one is present and runs every op of the model, else the CPU.
      if (cuda_device_count() > 0) {
        auto ops = cuda_supported_ops();
        bool all = !ops.empty();
        for (const auto& n : graph_.nodes)
          if (std::find(ops.begin(), ops.end(), n.op_type) == ops.end()) all = false;
        if (all) device_ = make_cuda_session(graph_);
      }
      break;
    case Device::Cpu:
      break;
  }
  if (opts.binary_two_classes) {
    ValueInfo& out = graph_.outputs[audited_];
    const Shape& sh = out.shape;
    const bool one_column = out.dtype == DType::Float32 && ((sh.size() == 2 && sh[1] == 1) || sh.size() == 1);
    if (one_column) {
      const std::string act = output_activation();
      const bool probability = act == "Sigmoid" || act.find("LOGISTIC") != std::string::npos;
      binary_of_ = out.name;
      if (graph_.opset == 0) graph_.opset = 13;
      auto add = [&](const std::string& op, std::vector<std::string> in, const std::string& name) {
        Node n;
        n.name = "mlaudit/binary_" + name;
        n.op_type = op;
        n.inputs = std::move(in);
        n.outputs = {"mlaudit/" + name + "(" + binary_of_ + ")"};
        n.since_version = op_since_version("", op, graph_.opset);
        graph_.nodes.push_back(n);
        return n.outputs[0];
      };
      std::string col = out.name;
      if (sh.size() == 1) {  // [N] -> [N,1]
        const std::string shape = "mlaudit/binary_column_shape";
        graph_.initializers[shape] = Tensor(DType::Int64, {2});
        graph_.initializers[shape].i64()[0] = 0;
        graph_.initializers[shape].i64()[1] = 1;
        col = add("Reshape", {col, shape}, "column");
      }
      std::string wide;
      if (probability) {
        // [1 - p, p] through a clamp, then its logarithm (softmax(log q) = q).
        const std::string one = "mlaudit/one", tiny = "mlaudit/tiny", big = "mlaudit/max_float";
        graph_.initializers[one] = Tensor::scalar(1.0f);
        graph_.initializers[tiny] = Tensor::scalar(1e-30f);
        graph_.initializers[big] = Tensor::scalar(std::numeric_limits<float>::max());
        const std::string q = add("Sub", {one, col}, "one_minus");
        const std::string both = add("Concat", {q, col}, "two_classes");
        graph_.nodes.back().attributes["axis"] = Attribute::of_int(1);
        std::string clamped = both;
        if (graph_.opset >= 11) clamped = add("Clip", {both, tiny, big}, "clamped");
        else {
          clamped = add("Clip", {both}, "clamped");
          graph_.nodes.back().attributes["min"] = Attribute::of_float(1e-30f);
          graph_.nodes.back().attributes["max"] = Attribute::of_float(std::numeric_limits<float>::max());
        }
        wide = add("Log", {clamped}, "log");
        log_of_ = binary_of_;
      } else {
        // [0, z]: class 0's logit is 0, so softmax gives [1 - sigmoid(z), sigmoid(z)].
        const std::string zero = add("Sub", {col, col}, "zero");
        wide = add("Concat", {zero, col}, "two_classes");
        graph_.nodes.back().attributes["axis"] = Attribute::of_int(1);
      }
      out.name = wide;
      out.shape = sh.size() == 2 ? Shape{sh[0], 2} : Shape{sh.empty() ? -1 : sh[0], 2};
    }
  }
  if (opts.logits_from_probabilities && log_of_.empty() && output_is_probability_vector()) {
    // log p through a clamp: log 0 would be -inf for classes a tree never votes for.
    ValueInfo& out = graph_.outputs[audited_];
    log_of_ = out.name;
    std::string clamped = "mlaudit/clamped(" + out.name + ")", tiny = "mlaudit/tiny";
    Node clip;
    clip.name = "mlaudit/clip_probabilities";
    clip.op_type = "Clip";
    clip.inputs = {out.name};
    clip.outputs = {clamped};
    if (graph_.opset >= 11) {
      graph_.initializers[tiny] = Tensor::scalar(1e-30f);
      clip.inputs.push_back(tiny);
    } else {
      clip.attributes["min"] = Attribute::of_float(1e-30f);
      clip.attributes["max"] = Attribute::of_float(std::numeric_limits<float>::max());
    }
    Node log;
    log.name = "mlaudit/log_probabilities";
    log.op_type = "Log";
    log.inputs = {clamped};
    log.outputs = {"log(" + out.name + ")"};
    if (graph_.opset == 0) graph_.opset = 13;  // an ONNX-ML-only model (XGBoost's converter imports no ai.onnx)
    for (Node* n : {&clip, &log}) {
      n->since_version = op_since_version("", n->op_type, graph_.opset);
      graph_.nodes.push_back(*n);
    }
    out.name = log.outputs[0];
    out.dtype = DType::Float32;
  }
  auto cpu = std::make_unique<CpuBackend>();
  const CpuBackend& cpu_backend = *cpu;
  backend_ = std::move(cpu);
  for (const auto& n : graph_.nodes) {
    std::string problem = node_support_problem(n, graph_);
    if (!problem.empty()) throw UnsupportedError("engine", fmt::format("{}: {}", graph_.source, problem));
  }
  gradient_blockers_ = non_differentiable_nodes(graph_, audited_);
  executor_ = std::make_unique<Executor>(graph_, cpu_backend);
  const char* no_fuse = std::getenv("MLAUDIT_NO_FUSE");
  if (!device_ && opts.fuse_dense && !(no_fuse && std::string(no_fuse) == "1")) chain_ = DenseChain::compile(graph_);
}

Session::~Session() = default;

namespace {

// The node that made value `v`, looking through value-preserving ops (nullptr if none), and the
// name of its output that `v` traces back to.
std::pair<const Node*, std::string> maker_of(const Graph& g, std::string v) {
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    if (std::find(n.outputs.begin(), n.outputs.end(), v) == n.outputs.end()) continue;
    if (n.domain.empty() && (n.op_type == "Identity" || n.op_type == "Reshape" || n.op_type == "Flatten" ||
                             n.op_type == "Squeeze" || n.op_type == "Cast")) {
      if (n.inputs.empty()) return {nullptr, v};
      v = n.inputs[0];
      continue;
    }
    return {&n, v};
  }
  return {nullptr, v};
}

// An ONNX-ML classifier's scores output (output 1) with its post-transform, when `v` is it.
bool ml_scores(const Node& n, const std::string& v) {
  return n.domain == "ai.onnx.ml" && n.outputs.size() > 1 && n.outputs[1] == v;
}

}  // namespace

bool Session::output_is_probability_vector() const {
  if (graph_.outputs.empty()) return false;
  const std::string& name = graph_.outputs[audited_].name;
  auto [n, v] = maker_of(graph_, name);
  if (!n) return false;
  if (n->domain.empty()) return n->op_type == "Softmax";
  if (!ml_scores(*n, v)) return false;
  std::string t = n->get_string("post_transform", "NONE");
  if (t == "SOFTMAX" || t == "SOFTMAX_ZERO" || t == "LOGISTIC") return true;
  return t == "NONE" && (name == "probabilities" || name == "output_probability");
}

std::string Session::output_activation() const {
  if (!log_of_.empty() || graph_.outputs.empty()) return {};
  auto [n, v] = maker_of(graph_, graph_.outputs[audited_].name);
  if (!n) return {};
  if (n->domain.empty() && (n->op_type == "Softmax" || n->op_type == "LogSoftmax" || n->op_type == "Sigmoid"))
    return n->op_type;
  // ONNX-ML classifiers' scores are probabilities unless post_transform is NONE.
  const std::string t = n->get_string("post_transform", "NONE");
  if (ml_scores(*n, v) && t != "NONE") return "ai.onnx.ml." + n->op_type + " (post_transform " + t + ")";
  return {};
}

void Session::require_gradients(const std::string& what) const {
  if (gradient_blockers_.empty()) return;
  const Node& n = *gradient_blockers_.front();
  std::string op = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
  const bool trees = has_tree_ensemble(graph_);
  throw UnsupportedError(
      "engine",
      fmt::format("{}: {} are not available: node '{}' ({}) is not differentiable; use a black-box method instead "
                  "(attack --attack square|hsja|boundary, explain --method kernel-shap|lime|permutation|occlusion{})",
                  graph_.source, what, n.name, op,
                  trees ? "; for tree ensembles also explain --method tree-shap, attack --attack exact-tree and exact "
                          "verify"
                        : ", verify by sampling-based falsification"));
}

std::string Session::backend_name() const { return device_ ? device_->name() : backend_->name(); }

void Session::check_inputs(const std::vector<Tensor>& inputs) const {
  if (inputs.size() != graph_.inputs.size())
    throw InputError("engine", fmt::format("{}: model has {} inputs, {} given", graph_.source, graph_.inputs.size(),
                                           inputs.size()));
  for (size_t k = 0; k < inputs.size(); ++k) {
    const ValueInfo& vi = graph_.inputs[k];
    const Tensor& t = inputs[k];
    if (t.empty()) throw InputError("engine", fmt::format("input '{}' is missing", vi.name));
    bool ok = vi.shape.empty() || t.rank() == vi.shape.size();
    for (size_t i = 0; ok && i < vi.shape.size(); ++i)
      if (vi.shape[i] >= 0 && vi.shape[i] != t.shape()[i]) ok = false;
    if (!ok)
      throw InputError("engine", fmt::format("{}: input '{}' expects shape {} (-1 = any), got {}", graph_.source, vi.name,
                                             shape_str(vi.shape), shape_str(t.shape())));
  }
}

namespace {
std::vector<Tensor> convert_inputs(const Graph& g, const std::vector<Tensor>& inputs) {
  std::vector<Tensor> out;
  for (size_t k = 0; k < inputs.size(); ++k) {
    DType want = g.inputs[k].dtype;
    if (want == DType::Float64) want = DType::Float32;
    if (want == DType::Int32 || want == DType::UInt8) want = DType::Int64;
    out.push_back(inputs[k].to(want));
  }
  return out;
}
}  // namespace

std::vector<Tensor> Session::run(const std::vector<Tensor>& inputs) const {
  check_inputs(inputs);
  if (device_) return device_->run(convert_inputs(graph_, inputs));
  if (chain_) {
    Tensor x = inputs[0].to(DType::Float32);
    if (x.rank() == 2 && x.shape()[1] == chain_->input_width()) {
      Tensor y = Tensor::uninitialized(DType::Float32, Shape{x.shape()[0], chain_->output_width()});
      chain_->forward(x.f32(), x.shape()[0], y.f32());
      return {y};
    }
  }
  return executor_->run(convert_inputs(graph_, inputs));
}

void Session::forward_mixtures(const std::vector<Mixtures>& batch, const Shape& row_shape, int64_t max_rows, bool ends,
                               MixtureOutputs& out) const {
  if (chain_ && chain_->mixable() && row_shape.size() == 1 && row_shape[0] == chain_->input_width())
    chain_->forward_mixtures(batch, out);
  else
    Model::forward_mixtures(batch, row_shape, max_rows, ends, out);
}

std::vector<Tensor> Session::gradient(const std::vector<Tensor>& inputs, const std::vector<Tensor>& output_seeds,
                                      std::vector<Tensor>* outputs) const {
  require_gradients();
  check_inputs(inputs);
  if (device_) return device_->gradient(convert_inputs(graph_, inputs), output_seeds, outputs);
  const Executor& ex = *executor_;
  auto values = ex.forward(convert_inputs(graph_, inputs), true);
  if (outputs) *outputs = ex.outputs_of(values);
  return ex.backward(values, output_seeds);
}

Shape Session::input_shape() const { return graph_.inputs.at(0).shape; }

int64_t Session::fixed_batch_split(const Tensor& x) const {
  // Models exported without a dynamic batch axis (dim 0 fixed: 1, or the example's batch as
  // torch's dynamo exporter writes it): commands pass batches of their own size, so the Model
  // interface feeds them in slices of the fixed size, the last one padded.
  if (graph_.inputs.size() != 1 || graph_.inputs[0].shape.empty() || x.rank() == 0) return 0;
  const int64_t fixed = graph_.inputs[0].shape[0];
  if (fixed <= 0 || x.dim(0) == fixed || x.dim(0) == 0) return 0;
  return fixed;
}

namespace {
// Rows [b, b + k) of x; a last slice with fewer rows is padded to k with copies of x's last row
// (a valid input; the padded rows' results are dropped).
Tensor padded_slice(const Tensor& x, int64_t b, int64_t k) {
  const int64_t n = x.dim(0), e = std::min(n, b + k);
  if (e - b == k) return x.slice_rows(b, e);
  std::vector<int64_t> rows;
  for (int64_t i = b; i < k + b; ++i) rows.push_back(std::min(i, n - 1));
  return x.gather_rows(rows);
}
// Rows [b, b + k) of s, padded with zero rows.
Tensor zero_padded_slice(const Tensor& s, int64_t b, int64_t k) {
  const int64_t n = s.dim(0), e = std::min(n, b + k);
  if (e - b == k) return s.slice_rows(b, e);
  Shape shape = s.shape();
  shape[0] = k;
  Tensor t(s.dtype(), shape);
  const size_t row = s.nbytes() / size_t(n);
  std::memcpy(t.raw(), static_cast<const uint8_t*>(s.raw()) + size_t(b) * row, size_t(e - b) * row);
  return t;
}
}  // namespace

Tensor Session::forward(const Tensor& x) const {
  if (graph_.inputs.size() != 1)
    throw InputError("engine", fmt::format("{}: the model has {} inputs; this command needs a single-input model",
                                           graph_.source, graph_.inputs.size()));
  if (int64_t k = fixed_batch_split(x)) {
    std::vector<Tensor> parts;
    for (int64_t b = 0; b < x.dim(0); b += k) {
      Tensor y = run({padded_slice(x, b, k)}).at(audited_);
      const int64_t r = std::min(k, x.dim(0) - b);
      parts.push_back(r == k ? y : y.slice_rows(0, r));
    }
    return concat_rows(parts);
  }
  return run({x}).at(audited_);
}

Tensor Session::input_gradient(const Tensor& x, const SeedFn& seed, Tensor* output) const {
  if (graph_.inputs.size() != 1)
    throw InputError("engine", fmt::format("{}: the model has {} inputs; this command needs a single-input model",
                                           graph_.source, graph_.inputs.size()));
  require_gradients();
  if (!graph_.inputs.empty() && graph_.inputs[0].dtype != DType::Float32)
    throw UnsupportedError(
        "engine", fmt::format("{}: input gradients are not available: input '{}' is {} (ids or categories, not a continuous "
                              "input); use a black-box method instead (explain --method kernel-shap|lime|permutation|"
                              "occlusion)",
                              graph_.source, graph_.inputs[0].name, dtype_name(graph_.inputs[0].dtype)));
  if (int64_t k = fixed_batch_split(x)) {
    // The seed is a function of the whole batch's output (labels by row), so it is computed
    // once from every slice's output; each slice then pulls back its rows of it.
    Tensor out = forward(x);
    Tensor s = seed(out);
    if (output) *output = out;
    std::vector<Tensor> grads;
    for (int64_t b = 0; b < x.dim(0); b += k) {
      std::vector<Tensor> seeds(graph_.outputs.size());
      seeds[audited_] = zero_padded_slice(s, b, k);
      Tensor g = gradient({padded_slice(x, b, k)}, seeds).at(0);
      const int64_t r = std::min(k, x.dim(0) - b);
      grads.push_back(r == k ? g : g.slice_rows(0, r));
    }
    return concat_rows(grads);
  }
  std::vector<Tensor> in{x};
  check_inputs(in);
  if (device_) {
    // Two device calls: forward for the seed, then the VJP (weights stay resident).
    Tensor out = device_->run(convert_inputs(graph_, in)).at(audited_);
    std::vector<Tensor> seeds(graph_.outputs.size());
    seeds[audited_] = seed(out);
    if (output) *output = out;
    return device_->gradient(convert_inputs(graph_, in), seeds, nullptr).at(0);
  }
  const Executor& ex = *executor_;
  auto values = ex.forward(convert_inputs(graph_, in), true);
  auto outs = ex.outputs_of(values);
  Tensor s = seed(outs.at(audited_));
  std::vector<Tensor> seeds(outs.size());
  seeds[audited_] = s;
  if (output) *output = outs[audited_];
  return ex.backward(values, seeds).at(0);
}

std::map<std::string, Shape> infer_shapes(const Graph& g, const std::vector<Shape>& input_shapes) {
  if (input_shapes.size() != g.inputs.size())
    throw InputError("engine", fmt::format("{}: {} input shapes given for {} inputs", g.source, input_shapes.size(), g.inputs.size()));
  Graph copy = g;
  Session s(std::move(copy));
  std::vector<Tensor> zeros;
  for (size_t k = 0; k < input_shapes.size(); ++k) {
    DType dt = g.inputs[k].dtype == DType::Float32 || g.inputs[k].dtype == DType::Float64 ? DType::Float32 : DType::Int64;
    zeros.emplace_back(dt, input_shapes[k]);
  }
  s.check_inputs(zeros);
  const Executor ex(s.graph_, static_cast<const CpuBackend&>(*s.backend_), false);
  // A batch-1 pass over zeros: one thread is plenty, and it keeps a short CLI call whose only
  // forward this is (mlaudit info's FLOP count) from starting the OpenMP pool, whose spinning
  // workers kept the process alive about 40 ms past its work (info on the bundled CNN: 49 ms -> 11 ms).
  struct OneThread {
    int saved = omp_get_max_threads(), saved_cap = tl_threads;
    OneThread() { omp_set_num_threads(1), tl_threads = 1; }
    ~OneThread() { omp_set_num_threads(saved), tl_threads = saved_cap; }
  } one_thread;
  auto values = ex.forward(zeros, true);
  std::map<std::string, Shape> out;
  for (size_t i = 0; i < values.size(); ++i)
    if (!values[i].empty()) out[ex.plan().names[i]] = values[i].shape();
  return out;
}

}  // namespace mlaudit::engine
