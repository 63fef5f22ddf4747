// Determinism (issue #25): the same seed gives the same results whatever the thread count,
// the batch size and the run, for every command that samples or iterates. Each case runs a
// command three times (1 thread, 2 threads, 2 threads with another batch size) on small
// inputs and compares the JSON reports with the fields that measure time or name the run's
// own files removed. Seeds are keyed by sample index, never by thread or batch.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/tensor.h"
#include "test_util.h"

using namespace mlaudit;
using nlohmann::json;

namespace {

const std::string kCnn = test::source_path("models/fmnist_cnn.onnx");
const std::string kCredit = test::source_path("models/credit_mlp.onnx");

// Keys whose values legitimately differ between runs: wall/CPU time, throughput, the
// output files' own paths, the thread count and batch size that the test varies.
bool volatile_key(const std::string& k) {
  for (const char* part : {"second", "time", "timing", "duration", "throughput", "per_s", "file", "dir", "path",
                           "threads", "batch", "generated", "started", "finished"})
    if (k.find(part) != std::string::npos) return true;
  return false;
}

json stable(const json& j) {
  if (j.is_object()) {
    json out = json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!volatile_key(it.key())) out[it.key()] = stable(it.value());
    return out;
  }
  if (j.is_array()) {
    json out = json::array();
    for (const auto& e : j) out.push_back(stable(e));
    return out;
  }
  return j;
}

struct Inputs {
  std::string dir, x, y, xn, yn, cx, cy, bg;
};

const Inputs& inputs() {
  static const Inputs in = [] {
    Inputs f;
    f.dir = test::temp_dir("determinism");
    auto x = datasets::read_npy_float(test::source_path("datasets/demo/fmnist_x.npy"));
    auto y = datasets::read_npy_labels(test::source_path("datasets/demo/fmnist_y.npy")).to_int64s();
    f.x = f.dir + "/x.npy", f.y = f.dir + "/y.npy", f.xn = f.dir + "/xn.npy", f.yn = f.dir + "/yn.npy";
    datasets::write_npy(f.x, x.slice_rows(0, 12));
    datasets::write_npy(f.y, engine::Tensor::from_ints({12}, std::vector<int64_t>(y.begin(), y.begin() + 12)));
    datasets::write_npy(f.xn, x.slice_rows(12, 24));
    datasets::write_npy(f.yn, engine::Tensor::from_ints({12}, std::vector<int64_t>(y.begin() + 12, y.begin() + 24)));
    auto cx = datasets::read_npy_float(test::source_path("datasets/demo/credit_x.npy"));
    auto cy = datasets::read_npy_labels(test::source_path("datasets/demo/credit_y.npy")).to_int64s();
    f.cx = f.dir + "/cx.npy", f.cy = f.dir + "/cy.npy";
    datasets::write_npy(f.cx, cx.slice_rows(0, 6));
    datasets::write_npy(f.cy, engine::Tensor::from_ints({6}, std::vector<int64_t>(cy.begin(), cy.begin() + 6)));
    f.bg = test::source_path("datasets/demo/credit_background.npy");
    return f;
  }();
  return in;
}

// Runs `args` ({out} is the report path) at 1 thread, 2 threads, and 2 threads with `batch_flag`
// (another batch size), and checks the three reports agree.
void same_three_ways(const std::string& name, const std::string& args, const std::string& batch_flag) {
  const Inputs& f = inputs();
  std::vector<json> reports;
  const std::vector<std::string> runs = {"--threads 1 ", "--threads 2 ", "--threads 2 "};
  for (size_t k = 0; k < runs.size(); ++k) {
    const std::string out = fmt::format("{}/{}-{}.json", f.dir, name, k);
    std::string a = args;
    a.replace(a.find("{out}"), 5, out);
    auto r = test::run_cli(runs[k] + a + (k == 2 ? " " + batch_flag : "") + " -q");
    INFO(name << " run " << k << ": " << r.output);
    REQUIRE(r.exit_code == 0);
    reports.push_back(stable(json::parse(datasets::read_file(out))));
  }
  INFO(name);
  CHECK(reports[0] == reports[1]);
  CHECK(reports[1] == reports[2]);
}

}  // namespace

