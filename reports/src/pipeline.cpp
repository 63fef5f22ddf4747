// The audit pipeline: sections through the command runner, gates, report files.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <tuple>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/common/error.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/check.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "mlaudit/reports/sections.h"
#include "sections/context.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mlaudit::reports {

namespace {

std::string join_numbers(const json& list) {
  std::string out;
  for (const auto& v : list) {
    std::string s = v.is_number_integer() ? std::to_string(v.get<int64_t>()) : fmt::format("{}", v.get<double>());
    out += (out.empty() ? "" : ",") + s;
  }
  return out;
}

std::string join_strings(const json& list) {
  std::string out;
  for (const auto& v : list) out += (out.empty() ? "" : ",") + v.get<std::string>();
  return out;
}

std::string num_text(const json& v) {
  return v.is_number_integer() ? std::to_string(v.get<int64_t>()) : fmt::format("{}", v.get<double>());
}

// First `n` rows of an .npy file, written once into the work folder.
std::string subset_npy(const std::string& path, int64_t n, const std::string& work_dir, const std::string& tag) {
  std::string out = fmt::format("{}/inputs/{}-first{}.npy", work_dir, tag, n);
  if (fs::exists(out)) return out;
  engine::Tensor t = datasets::read_npy(path);
  if (t.rank() == 0) throw InputError("audit", fmt::format("{}: a scalar cannot be subset by 'limit'", path));
  if (t.dim(0) <= n) return path;
  datasets::write_npy(out, t.slice_rows(0, n));
  return out;
}

// First `n` data rows of a CSV (the header kept); rows are lines (the bundled
// and UCI tables have no quoted line breaks).
std::string subset_csv(const std::string& path, int64_t n, const std::string& work_dir, const std::string& tag) {
  std::string out = fmt::format("{}/inputs/{}-first{}.csv", work_dir, tag, n);
  if (fs::exists(out)) return out;
  std::istringstream in(datasets::read_file(path));
  std::string line, text;
  for (int64_t k = 0; k <= n && std::getline(in, line); ++k) text += line + "\n";
  datasets::write_file_atomic(out, text);
  return out;
}

// The feature list of a CSV data set whose 'features' were given inline: written
// once into the work folder, one column per line (what privacy's `--features` reads).
std::string feature_file(const DatasetSpec& ds, const std::string& work_dir) {
  std::string out = fmt::format("{}/inputs/{}-features.txt", work_dir, ds.id);
  if (fs::exists(out)) return out;
  std::string text;
  for (const auto& f : ds.features) text += f + "\n";
  datasets::write_file_atomic(out, text);
  return out;
}

// Input domain for individual-fairness verification when the config gives
// none: each feature's observed [min, max] in the data set's CSV
// (feature,min,max rows, the format `mlaudit verify --domain` reads).
std::string observed_domain(const DatasetSpec& ds, const std::string& work_dir) {
  std::string out = fmt::format("{}/inputs/{}-domain.csv", work_dir, ds.id);
  if (fs::exists(out)) return out;
  auto table = datasets::read_csv(ds.csv);
  std::string text = "feature,min,max\n";
  for (const auto& f : ds.features) {
    auto v = table.numbers(f);
    if (v.empty()) throw InputError("audit", fmt::format("{}: column '{}' is empty", ds.csv, f));
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    text += fmt::format("{},{},{}\n", f, *lo, *hi);
  }
  datasets::write_file_atomic(out, text);
  return out;
}

// Replace the work folder prefix in every string of a section result, so
// paths stay valid after the folder is renamed to DIR/sections.
void relocate_paths(json& j, const std::string& from, const std::string& to) {
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    if (s.rfind(from, 0) == 0) j = to + s.substr(from.size());
  } else if (j.is_array() || j.is_object()) {
    for (auto& e : j) relocate_paths(e, from, to);
  }
}

