// The ONNX op schema versions the engine knows (generated table, onnx_op_versions.inc) and the
// questions asked of them: which schema version a node resolves to at its model's opset,
// whether the engine's registry handles it, and the support table `mlaudit info --ops` prints
// (rows: the CPU backend's op table, ops.h; cuda column: the CUDA backend's op table, both read
// through the backend contract of backend.h).
//
// ONNX versions each op separately: an op's schema changes at some opsets (its
// "since-versions"), and a model at opset V uses, for each op, the newest schema whose
// since-version is <= V. Kernels branch on the model's opset at exactly those since-versions
// (e.g. Clip reads min/max from inputs from 11 on), so resolving here is what lets a kernel
// written against the schema history serve every opset from 1 to the newest one known.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <set>

#include "backend.h"
#include "mlaudit/engine/graph.h"
#include "ops.h"

namespace mlaudit::engine {

namespace {

struct OpVersions {
  const char* domain;
  const char* op;
  std::initializer_list<int64_t> since;
  int64_t deprecated_since;
};

#include "onnx_op_versions.inc"

const OpVersions* versions_of(const std::string& domain, const std::string& op) {
  std::string d = detail::canonical_domain(domain);
  for (const auto& v : kOpVersions)
    if (d == v.domain && op == v.op) return &v;
  return nullptr;
}

std::string versions_text(const std::vector<int64_t>& v) {
  return fmt::format("{}", fmt::join(v, ", "));
}

}  // namespace

int64_t newest_known_opset(const std::string& domain) {
  std::string d = detail::canonical_domain(domain);
  if (d.empty()) return kNewestDefaultOpset;
  if (d == detail::kMlDomain) return kNewestMlOpset;
  return 0;
}

const char* onnx_schema_release() { return kOnnxSchemaRelease; }

int64_t op_since_version(const std::string& domain, const std::string& op_type, int64_t opset) {
  const OpVersions* v = versions_of(domain, op_type);
  if (!v) return 0;
  int64_t best = 0;
  for (int64_t s : v->since)
    if (s <= opset) best = s;
  return best;
}

std::string node_support_problem(const Node& node, const Graph& g) {
  std::string d = detail::canonical_domain(node.domain);
  int64_t opset = d.empty() ? g.opset : g.ml_opset;
  const detail::OpDef* def = detail::find_op(node);
  std::string where = fmt::format("at node '{}'", node.name);
  std::string qualified = d.empty() ? node.op_type : d + "." + node.op_type;
  if (!def) {
    if (node.since_version == 0 && versions_of(d, node.op_type) == nullptr)
      return fmt::format("unknown op '{}' {} (not an ONNX op of opset {})", qualified, where, opset);
    return fmt::format("unsupported op '{}' (opset {}) {}; `mlaudit info --ops` lists the ops this build runs",
                       qualified, opset, where);
  }
  if (node.since_version == 0)
    return fmt::format("op '{}' is not defined at opset {} (its first version is {}) {}", qualified, opset,
                       *versions_of(d, node.op_type)->since.begin(), where);
  if (node.since_version < def->min_version ||
      std::count(def->unsupported_versions.begin(), def->unsupported_versions.end(), node.since_version)) {
    std::vector<int64_t> ok;
    for (int64_t s : versions_of(d, node.op_type)->since)
      if (s >= def->min_version && !std::count(def->unsupported_versions.begin(), def->unsupported_versions.end(), s))
        ok.push_back(s);
    return fmt::format("op '{}' version {} (opset {}) is not supported {} (supported versions: {})", qualified,
                       node.since_version, opset, where, versions_text(ok));
  }
  return {};
}

bool is_node_supported(const Node& node) {
  const detail::OpDef* def = detail::find_op(node);
  return def && node.since_version >= def->min_version &&
         !std::count(def->unsupported_versions.begin(), def->unsupported_versions.end(), node.since_version);
}

const std::vector<std::string>& supported_ops() {
  static const std::vector<std::string> ops = [] {
    std::vector<std::string> out;
    for (const auto& [key, def] : detail::registered_ops())
      if (key.first.empty()) out.push_back(key.second);
    return out;
  }();
  return ops;
}

bool is_op_supported(const std::string& op_type) { return detail::find_op(op_type) != nullptr; }

std::vector<std::string> unsupported_ops(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes) {
    if (is_node_supported(n)) continue;
    std::string d = detail::canonical_domain(n.domain);
    std::string name = d.empty() ? n.op_type : d + "." + n.op_type;
    if (detail::find_op(n)) name += fmt::format(" (version {})", n.since_version);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::vector<const Node*> non_differentiable_nodes(const Graph& g, size_t output_index) {
  // Values that depend on a float graph input, forward.
  std::set<std::string> live;
  for (const auto& in : g.inputs)
    if (in.dtype == DType::Float32) live.insert(in.name);
  std::vector<bool> on_input_path(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty() && live.count(in)) on_input_path[i] = true;
    if (on_input_path[i])
      for (const auto& o : g.nodes[i].outputs) live.insert(o);
  }
  // Values the chosen output depends on, backward.
  std::set<std::string> needed;
  if (output_index < g.outputs.size()) needed.insert(g.outputs[output_index].name);
  std::vector<const Node*> out;
  std::vector<bool> on_output_path(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    bool feeds = false;
    for (const auto& o : g.nodes[i].outputs)
      if (needed.count(o)) feeds = true;
    if (!feeds) continue;
    on_output_path[i] = true;
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty()) needed.insert(in);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!on_input_path[i] || !on_output_path[i]) continue;
    const detail::OpDef* def = detail::find_op(g.nodes[i]);
    if (def && !def->differentiable) out.push_back(&g.nodes[i]);
  }
  return out;
}

std::vector<OpSupport> op_support_table() {
  std::vector<BackendOp> cuda;
  if (auto backend = make_cuda_backend()) cuda = backend->ops();
  std::vector<OpSupport> rows;
  for (const auto& [key, def] : detail::registered_ops()) {
    OpSupport r;
    r.domain = key.first;
    r.op_type = key.second;
    const OpVersions* v = versions_of(r.domain, r.op_type);
    r.last_opset = newest_known_opset(r.domain);
    r.first_opset = def->min_version;
    if (v) {
      for (int64_t s : v->since)
        if (s >= def->min_version) {
          r.first_opset = s;
          break;
        }
      for (int64_t s : v->since)
        if (std::count(def->unsupported_versions.begin(), def->unsupported_versions.end(), s))
          r.unsupported_versions.push_back(s);
    }
    r.forward = def->forward != nullptr;
    r.gradient = def->backward != nullptr;
    r.differentiable = def->differentiable;
    r.cuda = std::find(cuda.begin(), cuda.end(), key) != cuda.end();
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace mlaudit::engine
