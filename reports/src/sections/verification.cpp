// Section kind "verification": `mlaudit verify`, robustness proofs per eps (mode
// robustness) or individual fairness over the input domain (mode fairness). Result: mlaudit.verify/1.
#include <set>

#include "blocks.h"
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

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

// Decision of an output vector: the arg-max class ("class 1 (logits -1.07, 0.873)").
std::string decision_text(const json& out) {
  if (!out.is_array() || out.empty()) return "n/a";
  size_t best = 0;
  std::string values;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k].is_number() && out[best].is_number() && out[k].get<double>() > out[best].get<double>()) best = k;
    values += (k ? ", " : "") + num(out[k], 4);
  }
  return out.size() == 1 ? "score " + values : fmt::format("class {} (outputs {})", best, values);
}

// One individual-fairness counterexample as a table a reader can follow: per feature,
// the partition's range and the two inputs; then the two decisions. Wraps at any width.
void counterexample_blocks(Document& d, const json& c, const json& r, size_t number) {
  const json& a = arr(c, "input_a");
  const json& b = arr(c, "input_b");
  const json& lo = arr(c, "lower");
  const json& hi = arr(c, "upper");
  const json& names = arr(r, "features");
  Block facts;
  facts.kind = K::Definitions;
  facts.text = fmt::format("Counterexample {}", number);
  facts.terms = {{"Partition", str(c, "index", "n/a")}, {"Verdict", str(c, "verdict", "counterexample")},
                 {"Decision for input A", decision_text(at(c, "output_a"))},
                 {"Decision for input B", decision_text(at(c, "output_b"))}};
  if (auto sec = dbl(c, "seconds")) facts.terms.push_back({"Time", num(json(*sec), 3) + " s"});
  d.push_back(facts);
  std::vector<std::vector<std::string>> rows;
  for (size_t k = 0; k < std::max(a.size(), b.size()); ++k) {
    std::string range = k < lo.size() && k < hi.size() ? fmt::format("{} to {}", num(lo[k], 6), num(hi[k], 6)) : "n/a";
    std::string va = k < a.size() ? num(a[k], 6) : "n/a", vb = k < b.size() ? num(b[k], 6) : "n/a";
    rows.push_back({k < names.size() && names[k].is_string() ? names[k].get<std::string>() : fmt::format("feature {}", k), range, va, vb,
                    va == vb ? "" : "differs"});
  }
  if (!rows.empty()) d.push_back(table({"Feature", "Partition range", "Input A", "Input B", ""}, rows));
}

