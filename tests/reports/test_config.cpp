// audit.yaml parsing: valid configs and every error with its line:column.
#include <catch2/catch.hpp>

#include <cmath>

#include <set>

#include "mlaudit/common/error.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/gates.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;

namespace {
AuditConfig parse(const std::string& text) { return test::parse_config_text(text); }
std::string error_of(const std::string& text) { return test::config_error_of(text); }

const char* kBase =
    "models:\n"
    "  cnn: m.onnx\n"
    "datasets:\n"
    "  d:\n"
    "    data: x.npy\n"
    "    labels: y.npy\n";
}  // namespace

TEST_CASE("config: a valid config parses, expands attack lists and resolves paths", "[reports][config]") {
  auto cfg = parse(std::string(kBase) +
                   "seed: 3\n"
                   "sections:\n"
                   "  robustness:\n"
                   "    - model: cnn\n"
                   "      data: d\n"
                   "      attacks: [fgsm, apgd-ce]\n"
                   "      eps: 0.03\n"
                   "  certification: {model: cnn, data: d, sigma: 0.5}\n"
                   "gates:\n"
                   "  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n"
                   "  - check: certified_accuracy(0.5) > 0.1\n"
                   "    severity: warning\n"
                   "    model: cnn\n");
  CHECK(cfg.seed == 3);
  REQUIRE(cfg.models.size() == 1);
  CHECK(cfg.models[0].path == "/cfg/m.onnx");
  REQUIRE(cfg.sections.size() == 3);
  CHECK(cfg.sections[0].id == "robustness-cnn-fgsm");
  CHECK(cfg.sections[1].id == "robustness-cnn-apgd-ce");
  CHECK(cfg.sections[1].params["attack"] == "apgd-ce");
  CHECK(cfg.sections[1].params["norm"] == "linf");  // default
  CHECK(cfg.sections[1].params["eps"] == nlohmann::json::array({0.03}));  // scalar -> one-element list
  CHECK(cfg.sections[2].kind == SectionKind::Certification);
  REQUIRE(cfg.gates.size() == 2);
  CHECK(cfg.gates[0].metric == "robust_accuracy");
  CHECK(cfg.gates[0].args == std::vector<std::string>{"apgd-ce", "linf", "0.03"});
  CHECK(cfg.gates[0].comparison == Comparison::Ge);
  CHECK(cfg.gates[0].threshold == 0.6);
  CHECK(cfg.gates[0].severity == Severity::Error);
  CHECK(cfg.gates[1].severity == Severity::Warning);
  CHECK(cfg.gates[1].comparison == Comparison::Gt);
  CHECK(cfg.gates[1].name == "certified_accuracy(0.5) > 0.1 [cnn]");
}

TEST_CASE("config: unknown keys name line, column and the closest key", "[reports][config]") {
  CHECK(error_of(std::string(kBase) + "sectons:\n  performance: {model: cnn, data: d}\n") ==
        "audit: audit.yaml:7:1: unknown key 'sectons' in the config (did you mean 'sections'?)");
  CHECK(error_of(std::string(kBase) + "sections:\n  robustnes: {model: cnn, data: d}\n") ==
        "audit: audit.yaml:8:3: unknown key 'robustnes' in 'sections' (did you mean 'robustness'?)");
  CHECK(error_of(std::string(kBase) + "sections:\n  robustness:\n    - model: cnn\n      data: d\n      attack: pgd\n"
                                      "      eps: 0.1\n      setps: 10\n") ==
        "audit: audit.yaml:13:7: unknown key 'setps' in 'robustness' entry (did you mean 'steps'?)");
  // nothing close: the list of valid keys instead of a guess
  CHECK(error_of(std::string(kBase) + "sections:\n  performance: {model: cnn, data: d, zzzzzzzz: 1}\n") ==
        "audit: audit.yaml:8:38: unknown key 'zzzzzzzz' in 'performance' entry (expected one of: model, data, id, "
        "limit, args, result, allow_foreign_model, bootstrap, ci)");
}

TEST_CASE("config: type errors name line and column", "[reports][config]") {
  CHECK(error_of(std::string(kBase) + "sections:\n  robustness:\n    - model: cnn\n      data: d\n      attack: pgd\n"
                                      "      eps: [0.01, abc]\n") ==
        "audit: audit.yaml:12:19: 'eps' must be a number (or a fraction like 8/255)");
  CHECK(error_of(std::string(kBase) + "sections:\n  certification: {model: cnn, data: d, sigma: 0.5, n: many}\n") ==
        "audit: audit.yaml:8:55: 'n' must be an integer");
  CHECK(error_of(std::string(kBase) + "sections:\n  certification: {model: cnn, data: d, sigma: -1}\n") ==
        "audit: audit.yaml:8:47: 'sigma' must be positive");
  CHECK(error_of(std::string(kBase) + "seed: [1]\nsections: {}\n") == "audit: audit.yaml:7:7: 'seed' must be an integer");
  CHECK(error_of(std::string(kBase) + "sections:\n  robustness: {model: cnn, data: d, attack: pgd, eps: 0.1, norm: l3}\n") ==
        "audit: audit.yaml:8:66: 'norm' cannot be 'l3' (did you mean 'l2'?)");
}