void add_hash(json& hashes, const std::string& role, const std::string& path) {
  if (path.empty()) return;
  for (const auto& h : hashes)
    if (h["path"] == path) return;
  json h = {{"role", role}, {"path", path}};
  try {
    h["sha256"] = datasets::sha256_file(path);
  } catch (const std::exception& e) {
    h["sha256"] = nullptr;
    h["error"] = e.what();
  }
  hashes.push_back(h);
}

class Progress {
 public:
  Progress(const AuditOptions& o, size_t total) : opt_(o), total_(total) {}
  void start(size_t i, const std::string& what) {
    if (opt_.quiet) return;
    if (opt_.progress_bar) {
      int width = 24, filled = total_ ? int(width * i / total_) : width;
      std::cerr << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                << fmt::format("{}/{} {}", i + 1, total_, what) << std::flush;
    } else {
      std::cerr << fmt::format("audit: [{}/{}] {} ...\n", i + 1, total_, what);
    }
  }
  void finish(const std::string& what, const std::string& status, double seconds) {
    if (opt_.quiet) return;
    if (opt_.progress_bar) {
      std::cerr << "\r\033[K" << fmt::format("audit: {} {} ({:.1f} s)\n", what, status, seconds);
    } else {
      std::cerr << fmt::format("audit: {} {} ({:.1f} s)\n", what, status, seconds);
    }
  }
  void note(const std::string& msg) {
    if (!opt_.quiet) std::cerr << (opt_.progress_bar ? "\r\033[K" : "") << "audit: " << msg << "\n";
  }

 private:
  const AuditOptions& opt_;
  size_t total_;
};

bool interrupted(const AuditOptions& o) { return o.interrupted && o.interrupted->load(); }

}  // namespace

void SectionArgs::pass(const char* key, const char* option) {
  if (p.contains(key)) flag(option, p[key].is_string() ? p[key].get<std::string>() : num_text(p[key]));
}

void SectionArgs::seed() { flag("seed", p.contains("seed") ? num_text(p["seed"]) : std::to_string(cfg.seed)); }

void SectionArgs::npy_inputs() {
  flag("data", npy_rows(ds->data, ds->id + "-x"));
  flag("labels", npy_rows(ds->labels, ds->id + "-y"));
}

void SectionArgs::domain() {
  if (ds && ds->domain) {
    flag("clip-min", fmt::format("{}", ds->domain->first));
    flag("clip-max", fmt::format("{}", ds->domain->second));
  }
}

std::string SectionArgs::csv_rows(const DatasetSpec& set) { return limit > 0 ? subset_csv(set.csv, limit, work_dir, set.id) : set.csv; }

std::string SectionArgs::npy_rows(const std::string& path, const std::string& tag) {
  return limit > 0 ? subset_npy(path, limit, work_dir, tag) : path;
}

std::string SectionArgs::feature_file(const DatasetSpec& set) { return reports::feature_file(set, work_dir); }

std::string SectionArgs::observed_domain(const DatasetSpec& set) { return reports::observed_domain(set, work_dir); }

std::string SectionArgs::feature_list(const DatasetSpec& set) {
  std::string features;
  for (const auto& f : set.features) features += (features.empty() ? "" : ",") + f;
  return features;
}

std::string SectionArgs::join_numbers(const json& list) { return reports::join_numbers(list); }
std::string SectionArgs::join_strings(const json& list) { return reports::join_strings(list); }

SectionCommand section_command(const SectionSpec& s, const AuditConfig& cfg, const std::string& work_dir) {
  // The kind's registration (sections/<kind>.cpp) names the command and builds its arguments.
  const SectionKindDef& kind = section_kind_def(s.kind);
  SectionCommand c;
  c.command = kind.command;
  c.result_path = fmt::format("{}/{}.json", work_dir, s.id);
  SectionArgs a(s, cfg, work_dir, c);
  a.ds = s.data.empty() ? nullptr : cfg.dataset(s.data);
  a.limit = s.params.value("limit", int64_t(0));
  const ModelSpec* model = cfg.model(s.model);
  a.flag("model", model->path);
  if (!model->output.empty()) a.flag("model-output", model->output);
  if (kind.args) kind.args(a);
  if (!a.out_written) a.out();
  for (const auto& extra : s.params.value("args", json::array())) a.push(extra.get<std::string>());
  return c;
}

