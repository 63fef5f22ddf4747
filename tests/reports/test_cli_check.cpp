// `mlaudit audit --check` is a full dry run: configs that used to pass the check and
// fail only at run time, after the expensive sections, now exit 2 with one line naming
// the YAML position of the offending value. Imported results are tied to the audited
// model by its SHA-256 and marked "imported" wherever they are shown.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string root() { return test::source_path(""); }

// Models and data sets every config below shares: the bundled CNN on Fashion-MNIST
// images, the credit MLP on its tabular rows (.npy) and on its CSV.
std::string base_config() {
  const std::string r = root();
  return "models:\n"
         "  cnn: " + r + "models/fmnist_cnn.onnx\n"
         "  credit: " + r + "models/credit_mlp.onnx\n"
         "datasets:\n"
         "  fmnist: {data: " + r + "datasets/demo/fmnist_x.npy, labels: " + r + "datasets/demo/fmnist_y.npy}\n"
         "  rows: {data: " + r + "datasets/demo/credit_x.npy, labels: " + r + "datasets/demo/credit_y.npy}\n"
         "  table: {csv: " + r + "datasets/credit/credit_test.csv, label: approved, protected: [sex], features: " + r +
         "datasets/credit/features.txt}\n";
}

// "DIR/audit.yaml:LINE:COLUMN" of `token` on the first line of `yaml` containing `line_text`.
std::string where(const std::string& dir, const std::string& yaml, const std::string& line_text, const std::string& token = "") {
  size_t at = yaml.find(line_text);
  REQUIRE(at != std::string::npos);
  size_t line_start = yaml.rfind('\n', at);
  line_start = line_start == std::string::npos ? 0 : line_start + 1;
  size_t line_end = yaml.find('\n', at);
  std::string line = yaml.substr(line_start, line_end - line_start);
  int line_no = 1 + int(std::count(yaml.begin(), yaml.begin() + long(line_start), '\n'));
  size_t column = line.find(token.empty() ? line_text : token);
  REQUIRE(column != std::string::npos);
  return dir + "/audit.yaml:" + std::to_string(line_no) + ":" + std::to_string(column + 1);
}

test::CommandResult check(const std::string& dir, const std::string& yaml, const std::string& extra = "") {
  test::write_text(dir + "/audit.yaml", yaml);
  return test::run_cli("audit --config " + dir + "/audit.yaml --check " + extra);
}

// One line on stderr, "mlaudit: error: audit: <where>: <message>".
void expect_refused(const test::CommandResult& r, const std::string& location, const std::vector<std::string>& phrases) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.rfind("mlaudit: error: audit: " + location + ": ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  for (const auto& p : phrases) CHECK(r.output.find(p) != std::string::npos);
}

// A copy of a section fixture whose "inputs" block records `model` (or none when empty).
std::string stamped(const std::string& fixture, const std::string& model, const std::string& dir, const std::string& tag,
                    const std::string& schema = "") {
  json r = json::parse(test::read_text(test::fixture(fixture)));
  if (!model.empty()) r["inputs"] = {{"model", datasets::file_provenance(model)}};
  if (!schema.empty()) r["schema"] = schema;
  std::string out = dir + "/" + tag + "-" + fixture;
  test::write_text(out, r.dump(1));
  return out;
}

}  // namespace

TEST_CASE("audit --check: a misspelt attack names its list element", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-attack");
  std::string yaml = base_config() +
                     "sections:\n  robustness:\n    - model: cnn\n      data: fmnist\n      attacks: [fgsm, apgd_ce]\n"
                     "      eps: [0.01, 0.03]\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "attacks: [fgsm", "apgd_ce"),
                 {"'attacks' cannot contain 'apgd_ce'", "did you mean 'apgd-ce'?"});
  // the run refuses it the same way before any section runs, and writes nothing
  auto run = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find(where(dir, yaml, "attacks: [fgsm", "apgd_ce")) != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/out"));
}

TEST_CASE("audit --check: an explanation method in the wrong spelling", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-method");
  std::string yaml = base_config() + "sections:\n  explanations:\n    - {model: cnn, data: fmnist, method: integrated_gradients}\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "integrated_gradients"),
                 {"'method' cannot be 'integrated_gradients'", "did you mean 'integrated-gradients'?"});
}

