// ONNX ModelProto -> engine Graph. The file is untrusted: every index, count
// and size is checked, and anything unexpected is an InputError naming it.
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"

namespace mlaudit::engine {

namespace {

constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 18;

[[noreturn]] void fail(const std::string& source, const std::string& msg) {
  throw InputError("engine", fmt::format("{}: {}", source, msg));
}

DType map_dtype(int32_t t, const std::string& source, const std::string& what) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DType::Float32;
    case onnx::TensorProto::DOUBLE: return DType::Float64;
    case onnx::TensorProto::INT32: return DType::Int32;
    case onnx::TensorProto::INT64: return DType::Int64;
    case onnx::TensorProto::UINT8: return DType::UInt8;
    case onnx::TensorProto::BOOL: return DType::Bool;
    default:
      throw UnsupportedError("engine", fmt::format("{}: {} has unsupported element type {} ({})", source, what,
                                                   onnx::TensorProto::DataType_Name(t), t));
  }
}

template <class T, class Src>
void copy_field(Tensor& t, const Src& field) {
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(field.Get(static_cast<int>(i)));
}

Tensor parse_tensor(const onnx::TensorProto& tp, const std::string& source, const LoadLimits& limits) {
  std::string what = fmt::format("tensor '{}'", tp.name());
  if (tp.data_location() == onnx::TensorProto::EXTERNAL || tp.external_data_size() > 0)
    throw UnsupportedError("engine", fmt::format("{}: {} uses external data, which is not supported", source, what));
  DType dt = map_dtype(tp.data_type(), source, what);
  Shape shape;
  int64_t n = 1;
  for (int64_t d : tp.dims()) {
    if (d < 0 || (d > 0 && n > limits.max_tensor_elements / d))
      fail(source, fmt::format("{} has invalid or too large dims", what));
    n *= d;
    shape.push_back(d);
  }
  if (n > limits.max_tensor_elements) fail(source, fmt::format("{} is too large ({} elements)", what, n));
  Tensor t(dt, shape);
  if (tp.has_raw_data()) {
    const std::string& raw = tp.raw_data();
    if (raw.size() != t.nbytes())
      fail(source, fmt::format("{} has {} bytes of raw data, expected {} for shape {}", what, raw.size(), t.nbytes(),
                               shape_str(shape)));
    if (t.nbytes()) std::memcpy(t.raw(), raw.data(), raw.size());  // little-endian host assumed (x86-64)
    return t;
  }
  auto need = [&](int have) {
    if (have != n) fail(source, fmt::format("{} holds {} values, expected {} for shape {}", what, have, n, shape_str(shape)));
  };
  switch (dt) {
    case DType::Float32: need(tp.float_data_size()); copy_field<float>(t, tp.float_data()); break;
    case DType::Float64: need(tp.double_data_size()); copy_field<double>(t, tp.double_data()); break;
    case DType::Int64: need(tp.int64_data_size()); copy_field<int64_t>(t, tp.int64_data()); break;
    case DType::Int32: need(tp.int32_data_size()); copy_field<int32_t>(t, tp.int32_data()); break;
    case DType::UInt8: need(tp.int32_data_size()); copy_field<uint8_t>(t, tp.int32_data()); break;
    case DType::Bool: need(tp.int32_data_size()); copy_field<bool>(t, tp.int32_data()); break;
  }
  return t;
}

// Engine compute types: floats become Float32, integers Int64, bool stays Bool.
Tensor normalise(Tensor t) {
  switch (t.dtype()) {
    case DType::Float64: return t.to(DType::Float32);
    case DType::Int32:
    case DType::UInt8: return t.to(DType::Int64);
    default: return t;
  }
}

ValueInfo parse_value_info(const onnx::ValueInfoProto& vi, const std::string& source) {
  ValueInfo out;
  out.name = vi.name();
  if (!vi.has_type() || !vi.type().has_tensor_type())
    throw UnsupportedError("engine", fmt::format("{}: value '{}' is not a tensor", source, vi.name()));
  const auto& tt = vi.type().tensor_type();
  out.dtype = map_dtype(tt.elem_type(), source, fmt::format("value '{}'", vi.name()));
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) out.shape.push_back(d.has_dim_value() && d.dim_value() > 0 ? d.dim_value() : -1);
  }
  return out;
}

