// mlaudit: audit a trained ONNX model before release.
#include <fmt/format.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <new>

#include "command.h"
#include "docgen.h"
#ifdef MLAUDIT_HAVE_MPI
#include "mpi_run.h"
#endif
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "task_server.h"
#include "version.h"

using namespace mlaudit;

namespace {
void print_usage() {
  std::cout << "mlaudit " << MLAUDIT_VERSION << " - audit a trained ONNX model before release\n\n"
            << "Usage: mlaudit [--threads N] [--device cpu|cuda|auto] [--output NAME] [--quiet] <command> [options]\n"
            << "       mpirun -n K mlaudit --mpi [--mpi-chunks M] <command> [options]   (attack, certify, corrupt, explain, privacy, verify)\n\n"
            << "  --output NAME   the model output to audit (default: a classifier's probabilities output, else\n"
            << "                  the first float output); also --model-output NAME. Accepted after the command too.\n"
            << "  --version       version, git commit and what this build contains (CPU kernels, CUDA, modules);\n"
            << "                  --version --json as JSON. Man page: man mlaudit (docs/install.md).\n\n"
            << "Commands:\n";
  for (const auto& c : cli::commands()) std::cout << fmt::format("  {:<12} {}\n", c.name, c.summary);
  std::cout << "\nRun 'mlaudit <command> --help' for a command's options.\n"
            << "Exit codes: 0 success, 1 an audit gate failed, 2 usage or input error, 3 internal error,\n"
            << "130 interrupted (Ctrl-C).\n";
}

int parse_int(const std::string& opt, const char* v) {
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (!*v || *end || n < 0 || n > 4096) throw InputError("cli", fmt::format("{}: '{}' is not a thread count", opt, v));
  return static_cast<int>(n);
}
}  // namespace

