#pragma once
// Runs ACAS Xu instances from the VNN-COMP 2022 folder and compares verdicts
// with expected.csv.
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "mlaudit/verify/solver.h"
#include "test_util.h"

namespace mlaudit::verify::testing {

inline std::string acasxu_dir() { return mlaudit::test::shared_dataset("vnncomp2022/acasxu"); }

/// expected.csv: "onnx,vnnlib" -> "sat"/"unsat".
inline std::map<std::string, std::string> acasxu_expected() {
  std::map<std::string, std::string> m;
  std::ifstream f(acasxu_dir() + "/expected.csv");
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    std::stringstream ss(line);
    std::string onnx, vnnlib, timeout, expected;
    std::getline(ss, onnx, ',');
    std::getline(ss, vnnlib, ',');
    std::getline(ss, timeout, ',');
    std::getline(ss, expected, ',');
    m[onnx + "," + vnnlib] = expected;
  }
  return m;
}

/// Verify network `a_b` against prop_p; checks the verdict is never wrong and
/// returns it. Every sat counterexample is re-checked by the double forward
/// within VNN-COMP's tolerance (1e-4 absolute).
inline Verdict run_acasxu(int a, int b, int p, double timeout_s) {
  std::string net_name = "ACASXU_run2a_" + std::to_string(a) + "_" + std::to_string(b) + "_batch_2000.onnx";
  std::string prop_name = "prop_" + std::to_string(p) + ".vnnlib";
  Network net = load_network(acasxu_dir() + "/onnx/" + net_name);
  Property prop = read_vnnlib(acasxu_dir() + "/vnnlib/" + prop_name);
  VerifyOptions o;
  o.timeout_s = timeout_s;
  o.threads = 2;
  o.z3_leaf_timeout_s *= mlaudit::test::time_scale();  // sanitizer builds (make sanitize) run slower
  VerifyResult r = verify_property(net, prop, o);
  std::string expected = acasxu_expected()[net_name + "," + prop_name];
  INFO(net_name << " " << prop_name << " -> " << verdict_name(r.verdict) << " (" << r.method << ", " << r.domains
                << " branches, " << r.seconds << " s), expected " << expected);
  if (r.verdict == Verdict::Sat || r.verdict == Verdict::Unsat) CHECK(verdict_name(r.verdict) == expected);
  if (r.verdict == Verdict::Sat) {
    REQUIRE(r.counterexample);
    auto y = net.forward(r.counterexample->input);
    for (size_t j = 0; j < y.size(); ++j) CHECK(std::fabs(y[j] - r.counterexample->output[j]) <= 1e-4);
    bool in_some_box = false;
    for (const auto& c : prop.cases) {
      bool in = true;
      for (size_t i = 0; i < c.box.lower.size(); ++i)
        in = in && r.counterexample->input[i] >= c.box.lower[i] && r.counterexample->input[i] <= c.box.upper[i];
      if (in && violates(c.unsafe, r.counterexample->output)) in_some_box = true;
    }
    CHECK(in_some_box);
  }
  return r.verdict;
}

}  // namespace mlaudit::verify::testing
