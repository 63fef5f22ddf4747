// `mlaudit verify`: formal verification of an ONNX model.
//   VNN-LIB query:   --model M.onnx --vnnlib P.vnnlib [--timeout S] [--result R.txt]
//   Data robustness: --model M --data X.npy [--labels y.npy] --eps E[,E..] [--clip-min/--clip-max] --out V.json
//   Benchmark:       --benchmark DIR (VNN-COMP layout) --out results.csv [--filter REGEX] [--timeout S]
//   Fairness:        --model M --fairness --protected COL --features a,b,.. | file --domain ranges.csv --out F.json
// Exit codes: 0 done (whatever the verdict), 2 input error.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "command.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/accelerated.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/verify/verify.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

namespace fs = std::filesystem;

// Concrete float32 check through the engine when it runs the model; else the
// verifier's own float32 forward of the converted network.
verify::ConcreteForward engine_forward(const std::shared_ptr<engine::Session>& session, const engine::Shape& shape) {
  if (!session) return {};
  return [session, shape](const std::vector<float>& x) {
    engine::Tensor t = engine::Tensor::from_floats(shape, x);
    engine::Tensor y = session->forward(t);
    std::vector<double> d = y.to_doubles();
    return std::vector<float>(d.begin(), d.end());
  };
}

std::shared_ptr<engine::Session> try_session(const std::string& model, const GlobalOptions& g, bool quiet) {
  try {
    return std::shared_ptr<engine::Session>(load_model(model, g).release());
  } catch (const InputError& e) {
    if (!quiet) std::cerr << "verify: note: engine cannot run the model (" << e.what()
                          << "); counterexamples are checked with the verifier's float32 forward\n";
    return nullptr;
  }
}

// Backstop for --timeout: if the query has not returned `grace` seconds after
// its deadline, write the `timeout` result and exit.
class HardDeadline {
 public:
  HardDeadline(double seconds, std::string result_path) : result_path_(std::move(result_path)) {
    if (!(seconds > 0)) return;
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lk(mu_);
      if (cv_.wait_for(lk, std::chrono::duration<double>(seconds + 2.0), [this] { return done_; })) return;
      if (!result_path_.empty()) datasets::write_file_atomic(result_path_, "timeout\n");
      std::cout << "timeout\n" << std::flush;
      std::_Exit(0);
    });
  }
  ~HardDeadline() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::string result_path_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// --device for the verifier: the large bound-propagation products (CROWN / alpha-CROWN's
// Lambda W) run on the GPU for cuda, and for auto when a device is present (docs/verify.md,
// "GPU bounds"); cuda without a device is an input error (exit 2), as for the engine.
engine::Device bound_device(const GlobalOptions& g, bool quiet) {
  if (g.device == engine::Device::Cpu) return g.device;
  const bool present = engine::cuda_device_count() > 0;
  if (g.device == engine::Device::Cuda && !present)
    throw InputError("verify", "--device cuda: no CUDA device is available (or this build has no CUDA backend); use --device cpu or auto");
  if (g.device == engine::Device::Auto && !quiet)
    std::cerr << (present ? "verify: note: --device auto: large bound products on the GPU\n"
                          : "verify: note: --device auto: no CUDA device, bound products on the CPU\n");
  return present ? engine::Device::Cuda : engine::Device::Cpu;
}

verify::VerifyOptions solver_options(const po::variables_map& vm, const GlobalOptions& g) {
  verify::VerifyOptions o;
  o.timeout_s = vm["timeout"].as<double>();
  if (!(o.timeout_s > 0)) throw InputError("verify", "--timeout must be > 0");
  o.threads = g.threads;
  o.alpha_crown = !vm.count("no-alpha");
  o.alpha_crown_hidden = vm.count("alpha-hidden") > 0;
  o.lookahead_depth = vm["lookahead-depth"].as<int>();
  o.seed = vm["seed"].as<uint64_t>();
  return o;
}

