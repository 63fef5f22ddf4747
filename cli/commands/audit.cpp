// `mlaudit audit`: run the sections an audit.yaml asks for, evaluate its gates
// and write report.json/.md/.html, junit.xml (and report.pdf when a renderer
// is installed). Exit 0 all gates pass, 1 a gate failed, 2 input error or a
// gate whose metric is missing, 3 internal error, 130 interrupted.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "command.h"
#include "merge.h"
#include "mlaudit/datasets/io.h"
#include "shard.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/check.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/report.h"
#include "version.h"
#ifdef MLAUDIT_HAVE_robustness
#include "mlaudit/robustness/attacks.h"
#include "mlaudit/robustness/corruptions.h"
#endif
#ifdef MLAUDIT_HAVE_explain
#include "mlaudit/explain/attribution.h"
#endif
#ifdef MLAUDIT_HAVE_verify
#include "mlaudit/verify/verify.h"
#endif
#ifdef MLAUDIT_HAVE_fairness
#include "mlaudit/fairness/metrics.h"
#endif

namespace mlaudit::cli {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_interrupted{false};

// First Ctrl-C: finish the running section, then stop without writing a
// report. Second Ctrl-C: default action (terminate now).
extern "C" void on_sigint(int) {
  if (g_interrupted.exchange(true)) {
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  const char msg[] = "\naudit: interrupt received; stopping after the current section and writing an incomplete report "
                     "(Ctrl-C again to abort now)\n";
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
}

// Runs a section's command with its stdout silenced (its JSON file is the
// result; its warnings on stderr stay visible).
int run_section_command(const std::string& name, const std::vector<std::string>& args, const GlobalOptions& global) {
  GlobalOptions g = global;
  g.section_progress = !global.quiet;  // the running section's progress line stays visible
  g.quiet = true;
  std::fflush(stdout);
  std::cout.flush();
  int saved = dup(1);
  int devnull = open("/dev/null", O_WRONLY);
  if (saved >= 0 && devnull >= 0) dup2(devnull, 1);
  struct Restore {
    int saved, devnull;
    ~Restore() {
      std::fflush(stdout);
      std::cout.flush();
      if (saved >= 0) dup2(saved, 1), close(saved);
      if (devnull >= 0) close(devnull);
    }
  } restore{saved, devnull};
  return run_command(name, args, g);
}

// ---- `audit --shard I/N` and `audit --merge DIR...` (docs/scale-out.md) ----

std::string option_value(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == name) return args[i + 1];
  return {};
}

// The section commands that shard (their parts merge with merge_parts): attack, certify,
// corrupt, privacy, verify with data (robustness proofs; not the fairness mode) and explain
// (but method permutation and --interactions, which explain refuses to shard; a part's
// attribution array and heatmaps are kept beside it). The other sections run once, in the
// `--merge` run.
bool section_shards(const std::string& command, const std::vector<std::string>& args) {
  static const std::set<std::string> s = {"attack", "certify", "corrupt", "privacy"};
  if (s.count(command)) return true;
  const auto has = [&](const char* f) { return std::find(args.begin(), args.end(), f) != args.end(); };
  if (command == "explain") return option_value(args, "--method") != "permutation" && !has("--interactions");
  return command == "verify" && has("--data");
}

// A merged section: its result JSON (work folder still marked) and, for explain, the joined
// attribution array and the folders holding the parts' heatmaps.
struct MergedSection {
  std::string text;
  std::string attributions_npy;
  std::vector<fs::path> heatmap_dirs;
};

// Copies the regular files of folder `from` into `to` (created); throws InputError.
void copy_files(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) throw InputError("audit", fmt::format("cannot create folder '{}': {}", to.string(), ec.message()));
  for (const auto& e : fs::directory_iterator(from, ec)) {
    if (!e.is_regular_file()) continue;
    fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing, ec);
    if (ec) throw InputError("audit", fmt::format("cannot copy '{}' to '{}': {}", e.path().string(), to.string(), ec.message()));
  }
  if (ec) throw InputError("audit", fmt::format("cannot read folder '{}': {}", from.string(), ec.message()));
}

