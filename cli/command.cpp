#include "command.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::cli {
namespace {
std::map<std::string, CommandInfo>& registry() {
  static std::map<std::string, CommandInfo> r;
  return r;
}
}  // namespace

CommandRegistrar::CommandRegistrar(const char* name, const char* summary, CommandFn fn) {
  registry()[name] = CommandInfo{name, summary, std::move(fn)};
}

std::string error_text(const std::string& command, const InputError& e) {
  std::string text = e.what();
  const std::string module = e.module() + ": ";
  const bool known = !command.empty() && [&] {
    for (const auto& c : commands())
      if (c.name == command) return true;
    return false;
  }();
  if (known && e.module() != command && text.rfind(module, 0) == 0) {
    text = text.substr(module.size());
    if (text.rfind(command + ": ", 0) != 0) text = command + ": " + text;
  }
  return text;
}

std::vector<CommandInfo> commands() {
  std::vector<CommandInfo> out;
  for (auto& [k, v] : registry()) out.push_back(v);
  return out;
}

int run_command(const std::string& name, const std::vector<std::string>& args, const GlobalOptions& global) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::vector<std::string> names;
    for (auto& [k, v] : registry()) names.push_back(k);
    throw InputError("cli", fmt::format("unknown command '{}'{}", name, datasets::did_you_mean(name, names)));
  }
  // The audit passes a model's chosen output to its sections as --model-output NAME.
  GlobalOptions g = global;
  g.command = name;
  std::vector<std::string> rest;
  for (size_t k = 0; k < args.size(); ++k) {
    if (args[k] == "--model-output" && k + 1 < args.size()) g.model_output = args[++k];
    // --quiet works after the command name as well as before it (mlaudit attack --quiet ...)
    else if (args[k] == "--quiet" || args[k] == "-q") g.quiet = true;
    else rest.push_back(args[k]);
  }
  try {
    return it->second.fn(rest, g);
  } catch (const ParameterError& e) {
    // A library names its parameter ("eps must be >= 0"); here it is the command's flag (--eps).
    throw InputError(e.module(), flag_spelling(e.parameter()) + e.rest());
  }
}

const std::vector<OptionAlias>& option_aliases() {
  // One word per concept across commands (--data, --labels, --label-column, --features,
  // --out, --limit, --nsamples); the spellings they replaced stay accepted.
  static const std::vector<OptionAlias> aliases = {
      {"backdoor", "clean", "data"},
      {"explain", "samples", "nsamples"},
      {"explain", "feature-names", "features"},
      {"fairness", "label", "label-column"},
      {"privacy", "feature-list", "features"},
      {"run", "input", "data"},
      {"run", "output-dir", "out"},
  };
  return aliases;
}

