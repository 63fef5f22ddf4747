// Exact TreeSHAP (path-dependent, interventional, interactions) on engine::TreeEnsemble.
// The maths, with the paper's names, is beside each routine; the header says what each mode
// explains. Layout: the ensemble is flattened once into per-tree contiguous node records
// (preorder, so a subtree is a short forward range), leaf values in double, covers in double;
// the recursions touch only these arrays and per-thread scratch allocated once per thread.
#include "mlaudit/explain/tree_shap.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

using engine::Tensor;
using engine::TreeEnsemble;

FeaturePerturbation parse_feature_perturbation(const std::string& text) {
  if (text == "interventional") return FeaturePerturbation::Interventional;
  if (text == "tree-path-dependent" || text == "tree_path_dependent" || text == "path-dependent")
    return FeaturePerturbation::TreePathDependent;
  throw InputError("explain", fmt::format("--feature-perturbation '{}' is not interventional or tree-path-dependent", text));
}

TreeModelOutput parse_tree_model_output(const std::string& text) {
  if (text == "raw") return TreeModelOutput::Raw;
  if (text == "probability") return TreeModelOutput::Probability;
  throw InputError("explain", fmt::format("--shap-model-output '{}' is not raw or probability", text));
}

std::string to_string(FeaturePerturbation p) {
  return p == FeaturePerturbation::Interventional ? "interventional" : "tree_path_dependent";
}
std::string to_string(TreeModelOutput o) { return o == TreeModelOutput::Raw ? "raw" : "probability"; }

namespace {

// One node of the flattened ensemble. `yes`/`no` index the flat array; a leaf has feature -1
// and `value` = offset of its `outputs` values in leaf_values.
struct FlatNode {
  float threshold;
  int32_t feature;
  int32_t yes;
  int32_t no;
  int32_t value;
  uint8_t leq;
  uint8_t missing_yes;
};

// The engine's test (trees.h): NaN takes the missing branch, else x <= t (leq) or x < t.
inline bool goes_yes(const FlatNode& n, float v) {
  if (std::isnan(v)) return n.missing_yes;
  return n.leq ? v <= n.threshold : v < n.threshold;
}
inline int32_t child_of(const FlatNode& n, float v) { return goes_yes(n, v) ? n.yes : n.no; }

struct FlatTree {
  int32_t root = 0;          // index in the flat array
  int32_t end = 0;           // one past the tree's last node (preorder block [root, end))
  int32_t max_depth = 0;     // edges on the longest root-leaf path
  int32_t max_distinct = 0;  // most distinct features on one root-leaf path
  std::vector<int32_t> features;  // distinct split features, ascending
  bool tabled = false;             // its leaves have contribution tables (LeafPlan)
  int32_t plans_begin = 0, plans_end = 0;
};

// Leaf contribution tables. For one leaf, let f_0..f_{d-1} be the distinct features on its path
// and bit j of a row's mask say whether the row satisfies every split on f_j along that path.
// In both games the leaf's contribution to phi_{f_j} is v * T[mask(x)][j] for an x-independent
// table T (2^d x d):
//   path-dependent  the leaf's part of Alg. 2 is EXTEND of one element per f_j with zero fraction
//                   z_j = product of the cover ratios of its splits and one fraction o_j = bit j
//                   of mask(x), then UNWOUNDSUM(j) (o_j - z_j) (the recursion reaches the same
//                   elements, unwinding and re-extending a repeated feature);
//   interventional  with A = x-only and B = r-only features (see IndepWalk), the leaf is reached
//                   iff mask(x) | mask(r) is full; T[X] = (1/R) sum over the background rows'
//                   masks m of the Shapley weights for A = X & ~m, B = ~X.
// A row then costs one comparison per interior node and d additions per leaf, against d^2
// (path-dependent) or one walk per background row (interventional); rows are processed in
// blocks, tree by tree, so that a tree's tables stay in cache.
struct PathStep {
  int32_t node;      // flat interior node on the leaf's path
  uint8_t want_yes;  // the path takes its yes branch
  uint8_t bit;       // index j of the node's feature among the leaf's distinct features
};
struct LeafPlan {
  int32_t leaf;                 // flat leaf node
  int32_t steps_begin, steps_end;
  int32_t features_begin;       // into leaf_features (d entries)
  int32_t d;
  int64_t table;                // offset of the 2^d x d table in `tables`
};

// Path element of Algorithm 2: feature d, zero fraction z, one fraction o, permutation weight w.
struct PathElement {
  int32_t feature;
  double zero;
  double one;
  double weight;
};

// EXTEND (Lundberg et al. 2020, Alg. 2): grow the path by one element that is "one" with
// fraction o and "zero" with fraction z; w_i holds the weight of subsets of size i.
inline void extend_path(PathElement* path, int depth, double zero, double one, int32_t feature) {
  path[depth] = {feature, zero, one, depth == 0 ? 1.0 : 0.0};
  const double inv = 1.0 / (depth + 1);
  for (int i = depth - 1; i >= 0; --i) {
    path[i + 1].weight += one * path[i].weight * (i + 1) * inv;
    path[i].weight = zero * path[i].weight * (depth - i) * inv;
  }
}

// UNWIND (Alg. 2): remove element `index`, inverting EXTEND.
inline void unwind_path(PathElement* path, int depth, int index) {
  const double one = path[index].one, zero = path[index].zero;
  double next = path[depth].weight;
  for (int i = depth - 1; i >= 0; --i) {
    if (one != 0) {
      const double saved = path[i].weight;
      path[i].weight = next * (depth + 1) / ((i + 1) * one);
      next = saved - path[i].weight * zero * (depth - i) / (depth + 1);
    } else {
      path[i].weight = path[i].weight * (depth + 1) / (zero * (depth - i));
    }
  }
  for (int i = index; i < depth; ++i) {
    path[i].feature = path[i + 1].feature;
    path[i].zero = path[i + 1].zero;
    path[i].one = path[i + 1].one;
  }
}

// 1 / n for the small integers of the recursions (divisions cost ~5 multiplications; the
// unique depth is at most the tree depth + 1 <= 4097, flatten() refuses deeper trees)
const double* reciprocals() {
  static const std::vector<double> inv = [] {
    std::vector<double> v(4100, 0.0);
    for (size_t n = 1; n < v.size(); ++n) v[n] = 1.0 / static_cast<double>(n);
    return v;
  }();
  return inv.data();
}

// Sum of the weights UNWIND(path, index) would leave, without modifying the path.
inline double unwound_sum(const PathElement* path, int depth, int index, const double* inv) {
  const double one = path[index].one, zero = path[index].zero;
  double total = 0;
  if (one != 0) {
    const double inv_one = 1.0 / one;  // one is 1 except under interaction conditioning
    double next = path[depth].weight;
    for (int i = depth - 1; i >= 0; --i) {
      const double t = next * inv_one * inv[i + 1];
      total += t;
      next = path[i].weight - t * zero * (depth - i);
    }
  } else {
    for (int i = depth - 1; i >= 0; --i) total += path[i].weight * inv[depth - i];
    total /= zero;
  }
  return total * (depth + 1);
}

// RECURSE of Alg. 2 on one tree for one row, with the conditioning of sec. 2.7 (condition +1:
// feature `cond_feature` held on, -1: held off, 0: none) used by the interaction values.
struct PathWalk {
  const FlatNode* nodes;
  const double* leaf_values;
  const double* cover;
  int outputs;
  const float* x;
  double* phi;  // [F, K]
  int condition = 0;
  int32_t cond_feature = -1;