int run_vnnlib(const po::variables_map& vm, const GlobalOptions& g) {
  std::string model = vm["model"].as<std::string>();
  std::string vnnlib = vm["vnnlib"].as<std::string>();
  std::string result_path = vm.count("result") ? vm["result"].as<std::string>() : "";
  bool quiet = g.quiet || vm.count("quiet");
  verify::VerifyOptions o = solver_options(vm, g);
  verify::Property prop = verify::read_vnnlib(vnnlib);
  if (!fs::exists(model)) throw InputError("verify", "model file not found: " + model);
  const engine::Device device = bound_device(g, quiet);
  HardDeadline hard(o.timeout_s, result_path);
  verify::VerifyResult r;
  try {
    verify::Network net = verify::load_network(model);
    net.product_device = device;
    auto session = try_session(model, g, quiet);
    o.concrete = engine_forward(session, net.input_shape);
    r = verify::verify_property(net, prop, o);
  } catch (const UnsupportedError& e) {
    // Valid model the verifier cannot handle: a verdict, not an error.
    r.verdict = verify::Verdict::Unknown;
    r.reason = e.what();
  }
  std::string text = verify::vnncomp_result_text(r);
  if (!result_path.empty()) datasets::write_file_atomic(result_path, text);
  std::cout << verify::verdict_name(r.verdict) << "\n";
  if (!quiet) {
    std::cerr << fmt::format("verify: {} in {:.3f} s ({}; {} branches, {} z3 calls){}\n", verify::verdict_name(r.verdict),
                             r.seconds, r.method.empty() ? "-" : r.method, r.domains, r.z3_calls,
                             r.reason.empty() ? "" : "; " + r.reason);
  }
  return 0;
}

int run_data(const po::variables_map& vm, const GlobalOptions& g) {
  std::string model = vm["model"].as<std::string>();
  if (!vm.count("eps")) throw InputError("verify", "--data needs --eps");
  if (!vm.count("out")) throw InputError("verify", "--data needs --out V.json");
  std::string norm = vm["norm"].as<std::string>();
  if (norm != "linf") throw InputError("verify", "--norm: only linf is supported, got '" + norm + "'");
  bool quiet = g.quiet || vm.count("quiet");
  verify::RobustnessOptions ro;
  ro.eps = parse_double_list("--eps", vm["eps"].as<std::string>());
  for (double e : ro.eps)
    if (!(e >= 0)) throw InputError("verify", "--eps values must be >= 0");
  if (vm.count("clip-min")) ro.clip_min = vm["clip-min"].as<double>();
  if (vm.count("clip-max")) ro.clip_max = vm["clip-max"].as<double>();
  if (ro.clip_min > ro.clip_max) throw InputError("verify", "--clip-min is greater than --clip-max");
  ro.solver = solver_options(vm, g);
  engine::Tensor data = datasets::read_npy_float(vm["data"].as<std::string>());
  std::vector<int64_t> labels;
  if (vm.count("labels")) labels = datasets::read_npy_labels(vm["labels"].as<std::string>()).to_int64s();
  if (vm.count("limit")) {
    int64_t n = std::min<int64_t>(vm["limit"].as<int64_t>(), data.dim(0));
    data = data.slice_rows(0, n);
    if (!labels.empty()) labels.resize(size_t(std::min<int64_t>(n, int64_t(labels.size()))));
  }
  if (!fs::exists(model)) throw InputError("verify", "model file not found: " + model);
  const engine::Device device = bound_device(g, quiet);
  std::optional<verify::Network> net;
  std::string reason;
  try {
    net = verify::load_network(model);
    net->product_device = device;
    auto session = try_session(model, g, quiet);
    ro.solver.concrete = engine_forward(session, net->input_shape);
  } catch (const UnsupportedError& e) {
    reason = e.what();
    if (!quiet) std::cerr << "verify: every sample is unknown: " << reason << "\n";
  }
  auto verdicts = verify::verify_robustness(net ? &*net : nullptr, reason, data, labels, ro);
  auto report = verify::robustness_report(verdicts, ro, model, MLAUDIT_VERSION);
  datasets::write_file_atomic(vm["out"].as<std::string>(), report.dump(2) + "\n");
  if (!quiet)
    for (const auto& e : report["by_eps"])
      std::cout << fmt::format("eps {:g}: verified {}/{} (VRA {:.3f}), falsified {}, unknown {}, timeout {}, {:.3f} s/sample\n",
                               e["eps"].get<double>(), e["verified"].get<int64_t>(), e["samples"].get<int64_t>(),
                               e["verified_robust_accuracy"].get<double>(), e["falsified"].get<int64_t>(),
                               e["unknown"].get<int64_t>(), e["timeout"].get<int64_t>(),
                               e["mean_seconds_per_sample"].get<double>());
  return 0;
}

