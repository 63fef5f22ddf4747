// Exact tree-ensemble verification (verify/trees.h) against a brute-force reference: the
// threshold cells of a small ensemble are enumerated (every float32 interval between
// consecutive cuts of every feature), and the robustness verdicts, minimal adversarial L-inf
// distances and fairness verdicts the verifier gives must equal what the cells say. Runs on
// small_xgb (3 trees, depth 2, 4 features; tools/export_tree_models.py) through the engine's
// forward, and on random small ensembles built here (every head and link, strict and
// non-strict splits, thresholds one float32 step apart).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/trees.h"
#include "mlaudit/verify/trees.h"
#include "test_util.h"

using mlaudit::engine::TreeEnsemble;
namespace v = mlaudit::verify;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kInfF = std::numeric_limits<float>::infinity();

std::string tree_fixture(const std::string& name) { return mlaudit::test::source_path("tests/fixtures/trees/" + name); }

// The float32 intervals between consecutive cuts of each feature: a cut a separates values
// <= a from values >= next(a) (x <= t: a = t; x < t: a = prev(t)).
std::vector<std::vector<std::pair<float, float>>> cells_per_feature(const TreeEnsemble& m) {
  std::vector<std::vector<float>> cuts(size_t(m.features));
  for (const auto& n : m.nodes)
    if (!n.leaf()) cuts[size_t(n.feature)].push_back(n.leq ? n.threshold : std::nextafter(n.threshold, -kInfF));
  std::vector<std::vector<std::pair<float, float>>> out(size_t(m.features));
  for (size_t f = 0; f < cuts.size(); ++f) {
    auto& c = cuts[f];
    std::sort(c.begin(), c.end());
    c.erase(std::unique(c.begin(), c.end()), c.end());
    float lo = -kInfF;
    for (float a : c) {
      out[f].push_back({lo, a});
      lo = std::nextafter(a, kInfF);
    }
    out[f].push_back({lo, kInfF});
  }
  return out;
}

// Calls fn(lower, upper) for every cell intersected with `box` (non-empty ones only).
void for_each_cell(const TreeEnsemble& m, const v::TreeBox& box,
                   const std::function<void(const std::vector<float>&, const std::vector<float>&)>& fn) {
  auto cells = cells_per_feature(m);
  std::vector<std::vector<std::pair<float, float>>> clipped(cells.size());
  for (size_t f = 0; f < cells.size(); ++f)
    for (auto [a, b] : cells[f]) {
      float lo = std::max(a, box.lower[f]), hi = std::min(b, box.upper[f]);
      if (lo <= hi) clipped[f].push_back({lo, hi});
    }
  for (const auto& c : clipped)
    if (c.empty()) return;
  std::vector<size_t> idx(cells.size(), 0);
  std::vector<float> lo(cells.size()), hi(cells.size());
  while (true) {
    for (size_t f = 0; f < idx.size(); ++f) lo[f] = clipped[f][idx[f]].first, hi[f] = clipped[f][idx[f]].second;
    fn(lo, hi);
    size_t f = 0;
    for (; f < idx.size(); ++f) {
      if (++idx[f] < clipped[f].size()) break;
      idx[f] = 0;
    }
    if (f == idx.size()) break;
  }
}

std::vector<float> nearest(const std::vector<float>& lo, const std::vector<float>& hi, const float* x) {
  std::vector<float> p(lo.size());
  for (size_t f = 0; f < lo.size(); ++f) p[f] = std::min(std::max(x[f], lo[f]), hi[f]);
  return p;
}

double linf(const std::vector<float>& a, const float* x) {
  double d = 0;
  for (size_t f = 0; f < a.size(); ++f) d = std::max(d, a[f] >= x[f] ? v::diff_up(a[f], x[f]) : v::diff_up(x[f], a[f]));
  return d;
}

using Decide = std::function<int64_t(const std::vector<float>&)>;

Decide own_decision(const TreeEnsemble& m) {
  return [&m](const std::vector<float>& x) { return v::tree_decision(m, m.output(m.raw(x.data()))); };
}