  void recurse(int32_t node, int depth, PathElement* parent_path, double parent_zero, double parent_one,
               int32_t parent_feature, double cond_fraction) const {
    if (cond_fraction == 0) return;
    PathElement* path = parent_path + depth + 1;
    std::copy(parent_path, parent_path + depth + 1, path);
    if (condition == 0 || cond_feature != parent_feature) {
      // An element that is neither one nor zero carries no weight: every term of its subtree
      // has the factor 0 (and unwinding it would divide by zero), so the subtree adds nothing.
      if (parent_zero == 0 && parent_one == 0) return;
      extend_path(path, depth, parent_zero, parent_one, parent_feature);
    }
    const FlatNode& n = nodes[node];
    if (n.feature < 0) {
      const double* v = leaf_values + n.value;
      const double* inv = reciprocals();
      for (int i = 1; i <= depth; ++i) {
        const double w = unwound_sum(path, depth, i, inv);
        const PathElement& e = path[i];
        const double scale = w * (e.one - e.zero) * cond_fraction;
        double* out = phi + static_cast<int64_t>(e.feature) * outputs;
        for (int k = 0; k < outputs; ++k) out[k] += scale * v[k];
      }
      return;
    }
    const int32_t hot = child_of(n, x[n.feature]);
    const int32_t cold = hot == n.yes ? n.no : n.yes;
    const double w = cover[node];
    const double hot_zero = w > 0 ? cover[hot] / w : 0.0;
    const double cold_zero = w > 0 ? cover[cold] / w : 0.0;
    double incoming_zero = 1, incoming_one = 1;
    int index = 0;
    for (; index <= depth; ++index)
      if (path[index].feature == n.feature) break;
    if (index != depth + 1) {  // the feature was split on above: undo that split, redo it here
      incoming_zero = path[index].zero;
      incoming_one = path[index].one;
      unwind_path(path, depth, index);
      depth -= 1;
    }
    double hot_fraction = cond_fraction, cold_fraction = cond_fraction;
    if (condition > 0 && n.feature == cond_feature) {
      cold_fraction = 0;
      depth -= 1;
    } else if (condition < 0 && n.feature == cond_feature) {
      hot_fraction *= hot_zero;
      cold_fraction *= cold_zero;
      depth -= 1;
    }
    recurse(hot, depth + 1, path, hot_zero * incoming_zero, incoming_one, n.feature, hot_fraction);
    recurse(cold, depth + 1, path, cold_zero * incoming_zero, 0, n.feature, cold_fraction);
  }

  // The "on" and "off" passes of feature c = cond_feature together: their paths are the same
  // (c is never extended in either); only the fraction of the row that reaches a node differs
  // (on: x's side of every split on c, whole; off: both sides, times their zero fractions). At a
  // leaf, (on - off) / 2 of each element's contribution goes to Phi_{c, e} (`row`) and is taken
  // off phi_e (`diag`). Half the work of two conditioned recursions.
  void recurse_pair(int32_t node, int depth, PathElement* parent_path, double parent_zero, double parent_one,
                    int32_t parent_feature, double on_fraction, double off_fraction, double* row, double* diag) const {
    if (on_fraction == 0 && off_fraction == 0) return;
    PathElement* path = parent_path + depth + 1;
    std::copy(parent_path, parent_path + depth + 1, path);
    if (cond_feature != parent_feature) {
      if (parent_zero == 0 && parent_one == 0) return;
      extend_path(path, depth, parent_zero, parent_one, parent_feature);
    }
    const FlatNode& n = nodes[node];
    if (n.feature < 0) {
      const double* v = leaf_values + n.value;
      const double* inv = reciprocals();
      const double half = 0.5 * (on_fraction - off_fraction);
      for (int i = 1; i <= depth; ++i) {
        const PathElement& e = path[i];
        const double scale = unwound_sum(path, depth, i, inv) * (e.one - e.zero) * half;
        double* r = row + static_cast<int64_t>(e.feature) * outputs;
        double* d = diag + static_cast<int64_t>(e.feature) * outputs;
        for (int k = 0; k < outputs; ++k) {
          r[k] += scale * v[k];
          d[k] -= scale * v[k];
        }
      }
      return;
    }
    const int32_t hot = child_of(n, x[n.feature]);
    const int32_t cold = hot == n.yes ? n.no : n.yes;
    const double w = cover[node];
    const double hot_zero = w > 0 ? cover[hot] / w : 0.0;
    const double cold_zero = w > 0 ? cover[cold] / w : 0.0;
    double incoming_zero = 1, incoming_one = 1;
    int index = 0;
    for (; index <= depth; ++index)
      if (path[index].feature == n.feature) break;
    if (index != depth + 1) {
      incoming_zero = path[index].zero;
      incoming_one = path[index].one;
      unwind_path(path, depth, index);
      depth -= 1;
    }
    if (n.feature == cond_feature) {
      recurse_pair(hot, depth, path, hot_zero * incoming_zero, incoming_one, n.feature, on_fraction,
                   off_fraction * hot_zero, row, diag);
      recurse_pair(cold, depth, path, cold_zero * incoming_zero, 0, n.feature, 0, off_fraction * cold_zero, row, diag);
      return;
    }
    recurse_pair(hot, depth + 1, path, hot_zero * incoming_zero, incoming_one, n.feature, on_fraction, off_fraction,
                 row, diag);
    recurse_pair(cold, depth + 1, path, cold_zero * incoming_zero, 0, n.feature, on_fraction, off_fraction, row, diag);
  }
};

// Interventional SHAP of one tree for one (x, r) pair (Chen, Lundberg & Lee; shap's
// tree_shap_indep, written as a recursion). v(S) = f(x_S, r_rest). A leaf is reached by the
// hybrid row iff every feature on its path is satisfied by x (feature in S) or by r (not in S);
// with A = features only x satisfies, B = features only r satisfies, N = |A| + |B|, M = |A|,
// the leaf's game 1[A in S, B out of S] * v has Shapley values
//   i in A:  v (M-1)! (N-M)! / N! = v / (N C(N-1, M-1))      i in B: -v / (N C(N-1, M)).
// Each subtree returns pos = sum over its leaves of v / (N C(N-1, M-1)) and neg = the sum of
// the B terms; at the node where x and r first part on feature f, f is in A for the x child's
// leaves and in B for the r child's, so phi_f += pos(x child) + neg(r child).
template <int KC>
struct IndepWalk {
  const FlatNode* nodes;
  const double* leaf_values;
  int outputs;  // K (== KC when KC > 0)
  const float* x;
  const float* r;
  int8_t* state;          // per feature: +1 x side (in A), -1 r side (in B), 0 not yet parted
  const double* weight;   // weight[n * stride + m] = 1 / (n C(n-1, m))
  int stride;
  double* phi;            // [F, K]

