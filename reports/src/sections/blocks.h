#pragma once
// Internal: the document-building helpers (defined in document.cpp) that the section kinds'
// renderers (`render` in reports/src/sections/<kind>.cpp) build their report blocks with.
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../doc.h"

namespace mlaudit::reports::detail {

using K = Block::Kind;

/// [lo, hi] of an interval given as a two-number array; nullopt otherwise.
std::optional<std::pair<double, double>> interval_of(const nlohmann::json& interval);
/// A metric in fairness group records: either a number with `<name>_interval` beside it, or an
/// object {value, interval}.
std::string group_metric(const nlohmann::json& g, const std::string& name);
Block heading(const std::string& text, int level = 2, const std::string& anchor = "");
Block para(const std::string& text);
Block note(const std::string& text);
Block table(std::vector<std::string> header, std::vector<std::vector<std::string>> rows);
/// `kind` names what the chart shows; it becomes the class "chart-<kind>" (what the browser
/// test looks for) and stays stable when titles change.
Block chart(std::string svg, std::string kind);
/// A table whose narrow columns show an abbreviation in HTML, explained in a legend under it;
/// Markdown keeps the full headers. `columns` pairs each full header with its abbreviation
/// ("" keeps the full one); `legend` explains them.
Block short_table(const std::vector<std::pair<std::string, std::string>>& columns, std::vector<std::vector<std::string>> rows,
                  std::vector<std::string> legend);
Block list(std::vector<std::string> items);
/// Scalars of a value ("passed: true; threshold: 0.05"); arrays summarised by length.
std::string brief(const nlohmann::json& v);
/// Top-level scalar fields of a result, so nothing is hidden when the layout is unknown.
Block scalars_table(const nlohmann::json& r);
bool is_imported(const nlohmann::json& s);
std::string section_title(const nlohmann::json& s);
/// Where an imported section's numbers come from and whether they belong to this model
/// (check.h read_import); empty for sections the audit ran itself.
std::string import_text(const nlohmann::json& s);
/// An interval end with two decimals ("0.60", not "0.6"), so both ends line up.
std::string ci_end(const nlohmann::json& v);
/// "0.42 (95 % CI 0.28-0.57, n = 50)": a proportion with its Clopper-Pearson interval (the
/// result's `<field>_ci`, else computed from the value and n_samples).
std::string with_ci(const nlohmann::json& object, const std::string& field, std::optional<int64_t> n);
/// The result's sample count (`n_samples`, or `samples`), when it gives one.
std::optional<int64_t> result_sample_count(const nlohmann::json& r);
/// The Clopper-Pearson interval of a proportion as (lower, upper) for a chart band.
std::optional<std::pair<double, double>> ci_pair(const nlohmann::json& object, const std::string& field,
                                                 std::optional<int64_t> n);
/// Adds a point and, when every point so far has one, its interval; a series with a point
/// lacking an interval draws no band (a band with holes would mislead).
void add_point(Series& ser, double x, double y, std::optional<std::pair<double, double>> ci);
/// The section's heading and, for an imported one, where its result came from.
void section_heading(Document& d, const nlohmann::json& s, int level);
/// Gate thresholds that apply to a metric name (for threshold lines on charts).
std::optional<double> gate_threshold(const nlohmann::json& report, const std::string& metric, const std::string& arg0);
/// Every PNG path named in a result (heatmaps, triggers), depth first.
void collect_pngs(const nlohmann::json& j, std::vector<std::string>& out);
/// A section whose status is not "ok": its heading and a note saying why are added; true then.
bool failed(Document& d, const nlohmann::json& s);
/// The report's sections of one kind, in report order.
std::vector<const nlohmann::json*> sections_of(const nlohmann::json& report, const std::string& kind);
/// For each section of `secs`: the note of one that did not complete (failed), else its heading
/// at `level` and body(section, its result).
void each_completed(Document& d, const std::vector<const nlohmann::json*>& secs, int level,
                    const std::function<void(const nlohmann::json&, const nlohmann::json&)>& body);
/// A kind's chapter: nothing when the report has no section of `kind`; else a level-2 heading
/// (`title`, `anchor`) and, per section in report order, the note of a section that did not
/// complete (failed), or its level-3 heading and body(section, its result).
void kind_chapter(Document& d, const nlohmann::json& report, const std::string& kind, const std::string& title,
                  const std::string& anchor, const std::function<void(const nlohmann::json&, const nlohmann::json&)>& body);
/// A count field (gates, sections, verdicts): absent is 0; a number that is not a whole number
/// in [0, 10^9] is an InputError naming `where`.`key`.
int count_field(const nlohmann::json& j, const std::string& key, const std::string& where);

}  // namespace mlaudit::reports::detail
