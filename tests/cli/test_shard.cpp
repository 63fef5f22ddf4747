// `--shard I/N` and `mlaudit merge` (docs/scale-out.md): for attack (pgd, square, the exact
// tree attack), certify, corrupt, explain, privacy, verify --data and verify --benchmark, the parts of N = 1, 2, 3 and 7 shards merge into the
// JSON one process writes, byte for byte but for the timings (lines naming seconds), and
// explain's attribution arrays into its .npy; merge refuses parts of other runs, missing and
// repeated shards and mixed commands (exit 2, one line).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "mlaudit/reports/report.h"
#include "shard_compare.h"
#include "test_util.h"

using namespace mlaudit;

namespace {

std::string src(const std::string& rel) { return test::source_path(rel); }

// What docs/report-schema.json's $defs entry `def` finds wrong with `j` (empty: valid).
std::vector<std::string> schema_problems(const nlohmann::json& j, const std::string& def) {
  static const nlohmann::json root = nlohmann::json::parse(test::read_text(src("docs/report-schema.json")));
  return reports::validate_json_schema(j, {{"$defs", root["$defs"]}, {"$ref", "#/$defs/" + def}});
}
using test::untimed;
using test::untimed_lines;

// Runs `command` whole and as `shards` parts, merges the parts (given in reverse order) and
// compares the merged report with the whole one. `attributions` (explain): each run also writes
// its attributions .npy, merge joins the parts' and the result must equal the whole run's byte
// for byte (the reports then differ only in the file they name).
void expect_sharded_equal(const std::string& tag, const std::string& command, int shards, bool attributions = false) {
  const std::string dir = test::temp_dir("shard-" + tag + "-" + std::to_string(shards));
  auto npy = [&](const std::string& name) { return attributions ? " --attributions " + dir + "/" + name + ".npy" : std::string(); };
  auto whole = test::run_cli(command + " -q --out " + dir + "/whole.json" + npy("whole"));
  INFO(command << "\n" << whole.output);
  REQUIRE(whole.exit_code == 0);
  std::string parts;
  for (int i = shards - 1; i >= 0; --i) {
    const std::string part = dir + "/part" + std::to_string(i) + ".json";
    auto r = test::run_cli(command + " -q --shard " + std::to_string(i) + "/" + std::to_string(shards) + " --out " + part +
                           npy("part" + std::to_string(i)));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(test::read_text(part));
    CHECK(j["schema"] == "mlaudit.part/1");  // never read as a whole run
    CHECK(schema_problems(j, "part").empty());
    CHECK(j["shard"]["report_schema"] == nlohmann::json::parse(test::read_text(dir + "/whole.json"))["schema"]);
    CHECK(j["shard"]["index"] == i);
    CHECK(j["shard"]["count"] == shards);
    for (const char* role : {"model", "instances"})  // a benchmark is named by its instances.csv
      if (j["inputs"].contains(role)) CHECK(j["shard"]["run"]["sha256"][role] == j["inputs"][role]["sha256"]);
    parts += " " + part;
  }
  auto m = test::run_cli("merge -q" + parts + " --out " + dir + "/merged.json" + npy("merged"));
  INFO(m.output);
  REQUIRE(m.exit_code == 0);
  std::string a = test::read_text(dir + "/whole.json"), b = test::read_text(dir + "/merged.json");
  if (attributions) {
    const std::string whole_npy = test::read_text(dir + "/whole.npy");
    CHECK(!whole_npy.empty());
    CHECK(test::read_text(dir + "/merged.npy") == whole_npy);
    // the one line that names the file
    for (std::string* text : {&a, &b}) {
      const size_t at = text->find("\"attributions_file\"");
      REQUIRE(at != std::string::npos);
      text->erase(at, text->find('\n', at) + 1 - at);
    }
  }
  const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  CHECK(!jb.contains("shard"));
  CHECK(untimed(ja) == untimed(jb));
  CHECK(untimed_lines(a) == untimed_lines(b));
  CHECK(ja.value("per_sample", nlohmann::json::array()).size() == jb.value("per_sample", nlohmann::json::array()).size());
}

std::string credit() {
  return " --model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/demo/credit_x.npy") + " --labels " +
         src("datasets/demo/credit_y.npy");
}

std::string trees() {
  return " --model " + src("tests/fixtures/trees/xgb_binary.onnx") + " --data " + src("tests/fixtures/trees/credit_x.npy") +
         " --labels " + src("tests/fixtures/trees/credit_y.npy");
}

const std::string pgd = "attack" + credit() + " --attack pgd --eps 0.2,1 --clip-min -1000 --clip-max 1000 --limit 21";
const std::string square = "attack" + credit() + " --attack square --queries 300 --eps 0.2,1 --clip-min -1000 --clip-max 1000 --limit 21";
const std::string exact_tree = "attack" + trees() + " --attack exact-tree --eps 0.1,0.5 --clip-min=-1000 --clip-max=1000 --limit 12";
std::string certify_seed(int seed) {
  return "certify" + credit() + " --sigma 0.5 --n0 20 --n 500 --seed " + std::to_string(seed) + " --radii 0,0.1,0.25,0.5 --limit 14";
}
const std::string certify = certify_seed(5);
// corrupt: noise corruptions (per-sample streams) and deterministic ones; tabular noise and
// dropout, whose column statistics come from every row, not the shard's.
const std::string corrupt_images = "corrupt --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") +
                                   " --labels " + src("datasets/demo/fmnist_y.npy") +
                                   " --corruptions gaussian_noise,shot_noise,impulse_noise,contrast --severities 1,5 --limit 23";
const std::string corrupt_tabular = "corrupt" + credit() + " --severities 1-5 --seed 3 --limit 50";
const std::string verify = "verify" + trees() + " --eps 0.1,0.5 --clip-min=-inf --clip-max=inf --limit 14 --minimal-distance";