  int k_count() const { return KC > 0 ? KC : outputs; }

  // pos/neg: K values each, written (not added); scratch: 4K doubles per level below.
  void walk(int32_t node, int m, int n_parted, double* pos, double* neg, double* scratch) const {
    const int K = k_count();
    while (true) {
      const FlatNode& nd = nodes[node];
      if (nd.feature < 0) {
        const double* v = leaf_values + nd.value;
        const double wp = (n_parted > 0 && m > 0) ? weight[n_parted * stride + m - 1] : 0.0;
        const double wn = (n_parted > 0 && m < n_parted) ? -weight[n_parted * stride + m] : 0.0;
        for (int k = 0; k < K; ++k) {
          pos[k] = v[k] * wp;
          neg[k] = v[k] * wn;
        }
        return;
      }
      const int32_t f = nd.feature;
      const int32_t xc = child_of(nd, x[f]);
      const int8_t s = state[f];
      if (s > 0) {
        node = xc;
        continue;
      }
      const int32_t rc = child_of(nd, r[f]);
      if (s < 0 || xc == rc) {
        node = rc;
        continue;
      }
      double* px = scratch;
      double* nx = scratch + K;
      double* pr = scratch + 2 * K;
      double* nr = scratch + 3 * K;
      state[f] = 1;
      walk(xc, m + 1, n_parted + 1, px, nx, scratch + 4 * K);
      state[f] = -1;
      walk(rc, m, n_parted + 1, pr, nr, scratch + 4 * K);
      state[f] = 0;
      double* out = phi + static_cast<int64_t>(f) * K;
      for (int k = 0; k < K; ++k) {
        out[k] += px[k] + nr[k];
        pos[k] = px[k] + pr[k];
        neg[k] = nx[k] + nr[k];
      }
      return;
    }
  }
};

}  // namespace

std::vector<double> node_covers(const TreeEnsemble& model, const Tensor& data) {
  const int64_t d = model.features;
  if (data.empty() || data.rank() < 1 || data.shape()[0] < 1 || data.numel() / data.shape()[0] != d)
    throw InputError("explain", fmt::format("cover data: expected rows of {} features, got {}", d,
                                            data.empty() ? std::string("no rows") : engine::shape_str(data.shape())));
  if (data.dtype() != engine::DType::Float32)
    throw InputError("explain", fmt::format("cover data: expected float32, got {}", engine::dtype_name(data.dtype())));
  const int64_t rows = data.shape()[0];
  const float* X = data.f32();
  std::vector<double> cover(model.nodes.size(), 0.0);
  const int64_t trees = model.tree_count();
  // Trees in parallel: each writes only its own nodes, counts are exact integers.
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, engine::num_threads()))
  for (int64_t t = 0; t < trees; ++t) {
    for (int64_t i = 0; i < rows; ++i) {
      const float* x = X + i * d;
      int32_t node = model.roots[t];
      while (true) {
        cover[node] += 1;
        const auto& n = model.nodes[node];
        if (n.leaf()) break;
        const float v = x[n.feature];
        const bool yes = std::isnan(v) ? n.missing_yes : (n.leq ? v <= n.threshold : v < n.threshold);
        node = yes ? n.yes : n.no;
      }
    }
  }
  return cover;
}

struct TreeExplainer::Impl {
  TreeEnsemble::Link link_kind = TreeEnsemble::Link::Identity;  // the model's post transform (copied: no reference kept)
  TreeShapOptions opts;
  int64_t features = 0;
  int outputs = 0;
  std::vector<FlatNode> nodes;
  std::vector<double> leaf_values;
  std::vector<double> cover;  // flat-indexed
  std::vector<FlatTree> trees;
  std::vector<double> base;   // raw offsets
  int max_depth = 0, max_distinct = 0;
  // interventional
  Tensor background;
  int64_t refs = 0;
  std::vector<double> ref_margin;  // [R, K]
  std::vector<double> weight;      // [(D+1) x (D+1)]
  int stride = 0;
  std::vector<double> expected;

  void flatten(const TreeEnsemble& m);
  std::vector<double> margins(const float* x) const;
  std::vector<double> link(const std::vector<double>& margin) const;
  void path_row(const float* x, double* phi, std::vector<PathElement>& path) const;
  void interactions_row(const float* x, double* inter, std::vector<PathElement>& path, std::vector<double>& diag) const;
  void indep_row(const float* x, double* phi, std::vector<double>& scratch, std::vector<int8_t>& state,
                 std::vector<double>& ref_phi, std::vector<double>& stack) const;
  // leaf contribution tables (see LeafPlan)
  std::vector<LeafPlan> plans;
  std::vector<PathStep> steps;
  std::vector<int32_t> leaf_features;
  std::vector<double> tables;
  int32_t max_tree_nodes = 0;
  bool any_tabled = false;
  void build_plans(bool interventional);
  void build_path_tables();
  void build_indep_tables();
  // Adds the tabled trees' contributions to rows [b0, b1) of phi ([N, F, K]).
  void tabled_rows(const float* X, int64_t b0, int64_t b1, double* phi, std::vector<uint8_t>& dir) const;
  // Mean Jacobian of softmax on the segment a -> b (K x K, row k = d p_k).
  void softmax_mean_jacobian(const double* a, const double* b, std::vector<double>& jac) const;
};

