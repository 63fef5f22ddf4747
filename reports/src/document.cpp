// Builds the report document from report.json. Readers are tolerant: a field
// that is missing shows "not available" (gates needing it are errors).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "doc.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/common/error.h"
#include "mlaudit/common/tensor.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "mlaudit/reports/sections.h"
#include "sections/context.h"

namespace mlaudit::reports::detail {

using nlohmann::json;
using K = Block::Kind;

// The tolerant readers (context.h declares them for the kinds' headlines).
namespace {
const json kNull = nullptr;
const json kEmptyArray = json::array();
const json kEmptyObject = json::object();
}  // namespace

const json& at(const json& j, const std::string& key) {
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}
const json& arr(const json& j, const std::string& key) {
  const json& v = at(j, key);
  return v.is_array() ? v : kEmptyArray;
}
const json& obj(const json& j, const std::string& key) {
  const json& v = at(j, key);
  return v.is_object() ? v : kEmptyObject;
}
std::string str(const json& j, const std::string& key, const std::string& def) {
  const json& v = at(j, key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  return def;
}
std::optional<double> dbl(const json& j, const std::string& key) {
  const json& v = at(j, key);
  if (v.is_number()) return v.get<double>();
  return std::nullopt;
}

// A count field (gates, sections, verdicts) of the object `where` names: absent is 0; a JSON
// number must be a whole number in [0, 10^9], else InputError naming the field (a float such
// as 1.9e68 must never reach an int conversion).
int count_field(const json& j, const std::string& key, const std::string& where) {
  const std::optional<double> v = dbl(j, key);
  if (!v) return 0;
  if (!(*v >= 0 && *v <= 1e9) || *v != std::floor(*v))
    throw ::mlaudit::InputError("reports", fmt::format("{}.{} is {}, not a count", where, key, at(j, key).dump()));
  return int(*v);
}

// "0.81 [0.78, 0.84]" from a value and an interval given as [lo, hi] or {lo, hi}/{low, high}.
std::string with_interval(const json& value, const json& interval) {
  std::string s = num(value);
  if (interval.is_array() && interval.size() == 2) s += fmt::format(" [{}, {}]", num(interval[0]), num(interval[1]));
  else if (interval.is_object()) {
    const json& lo = interval.contains("lo") ? interval["lo"] : at(interval, "low");
    const json& hi = interval.contains("hi") ? interval["hi"] : at(interval, "high");
    if (!lo.is_null()) s += fmt::format(" [{}, {}]", num(lo), num(hi));
  }
  return s;
}
namespace {

std::optional<std::pair<double, double>> interval_of(const json& interval) {
  if (interval.is_array() && interval.size() == 2 && interval[0].is_number() && interval[1].is_number())
    return std::make_pair(interval[0].get<double>(), interval[1].get<double>());
  return std::nullopt;
}

// A metric in fairness group records: either a number with `<name>_interval`
// beside it, or an object {value, interval}.
std::string group_metric(const json& g, const std::string& name) {
  const json& v = at(g, name);
  if (v.is_object()) return with_interval(at(v, "value"), at(v, "interval"));
  return with_interval(v, at(g, name + "_interval"));
}

Block heading(const std::string& text, int level = 2, const std::string& anchor = "") {
  Block b;
  b.kind = K::Heading;
  b.text = text;
  b.level = level;
  b.anchor = anchor;
  return b;
}
Block para(const std::string& text) {
  Block b;
  b.kind = K::Paragraph;
  b.text = text;
  return b;
}
Block note(const std::string& text) {
  Block b;
  b.kind = K::Note;
  b.text = text;
  return b;
}
Block table(std::vector<std::string> header, std::vector<std::vector<std::string>> rows) {
  Block b;
  b.kind = K::Table;
  b.header = std::move(header);
  b.rows = std::move(rows);
  return b;
}
// `kind` names what the chart shows; it becomes the class "chart-<kind>" (what the
// browser test looks for) and stays stable when titles change.
Block chart(std::string svg, std::string kind) {
  Block b;
  b.kind = K::Chart;
  b.svg = std::move(svg);
  b.chart_kind = std::move(kind);
  return b;
}
// A table whose narrow columns show an abbreviation in HTML, explained in a legend under
// it; Markdown keeps the full headers (GitHub scrolls wide tables). `columns` pairs each
// full header with its abbreviation ("" keeps the full one); `legend` explains them.
Block short_table(const std::vector<std::pair<std::string, std::string>>& columns, std::vector<std::vector<std::string>> rows,
                  std::vector<std::string> legend) {
  Block b;
  b.kind = K::Table;
  for (const auto& [full, abbreviation] : columns) {
    b.header.push_back(full);
    b.short_header.push_back(abbreviation.empty() ? full : abbreviation);
  }
  b.rows = std::move(rows);
  b.legend = std::move(legend);
  return b;
}
Block list(std::vector<std::string> items) {
  Block b;
  b.kind = K::List;
  b.items = std::move(items);
  return b;
}

// Scalars of a value ("passed: true; threshold: 0.05"); arrays summarised by length.
std::string brief(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_primitive()) return num(v);
  if (v.is_array()) return fmt::format("[{} values]", v.size());
  std::string out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string x = it.value().is_array() ? fmt::format("[{} values]", it.value().size())
                    : it.value().is_object() ? "{...}" : (it.value().is_string() ? it.value().get<std::string>() : num(it.value()));
    out += (out.empty() ? "" : "; ") + it.key() + ": " + x;
  }
  return out;
}

// Top-level scalar fields of a result, so nothing is hidden when the layout is unknown.
Block scalars_table(const json& r) {
  std::vector<std::vector<std::string>> rows;
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.value().is_primitive() && it.key() != "schema") rows.push_back({it.key(), it.value().is_string() ? it.value().get<std::string>() : num(it.value())});
  return table({"Field", "Value"}, rows);
}

bool is_imported(const json& s) { return at(s, "imported").is_object() || at(s, "imported_from").is_string(); }

std::string section_title(const json& s) {
  std::string t = fmt::format("{} (model {}", str(s, "id"), str(s, "model"));
  if (!str(s, "data").empty()) t += ", data " + str(s, "data");
  return t + (is_imported(s) ? "; imported)" : ")");
}

// Where an imported section's numbers come from and whether they belong to this
// model (check.h read_import); empty for sections the audit ran itself.
std::string import_text(const json& s) {
  if (!is_imported(s)) return "";
  const json& imp = obj(s, "imported");
  std::string path = str(imp, "path", str(s, "imported_from"));
  std::string out = fmt::format("Imported, not run by this audit: the result was read from {}", path);
  if (!str(imp, "sha256").empty()) out += fmt::format(" (SHA-256 {})", str(imp, "sha256"));
  const std::string check = str(imp, "model_check");
  if (check == "match")
    out += fmt::format(". It records model SHA-256 {}, the audited model's.", str(imp, "model_sha256"));
  else if (check == "foreign")
    out += fmt::format(". It was computed from a DIFFERENT model (SHA-256 {}; the audited model's is {}) and is shown only "
                       "because the config sets 'allow_foreign_model: true'.",
                       str(imp, "result_model_sha256"), str(imp, "model_sha256"));
  else if (check == "unverified")
    out += ". It records no model hash, so it is NOT verified to come from the audited model; shown because the config "
           "sets 'allow_foreign_model: true'.";
  else
    out += ". Its provenance was not recorded.";
  return out;
}