// A seven-instance benchmark in the VNN-COMP layout (instances.csv, expected.csv) from the
// verify fixtures: a sat and an unsat property of one network, listed alternately.
std::string benchmark_dir() {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("shard-benchmark-src");
  fs::create_directories(dir + "/onnx");
  fs::create_directories(dir + "/vnnlib");
  for (const char* f : {"domain_sat.vnnlib", "domain_unsat.vnnlib"})
    fs::copy_file(src(std::string("tests/fixtures/verify/") + f), dir + "/vnnlib/" + f, fs::copy_options::overwrite_existing);
  fs::copy_file(src("tests/fixtures/verify/domain_mlp.onnx"), dir + "/onnx/domain_mlp.onnx", fs::copy_options::overwrite_existing);
  std::ofstream f(dir + "/instances.csv");
  for (int i = 0; i < 7; ++i) f << "onnx/domain_mlp.onnx,vnnlib/domain_" << (i % 2 ? "unsat" : "sat") << ".vnnlib,30\n";
  std::ofstream e(dir + "/expected.csv");
  e << "onnx,vnnlib,timeout_s,expected\ndomain_mlp.onnx,domain_sat.vnnlib,30,sat\ndomain_mlp.onnx,domain_unsat.vnnlib,30,unsat\n";
  return dir;
}

// explain on the credit MLP, whose forward is the fused dense path: every row's bits are
// independent of the batch it is in, so a slice computes exactly what one process computes.
std::string explain_credit(const std::string& method_options) {
  return "explain" + credit() + " --features " + src("datasets/credit/features.txt") + " " + method_options;
}
const std::string credit_background = " --background " + src("datasets/demo/credit_background.npy");

// One line on stderr, exit 2.
void expect_refused(const test::CommandResult& r, const std::string& phrase) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.rfind("mlaudit: error: merge: ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(r.output.find(phrase) != std::string::npos);
}

// Run one shard of `command` into DIR/NAME.json (and its attributions into DIR/NAME.npy when
// `npy`); the part's path.
std::string write_part(const std::string& dir, const std::string& command, const std::string& name,
                       const std::string& shard, bool npy = false) {
  const std::string path = dir + "/" + name + ".json";
  auto r = test::run_cli(command + " -q --shard " + shard + " --out " + path + (npy ? " --attributions " + dir + "/" + name + ".npy" : ""));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return path;
}

}  // namespace

TEST_CASE("shard: attack pgd parts merge into the whole run", "[cli][shard]") {
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("pgd", pgd, n);
}

TEST_CASE("shard: attack square parts merge into the whole run", "[cli][shard]") {
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("square", square, n);
}

TEST_CASE("shard: minimal attacks (exact-tree) merge with their minimal norms", "[cli][shard]") {
  for (int n : {2, 3}) expect_sharded_equal("exact-tree", exact_tree, n);
}

TEST_CASE("shard: certify parts merge into the whole run", "[cli][shard]") {
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("certify", certify, n);
}

TEST_CASE("shard: corrupt parts merge into the whole run (images and tabular)", "[cli][shard]") {
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("corrupt-images", corrupt_images, n);
  for (int n : {2, 7}) expect_sharded_equal("corrupt-tabular", corrupt_tabular, n);
}

TEST_CASE("shard: verify --data parts merge into the whole run", "[cli][shard]") {
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("verify", verify, n);
}

TEST_CASE("shard: verify --benchmark parts merge into the whole run, as JSON or results.csv", "[cli][shard]") {
  const std::string bench = "verify --benchmark " + benchmark_dir();
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("benchmark", bench, n);
  // results.csv from the parts: the whole run's rows, the time column aside.
  const std::string dir = test::temp_dir("shard-benchmark-csv");
  REQUIRE(test::run_cli(bench + " -q --out " + dir + "/whole.csv").exit_code == 0);
  std::string parts;
  for (int i = 0; i < 3; ++i) {
    const std::string part = dir + "/p" + std::to_string(i) + ".json";
    REQUIRE(test::run_cli(bench + " -q --shard " + std::to_string(i) + "/3 --out " + part).exit_code == 0);
    parts += " " + part;
  }
  auto m = test::run_cli("merge -q" + parts + " --out " + dir + "/merged.csv");
  INFO(m.output);
  REQUIRE(m.exit_code == 0);
  auto untimed_csv = [](const std::string& text) {
    std::vector<std::string> rows;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) rows.push_back(line.substr(0, line.rfind(',')));
    return rows;
  };
  const auto whole = untimed_csv(test::read_text(dir + "/whole.csv"));
  CHECK(whole.size() == 8);
  CHECK(whole[1] == "domain_mlp.onnx,domain_sat.vnnlib,sat,sat,yes");
  CHECK(whole[2] == "domain_mlp.onnx,domain_unsat.vnnlib,unsat,unsat,yes");
  CHECK(untimed_csv(test::read_text(dir + "/merged.csv")) == whole);
  // A part is JSON; merging other commands' parts into a CSV is refused.
  auto csv_part = test::run_cli(bench + " --shard 0/2 --out " + dir + "/p.csv");
  CHECK(csv_part.exit_code == 2);
  CHECK(csv_part.output.find("give --out PART.json") != std::string::npos);
  const std::string c0 = dir + "/c0.json";
  REQUIRE(test::run_cli(certify + " -q --shard 0/1 --out " + c0).exit_code == 0);
  expect_refused(test::run_cli("merge " + c0 + " --out " + dir + "/c.csv"), "only verify --benchmark parts merge into a results CSV");
}