void TreeExplainer::Impl::flatten(const TreeEnsemble& m) {
  const int64_t total = static_cast<int64_t>(m.nodes.size());
  if (m.tree_count() < 1) throw InputError("explain", fmt::format("tree model {}: no trees", m.node_name));
  if (m.outputs < 1 || m.features < 1)
    throw InputError("explain", fmt::format("tree model {}: {} outputs, {} features", m.node_name, m.outputs, m.features));
  if (static_cast<int64_t>(m.base.size()) != m.outputs)
    throw InputError("explain", fmt::format("tree model {}: {} base values for {} outputs", m.node_name, m.base.size(), m.outputs));
  outputs = static_cast<int>(m.outputs);
  features = m.features;
  base = m.base;
  nodes.clear();
  leaf_values.clear();
  trees.clear();
  std::vector<int32_t> flat_of(total, -1);
  for (int64_t t = 0; t < m.tree_count(); ++t) {
    FlatTree tree;
    tree.root = static_cast<int32_t>(nodes.size());
    // preorder with an explicit stack of (model node, depth, distinct features so far)
    struct Item {
      int32_t node;
      int32_t parent;  // flat parent, -1 for the root
      bool yes_side;
      int32_t depth;
    };
    std::vector<Item> stack{{m.roots[t], -1, true, 0}};
    std::vector<int32_t> path_features;  // features on the current path (by depth)
    std::vector<int32_t> tree_features;
    while (!stack.empty()) {
      Item it = stack.back();
      stack.pop_back();
      if (it.node < 0 || it.node >= total)
        throw InputError("explain", fmt::format("tree model {}: tree {} refers to node {} of {}", m.node_name, t, it.node, total));
      if (flat_of[it.node] >= 0)
        throw InputError("explain", fmt::format("tree model {}: node {} is reached twice (not a tree)", m.node_name, it.node));
      if (it.depth > 4096) throw InputError("explain", fmt::format("tree model {}: tree {} is deeper than 4096", m.node_name, t));
      const int32_t flat = static_cast<int32_t>(nodes.size());
      flat_of[it.node] = flat;
      if (it.parent >= 0) (it.yes_side ? nodes[it.parent].yes : nodes[it.parent].no) = flat;
      const auto& src = m.nodes[it.node];
      FlatNode fn{src.threshold, src.feature, -1, -1, -1, static_cast<uint8_t>(src.leq), static_cast<uint8_t>(src.missing_yes)};
      path_features.resize(it.depth);
      if (src.leaf()) {
        if (src.value < 0 || static_cast<size_t>(src.value) + m.outputs > m.values.size())
          throw InputError("explain", fmt::format("tree model {}: leaf {} has no values", m.node_name, it.node));
        fn.value = static_cast<int32_t>(leaf_values.size());
        for (int64_t k = 0; k < m.outputs; ++k) leaf_values.push_back(m.values[src.value + k]);
        std::vector<int32_t> distinct(path_features);
        std::sort(distinct.begin(), distinct.end());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        tree.max_depth = std::max(tree.max_depth, it.depth);
        tree.max_distinct = std::max<int32_t>(tree.max_distinct, static_cast<int32_t>(distinct.size()));
        nodes.push_back(fn);
      } else {
        if (src.feature >= m.features)
          throw InputError("explain", fmt::format("tree model {}: node {} splits on feature {} of {}", m.node_name, it.node,
                                                  src.feature, m.features));
        nodes.push_back(fn);
        path_features.push_back(src.feature);
        tree_features.push_back(src.feature);
        // push `no` first so that `yes` is laid out right after its parent
        stack.push_back({src.no, flat, false, it.depth + 1});
        stack.push_back({src.yes, flat, true, it.depth + 1});
      }
    }
    tree.end = static_cast<int32_t>(nodes.size());
    std::sort(tree_features.begin(), tree_features.end());
    tree_features.erase(std::unique(tree_features.begin(), tree_features.end()), tree_features.end());
    tree.features = std::move(tree_features);
    max_depth = std::max(max_depth, tree.max_depth);
    max_distinct = std::max(max_distinct, tree.max_distinct);
    trees.push_back(std::move(tree));
  }
  for (const auto& n : nodes)
    if (n.feature >= 0 && (n.yes < 0 || n.no < 0))
      throw InputError("explain", fmt::format("tree model {}: an interior node lacks a child", m.node_name));
  cover.assign(nodes.size(), 0.0);
}

std::vector<double> TreeExplainer::Impl::margins(const float* x) const {
  std::vector<double> m(base);
  for (const auto& t : trees) {
    int32_t node = t.root;
    while (nodes[node].feature >= 0) node = child_of(nodes[node], x[nodes[node].feature]);
    const double* v = leaf_values.data() + nodes[node].value;
    for (int k = 0; k < outputs; ++k) m[k] += v[k];
  }
  return m;
}

std::vector<double> TreeExplainer::Impl::link(const std::vector<double>& margin) const {
  std::vector<double> p(margin);
  if (link_kind == TreeEnsemble::Link::Logistic) {
    for (auto& v : p) v = 1.0 / (1.0 + std::exp(-v));
  } else if (link_kind == TreeEnsemble::Link::Softmax) {
    const double top = *std::max_element(p.begin(), p.end());
    double sum = 0;
    for (auto& v : p) sum += (v = std::exp(v - top));
    for (auto& v : p) v /= sum;
  }
  return p;
}

void TreeExplainer::Impl::softmax_mean_jacobian(const double* a, const double* b, std::vector<double>& jac) const {
  // J = integral_0^1 J_softmax(a + t (b - a)) dt, composite 8-point Gauss-Legendre with one
  // panel per 2 units of the largest margin change (the integrand is analytic; on such panels
  // the rule's error is far below double rounding).
  static const auto rule = [] {
    std::pair<std::vector<double>, std::vector<double>> r;
    gauss_legendre(8, r.first, r.second);
    return r;
  }();
  const int K = outputs;
  double span = 0;
  for (int k = 0; k < K; ++k) span = std::max(span, std::fabs(b[k] - a[k]));
  const int panels = static_cast<int>(std::min(512.0, std::ceil(span / 2.0) + 1));
  jac.assign(static_cast<size_t>(K) * K, 0.0);
  std::vector<double> m(K), p(K);
  for (int s = 0; s < panels; ++s) {
    for (size_t q = 0; q < rule.first.size(); ++q) {
      const double t = (s + 0.5 * (1.0 + rule.first[q])) / panels;
      const double w = 0.5 * rule.second[q] / panels;
      double top = -std::numeric_limits<double>::infinity();
      for (int k = 0; k < K; ++k) top = std::max(top, m[k] = a[k] + t * (b[k] - a[k]));
      double sum = 0;
      for (int k = 0; k < K; ++k) sum += (p[k] = std::exp(m[k] - top));
      for (int k = 0; k < K; ++k) p[k] /= sum;
      for (int k = 0; k < K; ++k)
        for (int c = 0; c < K; ++c) jac[k * K + c] += w * p[k] * ((k == c ? 1.0 : 0.0) - p[c]);
    }
  }
}