const std::map<std::string, std::string>& help_conventions() {
  // Printed under --help: which published setting or peer tool each default follows, so a
  // user coming from that tool knows what is the same and what differs.
  static const std::map<std::string, std::string> notes = {
      {"attack",
       "eps is in input units, as in ART, Foolbox and AutoAttack (fractions such as 8/255 are accepted).\n"
       "PGD: 10 steps, step 2.5*eps/steps, uniform random start (Madry et al. 2018).\n"
       "APGD-CE/-DLR/-T, FAB/FAB-T, Square and autoattack: the autoattack package's 'standard' settings "
       "(APGD 100 iterations, 9 target classes; Square 5000 queries, p_init 0.8; Croce & Hein 2020).\n"
       "CW-L2: Foolbox/ART's 9 binary-search steps, learning rate 0.01, initial constant 1e-3, "
       "confidence 0 (Carlini & Wagner 2017), 1000 steps. DeepFool: 50 steps, overshoot 0.02, as Foolbox.\n"
       "Names are case-insensitive (PGD, APGD-CE)."},
      {"certify",
       "CERTIFY/PREDICT of Cohen et al. 2019 with the paper's N0 = 100, N = 100,000, alpha = 0.001; "
       "radii are in input units (L2), as in their code."},
      {"corrupt",
       "Corruption constants and severities 1-5 of CIFAR-10-C (Hendrycks & Dietterich 2019); JPEG as PIL's "
       "save/reload at their qualities (80, 65, 58, 50, 40)."},
      {"explain",
       "integrated-gradients: Captum's defaults (50 steps, Gauss-Legendre, zero baseline).\n"
       "smoothgrad: 50 draws, noise 15 % of each row's range (Smilkov et al. 2017); --stdevs gives the "
       "noise in input units as Captum's NoiseTunnel.\n"
       "deeplift: the Rescale rule (Shrikumar et al. 2017); --deeplift-captum reproduces Captum's hook order.\n"
       "kernel-shap: shap's KernelExplainer with nsamples 'auto' (2M + 2048).\n"
       "tree-shap: shap's TreeExplainer, exact (interventional against --background by default; "
       "tree-path-dependent with covers counted from --background); --method shap picks it on a tree ensemble.\n"
       "lime: the lime package's defaults (5000 samples tabular, 1000 image; kernel width 0.75 sqrt(F) "
       "or 0.25; Ridge alpha 1).\n"
       "permutation: sklearn.inspection.permutation_importance's 5 repeats. occlusion: Captum's baseline 0.\n"
       "Method names are case-insensitive."},
      {"fairness",
       "Metric names and definitions follow Fairlearn (demographic_parity_difference/_ratio, "
       "equalized_odds_difference); the four-fifths rule is the US EEOC's; intervals are percentile "
       "bootstrap intervals over 1000 resamples at 95 %."},
      {"privacy",
       "loss (Yeom et al. 2018), confidence and modified entropy (Song & Mittal 2021); offline LiRA "
       "(Carlini et al. 2022, Alg. 1) with a global variance below 64 reference models; label-only: the "
       "boundary distance of Choquette-Choo et al. 2021 (DeepFool, 50 steps)."},
      {"backdoor",
       "Neural Cleanse (Wang et al. 2019): anomaly index threshold 2 as the paper, 60 outer steps per class "
       "by default (the reference code runs up to 1000; raise --epochs to match it).\n"
       "STRIP (Gao et al. 2019): 100 overlays per input, threshold at 1 % false rejection."},
      {"verify",
       "VNN-LIB and the VNN-COMP result format (sat/unsat/timeout with a counterexample), as "
       "alpha-beta-CROWN and Marabou read and write them; 60 s per query."},
  };
  return notes;
}

namespace {

// "--old" / "--old=V" -> "--new" / "--new=V" for the command's old spellings; giving both
// spellings is refused (which one should win is not clear).
std::vector<std::string> apply_aliases(const std::string& command, const std::vector<std::string>& args) {
  std::vector<std::string> out = args;
  auto is_option = [](const std::string& a, const std::string& name) {
    return a == "--" + name || a.rfind("--" + name + "=", 0) == 0;
  };
  for (const auto& alias : option_aliases()) {
    if (command != alias.command) continue;
    bool old_seen = false, new_seen = false;
    for (const auto& a : args) {
      if (a == "--") break;
      old_seen |= is_option(a, alias.old_name);
      new_seen |= is_option(a, alias.name);
    }
    if (!old_seen) continue;
    if (new_seen)
      throw InputError("cli", fmt::format("{}: give --{} only (--{} is its old spelling)", command, alias.name, alias.old_name));
    for (auto& a : out) {
      if (a == "--") break;
      if (is_option(a, alias.old_name)) a = "--" + std::string(alias.name) + a.substr(2 + std::string(alias.old_name).size());
    }
  }
  return out;
}

}  // namespace

namespace {
OptionsCollector& options_collector() {
  static OptionsCollector collector;
  return collector;
}
}  // namespace

void set_options_collector(OptionsCollector collector) { options_collector() = std::move(collector); }

