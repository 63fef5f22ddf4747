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
#include "sections/blocks.h"
#include "sections/context.h"

namespace mlaudit::reports::detail {

using nlohmann::json;

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
// ---- document-building helpers, shared with the section kinds' renderers (sections/blocks.h) ----

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

Block heading(const std::string& text, int level, const std::string& anchor) {
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

std::optional<int64_t> result_sample_count(const json& r) {
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

void each_completed(Document& d, const std::vector<const json*>& secs, int level,
                    const std::function<void(const json&, const json&)>& body) {
  for (const json* sp : secs) {
    if (failed(d, *sp)) continue;
    section_heading(d, *sp, level);
    body(*sp, obj(*sp, "result"));
  }
}

void kind_chapter(Document& d, const json& report, const std::string& kind, const std::string& title,
                  const std::string& anchor, const std::function<void(const json&, const json&)>& body) {
  const auto secs = sections_of(report, kind);
  if (secs.empty()) return;
  d.push_back(heading(title, 2, anchor));
  each_completed(d, secs, 3, body);
}

namespace {

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