TEST_CASE("audit --check: a corruption mlaudit corrupt does not have", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-fog");
  std::string yaml = base_config() + "sections:\n  corruption:\n    - {model: cnn, data: fmnist, corruptions: [brightness, fog]}\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "corruptions:", "fog"), {"'corruptions' cannot contain 'fog'", "for images"});
  // a tabular corruption on images is named as such
  std::string tab = base_config() + "sections:\n  corruption:\n    - {model: cnn, data: fmnist, corruptions: [feature_noise]}\n";
  expect_refused(check(dir, tab), where(dir, tab, "feature_noise"), {"it applies to tabular rows"});
  // a gate on a corruption that does not exist
  std::string gate = base_config() + "sections:\n  corruption:\n    - {model: cnn, data: fmnist}\ngates:\n  - corruption_accuracy(fog, 3) >= 0.5\n";
  expect_refused(check(dir, gate), where(dir, gate, "corruption_accuracy(fog"), {"mlaudit corrupt has no corruption 'fog'"});
}

TEST_CASE("audit --check: verification under l2 is refused in the YAML's words", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-l2");
  std::string yaml = base_config() + "sections:\n  verification:\n    - {model: cnn, data: fmnist, eps: [0.01], norm: l2}\n";
  auto r = check(dir, yaml);
  expect_refused(r, where(dir, yaml, "norm: l2", "l2"), {"'norm' cannot be 'l2'", "linf only"});
  CHECK(r.output.find("--norm") == std::string::npos);  // the YAML never wrote a flag
}

TEST_CASE("audit --check: a gate no configured section produces", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-gate");
  std::string sections = "sections:\n  robustness:\n    - {model: cnn, data: fmnist, attacks: [fgsm, apgd-ce], eps: [0.01, 0.03]}\n";
  std::string yaml = base_config() + sections + "gates:\n  - robust_accuracy(pgd, linf, 0.05) >= 0.5\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "robust_accuracy(pgd"),
                 {"no configured section will produce robust_accuracy(pgd, linf, 0.05)",
                  "section 'robustness-cnn-fgsm' runs attack fgsm", "section 'robustness-cnn-apgd-ce' runs attack apgd-ce"});
  std::string eps = base_config() + sections + "gates:\n  - check: robust_accuracy(fgsm, linf, 0.05) >= 0.5\n";
  expect_refused(check(dir, eps), where(dir, eps, "robust_accuracy(fgsm"), {"runs fgsm at eps 0.01, 0.03, not 0.05"});
  std::string norm = base_config() + sections + "gates:\n  - robust_accuracy(fgsm, l2, 0.01) >= 0.5\n";
  expect_refused(check(dir, norm), where(dir, norm, "robust_accuracy(fgsm"), {"runs fgsm under norm linf, not l2"});
  std::string kind = base_config() + sections + "gates:\n  - demographic_parity_ratio(sex) >= 0.8\n";
  expect_refused(check(dir, kind), where(dir, kind, "demographic_parity_ratio"), {"no fairness section is configured"});
  // the same gates with a matching section are accepted
  std::string ok = base_config() + sections + "gates:\n  - robust_accuracy(apgd-ce, linf, 0.03).lower >= 0.2\n";
  auto r = check(dir, ok);
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

TEST_CASE("audit --check: KernelSHAP on tabular rows without 'features'", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-shap");
  const std::string bg = root() + "datasets/demo/credit_background.npy";
  // no background: the command would refuse it after the earlier sections ran
  std::string yaml = base_config() + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, samples: 5}\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "kernel-shap"), {"'method' needs 'background'"});
  // heatmaps asked for on rows [N,F]
  std::string heat = base_config() + "sections:\n  explanations:\n    - model: credit\n      data: rows\n      method: kernel-shap\n"
                     "      background: " + bg + "\n      heatmaps: true\n";
  expect_refused(check(dir, heat), where(dir, heat, "heatmaps: true", "true"), {"'heatmaps: true' needs image inputs"});
  // with a background and heatmaps left to the default it is valid: tabular rows get no
  // --heatmap-dir (the default follows the data's rank, not the 'features' list)
  std::string ok = base_config() + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: " + bg +
                   ", samples: 5}\n";
  auto r = check(dir, ok);
  INFO(r.output);
  CHECK(r.exit_code == 0);
}