void TreeExplainer::Impl::path_row(const float* x, double* phi, std::vector<PathElement>& path) const {
  PathWalk walk{nodes.data(), leaf_values.data(), cover.data(), outputs, x, phi};
  for (const auto& t : trees)
    if (!t.tabled) walk.recurse(t.root, 0, path.data(), 1, 1, -1, 1);
}

void TreeExplainer::Impl::build_plans(bool interventional) {
  // Tables for trees whose paths have at most 12 distinct features, while the tables stay
  // under 256 MiB in all, and only where building them costs no more than the recursions on
  // 256 rows (path-dependent: 2^d d^2 per leaf against d^2 per row; interventional:
  // 2^d min(R, 2^d) d per leaf against R walks of the tree per row); other trees recurse.
  constexpr int kMaxDistinct = 12;
  constexpr int64_t kBudget = int64_t(256) << 20;
  int64_t bytes = 0;
  std::vector<std::pair<int32_t, uint8_t>> path;  // (interior node, want_yes) from the root
  for (auto& t : trees) {
    max_tree_nodes = std::max(max_tree_nodes, t.end - t.root);
    if (t.max_distinct > kMaxDistinct) continue;
    const size_t plans0 = plans.size(), steps0 = steps.size(), features0 = leaf_features.size();
    int64_t tree_bytes = 0;
    std::function<void(int32_t)> visit = [&](int32_t node) {
      const FlatNode& n = nodes[node];
      if (n.feature >= 0) {
        path.push_back({node, 1});
        visit(n.yes);
        path.back().second = 0;
        visit(n.no);
        path.pop_back();
        return;
      }
      LeafPlan plan;
      plan.leaf = node;
      plan.steps_begin = static_cast<int32_t>(steps.size());
      plan.features_begin = static_cast<int32_t>(leaf_features.size());
      for (const auto& [inner, want_yes] : path) {
        const int32_t f = nodes[inner].feature;
        int32_t j = 0;
        while (plan.features_begin + j < static_cast<int32_t>(leaf_features.size()) &&
               leaf_features[plan.features_begin + j] != f)
          ++j;
        if (plan.features_begin + j == static_cast<int32_t>(leaf_features.size())) leaf_features.push_back(f);
        steps.push_back({inner, want_yes, static_cast<uint8_t>(j)});
      }
      plan.steps_end = static_cast<int32_t>(steps.size());
      plan.d = static_cast<int32_t>(leaf_features.size()) - plan.features_begin;
      plan.table = -1;
      tree_bytes += (int64_t(1) << plan.d) * plan.d * int64_t(sizeof(double));
      plans.push_back(plan);
    };
    visit(t.root);
    double build = 0, per_row = 0;
    for (size_t q = plans0; q < plans.size(); ++q) {
      const double d = plans[q].d, cells = std::ldexp(1.0, plans[q].d);
      build += interventional ? cells * std::min<double>(static_cast<double>(refs), cells) * d : cells * d * d;
      per_row += interventional ? 0.0 : d * d;
    }
    if (interventional) per_row = static_cast<double>(refs) * (t.end - t.root);
    if (bytes + tree_bytes > kBudget || build > 256.0 * per_row) {  // keep the recursion for this tree
      plans.resize(plans0);
      steps.resize(steps0);
      leaf_features.resize(features0);
      continue;
    }
    bytes += tree_bytes;
    t.tabled = true;
    t.plans_begin = static_cast<int32_t>(plans0);
    t.plans_end = static_cast<int32_t>(plans.size());
    any_tabled = true;
  }
  int64_t offset = 0;
  for (auto& p : plans) {
    p.table = offset;
    offset += (int64_t(1) << p.d) * p.d;
  }
  tables.assign(static_cast<size_t>(offset), 0.0);
}

void TreeExplainer::Impl::build_path_tables() {
  const double* inv = reciprocals();
  std::vector<PathElement> buf;
  std::vector<double> zero;
  for (const auto& p : plans) {
    const int d = p.d;
    zero.assign(d, 1.0);
    for (int32_t s = p.steps_begin; s < p.steps_end; ++s) {
      const FlatNode& n = nodes[steps[s].node];
      const int32_t child = steps[s].want_yes ? n.yes : n.no;
      const double w = cover[steps[s].node];
      zero[steps[s].bit] *= w > 0 ? cover[child] / w : 0.0;
    }
    buf.assign(static_cast<size_t>(d) + 1, PathElement{});
    for (uint32_t mask = 0; mask < (1u << d); ++mask) {
      double* row = tables.data() + p.table + static_cast<int64_t>(mask) * d;
      bool dead = false;  // an element neither one nor zero: the recursion never reaches the leaf
      for (int j = 0; j < d; ++j) dead |= zero[j] == 0 && !(mask & (1u << j));
      if (dead) continue;
      extend_path(buf.data(), 0, 1, 1, -1);
      for (int j = 0; j < d; ++j) extend_path(buf.data(), j + 1, zero[j], (mask >> j) & 1u ? 1.0 : 0.0, j);
      for (int j = 0; j < d; ++j) {
        const PathElement& e = buf[j + 1];
        row[j] = unwound_sum(buf.data(), d, j + 1, inv) * (e.one - e.zero);
      }
    }
  }
}