std::vector<std::string> read_features(const std::string& spec) {
  if (fs::exists(spec)) {
    std::vector<std::string> names;
    std::ifstream f(spec);
    std::string line;
    while (std::getline(f, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    return names;
  }
  return split_list(spec);
}

int run_fairness(const po::variables_map& vm, const GlobalOptions& g) {
  std::string model = vm["model"].as<std::string>();
  for (const char* need : {"protected", "features", "domain", "out"})
    if (!vm.count(need)) throw InputError("verify", fmt::format("--fairness needs --{}", need));
  bool quiet = g.quiet || vm.count("quiet");
  std::vector<std::string> features = read_features(vm["features"].as<std::string>());
  std::string prot = vm["protected"].as<std::string>();
  auto pit = std::find(features.begin(), features.end(), prot);
  if (pit == features.end()) throw InputError("verify", "--protected: '" + prot + "' is not one of the --features");
  // ranges.csv: feature,min,max (one row per model feature).
  datasets::CsvTable ranges = datasets::read_csv(vm["domain"].as<std::string>());
  const auto& names = ranges.strings("feature");
  auto lo = ranges.numbers("min"), hi = ranges.numbers("max");
  verify::FairnessOptions fo;
  fo.protected_index = pit - features.begin();
  fo.domain.lower.assign(features.size(), 0.0);
  fo.domain.upper.assign(features.size(), 0.0);
  for (size_t i = 0; i < features.size(); ++i) {
    auto it = std::find(names.begin(), names.end(), features[i]);
    if (it == names.end())
      throw InputError("verify", fmt::format("{}: no range for feature '{}'", ranges.source, features[i]));
    size_t r = size_t(it - names.begin());
    if (lo[r] > hi[r]) throw InputError("verify", fmt::format("{}: min > max for feature '{}'", ranges.source, features[i]));
    fo.domain.lower[i] = lo[r];
    fo.domain.upper[i] = hi[r];
  }
  if (vm.count("protected-values")) {
    fo.protected_values = parse_double_list("--protected-values", vm["protected-values"].as<std::string>());
  } else {
    // Integer levels of the protected attribute's range (e.g. sex 0/1).
    for (double v = std::ceil(fo.domain.lower[size_t(fo.protected_index)]); v <= fo.domain.upper[size_t(fo.protected_index)];
         v += 1)
      fo.protected_values.push_back(v);
  }
  fo.splits_per_feature = vm["partitions"].as<int>();
  fo.solver = solver_options(vm, g);
  if (!fs::exists(model)) throw InputError("verify", "model file not found: " + model);
  const engine::Device device = bound_device(g, quiet);
  verify::Network net = verify::load_network(model);
  net.product_device = device;  // (the twin networks of the partitions are small: CPU products)
  if (net.input_size() != int64_t(features.size()))
    throw InputError("verify", fmt::format("--features lists {} names, the model takes {} inputs", features.size(),
                                           net.input_size()));
  auto session = try_session(model, g, quiet);
  fo.solver.concrete = engine_forward(session, net.input_shape);
  auto t0 = std::chrono::steady_clock::now();
  auto parts = verify::verify_fairness(net, fo);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j;
  j["schema"] = "mlaudit.verify/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["kind"] = "individual_fairness";
  j["method"] = "Fairify-style domain partitioning (Biswas & Rajan, ICSE 2023) with bound propagation, BaB and Z3";
  j["model"] = model;
  j["protected"] = prot;
  j["protected_values"] = fo.protected_values;
  j["features"] = features;
  j["timeout_s_per_partition"] = fo.solver.timeout_s;
  std::map<std::string, int> counts;
  nlohmann::json arr = nlohmann::json::array();
  nlohmann::json pairs = nlohmann::json::array();
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    counts[p.verdict]++;
    nlohmann::json e{{"index", i}, {"lower", p.box.lower}, {"upper", p.box.upper}, {"verdict", p.verdict},
                     {"seconds", p.seconds}};
    if (p.verdict == "counterexample") {
      e["input_a"] = p.counterexample_a;
      e["input_b"] = p.counterexample_b;
      e["output_a"] = p.output_a;
      e["output_b"] = p.output_b;
      pairs.push_back(e);
    }
    arr.push_back(e);
  }
  j["summary"] = {{"partitions", parts.size()},   {"proved", counts["proved"]}, {"counterexample", counts["counterexample"]},
                  {"unknown", counts["unknown"]}, {"timeout", counts["timeout"]}, {"seconds", secs}};
  j["partitions"] = arr;
  j["counterexample_pairs"] = pairs;
  datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(2) + "\n");
  if (!quiet)
    std::cout << fmt::format("fairness ({}): {} partitions: proved {}, counterexample {}, unknown {}, timeout {} in {:.2f} s\n",
                             prot, parts.size(), counts["proved"], counts["counterexample"], counts["unknown"],
                             counts["timeout"], secs);
  return 0;
}

