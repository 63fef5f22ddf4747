// `mpirun -n K mlaudit --mpi <command>` (docs/scale-out.md) on loopback: the one report rank 0
// writes equals the single-process report but for the timings (attack, certify, corrupt,
// explain, privacy, verify --data, verify --benchmark); a rank that dies leaves the chunks not done named on
// stderr and the finished parts on disk, or, under mpirun --enable-recovery, has its chunk rerun
// on another rank; bad command lines are refused before any work.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "shard_compare.h"
#include "test_util.h"

using namespace mlaudit;
namespace fs = std::filesystem;

namespace {

std::string src(const std::string& rel) { return test::source_path(rel); }

// mpirun as root in a container: allowed explicitly; shared memory and TCP on loopback only.
// Each mpirun gets its own TMPDIR: Open MPI keeps its session directory under
// $TMPDIR/ompi.<host>.<uid>, and two mpiruns of tests that ctest -j runs side by side raced on
// it (one removed the shared folder while the other created its pid folder in it: "A call to
// mkdir was unable to create the desired directory", orte_init failed).
test::CommandResult mpirun(int ranks, const std::string& args, const std::string& env = "", const std::string& flags = "") {
  const std::string session = test::temp_dir("ompi");
  const std::string cmd = "TMPDIR=" + session + " OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp "
                          "OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo " +
                          env + " " MLAUDIT_MPIEXEC " --oversubscribe " + flags + " -n " + std::to_string(ranks) + " " + test::mlaudit_exe() +
                          " " + args + " 2>&1";
  test::CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::error_code ec;
  fs::remove_all(session, ec);
  return r;
}

std::string credit() {
  return " --model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/demo/credit_x.npy") + " --labels " +
         src("datasets/demo/credit_y.npy");
}

// The command in one process and under `mpirun -n ranks ... --mpi`: equal but for timings.
void expect_mpi_equal(const std::string& tag, const std::string& command, int ranks, const std::string& mpi_options = "") {
  const std::string dir = test::temp_dir("mpi-" + tag);
  auto one = test::run_cli(command + " -q --out " + dir + "/one.json");
  INFO(command << "\n" << one.output);
  REQUIRE(one.exit_code == 0);
  auto r = mpirun(ranks, "--mpi " + mpi_options + " " + command + " --out " + dir + "/mpi.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("MPI workers") != std::string::npos);
  const std::string a = test::read_text(dir + "/one.json"), b = test::read_text(dir + "/mpi.json");
  CHECK(test::untimed(nlohmann::json::parse(a)) == test::untimed(nlohmann::json::parse(b)));
  CHECK(test::untimed_lines(a) == test::untimed_lines(b));
  CHECK_FALSE(fs::exists(dir + "/mpi.json.parts"));  // removed once merged
  fs::remove_all(dir);
}

std::string benchmark_dir() {
  const std::string dir = test::temp_dir("mpi-benchmark-src");
  fs::create_directories(dir + "/onnx");
  fs::create_directories(dir + "/vnnlib");
  for (const char* f : {"domain_sat.vnnlib", "domain_unsat.vnnlib"})
    fs::copy_file(src(std::string("tests/fixtures/verify/") + f), dir + "/vnnlib/" + f);
  fs::copy_file(src("tests/fixtures/verify/domain_mlp.onnx"), dir + "/onnx/domain_mlp.onnx");
  std::ofstream f(dir + "/instances.csv");
  for (int i = 0; i < 7; ++i) f << "onnx/domain_mlp.onnx,vnnlib/domain_" << (i % 2 ? "unsat" : "sat") << ".vnnlib,30\n";
  std::ofstream e(dir + "/expected.csv");
  e << "onnx,vnnlib,timeout_s,expected\ndomain_mlp.onnx,domain_sat.vnnlib,30,sat\ndomain_mlp.onnx,domain_unsat.vnnlib,30,unsat\n";
  return dir;
}

const std::string pgd = "attack" + credit() + " --attack pgd --eps 0.2,1 --clip-min -1000 --clip-max 1000 --limit 21";
const std::string certify = "certify" + credit() + " --sigma 0.5 --n0 20 --n 500 --seed 5 --radii 0,0.1,0.25,0.5 --limit 14";

}  // namespace

