#pragma once
// The audit pipeline: run each configured section (through a command runner,
// so this library never links the analysis modules), read the section JSON
// back, evaluate the gates, assemble report.json and write every rendering.
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/reports/config.h"

namespace mlaudit::reports {

/// Runs one mlaudit command in-process (cli::run_command); returns its exit code.
using CommandRunner = std::function<int(const std::string& command, const std::vector<std::string>& args)>;

/// Options of one audit run.
struct AuditOptions {
  std::string out_dir;
  std::string diff_path;      ///< previous report.json for the "changes" section (optional)
  std::string tool_version = "unknown";
  std::string git_commit = "unknown";
  int threads = 0;
  bool quiet = false;         ///< no progress output
  bool progress_bar = false;  ///< redraw one line (stderr is a terminal) instead of plain lines
  bool pdf = true;            ///< try to render report.pdf
  std::string paper = "a4";   ///< page size of report.pdf and of report.html's print layout: "a4" or "letter"
  const std::atomic<bool>* interrupted = nullptr;  ///< set by the SIGINT handler
};

/// What a command invocation for a section looks like.
struct SectionCommand {
  std::string command;            ///< "attack", "certify", ... (empty: computed in-process)
  std::vector<std::string> args;  ///< arguments after the command name
  std::string result_path;        ///< the JSON the command writes
};

/// Arguments for a section's command: --model, the kind's own arguments (its `args` hook in
/// reports/src/sections/<kind>.cpp), --out, then the entry's verbatim `args`. `work_dir` holds
/// inputs prepared for the section (subsets of the data) and its output.
SectionCommand section_command(const SectionSpec& section, const AuditConfig& config, const std::string& work_dir);

/// Result of an audit.
struct AuditResult {
  int exit_code = 0;                 ///< 0 pass, 1 gate failed, 2 gate error / input error
  bool interrupted = false;          ///< stopped by Ctrl-C: the finished sections reported, marked incomplete
  nlohmann::json report;
  std::vector<std::string> written;  ///< files written
  std::string pdf_note;              ///< why report.pdf is absent, when it is
};

/// Run the audit and write DIR/report.{json,md,html}, junit.xml, report.pdf.
/// Section failures are recorded in the report (gates reading them are errors);
/// an interrupted audit writes nothing and removes its temporary folder.
AuditResult run_audit(const AuditConfig& config, const AuditOptions& options, const CommandRunner& runner);

/// Render and write the report files into `dir` (all rendered in memory first,
/// each written atomically) with the given `paper` ("a4" or "letter"). Returns the paths
/// written; `pdf_note` explains a missing PDF.
std::vector<std::string> write_report_files(const nlohmann::json& report, const std::string& dir, bool pdf,
                                            std::string* pdf_note, const std::string& asset_dir = "",
                                            const std::string& paper = "a4");

}  // namespace mlaudit::reports