std::vector<std::string> write_report_files(const json& report, const std::string& dir, bool pdf,
                                            std::string* pdf_note, const std::string& asset_dir, const std::string& paper) {
  // Render everything in memory first: a failure here leaves no file touched.
  const std::string assets = asset_dir.empty() ? dir : asset_dir;
  RenderOptions render;
  render.paper = parse_paper(paper);  // A4 unless --paper letter (report.pdf and the HTML's print layout)
  std::string json_text = report.dump(2) + "\n";
  std::string md = render_markdown(report, assets);
  std::string html = render_html(report, assets, render);
  std::string junit = render_junit(report);
  const auto charts = render_chart_files(report, assets);
  std::vector<std::string> written;
  auto put = [&](const std::string& name, const std::string& text) {
    std::string path = (fs::path(dir) / name).string();
    datasets::write_file_atomic(path, text);
    written.push_back(path);
  };
  put("report.json", json_text);
  std::error_code ec;
  if (!charts.empty()) fs::create_directories(fs::path(dir) / "charts", ec);  // a failure shows in the write below
  for (const auto& [name, svg] : charts) put(name, svg);  // linked from report.md
  put("report.md", md);
  put("report.html", html);
  put("junit.xml", junit);
  if (pdf) {
    std::string renderer = find_pdf_renderer();
    std::string note;
    if (renderer.empty()) {
      note = "report.pdf not written: no PDF renderer found (install the Debian package 'wkhtmltopdf' or "
             "'chromium'); print report.html from a browser instead";
    } else {
      std::string pdf_path = (fs::path(dir) / "report.pdf").string();
      note = html_to_pdf(renderer, (fs::path(dir) / "report.html").string(), pdf_path, render.paper);
      if (note.empty()) written.push_back(pdf_path);
    }
    if (pdf_note) *pdf_note = note;
  }
  return written;
}