TEST_CASE("audit --check: labels outside the model's classes, data of the wrong shape", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-labels");
  auto y = datasets::read_npy_labels(root() + "datasets/demo/fmnist_y.npy").to_int64s();
  y[3] = 10;  // the CNN has 10 classes: 0..9
  datasets::write_npy(dir + "/y.npy", engine::Tensor::from_ints({int64_t(y.size())}, y));
  std::string yaml = "models:\n  cnn: " + root() + "models/fmnist_cnn.onnx\ndatasets:\n  fmnist: {data: " + root() +
                     "datasets/demo/fmnist_x.npy, labels: " + dir + "/y.npy}\nsections:\n  performance:\n    - {model: cnn, data: fmnist}\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "data: fmnist}", "fmnist}"),
                 {"section 'performance-cnn'", "label 10 at row 3 is outside [0, 10)", "10 output classes"});
  // `samples: 3` uses rows 0..2 only, which are fine
  std::string first = yaml;
  first.replace(first.find("data: fmnist}"), 13, "data: fmnist, samples: 3}");
  CHECK(check(dir, first).exit_code == 0);
  std::string shape = base_config() + "sections:\n  robustness:\n    - {model: cnn, data: rows, attack: fgsm, eps: [0.1]}\n";
  expect_refused(check(dir, shape), where(dir, shape, "data: rows", "rows"), {"data set 'rows' has inputs [", "but model 'cnn' takes [N,1,28,28]"});
}

