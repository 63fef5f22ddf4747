// End to end through build/mlaudit: exit codes 0/1/2, error lines, report re-rendering.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A copy of a section fixture in `dir` whose "inputs" block records `model`, as every
// command's JSON does (datasets::file_provenance), so the audit can tie it to the model.
std::string stamped(const std::string& fixture, const std::string& model, const std::string& dir) {
  json r = json::parse(test::read_text(test::fixture(fixture)));
  r["inputs"] = {{"model", datasets::file_provenance(model)}};
  std::string out = dir + "/imported-" + fixture;
  test::write_text(out, r.dump(1));
  return out;
}

// Sections imported from the fixture JSONs (`result:`), so no analysis command runs.
std::string imported_config(const std::string& gates, const std::string& dir) {
  std::string root = test::source_path("");
  auto fx = [&](const char* f) {
    return stamped(f, root + (std::string(f) == "fairness.json" ? "models/credit_mlp.onnx" : "models/fmnist_cnn.onnx"), dir);
  };
  return "system: {name: CLI test}\n"
         "models:\n  cnn: " + root + "models/fmnist_cnn.onnx\n  credit: " + root + "models/credit_mlp.onnx\n"
         "datasets:\n"
         "  fmnist: {data: " + root + "datasets/demo/fmnist_x.npy, labels: " + root + "datasets/demo/fmnist_y.npy}\n"
         "  credit: {csv: " + root + "datasets/credit/credit_test.csv, label: approved, protected: [sex], features: " + root + "datasets/credit/features.txt}\n"
         "sections:\n"
         "  robustness:\n    - {model: cnn, data: fmnist, attack: apgd-ce, eps: [0.01, 0.03], result: " + fx("attack_apgd-ce.json") + "}\n"
         "  fairness:\n    - {model: credit, data: credit, result: " + fx("fairness.json") + "}\n"
         "  verification:\n    - {model: cnn, data: fmnist, eps: 0.01, result: " + fx("verify.json") + "}\n"
         "gates:\n" + gates;
}

struct Run {
  std::string dir;
  test::CommandResult result;
};

Run audit(const std::string& tag, const std::string& gates, const std::string& extra = "") {
  Run r;
  r.dir = test::temp_dir(tag);
  test::write_text(r.dir + "/audit.yaml", imported_config(gates, r.dir));
  r.result = test::run_cli("audit --config " + r.dir + "/audit.yaml --out " + r.dir + "/out --no-pdf " + extra);
  return r;
}

}  // namespace

TEST_CASE("cli audit: --help and --check", "[reports][cli]") {
  auto h = test::run_cli("audit --help");
  CHECK(h.exit_code == 0);
  CHECK(h.output.find("--config") != std::string::npos);
  CHECK(h.output.find("--diff") != std::string::npos);
  CHECK(test::run_cli("report --help").exit_code == 0);
  std::string dir = test::temp_dir("cli-check");
  test::write_text(dir + "/audit.yaml", imported_config("  - demographic_parity_ratio(sex) >= 0.8\n", dir));
  auto c = test::run_cli("audit --config " + dir + "/audit.yaml --check");
  INFO(c.output);
  CHECK(c.exit_code == 0);
  CHECK(c.output.find("is valid: 2 models, 3 sections, 1 gates") != std::string::npos);
}

TEST_CASE("cli audit: every gate passes -> exit 0", "[reports][cli]") {
  Run r = audit("cli-pass", "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.5\n  - demographic_parity_ratio(sex) >= 0.7\n"
                            "  - verified_fraction(linf, 0.01) >= 0.5\n");
  INFO(r.result.output);
  CHECK(r.result.exit_code == 0);
  CHECK(r.result.output.find("PASS  robust_accuracy(apgd-ce, linf, 0.03) >= 0.5: measured 0.52 >= threshold 0.5") != std::string::npos);
  CHECK(r.result.output.find("Verdict: PASS (3 of 3 gates passed)") != std::string::npos);
  CHECK(r.result.output.find("Report: " + r.dir + "/out/report.html") != std::string::npos);
  for (const char* f : {"report.json", "report.md", "report.html", "junit.xml"}) CHECK(fs::exists(r.dir + "/out/" + f));
  json report = json::parse(test::read_text(r.dir + "/out/report.json"));
  json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  CHECK(reports::validate_json_schema(report, schema).empty());
  CHECK(report["sections"][0]["imported_from"] == r.dir + "/imported-attack_apgd-ce.json");
}

