// `mlaudit verify` end to end: VNN-COMP result files, bad input, data
// robustness and fairness reports on the bundled credit model.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using mlaudit::test::run_cli;
namespace fs = std::filesystem;

namespace {
std::string acas(const std::string& rel) { return mlaudit::test::shared_dataset("vnncomp2022/acasxu/" + rel); }
}  // namespace

TEST_CASE("verify --help", "[verify][cli]") {
  auto r = run_cli("verify --help");
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("--vnnlib") != std::string::npos);
  CHECK(r.output.find("--benchmark") != std::string::npos);
}

TEST_CASE("verify --vnnlib writes VNN-COMP result files (unsat, sat with a counterexample)", "[verify][cli][acasxu]") {
  if (!fs::exists(acas("expected.csv"))) {
    WARN("ACAS Xu data absent");
    return;
  }
  std::string dir = mlaudit::test::temp_dir("verify-cli");
  auto r = run_cli("--threads 2 verify --model " + acas("onnx/ACASXU_run2a_3_3_batch_2000.onnx") + " --vnnlib " +
                   acas("vnnlib/prop_4.vnnlib") + " --timeout 60 --result " + dir + "/r1.txt");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(mlaudit::test::read_text(dir + "/r1.txt") == "unsat\n");
  r = run_cli("--threads 2 verify --model " + acas("onnx/ACASXU_run2a_1_7_batch_2000.onnx") + " --vnnlib " +
              acas("vnnlib/prop_3.vnnlib") + " --timeout 60 --result " + dir + "/r2.txt");
  CHECK(r.exit_code == 0);
  std::string text = mlaudit::test::read_text(dir + "/r2.txt");
  CHECK(text.rfind("sat\n((X_0 ", 0) == 0);
  CHECK(text.find("(Y_4 ") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("verify: bad input exits 2 with one line naming the problem", "[verify][cli][errors]") {
  std::string dir = mlaudit::test::temp_dir("verify-bad");
  {
    std::ofstream f(dir + "/bad.vnnlib");
    f << "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1)\n";
  }
  std::string model = acas("onnx/ACASXU_run2a_1_1_batch_2000.onnx");
  auto r = run_cli("verify --model " + model + " --vnnlib " + dir + "/bad.vnnlib --result " + dir + "/r.txt");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("bad.vnnlib:3:1: unbalanced '('") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/r.txt"));
  r = run_cli("verify --model " + dir + "/missing.onnx --vnnlib " + acas("vnnlib/prop_1.vnnlib"));
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("missing.onnx") != std::string::npos);
  r = run_cli("verify --model " + model + " --data x.npy --eps abc --out " + dir + "/v.json");
  CHECK(r.exit_code == 2);
  r = run_cli("verify --model " + model);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("exactly one of --vnnlib, --data, --fairness") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("verify --data on the bundled models: credit MLP verdicts, CNN proved at a small radius", "[verify][cli]") {
  std::string credit = mlaudit::test::source_path("models/credit_mlp.onnx");
  std::string dir = mlaudit::test::temp_dir("verify-data");
  if (fs::exists(credit)) {
    // Five rows of the credit test set as float32 [5,7] (features.txt order).
    std::string x = dir + "/x.npy";
    {
      // .npy v1.0 header for float32 (5,7).
      std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 7), }";
      while ((10 + header.size() + 1) % 64) header += ' ';
      header += '\n';
      std::ofstream f(x, std::ios::binary);
      f << "\x93NUMPY" << char(1) << char(0);
      uint16_t len = uint16_t(header.size());
      f.write(reinterpret_cast<const char*>(&len), 2);
      f << header;
      const float rows[5][7] = {{45, 110.5f, 0.23f, 4.6f, 7, 1, 0}, {36, 29.4f, 0.151f, 3.4f, 4, 0, 0},
                                {52, 60, 0.4f, 10, 3, 2, 1},        {23, 20, 0.6f, 0.5f, 1, 3, 0},
                                {60, 80, 0.1f, 30, 9, 0, 1}};
      f.write(reinterpret_cast<const char*>(rows), sizeof rows);
    }
    // Raw tabular features are outside attack's default domain [0, 1]: refused with a hint (issue #18) ...
    auto r = run_cli("--threads 2 verify --model " + credit + " --data " + x + " --eps 0.01,5 --timeout 20 --out " + dir + "/v.json");
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("outside the input domain [0, 1]") != std::string::npos);
    CHECK_FALSE(fs::exists(dir + "/v.json"));
    // ... and verified over unbounded balls when asked.
    r = run_cli("--threads 2 verify --model " + credit + " --data " + x +
                " --eps 0.01,5 --clip-min=-inf --clip-max=inf --timeout 20 --out " + dir + "/v.json");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(mlaudit::test::read_text(dir + "/v.json"));
    CHECK(j["domain"] == nlohmann::json::array({nullptr, nullptr}));
    CHECK(j["schema"] == "mlaudit.verify/1");
    CHECK(j.contains("tool_version"));
    REQUIRE(j["per_sample"].size() == 10);
    REQUIRE(j["by_eps"].size() == 2);
    // `per_eps` is kept one version as an alias of `by_eps` (issue 6 names it by_eps).
    CHECK(j["per_eps"] == j["by_eps"]);
    // A tiny radius around raw features (income in thousands, age in years) is
    // provable for most points; a radius of 5 in every feature flips some.
    CHECK(j["by_eps"][0]["verified"].get<int>() >= 3);
    CHECK(j["by_eps"][1]["verified"].get<int>() <= j["by_eps"][0]["verified"].get<int>());
    // The verified robust accuracy carries its sample count and exact 95% interval.
    for (const auto& e : j["by_eps"]) {
      const auto& ci = e["verified_robust_accuracy_ci"];
      CHECK(ci["n"] == e["samples"]);  // 5 samples (per_sample holds one record per sample and eps)
      CHECK(ci["k"] == e["verified"]);
      CHECK(ci["lower"].get<double>() <= e["verified_robust_accuracy"].get<double>());
      CHECK(ci["upper"].get<double>() >= e["verified_robust_accuracy"].get<double>());
    }
    for (const auto& s : j["per_sample"]) {
      if (s["verdict"] == "falsified") CHECK(s["margin"].get<double>() <= 0);
    }
  }
  std::string cnn = mlaudit::test::source_path("models/fmnist_cnn.onnx");
  std::string fx = mlaudit::test::source_path("datasets/demo/fmnist_x.npy");
  if (fs::exists(cnn) && fs::exists(fx)) {
    // MaxPool is relaxed (DeepPoly / auto_LiRPA rule): at eps 0.002 the first
    // two test images are proved by CROWN at the root (measured: about 2 s each).
    auto r = run_cli("--threads 2 verify --model " + cnn + " --data " + fx +
                     " --limit 2 --eps 0.002 --clip-min 0 --clip-max 1 --timeout 30 --out " + dir + "/c.json");
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(mlaudit::test::read_text(dir + "/c.json"));
    REQUIRE(j["per_sample"].size() == 2);
    for (const auto& s : j["per_sample"]) CHECK(s["verdict"] == "verified");
    CHECK(j["by_eps"][0]["verified_robust_accuracy"].get<double>() == 1.0);
  }
  fs::remove_all(dir);
}