void TreeExplainer::Impl::build_indep_tables() {
  const int64_t F = features;
  const float* R = background.f32();
  std::vector<double> count;
  std::vector<uint8_t> dir(static_cast<size_t>(std::max(1, max_tree_nodes)));
  const double inv_refs = 1.0 / static_cast<double>(refs);
  for (const auto& t : trees) {
    if (!t.tabled) continue;
    // each background row's masks for every leaf of the tree, counted per leaf
    std::vector<std::vector<double>> counts(t.plans_end - t.plans_begin);
    for (int32_t q = t.plans_begin; q < t.plans_end; ++q) counts[q - t.plans_begin].assign(size_t(1) << plans[q].d, 0.0);
    for (int64_t ri = 0; ri < refs; ++ri) {
      const float* r = R + ri * F;
      for (int32_t i = t.root; i < t.end; ++i)
        if (nodes[i].feature >= 0) dir[i - t.root] = goes_yes(nodes[i], r[nodes[i].feature]);
      for (int32_t q = t.plans_begin; q < t.plans_end; ++q) {
        const LeafPlan& p = plans[q];
        uint32_t mask = (1u << p.d) - 1;
        for (int32_t s = p.steps_begin; s < p.steps_end; ++s)
          if (dir[steps[s].node - t.root] != steps[s].want_yes) mask &= ~(1u << steps[s].bit);
        counts[q - t.plans_begin][mask] += 1;
      }
    }
    for (int32_t q = t.plans_begin; q < t.plans_end; ++q) {
      const LeafPlan& p = plans[q];
      const int d = p.d;
      const uint32_t full = (1u << d) - 1;
      const auto& cnt = counts[q - t.plans_begin];
      for (uint32_t X = 0; X <= full; ++X) {
        double* row = tables.data() + p.table + static_cast<int64_t>(X) * d;
        const uint32_t B = full & ~X;  // features only r can satisfy: every reaching r does
        const int nb = __builtin_popcount(B);
        for (uint32_t m = 0; m <= full; ++m) {
          if (cnt[m] == 0 || (m & B) != B) continue;
          const uint32_t A = X & ~m;
          const int na = __builtin_popcount(A), n = na + nb;
          if (n == 0) continue;
          const double wa = na > 0 ? cnt[m] * weight[n * stride + na - 1] * inv_refs : 0.0;
          const double wb = na < n ? -cnt[m] * weight[n * stride + na] * inv_refs : 0.0;
          for (int j = 0; j < d; ++j) {
            if (A & (1u << j)) row[j] += wa;
            else if (B & (1u << j)) row[j] += wb;
          }
        }
      }
    }
  }
}

void TreeExplainer::Impl::tabled_rows(const float* X, int64_t b0, int64_t b1, double* phi,
                                      std::vector<uint8_t>& dir) const {
  const int64_t F = features;
  const int K = outputs;
  for (const auto& t : trees) {
    if (!t.tabled) continue;
    for (int64_t i = b0; i < b1; ++i) {
      const float* x = X + i * F;
      double* out = phi + i * F * K;
      for (int32_t n = t.root; n < t.end; ++n)
        if (nodes[n].feature >= 0) dir[n - t.root] = goes_yes(nodes[n], x[nodes[n].feature]);
      for (int32_t q = t.plans_begin; q < t.plans_end; ++q) {
        const LeafPlan& p = plans[q];
        uint32_t mask = (1u << p.d) - 1;
        for (int32_t s = p.steps_begin; s < p.steps_end; ++s)
          if (dir[steps[s].node - t.root] != steps[s].want_yes) mask &= ~(1u << steps[s].bit);
        const double* row = tables.data() + p.table + static_cast<int64_t>(mask) * p.d;
        const double* v = leaf_values.data() + nodes[p.leaf].value;
        const int32_t* f = leaf_features.data() + p.features_begin;
        if (K == 1) {
          for (int j = 0; j < p.d; ++j) out[f[j]] += row[j] * v[0];
        } else {
          for (int j = 0; j < p.d; ++j)
            for (int k = 0; k < K; ++k) out[static_cast<int64_t>(f[j]) * K + k] += row[j] * v[k];
        }
      }
    }
  }
}

void TreeExplainer::Impl::interactions_row(const float* x, double* inter, std::vector<PathElement>& path,
                                           std::vector<double>& diag) const {
  // Lundberg et al. 2020, sec. 2.7: Phi_ij = (phi_i | j on - phi_i | j off) / 2 for i != j,
  // Phi_ii = phi_i - sum_{j != i} Phi_ij; per tree, j over the tree's split features.
  const int64_t F = features;
  const int K = outputs;
  std::fill(diag.begin(), diag.end(), 0.0);
  PathWalk walk{nodes.data(), leaf_values.data(), cover.data(), K, x, diag.data()};
  for (const auto& t : trees) {
    walk.condition = 0;
    walk.cond_feature = -1;
    walk.recurse(t.root, 0, path.data(), 1, 1, -1, 1);
    for (int32_t j : t.features) {
      walk.cond_feature = j;
      walk.recurse_pair(t.root, 0, path.data(), 1, 1, -1, 1, 1, inter + static_cast<int64_t>(j) * F * K, diag.data());
    }
  }
  for (int64_t a = 0; a < F; ++a)
    for (int k = 0; k < K; ++k) inter[(a * F + a) * K + k] = diag[a * K + k];
}

void TreeExplainer::Impl::indep_row(const float* x, double* phi, std::vector<double>& jac, std::vector<int8_t>& state,
                                    std::vector<double>& ref_phi, std::vector<double>& stack) const {
  const int64_t F = features;
  const int K = outputs;
  const bool rescale = opts.model_output == TreeModelOutput::Probability && link_kind != TreeEnsemble::Link::Identity;
  const std::vector<double> mx = rescale ? margins(x) : std::vector<double>();
  const float* R = background.f32();
  for (int64_t ri = 0; ri < refs; ++ri) {
    const float* r = R + ri * F;
    double* target = ref_phi.data();  // raw: the sum over background rows; rescaled: this row's
    if (rescale || ri == 0) std::fill(ref_phi.begin(), ref_phi.end(), 0.0);
    auto run = [&](auto walker) {
      walker.nodes = nodes.data();
      walker.leaf_values = leaf_values.data();
      walker.outputs = K;
      walker.x = x;
      walker.r = r;
      walker.state = state.data();
      walker.weight = weight.data();
      walker.stride = stride;
      walker.phi = target;
      for (const auto& t : trees)
        if (!t.tabled) walker.walk(t.root, 0, 0, stack.data(), stack.data() + K, stack.data() + 2 * K);
    };
    if (K == 1) run(IndepWalk<1>{});
    else run(IndepWalk<0>{});
    if (!rescale) continue;
    const double* mr = ref_margin.data() + ri * K;
    if (link_kind == TreeEnsemble::Link::Logistic) {
      // shap's dense_independent: phi *= (sigma(m_x) - sigma(m_r)) / (m_x - m_r), 1 when equal
      for (int k = 0; k < K; ++k) {
        const double s = mx[k] == mr[k] ? 1.0
                                         : (1.0 / (1.0 + std::exp(-mx[k])) - 1.0 / (1.0 + std::exp(-mr[k]))) /
                                               (mx[k] - mr[k]);
        for (int64_t j = 0; j < F; ++j) phi[j * K + k] += ref_phi[j * K + k] * s;
      }
    } else {  // softmax: phi_p = J phi_m with J the mean Jacobian on the segment m_r -> m_x
      softmax_mean_jacobian(mr, mx.data(), jac);
      for (int64_t j = 0; j < F; ++j)
        for (int k = 0; k < K; ++k) {
          double v = 0;
          for (int c = 0; c < K; ++c) v += jac[k * K + c] * ref_phi[j * K + c];
          phi[j * K + k] += v;
        }
    }
  }
  if (rescale) {
    const double inv = 1.0 / static_cast<double>(refs);
    for (int64_t l = 0; l < F * K; ++l) phi[l] *= inv;
  } else {
    const double inv = 1.0 / static_cast<double>(refs);
    for (int64_t l = 0; l < F * K; ++l) phi[l] += ref_phi[l] * inv;
  }
}

