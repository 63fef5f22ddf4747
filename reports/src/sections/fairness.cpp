// Section kind "fairness": `mlaudit fairness` (group metrics and disparities per
// protected attribute, optional counterfactual flips) on a CSV data set. Result: mlaudit.fairness/1.
#include "context.h"

using namespace mlaudit::reports;

MLAUDIT_SECTION_KIND(fairness) {
  static const SectionKindDef def{
      .kind = SectionKind::Fairness,
      .name = "fairness",
      .order = 60,
      .command = "fairness",
      .result_schema = "mlaudit.fairness",
      .keys = {{.name = "protected", .type = KeyType::StrList},
               {.name = "counterfactual", .type = KeyType::Bool},
               {.name = "bootstrap", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "ci", .type = KeyType::Num, .rule = KeyRule::OpenUnit},
               {.name = "reference", .type = KeyType::Str},
               {.name = "min_group_size", .type = KeyType::Int},
               {.name = "threshold", .type = KeyType::Num},
               {.name = "seed", .type = KeyType::Int},
               // numeric protected columns: bins ('age:25,45;income:q4'), else refused past max_numeric_groups values
               {.name = "bins", .type = KeyType::Str},
               {.name = "max_numeric_groups", .type = KeyType::Int},
               // the label's favourable value, the model's favourable class, the class error rates call positive
               {.name = "favorable_label", .type = KeyType::Str},
               {.name = "favorable_class", .type = KeyType::Int},
               {.name = "positive", .type = KeyType::Str}},
      .reads_labels = false,
      .validate =
          [](SectionParse& v) {
            if (!v.ds || !v.ds->is_csv())
              v.fail("data", fmt::format("{}: fairness needs a CSV data set (with 'label' and 'protected')", v.what));
            if (!v.s.params.contains("protected")) {
              if (v.ds->protected_attributes.empty())
                v.fail_entry(fmt::format("{}: no protected attributes (set 'protected' here or on data set '{}')", v.what, v.ds->id));
              v.s.params["protected"] = v.ds->protected_attributes;
            }
            if (v.ds->features.empty() && v.check_files)
              v.fail("data", fmt::format("{}: data set '{}' needs 'features' (the model's input columns)", v.what, v.ds->id));
          },
      .check =
          [](SectionCheck& c) {
            // the class names `mlaudit fairness --positive` takes (fairness::positive_class_names())
            const auto& names = c.vocab.fairness_positive;
            if (c.s.params.contains("positive") && c.s.params["positive"].is_string() && !names.empty() &&
                !c.contains(names, c.s.params["positive"].get<std::string>())) {
              std::string t;
              for (const auto& n : names) t += (t.empty() ? "" : " or ") + n;
              c.fail(c.s.mark_of("positive"), fmt::format("'positive' cannot be '{}': mlaudit fairness counts {} outcomes as positive",
                                                          c.s.params["positive"].get<std::string>(), t));
            }
          },
      .args =
          [](SectionArgs& a) {
            a.flag("data", a.csv_rows(*a.ds));
            a.flag("label-column", a.ds->label);
            a.flag("protected", SectionArgs::join_strings(a.p["protected"]));
            a.flag("features", SectionArgs::feature_list(*a.ds));
            if (a.p.value("counterfactual", false)) a.push("--counterfactual");
            a.pass("bootstrap", "bootstrap");
            a.pass("ci", "ci");
            a.pass("reference", "reference");
            a.pass("min_group_size", "min-group-size");
            a.pass("threshold", "threshold");
            a.pass("bins", "bins");
            a.pass("max_numeric_groups", "max-numeric-groups");
            a.pass("favorable_label", "favorable-label");
            a.pass("favorable_class", "favorable-class");
            a.pass("positive", "positive");
            a.seed();
          },
      .metrics = {"demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                  "equalized_odds_ratio", "equal_opportunity_difference", "equal_opportunity_ratio",
                  "predictive_parity_difference", "false_positive_rate_difference", "false_negative_rate_difference",
                  "accuracy_difference", "counterfactual_flip_rate"},
      .render = [](SectionRender& r) { detail::fairness_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            std::string out;
            for (const auto& x : arr(r, "disparities"))
              if (str(x, "name") == "demographic_parity_ratio" || str(x, "name") == "equalized_odds_difference")
                out += fmt::format("{}{}({}) {}", out.empty() ? "" : "; ", str(x, "name"), str(x, "attribute"), num(at(x, "value")));
            for (const auto& c : arr(r, "counterfactual"))
              out += fmt::format("{}flip rate({}) {}", out.empty() ? "" : "; ", str(c, "attribute"), num(at(c, "flip_rate")));
            return out.empty() ? "group metrics computed" : out;
          },
      .compliance_title = "Fairness",
      .references = {"EU AI Act Annex IV 2(g) (discriminatory impacts)", "EU AI Act Annex IV 3 (accuracy for groups of persons)",
                     "NIST AI RMF MEASURE 2.11", "ISO/IEC TR 24027"},
      .limitation = "Fairness metrics describe the evaluated data set; groups are as encoded in the data and intervals "
                    "reflect sampling uncertainty only.",
      .example = "model: tab\ndata: table\n",
  };
  return def;
}
