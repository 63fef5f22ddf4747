// Section kind "efficiency": `mlaudit profile` (latency, throughput, FLOPs, memory) on
// inputs drawn from the data set's domain. Result: mlaudit.efficiency/1.
#include <cmath>

#include "context.h"

using namespace mlaudit::reports;

MLAUDIT_SECTION_KIND(efficiency) {
  static const SectionKindDef def{
      .kind = SectionKind::Efficiency,        // a new kind: any unused number, SectionKind{10}
      .name = "efficiency",                   // the key under `sections:` and the report's "kind"
      .order = 20,                            // report order
      .command = "profile",                   // mlaudit profile writes the result ...
      .result_schema = "mlaudit.efficiency",  // ... with this schema (a $defs entry of docs/report-schema.json)
      .keys = {{.name = "batch", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "runs", .type = KeyType::Int, .rule = KeyRule::Positive}},
      .data_optional = true,
      .reads_labels = false,
      .args =
          [](SectionArgs& a) {
            a.pass("runs", "runs");
            a.pass("batch", "batch");
            if (a.ds && a.ds->domain && std::isfinite(a.ds->domain->first) && std::isfinite(a.ds->domain->second)) a.domain();
            a.config_seed();
          },
      .metrics = {"latency_p50_ms", "latency_p99_ms", "throughput", "flops", "parameters", "peak_memory_mb"},
      .render = [](SectionRender& r) { detail::efficiency_blocks(r.d, r.report); },
      .compliance_title = "Efficiency",
      .references = {"EU AI Act Annex IV 2(g) (test metrics)", "NIST AI RMF MEASURE 2.3"},
      .example = "model: m\n",
  };
  return def;
}