TEST_CASE("audit --check: --diff and --out are probed too", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-paths");
  std::string yaml = base_config() + "sections:\n  performance:\n    - {model: cnn, data: fmnist}\n";
  auto diff = check(dir, yaml, "--diff " + dir + "/missing/report.json");
  CHECK(diff.exit_code == 2);
  CHECK(diff.output == "mlaudit: error: audit: --diff: file '" + dir + "/missing/report.json' not found or not readable\n");
  test::write_text(dir + "/not-a-report.json", "{\"schema\": \"mlaudit.attack/1\"}");
  auto other = check(dir, yaml, "--diff " + dir + "/not-a-report.json");
  CHECK(other.exit_code == 2);
  CHECK(other.output.find("is not an mlaudit report") != std::string::npos);
  test::write_text(dir + "/file", "x");
  auto out = check(dir, yaml, "--out " + dir + "/file/sub");
  CHECK(out.exit_code == 2);
  CHECK(out.output.find("--out: cannot create folder") != std::string::npos);
  auto fine = check(dir, yaml, "--out " + dir + "/new/out");
  INFO(fine.output);
  CHECK(fine.exit_code == 0);
  CHECK(fine.output.find("2 models loaded") == std::string::npos);  // only the models sections use are loaded
  CHECK(fine.output.find("1 models loaded, 3 data sets read, 0 imported results verified; no section ran") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/new"));  // a dry run creates nothing
}

TEST_CASE("audit --check and mlaudit explain agree on the methods", "[reports][cli][check]") {
  // Both read explain::method_names(); this keeps the CLI message and the check in step.
  auto ex = test::run_cli("explain --model x.onnx --data x.npy --json x.json --method no-such-method");
  REQUIRE(ex.exit_code == 2);
  auto methods_of = [](const std::string& text, const std::string& after) {
    std::set<std::string> out;
    size_t b = text.find(after);
    if (b == std::string::npos) return out;
    b += after.size();
    std::string list = text.substr(b, text.find(')', b) - b);
    for (const auto& m : [&] {
           std::vector<std::string> v;
           size_t s = 0;
           while (s <= list.size()) {
             size_t e = list.find(',', s);
             if (e == std::string::npos) e = list.size();
             std::string item = list.substr(s, e - s);
             item.erase(0, item.find_first_not_of(' '));
             if (!item.empty()) v.push_back(item);
             s = e + 1;
           }
           return v;
         }())
      out.insert(m);
    return out;
  };
  std::set<std::string> command = methods_of(ex.output, "(methods: ");
  std::string dir = test::temp_dir("check-methods");
  std::string yaml = base_config() + "sections:\n  explanations:\n    - {model: cnn, data: fmnist, method: no-such-method}\n";
  auto audit = check(dir, yaml);
  REQUIRE(audit.exit_code == 2);
  std::set<std::string> checked = methods_of(audit.output, "expected one of: ");
  CHECK(command.size() >= 10);
  CHECK(checked == command);
}

TEST_CASE("import: a result made from another model is refused, naming both hashes", "[reports][cli][import]") {
  std::string dir = test::temp_dir("import-foreign");
  const std::string cnn = root() + "models/fmnist_cnn.onnx", backdoored = root() + "models/privacy/backdoor_cnn.onnx";
  std::string result = stamped("attack_apgd-ce.json", backdoored, dir, "backdoored");
  std::string yaml = base_config() + "sections:\n  robustness:\n    - model: cnn\n      data: fmnist\n      attack: apgd-ce\n"
                     "      eps: [0.01, 0.03]\n      result: " + result + "\ngates:\n  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.5\n";
  const std::string at = where(dir, yaml, "result: ", result);
  expect_refused(check(dir, yaml), at,
                 {"section 'robustness-cnn-apgd-ce'", "was computed from a different model", datasets::sha256_file(backdoored),
                  datasets::sha256_file(cnn), "allow_foreign_model: true"});
  auto run = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  CHECK(run.exit_code == 2);
  CHECK(run.output.find(at) != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/out/report.json"));

  // allowed explicitly: the audit runs and every rendering says what was accepted
  std::string allowed = yaml;
  allowed.replace(allowed.find("      result: "), 0, "      allow_foreign_model: true\n");
  test::write_text(dir + "/audit.yaml", allowed);
  auto ok = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  json report = json::parse(test::read_text(dir + "/out/report.json"));
  const json& sec = report["sections"][0];
  CHECK(sec["imported"]["model_check"] == "foreign");
  CHECK(sec["imported"]["path"] == result);
  CHECK(sec["imported"]["result_model_sha256"] == datasets::sha256_file(backdoored));
  CHECK(sec["imported"]["model_sha256"] == datasets::sha256_file(cnn));
  CHECK(sec["imported"]["allow_foreign_model"] == true);
  std::string md = test::read_text(dir + "/out/report.md"), html = test::read_text(dir + "/out/report.html");
  for (const std::string* text : {&md, &html}) {
    CHECK(text->find("computed from a DIFFERENT model") != std::string::npos);
    CHECK(text->find("allow_foreign_model: true") != std::string::npos);
    CHECK(text->find("imported)") != std::string::npos);  // the section heading
  }
  json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  CHECK(reports::validate_json_schema(report, schema).empty());
}

TEST_CASE("import: kind, schema version and a missing inputs block", "[reports][cli][import]") {
  std::string dir = test::temp_dir("import-kind");
  const std::string credit = root() + "models/credit_mlp.onnx";
  // an attack result imported as a fairness section
  std::string attack = stamped("attack_apgd-ce.json", credit, dir, "attack");
  std::string yaml = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, result: " + attack + "}\n";
  expect_refused(check(dir, yaml), where(dir, yaml, "result: ", attack),
                 {"section 'fairness-credit'", "is a 'mlaudit.attack/1' result, but a fairness section imports mlaudit.fairness/1"});
  // a schema version this build does not read
  std::string v2 = stamped("fairness.json", credit, dir, "v2", "mlaudit.fairness/2");
  std::string yaml2 = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, result: " + v2 + "}\n";
  expect_refused(check(dir, yaml2), where(dir, yaml2, "result: ", v2), {"schema version 'mlaudit.fairness/2'"});
  // a result with no inputs block (written before results recorded them)
  std::string old = stamped("fairness.json", "", dir, "old");
  std::string yaml3 = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, result: " + old + "}\n";
  expect_refused(check(dir, yaml3), where(dir, yaml3, "result: ", old),
                 {"has no \"inputs\" block", "re-run the section, or set 'allow_foreign_model: true'"});
  // ... accepted when allowed, and marked unverified
  std::string yaml4 = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, allow_foreign_model: true, result: " + old +
                      "}\ngates:\n  - demographic_parity_ratio(sex) >= 0.7\n";
  test::write_text(dir + "/audit.yaml", yaml4);
  auto ok = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  json report = json::parse(test::read_text(dir + "/out/report.json"));
  CHECK(report["sections"][0]["imported"]["model_check"] == "unverified");
  CHECK(test::read_text(dir + "/out/report.md").find("NOT verified to come from the audited model") != std::string::npos);
  // allow_foreign_model means nothing without an import
  std::string bad = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, allow_foreign_model: true}\n";
  expect_refused(check(dir, bad), where(dir, bad, "allow_foreign_model", "true"), {"'allow_foreign_model' applies to an imported 'result' only"});
}