TEST_CASE("mpi: attack, certify and corrupt under mpirun equal one process", "[cli][mpi]") {
  expect_mpi_equal("pgd", pgd, 3);
  expect_mpi_equal("pgd-chunks", pgd, 3, "--mpi-chunks 21");  // one sample per chunk
  expect_mpi_equal("certify", certify, 4);
  expect_mpi_equal("corrupt", "corrupt" + credit() + " --severities 1,5 --limit 40", 3);
}

#ifdef MLAUDIT_TEST_EXPLAIN
TEST_CASE("mpi: explain under mpirun equals one process, and gates on the merged checks", "[cli][mpi][explain]") {
  // SmoothGrad's noise and the stability perturbations are drawn per global row; the credit MLP's
  // forward is batch-independent, so every chunk computes exactly what one process computes.
  const std::string explain = "explain" + credit() + " --method smoothgrad --nsamples 8 --limit 21 --check-stability "
                              "--stability-samples 3 --check-randomization";
  expect_mpi_equal("explain", explain, 3);
  // --gate applies to the merged report: two left-Riemann steps cannot integrate the MLP's path,
  // so some chunk's rows fail the completeness check and the run exits 1, report written.
  const std::string dir = test::temp_dir("mpi-explain-gate");
  const std::string ig = "explain" + credit() + " --method integrated-gradients --rule riemann_left --steps 2 --limit 12 --gate";
  auto one = test::run_cli(ig + " -q --out " + dir + "/one.json");
  REQUIRE(one.exit_code == 1);
  auto r = mpirun(3, "--mpi " + ig + " --out " + dir + "/mpi.json");
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("mlaudit: warning: IG completeness gap") != std::string::npos);
  CHECK(test::untimed(nlohmann::json::parse(test::read_text(dir + "/one.json"))) ==
        test::untimed(nlohmann::json::parse(test::read_text(dir + "/mpi.json"))));
  fs::remove_all(dir);
}
#endif

#ifdef MLAUDIT_TEST_PRIVACY
TEST_CASE("mpi: privacy under mpirun equals one process", "[cli][mpi][privacy]") {
  // Every attack on the overfit MLP; chunks cut across members and non-members, label-only's
  // DeepFool runs the whole run's blocks of --batch 16 that hold a chunk's samples.
  const std::string d = src("datasets/privacy/overfit_");
  const std::string privacy = "privacy --model " + src("models/privacy/overfit_mlp.onnx") + " --members " + d +
                              "members_x.npy --member-labels " + d + "members_y.npy --non-members " + d +
                              "nonmembers_x.npy --non-member-labels " + d + "nonmembers_y.npy --reference-models " +
                              src("models/privacy/overfit_refs") +
                              " --attacks loss,confidence,entropy,lira,label-only --limit 60 --batch 16 --threads 1";
  expect_mpi_equal("privacy", privacy, 3);
}
#endif

TEST_CASE("mpi: verify --data and verify --benchmark under mpirun equal one process", "[cli][mpi]") {
  const std::string trees = " --model " + src("tests/fixtures/trees/xgb_binary.onnx") + " --data " +
                            src("tests/fixtures/trees/credit_x.npy") + " --labels " + src("tests/fixtures/trees/credit_y.npy");
  expect_mpi_equal("verify", "verify" + trees + " --eps 0.1,0.5 --clip-min=-inf --clip-max=inf --limit 14", 3);
  const std::string bench = benchmark_dir();
  expect_mpi_equal("benchmark", "verify --benchmark " + bench, 3);  // one instance per chunk
  fs::remove_all(bench);
}