constexpr const char* kShardManifestSchema = "mlaudit.audit-shard/1";
// A part names files in its run's work folder (`.work-PID`): the folder is written as this mark
// in the kept part and as the merging run's work folder in the merged result, so the merged
// section result is the one one process writes.
constexpr const char* kWorkMark = "@AUDIT_WORK@";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// Work-folder paths inside a JSON text: a string value that starts with the folder.
std::string work_to_mark(const std::string& text, const std::string& work) {
  return replace_all(replace_all(text, "\"" + work + "/", std::string("\"") + kWorkMark + "/"), "\"" + work + "\"",
                     std::string("\"") + kWorkMark + "\"");
}
std::string mark_to_work(const std::string& text, const std::string& work) {
  return replace_all(text, std::string("\"") + kWorkMark, "\"" + work);
}

// `audit CONFIG --shard I/N --out DIR`: the sharding sections' parts in DIR/parts/<id>.json and
// DIR/manifest.json; no report.
int run_audit_shard(const reports::AuditConfig& config, const shard::Shard& sh, const std::string& out_dir,
                    const GlobalOptions& global, bool quiet) {
  const fs::path out = out_dir;
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw InputError("audit", fmt::format("--out: cannot create folder '{}': {}", out.string(), ec.message()));
  fs::remove_all(out / "parts", ec);
  fs::remove(out / "manifest.json", ec);
  fs::create_directories(out / "parts", ec);
  if (ec) throw InputError("audit", fmt::format("--out: cannot create folder '{}': {}", (out / "parts").string(), ec.message()));
  const fs::path work = out / fmt::format(".work-{}", getpid());
  fs::remove_all(work, ec);
  fs::create_directories(work / "inputs", ec);
  if (ec) throw InputError("audit", fmt::format("--out: cannot create folder '{}': {}", work.string(), ec.message()));
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(p, e);
    }
  } cleanup{work};
  const std::string work_str = fs::absolute(work).lexically_normal().string();
  const std::string shard_text = fmt::format("{}/{}", sh.index, sh.count);
  nlohmann::json sharded = nlohmann::json::array(), not_sharded = nlohmann::json::array();
  for (const auto& s : config.sections) {
    if (s.params.contains("result")) {  // imported: nothing runs
      not_sharded.push_back(s.id);
      continue;
    }
    reports::SectionCommand c = reports::section_command(s, config, work_str);
    if (!section_shards(c.command, c.args)) {
      not_sharded.push_back(s.id);
      continue;
    }
    c.args.insert(c.args.end(), {"--shard", shard_text});
    if (!quiet) std::cerr << fmt::format("audit: {} (mlaudit {} --shard {}) ...\n", s.id, c.command, shard_text);
    int code = 0;
    try {
      code = run_section_command(c.command, c.args, global);
    } catch (const InputError& e) {  // e.g. more shards than the section has samples
      throw InputError("audit", fmt::format("section '{}' (mlaudit {} --shard {}): {}", s.id, c.command, shard_text, e.what()));
    }
    std::error_code fe;
    if ((code != 0 && code != 1) || !fs::exists(c.result_path, fe)) {
      std::cerr << fmt::format("mlaudit: error: audit: section '{}': 'mlaudit {} --shard {}' exited with code {}{}\n", s.id,
                               c.command, shard_text, code, fs::exists(c.result_path, fe) ? "" : " and wrote no part");
      return code >= 2 ? code : 3;
    }
    const std::string text = datasets::read_file(c.result_path, int64_t(4) << 30);
    datasets::write_file_atomic((out / "parts" / (s.id + ".json")).string(), work_to_mark(text, work_str));
    if (c.command == "explain") {
      // the slice's attribution array beside the part (merge_parts looks for it there) and its
      // heatmaps (named by global row) in parts/<id>-heatmaps
      const std::string npy = option_value(c.args, "--attributions");
      if (!npy.empty()) {
        std::error_code ce;
        fs::copy_file(npy, out / "parts" / fs::path(npy).filename(), fs::copy_options::overwrite_existing, ce);
        if (ce)
          throw InputError("audit", fmt::format("section '{}': cannot keep its attributions '{}' in '{}': {}", s.id, npy,
                                                (out / "parts").string(), ce.message()));
      }
      const std::string hdir = option_value(c.args, "--heatmap-dir");
      std::error_code he;
      if (!hdir.empty() && fs::is_directory(hdir, he)) copy_files(hdir, out / "parts" / (s.id + "-heatmaps"));
    }
    sharded.push_back(s.id);
  }
  const nlohmann::json manifest = {{"schema", kShardManifestSchema},
                                   {"tool_version", MLAUDIT_VERSION},
                                   {"config", config.path},
                                   {"config_sha256", datasets::sha256_file(config.path)},
                                   {"shard", {{"index", sh.index}, {"count", sh.count}}},
                                   {"sections", sharded},
                                   {"not_sharded", not_sharded}};
  datasets::write_file_atomic((out / "manifest.json").string(), manifest.dump(2) + "\n");
  if (!quiet)
    std::cout << fmt::format("audit: shard {} of {}: {} section part(s) in {}/parts ({} section(s) run at --merge)\n", sh.index,
                             sh.count, sharded.size(), out.string(), not_sharded.size());
  return 0;
}

