#pragma once
// Internal: what a section kind's hooks (sections.h) see. The generic machinery
// (config.cpp, check.cpp, pipeline.cpp, document.cpp) builds these and calls the
// kind's registration.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../doc.h"
#include "mlaudit/common/tensor.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/check.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/sections.h"

namespace mlaudit::reports {

/// Config time (parse_config): one entry, its keys already typed and checked against
/// their rules and choices.
class SectionParse {
 public:
  SectionSpec& s;                  ///< the entry; `validate` may set defaults in s.params
  const AuditConfig& cfg;          ///< models and data sets parsed so far
  const DatasetSpec* ds = nullptr; ///< the entry's data set (null when none)
  std::string what;                ///< "'robustness' entry", for messages
  bool check_files = true;         ///< false in unit tests (no file system)
  /// The id's suffix after "<kind>-<model>" ("-robustness" for verification modes).
  std::string id_suffix;
  /// The values of a split list (`attacks: [a, b]`): one section each (split_variants).
  std::vector<std::string> variants;

  SectionParse(SectionSpec& spec, const AuditConfig& config) : s(spec), cfg(config) {}
  virtual ~SectionParse() = default;
  /// Whether the entry writes `key`.
  bool has(const std::string& key) const { return s.marks.count(key) > 0; }
  /// Fails at the YAML position of `key` (the entry's own position when the key is not written).
  [[noreturn]] virtual void fail(const std::string& key, const std::string& msg) const = 0;
  /// Fails at the entry's position.
  [[noreturn]] virtual void fail_entry(const std::string& msg) const = 0;
  /// " (did you mean 'x'?)" or " (expected one of: ...)".
  virtual std::string suggest(const std::string& value, const std::vector<std::string>& options) const = 0;
  /// The entry's data set must be .npy (not a CSV).
  void need_npy() const {
    if (ds && ds->is_csv()) fail("data", fmt::format("{}: data set '{}' is a CSV; this section needs .npy data", what, ds->id));
  }
  /// Exactly one of `key` and `<key>s` must be written; each value becomes one section.
  void split_variants(const std::string& key) {
    const std::string list = key + "s";
    if (has(key) == has(list)) fail_entry(fmt::format("{} needs exactly one of '{}' or '{}'", what, key, list));
    if (has(key)) variants.push_back(s.params[key].get<std::string>());
    else
      for (const auto& a : s.params[list]) variants.push_back(a.get<std::string>());
    s.params.erase(list);
  }
  /// `key` must be one of `allowed` (when written).
  void check_choice(const std::string& key, const std::vector<std::string>& allowed) const {
    if (!s.params.contains(key)) return;
    const std::string v = s.params[key].get<std::string>();
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
      fail(key, fmt::format("'{}' cannot be '{}'{}", key, v, suggest(v, allowed)));
  }
};

/// Dry run (check_audit): one section, the shape of its data (null when none or a CSV).
class SectionCheck {
 public:
  const AuditConfig& cfg;
  const SectionSpec& s;
  const SectionVocabulary& vocab;
  const std::vector<int64_t>* shape = nullptr;  ///< .npy shape of the section's data set

  SectionCheck(const AuditConfig& config, const SectionSpec& spec, const SectionVocabulary& v)
      : cfg(config), s(spec), vocab(v) {}
  [[noreturn]] void fail(const SourceMark& m, const std::string& msg) const;
  std::string suggest(const std::string& value, const std::vector<std::string>& options) const;
  static bool contains(const std::vector<std::string>& list, const std::string& v) {
    return std::find(list.begin(), list.end(), v) != list.end();
  }
  /// Which key of the entry the user wrote for a split list ("attacks" or "attack").
  std::string written_key(const std::string& singular) const {
    return s.marks.count(singular + "s") ? singular + "s" : singular;
  }
  int64_t rank() const { return shape ? int64_t(shape->size()) : 0; }
  bool images() const { return rank() == 3 || rank() == 4; }
};

/// The command's arguments (section_command).
class SectionArgs {
 public:
  const SectionSpec& s;
  const AuditConfig& cfg;
  const DatasetSpec* ds = nullptr;  ///< the section's data set (null when none)
  const nlohmann::json& p;          ///< s.params
  const std::string& work_dir;      ///< inputs prepared for the section, and its outputs
  SectionCommand& c;                ///< c.args receives the arguments; c.result_path is set
  int64_t limit = 0;                ///< 'limit' (0: all rows)
  bool out_written = false;         ///< out() was called (else --out comes after the kind's arguments)

  SectionArgs(const SectionSpec& spec, const AuditConfig& config, const std::string& work, SectionCommand& command)
      : s(spec), cfg(config), p(spec.params), work_dir(work), c(command) {}

  void push(const std::string& a) { c.args.push_back(a); }
  /// "--name value"
  void flag(const std::string& name, const std::string& value) {
    c.args.push_back("--" + name);
    c.args.push_back(value);
  }
  /// config key -> flag, for a scalar passed through unchanged (when written)
  void pass(const char* key, const char* option);
  /// "--out <result path>" here (explain wants it before its own flags).
  void out() {
    flag("out", c.result_path);
    out_written = true;
  }
  /// --seed: the entry's seed, else the config's.
  void seed();
  /// --seed: the config's (performance and efficiency take no seed key).
  void config_seed() { flag("seed", std::to_string(cfg.seed)); }
  /// --data / --labels of the .npy data set (its first `limit` rows).
  void npy_inputs();
  /// --clip-min / --clip-max from the data set's domain (when it has one).
  void domain();
  /// The CSV's first `limit` rows (or the CSV itself).
  std::string csv_rows(const DatasetSpec& set);
  /// The .npy file's first `limit` rows (or the file itself); `tag` names the copy.
  std::string npy_rows(const std::string& path, const std::string& tag);
  /// The features of a CSV data set written inline, as a file (one per line).
  std::string feature_file(const DatasetSpec& set);
  /// Each feature's observed [min, max] in the CSV (feature,min,max rows: verify's --domain).
  std::string observed_domain(const DatasetSpec& set);
  /// "a,b,c" of the data set's features.
  static std::string feature_list(const DatasetSpec& set);
  static std::string join_numbers(const nlohmann::json& list);
  static std::string join_strings(const nlohmann::json& list);
};

/// The report document being built (document.cpp's build_document).
struct SectionRender {
  detail::Document& d;
  const nlohmann::json& report;
  const std::string& asset_dir;
};

namespace detail {
// Tolerant readers of a section record (document.cpp): a missing or mistyped field reads as
// null, [], {}, `def` or nullopt, so a headline or block shows "n/a" instead of throwing.
const nlohmann::json& at(const nlohmann::json& j, const std::string& key);
const nlohmann::json& arr(const nlohmann::json& j, const std::string& key);
const nlohmann::json& obj(const nlohmann::json& j, const std::string& key);
std::string str(const nlohmann::json& j, const std::string& key, const std::string& def = "");
std::optional<double> dbl(const nlohmann::json& j, const std::string& key);
/// "0.81 [0.78, 0.84]" from a value and an interval given as [lo, hi] or {lo, hi}/{low, high}.
std::string with_interval(const nlohmann::json& value, const nlohmann::json& interval);

}  // namespace detail

}  // namespace mlaudit::reports
