// Complete verification by branch and bound (Bunel et al., "Branch and Bound
// for Piecewise Linear Neural Network Verification", JMLR 2020):
//  * input splitting for low-dimensional input boxes (ACAS Xu; the
//    nnenum / alpha-beta-CROWN approach): bisect the input dimension with the
//    largest |coefficient| x width in the worst CROWN bound (plus its share of
//    the unstable ReLUs' relaxation looseness), re-bound each half; a box with
//    few unstable ReLUs is decided by splitting them into activation patterns
//    (refute_pattern) before it is bisected further;
//    (at most VerifyOptions::input_split_max_dims = 16 varying inputs: ACAS Xu's 5,
//    the control policies' 4-8, gcas's 14);
//  * ReLU splitting otherwise (beta-CROWN, Wang et al., NeurIPS 2021): a branch
//    keeps its parent's intermediate bounds with the new split applied, and each
//    unsafe row is bounded by alpha/beta-CROWN (bounds.h beta_crown_objective:
//    the split constraints enter by optimised multipliers), warm-started from the
//    parent's slopes and multipliers; the neuron to split is chosen by filtered
//    smart branching (BaBSR's score |lambda| * (-l u / (u - l)) ranks, the top
//    candidates' children are bounded, the best worse child wins); leaves with
//    few unstable ReLUs go to Z3. --no-beta: CROWN re-bounds every layer with the
//    splits fixed and BaBSR picks the split (the method before beta-CROWN).
// A branch is closed when every unsafe conjunction has a row whose CROWN lower
// bound is > 0, or a non-negative combination of its rows' bounds (the exact
// LP of combine_row_bounds) is > 0 after outward rounding.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "mlaudit/engine/error.h"
#include "mlaudit/verify/solver.h"

#include "box_lp.h"

namespace mlaudit::verify {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Unsat: return "unsat";
    case Verdict::Sat: return "sat";
    case Verdict::Unknown: return "unknown";
    case Verdict::Timeout: return "timeout";
  }
  return "unknown";
}

Deadline::Deadline(double seconds) {
  if (seconds > 0 && std::isfinite(seconds)) {
    has_end_ = true;
    end_ = std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  }
}
bool Deadline::expired() const {
  return (early_ && early_->load(std::memory_order_relaxed)) || (has_end_ && std::chrono::steady_clock::now() >= end_);
}
double Deadline::remaining_s() const {
  if (early_ && early_->load(std::memory_order_relaxed)) return 0;
  if (!has_end_) return 1e30;
  return std::max(0.0, std::chrono::duration<double>(end_ - std::chrono::steady_clock::now()).count());
}

namespace {

struct Domain {
  InputBox box;
  ReluSplits splits;
  std::vector<size_t> open;  // indices of unsafe conjunctions not yet refuted
  int depth = 0;
  std::shared_ptr<const LayerBounds> parent;  // bounds of the enclosing branch
  // ReLU splitting: the parent's optimised slopes and split multipliers per refutation row
  // (key: conjunction index x 64 + row), the children's warm start (beta-CROWN).
  std::shared_ptr<const std::map<size_t, SplitMultipliers>> warm;
};

// Shared state of one sub-property's search.
struct Search {
  Search(const Network& n, const SubProperty& s, const VerifyOptions& o, Deadline& d)
      : net(n), sub(s), opts(o), deadline(d), local_pgd(o) {
    local_pgd.random_samples = 8;
    local_pgd.pgd_restarts = 1;
    local_pgd.pgd_steps = 20;
  }
  const Network& net;
  const SubProperty& sub;
  const VerifyOptions& opts;
  Deadline& deadline;
  const Deadline* split_at = nullptr;      // split_after_s: stop here, the open branches stay on the stack
  // ... after expanding the shallowest ones (split_min_branches) for at most split_after_s / 2
  // (and 1 s) from the moment split_at expired (at split_after_s, or earlier when asked: split_now)
  std::optional<Deadline> split_expand;
  VerifyOptions local_pgd;  // the short PGD run inside every 8th input-split branch
  bool input_split = true;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Domain> stack;
  int busy = 0;
  bool undecided = false;  // some leaf ended unknown (Z3 unknown/timeout, depth limit)
  std::string undecided_reason;
  std::optional<Counterexample> cex;
  std::atomic<int64_t> domains{0};
  std::atomic<int64_t> z3_calls{0};
  std::atomic<int64_t> pattern_closed{0}, pattern_failed{0};  // boxes decided / not decided by refute_pattern
  // Progress trace (MLAUDIT_VERIFY_TRACE=1): fraction of the root box's volume closed so far.
  bool trace = false;
  double closed_volume = 0;
  int max_depth = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last_trace = start;
};

// Volume of a box relative to the root box, over the dimensions that vary at the root.
double relative_volume(const InputBox& box, const InputBox& root) {
  double v = 1;
  for (size_t i = 0; i < box.lower.size(); ++i) {
    double w = root.upper[i] - root.lower[i];
    if (w > 0) v *= (box.upper[i] - box.lower[i]) / w;
  }
  return v;
}

// Rows to try for one conjunction: each row, plus their sum when there are
// several (sum of rows <= 0 is implied by the conjunction, so lower(sum) > 0 refutes it).
std::vector<OutputConstraint> refutation_rows(const OutputConjunction& conj) {
  std::vector<OutputConstraint> rows(conj.begin(), conj.end());
  if (conj.size() > 1) {
    OutputConstraint s;
    s.coef.assign(conj[0].coef.size(), 0.0);
    for (const auto& c : conj) {
      for (size_t j = 0; j < s.coef.size(); ++j) s.coef[j] += c.coef[j];
      s.constant += c.constant;
    }
    rows.push_back(std::move(s));
  }
  return rows;
}

// Best non-negative combination of a conjunction's linear row bounds
// r_j(y) >= a_j . x + c_j (the first `m` entries of `rows`). The conjunction
// {r_j <= 0 for all j} is empty on the box when the LP {x in box: a_j . x + c_j
// <= 0} is infeasible, i.e. (LP duality) when some lambda >= 0, sum 1, has
// min_box sum_j lambda_j (a_j . x + c_j) > 0. The best lambda attains
// min_box max_j (a_j . x + c_j); box_lp.h solves that LP exactly (in double).
// The chosen lambda's bound is then recomputed with outward rounding, so the
// result is sound whatever the LP's float error. Needed where different rows
// hold in different parts of the box (ACAS Xu properties 2-4, "output 0 is
// (not) the largest"). (Projected supergradient ascent, used before, stalled
// away from the optimum: measured on ACAS Xu 3_3 property 2, -6.9e-4 where
// one row alone gave -6.2e-4.)
}  // namespace

