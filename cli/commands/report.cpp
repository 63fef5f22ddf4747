// `mlaudit report`: re-render a saved report.json as HTML, Markdown, JUnit, PDF or JSON.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "command.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/reports/report.h"

namespace mlaudit::cli {
namespace {

int cmd_report(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("report options");
  desc.add_options()("in,i", po::value<std::string>(), "report.json written by 'mlaudit audit'")(
      "format,f", po::value<std::string>(), "html, md, junit, pdf or json")("out,o", po::value<std::string>(), "output file")(
      "paper", po::value<std::string>()->default_value("a4"), "page size of pdf and of the HTML's print layout: a4 or letter");
  po::variables_map vm;
  if (!parse_options("report", "mlaudit report --in DIR/report.json --format html|md|junit|pdf|json --out FILE [--paper a4|letter]", desc, args,
                     vm, {"in", "format", "out"}))
    return 0;
  std::string in = vm["in"].as<std::string>(), format = vm["format"].as<std::string>(), out = vm["out"].as<std::string>();
  if (format != "html" && format != "md" && format != "junit" && format != "pdf" && format != "json")
    throw InputError("report", fmt::format("--format: '{}' is not one of html, md, junit, pdf, json", format));
  reports::RenderOptions render;
  render.paper = reports::parse_paper(vm["paper"].as<std::string>());
  nlohmann::json report = reports::parse_report(datasets::read_file(in, int64_t(512) << 20), in);
  std::string asset_dir = std::filesystem::path(in).parent_path().string();
  if (asset_dir.empty()) asset_dir = ".";
  std::string text;
  if (format == "html") text = reports::render_html(report, asset_dir, render);
  else if (format == "md") text = reports::render_markdown(report, asset_dir);
  else if (format == "junit") text = reports::render_junit(report);
  else if (format == "json") text = report.dump(2) + "\n";
  if (format != "pdf") {
    if (format == "md") {
      // the charts report.md links, next to it (charts/chart-<n>.svg)
      const auto charts = reports::render_chart_files(report, asset_dir);
      std::filesystem::path base = std::filesystem::path(out).parent_path();
      std::error_code ec;  // a folder that cannot be made fails the write below with a clear message
      if (!charts.empty()) std::filesystem::create_directories(base / "charts", ec);
      for (const auto& [name, svg] : charts) datasets::write_file_atomic((base / name).string(), svg);
    }
    datasets::write_file_atomic(out, text);
  } else {
    std::string renderer = reports::find_pdf_renderer();
    if (renderer.empty())
      throw InputError("report", "--format pdf: no PDF renderer found; install the Debian package 'wkhtmltopdf' or "
                                 "'chromium' (or render --format html and print it from a browser)");
    std::string html = out + ".tmp." + std::to_string(getpid()) + ".html";
    datasets::write_file_atomic(html, reports::render_html(report, asset_dir, render));
    std::string why = reports::html_to_pdf(renderer, html, out, render.paper);
    std::error_code ec;
    std::filesystem::remove(html, ec);
    if (!why.empty()) throw InputError("report", why);
  }
  if (!global.quiet) std::cout << fmt::format("report: wrote {} ({})\n", out, format);
  return 0;
}

}  // namespace
}  // namespace mlaudit::cli

MLAUDIT_COMMAND("report", "re-render a saved audit report.json (html, md, junit, pdf, json)", mlaudit::cli::cmd_report);