// Reference: some float32 point of `box` is decided otherwise than `label`.
bool brute_falsifiable(const TreeEnsemble& m, const Decide& decide, const v::TreeBox& box, const float* x, int64_t label) {
  bool found = false;
  for_each_cell(m, box, [&](const std::vector<float>& lo, const std::vector<float>& hi) {
    if (!found && decide(nearest(lo, hi, x)) != label) found = true;
  });
  return found;
}

// Reference: min over changed cells (within the domain) of the L-inf distance of x to the cell.
double brute_min_distance(const TreeEnsemble& m, const Decide& decide, const float* x, int64_t label, double clip_min,
                          double clip_max) {
  v::TreeBox domain = v::linf_box(x, m.features, kInf, clip_min, clip_max);
  double best = kInf;
  for_each_cell(m, domain, [&](const std::vector<float>& lo, const std::vector<float>& hi) {
    auto p = nearest(lo, hi, x);
    if (decide(p) != label) best = std::min(best, linf(p, x));
  });
  return best;
}

bool in_box(const std::vector<float>& z, const v::TreeBox& b) {
  for (size_t f = 0; f < z.size(); ++f)
    if (!(z[f] >= b.lower[f] && z[f] <= b.upper[f])) return false;
  return true;
}

// A random ensemble: `trees` trees of depth <= 3 over 3 features, thresholds on a small grid
// (shared between trees and features) plus a few one float32 step off it, random <= / <.
TreeEnsemble random_ensemble(std::mt19937& rng, TreeEnsemble::Head head, TreeEnsemble::Link link, int trees) {
  TreeEnsemble m;
  m.features = 3;
  m.head = head;
  m.link = link;
  m.outputs = head == TreeEnsemble::Head::Classes ? 3 : 1;
  m.classes = head == TreeEnsemble::Head::Classes ? 3 : head == TreeEnsemble::Head::BinaryMargin ? 2 : 1;
  m.margin_threshold = head == TreeEnsemble::Head::BinaryMargin && link == TreeEnsemble::Link::Identity ? 0.5 : 0.0;
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_int_distribution<int> grid(-4, 4), feat(0, 2), coin(0, 1), depth(1, 3), off(0, 5);
  for (int64_t o = 0; o < m.outputs; ++o) m.base.push_back(head == TreeEnsemble::Head::BinaryMargin && m.margin_threshold == 0.5 ? 0.5 : 0.1 * o);
  m.node_name = "random";
  m.op_type = "TreeEnsemble";
  std::function<int32_t(int)> grow = [&](int d) -> int32_t {
    int32_t id = int32_t(m.nodes.size());
    m.nodes.emplace_back();
    if (d == 0 || (d < 3 && coin(rng) == 0 && coin(rng) == 0)) {
      m.nodes[size_t(id)].value = int32_t(m.values.size());
      for (int64_t o = 0; o < m.outputs; ++o) m.values.push_back(value(rng) * (head == TreeEnsemble::Head::BinaryMargin && m.margin_threshold == 0.5 ? 0.2f : 1.0f));
      return id;
    }
    TreeEnsemble::Node n;
    n.feature = feat(rng);
    n.threshold = 0.25f * float(grid(rng));
    int o = off(rng);
    if (o == 0) n.threshold = std::nextafter(n.threshold, kInfF);
    if (o == 1) n.threshold = std::nextafter(n.threshold, -kInfF);
    n.leq = coin(rng) == 1;
    int32_t y = grow(d - 1), no = grow(d - 1);
    n.yes = y;
    n.no = no;
    m.nodes[size_t(id)] = n;
    return id;
  };
  for (int t = 0; t < trees; ++t) m.roots.push_back(grow(depth(rng)));
  return m;
}

}  // namespace

