#pragma once
// Complete verification: falsification (random + PGD), branch and bound over
// input splits and ReLU splits with CROWN/alpha-CROWN bounds per branch, and
// Z3 (QF_LRA) on leaves with few unstable ReLUs, all under a deadline.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mlaudit/verify/bounds.h"
#include "mlaudit/verify/network.h"
#include "mlaudit/verify/vnnlib.h"

namespace mlaudit::verify {

/// Outcome of a query, VNN-COMP wording: `unsat` = property proved (no
/// counterexample), `sat` = counterexample found and re-checked, `unknown`,
/// `timeout`. Solver unknowns and timeouts are never reported as proved.
enum class Verdict { Unsat, Sat, Unknown, Timeout };

/// "unsat", "sat", "unknown", "timeout".
const char* verdict_name(Verdict v);

/// Wall-clock deadline plus a cancellation flag shared by the workers of one query.
class Deadline {
 public:
  /// A deadline `seconds` from now (<= 0 or infinity: none).
  explicit Deadline(double seconds);
  bool expired() const;
  double remaining_s() const;
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  /// expired() || cancelled().
  bool stop() const { return cancelled() || expired(); }
  /// Expire as soon as `*flag` is true as well (nullptr: time only); the flag must outlive this.
  void expire_when(const std::atomic<bool>* flag) { early_ = flag; }