// An interval end with two decimals ("0.60", not "0.6"), so both ends line up.
std::string ci_end(const json& v) { return v.is_number() ? fmt::format("{:.2f}", v.get<double>()) : "n/a"; }

// "0.42 (95 % CI 0.28-0.57, n = 50)": a proportion with its Clopper-Pearson interval
// (the result's `<field>_ci`, else computed from the value and n_samples).
std::string with_ci(const json& object, const std::string& field, std::optional<int64_t> n) {
  const json& v = at(object, field);
  std::string text = num(v);
  json ci = proportion_interval(object, field, n);
  if (ci.is_object())
    text += fmt::format(" ({} % CI {}-{}, n = {})", num(json(100 * ci.value("confidence", 0.95)), 3), ci_end(at(ci, "lower")),
                        ci_end(at(ci, "upper")), str(ci, "n", "?"));
  return text;
}

std::optional<int64_t> sample_count(const json& r) {
  for (const char* key : {"n_samples", "samples"})
    if (at(r, key).is_number_integer()) return at(r, key).get<int64_t>();
  return std::nullopt;
}

// The Clopper-Pearson interval of a proportion as (lower, upper) for a chart band.
std::optional<std::pair<double, double>> ci_pair(const json& object, const std::string& field, std::optional<int64_t> n) {
  json ci = proportion_interval(object, field, n);
  if (ci.is_object() && at(ci, "lower").is_number() && at(ci, "upper").is_number())
    return std::make_pair(ci["lower"].get<double>(), ci["upper"].get<double>());
  return std::nullopt;
}

// Adds a point and, when every point so far has one, its interval; a series with a
// point lacking an interval draws no band (a band with holes would mislead).
void add_point(Series& ser, double x, double y, std::optional<std::pair<double, double>> ci) {
  const bool banded = ser.band.size() == ser.points.size();
  ser.points.push_back({x, y});
  if (banded && ci) ser.band.push_back(*ci);
  else ser.band.clear();
}

// The section's heading and, for an imported one, where its result came from.
void section_heading(Document& d, const json& s, int level) {
  d.push_back(heading(section_title(s), level));
  if (std::string t = import_text(s); !t.empty()) d.push_back(note(t));
}

// Gate thresholds that apply to a metric name (for threshold lines on charts).
std::optional<double> gate_threshold(const json& report, const std::string& metric, const std::string& arg0) {
  for (const auto& g : arr(report, "gates"))
    if (str(g, "metric") == metric && (arg0.empty() || (!arr(g, "args").empty() && arr(g, "args")[0] == arg0)))
      return dbl(g, "threshold");
  return std::nullopt;
}

void collect_pngs(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    if (s.size() > 4 && s.substr(s.size() - 4) == ".png") out.push_back(s);
  } else if (j.is_array() || j.is_object()) {
    for (const auto& e : j) collect_pngs(e, out);
  }
}

bool failed(Document& d, const json& s) {
  if (str(s, "status") == "ok") return false;
  section_heading(d, s, 3);
  d.push_back(note(fmt::format("Not available: the section did not complete ({}).", str(s, "error", str(s, "status", "no result")))));
  return true;
}

std::vector<const json*> sections_of(const json& report, const std::string& kind) {
  std::vector<const json*> out;
  for (const auto& s : arr(report, "sections"))
    if (str(s, "kind") == kind) out.push_back(&s);
  return out;
}

void manifest_blocks(Document& d, const json& report) {
  const json& m = obj(report, "manifest");
  d.push_back(heading("Run manifest", 2, "manifest"));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, label] : std::vector<std::pair<std::string, std::string>>{
           {"tool_version", "Tool version"}, {"git_commit", "Git commit"}, {"date", "Date (UTC)"},
           {"host", "Host"}, {"os", "Operating system"}, {"cpu", "CPU"}, {"cpu_cores", "CPU cores"},
           {"gpu", "GPU"}, {"threads", "Threads"}, {"seed", "Seed"}, {"config", "Config"}})
    rows.push_back({label, str(m, key, "not available")});
  d.push_back(table({"Item", "Value"}, rows));
  rows.clear();
  for (const auto& h : arr(m, "inputs")) rows.push_back({str(h, "role"), str(h, "path"), str(h, "sha256", "not available")});
  if (!rows.empty()) {
    d.push_back(para("SHA-256 of every input of the audit:"));
    d.push_back(table({"Role", "Path", "SHA-256"}, rows));
  }
}

void system_blocks(Document& d, const json& report) {
  const json& s = obj(report, "system");
  d.push_back(heading("System and intended use", 2, "system"));
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, label] : std::vector<std::pair<std::string, std::string>>{
           {"name", "System"}, {"version", "Version"}, {"owner", "Owner"}, {"description", "Description"},
           {"intended_use", "Intended use"}, {"out_of_scope", "Out of scope"}})
    rows.push_back({label, str(s, key).empty() ? "not stated in the config" : str(s, key)});
  d.push_back(table({"Item", "Value"}, rows));
}

void model_blocks(Document& d, const json& report) {
  d.push_back(heading("Model summary", 2, "models"));
  for (const auto& m : arr(report, "models")) {
    d.push_back(heading(fmt::format("Model {}", str(m, "id")), 3));
    const json& s = at(m, "summary");
    if (!s.is_object()) {
      d.push_back(note("Not available: " + str(m, "error", "no summary")));
      continue;
    }
    auto io = [](const json& list) {
      std::string out;
      for (const auto& v : list) {
        std::string shape;
        // a negative (dynamic) dimension reads N; compared as a double, never converted to an integer
        for (const auto& x : arr(v, "shape"))
          shape += (shape.empty() ? "" : ",") + (x.is_number() && x.get<double>() < 0 ? std::string("N") : x.dump());
        out += (out.empty() ? "" : "; ") + fmt::format("{} {} [{}]", str(v, "name"), str(v, "dtype"), shape);
      }
      return out;
    };
    d.push_back(table({"Item", "Value"},
                      {{"Path", str(m, "path")},
                       {"Opset", str(s, "opset", "n/a")},
                       {"Producer", str(s, "producer", "n/a")},
                       {"Inputs", io(arr(s, "inputs"))},
                       {"Outputs", io(arr(s, "outputs"))},
                       {"Nodes", str(s, "nodes", "n/a")},
                       {"Parameters", str(s, "parameters", "n/a")},
                       {"FLOPs per inference (batch 1)", num(at(s, "flops"), 6)},
                       {"Unsupported ops", arr(s, "unsupported_ops").empty() ? "none" : arr(s, "unsupported_ops").dump()}}));
    std::vector<std::vector<std::string>> ops;
    for (auto it = obj(s, "ops").begin(); it != obj(s, "ops").end(); ++it) ops.push_back({it.key(), it.value().dump()});
    if (!ops.empty()) d.push_back(table({"Op", "Count"}, ops));
  }
}

}  // namespace

// ---- the section kinds' blocks (called from each kind's `render`, sections/<kind>.cpp) ----

