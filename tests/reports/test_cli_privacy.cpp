// Privacy and backdoor sections end to end through build/mlaudit: the audit's
// numbers are the ones `mlaudit privacy` / `mlaudit backdoor` print for the same
// inputs, its gates read them, and the report renders them.
#include <catch2/catch.hpp>

#include <filesystem>

#include "../../reports/src/doc.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const json& section_of(const json& report, const std::string& kind) {
  for (const auto& s : report["sections"])
    if (s["kind"] == kind) return s;
  throw std::runtime_error("no " + kind + " section");
}

}  // namespace

TEST_CASE("cli audit: privacy and backdoor sections equal the commands run directly", "[reports][cli][privacy]") {
  const std::string root = test::source_path("");
  const std::string dir = test::temp_dir("cli-privacy");
  const std::string m = root + "datasets/privacy/overfit_members_", n = root + "datasets/privacy/overfit_nonmembers_";
  const std::string clean = root + "datasets/privacy/backdoor_clean_x.npy";
  const std::string trig = root + "datasets/privacy/backdoor_triggered_x.npy";
  // The same inputs and settings as the audit below (the audit passes the config seed 3).
  auto p = test::run_cli("privacy --model " + root + "models/privacy/overfit_mlp.onnx --members " + m + "x.npy --member-labels " +
                         m + "y.npy --non-members " + n + "x.npy --non-member-labels " + n + "y.npy --attacks loss,confidence,"
                         "entropy,lira --reference-models " + root + "models/privacy/overfit_refs --out " + dir + "/p.json");
  REQUIRE(p.exit_code == 0);
  auto b = test::run_cli("backdoor --model " + root + "models/privacy/backdoor_cnn.onnx --clean " + clean +
                         " --classes 0,3,7 --epochs 4 --suspicious " + trig + " --strip-overlays 20 --all-triggers --seed 3 --out " +
                         dir + "/b.json");
  REQUIRE(b.exit_code == 0);
  const json direct_p = json::parse(test::read_text(dir + "/p.json"));
  const json direct_b = json::parse(test::read_text(dir + "/b.json"));

  test::write_text(dir + "/audit.yaml",
                   "seed: 3\n"
                   "models:\n  overfit: " + root + "models/privacy/overfit_mlp.onnx\n  bd: " + root + "models/privacy/backdoor_cnn.onnx\n"
                   "datasets:\n"
                   "  members: {data: " + m + "x.npy, labels: " + m + "y.npy}\n"
                   "  nonmembers: {data: " + n + "x.npy, labels: " + n + "y.npy}\n"
                   "  clean: {data: " + clean + ", labels: " + root + "datasets/privacy/backdoor_clean_y.npy}\n"
                   "sections:\n"
                   "  privacy:\n    - {model: overfit, members: members, non_members: nonmembers, "
                   "attacks: [loss, confidence, entropy, lira], reference_models: " + root + "models/privacy/overfit_refs}\n"
                   "  backdoor:\n    - {model: bd, data: clean, classes: [0, 3, 7], epochs: 4, suspicious: " + trig +
                   ", strip_overlays: 20}\n"
                   "gates:\n"
                   "  - check: membership_auc(lira) <= 0.6\n    name: LiRA leakage\n"
                   "  - membership_tpr_at_fpr(loss, 0.01) <= 0.05\n"
                   "  - check: backdoor_max_anomaly_index() <= 100\n    severity: warning\n"
                   "  - strip_flagged_fraction() >= 0.9\n");
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(r.output);
  // the overfit model leaks (LiRA AUC ~0.73 > 0.6): exit 1, not an error
  CHECK(r.exit_code == 1);
  const json report = json::parse(test::read_text(dir + "/out/report.json"));
  const json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  auto errors = reports::validate_json_schema(report, schema);
  INFO((errors.empty() ? std::string() : errors[0]));
  CHECK(errors.empty());

  // Same binary, same inputs, same seed: the numbers are identical, not merely close.
  const json& ap = section_of(report, "privacy")["result"];
  REQUIRE(ap["attacks"].size() == direct_p["attacks"].size());
  for (size_t i = 0; i < ap["attacks"].size(); ++i) {
    const json& x = ap["attacks"][i];
    const json& y = direct_p["attacks"][i];
    INFO(y["name"]);
    CHECK(x["name"] == y["name"]);
    for (const char* f : {"auc", "balanced_accuracy", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01"}) CHECK(x[f] == y[f]);
    CHECK(x["roc"] == y["roc"]);
  }
  const json& ab = section_of(report, "backdoor")["result"];
  REQUIRE(ab["neural_cleanse"]["classes"].size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    const json& x = ab["neural_cleanse"]["classes"][i];
    const json& y = direct_b["neural_cleanse"]["classes"][i];
    for (const char* f : {"class", "l1_norm", "anomaly_index", "attack_success", "flagged"}) CHECK(x[f] == y[f]);
    // the trigger image was kept next to the report
    std::string png = x["trigger_png"];
    CHECK(png.rfind("sections/", 0) == 0);
    CHECK(fs::exists(dir + "/out/" + png));
  }
  CHECK(ab["neural_cleanse"]["flagged"] == direct_b["neural_cleanse"]["flagged"]);
  CHECK(ab["strip"]["entropy"] == direct_b["strip"]["entropy"]);
  CHECK(ab["strip"]["threshold"] == direct_b["strip"]["threshold"]);

  // Gates read those values.
  const json& g = report["gates"];
  REQUIRE(g.size() == 4);
  const json* lira = nullptr;
  for (const auto& a : direct_p["attacks"])
    if (a["name"] == "lira") lira = &a;
  REQUIRE(lira);
  CHECK(g[0]["measured"] == (*lira)["auc"]);
  CHECK(g[0]["status"] == "fail");
  CHECK(g[1]["measured"] == direct_p["attacks"][0]["tpr_at_fpr_0.01"]);
  CHECK(g[3]["measured"] == direct_b["strip"]["flagged_fraction"]);
  CHECK(g[3]["status"] == "pass");  // the planted trigger survives superimposition
  CHECK(r.output.find("FAIL  LiRA leakage: measured") != std::string::npos);

  // The renderings carry the section.
  const std::string md = test::read_text(dir + "/out/report.md");
  CHECK(md.find("## Privacy: membership inference") != std::string::npos);
  CHECK(md.find("| lira | " + reports::detail::num((*lira)["auc"])) != std::string::npos);
  CHECK(md.find("## Backdoor scan") != std::string::npos);
  const std::string html = test::read_text(dir + "/out/report.html");
  CHECK(html.find("Membership inference ROC: overfit") != std::string::npos);
  CHECK(html.find("Reversed trigger (mask x pattern), class 0") != std::string::npos);
  // report.md links its charts; `mlaudit report --format md` writes them beside its output
  CHECK(md.find("![Membership inference ROC: overfit](charts/chart-1.svg)") != std::string::npos);
  CHECK(fs::exists(dir + "/out/charts/chart-1.svg"));
  fs::create_directories(dir + "/again");
  auto again = test::run_cli("report --in " + dir + "/out/report.json --format md --out " + dir + "/again/r.md");
  CHECK(again.exit_code == 0);
  CHECK(test::read_text(dir + "/again/r.md") == md);
  CHECK(test::read_text(dir + "/again/charts/chart-1.svg") == test::read_text(dir + "/out/charts/chart-1.svg"));
}

TEST_CASE("cli audit: a privacy section on CSV data sets (the credit model's real split)", "[reports][cli][privacy]") {
  const std::string root = test::source_path("");
  const std::string dir = test::temp_dir("cli-privacy-csv");
  auto p = test::run_cli("privacy --model " + root + "models/credit_mlp.onnx --members " + root +
                         "datasets/credit/credit_train.csv --non-members " + root + "datasets/credit/credit_test.csv "
                         "--label-column approved --feature-list " + root + "datasets/credit/features.txt --out " + dir + "/p.json");
  REQUIRE(p.exit_code == 0);
  const json direct = json::parse(test::read_text(dir + "/p.json"));
  test::write_text(dir + "/audit.yaml",
                   "models:\n  credit: " + root + "models/credit_mlp.onnx\n"
                   "datasets:\n"
                   "  train: {csv: " + root + "datasets/credit/credit_train.csv, label: approved, features: " + root + "datasets/credit/features.txt}\n"
                   "  test: {csv: " + root + "datasets/credit/credit_test.csv, label: approved, features: " + root + "datasets/credit/features.txt}\n"
                   "sections:\n  privacy: {model: credit, members: train, non_members: test}\n"
                   "gates:\n  - max_membership_auc() <= 0.6\n");
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  INFO(r.output);
  // a well-regularised MLP at 86.6 % train / 85.3 % test accuracy leaks little
  CHECK(r.exit_code == 0);
  const json report = json::parse(test::read_text(dir + "/out/report.json"));
  const json& a = section_of(report, "privacy")["result"]["attacks"];
  REQUIRE(a.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(a[i]["auc"] == direct["attacks"][i]["auc"]);
  CHECK(section_of(report, "privacy")["result"]["members"]["count"] == 4000);
  CHECK(section_of(report, "privacy")["result"]["non_members"]["count"] == 2000);
}
