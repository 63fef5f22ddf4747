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
  enum class Kind { Heading, Paragraph, Table, Chart, Image, List, Note };
  Kind kind = Kind::Paragraph;
  int level = 2;                                ///< heading level
  std::string text;                             ///< heading/paragraph/note text; image caption
  std::string anchor;                           ///< heading id
  std::vector<std::string> header;              ///< table header
  std::vector<std::vector<std::string>> rows;   ///< table rows
  std::string svg;                              ///< chart: inline in HTML, a linked file in Markdown
  std::string chart_file;                       ///< chart's file relative to the report folder ("charts/chart-3.svg")
  std::string image_path;                       ///< PNG path (relative to the report folder or absolute)
  std::vector<std::string> items;               ///< list items
};

using Document = std::vector<Block>;

/// The whole report as a document (shared by the Markdown and HTML renderers).
Document build_document(const nlohmann::json& report);

/// A series of (x, y) points for a line chart.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool markers = true;  ///< a dot (with a tooltip) on every point; off for dense curves such as ROCs
  bool dashed = false;  ///< dashed gray reference line (e.g. the chance diagonal of a ROC)
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

/// "0.8123" style number for tables; "n/a" for null or missing.
std::string num(const nlohmann::json& v, int digits = 4);
/// One-line summary of what a section measured (used in the compliance table and the diff).
std::string section_headline(const nlohmann::json& section);

}  // namespace mlaudit::reports::detail
