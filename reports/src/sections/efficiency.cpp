// Section kind "efficiency": `mlaudit profile` (latency, throughput, FLOPs, memory) on
// inputs drawn from the data set's domain. Result: mlaudit.efficiency/1.
#include <cmath>
#include <tuple>

#include "blocks.h"
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// The gate metrics read from the section's result (mlaudit.efficiency/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  // each entry: {name, source (this kind), gate arguments, JSON path (docs/audit.md), description}, then its reader
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
}

}  // namespace

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

void efficiency_blocks(Document& d, const json& report) {
  auto secs = sections_of(report, "efficiency");
  if (secs.empty()) return;
  d.push_back(heading("Efficiency", 2, "efficiency"));
  std::vector<std::vector<std::string>> rows;
  for (const json* sp : secs) {
    const json& s = *sp;
    if (str(s, "status") != "ok") {
      rows.push_back({str(s, "model"), "not available: " + str(s, "error"), "", "", "", "", "", ""});
      continue;
    }
    const json& r = obj(s, "result");
    rows.push_back({str(s, "model") + (is_imported(s) ? " (imported from " + str(obj(s, "imported"), "path", str(s, "imported_from")) + ")" : ""),
                    str(r, "backend", "n/a"), str(r, "parameters", "n/a"), num(at(r, "flops"), 6),
                    num(at(r, "latency_p50_ms")), num(at(r, "latency_p99_ms")),
                    fmt::format("{} (batch {})", num(at(r, "throughput_per_s"), 5), str(r, "batch", "n/a")),
                    num(at(r, "peak_rss_mb"), 5)});
  }
  d.push_back(short_table({{"Model", ""}, {"Backend", ""}, {"Parameters", "Params"}, {"FLOPs/inference", "FLOPs"},
                           {"Latency p50 (ms, batch 1)", "p50 ms"}, {"Latency p99 (ms, batch 1)", "p99 ms"},
                           {"Throughput (samples/s)", "Samples/s"}, {"Peak RSS (MB, process)", "Peak MB"}},
                          rows,
                          {"Params: parameters; FLOPs: floating-point operations per inference",
                           "p50 ms / p99 ms: median / 99th-percentile latency at batch 1, in milliseconds",
                           "Samples/s: throughput at the batch shown; Peak MB: peak resident memory of the audit process"}));
  d.push_back(para("Latency is wall time of Session::run at batch 1 after warm-up; peak memory is the audit process's "
                   "peak resident set (getrusage), an upper bound for the model alone."));
}

}  // namespace

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
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { efficiency_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            return fmt::format("latency p50 {} ms, p99 {} ms; throughput {}/s; {} FLOPs", num(at(r, "latency_p50_ms")),
                               num(at(r, "latency_p99_ms")), num(at(r, "throughput_per_s")), num(at(r, "flops"), 6));
          },
      .compliance_title = "Efficiency",
      .references = {"EU AI Act Annex IV 2(g) (test metrics)", "NIST AI RMF MEASURE 2.3"},
      .example = "model: m\n",
  };
  return def;
}
