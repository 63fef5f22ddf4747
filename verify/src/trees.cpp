// Exact verification of tree ensembles: the float32 box arithmetic, the multi-level clique bound
// (Chen et al., NeurIPS 2019), branch and bound over threshold cells, and the four queries built
// on them (robustness, minimal distance, VNN-LIB, fairness). Soundness argument in trees.h and
// docs/dev/verify.md, "Tree ensembles".
#include "mlaudit/verify/trees.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <limits>

#include "mlaudit/engine/error.h"

namespace mlaudit::verify {

using engine::TreeEnsemble;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

float up(float v) { return std::nextafter(v, kInfF); }
float down(float v) { return std::nextafter(v, -kInfF); }

// Knuth's TwoSum: s + err == a + b exactly (round to nearest, no overflow).
void two_sum(double a, double b, double& s, double& err) {
  s = a + b;
  const double bp = s - a, ap = s - bp;
  err = (a - ap) + (b - bp);
}

// Exactly: a - b <= e (a, b, e finite doubles). s = fl(a - b) with |err| <= ulp(s)/2: s < e
// implies a - b <= s + ulp(s)/2 < next(s) <= e, the same for s > e; s == e leaves err's sign.
bool diff_le(double a, double b, double e) {
  double s, err;
  two_sum(a, -b, s, err);
  if (s != e) return s < e;
  return err <= 0;
}

// Smallest float32 >= v (v a double; -inf stays -inf).
float ceil_f32(double v) {
  if (std::isinf(v) || std::isnan(v)) return float(v);
  if (v > double(FLT_MAX)) return kInfF;
  if (v < -double(FLT_MAX)) return -FLT_MAX;
  float f = float(v);
  if (double(f) < v) f = up(f);
  return f;
}
// Largest float32 <= v.
float floor_f32(double v) { return -ceil_f32(-v); }

// The value of a tree node's test at float32 v: true = `yes`.
bool goes_yes(const TreeEnsemble::Node& n, float v) { return n.leq ? v <= n.threshold : v < n.threshold; }

// A tree of the search: an ensemble tree, the copy of the raw scores it adds to (fairness uses
// two copies), and a feature fixed to a value (the protected feature of that copy).
struct VTree {
  int32_t root = 0;
  int copy = 0;
  int32_t fixed_feature = -1;
  float fixed_value = 0;
};

// A linear function of the (copied) raw scores: g = constant + coef . raw. The query is unsafe
// where, for some conjunction, every g >= 0 (up to float32: within `slack`; cells decide exactly).
struct Objective {
  std::vector<double> coef;  // copies * outputs
  double constant = 0;
  double slack = 0;
  /// Magnitude of constants the model's output adds in float32 before the comparison (the 1 of
  /// Y_0 = 1 - m): they round as the leaves do, whatever the constant's net value.
  double output_constants = 0;
};

struct Problem {
  const TreeEnsemble* model = nullptr;
  int copies = 1;
  std::vector<VTree> trees;
  std::vector<Objective> objectives;
  std::vector<std::vector<int>> conjunctions;  // indices into objectives
  // Decides one cell (every tree at one leaf) at a float32 point of it: true = unsafe.
  std::function<bool(const std::vector<float>&)> cell_unsafe;
  std::vector<float> anchor;  // representative points are the box points nearest to it
  // Filled per objective and copy: contribution of each leaf node.
  std::vector<std::vector<std::vector<double>>> contrib;  // [objective][copy][node]
};

void prepare(Problem& p) {
  const TreeEnsemble& m = *p.model;
  const int64_t O = m.outputs;
  p.contrib.assign(p.objectives.size(), std::vector<std::vector<double>>(size_t(p.copies)));
  for (size_t k = 0; k < p.objectives.size(); ++k)
    for (int c = 0; c < p.copies; ++c) {
      auto& v = p.contrib[k][size_t(c)];
      v.assign(m.nodes.size(), 0.0);
      for (size_t n = 0; n < m.nodes.size(); ++n) {
        if (!m.nodes[n].leaf()) continue;
        double s = 0;
        for (int64_t o = 0; o < O; ++o)
          s += p.objectives[k].coef[size_t(c * O + o)] * double(m.values[size_t(m.nodes[n].value + o)]);
        v[n] = s;
      }
    }
}

// Float32 error the engine may make on an objective: it may sum the T float leaf values and the
// base in float32 in any order (|error| <= gamma_T sum |terms|, Higham Thm 4.3 with u = 2^-24),
// round the output to float32, and map it through a logistic / softmax whose float32 ties lie
// within ~1e-6 of the raw decision boundary; 1e-5 covers the last two with a margin.
void set_slack(Problem& p) {
  const TreeEnsemble& m = *p.model;
  const int64_t O = m.outputs;
  const double T = double(m.tree_count() + 1), u = std::ldexp(1.0, -24);
  const double gamma = T * u / (1 - T * u);
  std::vector<double> S(size_t(O), 0.0);  // |base_o| + sum_t max |leaf_o|
  for (int64_t o = 0; o < O; ++o) S[size_t(o)] = std::fabs(m.base.empty() ? 0.0 : m.base[size_t(o)]);
  for (int64_t t = 0; t < m.tree_count(); ++t) {
    std::vector<double> mx(size_t(O), 0.0);
    std::vector<int32_t> st{m.roots[size_t(t)]};
    while (!st.empty()) {
      int32_t i = st.back();
      st.pop_back();
      const auto& n = m.nodes[size_t(i)];
      if (n.leaf()) {
        for (int64_t o = 0; o < O; ++o) mx[size_t(o)] = std::max(mx[size_t(o)], std::fabs(double(m.values[size_t(n.value + o)])));
      } else {
        st.push_back(n.yes);
        st.push_back(n.no);
      }
    }
    for (int64_t o = 0; o < O; ++o) S[size_t(o)] += mx[size_t(o)];
  }
  for (auto& ob : p.objectives) {
    double s = 0;
    for (size_t j = 0; j < ob.coef.size(); ++j) {
      const double So = S[j % size_t(O)];
      s += std::fabs(ob.coef[j]) * (1e-5 * std::max(1.0, So) + (gamma + 2 * u) * So);
    }
    // The output's constants are computed in float32 too (Y_0 = 1 - m of a one-column
    // classifier: Y_0 + Y_1 can be 0.99999997): the same 1e-5 relative allowance as the leaves.
    // A wider slack only sends more cells to the engine's forward; it never decides anything.
    // (Found by the tree campaign, tests/fixtures/tree_campaign/repro/rounded_one_minus_m.)
    ob.slack = s + 1e-12 * std::fabs(ob.constant) + 1e-5 * ob.output_constants;
  }
}

// Leaves of tree `vt` some point of `box` reaches.
void reachable(const TreeEnsemble& m, const VTree& vt, const TreeBox& box, std::vector<int32_t>& out) {
  out.clear();
  int32_t st[512];
  int sp = 0;
  st[sp++] = vt.root;
  std::vector<int32_t> spill;
  while (sp > 0 || !spill.empty()) {
    int32_t i;
    if (!spill.empty()) {
      i = spill.back();
      spill.pop_back();
    } else {
      i = st[--sp];
    }
    const auto& n = m.nodes[size_t(i)];
    if (n.leaf()) {
      out.push_back(i);
      continue;
    }
    bool yes, no;
    if (n.feature == vt.fixed_feature) {
      yes = goes_yes(n, vt.fixed_value);
      no = !yes;
    } else {
      const float lo = box.lower[size_t(n.feature)], hi = box.upper[size_t(n.feature)];
      yes = n.leq ? lo <= n.threshold : lo < n.threshold;
      no = n.leq ? hi > n.threshold : hi >= n.threshold;
    }
    for (int32_t c : {yes ? n.yes : -1, no ? n.no : -1}) {
      if (c < 0) continue;
      if (sp < 512) st[sp++] = c;
      else spill.push_back(c);
    }
  }
}

// Elapsed time of a query against its budget (<= 0 or infinite: none).
class QueryClock {
 public:
  explicit QueryClock(double s) : t0_(std::chrono::steady_clock::now()), s_(s) {}
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  bool expired() const { return s_ > 0 && std::isfinite(s_) && elapsed() > s_; }

