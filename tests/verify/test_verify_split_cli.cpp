// One ACAS Xu query across processes from the CLI (docs/scale-out.md, "One instance across
// workers"): --split-after/--branches-out hand out the open branches, --branches decides them,
// and verify --benchmark --split-after runs the pieces and reaches the one-process verdicts.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

using mlaudit::test::run_cli;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::string acas(const std::string& rel) { return mlaudit::test::shared_dataset("vnncomp2022/acasxu/" + rel); }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("verify --split-after hands out the open branches and --branches decides them", "[verify][cli][split][acasxu]") {
  if (!fs::exists(acas("expected.csv"))) {
    WARN("ACAS Xu data absent");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("verify-split");
  // 1_1 property 6 (two input boxes, unsat, about 1 s on two threads).
  const std::string q = "--threads 2 verify --model " + acas("onnx/ACASXU_run2a_1_1_batch_2000.onnx") + " --vnnlib " +
                        acas("vnnlib/prop_6.vnnlib") + " --timeout 60";
  auto r = run_cli(q + " --split-after 0.1 --branches-out " + dir + "/b.json --out " + dir + "/v.json --result " + dir + "/r.txt");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(mlaudit::test::read_text(dir + "/r.txt") == "unknown\n");
  const json b = json::parse(mlaudit::test::read_text(dir + "/b.json"));
  const json v = json::parse(mlaudit::test::read_text(dir + "/v.json"));
  CHECK(b["schema"] == "mlaudit.branches/1");
  REQUIRE(b["branches"].size() > 1);
  CHECK(v["open_branches"]["branches"] == b["branches"].size());
  CHECK(contains(v["reason"].get<std::string>(), "open branches handed out"));
  CHECK(b["timeout_s"].get<double>() < 60);
  CHECK(b["inputs"]["model"]["sha256"] == v["inputs"]["model"]["sha256"]);
  // The branches decided elsewhere: unsat (the closed part was proved before the split).
  r = run_cli(q + " --branches " + dir + "/b.json --out " + dir + "/v2.json --result " + dir + "/r2.txt");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(mlaudit::test::read_text(dir + "/r2.txt") == "unsat\n");
  CHECK(json::parse(mlaudit::test::read_text(dir + "/v2.json"))["branches_in"]["branches"] == b["branches"].size());
  // Refusals: branches of another model or a box outside the property, flags without their partner.
  struct Case {
    std::string args, message;
  };
  json grown = b;
  CHECK(b["branches"][0]["falsify"] == true);  // the strong falsification round goes out first
  grown["branches"][1]["upper"][0] = 10.0;
  std::ofstream(dir + "/grown.json") << grown.dump();
  std::ofstream(dir + "/junk.json") << "{\"schema\": 3";
  const std::vector<Case> cases{
      {"--threads 2 verify --model " + acas("onnx/ACASXU_run2a_1_2_batch_2000.onnx") + " --vnnlib " +
           acas("vnnlib/prop_6.vnnlib") + " --branches " + dir + "/b.json --result " + dir + "/x.txt",
       "its branches belong to another model"},
      {"--threads 2 verify --model " + acas("onnx/ACASXU_run2a_1_1_batch_2000.onnx") + " --vnnlib " +
           acas("vnnlib/prop_1.vnnlib") + " --branches " + dir + "/b.json --result " + dir + "/x.txt",
       "its branches belong to another property"},
      {q + " --branches " + dir + "/grown.json --result " + dir + "/x.txt", "open branch 1: input 0: "},
      {q + " --branches " + dir + "/junk.json --result " + dir + "/x.txt", "junk.json: not JSON"},
      {q + " --split-after 0.1 --result " + dir + "/x.txt", "--split-after needs --branches-out FILE"},
      {q + " --branches-out " + dir + "/y.json --result " + dir + "/x.txt", "--branches-out needs --split-after S"},
      {q + " --split-after 0 --branches-out " + dir + "/y.json", "--split-after must be > 0 seconds"},
  };
  for (const auto& c : cases) {
    auto e = run_cli(c.args);
    INFO(c.args << "\n" << e.output);
    CHECK(e.exit_code == 2);
    CHECK(contains(e.output, c.message));
  }
  CHECK_FALSE(fs::exists(dir + "/x.txt"));
  CHECK_FALSE(fs::exists(dir + "/y.json"));
  fs::remove_all(dir);
}

TEST_CASE("verify --benchmark --split-after: the pieces of split instances give the one-process verdicts",
          "[verify][cli][split][benchmark][acasxu]") {
  if (!fs::exists(acas("expected.csv"))) {
    WARN("ACAS Xu data absent");
    return;
  }
  const std::string dir = mlaudit::test::temp_dir("verify-split-bench");
  fs::create_directories(dir + "/onnx");
  fs::create_directories(dir + "/vnnlib");
  const std::vector<std::pair<std::string, std::string>> inst{
      {"ACASXU_run2a_1_1_batch_2000.onnx", "prop_6.vnnlib"},   // unsat, two boxes
      {"ACASXU_run2a_1_3_batch_2000.onnx", "prop_2.vnnlib"},   // sat
      {"ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib"}};  // unsat, quick
  {
    std::ofstream f(dir + "/instances.csv"), e(dir + "/expected.csv");
    e << "onnx,vnnlib,timeout_s,expected\n";
    for (const auto& [o, p] : inst) {
      if (!fs::exists(dir + "/onnx/" + o)) fs::copy_file(acas("onnx/" + o), dir + "/onnx/" + o);
      if (!fs::exists(dir + "/vnnlib/" + p)) fs::copy_file(acas("vnnlib/" + p), dir + "/vnnlib/" + p);
      f << "onnx/" << o << ",vnnlib/" << p << ",116\n";
    }
    e << "ACASXU_run2a_1_1_batch_2000.onnx,prop_6.vnnlib,116,unsat\nACASXU_run2a_1_3_batch_2000.onnx,prop_2.vnnlib,116,sat\n"
         "ACASXU_run2a_1_1_batch_2000.onnx,prop_1.vnnlib,116,unsat\n";
  }
  auto r = run_cli("--threads 2 verify --benchmark " + dir + " --split-after 0.1 --split-pieces 4 --out " + dir + "/s.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "instances 3: solved 3 (sat 1, unsat 2), wrong 0"));
  const json j = json::parse(mlaudit::test::read_text(dir + "/s.json"));
  const json& p6 = j["instances"][0];
  CHECK(p6["result"] == "unsat");
  CHECK(p6["correct"] == true);
  // The split happened and its task tree is whole: the root first, every piece's parent an
  // earlier task that split, at most --split-pieces pieces per split, all answered unsat; the
  // falsification round of each disjunct (handed out as a piece of its own by the task that
  // started the disjunct's search; property 6 has two) at most once.
  const json& tree = p6["split"]["task_tree"];
  REQUIRE(tree.size() >= 2);
  CHECK(p6["split"]["tasks"] == tree.size());
  CHECK(tree[0]["parent"] == -1);
  CHECK(tree[0]["result"] == "split");
  std::map<int64_t, int> children;
  int rounds = 0;
  for (size_t t = 1; t < tree.size(); ++t) {
    const int64_t parent = tree[t]["parent"].get<int64_t>();
    REQUIRE(parent >= 0);
    REQUIRE(parent < int64_t(t));
    CHECK(tree[size_t(parent)]["result"] == "split");
    if (tree[t].value("falsify", false)) {
      ++rounds;
      CHECK(tree[t]["result"] != "sat");
      continue;
    }
    ++children[parent];
    CHECK((tree[t]["result"] == "unsat" || tree[t]["result"] == "split"));
  }
  CHECK(rounds <= 2);
  for (const auto& [parent, n] : children) CHECK(n <= 4);
  int64_t handed = 0;
  for (const auto& t : tree) handed += t["branches_out"].get<int64_t>();
  CHECK(p6["split"]["branches_handed_out"] == handed);
  CHECK(j["instances"][1]["result"] == "sat");
  CHECK(j["instances"][2]["result"] == "unsat");
  // Flags of the split, refused where they do not belong.
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {" --split-pieces 4", "--hand-out, --branches and --split-pieces belong to --split-after S"},
           {" --split-after 0.1 --hand-out", "run one instance: give --shard I/N"},
           {" --split-after 0.1 --split-pieces 0", "--split-pieces must be >= 1"}}) {
    auto e = run_cli("verify --benchmark " + dir + args + " --out " + dir + "/x.json");
    INFO(args << "\n" << e.output);
    CHECK(e.exit_code == 2);
    CHECK(contains(e.output, message));
  }
  CHECK_FALSE(fs::exists(dir + "/x.json"));
  fs::remove_all(dir);
}