TreeExplainer::TreeExplainer(const TreeEnsemble& model, const Tensor& background, TreeShapOptions opts)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.link_kind = model.link;
  m.opts = std::move(opts);
  m.flatten(model);
  const int64_t F = m.features;
  const int K = m.outputs;
  if (background.empty() || background.rank() < 1 || background.shape()[0] < 1 ||
      background.numel() / background.shape()[0] != F || background.numel() % background.shape()[0] != 0)
    throw InputError("explain", fmt::format("tree-shap: the background must hold rows of {} features (the model's input), got {}",
                                            F, background.empty() ? std::string("no rows") : engine::shape_str(background.shape())));
  if (background.dtype() != engine::DType::Float32)
    throw InputError("explain", fmt::format("tree-shap: expected a float32 background, got {}", engine::dtype_name(background.dtype())));
  const int64_t R = background.shape()[0];
  const float* B = background.f32();
  if (m.opts.perturbation == FeaturePerturbation::TreePathDependent) {
    if (m.opts.model_output == TreeModelOutput::Probability && model.link != TreeEnsemble::Link::Identity)
      throw InputError("explain", "tree-shap: --shap-model-output probability needs --feature-perturbation interventional "
                                  "(as shap: tree_path_dependent explains the raw output only)");
    // covers: background rows reaching each node
    for (const auto& t : m.trees)
      for (int64_t i = 0; i < R; ++i) {
        const float* x = B + i * F;
        int32_t node = t.root;
        while (true) {
          m.cover[node] += 1;
          if (m.nodes[node].feature < 0) break;
          node = child_of(m.nodes[node], x[m.nodes[node].feature]);
        }
      }
    if (m.opts.leaf_tables) {
      m.build_plans(false);
      m.build_path_tables();
    }
    // E f = base + sum over trees and leaves of v * cover(leaf) / cover(root)
    m.expected = m.base;
    for (const auto& t : m.trees) {
      const double root = m.cover[t.root];
      for (int32_t i = t.root; i < t.end; ++i)
        if (m.nodes[i].feature < 0 && m.cover[i] > 0)
          for (int k = 0; k < K; ++k) m.expected[k] += m.leaf_values[m.nodes[i].value + k] * m.cover[i] / root;
    }
  } else {
    m.background = background.reshape({R, F});
    m.refs = R;
    m.ref_margin.resize(static_cast<size_t>(R) * K);
    m.expected.assign(K, 0.0);
    const bool prob = m.opts.model_output == TreeModelOutput::Probability;
    for (int64_t i = 0; i < R; ++i) {
      const auto mr = m.margins(B + i * F);
      std::copy(mr.begin(), mr.end(), m.ref_margin.begin() + i * K);
      const auto e = prob ? m.link(mr) : mr;
      for (int k = 0; k < K; ++k) m.expected[k] += e[k];
    }
    for (auto& e : m.expected) e /= static_cast<double>(R);
    // weight[n][m] = 1 / (n C(n-1, m)) for 1 <= n <= most distinct features on a path
    const int D = std::max(1, m.max_distinct);
    m.stride = D + 1;
    m.weight.assign(static_cast<size_t>(D + 1) * (D + 1), 0.0);
    for (int n = 1; n <= D; ++n) {
      double c = 1;  // C(n-1, mm)
      for (int mm = 0; mm < n; ++mm) {
        m.weight[n * m.stride + mm] = 1.0 / (n * c);
        c = c * (n - 1 - mm) / (mm + 1);
      }
    }
    if (m.opts.leaf_tables && (!prob || model.link == TreeEnsemble::Link::Identity)) {  // raw: no rescaling
      m.build_plans(true);
      m.build_indep_tables();
    }
  }
}

TreeExplainer::~TreeExplainer() = default;
const std::vector<double>& TreeExplainer::expected_value() const { return impl_->expected; }
int64_t TreeExplainer::outputs() const { return impl_->outputs; }
const TreeShapOptions& TreeExplainer::options() const { return impl_->opts; }

namespace {

void check_rows(const Tensor& x, int64_t features) {
  if (x.empty() || x.rank() != 2 || x.shape()[0] < 1 || x.shape()[1] != features)
    throw InputError("explain", fmt::format("tree-shap: expected rows [N, {}] (the model's features), got {}", features,
                                            x.empty() ? std::string("no rows") : engine::shape_str(x.shape())));
  if (x.dtype() != engine::DType::Float32)
    throw InputError("explain", fmt::format("tree-shap: expected float32 rows, got {}", engine::dtype_name(x.dtype())));
}

// Rows in blocks (for progress), each block's rows over the threads; every row is computed
// whole by one thread with its own scratch, so values do not depend on the thread count.
// Rows go in chunks of `chunk` rows (a chunk runs tree by tree, keeping a tree's tables in
// cache), chunks over the threads; per row the order of the sums is fixed by the chunking alone.
template <class MakeScratch, class Chunk>
void for_chunks(int64_t n, int64_t chunk, const TreeShapOptions& opts, MakeScratch make_scratch, Chunk run) {
  const int threads = std::max(1, opts.threads > 0 ? opts.threads : engine::num_threads());
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t block = opts.progress ? std::max<int64_t>(4 * threads, (chunks + 63) / 64) : chunks;
  for (int64_t b0 = 0; b0 < chunks; b0 += block) {
    const int64_t b1 = std::min(chunks, b0 + block);
#pragma omp parallel num_threads(threads)
    {
      auto scratch = make_scratch();
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = b0; c < b1; ++c) run(c * chunk, std::min(n, (c + 1) * chunk), scratch);
    }
    if (opts.progress) opts.progress(std::min(n, b1 * chunk), n);
  }
}

}  // namespace

