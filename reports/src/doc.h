#pragma once
// Internal: a small document model (headings, paragraphs, tables, charts,
// images) built once from the report JSON and rendered to Markdown or HTML.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlaudit::reports::detail {

/// One block of the document.
struct Block {
  enum class Kind { Heading, Paragraph, Table, Chart, Image, List, Note, Toc, Definitions };
  Kind kind = Kind::Paragraph;
  int level = 2;                                ///< heading level
  std::string text;                             ///< heading/paragraph/note text; image caption
  std::string anchor;                           ///< heading id
  std::vector<std::string> header;              ///< table header (Markdown; HTML shows `short_header` where given)
  std::vector<std::string> short_header;        ///< HTML: abbreviated headers of narrow columns, explained by `legend`
  std::vector<std::string> legend;              ///< HTML: "ASR: attack success rate" lines under the table
  std::vector<std::vector<std::string>> rows;   ///< table rows
  std::string svg;                              ///< chart: inline in HTML, a linked file in Markdown
  std::string chart_file;                       ///< chart's file relative to the report folder ("charts/chart-3.svg")
  std::string chart_kind;                       ///< chart's class suffix ("robust-eps": class="chart chart-robust-eps")
  std::string id;                               ///< chart element id ("chart-3"), set in document order
  std::string image_path;                       ///< PNG path (relative to the report folder or absolute)
  std::vector<std::string> items;               ///< list items; Toc: "anchor\ttext" entries
  std::vector<std::pair<std::string, std::string>> terms;  ///< Definitions: (term, definition), wraps on any width
};

using Document = std::vector<Block>;

/// The whole report as a document (shared by the Markdown and HTML renderers).
/// `asset_dir` resolves files the sections recorded relative to the report folder
/// (attribution .npy files for the average heatmap); empty: the current folder.
Document build_document(const nlohmann::json& report, const std::string& asset_dir = "");

/// Executive summary lines: the verdict in plain words, each failed gate as a sentence,
/// and the (at most) three findings that matter most, ranked by `rank_findings`.
struct ExecutiveSummary {
  std::string verdict;                      ///< "FAIL: 2 of 17 gates failed ..."
  std::vector<std::string> failed_gates;    ///< one plain sentence per failed / error gate (severity error first)
  std::vector<std::string> top_findings;    ///< at most three, most important first
};
ExecutiveSummary executive_summary(const nlohmann::json& report);
/// A gate record as a sentence: what was measured, the value (with its interval), what the policy requires.
std::string gate_sentence(const nlohmann::json& gate);

/// A series of (x, y) points for a line chart.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool markers = true;  ///< a dot (with a tooltip) on every point; off for dense curves such as ROCs
  bool dashed = false;  ///< dashed gray reference line (e.g. the chance diagonal of a ROC)
  /// 95 % interval (lower, upper) of each point, in the order of `points`; empty: no band
  std::vector<std::pair<double, double>> band{};
};
/// A bar with an optional interval.
struct Bar {
  std::string label;
  double value = 0;
  std::optional<std::pair<double, double>> interval;
};

/// Line chart (accuracy vs eps / radius), y axis [0, 1] unless the data exceed it.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series);
/// Horizontal bar chart with optional intervals and a dashed threshold line.
std::string svg_bar_chart(const std::string& title, const std::vector<Bar>& bars,
                          std::optional<double> threshold = std::nullopt, const std::string& threshold_label = "");

/// One stacked bar: a label and its parts (counts) in the order of the part names.
struct StackedBar {
  std::string label;
  std::vector<double> parts;
};
/// Axis ticks at 1-2-5 x 10^k: the range [lo, hi] widened to multiples of `step`.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
/// Nice ticks covering [lo, hi] with at most `max_intervals` intervals (Heckbert 1990).
Ticks nice_ticks(double lo, double hi, int max_intervals = 5);
/// Smallest step in {1, 2, 5} x 10^k with range / step <= max_intervals.
double nice_step(double range, int max_intervals);
/// Tick text with the decimals the step needs ("0.05", "0.2", "50").
std::string tick_label(double v, double step);
/// The colour-blind-safe palette every chart draws with (Okabe-Ito).
const std::vector<std::string>& chart_palette();
/// Horizontal bars grouped by category (one colour per group, legend on top), with intervals.
std::string svg_grouped_bar_chart(const std::string& title, const std::string& value_label,
                                  const std::vector<std::string>& categories, const std::vector<std::string>& groups,
                                  const std::vector<std::vector<std::optional<Bar>>>& values);
/// Horizontal stacked bars (e.g. verification verdict counts per eps).
std::string svg_stacked_bar_chart(const std::string& title, const std::string& value_label,
                                  const std::vector<StackedBar>& bars, const std::vector<std::string>& part_names,
                                  const std::vector<std::string>& part_colours);
/// A rows x cols grid of non-negative values as a viridis heatmap with a colour bar.
std::string svg_heatmap(const std::string& title, const std::string& value_label, int rows, int cols,
                        const std::vector<double>& values);

/// "0.8123" style number for tables; "n/a" for null or missing.
std::string num(const nlohmann::json& v, int digits = 4);
/// One-line summary of what a section measured (used in the compliance table and the diff).
std::string section_headline(const nlohmann::json& section);

}  // namespace mlaudit::reports::detail