TEST_CASE("linf_box holds exactly the float32 points of the real ball", "[verify][trees]") {
  const float x[3] = {0.1f, -3.0f, 1e6f};
  for (double eps : {0.0, 1e-9, 0.05, 0.1, 1.0 / 3.0, 7.25}) {
    auto b = v::linf_box(x, 3, eps, -kInf, kInf);
    for (int f = 0; f < 3; ++f) {
      // lower is in the ball, the float below it is not (x - lower <= eps < x - prev(lower)).
      CHECK(double(x[f]) - double(b.lower[size_t(f)]) <= eps);
      CHECK(double(x[f]) - double(std::nextafter(b.lower[size_t(f)], -kInfF)) > eps);
      CHECK(double(b.upper[size_t(f)]) - double(x[f]) <= eps);
      CHECK(double(std::nextafter(b.upper[size_t(f)], kInfF)) - double(x[f]) > eps);
    }
  }
  auto c = v::linf_box(x, 3, 10.0, 0.0, 1.0);
  CHECK(c.lower[0] == 0.0f);
  CHECK(c.upper[0] == 1.0f);
  CHECK(c.empty());  // x[1] = -3 lies outside [0, 1]: no point of the box in the domain for it
  CHECK(v::diff_up(1.0, std::nextafter(1.0, 0.0)) > 0);
}

TEST_CASE("tree verifier equals cell enumeration on random small ensembles", "[verify][trees]") {
  std::mt19937 rng(20261206);
  using H = TreeEnsemble::Head;
  using L = TreeEnsemble::Link;
  const std::vector<std::pair<H, L>> kinds = {
      {H::BinaryMargin, L::Logistic}, {H::BinaryMargin, L::Identity}, {H::Classes, L::Identity}, {H::Classes, L::Softmax}};
  std::uniform_real_distribution<float> coord(-1.2f, 1.2f);
  int checked = 0, falsified = 0, verified = 0, by_clique = 0;
  for (int e = 0; e < 160; ++e) {
    auto [head, link] = kinds[size_t(e) % kinds.size()];
    TreeEnsemble m = random_ensemble(rng, head, link, 2 + e % 5);
    Decide decide = own_decision(m);
    for (int s = 0; s < 4; ++s) {
      float x[3] = {coord(rng), coord(rng), coord(rng)};
      if (s == 0) x[0] = m.nodes[size_t(m.roots[0])].leaf() ? x[0] : m.nodes[size_t(m.roots[0])].threshold;  // on a threshold
      std::vector<float> xv(x, x + 3);
      const int64_t label = decide(xv);
      for (double eps : {0.0, 0.05, 0.2, 0.5, 1.5}) {
        for (bool clique : {true, false}) {
          v::TreeVerifyOptions o;
          o.clique_bound = clique;
          o.clique_limit = clique && eps > 0.4 ? 8 : 2048;  // also the bound that stops merging
          auto box = v::linf_box(x, 3, eps, -kInf, kInf);
          auto r = v::verify_tree_robustness(m, label, box, x, o);
          const bool ref = brute_falsifiable(m, decide, box, x, label);
          INFO("ensemble " << e << " sample " << s << " eps " << eps << " clique " << clique);
          REQUIRE((r.verdict == v::Verdict::Sat) == ref);
          REQUIRE(r.verdict != v::Verdict::Timeout);
          if (r.verdict == v::Verdict::Sat) {
            CHECK(in_box(r.counterexample, box));
            CHECK(decide(r.counterexample) != label);
            ++falsified;
          } else {
            ++verified;
            if (r.method == "clique-bound") ++by_clique;
          }
          ++checked;
        }
      }
      // Minimal distance: unbounded and within a domain.
      for (auto [lo, hi] : {std::pair<double, double>{-kInf, kInf}, {-1.25, 1.25}}) {
        v::TreeMinimalOptions mo;
        mo.clip_min = lo, mo.clip_max = hi;
        auto r = v::minimal_adversarial_linf(m, x, mo);
        const double ref = brute_min_distance(m, decide, x, label, lo, hi);
        INFO("ensemble " << e << " sample " << s << " domain " << lo << ".." << hi);
        if (std::isinf(ref)) {
          REQUIRE(r.status == "none");
        } else {
          REQUIRE(r.status == "found");
          REQUIRE(r.distance == ref);  // both exact: the smallest double radius reaching the cell
          CHECK(linf(r.counterexample, x) == r.distance);
          CHECK(decide(r.counterexample) != label);
          CHECK(in_box(r.counterexample, v::linf_box(x, 3, r.distance, lo, hi)));
        }
      }
    }
  }
  CHECK(falsified > 200);
  CHECK(verified > 200);
  CHECK(by_clique > 50);
  WARN("random ensembles: " << checked << " robustness queries (" << verified << " verified, " << by_clique
                            << " of them by the clique bound; " << falsified << " falsified)");
}

