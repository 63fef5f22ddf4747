// The README's walk-throughs on public data, run as written (walkthrough_util.h): fairness of the
// scikit-learn Adult model, and ACAS Xu verification. Together about 15 s on 2 cores.
#include "walkthrough_util.h"

using namespace mlaudit;

TEST_CASE("walkthrough adult: fairness of the Adult model as the README types it", "[walkthrough]") {
  if (!test::shared_datasets_present("adult")) return;
  std::string root;
  const auto steps = test::run_walkthrough("adult", &root);
  test::expect_steps(steps, {
      // info: the probability tensor in front of skl2onnx's ZipMap, trees without gradients
      {"audited:    output 'proba_output'", "gradients:  no"},
      // fairness: adult.test without '?' rows, the figures the README quotes
      {"fairness: 15060 rows", "selection_rate 0.0877", "selection_rate 0.1866",
       "sex              demographic_parity_ratio       0.4702", "four-fifths rule: fail"},
  });
  CHECK(std::filesystem::exists(root + "/adult-fairness.json"));
}

TEST_CASE("walkthrough acasxu: two properties and a benchmark stride as the README types them", "[walkthrough]") {
  if (!test::shared_datasets_present("acasxu")) return;
  std::string root;
  const auto steps = test::run_walkthrough("acasxu", &root);
  test::expect_steps(steps, {
      {"verify: unsat in"},  // property 1 proved for network 1_1
      {"verify: sat in"},    // property 7 falsified for network 1_9
      {"instances 22: solved 22 (sat 4, unsat 18), wrong 0, unsolved 0"},
  });
  CHECK(test::read_text(root + "/prop7.txt").rfind("sat\n(", 0) == 0);  // the counterexample follows the verdict
  CHECK(test::read_text(root + "/acasxu.csv").rfind("onnx,vnnlib,result,expected,correct,seconds\n", 0) == 0);
}