TEST_CASE("shard: one property's handed-out branches in slices merge into their verdict (verify --vnnlib --branches)",
          "[cli][shard][split]") {
  const std::string acas = test::shared_dataset("vnncomp2022/acasxu");
  namespace fs = std::filesystem;
  if (!fs::exists(acas + "/expected.csv")) {
    WARN("ACAS Xu data absent");
    return;
  }
  const std::string dir = test::temp_dir("shard-branches");
  // 1_1 property 6 (unsat) and 1_9 property 7 (sat: its counterexample comes from the handed-out
  // falsification round, which round-robin dealing gives to shard 0; the other slices search
  // their boxes until --timeout 0.5, and sat wins over their timeouts), each split after 0.05 s.
  for (const auto& [net, prop, expected] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"1_1", "prop_6", "unsat"}, {"1_9", "prop_7", "sat"}}) {
    const std::string q = "--threads 2 verify --model " + acas + "/onnx/ACASXU_run2a_" + net + "_batch_2000.onnx --vnnlib " +
                          acas + "/vnnlib/" + prop + ".vnnlib --timeout " + (expected == "sat" ? "0.5" : "100");
    const std::string b = dir + "/" + net + ".json";
    auto r = test::run_cli(q + " --split-after 0.05 --branches-out " + b + " --out " + dir + "/root.json");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    REQUIRE(fs::exists(b));
    const auto file = nlohmann::json::parse(test::read_text(b));
    CHECK(schema_problems(file, "branches_file").empty());
    const size_t total = file["branches"].size();
    r = test::run_cli(q + " --branches " + b + " --out " + dir + "/whole.json");
    REQUIRE(r.exit_code == 0);
    const auto whole = nlohmann::json::parse(test::read_text(dir + "/whole.json"));
    CHECK(whole["result"] == expected);
    for (int n : {1, 2, 3, 7}) {
      std::string parts;
      for (int i = 0; i < n; ++i) {
        const std::string part = dir + "/" + net + "-" + std::to_string(i) + "-of-" + std::to_string(n) + ".json";
        r = test::run_cli(q + " --branches " + b + " --shard " + std::to_string(i) + "/" + std::to_string(n) + " --out " + part);
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        CHECK(schema_problems(nlohmann::json::parse(test::read_text(part)), "part").empty());
        parts = " " + part + parts;  // reverse order: merge sorts by shard index
      }
      r = test::run_cli("merge -q" + parts + " --out " + dir + "/merged.json");
      INFO(n << " shards: " << r.output);
      REQUIRE(r.exit_code == 0);
      const auto m = nlohmann::json::parse(test::read_text(dir + "/merged.json"));
      CHECK(m["schema"] == "mlaudit.verify/1");
      CHECK(m["result"] == expected);
      CHECK(m["branches_in"]["branches"] == total);
      if (expected == "sat") {
        REQUIRE(m["counterexample"].is_object());
        CHECK(m["counterexample"]["input"].size() == 5);
      } else {
        CHECK(m["counterexample"].is_null());
      }
    }
  }
  // Refusals: --shard without --branches or with --result; parts of two branch files.
  const std::string q = "verify --model " + acas + "/onnx/ACASXU_run2a_1_1_batch_2000.onnx --vnnlib " + acas + "/vnnlib/prop_6.vnnlib";
  auto e = test::run_cli(q + " --shard 0/2 --out " + dir + "/x.json");
  CHECK(e.exit_code == 2);
  CHECK(e.output.find("slices the branches of --branches B.json") != std::string::npos);
  e = test::run_cli(q + " --branches " + dir + "/1_1.json --shard 0/2 --result " + dir + "/x.txt --out " + dir + "/x.json");
  CHECK(e.exit_code == 2);
  CHECK(e.output.find("writes a part for 'mlaudit merge'") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/x.json"));
  e = test::run_cli("merge " + dir + "/1_1-0-of-2.json " + dir + "/1_9-1-of-2.json --out " + dir + "/x.json");
  CHECK(e.exit_code == 2);
  CHECK(e.output.find("parts of different runs") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("shard: merge refuses other runs, missing and repeated shards, mixed commands", "[cli][shard]") {
  const std::string dir = test::temp_dir("shard-refuse");
  auto part = [&](const std::string& command, const std::string& name, const std::string& shard) {
    return write_part(dir, command, name, shard);
  };
  const std::string c0 = part(certify, "c0", "0/3"), c1 = part(certify, "c1", "1/3"), c2 = part(certify, "c2", "2/3");
  const std::string out = " --out " + dir + "/m.json";
  expect_refused(test::run_cli("merge " + c0 + " " + c2 + out), "1 of 3 shards missing: 1");
  expect_refused(test::run_cli("merge " + c0 + " " + c1 + " " + c1 + " " + c2 + out), "shard 1/3 given twice");
  const std::string seed = part(certify_seed(6), "seed", "1/3");
  expect_refused(test::run_cli("merge " + c0 + " " + seed + " " + c2 + out), "option --seed differs (5 and 6)");
  const std::string other_n = part(certify, "n2", "1/2");
  expect_refused(test::run_cli("merge " + c0 + " " + other_n + out), "of 3 shards");
  const std::string v1 = part(verify, "v1", "1/3");
  expect_refused(test::run_cli("merge " + c0 + " " + v1 + " " + c2 + out), "parts of different commands (certify and verify)");
  const std::string other_model =
      part("verify --model " + src("tests/fixtures/trees/sk_gbt_binary.onnx") + " --data " + src("tests/fixtures/trees/credit_x.npy") +
               " --labels " + src("tests/fixtures/trees/credit_y.npy") +
               " --eps 0.1,0.5 --clip-min=-inf --clip-max=inf --limit 14 --minimal-distance",
           "vm", "0/3");
  const std::string v2 = part(verify, "v2", "2/3");
  expect_refused(test::run_cli("merge " + other_model + " " + v1 + " " + v2 + out), "the model files differ");
  auto whole = test::run_cli(certify + " -q --out " + dir + "/whole.json");
  REQUIRE(whole.exit_code == 0);
  expect_refused(test::run_cli("merge " + dir + "/whole.json" + out), "not a part");
  CHECK(!std::filesystem::exists(dir + "/m.json"));
  // --shard itself: I/N with 0 <= I < N, at most one shard per sample
  auto bad = test::run_cli(certify + " --shard 3/3 --out " + dir + "/x.json");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--shard '3/3': expected I/N") != std::string::npos);
  auto many = test::run_cli(certify + " --shard 0/15 --out " + dir + "/x.json");
  CHECK(many.exit_code == 2);
  CHECK(many.output.find("use at most 14") != std::string::npos);
}

namespace {

// A section result file with the audit's work folder (`<out>/.work-PID`, which differs from run
// to run) written as WORK.
std::string without_work_folder(std::string text) {
  for (size_t at = text.find("/.work-"); at != std::string::npos; at = text.find("/.work-", at)) {
    const size_t start = text.rfind('"', at) + 1;
    size_t end = at + 7;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    text.replace(start, end - start, "WORK");
    at = start + 4;
  }
  return text;
}

// Four sharding sections (attack on a `limit` subset the audit writes into its work folder,
// certify, verify --data, and privacy on CSV subsets with the feature list the audit writes into
// its work folder: `--features .work-PID/...`, the same run by content) and one that does not
// shard (fairness); one gate fails (exit 1).
std::string sharded_audit_config(const std::string& bootstrap = "100") {
  const std::string root = src("");
  const std::string features = "[age, income, debt_ratio, years_employed, num_credit_lines, late_payments, sex]";
  return "system: {name: sharded audit test}\n"
         "models:\n  gbt: " + root + "models/credit_gbt.onnx\n  mlp: " + root + "models/credit_mlp.onnx\n"
         "datasets:\n"
         "  credit: {csv: " + root + "datasets/credit/credit_test.csv, label: approved, protected: [sex], features: " + features + "}\n"
         "  credit_train: {csv: " + root + "datasets/credit/credit_train.csv, label: approved, features: " + features + "}\n"
         "  rows: {data: " + root + "datasets/demo/credit_x.npy, labels: " + root + "datasets/demo/credit_y.npy, features: " +
         root + "datasets/credit/features.txt, domain: [-.inf, .inf]}\n"
         "sections:\n"
         "  robustness:\n    - {model: gbt, data: rows, attacks: [exact-tree], norm: linf, eps: [0.05, 0.1], limit: 60}\n"
         "  certification:\n    - {model: mlp, data: rows, sigma: 0.25, n0: 50, n: 200, radii: [0, 0.1, 0.25], limit: 20}\n"
         "  verification:\n    - {model: gbt, data: rows, eps: [0.05, 0.1], limit: 30, timeout: 10}\n"
         "  privacy:\n    - {model: mlp, members: credit_train, non_members: credit, attacks: [loss, confidence, entropy], limit: 90}\n"
         "  fairness:\n    - {model: gbt, data: credit, protected: [sex], bootstrap: " + bootstrap + "}\n"
         // integrated gradients shards (attributions joined at merge); permutation stays in the merge job
         "  explanations:\n    - {model: mlp, data: rows, methods: [integrated-gradients, permutation], steps: 16, limit: 40}\n"
         "gates:\n"
         "  - robust_accuracy(exact-tree, linf, 0.1) >= 0.5\n"
         "  - certified_accuracy(0.1) >= 0\n"
         "  - verified_fraction(linf, 0.1) >= 0\n"
         "  - membership_auc(loss) <= 1\n"
         "  - demographic_parity_ratio(sex) >= 0.9\n";
}

void expect_audit_refused(const test::CommandResult& r, const std::string& phrase) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.rfind("mlaudit: error: audit: ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(r.output.find(phrase) != std::string::npos);
}

}  // namespace

TEST_CASE("shard: audit --shard I/N and --merge give the one-process audit", "[cli][shard][audit]") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("shard-audit");
  const std::string config = dir + "/audit.yaml";
  {
    std::ofstream(config) << sharded_audit_config();
  }
  auto whole = test::run_cli("audit --config " + config + " --out " + dir + "/whole --no-pdf -q");
  INFO(whole.output);
  REQUIRE((whole.exit_code == 0 || whole.exit_code == 1));
  const auto one = nlohmann::json::parse(test::read_text(dir + "/whole/report.json"));
  REQUIRE(one["sections"].size() == 7);
  for (const auto& s : one["sections"]) REQUIRE(s["status"] == "ok");
  for (int n : {2, 3}) {
    std::string dirs;
    for (int i = n - 1; i >= 0; --i) {  // any order
      const std::string sd = dir + "/shard" + std::to_string(n) + "-" + std::to_string(i);
      auto r = test::run_cli("audit --config " + config + " --shard " + std::to_string(i) + "/" + std::to_string(n) + " --out " +
                             sd + " -q");
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      const auto m = nlohmann::json::parse(test::read_text(sd + "/manifest.json"));
      INFO(m.dump());
      CHECK(schema_problems(m, "audit_shard_manifest").empty());
      CHECK(m["sections"] == nlohmann::json::array({"robustness-gbt-exact-tree", "certification-mlp", "verification-gbt-robustness",
                                                    "privacy-mlp", "explanations-mlp-integrated-gradients"}));
      CHECK(m["not_sharded"] == nlohmann::json::array({"fairness-gbt", "explanations-mlp-permutation"}));
      // the explain part's slice of attributions is kept beside it (merge_parts finds it there)
      CHECK(fs::is_regular_file(sd + "/parts/explanations-mlp-integrated-gradients.npy"));
      CHECK(!fs::exists(sd + "/parts/explanations-mlp-permutation.json"));
      CHECK(m["shard"]["index"] == i);
      CHECK(m["shard"]["count"] == n);
      CHECK(!fs::exists(sd + "/report.json"));  // a shard run renders nothing
      CHECK(!fs::exists(sd + "/parts/fairness-gbt.json"));
      CHECK(nlohmann::json::parse(test::read_text(sd + "/parts/certification-mlp.json"))["schema"] == "mlaudit.part/1");
      // the work folder's feature list enters the run identity by its content
      CHECK(nlohmann::json::parse(test::read_text(sd + "/parts/privacy-mlp.json"))["shard"]["run"]["options"]["features"].contains("sha256"));
      dirs += " " + sd;
    }
    const std::string out = dir + "/merged" + std::to_string(n);
    auto merged = test::run_cli("audit --config " + config + " --merge" + dirs + " --out " + out + " --no-pdf -q");
    INFO(merged.output);
    CHECK(merged.exit_code == whole.exit_code);
    const auto m = nlohmann::json::parse(test::read_text(out + "/report.json"));
    // every section's result (work-folder paths relocated to sections/), every gate, the verdict
    CHECK(untimed(m["sections"]) == untimed(one["sections"]));
    CHECK(m["gates"] == one["gates"]);
    CHECK(m["summary"] == one["summary"]);
    CHECK(m["models"] == one["models"]);
    // the section result files, byte for byte but the timings and the work folder's name
    for (const char* id : {"robustness-gbt-exact-tree", "certification-mlp", "verification-gbt-robustness", "privacy-mlp", "fairness-gbt",
                           "explanations-mlp-integrated-gradients", "explanations-mlp-permutation"}) {
      INFO(id);
      const std::string a = test::read_text(dir + "/whole/sections/" + id + ".json"), b = test::read_text(out + "/sections/" + id + ".json");
      REQUIRE(!a.empty());
      CHECK(untimed_lines(without_work_folder(a)) == untimed_lines(without_work_folder(b)));
    }
    // the attribution arrays where the one-process sections write them, byte for byte (the credit
    // MLP is tabular: the merge is exact)
    for (const char* id : {"explanations-mlp-integrated-gradients", "explanations-mlp-permutation"}) {
      INFO(id);
      const std::string a = test::read_text(dir + "/whole/sections/" + id + ".npy");
      REQUIRE(!a.empty());
      CHECK(a == test::read_text(out + "/sections/" + id + ".npy"));
    }
  }
  // Refusals (exit 2, one line), before any section runs.
  const std::string merged = " --out " + dir + "/refused --no-pdf -q";
  const std::string s0 = dir + "/shard2-0", s1 = dir + "/shard2-1";
  auto missing = test::run_cli("audit --config " + config + " --merge " + s0 + merged);
  expect_audit_refused(missing, "shard 1/2 is missing");
  auto twice = test::run_cli("audit --config " + config + " --merge " + s0 + " " + s0 + " " + s1 + merged);
  expect_audit_refused(twice, "shard 0/2 given twice");
  const std::string other = dir + "/other.yaml";
  {
    std::ofstream(other) << sharded_audit_config("50");
  }
  auto o = test::run_cli("audit --config " + other + " --shard 1/2 --out " + dir + "/other1 -q");
  REQUIRE(o.exit_code == 0);
  expect_audit_refused(test::run_cli("audit --config " + config + " --merge " + s0 + " " + dir + "/other1" + merged),
                       "holds parts of another audit config");
  // a section's part missing from one folder
  fs::copy(s1, dir + "/lacking", fs::copy_options::recursive);
  fs::remove(dir + "/lacking/parts/certification-mlp.json");
  expect_audit_refused(test::run_cli("audit --config " + config + " --merge " + s0 + " " + dir + "/lacking" + merged),
                       "section 'certification-mlp': part '" + dir + "/lacking/parts/certification-mlp.json' is missing");
  // a part of the same config from another shard count: merge_parts's own check, named by section
  fs::copy_file(dir + "/shard3-1/parts/certification-mlp.json", dir + "/lacking/parts/certification-mlp.json");
  expect_audit_refused(test::run_cli("audit --config " + config + " --merge " + s0 + " " + dir + "/lacking" + merged),
                       "section 'certification-mlp'");
  expect_audit_refused(test::run_cli("audit --config " + config + " --merge " + s0 + " " + dir + merged),
                       "is not an 'audit --shard' folder");
  // an explain part's attribution array missing from its folder: merge_parts's refusal, named by section
  fs::copy(s1, dir + "/no-npy", fs::copy_options::recursive);
  fs::remove(dir + "/no-npy/parts/explanations-mlp-integrated-gradients.npy");
  expect_audit_refused(test::run_cli("audit --config " + config + " --merge " + s0 + " " + dir + "/no-npy" + merged),
                       "section 'explanations-mlp-integrated-gradients': merge: --attributions: the attributions of");
  expect_audit_refused(test::run_cli("audit --config " + config + " --shard 0/2 --merge " + s0 + merged), "--shard and --merge");
  expect_audit_refused(test::run_cli("audit --config " + config + " --shard 2/2 --out " + dir + "/x -q"), "expected I/N");
  // more shards than a section has samples: the section command's refusal, named by section
  expect_audit_refused(test::run_cli("audit --config " + config + " --shard 0/25 --out " + dir + "/x -q"),
                       "section 'certification-mlp' (mlaudit certify --shard 0/25)");
  CHECK(!fs::exists(dir + "/x/manifest.json"));
  CHECK(!fs::exists(dir + "/refused/report.json"));
}

TEST_CASE("shard: audit --shard shards an image explanations section with its heatmaps", "[cli][shard][audit]") {
  // Image rows: heatmap_<global row>.png for the rows below max-heatmaps (8), written by the
  // shards that hold them and copied into the section's heatmap folder at merge. The CNN's input
  // gradients and forward outputs do not depend on the batch: attributions, heatmaps and
  // output_x are compared exactly.
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("shard-audit-image");
  const std::string config = dir + "/audit.yaml";
  {
    std::ofstream(config) << "models:\n  cnn: " + src("models/fmnist_cnn.onnx") + "\ndatasets:\n  fmnist: {data: " +
                                 src("datasets/demo/fmnist_x.npy") + ", labels: " + src("datasets/demo/fmnist_y.npy") +
                                 "}\nsections:\n  explanations:\n    - {model: cnn, data: fmnist, method: gradient, limit: 12}\n";
  }
  const std::string id = "explanations-cnn-gradient";
  auto whole = test::run_cli("audit --config " + config + " --out " + dir + "/whole --no-pdf -q");
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);
  std::string dirs;
  for (int i = 0; i < 3; ++i) {
    const std::string sd = dir + "/shard-" + std::to_string(i);
    auto r = test::run_cli("audit --config " + config + " --shard " + std::to_string(i) + "/3 --out " + sd + " -q");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(nlohmann::json::parse(test::read_text(sd + "/manifest.json"))["sections"] == nlohmann::json::array({id}));
    dirs += " " + sd;
  }
  CHECK(fs::is_regular_file(dir + "/shard-1/parts/" + id + "-heatmaps/heatmap_4.png"));
  CHECK(!fs::exists(dir + "/shard-2/parts/" + id + "-heatmaps/heatmap_8.png"));  // over max-heatmaps
  const std::string out = dir + "/merged";
  auto merged = test::run_cli("audit --config " + config + " --merge" + dirs + " --out " + out + " --no-pdf -q");
  INFO(merged.output);
  REQUIRE(merged.exit_code == 0);
  CHECK(test::read_text(out + "/sections/" + id + ".npy") == test::read_text(dir + "/whole/sections/" + id + ".npy"));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir + "/whole/sections/" + id + "-heatmaps")) {
    names.push_back(e.path().filename().string());
    CHECK(test::read_text(out + "/sections/" + id + "-heatmaps/" + names.back()) == test::read_text(e.path().string()));
  }
  CHECK(names.size() == 8);
  CHECK(std::distance(fs::directory_iterator(out + "/sections/" + id + "-heatmaps"), fs::directory_iterator{}) == 8);
  auto a = nlohmann::json::parse(without_work_folder(test::read_text(dir + "/whole/sections/" + id + ".json")));
  auto b = nlohmann::json::parse(without_work_folder(test::read_text(out + "/sections/" + id + ".json")));
  REQUIRE(a["samples"].size() == 12);
  REQUIRE(b["samples"].size() == 12);
  a.erase("timing");
  b.erase("timing");
  CHECK(a == b);
  CHECK(b["heatmaps"].size() == 8);
}