// `audit CONFIG --merge DIR... --out OUT`: checks the shard folders belong to this config and
// together hold every shard of every sharding section, merges each section's parts (with the
// mark still in place). Throws InputError naming the folder and the problem.
std::map<std::string, MergedSection> merge_audit_parts(const reports::AuditConfig& config, const std::vector<std::string>& dirs) {
  const std::string config_sha = datasets::sha256_file(config.path);
  struct Dir {
    std::string path;
    nlohmann::json manifest;
    std::set<std::string> sections;
  };
  std::vector<Dir> ds;
  for (const auto& d : dirs) {
    const std::string mpath = (fs::path(d) / "manifest.json").string();
    std::error_code ec;
    if (!fs::is_regular_file(mpath, ec))
      throw InputError("audit", fmt::format("--merge: '{}' is not an 'audit --shard' folder (no manifest.json)", d));
    nlohmann::json m;
    try {
      m = nlohmann::json::parse(datasets::read_file(mpath, 64 << 20));
    } catch (const nlohmann::json::exception& e) {
      throw InputError("audit", fmt::format("--merge: {}: not valid JSON: {}", mpath, e.what()));
    }
    if (!m.is_object() || m.value("schema", "") != kShardManifestSchema || !m["shard"].is_object() ||
        !m["sections"].is_array() || !m["config_sha256"].is_string())
      throw InputError("audit", fmt::format("--merge: {}: not an 'audit --shard' manifest ({})", mpath, kShardManifestSchema));
    if (m["config_sha256"] != config_sha)
      throw InputError("audit", fmt::format("--merge: '{}' holds parts of another audit config ({}: SHA-256 differs from {})", d,
                                            m.value("config", std::string("?")), config.path));
    Dir x{d, m, {}};
    for (const auto& s : m["sections"]) x.sections.insert(s.get<std::string>());
    ds.push_back(std::move(x));
  }
  // Every shard once (also when no section shards).
  const int64_t count = ds.front().manifest["shard"].value("count", int64_t(0));
  std::map<int64_t, std::string> seen;
  for (const auto& d : ds) {
    const int64_t n = d.manifest["shard"].value("count", int64_t(0)), i = d.manifest["shard"].value("index", int64_t(-1));
    if (n != count)
      throw InputError("audit", fmt::format("--merge: '{}' is shard {}/{}, '{}' one of {} shards", d.path, i, n, ds.front().path, count));
    if (seen.count(i)) throw InputError("audit", fmt::format("--merge: shard {}/{} given twice ('{}' and '{}')", i, n, seen[i], d.path));
    seen[i] = d.path;
  }
  for (int64_t i = 0; i < count; ++i)
    if (!seen.count(i)) throw InputError("audit", fmt::format("--merge: shard {}/{} is missing (no folder holds it)", i, count));
  std::set<std::string> all;
  for (const auto& d : ds) all.insert(d.sections.begin(), d.sections.end());
  for (const auto& id : all) {
    bool known = false;
    for (const auto& s : config.sections) known = known || s.id == id;
    if (!known) throw InputError("audit", fmt::format("--merge: section '{}' of '{}' is not in {}", id, ds.front().path, config.path));
    for (const auto& d : ds)
      if (!d.sections.count(id)) throw InputError("audit", fmt::format("--merge: section '{}' is missing from '{}'", id, d.path));
  }
  std::map<std::string, MergedSection> merged;
  for (const auto& id : all) {
    std::vector<PartText> texts;
    bool explain = false;
    MergedSection m;
    for (const auto& d : ds) {
      const std::string p = (fs::path(d.path) / "parts" / (id + ".json")).string();
      std::error_code ec;
      if (!fs::is_regular_file(p, ec)) throw InputError("audit", fmt::format("--merge: section '{}': part '{}' is missing", id, p));
      texts.push_back({p, datasets::read_file(p, int64_t(4) << 30)});
      try {
        const nlohmann::json j = nlohmann::json::parse(texts.back().text);
        explain = explain || j["shard"]["run"].value("command", "") == "explain";
      } catch (const nlohmann::json::exception&) {  // merge_parts says what is wrong
      }
      const fs::path h = fs::path(d.path) / "parts" / (id + "-heatmaps");
      if (fs::is_directory(h, ec)) m.heatmap_dirs.push_back(h);
    }
    try {
      // explain: the joined array is the one the section writes as <work>/<id>.npy
      MergedReport r = merge_parts(texts, id + ".json", explain ? std::string(kWorkMark) + "/" + id + ".npy" : "");
      m.text = std::move(r.text);
      m.attributions_npy = std::move(r.attributions_npy);
      merged[id] = std::move(m);
    } catch (const InputError& e) {
      throw InputError("audit", fmt::format("--merge: section '{}': {}", id, e.what()));
    }
  }
  return merged;
}

