// The bookkeeping of one instance split across processes (cli/split.h), which verify
// --benchmark --split-after and the MPI coordinator share: when an instance is decided, and
// what it is.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "split.h"

using namespace mlaudit::cli;
using nlohmann::json;

namespace {
json split_file(int branches, bool undecided = false) {
  json b = json::array();
  for (int i = 0; i < branches; ++i) b.push_back({{"case", 0}, {"lower", {0.0}}, {"upper", {double(i)}}, {"open", {0}}});
  return {{"schema", "mlaudit.branches/1"}, {"open_undecided", undecided}, {"branches", b}};
}
}  // namespace

TEST_CASE("split: an instance is unsat only once every piece of every split answered unsat", "[cli][split]") {
  split::Instance st;
  const json f = split_file(5);
  auto pieces = st.answer(-1, "split", 0.5, 0, &f, 2);
  // The root's split alone decides nothing (this once read as unsat: pending was 0).
  CHECK_FALSE(st.decided());
  REQUIRE(pieces.size() == 2);
  CHECK(pieces[0].size() == 3);  // branches 0, 2, 4: interleaved
  CHECK(pieces[1].size() == 2);
  CHECK(pieces[0][1]["upper"][0] == 2.0);
  CHECK(st.answer(0, "unsat", 0.1, 3, nullptr, 2).empty());
  CHECK_FALSE(st.decided());
  const json g = split_file(1);
  auto more = st.answer(0, "split", 0.2, 2, &g, 2);
  CHECK(more.size() == 1);  // never more pieces than branches
  CHECK_FALSE(st.decided());
  st.answer(2, "unsat", 0.1, 1, nullptr, 2);
  CHECK(st.decided());
  CHECK(st.result() == "unsat");
  const json s = st.summary();
  CHECK(s["tasks"] == 4);
  CHECK(s["branches_handed_out"] == 6);
  CHECK(s["task_tree"][3]["parent"] == 2);
  CHECK(s["worker_seconds"].get<double>() == Approx(0.9));
}

TEST_CASE("split: the root's split goes to every worker, a piece's own split 4 times less finely", "[cli][split]") {
  split::Instance st;
  const json f = split_file(40);
  CHECK(st.answer(-1, "split", 0.2, 0, &f, 8).size() == 8);
  CHECK(st.answer(0, "split", 0.2, 5, &f, 8).size() == 2);
  CHECK(st.pending == 7 + 2);
}

TEST_CASE("split: sat, timeout and undecided pieces", "[cli][split]") {
  const json f = split_file(4);
  {
    split::Instance st;
    st.answer(-1, "split", 0.5, 0, &f, 4);
    st.answer(0, "unknown", 0.1, 1, nullptr, 4);
    CHECK_FALSE(st.decided());
    st.answer(0, "sat", 0.1, 1, nullptr, 4);  // a counterexample wins over an unknown piece
    CHECK(st.decided());
    CHECK(st.result() == "sat");
    // A split answered after the verdict hands out nothing.
    CHECK(st.answer(0, "split", 0.1, 1, &f, 4).empty());
  }
  {
    split::Instance st;
    st.answer(-1, "split", 0.5, 0, &f, 4);
    st.answer(0, "timeout", 0.1, 1, nullptr, 4);
    CHECK(st.decided());
    CHECK(st.result() == "timeout");
  }
  {
    // A split whose closed part held an undecided leaf: never unsat.
    split::Instance st;
    const json u = split_file(1, true);
    st.answer(-1, "split", 0.5, 0, &u, 4);
    st.answer(0, "unsat", 0.1, 1, nullptr, 4);
    CHECK(st.decided());
    CHECK(st.result() == "unknown");
  }
  {
    split::Instance st;
    st.answer(-1, "split", 0.5, 0, &f, 4);
    for (int i = 0; i < 3; ++i) st.answer(0, "unsat", 0.1, 1, nullptr, 4);
    st.answer(0, "error", 0.1, 1, nullptr, 4);
    CHECK(st.decided());
    CHECK(st.result() == "error");
  }
  CHECK(split::cut(json::array(), 4).size() == 1);  // an empty split: one empty piece
  const json piece = json::parse(split::piece_text(f, json::array({1}), 12.5));
  CHECK(piece["timeout_s"] == 12.5);
  CHECK(piece["branches"] == json::array({1}));
  CHECK(piece["schema"] == "mlaudit.branches/1");
}

TEST_CASE("split: a handed-out falsification round is a piece of its own that the instance does not wait for",
          "[cli][split]") {
  json f = split_file(4);
  f["branches"].insert(f["branches"].begin(), json{{"case", 0}, {"falsify", true}});
  {
    split::Instance st;
    auto pieces = st.answer(-1, "split", 0.3, 0, &f, 2);
    REQUIRE(pieces.size() == 3);
    CHECK(split::falsify_only(pieces[0]));  // first, alone
    CHECK(pieces[0].size() == 1);
    CHECK_FALSE(split::falsify_only(pieces[1]));
    CHECK(pieces[1].size() + pieces[2].size() == 4);
    CHECK(st.pending == 2);  // the search pieces only
    st.answer(0, "unsat", 0.1, 2, nullptr, 2);
    st.answer(0, "unsat", 0.1, 2, nullptr, 2);
    CHECK(st.decided());  // unsat with the falsification round still running: it cannot close a branch
    CHECK(st.result() == "unsat");
  }
  {
    split::Instance st;
    st.answer(-1, "split", 0.3, 0, &f, 2);
    st.answer(0, "timeout", 0.2, 1, nullptr, 2, true);  // a round that ran out: no verdict of its own
    st.answer(0, "unsat", 0.1, 2, nullptr, 2);
    CHECK_FALSE(st.decided());
    st.answer(0, "sat", 0.2, 1, nullptr, 2, true);  // a round's counterexample decides
    CHECK(st.decided());
    CHECK(st.result() == "sat");
    CHECK(st.summary()["task_tree"][1]["falsify"] == true);
  }
  CHECK_FALSE(split::falsify_only(json::array()));
  CHECK_FALSE(split::falsify_only(json::array({json{{"case", 0}, {"falsify", true}}, json{{"case", 0}}})));
}
