// `mlaudit verify`'s input contract and modes (issue #18):
// * --data uses attack's input domain (--clip-min 0 --clip-max 1 by default; -inf/inf
//   unbounded), refuses data outside it, states it in the JSON, and every counterexample
//   lies in the domain and the ball. Regression: tests/fixtures/verify/domain_mlp.onnx,
//   whose verdicts over the unbounded box and over [0, 1] differ; the expected verdicts
//   come from an exact reference (vertex enumeration of the piecewise-linear margin,
//   cross-checked on a 401 x 401 grid and with onnxruntime: tools/verify_domain_fixture.py).
// * every mode writes the JSON --out asks for, with "schema" and an "inputs" block;
// * an option the mode does not use is an error (exit 2, one line);
// * --benchmark --filter accepts instances.csv's and expected.csv's forms, and a filter
//   that matches nothing is an error naming what it was matched against.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/tensor.h"
#include "test_util.h"

using mlaudit::test::run_cli;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::string fixture(const std::string& name) { return mlaudit::test::source_path("tests/fixtures/verify/" + name); }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
// One line on stderr: the whole output of a refused command is a single line.
bool one_line(const std::string& s) { return s.find('\n') == s.size() - 1; }

// The fixture's samples (domain_x.npy, float32 [5, 2]) as doubles.
std::vector<std::vector<double>> fixture_samples() {
  auto t = mlaudit::datasets::read_npy_float(fixture("domain_x.npy"));
  auto d = t.to_doubles();
  std::vector<std::vector<double>> rows;
  for (int64_t i = 0; i < t.dim(0); ++i) rows.push_back({d[size_t(2 * i)], d[size_t(2 * i + 1)]});
  return rows;
}

// A query box's bounds are x -+ eps computed once in double (vnnlib.cpp, robustness_property):
// one rounding of a number below 2 in magnitude, at most 2^-52, so a point of the box is
// within eps + 2^-51 of x. Anything beyond that is a point outside the ball.
constexpr double kBallRounding = 0x1p-51;

void check_counterexamples(const json& j, double lo, double hi, int* outside_unit_square) {
  const auto x = fixture_samples();
  for (const auto& s : j["per_sample"]) {
    if (s["verdict"] != "falsified") continue;
    REQUIRE(s.contains("counterexample"));
    const auto cx = s["counterexample"].get<std::vector<double>>();
    const auto& xi = x[s["index"].get<size_t>()];
    const double eps = s["eps"].get<double>();
    REQUIRE(cx.size() == xi.size());
    bool outside = false;
    for (size_t k = 0; k < cx.size(); ++k) {
      INFO("sample " << s["index"] << " eps " << eps << " coordinate " << k << ": " << cx[k] << " vs x " << xi[k]);
      CHECK(cx[k] >= lo);  // inside the domain, exactly (float32 values compared with the domain's ends)
      CHECK(cx[k] <= hi);
      CHECK(std::fabs(cx[k] - xi[k]) <= eps + kBallRounding);  // inside the ball
      outside = outside || cx[k] < 0 || cx[k] > 1;
    }
    CHECK(s["counterexample_linf"].get<double>() <= eps + kBallRounding);
    CHECK(s["margin"].get<double>() <= 0);
    if (outside) ++*outside_unit_square;
  }
}

std::string sha256_hex_ok(const json& p) {
  const std::string h = p.value("sha256", "");
  return h.size() == 64 && h.find_first_not_of("0123456789abcdef") == std::string::npos ? "ok" : "bad: " + p.dump();
}
}  // namespace

