// The report as a reader sees it (#24): round axis ticks, charts per section kind with
// their text alternatives, tables that never break numbers, the compliance mapping
// without repeated eps, the executive summary of a failing audit, the table of
// contents, the paper size of the print layout, and the fairness counterexample as a
// table instead of a JSON blob.
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>

#include "../../reports/src/doc.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/common/error.h"
#include "mlaudit/common/tensor.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;

namespace {

struct Fixture {
  std::string dir;  // the report folder (relative paths in sections resolve here)
  json report;
};

// The pipeline's report from the fixture sections; the explanation section is given an
// image input shape and an attributions file [2, 1, 28, 28] (what mlaudit explain writes)
// whose mean |attribution| peaks at row 5, column 7.
Fixture fixture_report(const std::string& gates) {
  Fixture f;
  f.dir = test::temp_dir("layout");
  test::write_text(f.dir + "/audit.yaml", test::full_config(gates));
  AuditOptions o;
  o.out_dir = f.dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  f.report = run_audit(load_config(f.dir + "/audit.yaml"), o, std::ref(fake)).report;
  std::vector<float> attr(2 * 28 * 28, 0.01f);
  attr[5 * 28 + 7] = -0.9f;            // image 0: |-0.9|
  attr[28 * 28 + 5 * 28 + 7] = 0.7f;   // image 1
  datasets::write_npy(f.dir + "/out/sections/attr.npy", engine::Tensor::from_floats({2, 1, 28, 28}, attr));
  for (auto& s : f.report["sections"])
    if (s["kind"] == "explanations") {
      s["result"]["input_shape"] = {2, 1, 28, 28};
      s["result"]["attributions_file"] = "sections/attr.npy";
    }
  return f;
}

// class="chart chart-<kind>" of every <svg> in the HTML, counted.
std::map<std::string, int> chart_kinds(const std::string& html) {
  std::map<std::string, int> kinds;
  std::regex re("<svg [^>]*class=\"chart chart-([a-z-]+)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), re); it != std::sregex_iterator(); ++it) kinds[(*it)[1]]++;
  return kinds;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("nice ticks: 1-2-5 steps covering the data, labels with the decimals the step needs", "[reports][layout][ticks]") {
  using namespace mlaudit::reports::detail;
  // accuracy axis with data in [0, 0.93]: 0, 0.2, ..., 1 (not 0.233, 0.465, ...)
  Ticks t = nice_ticks(0, 0.93, 5);
  CHECK(t.step == Approx(0.2));
  CHECK(t.lo == 0);
  CHECK(t.hi == Approx(1.0));
  REQUIRE(t.values.size() == 6);
  CHECK(t.values[3] == Approx(0.6));
  // eps axis [0, 0.05]: steps of 0.01 exactly at the data's end
  t = nice_ticks(0, 0.05, 5);
  CHECK(t.step == Approx(0.01));
  CHECK(t.hi == Approx(0.05));
  CHECK(t.values.size() == 6);
  // [0, 7] in at most 5 intervals: 2 (1 would give 7 intervals), ends snapped to 8
  t = nice_ticks(0, 7, 5);
  CHECK(t.step == 2);
  CHECK(t.hi == 8);
  // a negative end: 1.5 / 5 = 0.3 -> 0.5; [-0.5, 1.5]
  t = nice_ticks(-0.3, 1.2, 5);
  CHECK(t.step == Approx(0.5));
  CHECK(t.lo == Approx(-0.5));
  CHECK(t.hi == Approx(1.5));
  for (double v : t.values) CHECK(std::fabs(v / t.step - std::round(v / t.step)) < 1e-9);  // every tick a multiple of the step
  // one value: a window around it, never a zero-width axis
  t = nice_ticks(3, 3, 5);
  CHECK(t.hi > t.lo);
  CHECK(nice_step(0.3, 3) == Approx(0.1));
  CHECK(nice_step(1000, 4) == Approx(500));
  CHECK(tick_label(0.05, 0.01) == "0.05");
  CHECK(tick_label(0.6000000000000001, 0.2) == "0.6");
  CHECK(tick_label(50, 10) == "50");
  CHECK(tick_label(0, 0.2) == "0.0");
  // the drawn axes carry those labels
  std::string svg = svg_line_chart("t", "eps", "accuracy", {{"pgd", {{0, 0.93}, {0.03, 0.41}}}});
  CHECK(svg.find(">0.4</text>") != std::string::npos);
  CHECK(svg.find(">0.03</text>") != std::string::npos);
  CHECK(svg.find(">0.233</text>") == std::string::npos);
}

TEST_CASE("charts: one per section kind where a picture beats a table, each with a text alternative", "[reports][layout][charts]") {
  Fixture f = fixture_report(test::kPassingGates);
  // the robustness results carry Clopper-Pearson intervals (what mlaudit attack writes)
  for (auto& s : f.report["sections"])
    if (s["kind"] == "robustness") {
      s["result"]["n_samples"] = 50;
      s["result"]["clean_accuracy_ci"] = datasets::proportion_json(45, 50);
      for (auto& e : s["result"]["by_eps"])
        e["robust_accuracy_ci"] = datasets::proportion_json(int64_t(std::lround(e["robust_accuracy"].get<double>() * 50)), 50);
    }
  const std::string html = render_html(f.report, f.dir + "/out");
  auto kinds = chart_kinds(html);
  INFO(html.substr(0, 200));
  CHECK(kinds["robust-eps"] == 1);             // robust accuracy vs eps, attacks of one model and norm together
  CHECK(kinds["certified-radius"] == 1);
  CHECK(kinds["corruption-severity"] == 1);    // one line per corruption
  CHECK(kinds["fairness-groups"] == 1);        // metrics per group with intervals
  CHECK(kinds["fairness-ratios"] == 1);
  CHECK(kinds["verification-verdicts"] == 1);  // stacked verdicts per eps
  CHECK(kinds["attribution-heatmap"] == 1);    // average |attribution| of an image model
  CHECK(kinds.count("global-importance") == 0);  // no bar chart of pixel indices for an image model
  // the robustness chart draws the 95 % bands; the corruption chart its 2 lines from severity 0 (clean)
  size_t robust = html.find("chart-robust-eps");
  std::string robust_svg = html.substr(robust, html.find("</svg>", robust) - robust);
  CHECK(count(robust_svg, "<polygon class=\"band\"") == 2);  // fgsm and apgd-ce
  CHECK(robust_svg.find("Shaded: 95 % Clopper-Pearson interval.") != std::string::npos);
  size_t corr = html.find("chart-corruption-severity");
  std::string corr_svg = html.substr(corr, html.find("</svg>", corr) - corr);
  CHECK(count(corr_svg, "<polyline") == 2);
  CHECK(corr_svg.find("gaussian_noise: (0, ") != std::string::npos);
  // the verdict bars: 2 verified, 1 falsified, 1 unknown at eps 0.01 (the per-sample verdicts)
  size_t ver = html.find("chart-verification-verdicts");
  std::string ver_svg = html.substr(ver, html.find("</svg>", ver) - ver);
  CHECK(ver_svg.find("eps 0.01: verified (proof) 2, falsified 1, unknown 1, timeout 0;") != std::string::npos);
  // the heatmap names its peak (row 5, column 7) in its text alternative and sits before the per-image heatmaps
  size_t heat = html.find("chart-attribution-heatmap");
  CHECK(html.find("the largest value is at row 5, column 7", heat) != std::string::npos);
  CHECK(heat < html.find("<img class=\"heatmap\""));
  // the pixel table names positions, not flat indices (feature 400 = row 14, column 8)
  CHECK(html.find("pixel (row 14, column 8)") != std::string::npos);
  // every chart: numbered id, <title> and <desc>, Okabe-Ito colours, well-formed XML
  int n = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) {
    std::string svg = html.substr(at, html.find("</svg>", at) + 6 - at);
    auto root = test::parse_xml(svg);
    CHECK(root->attrs["id"] == "chart-" + std::to_string(++n));
    CHECK(root->attrs["role"] == "img");
    REQUIRE(root->child("title"));
    REQUIRE(root->child("desc"));
    CHECK(root->child("title")->text == root->attrs["aria-label"]);
    CHECK(root->child("desc")->text.size() > 20);
    CHECK(svg.find("#1f77b4") == std::string::npos);  // the old default palette (blue and red for two series) is gone
  }
  CHECK(n == 7);
  // Markdown links the same charts as files
  CHECK(render_chart_files(f.report, f.dir + "/out").size() == 7);
}

TEST_CASE("tables: numbers never wrap, narrow columns abbreviate with a legend, wide tables scroll", "[reports][layout][tables]") {
  Fixture f = fixture_report(test::kPassingGates);
  const std::string html = render_html(f.report, f.dir + "/out");
  // every table scrolls inside its own box on a narrow screen
  CHECK(count(html, "<div class=\"table-wrap\"><table>") == count(html, "<table>"));
  CHECK(html.find(".table-wrap{overflow-x:auto") != std::string::npos);
  // no rule lets the browser break inside a word
  CHECK(html.find("word-break:break-word") == std::string::npos);
  CHECK(html.find("word-break:break-all") == std::string::npos);
  CHECK(html.find("td.num{white-space:nowrap;font-variant-numeric:tabular-nums}") != std::string::npos);
  // numeric cells (intervals, comparisons) are marked; words are not
  CHECK(html.find("<td class=\"num\">0.52</td>") != std::string::npos);
  CHECK(html.find("<td class=\"num\">&gt;= 0.5</td>") != std::string::npos);
  CHECK(html.find("<td class=\"num\">0.5 (95 % CI 0.07-0.93, n = 4)</td>") != std::string::npos);
  CHECK(html.find("<td class=\"num\">error</td>") == std::string::npos);
  // abbreviated headers with the full text on hover and a legend under the table
  CHECK(html.find("<th><abbr title=\"Attack success rate\">ASR</abbr></th>") != std::string::npos);
  CHECK(html.find("<p class=\"legend\">ASR: attack success rate") != std::string::npos);
  CHECK(html.find("<th><abbr title=\"Selection rate\">Sel. rate</abbr></th>") != std::string::npos);
  // Markdown keeps the full headers (GitHub scrolls wide tables)
  const std::string md = render_markdown(f.report, f.dir + "/out");
  CHECK(md.find("| eps | Robust accuracy | Attack success rate | Mean perturbation norm |") != std::string::npos);
  // long tokens break at '/', '_' and '(' only; hashes keep their 64 characters on one line
  CHECK(html.find("robust_<wbr>accuracy(<wbr>apgd-ce,") != std::string::npos);
  CHECK(std::regex_search(html, std::regex("<code class=\"hash\">[0-9a-f]{64}</code>")));
}

TEST_CASE("compliance mapping: each eps once, even when verify writes by_eps and its per_eps alias", "[reports][layout][compliance]") {
  Fixture f = fixture_report(test::kPassingGates);
  for (auto& s : f.report["sections"])
    if (s["kind"] == "verification") s["result"]["by_eps"] = s["result"]["per_eps"];  // mlaudit verify writes both
  const json mapping = compliance_mapping(f.report);
  std::string measured;
  for (const auto& row : mapping)
    if (row["kind"] == "verification") measured = row["measured"];
  INFO(measured);
  CHECK(count(measured, "eps 0.01:") == 1);
  CHECK(measured.find("eps 0.01: 0.5 (2 of 4)") != std::string::npos);
  CHECK(measured.find("n/a") == std::string::npos);
  // an older result with by_eps[].verified_fraction only still reads
  json old = f.report;
  for (auto& s : old["sections"])
    if (s["kind"] == "verification") {
      s["result"].erase("per_eps");
      s["result"]["by_eps"] = json::array({{{"eps", 0.01}, {"verified_fraction", 0.25}}});
    }
  CHECK(detail::section_headline(old["sections"][0]).find("eps") == std::string::npos);  // performance: no eps
  for (const auto& row : compliance_mapping(old))
    if (row["kind"] == "verification") CHECK(row["measured"].get<std::string>().find("eps 0.01: 0.25") != std::string::npos);
}

TEST_CASE("executive summary of a failing audit: verdict, failed gates in words, three ranked findings", "[reports][layout][summary]") {
  // apgd-ce at 0.03 measures 0.52: fails >= 0.6 (error); fgsm 0.6 fails >= 0.9 (warning); square is missing (error)
  Fixture f = fixture_report(std::string(test::kPassingGates) +
                             "  - check: robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n    description: the release bar\n"
                             "  - check: robust_accuracy(fgsm, linf, 0.03) >= 0.9\n    severity: warning\n"
                             "  - check: demographic_parity_ratio(sex) >= 0.9\n    name: ten percent rule\n");
  {
    const auto es = detail::executive_summary(f.report);
    INFO(es.verdict);
    CHECK(es.verdict.rfind("FAIL: 2 gates with severity error failed, so the model does not meet this audit's release policy", 0) == 0);
    CHECK(es.verdict.find("1 warning gate failed without failing the audit") != std::string::npos);
    REQUIRE(es.failed_gates.size() == 3);
    // plain words from the metric table's description and the gate's arguments, with the policy's bar
    CHECK(es.failed_gates[0] ==
          "Accuracy under the attack at radius eps (attack apgd-ce, norm linf, eps 0.03) is 0.52; the policy requires at "
          "least 0.6 (the release bar).");
    CHECK(es.failed_gates[1].rfind("'ten percent rule': The lowest group selection rate divided by the highest", 0) == 0);
    CHECK(es.failed_gates[2].rfind("Warning: Accuracy under the attack at radius eps (attack fgsm, norm linf, eps 0.03) is 0.6;", 0) == 0);
    // ranking: both error failures have no interval (tier 1), the farther one first: (0.9 - 0.x) / 0.9 vs (0.6 - 0.52) / 0.6
    REQUIRE(es.top_findings.size() == 3);
    double ratio = 0;
    for (const auto& g : f.report["gates"])
      if (g["name"] == "ten percent rule") ratio = g["measured"].get<double>();
    INFO(ratio);
    const bool fairness_first = (0.9 - ratio) / 0.9 > (0.6 - 0.52) / 0.6;
    CHECK(es.top_findings[fairness_first ? 0 : 1].find("ten percent rule") != std::string::npos);
    CHECK(es.top_findings[2].rfind("Warning (does not fail the audit):", 0) == 0);
  }
  // a gate whose metric is missing and a confirmed failure (its interval wholly below) outrank the rest
  json r = f.report;
  r["gates"] = evaluate_gates(
      [] {
        std::vector<GateSpec> gates;
        for (const char* check : {"robust_accuracy(apgd-ce, linf, 0.03) >= 0.6", "robust_accuracy(square, linf, 0.03) >= 0.1",
                                  "robust_accuracy(apgd-ce, linf, 0.03) >= 0.99", "robust_accuracy(fgsm, linf, 0.03) >= 0.59"}) {
          GateSpec g;
          parse_gate_check(check, g, "t");
          g.name = g.check;
          gates.push_back(g);
        }
        return gates;
      }(),
      [&] {
        json with_ci = r;
        for (auto& s : with_ci["sections"])
          if (s["kind"] == "robustness") {
            s["result"]["n_samples"] = 50;
            for (auto& e : s["result"]["by_eps"])
              e["robust_accuracy_ci"] = datasets::proportion_json(int64_t(std::lround(e["robust_accuracy"].get<double>() * 50)), 50);
          }
        return with_ci;
      }());
  finalize_report(r);
  const auto es = detail::executive_summary(r);
  CHECK(es.verdict.rfind("ERROR: the audit could not decide (1 gate without a measurement, 0 sections not completed).", 0) == 0);
  REQUIRE(es.top_findings.size() == 3);
  CHECK(es.top_findings[0].find("could not be measured: metric missing") != std::string::npos);  // tier 0
  CHECK(es.top_findings[1].find("the policy requires at least 0.99. The whole 95 % interval is on the failing side.") !=
        std::string::npos);  // tier 1: 0.52 (CI 0.37-0.66) < 0.99
  CHECK(es.top_findings[2].find("more samples could change the verdict") != std::string::npos);  // tier 2: 0.6 is inside the CI
  // a passing audit: only passes whose interval reaches the threshold are findings (verified
  // fraction 0.5, CI 0.07-0.93, against >= 0.5), not one whose interval clears it (accuracy
  // 0.853, CI 0.84-0.87, against >= 0.5)
  const auto passing = detail::executive_summary(fixture_report(test::kPassingGates).report);
  CHECK(passing.verdict == "PASS: every gate with severity error passed (7 of 7 gates passed).");
  CHECK(passing.failed_gates.empty());
  REQUIRE(passing.top_findings.size() == 1);
  CHECK(passing.top_findings[0].rfind("Passed, but not with 95 % confidence", 0) == 0);
  CHECK(passing.top_findings[0].find("proved robust at eps (norm linf, eps 0.01) is 0.5 (95 % CI 0.07-0.93, n = 4)") != std::string::npos);
  // in the document: right after the title, before the gate table, with the table of contents after it
  const std::string md = render_markdown(r);
  CHECK(md.find("## Executive summary") < md.find("**Contents**"));
  CHECK(md.find("**Contents**") < md.find("## Gate verdicts"));
  CHECK(md.find("1. [Executive summary](#executive-summary)\n2. [Gate verdicts](#gate-verdicts)\n") != std::string::npos);
}

TEST_CASE("print layout: A4 by default, letter on request, running header, page numbers, contents", "[reports][layout][paper]") {
  Fixture f = fixture_report(test::kPassingGates);
  const std::string a4 = render_html(f.report, f.dir + "/out");
  CHECK(a4.find("@page{size:A4;") != std::string::npos);
  RenderOptions letter;
  letter.paper = parse_paper("Letter");
  const std::string us = render_html(f.report, f.dir + "/out", letter);
  CHECK(us.find("@page{size:letter;") != std::string::npos);
  CHECK(us.find("size:A4") == std::string::npos);
  CHECK(parse_paper("A4") == Paper::A4);
  CHECK(std::string(paper_name(Paper::Letter)) == "letter");
  CHECK_THROWS_WITH(parse_paper("a5"), "report: --paper: 'a5' is not one of a4, letter");
  CHECK_THROWS_AS(parse_paper(""), InputError);
  // running header with the system name and verdict, "Page n of N", headings kept with what follows
  CHECK(a4.find("@top-left{content:\"mlaudit report: Test system | verdict PASS\"") != std::string::npos);
  CHECK(a4.find("@bottom-right{content:\"Page \" counter(page) \" of \" counter(pages)") != std::string::npos);
  CHECK(a4.find("h1,h2,h3,h4{break-after:avoid") != std::string::npos);
  CHECK(a4.find("tr,svg,figure,dl,.note,.legend,img{break-inside:avoid") != std::string::npos);
  // a system name cannot break out of the CSS string or the style element
  json hostile = f.report;
  hostile["system"]["name"] = "x\"}</style><script>alert(1)</script>";
  const std::string h = render_html(hostile);
  CHECK(h.find("<script>") == std::string::npos);
  CHECK(h.find("x\\\"}\\3c /style>") != std::string::npos);
  // the table of contents: every level-2 section, with a slot for its page number
  CHECK(a4.find("<nav class=\"toc\" aria-label=\"Contents\">") != std::string::npos);
  for (const char* anchor : {"summary", "gates", "manifest", "robustness", "fairness", "verification", "compliance", "limitations"})
    CHECK(a4.find(std::string("<span class=\"toc-page\" data-anchor=\"") + anchor + "\"></span>") != std::string::npos);
}

TEST_CASE("fairness counterexample: a table per pair, not a raw JSON blob", "[reports][layout][verification]") {
  json report = {{"schema", kReportSchema}, {"tool_version", "t"}, {"gates", json::array()}};
  json cex = {{"index", 0},
              {"input_a", {53.99711608886719, 260.0999755859375, 0.0}},
              {"input_b", {53.99711608886719, 260.0999755859375, 1.0}},
              {"lower", {18.0, 9.0, 0.0}},
              {"upper", {75.0, 260.1, 1.0}},
              {"output_a", {0.3962920904159546, -0.27459776401519775}},
              {"output_b", {-1.0701919794082642, 0.8725231289863586}},
              {"seconds", 0.000236},
              {"verdict", "counterexample"}};
  report["sections"] = json::array({{{"id", "verification-credit-fairness"},
                                     {"kind", "verification"},
                                     {"model", "credit"},
                                     {"status", "ok"},
                                     {"params", {{"mode", "fairness"}, {"protected", "sex"}}},
                                     {"result",
                                      {{"features", {"age", "income", "sex"}},
                                       {"summary", {{"partitions", 1}, {"proved", 0}, {"counterexample", 1}}},
                                       {"counterexample_pairs", {cex}}}}}});
  finalize_report(report);
  const std::string html = render_html(report), md = render_markdown(report);
  for (const std::string* text : {&html, &md}) {
    CHECK(text->find("input_a") == std::string::npos);
    CHECK(text->find("[53.99") == std::string::npos);
    CHECK(text->find("Counterexample 1") != std::string::npos);
  }
  CHECK(html.find("<dt>Decision for input A</dt><dd>class 0 (outputs 0.3963, -0.2746)</dd>") != std::string::npos);
  CHECK(html.find("<dt>Decision for input B</dt><dd>class 1 (outputs -1.07, 0.8725)</dd>") != std::string::npos);
  CHECK(md.find("| sex | 0 to 1 | 0 | 1 | differs |") != std::string::npos);
  CHECK(md.find("| income | 9 to 260.1 | 260.1 | 260.1 |") != std::string::npos);
  CHECK(html.find("dl.definitions dt{font-weight:bold}dl.definitions dd{margin:0;overflow-wrap:anywhere}") != std::string::npos);
}
