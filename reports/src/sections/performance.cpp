// Section kind "performance": `mlaudit evaluate` (accuracy with a bootstrap interval)
// on an .npy or CSV data set. Result: mlaudit.performance/1.
#include "blocks.h"
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// The gate metrics read from the section's result (mlaudit.performance/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
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
}

}  // namespace

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

void performance_blocks(Document& d, const json& report) {
  kind_chapter(d, report, "performance", "Performance", "performance", [&](const json& s, const json& r) {
    d.push_back(para(fmt::format("Accuracy {} ({}% percentile bootstrap interval, {} resamples) on {} samples.",
                                 with_interval(at(r, "accuracy"), at(r, "accuracy_interval")),
                                 num(json(100 * dbl(r, "ci").value_or(0.95)), 3), str(r, "bootstrap", "n/a"),
                                 str(r, "samples", "n/a"))));
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : arr(r, "per_class")) rows.push_back({str(c, "class"), str(c, "count"), num(at(c, "accuracy"))});
    if (!rows.empty()) d.push_back(table({"Class", "Samples", "Accuracy (recall)"}, rows));
  });
}

}  // namespace

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
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { performance_blocks(r.d, r.report); },
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