#ifdef MLAUDIT_TEST_PRIVACY
namespace {

// The overfit MLP of the privacy tests, 120 members and 120 non-members, every attack; --batch 16
// makes label-only's DeepFool blocks (which a shard runs whole) smaller than most slices.
std::string privacy_overfit(const std::string& options = "--attacks loss,confidence,entropy,lira,label-only") {
  const std::string d = src("datasets/privacy/overfit_");
  return "privacy --model " + src("models/privacy/overfit_mlp.onnx") + " --members " + d + "members_x.npy --member-labels " + d +
         "members_y.npy --non-members " + d + "nonmembers_x.npy --non-member-labels " + d + "nonmembers_y.npy --reference-models " +
         src("models/privacy/overfit_refs") + " --limit 120 --batch 16 --threads 1 " + options;
}

}  // namespace

TEST_CASE("shard: privacy parts merge into the whole run (every attack)", "[cli][shard][privacy]") {
  // Items are the members then the non-members; shards of 2, 3 and 7 cut across the two sets.
  for (int n : {1, 2, 3, 7}) expect_sharded_equal("privacy", privacy_overfit(), n);
  // A conv model: DeepFool's bits depend on the samples sharing its block, so a shard runs the
  // whole run's blocks (--batch 8) that hold its samples; the distances are then exact.
  const std::string cnn = "privacy --model " + src("models/fmnist_cnn.onnx") + " --members " + src("datasets/demo/fmnist_train_x.npy") +
                          " --member-labels " + src("datasets/demo/fmnist_train_y.npy") + " --non-members " +
                          src("datasets/demo/fmnist_x.npy") + " --non-member-labels " + src("datasets/demo/fmnist_y.npy") +
                          " --attacks loss,entropy,label-only --limit 30 --batch 8 --threads 1";
  for (int n : {2, 7}) expect_sharded_equal("privacy-cnn", cnn, n);
  // One DeepFool step leaves most boundaries unreached: +inf distances travel as "inf".
  expect_sharded_equal("privacy-inf", privacy_overfit("--attacks label-only --label-only-steps 1"), 3);
  // The part: per-sample records, index global over members then non-members, no metrics.
  const std::string dir = test::temp_dir("shard-privacy-part");
  REQUIRE(test::run_cli(privacy_overfit() + " -q --shard 1/3 --out " + dir + "/p.json").exit_code == 0);
  const auto j = nlohmann::json::parse(test::read_text(dir + "/p.json"));
  REQUIRE(j["samples"].size() == 80);
  CHECK(j["samples"][0]["index"] == 80);
  CHECK(j["samples"][39]["member"] == true);
  CHECK(j["samples"][40]["index"] == 120);
  CHECK(j["samples"][40]["member"] == false);
  CHECK(j["samples"][40]["row"] == 0);
  CHECK(j["samples"][0]["scores"].size() == 5);
  CHECK(j["attacks"][0] == nlohmann::json{{"name", "loss"}});
  CHECK(j["shard"]["run"]["sha256"].contains("reference_model_3"));
  REQUIRE(test::run_cli(privacy_overfit("--attacks label-only --label-only-steps 1") + " -q --shard 0/3 --out " + dir + "/inf.json").exit_code == 0);
  CHECK(test::read_text(dir + "/inf.json").find("\"label-only\": \"inf\"") != std::string::npos);
}