struct Instance {
  std::string onnx, vnnlib;
  double timeout = 0;
  std::string expected;
};

// Run one instance in a child process (`mlaudit verify --vnnlib`), killed
// when it outlives its timeout: the limit holds whatever the solver does.
std::string run_instance_process(const Instance& in, double timeout, const GlobalOptions& g, const std::string& tmp) {
  std::string result = tmp + "/result.txt";
  fs::remove(result);
  std::vector<std::string> args{"/proc/self/exe"};
  if (g.threads > 0) args.insert(args.end(), {"--threads", std::to_string(g.threads)});
  if (g.device != engine::Device::Cpu) args.insert(args.end(), {"--device", g.device == engine::Device::Cuda ? "cuda" : "auto"});
  args.insert(args.end(), {"--quiet", "verify", "--model", in.onnx, "--vnnlib", in.vnnlib, "--timeout",
                           fmt::format("{}", timeout), "--result", result});
  pid_t pid = fork();
  if (pid < 0) throw Error("verify", "fork failed");
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el > timeout + 10) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "timeout";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::ifstream f(result);
  std::string first;
  if (!std::getline(f, first)) return WIFEXITED(status) && WEXITSTATUS(status) == 2 ? "error" : "unknown";
  return first;
}

int run_benchmark(const po::variables_map& vm, const GlobalOptions& g) {
  fs::path dir = vm["benchmark"].as<std::string>();
  if (!vm.count("out")) throw InputError("verify", "--benchmark needs --out results.csv");
  bool quiet = g.quiet || vm.count("quiet");
  fs::path csv = dir / "instances.csv";
  if (!fs::exists(csv)) throw InputError("verify", "benchmark: " + csv.string() + " not found");
  bound_device(g, quiet);  // cuda without a device: exit 2 here, not once per instance
  datasets::CsvOptions co;
  co.has_header = false;
  datasets::CsvTable t = datasets::read_csv(csv.string(), co);
  if (t.columns.size() < 3) throw InputError("verify", csv.string() + ": expected columns onnx,vnnlib,timeout");
  auto tos = t.numbers("c2");
  std::map<std::string, std::string> expected;
  if (fs::exists(dir / "expected.csv")) {
    datasets::CsvTable e = datasets::read_csv((dir / "expected.csv").string());
    for (size_t r = 0; r < e.rows(); ++r)
      expected[fs::path(e.strings("onnx")[r]).filename().string() + "," + fs::path(e.strings("vnnlib")[r]).filename().string()] =
          e.strings("expected")[r];
  }
  std::optional<std::regex> filter;
  if (vm.count("filter")) {
    try {
      filter = std::regex(vm["filter"].as<std::string>());
    } catch (const std::regex_error&) {
      throw InputError("verify", "--filter: not a valid regular expression");
    }
  }
  std::vector<Instance> instances;
  for (size_t r = 0; r < t.rows(); ++r) {
    Instance in;
    in.onnx = (dir / t.strings("c0")[r]).string();
    in.vnnlib = (dir / t.strings("c1")[r]).string();
    in.timeout = tos[r];
    std::string key = fs::path(in.onnx).filename().string() + "," + fs::path(in.vnnlib).filename().string();
    if (filter && !std::regex_search(key, *filter)) continue;
    if (expected.count(key)) in.expected = expected[key];
    instances.push_back(in);
  }
  double cap = vm.count("timeout-override") ? vm["timeout-override"].as<double>() : 0;
  std::string tmp = (fs::temp_directory_path() / fmt::format("mlaudit-bench-{}", getpid())).string();
  fs::create_directories(tmp);
  std::string out = "onnx,vnnlib,result,expected,correct,seconds\n";
  int sat = 0, unsat = 0, wrong = 0, other = 0;
  double total = 0;
  std::vector<double> times;
  for (const auto& in : instances) {
    double to = cap > 0 ? std::min(cap, in.timeout) : in.timeout;
    auto t0 = std::chrono::steady_clock::now();
    std::string res = run_instance_process(in, to, g, tmp);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += s;
    times.push_back(s);
    bool solved = res == "sat" || res == "unsat";
    bool is_wrong = solved && !in.expected.empty() && res != in.expected;
    if (is_wrong) ++wrong;
    else if (res == "sat") ++sat;
    else if (res == "unsat") ++unsat;
    else ++other;
    std::string correct = in.expected.empty() || !solved ? "" : (is_wrong ? "no" : "yes");
    out += fmt::format("{},{},{},{},{},{:.3f}\n", fs::path(in.onnx).filename().string(), fs::path(in.vnnlib).filename().string(),
                       res, in.expected, correct, s);
    if (!quiet)
      std::cerr << fmt::format("{} {} -> {} ({:.2f} s){}\n", fs::path(in.onnx).filename().string(),
                               fs::path(in.vnnlib).filename().string(), res, s, is_wrong ? "  WRONG" : "");
  }
  fs::remove_all(tmp);
  datasets::write_file_atomic(vm["out"].as<std::string>(), out);
  std::sort(times.begin(), times.end());
  double median = times.empty() ? 0 : times[times.size() / 2];
  std::cout << fmt::format("instances {}: solved {} (sat {}, unsat {}), wrong {}, unsolved {}; total {:.2f} s, median {:.3f} s\n",
                           instances.size(), sat + unsat, sat, unsat, wrong, other, total, median);
  return 0;
}

