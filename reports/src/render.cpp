// Markdown, HTML and JUnit renderers (all from report.json).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "doc.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"
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

// Screen: tables scroll sideways inside their own box (the page never does), numbers never
// wrap, words break only between words or at '/', '_', '(' (wbr), never mid-word.
// Print: page size, running header, page numbers and keep-with-next rules come from
// print_css(); tables shrink to fit the page instead of scrolling.
const char* kCss = R"(
*{box-sizing:border-box}
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45;overflow-wrap:break-word}
h1{border-bottom:3px solid #0072B2;padding-bottom:6px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}
.table-wrap{overflow-x:auto;max-width:100%;margin:10px 0}
table{border-collapse:collapse;font-size:13px;width:auto}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:normal;word-break:normal;hyphens:manual}
th{background:#f2f4f7}tr:nth-child(even) td{background:#fafbfc}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
th abbr{text-decoration:underline dotted;cursor:help}
code.hash{font-size:11px;white-space:nowrap}
.legend{font-size:12px;color:#555;margin:-4px 0 14px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:bold;font-size:12px;color:#fff;white-space:nowrap}
.PASS{background:#1b7a3a}.FAIL{background:#b8400b}.ERROR{background:#6a1b9a}.WARN{background:#8a6100}
.note{background:#fff8e1;border-left:4px solid #E69F00;padding:6px 10px;margin:10px 0}
.chart{max-width:100%;height:auto;display:block;margin:8px 0}
svg.chart-attribution-heatmap{display:inline-block;vertical-align:top;margin:8px 12px 8px 0}
figure{margin:8px 8px 8px 0;display:inline-block;vertical-align:top}figcaption{font-size:12px;color:#555;max-width:224px}
img.heatmap{image-rendering:pixelated;width:224px;max-width:100%;border:1px solid #ccc}
dl.definitions{display:grid;grid-template-columns:minmax(8em,max-content) minmax(0,1fr);gap:2px 12px;margin:8px 0}
dl.definitions dt{font-weight:bold}dl.definitions dd{margin:0;overflow-wrap:anywhere}
p.dl-title{margin:14px 0 4px;font-weight:bold}
nav.toc ol{column-width:18em;column-gap:2em;padding-left:1.6em;margin:6px 0}
nav.toc li{break-inside:avoid}
nav.toc .leader,nav.toc .toc-page{display:none}
@media (max-width:600px){body{margin:12px auto;padding:0 10px}h1{font-size:1.5em}table{font-size:12px}th,td{padding:3px 5px}}
)";

// CSS string literal content: quotes and backslashes escaped, no line breaks, and no
// '<' (a "</style>" in a system name must not end the style element).
std::string css_string(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else if (c == '<') out += "\\3c ";
    else out += c;
  }
  return out;
}

// The running header (system name, verdict) the PDF repeats on every page.
std::string running_header(const json& report) {
  const json sys = report.contains("system") && report["system"].is_object() ? report["system"] : json::object();
  const json sum = report.contains("summary") && report["summary"].is_object() ? report["summary"] : json::object();
  std::string name = sys.value("name", std::string());
  return "mlaudit report" + (name.empty() ? std::string() : ": " + name) + " | verdict " + sum.value("verdict", std::string("n/a"));
}

// Print stylesheet: page size and margins, the running header (top left), the tool and
// date (bottom left), "Page n of N" (bottom right) in the page-margin boxes (CSS Paged
// Media; Chromium 131+), and fragmentation rules that keep headings with what follows.
std::string print_css(const json& report, Paper paper) {
  std::string date = report.contains("manifest") && report["manifest"].is_object()
                         ? report["manifest"].value("date", std::string())
                         : std::string();
  std::string footer = "mlaudit " + report.value("tool_version", std::string("?")) + (date.empty() ? "" : ", " + date);
  return fmt::format(
      "@page{{size:{0};margin:18mm 14mm 18mm 14mm;"
      "@top-left{{content:\"{1}\";font-size:8pt;color:#555;font-family:Helvetica,Arial,sans-serif}}"
      "@bottom-left{{content:\"{2}\";font-size:8pt;color:#777;font-family:Helvetica,Arial,sans-serif}}"
      "@bottom-right{{content:\"Page \" counter(page) \" of \" counter(pages);font-size:8pt;color:#555;"
      "font-family:Helvetica,Arial,sans-serif}}}}\n"
      "@media print{{body{{max-width:none;margin:0;padding:0;font-size:10pt}}"
      "h1,h2,h3,h4{{break-after:avoid;page-break-after:avoid;break-inside:avoid}}"
      "h2{{margin-top:1.4em}}"
      "h1+p,h2+p,h3+p,h4+p{{break-before:avoid}}"
      ".table-wrap{{overflow:visible}}table{{font-size:8pt}}th,td{{padding:2px 4px}}code.hash{{font-size:7pt}}"
      "thead{{display:table-header-group}}tr,svg,figure,dl,.note,.legend,img{{break-inside:avoid;page-break-inside:avoid}}"
      ".legend{{font-size:7.5pt}}"
      "svg.chart{{max-height:120mm;width:auto;max-width:100%}}"
      "nav.toc{{break-after:page}}nav.toc ol{{columns:auto;padding-left:1.4em}}"
      "nav.toc li{{display:flex;align-items:baseline}}nav.toc li a{{color:#000;text-decoration:none}}"
      "nav.toc .leader{{display:block;flex:1;border-bottom:1px dotted #999;margin:0 4px}}"
      "nav.toc .toc-page{{display:inline-block;min-width:2.5em;text-align:right}}"
      "a{{color:inherit}}}}\n",
      paper_name(paper), css_string(running_header(report)), css_string(footer));
}

// A table cell that holds a number (optionally after a comparison, before an interval or
// unit): "0.42 (95 % CI 0.28-0.57, n = 50)", ">= 0.6", "n/a". Such cells never wrap.
bool numeric_cell(const std::string& cell) {
  std::string t = cell;
  for (const char* op : {">=", "<=", "==", "!=", ">", "<"})
    if (t.rfind(op, 0) == 0) {
      t = t.substr(std::strlen(op));
      while (!t.empty() && t[0] == ' ') t.erase(0, 1);
      break;
    }
  if (t == "n/a" || t == "-" || t == "inf") return true;
  const std::string token = t.substr(0, t.find(' '));
  if (token.empty()) return false;
  char* end = nullptr;
  std::strtod(token.c_str(), &end);
  return end != token.c_str() && *end == '\0';
}

bool sha256_text(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// Escaped text with break opportunities (<wbr>) after '/', '_', '(' and ',' inside long
// tokens (paths, metric names), so a narrow column wraps there and not mid-word.
std::string breakable(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    std::string token = xml_escape(text.substr(start, end - start));
    if (end - start > 16) {
      std::string with;
      for (size_t i = 0; i < token.size(); ++i) {
        with += token[i];
        if ((token[i] == '/' || token[i] == '_' || token[i] == '(' || token[i] == ',') && i + 1 < token.size()) with += "<wbr>";
      }
      token = with;
    }
    out += token;
    if (end < text.size()) out += ' ';
    start = end + 1;
  }
  return out;
}

std::string html_cell(const std::string& cell) {
  if (sha256_text(cell)) return "<td><code class=\"hash\">" + cell + "</code></td>";
  if (numeric_cell(cell)) return "<td class=\"num\">" + xml_escape(cell) + "</td>";
  return "<td>" + breakable(cell) + "</td>";
}

// GitHub's heading anchors: lower case, punctuation dropped, spaces as '-'.
std::string github_slug(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c)) out += char(std::tolower(c));
    else if (c == ' ' || c == '-') out += '-';
    else if (c == '_' || c >= 0x80) out += char(c);
  }
  return out;
}

}  // namespace