ObjectiveBound combine_row_bounds(const std::vector<ObjectiveBound>& rows, size_t m, const InputBox& box,
                                  std::vector<double>* weights) {
  const size_t n = box.lower.size();
  std::vector<double> coef(n), coef_mag(n);
  ObjectiveBound best;
  best.lower = -std::numeric_limits<double>::infinity();
  // min_box sum_j lam_j (a_j . x + c_j) for the given (exact) weights, less a
  // rounding allowance: the m-term sums coef_i = sum_j lam_j a_ji and
  // c = sum_j lam_j c_j err by at most gamma(m) times their terms' magnitudes
  // (Higham Thm 3.1; the sign of a computed coef_i still picks a corner that
  // is optimal up to that error), and the final (n + 1)-term sum by gamma(n + 2)
  // of its own; gamma(m + n + 4) = gamma(m) + gamma(n + 2) on the term
  // magnitudes sum_j |lam_j c_j| + sum_i (sum_j |lam_j a_ji|) max|x_i| covers
  // both, however much the rows cancel.
  auto evaluate = [&](const std::vector<double>& lam) {
    std::fill(coef.begin(), coef.end(), 0.0);
    std::fill(coef_mag.begin(), coef_mag.end(), 0.0);
    double c = 0, mag = 0;
    for (size_t j = 0; j < m; ++j) {
      for (size_t i = 0; i < n; ++i) {
        coef[i] += lam[j] * rows[j].input_coef[i];
        coef_mag[i] += std::fabs(lam[j] * rows[j].input_coef[i]);
      }
      c += lam[j] * rows[j].constant;
      mag += std::fabs(lam[j] * rows[j].constant);
    }
    double v = c;
    for (size_t i = 0; i < n; ++i) {
      v += coef[i] * (coef[i] >= 0 ? box.lower[i] : box.upper[i]);
      mag += coef_mag[i] * std::max(std::fabs(box.lower[i]), std::fabs(box.upper[i]));
    }
    const double g = v - 2.0 * double(m + n + 6) * 1.1102230246251565e-16 * mag;
    if (g > best.lower) {
      best.lower = g;
      best.input_coef = coef;
      best.constant = c;
      if (weights) *weights = lam;
    }
  };
  // The plain sum (the centre of the simplex) as a fallback should the LP fail numerically.
  evaluate(std::vector<double>(m, 1.0 / double(m)));
  std::vector<std::vector<double>> a(m);
  std::vector<double> c(m);
  for (size_t j = 0; j < m; ++j) {
    a[j] = rows[j].input_coef;
    c[j] = rows[j].constant;
  }
  detail::MinMaxAffine lp = detail::min_max_affine(a, c, box);
  if (lp.solved) evaluate(lp.weights);
  return best;
}

