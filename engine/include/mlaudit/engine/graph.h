#pragma once
// Graph IR imported from ONNX. Nothing above the engine sees protobuf types.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

/// One node attribute (the subset of ONNX attribute kinds the op set uses).
struct Attribute {
  enum class Kind { Float, Int, String, Tensor, Floats, Ints, Strings };
  Kind kind = Kind::Int;
  float f = 0;
  int64_t i = 0;
  std::string s;
  engine::Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  static Attribute of_float(float v) {
    Attribute a;
    a.kind = Kind::Float;
    a.f = v;
    return a;
  }
  static Attribute of_int(int64_t v) {
    Attribute a;
    a.kind = Kind::Int;
    a.i = v;
    return a;
  }
  static Attribute of_ints(std::vector<int64_t> v) {
    Attribute a;
    a.kind = Kind::Ints;
    a.ints = std::move(v);
    return a;
  }
};

/// A graph node: op type, name, value names (an empty input name is an omitted optional input).
struct Node {
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attributes;

  bool has(const std::string& attr) const { return attributes.count(attr) != 0; }
  /// Integer attribute or default; throws InputError on a kind mismatch.
  int64_t get_int(const std::string& attr, int64_t def) const;
  float get_float(const std::string& attr, float def) const;
  std::string get_string(const std::string& attr, const std::string& def) const;
  std::vector<int64_t> get_ints(const std::string& attr, const std::vector<int64_t>& def = {}) const;
  std::vector<float> get_floats(const std::string& attr) const;
  /// "node 'name' (Op)" for error messages.
  std::string describe() const;
};

/// A graph input or output: name, element type and shape (-1 marks a dynamic dim).
struct ValueInfo {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
};

/// Limits applied while loading an untrusted model file.
struct LoadLimits {
  int64_t max_file_bytes = int64_t(2) << 30;     ///< 2 GiB (protobuf's own ceiling)
  int64_t max_nodes = 1'000'000;
  int64_t max_tensor_elements = int64_t(1) << 31;
};

/// A loaded model: opset, inputs (initializers excluded), outputs, constant
/// tensors and nodes in topological order with dead nodes removed.
struct Graph {
  std::string source;          ///< file name, for messages
  int64_t opset = 0;           ///< default-domain opset version
  std::string producer;        ///< producer_name + version
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::map<std::string, Tensor> initializers;
  std::vector<Node> nodes;

  /// Initializer by name, or nullptr.
  const Tensor* initializer(const std::string& name) const;
  /// Number of parameters (elements of float initializers).
  int64_t parameter_count() const;
  /// Op type -> count.
  std::map<std::string, int> op_histogram() const;
};

/// Read and validate an ONNX file. Throws InputError naming the file and the
/// problem (truncated, not a ModelProto, bad index, cycle, missing value) and
/// UnsupportedError for an opset outside 7..18 or an unknown domain.
Graph load_onnx(const std::string& path, const LoadLimits& limits = {});
/// Same from bytes in memory; `source` names them in messages.
Graph parse_onnx(const void* data, size_t size, const std::string& source, const LoadLimits& limits = {});

/// Parse a serialized ONNX TensorProto (e.g. a backend test's input_0.pb).
Tensor parse_tensor_proto(const std::string& bytes, const std::string& source);

/// Ops with a forward and a vector-Jacobian product in the engine.
const std::vector<std::string>& supported_ops();
bool is_op_supported(const std::string& op_type);
/// Op types of the graph the engine does not support (empty when all are).
std::vector<std::string> unsupported_ops(const Graph& g);

/// Shape of every value for the given input shapes (computed by executing the
/// graph on zero-filled inputs, so shape arithmetic subgraphs are exact).
std::map<std::string, Shape> infer_shapes(const Graph& g, const std::vector<Shape>& input_shapes);

}  // namespace mlaudit::engine
