#pragma once
// The audit report (schema mlaudit.report/1, described by docs/report-schema.json)
// and its renderers. Every renderer reads only the report JSON, so
// `mlaudit report` re-renders any saved report.json.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlaudit::reports {

/// Schema tag of report.json.
inline constexpr const char* kReportSchema = "mlaudit.report/1";

/// A saved report.json's text as a report: UTF-8, valid JSON, an object whose "schema" is
/// kReportSchema. Throws InputError("report", "<source>: ...") otherwise.
nlohmann::json parse_report(const std::string& text, const std::string& source);

/// Run manifest: tool version and commit, UTC date, host, CPU model
/// (/proc/cpuinfo), GPU (when visible), threads, seed.
nlohmann::json make_manifest(const std::string& tool_version, const std::string& git_commit, int threads,
                             uint64_t seed);

/// Compliance mapping: each report section tied to EU AI Act Art. 15 / Annex IV,
/// NIST AI RMF MEASURE, ISO/IEC 24029-2 and ISO/IEC TR 24027, with what was
/// measured. States what was measured; never claims compliance.
nlohmann::json compliance_mapping(const nlohmann::json& report);

/// Fill "gates" (evaluated elsewhere) derived fields: "summary" with counts,
/// verdict and exit code; "compliance"; "limitations" (config + automatic).
void finalize_report(nlohmann::json& report);

/// "changes since the previous audit": gate verdict and measured-value deltas,
/// and headline metrics of sections present in both.
nlohmann::json diff_reports(const nlohmann::json& previous, const nlohmann::json& current,
                            const std::string& previous_path);

/// Exit code recorded in the report (0 pass, 1 gate failed, 2 gate error).
int report_exit_code(const nlohmann::json& report);

/// Page size of report.pdf and of report.html's print stylesheet (CSS @page size).
enum class Paper { A4, Letter };
/// "a4" or "letter", in any case; throws InputError "--paper: 'a5' is not one of a4, letter".
Paper parse_paper(const std::string& name);
/// The CSS @page size keyword: "A4" or "letter".
const char* paper_name(Paper paper);

/// How report.html is laid out on paper.
struct RenderOptions {
  Paper paper = Paper::A4;
};

/// Markdown (GitHub-flavoured) rendering; charts are linked as charts/chart-<n>.svg
/// (relative to the Markdown file), whose content render_chart_files gives.
/// `asset_dir` resolves files the sections recorded relative to the report folder.
std::string render_markdown(const nlohmann::json& report, const std::string& asset_dir = "");
/// The report's charts as standalone SVG files: (path relative to the report
/// folder, file content), in the order report.md links them (same `asset_dir`).
std::vector<std::pair<std::string, std::string>> render_chart_files(const nlohmann::json& report,
                                                                    const std::string& asset_dir = "");
/// One self-contained HTML file: inline CSS, inline SVG charts, PNGs as data URIs;
/// for print: a running header (system, verdict), page numbers, a table of contents.
/// `asset_dir` is where relative PNG paths recorded in sections are resolved.
std::string render_html(const nlohmann::json& report, const std::string& asset_dir = "", const RenderOptions& options = {});
/// JUnit XML: one testcase per gate (failure/error elements with the measured value and threshold).
std::string render_junit(const nlohmann::json& report);

/// Escape text for XML/HTML attribute and element content.
std::string xml_escape(const std::string& s);

/// Path of an installed PDF renderer (wkhtmltopdf, chromium, chromium-browser,
/// google-chrome), or empty.
std::string find_pdf_renderer();
/// Render `html_path` (a render_html page) to `pdf_path` with `renderer` on `paper`; writes to a
/// temporary name and renames. With Chromium the table of contents gets its page numbers from a
/// first pass (the PDF's named destinations). Returns an empty string on success, else the reason.
std::string html_to_pdf(const std::string& renderer, const std::string& html_path, const std::string& pdf_path,
                        Paper paper = Paper::A4);

/// Validate `instance` against a JSON Schema (the subset used by
/// docs/report-schema.json: type, required, properties, additionalProperties,
/// items, enum, const, minimum, maximum, minItems, pattern, anyOf, allOf,
/// if/then/else, $ref to
/// #/$defs). Returns error strings with JSON pointers; empty when valid.
std::vector<std::string> validate_json_schema(const nlohmann::json& instance, const nlohmann::json& schema);

}  // namespace mlaudit::reports