TEST_CASE("shard: privacy refuses bad shards, merge refuses other runs' privacy parts", "[cli][shard][privacy]") {
  const std::string dir = test::temp_dir("shard-privacy-refuse");
  const std::string cmd = privacy_overfit("--attacks loss,lira");
  auto part = [&](const std::string& command, const std::string& name, const std::string& shard) {
    return write_part(dir, command, name, shard);
  };
  const std::string p0 = part(cmd, "p0", "0/3"), p1 = part(cmd, "p1", "1/3"), p2 = part(cmd, "p2", "2/3");
  const std::string out = " --out " + dir + "/m.json";
  expect_refused(test::run_cli("merge " + p0 + " " + p2 + out), "1 of 3 shards missing: 1");
  expect_refused(test::run_cli("merge " + p0 + " " + p1 + " " + p1 + " " + p2 + out), "shard 1/3 given twice");
  const std::string attacks = part(privacy_overfit("--attacks lira,loss"), "attacks", "1/3");
  expect_refused(test::run_cli("merge " + p0 + " " + attacks + " " + p2 + out), "option --attacks differs (\"loss,lira\" and \"lira,loss\")");
  // other reference models: a folder with two of the four
  namespace fs = std::filesystem;
  fs::create_directories(dir + "/refs");
  for (const char* f : {"ref_0.onnx", "ref_1.onnx"})
    fs::copy_file(src(std::string("models/privacy/overfit_refs/") + f), dir + "/refs/" + f, fs::copy_options::overwrite_existing);
  std::string two_refs = cmd;
  two_refs.replace(two_refs.find(src("models/privacy/overfit_refs")), src("models/privacy/overfit_refs").size(), dir + "/refs");
  const std::string refs = part(two_refs, "refs", "1/3");
  expect_refused(test::run_cli("merge " + p0 + " " + refs + " " + p2 + out), "only some parts read a reference_model_2 file");
  const std::string c1 = part(certify, "c1", "1/3");
  expect_refused(test::run_cli("merge " + p0 + " " + c1 + " " + p2 + out), "parts of different commands (privacy and certify)");
  CHECK(!fs::exists(dir + "/m.json"));
  // 240 samples (120 members, 120 non-members): at most 240 shards
  auto many = test::run_cli(cmd + " --shard 0/241 --out " + dir + "/x.json");
  CHECK(many.exit_code == 2);
  CHECK(many.output.find("privacy: --shard 0/241: 241 shards of 240 samples would leave a shard empty: use at most 240") != std::string::npos);
  auto bad = test::run_cli(cmd + " --shard 1 --out " + dir + "/x.json");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("--shard '1': expected I/N") != std::string::npos);
  CHECK(!fs::exists(dir + "/x.json"));
  // the parts given in any order merge
  auto ok = test::run_cli("merge -q " + p2 + " " + p0 + " " + p1 + out);
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
}
#endif  // MLAUDIT_TEST_PRIVACY