void performance_blocks(Document& d, const json& report) {
  auto secs = sections_of(report, "performance");
  if (secs.empty()) return;
  d.push_back(heading("Performance", 2, "performance"));
  for (const json* sp : secs) {
    const json& s = *sp;
    if (failed(d, s)) continue;
    const json& r = obj(s, "result");
    section_heading(d, s, 3);
    d.push_back(para(fmt::format("Accuracy {} ({}% percentile bootstrap interval, {} resamples) on {} samples.",
                                 with_interval(at(r, "accuracy"), at(r, "accuracy_interval")),
                                 num(json(100 * dbl(r, "ci").value_or(0.95)), 3), str(r, "bootstrap", "n/a"),
                                 str(r, "samples", "n/a"))));
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : arr(r, "per_class")) rows.push_back({str(c, "class"), str(c, "count"), num(at(c, "accuracy"))});
    if (!rows.empty()) d.push_back(table({"Class", "Samples", "Accuracy (recall)"}, rows));
  }
}

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

void robustness_blocks(Document& d, const json& report) {
  auto attacks = sections_of(report, "robustness");
  auto certs = sections_of(report, "certification");
  auto corrs = sections_of(report, "corruption");
  if (attacks.empty() && certs.empty() && corrs.empty()) return;
  d.push_back(heading("Robustness", 2, "robustness"));
  if (!attacks.empty()) {
    d.push_back(heading("Adversarial attacks", 3));
    std::map<std::string, std::vector<Series>> curves;  // per model and norm
    for (const json* sp : attacks) {
      const json& s = *sp;
      if (failed(d, s)) continue;
      const json& r = obj(s, "result");
      const json& p = obj(s, "params");
      std::string attack = str(p, "attack", str(r, "attack")), norm = str(p, "norm", str(r, "norm"));
      section_heading(d, s, 4);
      d.push_back(para(fmt::format("Attack {} ({} norm); clean accuracy {}.", attack, norm,
                                   with_ci(r, "clean_accuracy", sample_count(r)))));
      std::vector<std::vector<std::string>> rows;
      Series ser{attack, {}};
      if (auto c = dbl(r, "clean_accuracy")) add_point(ser, 0.0, *c, ci_pair(r, "clean_accuracy", sample_count(r)));
      for (const auto& e : arr(r, "by_eps")) {
        std::string calls = !at(e, "gradient_calls").is_null() ? num(at(e, "gradient_calls"), 8) : num(at(e, "queries"), 8);
        rows.push_back({num(at(e, "eps")), with_ci(e, "robust_accuracy", sample_count(r)), num(at(e, "attack_success_rate")),
                        num(at(e, "mean_perturbation_norm")), num(at(e, "median_perturbation_norm")), calls});
        if (auto x = dbl(e, "eps"), y = dbl(e, "robust_accuracy"); x && y && *x > 0)
          add_point(ser, *x, *y, ci_pair(e, "robust_accuracy", sample_count(r)));
      }
      if (rows.empty()) d.push_back(note("Not available: the result has no 'by_eps' records."));
      else d.push_back(short_table({{"eps", ""}, {"Robust accuracy", ""}, {"Attack success rate", "ASR"},
                                    {"Mean perturbation norm", "Mean norm"}, {"Median perturbation norm", "Median norm"},
                                    {"Gradient calls / queries", "Calls"}},
                                   rows,
                                   {"ASR: attack success rate, the share of clean-correct samples the attack flips",
                                    "Mean norm / Median norm: mean / median norm of the perturbations found",
                                    "Calls: gradient calls (white-box attacks) or model queries (black-box attacks)"}));
      if (!ser.points.empty()) curves[str(s, "model") + " (" + norm + ")"].push_back(ser);
    }
    for (const auto& [key, series] : curves)
      d.push_back(chart(svg_line_chart("Robust accuracy vs eps: " + key, "eps (0 = clean)", "accuracy (95 % CI shaded)", series),
                        "robust-eps"));
  }
  if (!certs.empty()) {
    d.push_back(heading("Certified robustness (randomized smoothing)", 3));
    for (const json* sp : certs) {
      const json& s = *sp;
      if (failed(d, s)) continue;
      const json& r = obj(s, "result");
      const json& p = obj(s, "params");
      section_heading(d, s, 4);
      const json& cfgj = at(r, "config").is_object() ? at(r, "config") : r;  // mlaudit certify nests its settings
      int abstain = 0, total = 0;
      for (const auto& e : arr(r, "per_sample")) {
        ++total;
        if (dbl(e, "prediction").value_or(0) < 0) ++abstain;
      }
      d.push_back(para(fmt::format("sigma {}, N0 {}, N {}, alpha {}: {} samples, {} abstentions. Certified radii are L2 "
                                   "and hold with probability at least 1 - alpha (Cohen et al. 2019); they are "
                                   "statistical, not formal, guarantees.",
                                   str(cfgj, "sigma", str(p, "sigma", "n/a")), str(cfgj, "n0", str(p, "n0", "default")),
                                   str(cfgj, "n", str(p, "n", "default")), str(cfgj, "alpha", str(p, "alpha", "default")),
                                   total, abstain)));
      std::vector<std::vector<std::string>> rows;
      Series ser{str(s, "model"), {}};
      for (const auto& e : arr(r, "certified_accuracy")) {
        rows.push_back({num(at(e, "radius")), with_ci(e, "accuracy", sample_count(r))});
        if (auto x = dbl(e, "radius"), y = dbl(e, "accuracy"); x && y) add_point(ser, *x, *y, ci_pair(e, "accuracy", sample_count(r)));
      }
      if (rows.empty()) d.push_back(note("Not available: the result has no 'certified_accuracy' records."));
      else {
        d.push_back(table({"L2 radius", "Certified accuracy"}, rows));
        d.push_back(chart(svg_line_chart("Certified accuracy vs radius: " + str(s, "model"), "L2 radius", "certified accuracy", {ser}),
                          "certified-radius"));
      }
    }
  }
  if (!corrs.empty()) {
    d.push_back(heading("Common corruptions", 3));
    for (const json* sp : corrs) {
      const json& s = *sp;
      if (failed(d, s)) continue;
      const json& r = obj(s, "result");
      section_heading(d, s, 4);
      d.push_back(para(fmt::format("Clean accuracy {}; mean corruption accuracy {}.", with_ci(r, "clean_accuracy", sample_count(r)),
                                   num(at(r, "mean_corruption_accuracy")))));
      std::vector<std::vector<std::string>> rows;
      std::map<std::string, Series> lines;  // one line per corruption, severity 0 = clean
      std::vector<std::string> order;
      auto point = [&](const std::string& name, const json& e) {
        auto sev = dbl(e, "severity");
        auto acc = dbl(e, "accuracy");
        if (!sev || !acc) return;
        if (!lines.count(name)) {
          order.push_back(name);
          lines[name].name = name;
          if (auto c = dbl(r, "clean_accuracy")) add_point(lines[name], 0.0, *c, ci_pair(r, "clean_accuracy", sample_count(r)));
        }
        add_point(lines[name], *sev, *acc, ci_pair(e, "accuracy", sample_count(r)));
      };
      for (const char* key : {"results", "corruptions", "by_corruption"}) {
        for (const auto& e : arr(r, key)) {
          std::string name = str(e, "corruption", str(e, "name"));
          if (!at(e, "severity").is_null()) {
            rows.push_back({name, str(e, "severity"), with_ci(e, "accuracy", sample_count(r))});
            point(name, e);
          }
          for (const char* nested : {"by_severity", "severities"})
            for (const auto& sv : arr(e, nested)) {
              rows.push_back({name, str(sv, "severity"), with_ci(sv, "accuracy", sample_count(r))});
              point(name, sv);
            }
        }
        if (!rows.empty()) break;
      }
      if (rows.empty()) d.push_back(scalars_table(r));
      else d.push_back(table({"Corruption", "Severity", "Accuracy"}, rows));
      if (!lines.empty()) {
        std::vector<Series> series;
        for (const auto& name : order) {
          series.push_back(lines[name]);
          series.back().band.clear();  // seven overlapping bands hide the lines; the table has every interval
        }
        d.push_back(chart(svg_line_chart("Accuracy vs corruption severity: " + str(s, "model"), "severity (0 = clean)", "accuracy",
                                         series),
                          "corruption-severity"));
      }
    }
  }
}

