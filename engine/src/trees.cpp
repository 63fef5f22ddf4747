// Recovering a tree ensemble from an ONNX graph (trees.h): find the one tree node between the
// model's input and its audited output, read it into plain trees (ops_ml.cpp's builders validate
// every attribute, tree_ensemble_of_node normalises the splits), then check the reading against
// the engine's own forward on probe rows.
#include "mlaudit/engine/trees.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

// float32 values in their order as unsigned keys (NaN excluded): key(a) < key(b) iff a < b.
uint32_t order_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
float from_key(uint32_t k) {
  uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// One per-feature affine step in front of the trees, in float32 as the engine computes it:
// Scaler y = (x - a) * b; Mul y = x * a; Add y = x + a; Sub y = x - a; Div y = x / a. `a`, `b`
// hold one value (every feature) or one per feature.
struct Step {
  enum class Kind { Scaler, Mul, Add, Sub, Div } kind = Kind::Add;
  std::vector<float> a, b;
  std::string name;
  float at(const std::vector<float>& v, int64_t f) const { return v.size() == 1 ? v[0] : v[static_cast<size_t>(f)]; }
  float apply(float x, int64_t f) const {
    switch (kind) {
      case Kind::Scaler: return (x - at(a, f)) * at(b, f);
      case Kind::Mul: return x * at(a, f);
      case Kind::Add: return x + at(a, f);
      case Kind::Sub: return x - at(a, f);
      case Kind::Div: return x / at(a, f);
    }
    return x;
  }
  /// +1 non-decreasing, -1 non-increasing in x; 0: not a usable step for feature f.
  int direction(int64_t f) const {
    const float c = kind == Kind::Scaler ? at(b, f) : at(a, f);
    if (!std::isfinite(c) || (kind == Kind::Scaler && !std::isfinite(at(a, f)))) return 0;
    if (kind == Kind::Add || kind == Kind::Sub) return 1;
    if (c == 0.0f) return 0;
    return c > 0 ? 1 : -1;
  }
};

// Reads node `n` as a Step when it is one (Scaler, or Mul/Add/Sub/Div of the running value by
// an initializer that broadcasts per feature); `in` becomes the running value's name.
bool affine_step(const Graph& g, const Node& n, Step& st, std::string& in, std::string& why) {
  st.name = n.describe();
  if (n.domain == "ai.onnx.ml" && n.op_type == "Scaler") {
    st.kind = Step::Kind::Scaler;
    st.b = n.get_floats("scale");
    st.a = n.get_floats("offset");
    if (st.b.empty() || st.a.size() != st.b.size()) {
      why = "scale and offset must have the same, non-zero length";
      return false;
    }
    in = n.inputs.at(0);
    return true;
  }
  if (!(n.domain.empty() || n.domain == "ai.onnx")) return false;
  static const std::map<std::string, Step::Kind> kinds = {
      {"Mul", Step::Kind::Mul}, {"Add", Step::Kind::Add}, {"Sub", Step::Kind::Sub}, {"Div", Step::Kind::Div}};
  auto k = kinds.find(n.op_type);
  if (k == kinds.end() || n.inputs.size() != 2) return false;
  // The constant side: an initializer (or a Constant node's value, which the loader keeps as one).
  const Tensor* c0 = g.initializer(n.inputs[0]);
  const Tensor* c1 = g.initializer(n.inputs[1]);
  const bool commutes = n.op_type == "Mul" || n.op_type == "Add";
  const Tensor* c = c1;
  std::string x = n.inputs[0];
  if (!c1 && c0 && commutes) {
    c = c0;
    x = n.inputs[1];
  }
  if (!c || (c == c0 && !commutes) || c->dtype() != DType::Float32) {
    why = "its other operand is not a float constant";
    return false;
  }
  int64_t non_unit = 0;
  for (int64_t d : c->shape()) non_unit += d != 1;
  if (non_unit > 1) {
    why = "its constant is not per feature";
    return false;
  }
  st.kind = k->second;
  st.a.assign(c->f32(), c->f32() + c->numel());
  if (st.a.empty()) return false;
  in = x;
  return true;
}

// Folds the steps into the thresholds. With g(x) the steps applied in float32 (monotone in x, of
// direction d), a split g(x) <= t (or < t) is a split on x itself: for d > 0 the passing x form a
// prefix of the float32 order, {x <= x*} with x* the largest float32 that passes (bisection
// over the order); for d < 0 a suffix {x >= x_min}, written !(x < x_min) with the children
// swapped. NaN stays NaN through the steps, so its branch is kept. The probe rows in
// extract_tree_ensemble check the folded trees against the engine running the steps itself.
void fold_steps(const Graph& g, const std::vector<Step>& steps, TreeEnsemble& t) {
  for (const Step& st : steps) {
    const size_t n = st.a.size();
    if (n != 1 && static_cast<int64_t>(n) < t.features)
      unsupported(g, fmt::format("{} has {} values; the trees read {} features", st.name, n, t.features));
  }
  const uint32_t lo_key = order_key(-INFINITY), hi_key = order_key(INFINITY);
  for (TreeEnsemble::Node& node : t.nodes) {
    if (node.leaf()) continue;
    const int64_t f = node.feature;
    int dir = 1;
    for (const Step& st : steps) {
      const int d = st.direction(f);
      if (d == 0)
        unsupported(g, fmt::format("{}: feature {} is scaled by zero or a non-finite constant; exact tree methods fold "
                                   "only finite, non-zero scales",
                                   st.name, f));
      dir *= d;
    }
    const float thr = node.threshold;
    const bool leq = node.leq;
    auto pass = [&](float x) {
      for (const Step& st : steps) x = st.apply(x, f);
      return leq ? x <= thr : x < thr;
    };
    const int32_t nan_to = node.missing_yes ? node.yes : node.no;
    if (dir > 0) {  // pass holds on a prefix of the float32 order
      if (!pass(-INFINITY)) {
        node.threshold = -INFINITY;
        node.leq = false;  // x < -inf: never
      } else if (pass(INFINITY)) {
        node.threshold = INFINITY;
        node.leq = true;  // x <= inf: always (but NaN)
      } else {
        uint32_t a = lo_key, b = hi_key;  // pass(a), !pass(b)
        while (b - a > 1) {
          const uint32_t m = a + (b - a) / 2;
          (pass(from_key(m)) ? a : b) = m;
        }
        node.threshold = from_key(a);
        node.leq = true;
      }
    } else {  // pass holds on a suffix
      if (!pass(INFINITY)) {
        node.threshold = -INFINITY;
        node.leq = false;
      } else if (pass(-INFINITY)) {
        node.threshold = INFINITY;
        node.leq = true;
      } else {
        uint32_t a = lo_key, b = hi_key;  // !pass(a), pass(b)
        while (b - a > 1) {
          const uint32_t m = a + (b - a) / 2;
          (pass(from_key(m)) ? b : a) = m;
        }
        node.threshold = from_key(b);
        node.leq = false;
        std::swap(node.yes, node.no);  // x < x_min fails the original test
      }
    }
    node.missing_yes = nan_to == node.yes;
  }
}

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

  // Back from the tree's input to the graph input: pass-through ops, and per-feature monotone
  // affine steps (a Scaler, as skl2onnx writes StandardScaler; Mul/Add/Sub/Div by constants, as it
  // writes MinMaxScaler), folded into the thresholds (fold_steps).
  std::string in = tree->inputs.at(0);
  std::vector<Step> steps;  // from the tree back towards the input
  for (int hops = 0; hops < 64; ++hops) {
    auto it = producer.find(in);
    if (it == producer.end()) break;
    const Node& n = *it->second;
    if (is_passthrough(n)) {
      in = n.inputs.at(0);
      continue;
    }
    Step st;
    std::string why;
    if (!affine_step(g, n, st, in, why))
      unsupported(g, fmt::format("{} feeds the trees through {}{}; exact tree methods read the model input reaching the "
                                 "trees unchanged (Identity, Cast) or through per-feature scaling (Scaler, Mul/Add/Sub/Div "
                                 "by constants): export the trees without the pipeline's other steps, or apply them to "
                                 "the data first",
                                 tree->describe(), n.describe(), why.empty() ? "" : " (" + why + ")"));
    steps.push_back(std::move(st));
  }
  std::reverse(steps.begin(), steps.end());  // input order
  const ValueInfo* input = nullptr;
  for (const auto& i : g.inputs)
    if (i.name == in) input = &i;
  if (!input) unsupported(g, fmt::format("{} does not read a graph input", tree->describe()));
  if (g.inputs.size() != 1) unsupported(g, fmt::format("the model has {} inputs; exact tree methods need one", g.inputs.size()));
  if (input->shape.size() != 2 && input->shape.size() != 1)
    unsupported(g, fmt::format("input '{}' has rank {}; a tree ensemble reads rows [N, F]", input->name, input->shape.size()));

  TreeEnsemble t = detail::tree_ensemble_of_node(*tree, g.opset);
  if (!steps.empty()) fold_steps(g, steps, t);
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
