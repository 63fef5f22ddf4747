#pragma once
// Generated documentation: the man page mlaudit(1) and the bash/zsh completion scripts are made
// from the option tables every command hands parse_options (the table --help prints), collected
// by running each command with a collector set (cli::set_options_collector), so they cannot
// drift from the options a command accepts. `mlaudit --version` is here too.
#include <string>
#include <vector>

namespace mlaudit::cli {

/// One option as a command declares it.
struct OptionDoc {
  std::string name;         ///< long name, without dashes ("model")
  std::string short_name;   ///< one letter, without the dash ("m"), or empty
  std::string description;  ///< the --help text
  std::string default_text; ///< the default --help shows ("pgd"), or empty
  /// flag (no value), file, dir (a path), choice (one of `choices`), number or text
  std::string kind;
  std::vector<std::string> choices;
  std::string value_name;   ///< the placeholder, when the kind's (FILE, DIR, N, VALUE) is not the best word
  bool repeatable = false;  ///< may be given more than once (a list option such as run --data)
  bool required = false;
  /// The value's placeholder in the man page: FILE, DIR, N, a|b, VALUE.
  std::string placeholder() const;
};

/// One command: its registry entry and the options its table declares.
struct CommandDoc {
  std::string name, summary, usage;
  std::vector<OptionDoc> options;
  std::vector<std::pair<std::string, std::string>> old_spellings;  ///< (old, current) option names
  std::string conventions;  ///< help_conventions()'s note, or empty
};

/// Every registered command's options, read through the options collector (nothing runs).
/// Throws std::logic_error naming a command that never reached parse_options.
std::vector<CommandDoc> command_docs();
/// The options given before the command name (main.cpp parses them by hand; print_usage lists them).
std::vector<OptionDoc> global_option_docs();

/// mlaudit(1) in roff (man(7) macros).
std::string man_page(const std::vector<CommandDoc>& commands);
/// A bash completion script (`complete -F _mlaudit mlaudit`).
std::string bash_completion(const std::vector<CommandDoc>& commands);
/// A zsh completion function (#compdef mlaudit), for a file named _mlaudit on $fpath.
std::string zsh_completion(const std::vector<CommandDoc>& commands);

/// The short git commit the binary was built from, read at build time ("unknown" outside git).
const char* build_commit();

/// `mlaudit --version`: version, commit, build type, compiler, CPU kernels compiled and chosen on
/// this CPU, CUDA, modules and commands; `json` gives the same as one JSON object.
std::string version_text(bool json);

}  // namespace mlaudit::cli