TEST_CASE("config: missing required keys and unknown references", "[reports][config]") {
  CHECK(error_of("sections: {}\n") == "audit: audit.yaml:1:1: the config needs the key 'models'");
  CHECK(error_of(std::string(kBase) + "sections:\n  robustness: {model: cnn, data: d, attack: pgd}\n") ==
        "audit: audit.yaml:8:15: 'robustness' entry needs the key 'eps'");
  CHECK(error_of(std::string(kBase) + "sections:\n  performance: {model: cmn, data: d}\n") ==
        "audit: audit.yaml:8:24: unknown model 'cmn' (did you mean 'cnn'?)");
  CHECK(error_of(std::string(kBase) + "sections:\n  performance: {model: cnn, data: e}\n") ==
        "audit: audit.yaml:8:35: unknown data set 'e' (did you mean 'd'?)");
  CHECK(error_of(std::string(kBase) + "sections:\n  fairness: {model: cnn, data: d}\n") ==
        "audit: audit.yaml:8:32: 'fairness' entry: fairness needs a CSV data set (with 'label' and 'protected')");
}

TEST_CASE("config: gate syntax errors", "[reports][config]") {
  std::string base = std::string(kBase) + "sections: {}\ngates:\n";
  CHECK(error_of(base + "  - robust_acuracy(pgd, linf, 0.1) >= 0.5\n") ==
        "audit: audit.yaml:9:5: gate 'robust_acuracy(pgd, linf, 0.1) >= 0.5': unknown metric 'robust_acuracy' (did you "
        "mean 'robust_accuracy'? see docs/audit.md for the list)");
  CHECK(error_of(base + "  - robust_accuracy(pgd, 0.1) >= 0.5\n") ==
        "audit: audit.yaml:9:5: gate 'robust_accuracy(pgd, 0.1) >= 0.5': 'robust_accuracy' takes 3 argument(s): "
        "robust_accuracy(attack, norm, eps)");
  CHECK(error_of(base + "  - accuracy() => 0.5\n") ==
        "audit: audit.yaml:9:5: gate 'accuracy() => 0.5': expected a comparison (>=, >, <=, <, ==, !=) after the metric");
  CHECK(error_of(base + "  - accuracy() >= high\n") ==
        "audit: audit.yaml:9:5: gate 'accuracy() >= high': threshold 'high' is not a number");
  CHECK(error_of(base + "  - robust_accuracy(pgd, linf, big) >= 0.5\n") ==
        "audit: audit.yaml:9:5: gate 'robust_accuracy(pgd, linf, big) >= 0.5': argument 'big' (eps) must be a number");
  CHECK(error_of(base + "  - check: accuracy() >= 0.5\n    severity: fatal\n") ==
        "audit: audit.yaml:10:15: 'severity' cannot be 'fatal' (expected error or warning)");
  CHECK(error_of(base + "  - check: accuracy() >= 0.5\n    model: other\n") ==
        "audit: audit.yaml:10:12: unknown model 'other' (expected one of: cnn)");
}

TEST_CASE("config: YAML syntax errors and missing files", "[reports][config]") {
  std::string e = error_of("models:\n  cnn: [unclosed\n");
  CHECK(e.rfind("audit: audit.yaml:3:1: ", 0) == 0);
  CHECK(error_of("") == "audit: audit.yaml: the config is empty");

  std::string dir = test::temp_dir("cfg");
  test::write_text(dir + "/audit.yaml", "models:\n  cnn: nope.onnx\nsections: {}\n");
  try {
    load_config(dir + "/audit.yaml");
    FAIL("expected an InputError");
  } catch (const InputError& ex) {
    CHECK(std::string(ex.what()) == "audit: " + dir + "/audit.yaml:2:8: model 'cnn': file '" + dir + "/nope.onnx' not found");
  }
  try {
    load_config(dir + "/absent.yaml");
    FAIL("expected an InputError");
  } catch (const InputError& ex) {
    CHECK(std::string(ex.what()).find("absent.yaml") != std::string::npos);
  }
}

TEST_CASE("config: edit distance", "[reports][config]") {
  CHECK(edit_distance("robustnes", "robustness") == 1);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("setps", "steps") == 1);  // adjacent transposition
}

TEST_CASE("config: the bundled examples/demo.yaml is valid and covers every section kind", "[reports][config]") {
  AuditConfig cfg = load_config(test::source_path("examples/demo.yaml"));
  CHECK(cfg.models.size() == 3);  // the CNN, the credit MLP and the credit GBT (tree ensemble)
  std::set<SectionKind> kinds;
  for (const auto& s : cfg.sections) kinds.insert(s.kind);
  CHECK(kinds.size() == all_section_kinds().size());
  CHECK(cfg.gates.size() >= 10);
}

TEST_CASE("config: eps as a fraction (8/255) and an open domain (.inf)", "[reports][config]") {
  AuditConfig c = parse(std::string(kBase) + "sections:\n  robustness:\n    - model: cnn\n      data: d\n      attack: pgd\n"
                                             "      eps: [8/255, 0.5]\n");
  REQUIRE(c.sections.size() == 1);
  CHECK(c.sections[0].params["eps"][0].get<double>() == 8.0 / 255.0);
  CHECK(c.sections[0].params["eps"][1].get<double>() == 0.5);
  AuditConfig open = parse(
      "models:\n  cnn: m.onnx\ndatasets:\n  d: {data: x.npy, labels: y.npy, domain: [-.inf, .inf]}\nsections:\n"
      "  robustness:\n    - {model: cnn, data: d, attack: pgd, eps: [0.1]}\n");
  REQUIRE(open.datasets.size() == 1);
  REQUIRE(open.datasets[0].domain);
  CHECK(std::isinf(open.datasets[0].domain->first));
  CHECK(open.datasets[0].domain->first < 0);
  CHECK(std::isinf(open.datasets[0].domain->second));
}
