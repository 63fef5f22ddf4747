// Gate evaluation: every comparison, missing metrics are errors (never a
// pass), section failures, ambiguity, the metric table.
#include <catch2/catch.hpp>

#include <set>

#include "mlaudit/reports/config.h"
#include "mlaudit/reports/gates.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;

namespace {

GateSpec gate(const std::string& check, const std::string& model = "", Severity sev = Severity::Error) {
  GateSpec g;
  parse_gate_check(check, g, "test");
  g.name = check;
  g.model = model;
  g.severity = sev;
  return g;
}

json section(const std::string& id, const std::string& kind, const std::string& model, const json& params,
             const std::string& fixture_file) {
  return {{"id", id},
          {"kind", kind},
          {"model", model},
          {"data", "d"},
          {"params", params},
          {"status", "ok"},
          {"seconds", 0.1},
          {"result", json::parse(test::read_text(test::fixture(fixture_file)))}};
}

json fixture_report() {
  json r;
  r["sections"] = json::array(
      {section("rob-apgd", "robustness", "cnn", {{"attack", "apgd-ce"}, {"norm", "linf"}}, "attack_apgd-ce.json"),
       section("rob-fgsm", "robustness", "cnn", {{"attack", "fgsm"}, {"norm", "linf"}}, "attack_fgsm.json"),
       section("cert", "certification", "cnn", {{"sigma", 0.25}}, "certify.json"),
       section("corr", "corruption", "cnn", json::object(), "corrupt.json"),
       section("fair", "fairness", "credit", {{"protected", {"sex"}}}, "fairness.json"),
       section("ig", "explanations", "cnn", {{"method", "integrated-gradients"}}, "explain_ig.json"),
       section("ver", "verification", "cnn", {{"mode", "robustness"}, {"norm", "linf"}}, "verify.json")});
  return r;
}

}  // namespace

TEST_CASE("gates: every comparison operator, pass and fail", "[reports][gates]") {
  json report = fixture_report();
  // robust_accuracy(apgd-ce, linf, 0.03) is 0.52 in the fixture
  struct Case {
    const char* check;
    const char* status;
    const char* message;
  };
  const Case cases[] = {
      {"robust_accuracy(apgd-ce, linf, 0.03) >= 0.5", "pass", "measured 0.52 >= threshold 0.5"},
      {"robust_accuracy(apgd-ce, linf, 0.03) >= 0.52", "pass", "measured 0.52 >= threshold 0.52"},
      {"robust_accuracy(apgd-ce, linf, 0.03) >= 0.6", "fail", "measured 0.52 < threshold 0.6"},
      {"robust_accuracy(apgd-ce, linf, 0.03) > 0.52", "fail", "measured 0.52 <= threshold 0.52"},
      {"robust_accuracy(apgd-ce, linf, 0.03) > 0.5", "pass", "measured 0.52 > threshold 0.5"},
      {"robust_accuracy(apgd-ce, linf, 0.03) <= 0.52", "pass", "measured 0.52 <= threshold 0.52"},
      {"robust_accuracy(apgd-ce, linf, 0.03) <= 0.5", "fail", "measured 0.52 > threshold 0.5"},
      {"robust_accuracy(apgd-ce, linf, 0.03) < 0.6", "pass", "measured 0.52 < threshold 0.6"},
      {"robust_accuracy(apgd-ce, linf, 0.03) < 0.52", "fail", "measured 0.52 >= threshold 0.52"},
      {"robust_accuracy(apgd-ce, linf, 0.03) == 0.52", "pass", "measured 0.52 == threshold 0.52"},
      {"robust_accuracy(apgd-ce, linf, 0.03) == 0.5", "fail", "measured 0.52 != threshold 0.5"},
      {"robust_accuracy(apgd-ce, linf, 0.03) != 0.5", "pass", "measured 0.52 != threshold 0.5"},
      {"robust_accuracy(apgd-ce, linf, 0.03) != 0.52", "fail", "measured 0.52 == threshold 0.52"},
  };
  for (const auto& c : cases) {
    INFO(c.check);
    json r = evaluate_gate(gate(c.check), report);
    CHECK(r["status"] == c.status);
    CHECK(r["message"] == c.message);
    CHECK(r["measured"] == 0.52);
    CHECK(r["section"] == "rob-apgd");
  }
  CHECK(compare(1.0, Comparison::Ge, 1.0));
  CHECK_FALSE(compare(1.0, Comparison::Gt, 1.0));
  CHECK(compare(1.0, Comparison::Le, 1.0));
  CHECK_FALSE(compare(1.0, Comparison::Lt, 1.0));
  CHECK(compare(1.0, Comparison::Eq, 1.0));
  CHECK_FALSE(compare(1.0, Comparison::Ne, 1.0));
}

