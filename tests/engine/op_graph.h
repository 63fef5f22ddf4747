#pragma once
// One-node graphs built in code for the hand-written op tests (test_ops_*.cpp): tensor and
// attribute helpers, the OneNode builder (graph inputs fed at run, initializers, omitted optional
// inputs, attributes, opset) and the check that an error names the node.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::test {

// The op tests name these unqualified (they use namespace mlaudit::test).
using engine::Attribute;
using engine::DType;
using engine::Shape;
using engine::Tensor;

// ---------------------------------------------------------------- tensors

inline engine::Tensor ints(engine::Shape s, std::vector<int64_t> v) { return engine::Tensor::from_ints(std::move(s), v); }
inline engine::Tensor scalar_int(int64_t v) { return engine::Tensor::from_ints({}, {v}); }
inline engine::Tensor floats(engine::Shape s, std::vector<float> v) {
  return engine::Tensor::from_floats(std::move(s), v);
}
inline engine::Tensor bools(engine::Shape s, std::vector<bool> v) {
  engine::Tensor t(engine::DType::Bool, std::move(s));
  for (size_t i = 0; i < v.size(); ++i) t.data<bool>()[i] = v[i];
  return t;
}
/// Float tensor 0, 1, 2, ... in row-major order.
inline engine::Tensor iota(engine::Shape s) {
  engine::Tensor t(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>(i);
  return t;
}
inline std::vector<double> values(const engine::Tensor& t) { return t.to_doubles(); }

// ---------------------------------------------------------------- attributes

inline engine::Attribute str_attr(const std::string& s) {
  engine::Attribute a;
  a.kind = engine::Attribute::Kind::String;
  a.s = s;
  return a;
}
inline engine::Attribute strs_attr(std::vector<std::string> v) {
  engine::Attribute a;
  a.kind = engine::Attribute::Kind::Strings;
  a.strings = std::move(v);
  return a;
}
inline engine::Attribute floats_attr(std::vector<float> v) {
  engine::Attribute a;
  a.kind = engine::Attribute::Kind::Floats;
  a.floats = std::move(v);
  return a;
}
inline engine::Attribute tensor_attr(const engine::Tensor& t) {
  engine::Attribute a;
  a.kind = engine::Attribute::Kind::Tensor;
  a.t = t;
  return a;
}

// ---------------------------------------------------------------- one node

/// One node in a graph built in code: graph inputs (fed at run), initializers, omitted optional
/// inputs (""), attributes and the model opset (the session resolves the node's since-version).
/// Outputs are y0, y1, ... (float32) unless named with their dtypes.
struct OneNode {
  engine::Graph g;
  std::vector<engine::Tensor> feeds;
  engine::Node node;
  /// Whether graph inputs declare the fed tensor's shape (false: any shape).
  bool declare_input_shapes = true;

  OneNode(const std::string& op, int64_t opset, int outputs = 1) : OneNode(op, opset, numbered_outputs(outputs)) {}
  OneNode(const std::string& op, int64_t opset, const std::vector<std::pair<std::string, engine::DType>>& outputs) {
    g.source = op + ".test";
    g.opset = opset;
    node.name = op + "_0";
    node.op_type = op;
    for (const auto& [name, dt] : outputs) {
      node.outputs.push_back(name);
      g.outputs.push_back({name, dt, {}});
    }
  }
  OneNode& in(const std::string& name, const engine::Tensor& t) {
    g.inputs.push_back({name, t.dtype(), declare_input_shapes ? t.shape() : engine::Shape{}});
    feeds.push_back(t);
    node.inputs.push_back(name);
    return *this;
  }
  OneNode& init(const std::string& name, const engine::Tensor& t) {
    g.initializers[name] = t;
    node.inputs.push_back(name);
    return *this;
  }
  OneNode& omit() {
    node.inputs.emplace_back();
    return *this;
  }
  OneNode& attr(const std::string& name, engine::Attribute a) {
    node.attributes[name] = std::move(a);
    return *this;
  }
  OneNode& attr(const std::string& name, int64_t v) { return attr(name, engine::Attribute::of_int(v)); }
  OneNode& attr(const std::string& name, int v) { return attr(name, int64_t(v)); }
  OneNode& attr(const std::string& name, float v) { return attr(name, engine::Attribute::of_float(v)); }
  OneNode& attr(const std::string& name, std::vector<int64_t> v) {
    return attr(name, engine::Attribute::of_ints(std::move(v)));
  }
  OneNode& attr(const std::string& name, std::vector<float> v) { return attr(name, floats_attr(std::move(v))); }
  engine::Graph graph() const {
    engine::Graph copy = g;
    copy.nodes = {node};
    return copy;
  }
  std::vector<engine::Tensor> run() const { return engine::Session(graph()).run(feeds); }
  std::vector<engine::Tensor> gradient(const std::vector<engine::Tensor>& seeds) const {
    return engine::Session(graph()).gradient(feeds, seeds);
  }

 private:
  static std::vector<std::pair<std::string, engine::DType>> numbered_outputs(int n) {
    std::vector<std::pair<std::string, engine::DType>> out;
    for (int k = 0; k < n; ++k) out.emplace_back("y" + std::to_string(k), engine::DType::Float32);
    return out;
  }
};

/// Running `n` throws an InputError whose text names the op and node and contains `text`.
inline void throws_naming_node(const OneNode& n, const std::string& text) {
  INFO(n.node.op_type << ": " << text);
  CHECK_THROWS_AS(n.run(), InputError);
  CHECK_THROWS_WITH(n.run(),
                    Catch::Contains(n.node.op_type + " at node '" + n.node.name + "'") && Catch::Contains(text));
}

}  // namespace mlaudit::test