#ifdef MLAUDIT_TEST_EXPLAIN
TEST_CASE("shard: explain parts merge into the whole run, attributions joined byte for byte", "[cli][shard][explain]") {
  // Integrated gradients (completeness check), SmoothGrad (one noise stream per global row),
  // KernelSHAP (coalitions sampled per global row: 60 of the 126 coalitions of 7 features) and
  // LIME (perturbations per global row).
  for (int n : {1, 2, 3, 7}) {
    expect_sharded_equal("explain-ig", explain_credit("--method integrated-gradients --steps 16 --limit 21"), n, true);
    expect_sharded_equal("explain-sg", explain_credit("--method smoothgrad --nsamples 8 --limit 21 --seed 4"), n, true);
    expect_sharded_equal("explain-ks", explain_credit("--method kernel-shap --nsamples 60 --limit 14" + credit_background), n, true);
  }
  for (int n : {2, 3}) expect_sharded_equal("explain-lime", explain_credit("--method lime --nsamples 200 --limit 9" + credit_background), n, true);
}

TEST_CASE("shard: explain on an image model merges byte for byte, forward-pass methods included", "[cli][shard][explain]") {
  // The CNN's forward outputs do not depend on the batch (row-invariant Gemm, engine/src/cpu/
  // row_gemm.h), so the methods built on forward passes over several rows - occlusion's variants,
  // KernelSHAP's shared batches, DeepLIFT's [x; baseline] pass - and every output_x merge into
  // exactly one process's report. Before, these differed in the last bits.
  // (30 rows: the smallest where the previous build's merges differed for all three methods.)
  const std::string cnn = "explain --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy");
  for (int n : {3, 7}) {
    expect_sharded_equal("explain-cnn-occlusion", cnn + " --method occlusion --window 1,7,7 --limit 30", n, true);
    expect_sharded_equal("explain-cnn-ks", cnn + " --method kernel-shap --nsamples 64 --limit 30 --background " +
                                               src("datasets/demo/fmnist_train_x.npy"), n, true);
    expect_sharded_equal("explain-cnn-deeplift", cnn + " --method deeplift --limit 14", n, true);
  }
}