TEST_CASE("mpi: verify --benchmark --split-after hands a split instance's pieces to idle ranks, same verdicts",
          "[cli][mpi][split]") {
  const std::string acas = test::shared_dataset("vnncomp2022/acasxu");
  if (!fs::exists(acas + "/expected.csv")) {
    WARN("ACAS Xu data absent");
    return;
  }
  // Three ACAS Xu instances: 1_1 property 6 (unsat, about 1 s: it splits), 1_3 property 2
  // (sat), 1_1 property 1 (unsat, quick), and the fixture MLP's sat/unsat pair.
  const std::string dir = benchmark_dir();
  for (const char* o : {"ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_1_3_batch_2000.onnx"})
    fs::copy_file(acas + "/onnx/" + o, dir + "/onnx/" + o);
  for (const char* v : {"prop_6.vnnlib", "prop_2.vnnlib", "prop_1.vnnlib"}) fs::copy_file(acas + "/vnnlib/" + v, dir + "/vnnlib/" + v);
  {
    std::ofstream f(dir + "/instances.csv", std::ios::app);
    f << "onnx/ACASXU_run2a_1_1_batch_2000.onnx,vnnlib/prop_6.vnnlib,116\n"
         "onnx/ACASXU_run2a_1_3_batch_2000.onnx,vnnlib/prop_2.vnnlib,116\n"
         "onnx/ACASXU_run2a_1_1_batch_2000.onnx,vnnlib/prop_1.vnnlib,116\n";
    std::ofstream e(dir + "/expected.csv", std::ios::app);
    e << "ACASXU_run2a_1_1_batch_2000.onnx,prop_6.vnnlib,116,unsat\nACASXU_run2a_1_3_batch_2000.onnx,prop_2.vnnlib,116,sat\n"
         "ACASXU_run2a_1_1_batch_2000.onnx,prop_1.vnnlib,116,unsat\n";
  }
  const std::string out = test::temp_dir("mpi-split");
  auto one = test::run_cli("--threads 1 verify --benchmark " + dir + " -q --out " + out + "/one.json");
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  auto r = mpirun(4, "--threads 1 --mpi verify --benchmark " + dir + " --split-after 0.1 --out " + out + "/mpi.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto a = nlohmann::json::parse(test::read_text(out + "/one.json"));
  const auto b = nlohmann::json::parse(test::read_text(out + "/mpi.json"));
  REQUIRE(a["instances"].size() == 10);
  REQUIRE(b["instances"].size() == 10);
  int split = 0;
  for (size_t i = 0; i < 10; ++i) {
    INFO(b["instances"][i].dump());
    CHECK(b["instances"][i]["instance"] == a["instances"][i]["instance"]);
    CHECK(b["instances"][i]["result"] == a["instances"][i]["result"]);
    CHECK(b["instances"][i]["correct"] == a["instances"][i]["correct"]);
    CHECK_FALSE(b["instances"][i].contains("open_branches"));
    if (b["instances"][i]["split"]["tasks"].get<int64_t>() > 1) ++split;
  }
  CHECK(split >= 1);  // property 6 at least was divided among the ranks
  CHECK(test::untimed(b["summary"]) == test::untimed(a["summary"]));
  CHECK_FALSE(fs::exists(out + "/mpi.json.parts"));
  // Split on demand only (S = 1000 s never comes): once the queue is empty, rank 0 asks the
  // longest-running task to split for the waiting ranks, and asks its pieces again.
  auto d = mpirun(4, "--threads 1 --mpi verify --benchmark " + dir + " --split-after 1000 --out " + out + "/demand.json");
  INFO(d.output);
  REQUIRE(d.exit_code == 0);
  const auto c = nlohmann::json::parse(test::read_text(out + "/demand.json"));
  REQUIRE(c["instances"].size() == 10);
  int demand_split = 0;
  for (size_t i = 0; i < 10; ++i) {
    INFO(c["instances"][i].dump());
    CHECK(c["instances"][i]["result"] == a["instances"][i]["result"]);
    CHECK(c["instances"][i]["correct"] == a["instances"][i]["correct"]);
    if (c["instances"][i]["split"]["tasks"].get<int64_t>() > 1) ++demand_split;
  }
  CHECK(demand_split >= 1);
  const auto at = d.output.find(" split on demand)");
  REQUIRE(at != std::string::npos);
  const auto from = d.output.rfind(", ", at);
  REQUIRE(from != std::string::npos);
  CHECK(std::stoi(d.output.substr(from + 2, at - from - 2)) >= 1);
  fs::remove_all(out);
  fs::remove_all(dir);
}

TEST_CASE("mpi: a rank that dies leaves the chunks not done named and the finished parts kept", "[cli][mpi]") {
  const std::string dir = test::temp_dir("mpi-kill");
  const std::string out = dir + "/c.json";
  // One worker (rank 1), which dies on its first chunk: no other rank can run a backup copy, and
  // plain mpirun stops the job, so rank 0 gets SIGTERM and reports.
  auto r = mpirun(2, "--mpi --mpi-chunks 6 " + certify + " --out " + out, "MLAUDIT_MPI_TEST_KILL_RANK=1");
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK_FALSE(fs::exists(out));  // no report from a run with chunks missing
  CHECK(r.output.find("6 of 6 chunks not done: 0, 1, 2, 3, 4, 5 (running: chunk 0 on rank 1)") != std::string::npos);
  CHECK(r.output.find("with --shard c/6") != std::string::npos);
  CHECK(fs::is_directory(out + ".parts"));
  fs::remove_all(dir);
}

TEST_CASE("mpi: under mpirun --enable-recovery a dead rank's chunk is rerun elsewhere and the report is complete",
          "[cli][mpi]") {
  const std::string dir = test::temp_dir("mpi-recover");
  auto one = test::run_cli(certify + " -q --out " + dir + "/one.json");
  REQUIRE(one.exit_code == 0);
  // Rank 2 dies on its first chunk; with recovery the job goes on, rank 1 runs a backup copy.
  auto r = mpirun(3, "--mpi --mpi-chunks 6 " + certify + " --out " + dir + "/c.json", "MLAUDIT_MPI_TEST_KILL_RANK=2",
                  "--enable-recovery");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("rank 2 never answered (lost)") != std::string::npos);
  REQUIRE(fs::exists(dir + "/c.json"));
  CHECK(test::untimed(nlohmann::json::parse(test::read_text(dir + "/one.json"))) ==
        test::untimed(nlohmann::json::parse(test::read_text(dir + "/c.json"))));
  CHECK_FALSE(fs::exists(dir + "/c.json.parts"));
  fs::remove_all(dir);
}

