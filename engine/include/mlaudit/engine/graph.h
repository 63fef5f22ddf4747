#pragma once
// Graph IR imported from ONNX. Nothing above the engine sees protobuf types.
#include <map>
#include <memory>
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
  static Attribute of_floats(std::vector<float> v) {
    Attribute a;
    a.kind = Kind::Floats;
    a.floats = std::move(v);
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
  /// Version of the op's schema in force at the model's opset for the node's domain (its
  /// since-version, resolved at load; 0 when ONNX defines no such op there).
  int64_t since_version = 0;
  /// State a kernel derives from the attributes once and reuses on every run (a tree
  /// ensemble's validated, flattened nodes); copies of the node share it, as they share the
  /// attributes. Set lazily by the kernel under its own lock; code that edits a node's
  /// attributes after it has run must reset it.
  mutable std::shared_ptr<const void> kernel_state;

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

/// A graph output the engine does not compute as a tensor: a sequence of maps (ZipMap's
/// output) or a string tensor (a classifier's label with string classes).
struct OpaqueOutput {
  std::string name;
  std::string type;  ///< "a sequence of maps", "a string tensor", ...
  std::string hint;  ///< how to get at its numbers instead ("its probabilities are output 'probabilities'")
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
  int64_t ml_opset = 0;        ///< ai.onnx.ml opset version (0: not imported)
  std::string producer;        ///< producer_name + version
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;        ///< tensor outputs, in the model's order (see OpaqueOutput)
  std::vector<OpaqueOutput> opaque_outputs;  ///< outputs that are not numeric tensors, not computed
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
/// problem (truncated, not a ModelProto, bad index, cycle, missing value, external data
/// outside the model's folder) and UnsupportedError for an opset newer than
/// newest_known_opset() or a domain other than ai.onnx and ai.onnx.ml. Initializers
/// stored as external data are read from files in the model's folder (or below it).
Graph load_onnx(const std::string& path, const LoadLimits& limits = {});
/// Same from bytes in memory; `source` names them in messages. External data is read
/// relative to `base_dir`; with an empty base_dir a model with external data is refused.
Graph parse_onnx(const void* data, size_t size, const std::string& source, const LoadLimits& limits = {},
                 const std::string& base_dir = {});

/// Newest opset of a domain ("" or "ai.onnx", "ai.onnx.ml") whose op schemas the engine
/// knows (from the ONNX release named by onnx_schema_release()); 0 for another domain.
int64_t newest_known_opset(const std::string& domain);
/// The onnx release the schema table was generated from ("1.23.2").
const char* onnx_schema_release();
/// Since-version of op `op_type` of `domain` in force at `opset` (0 when ONNX defines no such op there).
int64_t op_since_version(const std::string& domain, const std::string& op_type, int64_t opset);

/// One row of the op support table (`mlaudit info --ops`), from the engine's registry.
struct OpSupport {
  std::string domain;                  ///< "" (ai.onnx) or "ai.onnx.ml"
  std::string op_type;
  int64_t first_opset = 0;             ///< oldest opset the implementation handles
  int64_t last_opset = 0;              ///< newest (newest_known_opset of the domain)
  std::vector<int64_t> unsupported_versions;  ///< schema versions in [first, last] not handled
  bool forward = true;
  bool gradient = false;               ///< vector-Jacobian product (input gradients flow)
  bool differentiable = true;          ///< false: gradient commands refuse it
  bool cuda = false;                   ///< runs on the CUDA backend (else the per-op CPU fallback)
};
std::vector<OpSupport> op_support_table();

/// Parse a serialized ONNX TensorProto (e.g. a backend test's input_0.pb).
Tensor parse_tensor_proto(const std::string& bytes, const std::string& source);

/// Default-domain ops the engine runs (forward; see op_support_table for gradients).
const std::vector<std::string>& supported_ops();
bool is_op_supported(const std::string& op_type);
/// Whether the engine runs this node: its op is registered and its resolved schema version handled.
bool is_node_supported(const Node& node);
/// Why the engine cannot run this node ("" when it can): unknown op, unsupported version.
std::string node_support_problem(const Node& node, const Graph& g);
/// Op types of the graph the engine does not support (empty when all are).
std::vector<std::string> unsupported_ops(const Graph& g);
/// Nodes that stop input gradients (ops registered as not differentiable) on a path from a
/// float graph input to output `output_index`, in graph order; empty when gradients flow.
std::vector<const Node*> non_differentiable_nodes(const Graph& g, size_t output_index = 0);

/// Shape of every value for the given input shapes (computed by executing the
/// graph on zero-filled inputs, so shape arithmetic subgraphs are exact).
std::map<std::string, Shape> infer_shapes(const Graph& g, const std::vector<Shape>& input_shapes);

}  // namespace mlaudit::engine