namespace {

// sum_j lam_j row_j of a conjunction, computed in double.
OutputConstraint weighted_row(const OutputConjunction& conj, const std::vector<double>& lam) {
  OutputConstraint row;
  row.coef.assign(conj[0].coef.size(), 0.0);
  for (size_t j = 0; j < conj.size(); ++j) {
    for (size_t k = 0; k < row.coef.size(); ++k) row.coef[k] += lam[j] * conj[j].coef[k];
    row.constant += lam[j] * conj[j].constant;
  }
  return row;
}

// Bound on |weighted_row(conj, lam) . y - sum_j lam_j (row_j . y)| over the
// output box [ylo, yup]: each of the m-term sums has relative error gamma(m).
double row_rounding(const OutputConjunction& conj, const std::vector<double>& lam, const std::vector<double>& ylo,
                    const std::vector<double>& yup) {
  const double g = 2.0 * double(conj.size() + 2) * 1.1102230246251565e-16;
  double err = 0;
  for (size_t j = 0; j < conj.size(); ++j) {
    double e = std::fabs(lam[j] * conj[j].constant);
    for (size_t k = 0; k < conj[j].coef.size(); ++k)
      e += std::fabs(lam[j] * conj[j].coef[k]) * std::max(std::fabs(ylo[k]), std::fabs(yup[k]));
    err += e;
  }
  return g * err;
}

bool infeasible(const Network& net, const LayerBounds& b) {
  for (size_t k = 0; k + 1 < net.layers.size(); ++k)
    for (size_t j = 0; j < b.lower[k].size(); ++j)
      if (b.lower[k][j] > b.upper[k][j]) return true;
  return false;
}

std::optional<Counterexample> try_point(const Search& s, const std::vector<double>& x) {
  std::vector<double> y = s.net.forward(x);
  if (!violates(s.sub.unsafe, y)) return std::nullopt;
  auto point = float_point_in_box(x, s.sub.box);
  if (!point) return std::nullopt;
  const std::vector<float>& xf = *point;
  std::vector<float> yf = s.opts.concrete ? s.opts.concrete(xf) : s.net.forward_f32(xf);
  std::vector<double> yd(yf.begin(), yf.end());
  if (!violates(s.sub.unsafe, yd)) return std::nullopt;
  return Counterexample{std::vector<double>(xf.begin(), xf.end()), yd};
}

// Decide a leaf exactly with Z3 (its bounds fix the stable ReLUs).
void z3_leaf(Search& s, const Domain& d, const LayerBounds& b) {
  std::vector<OutputConjunction> open;
  for (size_t ci : d.open) open.push_back(s.sub.unsafe[ci]);
  s.z3_calls.fetch_add(1);
  VerifyResult r = z3_check(s.net, d.box, b, open, std::min(s.opts.z3_leaf_timeout_s, s.deadline.remaining_s()),
                            s.deadline, s.opts.concrete);
  std::lock_guard<std::mutex> lk(s.mu);
  if (r.verdict == Verdict::Sat) {
    if (!s.cex) s.cex = r.counterexample;
    s.deadline.cancel();
  } else if (r.verdict != Verdict::Unsat) {
    s.undecided = true;
    s.undecided_reason = r.reason.empty() ? std::string("z3 ") + verdict_name(r.verdict) : r.reason;
  }
}

// Refutation of one conjunction on a box with few unstable ReLUs by splitting
// them into activation patterns (complete ReLU branch and bound, Bunel et al.
// 2020; once every ReLU is fixed the network is affine on the pattern's
// region, the star-set view of nnenum, Bak et al., CAV 2020). Unstable neurons
// are split in layer order, each split tightening the layers above it. A
// pattern's region R is {x in box: s_i z_i(x) >= 0 for its splits}; CROWN with
// the splits gives, valid on R, lower bounds r_j(y) >= L_j(x) of the rows and
// -s_i z_i(x) >= l_i(x) of the split neurons (crown_hidden_objective), so an
// unsafe point of R satisfies L_j(x) <= 0 and l_i(x) <= 0 (from s_i z_i >= 0).
// The pattern is closed when that LP over the box is infeasible, decided by
// combine_row_bounds (box_lp.h for the weights, then an outward-rounded
// concretisation of the combined bound, so the proof is sound whatever the
// LP's float error). This is beta-CROWN's use of split constraints (Wang et
// al., NeurIPS 2021) with the multipliers chosen exactly by the LP, which low
// input dimension makes cheap. When every ReLU is fixed the bounds are exact
// up to rounding, so the test is exact too. `budget` caps the splits;
// `candidate` receives the LP's point where a fully fixed pattern stays open
// (where a counterexample may sit).
struct PatternSearch {
  const Network& net;
  const InputBox& box;
  const OutputConjunction& conj;
  const Deadline& deadline;
  int budget;
  std::optional<std::vector<double>> candidate;
};

bool refute_pattern(PatternSearch& ps, ReluSplits& splits, const LayerBounds& b) {
  const Network& net = ps.net;
  if (infeasible(net, b)) return true;
  std::vector<ObjectiveBound> linear = crown_objective(net, ps.box, b, ps.conj);
  for (const auto& o : linear)
    if (o.lower > 0) return true;
  for (size_t k = 0; k < splits.size(); ++k) {
    std::vector<OutputConstraint> split_rows;
    for (size_t j = 0; j < splits[k].size(); ++j) {
      if (splits[k][j] == 0) continue;
      OutputConstraint row;
      row.coef.assign(splits[k].size(), 0.0);
      row.coef[j] = -double(splits[k][j]);
      split_rows.push_back(std::move(row));
    }
    if (split_rows.empty()) continue;
    for (auto& o : crown_hidden_objective(net, ps.box, b, k, split_rows)) linear.push_back(std::move(o));
  }
  if (linear.size() > 1 && combine_row_bounds(linear, linear.size(), ps.box).lower > 0) return true;
  // First unstable neuron in layer order.
  for (size_t k = 0; k + 1 < net.layers.size(); ++k)
    for (size_t j = 0; j < b.lower[k].size(); ++j) {
      if (!(b.lower[k][j] < 0 && b.upper[k][j] > 0)) continue;
      if (--ps.budget < 0 || ps.deadline.stop()) return false;
      for (int8_t phase : {int8_t(1), int8_t(-1)}) {
        splits[k][j] = phase;
        LayerBounds child = crown_bounds(net, ps.box, splits, false, false, &b);
        const bool closed = refute_pattern(ps, splits, child);
        splits[k][j] = 0;
        if (!closed) return false;
      }
      return true;
    }
  // Every ReLU fixed and the pattern still open: remember where the LP puts its point.
  std::vector<std::vector<double>> a;
  std::vector<double> c;
  for (const auto& o : linear) {
    a.push_back(o.input_coef);
    c.push_back(o.constant);
  }
  detail::MinMaxAffine lp = detail::min_max_affine(a, c, ps.box);
  if (lp.solved) ps.candidate = lp.point;
  return false;
}

// d z_k / d x at x for every hidden layer k (per neuron, per input): forward
// mode through the affine maps, J_0 = W_0, J_k = W_k D_{k-1} J_{k-1}, with
// D the ReLUs' activity at x. Networks without pooling only.
std::vector<std::vector<std::vector<double>>> centre_jacobian(const Network& net, const std::vector<double>& x) {
  const size_t n = x.size();
  const auto z = net.pre_activations(x);
  std::vector<std::vector<std::vector<double>>> jac(net.layers.size() - 1);
  for (size_t k = 0; k + 1 < net.layers.size(); ++k) {
    const AffineLayer& L = net.layers[k];
    jac[k].assign(size_t(L.out), std::vector<double>(n, 0.0));
    for (int64_t o = 0; o < L.out; ++o)
      for (int64_t i = 0; i < L.in; ++i) {
        const double w = L.weight[size_t(o * L.in + i)];
        if (w == 0) continue;
        if (k == 0) {
          jac[k][size_t(o)][size_t(i)] += w;
        } else if (z[k - 1][size_t(i)] > 0) {
          for (size_t t = 0; t < n; ++t) jac[k][size_t(o)][t] += w * jac[k - 1][size_t(i)][t];
        }
      }
  }
  return jac;
}

// The warm-start key of row r of conjunction ci (Domain::warm).
size_t warm_key(size_t ci, size_t r) { return ci * 64 + std::min<size_t>(r, 63); }

// A branch between its CROWN bounds and its alpha/beta-CROWN step: prepare() bounds it up to that
// step, finish() takes the step's bounds and branches (process_batch takes the step for several
// branches at once).
struct Conj {
  size_t ci = 0;
  std::vector<OutputConstraint> rows;
  std::vector<std::vector<std::vector<double>>> relu_coef;
  ObjectiveBound best;
  std::vector<double> best_lam;  // the rows' weights when the best bound is a combination
  size_t best_row = 0;
  bool refuted = false;
};
struct Work {
  Domain d;
  int64_t domain_index = 0;
  std::shared_ptr<LayerBounds> bp;
  std::vector<Conj> conjs;
  bool closed = false;  // infeasible bounds: nothing to do
  // beta-CROWN's rows (every row of each conjunction CROWN left open), their warm_out keys and
  // warm starts (in: the parent's, out: this branch's).
  std::vector<OutputConstraint> rows;
  std::vector<size_t> keys;
  std::vector<SplitMultipliers> st;
};

Work prepare(Search& s, Domain d) {
  Work w;
  w.domain_index = s.domains.fetch_add(1);
  const Network& net = s.net;
  // Input splits shrink the box, so the parent's bounds still hold and are intersected in.
  // At the root, alpha-CROWN also tightens the hidden layers (input splitting
  // then carries those bounds into every branch through `parent`). One slope
  // set per hidden neuron costs (neurons x ReLUs below) per step, so only on
  // networks with few ReLUs (ACAS Xu: 300; the bundled CNN's 18,880 would take
  // tens of seconds).
  const LayerBounds* prior = s.input_split ? d.parent.get() : nullptr;
  // ReLU splitting with beta-CROWN keeps the parent's intermediate bounds and only adds the new
  // split (Wang et al. 2021 re-optimise the objective, not every layer): l >= 0 for an active
  // split, u <= 0 for an inactive one; the split constraints themselves enter the objective's
  // bound through their multipliers.
  const bool beta = !s.input_split && s.opts.beta_crown && d.parent;
  std::shared_ptr<LayerBounds>& bp = w.bp;
  if (beta) {
    bp = std::make_shared<LayerBounds>(*d.parent);
    apply_splits(d.splits, *bp);
  } else {
    bp = std::make_shared<LayerBounds>(
        s.opts.alpha_crown && s.opts.alpha_crown_hidden && d.depth == 0 && net.relu_count() <= 4096
            ? alpha_crown_bounds(net, d.box, d.splits, prior)
            : crown_bounds(net, d.box, d.splits, false, false, prior));
  }
  const LayerBounds& b = *bp;
  if (infeasible(net, b)) {
    w.closed = true;
    return w;
  }
  std::vector<Conj>& conjs = w.conjs;
  conjs.reserve(d.open.size());
  for (size_t ci : d.open) {
    Conj& cj = conjs.emplace_back();
    cj.ci = ci;
    cj.rows = refutation_rows(s.sub.unsafe[ci]);
    const auto& rows = cj.rows;
    auto obj = crown_objective(net, d.box, b, rows, nullptr, &cj.relu_coef);
    bool& refuted = cj.refuted;
    size_t& best_row = cj.best_row;
    for (size_t r = 0; r < obj.size(); ++r) {
      if (obj[r].lower > 0) refuted = true;
      if (obj[r].lower > obj[best_row].lower) best_row = r;
    }
    cj.best = obj[best_row];
    ObjectiveBound& best = cj.best;
    std::vector<double>& best_lam = cj.best_lam;
    if (!refuted && s.sub.unsafe[ci].size() > 1) {
      std::vector<double> lam;
      ObjectiveBound comb = combine_row_bounds(obj, s.sub.unsafe[ci].size(), d.box, &lam);
      if (comb.lower > 0) refuted = true;
      else if (comb.lower > best.lower) {
        best = std::move(comb);
        best_lam = lam;
      }
      if (!refuted && lam.size() == s.sub.unsafe[ci].size()) {
        // Back-substitute the combined row itself: its ReLU relaxations follow
        // the combined coefficients, where rows of opposite sign cancel, so it
        // can be tighter than the combination of separately relaxed rows.
        OutputConstraint row = weighted_row(s.sub.unsafe[ci], lam);
        ObjectiveBound direct = crown_objective(net, d.box, b, {row})[0];
        // The computed row differs from the exact combination sum_j lam_j row_j
        // by rounding (at most gamma(m) sum_j lam_j |coef_j| per output); the
        // output's interval bounds turn that into a constant allowance.
        direct.lower -= row_rounding(s.sub.unsafe[ci], lam, b.lower.back(), b.upper.back());
        if (direct.lower > 0) refuted = true;
        else if (direct.lower > best.lower) {
          best = std::move(direct);
          best_lam = lam;
        }
      }
    }
  }
  if (!s.input_split && s.opts.beta_crown) {
    for (const Conj& cj : conjs)
      if (!cj.refuted)
        for (size_t r = 0; r < cj.rows.size(); ++r) {
          w.rows.push_back(cj.rows[r]);
          w.keys.push_back(warm_key(cj.ci, r));
        }
    w.st.resize(w.rows.size());
    for (size_t i = 0; i < w.rows.size(); ++i)
      if (d.warm)
        if (auto it = d.warm->find(w.keys[i]); it != d.warm->end()) w.st[i] = it->second;
  }
  w.d = std::move(d);
  return w;
}

// The rest of a branch after alpha/beta-CROWN (`ab`: the bounds of w.rows; empty without beta-CROWN):
// its open conjunctions, falsification, and its children (empty when closed).
std::vector<Domain> finish(Search& s, Work& w, std::vector<ObjectiveBound> ab) {
  const Network& net = s.net;
  Domain& d = w.d;
  const int64_t domain_index = w.domain_index;
  const std::shared_ptr<LayerBounds>& bp = w.bp;
  const LayerBounds& b = *bp;
  std::vector<Conj>& conjs = w.conjs;
  // Refute conjunctions; remember the worst row and its linear bound for branching.
  std::vector<size_t> still_open;
  std::vector<double> open_lower;  // the best lower bound of each still-open conjunction
  double worst = std::numeric_limits<double>::infinity();
  ObjectiveBound worst_bound;
  std::vector<std::vector<double>> worst_relu_coef;
  std::map<size_t, SplitMultipliers> warm_out;  // this branch's optimised slopes and multipliers
  OutputConstraint worst_row;                   // the row of the worst bound, and its warm_out key
  size_t worst_key = 0;
  if (!s.input_split && s.opts.beta_crown) {
    // alpha-CROWN at the root, beta-CROWN below it (the split constraints by their multipliers),
    // each row warm-started from the parent's slopes and multipliers (prepare, process_batch).
    std::vector<size_t>& keys = w.keys;
    std::vector<SplitMultipliers>& st = w.st;
    size_t i = 0;
    for (Conj& cj : conjs) {
      if (cj.refuted) continue;
      for (size_t r = 0; r < cj.rows.size(); ++r, ++i) {
        warm_out[keys[i]] = std::move(st[i]);
        if (cj.refuted) continue;
        if (ab[i].lower > 0) cj.refuted = true;
        else if (r == cj.best_row && ab[i].lower > cj.best.lower) {
          cj.best = std::move(ab[i]);
          cj.best_lam.clear();
        }
      }
    }
  } else if (s.opts.alpha_crown && d.depth == 0) {
    for (Conj& cj : conjs)
      for (size_t r = 0; r < cj.rows.size() && !cj.refuted; ++r)
        if (alpha_crown_objective(net, d.box, b, cj.rows[r]).lower > 0) cj.refuted = true;
  }
  for (Conj& cj : conjs) {
    if (cj.refuted) continue;
    still_open.push_back(cj.ci);
    open_lower.push_back(cj.best.lower);
    if (cj.best.lower < worst) {
      worst = cj.best.lower;
      worst_row = cj.rows[cj.best_row];
      worst_key = warm_key(cj.ci, cj.best_row);
      worst_bound = std::move(cj.best);
      worst_relu_coef = cj.relu_coef[cj.best_row];
      if (!cj.best_lam.empty()) {
        // A combination's ReLU coefficients: the rows' coefficients with its weights.
        for (size_t k = 0; k < worst_relu_coef.size(); ++k)
          for (size_t j = 0; j < worst_relu_coef[k].size(); ++j) {
            double c = 0;
            for (size_t r = 0; r < cj.best_lam.size(); ++r) c += cj.best_lam[r] * cj.relu_coef[r][k][j];
            worst_relu_coef[k][j] = c;
          }
      }
    }
  }
  if (s.trace && d.depth == 0) {
    std::string bounds;
    for (const Conj& cj : conjs) bounds += fmt::format(" {}:{}", cj.ci, cj.refuted ? std::string("refuted") : fmt::format("{:.6g}", cj.best.lower));
    std::fprintf(stderr, "verify trace: root, %lld unstable ReLUs, lower bound per conjunction:%s\n",
                 static_cast<long long>(unstable_relu_count(net, b)), bounds.c_str());
  }
  if (still_open.empty()) return {};
  d.open = still_open;
  const int64_t unstable_here = unstable_relu_count(net, b);
  if (s.input_split && !net.has_pooling() && net.relu_count() <= 4096 &&
      unstable_here <= s.opts.pattern_max_unstable) {
    // Few unstable ReLUs left: decide the box exactly by their activation
    // patterns (refute_pattern) instead of bisecting it further. An attempt
    // costs up to 2 x pattern_max_splits bound computations, so only on
    // networks with few ReLUs (ACAS Xu: 300), as for alpha_crown_hidden.
    bool all_refuted = true;
    std::optional<std::vector<double>> candidate;
    for (size_t ci : d.open) {
      PatternSearch ps{net, d.box, s.sub.unsafe[ci], s.deadline, s.opts.pattern_max_splits, std::nullopt};
      ReluSplits splits(net.layers.size() - 1);
      for (size_t k = 0; k + 1 < net.layers.size(); ++k) splits[k].assign(size_t(net.layers[k].out), 0);
      if (refute_pattern(ps, splits, b)) continue;
      all_refuted = false;
      if (ps.candidate && !candidate) candidate = ps.candidate;
    }
    if (all_refuted) {
      s.pattern_closed.fetch_add(1);
      return {};
    }
    s.pattern_failed.fetch_add(1);
    if (candidate)
      if (auto cex = try_point(s, *candidate)) {
        std::lock_guard<std::mutex> lk(s.mu);
        if (!s.cex) s.cex = cex;
        s.deadline.cancel();
        return {};
      }
  }

  // Cheap falsification: the corner minimising the worst linear bound, and the centre.
  const size_t n = d.box.lower.size();
  std::vector<double> corner(n), centre(n);
  for (size_t i = 0; i < n; ++i) {
    corner[i] = worst_bound.input_coef[i] >= 0 ? d.box.lower[i] : d.box.upper[i];
    centre[i] = 0.5 * (d.box.lower[i] + d.box.upper[i]);
  }
  for (const auto* x : {&corner, &centre})
    if (auto cex = try_point(s, *x)) {
      std::lock_guard<std::mutex> lk(s.mu);
      if (!s.cex) s.cex = cex;
      s.deadline.cancel();
      return {};
    }
  // Input splitting: every 8th open domain also gets a short local PGD (8
  // samples, one 20-step restart from the best), which finds counterexamples
  // that are rare in the whole box but not in a small branch of it.
  if (s.input_split && domain_index % 8 == 0) {
    SubProperty local{d.box, s.sub.unsafe};
    if (auto cex = falsify(net, local, s.local_pgd, s.deadline, s.opts.seed + uint64_t(domain_index))) {
      std::lock_guard<std::mutex> lk(s.mu);
      if (!s.cex) s.cex = cex;
      s.deadline.cancel();
      return {};
    }
  }

  if (s.input_split) {
    // Bisect the dimension with the largest |coef| * width (its share of the bound's looseness).
    size_t dim = 0;
    double best = -1;
    // Dimensions already bisected down to a sliver of the root width (1e-9) are
    // not split again: their share of the bound is rounding noise (measured on
    // ACAS Xu 3_3 property 2: four dimensions at float resolution, the fifth at
    // its full width, the bound stuck at -4e-16).
    auto sliver = [&](size_t i) {
      return !(d.box.upper[i] - d.box.lower[i] > 1e-9 * (s.sub.box.upper[i] - s.sub.box.lower[i]));
    };
    // The score also charges each dimension its share of the ReLU relaxations'
    // looseness: unstable neuron z with range [l, u] and coefficient c in the
    // worst bound loses at most |c| g, g = -l u / (u - l) under the upper chord
    // (c < 0) or min(-l, u) under the adaptive lower line (CROWN Sec. 3.2; the
    // BaBSR score of Bunel et al. 2020), and its range comes from the inputs in
    // proportion to |dz/dx_i| width_i (first order, at the box centre).
    // Without it the linear score sees only the concretisation term and keeps
    // bisecting dimensions that are already tiny while a wide one, flat in the
    // bound, keeps the ReLUs unstable: measured on ACAS Xu 3_3 property 2,
    // boxes at depth 100 with four dimensions at 1e-8 of the root width, the
    // fifth at 1/64, four unstable ReLUs, and the bound creeping towards 0 from
    // below with every split (a 116 s timeout).
    std::vector<double> relax_score(n, 0.0);
    if (!net.has_pooling()) {
      const auto jac = centre_jacobian(net, centre);
      for (size_t k = 0; k + 1 < net.layers.size() && k < worst_relu_coef.size(); ++k)
        for (size_t j = 0; j < b.lower[k].size() && j < worst_relu_coef[k].size(); ++j) {
          const double l = b.lower[k][j], u = b.upper[k][j], c = worst_relu_coef[k][j];
          if (!(l < 0 && u > 0) || c == 0) continue;
          const double gap = std::fabs(c) * (c < 0 ? -l * u / (u - l) : std::min(-l, u));
          double range = 0;
          for (size_t i = 0; i < n; ++i) range += std::fabs(jac[k][j][i]) * (d.box.upper[i] - d.box.lower[i]);
          if (!(range > 0)) continue;
          for (size_t i = 0; i < n; ++i)
            relax_score[i] += gap * std::fabs(jac[k][j][i]) * (d.box.upper[i] - d.box.lower[i]) / range;
        }
    }
    for (size_t i = 0; i < n; ++i) {
      if (sliver(i)) continue;
      double score = std::fabs(worst_bound.input_coef[i]) * (d.box.upper[i] - d.box.lower[i]) + relax_score[i];
      if (score > best) {
        best = score;
        dim = i;
      }
    }
    // The linear score measures only the concretisation term of the bound. When
    // splitting every dimension fully could not close the gap that way (the
    // looseness sits in the ReLU relaxations, i.e. in intermediate bounds that all
    // dimensions feed), it degenerates into bisecting already-tiny dimensions:
    // measured on ACAS Xu 4_6 property 1, depth 120 with two dimensions still at
    // their full width. Then choose by lookahead as well.
    double total_score = 0;
    for (size_t i = 0; i < n; ++i)
      if (!sliver(i))
        total_score += std::fabs(worst_bound.input_coef[i]) * (d.box.upper[i] - d.box.lower[i]) + relax_score[i];
    const bool degenerate = !(total_score > -worst);
    const bool look_ahead = (d.depth < s.opts.lookahead_depth && d.open.size() == 1) || degenerate;
    if (look_ahead) {
      // Lookahead near the root, where a split decision shapes the whole tree:
      // bound both halves for every varying dimension and keep the split whose
      // halves have the best bounds (below). Near the root only for a single open conjunction
      // (measured on ACAS Xu: it helps properties 1-4 and slows property 6's
      // four-way disjunction).
      double best_gain = -std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < n; ++i) {
        if (sliver(i)) continue;
        double mid = 0.5 * (d.box.lower[i] + d.box.upper[i]);
        double split_score = std::numeric_limits<double>::infinity();
        for (int half = 0; half < 2; ++half) {
          InputBox hb = d.box;
          (half == 0 ? hb.upper[i] : hb.lower[i]) = mid;
          LayerBounds cb = crown_bounds(net, hb, {}, false, false, &b);
          double half_score = std::numeric_limits<double>::infinity();
          for (size_t oi = 0; oi < d.open.size(); ++oi) {
            const size_t ci = d.open[oi];
            auto obj = crown_objective(net, hb, cb, s.sub.unsafe[ci]);
            double best_row = -std::numeric_limits<double>::infinity();
            for (const auto& o : obj) best_row = std::max(best_row, o.lower);
            if (s.sub.unsafe[ci].size() > 1 && best_row <= 0)
              best_row = std::max(best_row, combine_row_bounds(obj, s.sub.unsafe[ci].size(), hb).lower);
            // The parent's bound holds on the half too; without this floor CROWN's
            // non-monotone slope choice made halving the right dimension look
            // worse than the parent (measured on ACAS Xu 3_3 property 2).
            best_row = std::max(best_row, open_lower[oi]);
            half_score = std::min(half_score, best_row);
          }
          // Score of a split: the sum of both halves' bounds, each capped at 0
          // (a closed half counts as closed, however large its margin). The
          // max-min alternative (the worse half only) keeps chasing a ReLU kink
          // inside the box, where one half never improves: measured on ACAS Xu
          // 1_1 property 2, a 116 s timeout with max-min, 0.8 s with the sum.
          if (half == 0) split_score = 0;
          split_score += std::min(half_score, 0.0);
        }
        if (split_score > best_gain) {
          best_gain = split_score;
          dim = i;
        }
      }
      // No half improves on the parent: the dimension widest relative to the root box.
      if (degenerate && !(best_gain > 2 * std::min(worst, 0.0) + 1e-9 * std::max(1.0, std::fabs(worst)))) {
        double widest = -1;
        for (size_t i = 0; i < n; ++i) {
          double root_w = s.sub.box.upper[i] - s.sub.box.lower[i];
          if (!(root_w > 0)) continue;
          double w = (d.box.upper[i] - d.box.lower[i]) / root_w;
          if (w > widest) {
            widest = w;
            dim = i;
          }
        }
      }
    }
    if (best <= 0 && !look_ahead) {  // bound does not depend on the box: widest dimension (relative to the root)
      for (size_t i = 0; i < n; ++i) {
        double root_w = s.sub.box.upper[i] - s.sub.box.lower[i];
        if (root_w > 0 && (d.box.upper[i] - d.box.lower[i]) / root_w > best) {
          best = (d.box.upper[i] - d.box.lower[i]) / root_w;
          dim = i;
        }
      }
    }
    double mid = 0.5 * (d.box.lower[dim] + d.box.upper[dim]);
    if (!(mid > d.box.lower[dim] && mid < d.box.upper[dim]) || d.depth > 400) {
      std::lock_guard<std::mutex> lk(s.mu);
      s.undecided = true;
      s.undecided_reason = "input split reached float resolution";
      return {};
    }
    Domain lo = d, hi = std::move(d);
    lo.box.upper[dim] = mid;
    hi.box.lower[dim] = mid;
    lo.depth = hi.depth = lo.depth + 1;
    lo.parent = hi.parent = bp;
    // The worker explores the last child first: make it the half holding the
    // corner that minimises the worst linear bound (where a counterexample is
    // likeliest), so sat instances meet it sooner; unsat ones visit both anyway.
    if (corner[dim] <= mid) return {std::move(hi), std::move(lo)};
    return {std::move(lo), std::move(hi)};
  }

