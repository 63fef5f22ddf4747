// Fixed cases of the networks' individual-fairness soundness campaign (issue #25;
// docs/dev/reliability.md, "Individual fairness of networks").
//
// tests/fixtures/fairness_campaign/ holds small random ReLU networks (dense, batch-norm folded or
// not, ill-conditioned; the protected feature's first-layer weights scaled by 10^U(-1.5, 1.5); the
// output bias often moved so that the decision boundary crosses the domain), feature domains
// (ranges.csv, 17-digit or 3-decimal bounds), protected attributes with integer levels or explicit
// --protected-values, and per partition the answer of an exact reference written by
// tools/fairness_campaign.py: a MILP over the twin network (two copies sharing the non-protected
// inputs) solved by HiGHS, decided only beyond a margin of 1e-4 x the outputs' magnitude. Each
// case runs through the CLI as a user runs it (`mlaudit verify --fairness`) and must never
// contradict the reference:
//   * the partitions are the reference's grid (the same boxes, in the same order);
//   * no `proved` where the reference has a flip, no `counterexample` where it proves none;
//   * every counterexample pair lies in its partition, differs only in the protected feature, takes
//     two of the protected values, and its decisions differ under the engine's forward pass of the
//     ONNX model (or reach a flip within 1e-6 x the outputs, a float32 near-tie);
//   * LeakyReLU and residual networks (once refused as unsupported) are verified like the others.
// The fixtures are cases the verifier decided completely when they were made, so `unknown` and
// `timeout` fail the test too (a loss of completeness shows here before the campaign's counts).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"
#include "test_util.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string fixture_dir() {
  if (const char* d = std::getenv("MLAUDIT_FAIRNESS_CAMPAIGN_DIR"); d && *d) return d;
  return mlaudit::test::source_path("tests/fixtures/fairness_campaign");
}

size_t argmax(const std::vector<double>& y) { return size_t(std::max_element(y.begin(), y.end()) - y.begin()); }

// Largest t with: y_a[i] >= y_a[k] + t for all k and y_b[j] >= y_b[k] + 1e-6 + t for all k != j, over
// i != j: >= 0 iff the pair is a flip in the verifier's sense (tools/fairness_campaign.py unsafe_rows).
double flip_value(const std::vector<double>& ya, const std::vector<double>& yb) {
  double best = -INFINITY;
  for (size_t i = 0; i < ya.size(); ++i)
    for (size_t j = 0; j < yb.size(); ++j) {
      if (i == j) continue;
      double t = INFINITY;
      for (size_t k = 0; k < ya.size(); ++k) {
        if (k != i) t = std::min(t, ya[i] - ya[k]);
        if (k != j) t = std::min(t, yb[j] - yb[k] - 1e-6);
      }
      best = std::max(best, t);
    }
  return best;
}

}  // namespace

TEST_CASE("fairness campaign: network fairness proofs through the CLI agree with the MILP reference",
          "[verify][fairness][campaign][cli]") {
  std::ifstream in(fixture_dir() + "/cases.json");
  REQUIRE(in.good());
  const json all = json::parse(in);
  const std::string tmp = mlaudit::test::temp_dir("fairness-campaign");
  std::map<std::string, int> counts;
  int checked = 0, pairs_checked = 0;
  for (const auto& c : all["cases"]) {
    const std::string name = c["name"];
    INFO("case " << name << " (" << c["family"].get<std::string>() << ")");
    std::string cmd = "--threads 1";
    for (const auto& a : c["args"]) cmd += " " + mlaudit::test::replace_all(mlaudit::test::replace_all(a.get<std::string>(), "{D}", fixture_dir()), "{T}", tmp);
    auto r = mlaudit::test::run_cli(cmd);
    INFO(r.output);
    if (!c["supported"].get<bool>()) {
      CHECK(r.exit_code == 2);
      CHECK(r.output.find("unsupported op") != std::string::npos);
      CHECK(!fs::exists(tmp + "/" + name + ".json"));
      ++counts["refused"];
      continue;
    }
    REQUIRE(r.exit_code == 0);
    if (c["family"] == "leaky" || c["family"] == "residual") ++counts["leaky_residual_decided"];
    const json j = json::parse(mlaudit::test::read_text(tmp + "/" + name + ".json"));
    const auto& expect = c["partitions"];
    REQUIRE(j["partitions"].size() == expect.size());
    const size_t prot = c["protected"];
    const auto values = c["values"].get<std::vector<double>>();
    for (size_t k = 0; k < expect.size(); ++k) {
      const auto& got = j["partitions"][k];
      const std::string v = got["verdict"], e = expect[k]["expected"];
      INFO("partition " << k << ": " << v << ", reference " << e);
      CHECK(got["lower"] == expect[k]["lower"]);
      CHECK(got["upper"] == expect[k]["upper"]);
      ++counts[v];
      ++checked;
      if (v == "proved") CHECK(e != "sat");
      if (v == "counterexample") CHECK(e != "unsat");
    }
    std::unique_ptr<mlaudit::engine::Session> session;
    auto forward = [&](const std::vector<double>& x) {
      if (!session) session = mlaudit::engine::Session::load(fixture_dir() + "/" + name + ".onnx");
      std::vector<float> xf(x.begin(), x.end());
      return session->forward(mlaudit::engine::Tensor::from_floats({1, int64_t(x.size())}, xf)).to_doubles();
    };
    for (const auto& p : j["counterexample_pairs"]) {
      const size_t k = p["index"];
      INFO("pair of partition " << k << ": " << p.dump());
      auto a = p["input_a"].get<std::vector<double>>(), b = p["input_b"].get<std::vector<double>>();
      REQUIRE(a.size() == b.size());
      REQUIRE(a.size() == c["inputs"].get<size_t>());
      const auto lo = expect[k]["lower"].get<std::vector<double>>(), hi = expect[k]["upper"].get<std::vector<double>>();
      for (size_t f = 0; f < a.size(); ++f) {
        if (f == prot) continue;
        CHECK(a[f] == b[f]);
        CHECK((a[f] >= lo[f] && a[f] <= hi[f]));
      }
      CHECK(a[prot] != b[prot]);
      CHECK(std::count(values.begin(), values.end(), a[prot]) == 1);
      CHECK(std::count(values.begin(), values.end(), b[prot]) == 1);
      const auto ya = forward(a), yb = forward(b);
      double scale = 1e-30;
      for (double y : ya) scale = std::max(scale, std::fabs(y));
      for (double y : yb) scale = std::max(scale, std::fabs(y));
      const bool flip = argmax(ya) != argmax(yb) || flip_value(ya, yb) >= -1e-6 * scale ||
                        flip_value(yb, ya) >= -1e-6 * scale;
      CHECK(flip);
      ++pairs_checked;
    }
  }
  std::string summary;
  for (const auto& [k, n] : counts) summary += k + " " + std::to_string(n) + "; ";
  WARN(checked << " partitions checked, " << pairs_checked << " counterexample pairs re-run: " << summary);
  CHECK(counts["unknown"] + counts["timeout"] == 0);
  CHECK(counts["proved"] >= 50);
  CHECK(counts["counterexample"] >= 50);
  // Every family is supported now (residual since the skip connections, leaky since LeakyReLU =
  // a x + (1 - a) relu(x)): a refusal would show here.
  CHECK(counts["refused"] == 0);
  CHECK(counts["leaky_residual_decided"] >= 8);
  fs::remove_all(tmp);
}