 private:
  std::chrono::steady_clock::time_point t0_;
  double s_;
};

std::vector<float> nearest_point(const TreeBox& box, const std::vector<float>& anchor) {
  std::vector<float> x(box.lower.size());
  for (size_t i = 0; i < x.size(); ++i) {
    float a = i < anchor.size() ? anchor[i] : 0.0f;
    x[i] = std::min(std::max(a, box.lower[i]), box.upper[i]);
  }
  return x;
}

bool intersect(const TreeBox& a, const TreeBox& b, TreeBox& out) {
  out.lower.resize(a.lower.size());
  out.upper.resize(a.lower.size());
  for (size_t i = 0; i < a.lower.size(); ++i) {
    out.lower[i] = std::max(a.lower[i], b.lower[i]);
    out.upper[i] = std::min(a.upper[i], b.upper[i]);
    if (out.lower[i] > out.upper[i]) return false;
  }
  return true;
}

enum class Outcome { Safe, Unsafe, Timeout };

struct SearchResult {
  Outcome outcome = Outcome::Safe;
  std::vector<float> point;
  int64_t nodes = 0;
  int clique_levels = 0;
  bool by_clique = false;
};

// ---- Chen et al. 2019, Section 3.2: the multi-level clique bound on one objective. ----------
// Level 0: one group per tree, its cliques = the reachable leaves with their boxes (path
// constraints intersected with the query box) and contributions. A level merges groups two by
// two: the cliques of the merged group are the pairs whose boxes intersect (one leaf per tree, a
// region reaching exactly those leaves), value = sum. max over the points of the box of g is at
// most constant + sum over groups of the best clique (every point lies in one clique per group).
// Cliques that cannot reach -slack even with every other group at its best are dropped (no
// unsafe point lies in them). When one group is left its cliques are the cells: exact.
struct Clique {
  TreeBox box;
  double value = 0;
};

void leaf_boxes(const TreeEnsemble& m, const VTree& vt, const TreeBox& box, const std::vector<double>& contrib,
                std::vector<Clique>& out) {
  struct Item {
    int32_t node;
    TreeBox box;
  };
  std::vector<Item> st{{vt.root, box}};
  while (!st.empty()) {
    Item it = std::move(st.back());
    st.pop_back();
    const auto& n = m.nodes[size_t(it.node)];
    if (n.leaf()) {
      out.push_back({std::move(it.box), contrib[size_t(it.node)]});
      continue;
    }
    if (n.feature == vt.fixed_feature) {
      st.push_back({goes_yes(n, vt.fixed_value) ? n.yes : n.no, std::move(it.box)});
      continue;
    }
    const size_t f = size_t(n.feature);
    const float yes_hi = n.leq ? n.threshold : down(n.threshold), no_lo = n.leq ? up(n.threshold) : n.threshold;
    if (it.box.lower[f] <= yes_hi) {
      Item y{n.yes, it.box};
      y.box.upper[f] = std::min(y.box.upper[f], yes_hi);
      st.push_back(std::move(y));
    }
    if (it.box.upper[f] >= no_lo) {
      Item o{n.no, std::move(it.box)};
      o.box.lower[f] = std::max(o.box.lower[f], no_lo);
      st.push_back(std::move(o));
    }
  }
}

struct CliqueBound {
  double bound = kInf;
  bool exact = false;            // one group left: `cells` are all the cells that may be unsafe
  std::vector<Clique> cells;
  int levels = 0;
};

CliqueBound clique_bound(const Problem& p, size_t k, const TreeBox& box, int64_t limit, const QueryClock& dl) {
  const TreeEnsemble& m = *p.model;
  const Objective& ob = p.objectives[k];
  std::vector<std::vector<Clique>> groups;
  for (const auto& vt : p.trees) {
    std::vector<Clique> g;
    leaf_boxes(m, vt, box, p.contrib[k][size_t(vt.copy)], g);
    groups.push_back(std::move(g));
  }
  CliqueBound r;
  auto best = [](const std::vector<Clique>& g) {
    double b = -kInf;
    for (const auto& c : g) b = std::max(b, c.value);
    return b;
  };
  auto total = [&]() {
    double s = ob.constant;
    for (const auto& g : groups) s += best(g);
    return s;
  };
  // Drop cliques that cannot reach the unsafe side whatever the other groups do.
  auto prune = [&]() {
    const double sum = total();
    for (auto& g : groups) {
      const double others = sum - best(g);
      g.erase(std::remove_if(g.begin(), g.end(), [&](const Clique& c) { return c.value + others < -ob.slack; }), g.end());
    }
  };
  while (true) {
    if (groups.empty()) break;
    for (const auto& g : groups)
      if (g.empty()) {
        r.bound = -kInf;  // no unsafe point
        r.exact = true;
        return r;
      }
    r.bound = total();
    if (r.bound < -ob.slack) return r;
    if (groups.size() == 1) {
      r.exact = true;
      r.cells = std::move(groups[0]);
      return r;
    }
    if (dl.expired()) return r;
    prune();
    std::vector<std::vector<Clique>> next;
    bool merged = false;
    for (size_t i = 0; i < groups.size(); i += 2) {
      if (i + 1 == groups.size()) {
        next.push_back(std::move(groups[i]));
        continue;
      }
      auto& A = groups[i];
      auto& B = groups[i + 1];
      bool ok = double(A.size()) * double(B.size()) <= double(limit) * 64.0;
      std::vector<Clique> AB;
      if (ok) {
        TreeBox inter;
        for (const auto& a : A) {
          for (const auto& b : B)
            if (intersect(a.box, b.box, inter)) {
              AB.push_back({inter, a.value + b.value});
              if (int64_t(AB.size()) > limit) break;
            }
          if (int64_t(AB.size()) > limit) break;
        }
        ok = int64_t(AB.size()) <= limit;
      }
      if (ok) {
        next.push_back(std::move(AB));
        merged = true;
      } else {
        next.push_back(std::move(A));
        next.push_back(std::move(B));
      }
    }
    groups = std::move(next);
    if (!merged) {
      r.bound = total();
      return r;
    }
    ++r.levels;
  }
  r.bound = ob.constant;
  r.exact = true;
  return r;
}

// ---- Branch and bound over threshold cells. -----------------------------------------------
struct BoxEval {
  TreeBox box;
  std::vector<std::vector<int32_t>> reach;
  std::vector<double> upper;  // per objective: constant + sum_t max over reachable leaves
  std::vector<int> alive;     // conjunctions whose objectives all reach -slack
  double score = -kInf;       // max over alive conjunctions of min over their objectives' upper/slack
  bool cell = true;
};

void evaluate(const Problem& p, const std::vector<char>& conj_live, BoxEval& e) {
  const TreeEnsemble& m = *p.model;
  e.reach.resize(p.trees.size());
  e.cell = true;
  for (size_t t = 0; t < p.trees.size(); ++t) {
    reachable(m, p.trees[t], e.box, e.reach[t]);
    if (e.reach[t].size() != 1) e.cell = false;
  }
  e.upper.assign(p.objectives.size(), 0.0);
  for (size_t k = 0; k < p.objectives.size(); ++k) {
    double s = p.objectives[k].constant;
    for (size_t t = 0; t < p.trees.size(); ++t) {
      const auto& c = p.contrib[k][size_t(p.trees[t].copy)];
      double mx = -kInf;
      for (int32_t l : e.reach[t]) mx = std::max(mx, c[size_t(l)]);
      s += mx;
    }
    e.upper[k] = s;
  }
  e.alive.clear();
  e.score = -kInf;
  for (size_t j = 0; j < p.conjunctions.size(); ++j) {
    if (!conj_live[j]) continue;
    double worst = kInf;
    for (int k : p.conjunctions[j]) worst = std::min(worst, e.upper[size_t(k)] + p.objectives[size_t(k)].slack);
    if (worst >= 0) {
      e.alive.push_back(int(j));
      e.score = std::max(e.score, worst);
    }
  }
}

SearchResult search(const Problem& p, const TreeBox& root, const TreeVerifyOptions& opts, const QueryClock& dl) {
  const TreeEnsemble& m = *p.model;
  SearchResult r;
  if (root.empty()) return r;
  std::vector<char> live(p.conjunctions.size(), 1);
  // 1. The clique bound per objective: a conjunction with an objective that cannot reach its
  // slack is dead; one that is exact on a single-objective conjunction is decided by its cells.
  if (opts.clique_bound) {
    bool all_dead = true;
    std::vector<CliqueBound> cb(p.objectives.size());
    std::vector<char> done(p.objectives.size(), 0);
    for (size_t j = 0; j < p.conjunctions.size(); ++j) {
      for (int k : p.conjunctions[j]) {
        if (!done[size_t(k)]) {
          cb[size_t(k)] = clique_bound(p, size_t(k), root, opts.clique_limit, dl);
          done[size_t(k)] = 1;
          r.clique_levels = std::max(r.clique_levels, cb[size_t(k)].levels);
        }
        if (cb[size_t(k)].bound < -p.objectives[size_t(k)].slack) live[j] = 0;
      }
      if (live[j] && p.conjunctions[j].size() == 1 && cb[size_t(p.conjunctions[j][0])].exact) {
        // Every cell of the box within the slack is decided by the forward.
        auto& cells = cb[size_t(p.conjunctions[j][0])].cells;
        std::sort(cells.begin(), cells.end(), [](const Clique& a, const Clique& b) { return a.value > b.value; });
        for (const auto& c : cells) {
          if (c.value + p.objectives[size_t(p.conjunctions[j][0])].constant < -p.objectives[size_t(p.conjunctions[j][0])].slack)
            break;
          auto x = nearest_point(c.box, p.anchor);
          if (p.cell_unsafe(x)) {
            r.outcome = Outcome::Unsafe;
            r.point = x;
            r.by_clique = true;
            return r;
          }
          if (dl.expired()) {
            r.outcome = Outcome::Timeout;
            return r;
          }
        }
        live[j] = 0;
      }
      if (live[j]) all_dead = false;
    }
    if (all_dead) {
      r.by_clique = true;
      return r;
    }
  }
  // 2. Depth-first branch and bound, the more promising child first.
  std::vector<BoxEval> stack(1);
  stack[0].box = root;
  evaluate(p, live, stack[0]);
  if (stack[0].alive.empty()) return r;
  while (!stack.empty()) {
    BoxEval e = std::move(stack.back());
    stack.pop_back();
    ++r.nodes;
    if ((r.nodes & 63) == 0 && (dl.expired() || (opts.max_nodes > 0 && r.nodes > opts.max_nodes))) {
      r.outcome = Outcome::Timeout;
      return r;
    }
    if (e.cell) {
      auto x = nearest_point(e.box, p.anchor);
      if (p.cell_unsafe(x)) {
        r.outcome = Outcome::Unsafe;
        r.point = std::move(x);
        return r;
      }
      continue;
    }
    // Split the tree whose reachable leaves spread most on the alive objectives, at its topmost
    // undecided node (both children reachable): the two halves each reach fewer of its leaves.
    size_t best_t = 0;
    double best_spread = -1;
    for (size_t t = 0; t < p.trees.size(); ++t) {
      if (e.reach[t].size() < 2) continue;
      double spread = 0;
      for (int j : e.alive)
        for (int k : p.conjunctions[size_t(j)]) {
          const auto& c = p.contrib[size_t(k)][size_t(p.trees[t].copy)];
          double lo = kInf, hi = -kInf;
          for (int32_t l : e.reach[t]) lo = std::min(lo, c[size_t(l)]), hi = std::max(hi, c[size_t(l)]);
          spread += hi - lo;
        }
      spread += 1e-300 * double(e.reach[t].size());
      if (spread > best_spread) best_spread = spread, best_t = t;
    }
    const VTree& vt = p.trees[best_t];
    int32_t i = vt.root;
    while (true) {
      const auto& n = m.nodes[size_t(i)];
      if (n.feature == vt.fixed_feature) {
        i = goes_yes(n, vt.fixed_value) ? n.yes : n.no;
        continue;
      }
      const float lo = e.box.lower[size_t(n.feature)], hi = e.box.upper[size_t(n.feature)];
      const bool yes = n.leq ? lo <= n.threshold : lo < n.threshold;
      const bool no = n.leq ? hi > n.threshold : hi >= n.threshold;
      if (yes && no) break;
      i = yes ? n.yes : n.no;
    }
    const auto& n = m.nodes[size_t(i)];
    const size_t f = size_t(n.feature);
    BoxEval a, b;
    a.box = e.box;
    b.box = std::move(e.box);
    a.box.upper[f] = n.leq ? n.threshold : down(n.threshold);
    b.box.lower[f] = n.leq ? up(n.threshold) : n.threshold;
    evaluate(p, live, a);
    evaluate(p, live, b);
    if (a.score > b.score) std::swap(a, b);
    if (!a.alive.empty()) stack.push_back(std::move(a));
    if (!b.alive.empty()) stack.push_back(std::move(b));
  }
  return r;
}

std::vector<double> model_output(const TreeEnsemble& m, const TreeVerifyOptions& opts, const std::vector<float>& x) {
  if (opts.concrete) {
    auto y = opts.concrete(x);
    return std::vector<double>(y.begin(), y.end());
  }
  return m.output(m.raw(x.data()));
}

void check_box(const TreeEnsemble& m, const TreeBox& box) {
  if (int64_t(box.lower.size()) != m.features || int64_t(box.upper.size()) != m.features)
    throw InputError("verify", fmt::format("box: {} feature ranges for a tree model with {} features", box.lower.size(),
                                           m.features));
  for (size_t i = 0; i < box.lower.size(); ++i)
    if (std::isnan(box.lower[i]) || std::isnan(box.upper[i]))
      throw InputError("verify", fmt::format("box: feature {} has a NaN end", i));
}

// Objective coefficients over `copies` copies of the raw columns.
Objective objective(const TreeEnsemble& m, int copies) {
  Objective o;
  o.coef.assign(size_t(copies * m.outputs), 0.0);
  return o;
}
double base_of(const TreeEnsemble& m, int64_t o) { return m.base.empty() ? 0.0 : m.base[size_t(o)]; }
// constant += coef . base over every copy.
void add_base(const TreeEnsemble& m, Objective& ob, int copies) {
  for (int c = 0; c < copies; ++c)
    for (int64_t o = 0; o < m.outputs; ++o) ob.constant += ob.coef[size_t(c * m.outputs + o)] * base_of(m, o);
}

// Objectives "decision != label" of copy `copy`: one conjunction per other class.
void decision_change(const TreeEnsemble& m, Problem& p, int copy, int64_t label) {
  const int64_t O = m.outputs;
  if (m.head == TreeEnsemble::Head::BinaryMargin) {
    Objective ob = objective(m, p.copies);
    // label 1 changes where m <= threshold (g = thr - m >= 0); label 0 where m > threshold.
    ob.coef[size_t(copy * O)] = label == 1 ? -1.0 : 1.0;
    add_base(m, ob, p.copies);
    ob.constant += label == 1 ? m.margin_threshold : -m.margin_threshold;
    p.objectives.push_back(ob);
    p.conjunctions.push_back({int(p.objectives.size() - 1)});
    return;
  }
  for (int64_t j = 0; j < O; ++j) {
    if (j == label) continue;
    Objective ob = objective(m, p.copies);
    ob.coef[size_t(copy * O + j)] = 1;  // g = raw_j - raw_label
    ob.coef[size_t(copy * O + label)] = -1;
    add_base(m, ob, p.copies);
    p.objectives.push_back(ob);
    p.conjunctions.push_back({int(p.objectives.size() - 1)});
  }
}

void check_label(const TreeEnsemble& m, int64_t label) {
  if (m.head == TreeEnsemble::Head::Regression)
    throw InputError("verify", fmt::format("{} ({}) is a regressor: it has no decision to keep; state an output "
                                           "property with --vnnlib instead",
                                           m.node_name, m.op_type));
  if (label < 0 || label >= m.classes)
    throw InputError("verify", fmt::format("label {} is not a class of the model (0..{})", label, m.classes - 1));
}

Verdict verdict_of(Outcome o) {
  switch (o) {
    case Outcome::Safe: return Verdict::Unsat;
    case Outcome::Unsafe: return Verdict::Sat;
    default: return Verdict::Timeout;
  }
}

std::vector<VTree> plain_trees(const TreeEnsemble& m) {
  std::vector<VTree> v;
  for (int32_t r : m.roots) v.push_back({r, 0, -1, 0});
  return v;
}

}  // namespace