TEST_CASE("cli audit: a failing gate -> exit 1 with the failure in junit.xml", "[reports][cli]") {
  Run r = audit("cli-fail", "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n  - demographic_parity_ratio(sex) >= 0.7\n");
  INFO(r.result.output);
  CHECK(r.result.exit_code == 1);
  CHECK(r.result.output.find("FAIL  robust_accuracy(apgd-ce, linf, 0.03) >= 0.6: measured 0.52 < threshold 0.6") != std::string::npos);
  CHECK(r.result.output.find("Verdict: FAIL (1 of 2 gates passed)") != std::string::npos);
  auto junit = test::parse_xml(test::read_text(r.dir + "/out/junit.xml"));
  CHECK(junit->attrs["failures"] == "1");
  CHECK(junit->attrs["tests"] == "2");
}

TEST_CASE("cli audit: a gate whose metric is missing -> exit 2, reported, never a pass", "[reports][cli]") {
  // The section is configured for eps 0.05 (so the dry run accepts the gate), but the
  // imported result has no by_eps record for it.
  Run r;
  r.dir = test::temp_dir("cli-missing");
  std::string text = imported_config("  - robust_accuracy(apgd-ce, linf, 0.05) >= 0.1\n", r.dir);
  text.replace(text.find("eps: [0.01, 0.03]"), 17, "eps: [0.01, 0.03, 0.05]");
  test::write_text(r.dir + "/audit.yaml", text);
  r.result = test::run_cli("audit --config " + r.dir + "/audit.yaml --out " + r.dir + "/out --no-pdf");
  INFO(r.result.output);
  CHECK(r.result.exit_code == 2);
  CHECK(r.result.output.find("ERROR robust_accuracy(apgd-ce, linf, 0.05) >= 0.1: metric missing: field 'by_eps[eps=0.05]' not available") != std::string::npos);
  CHECK(fs::exists(r.dir + "/out/report.html"));
}

TEST_CASE("cli audit: config errors -> exit 2, one line with line:column, nothing written", "[reports][cli]") {
  std::string dir = test::temp_dir("cli-bad");
  std::string text = imported_config("  - accuracy() >= 0.5\n", dir);
  text.replace(text.find("sections:"), 9, "sectons:");
  test::write_text(dir + "/audit.yaml", text);
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out");
  CHECK(r.exit_code == 2);
  CHECK(r.output == "mlaudit: error: audit: " + dir + "/audit.yaml:8:1: unknown key 'sectons' in the config (did you mean 'sections'?)\n");
  CHECK_FALSE(fs::exists(dir + "/out"));
  auto missing = test::run_cli("audit --config " + dir + "/nope.yaml --out " + dir + "/out");
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("nope.yaml") != std::string::npos);
  auto no_config = test::run_cli("audit --out " + dir + "/out");
  CHECK(no_config.exit_code == 2);
  CHECK(no_config.output.find("'--config' is required") != std::string::npos);
  auto bad_diff = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --diff " + dir + "/none.json");
  CHECK(bad_diff.exit_code == 2);
}

TEST_CASE("cli report: re-renders a saved report.json", "[reports][cli]") {
  Run r = audit("cli-report", "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n");
  REQUIRE(r.result.exit_code == 1);
  std::string in = r.dir + "/out/report.json";
  for (const auto& [format, file] : std::vector<std::pair<std::string, std::string>>{
           {"md", "report.md"}, {"html", "report.html"}, {"junit", "junit.xml"}, {"json", "report.json"}}) {
    INFO(format);
    auto x = test::run_cli("report --in " + in + " --format " + format + " --out " + r.dir + "/again." + format);
    CHECK(x.exit_code == 0);
    CHECK(test::read_text(r.dir + "/again." + format) == test::read_text(r.dir + "/out/" + file));
  }
  auto bad = test::run_cli("report --in " + in + " --format docx --out " + r.dir + "/x");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output == "mlaudit: error: report: --format: 'docx' is not one of html, md, junit, pdf, json\n");
  test::write_text(r.dir + "/other.json", "{\"schema\": \"mlaudit.attack/1\"}");
  auto other = test::run_cli("report --in " + r.dir + "/other.json --format md --out " + r.dir + "/x.md");
  CHECK(other.exit_code == 2);
  CHECK(other.output.find("not an mlaudit report") != std::string::npos);
  test::write_text(r.dir + "/broken.json", "{\"schema\": ");
  CHECK(test::run_cli("report --in " + r.dir + "/broken.json --format md --out " + r.dir + "/x.md").exit_code == 2);
  CHECK_FALSE(fs::exists(r.dir + "/x.md"));
  auto pdf = test::run_cli("report --in " + in + " --format pdf --out " + r.dir + "/r.pdf");
  if (reports::find_pdf_renderer().empty()) {
    CHECK(pdf.exit_code == 2);
    CHECK(pdf.output.find("no PDF renderer found; install the Debian package 'wkhtmltopdf' or 'chromium'") != std::string::npos);
    CHECK_FALSE(fs::exists(r.dir + "/r.pdf"));
  } else {
    CHECK(pdf.exit_code == 0);
    CHECK(test::read_text(r.dir + "/r.pdf").rfind("%PDF", 0) == 0);
  }
}