TEST_CASE("tree fairness equals cell enumeration on random small ensembles", "[verify][trees]") {
  std::mt19937 rng(7);
  using H = TreeEnsemble::Head;
  using L = TreeEnsemble::Link;
  std::uniform_real_distribution<float> coord(-1.0f, 1.0f);
  int proved = 0, refuted = 0;
  for (int e = 0; e < 120; ++e) {
    const bool multi = e % 2 == 1;
    TreeEnsemble m = random_ensemble(rng, multi ? H::Classes : H::BinaryMargin, multi ? L::Softmax : L::Logistic, 2 + e % 4);
    Decide decide = own_decision(m);
    const std::vector<double> values = {-0.6, 0.55};
    for (double eps : {0.1, 0.4, 2.0}) {
      for (double delta : {-1.0, 0.3}) {
        if (multi && delta >= 0) continue;
        float x[3] = {0, coord(rng), coord(rng)};
        auto box = v::linf_box(x, 3, eps, -kInf, kInf);
        v::TreeFairnessOptions fo;
        fo.protected_index = 0;
        fo.protected_values = values;
        fo.score_delta = delta;
        auto r = v::verify_tree_fairness(m, box, x, fo);
        // Reference: cells over features 1, 2 (feature 0 fixed to each value).
        v::TreeBox shared = box;
        shared.lower[0] = -kInfF, shared.upper[0] = kInfF;
        bool unfair = false;
        for_each_cell(m, shared, [&](const std::vector<float>& lo, const std::vector<float>& hi) {
          if (unfair) return;
          auto p = nearest(lo, hi, x);
          auto a = p, b = p;
          a[0] = float(values[0]), b[0] = float(values[1]);
          if (decide(a) != decide(b)) unfair = true;
          if (delta >= 0 && std::fabs(m.raw(a.data())[0] - m.raw(b.data())[0]) > delta) unfair = true;
        });
        INFO("ensemble " << e << " eps " << eps << " delta " << delta);
        REQUIRE((r.verdict == v::Verdict::Sat) == unfair);
        if (unfair) {
          ++refuted;
          CHECK(r.input_a[0] == float(values[0]));
          CHECK(r.input_b[0] == float(values[1]));
          CHECK(r.input_a[1] == r.input_b[1]);
          CHECK(in_box({0, r.input_a[1], r.input_a[2]}, [&] { auto b = box; b.lower[0] = b.upper[0] = 0; return b; }()));
          const bool flips = decide(r.input_a) != decide(r.input_b);
          CHECK((flips || (delta >= 0 && std::fabs(r.score_a - r.score_b) > delta)));
        } else {
          ++proved;
        }
      }
    }
  }
  CHECK(proved > 30);
  CHECK(refuted > 30);
}

