#pragma once
// Gate evaluation: metric names -> values read from the report's section JSON
// (one table, filled by the section kinds' read_metrics), compared with thresholds.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/config.h"

namespace mlaudit::reports {

/// A metric a gate can test: name, parameter names, where it comes from.
struct MetricInfo {
  std::string name;                 ///< "robust_accuracy"
  std::string source;               ///< section kind ("robustness", ...) or "model"
  std::vector<std::string> params;  ///< {"attack", "norm", "eps"}
  std::string json_path;            ///< human-readable JSON path, documented in docs/audit.md
  std::string description;
  /// True when the value is a proportion with a 95 % Clopper-Pearson interval (the result's
  /// `<field>_ci`, else computed from the value and the section's sample count), so a gate
  /// may compare `.lower` or `.upper`.
  bool interval = false;
};

/// Every metric gates may use (the section kinds' metrics, in report order).
const std::vector<MetricInfo>& metric_table();
/// Metric by name, or nullptr.
const MetricInfo* find_metric(const std::string& name);

/// Outcome of one gate.
enum class GateStatus { Pass, Fail, Error };
/// "pass", "fail", "error".
const char* gate_status_name(GateStatus s);

/// Value of one metric read from a report (its "sections" and "models").
struct MetricValue {
  std::optional<double> value;  ///< empty when missing
  std::string section;          ///< section id (or model id) it came from
  std::string why;              ///< reason when missing
  /// The value's interval {"k","n","lower","upper","confidence","method"[, "computed": true]}, or null.
  nlohmann::json interval;
};

/// Look up `metric(args)` in `report`, restricted to `model` when not empty.
/// `bound` "lower" / "upper" gives that end of the value's interval instead of the value.
MetricValue lookup_metric(const nlohmann::json& report, const std::string& metric,
                          const std::vector<std::string>& args, const std::string& model,
                          const std::string& bound = "");

/// Why no configured section will produce the gate's metric (same attack, norm, eps,
/// attribute, ... as the gate names); empty when at least one will. The config-time
/// twin of lookup_metric: each table entry's planner, beside its reader in the kind's file.
std::string gate_without_producer(const GateSpec& gate, const AuditConfig& config);

/// `<field>_ci` of `object` when it is a well-formed interval, else one computed with
/// datasets::clopper_pearson from the value and `n` (k = round(value * n)); null when
/// neither is possible. The computed one carries "computed": true.
nlohmann::json proportion_interval(const nlohmann::json& object, const std::string& field, std::optional<int64_t> n);

/// True when `measured OP threshold` holds (Eq/Ne compare exactly).
bool compare(double measured, Comparison op, double threshold);

/// Evaluate one gate against a report: a JSON record with name, check,
/// status (pass/fail/error), measured, threshold, severity, message.
/// A missing metric is an error, never a pass.
nlohmann::json evaluate_gate(const GateSpec& gate, const nlohmann::json& report);

/// Evaluate every gate; returns the array of records.
nlohmann::json evaluate_gates(const std::vector<GateSpec>& gates, const nlohmann::json& report);

/// Exit code from gate records: 2 when any gate is an error (metric missing),
/// else 1 when an error-severity gate fails, else 0.
int gates_exit_code(const nlohmann::json& gate_records);

}  // namespace mlaudit::reports
