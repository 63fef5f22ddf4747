// Markdown, HTML and JUnit renderers (all from report.json).
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "doc.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/reports/report.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlaudit::reports {

using detail::Block;
using K = Block::Kind;

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 forbids most control characters even as references.
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') out += "?";
        else out += static_cast<char>(c);
    }
  }
  return out;
}

namespace {

// Markdown table cells: pipes escaped, line breaks flattened.
std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out;
}

std::string md_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += tbl[v >> 18], out += tbl[(v >> 12) & 63], out += tbl[(v >> 6) & 63], out += tbl[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += tbl[v >> 18], out += tbl[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += tbl[v >> 18], out += tbl[(v >> 12) & 63], out += tbl[(v >> 6) & 63], out += '=';
  }
  return out;
}

const char* kCss = R"(
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{border-bottom:3px solid #1f77b4;padding-bottom:6px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
table{border-collapse:collapse;margin:10px 0;font-size:13px;width:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;word-break:break-word}
th{background:#f2f4f7}tr:nth-child(even) td{background:#fafbfc}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:bold;font-size:12px;color:#fff}
.PASS{background:#2e7d32}.FAIL{background:#c62828}.ERROR{background:#6a1b9a}.WARN{background:#ef6c00}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:6px 10px;margin:10px 0}
.chart{max-width:100%;height:auto;display:block;margin:8px 0}
figure{margin:8px 0;display:inline-block;vertical-align:top}figcaption{font-size:12px;color:#555}
img.heatmap{image-rendering:pixelated;width:224px;border:1px solid #ccc}
nav a{margin-right:10px}
@media print{body{max-width:none;margin:0}h2{page-break-after:avoid}table,svg,figure{page-break-inside:avoid}nav{display:none}}
)";

}  // namespace

std::string render_markdown(const json& report) {
  std::string out;
  for (const Block& b : detail::build_document(report)) {
    switch (b.kind) {
      case K::Heading:
        out += std::string(b.level, '#') + " " + md_text(b.text) + "\n\n";
        break;
      case K::Paragraph:
        out += md_text(b.text) + "\n\n";
        break;
      case K::Note:
        out += "> " + md_text(b.text) + "\n\n";
        break;
      case K::Table: {
        std::string line = "|", sep = "|";
        for (const auto& h : b.header) line += " " + md_cell(h) + " |", sep += " --- |";
        out += line + "\n" + sep + "\n";
        for (const auto& r : b.rows) {
          line = "|";
          for (size_t i = 0; i < b.header.size(); ++i) {
            std::string cell = i < r.size() ? md_cell(r[i]) : "";
            if (i == 0 && (cell == "PASS" || cell == "FAIL" || cell == "ERROR" || cell == "WARN")) cell = "**" + cell + "**";
            line += " " + (cell.empty() ? " " : cell) + " |";
          }
          out += line + "\n";
        }
        out += "\n";
        break;
      }
      case K::Chart:
        // the numbers are in the table beside each chart; the chart itself is a linked SVG file
        out += "![" + md_text(b.text.empty() ? "chart" : b.text) + "](" + b.chart_file + ")\n\n";
        break;
      case K::Image:
        out += "![" + md_text(b.text) + "](" + b.image_path + ")\n\n";
        break;
      case K::List:
        for (const auto& i : b.items) out += "- " + md_text(i) + "\n";
        out += "\n";
        break;
    }
  }
  out += "---\nGenerated by mlaudit " + report.value("tool_version", std::string("?")) +
         ". Charts are the SVG files in charts/; report.html embeds them and every image.\n";
  return out;
}

std::vector<std::pair<std::string, std::string>> render_chart_files(const json& report) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const Block& b : detail::build_document(report))
    if (b.kind == K::Chart) files.emplace_back(b.chart_file, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + b.svg + "\n");
  return files;
}

std::string render_html(const json& report, const std::string& asset_dir) {
  const auto doc = detail::build_document(report);
  std::string title = "Model audit report";
  if (!doc.empty()) title = doc[0].text;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                    "<meta name=\"generator\" content=\"mlaudit " + xml_escape(report.value("tool_version", std::string("?"))) + "\">\n"
                    "<title>" + xml_escape(title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  // table of contents from level-2 headings
  out += "<nav>";
  for (const Block& b : doc)
    if (b.kind == K::Heading && b.level == 2 && !b.anchor.empty())
      out += "<a href=\"#" + b.anchor + "\">" + xml_escape(b.text) + "</a>";
  out += "</nav>\n";
  for (const Block& b : doc) {
    switch (b.kind) {
      case K::Heading:
        out += fmt::format("<h{0}{1}>{2}</h{0}>\n", b.level, b.anchor.empty() ? "" : " id=\"" + b.anchor + "\"", xml_escape(b.text));
        break;
      case K::Paragraph:
        out += "<p>" + xml_escape(b.text) + "</p>\n";
        break;
      case K::Note:
        out += "<p class=\"note\">" + xml_escape(b.text) + "</p>\n";
        break;
      case K::Table: {
        out += "<table>\n<thead><tr>";
        for (const auto& h : b.header) out += "<th>" + xml_escape(h) + "</th>";
        out += "</tr></thead>\n<tbody>\n";
        for (const auto& r : b.rows) {
          out += "<tr>";
          for (size_t i = 0; i < b.header.size(); ++i) {
            std::string cell = i < r.size() ? r[i] : "";
            if (i == 0 && (cell == "PASS" || cell == "FAIL" || cell == "ERROR" || cell == "WARN"))
              out += "<td><span class=\"badge " + cell + "\">" + cell + "</span></td>";
            else
              out += "<td>" + xml_escape(cell) + "</td>";
          }
          out += "</tr>\n";
        }
        out += "</tbody>\n</table>\n";
        break;
      }
      case K::Chart:
        out += b.svg + "\n";
        break;
      case K::Image: {
        fs::path p = b.image_path;
        if (p.is_relative() && !asset_dir.empty()) p = fs::path(asset_dir) / p;
        std::error_code ec;
        if (fs::exists(p, ec) && fs::file_size(p, ec) < (8u << 20)) {
          std::string bytes = datasets::read_file(p.string());
          out += "<figure><img class=\"heatmap\" alt=\"" + xml_escape(b.text) + "\" src=\"data:image/png;base64," + base64(bytes) +
                 "\"><figcaption>" + xml_escape(b.text) + "</figcaption></figure>\n";
        } else {
          out += "<p class=\"note\">" + xml_escape(b.text) + ": image not available (" + xml_escape(b.image_path) + ")</p>\n";
        }
        break;
      }
      case K::List:
        out += "<ul>\n";
        for (const auto& i : b.items) out += "<li>" + xml_escape(i) + "</li>\n";
        out += "</ul>\n";
        break;
    }
  }
  out += "<hr><p style=\"font-size:12px;color:#666\">Generated by mlaudit " +
         xml_escape(report.value("tool_version", std::string("?"))) + ". Self-contained: no scripts, no network.</p>\n";
  out += "</body>\n</html>\n";
  return out;
}

std::string render_junit(const json& report) {
  const json gates = report.contains("gates") && report["gates"].is_array() ? report["gates"] : json::array();
  int failures = 0, errors = 0;
  for (const auto& g : gates) {
    std::string st = g.value("status", "error");
    if (st == "error") ++errors;
    else if (st == "fail" && g.value("severity", "error") == "error") ++failures;
  }
  double total_time = 0;
  if (report.contains("sections"))
    for (const auto& s : report["sections"]) total_time += s.value("seconds", 0.0);
  std::string ts = report.contains("manifest") ? report["manifest"].value("date", std::string()) : std::string();
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += fmt::format("<testsuites name=\"mlaudit\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3f}\">\n", gates.size(),
                     failures, errors, total_time);
  out += fmt::format("  <testsuite name=\"mlaudit\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3f}\"{}>\n",
                     gates.size(), failures, errors, total_time, ts.empty() ? "" : " timestamp=\"" + xml_escape(ts) + "\"");
  for (const auto& g : gates) {
    std::string name = g.value("name", std::string("gate"));
    std::string st = g.value("status", "error");
    std::string msg = g.value("message", std::string());
    std::string section = g.contains("section") && g["section"].is_string() ? g["section"].get<std::string>() : "none";
    // a gate read from an imported result says so, with the file it came from
    if (report.contains("sections") && report["sections"].is_array())
      for (const auto& sec : report["sections"]) {
        if (sec.value("id", "") != section) continue;
        const nlohmann::json imp = sec.contains("imported") && sec["imported"].is_object() ? sec["imported"] : nlohmann::json::object();
        std::string from = imp.value("path", sec.contains("imported_from") && sec["imported_from"].is_string()
                                                 ? sec["imported_from"].get<std::string>() : std::string());
        if (from.empty()) continue;
        section += fmt::format(" (imported from {}; model check: {})", from, imp.value("model_check", std::string("not recorded")));
        msg += fmt::format(" [imported result: {}]", from);
      }
    std::string detail = fmt::format("check: {}\nseverity: {}\nsection: {}\n{}", g.value("check", std::string()),
                                     g.value("severity", std::string()), section, msg);
    out += "    <testcase classname=\"mlaudit.gates\" name=\"" + xml_escape(name) + "\" time=\"0\">";
    if (st == "error") {
      out += "\n      <error message=\"" + xml_escape(msg) + "\" type=\"MetricMissing\">" + xml_escape(detail) + "</error>\n    ";
    } else if (st == "fail" && g.value("severity", "error") == "error") {
      out += "\n      <failure message=\"" + xml_escape(msg) + "\" type=\"GateFailed\">" + xml_escape(detail) + "</failure>\n    ";
    } else if (st == "fail") {
      // warning gates do not fail CI; their verdict is kept visible in system-out
      out += "\n      <system-out>" + xml_escape("WARNING (not failing): " + msg) + "</system-out>\n    ";
    } else {
      out += "\n      <system-out>" + xml_escape(msg) + "</system-out>\n    ";
    }
    out += "</testcase>\n";
  }
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace mlaudit::reports
