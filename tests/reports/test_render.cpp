// Renderers: JUnit structure and escaping, Markdown tables, self-contained
// HTML, SVG well-formedness, the JSON Schema validator.
#include <catch2/catch.hpp>

#include "../../reports/src/doc.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;

namespace {

// A finished report built by the pipeline from the fixture sections.
json fixture_report(const std::string& gates) {
  std::string dir = test::temp_dir("render");
  test::write_text(dir + "/audit.yaml", test::full_config(gates));
  AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  return run_audit(load_config(dir + "/audit.yaml"), o, std::ref(fake)).report;
}

}  // namespace

TEST_CASE("junit: one testcase per gate, counts and messages as CI systems read them", "[reports][render]") {
  json report = fixture_report(std::string(test::kPassingGates) +
                               "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n"
                               "  - check: robust_accuracy(fgsm, linf, 0.03) >= 0.9\n    severity: warning\n"
                               "  - robust_accuracy(square, linf, 0.03) >= 0.1\n");
  auto root = test::parse_xml(render_junit(report));
  CHECK(root->name == "testsuites");
  CHECK(root->attrs["tests"] == "10");
  CHECK(root->attrs["failures"] == "1");
  CHECK(root->attrs["errors"] == "1");
  auto suites = root->all("testsuite");
  REQUIRE(suites.size() == 1);
  const auto* suite = suites[0];
  CHECK(suite->attrs.at("name") == "mlaudit");
  CHECK(suite->attrs.at("tests") == "10");
  CHECK(suite->attrs.at("failures") == "1");
  CHECK(suite->attrs.at("errors") == "1");
  CHECK(suite->attrs.at("skipped") == "0");
  auto cases = suite->all("testcase");
  REQUIRE(cases.size() == 10);
  int failures = 0, errors = 0;
  for (const auto* c : cases) {
    CHECK(c->attrs.at("classname") == "mlaudit.gates");
    CHECK_FALSE(c->attrs.at("name").empty());
    if (const auto* f = c->child("failure")) {
      ++failures;
      CHECK(c->attrs.at("name") == "robust_accuracy(apgd-ce, linf, 0.03) >= 0.6");
      CHECK(f->attrs.at("message") == "measured 0.52 < threshold 0.6");
      CHECK(f->text.find("check: robust_accuracy(apgd-ce, linf, 0.03) >= 0.6") != std::string::npos);
    }
    if (const auto* e = c->child("error")) {
      ++errors;
      CHECK(e->attrs.at("message") == "metric missing: no robustness section provides robust_accuracy(square, linf, 0.03)");
    }
    if (c->attrs.at("name") == "robust_accuracy(fgsm, linf, 0.03) >= 0.9") {  // warning: visible, not failing
      CHECK(c->child("failure") == nullptr);
      CHECK(c->child("system-out")->text.find("WARNING (not failing): measured 0.6 < threshold 0.9") == 0);
    }
  }
  CHECK(failures == 1);
  CHECK(errors == 1);
}

TEST_CASE("junit and html escape XML metacharacters", "[reports][render]") {
  json report = {{"schema", kReportSchema}, {"tool_version", "t"}};
  report["gates"] = json::array({{{"name", "a<b & \"c\" 'd'"},
                                  {"check", "x"},
                                  {"status", "fail"},
                                  {"severity", "error"},
                                  {"message", "measured 1 < threshold <2> & \x01"}}});
  std::string xml = render_junit(report);
  auto root = test::parse_xml(xml);  // throws on a raw '<' or '&'
  const auto* tc = root->child("testsuite")->child("testcase");
  CHECK(tc->attrs.at("name") == "a<b & \"c\" 'd'");
  CHECK(tc->child("failure")->attrs.at("message") == "measured 1 < threshold <2> & ?");  // control char replaced
  CHECK(xml_escape("<&>\"'") == "&lt;&amp;&gt;&quot;&apos;");
  std::string html = render_html(report);
  CHECK(html.find("a&lt;b &amp; &quot;c&quot;") != std::string::npos);
  CHECK(html.find("a<b") == std::string::npos);
}

