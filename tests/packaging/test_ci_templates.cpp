// The GitHub Action (action.yml) and the GitLab CI template (.ci/mlaudit.gitlab-ci.yml):
// their structure as GitHub and GitLab read it, every input/variable they use declared, and the
// Action's audit step run as a script here on a small audit (exit code and job summary).
#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "test_util.h"

using namespace mlaudit;

namespace {

std::set<std::string> matches(const std::string& text, const std::string& pattern) {
  std::set<std::string> out;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it)
    out.insert((*it)[1].str());
  return out;
}

YAML::Node step_named(const YAML::Node& steps, const std::string& name) {
  for (const auto& s : steps)
    if (s["name"] && s["name"].as<std::string>() == name) return s;
  FAIL("no step named " << name);
  return {};
}

}  // namespace

TEST_CASE("action.yml: a composite action whose steps and inputs fit together", "[packaging][ci]") {
  const std::string path = test::source_path("action.yml");
  const std::string text = test::read_text(path);
  const YAML::Node a = YAML::LoadFile(path);
  CHECK(a["name"].IsScalar());
  CHECK(a["description"].IsScalar());
  REQUIRE(a["runs"]["using"].as<std::string>() == "composite");
  const YAML::Node steps = a["runs"]["steps"];
  REQUIRE(steps.IsSequence());
  std::set<std::string> ids;
  for (const auto& s : steps) {
    INFO(YAML::Dump(s));
    CHECK(s["name"].IsScalar());
    CHECK(bool(s["run"]) != bool(s["uses"]));   // exactly one of run / uses
    if (s["run"]) CHECK(s["shell"].IsScalar());  // composite run steps must name their shell
    if (s["id"]) ids.insert(s["id"].as<std::string>());
  }
  std::set<std::string> declared;
  for (const auto& kv : a["inputs"]) {
    const std::string name = kv.first.as<std::string>();
    declared.insert(name);
    INFO("input " << name);
    CHECK(kv.second["description"].IsScalar());
    if (kv.second["required"] && kv.second["required"].as<bool>()) CHECK_FALSE(kv.second["default"]);
  }
  for (const auto& used : matches(text, R"(\binputs\.([A-Za-z0-9_-]+))")) {
    INFO("inputs." << used);
    CHECK(declared.count(used) == 1);
  }
  for (const auto& used : matches(text, R"(\bsteps\.([A-Za-z0-9_-]+)\.outputs)")) {
    INFO("steps." << used);
    CHECK(ids.count(used) == 1);
  }
  for (const auto& kv : a["outputs"]) {
    CHECK(kv.second["description"].IsScalar());
    CHECK(kv.second["value"].IsScalar());
  }
}

TEST_CASE("action.yml: the audit step run here gives the audit's exit code and the job summary", "[packaging][ci]") {
  const YAML::Node a = YAML::LoadFile(test::source_path("action.yml"));
  const std::string script = step_named(a["runs"]["steps"], "Audit")["run"].as<std::string>();
  const std::string dir = test::temp_dir("ci-action");
  std::ofstream(dir + "/audit.sh") << script;
  const std::string root = test::source_path("");
  for (const auto& [name, bar] : std::vector<std::pair<std::string, std::string>>{{"pass", "0.5"}, {"fail", "0.99"}}) {
    std::ofstream(dir + "/" + name + ".yaml")
        << "models:\n  credit: " << root << "models/credit_mlp.onnx\n"
        << "datasets:\n  credit:\n    csv: " << root << "datasets/credit/credit_test.csv\n    label: approved\n"
        << "    features: " << root << "datasets/credit/features.txt\n"
        << "sections:\n  performance: {model: credit, data: credit, bootstrap: 100}\n"
        << "gates:\n  - accuracy() >= " << bar << "\n";
    const std::string out = dir + "/" + name + "-report";
    const std::string env = "MLAUDIT_BIN=" + test::mlaudit_exe() + " MLAUDIT_CONFIG=" + dir + "/" + name +
                            ".yaml MLAUDIT_OUT=" + out + " MLAUDIT_DIFF= MLAUDIT_THREADS=2 GITHUB_OUTPUT=" + dir + "/" +
                            name + ".out GITHUB_STEP_SUMMARY=" + dir + "/" + name + ".md";
    const int status = std::system((env + " bash " + dir + "/audit.sh > " + dir + "/" + name + ".log 2>&1").c_str());
    INFO(test::read_text(dir + "/" + name + ".log"));
    CHECK(WEXITSTATUS(status) == 0);  // the step records the code; the last step fails the job
    CHECK(test::read_text(dir + "/" + name + ".out") == (name == "pass" ? "exit-code=0\n" : "exit-code=1\n"));
    CHECK(test::read_text(dir + "/" + name + ".md").find("accuracy() >=") != std::string::npos);
    CHECK(std::filesystem::exists(out + "/junit.xml"));
  }
}

TEST_CASE(".ci/mlaudit.gitlab-ci.yml: a hidden job with the report as artifact and JUnit test report", "[packaging][ci]") {
  const std::string path = test::source_path(".ci/mlaudit.gitlab-ci.yml");
  const std::string text = test::read_text(path);
  const YAML::Node t = YAML::LoadFile(path);
  const YAML::Node job = t[".mlaudit-audit"];
  REQUIRE(job.IsMap());
  CHECK(job["image"].IsScalar());
  CHECK(job["script"].IsSequence());
  CHECK(job["before_script"].IsSequence());
  CHECK(job["artifacts"]["when"].as<std::string>() == "always");
  CHECK(job["artifacts"]["reports"]["junit"].as<std::string>().find("junit.xml") != std::string::npos);
  std::set<std::string> declared;
  for (const auto& kv : job["variables"]) declared.insert(kv.first.as<std::string>());
  declared.insert("MLAUDIT_BIN");  // set by before_script
  for (const auto& used : matches(text, R"(\$\{?(MLAUDIT_[A-Z_]+))")) {
    INFO("$" << used);
    CHECK(declared.count(used) == 1);
  }
}
