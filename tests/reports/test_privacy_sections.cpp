// Privacy (membership inference) and backdoor sections of the audit: config keys
// and their errors, the command-line each section runs, the gate metrics read
// from mlaudit.privacy/1 and mlaudit.backdoor/1, the renderings and the schema.
// Section results come from tests/fixtures/reports/{privacy,backdoor}.json,
// real outputs of (paths shortened in the files; trigger PNG folder TRIGGER_DIR):
//   mlaudit privacy --model models/privacy/overfit_mlp.onnx --members datasets/privacy/overfit_members_x.npy
//     --member-labels ..._members_y.npy --non-members ..._nonmembers_x.npy --non-member-labels ..._nonmembers_y.npy
//     --attacks loss,confidence,entropy,lira --reference-models models/privacy/overfit_refs --out privacy.json
//   mlaudit backdoor --model models/privacy/backdoor_cnn.onnx --clean datasets/privacy/backdoor_clean_x.npy
//     --suspicious datasets/privacy/backdoor_triggered_x.npy --all-triggers --trigger-dir TRIGGER_DIR --seed 0
//     --out backdoor.json
// (test_cli_privacy.cpp compares an audit against those commands run directly).
#include <catch2/catch.hpp>

#include <filesystem>

#include "../../reports/src/doc.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

AuditConfig parse(const std::string& text) { return test::parse_config_text(text); }
std::string error_of(const std::string& text) { return test::config_error_of(text); }

const char* kBase =
    "models:\n"
    "  cnn: m.onnx\n"
    "datasets:\n"
    "  train: {data: xm.npy, labels: ym.npy, domain: [0, 1]}\n"
    "  test: {data: xn.npy, labels: yn.npy}\n"
    "  ctrain: {csv: train.csv, label: approved, features: [age, income]}\n"
    "  ctest: {csv: test.csv, label: approved, features: [age, income]}\n"
    "  other: {csv: other.csv, label: outcome, features: [age, income]}\n";

json fixture_json(const std::string& name) { return json::parse(test::read_text(test::fixture(name))); }

json section(const std::string& id, const std::string& kind, const std::string& model, const json& params,
             const json& result, const std::string& status = "ok") {
  json s = {{"id", id}, {"kind", kind}, {"model", model}, {"data", nullptr}, {"params", params},
            {"status", status}, {"seconds", 0.1}};
  if (status == "ok") s["result"] = result;
  else s["error"] = "'mlaudit " + kind + "' exited with code 2";
  return s;
}

// A report holding `sections` (json::array: a one-element brace list would copy the element).
json report_with(const std::vector<json>& sections) {
  json r;
  r["sections"] = sections;
  return r;
}

double metric(const json& report, const std::string& check) {
  GateSpec g;
  parse_gate_check(check + " >= 0", g, "test");
  MetricValue v = lookup_metric(report, g.metric, g.args, "");
  INFO(check << ": " << v.why);
  REQUIRE(v.value);
  return *v.value;
}

std::string missing_reason(const json& report, const std::string& check) {
  GateSpec g;
  parse_gate_check(check + " >= 0", g, "test");
  MetricValue v = lookup_metric(report, g.metric, g.args, "");
  return v.value ? "found" : v.why;
}

// "membership_auc(%s)" with the attack name in place of %s.
std::string fmt_check(const std::string& pattern, const std::string& name) {
  std::string s = pattern;
  return s.replace(s.find("%s"), 2, name);
}

const json* attack(const json& privacy, const std::string& name) {
  for (const auto& a : privacy["attacks"])
    if (a["name"] == name) return &a;
  return nullptr;
}