bool TreeBox::empty() const {
  for (size_t i = 0; i < lower.size(); ++i)
    if (!(lower[i] <= upper[i])) return true;
  return false;
}

double diff_up(double a, double b) {
  double s, err;
  two_sum(a, -b, s, err);
  return err > 0 ? std::nextafter(s, kInf) : s;
}

TreeBox linf_box(const float* x, int64_t n, double eps, double clip_min, double clip_max) {
  if (!(eps >= 0)) throw InputError("verify", fmt::format("eps {} is not a radius >= 0", eps));
  TreeBox b;
  b.lower.resize(size_t(n));
  b.upper.resize(size_t(n));
  const float cmin = ceil_f32(clip_min), cmax = floor_f32(clip_max);
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[i];
    float lo, hi;
    if (std::isinf(eps)) {
      lo = -kInfF, hi = kInfF;
    } else {
      // Smallest float32 v with v >= x - eps, i.e. x - v <= eps exactly (diff_le).
      lo = ceil_f32(xi - eps);
      while (!diff_le(xi, lo, eps)) lo = up(lo);
      while (lo > -FLT_MAX && diff_le(xi, down(lo), eps)) lo = down(lo);
      hi = floor_f32(xi + eps);
      while (!diff_le(hi, xi, eps)) hi = down(hi);
      while (hi < FLT_MAX && diff_le(up(hi), xi, eps)) hi = up(hi);
    }
    b.lower[size_t(i)] = std::max(lo, cmin);
    b.upper[size_t(i)] = std::min(hi, cmax);
  }
  return b;
}

