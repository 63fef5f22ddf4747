// The man page, the bash and zsh completions and --version (docgen.h).
#include "docgen.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "command.h"
#include "mlaudit/engine/device.h"
#include "version.h"

// The engine's run-time kernel choices (engine/src/vector_math.cpp, dense_chain_avx512.cpp):
// internal to the engine library, which the executable links statically.
namespace mlaudit::engine::detail {
bool vector_math_avx2_compiled();
bool vector_math_uses_avx2();
bool dense_chain_have_16();
}  // namespace mlaudit::engine::detail

namespace mlaudit::cli {

std::string OptionDoc::placeholder() const {
  if (kind == "file") return "FILE";
  if (kind == "dir") return "DIR";
  if (kind == "number") return "N";
  if (!value_name.empty()) return value_name;
  if (kind == "choice") {
    std::string s;
    for (const auto& c : choices) s += (s.empty() ? "" : "|") + c;
    return s.size() <= 24 ? s : "NAME";  // a long list is in the description
  }
  return kind == "flag" ? "" : "VALUE";
}

namespace {

bool contains(const std::string& text, const std::string& word) { return text.find(word) != std::string::npos; }

// What a string-valued option holds, read off its --help text: a list of values ("a|b|c",
// "rule: a | b | c", "a, b or c") makes a choice (a file when FILE is one of them); a folder or a
// file is named as such ("folder", FILE, a .npy/.onnx/.csv/... path, JSON, YAML, ONNX, VNN-LIB)
// before anything that says the value is a name, column, list or regex; the rest is text.
void classify_text(OptionDoc& o) {
  const std::string d = o.description;
  static const std::regex bars(R"((?:^|: )([a-z0-9][a-z0-9._-]*(?: ?\| ?[a-z0-9][a-z0-9._-]*)+)(?=$|[ ,;:)]))");
  static const std::regex words_or(R"((?:^|: )((?:[a-z0-9][a-z0-9_-]*, )*[a-z0-9][a-z0-9_-]* or [a-z0-9][a-z0-9_-]*)(?: \(.*\))?$)");
  static const std::regex file_word(R"(FILE|\bfile\b)");
  std::smatch m;
  // a list inside parentheses gives examples ("(built-in data sets: income | credit)"), not the values
  auto outside_parens = [&](const std::smatch& found) {
    const std::string before = d.substr(0, size_t(found.position(0)));
    return std::count(before.begin(), before.end(), '(') <= std::count(before.begin(), before.end(), ')');
  };
  if ((std::regex_search(d, m, bars) && outside_parens(m)) || (std::regex_search(d, m, words_or) && outside_parens(m))) {
    std::string list = m.str(1);
    for (const char* sep : {" or ", ", ", " | ", "| ", " |"})
      for (auto at = list.find(sep); at != std::string::npos; at = list.find(sep)) list.replace(at, std::string(sep).size(), "|");
    o.kind = std::regex_search(d, file_word) ? "file" : "choice";
    o.choices = split_list(list, '|');
    return;
  }
  if ((o.name.size() > 4 && o.name.compare(o.name.size() - 4, 4, "-dir") == 0) || contains(d, "folder")) {
    o.kind = "dir";
    return;
  }
  if (std::regex_search(d, file_word)) {
    o.kind = "file";
    return;
  }
  static const std::regex path(R"(\.(npy|onnx|csv|json|yaml|yml|vnnlib|txt)\b|\b(JSON|YAML|ONNX|VNN-LIB)\b)");
  static const std::regex not_path(R"(\b(columns?|names?|regex|comma)\b)");
  std::smatch p, n;
  const bool is_path = std::regex_search(d, p, path);
  const bool is_name = std::regex_search(d, n, not_path);
  o.kind = is_path && (!is_name || p.position(0) < n.position(0)) ? "file" : "text";
}

OptionDoc option_doc(const po::option_description& od) {
  OptionDoc o;
  o.name = od.long_name();
  // format_name(): "-m [ --model ]" with a short name, "--model" without
  const std::string shown = od.format_name();
  if (shown.size() >= 2 && shown[0] == '-' && shown[1] != '-') o.short_name = shown.substr(1, shown.find(' ') - 1);
  o.description = od.description();
  const auto sem = od.semantic();
  // "arg (=pgd)": the default as --help prints it
  const std::string value_text = sem->name();
  if (auto at = value_text.find("(="); at != std::string::npos && value_text.back() == ')')
    o.default_text = value_text.substr(at + 2, value_text.size() - at - 3);
  if (sem->max_tokens() == 0) {
    o.kind = "flag";
  } else if (dynamic_cast<const po::typed_value<std::string>*>(sem.get())) {
    classify_text(o);
  } else if (dynamic_cast<const po::typed_value<std::vector<std::string>>*>(sem.get())) {
    classify_text(o);
    o.repeatable = true;
  } else {
    o.kind = "number";  // int, int64, uint64, float, double
    if (dynamic_cast<const po::typed_value<double>*>(sem.get()) || dynamic_cast<const po::typed_value<float>*>(sem.get()))
      o.value_name = "X";
  }
  if (sem->is_composing() || sem->max_tokens() > 1) o.repeatable = true;
  return o;
}

// ---- roff

// Text for a filled roff line: backslashes escaped, no control character at a line start.
std::string roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\e";
    else if (c == '|' || c == '/') out += std::string(1, c) + "\\:";  // a break point in long lists and paths
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}
// An option or command name: hyphens as \- (a real minus, so copied text works in a shell).
std::string roff_name(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '-' ? std::string("\\-") : std::string(1, c);
  return out;
}

std::string roff_option(const OptionDoc& o) {
  std::string head;
  if (!o.short_name.empty()) head = fmt::format("\\fB\\-{}\\fR, ", o.short_name);
  head += fmt::format("\\fB\\-\\-{}\\fR", roff_name(o.name));
  if (o.kind != "flag") head += fmt::format(" \\fI{}\\fR", roff_name(o.placeholder()));
  std::string body = roff(o.description);
  if (!body.empty() && body.back() != '.') body += ".";
  if (!o.default_text.empty()) body += fmt::format(" Default: {}.", roff(o.default_text));
  if (o.required) body += " Required.";
  if (o.repeatable) body += " May be given more than once.";
  return fmt::format(".TP\n{}\n{}\n", head, body);
}

std::string upper(std::string s) {
  for (auto& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// ---- shell quoting

std::string words(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : " ") + i;
  return s;
}

std::vector<std::string> option_words(const std::vector<OptionDoc>& options) {
  std::vector<std::string> out;
  for (const auto& o : options) {
    out.push_back("--" + o.name);
    if (!o.short_name.empty()) out.push_back("-" + o.short_name);
  }
  return out;
}

// The case pattern of an option's spellings: "--model|-m".
std::string bash_pattern(const OptionDoc& o) {
  return "--" + o.name + (o.short_name.empty() ? "" : "|-" + o.short_name);
}

// A zsh _arguments description: one short clause, brackets and colons escaped, inside '...'.
std::string zsh_description(const std::string& text, bool in_brackets = true) {
  std::string d = text;
  if (auto cut = d.find_first_of(";\n"); cut != std::string::npos) d = d.substr(0, cut);
  if (d.size() > 70) {
    auto space = d.rfind(' ', 67);
    d = d.substr(0, space == std::string::npos ? 67 : space) + "...";
  }
  std::string out;
  for (char c : d) {
    if (in_brackets && (c == '[' || c == ']' || c == ':' || c == '\\')) out += '\\';
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out;
}

bool declares(const CommandDoc& c, const std::string& name) {
  return std::any_of(c.options.begin(), c.options.end(), [&](const OptionDoc& o) { return o.name == name; });
}

std::string zsh_action(const OptionDoc& o) {
  if (o.kind == "file") return ":file:_files";
  if (o.kind == "dir") return ":folder:_files -/";
  if (o.kind == "choice") return fmt::format(":{}:({})", o.name, words(o.choices));
  if (o.kind == "text") return ":value:_default";  // free text: files, as the shell would
  return ":number: ";
}

std::string zsh_spec(const OptionDoc& o) {
  const std::string desc = zsh_description(o.description);
  const std::string action = o.kind == "flag" ? "" : zsh_action(o);
  const std::string star = o.repeatable ? "*" : "";
  const std::string long_spec = "--" + o.name + (o.kind == "flag" ? "" : "=");
  if (o.short_name.empty()) return fmt::format("'{}{}[{}]{}'", star, long_spec, desc, action);
  const std::string short_spec = "-" + o.short_name + (o.kind == "flag" ? "" : "+");
  const std::string exclusive = o.repeatable ? "*" : fmt::format("(-{} --{})", o.short_name, o.name);
  return fmt::format("'{}'{{{},{}}}'[{}]{}'", exclusive, short_spec, long_spec, desc, action);
}

}  // namespace

std::vector<CommandDoc> command_docs() {
  std::vector<CommandDoc> out;
  for (const auto& c : commands()) {
    CommandDoc doc;
    doc.name = c.name;
    doc.summary = c.summary;
    bool seen = false;
    set_options_collector([&](const std::string& command, const std::string& usage, const po::options_description& desc,
                              const std::vector<std::string>& required) {
      if (seen) return;  // the command's own table, not one a section it runs declares
      seen = true;
      doc.usage = usage;
      for (const auto& od : desc.options()) {
        OptionDoc o = option_doc(*od);
        o.required = std::find(required.begin(), required.end(), o.name) != required.end();
        doc.options.push_back(std::move(o));
      }
    });
    GlobalOptions global;
    global.quiet = true;
    try {
      run_command(c.name, {"--help"}, global);
    } catch (...) {
      set_options_collector({});
      throw;
    }
    set_options_collector({});
    if (!seen) throw std::logic_error(fmt::format("command '{}' did not declare its options through parse_options", c.name));
    for (const auto& a : option_aliases())
      if (c.name == a.command) doc.old_spellings.emplace_back(a.old_name, a.name);
    if (auto it = help_conventions().find(c.name); it != help_conventions().end()) doc.conventions = it->second;
    out.push_back(std::move(doc));
  }
  return out;
}

std::vector<OptionDoc> global_option_docs() {
  // As main.cpp parses them and print_usage lists them.
  auto opt = [](const char* name, const char* short_name, const char* kind, const char* description,
                const char* default_text = "", std::vector<std::string> choices = {}, const char* value_name = "") {
    OptionDoc d;
    d.name = name;
    d.short_name = short_name;
    d.kind = kind;
    d.description = description;
    d.default_text = default_text;
    d.choices = std::move(choices);
    d.value_name = value_name;
    return d;
  };
  return {
      opt("threads", "", "number", "CPU threads (0: all cores). Accepted after the command too", "0"),
      opt("device", "", "choice",
          "where the model runs: cpu, cuda (an error without a GPU or a CUDA build) or auto "
          "(cuda when available, else cpu, with a note). Accepted after the command too",
          "cpu", {"cpu", "cuda", "auto"}),
      opt("output", "", "text",
          "the model output to audit (default: a classifier's probabilities output, else the first "
          "float output); also --model-output NAME. Accepted after the command too",
          "", {}, "NAME"),
      opt("quiet", "q", "flag", "no console output but errors. Accepted after the command too"),
      opt("mpi", "", "flag",
          "under mpirun: rank 0 hands chunks of the command's items (what --shard c/M runs) to the other ranks as "
          "they become idle and writes the one merged report (attack, certify, corrupt, explain, privacy, verify --data, verify "
          "--benchmark; builds with MPI only)"),
      opt("mpi-chunks", "", "number",
          "with --mpi: how many chunks (default: one per benchmark instance, else 8 per worker)", "", {}, "M"),
      opt("version", "V", "flag",
          "print the version, git commit, build type, compiler, CPU kernels, CUDA and modules of this "
          "build, then exit (with --json: as one JSON object)"),
      opt("help", "h", "flag", "list the commands, then exit"),
  };
}

std::string man_page(const std::vector<CommandDoc>& commands) {
  std::ostringstream m;
  m << "'\\\" t\n"
    << ".\\\" mlaudit(1), generated by 'mlaudit --help-man' from the option tables --help prints. Do not edit.\n"
    << fmt::format(".TH MLAUDIT 1 \"\" \"mlaudit {}\" \"User Commands\"\n", MLAUDIT_VERSION) << ".nh\n.ad l\n"
    << ".SH NAME\nmlaudit \\- audit a trained ONNX model before release\n"
    << ".SH SYNOPSIS\n"
    << ".B mlaudit\n[\\fB\\-\\-threads\\fR \\fIN\\fR] [\\fB\\-\\-device\\fR \\fBcpu\\fR|\\fBcuda\\fR|\\fBauto\\fR] "
       "[\\fB\\-\\-output\\fR \\fINAME\\fR] [\\fB\\-\\-quiet\\fR] \\fIcommand\\fR [\\fIoptions\\fR]\n.br\n"
    << ".B mlaudit\n\\fIcommand\\fR \\fB\\-\\-help\\fR\n.br\n"
    << ".B mlaudit\n\\fB\\-\\-version\\fR [\\fB\\-\\-json\\fR]\n.br\n"
    << ".B mlaudit\n\\fBcompletion\\fR \\fBbash\\fR|\\fBzsh\\fR\n.br\n"
    << ".B mlaudit\n\\fB\\-\\-help\\-man\\fR\n"
    << ".SH DESCRIPTION\n"
    << "mlaudit audits a trained model exported to ONNX before release: robustness (adversarial attacks, "
       "randomized smoothing, common corruptions), fairness, explanations, formal verification, privacy and "
       "backdoor scans, and a policy\\-driven audit that writes HTML, Markdown, JSON, JUnit and PDF reports "
       "with pass/fail gates. Each command reads .npy or .csv data and writes a JSON report.\n"
    << ".PP\nThe commands and options below are generated from the same tables as "
       "\\fBmlaudit\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR.\n"
    << ".SH GLOBAL OPTIONS\nGiven before the command name (\\-\\-threads, \\-\\-device, \\-\\-output and \\-\\-quiet "
       "also after it).\n";
  for (const auto& o : global_option_docs()) m << roff_option(o);
  m << ".SH COMMANDS\n";
  for (const auto& c : commands) m << fmt::format(".TP\n.B {}\n{}\n", roff_name(c.name), roff(c.summary));
  m << ".TP\n.B completion bash\\fR|\\fBzsh\n"
       "print the bash or zsh completion script (installed in share/bash\\-completion/completions/mlaudit and "
       "share/zsh/vendor\\-completions/_mlaudit).\n";
  for (const auto& c : commands) {
    m << fmt::format(".SH \"MLAUDIT {}\"\n", roff_name(upper(c.name))) << roff(c.summary) << ".\n";
    m << ".PP\n.B Usage:\n";
    for (const auto& line : split_list(c.usage, '\n')) m << ".br\n" << roff(line) << "\n";
    m << ".PP\n.B Options:\n";
    for (const auto& o : c.options) m << roff_option(o);
    if (!c.old_spellings.empty()) {
      m << ".PP\n.B Old spellings, still accepted:\n";
      for (const auto& [old_name, name] : c.old_spellings)
        m << fmt::format(".br\n\\fB\\-\\-{}\\fR is the old spelling of \\fB\\-\\-{}\\fR\n", roff_name(old_name),
                         roff_name(name));
    }
    if (!c.conventions.empty()) {
      m << ".PP\n.B Defaults and the conventions they follow:\n";
      for (const auto& line : split_list(c.conventions, '\n')) m << ".PP\n" << roff(line) << "\n";
    }
  }
  m << ".SH EXIT STATUS\n"
    << ".TP\n.B 0\nsuccess (and every gate passed).\n"
    << ".TP\n.B 1\nan audit gate failed (\\fBaudit\\fR), or a scan flagged something it was asked to fail on "
       "(\\fBbackdoor \\-\\-fail\\-on\\-flag\\fR).\n"
    << ".TP\n.B 2\nusage or input error: an unknown or malformed option, a missing or unreadable file, data the "
       "model cannot take; the one\\-line message names the command, option or file.\n"
    << ".TP\n.B 3\ninternal error (a bug: please report it with the message), or out of memory.\n"
    << ".TP\n.B 130\ninterrupted (Ctrl\\-C).\n";
  m << ".SH ENVIRONMENT\n"
    << ".TP\n.B MLAUDIT_PROFILE\n1: time per op type of every model run, printed on stderr at exit; "
       "shapes: one row per op type and input shapes.\n"
    << ".TP\n.B MLAUDIT_PROGRESS_DELAY\nseconds before the first progress line on stderr (default 1; 0 shows "
       "the progress of short runs too).\n";
  m << ".SH FILES\n"
    << ".TP\n.I audit.yaml\nthe audit configuration read by \\fBmlaudit audit \\-\\-config\\fR; "
       "\\fBmlaudit init\\fR writes a commented starter.\n"
    << ".TP\n.I DIR/report.json, report.html, report.md, junit.xml, report.pdf\nwritten by "
       "\\fBmlaudit audit \\-\\-out\\fR \\fIDIR\\fR; \\fBmlaudit report\\fR re\\-renders report.json.\n"
    << ".TP\n.I share/doc/mlaudit/\nREADME.md and the guides (docs/*.md) under the installation prefix "
       "(/usr for the Debian package).\n"
    << ".TP\n.I share/bash\\-completion/completions/mlaudit, share/zsh/vendor\\-completions/_mlaudit\n"
       "shell completion, generated like this page.\n";
  m << ".SH SEE ALSO\n"
    << "\\fBmlaudit\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR; the guides in share/doc/mlaudit: docs/getting\\-started.md "
       "(a model and CSV to an audit report), docs/audit.md (the audit YAML, gates, exit codes), "
       "docs/install.md (packages, completion, this page).\n";
  return m.str();
}

std::string bash_completion(const std::vector<CommandDoc>& commands) {
  std::vector<std::string> names;
  for (const auto& c : commands) names.push_back(c.name);
  names.push_back("completion");
  const auto globals = global_option_docs();
  std::ostringstream b;
  b << "# bash completion for mlaudit, generated by 'mlaudit completion bash' from the option tables --help prints.\n"
    << "# Install as share/bash-completion/completions/mlaudit, or: source <(mlaudit completion bash)\n"
    << "_mlaudit_files() { local IFS=$'\\n'; compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$1\")); }\n"
    << "_mlaudit_dirs() { local IFS=$'\\n'; compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- \"$1\")); }\n"
    << "_mlaudit() {\n"
    << "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cword=$COMP_CWORD\n"
    << "  # --opt=VALUE: bash splits at '=' (COMP_WORDBREAKS)\n"
    << "  if [[ $cur == = ]]; then prev=${COMP_WORDS[COMP_CWORD-1]}; cur=\"\";\n"
    << "  elif [[ $prev == = && $COMP_CWORD -ge 2 ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
    << "  COMPREPLY=()\n"
    << "  local cmd=\"\" i\n"
    << "  for ((i = 1; i < cword; i++)); do\n"
    << "    case ${COMP_WORDS[i]} in\n"
    << "      --threads|--device|--output|--model-output|--mpi-chunks)\n"
    << "        if [[ ${COMP_WORDS[i+1]} == = ]]; then ((i += 2)); else ((i++)); fi ;;\n"
    << "      -*|=) ;;\n"
    << "      *) cmd=${COMP_WORDS[i]}; break ;;\n"
    << "    esac\n"
    << "  done\n"
    << "  if [[ -z $cmd ]]; then\n"
    << "    case $prev in\n"
    << "      --device) COMPREPLY=($(compgen -W \"cpu cuda auto\" -- \"$cur\")); return ;;\n"
    << "      --threads|--output|--model-output|--mpi-chunks) return ;;\n"
    << "    esac\n"
    << "    if [[ $cur == -* ]]; then\n"
    << "      COMPREPLY=($(compgen -W \"" << words(option_words(globals)) << " --model-output\" -- \"$cur\"))\n"
    << "    else\n"
    << "      COMPREPLY=($(compgen -W \"" << words(names) << "\" -- \"$cur\"))\n"
    << "    fi\n"
    << "    return\n"
    << "  fi\n"
    << "  local opts=\"\"\n"
    << "  case $cmd in\n";
  for (const auto& c : commands) {
    b << "    " << c.name << ")\n      case $prev in\n";
    std::map<std::string, std::vector<std::string>> by_action;  // action -> option patterns
    for (const auto& o : c.options) {
      if (o.kind == "flag") continue;
      std::string action;
      if (o.kind == "file") action = "_mlaudit_files \"$cur\"; return ;;";
      else if (o.kind == "dir") action = "_mlaudit_dirs \"$cur\"; return ;;";
      else if (o.kind == "choice")
        action = fmt::format("COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;", words(o.choices));
      else if (o.kind == "text") action = "compopt -o default 2>/dev/null; return ;;";  // free text: files, as readline would
      else action = "return ;;";  // a number: nothing to offer
      by_action[action].push_back(bash_pattern(o));
    }
    for (const auto& [action, patterns] : by_action) {
      std::string p;
      for (const auto& x : patterns) p += (p.empty() ? "" : "|") + x;
      b << "        " << p << ") " << action << "\n";
    }
    // the global options accepted after the command name, unless the command has its own
    std::string extra;
    if (!declares(c, "threads")) {
      b << "        --threads) return ;;\n";
      extra += " --threads";
    }
    if (!declares(c, "device")) {
      b << "        --device) COMPREPLY=($(compgen -W \"cpu cuda auto\" -- \"$cur\")); return ;;\n";
      extra += " --device";
    }
    b << "      esac\n"
      << "      opts=\"" << words(option_words(c.options)) << extra << "\" ;;\n";
  }
  b << "    completion) [[ $prev == completion ]] && COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")); return ;;\n"
    << "    *) return ;;\n"
    << "  esac\n"
    << "  COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
    << "}\n"
    << "complete -F _mlaudit mlaudit\n";
  return b.str();
}