TEST_CASE("gates: each metric family reads its section JSON", "[reports][gates]") {
  json report = fixture_report();
  auto measured = [&](const std::string& check, const std::string& model = "") {
    json r = evaluate_gate(gate(check, model), report);
    INFO(check << ": " << r.dump());
    REQUIRE(r["status"] != "error");
    return r["measured"].get<double>();
  };
  // eps 0.01 in the gate matches the float32-widened 0.009999999776 of the fixture (1e-6 relative tolerance)
  CHECK(measured("robust_accuracy(apgd-ce, linf, 0.01) >= 0") == 0.7);
  CHECK(measured("robust_accuracy(fgsm, linf, 0.01) >= 0") == 0.78);
  CHECK(measured("attack_success_rate(apgd-ce, linf, 0.03) <= 1") == 0.4222);
  CHECK(measured("clean_accuracy(fgsm) >= 0") == 0.9);
  CHECK(measured("certified_accuracy(0.5) >= 0") == 0.3333);
  CHECK(measured("mean_corruption_accuracy >= 0") == 0.71);
  CHECK(measured("corruption_accuracy(contrast, 3) >= 0") == 0.59);
  CHECK(measured("demographic_parity_ratio(sex) >= 0") == 0.72);
  CHECK(measured("demographic_parity_difference(sex) <= 1") == 0.14);
  CHECK(measured("counterfactual_flip_rate(sex) <= 1") == 0.081);
  CHECK(measured("ig_completeness_gap <= 1") == 0.0102);
  CHECK(measured("verified_fraction(linf, 0.01) >= 0") == 0.5);    // per_eps verified_robust_accuracy
  CHECK(measured("falsified_fraction(linf, 0.01) >= 0") == 0.25);  // per_eps falsified / samples
  // without the per-eps summary the fractions are counted from the per-sample verdicts
  report["sections"][6]["result"].erase("per_eps");
  report["sections"][6]["result"]["per_sample"][3]["verdict"] = "verified";
  CHECK(measured("verified_fraction(linf, 0.01) >= 0") == 0.75);
  CHECK(measured("falsified_fraction(linf, 0.01) >= 0") == 0.25);
}

TEST_CASE("gates: individual-fairness verification metrics", "[reports][gates]") {
  json report;
  json result = {{"schema", "mlaudit.verify/1"},
                 {"kind", "individual_fairness"},
                 {"summary", {{"partitions", 8}, {"proved", 6}, {"counterexample", 1}, {"unknown", 1}, {"timeout", 0}}},
                 {"counterexample_pairs", json::array({{{"input_a", {1, 2}}, {"input_b", {1, 3}}}})}};
  report["sections"] = json::array({{{"id", "vf"}, {"kind", "verification"}, {"model", "credit"}, {"status", "ok"},
                                     {"params", {{"mode", "fairness"}, {"protected", "sex"}}}, {"result", result}}});
  json r = evaluate_gate(gate("fairness_proved_fraction() >= 0.7"), report);
  CHECK(r["status"] == "pass");
  CHECK(r["measured"] == 0.75);
  json c = evaluate_gate(gate("fairness_counterexamples() == 0"), report);
  CHECK(c["status"] == "fail");
  CHECK(c["message"] == "measured 1 != threshold 0");
  // a robustness-mode gate does not read the fairness-mode section
  CHECK(evaluate_gate(gate("verified_fraction(linf, 0.01) >= 0"), report)["status"] == "error");
}