int64_t tree_decision(const TreeEnsemble& m, const std::vector<double>& y) {
  if (m.head == TreeEnsemble::Head::Regression || y.empty()) return -1;
  return int64_t(std::max_element(y.begin(), y.end()) - y.begin());
}

TreeVerifyResult verify_tree_robustness(const TreeEnsemble& m, int64_t label, const TreeBox& box, const float* anchor,
                                        const TreeVerifyOptions& opts) {
  check_label(m, label);
  check_box(m, box);
  QueryClock dl(opts.timeout_s);
  Problem p;
  p.model = &m;
  p.trees = plain_trees(m);
  decision_change(m, p, 0, label);
  set_slack(p);
  prepare(p);
  if (anchor) p.anchor.assign(anchor, anchor + m.features);
  TreeVerifyResult r;
  p.cell_unsafe = [&](const std::vector<float>& x) {
    auto y = model_output(m, opts, x);
    const int64_t d = tree_decision(m, y);
    if (d == label) return false;
    r.counterexample_output = y;
    r.counterexample_label = d;
    return true;
  };
  SearchResult s = search(p, box, opts, dl);
  r.verdict = verdict_of(s.outcome);
  r.nodes = s.nodes;
  r.clique_levels = s.clique_levels;
  r.method = s.by_clique ? "clique-bound" : "tree-bab";
  if (s.outcome == Outcome::Unsafe) r.counterexample = s.point;
  if (s.outcome == Outcome::Timeout) r.reason = fmt::format("timeout after {} boxes", s.nodes);
  r.seconds = dl.elapsed();
  return r;
}

