#include "command.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

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

std::vector<CommandInfo> commands() {
  std::vector<CommandInfo> out;
  for (auto& [k, v] : registry()) out.push_back(v);
  return out;
}

int run_command(const std::string& name, const std::vector<std::string>& args, const GlobalOptions& global) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string names;
    for (auto& [k, v] : registry()) names += (names.empty() ? "" : ", ") + k;
    throw InputError("cli", fmt::format("unknown command '{}' (commands: {})", name, names));
  }
  // The audit passes a model's chosen output to its sections as --model-output NAME.
  GlobalOptions g = global;
  g.command = name;
  std::vector<std::string> rest;
  for (size_t k = 0; k < args.size(); ++k) {
    if (args[k] == "--model-output" && k + 1 < args.size()) g.model_output = args[++k];
    else rest.push_back(args[k]);
  }
  return it->second.fn(rest, g);
}

bool parse_options(const std::string& command, const std::string& usage, po::options_description& desc,
                   const std::vector<std::string>& args, po::variables_map& vm,
                   const std::vector<std::string>& required, const po::positional_options_description* positional) {
  desc.add_options()("help,h", "show this help");
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
    return false;
  }
  for (const auto& r : required) {
    if (!vm.count(r))
      throw InputError("cli", fmt::format("{}: the option '--{}' is required (see 'mlaudit {} --help')", command, r,
                                          command));
  }
  return true;
}

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, sep)) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::vector<double> parse_double_list(const std::string& option, const std::string& text) {
  std::vector<double> out;
  for (const auto& item : split_list(text)) {
    size_t pos = 0;
    double v = 0;
    try {
      v = std::stod(item, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos != item.size())
      throw InputError("cli", fmt::format("--{}: '{}' is not a number", option, item));
    out.push_back(v);
  }
  if (out.empty()) throw InputError("cli", fmt::format("--{}: expected a comma-separated list of numbers", option));
  return out;
}

}  // namespace mlaudit::cli

namespace mlaudit::cli {

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
  auto session = engine::Session::load(path, opts);
  if (global.device == engine::Device::Auto && !global.quiet)
    std::cerr << "mlaudit: note: --device auto: running on " << session->backend_name() << "\n";
  if (wants_logits && !global.quiet) {
    std::string activation = session->output_activation();
    if (!session->log_of_output().empty())
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

}  // namespace mlaudit::cli
