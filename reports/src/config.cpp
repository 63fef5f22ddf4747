// audit.yaml parser: every key and type checked against the tables below
// before any work starts; errors carry "file:line:column".
#include "mlaudit/reports/config.h"

#include "mlaudit/datasets/validate.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/sections.h"
#include "sections/context.h"

namespace fs = std::filesystem;

namespace mlaudit::reports {

const char* comparison_symbol(Comparison c) {
  switch (c) {
    case Comparison::Ge: return ">=";
    case Comparison::Gt: return ">";
    case Comparison::Le: return "<=";
    case Comparison::Lt: return "<";
    case Comparison::Eq: return "==";
    case Comparison::Ne: return "!=";
  }
  return "?";
}

const ModelSpec* AuditConfig::model(const std::string& id) const {
  for (const auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

const DatasetSpec* AuditConfig::dataset(const std::string& id) const {
  for (const auto& d : datasets)
    if (d.id == id) return &d;
  return nullptr;
}

std::string AuditConfig::where(const SourceMark& m) const { return fmt::format("{}:{}:{}", path, m.line, m.column); }

SourceMark SectionSpec::mark_of(const std::string& key) const {
  auto it = marks.find(key);
  return it != marks.end() ? it->second : mark;
}

size_t edit_distance(const std::string& a, const std::string& b) { return datasets::edit_distance(a, b); }

namespace {

// Value types a config key may hold.
enum class T { Str, Int, Num, Bool, StrList, NumList, IntList, Path, Any };

struct KeySpec {
  const char* name;
  T type;
  bool required;
  bool old_spelling = false;  // accepted, but not offered in "expected one of"
};

// A section key (sections.h) as the parser's key table entry.
KeySpec key_spec(const SectionKey& k) {
  static const std::map<KeyType, T> types = {{KeyType::Str, T::Str},         {KeyType::Int, T::Int},
                                             {KeyType::Num, T::Num},         {KeyType::Bool, T::Bool},
                                             {KeyType::StrList, T::StrList}, {KeyType::NumList, T::NumList},
                                             {KeyType::IntList, T::IntList}, {KeyType::Path, T::Path}};
  return {k.name, types.at(k.type), k.required, k.old_spelling};
}

const std::vector<KeySpec> kTopKeys = {{"version", T::Int, false}, {"system", T::Any, false},
                                       {"seed", T::Int, false},    {"models", T::Any, true},
                                       {"datasets", T::Any, false}, {"sections", T::Any, true},
                                       {"gates", T::Any, false}};
const std::vector<KeySpec> kSystemKeys = {{"name", T::Str, false},         {"version", T::Str, false},
                                          {"owner", T::Str, false},        {"description", T::Str, false},
                                          {"intended_use", T::Str, false}, {"out_of_scope", T::Str, false},
                                          {"limitations", T::StrList, false}};
const std::vector<KeySpec> kModelKeys = {{"path", T::Path, true}, {"output", T::Str, false}};
const std::vector<KeySpec> kDatasetKeys = {{"data", T::Path, false},     {"labels", T::Path, false},
                                           {"csv", T::Path, false},      {"label", T::Str, false},
                                           {"protected", T::StrList, false}, {"features", T::Any, false},
                                           {"domain", T::NumList, false}};
const std::vector<KeySpec> kGateKeys = {{"check", T::Str, true},    {"name", T::Str, false},
                                        {"model", T::Str, false},   {"severity", T::Str, false},
                                        {"description", T::Str, false}};

class Parser;

// SectionParse (sections/context.h) over the parser's YAML nodes: failures name the key's line and column.
class EntryParse final : public SectionParse {
 public:
  EntryParse(const Parser& parser, SectionSpec& spec, const AuditConfig& config, const YAML::Node& entry)
      : SectionParse(spec, config), parser_(parser), entry_(entry) {}
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const override;
  [[noreturn]] void fail_entry(const std::string& msg) const override;
  std::string suggest(const std::string& value, const std::vector<std::string>& options) const override;

 private:
  const Parser& parser_;
  const YAML::Node& entry_;
};

class Parser {
 public:
  Parser(std::string source, std::string base_dir, bool check_files)
      : source_(std::move(source)), base_dir_(std::move(base_dir)), check_files_(check_files) {}

  static SourceMark at(const YAML::Mark& m) { return {m.line + 1, m.column + 1}; }

  [[noreturn]] void fail(const YAML::Mark& m, const std::string& msg) const {
    throw InputError("audit", fmt::format("{}:{}:{}: {}", source_, m.line + 1, m.column + 1, msg));
  }

  std::string suggest(const std::string& key, const std::vector<std::string>& options) const {
    std::string best;
    size_t best_d = std::string::npos;
    for (const auto& o : options) {
      size_t d = edit_distance(key, o);
      if (d < best_d) best_d = d, best = o;
    }
    if (!best.empty() && best_d <= std::max<size_t>(2, key.size() / 3)) return fmt::format(" (did you mean '{}'?)", best);
    std::string all;
    for (const auto& o : options) all += (all.empty() ? "" : ", ") + o;
    return fmt::format(" (expected one of: {})", all);
  }

  // Check a mapping's keys against `specs`; returns key -> value node.
  std::map<std::string, YAML::Node> check_map(const YAML::Node& node, const std::vector<KeySpec>& specs,
                                              const std::string& what) const {
    if (!node.IsMap()) fail(node.Mark(), fmt::format("{} must be a mapping of keys to values", what));
    std::vector<std::string> names, offered;
    for (const auto& s : specs) {
      names.push_back(s.name);
      if (!s.old_spelling) offered.push_back(s.name);
    }
    std::map<std::string, YAML::Node> out;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first.Mark(), fmt::format("{}: keys must be plain names", what));
      std::string key = it->first.Scalar();
      if (std::find(names.begin(), names.end(), key) == names.end())
        fail(it->first.Mark(), fmt::format("unknown key '{}' in {}{}", key, what, suggest(key, offered)));
      if (out.count(key)) fail(it->first.Mark(), fmt::format("duplicate key '{}' in {}", key, what));
      out[key] = it->second;
    }
    for (const auto& s : specs)
      if (s.required && !out.count(s.name)) fail(node.Mark(), fmt::format("{} needs the key '{}'", what, s.name));
    return out;
  }

  std::string str(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar()) fail(n.Mark(), fmt::format("'{}' must be a string", key));
    return n.Scalar();
  }
  double num(const YAML::Node& n, const std::string& key) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      size_t pos = 0;
      double v = 0;
      try {
        v = std::stod(s, &pos);
      } catch (...) {
        pos = 0;
      }
      if (pos == s.size() && !s.empty() && std::isfinite(v)) return v;
      // a fraction "a/b" (eps: [8/255]), as on the command line
      const size_t slash = s.find('/');
      if (slash != std::string::npos && slash > 0 && slash + 1 < s.size()) {
        try {
          size_t p1 = 0, p2 = 0;
          const double a = std::stod(s.substr(0, slash), &p1), b = std::stod(s.substr(slash + 1), &p2);
          if (p1 == slash && p2 == s.size() - slash - 1 && b != 0 && std::isfinite(a / b)) return a / b;
        } catch (...) {
        }
      }
    }
    fail(n.Mark(), fmt::format("'{}' must be a number (or a fraction like 8/255)", key));
  }
  int64_t integer(const YAML::Node& n, const std::string& key) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      size_t pos = 0;
      long long v = 0;
      try {
        v = std::stoll(s, &pos);
      } catch (...) {
        pos = 0;
      }
      if (pos == s.size() && !s.empty()) return v;
    }
    fail(n.Mark(), fmt::format("'{}' must be an integer", key));
  }
  bool boolean(const YAML::Node& n, const std::string& key) const {
    if (n.IsScalar()) {
      std::string s = n.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(n.Mark(), fmt::format("'{}' must be true or false", key));
  }
  // A list, or a single scalar standing for a one-element list.
  std::vector<YAML::Node> items(const YAML::Node& n, const std::string& key, const char* kind) const {
    std::vector<YAML::Node> out;
    if (n.IsScalar()) {
      out.push_back(n);
    } else if (n.IsSequence()) {
      for (const auto& e : n) out.push_back(e);
      if (out.empty()) fail(n.Mark(), fmt::format("'{}' must not be an empty list", key));
    } else {
      fail(n.Mark(), fmt::format("'{}' must be a list of {}", key, kind));
    }
    return out;
  }
  std::string path(const YAML::Node& n, const std::string& key) const {
    std::string p = str(n, key);
    if (p.empty()) fail(n.Mark(), fmt::format("'{}' must name a file", key));
    fs::path full = fs::path(p).is_absolute() ? fs::path(p) : fs::path(base_dir_) / p;
    std::string s = full.lexically_normal().string();
    if (check_files_ && !fs::exists(full)) fail(n.Mark(), fmt::format("{}: file '{}' not found", key, s));
    return s;
  }

  // Convert a value to JSON according to its declared type.
  nlohmann::json typed(const YAML::Node& n, const KeySpec& spec) const {
    const std::string key = spec.name;
    switch (spec.type) {
      case T::Str: return str(n, key);
      case T::Int: return integer(n, key);
      case T::Num: return num(n, key);
      case T::Bool: return boolean(n, key);
      case T::Path: return path(n, key);
      case T::StrList: {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& e : items(n, key, "strings")) {
          if (!e.IsScalar()) fail(e.Mark(), fmt::format("'{}' must be a list of strings", key));
          a.push_back(e.Scalar());
        }
        return a;
      }
      case T::NumList: {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& e : items(n, key, "numbers")) a.push_back(num(e, key));
        return a;
      }
      case T::IntList: {
        nlohmann::json a = nlohmann::json::array();
        for (const auto& e : items(n, key, "integers")) a.push_back(integer(e, key));
        return a;
      }
      case T::Any: return nullptr;
    }
    return nullptr;
  }

  AuditConfig parse(const YAML::Node& root) {
    AuditConfig cfg;
    cfg.path = source_;
    cfg.base_dir = base_dir_;
    if (!root.IsDefined() || root.IsNull()) throw InputError("audit", fmt::format("{}: the config is empty", source_));
    auto top = check_map(root, kTopKeys, "the config");
    if (top.count("version") && integer(top["version"], "version") != 1)
      fail(top["version"].Mark(), "unsupported config version (this mlaudit reads version 1)");
    if (top.count("seed")) cfg.seed = static_cast<uint64_t>(integer(top["seed"], "seed"));
    if (top.count("system")) parse_system(top["system"], cfg.system);
    parse_models(top["models"], cfg);
    if (top.count("datasets")) parse_datasets(top["datasets"], cfg);
    parse_sections(top["sections"], cfg);
    if (top.count("gates") && !top["gates"].IsNull()) parse_gates(top["gates"], cfg);
    return cfg;
  }

  void parse_system(const YAML::Node& n, SystemInfo& s) {
    auto m = check_map(n, kSystemKeys, "'system'");
    auto get = [&](const char* k, std::string& dst) {
      if (m.count(k)) dst = str(m[k], k);
    };
    get("name", s.name);
    get("version", s.version);
    get("owner", s.owner);
    get("description", s.description);
    get("intended_use", s.intended_use);
    get("out_of_scope", s.out_of_scope);
    if (m.count("limitations"))
      for (const auto& e : typed(m["limitations"], kSystemKeys.back())) s.limitations.push_back(e.get<std::string>());
  }

  void parse_models(const YAML::Node& n, AuditConfig& cfg) {
    if (!n.IsMap() || n.size() == 0) fail(n.Mark(), "'models' must map model ids to ONNX files (e.g. 'cnn: model.onnx')");
    for (auto it = n.begin(); it != n.end(); ++it) {
      ModelSpec m;
      m.id = str(it->first, "model id");
      const YAML::Node spec = it->second;  // const: reading a missing key must not add it
      m.mark = at(spec.IsMap() && spec["path"] ? spec["path"].Mark() : spec.Mark());
      std::string what = fmt::format("model '{}'", m.id);
      if (it->second.IsScalar()) {
        m.path = path(it->second, what);
      } else {
        auto keys = check_map(it->second, kModelKeys, what);
        m.path = path(keys["path"], what);
        if (keys.count("output")) m.output = str(keys["output"], "output");
      }
      if (cfg.model(m.id)) fail(it->first.Mark(), fmt::format("duplicate model id '{}'", m.id));
      cfg.models.push_back(m);
    }
  }

  void parse_datasets(const YAML::Node& n, AuditConfig& cfg) {
    if (!n.IsMap()) fail(n.Mark(), "'datasets' must map data set ids to their files");
    for (auto it = n.begin(); it != n.end(); ++it) {
      DatasetSpec d;
      d.id = str(it->first, "data set id");
      std::string what = fmt::format("data set '{}'", d.id);
      auto m = check_map(it->second, kDatasetKeys, what);
      d.mark = at(it->second.Mark());
      for (const auto& [key, node] : m) d.marks[key] = at(node.Mark());
      if (m.count("data")) d.data = path(m["data"], "data");
      if (m.count("labels")) d.labels = path(m["labels"], "labels");
      if (m.count("csv")) d.csv = path(m["csv"], "csv");
      if (m.count("label")) d.label = str(m["label"], "label");
      if (m.count("protected"))
        for (const auto& e : typed(m["protected"], {"protected", T::StrList, false}))
          d.protected_attributes.push_back(e.get<std::string>());
      if (m.count("features")) {
        const YAML::Node& f = m["features"];
        if (f.IsScalar()) {
          d.features_file = path(f, "features");
          if (check_files_) {
            const std::string names_text = datasets::read_file(d.features_file, 1 << 20);
            datasets::require_utf8(names_text, d.features_file, "audit");
            std::istringstream in(names_text);
            std::string line;
            while (std::getline(in, line)) {
              while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
              if (!line.empty()) d.features.push_back(line);
            }
            if (d.features.empty()) fail(f.Mark(), fmt::format("features: '{}' lists no feature names", d.features_file));
          }
        } else {
          for (const auto& e : typed(f, {"features", T::StrList, false})) d.features.push_back(e.get<std::string>());
        }
      }
      if (m.count("domain")) {
        // [min, max] of every input element, the --clip-min/--clip-max of attack and verify (both
        // default to [0, 1] without it); YAML's .inf / -.inf leave a side open (standardised tabular rows).
        const YAML::Node& dn = m["domain"];
        if (!dn.IsSequence() || dn.size() != 2) fail(dn.Mark(), "'domain' must be [min, max] with min < max");
        double bound[2];
        for (size_t k = 0; k < 2; ++k) {
          const std::string t = dn[k].IsScalar() ? dn[k].Scalar() : "";
          if (t == ".inf" || t == ".Inf" || t == ".INF" || t == "+.inf" || t == "inf") bound[k] = HUGE_VAL;
          else if (t == "-.inf" || t == "-.Inf" || t == "-.INF" || t == "-inf") bound[k] = -HUGE_VAL;
          else bound[k] = num(dn[k], "domain");
        }
        if (!(bound[0] < bound[1])) fail(dn.Mark(), "'domain' must be [min, max] with min < max");
        d.domain = std::make_pair(bound[0], bound[1]);
      }
      if (d.data.empty() == d.csv.empty()) fail(it->second.Mark(), fmt::format("{} needs exactly one of 'data' (.npy) or 'csv'", what));
      if (!d.csv.empty() && d.label.empty()) fail(it->second.Mark(), fmt::format("{}: a CSV data set needs 'label' (the label column)", what));
      // .npy data without 'labels' serves only as an explanation 'background' (checked per section)
      if (cfg.dataset(d.id)) fail(it->first.Mark(), fmt::format("duplicate data set id '{}'", d.id));
      cfg.datasets.push_back(d);
    }
  }

  void parse_sections(const YAML::Node& n, AuditConfig& cfg) {
    std::vector<std::string> kind_names;
    for (const auto* k : section_kinds()) kind_names.push_back(k->name);
    if (!n.IsMap()) fail(n.Mark(), "'sections' must map section kinds (performance, robustness, ...) to entries");
    std::set<std::string> ids;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string kname = str(it->first, "section kind");
      auto kit = std::find(kind_names.begin(), kind_names.end(), kname);
      if (kit == kind_names.end())
        fail(it->first.Mark(), fmt::format("unknown key '{}' in 'sections'{}", kname, suggest(kname, kind_names)));
      const SectionKindDef& kind = *section_kinds()[kit - kind_names.begin()];
      std::vector<YAML::Node> entries;
      // Copy the node out of the iterator's proxy: range-for over `it->second`
      // would bind to a member of a temporary (ASan: stack-use-after-scope).
      const YAML::Node value = it->second;
      if (value.IsSequence()) {
        for (const auto& e : value) entries.push_back(e);
      } else {
        entries.push_back(value);
      }
      for (const auto& e : entries) parse_section_entry(e, kind, cfg, ids);
    }
  }

  void parse_section_entry(const YAML::Node& e, const SectionKindDef& kind, AuditConfig& cfg, std::set<std::string>& ids) {
    std::vector<SectionKey> keys = common_section_keys();
    keys.insert(keys.end(), kind.keys.begin(), kind.keys.end());
    std::vector<KeySpec> specs;
    for (const auto& k : keys) specs.push_back(key_spec(k));
    std::string what = fmt::format("'{}' entry", kind.name);
    auto m = check_map(e, specs, what);
    SectionSpec s;
    s.kind = kind.kind;
    s.mark = {e.Mark().line + 1, e.Mark().column + 1};
    s.model = str(m["model"], "model");
    if (!cfg.model(s.model)) {
      std::vector<std::string> ids_;
      for (const auto& mm : cfg.models) ids_.push_back(mm.id);
      fail(m["model"].Mark(), fmt::format("unknown model '{}'{}", s.model, suggest(s.model, ids_)));
    }
    if (m.count("data")) {
      s.data = str(m["data"], "data");
      if (!cfg.dataset(s.data)) {
        std::vector<std::string> ids_;
        for (const auto& d : cfg.datasets) ids_.push_back(d.id);
        fail(m["data"].Mark(), fmt::format("unknown data set '{}'{}", s.data, suggest(s.data, ids_)));
      }
    } else if (!kind.data_optional) {
      fail(e.Mark(), fmt::format("{} needs the key 'data'", what));
    }
    if (const DatasetSpec* d = cfg.dataset(s.data); d && !d->data.empty() && d->labels.empty())
      fail(m["data"].Mark(), fmt::format("data set '{}' has no 'labels' (.npy data needs them; a set without labels can only be a 'background')", d->id));
    for (const auto& [key, node] : m) {
      s.marks[key] = at(node.Mark());
      if (node.IsSequence())
        for (size_t i = 0; i < node.size(); ++i) s.marks[fmt::format("{}[{}]", key, i)] = at(node[i].Mark());
    }
    for (const auto& spec : specs) {
      std::string k = spec.name;
      if (k == "model" || k == "data" || k == "id" || !m.count(k)) continue;
      // 'background' names a data set (like privacy's 'members'); a path is its old meaning
      if (k == "background" && m[k].IsScalar() && cfg.dataset(m[k].Scalar())) {
        const DatasetSpec* bg = cfg.dataset(m[k].Scalar());
        if (bg->is_csv())
          fail(m[k].Mark(), fmt::format("{}: 'background' data set '{}' is a CSV; it needs .npy rows", what, bg->id));
        s.params[k] = bg->data;
        continue;
      }
      s.params[k] = typed(m[k], spec);
    }
    if (s.params.contains("allow_foreign_model") && !s.params.contains("result"))
      fail(m["allow_foreign_model"].Mark(), fmt::format("{}: 'allow_foreign_model' applies to an imported 'result' only", what));
    // every key's registered rule and allowed values (sections.h): one place for --check and the run
    for (const auto& key : keys) {
      if (!s.params.contains(key.name)) continue;
      const nlohmann::json& v = s.params[key.name];
      const YAML::Mark mark = m[key.name].Mark();
      switch (key.rule) {
        case KeyRule::None: break;
        case KeyRule::Positive:
          if (v.get<double>() <= 0) fail(mark, fmt::format("'{}' must be positive", key.name));
          break;
        case KeyRule::OpenUnit:
          if (!(v.get<double>() > 0 && v.get<double>() < 1)) fail(mark, fmt::format("'{}' must lie strictly between 0 and 1", key.name));
          break;
        case KeyRule::NonNegative:
          for (const auto& x : v.is_array() ? v : nlohmann::json::array({v}))
            if (x.get<double>() < 0) fail(mark, fmt::format("'{}' values must be non-negative", key.name));
          break;
      }
      if (key.choices.empty()) continue;
      for (const auto& x : v.is_array() ? v : nlohmann::json::array({v})) {
        const std::string value = x.get<std::string>();
        if (std::find(key.choices.begin(), key.choices.end(), value) == key.choices.end())
          fail(mark, fmt::format("'{}' cannot {} '{}'{}", key.name, v.is_array() ? "contain" : "be", value, suggest(value, key.choices)));
      }
    }
    // one meaning per word: 'limit' is rows (the CLI's --limit), 'nsamples' is draws;
    // 'samples' is limit's old spelling
    if (s.params.contains("samples")) {
      if (s.params.contains("limit"))
        fail(m["samples"].Mark(), fmt::format("{}: 'samples' is the old spelling of 'limit'; give only 'limit'", what));
      s.params["limit"] = s.params["samples"];
      s.params.erase("samples");
      s.marks["limit"] = s.marks["samples"];
    }
    // the kind's own checks and defaults
    EntryParse v(*this, s, cfg, e);
    v.ds = s.data.empty() ? nullptr : cfg.dataset(s.data);
    v.what = what;
    v.check_files = check_files_;
    if (kind.validate) kind.validate(v);
    const std::string base_id = std::string(kind.name) + "-" + s.model + v.id_suffix;
    const std::vector<std::string>& variants = v.variants;  // robustness: one run per attack; explanations: one per method
    auto add = [&](SectionSpec sec, const std::string& variant_key, const std::string& variant, size_t index) {
      if (!variant.empty()) {
        sec.params[variant_key] = variant;
        // the variant's own position: `attacks: [fgsm, pgd]` -> pgd's element
        if (auto it = sec.marks.find(fmt::format("{}s[{}]", variant_key, index)); it != sec.marks.end())
          sec.marks[variant_key] = it->second;
        else if (auto list = sec.marks.find(variant_key + "s"); list != sec.marks.end())
          sec.marks[variant_key] = list->second;
        sec.id = base_id + "-" + variant;
      } else {
        sec.id = base_id;
      }
      if (m.count("id")) sec.id = str(m["id"], "id") + (variants.size() > 1 ? "-" + variant : "");
      std::string unique = sec.id;
      for (int k = 2; ids.count(unique); ++k) unique = fmt::format("{}-{}", sec.id, k);
      sec.id = unique;
      ids.insert(sec.id);
      cfg.sections.push_back(sec);
    };
    if (variants.empty()) add(s, "", "", 0);
    for (size_t k = 0; k < variants.size(); ++k) add(s, kind.variant_key ? kind.variant_key : "", variants[k], k);
  }

  void parse_gates(const YAML::Node& n, AuditConfig& cfg) {
    if (!n.IsSequence()) fail(n.Mark(), "'gates' must be a list (e.g. '- check: accuracy() >= 0.8')");
    for (const auto& e : n) {
      GateSpec g;
      g.mark = {e.Mark().line + 1, e.Mark().column + 1};
      YAML::Mark check_mark = e.Mark();
      if (e.IsScalar()) {
        g.check = e.Scalar();
      } else {
        auto m = check_map(e, kGateKeys, "a gate");
        g.check = str(m["check"], "check");
        check_mark = m["check"].Mark();
        if (m.count("name")) g.name = str(m["name"], "name");
        if (m.count("description")) g.description = str(m["description"], "description");
        if (m.count("model")) {
          g.model = str(m["model"], "model");
          if (!cfg.model(g.model)) {
            std::vector<std::string> ids_;
            for (const auto& mm : cfg.models) ids_.push_back(mm.id);
            fail(m["model"].Mark(), fmt::format("unknown model '{}'{}", g.model, suggest(g.model, ids_)));
          }
        }
        if (m.count("severity")) {
          std::string sev = str(m["severity"], "severity");
          if (sev == "error") g.severity = Severity::Error;
          else if (sev == "warning") g.severity = Severity::Warning;
          else fail(m["severity"].Mark(), fmt::format("'severity' cannot be '{}' (expected error or warning)", sev));
        }
      }
      g.mark = at(check_mark);  // messages about the gate point at its check text
      std::string where = fmt::format("{}:{}:{}", source_, check_mark.line + 1, check_mark.column + 1);
      parse_gate_check(g.check, g, where);
      if (g.name.empty()) g.name = g.check;
      if (!g.model.empty()) g.name += " [" + g.model + "]";
      cfg.gates.push_back(g);
    }
  }

 private:
  std::string source_;
  std::string base_dir_;
  bool check_files_;
};

