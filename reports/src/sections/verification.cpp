// Section kind "verification": `mlaudit verify`, robustness proofs per eps (mode
// robustness) or individual fairness over the input domain (mode fairness). Result: mlaudit.verify/1.
#include <set>

#include "context.h"

using namespace mlaudit::reports;

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
