// THE table from gate metric names to the section JSON they are read from.
// Each command's JSON output is the contract (schemas mlaudit.attack/1,
// mlaudit.certify/1, mlaudit.corrupt/1, mlaudit.fairness/1, mlaudit.explain/1,
// mlaudit.verify/1, mlaudit.privacy/1, mlaudit.backdoor/1, mlaudit.performance/1,
// mlaudit.efficiency/1); when a field
// name changes upstream, fix it here and only here.
#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/reports/gates.h"

namespace mlaudit::reports {

using nlohmann::json;

namespace {

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
bool same_number(double a, double b) { return a == b || std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

double to_double(const std::string& s) { return std::stod(s); }

std::optional<double> number(const json& j, const std::string& key) {
  if (j.is_object() && j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return std::nullopt;
}

std::string text(const json& j, const std::string& key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return {};
}

const json& result_of(const json& section) {
  static const json empty = json::object();
  return section.contains("result") && section["result"].is_object() ? section["result"] : empty;
}

// Element of `array_key` whose `key` equals `target` numerically.
const json* find_by_number(const json& obj, const std::string& array_key, const std::string& key, double target) {
  if (!obj.contains(array_key) || !obj[array_key].is_array()) return nullptr;
  for (const auto& e : obj[array_key])
    if (auto v = number(e, key); v && same_number(*v, target)) return &e;
  return nullptr;
}

// A section that did not finish gives "missing" with its error.
Lookup failed_section(const json& section) {
  Lookup l;
  l.matches = true;
  l.why = fmt::format("section '{}' did not complete ({})", section.value("id", "?"),
                      section.value("error", section.value("status", std::string("no result"))));
  return l;
}

bool section_ok(const json& section) { return section.value("status", "") == "ok"; }

Lookup value_or_missing(std::optional<double> v, const std::string& field) {
  Lookup l;
  l.matches = true;
  l.value = v;
  if (!v) l.why = fmt::format("field '{}' not available", field);
  return l;
}

// Sample count of a section's result: n_samples (the commands), samples (performance).
std::optional<int64_t> sample_count(const json& s) {
  const json& r = result_of(s);
  for (const char* key : {"n_samples", "samples"})
    if (r.contains(key) && r[key].is_number_integer()) return r[key].get<int64_t>();
  return std::nullopt;
}

// `field` of `obj` with its interval attached (the object's `<field>_ci`, else
// computed from the value and `n`).
Lookup proportion_field(const json& obj, const std::string& field, const std::string& path, std::optional<int64_t> n) {
  Lookup l = value_or_missing(number(obj, field), path);
  if (l.value) l.interval = proportion_interval(obj, field, n);
  return l;
}

// ", " joined numbers of a params list, for messages.
std::string list_text(const json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : fmt::format("{}", v.get<double>()));
  return out;
}

// Planner helpers: is `value` (a gate argument) in the params list `key`?
bool listed_number(const json& params, const std::string& key, double value) {
  if (!params.contains(key) || !params[key].is_array()) return false;
  for (const auto& v : params[key])
    if (v.is_number() && same_number(v.get<double>(), value)) return true;
  return false;
}
bool listed_text(const json& params, const std::string& key, const std::string& value) {
  if (!params.contains(key)) return false;
  if (params[key].is_string()) return params[key] == value;
  for (const auto& v : params[key])
    if (v == value) return true;
  return false;
}

// Robustness sections: params.attack and params.norm name the run.
bool attack_matches(const json& s, const std::string& attack, const std::string& norm) {
  const json& p = s.value("params", json::object());
  std::string a = text(p, "attack"), n = text(p, "norm");
  if (a.empty()) a = text(result_of(s), "attack");
  if (n.empty()) n = text(result_of(s), "norm");
  return a == attack && (norm.empty() || n == norm);
}

Lookup by_eps_field(const json& s, const std::vector<std::string>& args, const std::string& field) {
  if (!attack_matches(s, args[0], args[1])) return {};
  if (!section_ok(s)) return failed_section(s);
  double eps = to_double(args[2]);
  const json& r = result_of(s);
  const json* e = find_by_number(r, "by_eps", "eps", eps);
  if (!e) return value_or_missing(std::nullopt, fmt::format("by_eps[eps={}]", args[2]));
  // robust accuracy counts over every sample; the success rate over the clean-correct ones
  std::optional<int64_t> n = sample_count(s);
  if (field == "attack_success_rate") {
    auto clean = number(r, "clean_accuracy");
    n = n && clean ? std::optional<int64_t>(std::llround(*clean * double(*n))) : std::nullopt;
  }
  return proportion_field(*e, field, fmt::format("by_eps[eps={}].{}", args[2], field), n);
}

// Config time: a robustness section runs one attack at one norm over its eps list.
std::string plan_attack(const SectionSpec& s, const std::vector<std::string>& a) {
  const json& p = s.params;
  std::string attack = p.value("attack", ""), norm = p.value("norm", "linf");
  if (attack != a[0]) return fmt::format("runs attack {}", attack);
  if (a.size() < 3) return "";
  if (norm != a[1]) return fmt::format("runs {} under norm {}, not {}", attack, norm, a[1]);
  if (!listed_number(p, "eps", to_double(a[2]))) return fmt::format("runs {} at eps {}, not {}", attack, list_text(p.value("eps", json::array())), a[2]);
  return "";
}

// Worst (largest |value|) sanity gap of an explain run: the summary's
// checks.<check>.<summary_field> when present, else the maximum over the
// per-sample records (samples[].<nested>.<field> or samples[].<field>).
Lookup worst_sample_field(const json& s, const std::string& method, const std::string& check,
                          const std::string& summary_field, const std::string& nested, const std::string& field) {
  const json& p = s.value("params", json::object());
  std::string m = text(p, "method");
  if (m.empty()) m = text(result_of(s), "method");
  if (m != method) return {};
  if (!section_ok(s)) return failed_section(s);
  const json& r = result_of(s);
  if (r.contains("checks") && r["checks"].is_object() && r["checks"].contains(check))
    if (auto v = number(r["checks"][check], summary_field)) return value_or_missing(std::fabs(*v), "checks." + check);
  std::optional<double> worst;
  for (const char* key : {"samples", "per_sample"}) {
    if (!r.contains(key) || !r[key].is_array()) continue;
    for (const auto& e : r[key]) {
      std::optional<double> v = number(e, field);
      if (!v && !nested.empty() && e.contains(nested)) v = number(e[nested], "relative_gap");
      if (v) worst = std::max(worst.value_or(0.0), std::fabs(*v));
    }
  }
  return value_or_missing(worst, fmt::format("per-sample {}", field));
}

// Verification: verified/falsified fraction at eps, from by_eps or, when that
// lacks the field, counted from the per-sample verdicts.
Lookup verify_fraction(const json& s, const std::vector<std::string>& args, const std::string& field,
                       const std::string& verdict) {
  const json& p = s.value("params", json::object());
  if (text(p, "mode") == "fairness") return {};
  std::string norm = text(p, "norm");
  if (norm.empty()) norm = text(result_of(s), "norm");
  if (!norm.empty() && norm != args[0]) return {};
  if (!section_ok(s)) return failed_section(s);
  double eps = to_double(args[1]);
  const json& r = result_of(s);
  // mlaudit verify writes per_eps [{eps, samples, verified, ..., verified_robust_accuracy}]
  for (const char* key : {"by_eps", "per_eps"}) {
    const json* e = find_by_number(r, key, "eps", eps);
    if (!e) continue;
    auto n = number(*e, "samples"), k = number(*e, verdict);
    // the fraction with its exact binomial interval over the `samples` queries
    auto with_interval = [&](Lookup l) {
      if (l.value && n && *n > 0) {
        // the command's own interval (verify writes verified_robust_accuracy_ci), else one
        // computed from the fraction and `samples`, by the same rule as every other metric
        json view = {{field, *l.value}};
        std::vector<std::string> keys{field};
        if (field == "verified_fraction") keys.push_back("verified_robust_accuracy");
        for (const auto& key : keys)
          if (e->contains(key + "_ci")) {
            view[field + "_ci"] = (*e)[key + "_ci"];
            break;
          }
        l.interval = proportion_interval(view, field, int64_t(*n));
      }
      return l;
    };
    if (auto v = number(*e, field)) return with_interval(value_or_missing(v, field));
    if (field == "verified_fraction")
      if (auto v = number(*e, "verified_robust_accuracy")) return with_interval(value_or_missing(v, field));
    if (n && k && *n > 0) return with_interval(value_or_missing(*k / *n, field));
  }
  if (r.contains("per_sample") && r["per_sample"].is_array()) {
    int total = 0, hits = 0;
    for (const auto& e : r["per_sample"]) {
      auto ev = number(e, "eps");
      if (!ev || !same_number(*ev, eps)) continue;
      ++total;
      if (text(e, "verdict") == verdict) ++hits;
    }
    if (total > 0) return value_or_missing(double(hits) / total, field);
  }
  return value_or_missing(std::nullopt, fmt::format("by_eps[eps={}].{}", args[1], field));
}

Lookup disparity(const json& s, const std::string& name, const std::string& attribute) {
  if (!section_ok(s)) {
    const json& p = s.value("params", json::object());
    bool names_attr = false;
    for (const auto& a : p.value("protected", json::array())) names_attr |= a == attribute;
    return names_attr ? failed_section(s) : Lookup{};
  }
  const json& r = result_of(s);
  if (!r.contains("disparities") || !r["disparities"].is_array()) {
    // the section ran on this attribute only if it is listed in its parameters
    for (const auto& a : s.value("params", json::object()).value("protected", json::array()))
      if (a == attribute) return value_or_missing(std::nullopt, "disparities");
    return {};
  }
  bool attribute_seen = false;
  for (const auto& d : r["disparities"]) {
    if (text(d, "attribute") != attribute) continue;
    attribute_seen = true;
    if (text(d, "name") != name) continue;
    Lookup l = value_or_missing(number(d, "value"), fmt::format("disparities[{}, {}].value", attribute, name));
    if (!l.value && d.contains("reason"))
      l.why += " (" + (d["reason"].is_string() ? d["reason"].get<std::string>() : d["reason"].dump()) + ")";
    return l;
  }
  if (!attribute_seen) return {};
  return value_or_missing(std::nullopt, fmt::format("disparities[{}, {}]", attribute, name));
}

// Privacy sections: the attacks[] record named `attack`; a section that did
// not run that attack does not provide the metric.
Lookup membership_field(const json& s, const std::string& attack, const std::string& field) {
  if (!section_ok(s)) {
    // a failed section provides the metric when it was asked to run the attack
    const json& p = s.value("params", json::object());
    const json attacks = p.contains("attacks") ? p["attacks"] : json::array({"loss", "confidence", "entropy"});
    for (const auto& a : attacks)
      if (a == attack) return failed_section(s);
    return {};
  }
  const json& r = result_of(s);
  if (!r.contains("attacks") || !r["attacks"].is_array()) return value_or_missing(std::nullopt, "attacks");
  for (const auto& a : r["attacks"])
    if (text(a, "name") == attack) return value_or_missing(number(a, field), fmt::format("attacks[{}].{}", attack, field));
  return {};
}

// Backdoor sections: the neural_cleanse object (absent when only STRIP ran).
Lookup neural_cleanse_value(const json& s, const std::function<Lookup(const json&)>& read) {
  if (!section_ok(s)) return s.value("params", json::object()).value("neural_cleanse", true) ? failed_section(s) : Lookup{};
  const json& r = result_of(s);
  if (!r.contains("neural_cleanse") || !r["neural_cleanse"].is_object()) return {};
  return read(r["neural_cleanse"]);
}

const std::vector<MetricEntry>& entries() {
  static const std::vector<MetricEntry> table = [] {
    std::vector<MetricEntry> t;
    // ---- performance (mlaudit evaluate, mlaudit.performance/1)
    t.push_back({{"accuracy", "performance", {}, "performance: accuracy", "top-1 accuracy on the data set"},
                 [](const json& s, const auto&) {
                   if (!section_ok(s)) return failed_section(s);
                   return proportion_field(result_of(s), "accuracy", "accuracy", sample_count(s));
                 }});
    t.back().info.interval = true;
    t.push_back({{"accuracy_lower", "performance", {}, "performance: accuracy_interval[0]",
                  "lower end of the bootstrap interval of the accuracy"},
                 [](const json& s, const auto&) {
                   if (!section_ok(s)) return failed_section(s);
                   const json& r = result_of(s);
                   std::optional<double> v;
                   if (r.contains("accuracy_interval") && r["accuracy_interval"].is_array() &&
                       r["accuracy_interval"].size() == 2 && r["accuracy_interval"][0].is_number())
                     v = r["accuracy_interval"][0].get<double>();
                   return value_or_missing(v, "accuracy_interval");
                 }});
    // ---- efficiency (in-process)
    for (const auto& [name, field, what] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"latency_p50_ms", "latency_p50_ms", "median latency at batch 1 (ms)"},
             {"latency_p99_ms", "latency_p99_ms", "99th percentile latency at batch 1 (ms)"},
             {"throughput", "throughput_per_s", "samples per second at the large batch"},
             {"flops", "flops", "floating-point operations per inference"},
             {"parameters", "parameters", "number of parameters"},
             {"peak_memory_mb", "peak_rss_mb", "peak resident memory of the audit process (MB)"}}) {
      std::string f = field;
      t.push_back({{name, "efficiency", {}, "efficiency: " + field, what}, [f](const json& s, const auto&) {
                     if (!section_ok(s)) return failed_section(s);
                     return value_or_missing(number(result_of(s), f), f);
                   }});
    }
    // ---- robustness: mlaudit.attack/1
    t.push_back({{"clean_accuracy", "robustness", {"attack"}, "attack: clean_accuracy", "accuracy before the attack"},
                 [](const json& s, const std::vector<std::string>& a) {
                   if (!attack_matches(s, a[0], "")) return Lookup{};
                   if (!section_ok(s)) return failed_section(s);
                   return proportion_field(result_of(s), "clean_accuracy", "clean_accuracy", sample_count(s));
                 },
                 plan_attack});
    t.back().info.interval = true;
    t.push_back({{"robust_accuracy", "robustness", {"attack", "norm", "eps"}, "attack: by_eps[eps].robust_accuracy",
                  "accuracy under the attack at radius eps"},
                 [](const json& s, const std::vector<std::string>& a) { return by_eps_field(s, a, "robust_accuracy"); },
                 plan_attack});
    t.back().info.interval = true;
    t.push_back({{"attack_success_rate", "robustness", {"attack", "norm", "eps"},
                  "attack: by_eps[eps].attack_success_rate", "fraction of correctly classified samples the attack flips"},
                 [](const json& s, const std::vector<std::string>& a) { return by_eps_field(s, a, "attack_success_rate"); },
                 plan_attack});
    t.back().info.interval = true;
    // ---- certification: mlaudit.certify/1
    t.push_back({{"certified_accuracy", "certification", {"radius"}, "certify: certified_accuracy[radius].accuracy",
                  "randomized-smoothing certified accuracy at an L2 radius"},
                 [](const json& s, const std::vector<std::string>& a) {
                   if (!section_ok(s)) return failed_section(s);
                   const json* e = find_by_number(result_of(s), "certified_accuracy", "radius", to_double(a[0]));
                   if (!e) return value_or_missing(std::nullopt, fmt::format("certified_accuracy[radius={}]", a[0]));
                   return proportion_field(*e, "accuracy", "certified_accuracy[].accuracy", sample_count(s));
                 },
                 [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
                   // without `radii` the command's default radii apply (checked when the result is read)
                   if (!s.params.contains("radii") || listed_number(s.params, "radii", to_double(a[0]))) return "";
                   return fmt::format("certifies radii {}, not {}", list_text(s.params["radii"]), a[0]);
                 }});
    t.back().info.interval = true;
    // ---- corruption: mlaudit.corrupt/1
    t.push_back({{"mean_corruption_accuracy", "corruption", {}, "corrupt: mean_corruption_accuracy",
                  "accuracy averaged over corruptions and severities"},
                 [](const json& s, const auto&) {
                   if (!section_ok(s)) return failed_section(s);
                   return value_or_missing(number(result_of(s), "mean_corruption_accuracy"), "mean_corruption_accuracy");
                 }});
    t.push_back({{"corruption_accuracy", "corruption", {"corruption", "severity"},
                  "corrupt: corruptions[name].by_severity[severity].accuracy", "accuracy under one corruption at one severity"},
                 [](const json& s, const std::vector<std::string>& a) {
                   if (!section_ok(s)) return failed_section(s);
                   const json& r = result_of(s);
                   double sev = to_double(a[1]);
                   for (const char* key : {"results", "corruptions", "by_corruption"}) {
                     if (!r.contains(key) || !r[key].is_array()) continue;
                     for (const auto& e : r[key]) {
                       std::string name = text(e, "corruption");
                       if (name.empty()) name = text(e, "name");
                       if (name != a[0]) continue;
                       if (auto sv = number(e, "severity"); sv && same_number(*sv, sev))
                         return proportion_field(e, "accuracy", "accuracy", sample_count(s));
                       // nested form {corruption, severities: [{severity, accuracy}]}
                       for (const char* nested : {"by_severity", "severities"})
                         if (const json* inner = find_by_number(e, nested, "severity", sev))
                           return proportion_field(*inner, "accuracy", "accuracy", sample_count(s));
                     }
                   }
                   return value_or_missing(std::nullopt, fmt::format("results[{}, severity {}]", a[0], a[1]));
                 },
                 [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
                   // without `corruptions` every corruption of the data's kind runs (check_audit
                   // checks the name against that list); severities default to 1..5
                   if (s.params.contains("corruptions") && !listed_text(s.params, "corruptions", a[0]))
                     return fmt::format("runs corruptions {}, not {}", list_text(s.params["corruptions"]), a[0]);
                   double sev = to_double(a[1]);
                   if (s.params.contains("severities") ? !listed_number(s.params, "severities", sev)
                                                        : !(sev >= 1 && sev <= 5 && sev == std::floor(sev)))
                     return fmt::format("runs severities {}, not {}",
                                        s.params.contains("severities") ? list_text(s.params["severities"]) : "1..5", a[1]);
                   return "";
                 }});
    t.back().info.interval = true;
    // ---- fairness: mlaudit.fairness/1 (Fairlearn's definitions)
    for (const char* name :
         {"demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
          "equalized_odds_ratio", "equal_opportunity_difference", "equal_opportunity_ratio",
          "predictive_parity_difference", "false_positive_rate_difference", "false_negative_rate_difference",
          "accuracy_difference"}) {
      std::string n = name;
      t.push_back({{n, "fairness", {"attribute"}, "fairness: disparities[attribute, name=" + n + "].value",
                    "Fairlearn " + n + " across the groups of the attribute"},
                   [n](const json& s, const std::vector<std::string>& a) { return disparity(s, n, a[0]); }});
    }
    t.push_back({{"counterfactual_flip_rate", "fairness", {"attribute"}, "fairness: counterfactual[attribute].flip_rate",
                  "fraction of decisions that change when only the protected attribute changes"},
                 [](const json& s, const std::vector<std::string>& a) {
                   const json& r = result_of(s);
                   if (!section_ok(s)) return disparity(s, "", a[0]).matches ? failed_section(s) : Lookup{};
                   if (!r.contains("counterfactual") || !r["counterfactual"].is_array()) {
                     Lookup l = disparity(s, "", a[0]);
                     if (!l.matches) return l;
                     return value_or_missing(std::nullopt, "counterfactual (run with 'counterfactual: true')");
                   }
                   for (const auto& c : r["counterfactual"])
                     if (text(c, "attribute") == a[0]) return value_or_missing(number(c, "flip_rate"), "flip_rate");
                   return Lookup{};
                 }});
    // ---- explanations: mlaudit.explain/1
    t.push_back({{"ig_completeness_gap", "explanations", {}, "explain: checks.completeness.max_relative_gap (else max over samples[].completeness.relative_gap)",
                  "integrated-gradients completeness: worst relative gap between sum of attributions and f(x)-f(baseline)"},
                 [](const json& s, const auto&) {
                   return worst_sample_field(s, "integrated-gradients", "completeness", "max_relative_gap", "completeness", "completeness_gap");
                 }});
    t.push_back({{"kernel_shap_efficiency_gap", "explanations", {}, "explain: checks.efficiency.max_abs_gap (else max over samples[].efficiency_gap)",
                  "KernelSHAP efficiency: worst gap between sum of phi and f(x)-E[f(background)]"},
                 [](const json& s, const auto&) {
                   return worst_sample_field(s, "kernel-shap", "efficiency", "max_abs_gap", "", "efficiency_gap");
                 }});
    t.push_back({{"tree_shap_local_accuracy_gap", "explanations", {}, "explain: checks.local_accuracy.max_relative_gap (else max over samples[].local_accuracy_gap)",
                  "TreeSHAP local accuracy: worst relative gap between sum of phi and f(x) - E f"},
                 [](const json& s, const auto&) {
                   return worst_sample_field(s, "tree-shap", "local_accuracy", "max_relative_gap", "", "local_accuracy_gap");
                 }});
    // ---- verification: mlaudit.verify/1
    t.push_back({{"verified_fraction", "verification", {"norm", "eps"}, "verify: per_eps[eps].verified_robust_accuracy (or by_eps[eps].verified_fraction, or counted from per_sample)",
                  "fraction of samples proved robust at eps"},
                 [](const json& s, const std::vector<std::string>& a) {
                   return verify_fraction(s, a, "verified_fraction", "verified");
                 }});
    t.back().info.interval = true;
    t.push_back({{"falsified_fraction", "verification", {"norm", "eps"}, "verify: per_eps[eps].falsified / samples (or counted from per_sample)",
                  "fraction of samples with a counterexample at eps"},
                 [](const json& s, const std::vector<std::string>& a) {
                   return verify_fraction(s, a, "falsified_fraction", "falsified");
                 }});
    t.push_back({{"fairness_proved_fraction", "verification", {}, "verify (fairness mode): summary.proved / summary.partitions",
                  "fraction of input-domain partitions proved individually fair"},
                 [](const json& s, const auto&) {
                   if (text(s.value("params", json::object()), "mode") != "fairness") return Lookup{};
                   if (!section_ok(s)) return failed_section(s);
                   const json& r = result_of(s);
                   const json& sum = r.contains("summary") ? r["summary"] : json::object();
                   auto proved = number(sum, "proved"), parts = number(sum, "partitions");
                   if (proved && parts && *parts > 0) return value_or_missing(*proved / *parts, "summary.proved");
                   return value_or_missing(std::nullopt, "summary.proved / summary.partitions");
                 }});
    t.push_back({{"fairness_counterexamples", "verification", {}, "verify (fairness mode): counterexamples count",
                  "number of counterexample pairs found by individual-fairness verification"},
                 [](const json& s, const auto&) {
                   if (text(s.value("params", json::object()), "mode") != "fairness") return Lookup{};
                   if (!section_ok(s)) return failed_section(s);
                   const json& r = result_of(s);
                   for (const char* key : {"counterexamples", "counterexample_pairs"}) {
                     if (r.contains(key) && r[key].is_array()) return value_or_missing(double(r[key].size()), key);
                     if (auto v = number(r, key)) return value_or_missing(v, key);
                   }
                   return value_or_missing(std::nullopt, "counterexamples");
                 }});
    // ---- privacy: mlaudit.privacy/1
    t.push_back({{"membership_auc", "privacy", {"attack"}, "privacy: attacks[name=attack].auc",
                  "ROC AUC of a membership-inference attack (0.5: no leakage)"},
                 [](const json& s, const std::vector<std::string>& a) { return membership_field(s, a[0], "auc"); }});
    t.push_back({{"membership_tpr_at_fpr", "privacy", {"attack", "fpr"}, "privacy: attacks[name=attack].tpr_at_fpr_<fpr> (fpr 0.001 or 0.01)",
                  "true-positive rate of the attack at a false-positive rate of 0.1 % or 1 % (Carlini et al. 2022)"},
                 [](const json& s, const std::vector<std::string>& a) {
                   // only the two FPRs mlaudit privacy records exactly (parse_gate_check enforces it)
                   const std::string field = same_number(to_double(a[1]), 0.001) ? "tpr_at_fpr_0.001" : "tpr_at_fpr_0.01";
                   return membership_field(s, a[0], field);
                 }});
    t.push_back({{"membership_balanced_accuracy", "privacy", {"attack"}, "privacy: attacks[name=attack].balanced_accuracy",
                  "best balanced accuracy of the attack (threshold chosen on the evaluated samples: an upper bound)"},
                 [](const json& s, const std::vector<std::string>& a) { return membership_field(s, a[0], "balanced_accuracy"); }});
    t.push_back({{"max_membership_auc", "privacy", {}, "privacy: max over attacks[].auc",
                  "ROC AUC of the strongest attack the section ran"},
                 [](const json& s, const auto&) {
                   if (!section_ok(s)) return failed_section(s);
                   const json& r = result_of(s);
                   std::optional<double> best;
                   if (r.contains("attacks") && r["attacks"].is_array())
                     for (const auto& a : r["attacks"])
                       if (auto v = number(a, "auc")) best = std::max(best.value_or(*v), *v);
                   return value_or_missing(best, "attacks[].auc");
                 }});
    // ---- backdoor: mlaudit.backdoor/1
    t.push_back({{"backdoor_flagged_classes", "backdoor", {}, "backdoor: len(neural_cleanse.flagged)",
                  "number of classes Neural Cleanse flags (anomaly index above the threshold, small-norm side)"},
                 [](const json& s, const auto&) {
                   return neural_cleanse_value(s, [](const json& nc) {
                     if (!nc.contains("flagged") || !nc["flagged"].is_array())
                       return value_or_missing(std::nullopt, "neural_cleanse.flagged");
                     return value_or_missing(double(nc["flagged"].size()), "neural_cleanse.flagged");
                   });
                 }});
    t.push_back({{"backdoor_max_anomaly_index", "backdoor", {},
                  "backdoor: max of neural_cleanse.classes[].anomaly_index over classes with l1_norm <= median_l1",
                  "largest Neural Cleanse anomaly index on the small-mask side (the side a backdoor shows on); flagged above 2"},
                 [](const json& s, const auto&) {
                   return neural_cleanse_value(s, [](const json& nc) {
                     auto median = number(nc, "median_l1");
                     if (!median || !nc.contains("classes") || !nc["classes"].is_array())
                       return value_or_missing(std::nullopt, "neural_cleanse.classes / median_l1");
                     std::optional<double> worst;
                     for (const auto& c : nc["classes"]) {
                       auto l1 = number(c, "l1_norm");
                       if (!l1 || *l1 > *median) continue;
                       // null: MAD 0 with the value off the median, i.e. an infinite index
                       double v = c.contains("anomaly_index") && c["anomaly_index"].is_number()
                                      ? c["anomaly_index"].get<double>()
                                      : std::numeric_limits<double>::infinity();
                       worst = std::max(worst.value_or(v), v);
                     }
                     return value_or_missing(worst, "neural_cleanse.classes[].anomaly_index");
                   });
                 }});
    t.push_back({{"strip_flagged_fraction", "backdoor", {}, "backdoor: strip.flagged_fraction",
                  "fraction of the screened inputs STRIP flags as trojaned"},
                 [](const json& s, const auto&) {
                   if (!section_ok(s)) return s.value("params", json::object()).contains("suspicious") ? failed_section(s) : Lookup{};
                   const json& r = result_of(s);
                   if (!r.contains("strip") || !r["strip"].is_object()) return Lookup{};
                   return value_or_missing(number(r["strip"], "flagged_fraction"), "strip.flagged_fraction");
                 }});
    // ---- config time: which configured sections will produce each metric (the
    // counterpart of the extractors' `matches` above; same parameters, read from the config)
    auto plan = [&t](const std::string& name, Planner p) {
      for (auto& e : t)
        if (e.info.name == name) e.plan = p;
    };
    const Planner by_attribute = [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
      if (listed_text(s.params, "protected", a[0])) return "";
      return fmt::format("covers protected attributes {}, not {}", list_text(s.params.value("protected", json::array())), a[0]);
    };
    for (const auto& e : t)
      if (e.info.source == "fairness" && e.info.params.size() == 1 && e.info.name != "counterfactual_flip_rate")
        plan(e.info.name, by_attribute);
    plan("counterfactual_flip_rate", [by_attribute](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
      if (std::string why = by_attribute(s, a); !why.empty()) return why;
      return s.params.value("counterfactual", false) ? "" : "runs without 'counterfactual: true'";
    });
    auto by_method = [](const std::string& method) -> Planner {
      return [method](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
        std::string m = s.params.value("method", "");
        return m == method ? "" : fmt::format("explains with {}, not {}", m, method);
      };
    };
    plan("ig_completeness_gap", by_method("integrated-gradients"));
    plan("kernel_shap_efficiency_gap", by_method("kernel-shap"));
    plan("tree_shap_local_accuracy_gap", by_method("tree-shap"));
    const Planner verify_robust = [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
      const json& p = s.params;
      if (p.value("mode", "robustness") != "robustness") return "verifies individual fairness, not robustness";
      if (p.value("norm", "linf") != a[0]) return fmt::format("verifies under norm {}, not {}", p.value("norm", "linf"), a[0]);
      if (!listed_number(p, "eps", to_double(a[1]))) return fmt::format("verifies eps {}, not {}", list_text(p.value("eps", json::array())), a[1]);
      return "";
    };
    plan("verified_fraction", verify_robust);
    plan("falsified_fraction", verify_robust);
    const Planner verify_fair = [](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
      return s.params.value("mode", "robustness") == "fairness" ? "" : "verifies robustness, not individual fairness";
    };
    plan("fairness_proved_fraction", verify_fair);
    plan("fairness_counterexamples", verify_fair);
    const Planner by_membership_attack = [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
      // the attacks mlaudit privacy runs when none are named (membership_field reads the same default)
      const json attacks = s.params.contains("attacks") ? s.params["attacks"] : json::array({"loss", "confidence", "entropy"});
      for (const auto& x : attacks)
        if (x == a[0]) return "";
      return fmt::format("runs membership attacks {}, not {}", list_text(attacks), a[0]);
    };
    for (const char* name : {"membership_auc", "membership_tpr_at_fpr", "membership_balanced_accuracy"}) plan(name, by_membership_attack);
    const Planner neural_cleanse = [](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
      return s.params.value("neural_cleanse", true) ? "" : "runs STRIP only ('neural_cleanse: false')";
    };
    plan("backdoor_flagged_classes", neural_cleanse);
    plan("backdoor_max_anomaly_index", neural_cleanse);
    plan("strip_flagged_fraction", [](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
      return s.params.contains("suspicious") ? "" : "screens no inputs with STRIP (set 'suspicious')";
    });
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