Paper parse_paper(const std::string& name) {
  std::string lower;
  for (unsigned char c : name) lower += char(std::tolower(c));
  if (lower == "a4") return Paper::A4;
  if (lower == "letter") return Paper::Letter;
  throw InputError("report", fmt::format("--paper: '{}' is not one of a4, letter", name));
}

const char* paper_name(Paper paper) { return paper == Paper::Letter ? "letter" : "A4"; }

static std::string render_markdown_fields(const json& report, const std::string& asset_dir) {
  std::string out;
  for (const Block& b : detail::build_document(report, asset_dir)) {
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
      case K::Toc: {
        out += "**" + md_text(b.text) + "**\n\n";
        int n = 0;
        for (const auto& item : b.items) {
          const std::string text = item.substr(item.find('\t') + 1);
          out += fmt::format("{}. [{}](#{})\n", ++n, md_text(text), github_slug(text));
        }
        out += "\n";
        break;
      }
      case K::Definitions:
        if (!b.text.empty()) out += "**" + md_text(b.text) + "**\n\n";
        for (const auto& [term, def] : b.terms) out += "- **" + md_text(term) + "**: " + md_text(def) + "\n";
        out += "\n";
        break;
    }
  }
  out += "---\nGenerated by mlaudit " + report.value("tool_version", std::string("?")) +
         ". Charts are the SVG files in charts/; report.html embeds them and every image.\n";
  return out;
}

static std::vector<std::pair<std::string, std::string>> render_chart_files_fields(const json& report, const std::string& asset_dir) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const Block& b : detail::build_document(report, asset_dir))
    if (b.kind == K::Chart) files.emplace_back(b.chart_file, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + b.svg + "\n");
  return files;
}

