// ONNX ModelProto -> engine Graph. The file is untrusted: every index, count
// and size is checked, and anything unexpected is an InputError naming it.
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/utf8.h"

namespace mlaudit::engine {

namespace {

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
    // Quantized and narrow types (onnxruntime's quantization tools, fp16 converters): integers
    // are held as int64, float16/bfloat16 widen exactly to float32 (parse_tensor decodes them).
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::UINT32:
    case onnx::TensorProto::UINT64: return DType::Int64;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return DType::Float32;
    default:
      throw UnsupportedError("engine", fmt::format("{}: {} has unsupported element type {} ({})", source, what,
                                                   onnx::TensorProto::DataType_Name(t), t));
  }
}

// IEEE binary16 bit pattern -> float32 (exact: every half value is a float).
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);  // inf, NaN
  else if (exp != 0) bits = sign | ((exp + 112u) << 23) | (mant << 13);
  else if (mant == 0) bits = sign;  // +-0
  else {                            // subnormal half: normalise into float's exponent range
    int e = -1;
    do { ++e; mant <<= 1; } while (!(mant & 0x400u));
    bits = sign | (uint32_t(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// bfloat16 bit pattern -> float32 (the upper half of a float).
float bfloat16_to_float(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element types stored narrower (or unsigned 64-bit) in the file and widened at load into a
// compute type: bytes per element in raw_data; 0 for the types parse_tensor copies as they are.
size_t widened_bytes(int32_t t) {
  switch (t) {
    case onnx::TensorProto::INT8: return 1;
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return 2;
    case onnx::TensorProto::UINT32: return 4;
    case onnx::TensorProto::UINT64: return 8;
    default: return 0;
  }
}

// One element of a widened type from its little-endian bits (raw data) or its typed-field value
// (int32_data holds int8/int16/uint16 values and float16/bfloat16 bit patterns; uint64_data
// holds uint32/uint64): stored into an Int64 or Float32 tensor.
void store_widened(Tensor& t, int32_t type, int64_t i, uint64_t bits) {
  switch (type) {
    case onnx::TensorProto::INT8: t.i64()[i] = int8_t(bits); break;
    case onnx::TensorProto::INT16: t.i64()[i] = int16_t(bits); break;
    case onnx::TensorProto::UINT16: t.i64()[i] = uint16_t(bits); break;
    case onnx::TensorProto::UINT32: t.i64()[i] = uint32_t(bits); break;
    case onnx::TensorProto::UINT64: t.i64()[i] = static_cast<int64_t>(bits); break;  // kept as its int64 bits
    case onnx::TensorProto::FLOAT16: t.f32()[i] = half_to_float(uint16_t(bits)); break;
    case onnx::TensorProto::BFLOAT16: t.f32()[i] = bfloat16_to_float(uint16_t(bits)); break;
    default: break;
  }
}

template <class T, class Src>
void copy_field(Tensor& t, const Src& field) {
  T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(field.Get(static_cast<int>(i)));
}

// Bytes of a tensor stored as external data (ONNX external data format: keys location,
// offset, length; location relative to the model's folder). The model file is untrusted,
// so the location must name a regular file inside that folder: no absolute paths, no '..'
// escapes, no symbolic links leading out, and offset/length must lie within the file.
std::string read_external_data(const onnx::TensorProto& tp, const std::string& source, const std::string& what,
                               const std::string& base_dir, size_t expected_bytes) {
  namespace fs = std::filesystem;
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : tp.external_data()) {
    auto number = [&](const std::string& v) -> int64_t {
      if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
        fail(source, fmt::format("{}: external data '{}' is not a non-negative integer ('{}')", what, kv.key(), v));
      return std::stoll(v);
    };
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = number(kv.value());
    else if (kv.key() == "length") length = number(kv.value());
  }
  if (location.empty()) fail(source, fmt::format("{} is stored as external data without a location", what));
  if (base_dir.empty())
    fail(source, fmt::format("{} is stored as external data ('{}'), which needs the model's folder (load it from a file)",
                             what, location));
  fs::path rel(location);
  if (rel.is_absolute() || location.find('\0') != std::string::npos)
    fail(source, fmt::format("{}: external data location '{}' must be relative to the model's folder", what, location));
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::path(base_dir), ec);
  fs::path target = fs::weakly_canonical(root / rel, ec);
  if (ec) fail(source, fmt::format("{}: external data location '{}' cannot be resolved", what, location));
  auto r = root.native(), t = target.native();
  if (t.size() <= r.size() || t.compare(0, r.size(), r) != 0 || t[r.size()] != '/')
    fail(source, fmt::format("{}: external data location '{}' points outside the model's folder", what, location));
  if (!fs::is_regular_file(target, ec))
    fail(source, fmt::format("{}: external data file '{}' does not exist (expected beside the model)", what, location));
  auto file_size = static_cast<int64_t>(fs::file_size(target, ec));
  if (ec) fail(source, fmt::format("{}: cannot read external data file '{}'", what, location));
  if (length < 0) length = file_size - offset;
  if (offset > file_size || length > file_size - offset)
    fail(source, fmt::format("{}: external data [{}, {}) lies outside '{}' ({} bytes)", what, offset, offset + length,
                             location, file_size));
  if (static_cast<size_t>(length) != expected_bytes)
    fail(source, fmt::format("{} has {} bytes of external data in '{}', expected {}", what, length, location,
                             expected_bytes));
  std::ifstream in(target, std::ios::binary);
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  if (!in || (length > 0 && !in.read(bytes.data(), length)))
    fail(source, fmt::format("{}: cannot read external data file '{}'", what, location));
  return bytes;
}

Tensor parse_tensor(const onnx::TensorProto& tp, const std::string& source, const LoadLimits& limits,
                    const std::string& base_dir = {}) {
  std::string what = fmt::format("tensor '{}'", tp.name());
  const bool external = tp.data_location() == onnx::TensorProto::EXTERNAL;
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
  // Declared size against the values the file holds, before allocating: a few bytes declaring
  // [2^31] floats must not cost 8 GB (issue #25). Each stored value is at least one element's
  // worth except packed 4-bit types (two per byte or per int32), hence the factor 2; the exact
  // count is checked below per storage field.
  if (!external) {
    const int64_t held =
        tp.has_raw_data() ? int64_t(tp.raw_data().size())
                          : int64_t(tp.float_data_size()) + tp.int32_data_size() + tp.int64_data_size() +
                                tp.double_data_size() + tp.uint64_data_size() + tp.string_data_size();
    if (n > 2 * held)
      fail(source, fmt::format("{} declares shape {} ({} elements) but holds {} {}", what, shape_str(shape), n, held,
                               tp.has_raw_data() ? "bytes of raw data" : "values"));
  }
  Tensor t(dt, shape);
  if (size_t width = widened_bytes(tp.data_type())) {
    const size_t file_bytes = static_cast<size_t>(n) * width;
    if (external || tp.has_raw_data()) {
      std::string external_bytes;
      if (external) external_bytes = read_external_data(tp, source, what, base_dir, file_bytes);
      const std::string& raw = external ? external_bytes : tp.raw_data();
      if (raw.size() != file_bytes)
        fail(source, fmt::format("{} has {} bytes of raw data, expected {} for shape {}", what, raw.size(), file_bytes,
                                 shape_str(shape)));
      const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
      for (int64_t i = 0; i < n; ++i) {
        uint64_t bits = 0;
        for (size_t b = 0; b < width; ++b) bits |= uint64_t(bytes[size_t(i) * width + b]) << (8 * b);  // little-endian
        store_widened(t, tp.data_type(), i, bits);
      }
      return t;
    }
    const bool in_uint64 = width >= 4;  // UINT32, UINT64 use uint64_data; the rest int32_data
    const int have = in_uint64 ? tp.uint64_data_size() : tp.int32_data_size();
    if (have != n)
      fail(source, fmt::format("{} holds {} values, expected {} for shape {}", what, have, n, shape_str(shape)));
    for (int64_t i = 0; i < n; ++i)
      store_widened(t, tp.data_type(), i,
                    in_uint64 ? tp.uint64_data(static_cast<int>(i))
                              : static_cast<uint64_t>(static_cast<uint32_t>(tp.int32_data(static_cast<int>(i)))));
    return t;
  }
  if (external || tp.has_raw_data()) {
    std::string external_bytes;
    if (external) external_bytes = read_external_data(tp, source, what, base_dir, t.nbytes());
    const std::string& raw = external ? external_bytes : tp.raw_data();
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
      if (a.t().data_type() == onnx::TensorProto::STRING)
        throw UnsupportedError("engine", fmt::format("{}: attribute '{}' of node '{}' is a string tensor; the engine "
                                                     "computes numbers only (encode strings before the model)",
                                                     source, a.name(), node));
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

// The engine holds int8, uint8, int16... all as int64, but QuantizeLinear (and QLinearMatMul,
// QLinearConv) saturate to the range of their output type, which ONNX gives as the type of
// y_zero_point (uint8 when absent; QuantizeLinear-21+ may name it by output_dtype), and
// CastLike casts to its second input's type. Before that type is lost, the loader writes it
// (a TensorProto.DataType number) on the node as the internal attribute
// "mlaudit.zero_point_type" / "mlaudit.target_type", overwriting any such attribute in the file.
// Types come from initializers, graph inputs/outputs, value_info, Constant nodes and the
// outputs of earlier quantizing nodes; a value of unknown type leaves the attribute unset.
void annotate_quantized_types(const onnx::GraphProto& gp, std::vector<Node>& nodes) {
  std::unordered_map<std::string, int32_t> elem_type;
  auto note_vi = [&](const onnx::ValueInfoProto& vi) {
    if (vi.has_type() && vi.type().has_tensor_type() && vi.type().tensor_type().elem_type() != 0)
      elem_type[vi.name()] = vi.type().tensor_type().elem_type();
  };
  for (const auto& vi : gp.input()) note_vi(vi);
  for (const auto& vi : gp.output()) note_vi(vi);
  for (const auto& vi : gp.value_info()) note_vi(vi);
  for (const auto& init : gp.initializer()) elem_type[init.name()] = init.data_type();
  for (const auto& np : gp.node())
    if (np.op_type() == "Constant" && np.output_size() == 1)
      for (const auto& a : np.attribute())
        if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) elem_type[np.output(0)] = a.t().data_type();
  auto type_of = [&](const Node& n, size_t k) -> int32_t {
    if (k >= n.inputs.size() || n.inputs[k].empty()) return 0;
    auto it = elem_type.find(n.inputs[k]);
    return it == elem_type.end() ? 0 : it->second;
  };
  auto set = [](Node& n, const char* key, int64_t type) {
    Attribute a;
    a.kind = Attribute::Kind::Int;
    a.i = type;
    n.attributes[key] = a;
  };
  for (Node& n : nodes) {
    // Attributes named "mlaudit.*" are the engine's own (this function's, cpu/fusion.h's): a
    // file's are dropped, so a model cannot steer kernels (layouts, fused ops) by them.
    for (auto it = n.attributes.begin(); it != n.attributes.end();)
      it = it->first.rfind("mlaudit.", 0) == 0 ? n.attributes.erase(it) : std::next(it);
    if (!n.domain.empty()) continue;
    int32_t y_type = 0;
    if (n.op_type == "QuantizeLinear") {
      auto od = n.attributes.find("output_dtype");
      if (n.since_version >= 21 && od != n.attributes.end() && od->second.kind == Attribute::Kind::Int && od->second.i != 0)
        y_type = static_cast<int32_t>(od->second.i);
      else if (n.inputs.size() > 2 && !n.inputs[2].empty()) y_type = type_of(n, 2);
      else y_type = onnx::TensorProto::UINT8;
      if (y_type == 0 && !n.outputs.empty() && elem_type.count(n.outputs[0])) y_type = elem_type[n.outputs[0]];
    } else if (n.op_type == "QLinearMatMul" || n.op_type == "QLinearConv") {
      y_type = type_of(n, 7);
      if (y_type == 0 && !n.outputs.empty() && elem_type.count(n.outputs[0])) y_type = elem_type[n.outputs[0]];
    } else if (n.op_type == "DynamicQuantizeLinear") {
      y_type = onnx::TensorProto::UINT8;
    } else if (n.op_type == "CastLike") {
      if (int32_t t = type_of(n, 1)) set(n, "mlaudit.target_type", t);
      if (int32_t t = type_of(n, 1); t && !n.outputs.empty()) elem_type.emplace(n.outputs[0], t);
      continue;
    } else {
      continue;
    }
    if (y_type != 0) {
      set(n, "mlaudit.zero_point_type", y_type);
      if (!n.outputs.empty() && !n.outputs[0].empty()) elem_type.emplace(n.outputs[0], y_type);
    }
  }
}

// ONNX strings are UTF-8 (onnx.proto: "strings are UTF-8 encoded"), and names, op types and
// string attributes (class labels) reach result JSON: refuse any that is not, naming where.
void check_text(const std::string& source, const std::string& text, const std::string& where) {
  const size_t bad = find_invalid_utf8(text);
  if (bad == std::string::npos) return;
  fail(source, fmt::format("{} '{}' is not UTF-8 (byte 0x{:02X}); ONNX strings are UTF-8", where, printable(text),
                           static_cast<unsigned char>(text[bad])));
}

void check_graph_text(const std::string& source, const onnx::GraphProto& gp, int depth) {
  if (depth > 64) fail(source, "subgraphs nested more than 64 deep");
  check_text(source, gp.name(), "graph name");
  for (const auto& init : gp.initializer()) check_text(source, init.name(), "initializer name");
  for (const auto& vi : gp.input()) check_text(source, vi.name(), "graph input name");
  for (const auto& vi : gp.output()) check_text(source, vi.name(), "graph output name");
  for (const auto& vi : gp.value_info()) check_text(source, vi.name(), "value_info name");
  for (const auto& np : gp.node()) {
    check_text(source, np.name(), "node name");
    const std::string node = fmt::format("node '{}'", printable(np.name()));
    check_text(source, np.op_type(), node + ": op type");
    check_text(source, np.domain(), node + ": domain");
    for (const auto& in : np.input()) check_text(source, in, node + ": input name");
    for (const auto& out : np.output()) check_text(source, out, node + ": output name");
    for (const auto& a : np.attribute()) {
      check_text(source, a.name(), node + ": attribute name");
      const std::string attribute = fmt::format("{}: attribute '{}'", node, a.name());
      check_text(source, a.s(), attribute + " value");
      for (const auto& s : a.strings()) check_text(source, s, attribute + " value");
      if (a.has_g()) check_graph_text(source, a.g(), depth + 1);
      for (const auto& g : a.graphs()) check_graph_text(source, g, depth + 1);
    }
  }
}

void check_model_text(const std::string& source, const onnx::ModelProto& model) {
  check_text(source, model.producer_name(), "producer_name");
  check_text(source, model.producer_version(), "producer_version");
  check_text(source, model.domain(), "model domain");
  for (const auto& op : model.opset_import()) check_text(source, op.domain(), "opset_import domain");
  for (const auto& p : model.metadata_props()) {
    check_text(source, p.key(), "metadata_props key");
    check_text(source, p.value(), fmt::format("metadata_props '{}' value", p.key()));
  }
  check_graph_text(source, model.graph(), 0);
}

}  // namespace

Graph parse_onnx(const void* data, size_t size, const std::string& source, const LoadLimits& limits,
                 const std::string& base_dir) {
  if (static_cast<int64_t>(size) > limits.max_file_bytes)
    fail(source, fmt::format("file is {} bytes, above the {} byte limit", size, limits.max_file_bytes));
  if (size == 0) fail(source, "file is empty");
  onnx::ModelProto model;
  if (size > static_cast<size_t>(INT32_MAX) || !model.ParseFromArray(data, static_cast<int>(size)))
    fail(source, "not a valid ONNX model (protobuf parse failed: truncated or not an ONNX file)");
  if (!model.has_graph()) fail(source, "ONNX model has no graph");
  check_model_text(source, model);

  Graph g;
  g.source = source;
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
    else if (op.domain() == "ai.onnx.ml") g.ml_opset = op.version();
  }
  if (g.opset == 0 && model.opset_import_size() == 0) g.opset = 1;  // IR < 3 models have no opset_import
  const auto& gp = model.graph();
  // A model newer than the schema table: its ops may mean something this build does not
  // know, so refuse it, naming the first op whose meaning cannot be vouched for.
  auto too_new = [&](const std::string& domain, int64_t opset) {
    int64_t newest = newest_known_opset(domain);
    if (opset <= newest) return;
    std::string first;
    for (const auto& np : gp.node())
      if ((np.domain().empty() ? std::string() : np.domain()) == domain ||
          (domain.empty() && np.domain() == "ai.onnx")) {
        first = fmt::format(" (first op: '{}' at node '{}')", np.op_type(), np.name());
        break;
      }
    throw UnsupportedError(
        "engine", fmt::format("{}: {} opset {} is newer than this build knows (newest: {}, from onnx {}){}; "
                              "re-export with opset {} or lower",
                              source, domain.empty() ? "ai.onnx" : domain, opset, newest, onnx_schema_release(), first,
                              newest));
  };
  too_new("", g.opset);
  too_new("ai.onnx.ml", g.ml_opset);
  if (g.opset < 0 || g.ml_opset < 0) fail(source, "negative opset version");

  if (gp.node_size() > limits.max_nodes) fail(source, fmt::format("graph has {} nodes, above the limit", gp.node_size()));

  for (const auto& init : gp.initializer()) {
    if (init.name().empty()) fail(source, "an initializer has no name");
    if (g.initializers.count(init.name())) fail(source, fmt::format("initializer '{}' is defined twice", init.name()));
    g.initializers[init.name()] = normalise(parse_tensor(init, source, limits, base_dir));
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
  if (gp.output_size() == 0) fail(source, "graph has no outputs");
  for (const auto& vo : gp.output()) {
    // Outputs that are not numeric tensors (ZipMap's sequence of maps, string labels) are
    // listed but not computed; the nodes that make only them are dropped below.
    const auto& type = vo.type();
    std::string opaque;
    if (type.has_sequence_type()) opaque = type.sequence_type().elem_type().has_map_type() ? "a sequence of maps" : "a sequence";
    else if (type.has_map_type()) opaque = "a map";
    else if (type.has_tensor_type() && type.tensor_type().elem_type() == onnx::TensorProto::STRING) opaque = "a string tensor";
    if (!opaque.empty()) {
      g.opaque_outputs.push_back({vo.name(), opaque, ""});
      continue;
    }
    ValueInfo v = parse_value_info(vo, source);
    if (v.dtype == DType::Float64) v.dtype = DType::Float32;
    g.outputs.push_back(v);
  }

  // Nodes.
  std::vector<Node> nodes;
  nodes.reserve(gp.node_size());
  std::unordered_map<std::string, size_t> producer;
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.name = np.name().empty() ? fmt::format("{}_{}", np.op_type(), i) : np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? std::string() : np.domain();
    if (n.domain == "ai.onnx.ml") {
      if (g.ml_opset == 0)
        fail(source, fmt::format("node '{}' ({}) is in domain ai.onnx.ml, which the model does not import", n.name,
                                 n.op_type));
      n.since_version = op_since_version(n.domain, n.op_type, g.ml_opset);
    } else if (n.domain.empty()) {
      if (g.opset == 0)
        throw UnsupportedError("engine", fmt::format("{}: model imports no default-domain (ai.onnx) opset", source));
      n.since_version = op_since_version(n.domain, n.op_type, g.opset);
    } else {
      std::string hint = n.domain == "com.microsoft"
                             ? " (an onnxruntime contrib op, written by its graph optimizer or a fusion tool; "
                               "export the model without onnxruntime optimizations)"
                             : "";
      throw UnsupportedError("engine", fmt::format("{}: unsupported op '{}' from domain '{}' at node '{}'{}", source,
                                                   n.op_type, n.domain, n.name, hint));
    }
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

  annotate_quantized_types(gp, nodes);

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
  // ZipMap turns a classifier's probability tensor into a sequence of {class: probability}
  // maps; that tensor itself (ZipMap's input) is what an audit reads, so it becomes an output.
  for (auto& o : g.opaque_outputs) {
    auto it = producer.find(o.name);
    if (it == producer.end()) continue;
    const Node& n = nodes[it->second];
    if (n.op_type != "ZipMap" || n.domain != "ai.onnx.ml" || n.inputs.empty() || n.inputs[0].empty()) continue;
    const std::string& probs = n.inputs[0];
    o.hint = fmt::format("made by ZipMap at node '{}'; its probabilities are output '{}'", n.name, probs);
    bool listed = false;
    for (const auto& t : g.outputs) listed |= t.name == probs;
    if (!listed) g.outputs.push_back(ValueInfo{probs, DType::Float32, {-1, -1}});
  }
  for (auto& o : g.opaque_outputs)
    if (o.hint.empty() && o.type == "a string tensor") o.hint = "string labels are not computed; audit the scores or probabilities output";
  if (g.outputs.empty())
    fail(source, fmt::format("graph has no numeric tensor output (its outputs: {})", [&] {
           std::string s;
           for (const auto& o : g.opaque_outputs) s += (s.empty() ? "" : ", ") + o.name + " (" + o.type + ")";
           return s;
         }()));

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
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  return parse_onnx(bytes.data(), bytes.size(), path, limits, dir.empty() ? std::string(".") : dir.string());
}

}  // namespace mlaudit::engine