std::string zsh_completion(const std::vector<CommandDoc>& commands) {
  std::ostringstream z;
  z << "#compdef mlaudit\n"
    << "# zsh completion for mlaudit, generated by 'mlaudit completion zsh' from the option tables --help prints.\n"
    << "# Install as _mlaudit on $fpath (share/zsh/vendor-completions/_mlaudit).\n\n"
    << "_mlaudit() {\n"
    << "  local curcontext=\"$curcontext\" state line ret=1\n"
    << "  typeset -A opt_args\n"
    << "  local -a commands\n"
    << "  commands=(\n";
  for (const auto& c : commands) z << "    '" << c.name << ":" << zsh_description(c.summary, false) << "'\n";
  z << "    'completion:print the bash or zsh completion script'\n"
    << "  )\n"
    << "  _arguments -C \\\n";
  for (const auto& o : global_option_docs()) {
    if (o.name == "version" || o.name == "help") {
      z << "    '(- *)'{-" << o.short_name << ",--" << o.name << "}'[" << zsh_description(o.description) << "]' \\\n";
      continue;
    }
    if (o.name == "output") {
      z << "    '(--output --model-output)'{--output=,--model-output=}'[" << zsh_description(o.description)
        << "]:output name: ' \\\n";
      continue;
    }
    z << "    " << zsh_spec(o) << " \\\n";
  }
  z << "    '--help-man[print the man page (roff)]' \\\n"
    << "    '1:command:->command' \\\n"
    << "    '*::argument:->args' && ret=0\n"
    << "  case $state in\n"
    << "    command) _describe -t commands 'mlaudit command' commands && ret=0 ;;\n"
    << "    args)\n"
    << "      case $words[1] in\n";
  for (const auto& c : commands) {
    z << "        " << c.name << ")\n          _arguments -s -S \\\n";
    for (const auto& o : c.options) z << "            " << zsh_spec(o) << " \\\n";
    if (!declares(c, "threads")) z << "            '--threads=[CPU threads]:number: ' \\\n";
    if (!declares(c, "device")) z << "            '--device=[where the model runs]:device:(cpu cuda auto)' \\\n";
    z << "            && ret=0 ;;\n";
  }
  z << "        completion) _arguments '1:shell:(bash zsh)' && ret=0 ;;\n"
    << "      esac ;;\n"
    << "  esac\n"
    << "  return ret\n"
    << "}\n\n"
    << "_mlaudit \"$@\"\n";
  return z.str();
}

