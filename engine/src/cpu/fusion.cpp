// CPU graph rewrites (fusion.h).
#include "fusion.h"

#include <cstdlib>
#include <map>
#include <set>
#include <string>

namespace mlaudit::engine::detail {

namespace {

// The pads [top, left, bottom, right] of a Pad node that pads only H and W of a 4-D tensor
// with zeros, from constants; false when the node is anything else.
bool zero_spatial_pads(const Graph& g, const Node& pad, std::vector<int64_t>& spatial) {
  if (!pad.domain.empty() || pad.get_string("mode", "constant") != "constant") return false;
  std::vector<int64_t> pads;
  if (pad.since_version >= 11 || pad.inputs.size() > 1) {
    if (pad.inputs.size() < 2 || pad.inputs.size() > 3) return false;  // no `axes` input (Pad-18)
    auto it = g.initializers.find(pad.inputs[1]);
    if (it == g.initializers.end() || it->second.dtype() != DType::Int64) return false;
    pads.assign(it->second.i64(), it->second.i64() + it->second.numel());
    if (pad.inputs.size() == 3 && !pad.inputs[2].empty()) {
      auto v = g.initializers.find(pad.inputs[2]);
      if (v == g.initializers.end() || v->second.dtype() != DType::Float32 || v->second.numel() != 1 ||
          v->second.f32()[0] != 0.f)
        return false;
    }
  } else {
    pads = pad.get_ints("pads");
    if (pad.get_float("value", 0.f) != 0.f) return false;
  }
  if (pads.size() != 8) return false;
  for (int64_t v : pads)
    if (v < 0) return false;
  if (pads[0] || pads[1] || pads[4] || pads[5]) return false;
  spatial = {pads[2], pads[3], pads[6], pads[7]};
  return true;
}

bool no_own_padding(const Node& n) {
  if (n.get_string("auto_pad", "NOTSET") != "NOTSET") return false;
  for (int64_t v : n.get_ints("pads"))
    if (v != 0) return false;
  return true;
}

}  // namespace

Graph fuse_cpu_graph(const Graph& g) {
  const char* off = std::getenv("MLAUDIT_NO_FUSE");
  if (off && std::string(off) == "1") return g;
  Graph out = g;
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  std::map<std::string, int> readers;
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    for (const auto& in : out.nodes[i].inputs)
      if (!in.empty()) ++readers[in];
  }
  std::vector<bool> dropped(out.nodes.size(), false);
  // Only reader of value v, when v has exactly one and is no graph output.
  auto sole_reader = [&](const std::string& v) -> Node* {
    if (graph_outputs.count(v) || readers[v] != 1) return nullptr;
    for (size_t i = 0; i < out.nodes.size(); ++i)
      if (!dropped[i])
        for (const auto& in : out.nodes[i].inputs)
          if (in == v) return &out.nodes[i];
    return nullptr;
  };
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    Node& n = out.nodes[i];
    if (dropped[i] || !n.domain.empty()) continue;
    if (n.op_type == "Pad" && n.outputs.size() == 1) {
      std::vector<int64_t> sp;
      Node* next = sole_reader(n.outputs[0]);
      if (!next || !next->domain.empty() || next->inputs.empty() || next->inputs[0] != n.outputs[0]) continue;
      if (!zero_spatial_pads(out, n, sp) || !no_own_padding(*next)) continue;
      const bool avg = next->op_type == "AveragePool" && next->get_int("count_include_pad", 0) == 1 &&
                       next->get_int("ceil_mode", 0) == 0;
      const bool conv = next->op_type == "Conv";
      if (!avg && !conv) continue;
      next->inputs[0] = n.inputs[0];
      next->attributes["pads"] = Attribute::of_ints(sp);
      dropped[i] = true;
      continue;
    }
  }
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    Node& n = out.nodes[i];
    if (dropped[i] || !n.domain.empty() || n.op_type != "Conv" || n.outputs.size() != 1) continue;
    Node* next = sole_reader(n.outputs[0]);
    if (!next || !next->domain.empty() || next->op_type != "Relu") continue;
    n.outputs[0] = next->outputs[0];
    n.attributes[kFusedReluAttribute] = Attribute::of_int(1);
    dropped[next - out.nodes.data()] = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < out.nodes.size(); ++i)
    if (!dropped[i]) kept.push_back(std::move(out.nodes[i]));
  out.nodes = std::move(kept);
  return out;
}

namespace {

bool ints_are(const Node& n, const char* name, std::initializer_list<int64_t> want, bool absent_ok) {
  if (!n.attributes.count(name)) return absent_ok;
  return n.get_ints(name) == std::vector<int64_t>(want);
}

// MaxPool with kernel 2x2, stride 2, no padding, floor, dilation 1, one output.
bool maxpool_2x2_s2(const Node& n) {
  if (!n.domain.empty() || n.op_type != "MaxPool" || n.outputs.size() != 1 || n.inputs.size() != 1) return false;
  if (n.get_string("auto_pad", "NOTSET") != "NOTSET" || n.get_int("ceil_mode", 0) != 0) return false;
  return ints_are(n, "kernel_shape", {2, 2}, false) && ints_are(n, "strides", {2, 2}, false) &&
         ints_are(n, "dilations", {1, 1}, true) && (ints_are(n, "pads", {0, 0, 0, 0}, true));
}

}  // namespace

Graph fuse_cpu_inference_graph(const Graph& fused, bool& changed) {
  changed = false;
  const char* off = std::getenv("MLAUDIT_NO_FUSE");
  if (off && std::string(off) == "1") return fused;
  Graph out = fused;
  std::set<std::string> graph_outputs;
  for (const auto& o : out.outputs) graph_outputs.insert(o.name);
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < out.nodes.size(); ++i)
    for (const auto& in : out.nodes[i].inputs)
      if (!in.empty()) readers[in].push_back(i);
  std::vector<bool> dropped(out.nodes.size(), false);
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    Node& n = out.nodes[i];
    if (!n.domain.empty() || n.op_type != "Conv" || n.outputs.size() != 1 || n.attributes.count(kFusedMaxPoolAttribute))
      continue;
    const std::string& v = n.outputs[0];
    auto r = readers.find(v);
    if (graph_outputs.count(v) || r == readers.end() || r->second.size() != 1) continue;
    const size_t j = r->second[0];
    if (j <= i || dropped[j] || !maxpool_2x2_s2(out.nodes[j])) continue;
    n.outputs[0] = out.nodes[j].outputs[0];
    n.attributes[kFusedMaxPoolAttribute] = Attribute::of_int(1);
    dropped[j] = true;
    changed = true;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < out.nodes.size(); ++i)
    if (!dropped[i]) kept.push_back(std::move(out.nodes[i]));
  out.nodes = std::move(kept);
  return out;
}

}  // namespace mlaudit::engine::detail