TEST_CASE("shard: explain's randomization and stability checks and its image ranking and heatmaps merge", "[cli][shard][explain]") {
  // The checks' per-row values (rank correlations under the randomized model, max-sensitivity
  // under perturbations drawn per global row) concatenated, flagged rows global (7 of 14 rows
  // over 0.9, from every shard), means recomputed.
  for (int n : {2, 3, 7})
    expect_sharded_equal("explain-checks",
                         explain_credit("--method smoothgrad --nsamples 6 --limit 14 --check-stability --stability-samples 4 "
                                        "--check-randomization --randomization-threshold 0.9"),
                         n, true);
  // Images: the global ranking is the top --top-k of the mean |attribution| over all rows (from
  // the parts' exact per-pixel sums), heatmaps are named by global row. The CNN's input
  // gradients and forward outputs do not depend on the batch: everything is compared exactly.
  const std::string dir = test::temp_dir("shard-explain-image");
  const std::string cnn = "explain --model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") +
                          " --method gradient --limit 9 --top-k 5 --max-heatmaps 5 -q";
  REQUIRE(test::run_cli(cnn + " --out " + dir + "/whole.json --attributions " + dir + "/whole.npy --heatmap-dir " + dir + "/w").exit_code == 0);
  std::string parts;
  for (int i = 0; i < 4; ++i) {
    const std::string part = dir + "/p" + std::to_string(i) + ".json";
    auto r = test::run_cli(cnn + " --shard " + std::to_string(i) + "/4 --out " + part + " --attributions " + dir + "/p" +
                           std::to_string(i) + ".npy --heatmap-dir " + dir + "/p");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    parts += " " + part;
  }
  auto m = test::run_cli("merge -q" + parts + " --out " + dir + "/merged.json --attributions " + dir + "/merged.npy");
  INFO(m.output);
  REQUIRE(m.exit_code == 0);
  CHECK(test::read_text(dir + "/merged.npy") == test::read_text(dir + "/whole.npy"));
  auto whole = nlohmann::json::parse(test::read_text(dir + "/whole.json"));
  auto merged = nlohmann::json::parse(test::read_text(dir + "/merged.json"));
  CHECK(merged["global_ranking"] == whole["global_ranking"]);
  CHECK(merged["global_ranking"].size() == 5);
  CHECK(merged["rows"] == 9);
  CHECK(merged["input_shape"] == whole["input_shape"]);
  REQUIRE(merged["samples"].size() == 9);
  for (size_t i = 0; i < 9; ++i) {
    auto& a = whole["samples"][i];
    auto& b = merged["samples"][i];
    CHECK(b["index"] == int(i));
    CHECK(a == b);
  }
  REQUIRE(merged["heatmaps"].size() == 5);
  for (int i = 0; i < 5; ++i) {
    const std::string name = "/heatmap_" + std::to_string(i) + ".png";
    CHECK(merged["heatmaps"][i] == dir + "/p" + name);
    CHECK(test::read_text(dir + "/p" + name) == test::read_text(dir + "/w" + name));
  }
  CHECK_FALSE(std::filesystem::exists(dir + "/p/heatmap_5.png"));
  for (auto* j : {&whole, &merged})
    for (const char* key : {"samples", "heatmaps", "timing", "attributions_file"}) j->erase(key);
  CHECK(merged == whole);
}