// Audit config with a privacy and a backdoor section answered by the FakeRunner.
std::string privacy_config(const std::string& gates) {
  std::string root = test::source_path("");
  return "system: {name: privacy test}\n"
         "seed: 0\n"
         "models:\n  overfit: " + root + "models/privacy/overfit_mlp.onnx\n  bd: " + root + "models/privacy/backdoor_cnn.onnx\n"
         "datasets:\n"
         "  members: {data: " + root + "datasets/privacy/overfit_members_x.npy, labels: " + root + "datasets/privacy/overfit_members_y.npy}\n"
         "  nonmembers: {data: " + root + "datasets/privacy/overfit_nonmembers_x.npy, labels: " + root + "datasets/privacy/overfit_nonmembers_y.npy}\n"
         "  clean: {data: " + root + "datasets/privacy/backdoor_clean_x.npy, labels: " + root + "datasets/privacy/backdoor_clean_y.npy, domain: [0, 1]}\n"
         "sections:\n"
         "  privacy:\n    - {model: overfit, members: members, non_members: nonmembers, attacks: [loss, confidence, entropy, lira], reference_models: " + root + "models/privacy/overfit_refs}\n"
         "  backdoor:\n    - {model: bd, data: clean, suspicious: " + root + "datasets/privacy/backdoor_triggered_x.npy}\n"
         "gates:\n" + gates;
}

}  // namespace

TEST_CASE("privacy config: members / non_members, attacks and defaults", "[reports][privacy]") {
  auto cfg = parse(std::string(kBase) +
                   "sections:\n"
                   "  privacy:\n"
                   "    - {model: cnn, members: train, non_members: test, attacks: [loss, label-only], label_only_steps: 20}\n"
                   "    - {model: cnn, members: ctrain, non_members: ctest, limit: 100}\n"
                   "  backdoor: {model: cnn, data: train, classes: [0, 3], epochs: 10, suspicious: s.npy, frr: 0.05}\n");
  REQUIRE(cfg.sections.size() == 3);
  const auto& p = cfg.sections[0];
  CHECK(p.kind == SectionKind::Privacy);
  CHECK(p.id == "privacy-cnn");
  CHECK(p.data.empty());
  CHECK(p.params["members"] == "train");
  CHECK(p.params["non_members"] == "test");
  CHECK(cfg.sections[1].id == "privacy-cnn-2");
  const auto& b = cfg.sections[2];
  CHECK(b.kind == SectionKind::Backdoor);
  CHECK(b.id == "backdoor-cnn");
  CHECK(b.params["classes"] == json::array({0, 3}));
  CHECK(b.params["suspicious"] == "/cfg/s.npy");
  // report order: privacy and backdoor come after verification
  const auto& kinds = all_section_kinds();
  CHECK(kinds[kinds.size() - 2] == SectionKind::Privacy);
  CHECK(kinds.back() == SectionKind::Backdoor);
  CHECK(std::string(section_kind_name(SectionKind::Backdoor)) == "backdoor");
}

