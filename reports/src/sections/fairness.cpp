// Section kind "fairness": `mlaudit fairness` (group metrics and disparities per
// protected attribute, optional counterfactual flips) on a CSV data set. Result: mlaudit.fairness/1.
#include "blocks.h"
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

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

// The gate metrics read from the section's result (mlaudit.fairness/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  auto plan = [&m](const std::string& name, Planner p) { m.plan(name, std::move(p)); };
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
}

}  // namespace

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

void fairness_blocks(Document& d, const json& report) {
  kind_chapter(d, report, "fairness", "Fairness", "fairness", [&](const json& s, const json& r) {
    // mlaudit fairness nests the data summary under "data"
    const json& data = at(r, "data").is_object() ? at(r, "data") : r;
    std::string dropped = str(data, "rows_dropped", at(data, "dropped").is_number() ? str(data, "dropped") : "n/a");
    std::string reasons;
    for (const auto& x : arr(data, "dropped")) reasons += (reasons.empty() ? "" : "; ") + (x.is_string() ? x.get<std::string>() : x.dump());
    d.push_back(para(fmt::format("Rows used: {}; dropped: {}{}. Conventions: Fairlearn (difference = max - min across "
                                 "groups, ratio = min / max); intervals are percentile bootstrap.",
                                 str(data, "rows", "n/a"), dropped, reasons.empty() ? "" : " (" + reasons + ")")));
    std::vector<std::vector<std::string>> rows;
    // per attribute: each group's rates with their intervals, drawn side by side
    static const std::vector<std::pair<std::string, std::string>> kGroupMetrics = {
        {"selection_rate", "selection rate"}, {"base_rate", "base rate"}, {"tpr", "TPR"}, {"fpr", "FPR"}, {"accuracy", "accuracy"}};
    std::map<std::string, std::vector<const json*>> by_attribute;
    for (const auto& g : arr(r, "groups")) {
      rows.push_back({str(g, "attribute"), str(g, "group"), str(g, "count"), group_metric(g, "base_rate"),
                      group_metric(g, "selection_rate"), group_metric(g, "tpr"), group_metric(g, "fpr"),
                      group_metric(g, "accuracy")});
      by_attribute[str(g, "attribute")].push_back(&g);
    }
    if (rows.empty()) d.push_back(note("Not available: the result has no 'groups' records."));
    else
      d.push_back(short_table({{"Attribute", "Attr."}, {"Group", ""}, {"Count", "n"}, {"Base rate", ""}, {"Selection rate", "Sel. rate"},
                               {"TPR", ""}, {"FPR", ""}, {"Accuracy", "Acc."}},
                              rows,
                              {"Attr.: protected attribute; n: rows in the group",
                               "Base rate: share of favourable labels; Sel. rate: share of favourable decisions",
                               "TPR / FPR: true / false positive rate; Acc.: accuracy",
                               "[a, b]: percentile-bootstrap interval"}));
    for (const auto& [attr, groups] : by_attribute) {
      std::vector<std::string> categories, names;
      std::vector<std::vector<std::optional<Bar>>> values;
      for (const json* g : groups) names.push_back(str(*g, "group") + " (n=" + str(*g, "count") + ")");
      for (const auto& [key, label] : kGroupMetrics) {
        std::vector<std::optional<Bar>> row;
        bool any = false;
        for (const json* g : groups) {
          const json& m = at(*g, key);
          double v = m.is_object() ? dbl(m, "value").value_or(NAN) : (m.is_number() ? m.get<double>() : NAN);
          if (!std::isfinite(v)) {
            row.push_back(std::nullopt);
            continue;
          }
          any = true;
          row.push_back(Bar{label, v, interval_of(m.is_object() ? at(m, "interval") : at(*g, key + "_interval"))});
        }
        if (!any) continue;
        categories.push_back(label);
        values.push_back(row);
      }
      if (!categories.empty())
        d.push_back(chart(svg_grouped_bar_chart("Fairness metrics by group: " + attr, "rate (bars: 95 % bootstrap interval)",
                                                categories, names, values),
                          "fairness-groups"));
    }
    rows.clear();
    std::map<std::string, std::vector<Bar>> ratio_bars;
    for (const auto& x : arr(r, "disparities")) {
      std::string value = at(x, "value").is_null() ? "undefined" + (str(x, "reason").empty() ? "" : " (" + str(x, "reason") + ")")
                                                   : with_interval(at(x, "value"), at(x, "interval"));
      rows.push_back({str(x, "attribute"), str(x, "name"), value, str(x, "reference", "-"), str(x, "formula", "")});
      std::string name = str(x, "name");
      if (name.size() > 6 && name.substr(name.size() - 6) == "_ratio")
        if (auto v = dbl(x, "value")) ratio_bars[str(x, "attribute")].push_back({name, *v, interval_of(at(x, "interval"))});
    }
    if (!rows.empty()) d.push_back(table({"Attribute", "Disparity", "Value [interval]", "Reference", "Formula"}, rows));
    for (const auto& [attr, bars] : ratio_bars) {
      auto t = gate_threshold(report, "demographic_parity_ratio", attr);
      d.push_back(chart(svg_bar_chart("Disparity ratios: " + attr, bars, t ? t : std::optional<double>(0.8),
                                      t ? fmt::format("gate {}", num(json(*t))) : "four-fifths rule 0.8"),
                        "fairness-ratios"));
    }
    rows.clear();
    for (auto it = obj(r, "individual").begin(); it != obj(r, "individual").end(); ++it)
      rows.push_back({it.key(), with_interval(at(it.value(), "value"), at(it.value(), "interval"))});
    if (!rows.empty()) {
      d.push_back(para("Individual-level indices (AIF360 definitions):"));
      d.push_back(table({"Index", "Value [interval]"}, rows));
    }
    rows.clear();
    for (const auto& c : arr(r, "counterfactual")) {
      std::string flipped = at(c, "flipped").is_number() ? num(at(c, "flipped"))
                            : (dbl(c, "flip_rate") && dbl(c, "counterfactuals"))
                                ? fmt::format("{:.0f} of {}", *dbl(c, "flip_rate") * *dbl(c, "counterfactuals"), str(c, "counterfactuals"))
                                : "n/a";
      rows.push_back({str(c, "attribute"), num(at(c, "flip_rate")), num(at(c, "mean_score_change")), flipped});
    }
    if (!rows.empty()) {
      d.push_back(para("Counterfactual probe: each row re-scored with only the protected attribute changed."));
      d.push_back(table({"Attribute", "Flip rate", "Mean score change", "Rows that flip"}, rows));
    }
  });
}

}  // namespace

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
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { fairness_blocks(r.d, r.report); },
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
