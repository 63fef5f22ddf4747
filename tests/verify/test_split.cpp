// One query across processes (VerifyOptions::split_after_s, verify_branches; docs/scale-out.md):
// a search stopped early hands out its open branches, each decided elsewhere; the combined
// verdict must be the one-process verdict, and branches from elsewhere are checked.
#include <catch2/catch.hpp>

#include <atomic>
#include <deque>
#include <nlohmann/json.hpp>
#include <random>

#include "mlaudit/engine/error.h"
#include "mlaudit/verify/solver.h"
#include "mlaudit/verify/verify.h"
#include "verify_test_util.h"

using namespace mlaudit::verify;
using mlaudit::verify::testing::random_network;

namespace {

// Boxes around random centres (a second disjunct every other trial), unsafe when y0 - y1
// exceeds a threshold near its sampled maximum, so that both verdicts occur and the search
// needs branches.
Property split_property(const Network& net, std::mt19937_64& rng, int cases) {
  Property p;
  p.num_inputs = net.input_size();
  p.num_outputs = net.output_size();
  std::uniform_real_distribution<double> c(-1, 1), u(0, 1);
  double best = -1e30;
  for (int k = 0; k < cases; ++k) {
    SubProperty s;
    for (int64_t i = 0; i < net.input_size(); ++i) {
      double m = c(rng), r = 0.2 + 0.4 * u(rng);
      s.box.lower.push_back(m - r);
      s.box.upper.push_back(m + r);
    }
    for (int n = 0; n < 300; ++n) {
      std::vector<double> x;
      for (size_t i = 0; i < s.box.lower.size(); ++i) x.push_back(s.box.lower[i] + u(rng) * (s.box.upper[i] - s.box.lower[i]));
      auto y = net.forward(x);
      best = std::max(best, y[0] - y[1]);
    }
    p.cases.push_back(s);
  }
  const double threshold = best - 0.02 + 0.25 * u(rng);
  for (auto& s : p.cases) s.unsafe.push_back({OutputConstraint{{-1, 1}, threshold}});
  return p;
}

struct Combined {
  Verdict verdict = Verdict::Unsat;
  std::optional<Counterexample> cex;
  int tasks = 0;
  int64_t branches_handed_out = 0;
};

// The pieces of every split run one after another, each handed over as JSON (as between
// processes), one branch per piece, until none is open.
Combined run_split(const Network& net, const Property& p, VerifyOptions o) {
  Combined out;
  o.split_after_s = 1e-9;  // stop after the first bounded branch: every task splits if it can
  std::deque<std::vector<OpenBranch>> queue;
  VerifyResult first = verify_property(net, p, o);
  ++out.tasks;
  auto absorb = [&](const VerifyResult& r) {
    if (r.verdict == Verdict::Sat) {
      out.verdict = Verdict::Sat;
      out.cex = r.counterexample;
      return;
    }
    if (r.verdict == Verdict::Timeout) out.verdict = Verdict::Timeout;
    if (r.verdict == Verdict::Unknown && (r.open_branches.empty() || r.open_undecided) && out.verdict == Verdict::Unsat)
      out.verdict = Verdict::Unknown;
    const nlohmann::json j = open_branches_json(r.open_branches);
    const auto parsed = parse_open_branches(nlohmann::json::parse(j.dump()), net, "handover");
    REQUIRE(parsed.size() == r.open_branches.size());
    for (size_t i = 0; i < parsed.size(); ++i) {
      // The JSON round trip is exact (doubles print with enough digits).
      CHECK(parsed[i].whole_case == r.open_branches[i].whole_case);
      if (parsed[i].whole_case) {  // a case not started: its index is all that travels
        CHECK(parsed[i].case_index == r.open_branches[i].case_index);
        queue.push_back({parsed[i]});
        continue;
      }
      CHECK(parsed[i].box.lower == r.open_branches[i].box.lower);
      CHECK(parsed[i].box.upper == r.open_branches[i].box.upper);
      CHECK(parsed[i].open == r.open_branches[i].open);
      CHECK(parsed[i].depth == r.open_branches[i].depth);
      bool any_split = false;
      for (const auto& l : r.open_branches[i].splits)
        for (auto v : l) any_split |= v != 0;
      if (any_split) CHECK(parsed[i].splits == r.open_branches[i].splits);
      queue.push_back({parsed[i]});
    }
    out.branches_handed_out += int64_t(parsed.size());
  };
  absorb(first);
  while (!queue.empty() && out.verdict != Verdict::Sat && out.tasks < 20000) {
    auto piece = std::move(queue.front());
    queue.pop_front();
    absorb(verify_branches(net, p, piece, o));
    ++out.tasks;
  }
  if (!queue.empty() && out.verdict != Verdict::Sat) out.verdict = Verdict::Timeout;
  return out;
}

}  // namespace