TEST_CASE("cli audit: --diff adds the changes section", "[reports][cli]") {
  Run first = audit("cli-diff", "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.5\n");
  REQUIRE(first.result.exit_code == 0);
  auto second = test::run_cli("audit --config " + first.dir + "/audit.yaml --out " + first.dir + "/out2 --no-pdf --diff " +
                              first.dir + "/out/report.json");
  CHECK(second.exit_code == 0);
  std::string md = test::read_text(first.dir + "/out2/report.md");
  CHECK(md.find("## Changes since the previous audit") != std::string::npos);
}

TEST_CASE("cli audit: Ctrl-C stops after the running section and writes an incomplete report", "[reports][cli]") {
  // A real attack section (APGD-CE on 200 images at 4 eps, several seconds even on a quiet
  // machine) is running when SIGINT arrives: it is sent once the section's progress line
  // is out (not after a fixed delay, which a loaded machine can overrun during start-up).
  std::string dir = test::temp_dir("cli-int");
  std::string root = test::source_path("");
  test::write_text(dir + "/audit.yaml",
                   "models:\n  cnn: " + root + "models/fmnist_cnn.onnx\n"
                   "datasets:\n  fmnist: {data: " + root + "datasets/demo/fmnist_x.npy, labels: " + root + "datasets/demo/fmnist_y.npy}\n"
                   "sections:\n  robustness:\n    - {model: cnn, data: fmnist, attacks: [apgd-ce, fgsm], eps: [0.01, 0.02, 0.03, 0.04]}\n"
                   "gates:\n  - robust_accuracy(fgsm, linf, 0.01) >= 0\n");
  // The shell prints its pid, then becomes mlaudit (exec), so the pid is mlaudit's.
  std::string cmd = "sh -c 'echo $$; exec " + test::mlaudit_exe() + " audit --config " + dir + "/audit.yaml --out " +
                    dir + "/out 2>&1'";
  std::string output;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char line[4096];
  long pid = 0;
  bool sent = false;
  while (fgets(line, sizeof line, p)) {
    if (pid == 0) {
      pid = std::strtol(line, nullptr, 10);
      continue;
    }
    output += line;
    if (!sent && output.find("robustness-cnn-apgd-ce ...") != std::string::npos) {
      REQUIRE(pid > 0);
      kill(static_cast<pid_t>(pid), SIGINT);
      sent = true;
    }
  }
  int status = pclose(p);
  CHECK(sent);
  INFO(output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(output.find("interrupt received; stopping after the current section") != std::string::npos);
  const size_t said = output.find("audit: interrupted; incomplete report written (sections not run: robustness-cnn-fgsm)");
  CHECK(said != std::string::npos);
  CHECK(output.find("audit: interrupted", said + 1) == std::string::npos);  // said once
  CHECK(output.find("robustness-cnn-fgsm ...") == std::string::npos);  // the next section never started
  // The finished section is kept; the report says what did not run, and its gate (on the
  // section that never ran) is an error, never a pass.
  REQUIRE(fs::exists(dir + "/out/report.json"));
  json r = json::parse(test::read_text(dir + "/out/report.json"));
  CHECK(r["summary"]["verdict"] == "INCOMPLETE");
  const auto problems = reports::validate_json_schema(r, json::parse(test::read_text(test::source_path("docs/report-schema.json"))));
  CHECK(problems.empty());
  CHECK(r["summary"]["exit_code"] == 130);
  CHECK(r["incomplete"]["sections_not_run"] == json::array({"robustness-cnn-fgsm"}));
  REQUIRE(r["sections"].size() == 1);
  CHECK(r["sections"][0]["id"] == "robustness-cnn-apgd-ce");
  CHECK(r["gates"][0]["status"] == "error");
  CHECK(test::read_text(dir + "/out/report.md").find("INCOMPLETE: the audit was interrupted") != std::string::npos);
}

TEST_CASE("cli audit: a tree-ensemble model through every exact section, two exact paths agree", "[reports][cli][trees]") {
  const std::string root = test::source_path("");
  const std::string dir = test::temp_dir("cli-audit-trees");
  const std::string yaml =
      "system: {name: tree audit test}\n"
      "models:\n  gbt: " + root + "models/credit_gbt.onnx\n"
      "datasets:\n"
      "  credit: {csv: " + root + "datasets/credit/credit_test.csv, label: approved, protected: [sex], features: " + root +
      "datasets/credit/features.txt}\n"
      "  rows: {data: " + root + "datasets/demo/credit_x.npy, labels: " + root + "datasets/demo/credit_y.npy, features: " +
      root + "datasets/credit/features.txt, domain: [-.inf, .inf]}\n"
      "sections:\n"
      "  robustness:\n    - {model: gbt, data: rows, attacks: [exact-tree], norm: linf, eps: [0.05, 0.1], limit: 60}\n"
      "  explanations:\n    - {model: gbt, data: rows, method: tree-shap, background: " + root +
      "datasets/demo/credit_background.npy, limit: 30}\n"
      "  verification:\n    - {model: gbt, data: rows, eps: [0.05, 0.1], limit: 60, timeout: 10}\n"
      "    - {model: gbt, data: credit, mode: fairness, protected: sex, partitions: 1, timeout: 10}\n"
      "  fairness:\n    - {model: gbt, data: credit, protected: [sex], counterfactual: true, bootstrap: 100}\n"
      "gates:\n"
      "  - robust_accuracy(exact-tree, linf, 0.1) >= 0\n"
      "  - verified_fraction(linf, 0.1) >= 0\n"
      "  - robust_accuracy(exact-tree, linf, 0.05) >= 0\n"
      "  - verified_fraction(linf, 0.05) >= 0\n"
      "  - tree_shap_local_accuracy_gap() <= 0.000001\n"
      "  - {check: fairness_proved_fraction() >= 0.5, severity: warning}\n"
      "  - demographic_parity_ratio(sex) >= 0\n";
  test::write_text(dir + "/audit.yaml", yaml);
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);  // the fairness proof fails as a warning only
  json report = json::parse(test::read_text(dir + "/out/report.json"));
  std::map<std::string, double> measured;
  for (const auto& g : report["gates"]) {
    INFO(g.dump());
    REQUIRE(g["measured"].is_number());
    measured[g["check"].get<std::string>()] = g["measured"].get<double>();
  }
  // The exact minimal distances (attack) and the exact box proofs (verify) are two code paths
  // over the same cells: robust accuracy at eps must equal the verified fraction at eps.
  CHECK(measured.at("robust_accuracy(exact-tree, linf, 0.1) >= 0") == measured.at("verified_fraction(linf, 0.1) >= 0"));
  CHECK(measured.at("robust_accuracy(exact-tree, linf, 0.05) >= 0") == measured.at("verified_fraction(linf, 0.05) >= 0"));
  CHECK(measured.at("verified_fraction(linf, 0.1) >= 0") <= measured.at("verified_fraction(linf, 0.05) >= 0"));
  CHECK(measured.at("verified_fraction(linf, 0.1) >= 0") > 0.2);
  CHECK(measured.at("tree_shap_local_accuracy_gap() <= 0.000001") < 1e-9);
  // The model uses sex: the fairness proof finds a counterexample pair (0 of 1 partition proved).
  CHECK(measured.at("fairness_proved_fraction() >= 0.5") == 0.0);
  CHECK(r.output.find("WARN  fairness_proved_fraction() >= 0.5") != std::string::npos);
  // The report states TreeSHAP's local-accuracy check per sample.
  const std::string md = test::read_text(dir + "/out/report.md");
  CHECK(md.find("Method tree-shap; local accuracy gap over 30 samples") != std::string::npos);
}

TEST_CASE("cli: info --ops --json and --version --json follow their entries in docs/report-schema.json", "[reports][cli]") {
  const json root = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  auto problems = [&](const json& j, const std::string& def) {
    return reports::validate_json_schema(j, {{"$defs", root["$defs"]}, {"$ref", "#/$defs/" + def}});
  };
  auto ops = test::run_cli("info --ops --json");
  REQUIRE(ops.exit_code == 0);
  const json o = json::parse(ops.output);
  CHECK(problems(o, "ops_result").empty());
  CHECK(o["ops"].size() > 100);
  auto version = test::run_cli("--version --json");
  REQUIRE(version.exit_code == 0);
  const json v = json::parse(version.output);
  CHECK(problems(v, "version_result").empty());
  // the entries refuse what they must, so the checks can fail
  json bad_ops = o;
  bad_ops["ops"][0]["cuda"] = "maybe";
  CHECK(!problems(bad_ops, "ops_result").empty());
  json bad_version = v;
  bad_version.erase("commands");
  CHECK(!problems(bad_version, "version_result").empty());
}