bool parse_options(const std::string& command, const std::string& usage, po::options_description& desc,
                   const std::vector<std::string>& raw_args, po::variables_map& vm,
                   const std::vector<std::string>& required, const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help");
  // listed for --help; run_command takes --quiet off the arguments into GlobalOptions::quiet
  if (!desc.find_nothrow("quiet", false)) desc.add_options()("quiet,q", "no console output but errors (also before the command)");
  // The man page and completions read the same table --help prints (docgen.cpp).
  if (options_collector()) {
    options_collector()(command, usage, desc, required);
    return false;
  }
  const std::vector<std::string> args = apply_aliases(command, raw_args);
  try {
    auto parser = po::command_line_parser(args).options(desc);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw InputError("cli", fmt::format("{}: {} (see 'mlaudit {} --help')", command, e.what(), command));
  }
  if (vm.count("help")) {
    std::cout << "Usage: " << usage << "\n\n" << desc << "\n";
    std::string old;
    for (const auto& alias : option_aliases())
      if (command == alias.command) old += fmt::format("  --{} is the old spelling of --{}\n", alias.old_name, alias.name);
    if (!old.empty()) std::cout << "Old spellings, still accepted:\n" << old << "\n";
    if (auto it = help_conventions().find(command); it != help_conventions().end()) {
      // each note line wrapped at 80 columns: "  " first, "    " on continuation lines
      std::cout << "Defaults and the conventions they follow:\n";
      for (const auto& line : split_list(it->second, '\n')) {
        std::string row = "  ";
        for (const auto& word : split_list(line, ' ')) {
          if (row.size() + 1 + word.size() > 80 && row.find_first_not_of(' ') != std::string::npos) {
            std::cout << row << "\n";
            row = "    ";
          }
          row += (row.back() == ' ' ? "" : " ") + word;
        }
        std::cout << row << "\n";
      }
      std::cout << "\n";
    }
    return false;
  }
  for (const auto& r : required) {
    if (!vm.count(r))
      throw InputError("cli", fmt::format("{}: the option '--{}' is required (see 'mlaudit {} --help')", command, r,
                                          command));
  }
  return true;
}