 private:
  std::chrono::steady_clock::time_point end_;
  bool has_end_ = false;
  const std::atomic<bool>* early_ = nullptr;
  std::atomic<bool> cancelled_{false};
};

/// A counterexample: an input in the property's input region whose outputs
/// (computed by the concrete float32 check) satisfy an unsafe conjunction.
struct Counterexample {
  std::vector<double> input;
  std::vector<double> output;
};

/// Concrete float32 forward pass used to confirm counterexamples before `sat`
/// is reported (the CLI passes the engine's Session; default: Network::forward_f32).
using ConcreteForward = std::function<std::vector<float>(const std::vector<float>& input)>;

/// An open branch of a query's search, as one process hands it to another (scale-out:
/// VerifyOptions::split_after_s stops a search and returns its open branches, verify_branches
/// continues them elsewhere; docs/scale-out.md). The property is unsat iff every branch of the
/// first process's closed part and of every handed-out branch is.
struct OpenBranch {
  size_t case_index = 0;      ///< disjunct of Property::cases
  bool whole_case = false;    ///< a disjunct not started: its whole query (falsifier first); box = the case's box
  bool falsify_case = false;  ///< no region: the disjunct's strong falsification round (random samples and PGD
                              ///< restarts over its whole box), which a split hands out instead of running it
  InputBox box;               ///< the branch's input box (a sub-box of the case's box)
  ReluSplits splits;          ///< ReLU splits fixed on this branch (empty: none)
  std::vector<size_t> open;   ///< the case's unsafe conjunctions not yet refuted on this branch
  int depth = 0;              ///< depth in the search tree (input splitting chooses its splits by it)
};

/// Result of one verification query.
struct VerifyResult {
  Verdict verdict = Verdict::Unknown;
  std::optional<Counterexample> counterexample;
  std::string reason;          ///< why unknown (e.g. "unsupported op 'MaxPool' at node 'pool1'")
  std::string method;          ///< what decided it: "falsify", "crown", "alpha-crown", "input-bab", "relu-bab+z3"
  int64_t domains = 0;         ///< branches bounded
  int64_t z3_calls = 0;
  double seconds = 0;
  /// VerifyOptions::split_after_s: the branches still open when the search stopped (verdict
  /// Unknown; the rest of the property is decided: proved, or undecided when `open_undecided`).
  std::vector<OpenBranch> open_branches;
  bool open_undecided = false;  ///< with open_branches: some closed leaf ended unknown (reason says why)
};

/// Options of the complete verifier.
struct VerifyOptions {
  double timeout_s = 60;          ///< whole query
  int threads = 0;                ///< 0 = hardware concurrency
  uint64_t seed = 0;              ///< falsifier randomness (verdicts do not depend on it)
  int random_samples = 256;       ///< uniform samples per box before PGD
  int pgd_restarts = 4;           ///< PGD (Madry et al. 2018) on the margin
  int pgd_steps = 50;
  int strong_random_samples = 16384;  ///< low-dimensional inputs: second falsification round after a short BaB
  int strong_pgd_restarts = 64;
  double quick_bab_s = 2;             ///< length of that short BaB (0: no second round)
  bool alpha_crown = true;        ///< optimise slopes (alpha-CROWN) before branching
  bool alpha_crown_hidden = false; ///< at the root, also optimise the hidden layers' bounds (alpha_crown_bounds; off:
                                   ///< no measured gain on ACAS Xu, where input splitting tightens them anyway)
  int input_split_max_dims = 16;  ///< input branch and bound when at most this many inputs vary (see bab.cpp)
  int lookahead_depth = 6;        ///< input BaB: above this depth choose splits by bounding both halves of every dimension
  int pattern_max_unstable = 12;  ///< input BaB: decide a box exactly by its ReLUs' activation patterns at or below
                                  ///< this many unstable ReLUs (bab.cpp, refute_pattern; networks of at most
                                  ///< 4,096 ReLUs without pooling); -1: never
  int pattern_max_splits = 256;   ///< ReLU splits allowed per such attempt (then it gives up and the box is bisected)
  bool beta_crown = true;         ///< ReLU BaB: beta-CROWN bounds per branch (parent's intermediate bounds + split
                                  ///< multipliers); false: CROWN re-bounds every layer with the splits fixed
  int beta_iterations = 20;       ///< ReLU BaB: alpha/beta optimisation steps per branch and row
  int bab_batch = 8;              ///< ReLU BaB (beta-CROWN): branches a worker bounds together (one optimisation; products as GEMMs)
  int fsb_candidates = 3;         ///< ReLU BaB (beta-CROWN): BaBSR's top candidates tried per split (FSB, as alpha-beta-CROWN's kfsb default); 1 = BaBSR
  int z3_max_unstable = 12;       ///< ReLU BaB hands a leaf to Z3 at or below this many unstable ReLUs
  double z3_leaf_timeout_s = 10;  ///< per Z3 call (watchdog-enforced)
  ConcreteForward concrete;       ///< counterexample check; empty = network.forward_f32
  double split_after_s = 0;       ///< > 0: a search still open after this many seconds stops and returns its open
                                  ///< branches (VerifyResult::open_branches) for other processes; 0: never
  int split_min_branches = 256;   ///< at a split, first expand the shallowest open branches (breadth first) until this
                                  ///< many are open, for at most split_after_s / 2 (and 1 s) more: a depth-first stack holds a
                                  ///< few large subtrees near the root, which would make a few long pieces
  const std::atomic<bool>* split_now = nullptr;  ///< with split_after_s: when another thread (or a signal handler)
                                                 ///< sets it, split at once, as at split_after_s (split on demand:
                                                 ///< a scheduler with idle workers asks a running query for work;
                                                 ///< the expansion then stops at split_min_branches / 4)
};

/// Best non-negative combination of the linear lower bounds of one unsafe
/// conjunction's rows (the first `m` of `rows`, row_j(y) >= a_j . x + c_j on the
/// box): lower > 0 proves the conjunction empty on the box (LP duality; bab.cpp).
/// `weights`, when given, receives the combination's lambda (sum 1).
ObjectiveBound combine_row_bounds(const std::vector<ObjectiveBound>& rows, size_t m, const InputBox& box,
                                  std::vector<double>* weights = nullptr);

/// Decide a VNN-LIB property on the network.
VerifyResult verify_property(const Network& net, const Property& prop, const VerifyOptions& opts);

/// Continue a query on some of its branches (OpenBranch, from another process's
/// split_after_s): Unsat means those branches hold no counterexample, Sat carries one (a point
/// of the property), and with split_after_s the search may split again. Throws InputError when
/// a branch does not belong to the property (case index, box outside the case, dimensions,
/// splits or conjunction indices out of range).
VerifyResult verify_branches(const Network& net, const Property& prop, const std::vector<OpenBranch>& branches,
                             const VerifyOptions& opts);

/// The float32 input a counterexample at `x` (a point of `box`, in double) is checked and
/// reported at: each coordinate rounded to float32 and nudged by one ulp back into its interval
/// when rounding left it. A coordinate whose interval holds no float32 at all (VNN-LIB often fixes
/// a coordinate to one decimal like X_0 = -0.432882241988499) takes the nearest float32, the value
/// the float32 model receives there (within half an ulp of the box). nullopt when some
/// coordinate's interval holds float32 values and none is within one ulp of x (not expected).
std::optional<std::vector<float>> float_point_in_box(const std::vector<double>& x, const InputBox& box);

/// True when `output` satisfies every constraint of one unsafe conjunction (coef . y + c <= 0).
bool violates(const std::vector<OutputConjunction>& unsafe, const std::vector<double>& output);

/// Falsifier: random samples and PGD on the unsafe margin inside the box;
/// returns a candidate whose concrete float32 outputs violate the property.
std::optional<Counterexample> falsify(const Network& net, const SubProperty& sub, const VerifyOptions& opts,
                                      const Deadline& deadline, uint64_t seed);

/// Exact check of one box with Z3 (QF_LRA): stable ReLUs substituted by their
/// bounds, unstable ones as disjunctions, each unsafe conjunction checked in a
/// push/pop scope. A watchdog thread interrupts Z3 at `timeout_s` or when the
/// deadline stops. Z3 `sat` models are re-checked concretely before Sat is returned.
VerifyResult z3_check(const Network& net, const InputBox& box, const LayerBounds& bounds,
                      const std::vector<OutputConjunction>& unsafe, double timeout_s, const Deadline& deadline,
                      const ConcreteForward& concrete = {});

}  // namespace mlaudit::verify