TEST_CASE("verify --fairness on the credit model reports partitions", "[verify][cli][fairness]") {
  std::string credit = mlaudit::test::source_path("models/credit_mlp.onnx");
  if (!fs::exists(credit)) {
    WARN("credit model absent");
    return;
  }
  std::string dir = mlaudit::test::temp_dir("verify-fair");
  {
    std::ofstream f(dir + "/ranges.csv");
    f << "feature,min,max\nage,18,80\nincome,10,150\ndebt_ratio,0,1\nyears_employed,0,40\nnum_credit_lines,0,15\n"
         "late_payments,0,10\nsex,0,1\n";
  }
  auto r = run_cli("--threads 2 verify --model " + credit + " --fairness --protected sex --features " +
                   mlaudit::test::source_path("datasets/credit/features.txt") + " --domain " + dir +
                   "/ranges.csv --partitions 1 --timeout 20 --out " + dir + "/f.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(mlaudit::test::read_text(dir + "/f.json"));
  CHECK(j["schema"] == "mlaudit.verify/1");
  REQUIRE(j["partitions"].size() == 1);
  // `sex` is a model feature, so over the whole domain some applicant's
  // decision flips with it; every reported pair must really flip.
  for (const auto& p : j["counterexample_pairs"]) {
    auto a = p["output_a"].get<std::vector<double>>(), b = p["output_b"].get<std::vector<double>>();
    CHECK((a[1] > a[0]) != (b[1] > b[0]));
  }
  r = run_cli("verify --model " + credit + " --fairness --protected gender --features " +
              mlaudit::test::source_path("datasets/credit/features.txt") + " --domain " + dir + "/ranges.csv --out " + dir +
              "/g.json");
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("'gender' is not one of the --features") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("verify on a one-logit model: VNN-LIB reads the model's own output, fairness the decision z > 0",
          "[verify][cli][binary]") {
  // tools/export_binary_models.py: a PyTorch MLP with a Linear(16, 1) head on its inputs.
  const std::string fx = mlaudit::test::source_path("tests/fixtures/binary");
  const std::string dir = mlaudit::test::temp_dir("verify-logit");
  mlaudit::engine::Tensor x = mlaudit::datasets::read_npy_float(fx + "/x.npy");
  auto plain = mlaudit::engine::Session::load(fx + "/logit.onnx");  // one column, as the model gives it
  const int n = int(x.shape()[1]);
  // A property on Y_0 (the logit itself): always true on the box, so sat; the counterexample's
  // Y_0 is the model's z there. (The concrete re-check once ran the two-class widening [0, z],
  // whose Y_0 is the constant 0, and every such property timed out.)
  {
    std::ofstream f(dir + "/p.vnnlib");
    for (int i = 0; i < n; ++i) f << "(declare-const X_" << i << " Real)\n";
    f << "(declare-const Y_0 Real)\n";
    for (int i = 0; i < n; ++i)
      f << "(assert (>= X_" << i << " " << x.f32()[size_t(i)] - 0.1 << "))\n(assert (<= X_" << i << " "
        << x.f32()[size_t(i)] + 0.1 << "))\n";
    f << "(assert (>= Y_0 -1000))\n";
  }
  auto r = run_cli("verify --model " + fx + "/logit.onnx --vnnlib " + dir + "/p.vnnlib --timeout 20 --result " + dir +
                   "/r.txt");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string res = mlaudit::test::read_text(dir + "/r.txt");
  REQUIRE(res.rfind("sat", 0) == 0);
  CHECK(res.find("Y_1") == std::string::npos);
  std::vector<float> cx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto at = res.find("(X_" + std::to_string(i) + " ");
    REQUIRE(at != std::string::npos);
    cx[size_t(i)] = std::stof(res.substr(at + 4 + std::to_string(i).size()));
  }
  auto at = res.find("(Y_0 ");
  REQUIRE(at != std::string::npos);
  const double y0 = std::stod(res.substr(at + 5));
  const float z = plain->forward(mlaudit::engine::Tensor::from_floats({1, n}, cx)).f32()[0];
  CHECK(z != 0.0f);
  CHECK(y0 == Approx(double(z)).margin(1e-6));
  // Individual fairness on the same model compares the decisions z > 0 of the two copies. With a
  // single output column it once had no class pair to compare and proved every partition.
  {
    std::ofstream f(dir + "/ranges.csv"), names(dir + "/features.txt");
    f << "feature,min,max\n";
    for (int i = 0; i < n; ++i) f << "f" << i << ",-2,2\n", names << "f" << i << "\n";
  }
  r = run_cli("--threads 2 verify --model " + fx + "/logit.onnx --fairness --protected f0 --protected-values -2,2 "
              "--features " + dir + "/features.txt --domain " + dir + "/ranges.csv --partitions 1 --timeout 20 --out " +
              dir + "/f.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(mlaudit::test::read_text(dir + "/f.json"));
  REQUIRE(j["partitions"].size() == 1);
  CHECK(j["partitions"][0]["verdict"] == "counterexample");
  REQUIRE(j["counterexample_pairs"].size() >= 1);
  for (const auto& p : j["counterexample_pairs"]) {
    auto a = p["output_a"].get<std::vector<double>>(), b = p["output_b"].get<std::vector<double>>();
    REQUIRE(a.size() == 2);
    REQUIRE(b.size() == 2);
    CHECK(a[0] == 0.0);
    CHECK((a[1] > 0) != (b[1] > 0));
  }
  fs::remove_all(dir);
}
