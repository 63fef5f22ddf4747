// Minimal JSON Schema validator for the keywords docs/report-schema.json uses
// (Debian ships no JSON Schema validator for nlohmann::json).
#include <fmt/format.h>

#include <cmath>
#include <regex>

#include "mlaudit/reports/report.h"

using nlohmann::json;

namespace mlaudit::reports {

namespace {

bool type_matches(const json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  return false;
}

const json& resolve(const json& root, const std::string& ref, std::vector<std::string>& errors, const std::string& where) {
  static const json empty = json::object();
  if (ref.rfind("#/", 0) != 0) {
    errors.push_back(fmt::format("{}: unsupported $ref '{}' (only local refs)", where, ref));
    return empty;
  }
  try {
    return root.at(json::json_pointer(ref.substr(1)));
  } catch (const std::exception&) {
    errors.push_back(fmt::format("{}: $ref '{}' not found in the schema", where, ref));
    return empty;
  }
}

void validate(const json& v, const json& schema, const json& root, const std::string& where, std::vector<std::string>& errors) {
  if (schema.is_boolean()) {
    if (!schema.get<bool>()) errors.push_back(where + ": not allowed");
    return;
  }
  if (!schema.is_object()) return;
  if (schema.contains("$ref")) {
    validate(v, resolve(root, schema["$ref"].get<std::string>(), errors, where), root, where, errors);
    return;
  }
  if (schema.contains("type")) {
    const json& t = schema["type"];
    bool ok = false;
    std::string names;
    if (t.is_string()) ok = type_matches(v, t.get<std::string>()), names = t.get<std::string>();
    else
      for (const auto& x : t) ok |= type_matches(v, x.get<std::string>()), names += (names.empty() ? "" : "|") + x.get<std::string>();
    if (!ok) {
      errors.push_back(fmt::format("{}: expected {}, got {}", where, names, v.type_name()));
      return;
    }
  }
  if (schema.contains("const") && v != schema["const"])
    errors.push_back(fmt::format("{}: must equal {}", where, schema["const"].dump()));
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found |= e == v;
    if (!found) errors.push_back(fmt::format("{}: {} is not one of {}", where, v.dump(), schema["enum"].dump()));
  }
  if (v.is_number()) {
    if (schema.contains("minimum") && v.get<double>() < schema["minimum"].get<double>())
      errors.push_back(fmt::format("{}: {} is below the minimum {}", where, v.dump(), schema["minimum"].dump()));
    if (schema.contains("maximum") && v.get<double>() > schema["maximum"].get<double>())
      errors.push_back(fmt::format("{}: {} is above the maximum {}", where, v.dump(), schema["maximum"].dump()));
  }
  if (v.is_string() && schema.contains("pattern")) {
    if (!std::regex_search(v.get<std::string>(), std::regex(schema["pattern"].get<std::string>(), std::regex::ECMAScript)))
      errors.push_back(fmt::format("{}: '{}' does not match the pattern {}", where, v.get<std::string>(), schema["pattern"].dump()));
  }
  if (v.is_array()) {
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>())
      errors.push_back(fmt::format("{}: fewer than {} items", where, schema["minItems"].dump()));
    if (schema.contains("items"))
      for (size_t i = 0; i < v.size(); ++i) validate(v[i], schema["items"], root, fmt::format("{}/{}", where, i), errors);
  }
  if (v.is_object()) {
    if (schema.contains("required"))
      for (const auto& r : schema["required"])
        if (!v.contains(r.get<std::string>())) errors.push_back(fmt::format("{}: missing required key '{}'", where, r.get<std::string>()));
    const json props = schema.value("properties", json::object());
    for (auto it = v.begin(); it != v.end(); ++it) {
      std::string child = where + "/" + it.key();
      if (props.contains(it.key())) validate(it.value(), props[it.key()], root, child, errors);
      else if (schema.contains("additionalProperties")) {
        const json& ap = schema["additionalProperties"];
        if (ap.is_boolean() && !ap.get<bool>()) errors.push_back(fmt::format("{}: key '{}' is not allowed", where, it.key()));
        else if (ap.is_object()) validate(it.value(), ap, root, child, errors);
      }
    }
  }
  if (schema.contains("allOf"))
    for (const auto& part : schema["allOf"]) validate(v, part, root, where, errors);
  // if / then / else: `if` only selects (its errors are dropped), as in JSON Schema 2020-12.
  if (schema.contains("if")) {
    std::vector<std::string> probe;
    validate(v, schema["if"], root, where, probe);
    const char* branch = probe.empty() ? "then" : "else";
    if (schema.contains(branch)) validate(v, schema[branch], root, where, errors);
  }
  if (schema.contains("anyOf")) {
    bool any = false;
    for (const auto& alt : schema["anyOf"]) {
      std::vector<std::string> e;
      validate(v, alt, root, where, e);
      if (e.empty()) {
        any = true;
        break;
      }
    }
    if (!any) errors.push_back(fmt::format("{}: matches none of the anyOf alternatives", where));
  }
}

}  // namespace

std::vector<std::string> validate_json_schema(const json& instance, const json& schema) {
  std::vector<std::string> errors;
  validate(instance, schema, schema, "", errors);
  return errors;
}

}  // namespace mlaudit::reports