TEST_CASE("tree VNN-LIB properties equal cell enumeration on random small ensembles", "[verify][trees]") {
  // Linear output properties of identity-link models (the output is the raw score), argmax
  // properties of softmax / logistic ones; unsafe = a disjunction of two conjunctions.
  std::mt19937 rng(11);
  using H = TreeEnsemble::Head;
  using L = TreeEnsemble::Link;
  const std::vector<std::pair<H, L>> kinds = {{H::Classes, L::Identity}, {H::Regression, L::Identity},
                                              {H::BinaryMargin, L::Identity}, {H::Classes, L::Softmax},
                                              {H::BinaryMargin, L::Logistic}};
  std::uniform_real_distribution<double> coef(-1, 1), coord(-1, 1);
  std::uniform_int_distribution<int> pick(0, 2);
  int sat = 0, unsat = 0;
  for (int e = 0; e < 150; ++e) {
    auto [head, link] = kinds[size_t(e) % kinds.size()];
    TreeEnsemble m = random_ensemble(rng, head, link, 2 + e % 4);
    const int C = int(m.classes);
    v::Property prop;
    prop.source = "random";
    prop.num_inputs = 3;
    prop.num_outputs = C;
    v::SubProperty sub;
    const double eps = 0.1 + 0.3 * (e % 4);
    std::vector<double> centre = {coord(rng), coord(rng), coord(rng)};
    for (double c : centre) sub.box.lower.push_back(c - eps), sub.box.upper.push_back(c + eps);
    for (int d = 0; d < 2; ++d) {
      v::OutputConjunction conj;
      for (int k = 0; k < 1 + d; ++k) {
        v::OutputConstraint c;
        c.coef.assign(size_t(C), 0.0);
        if (link == L::Identity) {
          for (auto& w : c.coef) w = coef(rng);
          c.constant = 0.5 * coef(rng);
        } else {  // Y_i <= Y_j
          int i = pick(rng) % C, j = (i + 1 + pick(rng) % (C - 1)) % C;
          c.coef[size_t(i)] = 1, c.coef[size_t(j)] = -1;
        }
        conj.push_back(c);
      }
      sub.unsafe.push_back(conj);
    }
    prop.cases.push_back(sub);
    auto r = v::verify_tree_property(m, prop, {});
    // Reference: some cell of the box has an output meeting every constraint of a conjunction.
    v::TreeBox box;
    for (int f = 0; f < 3; ++f) {
      float lo = float(sub.box.lower[size_t(f)]), hi = float(sub.box.upper[size_t(f)]);
      if (double(lo) < sub.box.lower[size_t(f)]) lo = std::nextafter(lo, kInfF);
      if (double(hi) > sub.box.upper[size_t(f)]) hi = std::nextafter(hi, -kInfF);
      box.lower.push_back(lo), box.upper.push_back(hi);
    }
    float anchor[3] = {float(centre[0]), float(centre[1]), float(centre[2])};
    bool unsafe = false;
    for_each_cell(m, box, [&](const std::vector<float>& lo, const std::vector<float>& hi) {
      auto y = m.output(m.raw(nearest(lo, hi, anchor).data()));
      for (const auto& conj : sub.unsafe) {
        bool all = true;
        for (const auto& c : conj) {
          double s = c.constant;
          for (int j = 0; j < C; ++j) s += c.coef[size_t(j)] * y[size_t(j)];
          all = all && s <= 0;
        }
        unsafe = unsafe || all;
      }
    });
    INFO("ensemble " << e);
    REQUIRE(r.verdict != v::Verdict::Unknown);
    REQUIRE((r.verdict == v::Verdict::Sat) == unsafe);
    if (unsafe) {
      ++sat;
      CHECK(in_box(r.counterexample, box));
    } else {
      ++unsat;
    }
  }
  CHECK(sat > 20);
  CHECK(unsat > 20);
}

