// THE table from gate metric names to the section JSON they are read from, collected
// from the section kinds (each kind's read_metrics in reports/src/sections/<kind>.cpp, with
// the shared readers of sections/metrics.h), and the gates' evaluation on it. Each
// command's JSON output is the contract (mlaudit.attack/1, ...); when a field name changes
// upstream, fix the kind's reader.
#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/sections.h"
#include "sections/metrics.h"

namespace mlaudit::reports {

using nlohmann::json;

namespace {

using namespace gate_metrics;

const std::vector<MetricEntry>& entries() {
  static const std::vector<MetricEntry> table = [] {
    std::vector<MetricEntry> t;
    SectionMetrics m(t);
    for (const auto* kind : section_kinds())  // report order
      if (kind->read_metrics) kind->read_metrics(m);
    return t;
  }();
  return table;
}

const MetricEntry* find_entry(const std::string& name) {
  for (const auto& e : entries())
    if (e.info.name == name) return &e;
  return nullptr;
}

std::string fmt_num(double v) { return fmt::format("{:.4g}", v); }

Comparison negate(Comparison c) {
  switch (c) {
    case Comparison::Ge: return Comparison::Lt;
    case Comparison::Gt: return Comparison::Le;
    case Comparison::Le: return Comparison::Gt;
    case Comparison::Lt: return Comparison::Ge;
    case Comparison::Eq: return Comparison::Ne;
    case Comparison::Ne: return Comparison::Eq;
  }
  return c;
}

}  // namespace

const std::vector<MetricInfo>& metric_table() {
  static const std::vector<MetricInfo> infos = [] {
    std::vector<MetricInfo> v;
    for (const auto& e : entries()) v.push_back(e.info);
    return v;
  }();
  return infos;
}

const MetricInfo* find_metric(const std::string& name) {
  for (const auto& m : metric_table())
    if (m.name == name) return &m;
  return nullptr;
}

const char* gate_status_name(GateStatus s) {
  switch (s) {
    case GateStatus::Pass: return "pass";
    case GateStatus::Fail: return "fail";
    case GateStatus::Error: return "error";
  }
  return "?";
}

json proportion_interval(const json& obj, const std::string& field, std::optional<int64_t> n) {
  if (!obj.is_object()) return nullptr;
  const std::string key = field + "_ci";
  if (obj.contains(key) && obj[key].is_object()) {
    const json& ci = obj[key];
    if (ci.contains("lower") && ci["lower"].is_number() && ci.contains("upper") && ci["upper"].is_number()) return ci;
  }
  auto v = number(obj, field);
  if (!v || !n || *n <= 0 || !(*v >= 0 && *v <= 1)) return nullptr;
  // k from the recorded fraction: exact while the command wrote k/n in double precision
  const int64_t k = std::llround(*v * double(*n));
  json ci = datasets::proportion_json(k, *n, 0.95);
  ci["computed"] = true;  // not in the result: derived here from the value and n_samples
  return ci;
}

std::string gate_without_producer(const GateSpec& gate, const AuditConfig& cfg) {
  const MetricEntry* entry = find_entry(gate.metric);
  if (!entry || entry->info.source == "model") return "";
  std::string reasons;
  int sections = 0;
  for (const auto& s : cfg.sections) {
    if (section_kind_name(s.kind) != entry->info.source) continue;
    if (!gate.model.empty() && s.model != gate.model) continue;
    ++sections;
    std::string why = entry->plan ? entry->plan(s, gate.args) : "";
    if (why.empty()) return "";
    reasons += fmt::format("; section '{}' {}", s.id, why);
  }
  if (sections == 0)
    return fmt::format("no {} section{} is configured", entry->info.source,
                       gate.model.empty() ? "" : " for model '" + gate.model + "'");
  return reasons.substr(2);
}

static MetricValue lookup_metric_fields(const json& report, const std::string& metric, const std::vector<std::string>& args,
                                                const std::string& model, const std::string& bound) {
  MetricValue out;
  const MetricEntry* entry = find_entry(metric);
  if (!entry) {
    out.why = fmt::format("unknown metric '{}'", metric);
    return out;
  }
  if (entry->info.params.size() != args.size()) {
    out.why = fmt::format("'{}' takes {} argument(s)", metric, entry->info.params.size());
    return out;
  }
  std::vector<std::pair<std::string, double>> found;
  std::vector<json> intervals;  // beside `found`
  std::string first_missing;
  int candidates = 0;
  if (report.contains("sections") && report["sections"].is_array()) {
    for (const auto& s : report["sections"]) {
      if (s.value("kind", "") != entry->info.source) continue;
      if (!model.empty() && s.value("model", "") != model) continue;
      Lookup l;
      try {
        l = entry->extract(s, args);
      } catch (const std::exception& e) {  // malformed section JSON (wrong types)
        l.matches = true;
        l.why = fmt::format("section '{}' has malformed data: {}", s.value("id", "?"), e.what());
      }
      if (!l.matches) continue;
      ++candidates;
      if (l.value && !bound.empty()) {
        // the interval's end instead of the value; no interval is a missing metric, never a pass
        if (l.interval.is_object() && l.interval.contains(bound) && l.interval[bound].is_number()) {
          found.emplace_back(s.value("id", "?"), l.interval[bound].get<double>());
          intervals.push_back(l.interval);
        } else if (first_missing.empty()) {
          first_missing = fmt::format("section '{}' gives {} but no interval ('{}_ci' absent and no sample count "
                                      "'n_samples' to compute it from)", s.value("id", "?"), metric, metric);
        }
      } else if (l.value) {
        found.emplace_back(s.value("id", "?"), *l.value);
        intervals.push_back(l.interval);
      } else if (first_missing.empty()) {
        first_missing = l.why;
      }
    }
  }
  if (found.empty()) {
    if (candidates == 0) {
      std::string a;
      for (const auto& x : args) a += (a.empty() ? "" : ", ") + x;
      out.why = fmt::format("no {} section{} provides {}({})", entry->info.source,
                            model.empty() ? "" : " for model '" + model + "'", metric, a);
    } else {
      out.why = first_missing;
    }
    return out;
  }
  for (const auto& f : found) {
    if (!same_number(f.second, found[0].second)) {
      std::string ids;
      for (const auto& g : found) ids += (ids.empty() ? "" : ", ") + g.first;
      out.why = fmt::format("ambiguous: sections {} give different values; add 'model:' to the gate", ids);
      return out;
    }
  }
  out.value = found[0].second;
  out.section = found[0].first;
  out.interval = intervals[0];
  return out;
}

MetricValue lookup_metric(const json& report, const std::string& metric, const std::vector<std::string>& args,
                          const std::string& model, const std::string& bound) {
  try {
    return lookup_metric_fields(report, metric, args, model, bound);
  } catch (const json::exception& e) {
    // A field of another type than its result format says (found by fuzz_json): bad input, one
    // line, as the renderers do, never an internal error.
    throw InputError("reports", fmt::format("metric '{}': the report is malformed ({})", metric, e.what()));
  }
}

bool compare(double measured, Comparison op, double threshold) {
  switch (op) {
    case Comparison::Ge: return measured >= threshold;
    case Comparison::Gt: return measured > threshold;
    case Comparison::Le: return measured <= threshold;
    case Comparison::Lt: return measured < threshold;
    case Comparison::Eq: return measured == threshold;
    case Comparison::Ne: return measured != threshold;
  }
  return false;
}

json evaluate_gate(const GateSpec& gate, const json& report) {
  json r;
  r["name"] = gate.name;
  r["check"] = gate.check;
  r["metric"] = gate.metric;
  r["args"] = gate.args;
  r["model"] = gate.model.empty() ? json(nullptr) : json(gate.model);
  r["comparison"] = comparison_symbol(gate.comparison);
  r["threshold"] = gate.threshold;
  r["severity"] = gate.severity == Severity::Error ? "error" : "warning";
  if (!gate.description.empty()) r["description"] = gate.description;
  MetricValue v = lookup_metric(report, gate.metric, gate.args, gate.model, gate.bound);
  r["section"] = v.section.empty() ? json(nullptr) : json(v.section);
  if (!gate.bound.empty()) r["bound"] = gate.bound;
  if (v.interval.is_object()) r["interval"] = v.interval;
  if (!v.value) {
    r["status"] = gate_status_name(GateStatus::Error);
    r["measured"] = nullptr;
    r["message"] = "metric missing: " + v.why;
  } else if (!std::isfinite(*v.value)) {
    r["status"] = gate_status_name(GateStatus::Error);
    r["measured"] = nullptr;
    r["message"] = "metric missing: the measured value is not a finite number";
  } else {
    bool ok = compare(*v.value, gate.comparison, gate.threshold);
    r["status"] = gate_status_name(ok ? GateStatus::Pass : GateStatus::Fail);
    r["measured"] = *v.value;
    Comparison shown = ok ? gate.comparison : negate(gate.comparison);
    r["message"] = fmt::format("measured {}{} {} threshold {}", fmt_num(*v.value),
                               gate.bound.empty() ? "" : fmt::format(" ({} end of the 95 % interval, n = {})", gate.bound,
                                                                     v.interval.value("n", int64_t(0))),
                               comparison_symbol(shown), fmt_num(gate.threshold));
  }
  return r;
}

json evaluate_gates(const std::vector<GateSpec>& gates, const json& report) {
  json out = json::array();
  for (const auto& g : gates) out.push_back(evaluate_gate(g, report));
  return out;
}

int gates_exit_code(const json& gate_records) {
  bool error = false, failed = false;
  for (const auto& g : gate_records) {
    std::string st = g.value("status", "error");
    if (st == "error") error = true;
    if (st == "fail" && g.value("severity", "error") == "error") failed = true;
  }
  return error ? 2 : failed ? 1 : 0;
}

}  // namespace mlaudit::reports