TEST_CASE("markdown: GitHub tables with every gate, passed and failed alike", "[reports][render]") {
  json report = fixture_report(std::string(test::kPassingGates) + "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n");
  std::string md = render_markdown(report);
  CHECK(md.rfind("# Model audit report: Test system\n", 0) == 0);
  CHECK(md.find("| Status | Gate | Measured | Threshold | Severity | Details |\n| --- | --- | --- | --- | --- | --- |") != std::string::npos);
  CHECK(md.find("| **PASS** | robust_accuracy(apgd-ce, linf, 0.03) >= 0.5 | 0.52 | >= 0.5 | error | measured 0.52 >= threshold 0.5 |") != std::string::npos);
  CHECK(md.find("| **FAIL** | robust_accuracy(apgd-ce, linf, 0.03) >= 0.6 | 0.52 | >= 0.6 | error | measured 0.52 < threshold 0.6 |") != std::string::npos);
  for (const char* h : {"## Run manifest", "## System and intended use", "## Model summary", "## Performance", "## Robustness",
                        "## Fairness", "## Explanations", "## Formal verification", "## Compliance mapping", "## Limitations"})
    CHECK(md.find(h) != std::string::npos);
  // fairness table with intervals, counterfactual row, certification abstentions
  CHECK(md.find("| sex | 0 | 980 | 0.41 [0.38, 0.44] | 0.36 [0.33, 0.39] | 0.8 [0.76, 0.84] | 0.08 [0.06, 0.1] | 0.86 |") != std::string::npos);
  CHECK(md.find("| sex | 0.081 | 0.052 | 162 |") != std::string::npos);
  CHECK(md.find("3 samples, 1 abstentions") != std::string::npos);
  // 2 of 4 verified: Clopper-Pearson [0.0676, 0.9324] at two significant digits
  CHECK(md.find("| 0.01 | 0.5 (95 % CI 0.07-0.93, n = 4) | 2 | 1 | 1 |") != std::string::npos);  // verification counts from per-sample verdicts
  CHECK(md.find("| EU AI Act Annex IV 2(g) (discriminatory impacts); EU AI Act Annex IV 3 (accuracy for groups of persons); NIST AI RMF MEASURE 2.11; ISO/IEC TR 24027 |") != std::string::npos);
  CHECK(md.find("not a claim of compliance") != std::string::npos);
  // a pipe inside a cell cannot break the table
  json r2 = report;
  r2["gates"][0]["name"] = "a|b";
  CHECK(render_markdown(r2).find("| a\\|b |") != std::string::npos);
}

TEST_CASE("html: one self-contained file with inline SVG charts", "[reports][render]") {
  json report = fixture_report(test::kPassingGates);
  std::string html = render_html(report);
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=\"http") == std::string::npos);
  CHECK(html.find("href=\"http") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("@media print") != std::string::npos);
  // robustness curve, certified curve, fairness bars
  CHECK(html.find("aria-label=\"Robust accuracy vs eps: cnn (linf)\"") != std::string::npos);
  CHECK(html.find("aria-label=\"Certified accuracy vs radius: cnn\"") != std::string::npos);
  CHECK(html.find("aria-label=\"Disparity ratios: sex\"") != std::string::npos);
  // the threshold line of the fairness gate (0.7) is drawn, labelled
  CHECK(html.find(">gate 0.7</text>") != std::string::npos);
  // every <svg> is well-formed XML on its own
  size_t pos = 0;
  int charts = 0;
  while ((pos = html.find("<svg", pos)) != std::string::npos) {
    size_t end = html.find("</svg>", pos);
    REQUIRE(end != std::string::npos);
    CHECK_NOTHROW(test::parse_xml(html.substr(pos, end + 6 - pos)));
    pos = end;
    ++charts;
  }
  CHECK(charts >= 5);
}

