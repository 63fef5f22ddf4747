// `mlaudit audit`: run the sections an audit.yaml asks for, evaluate its gates
// and write report.json/.md/.html, junit.xml (and report.pdf when a renderer
// is installed). Exit 0 all gates pass, 1 a gate failed, 2 input error or a
// gate whose metric is missing, 3 internal error, 130 interrupted.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include "command.h"
#include "mlaudit/engine/error.h"
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
      "check", "dry run: check the config, models, data headers, labels, imports, gates and paths, then exit (no section runs)");
  po::variables_map vm;
  if (!parse_options("audit", "mlaudit audit --config audit.yaml --out DIR [--diff OLD/report.json]", desc, args, vm,
                     {"config"}))
    return 0;
  // Everything is validated before any work starts.
  const reports::Paper paper = reports::parse_paper(vm["paper"].as<std::string>());
  reports::AuditConfig config = reports::load_config(vm["config"].as<std::string>());
  bool quiet = global.quiet || vm.count("quiet");
  // The dry run: every value, gate, model, data header, import and output path, before
  // any section runs (the same check with and without --check).
  reports::CheckOptions check_options;
  if (vm.count("out")) check_options.out_dir = vm["out"].as<std::string>();
  if (vm.count("diff")) check_options.diff_path = vm["diff"].as<std::string>();
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