  // ReLU splitting: every unstable neuron with its BaBSR score (the chord's intercept weighted by
  // its back-substituted coefficient in the worst bound).
  std::vector<std::tuple<double, size_t, size_t>> cand;
  for (size_t k = 0; k + 1 < net.layers.size(); ++k)
    for (size_t j = 0; j < b.lower[k].size(); ++j) {
      double l = b.lower[k][j], u = b.upper[k][j];
      if (!(l < 0 && u > 0)) continue;
      double coef = k < worst_relu_coef.size() && j < worst_relu_coef[k].size() ? std::fabs(worst_relu_coef[k][j]) : 1.0;
      cand.emplace_back(coef * (-l * u / (u - l)) + 1e-12 * (u - l), k, j);
    }
  if (int64_t(cand.size()) <= s.opts.z3_max_unstable) {
    z3_leaf(s, d, b);
    return {};
  }
  // Filtered smart branching (FSB; De Palma et al., "Improved Branch and Bound for Neural Network
  // Verification via Lagrangian Decomposition", 2021): the BaBSR score only ranks candidates;
  // the top few are each tried, both children bounded at this branch's optimised slopes and
  // multipliers (one back-substitution per child, no optimisation), and the split whose worse
  // child is best wins (ties: the better sum). Otherwise (or --no-beta) BaBSR's best.
  const bool fsb = s.opts.beta_crown && s.opts.fsb_candidates > 1 && warm_out.count(worst_key);
  const size_t top = std::min(cand.size(), fsb ? size_t(s.opts.fsb_candidates) : size_t(1));
  // Highest score first; on equal scores the first neuron in layer order (as BaBSR's scan picks it).
  std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(top), cand.end(), [](const auto& x, const auto& y) {
    return std::get<0>(x) > std::get<0>(y) ||
           (std::get<0>(x) == std::get<0>(y) && std::make_pair(std::get<1>(x), std::get<2>(x)) <
                                                    std::make_pair(std::get<1>(y), std::get<2>(y)));
  });
  size_t best_k = std::get<1>(cand[0]), best_j = std::get<2>(cand[0]);
  ReluSplits splits = d.splits;
  if (splits.empty()) {
    splits.resize(net.layers.size() - 1);
    for (size_t k = 0; k + 1 < net.layers.size(); ++k) splits[k].assign(size_t(net.layers[k].out), 0);
  }
  if (fsb) {
    LayerBounds cb = b;
    SplitMultipliers st = warm_out[worst_key];
    double best_min = -std::numeric_limits<double>::infinity(), best_sum = best_min;
    for (size_t c = 0; c < top; ++c) {
      const auto [score, k, j] = cand[c];
      double child[2];
      for (int phase = 0; phase < 2; ++phase) {
        splits[k][j] = phase == 0 ? 1 : -1;
        const double l = b.lower[k][j], u = b.upper[k][j];
        cb.lower[k][j] = phase == 0 ? 0.0 : l;
        cb.upper[k][j] = phase == 0 ? u : 0.0;
        child[phase] = std::min(0.0, beta_crown_objective(net, d.box, cb, splits, worst_row, &st, 0).lower);
        cb.lower[k][j] = l;
        cb.upper[k][j] = u;
      }
      splits[k][j] = 0;
      const double mn = std::min(child[0], child[1]), sm = child[0] + child[1];
      if (mn > best_min || (mn == best_min && sm > best_sum)) {
        best_min = mn;
        best_sum = sm;
        best_k = k;
        best_j = j;
      }
    }
  }
  Domain on = d, off = std::move(d);
  on.splits = std::move(splits);
  off.splits = on.splits;
  on.splits[best_k][best_j] = 1;
  off.splits[best_k][best_j] = -1;
  on.depth = off.depth = on.depth + 1;
  if (s.opts.beta_crown) {
    on.parent = off.parent = bp;
    auto w = std::make_shared<const std::map<size_t, SplitMultipliers>>(std::move(warm_out));
    on.warm = off.warm = w;
  }
  return {std::move(on), std::move(off)};
}