TreeMinimalResult minimal_adversarial_linf(const TreeEnsemble& m, const float* x, const TreeMinimalOptions& opts) {
  QueryClock dl(opts.verify.timeout_s);
  TreeMinimalResult r;
  for (int64_t f = 0; f < m.features; ++f)
    if (!std::isfinite(x[f])) throw InputError("verify", fmt::format("x[{}] = {} is not finite", f, x[f]));
  std::vector<float> xv(x, x + m.features);
  TreeVerifyOptions vo = opts.verify;
  r.label = opts.label;
  if (r.label < 0) r.label = tree_decision(m, model_output(m, vo, xv));
  check_label(m, r.label);
  const TreeBox domain = linf_box(x, m.features, kInf, opts.clip_min, opts.clip_max);
  for (int64_t f = 0; f < m.features; ++f)
    if (x[f] < domain.lower[size_t(f)] || x[f] > domain.upper[size_t(f)])
      throw InputError("verify", fmt::format("x[{}] = {} lies outside the input domain [{}, {}]", f, x[f], opts.clip_min,
                                             opts.clip_max));
  // Cuts per feature: a cut `a` separates the float32 values <= a from those >= next(a)
  // (x <= t: a = t; x < t: a = prev(t)). A cell is an interval between consecutive cuts.
  std::vector<std::vector<float>> cuts(size_t(m.features));
  for (const auto& n : m.nodes)
    if (!n.leaf()) cuts[size_t(n.feature)].push_back(n.leq ? n.threshold : down(n.threshold));
  std::vector<double> cand;
  for (int64_t f = 0; f < m.features; ++f) {
    auto& c = cuts[size_t(f)];
    std::sort(c.begin(), c.end());
    c.erase(std::unique(c.begin(), c.end()), c.end());
    for (float a : c) {
      // The value x_f must reach to cross cut a, and the radius that reaches it.
      const float v = x[f] <= a ? up(a) : a;
      if (v < domain.lower[size_t(f)] || v > domain.upper[size_t(f)] || std::isinf(v)) continue;
      cand.push_back(v > x[f] ? diff_up(v, x[f]) : diff_up(x[f], v));
    }
  }
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  r.candidates = int64_t(cand.size());
  // Project a counterexample onto the point of its cell nearest x (same leaves, same output).
  auto project = [&](std::vector<float> z) {
    for (int64_t f = 0; f < m.features; ++f) {
      const auto& c = cuts[size_t(f)];
      auto it = std::lower_bound(c.begin(), c.end(), z[size_t(f)]);  // first cut >= z
      const float hi = it == c.end() ? kInfF : *it;
      const float lo = it == c.begin() ? -kInfF : up(*(it - 1));
      z[size_t(f)] = std::min(std::max(x[f], lo), hi);
    }
    return z;
  };
  auto dist = [&](const std::vector<float>& z) {
    double d = 0;
    for (int64_t f = 0; f < m.features; ++f)
      d = std::max(d, z[size_t(f)] >= x[f] ? diff_up(z[size_t(f)], x[f]) : diff_up(x[f], z[size_t(f)]));
    return d;
  };
  // Bisection over candidate indices: radius cand[lo] verified (lo = -1: radius 0, the point
  // itself), cand[hi] falsified (hi = size: not yet).
  int64_t lo = -1, hi = int64_t(cand.size());
  auto try_radius = [&](int64_t idx) -> int {  // 1 verified, 0 falsified, -1 timeout
    TreeVerifyOptions o = vo;
    o.timeout_s = std::max(1e-3, opts.verify.timeout_s - dl.elapsed());
    TreeBox box = linf_box(x, m.features, cand[size_t(idx)], opts.clip_min, opts.clip_max);
    ++r.exact_queries;
    TreeVerifyResult q = verify_tree_robustness(m, r.label, box, x, o);
    if (q.verdict == Verdict::Unsat) return 1;
    if (q.verdict != Verdict::Sat) return -1;
    auto z = project(q.counterexample);
    auto y = model_output(m, vo, z);
    const int64_t d = tree_decision(m, y);
    if (d == r.label) z = q.counterexample, y = q.counterexample_output;  // (cannot happen: same cell)
    const double dz = dist(z);
    r.counterexample = z;
    r.counterexample_output = y;
    r.adversarial_label = tree_decision(m, y);
    auto pos = std::lower_bound(cand.begin(), cand.end(), dz);
    hi = std::min<int64_t>(idx, int64_t(pos - cand.begin()));
    return 0;
  };
  if (tree_decision(m, model_output(m, vo, xv)) != r.label) {
    r.status = "found";
    r.counterexample = xv;
    r.counterexample_output = model_output(m, vo, xv);
    r.adversarial_label = tree_decision(m, r.counterexample_output);
    r.seconds = dl.elapsed();
    return r;
  }
  // Restrict to candidates within max_eps.
  while (!cand.empty() && cand.back() > opts.max_eps) cand.pop_back();
  hi = int64_t(cand.size());
  bool timed_out = false;
  if (!cand.empty()) {
    const int v = try_radius(int64_t(cand.size()) - 1);
    if (v < 0) timed_out = true;
    else if (v == 1) lo = int64_t(cand.size()) - 1;
  }
  while (!timed_out && hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    const int v = try_radius(mid);
    if (v < 0) timed_out = true;
    else if (v == 1) lo = mid;
  }
  r.lower = lo < 0 ? 0.0 : cand[size_t(lo)];
  r.upper = hi < int64_t(cand.size()) ? cand[size_t(hi)] : kInf;
  if (timed_out) {
    r.status = "timeout";
  } else if (hi == int64_t(cand.size())) {
    r.status = "none";
    r.lower = cand.empty() ? 0.0 : cand.back();
  } else {
    r.status = "found";
    r.distance = r.upper;
    r.lower = r.upper;
  }
  r.seconds = dl.elapsed();
  return r;
}