std::string to_lower(std::string text) {
  for (auto& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string flag_spelling(const std::string& parameter) {
  std::string flag = "--" + parameter;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::vector<std::string> parse_name_list(const std::string& option, const std::string& spec) {
  const bool explicit_file = !spec.empty() && spec[0] == '@';
  const std::string path = explicit_file ? spec.substr(1) : spec;
  std::error_code ec;
  if (explicit_file || (std::filesystem::is_regular_file(path, ec) && spec.find(',') == std::string::npos)) {
    std::string text;
    try {
      text = datasets::read_file(path, 16 << 20);
      datasets::require_utf8(text, path, "cli");
    } catch (const InputError& e) {
      throw InputError("cli", fmt::format("--{}: {}", option, e.what()));
    }
    std::vector<std::string> names;
    for (auto line : split_list(text, '\n')) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    if (names.empty()) throw InputError("cli", fmt::format("--{}: {} lists no names", option, path));
    return names;
  }
  return split_list(spec);
}

std::vector<double> parse_double_list(const std::string& option, const std::string& text) {
  return datasets::parse_number_list("cli", "--" + option, text);
}

}  // namespace mlaudit::cli

namespace mlaudit::cli {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  double pos = q * double(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

std::unique_ptr<engine::Session> load_model(const std::string& path, const GlobalOptions& global) {
  // Commands whose losses, scores or decisions are defined on logits: a probability output is
  // audited through its logarithm (softmax(log p) = p), so nothing is squashed twice.
  static const std::vector<std::string> logit_commands = {"attack", "explain", "privacy", "backdoor", "fairness"};
  const bool wants_logits =
      std::find(logit_commands.begin(), logit_commands.end(), global.command) != logit_commands.end();
  engine::SessionOptions opts;
  opts.threads = global.threads;
  opts.device = global.device;
  opts.output = global.model_output;
  opts.logits_from_probabilities = wants_logits;
  // Every classification command reads classes off the output's columns: a binary classifier's
  // single logit or probability becomes two classes (class 1 = the positive one).
  static const std::vector<std::string> class_commands = {"attack",  "certify",  "corrupt", "explain",  "privacy",
                                                          "backdoor", "fairness", "verify",  "evaluate", "profile"};
  opts.binary_two_classes =
      std::find(class_commands.begin(), class_commands.end(), global.command) != class_commands.end();
  auto session = engine::Session::load(path, opts);
  if (global.device == engine::Device::Auto && !global.quiet)
    std::cerr << "mlaudit: note: --device auto: running on " << session->backend_name() << "\n";
  if (!session->binary_of_output().empty() && !global.quiet)
    std::cerr << fmt::format("mlaudit: note: {}: output '{}' has one column; {} audits it as a binary classifier with "
                             "two classes (class 0 = negative, class 1 = positive: {})\n",
                             path, session->binary_of_output(), global.command,
                             session->log_of_output().empty() ? "logits [0, z]" : "log-probabilities [log(1-p), log p]");
  if (wants_logits && !global.quiet) {
    std::string activation = session->output_activation();
    if (!session->binary_of_output().empty()) {
    } else if (!session->log_of_output().empty())
      std::cerr << fmt::format("mlaudit: note: {}: output '{}' is a probability vector; {} audits its logarithm as "
                               "logits (softmax(log p) = p); choose a logit output with --output NAME if the model "
                               "has one\n",
                               path, session->log_of_output(), global.command);
    else if (!activation.empty() && activation != "LogSoftmax")
      std::cerr << fmt::format("mlaudit: warning: {}: output '{}' already goes through {}; {} assumes logits "
                               "(losses on probabilities have squashed gradients): choose a logit output with "
                               "--output NAME or export the model without its final activation\n",
                               path, session->audited_output().name, activation, global.command);
  }
  return session;
}

int64_t model_classes(const std::string& command, const engine::Session& model, const engine::Tensor& x) {
  const engine::Shape& declared = model.audited_output().shape;
  if (declared.size() == 2 && declared[1] > 0) return declared[1];
  if (x.rank() < 1 || x.dim(0) == 0) return 0;
  // Run the smallest batch the model accepts (a fixed batch axis needs its own size).
  int64_t rows = 1;
  if (model.inputs().size() == 1 && !model.inputs()[0].shape.empty() && model.inputs()[0].shape[0] > 0 &&
      model.inputs()[0].shape[0] <= x.dim(0))
    rows = model.inputs()[0].shape[0];
  const engine::Tensor out = model.forward(x.slice_rows(0, rows));
  if (out.rank() != 2)
    throw InputError(command, fmt::format("{}: output '{}' has shape {}; {} needs class scores [N, C] (choose another "
                                          "output with --output NAME)",
                                          model.graph().source, model.audited_output().name,
                                          engine::shape_str(out.shape()), command));
  return out.dim(1);
}

LabeledData read_labeled_data(const std::string& command, const std::string& data_path, const std::string& labels_path,
                              const engine::Session& model, int64_t limit, const Domain* domain) {
  LabeledData d;
  d.x = datasets::read_npy_float(data_path);
  d.y = datasets::read_npy_labels(labels_path).to_int64s();
  if (d.x.rank() < 2)
    throw InputError(command, fmt::format("--data {}: must be [N, ...] (one sample per row), got {}", data_path,
                                          engine::shape_str(d.x.shape())));
  datasets::check_label_count(command + ": --labels " + labels_path, int64_t(d.y.size()), d.x.dim(0), data_path);
  if (limit < 0) throw InputError(command, "--limit must be >= 0");
  if (limit > 0 && limit < d.x.dim(0)) {
    d.x = d.x.slice_rows(0, limit);
    d.y.resize(size_t(limit));
  }
  const std::string where = command + ": --data " + data_path;
  // Rows must have the model's per-sample shape (its static dims), named before any work runs.
  if (model.inputs().size() == 1 && !model.inputs()[0].shape.empty()) {
    const engine::Shape& want = model.inputs()[0].shape;
    bool fits = want.size() == d.x.shape().size();
    for (size_t k = 1; fits && k < want.size(); ++k) fits = want[k] < 0 || want[k] == d.x.shape()[k];
    if (!fits) {
      const engine::Shape row(d.x.shape().begin() + 1, d.x.shape().end()), want_row(want.begin() + 1, want.end());
      throw InputError(command, fmt::format("--data {}: rows are {} but model input '{}' takes {} per row (-1 = any; "
                                            "the model's input is {}): reshape the data to [N{}{}]",
                                            data_path, engine::shape_str(row), model.inputs()[0].name,
                                            engine::shape_str(want_row), engine::shape_str(want),
                                            want_row.empty() ? "" : ",", [&] {
                                              std::string t;
                                              for (auto v : want_row) t += (t.empty() ? "" : ",") + (v < 0 ? std::string("?") : std::to_string(v));
                                              return t;
                                            }()));
    }
  }
  if (domain) datasets::check_in_domain(where, d.x, domain->lo, domain->hi);
  else datasets::check_finite(where, d.x);
  d.classes = model_classes(command, model, d.x);
  datasets::check_labels(command + ": --labels " + labels_path, d.y, d.classes);
  return d;
}

}  // namespace mlaudit::cli