TEST_CASE("import: a matching result is hashed in the manifest and marked imported everywhere", "[reports][cli][import]") {
  std::string dir = test::temp_dir("import-match");
  const std::string cnn = root() + "models/fmnist_cnn.onnx";
  std::string result = stamped("attack_apgd-ce.json", cnn, dir, "cnn");
  std::string yaml = base_config() + "sections:\n  robustness:\n    - {model: cnn, data: fmnist, attack: apgd-ce, eps: [0.01, 0.03], result: " +
                     result + "}\ngates:\n  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.5\n";
  auto c = check(dir, yaml);
  INFO(c.output);
  CHECK(c.exit_code == 0);
  CHECK(c.output.find("1 imported results verified") != std::string::npos);
  auto run = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  json report = json::parse(test::read_text(dir + "/out/report.json"));
  CHECK(report["sections"][0]["imported"]["model_check"] == "match");
  CHECK(report["sections"][0]["imported"]["sha256"] == datasets::sha256_file(result));
  bool hashed = false;
  for (const auto& h : report["manifest"]["inputs"])
    if (h["role"] == "imported result robustness-cnn-apgd-ce" && h["path"] == result && h["sha256"] == datasets::sha256_file(result))
      hashed = true;
  CHECK(hashed);
  std::string md = test::read_text(dir + "/out/report.md");
  CHECK(md.find("Imported, not run by this audit: the result was read from " + result) != std::string::npos);
  CHECK(md.find("the audited model's") != std::string::npos);
  CHECK(test::read_text(dir + "/out/report.html").find("Imported, not run by this audit") != std::string::npos);
  std::string junit = test::read_text(dir + "/out/junit.xml");
  CHECK(junit.find("[imported result: " + result + "]") != std::string::npos);
  // a mismatched attack is refused: the file is an apgd-ce run, the section asks for fgsm
  std::string wrong = base_config() + "sections:\n  robustness:\n    - {model: cnn, data: fmnist, attack: fgsm, eps: [0.01], result: " + result + "}\n";
  expect_refused(check(dir, wrong), where(dir, wrong, "result: ", result), {"was made with attack 'apgd-ce', but the section asks for attack 'fgsm'"});
}

TEST_CASE("audit: fairness sections pass bins and the positive class, --check refuses an unknown positive class",
          "[reports][cli][check][fairness]") {
  const std::string dir = test::temp_dir("check-fair");
  std::string bad = base_config() + "sections:\n  fairness:\n    - {model: credit, data: table, positive: worst}\n";
  expect_refused(check(dir, bad), where(dir, bad, "positive: worst", "worst"),
                 {"'positive' cannot be 'worst'", "favorable or unfavorable"});
  // age has many distinct values: refused by the fairness command unless binned, so the
  // audit passes `bins` through (and `positive`, `favorable_label`).
  std::string yaml = base_config() +
                     "sections:\n  fairness:\n    - {model: credit, data: table, protected: [age], bins: 'age:30,50', "
                     "positive: unfavorable, favorable_label: 1}\n";
  test::write_text(dir + "/audit.yaml", yaml);
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  json f = json::parse(test::read_text(dir + "/out/sections/fairness-credit.json"));
  CHECK(f["settings"]["positive"] == "unfavorable");
  bool binned = false;
  for (const auto& a : f["data"]["attributes"])
    if (a["name"] == "age") binned = a["kind"] == "binned" && a["bins"]["edges"] == json::array({30.0, 50.0});
  CHECK(binned);
}

