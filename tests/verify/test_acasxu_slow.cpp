// ACAS Xu slow tier (ctest label `slow`): properties 1-4 on a spread of
// networks plus properties 5-10, each with a 116 s limit. Zero wrong answers
// is asserted; timeouts are allowed (they are reported by bench/verify).
#include <catch2/catch.hpp>

#include "acasxu_util.h"

using namespace mlaudit::verify;
using namespace mlaudit::verify::testing;

TEST_CASE("ACAS Xu: no wrong answer on a spread of instances", "[verify][acasxu][slow]") {
  if (!std::filesystem::exists(acasxu_dir() + "/expected.csv")) {
    WARN("ACAS Xu data absent: " << acasxu_dir());
    return;
  }
  int solved = 0, total = 0;
  const int nets[][2] = {{1, 1}, {2, 5}, {3, 9}, {4, 3}, {5, 7}};
  for (const auto& n : nets)
      for (int p : {1, 2, 3, 4}) {
        Verdict v = run_acasxu(n[0], n[1], p, 116);
        ++total;
        if (v == Verdict::Sat || v == Verdict::Unsat) ++solved;
      }
  const int extra[][3] = {{1, 1, 5}, {1, 1, 6}, {1, 9, 7}, {2, 9, 8}, {3, 3, 9}, {4, 5, 10}};
  for (const auto& e : extra) {
    Verdict v = run_acasxu(e[0], e[1], e[2], 116);
    ++total;
    if (v == Verdict::Sat || v == Verdict::Unsat) ++solved;
  }
  WARN("ACAS Xu slow tier: solved " << solved << " of " << total);
  CHECK(solved * 10 >= total * 8);
}

TEST_CASE("ACAS Xu 3_3 and 4_2 property 2 are proved within the VNN-COMP limit", "[verify][acasxu][slow]") {
  // The last two of the 186 to be solved: near points where outputs 1 and 3
  // tie slightly above output 0, CROWN bounds stayed just below 0 through
  // hundreds of thousands of input splits (116 s timeouts). Activation-pattern
  // refutation of boxes with few unstable ReLUs and the relaxation-aware split
  // score (bab.cpp) prove them in about 20-40 s on one thread.
  if (!std::filesystem::exists(acasxu_dir() + "/expected.csv")) {
    WARN("ACAS Xu data absent: " << acasxu_dir());
    return;
  }
  CHECK(run_acasxu(3, 3, 2, 116) == Verdict::Unsat);
  CHECK(run_acasxu(4, 2, 2, 116) == Verdict::Unsat);
}