TEST_CASE("gates: a missing metric is an error, never a pass", "[reports][gates]") {
  json report = fixture_report();
  SECTION("eps not measured") {
    json r = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.05) >= 0"), report);
    CHECK(r["status"] == "error");
    CHECK(r["measured"].is_null());
    CHECK(r["message"] == "metric missing: field 'by_eps[eps=0.05]' not available");
  }
  SECTION("attack not run") {
    json r = evaluate_gate(gate("robust_accuracy(square, linf, 0.03) >= 0"), report);
    CHECK(r["status"] == "error");
    CHECK(r["message"] == "metric missing: no robustness section provides robust_accuracy(square, linf, 0.03)");
  }
  SECTION("norm mismatch") {
    CHECK(evaluate_gate(gate("robust_accuracy(apgd-ce, l2, 0.03) >= 0"), report)["status"] == "error");
  }
  SECTION("undefined disparity (null value) carries its reason") {
    json r = evaluate_gate(gate("equalized_odds_ratio(sex) >= 0"), report);
    CHECK(r["status"] == "error");
    CHECK(r["message"] == "metric missing: field 'disparities[sex, equalized_odds_ratio].value' not available (zero maximum FPR in a resample)");
  }
  SECTION("attribute not audited") {
    CHECK(evaluate_gate(gate("demographic_parity_ratio(age) >= 0.8"), report)["status"] == "error");
  }
  SECTION("section kind absent") {
    json r = evaluate_gate(gate("accuracy() >= 0.5"), report);
    CHECK(r["status"] == "error");
    CHECK(r["message"] == "metric missing: no performance section provides accuracy()");
  }
  SECTION("field missing from a section's JSON") {
    report["sections"][3]["result"].erase("mean_corruption_accuracy");
    json r = evaluate_gate(gate("mean_corruption_accuracy >= 0.5"), report);
    CHECK(r["status"] == "error");
    CHECK(r["message"] == "metric missing: field 'mean_corruption_accuracy' not available");
  }
  SECTION("field of the wrong type") {
    report["sections"][3]["result"]["mean_corruption_accuracy"] = "0.9";
    CHECK(evaluate_gate(gate("mean_corruption_accuracy >= 0.5"), report)["status"] == "error");
  }
  SECTION("section that failed") {
    report["sections"][2]["status"] = "error";
    report["sections"][2]["error"] = "certify: --sigma must be positive";
    report["sections"][2].erase("result");
    json r = evaluate_gate(gate("certified_accuracy(0.25) >= 0"), report);
    CHECK(r["status"] == "error");
    CHECK(r["message"] == "metric missing: section 'cert' did not complete (certify: --sigma must be positive)");
  }
  json records = json::array({evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.5"), report),
                              evaluate_gate(gate("accuracy() >= 0.5"), report)});
  CHECK(gates_exit_code(records) == 2);
}

TEST_CASE("gates: model qualifier and ambiguity", "[reports][gates]") {
  json report = fixture_report();
  json other = report["sections"][0];
  other["id"] = "rob-apgd-other";
  other["model"] = "other";
  other["result"]["by_eps"][1]["robust_accuracy"] = 0.1;
  report["sections"].push_back(other);
  json r = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.5"), report);
  CHECK(r["status"] == "error");
  CHECK(r["message"] == "metric missing: ambiguous: sections rob-apgd, rob-apgd-other give different values; add 'model:' to the gate");
  CHECK(evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.5", "cnn"), report)["status"] == "pass");
  json o = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.5", "other"), report);
  CHECK(o["status"] == "fail");
  CHECK(o["measured"] == 0.1);
}

TEST_CASE("gates: exit codes from severities", "[reports][gates]") {
  json report = fixture_report();
  json pass = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.5"), report);
  json fail = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.9"), report);
  json warn = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.9", "", Severity::Warning), report);
  CHECK(warn["status"] == "fail");
  CHECK(warn["severity"] == "warning");
  CHECK(gates_exit_code(json::array()) == 0);
  CHECK(gates_exit_code(json::array({pass})) == 0);
  CHECK(gates_exit_code(json::array({pass, warn})) == 0);
  CHECK(gates_exit_code(json::array({pass, fail})) == 1);
  CHECK(gates_exit_code(json::array({pass, warn, fail})) == 1);
}

TEST_CASE("gates: the metric table is complete and unambiguous", "[reports][gates]") {
  std::set<std::string> names;
  std::set<std::string> kinds;
  for (auto k : all_section_kinds()) kinds.insert(section_kind_name(k));
  CHECK(kinds.size() == 10);
  for (const auto& m : metric_table()) {
    INFO(m.name);
    CHECK(names.insert(m.name).second);
    CHECK(kinds.count(m.source) == 1);
    CHECK_FALSE(m.json_path.empty());
    CHECK_FALSE(m.description.empty());
    CHECK(find_metric(m.name) == &m);
  }
  for (const char* required : {"robust_accuracy", "demographic_parity_ratio", "verified_fraction", "ig_completeness_gap",
                               "certified_accuracy", "accuracy", "latency_p99_ms", "counterfactual_flip_rate",
                               "membership_auc", "membership_tpr_at_fpr", "backdoor_flagged_classes",
                               "backdoor_max_anomaly_index"})
    CHECK(names.count(required) == 1);
  CHECK(find_metric("no_such_metric") == nullptr);
}
