// Gate evaluation: every comparison, missing metrics are errors (never a
// pass), section failures, ambiguity, the metric table.
#include <catch2/catch.hpp>

#include <set>

#include "mlaudit/datasets/validate.h"
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

TEST_CASE("gates: .lower / .upper compare an end of the 95 % Clopper-Pearson interval", "[reports][gates][interval]") {
  json report = fixture_report();
  json& apgd = report["sections"][0]["result"];
  // the command's own interval beside the value (datasets::proportion_json)
  apgd["by_eps"][1]["robust_accuracy_ci"] = datasets::proportion_json(26, 50);
  const double lower = datasets::clopper_pearson(26, 50).lower, upper = datasets::clopper_pearson(26, 50).upper;
  json r = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03).lower >= 0.4"), report);
  INFO(r.dump());
  CHECK(r["status"] == "fail");  // 0.52 passes, but its lower end (0.37) does not
  CHECK(r["measured"].get<double>() == lower);
  CHECK(r["bound"] == "lower");
  CHECK(r["interval"]["n"] == 50);
  CHECK(r["message"].get<std::string>().find("(lower end of the 95 % interval, n = 50)") != std::string::npos);
  CHECK(evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03).upper >= 0.6"), report)["measured"].get<double>() == upper);
  CHECK(evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.03) >= 0.4"), report)["status"] == "pass");
  // no _ci sibling: computed from the value and n_samples (k = 0.7 * 50 = 35)
  apgd["n_samples"] = 50;
  json c = evaluate_gate(gate("robust_accuracy(apgd-ce, linf, 0.01).lower >= 0"), report);
  CHECK(c["measured"].get<double>() == datasets::clopper_pearson(35, 50).lower);
  CHECK(c["interval"]["computed"] == true);
  CHECK(c["interval"]["k"] == 35);
  // clean accuracy and the success rate (over the clean-correct samples: 0.9 * 50 = 45)
  CHECK(evaluate_gate(gate("clean_accuracy(apgd-ce).lower >= 0"), report)["measured"].get<double>() ==
        datasets::clopper_pearson(45, 50).lower);
  CHECK(evaluate_gate(gate("attack_success_rate(apgd-ce, linf, 0.01).upper <= 1"), report)["interval"]["n"] == 45);
  // neither interval nor n: an error, never a pass
  report["sections"][1]["result"].erase("n_samples");
  json e = evaluate_gate(gate("robust_accuracy(fgsm, linf, 0.01).lower >= 0"), report);
  CHECK(e["status"] == "error");
  CHECK(e["message"].get<std::string>().find("no interval") != std::string::npos);
  // the verified robust accuracy too: 2 of 4 verified (fixture verify.json, no _ci: computed from samples)
  json v = evaluate_gate(gate("verified_fraction(linf, 0.01).lower >= 0"), report);
  INFO(v.dump());
  CHECK(v["measured"].get<double>() == datasets::clopper_pearson(2, 4).lower);
  CHECK(v["interval"]["n"] == 4);
  // certified and corruption accuracies carry intervals too
  report["sections"][2]["result"]["n_samples"] = 30;
  CHECK(evaluate_gate(gate("certified_accuracy(0.5).lower >= 0"), report)["interval"]["n"] == 30);
  report["sections"][3]["result"]["n_samples"] = 100;
  CHECK(evaluate_gate(gate("corruption_accuracy(contrast, 3).lower >= 0"), report)["measured"].get<double>() ==
        datasets::clopper_pearson(59, 100).lower);
}

TEST_CASE("gates: interval syntax errors", "[reports][gates][interval]") {
  GateSpec g;
  CHECK_THROWS_WITH(parse_gate_check("robust_accuracy(pgd, linf, 0.03).middle >= 0.4", g, "a.yaml:3:5"),
                    Catch::Contains("'.middle' is not an interval end (write '.lower' or '.upper')"));
  CHECK_THROWS_WITH(parse_gate_check("flops().lower <= 10", g, "a.yaml:3:5"),
                    Catch::Contains("'flops' has no interval, so '.lower' does not apply"));
  parse_gate_check("accuracy.lower >= 0.8", g, "a.yaml:3:5");  // empty parentheses may be omitted
  CHECK(g.metric == "accuracy");
  CHECK(g.bound == "lower");
}

