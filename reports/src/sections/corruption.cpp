// Section kind "corruption": `mlaudit corrupt` (common corruptions of images or tabular
// rows, accuracy per severity). Result: mlaudit.corrupt/1. Shown in the report's "Robustness" section.
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// The gate metrics read from the section's result (mlaudit.corrupt/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
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
}

}  // namespace

MLAUDIT_SECTION_KIND(corruption) {
  static const SectionKindDef def{
      .kind = SectionKind::Corruption,
      .name = "corruption",
      .order = 50,
      .command = "corrupt",
      .result_schema = "mlaudit.corrupt",
      .keys = {{.name = "corruptions", .type = KeyType::StrList},
               {.name = "severities", .type = KeyType::IntList},
               {.name = "seed", .type = KeyType::Int}},
      .validate =
          [](SectionParse& v) {
            v.need_npy();
            if (v.s.params.contains("severities"))
              for (const auto& x : v.s.params["severities"])
                if (!x.is_number_integer() || x.get<int64_t>() < 1 || x.get<int64_t>() > 5)
                  v.fail("severities", "'severities' must lie in 1..5");
          },
      .check =
          [](SectionCheck& c) {
            // the corruptions `mlaudit corrupt` has for the data's layout
            // (robustness::image_corruptions(), robustness::tabular_corruptions())
            if (!c.shape || !c.s.params.contains("corruptions")) return;
            const int64_t rank = c.rank();
            if (rank != 2 && rank != 4)
              c.fail(c.s.mark_of("data"), fmt::format("data set '{}' is {}; mlaudit corrupt takes images [N,C,H,W] or tabular rows [N,F]",
                                                      c.s.data, mlaudit::engine::shape_str(*c.shape)));
            const auto& known = rank == 4 ? c.vocab.image_corruptions : c.vocab.tabular_corruptions;
            const auto& other = rank == 4 ? c.vocab.tabular_corruptions : c.vocab.image_corruptions;
            if (known.empty()) return;
            for (size_t i = 0; i < c.s.params["corruptions"].size(); ++i) {
              const std::string name = c.s.params["corruptions"][i].get<std::string>();
              if (c.contains(known, name)) continue;
              const std::string layout = rank == 4 ? "images" : "tabular rows";
              if (c.contains(other, name))
                c.fail(c.s.mark_of(fmt::format("corruptions[{}]", i)),
                       fmt::format("'corruptions' cannot contain '{}': it applies to {}, and data set '{}' holds {} {}{}", name,
                                   rank == 4 ? "tabular rows" : "images", c.s.data, layout, mlaudit::engine::shape_str(*c.shape),
                                   c.suggest(name, known)));
              c.fail(c.s.mark_of(fmt::format("corruptions[{}]", i)),
                     fmt::format("'corruptions' cannot contain '{}': mlaudit corrupt has no such corruption for {}{}", name, layout,
                                 c.suggest(name, known)));
            }
          },
      .args =
          [](SectionArgs& a) {
            a.npy_inputs();
            if (a.p.contains("corruptions")) a.flag("corruptions", SectionArgs::join_strings(a.p["corruptions"]));
            if (a.p.contains("severities")) a.flag("severities", SectionArgs::join_numbers(a.p["severities"]));
            a.seed();
          },
      .metrics = {"mean_corruption_accuracy", "corruption_accuracy"},
      // one line for the compliance table and the diff (the section ran: status ok)
      .read_metrics = read_metrics,
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            return fmt::format("mean corruption accuracy {} (clean {})", num(at(r, "mean_corruption_accuracy")), num(at(r, "clean_accuracy")));
          },
      .compliance_title = "Robustness: corruptions",
      .references = {"EU AI Act Art. 15(4) (errors, faults, inconsistencies)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.5"},
      .example = "model: m\ndata: images\n",
  };
  return def;
}
