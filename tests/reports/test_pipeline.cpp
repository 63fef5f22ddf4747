// The audit pipeline with a fake command runner: files written, exit codes,
// section arguments, interruption, diff.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

AuditConfig config_with(const std::string& gates, const std::string& dir) {
  test::write_text(dir + "/audit.yaml", test::full_config(gates));
  return load_config(dir + "/audit.yaml");
}

AuditOptions options(const std::string& out) {
  AuditOptions o;
  o.out_dir = out;
  o.quiet = true;
  o.pdf = false;
  o.tool_version = "test";
  o.git_commit = "abc123";
  return o;
}

json schema() { return json::parse(test::read_text(test::source_path("docs/report-schema.json"))); }

}  // namespace

TEST_CASE("pipeline: all gates pass -> exit 0, every report file written and valid", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-pass");
  AuditConfig cfg = config_with(test::kPassingGates, dir);
  test::FakeRunner fake;
  AuditResult res = run_audit(cfg, options(dir + "/out"), std::ref(fake));
  INFO(res.report["gates"].dump(2));
  INFO(res.report["sections"][0].dump(2));
  CHECK(res.exit_code == 0);
  CHECK(res.report["summary"]["verdict"] == "PASS");
  CHECK(res.report["summary"]["gates_passed"] == 7);
  for (const char* f : {"report.json", "report.md", "report.html", "junit.xml"}) CHECK(fs::exists(dir + "/out/" + f));
  // the JSON on disk is the report and validates against docs/report-schema.json
  json on_disk = json::parse(test::read_text(dir + "/out/report.json"));
  CHECK(on_disk == res.report);
  auto errors = validate_json_schema(on_disk, schema());
  INFO((errors.empty() ? std::string() : errors[0]));
  CHECK(errors.empty());
  // one `info` per model (their summaries), then one command per section, evaluate first
  CHECK(fake.calls.size() == 10);
  CHECK(fake.calls[0].first == "info");
  CHECK(fake.calls[1].first == "info");
  CHECK(fake.section_calls().size() == 8);
  const json& perf = res.report["sections"][0];
  CHECK(perf["kind"] == "performance");
  CHECK(perf["status"] == "ok");
  double acc = perf["result"]["accuracy"].get<double>();
  CHECK(acc > 0.5);  // the bundled credit MLP is far better than chance (models/README.md)
  CHECK(perf["result"]["accuracy_interval"][0].get<double>() <= acc);
  CHECK(perf["result"]["accuracy_interval"][1].get<double>() >= acc);
  // section outputs kept next to the report, paths rewritten relative to it
  const json* ig = nullptr;
  for (const auto& s : res.report["sections"])
    if (s["kind"] == "explanations") ig = &s;
  REQUIRE(ig);
  std::string heatmap = (*ig)["result"]["heatmaps"][0];
  CHECK(heatmap.rfind("sections/", 0) == 0);
  CHECK(fs::exists(dir + "/out/" + heatmap));
  CHECK(test::read_text(dir + "/out/report.html").find("data:image/png;base64,") != std::string::npos);
  // no temporary folder left behind
  for (const auto& e : fs::directory_iterator(dir + "/out")) CHECK(e.path().filename().string().rfind(".work-", 0) != 0);
  // manifest: hashes of config, models and data
  const json& m = res.report["manifest"];
  CHECK(m["git_commit"] == "abc123");
  CHECK(m["seed"] == 7);
  bool config_hashed = false;
  for (const auto& h : m["inputs"]) config_hashed |= h["role"] == "config" && h["sha256"] == datasets::sha256_file(dir + "/audit.yaml");
  CHECK(config_hashed);
}