// ---- --version

namespace {

std::string compiled_baseline() {
#if defined(__x86_64__)
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  return "x86-64-v4";
#elif defined(__AVX2__) && defined(__FMA__) && defined(__BMI2__)
  return "x86-64-v3";
#elif defined(__SSE4_2__) && defined(__POPCNT__)
  return "x86-64-v2";
#else
  return "x86-64";
#endif
#else
  return "non-x86";
#endif
}

std::vector<std::string> compiled_isa() {
  std::vector<std::string> isa;
#ifdef __SSE4_2__
  isa.push_back("sse4.2");
#endif
#ifdef __AVX__
  isa.push_back("avx");
#endif
#ifdef __AVX2__
  isa.push_back("avx2");
#endif
#ifdef __FMA__
  isa.push_back("fma");
#endif
#ifdef __AVX512F__
  isa.push_back("avx512f");
#endif
  return isa;
}

// The dense-chain kernels built (dense_chain_avx2.cpp always; dense_chain_avx512.cpp under GCC on
// x86-64, the same condition that file tests) and the one this CPU runs.
bool dense_chain_16_compiled() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  return true;
#else
  return false;
#endif
}

bool mpi_compiled() {
#ifdef MLAUDIT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::vector<std::string> modules() {
  std::vector<std::string> m = {"engine", "datasets"};
#ifdef MLAUDIT_HAVE_robustness
  m.push_back("robustness");
#endif
#ifdef MLAUDIT_HAVE_privacy
  m.push_back("privacy");
#endif
#ifdef MLAUDIT_HAVE_fairness
  m.push_back("fairness");
#endif
#ifdef MLAUDIT_HAVE_explain
  m.push_back("explain");
#endif
#ifdef MLAUDIT_HAVE_verify
  m.push_back("verify");
#endif
#ifdef MLAUDIT_HAVE_reports
  m.push_back("reports");
#endif
  return m;
}

}  // namespace