TEST_CASE("Split queries: open branches decided one by one elsewhere give the one-process verdict",
          "[verify][solver][split]") {
  std::mt19937_64 rng(11);
  int agree = 0, sat = 0, unsat = 0, split_runs = 0, runs = 0;
  for (int trial = 0; trial < 16; ++trial) {
    Network net = random_network({5, 20, 20, 2}, 300 + uint64_t(trial));
    Property p = split_property(net, rng, trial % 2 == 0 ? 1 : 2);
    VerifyOptions o;
    o.timeout_s = 60;
    o.threads = 2;
    o.z3_max_unstable = 3;
    // Both complete strategies: input splitting (boxes handed out) and ReLU splitting
    // (boxes with split decisions handed out, Z3 leaves).
    for (int strategy = 0; strategy < 2; ++strategy) {
      o.input_split_max_dims = strategy == 0 ? 16 : 0;
      VerifyResult whole = verify_property(net, p, o);
      Combined split = run_split(net, p, o);
      INFO("trial " << trial << " strategy " << strategy << ": one process " << verdict_name(whole.verdict) << " ("
                    << whole.domains << " branches), split " << verdict_name(split.verdict) << " (" << split.tasks
                    << " tasks, " << split.branches_handed_out << " branches handed out)");
      ++runs;
      if (split.tasks > 1) ++split_runs;
      // Never a contradiction; a counterexample lies in one of the property's boxes and is unsafe.
      if (whole.verdict == Verdict::Unsat) CHECK(split.verdict != Verdict::Sat);
      if (whole.verdict == Verdict::Sat) CHECK(split.verdict != Verdict::Unsat);
      if (split.verdict == Verdict::Sat) {
        REQUIRE(split.cex);
        bool in_some_box = false;
        for (const auto& c : p.cases) {
          bool in = true;
          for (size_t i = 0; i < c.box.lower.size(); ++i)
            in &= split.cex->input[i] >= c.box.lower[i] && split.cex->input[i] <= c.box.upper[i];
          in_some_box |= in && violates(c.unsafe, net.forward(split.cex->input));
        }
        CHECK(in_some_box);
      }
      if (whole.verdict == split.verdict && (whole.verdict == Verdict::Sat || whole.verdict == Verdict::Unsat)) {
        ++agree;
        (whole.verdict == Verdict::Sat ? sat : unsat)++;
      }
    }
  }
  INFO("sat " << sat << " unsat " << unsat << " split " << split_runs << " of " << runs << " agree " << agree);
  // Not vacuous: both answers occur, the searches really were split, and they agree (measured:
  // sat 18, unsat 14, 20 of 32 runs split, 32 of 32 agree).
  CHECK(sat >= 5);
  CHECK(unsat >= 5);
  CHECK(split_runs >= runs / 2);
  CHECK(agree >= runs * 8 / 10);
}

TEST_CASE("Split queries: a not-started disjunct is handed out whole", "[verify][solver][split]") {
  std::mt19937_64 rng(3);
  Network net = random_network({3, 8, 2}, 5);
  Property p = split_property(net, rng, 3);
  p.cases[0].unsafe[0][0].constant = 1e6;  // case 0 trivially safe: decided at its root
  VerifyOptions o;
  o.threads = 1;
  o.split_after_s = 1e-9;
  VerifyResult r = verify_property(net, p, o);
  // Case 0 is refuted at its root; the split time has passed by then, so cases 1 and 2 go out
  // unstarted (no falsifier ran on them here).
  REQUIRE(r.verdict == Verdict::Unknown);
  REQUIRE(r.open_branches.size() == 2);
  CHECK(r.open_branches[0].case_index == 1);
  CHECK(r.open_branches[0].whole_case);
  // The last disjunct was never started: it goes out whole, its box the case's.
  const OpenBranch& last = r.open_branches.back();
  CHECK(last.case_index == 2);
  CHECK(last.whole_case);
  CHECK(open_branches_json({last})[0].dump() == R"({"case":2,"whole_case":true})");
}