// Bound domains; returns each one's children (empty when closed). In a ReLU-splitting search with
// beta-CROWN their alpha/beta optimisations run as one (beta_crown_branches: per branch as
// separate calls, the products shared).
std::vector<std::vector<Domain>> process_batch(Search& s, std::vector<Domain> ds) {
  std::vector<Work> ws;
  ws.reserve(ds.size());
  for (auto& d : ds) ws.push_back(prepare(s, std::move(d)));
  std::vector<BranchObjectives> branches;
  std::vector<size_t> owner;
  for (size_t i = 0; i < ws.size(); ++i) {
    Work& w = ws[i];
    if (w.closed || w.rows.empty()) continue;
    BranchObjectives br{&w.d.box, w.bp.get(), &w.d.splits, w.rows, {}};
    for (auto& st : w.st) br.states.push_back(&st);
    branches.push_back(std::move(br));
    owner.push_back(i);
  }
  std::vector<std::vector<ObjectiveBound>> ab(ws.size());
  if (!branches.empty()) {
    auto out = beta_crown_branches(s.net, branches, s.opts.beta_iterations);
    for (size_t k = 0; k < owner.size(); ++k) ab[owner[k]] = std::move(out[k]);
  }
  std::vector<std::vector<Domain>> children(ws.size());
  for (size_t i = 0; i < ws.size(); ++i)
    if (!ws[i].closed) children[i] = finish(s, ws[i], std::move(ab[i]));
  return children;
}