TEST_CASE("verify --data: default domain [0, 1] as attack's, unbounded only when asked, verdicts match the exact reference",
          "[verify][cli][domain]") {
  const json ref = json::parse(mlaudit::test::read_text(fixture("domain_reference.json")));
  std::string dir = mlaudit::test::temp_dir("verify-domain");
  const std::string base = "--threads 2 verify --model " + fixture("domain_mlp.onnx") + " --data " + fixture("domain_x.npy") +
                           " --labels " + fixture("domain_y.npy") + " --eps 0.02,0.1 --timeout 30";

  // The reference, per (sample, eps): the verdict over the ball alone and over the ball within [0, 1].
  auto verdicts_match = [&](const json& j, const std::string& which) {
    REQUIRE(j["per_sample"].size() == ref["cases"].size());
    for (const auto& c : ref["cases"]) {
      bool found = false;
      for (const auto& s : j["per_sample"])
        if (s["index"] == c["index"] && s["eps"].get<double>() == c["eps"].get<double>()) {
          INFO(which << ": sample " << c["index"] << " eps " << c["eps"] << " reference min margin "
                     << c[which]["min_margin"] << " at " << c[which]["argmin"]);
          CHECK(s["verdict"] == c[which]["verdict"]);
          found = true;
        }
      CHECK(found);
    }
  };

  // Default: [0, 1]. Before issue #18 this run was unbounded and 4 of 10 queries came back
  // falsified by points outside [0, 1]; over the domain only the corner sample is falsified.
  auto r = run_cli(base + " --out " + dir + "/default.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "input domain [0, 1]"));
  json d = json::parse(mlaudit::test::read_text(dir + "/default.json"));
  CHECK(d["schema"] == "mlaudit.verify/1");
  CHECK(d["domain"] == json::array({0.0, 1.0}));
  CHECK(d["clip_min"] == 0.0);
  CHECK(d["clip_max"] == 1.0);
  verdicts_match(d, "default");
  CHECK(d["by_eps"][1]["falsified"] == 1);
  int outside = 0;
  check_counterexamples(d, 0.0, 1.0, &outside);
  CHECK(outside == 0);
  // Provenance of every file read.
  for (const char* role : {"model", "data", "labels"}) {
    INFO(role);
    REQUIRE(d["inputs"].contains(role));
    CHECK(sha256_hex_ok(d["inputs"][role]) == "ok");
    CHECK(d["inputs"][role]["bytes"].get<int64_t>() > 0);
  }
  CHECK(d["inputs"]["model"]["path"] == fixture("domain_mlp.onnx"));

  // Unbounded, asked for explicitly (both spellings boost accepts).
  for (const std::string flags : {"--clip-min=-inf --clip-max=inf", "--clip-min -inf --clip-max inf"}) {
    r = run_cli(base + " " + flags + " --out " + dir + "/unbounded.json");
    INFO(flags << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
    json u = json::parse(mlaudit::test::read_text(dir + "/unbounded.json"));
    CHECK(u["domain"] == json::array({nullptr, nullptr}));  // JSON has no infinity: an open side is null
    CHECK_FALSE(u.contains("clip_min"));
    verdicts_match(u, "unbounded");
    CHECK(u["by_eps"][1]["falsified"] == 4);
    outside = 0;
    check_counterexamples(u, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(), &outside);
    CHECK(outside == 3);  // samples 0-2 are falsified only through points outside [0, 1]
  }
  fs::remove_all(dir);
}

TEST_CASE("verify --data refuses data outside the domain, non-finite data and bad labels (exit 2, one line)",
          "[verify][cli][domain][errors]") {
  std::string dir = mlaudit::test::temp_dir("verify-contract");
  using mlaudit::engine::Tensor;
  mlaudit::datasets::write_npy(dir + "/big.npy", Tensor::from_floats({2, 2}, {0.5f, 0.5f, 1.5f, 0.2f}));
  mlaudit::datasets::write_npy(dir + "/nan.npy", Tensor::from_floats({1, 2}, {0.5f, std::nanf("")}));
  mlaudit::datasets::write_npy(dir + "/y3.npy", Tensor::from_ints({5}, {0, 1, 2, 0, 0}));
  mlaudit::datasets::write_npy(dir + "/y4.npy", Tensor::from_ints({4}, {0, 0, 0, 0}));
  const std::string model = " --model " + fixture("domain_mlp.onnx");
  const std::string out = " --eps 0.1 --timeout 10 --out " + dir + "/v.json";

  auto r = run_cli("verify" + model + " --data " + dir + "/big.npy" + out);
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.output));
  CHECK(contains(r.output, "row 1 (element 0 of the row) is 1.5, outside the input domain [0, 1]"));
  CHECK(contains(r.output, "--clip-min=-inf --clip-max=inf"));
  CHECK_FALSE(fs::exists(dir + "/v.json"));
  // The same data inside an explicit domain is fine, and the JSON says which domain.
  r = run_cli("verify" + model + " --data " + dir + "/big.npy --clip-min -1 --clip-max 2" + out);
  CHECK(r.exit_code == 0);
  CHECK(json::parse(mlaudit::test::read_text(dir + "/v.json"))["domain"] == json::array({-1.0, 2.0}));
  fs::remove(dir + "/v.json");

  r = run_cli("verify" + model + " --data " + dir + "/nan.npy" + out);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "is NaN (data must be finite)"));
  r = run_cli("verify" + model + " --data " + fixture("domain_x.npy") + " --labels " + dir + "/y3.npy" + out);
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.output));
  CHECK(contains(r.output, "label 2 at row 2 is outside [0, 2)"));
  r = run_cli("verify" + model + " --data " + fixture("domain_x.npy") + " --labels " + dir + "/y4.npy" + out);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "4 labels for the 5 rows of --data"));
  r = run_cli("verify" + model + " --data " + fixture("domain_x.npy") + " --clip-min 1 --clip-max 0" + out);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--clip-min 1 must be less than --clip-max 0"));
  r = run_cli("verify" + model + " --data " + fixture("domain_x.npy") + " --eps inf --out " + dir + "/v.json");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--eps values must be finite"));
  CHECK_FALSE(fs::exists(dir + "/v.json"));
  fs::remove_all(dir);
}