void fairness_blocks(Document& d, const json& report) {
  auto secs = sections_of(report, "fairness");
  if (secs.empty()) return;
  d.push_back(heading("Fairness", 2, "fairness"));
  for (const json* sp : secs) {
    const json& s = *sp;
    if (failed(d, s)) continue;
    const json& r = obj(s, "result");
    section_heading(d, s, 3);
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
  }
}

// Mean |attribution| per pixel over the images and channels of an attributions file
// [N, C, H, W] or [N, H, W] (the explain command's .npy); empty when it cannot be read.
std::vector<double> mean_abs_map(const std::string& path, const std::string& asset_dir, int& rows, int& cols, int64_t& images) {
  namespace fs = std::filesystem;
  fs::path p = path;
  if (p.is_relative() && !asset_dir.empty()) p = fs::path(asset_dir) / p;
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(p, ec) || fs::file_size(p, ec) > (uint64_t(256) << 20)) return {};
  try {
    engine::Tensor t = datasets::read_npy_float(p.string());
    if (t.rank() != 3 && t.rank() != 4) return {};
    images = t.dim(0);
    rows = int(t.dim(-2)), cols = int(t.dim(-1));
    const int64_t plane = int64_t(rows) * cols, per_image = t.numel() / std::max<int64_t>(images, 1);
    if (images < 1 || plane < 1 || rows > 512 || cols > 512) return {};
    std::vector<double> mean(size_t(plane), 0.0);
    const std::vector<double> v = t.to_doubles();
    for (int64_t i = 0; i < images; ++i)
      for (int64_t k = 0; k < per_image; ++k) mean[size_t(k % plane)] += std::fabs(v[size_t(i * per_image + k)]);
    for (double& m : mean) m /= double(per_image / plane * images);
    return mean;
  } catch (const std::exception&) {
    return {};
  }
}

void explain_blocks(Document& d, const json& report, std::vector<std::string>* images, const std::string& asset_dir) {
  auto secs = sections_of(report, "explanations");
  if (secs.empty()) return;
  d.push_back(heading("Explanations", 2, "explanations"));
  for (const json* sp : secs) {
    const json& s = *sp;
    if (failed(d, s)) continue;
    const json& r = obj(s, "result");
    section_heading(d, s, 3);
    std::string method = str(obj(s, "params"), "method", str(r, "method"));
    std::vector<double> gaps;
    for (const char* key : {"samples", "per_sample"})
      for (const auto& e : arr(r, key))
        for (const char* gk : {"completeness_gap", "efficiency_gap", "local_accuracy_gap"}) {
          if (auto g = dbl(e, gk)) gaps.push_back(std::fabs(*g));
          else if (gk == std::string("completeness_gap"))
            if (auto g2 = dbl(obj(e, "completeness"), "relative_gap")) gaps.push_back(std::fabs(*g2));
        }
    std::string gap_text = "no per-sample gaps reported";
    if (!gaps.empty()) {
      double worst = *std::max_element(gaps.begin(), gaps.end()), mean = 0;
      for (double g : gaps) mean += g / double(gaps.size());
      const char* what = method == "kernel-shap" ? "efficiency" : method == "tree-shap" ? "local accuracy" : "completeness";
      gap_text = fmt::format("{} gap over {} samples: mean {}, worst {}", what, gaps.size(), num(json(mean)), num(json(worst)));
    }
    d.push_back(para(fmt::format("Method {}; {}.", method, gap_text)));
    // image inputs ([N, C, H, W] or [N, H, W]): features are pixels, named by their position
    const json& shape = arr(r, "input_shape");
    // every dimension after the batch an integer in [1, 2^20] (so plane sizes cannot overflow)
    auto dim_ok = [&](size_t i) {
      return shape[i].is_number_integer() && shape[i].get<int64_t>() >= 1 && shape[i].get<int64_t>() <= (int64_t(1) << 20);
    };
    const bool image = (shape.size() == 4 || shape.size() == 3) && dim_ok(shape.size() - 1) &&
                       shape.back().get<int64_t>() > 1 && dim_ok(shape.size() - 2) && (shape.size() == 3 || dim_ok(1));
    const int64_t width = image ? shape.back().get<int64_t>() : 0, height = image ? shape[shape.size() - 2].get<int64_t>() : 0;
    std::vector<Bar> bars;
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : arr(r, "global_ranking")) {
      std::string f = str(g, "name", str(g, "feature"));
      if (image && at(g, "feature").is_number_integer() && width > 0 && height > 0) {
        const int64_t k = at(g, "feature").get<int64_t>(), plane = width * height;
        f = fmt::format("pixel (row {}, column {}{})", (k % plane) / width, k % width,
                        shape.size() == 4 && shape[1].get<int64_t>() > 1 ? fmt::format(", channel {}", k / plane) : "");
      }
      if (auto v = dbl(g, "mean_abs_attribution")) {
        if (bars.size() < 20) bars.push_back({f, *v, std::nullopt});
        rows.push_back({f, num(json(*v))});
      }
    }
    int map_rows = 0, map_cols = 0;
    int64_t map_images = 0;
    const std::vector<double> mean_map =
        image ? mean_abs_map(str(r, "attributions_file"), asset_dir, map_rows, map_cols, map_images) : std::vector<double>{};
    if (!rows.empty()) {
      if (rows.size() > 20) rows.resize(20);
      if (image) d.push_back(para("Pixels with the largest mean |attribution| (rows and columns counted from 0 at the top left):"));
      d.push_back(table({image ? "Pixel" : "Feature", "Mean |attribution|"}, rows));
      // a heatmap of pixels says more than bars named by pixel positions
      if (mean_map.empty())
        d.push_back(chart(svg_bar_chart("Global importance (mean |attribution|): " + str(s, "model"), bars), "global-importance"));
    } else {
      d.push_back(note("Global ranking not available."));
    }
    const json& sc = at(r, "checks").is_null() ? at(r, "sanity_checks") : at(r, "checks");
    rows.clear();
    if (sc.is_object()) {
      for (auto it = sc.begin(); it != sc.end(); ++it)
        rows.push_back({it.key(), brief(it.value())});
    } else if (sc.is_array()) {
      for (const auto& c : sc)
        rows.push_back({str(c, "name", str(c, "check")), brief(c)});
    }
    if (!rows.empty()) {
      d.push_back(para("Sanity checks:"));
      d.push_back(table({"Check", "Result"}, rows));
    }
    // the average heatmap first, the per-image heatmaps beside it
    if (!mean_map.empty())
      d.push_back(chart(svg_heatmap(fmt::format("Average |attribution|, {} images: {}", map_images, str(s, "model")),
                                    "mean |attribution| per pixel (image row x column)", map_rows, map_cols, mean_map),
                        "attribution-heatmap"));
    std::vector<std::string> pngs;
    collect_pngs(r, pngs);
    if (pngs.size() > 8) pngs.resize(8);
    for (const auto& p : pngs) {
      Block b;
      b.kind = K::Image;
      b.image_path = p;
      b.text = "Attribution heatmap " + p.substr(p.find_last_of('/') + 1);
      d.push_back(b);
      if (images) images->push_back(p);
    }
  }
}

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
  auto secs = sections_of(report, "verification");
  if (secs.empty()) return;
  d.push_back(heading("Formal verification", 2, "verification"));
  for (const json* sp : secs) {
    const json& s = *sp;
    if (failed(d, s)) continue;
    const json& r = obj(s, "result");
    const json& p = obj(s, "params");
    section_heading(d, s, 3);
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
      continue;
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
                         : !at(e, "verified_robust_accuracy").is_null() ? with_ci(e, "verified_robust_accuracy", sample_count(e))
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
  }
}