void EntryParse::fail(const std::string& key, const std::string& msg) const {
  const SourceMark m = s.mark_of(key);
  throw InputError("audit", fmt::format("{}:{}:{}: {}", cfg.path, m.line, m.column, msg));
}
void EntryParse::fail_entry(const std::string& msg) const { parser_.fail(entry_.Mark(), msg); }
std::string EntryParse::suggest(const std::string& value, const std::vector<std::string>& options) const {
  return parser_.suggest(value, options);
}

}  // namespace

void parse_gate_check(const std::string& check, GateSpec& gate, const std::string& where) {
  auto bad = [&](const std::string& msg) { throw InputError("audit", fmt::format("{}: gate '{}': {}", where, check, msg)); };
  // metric name
  size_t i = 0;
  auto skip = [&]() {
    while (i < check.size() && std::isspace(static_cast<unsigned char>(check[i]))) ++i;
  };
  skip();
  size_t b = i;
  while (i < check.size() && (std::isalnum(static_cast<unsigned char>(check[i])) || check[i] == '_')) ++i;
  gate.metric = check.substr(b, i - b);
  if (gate.metric.empty()) bad("expected 'metric(args) OP threshold', e.g. 'accuracy() >= 0.9'");
  gate.args.clear();
  skip();
  if (i < check.size() && check[i] == '(') {
    size_t close = check.find(')', i);
    if (close == std::string::npos) bad("missing ')'");
    std::string inner = check.substr(i + 1, close - i - 1);
    std::istringstream in(inner);
    std::string item;
    while (std::getline(in, item, ',')) {
      auto s = item.find_first_not_of(" \t"), t = item.find_last_not_of(" \t");
      if (s == std::string::npos) {
        if (!inner.empty()) bad("empty argument");
        continue;
      }
      gate.args.push_back(item.substr(s, t - s + 1));
    }
    i = close + 1;
  }
  skip();
  // `.lower` / `.upper`: an end of the metric's 95 % interval instead of its value
  gate.bound.clear();
  if (i < check.size() && check[i] == '.') {
    size_t b2 = ++i;
    while (i < check.size() && std::isalpha(static_cast<unsigned char>(check[i]))) ++i;
    gate.bound = check.substr(b2, i - b2);
    if (gate.bound != "lower" && gate.bound != "upper")
      bad(fmt::format("'.{}' is not an interval end (write '.lower' or '.upper')", gate.bound));
    skip();
  }
  static const std::vector<std::pair<std::string, Comparison>> ops = {
      {">=", Comparison::Ge}, {"<=", Comparison::Le}, {"==", Comparison::Eq},
      {"!=", Comparison::Ne}, {">", Comparison::Gt},  {"<", Comparison::Lt}};
  bool found = false;
  for (const auto& [sym, op] : ops) {
    if (check.compare(i, sym.size(), sym) == 0) {
      gate.comparison = op;
      i += sym.size();
      found = true;
      break;
    }
  }
  if (!found) bad("expected a comparison (>=, >, <=, <, ==, !=) after the metric");
  std::string rest = check.substr(i);
  auto s = rest.find_first_not_of(" \t"), t = rest.find_last_not_of(" \t");
  if (s == std::string::npos) bad("missing threshold after the comparison");
  rest = rest.substr(s, t - s + 1);
  size_t pos = 0;
  try {
    gate.threshold = std::stod(rest, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != rest.size() || !std::isfinite(gate.threshold)) bad(fmt::format("threshold '{}' is not a number", rest));
  const MetricInfo* info = find_metric(gate.metric);
  if (!info) {
    std::string best, all;
    size_t best_d = std::string::npos;
    for (const auto& mi : metric_table()) {
      size_t d = edit_distance(gate.metric, mi.name);
      if (d < best_d) best_d = d, best = mi.name;
    }
    bad(fmt::format("unknown metric '{}' (did you mean '{}'? see docs/audit.md for the list)", gate.metric, best));
  }
  if (info->params.size() != gate.args.size()) {
    std::string sig;
    for (const auto& p : info->params) sig += (sig.empty() ? "" : ", ") + p;
    bad(fmt::format("'{}' takes {} argument(s): {}({})", gate.metric, info->params.size(), gate.metric, sig));
  }
  for (size_t k = 0; k < info->params.size(); ++k) {
    const std::string& p = info->params[k];
    if (p == "eps" || p == "radius" || p == "severity" || p == "fpr") {
      size_t q = 0;
      try {
        std::stod(gate.args[k], &q);
      } catch (...) {
        q = 0;
      }
      if (q != gate.args[k].size()) bad(fmt::format("argument '{}' ({}) must be a number", gate.args[k], p));
    }
    if (p == "fpr" && std::stod(gate.args[k]) != 0.001 && std::stod(gate.args[k]) != 0.01)
      bad(fmt::format("argument '{}' (fpr) must be 0.001 or 0.01 (the false-positive rates mlaudit privacy records)", gate.args[k]));
    if (p == "norm" && gate.args[k] != "linf" && gate.args[k] != "l2")
      bad(fmt::format("argument '{}' (norm) must be linf or l2", gate.args[k]));
  }
  if (!gate.bound.empty() && !info->interval)
    bad(fmt::format("'{}' has no interval, so '.{}' does not apply (metrics with one: {})", gate.metric, gate.bound,
                    [] {
                      std::string names;
                      for (const auto& mi : metric_table())
                        if (mi.interval) names += (names.empty() ? "" : ", ") + mi.name;
                      return names;
                    }()));
}

AuditConfig parse_config(const std::string& text, const std::string& source, const std::string& base_dir,
                         bool check_files) {
  datasets::require_utf8(text, source, "audit");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError("audit", fmt::format("{}:{}:{}: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  Parser p(source, base_dir, check_files);
  try {
    return p.parse(root);
  } catch (const YAML::Exception& e) {
    throw InputError("audit", fmt::format("{}:{}:{}: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

AuditConfig load_config(const std::string& path) {
  std::string text = datasets::read_file(path, 16 << 20);
  // Absolute paths, so the run manifest names files unambiguously.
  fs::path abs = fs::absolute(path).lexically_normal();
  return parse_config(text, abs.string(), abs.parent_path().string(), true);
}

}  // namespace mlaudit::reports
