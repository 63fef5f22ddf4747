#pragma once
// The audit configuration (audit.yaml): models, data sets, sections to run and
// gates. Parsing validates everything (unknown keys, types, missing files)
// before any work starts; errors name the YAML line and column.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlaudit::reports {

/// Position in the YAML file (1-based), for messages.
struct SourceMark {
  int line = 0;
  int column = 0;
};

/// Free text about the audited system (EU AI Act Annex IV point 1-2 material).
struct SystemInfo {
  std::string name;
  std::string version;
  std::string owner;
  std::string description;
  std::string intended_use;
  std::string out_of_scope;
  std::vector<std::string> limitations;
};

/// A model under audit.
struct ModelSpec {
  std::string id;
  std::string path;  ///< resolved against the config folder
  std::string output;  ///< the graph output to audit (empty: the engine's default choice)
  SourceMark mark;     ///< where the model's file is named
};

/// A data set: .npy inputs + labels, or a CSV with a label column.
struct DatasetSpec {
  std::string id;
  std::string data;    ///< .npy inputs (image or tabular)
  std::string labels;  ///< .npy integer labels
  std::string csv;     ///< CSV table (tabular)
  std::string label;   ///< label column of the CSV
  std::vector<std::string> protected_attributes;
  std::vector<std::string> features;  ///< model feature columns in input order
  std::string features_file;          ///< file listing them, one per line (when given as a path)
  std::optional<std::pair<double, double>> domain;  ///< input domain [min, max]
  std::map<std::string, SourceMark> marks;  ///< where each key's value is written ("data", "labels", "csv", ...)
  SourceMark mark;                          ///< the data set's entry
  bool is_csv() const { return !csv.empty(); }
};

/// The built-in section kinds. Each is registered, with its report order, keys and command,
/// in reports/src/sections/<kind>.cpp (sections.h); a new kind may take any unused value.
enum class SectionKind {
  Performance, Efficiency, Robustness, Certification, Corruption, Fairness, Explanations, Verification,
  Privacy,   ///< membership inference (`mlaudit privacy`) on a member and a non-member data set
  Backdoor   ///< Neural Cleanse / STRIP backdoor scan (`mlaudit backdoor`)
};
/// "robustness", ...
const char* section_kind_name(SectionKind k);
/// All registered section kinds in report order.
const std::vector<SectionKind>& all_section_kinds();

/// One section run: the kind, the model and data it runs on, and its parameters
/// (validated per kind; turned into command arguments by the runner).
struct SectionSpec {
  SectionKind kind = SectionKind::Performance;
  std::string id;     ///< unique, e.g. "robustness-cnn-apgd-ce"
  std::string model;  ///< model id
  std::string data;   ///< dataset id (privacy: empty; its data sets are params "members" / "non_members")
  nlohmann::json params = nlohmann::json::object();  ///< the entry's other keys, typed
  SourceMark mark;
  /// Where each key's value is written ("attacks", "eps", ...); list elements as "attacks[1]".
  /// The variant key of a split entry ("attack" of `attacks: [a, b]`, "method") points at its element.
  std::map<std::string, SourceMark> marks;
  /// Position of `key` (falling back to the entry's position when the key is not written).
  SourceMark mark_of(const std::string& key) const;
};

/// Gate severity: a failing `error` gate fails the audit (exit 1); a failing `warning` is reported only.
enum class Severity { Error, Warning };

/// Comparison operators a gate may use.
enum class Comparison { Ge, Gt, Le, Lt, Eq, Ne };
/// ">=", ">", ...
const char* comparison_symbol(Comparison c);

/// A gate: metric expression, comparison, threshold, severity.
struct GateSpec {
  std::string name;     ///< display name (defaults to the check text)
  std::string check;    ///< "robust_accuracy(apgd-ce, linf, 0.03) >= 0.6"
  std::string metric;   ///< "robust_accuracy"
  std::vector<std::string> args;  ///< {"apgd-ce", "linf", "0.03"}
  /// Which number of the metric is compared: "" (the value), "lower" or "upper" (the
  /// ends of its 95 % interval: `robust_accuracy(pgd, linf, 0.03).lower >= 0.4`).
  std::string bound;
  Comparison comparison = Comparison::Ge;
  double threshold = 0;
  Severity severity = Severity::Error;
  std::string model;    ///< model id the metric is read from (empty: the only model)
  std::string description;
  SourceMark mark;
};

/// The whole configuration.
struct AuditConfig {
  std::string path;       ///< config file
  std::string base_dir;   ///< relative paths resolve against this folder
  SystemInfo system;
  uint64_t seed = 0;
  std::vector<ModelSpec> models;
  std::vector<DatasetSpec> datasets;
  std::vector<SectionSpec> sections;
  std::vector<GateSpec> gates;

  const ModelSpec* model(const std::string& id) const;
  const DatasetSpec* dataset(const std::string& id) const;
  /// "audit.yaml:12:5" for a position in this config (the prefix of every config message).
  std::string where(const SourceMark& m) const;
};

/// Parse and validate a config file. Throws InputError
/// "audit.yaml:12:5: unknown key 'robustnes' (did you mean 'robustness'?)".
AuditConfig load_config(const std::string& path);
/// Same from text; `source` names it in messages, `base_dir` resolves relative paths.
/// `check_files` = false skips the existence checks (for unit tests).
AuditConfig parse_config(const std::string& text, const std::string& source, const std::string& base_dir,
                         bool check_files = true);

/// Parse "metric(arg, ...) OP number" into `gate` (metric, args, comparison,
/// threshold); throws InputError with `where` as the message prefix.
void parse_gate_check(const std::string& check, GateSpec& gate, const std::string& where);

/// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace mlaudit::reports