TEST_CASE("small_xgb: verdicts and minimal distances equal cell enumeration through the engine", "[verify][trees]") {
  const std::string path = tree_fixture("small_xgb.onnx");
  auto graph = mlaudit::engine::load_onnx(path);
  TreeEnsemble m = mlaudit::engine::extract_tree_ensemble(graph);
  REQUIRE(m.features == 4);
  auto session = mlaudit::engine::Session::load(path);
  auto concrete = [&](const std::vector<float>& x) {
    auto y = session->forward(mlaudit::engine::Tensor::from_floats({1, int64_t(x.size())}, x)).to_doubles();
    return std::vector<float>(y.begin(), y.end());
  };
  Decide engine_decide = [&](const std::vector<float>& x) {
    auto y = concrete(x);
    return int64_t(std::max_element(y.begin(), y.end()) - y.begin());
  };
  auto data = mlaudit::datasets::read_npy_float(tree_fixture("small_x.npy"));
  auto xs = data.to_doubles();
  const int64_t F = 4;
  int found = 0;
  for (int64_t i = 0; i < 40; ++i) {
    std::vector<float> x(xs.begin() + i * F, xs.begin() + (i + 1) * F);
    const int64_t label = engine_decide(x);
    v::TreeVerifyOptions o;
    o.concrete = concrete;
    v::TreeMinimalOptions mo;
    mo.verify = o;
    auto r = v::minimal_adversarial_linf(m, x.data(), mo);
    const double ref = brute_min_distance(m, engine_decide, x.data(), label, -kInf, kInf);
    INFO("row " << i);
    if (std::isinf(ref)) {
      CHECK(r.status == "none");
      continue;
    }
    REQUIRE(r.status == "found");
    CHECK(r.distance == ref);
    CHECK(engine_decide(r.counterexample) != label);
    ++found;
    // Around the minimal distance: just below it verified, at it falsified (engine-checked).
    for (double eps : {std::nextafter(r.distance, 0.0), r.distance, r.distance * 0.5, r.distance * 2}) {
      auto box = v::linf_box(x.data(), F, eps, -kInf, kInf);
      auto q = v::verify_tree_robustness(m, label, box, x.data(), o);
      CHECK((q.verdict == v::Verdict::Sat) == (eps >= r.distance));
      CHECK((q.verdict == v::Verdict::Sat) == brute_falsifiable(m, engine_decide, box, x.data(), label));
      if (q.verdict == v::Verdict::Sat) CHECK(in_box(q.counterexample, box));
    }
  }
  CHECK(found > 30);
  // Fairness through the engine: age (feature 0) set to 25 or 60 must not change the decision
  // for any point within 0.5 of a row on the other features, against the cells of features 1..3.
  int proved = 0, refuted = 0;
  for (int64_t i = 0; i < 40; ++i) {
    std::vector<float> x(xs.begin() + i * F, xs.begin() + (i + 1) * F);
    v::TreeFairnessOptions fo;
    fo.protected_index = 0;
    fo.protected_values = {25, 60};
    fo.verify.concrete = concrete;
    auto box = v::linf_box(x.data(), F, 0.5, -kInf, kInf);
    auto r = v::verify_tree_fairness(m, box, x.data(), fo);
    v::TreeBox shared = box;
    shared.lower[0] = -kInfF, shared.upper[0] = kInfF;
    bool unfair = false;
    for_each_cell(m, shared, [&](const std::vector<float>& lo, const std::vector<float>& hi) {
      auto p = nearest(lo, hi, x.data());
      auto a = p, b = p;
      a[0] = 25, b[0] = 60;
      if (engine_decide(a) != engine_decide(b)) unfair = true;
    });
    INFO("row " << i);
    REQUIRE((r.verdict == v::Verdict::Sat) == unfair);
    if (unfair) {
      ++refuted;
      CHECK(engine_decide(r.input_a) != engine_decide(r.input_b));
      CHECK(in_box({0, r.input_a[1], r.input_a[2], r.input_a[3]}, [&] { auto b = box; b.lower[0] = b.upper[0] = 0; return b; }()));
    } else {
      ++proved;
    }
  }
  CHECK(proved > 0);
  CHECK(refuted > 0);
}