AuditResult run_audit(const AuditConfig& cfg, const AuditOptions& opt, const CommandRunner& runner) {
  AuditResult res;
  fs::path out = opt.out_dir;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw InputError("audit", fmt::format("--out: cannot create folder '{}': {}", out.string(), ec.message()));
  if (access(out.c_str(), W_OK) != 0) throw InputError("audit", fmt::format("--out: folder '{}' is not writable", out.string()));
  fs::path work = out / fmt::format(".work-{}", getpid());
  fs::remove_all(work, ec);
  fs::create_directories(work / "inputs");
  std::string work_str = fs::absolute(work).lexically_normal().string();
  struct Cleanup {
    fs::path p;
    bool keep = false;
    ~Cleanup() {
      std::error_code e;
      if (!keep) fs::remove_all(p, e);
    }
  } cleanup{work};

  json previous;
  if (!opt.diff_path.empty()) {
    try {
      const std::string text = datasets::read_file(opt.diff_path, 256 << 20);
      datasets::require_utf8(text, opt.diff_path, "audit");
      previous = json::parse(text);
    } catch (const json::exception& e) {
      throw InputError("audit", fmt::format("--diff: '{}' is not valid JSON: {}", opt.diff_path, e.what()));
    }
    if (previous.value("schema", "") != kReportSchema)
      throw InputError("audit", fmt::format("--diff: '{}' is not an mlaudit report (schema '{}')", opt.diff_path, kReportSchema));
  }

  json& report = res.report;
  report["schema"] = kReportSchema;
  report["tool_version"] = opt.tool_version;
  report["manifest"] = make_manifest(opt.tool_version, opt.git_commit, opt.threads, cfg.seed);
  json hashes = json::array();
  add_hash(hashes, "config", cfg.path);
  for (const auto& m : cfg.models) add_hash(hashes, "model " + m.id, m.path);
  for (const auto& d : cfg.datasets) {
    add_hash(hashes, "data " + d.id, d.data);
    add_hash(hashes, "labels " + d.id, d.labels);
    add_hash(hashes, "csv " + d.id, d.csv);
    add_hash(hashes, "features " + d.id, d.features_file);
  }
  // Imported results are verified (kind, schema version, the model's SHA-256) before
  // any section runs; a refused import stops the audit (InputError, exit 2).
  std::map<std::string, ImportedResult> imports;
  for (const auto& s : cfg.sections)
    if (s.params.contains("result")) imports.emplace(s.id, read_import(s, cfg));
  for (const auto& s : cfg.sections) {
    if (s.params.contains("result")) add_hash(hashes, "imported result " + s.id, s.params["result"].get<std::string>());
    for (const char* k : {"background", "domain", "suspicious"})
      if (s.params.contains(k)) add_hash(hashes, std::string(k) + " " + s.id, s.params[k].get<std::string>());
    if (s.params.contains("reference_models")) {
      // LiRA's reference models: every .onnx in the folder (what `mlaudit privacy` loads)
      std::vector<std::string> refs;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(s.params["reference_models"].get<std::string>(), ec))
        if (e.is_regular_file() && e.path().extension() == ".onnx") refs.push_back(e.path().string());
      std::sort(refs.begin(), refs.end());
      for (const auto& r : refs) add_hash(hashes, "reference model " + s.id, r);
    }
  }
  report["manifest"]["inputs"] = hashes;
  report["manifest"]["config"] = cfg.path;
  const auto& sys = cfg.system;
  report["system"] = {{"name", sys.name},           {"version", sys.version},
                      {"owner", sys.owner},         {"description", sys.description},
                      {"intended_use", sys.intended_use}, {"out_of_scope", sys.out_of_scope},
                      {"limitations", sys.limitations}};
  report["models"] = json::array();
  for (const auto& m : cfg.models) {
    json rec = {{"id", m.id}, {"path", m.path}};
    // The model summary comes from `mlaudit info --out` (the report runs no model itself).
    const std::string info_path = fmt::format("{}/model-{}.json", work_str, m.id);
    std::vector<std::string> info_args = {"--model", m.path, "--out", info_path};
    if (!m.output.empty()) info_args.insert(info_args.end(), {"--model-output", m.output});
    try {
      int code = runner("info", info_args);
      std::error_code fe;
      if (code != 0 || !fs::exists(info_path, fe))
        throw InputError("audit", fmt::format("'mlaudit info' exited with code {} on model '{}'", code, m.id));
      const json info = json::parse(datasets::read_file(info_path, 64 << 20));
      rec["summary"] = {{"opset", info.at("opset")},         {"producer", info.at("producer")},
                        {"inputs", info.at("inputs")},       {"outputs", info.at("outputs")},
                        {"nodes", info.at("nodes")},         {"parameters", info.at("parameters")},
                        {"ops", info.at("op_histogram")},    {"unsupported_ops", info.at("unsupported_ops")},
                        {"flops", info.value("flops", json(nullptr))}};
      if (info.contains("flops_error")) rec["summary"]["flops_error"] = info["flops_error"];
    } catch (const InputError& e) {  // a model 'mlaudit info' refuses; anything else is an internal error (exit 3)
      rec["summary"] = nullptr;
      rec["error"] = e.what();
    }
    report["models"].push_back(rec);
  }

  // Sections in report order (stable within a kind: config order).
  std::vector<const SectionSpec*> order;
  for (auto k : all_section_kinds())
    for (const auto& s : cfg.sections)
      if (s.kind == k) order.push_back(&s);
  Progress progress(opt, order.size());
  report["sections"] = json::array();
  for (size_t i = 0; i < order.size(); ++i) {
    const SectionSpec& s = *order[i];
    if (interrupted(opt)) break;
    json rec = {{"id", s.id}, {"kind", section_kind_name(s.kind)}, {"model", s.model},
                {"data", s.data.empty() ? json(nullptr) : json(s.data)}, {"params", s.params}};
    auto t0 = std::chrono::steady_clock::now();
    progress.start(i, s.id);
    try {
      SectionCommand c = section_command(s, cfg, work_str);
      if (s.params.contains("result")) {
        // imported: the command ran elsewhere (e.g. an earlier CI job)
        const ImportedResult& imported = imports.at(s.id);
        rec["command"] = nullptr;
        rec["imported_from"] = imported.provenance["path"];
        rec["imported"] = imported.provenance;
        rec["result"] = imported.result;
        rec["status"] = "ok";
      } else {
        json cmd = json::array({"mlaudit", c.command});
        for (const auto& x : c.args) cmd.push_back(x);
        relocate_paths(cmd, work_str, "sections");
        rec["command"] = cmd;
        int code = runner(c.command, c.args);
        std::error_code fe;
        if (!fs::exists(c.result_path, fe)) {
          rec["status"] = "error";
          rec["error"] = fmt::format("'mlaudit {}' exited with code {} and wrote no result", c.command, code);
        } else {
          json r;
          try {
            const std::string text = datasets::read_file(c.result_path, 512 << 20);
            datasets::require_utf8(text, c.result_path, "audit");
            r = json::parse(text);
          } catch (const json::exception& e) {
            throw InputError("audit", fmt::format("{}: section result is not valid JSON: {}", c.result_path, e.what()));
          }
          relocate_paths(r, work_str, "sections");
          rec["result"] = r;
          // exit code 1 means "a check inside the command failed" (e.g. a
          // verification counterexample): the result is still complete.
          rec["status"] = (code == 0 || code == 1) ? "ok" : "error";
          if (code != 0 && code != 1) rec["error"] = fmt::format("'mlaudit {}' exited with code {}", c.command, code);
        }
      }
    } catch (const std::exception& e) {
      rec["status"] = "error";
      rec["error"] = e.what();
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rec["seconds"] = secs;
    progress.finish(s.id, rec["status"] == "ok" ? "done" : "FAILED: " + rec.value("error", std::string()), secs);
    report["sections"].push_back(rec);
  }
  // Ctrl-C: the finished sections are kept and reported; the report is marked incomplete and
  // names the sections that did not run (the CLI then exits 130).
  const bool stopped = interrupted(opt);
  if (stopped) {
    json not_run = json::array();
    for (size_t i = report["sections"].size(); i < order.size(); ++i) not_run.push_back(order[i]->id);
    report["incomplete"] = {{"reason", "interrupted (Ctrl-C) after the section that was running finished"},
                            {"sections_not_run", not_run}};
  }
  report["gates"] = evaluate_gates(cfg.gates, report);
  if (!previous.is_null()) report["diff"] = diff_reports(previous, report, opt.diff_path);
  finalize_report(report);
  res.exit_code = report_exit_code(report);
  if (stopped) {
    res.interrupted = true;
    res.exit_code = 130;
    report["summary"]["verdict"] = "INCOMPLETE";
    report["summary"]["exit_code"] = 130;
  }
  // Keep section outputs (JSON, attributions, heatmaps) next to the report.
  fs::path sections_dir = out / "sections";
  fs::remove_all(sections_dir, ec);
  fs::rename(work, sections_dir, ec);
  if (ec) throw InputError("audit", fmt::format("cannot move section outputs to '{}': {}", sections_dir.string(), ec.message()));
  cleanup.keep = true;
  fs::remove_all(sections_dir / "inputs", ec);
  res.written = write_report_files(report, out.string(), opt.pdf, &res.pdf_note, out.string(), opt.paper);
  return res;
}

}  // namespace mlaudit::reports