void worker(Search& s) {
  std::unique_lock<std::mutex> lk(s.mu);
  for (;;) {
    s.cv.wait(lk, [&] { return !s.stack.empty() || s.busy == 0 || s.deadline.stop(); });
    if (s.deadline.stop() || s.stack.empty()) {
      s.cv.notify_all();
      return;
    }
    // split_after_s: the branches on the stack are handed to other processes, once at least one
    // was bounded here (every task makes progress) and, up to split_expand, the stack holds
    // split_min_branches: until then the shallowest branch is expanded (breadth first).
    bool breadth = false;
    if (s.split_at && s.domains.load() > 0 && s.split_at->expired()) {
      if (!s.split_expand) s.split_expand.emplace(std::min(0.5 * s.opts.split_after_s, 1.0));
      // Asked to split now (split_now: workers are waiting), a quarter as many: the expansion
      // is the waiting workers' latency, and a piece that turns out long is asked again.
      const bool asked = s.opts.split_now && s.opts.split_now->load(std::memory_order_relaxed);
      const int64_t want = asked ? std::max(1, s.opts.split_min_branches / 4) : s.opts.split_min_branches;
      if (int64_t(s.stack.size()) >= want || s.split_expand->expired()) {
        s.cv.notify_all();
        return;
      }
      breadth = true;
    }
    // ReLU splitting with beta-CROWN takes up to bab_batch branches from the top of the stack (half
    // of it at most, so that the other workers find some) and optimises them together.
    std::vector<Domain> batch;
    if (breadth) {
      auto it = std::min_element(s.stack.begin(), s.stack.end(),
                                 [](const Domain& a, const Domain& b) { return a.depth < b.depth; });
      batch.push_back(std::move(*it));
      s.stack.erase(it);
    } else {
      const size_t want = !s.input_split && s.opts.beta_crown
                              ? std::clamp<size_t>((s.stack.size() + 1) / 2, 1, size_t(std::max(1, s.opts.bab_batch)))
                              : 1;
      while (batch.size() < want) {
        batch.push_back(std::move(s.stack.back()));
        s.stack.pop_back();
      }
    }
    ++s.busy;
    lk.unlock();
    // Share of the search closed: the box's volume (input splitting), 2^-depth of the tree (ReLU splitting).
    std::vector<double> volume;
    std::vector<int> depth;
    for (const Domain& d : batch) {
      volume.push_back(!s.trace ? 0 : s.input_split ? relative_volume(d.box, s.sub.box) : std::ldexp(1.0, -d.depth));
      depth.push_back(d.depth);
    }
    std::vector<std::vector<Domain>> children = process_batch(s, std::move(batch));
    lk.lock();
    --s.busy;
    if (s.trace) {
      for (size_t i = 0; i < children.size(); ++i) {
        if (children[i].empty()) s.closed_volume += volume[i];
        s.max_depth = std::max(s.max_depth, depth[i]);
      }
      auto now = std::chrono::steady_clock::now();
      if (now - s.last_trace > std::chrono::seconds(2)) {
        s.last_trace = now;
        std::fprintf(stderr,
                     "verify trace: %.1f s, %lld domains, %zu open, %.6f%% of the box closed, depth %d, "
                     "%lld closed by activation patterns (%lld tried in vain)\n",
                     std::chrono::duration<double>(now - s.start).count(), (long long)s.domains.load(), s.stack.size(),
                     100 * s.closed_volume, s.max_depth, (long long)s.pattern_closed.load(),
                     (long long)s.pattern_failed.load());
      }
    }
    // Depth first (bounded memory): the second child is explored first; the branch taken from the
    // top of the stack gets its children back on top.
    for (size_t i = children.size(); i-- > 0;)
      for (auto& c : children[i]) s.stack.push_back(std::move(c));
    s.cv.notify_all();
  }
}

