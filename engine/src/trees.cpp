// Recovering a tree ensemble from an ONNX graph (trees.h): find the one tree node between the
// model's input and its audited output, read it into plain trees (ops_ml.cpp's builders validate
// every attribute, tree_ensemble_of_node normalises the splits), then check the reading against
// the engine's own forward on probe rows.
#include "mlaudit/engine/trees.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::engine {

namespace detail {
TreeEnsemble tree_ensemble_of_node(const Node& node, int64_t opset);
}

namespace {

bool is_tree_op(const Node& n) {
  return n.domain == "ai.onnx.ml" &&
         (n.op_type == "TreeEnsembleClassifier" || n.op_type == "TreeEnsembleRegressor" || n.op_type == "TreeEnsemble");
}

// Ops that pass their (float) input through unchanged, as converters put them around trees.
bool is_passthrough(const Node& n) {
  if (!n.domain.empty() && n.domain != "ai.onnx") return false;
  if (n.op_type == "Identity") return true;
  if (n.op_type == "Cast") return n.get_int("to", 0) == 1;  // to float
  return false;
}

[[noreturn]] void unsupported(const Graph& g, const std::string& why) {
  throw UnsupportedError("engine", fmt::format("{}: {}", g.source, why));
}

double logistic(double v) { return 1.0 / (1.0 + std::exp(-v)); }

}  // namespace

int32_t TreeEnsemble::leaf_of(int64_t tree, const float* x) const {
  int32_t i = roots[static_cast<size_t>(tree)];
  while (!nodes[i].leaf()) {
    const Node& n = nodes[i];
    const float v = x[n.feature];
    bool yes;
    if (std::isnan(v)) yes = n.missing_yes;
    else yes = n.leq ? v <= n.threshold : v < n.threshold;
    i = yes ? n.yes : n.no;
  }
  return i;
}

std::vector<double> TreeEnsemble::raw(const float* x) const {
  std::vector<double> r(static_cast<size_t>(outputs), 0.0);
  for (int64_t t = 0; t < tree_count(); ++t) {
    const float* v = values.data() + nodes[leaf_of(t, x)].value;
    for (int64_t k = 0; k < outputs; ++k) r[k] += v[k];
  }
  for (int64_t k = 0; k < outputs; ++k) r[k] += base[k];
  return r;
}

int64_t TreeEnsemble::decide(const std::vector<double>& r) const {
  switch (head) {
    case Head::Regression: return -1;
    case Head::BinaryMargin: return r[0] > margin_threshold ? 1 : 0;
    case Head::Classes: return static_cast<int64_t>(std::max_element(r.begin(), r.end()) - r.begin());
  }
  return -1;
}

std::vector<double> TreeEnsemble::output(const std::vector<double>& r) const {
  if (head == Head::BinaryMargin) {
    double p = link == Link::Logistic ? logistic(r[0]) : r[0];
    if (link == Link::Identity && margin_threshold == 0.0) return {-r[0], r[0]};
    return {1.0 - p, p};
  }
  std::vector<double> o = r;
  if (link == Link::Logistic) {
    for (double& v : o) v = logistic(v);
  } else if (link == Link::Softmax) {
    double m = *std::max_element(o.begin(), o.end()), s = 0;
    for (double& v : o) s += (v = std::exp(v - m));
    for (double& v : o) v /= s;
  }
  return o;
}

std::vector<std::vector<float>> TreeEnsemble::thresholds() const {
  std::vector<std::vector<float>> t(static_cast<size_t>(features));
  for (const Node& n : nodes)
    if (!n.leaf()) t[n.feature].push_back(n.threshold);
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  return t;
}

int64_t TreeEnsemble::leaf_count() const {
  int64_t n = 0;
  for (const Node& nd : nodes) n += nd.leaf();
  return n;
}

int64_t TreeEnsemble::max_depth() const {
  int64_t best = 0;
  std::vector<std::pair<int32_t, int64_t>> stack;
  for (int32_t r : roots) {
    stack.push_back({r, 0});
    while (!stack.empty()) {
      auto [i, d] = stack.back();
      stack.pop_back();
      best = std::max(best, d);
      if (!nodes[i].leaf()) {
        stack.push_back({nodes[i].yes, d + 1});
        stack.push_back({nodes[i].no, d + 1});
      }
    }
  }
  return best;
}

std::string TreeEnsemble::describe() const {
  const char* heads[] = {"regression", "classes (argmax)", "binary margin"};
  const char* links[] = {"NONE", "LOGISTIC", "SOFTMAX"};
  return fmt::format("{} trees of depth <= {}, {} leaves, {} features, {}{} ({} {})", tree_count(), max_depth(),
                     leaf_count(), features, heads[static_cast<int>(head)],
                     head == Head::Regression ? fmt::format(", {} targets", outputs)
                                              : fmt::format(", {} classes", classes),
                     op_type, links[static_cast<int>(link)]);
}

bool has_tree_ensemble(const Graph& g) {
  for (const Node& n : g.nodes)
    if (is_tree_op(n)) return true;
  return false;
}