// ROC points for a chart: the curve from the section JSON with points closer than
// `step` (in FPR + TPR) to the last kept one dropped; the first and last are kept,
// so the drawn curve stays within `step` of the recorded one.
std::vector<std::pair<double, double>> chart_roc(const json& roc, double step = 0.004) {
  std::vector<std::pair<double, double>> pts, out;
  const json& fpr = arr(roc, "fpr");
  const json& tpr = arr(roc, "tpr");
  for (size_t i = 0; i < std::min(fpr.size(), tpr.size()); ++i)
    if (fpr[i].is_number() && tpr[i].is_number()) pts.emplace_back(fpr[i].get<double>(), tpr[i].get<double>());
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i == 0 || i + 1 == pts.size() ||
        std::fabs(pts[i].first - out.back().first) + std::fabs(pts[i].second - out.back().second) >= step)
      out.push_back(pts[i]);
  }
  return out;
}

std::string set_text(const json& set) {
  std::string file = str(set, "file");
  return fmt::format("{}{}", str(set, "count", "n/a"), file.empty() ? "" : " (" + file.substr(file.find_last_of('/') + 1) + ")");
}

void privacy_blocks(Document& d, const json& report) {
  auto secs = sections_of(report, "privacy");
  if (secs.empty()) return;
  d.push_back(heading("Privacy: membership inference", 2, "privacy"));
  d.push_back(para("Each attack scores every sample (higher = more likely a training member) and is judged by ROC AUC "
                   "(0.5 = no leakage) and by the true-positive rate at a low false-positive rate, the measure "
                   "Carlini et al. 2022 argue for. Balanced accuracy uses the best threshold on the evaluated "
                   "samples themselves, so it is an upper bound on what a deployed attacker achieves."));
  for (const json* sp : secs) {
    const json& s = *sp;
    const json& p = obj(s, "params");
    if (str(s, "status") != "ok") {
      failed(d, s);
      continue;
    }
    const json& r = obj(s, "result");
    d.push_back(heading(fmt::format("{} (model {}, members {}, non-members {})", str(s, "id"), str(s, "model"),
                                    str(p, "members"), str(p, "non_members")) + (is_imported(s) ? " (imported)" : ""),
                        3));
    if (std::string t = import_text(s); !t.empty()) d.push_back(note(t));
    std::string extra;
    if (!str(r, "lira_variance").empty())
      extra += fmt::format(" LiRA (offline) used {} reference models with {} variance.", arr(r, "reference_models").size(),
                           str(r, "lira_variance"));
    if (!str(r, "label_only_distance").empty())
      extra += fmt::format(" Label-only distance to the boundary: {}.", str(r, "label_only_distance"));
    d.push_back(para(fmt::format("Members (training samples): {}; non-members (held out): {}.{}", set_text(at(r, "members")),
                                 set_text(at(r, "non_members")), extra)));
    std::vector<std::vector<std::string>> rows;
    std::vector<Series> curves;
    for (const auto& a : arr(r, "attacks")) {
      std::string rule = str(a, "threshold_mode") == "per_class" ? "per-class" : str(a, "threshold_mode");
      rows.push_back({str(a, "name"), num(at(a, "auc")),
                      num(at(a, "balanced_accuracy")) + (rule.empty() ? "" : " (" + rule + " threshold)"),
                      num(at(a, "tpr_at_fpr_0.001")), num(at(a, "tpr_at_fpr_0.01"))});
      Series ser{str(a, "name"), chart_roc(at(a, "roc"))};
      ser.markers = false;
      if (!ser.points.empty()) curves.push_back(ser);
    }
    if (rows.empty()) {
      d.push_back(note("Not available: the result has no 'attacks' records."));
      continue;
    }
    d.push_back(short_table({{"Attack", ""}, {"ROC AUC", "AUC"}, {"Best balanced accuracy", "Best bal. acc."},
                             {"TPR at 0.1% FPR", "TPR@0.1%"}, {"TPR at 1% FPR", "TPR@1%"}},
                            rows,
                            {"AUC: ROC AUC (0.5 = no leakage); Best bal. acc.: best balanced accuracy over thresholds",
                             "TPR@0.1% / TPR@1%: true-positive rate at a false-positive rate of 0.1 % / 1 %"}));
    if (!curves.empty()) {
      Series chance{"chance", {{0.0, 0.0}, {1.0, 1.0}}};
      chance.markers = false;
      chance.dashed = true;
      curves.push_back(chance);
      d.push_back(chart(svg_line_chart("Membership inference ROC: " + str(s, "model"), "false-positive rate (non-members flagged)",
                                       "true-positive rate", curves),
                        "privacy-roc"));
    }
  }
}

// Order statistics of a list of numbers: count, min, p5, median, p95, max.
std::vector<std::string> distribution_row(const std::string& label, const json& values, const std::string& flagged) {
  std::vector<double> v;
  for (const auto& x : values)
    if (x.is_number()) v.push_back(x.get<double>());
  std::sort(v.begin(), v.end());
  auto q = [&](double f) -> std::string {
    if (v.empty()) return "n/a";
    double pos = f * double(v.size() - 1);  // linear interpolation (numpy's default)
    size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
    return num(json(v[lo] + (pos - double(lo)) * (v[hi] - v[lo])));
  };
  return {label, std::to_string(v.size()), q(0), q(0.05), q(0.5), q(0.95), q(1), flagged};
}