TEST_CASE("privacy config: every error names the line and column", "[reports][privacy]") {
  std::string base = std::string(kBase) + "sections:\n  privacy:\n";
  CHECK(error_of(base + "    - {model: cnn, members: train}\n") ==
        "audit: audit.yaml:11:7: 'privacy' entry needs the key 'non_members'");
  CHECK(error_of(base + "    - {model: cnn, data: train, members: train, non_members: test}\n") ==
        "audit: audit.yaml:11:26: 'privacy' entry takes 'members' and 'non_members' (data set ids) instead of 'data'");
  CHECK(error_of(base + "    - {model: cnn, members: trian, non_members: test}\n") ==
        "audit: audit.yaml:11:29: unknown data set 'trian' (did you mean 'train'?)");
  CHECK(error_of(base + "    - {model: cnn, members: train, non_members: train}\n") ==
        "audit: audit.yaml:11:49: 'privacy' entry: 'members' and 'non_members' name the same data set 'train'");
  CHECK(error_of(base + "    - {model: cnn, members: ctrain, non_members: other}\n") ==
        "audit: audit.yaml:11:50: 'privacy' entry: CSV data sets 'ctrain' and 'other' must have the same 'label' and 'features'");
  CHECK(error_of(base + "    - {model: cnn, members: train, non_members: test, attacks: [loss, entorpy]}\n") ==
        "audit: audit.yaml:11:64: 'attacks' cannot contain 'entorpy' (did you mean 'entropy'?)");
  CHECK(error_of(base + "    - {model: cnn, members: train, non_members: test, attacks: [lira]}\n") ==
        "audit: audit.yaml:11:64: 'privacy' entry: attack 'lira' needs 'reference_models' (a folder of ONNX models trained "
        "without the members)");
  CHECK(error_of(base + "    - {model: cnn, members: train, non_members: test, fixed_variance: per_example}\n") ==
        "audit: audit.yaml:11:71: 'fixed_variance' cannot be 'per_example' (did you mean 'per-example'?)");
  CHECK(error_of(base + "    - {model: cnn, members: train, non_members: test, label_only_steps: 0}\n") ==
        "audit: audit.yaml:11:73: 'label_only_steps' must be positive");
  std::string bd = std::string(kBase) + "sections:\n  backdoor:\n";
  CHECK(error_of(bd + "    - {model: cnn, data: ctrain}\n") ==
        "audit: audit.yaml:11:26: 'backdoor' entry: data set 'ctrain' is a CSV; this section needs .npy data");
  CHECK(error_of(bd + "    - {model: cnn, data: train, neural_cleanse: false}\n") ==
        "audit: audit.yaml:11:7: 'backdoor' entry: 'neural_cleanse: false' leaves only STRIP, which needs 'suspicious' "
        "(an .npy of inputs to screen)");
  CHECK(error_of(bd + "    - {model: cnn, data: train, frr: 1.5}\n") ==
        "audit: audit.yaml:11:38: 'frr' must lie strictly between 0 and 1");
  CHECK(error_of(bd + "    - {model: cnn, data: train, classes: [0, -1]}\n") ==
        "audit: audit.yaml:11:42: 'classes' must be non-negative class indices");
  CHECK(error_of(bd + "    - {model: cnn, data: train, epocs: 5}\n") ==
        "audit: audit.yaml:11:33: unknown key 'epocs' in 'backdoor' entry (did you mean 'epochs'?)");
  // gate arguments: the two FPRs mlaudit privacy records
  GateSpec g;
  CHECK_NOTHROW(parse_gate_check("membership_tpr_at_fpr(loss, 0.001) <= 0.05", g, "w"));
  CHECK(g.args == std::vector<std::string>{"loss", "0.001"});
  try {
    parse_gate_check("membership_tpr_at_fpr(loss, 0.05) <= 0.05", g, "w");
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()) == "audit: w: gate 'membership_tpr_at_fpr(loss, 0.05) <= 0.05': argument '0.05' (fpr) must be "
                                   "0.001 or 0.01 (the false-positive rates mlaudit privacy records)");
  }
}