TEST_CASE("svg: charts are well-formed with the expected marks", "[reports][render]") {
  using namespace mlaudit::reports::detail;
  auto line = test::parse_xml(svg_line_chart("t<1>", "eps", "acc", {{"pgd", {{0, 0.9}, {0.03, 0.5}}}, {"fgsm", {{0, 0.9}}}}));
  CHECK(line->name == "svg");
  CHECK(line->all("polyline").size() == 2);
  CHECK(line->all("circle").size() == 3);
  auto bars = test::parse_xml(svg_bar_chart("b", {{"g0", 0.3, std::make_pair(0.2, 0.4)}, {"g1", 0.5, std::nullopt}}, 0.8, ""));
  CHECK(bars->all("rect").size() == 2);
  bool dashed = false;
  for (const auto* l : bars->all("line")) dashed |= l->attrs.count("stroke-dasharray") == 1;
  CHECK(dashed);
  // an empty chart still renders
  CHECK_NOTHROW(test::parse_xml(svg_line_chart("empty", "x", "y", {})));
  CHECK_NOTHROW(test::parse_xml(svg_bar_chart("empty", {})));
}

TEST_CASE("schema validator: the subset of JSON Schema the report schema uses", "[reports][schema]") {
  json schema = json::parse(R"({
    "type": "object", "required": ["a", "b"], "additionalProperties": false,
    "properties": {
      "a": {"type": "integer", "minimum": 0, "maximum": 10},
      "b": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/item"}},
      "c": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": "^[0-9a-f]{4}$"}]},
      "d": {"enum": ["x", "y"]}, "e": {"const": 3}, "f": {"type": ["number", "string"]}
    },
    "$defs": {"item": {"type": "object", "required": ["k"]}}
  })");
  CHECK(validate_json_schema(json::parse(R"({"a": 1, "b": [{"k": 1}], "c": null, "d": "x", "e": 3, "f": "s"})"), schema).empty());
  CHECK(validate_json_schema(json::parse(R"({"a": 1, "b": [{"k": 1}], "c": "beef"})"), schema).empty());
  auto errs = [&](const char* text) { return validate_json_schema(json::parse(text), schema); };
  CHECK(errs(R"({"a": 1})") == std::vector<std::string>{": missing required key 'b'"});
  CHECK(errs(R"({"a": 11, "b": [{"k": 1}]})") == std::vector<std::string>{"/a: 11 is above the maximum 10"});
  CHECK(errs(R"({"a": -1, "b": [{"k": 1}]})") == std::vector<std::string>{"/a: -1 is below the minimum 0"});
  CHECK(errs(R"({"a": 1.5, "b": [{"k": 1}]})") == std::vector<std::string>{"/a: expected integer, got number"});
  CHECK(errs(R"({"a": 1, "b": []})") == std::vector<std::string>{"/b: fewer than 1 items"});
  CHECK(errs(R"({"a": 1, "b": [{}]})") == std::vector<std::string>{"/b/0: missing required key 'k'"});
  CHECK(errs(R"({"a": 1, "b": [{"k": 1}], "z": 0})") == std::vector<std::string>{": key 'z' is not allowed"});
  CHECK(errs(R"({"a": 1, "b": [{"k": 1}], "c": "BEEF"})") == std::vector<std::string>{"/c: matches none of the anyOf alternatives"});
  CHECK(errs(R"({"a": 1, "b": [{"k": 1}], "d": "z"})") == std::vector<std::string>{"/d: \"z\" is not one of [\"x\",\"y\"]"});
  CHECK(errs(R"({"a": 1, "b": [{"k": 1}], "e": 4})") == std::vector<std::string>{"/e: must equal 3"});
  CHECK(errs(R"({"a": 1, "b": [{"k": 1}], "f": true})") == std::vector<std::string>{"/f: expected number|string, got boolean"});
}