void backdoor_blocks(Document& d, const json& report, std::vector<std::string>* images) {
  auto secs = sections_of(report, "backdoor");
  if (secs.empty()) return;
  d.push_back(heading("Backdoor scan", 2, "backdoor"));
  for (const json* sp : secs) {
    const json& s = *sp;
    if (failed(d, s)) continue;
    const json& r = obj(s, "result");
    section_heading(d, s, 3);
    d.push_back(para(fmt::format("Verdict: {}.", str(r, "verdict", "n/a"))));
    const json& nc = at(r, "neural_cleanse");
    if (nc.is_object()) {
      const json& c = obj(nc, "config");
      std::string flagged;
      for (const auto& f : arr(nc, "flagged")) flagged += (flagged.empty() ? "" : ", ") + num(f);
      d.push_back(heading("Neural Cleanse", 4));
      d.push_back(para(fmt::format(
          "For every class, the smallest mask and pattern that send the clean images to that class (Wang et al. 2019; "
          "{} epochs over the clean set per class, batch {}, initial cost {}). A class whose mask L1 norm is an outlier "
          "on the small side (anomaly index |L1 - median| / (1.4826 MAD) above {}) is flagged. Median L1 {}, MAD {}. "
          "Flagged classes: {}.",
          str(c, "epochs", "n/a"), str(c, "batch", "n/a"), num(at(c, "init_cost")), num(at(nc, "anomaly_threshold")),
          num(at(nc, "median_l1")), num(at(nc, "mad_l1")), flagged.empty() ? "none" : flagged)));
      std::vector<std::vector<std::string>> rows;
      std::vector<Bar> bars;
      for (const auto& e : arr(nc, "classes")) {
        rows.push_back({str(e, "class"), num(at(e, "l1_norm")),
                        at(e, "anomaly_index").is_null() ? "inf" : num(at(e, "anomaly_index"), 3),
                        num(at(e, "attack_success")), num(at(e, "reached_success_threshold")),
                        at(e, "flagged") == true ? "FLAGGED" : "no"});
        // small-norm side drawn negative, so the flagged side is visible at a glance
        if (auto ai = dbl(e, "anomaly_index"); ai && dbl(e, "l1_norm"))
          bars.push_back({"class " + str(e, "class"), *dbl(e, "l1_norm") < dbl(nc, "median_l1").value_or(0) ? *ai : -*ai,
                          std::nullopt});
      }
      d.push_back(short_table({{"Class", ""}, {"Mask L1 norm", "Mask L1"}, {"Anomaly index", "Anomaly"},
                               {"Trigger success on clean set", "Success"}, {"Reached 0.99 success", "≥ 0.99"}, {"Flagged", ""}},
                              rows,
                              {"Mask L1: L1 norm of the reversed trigger's mask; Anomaly: anomaly index",
                               "Success: trigger success on the clean set; ≥ 0.99: whether it reached 0.99 success"}));
      if (!bars.empty())
        d.push_back(chart(svg_bar_chart("Neural Cleanse anomaly index (> 0: mask below the median)",
                                        bars, dbl(nc, "anomaly_threshold"), "flag threshold"),
                          "backdoor-anomaly"));
      for (const auto& e : arr(nc, "classes")) {
        std::string png = str(e, "trigger_png");
        if (png.empty()) continue;
        Block b;
        b.kind = K::Image;
        b.image_path = png;
        b.text = fmt::format("Reversed trigger (mask x pattern), class {}{}", str(e, "class"),
                             at(e, "flagged") == true ? " - FLAGGED" : "");
        d.push_back(b);
        if (images) images->push_back(png);
      }
    }
    const json& st = at(r, "strip");
    if (st.is_object()) {
      d.push_back(heading("STRIP", 4));
      std::string idx;
      const json& fl = arr(st, "flagged");
      for (size_t i = 0; i < std::min<size_t>(fl.size(), 20); ++i) idx += (idx.empty() ? "" : ", ") + num(fl[i]);
      if (fl.size() > 20) idx += fmt::format(", ... ({} in all)", fl.size());
      std::string file = str(st, "file");
      d.push_back(para(fmt::format(
          "Each screened input ({}) is superimposed with {} clean images; a trojaned input keeps its prediction, so its "
          "mean prediction entropy is low (Gao et al. 2019). Threshold {} bits: the {} quantile of a normal fit to the "
          "clean pool's entropies (mean {}, std {}). Flagged: {} of {} inputs ({}){}.",
          file.substr(file.find_last_of('/') + 1), str(st, "overlays", "n/a"), num(at(st, "threshold")),
          num(at(st, "false_rejection_rate")), num(at(st, "clean_mean")), num(at(st, "clean_std")), fl.size(),
          arr(st, "entropy").size(), num(at(st, "flagged_fraction")), idx.empty() ? "" : ": inputs " + idx)));
      d.push_back(table({"Entropy (bits)", "Inputs", "Min", "5th pct", "Median", "95th pct", "Max", "Flagged"},
                        {distribution_row("Clean pool (sets the threshold)", arr(st, "clean_entropy"), "-"),
                         distribution_row("Screened inputs", arr(st, "entropy"), std::to_string(fl.size()))}));
    }
  }
}

namespace {

// ---- executive summary ----------------------------------------------------------

const char* comparison_words(const std::string& op) {
  if (op == ">=") return "at least";
  if (op == ">") return "more than";
  if (op == "<=") return "at most";
  if (op == "<") return "less than";
  if (op == "==") return "exactly";
  if (op == "!=") return "other than";
  return "compared with";
}

// Fairlearn's disparities in words (metrics.cpp describes them all by one template).
std::string fairness_words(const std::string& metric) {
  static const std::map<std::string, std::string> words = {
      {"demographic_parity_difference", "the gap between the highest and the lowest group selection rate"},
      {"demographic_parity_ratio", "the lowest group selection rate divided by the highest"},
      {"equalized_odds_difference", "the larger of the true-positive-rate and false-positive-rate gaps between groups"},
      {"equalized_odds_ratio", "the smaller of the true-positive-rate and false-positive-rate ratios between groups"},
      {"equal_opportunity_difference", "the gap in true-positive rate between groups"},
      {"equal_opportunity_ratio", "the lowest group true-positive rate divided by the highest"},
      {"predictive_parity_difference", "the gap in precision between groups"},
      {"false_positive_rate_difference", "the gap in false-positive rate between groups"},
      {"false_negative_rate_difference", "the gap in false-negative rate between groups"},
      {"accuracy_difference", "the gap in accuracy between groups"}};
  auto it = words.find(metric);
  return it == words.end() ? "" : it->second;
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
  return s;
}

// What a gate measures, in words: the metric table's description and the gate's arguments.
std::string gate_subject(const json& g) {
  const std::string metric = str(g, "metric");
  const MetricInfo* info = find_metric(metric);
  std::string what = fairness_words(metric);
  if (what.empty()) what = info && !info->description.empty() ? info->description : metric;
  std::string params;
  const json& args = arr(g, "args");
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = info && i < info->params.size() ? info->params[i] : "";
    std::string value = args[i].is_string() ? args[i].get<std::string>() : num(args[i]);
    params += (params.empty() ? "" : ", ") + (name.empty() ? value : name + " " + value);
  }
  if (!str(g, "model").empty()) params += (params.empty() ? "" : ", ") + std::string("model ") + str(g, "model");
  if (!params.empty()) what += " (" + params + ")";
  if (str(g, "bound") == "lower") what = "the lower end of the 95 % interval of " + what;
  if (str(g, "bound") == "upper") what = "the upper end of the 95 % interval of " + what;
  return what;
}

std::string interval_text(const json& g) {
  const json& ci = at(g, "interval");
  if (!ci.is_object() || !at(ci, "lower").is_number()) return "";
  return fmt::format(" (95 % CI {}-{}, n = {})", ci_end(at(ci, "lower")), ci_end(at(ci, "upper")), str(ci, "n", "?"));
}

}  // namespace

std::string gate_sentence(const json& g) {
  const std::string name = str(g, "name", str(g, "check"));
  const std::string why = str(g, "description").empty() ? "" : " (" + str(g, "description") + ")";
  std::string text;
  if (str(g, "status") == "error")
    text = fmt::format("{} could not be measured: {}{}. A missing measurement is never a pass.", capitalised(gate_subject(g)),
                       str(g, "message", "no value"), why);
  else
    text = fmt::format("{} is {}{}; the policy requires {} {}{}.", capitalised(gate_subject(g)), num(at(g, "measured")),
                       str(g, "bound").empty() ? interval_text(g) : "", comparison_words(str(g, "comparison")),
                       num(at(g, "threshold")), why);
  if (name != str(g, "check") && !name.empty()) text = "'" + name + "': " + text;
  return text;
}