TEST_CASE("privacy sections: the command lines they run", "[reports][privacy]") {
  std::string dir = test::temp_dir("privacy-args");
  fs::create_directories(dir + "/inputs");
  auto cfg = parse(std::string(kBase) +
                   "seed: 5\n"
                   "sections:\n"
                   "  privacy:\n"
                   "    - {model: cnn, members: train, non_members: test, attacks: [loss, lira], reference_models: refs, batch: 64}\n"
                   "    - {model: cnn, members: ctrain, non_members: test}\n"
                   "  backdoor: {model: cnn, data: train, classes: [0, 3], epochs: 10, suspicious: s.npy, strip_overlays: 50, "
                   "neural_cleanse: false, all_triggers: false}\n");
  SectionCommand npy = section_command(cfg.sections[0], cfg, dir);
  CHECK(npy.command == "privacy");
  CHECK(npy.args == std::vector<std::string>{"--model", "/cfg/m.onnx", "--members", "/cfg/xm.npy", "--member-labels",
                                             "/cfg/ym.npy", "--non-members", "/cfg/xn.npy", "--non-member-labels",
                                             "/cfg/yn.npy", "--attacks", "loss,lira", "--reference-models", "/cfg/refs",
                                             "--batch", "64", "--clip-min", "0", "--clip-max", "1", "--out",
                                             dir + "/privacy-cnn.json"});
  // a CSV member set and an .npy non-member set: inline features are written to a file
  SectionCommand mixed = section_command(cfg.sections[1], cfg, dir);
  CHECK(mixed.args == std::vector<std::string>{"--model", "/cfg/m.onnx", "--members", "/cfg/train.csv", "--non-members",
                                               "/cfg/xn.npy", "--non-member-labels", "/cfg/yn.npy", "--label-column",
                                               "approved", "--features", dir + "/inputs/ctrain-features.txt", "--out",
                                               dir + "/privacy-cnn-2.json"});
  CHECK(test::read_text(dir + "/inputs/ctrain-features.txt") == "age\nincome\n");
  SectionCommand bd = section_command(cfg.sections[2], cfg, dir);
  CHECK(bd.command == "backdoor");
  CHECK(bd.args == std::vector<std::string>{"--model", "/cfg/m.onnx", "--data", "/cfg/xm.npy", "--classes", "0,3",
                                            "--epochs", "10", "--no-neural-cleanse", "--suspicious", "/cfg/s.npy",
                                            "--strip-overlays", "50", "--trigger-dir", dir + "/backdoor-cnn-triggers",
                                            "--clip-min", "0", "--clip-max", "1", "--seed", "5", "--out",
                                            dir + "/backdoor-cnn.json"});
}

TEST_CASE("privacy gates: metrics read mlaudit.privacy/1 and mlaudit.backdoor/1", "[reports][privacy][gates]") {
  const json p = fixture_json("privacy.json");
  const json b = fixture_json("backdoor.json");
  json report = report_with({section("priv", "privacy", "overfit", {{"members", "m"}, {"non_members", "n"}}, p),
                             section("bd", "backdoor", "cnn", json::object(), b)});
  for (const char* name : {"loss", "confidence", "entropy", "lira"}) {
    const json* a = attack(p, name);
    REQUIRE(a);
    CHECK(metric(report, fmt_check("membership_auc(%s)", name)) == (*a)["auc"].get<double>());
    CHECK(metric(report, fmt_check("membership_balanced_accuracy(%s)", name)) == (*a)["balanced_accuracy"].get<double>());
    CHECK(metric(report, fmt_check("membership_tpr_at_fpr(%s, 0.001)", name)) == (*a)["tpr_at_fpr_0.001"].get<double>());
    CHECK(metric(report, fmt_check("membership_tpr_at_fpr(%s, 0.01)", name)) == (*a)["tpr_at_fpr_0.01"].get<double>());
  }
  double best = 0;
  for (const auto& a : p["attacks"]) best = std::max(best, a["auc"].get<double>());
  CHECK(metric(report, "max_membership_auc()") == best);
  CHECK(best > 0.6);  // the overfit model leaks (tools/privacy_train.py: train acc 1.0, test ~0.74)
  // The backdoored CNN: class 0 flagged in the fixture, the largest small-side index is class 0's.
  REQUIRE(b["neural_cleanse"]["flagged"] == json::array({0}));
  CHECK(metric(report, "backdoor_flagged_classes()") == 1);
  CHECK(metric(report, "backdoor_max_anomaly_index()") == b["neural_cleanse"]["classes"][0]["anomaly_index"].get<double>());
  CHECK(metric(report, "strip_flagged_fraction()") == b["strip"]["flagged_fraction"].get<double>());
  // an attack the section did not run is missing (an error), never a pass
  CHECK(missing_reason(report, "membership_auc(label-only)") == "no privacy section provides membership_auc(label-only)");
  // a failed section that was asked for the attack names its failure
  json failed = report_with({section("priv", "privacy", "overfit", {{"attacks", json::array({"loss"})}}, nullptr, "error")});
  CHECK(missing_reason(failed, "membership_auc(loss)") ==
        "section 'priv' did not complete ('mlaudit privacy' exited with code 2)");
  CHECK(missing_reason(failed, "membership_auc(entropy)") == "no privacy section provides membership_auc(entropy)");
  // STRIP only: no Neural Cleanse metrics
  json strip_only = b;
  strip_only.erase("neural_cleanse");
  json r2 = report_with({section("bd", "backdoor", "cnn", {{"neural_cleanse", false}}, strip_only)});
  CHECK(missing_reason(r2, "backdoor_flagged_classes()") == "no backdoor section provides backdoor_flagged_classes()");
  // an infinite anomaly index (null in JSON) is an error gate, not a pass
  json inf = b;
  inf["neural_cleanse"]["classes"][0]["anomaly_index"] = nullptr;
  GateSpec g;
  parse_gate_check("backdoor_max_anomaly_index() <= 2", g, "t");
  g.name = g.check;
  json rec = evaluate_gate(g, report_with({section("bd", "backdoor", "cnn", json::object(), inf)}));
  CHECK(rec["status"] == "error");
  CHECK(rec["message"] == "metric missing: the measured value is not a finite number");
}