TreeVerifyResult verify_tree_property(const TreeEnsemble& m, const Property& prop, const TreeVerifyOptions& opts) {
  TreeVerifyResult r;
  QueryClock dl(opts.timeout_s);
  if (prop.num_inputs != m.features)
    throw InputError("verify", fmt::format("{}: the property declares {} inputs, the tree model takes {}", prop.source,
                                           prop.num_inputs, m.features));
  if (prop.num_outputs != m.classes)
    throw InputError("verify", fmt::format("{}: the property declares {} outputs, the tree model's audited output has {}",
                                           prop.source, prop.num_outputs, m.classes));
  using Head = TreeEnsemble::Head;
  using Link = TreeEnsemble::Link;
  const int64_t O = m.outputs;
  // g = -(coef . Y + constant) >= 0 is the constraint coef . Y + constant <= 0, written on raw.
  auto translate = [&](const OutputConstraint& c, Objective& ob) -> std::string {
    ob = objective(m, 1);
    if (m.link == Link::Identity) {
      if (m.head == Head::BinaryMargin) {
        // Y = [1 - m, m] (probability weights), or [-m, m] for a margin with threshold 0: in both
        // Y_0 moves as -m, so coef . Y = (c_1 - c_0) m + (c_0 or 0). (The symmetric case once had
        // c_1 + c_0 here: found by the tree campaign, case t7_00066.)
        const bool symmetric = m.margin_threshold == 0.0;
        ob.coef[0] = -(c.coef[1] - c.coef[0]);
        ob.constant = -((symmetric ? 0.0 : c.coef[0]) + c.constant);
        ob.output_constants = symmetric ? 0.0 : std::fabs(c.coef[0]);
      } else {  // Y = raw
        for (int64_t o = 0; o < O; ++o) ob.coef[size_t(o)] = -c.coef[size_t(o)];
        ob.constant = -c.constant;
      }
      add_base(m, ob, 1);
      return "";
    }
    // A monotone link: only a . (Y_i - Y_j) <= 0 with a > 0 (an argmax comparison).
    std::vector<int64_t> pos, neg;
    for (int64_t o = 0; o < int64_t(c.coef.size()); ++o) {
      if (c.coef[size_t(o)] > 0) pos.push_back(o);
      if (c.coef[size_t(o)] < 0) neg.push_back(o);
    }
    if (pos.size() != 1 || neg.size() != 1 || c.coef[size_t(pos[0])] != -c.coef[size_t(neg[0])] || c.constant != 0)
      return fmt::format("the constraint is not Y_i <= Y_j: under the {} link of {} only comparisons of two output "
                         "columns are decided exactly (argmax properties)",
                         m.link == Link::Logistic ? "logistic" : "softmax", m.node_name);
    const int64_t i = pos[0], j = neg[0];  // Y_i <= Y_j
    if (m.head == Head::BinaryMargin) {
      // Y_1 - Y_0 = 2 sigma(m) - 1: Y_1 <= Y_0 iff m <= threshold.
      ob.coef[0] = i == 1 ? -1.0 : 1.0;
      ob.constant = i == 1 ? m.margin_threshold : -m.margin_threshold;
    } else {
      ob.coef[size_t(j)] = 1;
      ob.coef[size_t(i)] = -1;
    }
    add_base(m, ob, 1);
    return "";
  };
  r.method = "tree-bab";
  int64_t nodes = 0;
  bool clique = true;
  for (const auto& sub : prop.cases) {
    Problem p;
    p.model = &m;
    p.trees = plain_trees(m);
    for (const auto& conj : sub.unsafe) {
      std::vector<int> idx;
      for (const auto& c : conj) {
        Objective ob;
        std::string why = translate(c, ob);
        if (!why.empty()) {
          r.verdict = Verdict::Unknown;
          r.reason = why;
          r.seconds = dl.elapsed();
          return r;
        }
        p.objectives.push_back(ob);
        idx.push_back(int(p.objectives.size() - 1));
      }
      p.conjunctions.push_back(idx);
    }
    set_slack(p);
    prepare(p);
    TreeBox box;
    for (size_t i = 0; i < sub.box.lower.size(); ++i) {
      box.lower.push_back(ceil_f32(sub.box.lower[i]));
      box.upper.push_back(floor_f32(sub.box.upper[i]));
    }
    std::vector<float> centre(box.lower.size());
    for (size_t i = 0; i < centre.size(); ++i)
      centre[i] = std::isfinite(box.lower[i]) && std::isfinite(box.upper[i]) ? box.lower[i] + (box.upper[i] - box.lower[i]) / 2
                  : std::isfinite(box.lower[i])                               ? box.lower[i]
                                                                               : box.upper[i];
    p.anchor = centre;
    std::vector<double> hit;
    p.cell_unsafe = [&](const std::vector<float>& x) {
      auto y = model_output(m, opts, x);
      for (const auto& conj : sub.unsafe) {
        bool all = true;
        for (const auto& c : conj) {
          double s = c.constant;
          for (size_t o = 0; o < y.size() && o < c.coef.size(); ++o) s += c.coef[o] * y[o];
          if (!(s <= 0)) {
            all = false;
            break;
          }
        }
        if (all) {
          hit = y;
          return true;
        }
      }
      return false;
    };
    TreeVerifyOptions o = opts;
    o.timeout_s = std::max(1e-3, opts.timeout_s - dl.elapsed());
    SearchResult s = search(p, box, o, QueryClock(o.timeout_s));
    nodes += s.nodes;
    r.clique_levels = std::max(r.clique_levels, s.clique_levels);
    clique = clique && s.by_clique;
    if (s.outcome == Outcome::Unsafe) {
      r.verdict = Verdict::Sat;
      r.counterexample = s.point;
      r.counterexample_output = hit;
      r.counterexample_label = tree_decision(m, hit);
      r.nodes = nodes;
      r.method = s.by_clique ? "clique-bound" : "tree-bab";
      r.seconds = dl.elapsed();
      return r;
    }
    if (s.outcome == Outcome::Timeout) {
      r.verdict = Verdict::Timeout;
      r.reason = fmt::format("timeout after {} boxes", nodes);
      r.nodes = nodes;
      r.seconds = dl.elapsed();
      return r;
    }
  }
  r.verdict = Verdict::Unsat;
  r.nodes = nodes;
  if (clique) r.method = "clique-bound";
  r.seconds = dl.elapsed();
  return r;
}