namespace {

// One candidate finding with its rank key (see rank_findings).
struct Finding {
  int tier = 0;          // smaller: matters more
  double distance = 0;   // relative distance from the threshold; meaning depends on the tier
  std::string text;
};

// Where a gate's 95 % interval lies against its threshold: wholly on the failing side
// (1), wholly on the passing side (2), across it (0), or unknown (-1: no interval, a
// gate on an interval end, == / !=).
int interval_side(const json& g) {
  const json& ci = at(g, "interval");
  const std::string op = str(g, "comparison");
  auto t = dbl(g, "threshold");
  if (!str(g, "bound").empty() || !ci.is_object() || !t || !at(ci, "lower").is_number() || !at(ci, "upper").is_number()) return -1;
  const double lo = ci["lower"].get<double>(), hi = ci["upper"].get<double>();
  if (op == ">=") return hi < *t ? 1 : lo >= *t ? 2 : 0;
  if (op == ">") return hi <= *t ? 1 : lo > *t ? 2 : 0;
  if (op == "<=") return lo > *t ? 1 : hi <= *t ? 2 : 0;
  if (op == "<") return lo >= *t ? 1 : hi < *t ? 2 : 0;
  return -1;
}

// Ranking rule of the three findings (docs/audit.md, "Executive summary"):
//   tier 0  a section that did not complete, or a gate whose measurement is missing: the
//           audit has a hole, so nothing it says about that property holds;
//   tier 1  a failed error gate whose whole 95 % interval lies on the failing side (or
//           that has no sampling interval): a failure that more samples will not undo;
//   tier 2  a failed error gate whose interval reaches the threshold;
//   tier 3  a failed warning gate;
//   tier 4  a passed gate whose interval reaches past the threshold: a pass not confirmed
//           at 95 % confidence.
// Within a tier, failures farther from their threshold (relative distance
// |measured - threshold| / max(|threshold|, 1e-9)) come first; in tier 4 the closest
// pass comes first. Ties keep the config's gate order.
std::vector<Finding> rank_findings(const json& report) {
  std::vector<Finding> out;
  for (const auto& s : arr(report, "sections"))
    if (str(s, "status") != "ok")
      out.push_back({0, 0, fmt::format("Section '{}' did not complete ({}); its measurements are missing.", str(s, "id"),
                                       str(s, "error", str(s, "status", "no result")))});
  for (const auto& g : arr(report, "gates")) {
    const std::string st = str(g, "status");
    auto m = dbl(g, "measured"), t = dbl(g, "threshold");
    const double rel = m && t ? std::fabs(*m - *t) / std::max(std::fabs(*t), 1e-9) : 0;
    const int side = interval_side(g);
    if (st == "error") {
      out.push_back({0, 0, gate_sentence(g)});
    } else if (st == "fail" && str(g, "severity") != "warning") {
      if (side != 0)
        out.push_back({1, -rel, gate_sentence(g) + (side == 1 ? " The whole 95 % interval is on the failing side." : "")});
      else
        out.push_back({2, -rel, gate_sentence(g) + " Its 95 % interval reaches the threshold: more samples could change the verdict."});
    } else if (st == "fail") {
      out.push_back({3, -rel, "Warning (does not fail the audit): " + gate_sentence(g)});
    } else if (st == "pass" && side == 0) {
      out.push_back({4, rel, "Passed, but not with 95 % confidence (its interval reaches past the threshold): " + gate_sentence(g)});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Finding& a, const Finding& b) { return a.tier != b.tier ? a.tier < b.tier : a.distance < b.distance; });
  return out;
}

}  // namespace

ExecutiveSummary executive_summary(const json& report) {
  ExecutiveSummary es;
  const json& sum = obj(report, "summary");
  const std::string verdict = str(sum, "verdict", "n/a");
  const int total = count_field(sum, "gates_total", "summary"), passed = count_field(sum, "gates_passed", "summary");
  const int failed = count_field(sum, "gates_failed", "summary"), warned = count_field(sum, "gates_warned", "summary");
  const int errors = count_field(sum, "gates_errors", "summary"), sections_failed = count_field(sum, "sections_failed", "summary");
  const std::string warn_text = warned ? fmt::format("; {} warning gate{} failed without failing the audit", warned, warned == 1 ? "" : "s") : "";
  if (report.contains("incomplete"))
    es.verdict = fmt::format("{}: the audit was interrupted before every section ran; it cannot pass. {} of {} gates passed{}.", verdict,
                             passed, total, warn_text);
  else if (verdict == "PASS")
    es.verdict = fmt::format("PASS: every gate with severity error passed ({} of {} gates passed{}).", passed, total, warn_text);
  else if (verdict == "FAIL")
    es.verdict = fmt::format("FAIL: {} gate{} with severity error failed, so the model does not meet this audit's release policy "
                             "({} of {} gates passed{}).",
                             failed, failed == 1 ? "" : "s", passed, total, warn_text);
  else if (verdict == "ERROR")
    es.verdict = fmt::format("ERROR: the audit could not decide ({} gate{} without a measurement, {} section{} not completed). "
                             "A missing measurement is never a pass.",
                             errors, errors == 1 ? "" : "s", sections_failed, sections_failed == 1 ? "" : "s");
  else
    es.verdict = "Verdict: " + verdict + ".";
  // failed gates in words: errors and error-severity failures first, then warnings
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& g : arr(report, "gates")) {
      const std::string st = str(g, "status");
      const bool warning = st == "fail" && str(g, "severity") == "warning";
      if ((st == "error" || st == "fail") && warning == (pass == 1))
        es.failed_gates.push_back((warning ? "Warning: " : "") + gate_sentence(g));
    }
  for (const auto& f : rank_findings(report)) {
    if (es.top_findings.size() == 3) break;
    es.top_findings.push_back(f.text);
  }
  return es;
}

namespace {

void summary_blocks(Document& d, const json& report) {
  const ExecutiveSummary es = executive_summary(report);
  d.push_back(heading("Executive summary", 2, "summary"));
  d.push_back(para(es.verdict));
  if (!es.failed_gates.empty()) {
    d.push_back(para("Gates that did not pass, in plain words:"));
    d.push_back(list(es.failed_gates));
  }
  if (es.top_findings.empty()) {
    d.push_back(para(arr(report, "gates").empty()
                         ? "Findings: none ranked, because no gates are configured; read the sections below."
                         : "Findings: none. Every gate passed, each with its whole 95 % interval (where it has one) on the "
                           "passing side."));
  } else {
    d.push_back(para(fmt::format("{} (ranked: missing measurements, then failures the 95 % interval confirms, then other "
                                 "failures, then warnings, then passes the interval does not confirm; within each, the "
                                 "farthest from its threshold first):",
                                 es.top_findings.size() == 1 ? "The finding that matters most"
                                                             : fmt::format("The {} findings that matter most", es.top_findings.size()))));
    d.push_back(list(es.top_findings));
  }
}

void gate_blocks(Document& d, const json& report) {
  d.push_back(heading("Gate verdicts", 2, "gates"));
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : arr(report, "gates")) {
    std::string st = str(g, "status");
    std::string badge = st == "pass" ? "PASS" : st == "error" ? "ERROR" : str(g, "severity") == "warning" ? "WARN" : "FAIL";
    std::string measured = num(at(g, "measured"));
    if (const json& ci = at(g, "interval"); ci.is_object() && !at(g, "measured").is_null())
      measured += fmt::format(" ({}{} % CI {}-{}, n = {})", str(g, "bound").empty() ? "" : str(g, "bound") + " end of the ",
                              num(json(100 * ci.value("confidence", 0.95)), 3), ci_end(at(ci, "lower")), ci_end(at(ci, "upper")),
                              str(ci, "n", "?"));
    std::string details = str(g, "message");
    for (const auto& s : arr(report, "sections"))
      if (str(s, "id") == str(g, "section") && is_imported(s))
        details += fmt::format(" (from section {}, imported from {})", str(s, "id"), str(obj(s, "imported"), "path", str(s, "imported_from")));
    rows.push_back({badge, str(g, "name"), measured, str(g, "comparison") + " " + num(at(g, "threshold")),
                    str(g, "severity"), details});
  }
  if (rows.empty()) d.push_back(note("No gates configured."));
  else d.push_back(table({"Status", "Gate", "Measured", "Threshold", "Severity", "Details"}, rows));
}