TEST_CASE("pipeline: section arguments built from the config", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-args");
  AuditConfig cfg = config_with("", dir);
  test::FakeRunner fake;
  run_audit(cfg, options(dir + "/out"), std::ref(fake));
  const auto calls = fake.section_calls();
  REQUIRE(calls.size() == 8);
  // performance: mlaudit evaluate on the CSV data set with the config's bootstrap and seed
  CHECK(calls[0].first == "evaluate");
  CHECK(test::arg_value(calls[0].second, "--data") == test::source_path("datasets/credit/credit_test.csv"));
  CHECK(test::arg_value(calls[0].second, "--label-column") == "approved");
  CHECK(test::arg_value(calls[0].second, "--features") == "age,income,debt_ratio,years_employed,num_credit_lines,late_payments,sex");
  CHECK(test::arg_value(calls[0].second, "--bootstrap") == "200");
  CHECK(test::arg_value(calls[0].second, "--seed") == "7");
  const auto& [cmd, args] = calls[1];
  CHECK(cmd == "attack");
  CHECK(test::arg_value(args, "--attack") == "fgsm");
  CHECK(test::arg_value(args, "--norm") == "linf");
  CHECK(test::arg_value(args, "--eps") == "0.01,0.03");
  CHECK(test::arg_value(args, "--clip-min") == "0");
  CHECK(test::arg_value(args, "--clip-max") == "1");
  CHECK(test::arg_value(args, "--seed") == "7");
  CHECK(test::arg_value(args, "--model") == test::source_path("models/fmnist_cnn.onnx"));
  // 'samples: 20' -> the first 20 rows written for the section
  std::string data = test::arg_value(args, "--data");
  CHECK(data.find("first20") != std::string::npos);
  CHECK(calls[2].first == "attack");
  CHECK(test::arg_value(calls[2].second, "--attack") == "apgd-ce");
  CHECK(calls[3].first == "certify");
  CHECK(test::arg_value(calls[3].second, "--sigma") == "0.25");
  CHECK(test::arg_value(calls[3].second, "--n") == "1000");
  CHECK(calls[4].first == "corrupt");
  CHECK(test::arg_value(calls[4].second, "--corruptions") == "gaussian_noise,contrast");
  CHECK(test::arg_value(calls[4].second, "--severities") == "1,3");
  CHECK(calls[5].first == "fairness");
  CHECK(test::arg_value(calls[5].second, "--label-column") == "approved");
  CHECK(test::arg_value(calls[5].second, "--protected") == "sex");
  CHECK(std::find(calls[5].second.begin(), calls[5].second.end(), "--counterfactual") != calls[5].second.end());
  CHECK(calls[6].first == "explain");
  CHECK(test::arg_value(calls[6].second, "--method") == "integrated-gradients");
  CHECK_FALSE(test::arg_value(calls[6].second, "--heatmap-dir").empty());
  CHECK(calls[7].first == "verify");
  CHECK(test::arg_value(calls[7].second, "--eps") == "0.01");
  CHECK(test::arg_value(calls[7].second, "--timeout") == "5");

  // the subset really has 20 rows
  SectionSpec s = cfg.sections[1];
  std::string work = test::temp_dir("pipe-work");
  SectionCommand c = section_command(s, cfg, work);
  auto x = datasets::read_npy(test::arg_value(c.args, "--data"));
  CHECK(x.dim(0) == 20);
  CHECK(c.result_path == work + "/" + s.id + ".json");
}

TEST_CASE("pipeline: a failing gate -> exit 1, a failing section -> exit 2 with the gate an error", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-fail");
  SECTION("gate fails") {
    AuditConfig cfg = config_with("  - robust_accuracy(apgd-ce, linf, 0.03) >= 0.6\n  - mean_corruption_accuracy >= 0.5\n", dir);
    test::FakeRunner fake;
    AuditResult res = run_audit(cfg, options(dir + "/out"), std::ref(fake));
    CHECK(res.exit_code == 1);
    CHECK(res.report["summary"]["verdict"] == "FAIL");
    CHECK(res.report["gates"][0]["message"] == "measured 0.52 < threshold 0.6");
    CHECK(res.report["gates"][1]["status"] == "pass");
  }
  SECTION("command fails") {
    AuditConfig cfg = config_with("  - certified_accuracy(0.25) >= 0.5\n", dir);
    test::FakeRunner fake;
    fake.exit_codes["certify"] = 2;
    AuditResult res = run_audit(cfg, options(dir + "/out"), std::ref(fake));
    CHECK(res.exit_code == 2);
    CHECK(res.report["summary"]["verdict"] == "ERROR");
    CHECK(res.report["gates"][0]["status"] == "error");
    CHECK(res.report["gates"][0]["message"] ==
          "metric missing: section 'certification-cnn' did not complete ('mlaudit certify' exited with code 2 and wrote no result)");
    CHECK(fs::exists(dir + "/out/report.html"));  // the report says what failed
    auto errors = validate_json_schema(res.report, schema());
    CHECK(errors.empty());
  }
}