TreeFairnessResult verify_tree_fairness(const TreeEnsemble& m, const TreeBox& box_in, const float* anchor,
                                        const TreeFairnessOptions& opts) {
  using Head = TreeEnsemble::Head;
  QueryClock dl(opts.verify.timeout_s);
  check_box(m, box_in);
  const int64_t p_idx = opts.protected_index, O = m.outputs;
  if (p_idx < 0 || p_idx >= m.features)
    throw InputError("verify", fmt::format("protected feature index {} out of range (0..{})", p_idx, m.features - 1));
  if (opts.protected_values.size() < 2) throw InputError("verify", "fairness needs at least two protected values");
  const bool use_delta = opts.score_delta >= 0;
  if (std::isnan(opts.score_delta)) throw InputError("verify", "the score delta is NaN");
  if (m.head == Head::Regression && (!use_delta || O != 1))
    throw InputError("verify", "a regressor has no decision: fairness of a one-target regressor needs a score delta");
  if (use_delta && m.head == Head::Classes && O != 2)
    throw InputError("verify", fmt::format("a score delta needs one score: {} has {} classes (binary classifiers and "
                                           "one-target regressors have one)",
                                           m.node_name, O));
  // The score compared: the raw column of the positive class (a binary margin, a two-class
  // model's class-1 raw score, a regressor's output).
  const int64_t score_col = m.head == Head::Classes ? 1 : 0;
  TreeBox box = box_in;
  box.lower[size_t(p_idx)] = box.upper[size_t(p_idx)] = 0;  // not a shared dimension
  TreeFairnessResult r;
  r.method = "tree-bab";
  bool clique = true;
  for (size_t va = 0; va < opts.protected_values.size(); ++va)
    for (size_t vb = va + 1; vb < opts.protected_values.size(); ++vb) {
      const float a = float(opts.protected_values[va]), b = float(opts.protected_values[vb]);
      Problem p;
      p.model = &m;
      p.copies = 2;
      for (int c = 0; c < 2; ++c)
        for (int32_t root : m.roots) p.trees.push_back({root, c, int32_t(p_idx), c == 0 ? a : b});
      // Decision differs: copy a decides i, copy b decides j != i.
      if (m.head == Head::BinaryMargin) {
        for (int flip = 0; flip < 2; ++flip) {
          Objective ga = objective(m, 2), gb = objective(m, 2);
          // flip 0: a is class 1 (m_a - thr >= 0), b is class 0 (thr - m_b >= 0); flip 1 swapped.
          ga.coef[flip == 0 ? 0 : size_t(O)] = 1;
          gb.coef[flip == 0 ? size_t(O) : 0] = -1;
          add_base(m, ga, 2);
          add_base(m, gb, 2);
          ga.constant -= m.margin_threshold;
          gb.constant += m.margin_threshold;
          p.objectives.push_back(ga);
          p.objectives.push_back(gb);
          p.conjunctions.push_back({int(p.objectives.size()) - 2, int(p.objectives.size()) - 1});
        }
      } else if (m.head == Head::Classes) {
        for (int64_t i = 0; i < O; ++i)
          for (int64_t j = 0; j < O; ++j) {
            if (i == j) continue;
            std::vector<int> conj;
            for (int64_t k = 0; k < O; ++k) {
              if (k != i) {  // raw_a[i] - raw_a[k] >= 0
                Objective g = objective(m, 2);
                g.coef[size_t(i)] = 1, g.coef[size_t(k)] = -1;
                add_base(m, g, 2);
                p.objectives.push_back(g);
                conj.push_back(int(p.objectives.size()) - 1);
              }
              if (k != j) {  // raw_b[j] - raw_b[k] >= 0
                Objective g = objective(m, 2);
                g.coef[size_t(O + j)] = 1, g.coef[size_t(O + k)] = -1;
                add_base(m, g, 2);
                p.objectives.push_back(g);
                conj.push_back(int(p.objectives.size()) - 1);
              }
            }
            p.conjunctions.push_back(conj);
          }
      }
      if (use_delta)
        for (int s = 0; s < 2; ++s) {  // +-(score_a - score_b) - delta >= 0
          Objective g = objective(m, 2);
          g.coef[size_t(score_col)] = s == 0 ? 1.0 : -1.0;
          g.coef[size_t(O + score_col)] = s == 0 ? -1.0 : 1.0;
          add_base(m, g, 2);
          g.constant -= opts.score_delta;
          p.objectives.push_back(g);
          p.conjunctions.push_back({int(p.objectives.size()) - 1});
        }
      set_slack(p);
      prepare(p);
      if (anchor) p.anchor.assign(anchor, anchor + m.features);
      std::vector<float> xa, xb;
      std::vector<double> ya, yb;
      double sa = 0, sb = 0;
      p.cell_unsafe = [&](const std::vector<float>& x) {
        xa = x, xb = x;
        xa[size_t(p_idx)] = a, xb[size_t(p_idx)] = b;
        ya = model_output(m, opts.verify, xa);
        yb = model_output(m, opts.verify, xb);
        if (m.head != Head::Regression && tree_decision(m, ya) != tree_decision(m, yb)) return true;
        if (!use_delta) return false;
        sa = m.raw(xa.data())[size_t(score_col)];
        sb = m.raw(xb.data())[size_t(score_col)];
        return std::fabs(sa - sb) > opts.score_delta;
      };
      TreeVerifyOptions o = opts.verify;
      o.timeout_s = std::max(1e-3, opts.verify.timeout_s - dl.elapsed());
      SearchResult s = search(p, box, o, QueryClock(o.timeout_s));
      r.nodes += s.nodes;
      clique = clique && s.by_clique;
      if (s.outcome == Outcome::Unsafe) {
        r.verdict = Verdict::Sat;
        r.input_a = xa, r.input_b = xb, r.output_a = ya, r.output_b = yb;
        if (use_delta) r.score_a = sa, r.score_b = sb;
        r.method = s.by_clique ? "clique-bound" : "tree-bab";
        r.seconds = dl.elapsed();
        return r;
      }
      if (s.outcome == Outcome::Timeout) {
        r.verdict = Verdict::Timeout;
        r.reason = fmt::format("timeout after {} boxes", r.nodes);
        r.seconds = dl.elapsed();
        return r;
      }
    }
  r.verdict = Verdict::Unsat;
  if (clique) r.method = "clique-bound";
  r.seconds = dl.elapsed();
  return r;
}

}  // namespace mlaudit::verify