int cmd_verify(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("verify options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX model")(
      "vnnlib", po::value<std::string>(), "VNN-LIB property (VNN-COMP format)")(
      "result", po::value<std::string>(), "VNN-COMP result file to write (sat/unsat/timeout/unknown [+ counterexample])")(
      "timeout", po::value<double>()->default_value(60.0), "seconds per query (per sample and eps, per partition)")(
      "data", po::value<std::string>(), "inputs .npy [N, ...] for local robustness")(
      "labels", po::value<std::string>(), "labels .npy [N] (default: the model's predictions)")(
      "eps", po::value<std::string>(), "perturbation radii, comma separated")(
      "norm", po::value<std::string>()->default_value("linf"), "perturbation norm (linf)")(
      "clip-min", po::value<double>(), "lower bound of valid inputs")("clip-max", po::value<double>(), "upper bound of valid inputs")(
      "limit", po::value<int64_t>(), "verify only the first N samples")(
      "out,o", po::value<std::string>(), "JSON report (data, fairness) or results.csv (benchmark)")(
      "benchmark", po::value<std::string>(), "VNN-COMP benchmark folder (instances.csv)")(
      "filter", po::value<std::string>(), "benchmark: only instances whose 'onnx,vnnlib' matches this regex")(
      "timeout-override", po::value<double>(), "benchmark: cap every instance's timeout at this many seconds")(
      "fairness", "individual fairness: decisions must not depend on --protected")(
      "protected", po::value<std::string>(), "protected feature name")(
      "protected-values", po::value<std::string>(), "values of the protected feature to compare (default: integers in its range)")(
      "features", po::value<std::string>(), "model feature names in input order (comma list or a file, one per line)")(
      "domain", po::value<std::string>(), "ranges.csv with columns feature,min,max")(
      "partitions", po::value<int>()->default_value(2), "fairness: slices per non-protected feature")(
      "no-alpha", "skip alpha-CROWN slope optimisation")(
      "alpha-hidden", "at the root, alpha-CROWN also tightens every hidden layer's bounds (networks up to 4096 ReLUs)")(
      "lookahead-depth", po::value<int>()->default_value(6), "input BaB: pick splits by bounding both halves above this depth")("seed", po::value<uint64_t>()->default_value(0), "falsifier seed")(
      "quiet,q", "only the verdict / summary");
  po::variables_map vm;
  if (!parse_options("verify",
                     "mlaudit verify --model M.onnx (--vnnlib P.vnnlib [--result R.txt] | --data X.npy --eps E --out V.json "
                     "| --fairness --protected COL --features F --domain ranges.csv --out F.json) [--timeout S]\n"
                     "       mlaudit verify --benchmark DIR --out results.csv [--filter REGEX]",
                     desc, args, vm))
    return 0;
  if (vm.count("benchmark")) return run_benchmark(vm, g);
  if (!vm.count("model")) throw InputError("verify", "the option '--model' is required (see 'mlaudit verify --help')");
  int modes = int(vm.count("vnnlib")) + int(vm.count("data")) + int(vm.count("fairness"));
  if (modes != 1) throw InputError("verify", "give exactly one of --vnnlib, --data, --fairness");
  {
    // Bound propagation needs a network of differentiable layers: a tree ensemble, SVM or other
    // ONNX-ML op on the path is a usage error (exit 2), not an 'unknown' verdict.
    const std::string model = vm["model"].as<std::string>();
    if (fs::exists(model)) {
      engine::Graph graph = engine::load_onnx(model);
      auto blockers = engine::non_differentiable_nodes(graph, 0);
      if (!blockers.empty()) {
        const engine::Node& n = *blockers.front();
        throw UnsupportedError(
            "verify", fmt::format("{}: bound propagation cannot verify this model: node '{}' ({}) is not a "
                                  "differentiable layer; falsify by sampling instead (attack --attack square)",
                                  model, n.name, n.domain.empty() ? n.op_type : n.domain + "." + n.op_type));
      }
    }
  }
  if (vm.count("vnnlib")) return run_vnnlib(vm, g);
  if (vm.count("data")) return run_data(vm, g);
  return run_fairness(vm, g);
}

}  // namespace

MLAUDIT_COMMAND("verify", "prove or falsify robustness/fairness properties (bound propagation, BaB, Z3)", cmd_verify);

}  // namespace mlaudit::cli