TEST_CASE("Split queries: branches that do not belong to the property are refused", "[verify][solver][split]") {
  Network net = random_network({2, 4, 2}, 9);
  Property p;
  p.source = "p.vnnlib";
  p.num_inputs = 2;
  p.num_outputs = 2;
  SubProperty s;
  s.box = {{0, 0}, {1, 1}};
  s.unsafe.push_back({OutputConstraint{{-1, 1}, 0}});
  p.cases.push_back(s);
  VerifyOptions o;
  o.threads = 1;
  auto refused = [&](OpenBranch b, const std::string& what) {
    INFO(what);
    try {
      verify_branches(net, p, {b}, o);
      FAIL("accepted");
    } catch (const mlaudit::InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains("p.vnnlib: open branch 0") && Catch::Contains(what));
    }
  };
  OpenBranch ok;
  ok.box = {{0, 0}, {0.5, 1}};
  ok.open = {0};
  CHECK_NOTHROW(verify_branches(net, p, {ok}, o));
  OpenBranch b = ok;
  b.case_index = 1;
  refused(b, "case 1 out of range");
  b = ok;
  b.box.upper[1] = 1.5;  // outside the property's box: a proof there says nothing
  refused(b, "not a sub-interval");
  b = ok;
  b.box.lower.pop_back();
  refused(b, "box has 1 dimensions");
  b = ok;
  b.open = {3};
  refused(b, "conjunction 3 out of range");
  b = ok;
  b.open.clear();
  refused(b, "no open conjunction");
  b = ok;
  b.splits = {{0, 0, 0}};  // the hidden layer has 4 neurons
  refused(b, "name 3 neurons");
  // The JSON reader checks types and ranges before anything else.
  auto bad_json = [&](const std::string& text, const std::string& what) {
    INFO(text);
    try {
      parse_open_branches(nlohmann::json::parse(text), net, "f.json");
      FAIL("accepted");
    } catch (const mlaudit::InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains("f.json") && Catch::Contains(what));
    }
  };
  // A handed-out falsification round claims no region: only its case travels.
  OpenBranch f;
  f.falsify_case = true;
  CHECK(open_branches_json({f}).dump() == R"([{"case":0,"falsify":true}])");
  const auto fb = parse_open_branches(nlohmann::json::parse(R"([{"case":0,"falsify":true}])"), net, "f.json");
  REQUIRE(fb.size() == 1);
  CHECK(fb[0].falsify_case);
  CHECK_FALSE(fb[0].whole_case);
  CHECK(verify_branches(net, p, fb, o).verdict != Verdict::Unknown);  // sat, or unsat: no region left open
  bad_json(R"([{"case":0,"falsify":1}])", "'falsify' is not true or false");
  bad_json(R"({"case":0})", "not an array");
  bad_json(R"([{"case":-1}])", "'case' is not an integer");
  bad_json(R"([{"case":0,"lower":[0,0],"upper":[1,"x"],"open":[0]}])", "'upper' holds a non-number");
  bad_json(R"([{"case":0,"lower":[0,0],"upper":[1,1],"open":[0],"splits":[[1,0,1]]}])", "'split layer' is not an integer in [0, 1)");
  bad_json(R"([{"case":0,"lower":[0,0],"upper":[1,1],"open":[0],"splits":[[0,4,1]]}])", "'split neuron'");
  bad_json(R"([{"case":0,"lower":[0,0],"upper":[1,1],"open":[0],"splits":[[0,1,2]]}])", "sign is not 1 or -1");
  bad_json(R"([{"case":0,"lower":[0,0],"upper":[1,1]}])", "'open' is not an array");
}

TEST_CASE("Split queries: asked to split now (split_now), a search hands out its branches at once, a quarter as many",
          "[verify][solver][split]") {
  // Split on demand (an MPI rank relays rank 0's request as a signal that sets the flag): the
  // time limit is far away and the flag is set before the query starts, so the search stops after
  // its first bounded branch and expands (breadth first) to split_min_branches / 4 only.
  std::mt19937_64 rng(11);
  int checked = 0;
  for (int trial = 0; trial < 16 && checked < 3; ++trial) {
    Network net = random_network({5, 20, 20, 2}, 300 + uint64_t(trial));
    Property p = split_property(net, rng, 1);
    VerifyOptions o;
    o.timeout_s = 60;
    o.threads = 2;
    o.input_split_max_dims = 16;
    const VerifyResult whole = verify_property(net, p, o);
    if (whole.verdict != Verdict::Unsat || whole.domains < 40) continue;  // needs a search
    std::atomic<bool> now{true};
    o.split_after_s = 1000;
    o.split_now = &now;
    o.split_min_branches = 16;
    const VerifyResult asked = verify_property(net, p, o);
    o.split_min_branches = 40;
    const VerifyResult more = verify_property(net, p, o);
    auto search_branches = [](const VerifyResult& r) {
      size_t n = 0;
      for (const auto& b : r.open_branches) n += b.falsify_case ? 0 : 1;  // besides the falsification round
      return n;
    };
    INFO("trial " << trial << ": " << whole.domains << " branches whole; asked: " << search_branches(asked)
                  << " open after " << asked.domains << " (min 16), " << search_branches(more) << " after "
                  << more.domains << " (min 40)");
    REQUIRE(asked.verdict == Verdict::Unknown);
    if (more.verdict != Verdict::Unknown) continue;  // the whole tree closed while expanding
    // Breadth first, one branch becomes two: 16 / 4 = 4 open, 40 / 4 = 10; each of the 2 threads
    // may finish one more step after the count is reached (+2).
    CHECK(search_branches(asked) >= 4);
    CHECK(search_branches(asked) <= 4 + 2);
    CHECK(search_branches(more) >= 10);
    CHECK(search_branches(more) <= 10 + 2);
    CHECK(asked.domains < whole.domains / 2);
    ++checked;
  }
  CHECK(checked >= 2);
}
