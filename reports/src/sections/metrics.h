#pragma once
// The gate metrics' readers, registered by the section kinds (SectionKindDef::read_metrics in
// reports/src/sections/<kind>.cpp): how each metric is read from a section's result (Extractor)
// and, at config time, whether a configured section will produce it (Planner). metrics.cpp
// collects them in report order into the one metric table; each command's JSON output is the
// contract (mlaudit.<command>/1), so when a field name changes upstream, the kind's file is
// the one place to fix it. The helpers below are what the kinds' readers share.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/config.h"
#include "mlaudit/reports/gates.h"

namespace mlaudit::reports {
namespace gate_metrics {

using json = nlohmann::json;

// What an extractor found in one section.
struct Lookup {
  bool matches = false;          // the section is the one the metric's arguments name
  std::optional<double> value;   // empty: the field is missing
  std::string why;               // reason when missing
  json interval;                 // the value's interval (metrics with MetricInfo::interval), or null
};

using Extractor = std::function<Lookup(const json& section, const std::vector<std::string>& args)>;
// Config time: why a configured section (its kind already matches) will not
// produce the metric for these arguments; empty when it will.
using Planner = std::function<std::string(const SectionSpec& section, const std::vector<std::string>& args)>;

struct MetricEntry {
  MetricInfo info;
  Extractor extract;
  Planner plan = nullptr;  // nullptr: every section of the kind produces it
};

// Numbers in JSON from other tools may be float32 values widened to double
// (0.03f = 0.0299999993), so parameters match within 1e-6 relative.
// (a == b first: two infinities are the same value, though inf - inf is NaN.)
inline bool same_number(double a, double b) { return a == b || std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

inline double to_double(const std::string& s) { return std::stod(s); }

inline std::optional<double> number(const json& j, const std::string& key) {
  if (j.is_object() && j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return std::nullopt;
}

inline std::string text(const json& j, const std::string& key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return {};
}

inline const json& result_of(const json& section) {
  static const json empty = json::object();
  return section.contains("result") && section["result"].is_object() ? section["result"] : empty;
}

// Element of `array_key` whose `key` equals `target` numerically.
inline const json* find_by_number(const json& obj, const std::string& array_key, const std::string& key, double target) {
  if (!obj.contains(array_key) || !obj[array_key].is_array()) return nullptr;
  for (const auto& e : obj[array_key])
    if (auto v = number(e, key); v && same_number(*v, target)) return &e;
  return nullptr;
}

// A section that did not finish gives "missing" with its error.
inline Lookup failed_section(const json& section) {
  Lookup l;
  l.matches = true;
  l.why = fmt::format("section '{}' did not complete ({})", section.value("id", "?"),
                      section.value("error", section.value("status", std::string("no result"))));
  return l;
}

inline bool section_ok(const json& section) { return section.value("status", "") == "ok"; }

inline Lookup value_or_missing(std::optional<double> v, const std::string& field) {
  Lookup l;
  l.matches = true;
  l.value = v;
  if (!v) l.why = fmt::format("field '{}' not available", field);
  return l;
}

// Sample count of a section's result: n_samples (the commands), samples (performance).
inline std::optional<int64_t> sample_count(const json& s) {
  const json& r = result_of(s);
  for (const char* key : {"n_samples", "samples"})
    if (r.contains(key) && r[key].is_number_integer()) return r[key].get<int64_t>();
  return std::nullopt;
}

// `field` of `obj` with its interval attached (the object's `<field>_ci`, else
// computed from the value and `n`).
inline Lookup proportion_field(const json& obj, const std::string& field, const std::string& path, std::optional<int64_t> n) {
  Lookup l = value_or_missing(number(obj, field), path);
  if (l.value) l.interval = proportion_interval(obj, field, n);
  return l;
}

// ", " joined numbers of a params list, for messages.
inline std::string list_text(const json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : fmt::format("{}", v.get<double>()));
  return out;
}

// Planner helpers: is `value` (a gate argument) in the params list `key`?
inline bool listed_number(const json& params, const std::string& key, double value) {
  if (!params.contains(key) || !params[key].is_array()) return false;
  for (const auto& v : params[key])
    if (v.is_number() && same_number(v.get<double>(), value)) return true;
  return false;
}
inline bool listed_text(const json& params, const std::string& key, const std::string& value) {
  if (!params.contains(key)) return false;
  if (params[key].is_string()) return params[key] == value;
  for (const auto& v : params[key])
    if (v == value) return true;
  return false;
}

}  // namespace gate_metrics

/// What a kind's read_metrics adds its metrics to: the table so far, in report order.
class SectionMetrics {
 public:
  explicit SectionMetrics(std::vector<gate_metrics::MetricEntry>& table) : t(table) {}
  std::vector<gate_metrics::MetricEntry>& t;  ///< the kind appends its entries (MetricInfo::source = its name)
  /// Sets the config-time planner of the entry named `name`.
  void plan(const std::string& name, gate_metrics::Planner p) {
    for (auto& e : t)
      if (e.info.name == name) e.plan = p;
  }
};

}  // namespace mlaudit::reports
