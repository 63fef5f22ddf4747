#pragma once
// Command registry of the mlaudit executable. Each command lives in
// cli/commands/<name>.cpp and registers itself with MLAUDIT_COMMAND.
#include <boost/program_options.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::cli {

/// Options given before the command name (apply to every command).
struct GlobalOptions {
  int threads = 0;
  engine::Device device = engine::Device::Cpu;
  bool quiet = false;
  /// Progress lines on stderr even when quiet: the audit silences its sections' console
  /// output but keeps their progress (rows done, rate, ETA) unless the audit itself is quiet.
  bool section_progress = false;
  bool show_progress() const { return !quiet || section_progress; }
  /// --output / --model-output: the model output to audit (engine::SessionOptions::output).
  std::string model_output;
  /// The command being run (set by run_command), for messages.
  std::string command;
  /// --mpi: run the command under mpirun, rank 0 handing out chunks (mpi.cpp).
  bool mpi = false;
  /// --mpi-chunks N: how many chunks (0: one per benchmark instance, else 8 per worker).
  int64_t mpi_chunks = 0;
};

/// A command: arguments after its name -> exit code (0 ok, 1 gate failed, 2 input error).
using CommandFn = std::function<int(const std::vector<std::string>& args, const GlobalOptions& global)>;

struct CommandInfo {
  std::string name;
  std::string summary;
  CommandFn fn;
};

/// Registers a command at static-initialisation time.
struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn fn);
};

/// An InputError's one line as the user reads it: the prefix names the command they ran, not
/// the module that found the problem ("verify: cannot open 'nope.vnnlib'", not "datasets: ...");
/// the message names the file, option or node. `command` may be empty (before one was read).
std::string error_text(const std::string& command, const InputError& e);

/// All registered commands, sorted by name.
std::vector<CommandInfo> commands();
/// Run a registered command in-process (used by `audit` to run sections).
/// Throws InputError for an unknown command.
int run_command(const std::string& name, const std::vector<std::string>& args, const GlobalOptions& global);

namespace po = boost::program_options;

/// An option's old spelling, still accepted by `parse_options` (rewritten to `name`, listed
/// under --help; both spellings together are refused).
struct OptionAlias {
  const char* command;
  const char* old_name;
  const char* name;
};
const std::vector<OptionAlias>& option_aliases();

/// Per command, which published setting or peer tool its defaults follow (shown by --help).
const std::map<std::string, std::string>& help_conventions();

/// Generated documentation (docgen.cpp: man page, shell completion): while a collector is set,
/// parse_options hands it each command's complete options (after --help and --quiet are added)
/// instead of parsing, and returns false, so the command returns 0 having done nothing.
using OptionsCollector = std::function<void(const std::string& command, const std::string& usage,
                                            const po::options_description& desc,
                                            const std::vector<std::string>& required)>;
/// Sets (or, with an empty function, clears) the collector.
void set_options_collector(OptionsCollector collector);

/// Parse `args` against `desc` (which gets --help added). Returns false when
/// --help was printed (the command then returns 0). Unknown or malformed
/// options throw InputError naming the command and option. `required` names
/// options that must be present.
bool parse_options(const std::string& command, const std::string& usage, po::options_description& desc,
                   const std::vector<std::string>& args, po::variables_map& vm,
                   const std::vector<std::string>& required = {},
                   const po::positional_options_description* positional = nullptr);

/// Split "0.1,0.2" into doubles; throws InputError naming the option.
std::vector<double> parse_double_list(const std::string& option, const std::string& text);
/// A list of names (feature columns): "a,b,c", or "@FILE" / an existing FILE with one name per
/// line (blank lines and trailing spaces ignored). "@FILE" that cannot be read is an
/// InputError naming the option.
std::vector<std::string> parse_name_list(const std::string& option, const std::string& spec);
/// ASCII lower case: option values that name things (attacks, norms, methods) are
/// case-insensitive (PGD, Linf, IG spellings as papers write them).
std::string to_lower(std::string text);

/// The flag that sets a library parameter: "favorable_label" -> "--favorable-label". Libraries
/// name their parameters (ParameterError, fairness's ParameterSpelling); the CLI words them so.
std::string flag_spelling(const std::string& parameter);
/// The q-quantile of `v` (linear interpolation between order statistics, numpy's default);
/// NaN for an empty `v`.
double percentile(std::vector<double> v, double q);
/// Split "a,b,c" into strings (empty items dropped): datasets' one splitter.
using datasets::split_list;

/// Load a model for a command, honouring --device: cuda without a GPU or
/// without a CUDA build is an InputError; auto falls back to cpu with a note.
std::unique_ptr<engine::Session> load_model(const std::string& path, const GlobalOptions& global);
/// Every `mlaudit attack --attack` name: robustness::attack_names() plus the CLI's exact-tree
/// (verify/trees.h) when the verify module is built. Defined in commands/attack.cpp.
std::vector<std::string> attack_command_names();

/// The number of classes a classifier scores: the audited output's last dimension, from its
/// declared shape or from a forward pass on the first row(s) of `x`. Throws InputError naming
/// the command when the output is not [N, C] class scores.
int64_t model_classes(const std::string& command, const engine::Session& model, const engine::Tensor& x);

/// --data and --labels of a labelled command, read and checked by the one input contract
/// (datasets/validate.h) every command shares: data [N, ...] and finite (inside [lo, hi]
/// when `domain` is given), one label per row, every label a class of the model. `limit`
/// > 0 keeps the first `limit` rows.
struct LabeledData {
  engine::Tensor x;
  std::vector<int64_t> y;
  int64_t classes = 0;
};
struct Domain {
  double lo = 0, hi = 1;
};
LabeledData read_labeled_data(const std::string& command, const std::string& data_path, const std::string& labels_path,
                              const engine::Session& model, int64_t limit = 0, const Domain* domain = nullptr);

}  // namespace mlaudit::cli

#define MLAUDIT_CAT2(a, b) a##b
#define MLAUDIT_CAT(a, b) MLAUDIT_CAT2(a, b)
/// Register `fn` as the command `name`.
#define MLAUDIT_COMMAND(name, summary, fn) \
  static ::mlaudit::cli::CommandRegistrar MLAUDIT_CAT(mlaudit_command_, __LINE__)(name, summary, fn)