TEST_CASE("audit --check: attack and verify sections refuse data outside the data set's domain ([0, 1] unless given)",
          "[reports][cli][check]") {
  const std::string dir = test::temp_dir("check-domain");
  // The credit rows are standardised features (outside [0, 1]): the commands would refuse them
  // at run time, after earlier sections; the check refuses them first, at the section's data line.
  for (const char* kind : {"robustness:\n    - {model: credit, data: rows, attack: pgd, eps: [0.1]}\n",
                           "verification:\n    - {model: credit, data: rows, eps: [0.01]}\n"}) {
    std::string yaml = base_config() + "sections:\n  " + kind;
    expect_refused(check(dir, yaml), where(dir, yaml, "data: rows", "rows"),
                   {"outside the input domain [0, 1]", "'domain: [min, max]' (.inf for an open side)"});
    // An open domain, as YAML writes infinity, is accepted.
    std::string open = yaml;
    open.replace(open.find("labels: " + root() + "datasets/demo/credit_y.npy}"),
                 std::string("labels: " + root() + "datasets/demo/credit_y.npy}").size(),
                 "labels: " + root() + "datasets/demo/credit_y.npy, domain: [-.inf, .inf]}");
    auto ok = check(dir, open);
    INFO(ok.output);
    CHECK(ok.exit_code == 0);
  }
}

TEST_CASE("audit YAML vocabulary: 'limit' is rows ('samples' its old spelling), 'background' names a data set", "[reports][cli][check]") {
  std::string dir = test::temp_dir("check-vocabulary");
  const std::string bg = root() + "datasets/demo/credit_background.npy";
  const std::string with_bg_set = base_config() + "  bg: {data: " + bg + "}\n";
  // 'background: bg' names the data set; check accepts it and the run passes its .npy
  std::string ok = with_bg_set + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: bg, limit: 2, nsamples: 64}\n";
  auto r = check(dir, ok);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  auto cfg = reports::load_config(dir + "/audit.yaml");
  REQUIRE(cfg.sections.size() == 1);
  CHECK(cfg.sections[0].params.at("background") == bg);
  CHECK(cfg.sections[0].params.at("limit") == 2);
  CHECK_FALSE(cfg.sections[0].params.contains("samples"));
  // the old spelling means the same
  std::string old = with_bg_set + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: bg, samples: 2}\n";
  test::write_text(dir + "/audit.yaml", old);
  CHECK(reports::load_config(dir + "/audit.yaml").sections[0].params.at("limit") == 2);
  // both spellings at once: refused at the old one
  std::string both = with_bg_set + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: bg, limit: 2, samples: 3}\n";
  expect_refused(check(dir, both), where(dir, both, "samples: 3", "3"), {"'samples' is the old spelling of 'limit'; give only 'limit'"});
  std::string zero = with_bg_set + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: bg, limit: 0}\n";
  expect_refused(check(dir, zero), where(dir, zero, "limit: 0", "0"), {"'limit' must be positive"});
  // a set without labels is only a background: a section's 'data' refuses it
  std::string unlabeled = with_bg_set + "sections:\n  robustness:\n    - {model: credit, data: bg, attack: fgsm, eps: [0.1]}\n";
  expect_refused(check(dir, unlabeled), where(dir, unlabeled, "data: bg", "bg"), {"data set 'bg' has no 'labels'"});
  // a CSV data set cannot be a background
  std::string csv = base_config() + "sections:\n  explanations:\n    - {model: credit, data: rows, method: kernel-shap, background: table}\n";
  expect_refused(check(dir, csv), where(dir, csv, "background: table", "table"), {"'background' data set 'table' is a CSV"});
}
