// `mlaudit audit --check` and `mlaudit audit` read every section key through the same
// registration (reports/src/sections/<kind>.cpp), so they accept and refuse the same
// values with the same message; every kind's smallest entry passes the check and runs.
#include <catch2/catch.hpp>

#include <filesystem>

#include "mlaudit/reports/report.h"
#include "mlaudit/reports/sections.h"
#include "report_test_util.h"
#include "section_harness.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Outcome {
  test::CommandResult check, run;
};

Outcome check_and_run(const std::string& dir, const std::string& yaml) {
  test::write_text(dir + "/audit.yaml", yaml);
  Outcome o;
  o.check = test::run_cli("audit --config " + dir + "/audit.yaml --check");
  o.run = test::run_cli("-q audit --config " + dir + "/audit.yaml --out " + dir + "/out --no-pdf");
  return o;
}

}  // namespace

TEST_CASE("audit --check and the run refuse every refused section value alike", "[reports][cli][sections]") {
  const std::string dir = test::temp_dir("sections-agree");
  std::vector<std::tuple<std::string, std::string, json>> cases;  // kind, key, value
  for (const auto* kind : section_kinds()) {
    std::vector<SectionKey> keys = kind->keys;
    if (kind == section_kinds().front()) keys.insert(keys.begin(), common_section_keys().begin(), common_section_keys().end());
    for (const auto& key : keys)
      for (const auto& value : test::refused_values(key)) cases.emplace_back(kind->name, key.name, value);
  }
  // values the config accepts and the dry run refuses against the modules' own tables
  cases.emplace_back("robustness", "attack", "bogus");
  cases.emplace_back("explanations", "method", "bogus");
  cases.emplace_back("corruption", "corruptions", json::array({"bogus"}));
  cases.emplace_back("fairness", "positive", "bogus");
  cases.emplace_back("verification", "norm", "l2");
  for (const auto& [kind_name, key, value] : cases) {
    INFO(kind_name << "." << key << " = " << value.dump());
    const SectionKindDef* kind = find_section_kind(kind_name);
    REQUIRE(kind);
    const Outcome o = check_and_run(dir, test::section_harness(test::section_yaml(kind_name, test::with_key(kind->example, key, value))));
    INFO(o.check.output);
    CHECK(o.check.exit_code == 2);
    CHECK(o.run.exit_code == 2);
    CHECK(o.run.output == o.check.output);
    CHECK(o.check.output.find("audit.yaml:") != std::string::npos);
    CHECK(!fs::exists(dir + "/out/report.json"));
  }
}

TEST_CASE("audit: every section kind's smallest entry passes --check and runs, its result valid against the schema",
          "[reports][cli][sections]") {
  const std::string dir = test::temp_dir("sections-run");
  // the registered examples, with a few rows and short budgets so the test stays quick
  // (a kind not listed here runs its example as it is)
  const std::map<std::string, std::string> quick = {
      {"performance", "limit: 4\n"},          {"efficiency", "runs: 3\nbatch: 4\n"},
      {"robustness", "limit: 4\n"},           {"certification", "limit: 4\nn0: 10\nn: 50\n"},
      {"corruption", "limit: 4\n"},           {"fairness", "bootstrap: 50\n"},
      {"explanations", "limit: 2\n"},         {"verification", "limit: 2\ntimeout: 2\n"},
      {"privacy", "limit: 8\n"},              {"backdoor", "limit: 20\nepochs: 1\nclasses: [0, 1]\n"}};
  std::string sections;
  for (const auto* kind : section_kinds())
    sections += test::section_yaml(kind->name, kind->example + (quick.count(kind->name) ? quick.at(kind->name) : std::string()));
  const Outcome o = check_and_run(dir, test::section_harness(sections));
  INFO(o.check.output);
  INFO(o.run.output);
  REQUIRE(o.check.exit_code == 0);
  REQUIRE(o.run.exit_code == 0);
  const json report = json::parse(test::read_text(dir + "/out/report.json"));
  REQUIRE(report["sections"].size() == section_kinds().size());
  for (size_t i = 0; i < section_kinds().size(); ++i) {
    const SectionKindDef& kind = *section_kinds()[i];
    const json& s = report["sections"][i];
    INFO(kind.name << ": " << s.value("error", ""));
    CHECK(s["kind"] == kind.name);
    CHECK(s["status"] == "ok");
    CHECK(s["command"][1] == kind.command);
    CHECK(s["result"].value("schema", "") == std::string(kind.result_schema) + "/1");
  }
  // each kind's result against its $defs entry (docs/report-schema.json)
  const auto problems = validate_json_schema(report, json::parse(test::read_text(test::source_path("docs/report-schema.json"))));
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  INFO(all);
  CHECK(problems.empty());
}

TEST_CASE("audit: the privacy section's LiRA variances are the ones mlaudit privacy takes", "[reports][cli][sections]") {
  // `mlaudit privacy --fixed-variance` parses its value in the command; its help names the values
  const auto r = test::run_cli("privacy --help");
  std::string names;
  const auto& choices = find_section_kind("privacy")->keys;
  for (const auto& key : choices)
    if (std::string(key.name) == "fixed_variance")
      for (size_t i = 0; i < key.choices.size(); ++i)
        names += (i == 0 ? "" : i + 1 == key.choices.size() ? " or " : ", ") + key.choices[i];
  INFO(r.output);
  CHECK(r.output.find("LiRA variance: " + names) != std::string::npos);
}