// A search branch as another process receives it (case `case_index`), and back.
OpenBranch open_branch(Domain d, size_t case_index) {
  OpenBranch b;
  b.case_index = case_index;
  b.box = std::move(d.box);
  b.splits = std::move(d.splits);
  b.open = std::move(d.open);
  b.depth = d.depth;
  return b;
}
Domain domain_of(const OpenBranch& b) {
  Domain d;
  d.box = b.box;
  d.splits = b.splits;
  d.open = b.open;
  d.depth = b.depth;
  return d;
}

std::string split_reason(const VerifyOptions& opts, size_t branches) {
  if (opts.split_now && opts.split_now->load()) return fmt::format("split on request: {} open branches handed out", branches);
  return fmt::format("split after {:g} s: {} open branches handed out", opts.split_after_s, branches);
}

// The branch and bound from `start` (the sub-property's root when empty). With `split_at`, a
// search still open when it expires returns its open branches (case `case_index`).
VerifyResult run_search(const Network& net, const SubProperty& sub, const VerifyOptions& opts, Deadline& dl,
                        const Deadline* split_at, bool input_split, std::vector<Domain> start, size_t case_index) {
  VerifyResult r;
  Search s(net, sub, opts, dl);
  s.input_split = input_split;
  s.split_at = split_at;
  if (const char* t = std::getenv("MLAUDIT_VERIFY_TRACE")) s.trace = *t && *t != '0';
  if (start.empty()) {
    Domain root;
    root.box = sub.box;
    for (size_t i = 0; i < sub.unsafe.size(); ++i) root.open.push_back(i);
    start.push_back(std::move(root));
  }
  for (auto& d : start) s.stack.push_back(std::move(d));
  int threads = opts.threads > 0 ? opts.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&] { worker(s); });
  for (auto& t : pool) t.join();
  r.domains = s.domains.load();
  r.z3_calls = s.z3_calls.load();
  r.method = s.input_split ? "input-bab" : "relu-bab+z3";
  if (s.cex) {
    r.verdict = Verdict::Sat;
    r.counterexample = s.cex;
  } else if (dl.expired() || (!s.stack.empty() && dl.stop())) {
    r.verdict = Verdict::Timeout;
  } else if (!s.stack.empty()) {
    // Stopped at split_at: the open branches go to other processes (the parents' bounds and
    // warm starts stay here; a branch is re-bounded from its box and splits where it runs).
    r.verdict = Verdict::Unknown;
    r.open_undecided = s.undecided;
    r.reason = s.undecided ? s.undecided_reason : split_reason(opts, s.stack.size());
    // Shallowest first (the largest subtrees), so that dealing them round-robin into pieces
    // gives every piece a share of the large ones.
    std::stable_sort(s.stack.begin(), s.stack.end(), [](const Domain& a, const Domain& b) { return a.depth < b.depth; });
    for (auto& d : s.stack) r.open_branches.push_back(open_branch(std::move(d), case_index));
  } else if (s.undecided) {
    r.verdict = Verdict::Unknown;
    r.reason = s.undecided_reason;
  } else {
    r.verdict = Verdict::Unsat;
    if (r.domains == 1) r.method = "crown";
  }
  return r;
}

// The second, much larger falsification round of low-dimensional queries (verify_sub).
std::optional<Counterexample> strong_falsify(const Network& net, const SubProperty& sub, const VerifyOptions& opts,
                                             const Deadline& deadline, uint64_t seed) {
  VerifyOptions strong = opts;
  strong.random_samples = opts.strong_random_samples;
  strong.pgd_restarts = opts.strong_pgd_restarts;
  return falsify(net, sub, strong, deadline, seed);
}

bool input_splitting(const SubProperty& sub, const VerifyOptions& opts) {
  int varying = 0;
  for (size_t i = 0; i < sub.box.lower.size(); ++i)
    if (sub.box.upper[i] > sub.box.lower[i]) ++varying;
  return varying <= opts.input_split_max_dims;
}

VerifyResult verify_sub(const Network& net, const SubProperty& sub, const VerifyOptions& opts, Deadline& deadline,
                        uint64_t seed, const Deadline* split_at, size_t case_index) {
  VerifyResult res;
  if (sub.unsafe.empty()) {
    res.verdict = Verdict::Unsat;
    res.method = "empty";
    return res;
  }
  if (auto cex = falsify(net, sub, opts, deadline, seed)) {
    res.verdict = Verdict::Sat;
    res.counterexample = cex;
    res.method = "falsify";
    return res;
  }
  const bool input_split = input_splitting(sub, opts);
  auto search = [&](Deadline& dl) { return run_search(net, sub, opts, dl, split_at, input_split, {}, case_index); };
  if (!input_split || opts.strong_random_samples <= opts.random_samples || !(opts.quick_bab_s > 0))
    return search(deadline);
  // Low-dimensional inputs: most queries are decided by a short branch and
  // bound; the undecided ones get a second, much larger falsification round
  // (cheap for small networks: measured on ACAS Xu, 16,384 samples and 64 PGD
  // restarts take about 0.4 s and find counterexamples that 256 samples and 4
  // restarts miss), then the full search. A search split before the quick one
  // ended hands that round out too, as the first branch (falsify_case): it runs beside the
  // pieces' searches instead of before them (on ACAS Xu it finds 1_9 property 7's
  // counterexample in 0.3 s; the pieces' own falsification in ever smaller boxes took 59 s).
  Deadline quick(std::min(opts.quick_bab_s, deadline.remaining_s()));
  VerifyResult first = search(quick);
  if (!first.open_branches.empty()) {
    OpenBranch f;
    f.case_index = case_index;
    f.falsify_case = true;
    first.open_branches.insert(first.open_branches.begin(), std::move(f));
  }
  if (first.verdict != Verdict::Timeout || deadline.stop()) return first;
  if (auto cex = strong_falsify(net, sub, opts, deadline, seed)) {
    res.verdict = Verdict::Sat;
    res.counterexample = cex;
    res.method = "falsify";
    res.domains = first.domains;
    return res;
  }
  VerifyResult full = search(deadline);
  full.domains += first.domains;
  full.z3_calls += first.z3_calls;
  return full;
}