// A model as the sections' commands load it, for the dry run (reports links no engine):
// the per-sample input shape and the class count C of the audited output [N, C], from its
// static shape or else from one forward pass of zeros.
reports::ModelShape probe_model(const reports::ModelSpec& m) {
  engine::SessionOptions options;
  options.output = m.output;
  options.binary_two_classes = true;  // a one-column binary classifier scores two classes, as in the commands
  const std::unique_ptr<engine::Session> session = engine::Session::load(m.path, options);
  reports::ModelShape out;
  const engine::Shape in = session->input_shape();
  if (!in.empty()) out.input.assign(in.begin() + 1, in.end());
  const engine::Shape& o = session->audited_output().shape;
  if (o.size() == 2 && o[1] > 0) {
    out.classes = o[1];
  } else if (!in.empty()) {
    engine::Shape probe = in;
    for (auto& d : probe) d = d < 0 ? 1 : d;
    try {
      engine::Tensor y = session->forward(engine::Tensor::full(probe, 0.0f));
      if (y.rank() == 2) out.classes = y.dim(1);
    } catch (const std::exception&) {
      // an input the zeros probe cannot feed: the command reports it when it runs
    }
  }
  return out;
}

// The tables the section commands check their options against, so `audit --check`
// refuses exactly what the commands would refuse.
reports::SectionVocabulary section_vocabulary() {
  reports::SectionVocabulary v;
#ifdef MLAUDIT_HAVE_robustness
  v.attacks = attack_command_names();  // with exact-tree
  for (const char* n : {"linf", "l2"}) {  // the names robustness::norm_name writes (parse_norm reads them back)
    try {
      v.attack_norms.push_back(robustness::norm_name(robustness::parse_norm(n)));
    } catch (const InputError&) {
    }
  }
  v.image_corruptions = robustness::image_corruptions();
  v.tabular_corruptions = robustness::tabular_corruptions();
#endif
#ifdef MLAUDIT_HAVE_explain
  v.explain_methods = explain::method_names();  // `mlaudit explain --method`
#endif
#ifdef MLAUDIT_HAVE_verify
  v.verify_norms = verify::robustness_norms();  // `mlaudit verify --norm`
#endif
#ifdef MLAUDIT_HAVE_fairness
  v.fairness_positive = fairness::positive_class_names();
#endif
  return v;
}

