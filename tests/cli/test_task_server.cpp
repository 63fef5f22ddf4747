// The persistent child that runs verify --benchmark's tasks (cli/task_server.h): one process for
// many tasks, the hard time limit still held, and a split request relayed to the running query.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "task_server.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using mlaudit::cli::TaskServer;

namespace {
std::string src(const std::string& rel) { return test::source_path(rel); }
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

TEST_CASE("task server: many tasks in one child, each exit code the command's", "[cli][task_server]") {
  TaskServer server(MLAUDIT_EXE);
  CHECK(server.run({"--version"}, 30) == 0);
  CHECK(server.run({"--quiet", "verify", "--model", "missing.onnx", "--vnnlib", "missing.vnnlib"}, 30) == 2);
  CHECK(server.run({"no-such-command"}, 30) == 2);
  CHECK(server.run({"--version"}, 30) == 0);
  CHECK(server.starts() == 1);  // one process start for all four
}

TEST_CASE("task server: a task past its limit is killed and the next task gets a fresh child", "[cli][task_server]") {
  TaskServer server(MLAUDIT_EXE);
  const std::string dir = test::temp_dir("task-server");
  // certify at n = 10^7 noise samples: minutes of work, far past the 0.5 s limit.
  const auto t0 = std::chrono::steady_clock::now();
  const int code = server.run({"--quiet", "--threads", "1", "certify", "--model", src("models/fmnist_cnn.onnx"), "--data",
                               src("datasets/demo/fmnist_x.npy"), "--labels", src("datasets/demo/fmnist_y.npy"),
                               "--sigma", "0.25", "--n", "10000000", "--limit", "1", "--out", dir + "/c.json"},
                              0.5);
  CHECK(code == TaskServer::kKilled);
  CHECK(seconds_since(t0) < 5);  // killed at the limit, not when the task ended
  CHECK_FALSE(fs::exists(dir + "/c.json"));
  CHECK(server.run({"--version"}, 30) == 0);
  CHECK(server.starts() == 2);
  fs::remove_all(dir);
}

TEST_CASE("task server: a split request reaches the running query, which hands out its branches at once",
          "[cli][task_server][split]") {
  const std::string acas = test::shared_dataset("vnncomp2022/acasxu");
  if (!fs::exists(acas + "/expected.csv")) {
    WARN("ACAS Xu data absent");
    return;
  }
  const std::string dir = test::temp_dir("task-server-split");
  std::vector<std::string> args{"--quiet", "--threads", "2", "verify", "--model",
                                acas + "/onnx/ACASXU_run2a_3_3_batch_2000.onnx",  // unsat, about 12 s whole
                                "--vnnlib", acas + "/vnnlib/prop_2.vnnlib", "--timeout", "100",
                                "--result", dir + "/r.txt", "--split-after", "1000", "--branches-out", dir + "/b.json"};
  TaskServer server(MLAUDIT_EXE);
  REQUIRE(server.run({"--version"}, 30) == 0);  // the child is up
  auto t0 = std::chrono::steady_clock::now();
  server.set_split_poll([&] { return seconds_since(t0) > 0.3; });
  CHECK(server.run(args, 100) == 0);
  const double asked = seconds_since(t0);
  INFO("answered after " << asked << " s");
  CHECK(asked < 3);  // split at about 0.3 s (+ the expansion), not after S = 1000 s or 12 s of search
  std::ifstream r(dir + "/r.txt");
  std::string verdict;
  std::getline(r, verdict);
  CHECK(verdict == "unknown");
  const auto b = nlohmann::json::parse(test::read_text(dir + "/b.json"));
  CHECK(b["schema"] == "mlaudit.branches/1");
  CHECK(b["branches"].size() >= 64);  // --split-branches 256 by default, a quarter on demand
  // The request belonged to that task: the next one runs to its end (unsat), not split at once.
  server.set_split_poll({});
  std::vector<std::string> quick{"--quiet", "--threads", "2", "verify", "--model", acas + "/onnx/ACASXU_run2a_1_1_batch_2000.onnx",
                                 "--vnnlib", acas + "/vnnlib/prop_1.vnnlib", "--timeout", "100", "--result", dir + "/r2.txt",
                                 "--split-after", "1000", "--branches-out", dir + "/b2.json"};
  CHECK(server.run(quick, 100) == 0);
  std::ifstream r2(dir + "/r2.txt");
  std::getline(r2, verdict);
  CHECK(verdict == "unsat");
  CHECK_FALSE(fs::exists(dir + "/b2.json"));
  CHECK(server.starts() == 1);
  fs::remove_all(dir);
}
