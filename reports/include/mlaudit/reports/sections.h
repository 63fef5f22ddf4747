#pragma once
// The audit's section kinds, one registration per kind (reports/src/sections/<kind>.cpp):
// its YAML keys with their types, rules and allowed values; its config-time checks
// (parse_config, shared by `audit --check` and the run, which both load the config
// the same way); its dry-run checks against the modules' own tables (check_audit);
// the command it runs and the arguments it passes; the gate metrics it offers and how
// they are read from its result; how
// the report renders it; its compliance row and its limitation. config.cpp,
// check.cpp, pipeline.cpp, document.cpp and report.cpp keep only the generic
// machinery and loop over this registry.
//
// Adding a kind: one file reports/src/sections/<name>.cpp with
//   MLAUDIT_SECTION_KIND(<name>) { static const SectionKindDef def{...}; return def; }
// (the build lists the folder, so nothing else names it); see docs/dev/architecture.md.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/config.h"

namespace mlaudit::reports {

/// Value type of a section key.
enum class KeyType { Str, Int, Num, Bool, StrList, NumList, IntList, Path };
/// "string", "integer", ... (docs and tests).
const char* key_type_name(KeyType t);

/// A numeric rule every value of the key obeys (checked when the config is parsed).
enum class KeyRule {
  None,
  Positive,     ///< integers > 0: "'steps' must be positive"
  OpenUnit,     ///< numbers in (0, 1): "'ci' must lie strictly between 0 and 1"
  NonNegative,  ///< every list element >= 0: "'eps' values must be non-negative"
};

/// One YAML key of a section entry.
struct SectionKey {
  const char* name;
  KeyType type;
  bool required = false;
  KeyRule rule = KeyRule::None;
  /// Allowed values (of the string, or of each list element); empty: any. Checked when
  /// the config is parsed: "'norm' cannot be 'l3' (did you mean 'l2'?)".
  std::vector<std::string> choices = {};
  /// Accepted but not offered in "expected one of" (an old spelling).
  bool old_spelling = false;
  /// The key only steers the audit (ids, imports, which variant runs): no command flag of its own.
  bool audit_only = false;
};

/// The value tables the section commands validate their options against (filled by the
/// CLI from the modules' public tables, since this library never links the modules).
struct SectionVocabulary;
/// Contexts handed to a kind's hooks (defined in reports/src/sections/context.h).
class SectionParse;   ///< config time: the entry being parsed, `fail` at a key's YAML position
class SectionCheck;   ///< dry run: the loaded data's shape, the vocabulary
class SectionArgs;    ///< the command's arguments: `flag`, `pass`, `npy_inputs`, ...
struct SectionRender; ///< the report document being built
class SectionMetrics; ///< the gate metric table being built (reports/src/sections/metrics.h)

/// Everything the audit knows about one section kind.
struct SectionKindDef {
  SectionKind kind;           ///< the enum value (a new kind may use any unused number: SectionKind{10})
  const char* name;           ///< the YAML key under 'sections' and the report's "kind"
  int order;                  ///< report order (ascending)
  const char* command;        ///< the mlaudit command it runs ("attack", ...)
  const char* result_schema;  ///< "mlaudit.attack" (the result's "schema" without "/1"); a $defs entry of docs/report-schema.json
  std::vector<SectionKey> keys;  ///< the kind's own keys (the common ones: common_section_keys())
  /// The entry may omit 'data' (efficiency draws inputs, privacy names 'members' / 'non_members').
  bool data_optional = false;
  /// Whether the command reads the data set's labels as class indices of the model (checked by the dry run).
  bool reads_labels = true;
  /// Keys naming further data sets the command reads (privacy: members, non_members): checked like 'data'.
  std::vector<std::string> data_keys = {};
  /// `<key>s: [a, b]` runs one section per element with `<key>: a` (robustness: "attack").
  const char* variant_key = nullptr;
  /// Config-time checks and defaults beyond the keys' types, rules and choices (may be null).
  void (*validate)(SectionParse&) = nullptr;
  /// Dry-run checks against the modules' tables and the data's shape (may be null).
  void (*check)(SectionCheck&) = nullptr;
  /// The command's arguments after --model (and --model-output).
  void (*args)(SectionArgs&) = nullptr;
  /// Whether the command searches the data set's domain ([0, 1] unless given) and refuses inputs outside it
  /// (the dry run reads the rows and checks them); null: never.
  bool (*searches_domain)(const SectionSpec&) = nullptr;
  /// The gate metrics it offers (metric_table() entries whose source is this kind).
  std::vector<std::string> metrics = {};
  /// Adds those metrics to the table: each one's parameters, how it is read from the section's
  /// result and which configured sections will produce it (null: none).
  void (*read_metrics)(SectionMetrics&) = nullptr;
  /// Appends the kind's report blocks (null: another kind's blocks show it, e.g. certification under robustness).
  void (*render)(SectionRender&) = nullptr;
  /// One line saying what a section that ran (status ok) measured: the compliance table's
  /// "measured" column and the diff (null: "completed").
  std::string (*headline)(const nlohmann::json& section) = nullptr;
  /// Compliance row: the report section's title and the clauses it gives evidence for.
  const char* compliance_title = "";
  std::vector<std::string> references = {};
  /// The limitation the report states whenever the kind ran ("" for none).
  const char* limitation = "";
  /// The smallest entry, as YAML under `sections: <name>:` (docs and tests, which run it). The harness declares
  /// models 'm' (an image CNN) and 'tab' (a tabular MLP), data sets 'images' and 'held_out' (.npy images with
  /// labels, domain [0, 1]), 'extra' (.npy rows for 'tab') and 'table' (a CSV with 'label', 'features' and
  /// 'protected' for 'tab').
  const char* example = "";
};

/// Every registered kind in report order.
const std::vector<const SectionKindDef*>& section_kinds();
/// The registration of `kind` (throws std::out_of_range for an unregistered value).
const SectionKindDef& section_kind_def(SectionKind kind);
/// The registration named `name` ("robustness"), or nullptr.
const SectionKindDef* find_section_kind(const std::string& name);
/// Keys every section entry accepts (model, data, id, limit, args, result, ...).
const std::vector<SectionKey>& common_section_keys();

}  // namespace mlaudit::reports

/// Declares the registration function of a section kind; the build lists reports/src/sections/*.cpp
/// and calls each file's function, so a new kind needs no other edit.
#define MLAUDIT_SECTION_KIND(name) const ::mlaudit::reports::SectionKindDef& mlaudit_section_kind_##name()