TEST_CASE("pipeline: an interrupted audit reports the finished sections, marked incomplete", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-int");
  AuditConfig cfg = config_with(test::kPassingGates, dir);
  std::atomic<bool> stop{false};
  AuditOptions o = options(dir + "/out");
  o.interrupted = &stop;
  int calls = 0;
  test::FakeRunner fake;
  auto runner = [&](const std::string& c, const std::vector<std::string>& a) {
    if (++calls == 2) stop = true;  // Ctrl-C during the second command
    return fake(c, a);
  };
  AuditResult res = run_audit(cfg, o, runner);
  CHECK(res.interrupted);
  CHECK(res.exit_code == 130);
  CHECK(calls == 2);  // stopped after the running section
  REQUIRE(fs::exists(dir + "/out/report.json"));
  CHECK(res.report["summary"]["verdict"] == "INCOMPLETE");
  CHECK(res.report["incomplete"]["sections_not_run"].size() == cfg.sections.size() - res.report["sections"].size());
  CHECK(res.report["incomplete"]["sections_not_run"].size() >= 1);
  CHECK(!fs::exists(dir + "/out/.work-" + std::to_string(getpid())));  // no work folder left
}

TEST_CASE("pipeline: --diff adds the changes since the previous audit", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-diff");
  AuditConfig cfg = config_with(test::kPassingGates, dir);
  test::FakeRunner fake;
  run_audit(cfg, options(dir + "/old"), std::ref(fake));
  AuditOptions o = options(dir + "/new");
  o.diff_path = dir + "/old/report.json";
  AuditResult res = run_audit(cfg, o, std::ref(fake));
  REQUIRE(res.report.contains("diff"));
  const json& d = res.report["diff"];
  CHECK(d["previous"] == dir + "/old/report.json");
  CHECK(d["gates"].size() == 7);
  CHECK(d["gates"][0]["old_status"] == "pass");
  CHECK(d["gates"][0]["delta"] == 0.0);
  CHECK(validate_json_schema(res.report, schema()).empty());
  CHECK(test::read_text(dir + "/new/report.md").find("## Changes since the previous audit") != std::string::npos);
  // a file that is not a report
  test::write_text(dir + "/bogus.json", "{\"schema\": \"other/1\"}");
  o.diff_path = dir + "/bogus.json";
  CHECK_THROWS_AS(run_audit(cfg, o, std::ref(fake)), InputError);
}

TEST_CASE("pipeline: efficiency and model summary from the engine", "[reports][pipeline]") {
  std::string dir = test::temp_dir("pipe-eff");
  std::string root = test::source_path("");
  test::write_text(dir + "/audit.yaml", "models:\n  credit: " + root + "models/credit_mlp.onnx\n"
                                        "sections:\n  efficiency: {model: credit, runs: 20, batch: 64}\n"
                                        "gates:\n  - latency_p99_ms < 1000\n  - parameters() > 0\n");
  AuditConfig cfg = load_config(dir + "/audit.yaml");
  test::FakeRunner fake;
  AuditResult res = run_audit(cfg, options(dir + "/out"), std::ref(fake));
  INFO(res.report.dump(2));
  CHECK(res.exit_code == 0);
  const json& eff = res.report["sections"][0]["result"];
  CHECK(eff["latency_p50_ms"].get<double>() <= eff["latency_p99_ms"].get<double>());
  CHECK(eff["throughput_per_s"].get<double>() > 0);
  CHECK(eff["batch"] == 64);
  const json& summary = res.report["models"][0]["summary"];
  CHECK(summary["parameters"].get<int64_t>() == eff["parameters"].get<int64_t>());
  CHECK(summary["ops"].contains("Gemm"));
  // Gemm FLOPs dominate: at least 2 * (sum of the Gemm weight sizes)
  CHECK(summary["flops"].get<double>() >= 2.0 * 0.9 * summary["parameters"].get<double>());
  CHECK(validate_json_schema(res.report, schema()).empty());
}
