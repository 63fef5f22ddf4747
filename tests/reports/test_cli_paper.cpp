// `--paper` on `mlaudit report` and `mlaudit audit`: A4 by default, letter on request,
// anything else refused with exit 2 and one line naming the option.
#include <catch2/catch.hpp>

#include <filesystem>

#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
namespace fs = std::filesystem;

namespace {

// A saved report.json from the fixture sections (no PDF).
std::string saved_report(const std::string& tag) {
  std::string dir = test::temp_dir(tag);
  test::write_text(dir + "/audit.yaml", test::full_config(test::kPassingGates));
  reports::AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  reports::run_audit(reports::load_config(dir + "/audit.yaml"), o, std::ref(fake));
  return dir + "/out/report.json";
}

}  // namespace

TEST_CASE("report --paper: A4 by default, letter accepted, a bad value exits 2 with one line", "[reports][cli][paper]") {
  const std::string json = saved_report("paper-cli");
  const std::string dir = fs::path(json).parent_path().string();
  auto r = test::run_cli("report --in " + json + " --format html --out " + dir + "/a4.html");
  REQUIRE(r.exit_code == 0);
  CHECK(test::read_text(dir + "/a4.html").find("@page{size:A4;") != std::string::npos);
  r = test::run_cli("report --in " + json + " --format html --out " + dir + "/letter.html --paper letter");
  REQUIRE(r.exit_code == 0);
  CHECK(test::read_text(dir + "/letter.html").find("@page{size:letter;") != std::string::npos);
  r = test::run_cli("report --in " + json + " --format html --out " + dir + "/a5.html --paper a5");
  CHECK(r.exit_code == 2);
  CHECK(r.output == "mlaudit: error: report: --paper: 'a5' is not one of a4, letter\n");
  CHECK_FALSE(fs::exists(dir + "/a5.html"));
}

TEST_CASE("audit --paper: checked before any section runs, letter reaches report.html", "[reports][cli][paper]") {
  std::string dir = test::temp_dir("paper-audit");
  test::write_text(dir + "/audit.yaml", test::full_config(test::kPassingGates));
  auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --paper A5 --check");
  CHECK(r.exit_code == 2);
  CHECK(r.output == "mlaudit: error: audit: --paper: 'A5' is not one of a4, letter\n");
  // a valid value passes the dry run
  r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/out --paper Letter --check --quiet");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  // the pipeline writes the page size it is given
  reports::AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  o.paper = "letter";
  test::FakeRunner fake;
  reports::run_audit(reports::load_config(dir + "/audit.yaml"), o, std::ref(fake));
  CHECK(test::read_text(dir + "/out/report.html").find("@page{size:letter;") != std::string::npos);
}
