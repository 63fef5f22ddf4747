// Section kind "verification": `mlaudit verify`, robustness proofs per eps (mode
// robustness) or individual fairness over the input domain (mode fairness). Result: mlaudit.verify/1.
#include <set>

#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

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

// The gate metrics read from the section's result (mlaudit.verify/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  auto plan = [&m](const std::string& name, Planner p) { m.plan(name, std::move(p)); };
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
}

}  // namespace

MLAUDIT_SECTION_KIND(verification) {
  static const SectionKindDef def{
      .kind = SectionKind::Verification,
      .name = "verification",
      .order = 80,
      .command = "verify",
      .result_schema = "mlaudit.verify",
      .keys = {{.name = "mode", .type = KeyType::Str, .choices = {"robustness", "fairness"}},
               {.name = "eps", .type = KeyType::NumList, .rule = KeyRule::NonNegative},
               {.name = "norm", .type = KeyType::Str, .choices = {"linf", "l2"}},
               {.name = "timeout", .type = KeyType::Num},
               {.name = "protected", .type = KeyType::Str},
               {.name = "domain", .type = KeyType::Path},
               {.name = "partitions", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "protected_values", .type = KeyType::NumList}},
      .validate =
          [](SectionParse& v) {
            const std::string mode = v.s.params.value("mode", "robustness");
            v.s.params["mode"] = mode;
            if (mode == "robustness") {
              v.need_npy();
              if (!v.s.params.contains("eps")) v.fail_entry(fmt::format("{}: robustness verification needs 'eps'", v.what));
              if (!v.s.params.contains("norm")) v.s.params["norm"] = "linf";
            } else {
              if (!v.s.params.contains("protected")) v.fail_entry(fmt::format("{}: fairness verification needs 'protected'", v.what));
              if (!v.s.params.contains("domain") && (!v.ds || !v.ds->is_csv()))
                v.fail_entry(fmt::format("{}: fairness verification needs 'domain' (ranges.csv) or a CSV data set to derive it from", v.what));
              if (v.ds && v.ds->features.empty() && v.check_files)
                v.fail("data", fmt::format("{}: data set '{}' needs 'features'", v.what, v.ds->id));
            }
            v.id_suffix = "-" + mode;
          },
      .check =
          [](SectionCheck& c) {
            // the norms `mlaudit verify --norm` proves under (verify::robustness_norms())
            const std::string norm = c.s.params.value("norm", "linf");
            const auto& norms = c.vocab.verify_norms;
            if (c.s.params.value("mode", "robustness") == "robustness" && !norms.empty() && !c.contains(norms, norm)) {
              std::string t;
              for (const auto& n : norms) t += (t.empty() ? "" : ", ") + n;
              c.fail(c.s.mark_of("norm"), fmt::format("'norm' cannot be '{}': mlaudit verify proves robustness under {} only", norm, t));
            }
          },
      .args =
          [](SectionArgs& a) {
            if (a.p.value("mode", "robustness") == "fairness") {
              a.push("--fairness");
              a.pass("protected", "protected");
              const std::string features = a.ds ? SectionArgs::feature_list(*a.ds) : "";
              if (!features.empty()) a.flag("features", features);
              if (a.p.contains("domain")) a.pass("domain", "domain");
              else a.flag("domain", a.observed_domain(*a.ds));
              if (a.p.contains("protected_values")) a.flag("protected-values", SectionArgs::join_numbers(a.p["protected_values"]));
              a.pass("partitions", "partitions");
            } else {
              a.npy_inputs();
              a.flag("eps", SectionArgs::join_numbers(a.p["eps"]));
              a.pass("norm", "norm");
              a.domain();
            }
            a.pass("timeout", "timeout");
          },
      .searches_domain = [](const SectionSpec& s) { return s.params.value("mode", "robustness") == "robustness"; },
      .metrics = {"verified_fraction", "falsified_fraction", "fairness_proved_fraction", "fairness_counterexamples"},
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { detail::verification_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            const json& p = obj(s, "params");
            if (str(p, "mode") == "fairness") {
              const json& sum = obj(r, "summary");
              return fmt::format("individual fairness on '{}': {} of {} partitions proved, {} counterexamples, {} unknown, {} timeout",
                                 str(p, "protected"), str(sum, "proved", "n/a"), str(sum, "partitions", "n/a"),
                                 str(sum, "counterexample", "n/a"), str(sum, "unknown", "n/a"), str(sum, "timeout", "n/a"));
            }
            // mlaudit verify writes per_eps as an alias of by_eps: read one of them, and one value per eps
            // (verified_robust_accuracy, else the older verified_fraction), so no eps is listed twice
            std::string out = "verified fraction";
            const json& records = arr(r, "by_eps").empty() ? arr(r, "per_eps") : arr(r, "by_eps");
            std::set<std::string> seen;
            for (const auto& e : records) {
              const std::string eps = num(at(e, "eps"));
              if (!seen.insert(eps).second) continue;
              const json& v = at(e, "verified_robust_accuracy").is_null() ? at(e, "verified_fraction") : at(e, "verified_robust_accuracy");
              out += fmt::format("; eps {}: {}", eps, num(v));
              if (auto k = dbl(e, "verified"), n = dbl(e, "samples"); k && n) out += fmt::format(" ({:.0f} of {:.0f})", *k, *n);
            }
            return out;
          },
      .compliance_title = "Formal verification",
      .references = {"EU AI Act Art. 15(1), 15(4)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.7", "ISO/IEC 24029-2"},
      .limitation = "Verification verdicts 'unknown' and 'timeout' are not proofs; only 'verified' is.",
      .example = "model: m\ndata: images\neps: [0.002]\n",
  };
  return def;
}