TEST_CASE("verify --vnnlib --out writes a JSON report (sat with a counterexample in the box, unsat)",
          "[verify][cli][vnnlib]") {
  const json ref = json::parse(mlaudit::test::read_text(fixture("domain_reference.json")));
  std::string dir = mlaudit::test::temp_dir("verify-vnnlib-json");
  const std::string model = fixture("domain_mlp.onnx");
  auto r = run_cli("verify --model " + model + " --vnnlib " + fixture("domain_sat.vnnlib") + " --timeout 30 --result " + dir +
                   "/r.txt --out " + dir + "/sat.json");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(fs::exists(dir + "/sat.json"));  // before issue #18: --out was ignored in this mode
  json j = json::parse(mlaudit::test::read_text(dir + "/sat.json"));
  CHECK(j["schema"] == "mlaudit.verify/1");
  CHECK(j.contains("tool_version"));
  CHECK(j["kind"] == "vnnlib_property");
  CHECK(j["result"] == "sat");
  CHECK(j["verdict"] == "falsified");
  CHECK(ref["vnnlib"]["domain_sat"]["verdict"] == "falsified");
  CHECK(j["property"] == fixture("domain_sat.vnnlib"));
  CHECK(j["num_inputs"] == 2);
  REQUIRE(j["input_boxes"].size() == 1);
  CHECK(j["input_boxes"][0]["lower"] == ref["vnnlib"]["domain_sat"]["lower"]);
  CHECK(j["input_boxes"][0]["upper"] == ref["vnnlib"]["domain_sat"]["upper"]);
  const auto cx = j["counterexample"]["input"].get<std::vector<double>>();
  const auto cy = j["counterexample"]["output"].get<std::vector<double>>();
  REQUIRE(cx.size() == 2);
  REQUIRE(cy.size() == 2);
  for (size_t k = 0; k < 2; ++k) {
    CHECK(cx[k] >= j["input_boxes"][0]["lower"][k].get<double>());
    CHECK(cx[k] <= j["input_boxes"][0]["upper"][k].get<double>());
  }
  CHECK(cy[0] <= cy[1]);  // the property's unsafe set: Y_0 <= Y_1
  CHECK(sha256_hex_ok(j["inputs"]["model"]) == "ok");
  CHECK(sha256_hex_ok(j["inputs"]["vnnlib"]) == "ok");
  CHECK(mlaudit::test::read_text(dir + "/r.txt").rfind("sat\n((X_0 ", 0) == 0);  // the VNN-COMP file as before

  r = run_cli("verify --model " + model + " --vnnlib " + fixture("domain_unsat.vnnlib") + " --timeout 30 --out " + dir +
              "/unsat.json");
  REQUIRE(r.exit_code == 0);
  j = json::parse(mlaudit::test::read_text(dir + "/unsat.json"));
  CHECK(j["result"] == "unsat");
  CHECK(j["verdict"] == "verified");
  CHECK(ref["vnnlib"]["domain_unsat"]["verdict"] == "verified");
  CHECK(j["counterexample"].is_null());
  fs::remove_all(dir);
}