std::string version_text(bool json) {
  const bool dc16_compiled = dense_chain_16_compiled();
  const char* lanes = std::getenv("MLAUDIT_DENSE_LANES");
  const bool dc16_used = engine::detail::dense_chain_have_16() && !(lanes && std::string(lanes) == "8");
  const bool vm_compiled = engine::detail::vector_math_avx2_compiled();
  const bool vm_used = engine::detail::vector_math_uses_avx2();
#ifdef MLAUDIT_WITH_CUDA
  const bool cuda = true;
  const int gpus = engine::cuda_device_count();
#else
  const bool cuda = false;
  const int gpus = 0;
#endif
  std::vector<int> archs;
  for (const auto& a : split_list(MLAUDIT_CUDA_ARCHITECTURES, ';'))
    if (!a.empty() && std::isdigit(static_cast<unsigned char>(a[0]))) archs.push_back(std::atoi(a.c_str()));
  std::vector<std::string> command_names;
  for (const auto& c : commands()) command_names.push_back(c.name);

  if (json) {
    nlohmann::json j;
    j["schema"] = "mlaudit.version/1";
    j["version"] = MLAUDIT_VERSION;
    j["commit"] = build_commit();
    j["build_type"] = MLAUDIT_BUILD_TYPE;
    j["compiler"] = MLAUDIT_CXX_COMPILER;
    j["cpu"] = {{"baseline", compiled_baseline()},
                {"compiled_isa", compiled_isa()},
                {"kernels",
                 {{"dense_chain", {{"compiled", dc16_compiled ? std::vector<std::string>{"avx2", "avx512f"}
                                                              : std::vector<std::string>{"avx2"}},
                                   {"selected", dc16_used ? "avx512f" : "avx2"}}},
                  {"vector_math", {{"compiled", vm_compiled ? std::vector<std::string>{"scalar", "avx2+fma"}
                                                            : std::vector<std::string>{"scalar"}},
                                   {"selected", vm_used ? "avx2+fma" : "scalar"}}}}}};
    j["cuda"] = {{"compiled", cuda}, {"architectures", archs}, {"devices", gpus}};
    if (cuda) j["cuda"]["toolkit"] = MLAUDIT_CUDA_VERSION;
    j["modules"] = modules();
    j["mpi"] = {{"compiled", mpi_compiled()}};
    j["commands"] = command_names;
    return j.dump(2) + "\n";
  }
  std::string archs_text;
  for (int a : archs) archs_text += (archs_text.empty() ? "sm_" : ", sm_") + std::to_string(a);
  std::string t = fmt::format("mlaudit {} ({})\n", MLAUDIT_VERSION, build_commit());
  t += fmt::format("build:    {}, {}\n", MLAUDIT_BUILD_TYPE, MLAUDIT_CXX_COMPILER);
  t += fmt::format("cpu:      compiled for {} ({}); dense-chain kernels {} (this CPU: {}), vector math {} (this CPU: {})\n",
                   compiled_baseline(), words(compiled_isa()), dc16_compiled ? "AVX2 + AVX-512F" : "AVX2",
                   dc16_used ? "AVX-512F" : "AVX2", vm_compiled ? "scalar + AVX2/FMA" : "scalar",
                   vm_used ? "AVX2/FMA" : "scalar");
  if (cuda)
    t += fmt::format("cuda:     compiled (CUDA {}, {}); {} device{} visible\n", MLAUDIT_CUDA_VERSION, archs_text, gpus,
                     gpus == 1 ? "" : "s");
  else t += "cuda:     not compiled (--device cuda is refused; auto runs on the CPU)\n";
  t += mpi_compiled() ? "mpi:      compiled (mpirun -n K mlaudit --mpi <command>)\n"
                      : "mpi:      not compiled (--mpi is refused)\n";
  t += fmt::format("modules:  {}\n", words(modules()));
  t += fmt::format("commands: {}\n", words(command_names));
  return t;
}

}  // namespace mlaudit::cli
