// mlaudit attack --attack hsja|boundary and autoattack on a tree ensemble (no gradients), end to end.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "json_util.h"
#include "test_util.h"

using namespace mlaudit;

namespace {
std::string credit_args(int limit) {
  const std::string t = test::source_path("tests/fixtures/trees/");
  return "--model " + t + "xgb_binary.onnx --data " + t + "credit_x.npy --labels " + t + "credit_y.npy --limit " +
         std::to_string(limit);
}
bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}
}  // namespace

TEST_CASE("robustness: attack --attack hsja on a tree ensemble reports minimal norms, thresholds and queries",
          "[robustness][cli][decision]") {
  auto dir = test::temp_dir("rb-decision-cli");
  auto r = test::run_cli("attack " + credit_args(12) + " --attack hop-skip-jump --norm l2 --steps 5 --clip-min 0 --clip-max 250 "
                         "--eps 0.1,100 --out " + dir + "/h.json --save-adv " + dir + "/adv.npy");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = test::read_json(dir + "/h.json");
  CHECK(j["attack"] == "hsja");
  CHECK(j["config"]["hsja"]["max_iter"] == 5);
  CHECK(j["config"]["hsja"]["max_eval"] == 10000);
  CHECK(j["minimal_norms"]["found"].get<int>() > 0);
  CHECK(j["minimal_norms"]["queries"].get<int64_t>() > 0);
  REQUIRE(j["by_eps"].size() == 2);
  // eps 100 in raw credit units covers every minimal point found: success rate 1.
  CHECK(j["by_eps"][1]["attack_success_rate"].get<double>() == 1.0);
  CHECK(j["by_eps"][0]["attack_success_rate"].get<double>() <= j["by_eps"][1]["attack_success_rate"].get<double>());
  for (const auto& p : j["per_sample"]) {
    if (!p["correct"].get<bool>()) continue;
    CHECK(p["queries"].get<int64_t>() > 100);  // the start alone costs a blend search
    CHECK(p["gradient_calls"] == 0);
    if (!p["minimal_norm"].is_null()) CHECK(p["adv_prediction"] != p["label"]);
  }
  CHECK(exists(dir + "/adv.npy"));
  // Boundary with a query cap.
  r = test::run_cli("attack " + credit_args(8) + " --attack boundary --norm l2 --queries 800 --clip-min 0 --clip-max 250 --out " +
                    dir + "/b.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  j = test::read_json(dir + "/b.json");
  CHECK(j["attack"] == "boundary");
  CHECK(j["config"]["boundary"]["max_queries"] == 800);
  for (const auto& p : j["per_sample"])
    if (p["correct"].get<bool>()) CHECK(p["queries"].get<int64_t>() <= 800 + 4);  // + clean pass, re-check; a step is 2
}

TEST_CASE("robustness: autoattack on a model without gradients runs the black-box subset and says so",
          "[robustness][cli][decision][autoattack]") {
  auto dir = test::temp_dir("rb-decision-cli");
  auto r = test::run_cli("attack " + credit_args(10) + " --attack autoattack --eps 1 --steps 5 --queries 100 --clip-min 0 "
                         "--clip-max 250 --out " + dir + "/a.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("no input gradients; autoattack runs its black-box subset (square, hsja)"));
  auto j = test::read_json(dir + "/a.json");
  CHECK(j["subset"] == nlohmann::json::array({"square", "hsja"}));
  CHECK_THAT(j["note"].get<std::string>(), Catch::Contains("black-box subset"));
  CHECK_THAT(j["execution"][0].get<std::string>(), Catch::Contains("black-box subset (square, hsja)"));
  for (const auto& p : j["per_sample"])
    if (p["by_eps"][0]["success"].get<bool>()) CHECK(p["by_eps"][0]["perturbation_norm"].get<double>() <= 1.0 + 1e-5);
  // Under L2 the Boundary attack (L2 only) joins the subset.
  r = test::run_cli("attack " + credit_args(6) + " --attack autoattack --norm l2 --eps 1 --steps 5 --queries 200 "
                    "--clip-min 0 --clip-max 250 --out " + dir + "/a2.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("black-box subset (square, hsja, boundary)"));
  j = test::read_json(dir + "/a2.json");
  CHECK(j["subset"] == nlohmann::json::array({"square", "hsja", "boundary"}));
}

TEST_CASE("robustness: decision attack CLI errors are one line with exit code 2", "[robustness][cli][decision][errors]") {
  auto dir = test::temp_dir("rb-decision-cli");
  auto r = test::run_cli("attack " + credit_args(5) + " --attack boundary --norm linf --clip-min 0 --clip-max 250 --out " + dir + "/e.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("boundary is an L2 attack: use --norm l2"));
  // Credit rows hold incomes up to ~211: the default domain [0, 1] does not contain them.
  r = test::run_cli("attack " + credit_args(5) + " --attack hsja --out " + dir + "/e.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("outside the input domain [0, 1]"));
  r = test::run_cli("attack " + credit_args(5) + " --attack hsja --queries 0 --clip-min 0 --clip-max 250 --out " + dir + "/e.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--queries must be >= 1"));
  r = test::run_cli("attack " + credit_args(5) + " --attack hopskip --clip-min 0 --clip-max 250 --out " + dir + "/e.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("unknown --attack 'hopskip'"));
  // A white-box attack on the tree model still refuses, naming the black-box ones.
  r = test::run_cli("attack " + credit_args(5) + " --attack pgd --eps 1 --clip-min 0 --clip-max 250 --out " + dir + "/e.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("is not differentiable"));
  CHECK_FALSE(exists(dir + "/e.json"));
}
