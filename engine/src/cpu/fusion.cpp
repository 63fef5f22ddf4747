// CPU graph rewrites (fusion.h).
#include "fusion.h"

#include "conv_direct.h"
#include "layout.h"

#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <string>

namespace mlaudit::engine::detail {

namespace {

// Whether environment variable `name` is set to `value` (MLAUDIT_NO_FUSE=1, MLAUDIT_BLOCKED=0).
bool env_is(const char* name, const char* value) {
  const char* e = std::getenv(name);
  return e && std::string(e) == value;
}

std::set<std::string> output_names(const Graph& g) {
  std::set<std::string> names;
  for (const auto& o : g.outputs) names.insert(o.name);
  return names;
}

// Value -> indices of the nodes that read it (a node reading it twice is listed twice).
std::map<std::string, std::vector<size_t>> readers_of(const Graph& g) {
  std::map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty()) readers[in].push_back(i);
  return readers;
}

void remove_dropped(Graph& g, const std::vector<bool>& dropped) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dropped[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

// For each node `producer` accepts, whose one output is no graph output and has exactly one
// reader after it: when `absorb(producer, reader)` accepts that reader (and marks the producer
// with the attribute that says so), the producer writes the reader's output and the reader is
// dropped. Returns whether any node was fused.
template <class Producer, class Absorb>
bool fuse_sole_readers(Graph& g, Producer producer, Absorb absorb) {
  const auto outputs = output_names(g);
  const auto readers = readers_of(g);
  std::vector<bool> dropped(g.nodes.size(), false);
  bool any = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (dropped[i] || !n.domain.empty() || n.outputs.size() != 1 || !producer(n)) continue;
    auto r = readers.find(n.outputs[0]);
    if (outputs.count(n.outputs[0]) || r == readers.end() || r->second.size() != 1) continue;
    const size_t j = r->second[0];
    Node& reader = g.nodes[j];
    if (j <= i || dropped[j] || !reader.domain.empty() || reader.outputs.size() != 1 || !absorb(n, reader)) continue;
    n.outputs[0] = reader.outputs[0];
    dropped[j] = true;
    any = true;
  }
  remove_dropped(g, dropped);
  return any;
}

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
  if (env_is("MLAUDIT_NO_FUSE", "1")) return g;
  Graph out = g;
  const auto graph_outputs = output_names(g);
  std::map<std::string, int> readers;
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    for (const auto& in : out.nodes[i].inputs)
      if (!in.empty()) ++readers[in];
  }
  std::vector<bool> dropped(out.nodes.size(), false);
  // Constant nodes holding a tensor become initializers (one constant slot instead of a node
  // run on every pass; later rewrites can read their values).
  for (size_t i = 0; i < out.nodes.size(); ++i) {
    const Node& n = out.nodes[i];
    if (!n.domain.empty() || n.op_type != "Constant" || n.outputs.size() != 1 || !n.inputs.empty() ||
        n.attributes.size() != 1 || graph_outputs.count(n.outputs[0]) || out.initializers.count(n.outputs[0]))
      continue;
    auto a = n.attributes.find("value");
    if (a == n.attributes.end() || a->second.kind != Attribute::Kind::Tensor || a->second.t.empty()) continue;
    out.initializers[n.outputs[0]] = a->second.t;
    dropped[i] = true;
  }
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
  remove_dropped(out, dropped);
  fuse_sole_readers(
      out, [](const Node& n) { return n.op_type == "Conv"; },
      [](Node& conv, const Node& next) {
        if (next.op_type != "Relu") return false;
        conv.attributes[kFusedReluAttribute] = Attribute::of_int(1);
        return true;
      });
  // Sigmoid(v) -> Mul(v, s) or Mul(s, v) (SiLU): one pass over v instead of two, forward and
  // backward (the backward recomputes s from v; the same bits as the two nodes' backward).
  fuse_sole_readers(
      out, [](const Node& n) { return n.domain.empty() && n.op_type == "Sigmoid" && n.inputs.size() == 1; },
      [](Node& sig, const Node& mul) {
        const std::string &v = sig.inputs[0], &s = sig.outputs[0];
        if (mul.op_type != "Mul" || !mul.domain.empty() || mul.inputs.size() != 2) return false;
        if (!((mul.inputs[0] == v && mul.inputs[1] == s) || (mul.inputs[1] == v && mul.inputs[0] == s))) return false;
        sig.attributes[kFusedTimesInputAttribute] = Attribute::of_int(1);
        return true;
      });
  // Weights that are initializers: their oneDNN reorder (Conv) or GEMM packing (Gemm, MatMul)
  // is cached across calls.
  for (Node& n : out.nodes)
    if (n.domain.empty() && (n.op_type == "Conv" || n.op_type == "Gemm" || n.op_type == "MatMul") && n.inputs.size() > 1 &&
        out.initializers.count(n.inputs[1]))
      n.attributes[kConstWeightsAttribute] = Attribute::of_int(1);
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

