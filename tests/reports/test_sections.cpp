// The section-kind registry (reports/include/mlaudit/reports/sections.h): one registration
// per kind holds its keys, checks, command arguments, metrics, report blocks and compliance
// row. These tests hold every registration to what the rest of the audit knows about it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/check.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/sections.h"
#include "report_test_util.h"
#include "section_harness.h"

using namespace mlaudit;
using namespace mlaudit::reports;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const json& report_schema() {
  static const json schema = json::parse(test::read_text(test::source_path("docs/report-schema.json")));
  return schema;
}

// The config with one section of `kind` written as `entry`, parsed as the audit parses it.
AuditConfig parse_entry(const std::string& dir, const SectionKindDef& kind, const std::string& entry) {
  return parse_config(test::section_harness(test::section_yaml(kind.name, entry)), dir + "/audit.yaml", dir, true);
}

std::string parse_error(const std::string& dir, const SectionKindDef& kind, const std::string& entry) {
  try {
    parse_entry(dir, kind, entry);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

// Arguments of the entry's (first) section; empty when the config is refused.
std::optional<std::vector<std::string>> args_of(const std::string& dir, const SectionKindDef& kind, const std::string& entry) {
  try {
    const AuditConfig cfg = parse_entry(dir, kind, entry);
    return section_command(cfg.sections.at(0), cfg, dir).args;
  } catch (const InputError&) {
    return std::nullopt;
  }
}

// Values of a key the config accepts (type-correct, inside its rule and allowed values).
std::vector<json> accepted_values(const SectionKey& key, const std::string& dir) {
  const std::string r = test::source_path("");
  switch (key.type) {
    case KeyType::Str:
      if (!key.choices.empty()) return {key.choices.begin(), key.choices.end()};
      return {"x", "extra"};  // any text; a data set id for keys naming one (privacy's members)
    case KeyType::Int: return {3};
    case KeyType::Num: return {0.5};
    case KeyType::Bool: return {true, false};
    case KeyType::StrList: {
      if (key.choices.empty()) return {json::array({"x"})};
      std::vector<json> out;
      for (const auto& c : key.choices) out.push_back(json::array({c}));
      return out;
    }
    case KeyType::NumList: return {json::array({0.5})};
    case KeyType::IntList: return {json::array({2})};
    case KeyType::Path: return {r + "datasets/demo/fmnist_x.npy", r + "datasets/credit/credit_test.csv", dir};
  }
  return {};
}

// Entries besides the registered example that a key may need (keys of another mode, or
// keys that only matter once another is set).
std::vector<std::string> bases(const SectionKindDef& kind) {
  std::vector<std::string> out = {kind.example};
  if (std::string(kind.name) == "verification") out.push_back("model: tab\ndata: table\nmode: fairness\nprotected: sex\n");
  if (std::string(kind.name) == "backdoor")
    out.push_back(std::string(kind.example) + "suspicious: " + test::source_path("datasets/demo/fmnist_x.npy") + "\n");
  return out;
}

}  // namespace

TEST_CASE("sections: the registry lists the kinds the report schema and the metric table know", "[reports][sections]") {
  const json& schema = report_schema();
  const json& defs = schema["$defs"];
  std::vector<std::string> names;
  for (const auto* k : section_kinds()) names.push_back(k->name);
  // the report's section kinds, in report order
  CHECK(names == defs["section"]["properties"]["kind"]["enum"].get<std::vector<std::string>>());
  REQUIRE(all_section_kinds().size() == section_kinds().size());
  std::set<std::string> offered;
  for (size_t i = 0; i < section_kinds().size(); ++i) {
    const SectionKindDef& k = *section_kinds()[i];
    INFO(k.name);
    CHECK(all_section_kinds()[i] == k.kind);
    CHECK(&section_kind_def(k.kind) == &k);
    CHECK(find_section_kind(k.name) == &k);
    CHECK(std::string(section_kind_name(k.kind)) == k.name);
    CHECK(result_schema_name(k.kind) == k.result_schema);
    CHECK(std::string(k.command).size() > 0);
    CHECK(k.args != nullptr);
    CHECK(std::string(k.compliance_title).size() > 0);
    CHECK(!k.references.empty());
    CHECK(std::string(k.example).size() > 0);
    // an ok section of this kind carries a result validated by the $defs entry of its schema
    std::string ref;
    for (const auto& rule : defs["section"]["allOf"])
      if (rule["if"]["properties"]["kind"].value("const", "") == k.name) ref = rule["then"]["properties"]["result"].value("$ref", "");
    REQUIRE(ref.rfind("#/$defs/", 0) == 0);
    const json& def = defs[ref.substr(8)];
    CHECK(def["properties"]["schema"]["const"] == std::string(k.result_schema) + "/1");
    // the metrics it offers are exactly the metric table's entries read from it
    std::set<std::string> from_table;
    for (const auto& m : metric_table())
      if (m.source == k.name) from_table.insert(m.name);
    CHECK(std::set<std::string>(k.metrics.begin(), k.metrics.end()) == from_table);
    offered.insert(k.metrics.begin(), k.metrics.end());
    // every key once; the kind's keys do not shadow the common ones
    std::set<std::string> keys;
    for (const auto& key : common_section_keys()) CHECK(keys.insert(key.name).second);
    for (const auto& key : k.keys) {
      INFO(key.name);
      CHECK(keys.insert(key.name).second);
    }
  }
  // every metric comes from a registered kind, or from the model summary
  for (const auto& m : metric_table())
    if (m.source != "model") CHECK(offered.count(m.name) == 1);
  // the model summary is read from `mlaudit info --out` (mlaudit.info/1)
  CHECK(defs["info_result"]["properties"]["schema"]["const"] == "mlaudit.info/1");
}

TEST_CASE("sections: every kind's example is a valid entry and every key reaches its command", "[reports][sections]") {
  const std::string dir = test::temp_dir("sections-keys");
  fs::create_directories(dir + "/inputs");
  for (const auto* kind : section_kinds()) {
    INFO(kind->name);
    for (const auto& base : bases(*kind)) {
      INFO(base);
      REQUIRE(args_of(dir, *kind, base));
    }
    for (const auto& key : kind->keys) {
      if (key.audit_only) continue;
      INFO(key.name);
      // a key that changes nothing on the command line would be checked by --check and then dropped
      bool reaches = false;
      for (const auto& base : bases(*kind)) {
        const auto before = args_of(dir, *kind, base);
        for (const auto& value : accepted_values(key, dir)) {
          const auto after = args_of(dir, *kind, test::with_key(base, key.name, value));
          reaches |= after && *after != *before;
        }
      }
      if (std::string(kind->name) == "verification" && std::string(key.name) == "mode") {
        // the mode switches between the two bases (an entry written for one mode is refused in the other)
        const auto robust = args_of(dir, *kind, bases(*kind)[0]), fair = args_of(dir, *kind, bases(*kind)[1]);
        reaches = std::count(fair->begin(), fair->end(), "--fairness") == 1 && std::count(robust->begin(), robust->end(), "--fairness") == 0;
      }
      CHECK(reaches);
    }
  }
}

TEST_CASE("sections: a value a key's type, rule or allowed values refuse is refused at the key's position", "[reports][sections]") {
  const std::string dir = test::temp_dir("sections-refused");
  for (const auto* kind : section_kinds()) {
    std::vector<SectionKey> keys = common_section_keys();
    keys.insert(keys.end(), kind->keys.begin(), kind->keys.end());
    for (const auto& key : keys) {
      for (const auto& value : test::refused_values(key)) {
        INFO(kind->name << "." << key.name << " = " << value.dump());
        const std::string entry = test::with_key(kind->example, key.name, value);
        const std::string yaml = test::section_harness(test::section_yaml(kind->name, entry));
        // the key is the entry's last line
        const size_t line = size_t(std::count(yaml.begin(), yaml.end(), '\n'));
        const std::string error = parse_error(dir, *kind, entry);
        CHECK(error.find(dir + "/audit.yaml:" + std::to_string(line) + ":") != std::string::npos);
        CHECK(error.find(key.name) != std::string::npos);
      }
    }
  }
}

TEST_CASE("sections: the developer docs show efficiency.cpp as it is", "[reports][sections]") {
  // docs/dev/architecture.md, "Adding an audit section kind": the smallest registration, verbatim
  const std::string doc = test::read_text(test::source_path("docs/dev/architecture.md"));
  const size_t heading = doc.find("## Adding an audit section kind");
  REQUIRE(heading != std::string::npos);
  const size_t open = doc.find("```cpp\n", heading);
  REQUIRE(open != std::string::npos);
  const size_t close = doc.find("```\n", open + 7);
  REQUIRE(close != std::string::npos);
  const std::string shown = doc.substr(open + 7, close - open - 7);
  std::string file = test::read_text(test::source_path("reports/src/sections/efficiency.cpp"));
  while (file.rfind("//", 0) == 0) file = file.substr(file.find('\n') + 1);  // the file's opening comment
  CHECK(shown == file);
}

TEST_CASE("sections: docs/audit.md has a row for every registered kind naming each of its keys", "[reports][sections]") {
  const std::string doc = test::read_text(test::source_path("docs/audit.md"));
  for (const auto* kind : section_kinds()) {
    INFO(kind->name);
    const size_t row = doc.find("\n| `" + std::string(kind->name) + "` |");
    REQUIRE(row != std::string::npos);
    const std::string line = doc.substr(row + 1, doc.find('\n', row + 1) - row - 1);
    for (const auto& key : kind->keys) {
      INFO(key.name);
      CHECK(line.find("`" + std::string(key.name) + "`") != std::string::npos);
    }
  }
}