TreeShapResult TreeExplainer::shap_values(const Tensor& x) const {
  const Impl& m = *impl_;
  check_rows(x, m.features);
  const int64_t N = x.shape()[0], F = m.features;
  const int K = m.outputs;
  TreeShapResult r;
  r.rows = N;
  r.features = F;
  r.outputs = K;
  r.values.assign(static_cast<size_t>(N * F * K), 0.0);
  r.expected_value = m.expected;
  r.output_x.assign(static_cast<size_t>(N * K), 0.0);
  const float* X = x.f32();
  const bool prob = m.opts.model_output == TreeModelOutput::Probability;
  r.probability = prob;
  struct Scratch {
    std::vector<PathElement> path;
    std::vector<double> jac, ref_phi, stack;
    std::vector<int8_t> state;
    std::vector<uint8_t> dir;
  };
  const int D = m.max_depth;
  const bool path_dependent = m.opts.perturbation == FeaturePerturbation::TreePathDependent;
  bool all_tabled = m.any_tabled;
  for (const auto& t : m.trees) all_tabled &= t.tabled;
  for_chunks(
      N, 32, m.opts,
      [&] {
        Scratch s;
        s.dir.assign(static_cast<size_t>(std::max(1, m.max_tree_nodes)), 0);
        if (m.opts.perturbation == FeaturePerturbation::TreePathDependent) {
          s.path.resize(static_cast<size_t>(D + 3) * (D + 4) / 2 + 8);
        } else {
          s.state.assign(F, 0);
          s.ref_phi.assign(F * K, 0.0);
          s.stack.assign(static_cast<size_t>(4 * (D + 2) + 2) * K, 0.0);
        }
        return s;
      },
      [&](int64_t c0, int64_t c1, Scratch& s) {
        if (m.any_tabled) m.tabled_rows(X, c0, c1, r.values.data(), s.dir);
        for (int64_t i = c0; i < c1; ++i) {
          const float* xi = X + i * F;
          double* phi = r.values.data() + i * F * K;
          if (!all_tabled) {
            if (path_dependent) m.path_row(xi, phi, s.path);
            else m.indep_row(xi, phi, s.jac, s.state, s.ref_phi, s.stack);
          }
          std::vector<double> fx = m.margins(xi);
          if (prob) fx = m.link(fx);
          std::copy(fx.begin(), fx.end(), r.output_x.begin() + i * K);
        }
      });
  for (int64_t i = 0; i < N; ++i)
    for (int k = 0; k < K; ++k) {
      double sum = m.expected[k];
      for (int64_t j = 0; j < F; ++j) sum += r.values[(i * F + j) * K + k];
      const double fx = r.output_x[i * K + k];
      r.max_local_accuracy_gap = std::max(r.max_local_accuracy_gap, std::fabs(sum - fx) / std::max(1.0, std::fabs(fx)));
    }
  return r;
}

TreeShapInteractions TreeExplainer::shap_interaction_values(const Tensor& x) const {
  const Impl& m = *impl_;
  if (m.opts.perturbation != FeaturePerturbation::TreePathDependent)
    throw InputError("explain", "tree-shap: interaction values need --feature-perturbation tree-path-dependent "
                                "(as shap: interventional supports no interactions)");
  check_rows(x, m.features);
  const int64_t N = x.shape()[0], F = m.features;
  const int K = m.outputs;
  TreeShapInteractions r;
  r.rows = N;
  r.features = F;
  r.outputs = K;
  r.values.assign(static_cast<size_t>(N * F * F * K), 0.0);
  r.expected_value = m.expected;
  r.output_x.assign(static_cast<size_t>(N * K), 0.0);
  const float* X = x.f32();
  struct Scratch {
    std::vector<PathElement> path;
    std::vector<double> diag;
  };
  const int D = m.max_depth;
  for_chunks(
      N, 1, m.opts,
      [&] {
        Scratch s;
        s.path.resize(static_cast<size_t>(D + 3) * (D + 4) / 2 + 8);
        s.diag.assign(F * K, 0.0);
        return s;
      },
      [&](int64_t i, int64_t, Scratch& s) {
        m.interactions_row(X + i * F, r.values.data() + i * F * F * K, s.path, s.diag);
        const auto mx = m.margins(X + i * F);
        std::copy(mx.begin(), mx.end(), r.output_x.begin() + i * K);
      });
  for (int64_t i = 0; i < N; ++i)
    for (int k = 0; k < K; ++k) {
      double sum = m.expected[k];
      for (int64_t l = 0; l < F * F; ++l) sum += r.values[(i * F * F + l) * K + k];
      const double fx = r.output_x[i * K + k];
      r.max_local_accuracy_gap = std::max(r.max_local_accuracy_gap, std::fabs(sum - fx) / std::max(1.0, std::fabs(fx)));
    }
  return r;
}

std::vector<double> tree_shap_column(const TreeEnsemble& model, const TreeShapResult& r, int64_t row, int64_t target,
                                     double* base, double* output_x) {
  if (row < 0 || row >= r.rows) throw InputError("explain", fmt::format("tree-shap: row {} of {}", row, r.rows));
  const bool binary = model.head == TreeEnsemble::Head::BinaryMargin && r.outputs == 1;
  const int64_t classes = binary ? 2 : r.outputs;
  if (target < 0 || target >= classes)
    throw InputError("explain", fmt::format("tree-shap: target {} is out of range (the model explains {} outputs)", target, classes));
  std::vector<double> out(r.features);
  const int64_t k = binary ? 0 : target;
  const double sign = binary && target == 0 ? -1.0 : 1.0;
  for (int64_t j = 0; j < r.features; ++j) out[j] = sign * r.at(row, j, k);
  // class 0 of a binary margin model: margin -m, or probability 1 - p (explained probabilities,
  // or an Identity link, whose raw column already is p: the audited output is [1 - p, p])
  const bool units_of_p = r.probability || model.link == TreeEnsemble::Link::Identity;
  const double offset = binary && target == 0 && units_of_p ? 1.0 : 0.0;
  if (base) *base = offset + sign * r.expected_value[k];
  if (output_x) *output_x = offset + sign * r.output_x[row * r.outputs + k];
  return out;
}

}  // namespace mlaudit::explain