static std::string render_html_fields(const json& report, const std::string& asset_dir, const RenderOptions& options) {
  const auto doc = detail::build_document(report, asset_dir);
  std::string title = "Model audit report";
  if (!doc.empty()) title = doc[0].text;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                    "<meta name=\"generator\" content=\"mlaudit " + xml_escape(report.value("tool_version", std::string("?"))) + "\">\n"
                    // read by html_to_pdf for renderers without CSS page-margin boxes (wkhtmltopdf)
                    "<meta name=\"mlaudit-running-header\" content=\"" + xml_escape(running_header(report)) + "\">\n"
                    "<title>" + xml_escape(title) + "</title>\n<style>" + kCss + print_css(report, options.paper) +
                    "</style>\n</head>\n<body>\n";
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
      case K::Toc:
        // page numbers: empty here, filled from the PDF's named destinations by html_to_pdf
        out += "<nav class=\"toc\" aria-label=\"" + xml_escape(b.text) + "\">\n<h2 id=\"contents\">" + xml_escape(b.text) + "</h2>\n<ol>\n";
        for (const auto& item : b.items) {
          const std::string anchor = item.substr(0, item.find('\t')), text = item.substr(item.find('\t') + 1);
          out += "<li><a href=\"#" + anchor + "\">" + xml_escape(text) + "</a><span class=\"leader\"></span><span class=\"toc-page\" "
                 "data-anchor=\"" + anchor + "\"></span></li>\n";
        }
        out += "</ol>\n</nav>\n";
        break;
      case K::Table: {
        out += "<div class=\"table-wrap\"><table>\n<thead><tr>";
        for (size_t i = 0; i < b.header.size(); ++i) {
          const std::string shown = i < b.short_header.size() ? b.short_header[i] : b.header[i];
          if (shown != b.header[i]) out += "<th><abbr title=\"" + xml_escape(b.header[i]) + "\">" + xml_escape(shown) + "</abbr></th>";
          else out += "<th>" + xml_escape(shown) + "</th>";
        }
        out += "</tr></thead>\n<tbody>\n";
        for (const auto& r : b.rows) {
          out += "<tr>";
          for (size_t i = 0; i < b.header.size(); ++i) {
            std::string cell = i < r.size() ? r[i] : "";
            if (i == 0 && (cell == "PASS" || cell == "FAIL" || cell == "ERROR" || cell == "WARN"))
              out += "<td><span class=\"badge " + cell + "\">" + cell + "</span></td>";
            else
              out += html_cell(cell);
          }
          out += "</tr>\n";
        }
        out += "</tbody>\n</table></div>\n";
        if (!b.legend.empty()) {
          out += "<p class=\"legend\">";
          for (size_t i = 0; i < b.legend.size(); ++i) out += (i ? "<br>" : "") + xml_escape(b.legend[i]);
          out += "</p>\n";
        }
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
                 "\"><figcaption>" + breakable(b.text) + "</figcaption></figure>\n";
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
      case K::Definitions:
        if (!b.text.empty()) out += "<p class=\"dl-title\">" + xml_escape(b.text) + "</p>\n";
        out += "<dl class=\"definitions\">\n";
        for (const auto& [term, def] : b.terms) out += "<dt>" + xml_escape(term) + "</dt><dd>" + xml_escape(def) + "</dd>\n";
        out += "</dl>\n";
        break;
    }
  }
  out += "<hr><p style=\"font-size:12px;color:#666\">Generated by mlaudit " +
         xml_escape(report.value("tool_version", std::string("?"))) + ". Self-contained: no scripts, no network.</p>\n";
  out += "</body>\n</html>\n";
  return out;
}

static std::string render_junit_fields(const json& report) {
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

// A report.json is an input like any other: one that parses but whose fields do not have the
// types mlaudit writes (a number where a string belongs, found by fuzz/fuzz_json) is an
// InputError naming the problem, not an internal error.
template <class F>
static auto typed_fields(F render) -> decltype(render()) {
  try {
    return render();
  } catch (const json::exception& e) {
    throw InputError("report", fmt::format("the report's fields do not have the types mlaudit writes ({}); render a "
                                           "report.json that 'mlaudit audit' wrote",
                                           e.what()));
  }
}

std::string render_markdown(const json& report, const std::string& asset_dir) {
  return typed_fields([&] { return render_markdown_fields(report, asset_dir); });
}

std::vector<std::pair<std::string, std::string>> render_chart_files(const json& report, const std::string& asset_dir) {
  return typed_fields([&] { return render_chart_files_fields(report, asset_dir); });
}

std::string render_html(const json& report, const std::string& asset_dir, const RenderOptions& options) {
  return typed_fields([&] { return render_html_fields(report, asset_dir, options); });
}

std::string render_junit(const json& report) {
  return typed_fields([&] { return render_junit_fields(report); });
}

}  // namespace mlaudit::reports