// The cases of a property in order, each either whole (its full query) or from given branches;
// results combined as one query: the first sat wins, a timeout ends the query, open branches
// and unknowns are collected.
VerifyResult verify_cases(const Network& model_net, const Property& prop, const VerifyOptions& opts,
                          const std::vector<std::pair<size_t, std::vector<Domain>>>& work,
                          const std::vector<size_t>& falsify_cases = {}) {
  auto t0 = std::chrono::steady_clock::now();
  // Inputs a skip connection reads ride as relu(x) and relu(-x); on this property's boxes (every
  // branch lies inside one) they become x - lo, exact (specialise_input_copies).
  std::shared_ptr<const Network> specialised;
  if (prop.num_inputs == model_net.input_size() && !prop.cases.empty()) {
    std::vector<double> lo(prop.cases[0].box.lower);
    for (const auto& c : prop.cases)
      for (size_t j = 0; j < lo.size() && j < c.box.lower.size(); ++j) lo[j] = std::min(lo[j], c.box.lower[j]);
    specialised = specialise_input_copies(model_net, lo);
  }
  const Network& net = specialised ? *specialised : model_net;
  VerifyResult total;
  total.verdict = Verdict::Unsat;
  if (prop.num_inputs != net.input_size() || prop.num_outputs != net.output_size())
    throw InputError("verify", prop.source + ": property has " + std::to_string(prop.num_inputs) + " inputs and " +
                                   std::to_string(prop.num_outputs) + " outputs, the model " +
                                   std::to_string(net.input_size()) + " and " + std::to_string(net.output_size()));
  Deadline deadline(opts.timeout_s);
  std::optional<Deadline> split_at;
  if (opts.split_after_s > 0) {
    split_at.emplace(opts.split_after_s);
    split_at->expire_when(opts.split_now);
  }
  const Deadline* split = split_at ? &*split_at : nullptr;
  std::vector<std::string> methods;
  bool undecided = false, worked = false;
  // Handed-out falsification rounds first (cheap, and a counterexample ends the query).
  for (size_t c : falsify_cases) {
    if (auto cex = strong_falsify(net, prop.cases[c], opts, deadline, opts.seed + c)) {
      total.verdict = Verdict::Sat;
      total.counterexample = cex;
      total.method = "falsify";
      total.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return total;
    }
  }
  for (const auto& [c, domains] : work) {
    const SubProperty& sub = prop.cases[c];
    if (split && worked && split->expired()) {
      // Not started before the split: the case (or its given branches) goes to another process
      // as it is (after at least one case ran here, so that every task makes progress).
      if (domains.empty()) {
        OpenBranch b;
        b.case_index = c;
        b.whole_case = true;
        b.box = sub.box;
        total.open_branches.push_back(std::move(b));
      }
      for (const Domain& d : domains) total.open_branches.push_back(open_branch(d, c));
      continue;
    }
    VerifyResult r = domains.empty()
                         ? verify_sub(net, sub, opts, deadline, opts.seed + c, split, c)
                         : run_search(net, sub, opts, deadline, split, input_splitting(sub, opts), domains, c);
    worked = true;
    total.domains += r.domains;
    total.z3_calls += r.z3_calls;
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
    if (r.verdict == Verdict::Sat) {
      total.verdict = Verdict::Sat;
      total.counterexample = r.counterexample;
      total.method = r.method;
      total.open_branches.clear();
      methods.clear();
      break;
    }
    if (r.verdict == Verdict::Timeout) {
      total.verdict = Verdict::Timeout;
      total.open_branches.clear();
      break;
    }
    if (!r.open_branches.empty()) {
      for (auto& b : r.open_branches) total.open_branches.push_back(std::move(b));
      if (r.open_undecided && !undecided) undecided = true, total.reason = r.reason;
      continue;
    }
    if (r.verdict == Verdict::Unknown && !undecided) {
      undecided = true;
      total.reason = r.reason;
    }
  }
  if (total.verdict == Verdict::Unsat && (undecided || !total.open_branches.empty())) {
    total.verdict = Verdict::Unknown;
    total.open_undecided = undecided && !total.open_branches.empty();
    if (!undecided) total.reason = split_reason(opts, total.open_branches.size());
  }
  if (!methods.empty()) {
    total.method.clear();
    for (const auto& m : methods) total.method += (total.method.empty() ? "" : "+") + m;
  }
  total.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return total;
}

}  // namespace

VerifyResult verify_property(const Network& net, const Property& prop, const VerifyOptions& opts) {
  std::vector<std::pair<size_t, std::vector<Domain>>> work;
  for (size_t c = 0; c < prop.cases.size(); ++c) work.emplace_back(c, std::vector<Domain>{});
  return verify_cases(net, prop, opts, work);
}

VerifyResult verify_branches(const Network& net, const Property& prop, const std::vector<OpenBranch>& branches,
                             const VerifyOptions& opts) {
  // Branches come from a file another process wrote: check each belongs to this property.
  auto bad = [&](size_t i, const std::string& what) {
    return InputError("verify", fmt::format("{}: open branch {}: {}", prop.source, i, what));
  };
  const size_t n = size_t(prop.num_inputs);
  std::map<size_t, std::vector<Domain>> by_case;
  std::set<size_t> whole;
  std::vector<size_t> falsify_cases;
  for (size_t i = 0; i < branches.size(); ++i) {
    const OpenBranch& b = branches[i];
    if (b.case_index >= prop.cases.size())
      throw bad(i, fmt::format("case {} out of range (the property has {})", b.case_index, prop.cases.size()));
    const SubProperty& sub = prop.cases[b.case_index];
    if (b.whole_case) {
      whole.insert(b.case_index);
      continue;
    }
    if (b.falsify_case) {
      falsify_cases.push_back(b.case_index);
      continue;
    }
    if (b.box.lower.size() != n || b.box.upper.size() != n)
      throw bad(i, fmt::format("box has {} dimensions, the property {}", b.box.lower.size(), n));
    for (size_t k = 0; k < n; ++k)
      if (!(b.box.lower[k] <= b.box.upper[k]) || b.box.lower[k] < sub.box.lower[k] || b.box.upper[k] > sub.box.upper[k])
        throw bad(i, fmt::format("input {}: [{}, {}] is not a sub-interval of the property's [{}, {}]", k, b.box.lower[k],
                                 b.box.upper[k], sub.box.lower[k], sub.box.upper[k]));
    if (!b.splits.empty()) {
      if (b.splits.size() + 1 != net.layers.size())
        throw bad(i, fmt::format("splits name {} hidden layers, the network has {}", b.splits.size(), net.layers.size() - 1));
      for (size_t k = 0; k < b.splits.size(); ++k) {
        if (b.splits[k].size() != size_t(net.layers[k].out))
          throw bad(i, fmt::format("splits of hidden layer {} name {} neurons, it has {}", k, b.splits[k].size(),
                                   net.layers[k].out));
        for (int8_t v : b.splits[k])
          if (v < -1 || v > 1) throw bad(i, "a split is not -1, 0 or 1");
      }
    }
    if (b.open.empty()) throw bad(i, "no open conjunction");
    for (size_t c : b.open)
      if (c >= sub.unsafe.size())
        throw bad(i, fmt::format("conjunction {} out of range (the case has {})", c, sub.unsafe.size()));
    if (b.depth < 0) throw bad(i, "negative depth");
    by_case[b.case_index].push_back(domain_of(b));
  }
  std::vector<std::pair<size_t, std::vector<Domain>>> work;
  for (size_t c = 0; c < prop.cases.size(); ++c) {
    if (whole.count(c)) work.emplace_back(c, std::vector<Domain>{});
    else if (auto it = by_case.find(c); it != by_case.end()) work.emplace_back(c, std::move(it->second));
  }
  return verify_cases(net, prop, opts, work, falsify_cases);
}

}  // namespace mlaudit::verify