// The bounds of a float Clip whose min/max are attributes (before Clip-11) or float scalar
// initializers; false when they are anything else.
bool constant_clip_bounds(const Graph& g, const Node& n, float& lo, float& hi) {
  if (!n.domain.empty() || n.op_type != "Clip" || n.outputs.size() != 1 || n.inputs.empty()) return false;
  lo = std::numeric_limits<float>::lowest();
  hi = std::numeric_limits<float>::max();
  if (n.since_version < 11) {
    if (n.inputs.size() != 1) return false;
    lo = n.get_float("min", lo);
    hi = n.get_float("max", hi);
    return true;
  }
  auto bound = [&](size_t k, float& v) {
    if (k >= n.inputs.size() || n.inputs[k].empty()) return true;
    auto it = g.initializers.find(n.inputs[k]);
    if (it == g.initializers.end() || it->second.dtype() != DType::Float32 || it->second.numel() != 1) return false;
    v = it->second.f32()[0];
    return true;
  };
  return n.inputs.size() <= 3 && bound(1, lo) && bound(2, hi);
}

// Whether a Conv node runs through oneDNN whatever its input's batch and size (not the direct
// kernels of conv_direct.h, whose threshold this mirrors: they compute on plain NCHW): 2-D,
// weights an initializer of rank 4, and grouped or more than 32 channels in or out. `ic`, `oc`:
// its input and output channels.
bool onednn_conv(const Graph& g, const Node& n, int64_t& ic, int64_t& oc, bool with_chain_candidates = false) {
  if (!n.domain.empty() || n.op_type != "Conv" || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  if (n.attributes.count(kFusedMaxPoolAttribute)) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.rank() != 4) return false;
  const int64_t group = n.get_int("group", 1);
  if (group < 1) return false;
  oc = w->second.dim(0);
  ic = w->second.dim(1) * group;
  const auto strides = n.get_ints("strides", {1, 1});
  if (strides.size() != 2) return false;
  if (!direct_conv_shape(ic, oc, w->second.dim(2), w->second.dim(3), group, strides[0], strides[1])) return true;
  // A direct-path convolution whose output channels are whole blocks: oneDNN's blocked
  // kernels beat the direct ones when the activations around it stay blocked (a chain of such
  // convolutions, a residual block), not when they are reordered at each (block_values keeps
  // it on oneDNN only then, kOneDnnAttribute).
  const int64_t b = cpu_channel_block();
  return with_chain_candidates && oc % b == 0;
}

// A 2-D MaxPool without the indices output: its kernel has a channel-blocked form (ops_nn.cpp).
bool blockable_maxpool(const Node& n) {
  return n.domain.empty() && n.op_type == "MaxPool" && n.inputs.size() == 1 && n.outputs.size() == 1 &&
         n.get_ints("kernel_shape").size() == 2;
}