TEST_CASE("shard: explain refuses permutation, merge refuses missing, repeated and other runs' explain parts", "[cli][shard][explain]") {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("shard-explain-refuse");
  const std::string sg = explain_credit("--method smoothgrad --nsamples 4 --limit 12");
  auto part = [&](const std::string& command, const std::string& name, const std::string& shard, bool npy = true) {
    return write_part(dir, command, name, shard, npy);
  };
  const std::string p0 = part(sg, "e0", "0/3"), p1 = part(sg, "e1", "1/3"), p2 = part(sg, "e2", "2/3");
  const std::string out = " --out " + dir + "/m.json";
  expect_refused(test::run_cli("merge " + p0 + " " + p2 + out), "1 of 3 shards missing: 1");
  expect_refused(test::run_cli("merge " + p0 + " " + p1 + " " + p1 + " " + p2 + out), "shard 1/3 given twice");
  const std::string seeded = part(sg + " --seed 1", "seed", "1/3");
  expect_refused(test::run_cli("merge " + p0 + " " + seeded + " " + p2 + out), "option --seed differs (0 and 1)");
  const std::string other_method = part(explain_credit("--method gradient --limit 12"), "gradient", "1/3");
  expect_refused(test::run_cli("merge " + p0 + " " + other_method + " " + p2 + out), "option --method differs");
  const std::string c0 = part(certify, "c0", "0/3", false);
  expect_refused(test::run_cli("merge " + p0 + " " + c0 + out), "parts of different commands (explain and certify)");
  CHECK(!fs::exists(dir + "/m.json"));
  // --attributions: a part run without it, then parts moved away from where their arrays were
  // written (found beside the part), then one array missing.
  const std::string bare = part(sg, "bare", "1/3", false);
  expect_refused(test::run_cli("merge " + p0 + " " + bare + " " + p2 + out + " --attributions " + dir + "/m.npy"),
                 "was run without --attributions");
  expect_refused(test::run_cli("merge " + c0 + out + " --attributions " + dir + "/m.npy"), "only explain parts carry attributions");
  fs::create_directories(dir + "/moved");
  for (const char* f : {"e0.json", "e1.json", "e2.json", "e0.npy", "e1.npy", "e2.npy"})
    fs::rename(dir + "/" + f, dir + "/moved/" + f);
  const std::string moved = " " + dir + "/moved/e0.json " + dir + "/moved/e1.json " + dir + "/moved/e2.json";
  auto ok = test::run_cli("merge -q" + moved + out + " --attributions " + dir + "/m.npy");
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
  auto whole = test::run_cli(sg + " -q --out " + dir + "/w.json --attributions " + dir + "/w.npy");
  REQUIRE(whole.exit_code == 0);
  CHECK(test::read_text(dir + "/m.npy") == test::read_text(dir + "/w.npy"));
  fs::remove(dir + "/m.json");
  fs::copy_file(dir + "/moved/e2.npy", dir + "/moved/e1.npy", fs::copy_options::overwrite_existing);  // another shard's rows
  expect_refused(test::run_cli("merge" + moved + out + " --attributions " + dir + "/m2.npy"),
                 "the attributions of " + dir + "/moved/e1.json are missing: neither " + dir + "/e1.npy nor " + dir +
                     "/moved/e1.npy is the file its shard wrote");
  CHECK(!fs::exists(dir + "/m.json"));
  CHECK(!fs::exists(dir + "/m2.npy"));
  // explain itself: permutation importance is one result over every row; a part needs --out.
  auto perm = test::run_cli(explain_credit("--method permutation --shard 0/2 --out " + dir + "/x.json"));
  CHECK(perm.exit_code == 2);
  CHECK(perm.output.find("--method permutation is global over the data set") != std::string::npos);
  auto no_out = test::run_cli(sg + " --shard 0/2 --attributions " + dir + "/x.npy");
  CHECK(no_out.exit_code == 2);
  CHECK(no_out.output.find("--shard writes a part for 'mlaudit merge': give --out PART.json") != std::string::npos);
  CHECK(!fs::exists(dir + "/x.json"));
}
TEST_CASE("shard: a file-valued option is the run's by content, not by path", "[cli][shard][explain]") {
  // --features FILE: shards reading copies at other paths (an audit's per-process work folder)
  // are one run; a file with other content is another run.
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("shard-file-option");
  const std::string copy = dir + "/features-copy.txt", other = dir + "/features-other.txt";
  fs::copy_file(src("datasets/credit/features.txt"), copy);
  {
    std::ofstream(other) << test::read_text(src("datasets/credit/features.txt")) << "\n";
  }
  const std::string options = " --method integrated-gradients --steps 16 --limit 9";
  auto with = [&](const std::string& features) {
    return "explain" + credit() + " --features " + features + options;
  };
  const std::string p0 = write_part(dir, with(src("datasets/credit/features.txt")), "p0", "0/2");
  const std::string p1 = write_part(dir, with(copy), "p1", "1/2");
  const std::string q1 = write_part(dir, with(other), "q1", "1/2");
  auto ok = test::run_cli("merge -q " + p0 + " " + p1 + " --out " + dir + "/m.json");
  INFO(ok.output);
  CHECK(ok.exit_code == 0);
  CHECK(nlohmann::json::parse(test::read_text(p0))["shard"]["run"]["options"]["features"].contains("sha256"));
  expect_refused(test::run_cli("merge " + p0 + " " + q1 + " --out " + dir + "/n.json"), "option --features differs");
}

#endif  // MLAUDIT_TEST_EXPLAIN
