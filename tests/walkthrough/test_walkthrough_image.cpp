// The README's image walk-through, run as written (walkthrough_util.h): attack and explain the
// bundled CNN, write an audit config with `mlaudit init`, check it and run it. About 2 minutes on
// 2 cores (formal verification of 10 images dominates), hence its own test with the `slow` label;
// tests/cli/test_init.cpp runs the same audit on 4 rows in the default suite.
#include "walkthrough_util.h"

using namespace mlaudit;

TEST_CASE("walkthrough image: attack, explain, init and audit of the CNN as the README types them", "[walkthrough]") {
  std::string root;
  const auto steps = test::run_walkthrough("image", &root);
  test::expect_steps(steps, {
      {"attack pgd (linf) on 100 samples", "eps 0.0313725 robust accuracy"},
      {"max completeness gap"},
      {"init: wrote fmnist-audit.yaml", "checked with 'mlaudit audit --check'"},
      {"is valid"},
      {"Verdict: PASS", "Report: fmnist-report/report.html"},
  });
  CHECK(std::filesystem::exists(root + "/ig-heatmaps/heatmap_0.png"));
  CHECK(std::filesystem::exists(root + "/fmnist-report/report.json"));
}