// Marks values that stay channel-blocked (layout.h) in a forward-only graph: outputs of oneDNN
// convolutions whose every reader takes them blocked (a oneDNN Conv as its data input, a
// GlobalAveragePool, or an element-wise op or 2-D MaxPool whose data inputs are all blocked,
// which then writes its output blocked: its readers must take that too). Found as the largest such set: start
// from every candidate and drop values until the conditions hold.
void block_values(Graph& g, bool training) {
  const int64_t b = cpu_channel_block();
  // In a gradient graph (`training`), ops whose backward has no blocked form are left out: a
  // convolution whose bias is not an initializer (its gradient would be read off a blocked
  // tensor), element-wise Max/Min.
  auto trainable_conv = [&](const Node& n) {
    return !training || n.inputs.size() < 3 || n.inputs[2].empty() || g.initializers.count(n.inputs[2]) > 0;
  };
  auto trainable_elementwise = [&](const Node& n) { return !training || (n.op_type != "Max" && n.op_type != "Min"); };
  for (const Node& n : g.nodes)
    if (n.op_type == "If" || n.op_type == "Loop" || n.op_type == "Scan") return;  // subgraphs read values unseen here
  const auto graph_outputs = output_names(g);
  auto readers = readers_of(g);
  std::set<std::string> blocked;
  std::map<size_t, size_t> data_inputs;  // element-wise node -> its data input count
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    int64_t ic, oc;
    size_t d;
    if (onednn_conv(g, n, ic, oc, !training) && oc % b == 0 && trainable_conv(n)) blocked.insert(n.outputs[0]);
    else if (layout_free_op(n, d) && trainable_elementwise(n)) data_inputs[i] = d, blocked.insert(n.outputs[0]);
    else if (blockable_maxpool(n)) data_inputs[i] = 1, blocked.insert(n.outputs[0]);
  }
  for (bool changed = true; changed;) {
    changed = false;
    auto drop = [&](const std::string& v) { changed |= blocked.erase(v) > 0; };
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      auto d = data_inputs.find(i);
      if (d == data_inputs.end()) continue;
      // Element-wise: data inputs and output all blocked, or none.
      bool all = blocked.count(n.outputs[0]) > 0;
      for (size_t k = 0; k < d->second; ++k) all = all && !n.inputs[k].empty() && blocked.count(n.inputs[k]);
      if (!all) {
        drop(n.outputs[0]);
        for (size_t k = 0; k < d->second; ++k) drop(n.inputs[k]);
      }
    }
    for (auto it = blocked.begin(); it != blocked.end();) {
      const std::string& v = *it;
      bool ok = !graph_outputs.count(v) && readers.count(v);
      if (ok)
        for (size_t j : readers[v]) {
          const Node& r = g.nodes[j];
          int64_t ic, oc;
          size_t d;
          for (size_t k = 0; ok && k < r.inputs.size(); ++k) {
            if (r.inputs[k] != v) continue;
            if (onednn_conv(g, r, ic, oc, !training)) ok = k == 0 && ic % b == 0 && trainable_conv(r);
            else if (r.domain.empty() && r.op_type == "GlobalAveragePool") ok = k == 0;
            else if (layout_free_op(r, d) && trainable_elementwise(r)) ok = k < d;
            else if (blockable_maxpool(r)) ok = k == 0;
            else ok = false;
          }
          if (!ok) break;
        }
      if (ok) {
        ++it;
      } else {
        it = blocked.erase(it);
        changed = true;
      }
    }
  }
  // Chain candidates with a blocked input or output run on oneDNN; the others stay direct (no
  // blocked value touches them: a blocked input would have made them keep it, so both are NCHW).
  for (Node& n : g.nodes) {
    if (training) break;  // no candidates there (their backward stays on the direct kernels)
    int64_t ic, oc;
    if (onednn_conv(g, n, ic, oc, true) && !onednn_conv(g, n, ic, oc) &&
        (blocked.count(n.inputs[0]) || blocked.count(n.outputs[0])))
      n.attributes[kOneDnnAttribute] = Attribute::of_int(1);
  }
  if (blocked.empty()) return;
  for (Node& n : g.nodes) {
    std::vector<int64_t> in(n.inputs.size(), 0), out(n.outputs.size(), 0);
    bool any = false;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (!n.inputs[k].empty() && blocked.count(n.inputs[k])) in[k] = b, any = true;
    for (size_t k = 0; k < n.outputs.size(); ++k)
      if (blocked.count(n.outputs[k])) out[k] = b, any = true;
    if (!any) continue;
    n.attributes[kBlockedInputsAttribute] = Attribute::of_ints(in);
    n.attributes[kBlockedOutputsAttribute] = Attribute::of_ints(out);
  }
}

}  // namespace

Graph fuse_cpu_inference_graph(const Graph& fused, bool& changed) {
  changed = false;
  if (env_is("MLAUDIT_NO_FUSE", "1")) return fused;
  Graph out = fused;
  for (Node& n : out.nodes)
    if (n.domain.empty() && n.op_type == "Conv") n.attributes[kInferenceAttribute] = Attribute::of_int(1), changed = true;
  auto conv = [](const Node& n) { return n.op_type == "Conv"; };
  // Conv -> Clip (ReLU6 and the like) first: the pool below then reads the Clip's output.
  changed |= fuse_sole_readers(out, conv, [&](Node& c, const Node& clip) {
    float lo, hi;
    if (clip.inputs.empty() || clip.inputs[0] != c.outputs[0] || !constant_clip_bounds(out, clip, lo, hi)) return false;
    c.attributes[kFusedClipAttribute] = Attribute::of_floats({lo, hi});
    return true;
  });
  changed |= fuse_sole_readers(
      out, [](const Node& n) { return n.op_type == "Conv" && !n.attributes.count(kFusedMaxPoolAttribute); },
      [](Node& c, const Node& pool) {
        if (!maxpool_2x2_s2(pool)) return false;
        c.attributes[kFusedMaxPoolAttribute] = Attribute::of_int(1);
        return true;
      });
  if (!env_is("MLAUDIT_BLOCKED", "0")) block_values(out, false);
  return out;
}

Graph block_cpu_gradient_graph(const Graph& fused) {
  if (env_is("MLAUDIT_NO_FUSE", "1") || env_is("MLAUDIT_BLOCKED", "0")) return fused;
  Graph out = fused;
  block_values(out, true);
  return out;
}

}  // namespace mlaudit::engine::detail
