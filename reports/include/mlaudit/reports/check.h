#pragma once
// `mlaudit audit --check`: a dry run of the whole audit before any section runs.
// Every value is checked against the table the section's command uses (handed in
// by the CLI, since this library never links the analysis modules), every gate
// against a section that will produce it, every model loaded (by the CLI's ModelProbe,
// since this library never links the engine either), every data set's
// header and labels read, every imported result verified, every output path
// probed. `mlaudit audit` runs the same check before its first section, so the
// check and the run cannot disagree.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/config.h"

namespace mlaudit::reports {

/// The value tables the section commands validate their options against. The CLI
/// fills them from the modules' public tables; an empty list is not checked.
struct SectionVocabulary {
  std::vector<std::string> attacks;              ///< `mlaudit attack --attack` (robustness::attack_names())
  std::vector<std::string> attack_norms;         ///< `mlaudit attack --norm` (robustness::parse_norm)
  std::vector<std::string> image_corruptions;    ///< `mlaudit corrupt` on [N,C,H,W] (robustness::image_corruptions())
  std::vector<std::string> tabular_corruptions;  ///< `mlaudit corrupt` on [N,F] (robustness::tabular_corruptions())
  std::vector<std::string> explain_methods;      ///< `mlaudit explain --method`
  std::vector<std::string> verify_norms;         ///< `mlaudit verify --norm`
  std::vector<std::string> fairness_positive;    ///< `mlaudit fairness --positive` (fairness::positive_class_names())
};

/// What the dry run needs of a model: its shapes as the sections' commands load it.
struct ModelShape {
  std::vector<int64_t> input;  ///< per-sample input shape from the graph (batch dimension dropped; < 0: dynamic)
  int64_t classes = -1;        ///< the audited output's class count; -1: not known
};

/// Loads a model as the sections' commands load it and reads its shapes; throws InputError
/// when it cannot be loaded. The CLI passes one on engine::Session (cli/commands/audit.cpp).
using ModelProbe = std::function<ModelShape(const ModelSpec& model)>;

/// What the dry run probes besides the config: the command line's paths and the models.
struct CheckOptions {
  std::string out_dir;    ///< --out: must be a writable folder or creatable (empty: not checked)
  std::string diff_path;  ///< --diff: must be a readable mlaudit report (empty: none)
  ModelProbe probe_model;  ///< loads every model a section uses (empty: models are not loaded)
};

/// What the dry run looked at (for the one-line summary).
struct CheckSummary {
  int models_loaded = 0;
  int data_sets_read = 0;
  int imports_verified = 0;
};

/// The dry run. Throws InputError "audit.yaml:12:5: ..." (the YAML position of the
/// offending value) at the first problem. Loads models and reads data headers and
/// labels; runs no section.
CheckSummary check_audit(const AuditConfig& config, const SectionVocabulary& vocabulary, const CheckOptions& options);

/// An imported section result (`result: other.json`) after its checks.
struct ImportedResult {
  nlohmann::json result;
  /// {"path", "sha256", "schema", "model_check": "match" | "foreign" | "unverified",
  ///  "model_sha256" (the audit's model), "result_model_sha256" (the import's inputs.model.sha256 or null),
  ///  "allow_foreign_model"}: what the report shows beside the section.
  nlohmann::json provenance;
};

/// Read section `s`'s `result:` file and verify it: a JSON object whose "schema" is
/// "mlaudit.<command>/1" for the section's kind (robustness: mlaudit.attack/1, ...),
/// the same attack / norm / method as the section, and inputs.model.sha256 equal to the
/// SHA-256 of the audit's model file. A different model, or no "inputs" block (a
/// result from before provenance was recorded), is refused unless the section sets
/// `allow_foreign_model: true`. Throws InputError naming the section's `result:` line.
ImportedResult read_import(const SectionSpec& s, const AuditConfig& config);

/// "mlaudit.attack", ... : the schema name (without "/N") of a section kind's result.
std::string result_schema_name(SectionKind kind);

/// Shape of an .npy array read from its header only (the data are not read).
/// Throws InputError naming the file when it is not an .npy file.
std::vector<int64_t> npy_shape(const std::string& path);

}  // namespace mlaudit::reports