TEST_CASE("schema: a damaged report is rejected with a JSON pointer", "[reports][schema]") {
  json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  json report = fixture_report(test::kPassingGates);
  REQUIRE(validate_json_schema(report, schema).empty());
  json r1 = report;
  r1.erase("gates");
  CHECK(validate_json_schema(r1, schema) == std::vector<std::string>{": missing required key 'gates'"});
  json r2 = report;
  r2["gates"][0]["status"] = "passed";
  CHECK(validate_json_schema(r2, schema) == std::vector<std::string>{"/gates/0/status: \"passed\" is not one of [\"pass\",\"fail\",\"error\"]"});
  json r3 = report;
  r3["schema"] = "mlaudit.report/2";
  CHECK(validate_json_schema(r3, schema) == std::vector<std::string>{"/schema: must equal \"mlaudit.report/1\""});
}

TEST_CASE("markdown and html: accuracies with their 95 % interval and n, imported sections say so", "[reports][render][interval]") {
  json report = fixture_report("  - robust_accuracy(apgd-ce, linf, 0.03).lower >= 0.3\n");
  json* apgd = nullptr;
  for (auto& s : report["sections"])
    if (s["id"] == "robustness-cnn-apgd-ce") apgd = &s;
  REQUIRE(apgd);
  // the command's interval beside robust_accuracy; clean accuracy's computed from n_samples
  (*apgd)["result"]["n_samples"] = 50;
  (*apgd)["result"]["by_eps"][1]["robust_accuracy_ci"] = {{"k", 26}, {"n", 50}, {"lower", 0.3748}, {"upper", 0.6624},
                                                          {"confidence", 0.95}, {"method", "Clopper-Pearson"}};
  (*apgd)["imported_from"] = "/ci/attack.json";
  const std::string file_sha(64, 'a'), model_sha(64, 'c');
  (*apgd)["imported"] = {{"path", "/ci/attack.json"}, {"sha256", file_sha}, {"schema", "mlaudit.attack/1"}, {"model_check", "match"},
                         {"model_sha256", model_sha}, {"result_model_sha256", model_sha}, {"allow_foreign_model", false}};
  report["gates"] = evaluate_gates({[] {
                                     GateSpec g;
                                     parse_gate_check("robust_accuracy(apgd-ce, linf, 0.03).lower >= 0.4", g, "t");
                                     g.name = g.check;
                                     return g;
                                   }()},
                                   report);
  finalize_report(report);
  std::string md = render_markdown(report), html = render_html(report);
  for (const std::string* text : {&md, &html}) {
    CHECK(text->find("0.52 (95 % CI 0.37-0.66, n = 50)") != std::string::npos);
    CHECK(text->find("clean accuracy 0.9 (95 % CI 0.78-0.97, n = 50)") != std::string::npos);
    CHECK(text->find("robustness-cnn-apgd-ce (model cnn, data fmnist; imported)") != std::string::npos);
    CHECK(text->find("Imported, not run by this audit: the result was read from /ci/attack.json (SHA-256 " + file_sha +
                     "). It records model SHA-256 " + model_sha + ", the audited model") != std::string::npos);
    // the gate row: the lower end measured, with its interval, from the imported section
    CHECK(text->find("0.3748 (lower end of the 95 % CI 0.37-0.66, n = 50)") != std::string::npos);
    CHECK(text->find("(from section robustness-cnn-apgd-ce, imported from /ci/attack.json)") != std::string::npos);
  }
  std::string junit = render_junit(report);
  CHECK(junit.find("section: robustness-cnn-apgd-ce (imported from /ci/attack.json; model check: match)") != std::string::npos);
  CHECK(junit.find("[imported result: /ci/attack.json]") != std::string::npos);
  json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  auto errors = validate_json_schema(report, schema);
  INFO((errors.empty() ? std::string() : errors[0]));
  CHECK(errors.empty());
}