TreeEnsemble extract_tree_ensemble(const Graph& graph, const std::string& output) {
  Graph g = graph;
  if (!has_tree_ensemble(g))
    unsupported(g, "the model has no tree ensemble (ai.onnx.ml TreeEnsembleClassifier, TreeEnsembleRegressor or "
                   "TreeEnsemble): exact tree methods do not apply");
  const size_t audited = select_output(g, output);
  const std::string out_name = g.outputs.at(audited).name;
  std::map<std::string, const Node*> producer;
  for (const Node& n : g.nodes)
    for (const auto& o : n.outputs) producer[o] = &n;

  // Back from the audited output through pass-through ops to the tree node.
  std::string v = out_name;
  const Node* tree = nullptr;
  for (int hops = 0; hops < 64 && !tree; ++hops) {
    auto it = producer.find(v);
    if (it == producer.end()) unsupported(g, fmt::format("output '{}' is not made by a tree ensemble", out_name));
    const Node& n = *it->second;
    if (is_tree_op(n)) {
      tree = &n;
      const size_t score_index = n.op_type == "TreeEnsembleClassifier" ? 1 : 0;
      if (n.outputs.size() <= score_index || n.outputs[score_index] != v)
        unsupported(g, fmt::format("output '{}' is not the scores of {}", out_name, n.describe()));
    } else if (is_passthrough(n)) {
      v = n.inputs.at(0);
    } else {
      unsupported(g, fmt::format("output '{}' passes through {} after the trees; exact tree methods read only "
                                 "Identity and Cast there",
                                 out_name, n.describe()));
    }
  }
  if (!tree) unsupported(g, fmt::format("output '{}' is not made by a tree ensemble", out_name));

  // Forward from the tree's input back to the graph input.
  std::string in = tree->inputs.at(0);
  for (int hops = 0; hops < 64; ++hops) {
    auto it = producer.find(in);
    if (it == producer.end()) break;
    const Node& n = *it->second;
    if (!is_passthrough(n))
      unsupported(g, fmt::format("{} feeds the trees through {} (a preprocessing step); exact tree methods need the "
                                 "model input to reach the trees unchanged (Identity or Cast only): export the "
                                 "trees without the pipeline's preprocessing, or apply it to the data first",
                                 tree->describe(), n.describe()));
    in = n.inputs.at(0);
  }
  const ValueInfo* input = nullptr;
  for (const auto& i : g.inputs)
    if (i.name == in) input = &i;
  if (!input) unsupported(g, fmt::format("{} does not read a graph input", tree->describe()));
  if (g.inputs.size() != 1) unsupported(g, fmt::format("the model has {} inputs; exact tree methods need one", g.inputs.size()));
  if (input->shape.size() != 2 && input->shape.size() != 1)
    unsupported(g, fmt::format("input '{}' has rank {}; a tree ensemble reads rows [N, F]", input->name, input->shape.size()));

  TreeEnsemble t = detail::tree_ensemble_of_node(*tree, g.opset);
  const int64_t width = input->shape.back();
  if (width > 0) {
    if (t.features > width)
      throw InputError("engine", fmt::format("{}: {} reads feature {} of a {}-wide input", g.source, tree->describe(),
                                             t.features - 1, width));
    t.features = width;
  }

  // Probe rows: every feature at random thresholds, just below/above them, and random values
  // between; the engine's forward must give the same scores (float rounding aside) and class.
  Session session(graph, [&] {
    SessionOptions o;
    o.output = out_name;
    o.threads = 1;
    o.fuse_dense = false;
    return o;
  }());
  const auto th = t.thresholds();
  const int64_t rows = 64;
  std::mt19937_64 rng(12345);
  Tensor x(DType::Float32, {rows, t.features});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t f = 0; f < t.features; ++f) {
      float val = 0;
      if (!th[f].empty()) {
        float a = th[f][rng() % th[f].size()];
        switch (rng() % 4) {
          case 0: val = a; break;
          case 1: val = std::nextafter(a, -INFINITY); break;
          case 2: val = std::nextafter(a, INFINITY); break;
          default: {
            float lo = th[f].front(), hi = th[f].back(), span = std::max(1.0f, hi - lo);
            val = lo - span * 0.1f + span * 1.2f * static_cast<float>(rng() % 1000) / 1000.0f;
          }
        }
      }
      x.f32()[r * t.features + f] = val;
    }
  Tensor y = session.forward(x);
  const int64_t cols = y.shape().size() == 2 ? y.shape()[1] : 1;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> raw = t.raw(x.f32() + r * t.features);
    std::vector<double> o = t.output(raw);
    const float* got = y.f32() + r * cols;
    bool same = static_cast<int64_t>(o.size()) == cols;
    for (int64_t k = 0; same && k < cols; ++k)
      same = std::abs(o[k] - got[k]) <= 1e-4 * (1.0 + std::abs(o[k]));
    if (same && t.head != TreeEnsemble::Head::Regression) {
      int64_t engine_class = static_cast<int64_t>(std::max_element(got, got + cols) - got);
      // A class from scores that tie within float rounding is not a disagreement.
      std::vector<float> sorted(got, got + cols);
      std::sort(sorted.begin(), sorted.end());
      bool tie = cols > 1 && sorted[cols - 1] - sorted[cols - 2] <= 1e-5f;
      same = tie || engine_class == t.decide(raw);
    }
    if (!same)
      unsupported(g, fmt::format("{}: its scores follow a convention the exact tree methods do not reproduce (probe "
                                 "row {} gives {} in the engine)",
                                 tree->describe(), r, fmt::join(got, got + cols, ", ")));
  }
  return t;
}

}  // namespace mlaudit::engine