int cmd_audit(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("audit options");
  desc.add_options()("config,c", po::value<std::string>(), "audit configuration (YAML), see docs/audit.md")(
      "out,o", po::value<std::string>(), "output folder for report.json/.md/.html, junit.xml, report.pdf")(
      "diff", po::value<std::string>(), "previous report.json: add a 'changes since the previous audit' section")(
      "no-pdf", "do not try to render report.pdf")(
      "paper", po::value<std::string>()->default_value("a4"), "page size of report.pdf and of the HTML's print layout: a4 or letter")(
      "quiet,q", "no progress output")(
      "check", "dry run: check the config, models, data headers, labels, imports, gates and paths, then exit (no section runs)")(
      "shard", po::value<std::string>(),
      "I/N: run only the sections whose command shards (attack, certify, corrupt, privacy, verify with data, explain but permutation), each with --shard I/N, and keep their "
      "parts in --out DIR (no report); see docs/scale-out.md")(
      "merge", po::value<std::vector<std::string>>()->multitoken(),
      "DIR...: the folders of 'audit --shard' runs: merge their parts into the sections' results and run the rest, then "
      "write the report as one process does");
  po::variables_map vm;
  if (!parse_options("audit", "mlaudit audit --config audit.yaml --out DIR [--diff OLD/report.json] [--shard I/N | --merge DIR...]",
                     desc, args, vm, {"config"}))
    return 0;
  if (vm.count("shard") && vm.count("merge")) throw InputError("audit", "--shard and --merge: give one or the other");
  if (vm.count("shard") && vm.count("diff")) throw InputError("audit", "--shard writes no report: --diff belongs to the --merge run");
  const shard::Shard audit_shard = shard::parse("audit", vm);
  // Everything is validated before any work starts.
  const reports::Paper paper = reports::parse_paper(vm["paper"].as<std::string>());
  reports::AuditConfig config = reports::load_config(vm["config"].as<std::string>());
  bool quiet = global.quiet || vm.count("quiet");
  // The dry run: every value, gate, model, data header, import and output path, before
  // any section runs (the same check with and without --check).
  reports::CheckOptions check_options;
  if (vm.count("out")) check_options.out_dir = vm["out"].as<std::string>();
  if (vm.count("diff")) check_options.diff_path = vm["diff"].as<std::string>();
  check_options.probe_model = probe_model;
  const reports::CheckSummary checked = reports::check_audit(config, section_vocabulary(), check_options);
  if (vm.count("check")) {
    if (!quiet)
      std::cout << fmt::format("audit: {} is valid: {} models, {} sections, {} gates ({} models loaded, {} data sets read, "
                               "{} imported results verified; no section ran)\n",
                               config.path, config.models.size(), config.sections.size(), config.gates.size(),
                               checked.models_loaded, checked.data_sets_read, checked.imports_verified);
    return 0;
  }
  if (!vm.count("out")) throw InputError("cli", "audit: the option '--out' is required (see 'mlaudit audit --help')");
  if (audit_shard.on) {
    g_interrupted = false;
    return run_audit_shard(config, audit_shard, vm["out"].as<std::string>(), global, quiet);
  }
  // --merge: every folder checked and every section's parts merged before anything runs.
  std::map<std::string, MergedSection> merged;
  if (vm.count("merge")) merged = merge_audit_parts(config, vm["merge"].as<std::vector<std::string>>());
  reports::AuditOptions opt;
  opt.out_dir = vm["out"].as<std::string>();
  if (vm.count("diff")) opt.diff_path = vm["diff"].as<std::string>();
  opt.tool_version = MLAUDIT_VERSION;
  opt.git_commit = MLAUDIT_GIT_COMMIT;
  opt.threads = global.threads;
  opt.quiet = quiet;
  opt.progress_bar = isatty(2);
  opt.pdf = !vm.count("no-pdf");
  opt.paper = reports::paper_name(paper);
  opt.interrupted = &g_interrupted;

  g_interrupted = false;
  struct sigaction sa = {}, old = {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  struct RestoreSignal {
    struct sigaction old;
    ~RestoreSignal() { sigaction(SIGINT, &old, nullptr); }
  } restore_signal{old};

  auto runner = [&](const std::string& name, const std::vector<std::string>& a) {
    if (!merged.empty() && section_shards(name, a)) {
      // a sharded section: its merged parts are its result (written where the command writes it)
      const fs::path result = option_value(a, "--out");
      const auto it = merged.find(result.stem().string());
      if (!result.empty() && it != merged.end()) {
        datasets::write_file_atomic(result.string(), mark_to_work(it->second.text, result.parent_path().string()));
        // explain: the joined attributions and the parts' heatmaps where the command writes them
        const std::string npy = option_value(a, "--attributions");
        if (!npy.empty() && !it->second.attributions_npy.empty()) datasets::write_file_atomic(npy, it->second.attributions_npy);
        const std::string hdir = option_value(a, "--heatmap-dir");
        if (!hdir.empty()) {
          std::error_code ec;
          fs::create_directories(hdir, ec);
          for (const auto& h : it->second.heatmap_dirs) copy_files(h, hdir);
        }
        return 0;
      }
    }
    return run_section_command(name, a, global);
  };
  reports::AuditResult res = reports::run_audit(config, opt, runner);
  if (res.interrupted) {
    std::string missing;
    for (const auto& id : res.report["incomplete"]["sections_not_run"]) missing += (missing.empty() ? "" : ", ") + id.get<std::string>();
    std::cerr << "audit: interrupted; incomplete report written (sections not run: " << (missing.empty() ? "none" : missing)
              << ")\n";
    if (!res.written.empty()) std::cerr << "Report: " << res.written.front() << "\n";
    return 130;
  }
  if (!quiet) {
    const auto& sum = res.report["summary"];
    std::cout << "\nGate summary:\n";
    for (const auto& g : res.report["gates"]) {
      std::string st = g.value("status", "error");
      std::string badge = st == "pass" ? "PASS " : st == "error" ? "ERROR" : g.value("severity", "") == "warning" ? "WARN " : "FAIL ";
      std::cout << fmt::format("  {} {}: {}\n", badge, g.value("name", std::string()), g.value("message", std::string()));
    }
    if (res.report["gates"].empty()) std::cout << "  (no gates configured)\n";
    for (const auto& s : res.report["sections"])
      if (s.value("status", "") != "ok")
        std::cout << fmt::format("  section {} did not complete: {}\n", s.value("id", std::string()), s.value("error", std::string()));
    std::cout << fmt::format("Verdict: {} ({} of {} gates passed)\n", sum.value("verdict", std::string()),
                             sum.value("gates_passed", 0), sum.value("gates_total", 0));
    if (!res.pdf_note.empty()) std::cout << "note: " << res.pdf_note << "\n";
    std::cout << "Report: " << opt.out_dir << "/report.html (also report.md, report.json, junit.xml"
              << (res.pdf_note.empty() && opt.pdf ? ", report.pdf" : "") << ")\n";
  }
  return res.exit_code;
}

}  // namespace
}  // namespace mlaudit::cli

MLAUDIT_COMMAND("audit", "run a policy-driven audit (audit.yaml) and write HTML/Markdown/JSON/JUnit reports",
                mlaudit::cli::cmd_audit);
