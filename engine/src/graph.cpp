#include "mlaudit/engine/graph.h"

#include <fmt/format.h>

#include <algorithm>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "ops.h"

namespace mlaudit::engine {

namespace {
const Attribute* find_attr(const Node& n, const std::string& name, Attribute::Kind kind) {
  auto it = n.attributes.find(name);
  if (it == n.attributes.end()) return nullptr;
  if (it->second.kind != kind)
    throw InputError("engine", fmt::format("{}: attribute '{}' has the wrong kind", n.describe(), name));
  return &it->second;
}
}  // namespace

int64_t Node::get_int(const std::string& attr, int64_t def) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Int);
  return a ? a->i : def;
}

float Node::get_float(const std::string& attr, float def) const {
  auto it = attributes.find(attr);
  if (it == attributes.end()) return def;
  if (it->second.kind == Attribute::Kind::Int) return static_cast<float>(it->second.i);
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Float);
  return a->f;
}

std::string Node::get_string(const std::string& attr, const std::string& def) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::String);
  return a ? a->s : def;
}

std::vector<int64_t> Node::get_ints(const std::string& attr, const std::vector<int64_t>& def) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Ints);
  return a ? a->ints : def;
}

std::vector<float> Node::get_floats(const std::string& attr) const {
  const Attribute* a = find_attr(*this, attr, Attribute::Kind::Floats);
  return a ? a->floats : std::vector<float>{};
}

std::string Node::describe() const { return fmt::format("node '{}' ({})", name, op_type); }

const Tensor* Graph::initializer(const std::string& name) const {
  auto it = initializers.find(name);
  return it == initializers.end() ? nullptr : &it->second;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : initializers)
    if (t.dtype() == DType::Float32) n += t.numel();
  return n;
}

std::map<std::string, int> Graph::op_histogram() const {
  std::map<std::string, int> h;
  for (const auto& n : nodes) h[n.op_type]++;
  return h;
}

}  // namespace mlaudit::engine