TEST_CASE("gates: which configured section will produce a gate's metric", "[reports][gates][check]") {
  AuditConfig cfg = test::parse_config_text(
      "models: {cnn: c.onnx, credit: m.onnx}\n"
      "datasets:\n  x: {data: x.npy, labels: y.npy}\n  t: {csv: t.csv, label: y, protected: [sex], features: [a, b]}\n"
      "sections:\n"
      "  robustness: {model: cnn, data: x, attacks: [fgsm, pgd], eps: [0.01, 0.03]}\n"
      "  certification: {model: cnn, data: x, sigma: 0.25, radii: [0, 0.5]}\n"
      "  corruption: {model: cnn, data: x, corruptions: [contrast], severities: [1, 3]}\n"
      "  fairness: {model: credit, data: t}\n"
      "  explanations: {model: cnn, data: x, method: integrated-gradients}\n"
      "  verification: {model: cnn, data: x, eps: [0.01]}\n");
  auto why = [&](const std::string& check, const std::string& model = "") {
    GateSpec g = gate(check, model);
    return gate_without_producer(g, cfg);
  };
  CHECK(why("robust_accuracy(pgd, linf, 0.03) >= 0") == "");
  CHECK(why("robust_accuracy(pgd, linf, 0.03) >= 0", "credit") == "no robustness section for model 'credit' is configured");
  CHECK(why("robust_accuracy(pgd, linf, 0.05) >= 0") ==
        "section 'robustness-cnn-fgsm' runs attack fgsm; section 'robustness-cnn-pgd' runs pgd at eps 0.01, 0.03, not 0.05");
  CHECK(why("clean_accuracy(apgd-ce) >= 0") != "");
  CHECK(why("certified_accuracy(0.5) >= 0") == "");
  CHECK(why("certified_accuracy(1) >= 0") == "section 'certification-cnn' certifies radii 0, 0.5, not 1");
  CHECK(why("corruption_accuracy(contrast, 3) >= 0") == "");
  CHECK(why("corruption_accuracy(contrast, 5) >= 0") == "section 'corruption-cnn' runs severities 1, 3, not 5");
  CHECK(why("demographic_parity_ratio(sex) >= 0") == "");  // protected from the data set
  CHECK(why("demographic_parity_ratio(age) >= 0") == "section 'fairness-credit' covers protected attributes sex, not age");
  CHECK(why("counterfactual_flip_rate(sex) <= 1") == "section 'fairness-credit' runs without 'counterfactual: true'");
  CHECK(why("ig_completeness_gap <= 1") == "");
  CHECK(why("kernel_shap_efficiency_gap <= 1") != "");
  CHECK(why("verified_fraction(linf, 0.01) >= 0") == "");
  CHECK(why("verified_fraction(linf, 0.02) >= 0") == "section 'verification-cnn-robustness' verifies eps 0.01, not 0.02");
  CHECK(why("fairness_proved_fraction >= 0") == "section 'verification-cnn-robustness' verifies robustness, not individual fairness");
  CHECK(why("membership_auc(loss) <= 0.6") == "no privacy section is configured");
  CHECK(why("accuracy() >= 0") == "no performance section is configured");
}

TEST_CASE("gates: tree_shap_local_accuracy_gap reads the TreeSHAP local-accuracy check", "[reports][gates][trees]") {
  json result = {{"schema", "mlaudit.explain/1"},
                 {"method", "tree-shap"},
                 {"checks", {{"local_accuracy", {{"max_relative_gap", -2.5e-9}, {"passed", true}}}}},
                 {"samples", json::array({{{"index", 0}, {"local_accuracy_gap", 1e-12}}})}};
  json s = {{"id", "explanations-gbt-tree-shap"}, {"kind", "explanations"}, {"model", "gbt"}, {"data", "d"},
            {"params", {{"method", "tree-shap"}}}, {"status", "ok"}, {"seconds", 0.1}, {"result", result}};
  json report = {{"sections", json::array({s})}};
  json r = evaluate_gate(gate("tree_shap_local_accuracy_gap() <= 0.000001"), report);
  INFO(r.dump());
  CHECK(r["status"] == "pass");
  CHECK(r["measured"].get<double>() == 2.5e-9);  // the absolute value of the summary
  // Without the summary: the worst per-sample gap.
  report["sections"][0]["result"].erase("checks");
  report["sections"][0]["result"]["samples"].push_back({{"index", 1}, {"local_accuracy_gap", -3e-6}});
  r = evaluate_gate(gate("tree_shap_local_accuracy_gap() <= 0.000001"), report);
  CHECK(r["status"] == "fail");
  CHECK(r["measured"].get<double>() == 3e-6);
  // A KernelSHAP section does not answer it.
  report["sections"][0]["params"]["method"] = "kernel-shap";
  report["sections"][0]["result"]["method"] = "kernel-shap";
  r = evaluate_gate(gate("tree_shap_local_accuracy_gap() <= 0.000001"), report);
  CHECK(r["status"] == "error");
}