TEST_CASE("privacy report: ROC chart, trigger images, STRIP summary, schema", "[reports][privacy][render]") {
  std::string dir = test::temp_dir("privacy-report");
  test::write_text(dir + "/audit.yaml", privacy_config("  - membership_auc(loss) <= 0.6\n"
                                                       "  - check: backdoor_flagged_classes() == 0\n    name: no backdoor\n"
                                                       "  - strip_flagged_fraction() <= 0.5\n"));
  AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  AuditResult res = run_audit(load_config(dir + "/audit.yaml"), o, std::ref(fake));
  const json& report = res.report;
  // both gates fail on the fixtures: the overfit model leaks and the backdoor is found
  CHECK(res.exit_code == 1);
  REQUIRE(report["gates"].size() == 3);
  CHECK(report["gates"][0]["status"] == "fail");
  CHECK(report["gates"][1]["status"] == "fail");
  CHECK(report["gates"][1]["measured"] == 1.0);
  CHECK(report["gates"][2]["status"] == "fail");
  const auto calls = fake.section_calls();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].first == "privacy");
  CHECK(calls[1].first == "backdoor");
  // the report validates, and a privacy result without its attacks does not
  json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  auto errors = validate_json_schema(report, schema);
  INFO((errors.empty() ? std::string() : errors[0]));
  CHECK(errors.empty());
  json broken = report;
  for (auto& s : broken["sections"])
    if (s["kind"] == "privacy") s["result"].erase("attacks");
  errors = validate_json_schema(broken, schema);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "/sections/0/result: missing required key 'attacks'");
  // trigger images were kept next to the report with relative paths
  const json& bd = report["sections"][1];
  std::string png = bd["result"]["neural_cleanse"]["classes"][0]["trigger_png"];
  CHECK(png == "sections/backdoor-bd-triggers/trigger_class_0.png");
  CHECK(fs::exists(dir + "/out/" + png));

  std::string md = test::read_text(dir + "/out/report.md");
  const json p = fixture_json("privacy.json");
  const json* loss = attack(p, "loss");
  REQUIRE(loss);
  CHECK(md.find("## Privacy: membership inference") != std::string::npos);
  CHECK(md.find("| Attack | ROC AUC | Best balanced accuracy | TPR at 0.1% FPR | TPR at 1% FPR |") != std::string::npos);
  CHECK(md.find("| loss | " + detail::num((*loss)["auc"]) + " | " + detail::num((*loss)["balanced_accuracy"])) !=
        std::string::npos);
  CHECK(md.find("## Backdoor scan") != std::string::npos);
  CHECK(md.find("![Reversed trigger (mask x pattern), class 0 - FLAGGED](" + png + ")") != std::string::npos);
  CHECK(md.find("| Screened inputs | 20 |") != std::string::npos);
  // the ROC is a linked SVG file next to report.md (and inline in report.html)
  size_t roc = md.find("![Membership inference ROC: overfit](charts/chart-");
  REQUIRE(roc != std::string::npos);
  std::string chart = md.substr(roc, md.find(')', roc) - roc);
  chart = chart.substr(chart.find("](") + 2);
  REQUIRE(fs::exists(dir + "/out/" + chart));
  auto svg = test::parse_xml(test::read_text(dir + "/out/" + chart));
  CHECK(svg->name == "svg");
  CHECK(svg->attrs["aria-label"] == "Membership inference ROC: overfit");
  CHECK(render_chart_files(report).size() == 2);  // the ROC and the anomaly-index bars
  CHECK(md.find("| Privacy: membership inference | EU AI Act Art. 15(5) (confidentiality attacks)") != std::string::npos);
  CHECK(md.find("| Security: backdoor scan | EU AI Act Art. 15(5) (data poisoning, model poisoning)") != std::string::npos);

  std::string html = test::read_text(dir + "/out/report.html");
  CHECK(html.find("<a href=\"#privacy\">Privacy: membership inference</a>") != std::string::npos);
  CHECK(html.find("<a href=\"#backdoor\">Backdoor scan</a>") != std::string::npos);
  CHECK(html.find("aria-label=\"Membership inference ROC: overfit\"") != std::string::npos);
  CHECK(html.find("stroke-dasharray=\"5,3\"") != std::string::npos);  // the chance diagonal
  CHECK(html.find("alt=\"Reversed trigger (mask x pattern), class 0 - FLAGGED\" src=\"data:image/png;base64,") !=
        std::string::npos);
  // every SVG chart is well-formed XML
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) {
    size_t end = html.find("</svg>", at);
    REQUIRE(end != std::string::npos);
    CHECK_NOTHROW(test::parse_xml(html.substr(at, end + 6 - at)));
  }
}