// One command line, as a process runs it: the exit code.
int run_main(int argc, char** argv) {
  std::string command;  // the command name, once read (for error prefixes)
  try {
    // Arguments become names and paths in result JSON, which is UTF-8 (RFC 8259 section 8.1).
    for (int k = 1; k < argc; ++k)
      if (!engine::is_utf8(argv[k]))
        throw InputError("cli", fmt::format("argument {} ('{}') is not UTF-8; names and file paths must be UTF-8 "
                                            "(rename the file, e.g. with convmv -f latin1 -t utf-8)",
                                            k, engine::printable(argv[k])));
    cli::GlobalOptions global;
    int i = 1;
    for (; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&](const std::string& name) -> const char* {
        auto eq = a.find('=');
        if (eq != std::string::npos) return argv[i] + eq + 1;
        if (i + 1 >= argc) throw InputError("cli", fmt::format("{} needs a value", name));
        return argv[++i];
      };
      if (a == "--version" || a == "-V") {
        // --version --json: the same as one JSON object (mlaudit.version/1)
        bool json = false;
        for (int k = i + 1; k < argc; ++k) json |= std::strcmp(argv[k], "--json") == 0;
        std::cout << cli::version_text(json);
        return 0;
      } else if (a == "--help-man") {
        // mlaudit(1) in roff, from the commands' option tables (installed by CMake, docs/install.md)
        std::cout << cli::man_page(cli::command_docs());
        return 0;
      } else if (a == "--help" || a == "-h") {
        print_usage();
        return 0;
      } else if (a == "--threads" || a.rfind("--threads=", 0) == 0) {
        global.threads = parse_int("--threads", value("--threads"));
      } else if (a == "--device" || a.rfind("--device=", 0) == 0) {
        global.device = engine::parse_device(value("--device"));
      } else if (a == "--quiet" || a == "-q") {
        global.quiet = true;
      } else if (a == "--mpi") {
        global.mpi = true;
      } else if (a == "--mpi-chunks" || a.rfind("--mpi-chunks=", 0) == 0) {
        const char* v = value("--mpi-chunks");
        char* end = nullptr;
        const long long n = std::strtoll(v, &end, 10);
        if (!*v || *end || n < 1 || n > 100000000)
          throw InputError("cli", fmt::format("--mpi-chunks: '{}' is not a chunk count (1 or more)", v));
        global.mpi_chunks = n;
      } else if (a == "--output" || a.rfind("--output=", 0) == 0 || a == "--model-output" ||
                 a.rfind("--model-output=", 0) == 0) {
        global.model_output = value(a.rfind("--output", 0) == 0 ? "--output" : "--model-output");
      } else if (!a.empty() && a[0] == '-') {
        throw InputError("cli", fmt::format("unknown global option '{}' (see 'mlaudit --help')", a));
      } else {
        break;
      }
    }
    if (i >= argc) {
      print_usage();
      return 2;
    }
    command = argv[i];
    if (command == "completion") {
      // mlaudit completion bash|zsh: the completion script, from the commands' option tables
      const std::string shell = i + 1 < argc ? argv[i + 1] : "";
      if (shell == "bash") std::cout << cli::bash_completion(cli::command_docs());
      else if (shell == "zsh") std::cout << cli::zsh_completion(cli::command_docs());
      else throw InputError("cli", fmt::format("completion: expected bash or zsh, got '{}'", shell));
      return 0;
    }
    std::vector<std::string> args(argv + i + 1, argv + argc);
    // Global options are also accepted after the command name.
    std::vector<std::string> rest;
    for (size_t k = 0; k < args.size(); ++k) {
      const std::string& a = args[k];
      if ((a == "--threads" || a == "--device") && k + 1 < args.size()) {
        if (a == "--threads") global.threads = parse_int("--threads", args[k + 1].c_str());
        else global.device = engine::parse_device(args[k + 1]);
        ++k;
      } else if (a.rfind("--threads=", 0) == 0) {
        global.threads = parse_int("--threads", a.c_str() + 10);
      } else if (a.rfind("--device=", 0) == 0) {
        global.device = engine::parse_device(a.substr(9));
      } else if (a == "--output" || a == "--model-output" || a.rfind("--output=", 0) == 0 ||
                 a.rfind("--model-output=", 0) == 0) {
        // The model output to audit. explain's own --output logit|softmax keeps its meaning.
        bool inline_value = a.find('=') != std::string::npos;
        std::string v = inline_value ? a.substr(a.find('=') + 1) : (k + 1 < args.size() ? args[k + 1] : "");
        if (!inline_value && k + 1 >= args.size()) throw InputError("cli", fmt::format("{} needs a value", a));
        if (command == "explain" && a.rfind("--output", 0) == 0 && (v == "logit" || v == "softmax")) {
          rest.push_back(a);
          continue;
        }
        global.model_output = v;
        if (!inline_value) ++k;
      } else {
        rest.push_back(a);
      }
    }
    engine::set_num_threads(global.threads);
    if (global.mpi_chunks && !global.mpi) throw InputError("cli", "--mpi-chunks is used with --mpi only");
    if (global.mpi) {
#ifdef MLAUDIT_HAVE_MPI
      return cli::run_mpi(command, rest, global);
#else
      throw InputError("cli", "--mpi: this mlaudit was built without MPI (install libopenmpi-dev and rebuild: "
                              "docs/scale-out.md)");
#endif
    }
    return cli::run_command(command, rest, global);
  } catch (const InputError& e) {
    std::cerr << "mlaudit: error: " << cli::error_text(command, e) << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "mlaudit: error: out of memory\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "mlaudit: internal error: " << e.what() << "\n";
    return 3;
  }
}

namespace {
// A task of verify --benchmark's persistent child (cli/task_server.h).
int run_args(const std::vector<std::string>& args) {
  std::vector<std::string> a{"mlaudit"};
  a.insert(a.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  return run_main(int(a.size()), argv.data());
}
}  // namespace

int main(int argc, char** argv) {
  engine::tune_process_allocator();
  // Hidden: only cli::TaskServer starts mlaudit this way.
  if (argc == 2 && std::strcmp(argv[1], "--task-server") == 0) return cli::serve_tasks(&run_args);
  return run_main(argc, argv);
}