void verification_blocks(Document& d, const json& report) {
  kind_chapter(d, report, "verification", "Formal verification", "verification", [&](const json& s, const json& r) {
    const json& p = obj(s, "params");
    if (str(p, "mode") == "fairness") {
      d.push_back(para(fmt::format("Individual fairness with respect to '{}': no input in the domain may change its "
                                   "decision when only the protected attribute changes.", str(p, "protected"))));
      d.push_back(scalars_table(obj(r, "summary").empty() ? r : obj(r, "summary")));
      const json& cex = at(r, "counterexample_pairs").is_array() ? at(r, "counterexample_pairs") : at(r, "counterexamples");
      if (cex.is_array() && !cex.empty()) {
        const size_t shown = std::min<size_t>(cex.size(), 5);
        d.push_back(para(fmt::format("Counterexample pairs ({} found, {} shown): two inputs that differ only in '{}' and get "
                                     "different decisions.",
                                     cex.size(), shown == cex.size() ? "all" : fmt::format("first {}", shown), str(p, "protected"))));
        for (size_t i = 0; i < shown; ++i) counterexample_blocks(d, cex[i], r, i + 1);
      }
      return;
    }
    // verdict counts per eps from the per-sample records
    std::map<double, std::map<std::string, int>> counts;
    std::vector<std::vector<std::string>> cex;
    for (const auto& e : arr(r, "per_sample")) {
      auto eps = dbl(e, "eps");
      if (!eps) continue;
      std::string v = str(e, "verdict", "unknown");
      counts[*eps][v]++;
      if (v == "falsified" && cex.size() < 20)
        cex.push_back({str(e, "index"), num(at(e, "eps")), str(e, "label"), num(at(e, "margin"))});
    }
    std::vector<std::vector<std::string>> rows;
    const json& eps_records = arr(r, "by_eps").empty() ? arr(r, "per_eps") : arr(r, "by_eps");
    for (const auto& e : eps_records) {
      double eps = dbl(e, "eps").value_or(NAN);
      auto& c = counts[eps];
      int total = 0;
      for (const auto& [k, n] : c) total += n;
      std::string frac = !at(e, "verified_fraction").is_null()          ? num(at(e, "verified_fraction"))
                         : !at(e, "verified_robust_accuracy").is_null() ? with_ci(e, "verified_robust_accuracy", result_sample_count(e))
                         : total ? num(json(double(c["verified"]) / total)) : "n/a";
      rows.push_back({num(at(e, "eps")), frac, std::to_string(c["verified"]),
                      std::to_string(c["falsified"]), std::to_string(c["unknown"] + c["timeout"])});
    }
    if (rows.empty())
      for (auto& [eps, c] : counts) {
        int total = 0;
        for (const auto& [k, n] : c) total += n;
        rows.push_back({num(json(eps)), num(json(total ? double(c["verified"]) / total : 0.0)), std::to_string(c["verified"]),
                        std::to_string(c["falsified"]), std::to_string(c["unknown"] + c["timeout"])});
      }
    if (rows.empty()) d.push_back(note("Not available: the result has no 'by_eps' or 'per_sample' records."));
    else d.push_back(table({"eps", "Verified fraction", "Verified", "Falsified", "Unknown / timeout"}, rows));
    // verdicts per eps as stacked bars: counts from the per-sample verdicts, else the eps records' counts
    std::vector<StackedBar> stacks;
    std::map<double, std::map<std::string, int>> stack_counts = counts;
    for (const auto& e : eps_records) {
      auto eps = dbl(e, "eps");
      if (!eps || !stack_counts[*eps].empty()) continue;
      for (const char* v : {"verified", "falsified", "unknown", "timeout"})
        if (dbl(e, v)) stack_counts[*eps][v] = count_field(e, v, "by_eps[]");
    }
    for (auto& [eps, c] : stack_counts)
      if (!c.empty())
        stacks.push_back({"eps " + num(json(eps)), {double(c["verified"]), double(c["falsified"]), double(c["unknown"]), double(c["timeout"])}});
    if (!stacks.empty())
      d.push_back(chart(svg_stacked_bar_chart("Verification verdicts per eps: " + str(s, "model"), "samples", stacks,
                                              {"verified (proof)", "falsified", "unknown", "timeout"},
                                              {chart_palette()[0], chart_palette()[1], "#bbbbbb", chart_palette()[4]}),
                        "verification-verdicts"));
    d.push_back(para("'verified' is a proof (sound bounds, exact solver); 'unknown' and 'timeout' are not proofs."));
    std::map<std::string, int> reasons;
    for (const auto& e : arr(r, "per_sample"))
      if (str(e, "verdict") != "verified" && str(e, "verdict") != "falsified" && !str(e, "reason").empty()) reasons[str(e, "reason")]++;
    if (!reasons.empty()) {
      std::vector<std::vector<std::string>> rr;
      for (const auto& [why, n] : reasons) rr.push_back({why, std::to_string(n)});
      d.push_back(para("Why samples stayed unknown:"));
      d.push_back(table({"Reason", "Samples x eps"}, rr));
    }
    if (!cex.empty()) {
      d.push_back(para("Counterexamples (re-checked by a concrete forward pass):"));
      d.push_back(table({"Sample", "eps", "Label", "Margin"}, cex));
    }
  });
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
      .render = [](SectionRender& r) { verification_blocks(r.d, r.report); },
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
