// mlaudit attack / certify / corrupt end to end on the bundled CNN (small subsets).
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "mlaudit/datasets/npy.h"
#include "json_util.h"
#include "test_util.h"

using namespace mlaudit;

namespace {
bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}
using test::read_json;
std::string cnn_args() {
  return "--model " + test::source_path("models/fmnist_cnn.onnx") + " --data " + test::source_path("datasets/demo/fmnist_x.npy") +
         " --labels " + test::source_path("datasets/demo/fmnist_y.npy");
}
bool have_cnn() {
  if (exists(test::source_path("models/fmnist_cnn.onnx")) && exists(test::source_path("datasets/demo/fmnist_x.npy"))) return true;
  WARN("bundled CNN missing: skipped");
  return false;
}
}  // namespace

TEST_CASE("robustness: attack, certify and corrupt print --help and reject bad options with exit code 2", "[robustness][cli]") {
  for (const char* c : {"attack", "certify", "corrupt"}) {
    auto r = test::run_cli(std::string(c) + " --help");
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("Usage: mlaudit " + std::string(c)));
  }
  auto dir = test::temp_dir("rb-cli");
  auto r = test::run_cli("attack --data x.npy --labels y.npy --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("'--model' is required"));
  if (!have_cnn()) return;
  r = test::run_cli("attack " + cnn_args() + " --attack pgd --norm l7 --eps 0.1 --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("unknown norm 'l7'"));
  r = test::run_cli("attack " + cnn_args() + " --attack pgd --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("'--eps' is required"));
  r = test::run_cli("attack " + cnn_args() + " --attack pgdx --eps 0.1 --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("unknown --attack 'pgdx'"));
  r = test::run_cli("attack --model " + test::source_path("models/fmnist_cnn.onnx") + " --data " + dir +
                    "/missing.npy --labels y.npy --eps 0.1 --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("missing.npy"));
  r = test::run_cli("attack " + cnn_args() + " --eps 0.1 --clip-max 0.5 --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("outside the input domain [0, 0.5]"));
  r = test::run_cli("certify " + cnn_args() + " --sigma -1 --out " + dir + "/c.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--sigma must be > 0"));
  // the library names its parameter ("restarts must be >= 1"); the CLI words it as the flag
  r = test::run_cli("attack " + cnn_args() + " --attack pgd --eps 0.1 --restarts 0 --limit 2 --out " + dir + "/r.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("attack: --restarts must be >= 1"));
  r = test::run_cli("corrupt " + cnn_args() + " --severities 0-7 --out " + dir + "/k.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("outside 1..5"));
  r = test::run_cli("corrupt " + cnn_args() + " --corruptions fog --out " + dir + "/k.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("unknown corruption 'fog'"));
  // Nothing half-written.
  CHECK_FALSE(exists(dir + "/r.json"));
  CHECK_FALSE(exists(dir + "/c.json"));
  CHECK_FALSE(exists(dir + "/k.json"));
}

TEST_CASE("robustness: mlaudit attack writes a robustness curve and the adversarial batch", "[robustness][cli]") {
  if (!have_cnn()) return;
  auto dir = test::temp_dir("rb-cli");
  auto r = test::run_cli("--threads 2 attack " + cnn_args() + " --limit 40 --attack pgd --eps 0,0.02,0.1 --steps 10 --out " + dir +
                         "/r.json --save-adv " + dir + "/adv.npy");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/r.json");
  CHECK(j["schema"] == "mlaudit.attack/1");
  CHECK(j.contains("tool_version"));
  CHECK(j["n_samples"] == 40);
  REQUIRE(j["by_eps"].size() == 3);
  const double clean = j["clean_accuracy"];
  // eps = 0 keeps the clean accuracy; the curve never goes up with eps.
  CHECK(j["by_eps"][0]["robust_accuracy"].get<double>() == Approx(clean));
  CHECK(j["by_eps"][1]["robust_accuracy"].get<double>() <= clean);
  CHECK(j["by_eps"][2]["robust_accuracy"].get<double>() <= j["by_eps"][1]["robust_accuracy"].get<double>());
  for (const char* k : {"eps", "robust_accuracy", "attack_success_rate", "mean_perturbation_norm", "median_perturbation_norm",
                        "gradient_calls", "queries"})
    CHECK(j["by_eps"][1].contains(k));
  REQUIRE(j["per_sample"].size() == 40);
  CHECK(j["per_sample"][0]["by_eps"].size() == 3);
  auto adv = datasets::read_npy_float(dir + "/adv.npy");
  CHECK(adv.shape() == engine::Shape{40, 1, 28, 28});

  r = test::run_cli("--threads 2 attack " + cnn_args() + " --limit 20 --attack deepfool --norm l2 --eps 0.5,1 --out " + dir + "/d.json");
  REQUIRE(r.exit_code == 0);
  j = read_json(dir + "/d.json");
  CHECK(j["minimal_norms"]["found"].get<int>() > 0);
  CHECK(j["by_eps"].size() == 2);
  CHECK(j["per_sample"][0].contains("minimal_norm"));

  // FAB-T from the CLI: success only within eps; on the CPU session the host loop ran (no device note).
  r = test::run_cli("--threads 2 attack " + cnn_args() + " --limit 12 --attack fab-t --eps 0.05 --steps 20 --out " + dir + "/f.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  j = read_json(dir + "/f.json");
  CHECK(j["attack"] == "fab-t");
  CHECK(j["execution"].is_array());
  CHECK(j["execution"].empty());
  for (const auto& p : j["per_sample"])
    if (p["by_eps"][0]["success"].get<bool>()) CHECK(p["by_eps"][0]["perturbation_norm"].get<double>() <= 0.05 * (1 + 1e-5) + 1e-6);
}

TEST_CASE("robustness: mlaudit certify and corrupt write their reports", "[robustness][cli]") {
  if (!have_cnn()) return;
  auto dir = test::temp_dir("rb-cli");
  auto r = test::run_cli("--threads 2 certify " + cnn_args() + " --limit 3 --sigma 0.25 --n0 50 --n 500 --batch 250 --out " + dir + "/c.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = read_json(dir + "/c.json");
  CHECK(j["schema"] == "mlaudit.certify/1");
  REQUIRE(j["per_sample"].size() == 3);
  for (const char* k : {"index", "label", "prediction", "radius", "correct"}) CHECK(j["per_sample"][0].contains(k));
  CHECK(j["certified_accuracy"][0]["radius"] == 0.0);
  CHECK(j.contains("seconds_per_sample"));
  // Radius ceiling with N = 500, alpha = 0.001 (all 500 votes agree):
  // sigma * PhiInv(0.001^(1/500)) = 0.25 * PhiInv(0.98628) = 0.25 * 2.20519 (scipy).
  for (const auto& p : j["per_sample"]) CHECK(p["radius"].get<double>() <= 0.25 * 2.20519 + 1e-9);
  CHECK_THAT(j["sampler"].get<std::string>(), Catch::StartsWith("host"));  // CPU session: the host sampler
  // The noise streams are per noisy copy: another --batch or --threads gives the same report.
  r = test::run_cli("--threads 1 certify " + cnn_args() + " --limit 3 --sigma 0.25 --n0 50 --n 500 --batch 64 --out " + dir + "/c2.json");
  REQUIRE(r.exit_code == 0);
  auto j2 = read_json(dir + "/c2.json");
  for (size_t i = 0; i < 3; ++i) CHECK(j2["per_sample"][i]["count_a"] == j["per_sample"][i]["count_a"]);

  r = test::run_cli("--threads 2 corrupt " + cnn_args() + " --corruptions gaussian_noise,contrast,pixelate --severities 1,5 --out " + dir + "/k.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  j = read_json(dir + "/k.json");
  CHECK(j["schema"] == "mlaudit.corrupt/1");
  REQUIRE(j["corruptions"].size() == 3);
  CHECK(j["corruptions"][0]["by_severity"].size() == 2);
  CHECK(j.contains("mean_corruption_accuracy"));
  CHECK(j.contains("relative_drop"));
  // Contrast at severity 5 (factor 0.15) must hurt a CNN trained on clean images.
  CHECK(j["corruptions"][1]["by_severity"][1]["accuracy"].get<double>() < j["clean_accuracy"].get<double>());
}