TEST_CASE("mpi: bad command lines are refused before any work, once", "[cli][mpi]") {
  const std::string dir = test::temp_dir("mpi-refuse");
  auto expect = [&](const std::string& args, const std::string& phrase) {
    auto r = mpirun(3, args);
    INFO(args << "\n" << r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(phrase) != std::string::npos);
    // rank 0 alone speaks
    size_t count = 0;
    for (size_t p = r.output.find("mlaudit: error:"); p != std::string::npos; p = r.output.find("mlaudit: error:", p + 1)) ++count;
    CHECK(count == 1);
  };
  expect("--mpi " + certify + " --shard 0/2 --out " + dir + "/x.json", "--mpi hands out the shards itself");
  expect("--mpi info --model " + src("models/credit_mlp.onnx"), "--mpi runs commands that loop over items");
  expect("--mpi " + certify + " --radii 0,x --out " + dir + "/x.json", "radii");
  expect("--mpi " + certify, "--mpi needs --out");
#ifdef MLAUDIT_TEST_EXPLAIN
  const std::string explain = "--mpi explain" + credit() + " --limit 6 --out " + dir + "/x.json";
  expect(explain + " --attributions " + dir + "/x.npy", "--attributions is not supported under --mpi");
  expect(explain + " --method permutation",
         "--method permutation is global over the data set");
#endif
  CHECK_FALSE(fs::exists(dir + "/x.json"));
  auto r = test::run_cli("--mpi-chunks 4 " + certify + " --out " + dir + "/x.json");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("--mpi-chunks is used with --mpi only") != std::string::npos);
  fs::remove_all(dir);
}