TEST_CASE("verify: an option the mode does not use is an error (exit 2, one line naming it and the mode)",
          "[verify][cli][errors]") {
  std::string dir = mlaudit::test::temp_dir("verify-unused");
  const std::string model = fixture("domain_mlp.onnx");
  const std::string vnn = "verify --model " + model + " --vnnlib " + fixture("domain_sat.vnnlib") + " --out " + dir + "/v.json";
  const std::string data = "verify --model " + model + " --data " + fixture("domain_x.npy") + " --eps 0.1 --out " + dir + "/v.json";
  const std::string bench = "verify --benchmark " + dir + " --out " + dir + "/b.csv";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases{
      {vnn + " --eps 0.1", "--eps is not used in --vnnlib mode (the .vnnlib file fixes the input region)"},
      {vnn + " --limit 3", "--limit is not used in --vnnlib mode"},
      {vnn + " --partitions 4", "--partitions is not used in --vnnlib mode"},
      {vnn + " --clip-min 0", "--clip-min is not used in --vnnlib mode"},
      {data + " --partitions 4", "--partitions is not used in --data mode"},
      {data + " --result r.txt", "--result is not used in --data mode"},
      {data + " --domain r.csv", "--domain is not used in --data mode (--domain is the fairness ranges.csv"},
      {data + " --filter x", "--filter is not used in --data mode"},
      {bench + " --timeout 5", "--timeout is not used in --benchmark mode (each instance runs under its instances.csv limit; "
                               "cap it with --timeout-override S)"},
      {bench + " --model " + model, "--model is not used in --benchmark mode"},
      {"verify --model " + model + " --fairness --protected sex --features a,b --domain r.csv --clip-max 1 --out " + dir +
           "/v.json",
       "--clip-max is not used in --fairness mode (the fairness domain is --domain ranges.csv)"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    INFO(c.args << "\n" << r.output);
    CHECK(r.exit_code == 2);
    CHECK(one_line(r.output));
    CHECK(contains(r.output, c.message));
    CHECK(contains(r.output, "that mode takes --"));
  }
  CHECK_FALSE(fs::exists(dir + "/v.json"));
  CHECK_FALSE(fs::exists(dir + "/b.csv"));
  fs::remove_all(dir);
}

TEST_CASE("verify --benchmark: --filter in instances.csv's or expected.csv's form, no match is an error, JSON output",
          "[verify][cli][benchmark]") {
  // A two-instance benchmark in the VNN-COMP layout from the fixture model.
  std::string dir = mlaudit::test::temp_dir("verify-bench");
  fs::create_directories(dir + "/onnx");
  fs::create_directories(dir + "/vnnlib");
  fs::copy_file(fixture("domain_mlp.onnx"), dir + "/onnx/domain_mlp.onnx");
  fs::copy_file(fixture("domain_sat.vnnlib"), dir + "/vnnlib/domain_sat.vnnlib");
  fs::copy_file(fixture("domain_unsat.vnnlib"), dir + "/vnnlib/domain_unsat.vnnlib");
  {
    std::ofstream f(dir + "/instances.csv");
    f << "onnx/domain_mlp.onnx,vnnlib/domain_sat.vnnlib,30\nonnx/domain_mlp.onnx,vnnlib/domain_unsat.vnnlib,30\n";
    std::ofstream e(dir + "/expected.csv");
    e << "onnx,vnnlib,timeout_s,expected\ndomain_mlp.onnx,domain_sat.vnnlib,30,sat\ndomain_mlp.onnx,domain_unsat.vnnlib,30,unsat\n";
  }
  // instances.csv's form (what --help names): before issue #18 this matched nothing.
  auto r = run_cli("verify --benchmark " + dir + " --filter 'domain_mlp.onnx,vnnlib/domain_sat' --out " + dir + "/a.csv");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "instances 1: solved 1 (sat 1, unsat 0), wrong 0"));
  CHECK(mlaudit::test::read_text(dir + "/a.csv").find("domain_mlp.onnx,domain_sat.vnnlib,sat,sat,yes,") != std::string::npos);
  // expected.csv's form (file names), anchored.
  r = run_cli("verify --benchmark " + dir + " --filter '^domain_mlp.onnx,domain_unsat.vnnlib$' --out " + dir + "/b.json");
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "instances 1: solved 1 (sat 0, unsat 1), wrong 0"));
  json j = json::parse(mlaudit::test::read_text(dir + "/b.json"));
  CHECK(j["schema"] == "mlaudit.verify/1");
  CHECK(j["kind"] == "vnncomp_benchmark");
  CHECK(j["summary"]["instances"] == 1);
  CHECK(j["summary"]["unsat"] == 1);
  REQUIRE(j["instances"].size() == 1);
  CHECK(j["instances"][0]["instance"] == "onnx/domain_mlp.onnx,vnnlib/domain_unsat.vnnlib");
  CHECK(j["instances"][0]["result"] == "unsat");
  CHECK(j["instances"][0]["correct"] == true);
  CHECK(sha256_hex_ok(j["instances"][0]["inputs"]["model"]) == "ok");
  CHECK(sha256_hex_ok(j["instances"][0]["inputs"]["vnnlib"]) == "ok");
  CHECK(sha256_hex_ok(j["inputs"]["instances"]) == "ok");
  CHECK(sha256_hex_ok(j["inputs"]["expected"]) == "ok");
  // No match: exit 2, naming the forms it was matched against and some instances; no results file.
  r = run_cli("verify --benchmark " + dir + " --filter 'prop_9' --out " + dir + "/c.csv");
  CHECK(r.exit_code == 2);
  CHECK(one_line(r.output));
  CHECK(contains(r.output, "--filter 'prop_9' matches none of the 2 instances of " + dir + "/instances.csv"));
  CHECK(contains(r.output, "instances.csv's form, e.g. 'onnx/domain_mlp.onnx,vnnlib/domain_sat.vnnlib'"));
  CHECK(contains(r.output, "expected.csv's file-name form, e.g. 'domain_mlp.onnx,domain_sat.vnnlib'"));
  CHECK(contains(r.output, "onnx/domain_mlp.onnx,vnnlib/domain_unsat.vnnlib"));
  CHECK_FALSE(fs::exists(dir + "/c.csv"));
  fs::remove_all(dir);
}

TEST_CASE("verify --benchmark: the issue's filter on ACAS Xu selects 1_1 property 1", "[verify][cli][benchmark][acasxu]") {
  const std::string acas = mlaudit::test::shared_dataset("vnncomp2022/acasxu");
  if (!fs::exists(acas + "/instances.csv")) {
    WARN("ACAS Xu data absent");
    return;
  }
  std::string dir = mlaudit::test::temp_dir("verify-bench-acas");
  auto r = run_cli("--threads 2 verify --benchmark " + acas + " --filter '1_1_batch_2000.onnx,vnnlib/prop_1' " +
                   "--timeout-override 60 --out " + dir + "/r.csv");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "instances 1: solved 1 (sat 0, unsat 1), wrong 0"));
  CHECK(mlaudit::test::read_text(dir + "/r.csv").find("ACASXU_run2a_1_1_batch_2000.onnx,prop_1.vnnlib,unsat,unsat,yes,") != std::string::npos);
  fs::remove_all(dir);
}