TEST_CASE("determinism: attack (PGD random starts, Square's random windows)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("pgd", fmt::format("attack -m {} -d {} -l {} --attack pgd --eps 0.03 --restarts 2 --seed 7 -o {{out}}", kCnn, f.x, f.y),
                  "--batch 5");
  same_three_ways("square",
                  fmt::format("attack -m {} -d {} -l {} --attack square --eps 0.05 --queries 60 --seed 7 -o {{out}}", kCnn, f.x, f.y),
                  "--batch 3");
}

TEST_CASE("determinism: certify (Monte Carlo noise)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("certify",
                  fmt::format("certify -m {} -d {} -l {} --sigma 0.25 --n0 20 --n 200 --seed 3 --limit 4 -o {{out}}", kCnn, f.x, f.y),
                  "--batch 37");
}

TEST_CASE("determinism: corrupt (random corruptions)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("corrupt",
                  fmt::format("corrupt -m {} -d {} -l {} --corruptions gaussian_noise,shot_noise,impulse_noise --severities 1,3 "
                              "--seed 5 -o {{out}}", kCnn, f.x, f.y),
                  "--batch 5");
}

TEST_CASE("determinism: explain (SmoothGrad noise, KernelSHAP coalitions, LIME samples)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("smoothgrad",
                  fmt::format("explain -m {} -d {} --method smoothgrad --nsamples 6 --limit 4 --seed 2 -o {{out}}", kCnn, f.x),
                  "--batch-rows 5");
  same_three_ways("kernel-shap",
                  fmt::format("explain -m {} -d {} --method kernel-shap --background {} --nsamples 100 --seed 2 -o {{out}}", kCredit,
                              f.cx, f.bg),
                  "--batch-rows 7");
  same_three_ways("lime",
                  fmt::format("explain -m {} -d {} --method lime --background {} --nsamples 300 --seed 2 -o {{out}}", kCredit, f.cx,
                              f.bg),
                  "--batch-rows 3");
}

TEST_CASE("determinism: fairness (bootstrap resamples)", "[cli][determinism]") {
  same_three_ways("fairness",
                  fmt::format("fairness --data {} --label-column approved --protected sex --model {} --features @{} "
                              "--bootstrap 200 --seed 4 -o {{out}}",
                              test::source_path("datasets/credit/credit_test.csv"), kCredit,
                              test::source_path("datasets/credit/features.txt")),
                  "--limit 0");
}

TEST_CASE("determinism: privacy (membership scores) and backdoor (STRIP overlays)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("privacy",
                  fmt::format("privacy -m {} --members {} --member-labels {} --non-members {} --non-member-labels {} "
                              "--attacks loss,confidence,entropy,label-only --label-only-steps 5 -o {{out}}",
                              kCnn, f.x, f.y, f.xn, f.yn),
                  "--batch 5");
  same_three_ways("backdoor",
                  fmt::format("backdoor -m {} -d {} --no-neural-cleanse --suspicious {} --strip-overlays 8 --seed 9 -o {{out}}",
                              test::source_path("models/privacy/backdoor_cnn.onnx"),
                              test::source_path("datasets/privacy/backdoor_clean_x.npy"),
                              test::source_path("datasets/privacy/backdoor_triggered_x.npy")),
                  "--limit 0");
}

TEST_CASE("determinism: verify (bound propagation, falsifier seed)", "[cli][determinism]") {
  const Inputs& f = inputs();
  same_three_ways("verify",
                  fmt::format("verify -m {} -d {} -l {} --eps 0.01 --clip-min=-inf --clip-max=inf --limit 3 --seed 1 "
                              "-o {{out}}", kCredit, f.cx, f.cy),
                  "--timeout 30");  // verify has no batch size; a longer budget decides nothing differently here
}