TEST_CASE("privacy report: the ROC drawn stays within 0.004 of the recorded one, with fewer points", "[reports][privacy][render]") {
  // A staircase ROC of 2001 points from 1000 members / 1000 non-members.
  json roc = {{"fpr", json::array()}, {"tpr", json::array()}, {"thresholds", json::array()}};
  for (int k = 0; k <= 2000; ++k) {
    roc["fpr"].push_back((k / 2) / 1000.0);
    roc["tpr"].push_back(((k + 1) / 2) / 1000.0);
    roc["thresholds"].push_back(-k);
  }
  json priv = fixture_json("privacy.json");
  priv["attacks"] = json::array({{{"name", "loss"}, {"auc", 0.5}, {"balanced_accuracy", 0.5}, {"tpr_at_fpr_0.001", 0.001},
                                  {"tpr_at_fpr_0.01", 0.01}, {"roc", roc}}});
  json report = report_with({section("priv", "privacy", "m", {{"members", "a"}, {"non_members", "b"}}, priv)});
  std::string html = render_html(report);
  size_t at = html.find("aria-label=\"Membership inference ROC: m\"");
  REQUIRE(at != std::string::npos);
  size_t poly = html.find("<polyline", at);
  std::string points = html.substr(html.find("points=\"", poly) + 8);
  points = points.substr(0, points.find('"'));
  size_t n = std::count(points.begin(), points.end(), ',');
  CHECK(n >= 200);   // 2 units of FPR+TPR at steps >= 0.004: at most ~500 kept, at least 2 / (0.004 + 0.001)
  CHECK(n <= 501);
}