Attribute parse_attribute(const onnx::AttributeProto& a, const std::string& source, const std::string& node,
                          const LoadLimits& limits) {
  Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT: out.kind = Attribute::Kind::Float; out.f = a.f(); break;
    case onnx::AttributeProto::INT: out.kind = Attribute::Kind::Int; out.i = a.i(); break;
    case onnx::AttributeProto::STRING: out.kind = Attribute::Kind::String; out.s = a.s(); break;
    case onnx::AttributeProto::TENSOR:
      out.kind = Attribute::Kind::Tensor;
      out.t = normalise(parse_tensor(a.t(), source, limits));
      break;
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::Floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::Ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = Attribute::Kind::Strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      throw UnsupportedError("engine", fmt::format("{}: attribute '{}' of node '{}' has unsupported kind {}", source,
                                                   a.name(), node, onnx::AttributeProto::AttributeType_Name(a.type())));
  }
  return out;
}

}  // namespace

Graph parse_onnx(const void* data, size_t size, const std::string& source, const LoadLimits& limits) {
  if (static_cast<int64_t>(size) > limits.max_file_bytes)
    fail(source, fmt::format("file is {} bytes, above the {} byte limit", size, limits.max_file_bytes));
  if (size == 0) fail(source, "file is empty");
  onnx::ModelProto model;
  if (size > static_cast<size_t>(INT32_MAX) || !model.ParseFromArray(data, static_cast<int>(size)))
    fail(source, "not a valid ONNX model (protobuf parse failed: truncated or not an ONNX file)");
  if (!model.has_graph()) fail(source, "ONNX model has no graph");

  Graph g;
  g.source = source;
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  }
  if (g.opset == 0) {
    if (model.opset_import_size() == 0) g.opset = 1;  // IR < 3 models have no opset_import
    else throw UnsupportedError("engine", fmt::format("{}: model imports no default-domain (ai.onnx) opset", source));
  }
  if (g.opset < kMinOpset || g.opset > kMaxOpset)
    throw UnsupportedError("engine", fmt::format("{}: opset {} is not supported (supported: {} to {})", source, g.opset,
                                                 kMinOpset, kMaxOpset));

  const auto& gp = model.graph();
  if (gp.node_size() > limits.max_nodes) fail(source, fmt::format("graph has {} nodes, above the limit", gp.node_size()));

  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) fail(source, "an initializer has no name");
    if (g.initializers.count(init.name())) fail(source, fmt::format("initializer '{}' is defined twice", init.name()));
    g.initializers[init.name()] = normalise(parse_tensor(init, source, limits));
  }
  if (gp.sparse_initializer_size() > 0)
    throw UnsupportedError("engine", fmt::format("{}: sparse initializers are not supported", source));

  std::unordered_set<std::string> defined;
  for (const auto& [name, t] : g.initializers) defined.insert(name);
  for (const auto& vi : gp.input()) {
    // Older exporters list initializers as graph inputs too; those are constants.
    if (g.initializers.count(vi.name())) continue;
    ValueInfo v = parse_value_info(vi, source);
    if (v.dtype == DType::Float64) v.dtype = DType::Float32;
    if (!defined.insert(v.name).second) fail(source, fmt::format("graph input '{}' is defined twice", v.name));
    g.inputs.push_back(v);
  }
  for (const auto& vo : gp.output()) {
    ValueInfo v = parse_value_info(vo, source);
    if (v.dtype == DType::Float64) v.dtype = DType::Float32;
    g.outputs.push_back(v);
  }
  if (g.outputs.empty()) fail(source, "graph has no outputs");

  // Nodes.
  std::vector<Node> nodes;
  nodes.reserve(gp.node_size());
  std::unordered_map<std::string, size_t> producer;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.name = np.name().empty() ? fmt::format("{}_{}", np.op_type(), i) : np.name();
    n.op_type = np.op_type();
    n.domain = np.domain();
    if (!(n.domain.empty() || n.domain == "ai.onnx"))
      throw UnsupportedError("engine", fmt::format("{}: unsupported op '{}' from domain '{}' at node '{}'", source,
                                                   n.op_type, n.domain, n.name));
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      if (a.name().empty()) fail(source, fmt::format("node '{}' has an attribute without a name", n.name));
      n.attributes[a.name()] = parse_attribute(a, source, n.name, limits);
    }
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      if (defined.count(o) || producer.count(o))
        fail(source, fmt::format("value '{}' (output of node '{}') is defined more than once", o, n.name));
      producer[o] = nodes.size();
    }
    nodes.push_back(std::move(n));
  }

  // Every input must be defined somewhere.
  for (const auto& n : nodes) {
    for (const auto& in : n.inputs) {
      if (in.empty()) continue;
      if (!defined.count(in) && !producer.count(in))
        fail(source, fmt::format("node '{}' ({}) uses undefined value '{}'", n.name, n.op_type, in));
    }
  }
  for (const auto& o : g.outputs) {
    if (!defined.count(o.name) && !producer.count(o.name))
      fail(source, fmt::format("graph output '{}' is not produced by any node", o.name));
  }

  // Dead-node removal: keep nodes that reach a graph output.
  std::vector<bool> live(nodes.size(), false);
  std::deque<std::string> work;
  for (const auto& o : g.outputs) work.push_back(o.name);
  while (!work.empty()) {
    std::string v = work.front();
    work.pop_front();
    auto it = producer.find(v);
    if (it == producer.end() || live[it->second]) continue;
    live[it->second] = true;
    for (const auto& in : nodes[it->second].inputs)
      if (!in.empty()) work.push_back(in);
  }

  // Topological order (Kahn) over live nodes; a cycle is an error.
  std::vector<int> indegree(nodes.size(), 0);
  std::unordered_map<std::string, std::vector<size_t>> consumers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!live[i]) continue;
    std::set<std::string> uniq(nodes[i].inputs.begin(), nodes[i].inputs.end());
    for (const auto& in : uniq) {
      if (in.empty() || !producer.count(in)) continue;
      indegree[i]++;
      consumers[in].push_back(i);
    }
  }
  std::deque<size_t> ready;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (live[i] && indegree[i] == 0) ready.push_back(i);
  size_t live_count = std::count(live.begin(), live.end(), true);
  while (!ready.empty()) {
    size_t i = ready.front();
    ready.pop_front();
    for (const auto& o : nodes[i].outputs) {
      auto it = consumers.find(o);
      if (it == consumers.end()) continue;
      for (size_t c : it->second)
        if (--indegree[c] == 0) ready.push_back(c);
    }
    g.nodes.push_back(std::move(nodes[i]));
  }
  if (g.nodes.size() != live_count) fail(source, "graph has a cycle");
  return g;
}

Tensor parse_tensor_proto(const std::string& bytes, const std::string& source) {
  onnx::TensorProto tp;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) || !tp.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    fail(source, "not a valid ONNX TensorProto");
  return normalise(parse_tensor(tp, source, LoadLimits{}));
}

Graph load_onnx(const std::string& path, const LoadLimits& limits) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError("engine", fmt::format("{}: cannot open model file", path));
  std::streamoff size = in.tellg();
  if (size < 0) throw InputError("engine", fmt::format("{}: cannot read model file", path));
  if (size > limits.max_file_bytes)
    throw InputError("engine", fmt::format("{}: file is {} bytes, above the {} byte limit", path, size, limits.max_file_bytes));
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(bytes.data(), size)) throw InputError("engine", fmt::format("{}: cannot read model file", path));
  return parse_onnx(bytes.data(), bytes.size(), path, limits);
}

}  // namespace mlaudit::engine
