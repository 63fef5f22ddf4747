// Section kind "performance": `mlaudit evaluate` (accuracy with a bootstrap interval)
// on an .npy or CSV data set. Result: mlaudit.performance/1.
#include "context.h"

using namespace mlaudit::reports;

MLAUDIT_SECTION_KIND(performance) {
  static const SectionKindDef def{
      .kind = SectionKind::Performance,
      .name = "performance",
      .order = 10,
      .command = "evaluate",
      .result_schema = "mlaudit.performance",
      .keys = {{.name = "bootstrap", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "ci", .type = KeyType::Num, .rule = KeyRule::OpenUnit}},
      .args =
          [](SectionArgs& a) {
            if (a.ds->is_csv()) {
              a.flag("data", a.csv_rows(*a.ds));
              a.flag("label-column", a.ds->label);
              a.flag("features", SectionArgs::feature_list(*a.ds));
            } else {
              a.npy_inputs();
            }
            a.pass("bootstrap", "bootstrap");
            a.pass("ci", "ci");
            a.config_seed();
          },
      .metrics = {"accuracy", "accuracy_lower"},
      .render = [](SectionRender& r) { detail::performance_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            return fmt::format("accuracy {} on {} samples", with_interval(at(r, "accuracy"), at(r, "accuracy_interval")), str(r, "samples", "n/a"));
          },
      .compliance_title = "Performance",
      .references = {"EU AI Act Art. 15(1)-(3) (accuracy, declared metrics)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.3"},
      .example = "model: m\ndata: images\n",
  };
  return def;
}