TEST_CASE("tree verifier: the clique bound proves what per-tree bounds cannot, a node cap is a timeout", "[verify][trees]") {
  // Ten pairs of stumps that cancel (x_k <= 0: +1 / -1, and the opposite) plus a base of 0.5: the
  // margin is 0.5 everywhere (class 1), but the per-tree bound (each stump at its worst) is
  // -9.5. Merging each pair (Chen et al.'s level 1) leaves only consistent leaf pairs of value 0.
  TreeEnsemble m;
  m.features = 10;
  m.head = TreeEnsemble::Head::BinaryMargin;
  m.link = TreeEnsemble::Link::Logistic;
  m.outputs = 1;
  m.classes = 2;
  m.base = {0.5};
  for (int k = 0; k < 10; ++k)
    for (float sign : {1.0f, -1.0f}) {
      const int32_t root = int32_t(m.nodes.size());
      TreeEnsemble::Node split;
      split.feature = k;
      split.threshold = 0;
      split.yes = root + 1;
      split.no = root + 2;
      m.nodes.push_back(split);
      for (float v : {sign, -sign}) {
        TreeEnsemble::Node leaf;
        leaf.value = int32_t(m.values.size());
        m.values.push_back(v);
        m.nodes.push_back(leaf);
      }
      m.roots.push_back(root);
    }
  std::vector<float> x(10, 0.5f);
  auto box = v::linf_box(x.data(), 10, kInf, -kInf, kInf);
  v::TreeVerifyOptions o;
  auto r = v::verify_tree_robustness(m, 1, box, x.data(), o);
  CHECK(r.verdict == v::Verdict::Unsat);
  CHECK(r.method == "clique-bound");
  o.clique_bound = false;
  r = v::verify_tree_robustness(m, 1, box, x.data(), o);
  CHECK(r.verdict == v::Verdict::Unsat);  // 2^10 cells: branch and bound alone gets there too
  CHECK(r.nodes > 1000);
  o.max_nodes = 64;
  r = v::verify_tree_robustness(m, 1, box, x.data(), o);
  CHECK(r.verdict == v::Verdict::Timeout);  // never reported as verified
  o.max_nodes = 0;
  o.timeout_s = 1e-9;
  r = v::verify_tree_robustness(m, 1, box, x.data(), o);
  CHECK(r.verdict == v::Verdict::Timeout);
  // The decision never changes: no minimal distance ("none"), proved over the whole space; under
  // a node cap the search stops with the bounds it proved (none yet: [0, inf)).
  v::TreeMinimalOptions mo;
  auto md = v::minimal_adversarial_linf(m, x.data(), mo);
  CHECK(md.status == "none");
  CHECK(md.counterexample.empty());
  mo.verify.clique_bound = false;
  mo.verify.max_nodes = 64;
  md = v::minimal_adversarial_linf(m, x.data(), mo);
  CHECK(md.status == "timeout");
  CHECK(md.lower == 0);
  CHECK(std::isinf(md.upper));
}

TEST_CASE("tree verifier refuses what it cannot answer", "[verify][trees]") {
  std::mt19937 rng(1);
  TreeEnsemble reg = random_ensemble(rng, TreeEnsemble::Head::Regression, TreeEnsemble::Link::Identity, 2);
  float x[3] = {0, 0, 0};
  auto box = v::linf_box(x, 3, 0.1, -kInf, kInf);
  try {
    v::verify_tree_robustness(reg, 0, box, x, {});
    FAIL("a regressor has no decision");
  } catch (const mlaudit::InputError& e) {
    CHECK(std::string(e.what()).find("is a regressor: it has no decision to keep") != std::string::npos);
  }
  TreeEnsemble bin = random_ensemble(rng, TreeEnsemble::Head::BinaryMargin, TreeEnsemble::Link::Logistic, 2);
  CHECK_THROWS_WITH(v::verify_tree_robustness(bin, 2, box, x, {}), Catch::Contains("label 2 is not a class of the model (0..1)"));
  v::TreeBox small{{0, 0}, {1, 1}};
  CHECK_THROWS_WITH(v::verify_tree_robustness(bin, 0, small, x, {}),
                    Catch::Contains("box: 2 feature ranges for a tree model with 3 features"));
  v::TreeFairnessOptions fo;
  fo.protected_values = {0};
  CHECK_THROWS_WITH(v::verify_tree_fairness(bin, box, x, fo), Catch::Contains("at least two protected values"));
}
