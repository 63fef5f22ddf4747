// mlaudit privacy / backdoor through the executable: report schema, values, exit codes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "json_util.h"
#include "test_util.h"

using mlaudit::test::run_cli;
using mlaudit::test::source_path;

namespace {

using mlaudit::test::read_json;

std::string overfit_args() {
  const std::string d = source_path("datasets/privacy/");
  return " --model " + source_path("models/privacy/overfit_mlp.onnx") + " --members " + d + "overfit_members_x.npy" +
         " --member-labels " + d + "overfit_members_y.npy --non-members " + d + "overfit_nonmembers_x.npy" +
         " --non-member-labels " + d + "overfit_nonmembers_y.npy";
}

}  // namespace

TEST_CASE("privacy cli: all five attacks on the overfit model", "[privacy][cli]") {
  const std::string dir = mlaudit::test::temp_dir("privacy-cli");
  const auto r = run_cli("--threads 2 privacy" + overfit_args() + " --attacks loss,confidence,entropy,lira,label-only" +
                         " --reference-models " + source_path("models/privacy/overfit_refs") + " --out " + dir + "/p.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto j = read_json(dir + "/p.json");
  CHECK(j["schema"] == "mlaudit.privacy/1");
  CHECK(j.contains("tool_version"));
  CHECK(j["members"]["count"] == 250);
  CHECK(j["reference_models"].size() == 4);
  REQUIRE(j["attacks"].size() == 5);
  const auto g = read_json(source_path("tests/fixtures/privacy/membership_goldens.json"));
  for (const auto& a : j["attacks"]) {
    INFO("attack " << a["name"]);
    for (const char* k : {"auc", "balanced_accuracy", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01"}) CHECK(a.contains(k));
    CHECK(a["roc"]["fpr"].size() == a["roc"]["tpr"].size());
    CHECK(a["roc"]["fpr"].front() == 0.0);
    CHECK(a["roc"]["tpr"].back() == 1.0);
    // Every attack beats chance on a model with train accuracy 1.0 and held-out 0.73.
    CHECK(a["auc"].get<double>() > 0.6);
    const std::string name = a["name"];
    // Engine vs onnxruntime scores: rank swaps only between near-equal scores (see test_membership).
    if (g["attacks"].contains(name)) CHECK(std::fabs(a["auc"].get<double>() - g["attacks"][name]["auc"].get<double>()) < 1e-3);
  }
  CHECK(j["label_only_distance"].is_string());
}

TEST_CASE("privacy cli: bad input exits 2 with one line and writes nothing", "[privacy][cli][errors]") {
  const std::string dir = mlaudit::test::temp_dir("privacy-cli-err");
  auto r = run_cli("privacy" + overfit_args() + " --attacks loss,shadow --out " + dir + "/p.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("unknown attack 'shadow'"));
  r = run_cli("privacy --model " + source_path("models/privacy/overfit_mlp.onnx") + " --members /nonexistent/x.npy" +
              " --member-labels /nonexistent/y.npy --non-members /nonexistent/x.npy --non-member-labels /nonexistent/y.npy" +
              " --out " + dir + "/p.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("/nonexistent/x.npy"));
  r = run_cli("privacy" + overfit_args() + " --attacks lira --out " + dir + "/p.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--reference-models"));
  // Labels of the wrong length.
  const std::string d = source_path("datasets/privacy/");
  r = run_cli("privacy --model " + source_path("models/privacy/overfit_mlp.onnx") + " --members " + d +
              "overfit_members_x.npy --member-labels " + d + "backdoor_clean_y.npy --non-members " + d +
              "overfit_nonmembers_x.npy --non-member-labels " + d + "overfit_nonmembers_y.npy --out " + dir + "/p.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("holds 250 samples but"));
  CHECK(!std::filesystem::exists(dir + "/p.json"));
  CHECK(run_cli("privacy --help").exit_code == 0);
  CHECK(run_cli("backdoor --help").exit_code == 0);
}

TEST_CASE("backdoor cli: Neural Cleanse subset and STRIP on the backdoored CNN", "[privacy][cli]") {
  const std::string dir = mlaudit::test::temp_dir("backdoor-cli");
  const std::string d = source_path("datasets/privacy/");
  const auto r = run_cli("--threads 2 backdoor --model " + source_path("models/privacy/backdoor_cnn.onnx") + " --clean " + d +
                         "backdoor_clean_x.npy --classes 0,3,7 --epochs 10 --suspicious " + d +
                         "backdoor_triggered_x.npy --all-triggers --fail-on-flag --out " + dir + "/b.json");
  INFO(r.output);
  // STRIP flags the triggered inputs, so the gate fails.
  CHECK(r.exit_code == 1);
  const auto j = read_json(dir + "/b.json");
  CHECK(j["schema"] == "mlaudit.backdoor/1");
  CHECK(j.contains("tool_version"));
  CHECK(j["verdict"] == "backdoor_suspected");
  REQUIRE(j["neural_cleanse"]["classes"].size() == 3);
  for (const auto& c : j["neural_cleanse"]["classes"]) {
    REQUIRE(c.contains("trigger_png"));
    CHECK(std::filesystem::file_size(c["trigger_png"].get<std::string>()) > 50);
  }
  CHECK(j["strip"]["entropy"].size() == 20);
  CHECK(j["strip"]["flagged_fraction"].get<double>() >= 0.9);
  // Bad class index: exit 2, nothing written.
  const auto bad = run_cli("backdoor --model " + source_path("models/privacy/backdoor_cnn.onnx") + " --clean " + d +
                           "backdoor_clean_x.npy --classes 0,12 --epochs 1 --out " + dir + "/bad.json");
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Catch::Contains("class 12 is outside the model's 10 outputs"));
  CHECK(!std::filesystem::exists(dir + "/bad.json"));
  const auto flat = run_cli("backdoor --model " + source_path("models/privacy/overfit_mlp.onnx") + " --clean " + d +
                            "overfit_members_x.npy --out " + dir + "/bad.json");
  CHECK(flat.exit_code == 2);
  CHECK_THAT(flat.output, Catch::Contains("expected images [N,C,H,W], got [250,196]"));
}
