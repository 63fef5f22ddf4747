// mlaudit attack --attack exact-tree: the exact minimal L-inf distance of a tree ensemble, end to
// end, and the decision-based attacks measured against it (they can never beat it).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "json_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;

namespace {
std::string tree_args(const std::string& model, const std::string& data, const std::string& labels, int limit) {
  const std::string t = test::source_path("tests/fixtures/trees/");
  return "--model " + t + model + ".onnx --data " + t + data + ".npy --labels " + t + labels + ".npy --limit " +
         std::to_string(limit) + " --clip-min -1000 --clip-max 1000";
}
}  // namespace

TEST_CASE("robustness: attack --attack exact-tree gives re-checked minimal L-inf points that HopSkipJump never beats",
          "[robustness][cli][exact-tree]") {
  struct Case {
    const char *model, *data, *labels;
  };
  for (const Case& c : {Case{"xgb_binary", "credit_x", "credit_y"}, Case{"sk_rf_binary", "credit_x", "credit_y"},
                        Case{"xgb_multi", "three_x", "three_y"}}) {
    DYNAMIC_SECTION(c.model) {
      auto dir = test::temp_dir(std::string("exact-tree-") + c.model);
      auto r = test::run_cli("attack " + tree_args(c.model, c.data, c.labels, 25) + " --attack exact-tree --norm linf --out " +
                             dir + "/e.json --save-adv " + dir + "/adv.npy");
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      auto e = test::read_json(dir + "/e.json");
      CHECK(e["attack"] == "exact-tree");
      // The adversarial points through the engine: inside the box at the reported distance, label changed.
      engine::Tensor x = datasets::read_npy_float(test::source_path(std::string("tests/fixtures/trees/") + c.data + ".npy"));
      engine::Tensor adv = datasets::read_npy_float(dir + "/adv.npy");
      auto s = engine::Session::load(test::source_path(std::string("tests/fixtures/trees/") + c.model + ".onnx"));
      std::vector<int64_t> pred = engine::argmax_rows(s->forward(adv));
      const int64_t w = adv.dim(1);
      int found = 0;
      for (const auto& p : e["per_sample"]) {
        if (!p["correct"].get<bool>()) continue;
        const int64_t i = p["index"].get<int64_t>();
        REQUIRE(p.contains("status"));
        if (p["status"] != "found") continue;
        ++found;
        double d = 0;
        for (int64_t k = 0; k < w; ++k) d = std::max(d, std::abs(double(adv.f32()[i * w + k]) - double(x.f32()[i * w + k])));
        CHECK(d <= p["minimal_norm"].get<double>() * (1 + 1e-9));
        CHECK(pred[size_t(i)] != p["label"].get<int64_t>());
        CHECK(p["lower_bound"].get<double>() == Approx(p["minimal_norm"].get<double>()));
      }
      CHECK(found >= 15);

      // HopSkipJump L-inf from the same points: every distance >= the exact minimum.
      r = test::run_cli("attack " + tree_args(c.model, c.data, c.labels, 25) + " --attack hsja --norm linf --out " + dir +
                        "/h.json");
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
      auto h = test::read_json(dir + "/h.json");
      std::vector<double> gaps;
      for (size_t k = 0; k < h["per_sample"].size(); ++k) {
        const auto& ph = h["per_sample"][k];
        const auto& pe = e["per_sample"][k];
        if (ph["minimal_norm"].is_null() || pe["minimal_norm"].is_null()) continue;
        const double exact = pe["minimal_norm"].get<double>(), hsja = ph["minimal_norm"].get<double>();
        CHECK(hsja >= exact * (1 - 1e-6));
        gaps.push_back(hsja / exact);
      }
      REQUIRE(!gaps.empty());
      std::sort(gaps.begin(), gaps.end());
      WARN(c.model << ": HopSkipJump L-inf / exact minimum, median " << gaps[gaps.size() / 2] << ", worst " << gaps.back()
                   << " over " << gaps.size() << " points");
    }
  }
}

TEST_CASE("robustness: exact-tree with --eps counts points broken within eps, errors are one line",
          "[robustness][cli][exact-tree][errors]") {
  auto dir = test::temp_dir("exact-tree-eps");
  auto r = test::run_cli("attack " + tree_args("xgb_binary", "credit_x", "credit_y", 20) +
                         " --attack exact-tree --norm linf --eps 0.05,0.3 --out " + dir + "/e.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto e = test::read_json(dir + "/e.json");
  REQUIRE(e["by_eps"].size() == 2);
  // Robust accuracy can only fall as eps grows; a point proved robust within 0.3 says "none".
  CHECK(e["by_eps"][0]["robust_accuracy"].get<double>() >= e["by_eps"][1]["robust_accuracy"].get<double>());
  for (const auto& p : e["per_sample"])
    if (p["correct"].get<bool>() && p["status"] == "none") CHECK(p["minimal_norm"].is_null());

  r = test::run_cli("attack " + tree_args("xgb_binary", "credit_x", "credit_y", 5) + " --attack exact-tree --norm l2 --out " +
                    dir + "/x.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("exact-tree finds the minimal L-inf distance: use --norm linf"));
  r = test::run_cli("attack --model " + test::source_path("models/credit_mlp.onnx") + " --data " +
                    test::source_path("datasets/demo/credit_x.npy") + " --labels " +
                    test::source_path("datasets/demo/credit_y.npy") +
                    " --limit 3 --clip-min -1000 --clip-max 1000 --attack exact-tree --norm linf --out " + dir + "/m.json");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--attack exact-tree needs a tree ensemble"));
  CHECK_THAT(r.output, Catch::Contains("hsja and boundary attack any model"));
}

TEST_CASE("robustness: decision attacks on an open domain draw their starts from the data's range (ART's rule)",
          "[robustness][cli][exact-tree][decision]") {
  // --clip-min=-inf --clip-max=inf: uniform starts over an infinite box are impossible; the
  // attacks draw them from [min(x), max(x)] as ART does without clip values, and still never
  // beat the exact minimum.
  const std::string t = test::source_path("tests/fixtures/trees/");
  const std::string args = "--model " + t + "xgb_binary.onnx --data " + t + "credit_x.npy --labels " + t +
                           "credit_y.npy --limit 30 --clip-min=-inf --clip-max=inf --norm linf ";
  auto dir = test::temp_dir("decision-open");
  auto r = test::run_cli("attack " + args + "--attack hsja --out " + dir + "/h.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  r = test::run_cli("attack " + args + "--attack exact-tree --out " + dir + "/e.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto h = test::read_json(dir + "/h.json"), e = test::read_json(dir + "/e.json");
  int correct = 0, found = 0;
  for (size_t k = 0; k < h["per_sample"].size(); ++k) {
    const auto& ph = h["per_sample"][k];
    if (!ph["correct"].get<bool>()) continue;
    ++correct;
    if (ph["minimal_norm"].is_null()) continue;
    ++found;
    const auto& pe = e["per_sample"][k];
    REQUIRE(!pe["minimal_norm"].is_null());
    CHECK(ph["minimal_norm"].get<double>() >= pe["minimal_norm"].get<double>() * (1 - 1e-6));
  }
  CHECK(found >= correct * 9 / 10);  // was 0 before: every start was drawn from an infinite box
}