void diff_blocks(Document& d, const json& report) {
  const json& df = at(report, "diff");
  if (!df.is_object()) return;
  d.push_back(heading("Changes since the previous audit", 2, "changes"));
  d.push_back(para(fmt::format("Compared with {} (audited {}).", str(df, "previous"), str(df, "previous_date", "n/a"))));
  std::vector<std::vector<std::string>> rows;
  for (const auto& g : arr(df, "gates"))
    rows.push_back({str(g, "name"), str(g, "old_status", "-"), str(g, "new_status", "-"), num(at(g, "old_measured")),
                    num(at(g, "new_measured")), num(at(g, "delta"))});
  if (!rows.empty()) d.push_back(table({"Gate", "Before", "Now", "Measured before", "Measured now", "Change"}, rows));
  rows.clear();
  for (const auto& s : arr(df, "sections"))
    rows.push_back({str(s, "id"), str(s, "old", "-"), str(s, "new", "-")});
  if (!rows.empty()) d.push_back(table({"Section", "Before", "Now"}, rows));
  rows.clear();
  for (const auto& s : arr(df, "inputs_changed")) rows.push_back({str(s, "role"), str(s, "old_sha256"), str(s, "new_sha256")});
  if (!rows.empty()) {
    d.push_back(para("Inputs whose content changed:"));
    d.push_back(table({"Input", "SHA-256 before", "SHA-256 now"}, rows));
  }
}

void compliance_blocks(Document& d, const json& report) {
  d.push_back(heading("Compliance mapping", 2, "compliance"));
  d.push_back(note("This table states what was measured and which clauses the measurements are evidence for. It is "
                   "not a claim of compliance with any regulation or standard."));
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : arr(report, "compliance")) {
    std::string refs;
    for (const auto& r : arr(c, "references")) refs += (refs.empty() ? "" : "; ") + r.get<std::string>();
    rows.push_back({str(c, "section"), refs, str(c, "measured"), str(c, "status")});
  }
  d.push_back(table({"Report section", "Framework references", "What was measured", "Status"}, rows));
}

}  // namespace

std::string num(const json& v, int digits) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number()) {
    double x = v.get<double>();
    if (!std::isfinite(x)) return "n/a";
    return fmt::format("{:.{}g}", x, digits);
  }
  if (v.is_string()) return v.get<std::string>();
  return "n/a";
}

namespace {
std::string measured_headline(const json& s) {
  if (str(s, "status") != "ok") return "not available (" + str(s, "error", str(s, "status", "no result")) + ")";
  // the kind's own one-line summary (sections/<kind>.cpp)
  const SectionKindDef* kind = find_section_kind(str(s, "kind"));
  return kind && kind->headline ? kind->headline(s) : "completed";
}

}  // namespace

std::string section_headline(const json& s) {
  const std::string h = measured_headline(s);
  return str(s, "status") == "ok" && is_imported(s) ? h + " (imported)" : h;
}

Document build_document(const json& report, const std::string& asset_dir) {
  Document d;
  const json& sys = obj(report, "system");
  const json& sum = obj(report, "summary");
  d.push_back(heading("Model audit report" + (str(sys, "name").empty() ? "" : ": " + str(sys, "name")), 1, "top"));
  d.push_back(para(fmt::format("Verdict: {} (exit code {}). Gates: {} total, {} passed, {} failed, {} warnings, {} "
                               "errors. Sections: {} run, {} did not complete.",
                               str(sum, "verdict", "n/a"), str(sum, "exit_code", "n/a"), str(sum, "gates_total", "0"),
                               str(sum, "gates_passed", "0"), str(sum, "gates_failed", "0"), str(sum, "gates_warned", "0"),
                               str(sum, "gates_errors", "0"), str(sum, "sections_total", "0"), str(sum, "sections_failed", "0"))));
  if (report.contains("incomplete")) {
    const json& inc = report["incomplete"];
    std::string missing;
    for (const auto& id : arr(inc, "sections_not_run")) missing += (missing.empty() ? "" : ", ") + id.get<std::string>();
    d.push_back(note(fmt::format("INCOMPLETE: the audit was {}; sections not run: {}. Gates that read them are errors.",
                                 str(inc, "reason", "interrupted"), missing.empty() ? "none" : missing)));
  }
  d.push_back(note("mlaudit states what was measured. It does not certify compliance with any regulation or standard."));
  summary_blocks(d, report);
  const size_t toc_at = d.size();
  gate_blocks(d, report);
  manifest_blocks(d, report);
  system_blocks(d, report);
  model_blocks(d, report);
  // each section kind's blocks, in report order (sections/<kind>.cpp)
  for (const SectionKindDef* kind : section_kinds())
    if (kind->render) {
      SectionRender r{d, report, asset_dir};
      kind->render(r);
    }
  diff_blocks(d, report);
  compliance_blocks(d, report);
  d.push_back(heading("Limitations", 2, "limitations"));
  std::vector<std::string> lim;
  for (const auto& l : arr(report, "limitations")) lim.push_back(l.is_string() ? l.get<std::string>() : l.dump());
  if (lim.empty()) lim.push_back("None stated.");
  d.push_back(list(lim));
  // Table of contents: every level-2 heading, placed after the executive summary.
  Block toc;
  toc.kind = K::Toc;
  toc.text = "Contents";
  for (const auto& b : d)
    if (b.kind == K::Heading && b.level == 2 && !b.anchor.empty()) toc.items.push_back(b.anchor + "\t" + b.text);
  d.insert(d.begin() + std::ptrdiff_t(toc_at), toc);
  // Charts are numbered in document order: the same report always names them alike.
  int charts = 0;
  for (auto& b : d)
    if (b.kind == K::Chart) {
      b.chart_file = fmt::format("charts/chart-{}.svg", ++charts);
      b.id = fmt::format("chart-{}", charts);
      // the id (links, tests) and the kind's class, on the <svg> element itself
      if (size_t c = b.svg.find("class=\"chart\""); c != std::string::npos)
        b.svg.replace(c, 13, fmt::format("id=\"{}\" class=\"chart{}\"", b.id, b.chart_kind.empty() ? "" : " chart-" + b.chart_kind));
      // alt text: the chart's title, kept in its aria-label
      size_t at = b.svg.find("aria-label=\"");
      if (at != std::string::npos) b.text = b.svg.substr(at + 12, b.svg.find('"', at + 12) - at - 12);
    }
  return d;
}

}  // namespace mlaudit::reports::detail
