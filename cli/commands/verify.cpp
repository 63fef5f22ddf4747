// `mlaudit verify`: formal verification of an ONNX model.
//   VNN-LIB query:   --model M.onnx --vnnlib P.vnnlib [--timeout S] [--result R.txt] [--out V.json]
//   Data robustness: --model M --data X.npy [--labels y.npy] --eps E[,E..] [--clip-min 0 --clip-max 1] --out V.json
//   Benchmark:       --benchmark DIR (VNN-COMP layout) --out results.csv|results.json [--filter REGEX] [--timeout-override S]
//   Fairness:        --model M --fairness --protected COL --features a,b,.. | file --domain ranges.csv --out F.json
// A tree-ensemble model (engine/trees.h) is verified exactly by verify/trees.h in every mode, with the same
// JSON; tree-only options: --minimal-distance (data), --delta and --data X.npy --eps E (fairness).
// An option the chosen mode does not use is an error. Every JSON carries "schema" and an
// "inputs" block (path, SHA-256 and size of each file read).
// Exit codes: 0 done (whatever the verdict), 2 input error.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "command.h"
#include "shard.h"
#include "split.h"
#include "task_server.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/trees.h"
#include "mlaudit/verify/trees.h"
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

// The engine session that re-checks counterexamples. `two_classes`: a one-column output is
// widened to the logits [0, z] as the classification modes (--data, --fairness) verify it;
// a VNN-LIB property names the model's own outputs (Y_0 of a regressor is its value), so
// that mode runs the model as it is.
std::shared_ptr<engine::Session> try_session(const std::string& model, const GlobalOptions& g, bool quiet,
                                             bool two_classes) {
  try {
    if (!two_classes) {
      engine::SessionOptions so;
      so.threads = g.threads;
      so.output = g.model_output;
      return std::shared_ptr<engine::Session>(engine::Session::load(model, so).release());
    }
    return std::shared_ptr<engine::Session>(load_model(model, g).release());
  } catch (const InputError& e) {
    if (!quiet) std::cerr << "verify: note: engine cannot run the model (" << e.what()
                          << "); counterexamples are checked with the verifier's float32 forward\n";
    return nullptr;
  }
}

// A binary classifier's single logit z is verified as two classes [0, z] (as every
// classification command audits it, and as the engine's two-class session re-checks it): a zero
// row stacked on the last affine layer. No-op for wider outputs.
void widen_binary_logit(verify::Network& net, const std::string& model, bool quiet) {
  if (net.output_size() != 1 || net.layers.empty()) return;
  verify::AffineLayer& last = net.layers.back();
  last.weight.insert(last.weight.begin(), size_t(last.in), 0.0);
  last.bias.insert(last.bias.begin(), 0.0);
  last.out = 2;
  if (last.sparse()) {
    last.csr_row.clear(), last.csr_col.clear(), last.csr_val.clear();
    last.compress();
  }
  if (!quiet)
    std::cerr << "verify: note: " << model << " has one output; it is verified as a binary classifier with two "
              << "classes, logits [0, z] (class 1 = positive, the decision where z > 0)\n";
}

// Backstop for --timeout: if the query has not returned 2 seconds after its
// deadline, write the `timeout` results (on_timeout) and exit.
class HardDeadline {
 public:
  HardDeadline(double seconds, std::function<void()> on_timeout) : on_timeout_(std::move(on_timeout)) {
    if (!(seconds > 0)) return;
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lk(mu_);
      if (cv_.wait_for(lk, std::chrono::duration<double>(seconds + 2.0), [this] { return done_; })) return;
      try {
        if (on_timeout_) on_timeout_();
      } catch (const std::exception& e) {
        std::cerr << "verify: " << e.what() << "\n";
      }
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
  std::function<void()> on_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// --device for the verifier: the large bound-propagation products (CROWN / alpha-CROWN's
// Lambda W) run on the GPU for cuda, and for auto when a device is present (docs/dev/verify.md,
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
  o.beta_crown = !vm.count("no-beta");
  o.alpha_crown_hidden = vm.count("alpha-hidden") > 0;
  o.lookahead_depth = vm["lookahead-depth"].as<int>();
  o.seed = vm["seed"].as<uint64_t>();
  return o;
}

// {"model": provenance, ...} for the files a result was computed from (datasets/validate.h).
nlohmann::json inputs_block(const std::vector<std::pair<std::string, std::string>>& files) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [role, path] : files)
    if (!path.empty()) j[role] = datasets::file_provenance(path);
  return j;
}

// The tree verifier's options: the timeout per query and the engine's forward as the concrete check.
verify::TreeVerifyOptions tree_options(const po::variables_map& vm, const GlobalOptions& g, const engine::TreeEnsemble& tree,
                                       const std::string& model, bool quiet) {
  verify::TreeVerifyOptions o;
  o.timeout_s = vm["timeout"].as<double>();
  if (!(o.timeout_s > 0)) throw InputError("verify", "--timeout must be > 0");
  // The engine runs the model as it is (CPU; a regressor's one column stays one column: the
  // classification commands' two-class widening is not applied to the tree's own output).
  engine::SessionOptions so;
  so.threads = g.threads;
  so.output = g.model_output;
  std::shared_ptr<engine::Session> session(engine::Session::load(model, so).release());
  {
    // The engine's audited output must be the ensemble's (its width is the class count).
    engine::Tensor probe = engine::Tensor::from_floats({1, tree.features}, std::vector<float>(size_t(tree.features), 0.0f));
    const int64_t width = session->forward(probe).numel();
    if (width != tree.classes)
      throw UnsupportedError("verify", fmt::format("{}: the audited output has {} columns, the tree ensemble '{}' gives {}",
                                                   model, width, tree.node_name, tree.classes));
    o.concrete = engine_forward(session, {1, tree.features});
  }
  return o;
}

nlohmann::json tree_block(const engine::TreeEnsemble& t) {
  const char* head = t.head == engine::TreeEnsemble::Head::Regression     ? "regression"
                     : t.head == engine::TreeEnsemble::Head::BinaryMargin ? "binary_margin"
                                                                          : "classes";
  return {{"node", t.node_name}, {"op_type", t.op_type}, {"trees", t.tree_count()}, {"features", t.features},
          {"head", head},        {"classes", t.classes},
          {"method", "exact: Chen et al. 2019 multi-level clique bound, then branch and bound over float32 threshold cells; "
                     "every counterexample re-checked by the engine's forward"}};
}

// The JSON of a --branches FILE (mlaudit.branches/1); not JSON is an input error naming it.
nlohmann::json read_branches_text(const std::string& path) {
  try {
    return nlohmann::json::parse(datasets::read_file(path, int64_t(1) << 32));
  } catch (const nlohmann::json::exception& e) {
    throw InputError("verify", fmt::format("--branches {}: not JSON ({})", path, e.what()));
  }
}

// --branches FILE: the open branches another process handed out, checked by the verify module
// to belong to this model and property.
std::vector<verify::OpenBranch> read_branches_file(const std::string& path, const verify::Network& net,
                                                   const nlohmann::json& inputs, bool* open_undecided) {
  return verify::read_branches_json(read_branches_text(path), net, inputs, "--branches " + path, open_undecided);
}

// The verifier's network of `model`; in the task child, the network each task reads is kept by
// (path, device, inode, size, mtime): the pieces of a split instance read the same model
// hundreds of times (0.25-0.4 ms each for ACAS Xu).
verify::Network network_for_task(const std::string& model) {
  if (!in_task_child()) return verify::load_network(model);
  const std::string key = datasets::file_stamp(model);
  if (key.empty()) return verify::load_network(model);
  static std::mutex mu;
  static std::map<std::string, std::pair<std::string, std::shared_ptr<const verify::Network>>> cache;
  {
    std::lock_guard<std::mutex> lk(mu);
    if (auto it = cache.find(model); it != cache.end() && it->second.first == key) return *it->second.second;
  }
  auto net = std::make_shared<const verify::Network>(verify::load_network(model));
  std::lock_guard<std::mutex> lk(mu);
  if (cache.size() >= 64) cache.clear();
  cache[model] = {key, net};
  return *net;
}

int run_vnnlib(const po::variables_map& vm, const GlobalOptions& g, const engine::TreeEnsemble* tree) {
  std::string model = vm["model"].as<std::string>();
  std::string vnnlib = vm["vnnlib"].as<std::string>();
  std::string result_path = vm.count("result") ? vm["result"].as<std::string>() : "";
  std::string json_path = vm.count("out") ? vm["out"].as<std::string>() : "";
  bool quiet = g.quiet || vm.count("quiet");
  verify::VerifyOptions o = solver_options(vm, g);
  // Scale-out (docs/scale-out.md): stop after --split-after S and write the open branches to
  // --branches-out; --branches continues some of them.
  const std::string branches_in = vm.count("branches") ? vm["branches"].as<std::string>() : "";
  const std::string branches_out = vm.count("branches-out") ? vm["branches-out"].as<std::string>() : "";
  if (vm.count("split-after")) {
    o.split_after_s = vm["split-after"].as<double>();
    if (!(o.split_after_s > 0)) throw InputError("verify", "--split-after must be > 0 seconds");
    if (branches_out.empty()) throw InputError("verify", "--split-after needs --branches-out FILE (where the open branches go)");
    if (vm.count("split-branches")) {
      o.split_min_branches = vm["split-branches"].as<int>();
      if (o.split_min_branches < 1) throw InputError("verify", "--split-branches must be >= 1");
    }
    // Split on demand: SIGUSR1 (an MPI worker rank relaying rank 0's request, or kill -USR1)
    // splits the query now instead of at S.
    listen_for_split_requests();
    o.split_now = &split_requested();
  } else if (!branches_out.empty() || vm.count("split-branches")) {
    throw InputError("verify", fmt::format("--{} needs --split-after S (when to stop and hand out the open branches)",
                                           branches_out.empty() ? "split-branches" : "branches-out"));
  }
  if (tree && (o.split_after_s > 0 || !branches_in.empty()))
    throw InputError("verify", "--split-after and --branches are for networks (branch and bound); the tree verifier runs whole");
  // --shard I/N with --branches: the I-th of N slices of the file's branches (dealt round-robin
  // first, so that every slice holds a share of the shallow, large ones); the part merges into
  // the verdict over all of them (mlaudit merge).
  shard::Shard part = shard::parse("verify", vm);
  if (part.on && branches_in.empty())
    throw InputError("verify", "--vnnlib --shard I/N slices the branches of --branches B.json (written by --split-after S "
                               "--branches-out B.json); one whole property is one item");
  if (part.on && (o.split_after_s > 0 || !result_path.empty() || json_path.empty()))
    throw InputError("verify", "--vnnlib --branches --shard writes a part for 'mlaudit merge' to --out PART.json (no --result, "
                               "no --split-after: each slice runs to its verdict)");
  verify::Property prop = verify::read_vnnlib(vnnlib);
  if (!fs::exists(model)) throw InputError("verify", "model file not found: " + model);
  const engine::Device device = bound_device(g, quiet);
  const nlohmann::json inputs = inputs_block({{"model", model}, {"vnnlib", vnnlib}});
  nlohmann::json part_inputs = inputs;
  if (part.on) part_inputs["branches"] = datasets::file_provenance(branches_in);
  if (!branches_out.empty()) fs::remove(branches_out);  // present after the run iff the query split
  size_t branches_given = 0;
  bool undecided_in = false;  // the file's first run left an undecided leaf: the property cannot be unsat
  auto write_results = [&](const verify::VerifyResult& r) {
    if (!r.open_branches.empty() && !branches_out.empty()) {
      datasets::write_file_atomic(
          branches_out, verify::branches_json(r, model, vnnlib, o.timeout_s, inputs, MLAUDIT_VERSION).dump() + "\n");
    }
    if (!result_path.empty()) datasets::write_file_atomic(result_path, verify::vnncomp_result_text(r));
    if (!json_path.empty()) {
      nlohmann::json j =
          verify::vnnlib_report(r, prop, model, vnnlib, o.timeout_s, part.on ? part_inputs : inputs, MLAUDIT_VERSION);
      if (!branches_in.empty()) j["branches_in"] = {{"file", branches_in}, {"branches", branches_given}, {"open_undecided", undecided_in}};
      if (!r.open_branches.empty()) j["open_branches"] = {{"file", branches_out}, {"branches", r.open_branches.size()}};
      if (part.on) shard::make_part(j, "verify", part, vm, g);
      datasets::write_file_atomic(json_path, j.dump(2) + "\n");
    }
  };
  HardDeadline hard(o.timeout_s, [&] {
    verify::VerifyResult t;
    t.verdict = verify::Verdict::Timeout;
    t.seconds = o.timeout_s + 2;
    t.reason = "the query did not return within --timeout + 2 s (hard deadline)";
    write_results(t);
  });
  verify::VerifyResult r;
  try {
    if (tree) {
      r = verify::to_verify_result(verify::verify_tree_property(*tree, prop, tree_options(vm, g, *tree, model, quiet)));
    } else {
      verify::Network net = network_for_task(model);
      net.product_device = device;
      std::vector<verify::OpenBranch> branches;
      if (!branches_in.empty()) {
        branches = read_branches_file(branches_in, net, inputs, &undecided_in);
        if (part.on) {
          // Round-robin order (split::deal, as the MPI pieces are dealt), then the shard's
          // contiguous slice of it.
          std::vector<verify::OpenBranch> dealt;
          for (auto& piece : split::deal(branches, int(std::min<int64_t>(part.count, 1 << 30))))
            for (auto& b : piece) dealt.push_back(std::move(b));
          shard::set_total(part, "verify", int64_t(dealt.size()));
          branches.assign(std::make_move_iterator(dealt.begin() + part.first), std::make_move_iterator(dealt.begin() + part.end));
        }
        branches_given = branches.size();
      }
      // The engine session that re-checks counterexamples is made at the first candidate: most
      // queries (and most pieces of a split one, 2-5 ms tasks) never have one, and making it
      // took 0.3 ms. Without a session, the verifier's own float32 forward checks.
      struct LazySession {
        std::once_flag once;
        verify::ConcreteForward forward;
      };
      auto lazy = std::make_shared<LazySession>();
      o.concrete = [lazy, &net, model, g, quiet](const std::vector<float>& x) {
        std::call_once(lazy->once, [&] { lazy->forward = engine_forward(try_session(model, g, quiet, false), net.input_shape); });
        return lazy->forward ? lazy->forward(x) : net.forward_f32(x);
      };
      r = branches_in.empty() ? verify::verify_property(net, prop, o) : verify::verify_branches(net, prop, branches, o);
    }
  } catch (const UnsupportedError& e) {
    // Valid model the verifier cannot handle: a verdict, not an error.
    r.verdict = verify::Verdict::Unknown;
    r.reason = e.what();
  }
  write_results(r);
  std::cout << verify::verdict_name(r.verdict) << "\n";
  if (!quiet) {
    std::cerr << fmt::format("verify: {} in {:.3f} s ({}; {} branches, {} z3 calls){}{}\n", verify::verdict_name(r.verdict),
                             r.seconds, r.method.empty() ? "-" : r.method, r.domains, r.z3_calls,
                             r.reason.empty() ? "" : "; " + r.reason,
                             branches_in.empty() ? "" : fmt::format(" [on the {} branches of {} only]", branches_given, branches_in));
  }
  return 0;
}

std::string domain_text(double lo, double hi) { return fmt::format("[{}, {}]", lo, hi); }

void print_by_eps(const nlohmann::json& report) {
  for (const auto& e : report["by_eps"])
    std::cout << fmt::format("eps {:g}: verified {}/{} (VRA {:.3f}), falsified {}, unknown {}, timeout {}, {:.3f} s/sample\n",
                             e["eps"].get<double>(), e["verified"].get<int64_t>(), e["samples"].get<int64_t>(),
                             e["verified_robust_accuracy"].get<double>(), e["falsified"].get<int64_t>(),
                             e["unknown"].get<int64_t>(), e["timeout"].get<int64_t>(),
                             e["mean_seconds_per_sample"].get<double>());
}

// `verify --data` on a tree ensemble: exact verdicts per sample and eps (verify/trees.h), the
// share the clique bound decided, and with --minimal-distance each sample's minimal adversarial
// L-inf distance within the domain.
int run_tree_data(const po::variables_map& vm, const GlobalOptions& g, const engine::TreeEnsemble& tree,
                  const engine::Tensor& data, const std::vector<int64_t>& labels, verify::RobustnessOptions ro,
                  const std::string& data_path, const std::string& labels_path, const shard::Shard& part) {
  const std::string model = vm["model"].as<std::string>();
  const bool quiet = g.quiet || vm.count("quiet");
  if (g.device == engine::Device::Cuda) throw InputError("verify", "--device cuda: the tree verifier runs on the CPU; use --device cpu or auto");
  if (tree.head == engine::TreeEnsemble::Head::Regression)
    throw InputError("verify", fmt::format("{}: {} ({}) is a regressor: local robustness needs a decision; state an output "
                                           "property with --vnnlib instead",
                                           model, tree.node_name, tree.op_type));
  verify::TreeVerifyOptions to = tree_options(vm, g, tree, model, quiet);
  if (!quiet)
    std::cerr << fmt::format("verify: {}: tree ensemble '{}' ({}, {} trees): exact tree verification; input domain {}\n", model,
                             tree.node_name, tree.op_type, tree.tree_count(), domain_text(ro.clip_min, ro.clip_max));
  std::vector<verify::SampleVerdict> verdicts;
  {
    engine::ProgressLine progress("verify", "queries", g.show_progress());
    ro.progress = progress.fn();
    verdicts = verify::verify_tree_robustness_data(tree, data, labels, ro, to);
    ro.progress = nullptr;
  }
  for (auto& v : verdicts) v.index += part.first;
  auto report = verify::robustness_report(verdicts, ro, model, MLAUDIT_VERSION);
  report["model_kind"] = "tree_ensemble";
  report["tree_ensemble"] = tree_block(tree);
  // Per eps: how many verdicts the clique bound alone decided (the rest took branch and bound).
  for (auto& e : report["by_eps"]) {
    int64_t bound = 0;
    for (const auto& v : verdicts)
      if (v.eps == e["eps"].get<double>() && v.method == "clique-bound") ++bound;
    e["decided_by_clique_bound"] = bound;
  }
  report["per_eps"] = report["by_eps"];
  if (vm.count("minimal-distance")) {
    std::vector<verify::TreeMinimalResult> md;
    {
      engine::ProgressLine progress("verify", "minimal distances", g.show_progress());
      md = verify::tree_minimal_distances(tree, data, labels, ro.clip_min, ro.clip_max, to, progress.fn());
    }
    nlohmann::json arr = nlohmann::json::array();
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    for (size_t i = 0; i < md.size(); ++i) {
      const auto& r = md[i];
      nlohmann::json e{{"index", part.first + int64_t(i)}, {"label", r.label}, {"status", r.status}, {"lower", num(r.lower)},
                       {"upper", num(r.upper)}, {"exact_queries", r.exact_queries}, {"seconds", r.seconds}};
      e["distance"] = r.status == "found" ? nlohmann::json(r.distance) : nlohmann::json(nullptr);
      if (!r.counterexample.empty() && r.status != "none") {
        e["counterexample"] = std::vector<double>(r.counterexample.begin(), r.counterexample.end());
        e["adversarial_label"] = r.adversarial_label;
        e["counterexample_output"] = r.counterexample_output;
      }
      arr.push_back(e);
    }
    report["minimal_distance"] = arr;
  }
  report["inputs"] = inputs_block({{"model", model}, {"data", data_path}, {"labels", labels_path}});
  if (part.on) shard::make_part(report, "verify", part, vm, g);
  datasets::write_file_atomic(vm["out"].as<std::string>(), report.dump(2) + "\n");
  if (!quiet) {
    print_by_eps(report);
    for (const auto& e : report["by_eps"])
      std::cout << fmt::format("eps {:g}: {} of {} decided by the clique bound\n", e["eps"].get<double>(),
                               e["decided_by_clique_bound"].get<int64_t>(), e["samples"].get<int64_t>());
    if (report.contains("minimal_distance")) {
      int64_t found = 0;
      std::vector<double> d;
      for (const auto& e : report["minimal_distance"])
        if (e["status"] == "found") ++found, d.push_back(e["distance"].get<double>());
      std::sort(d.begin(), d.end());
      std::cout << fmt::format("minimal L-inf distance: found for {}/{} samples{}\n", found, report["minimal_distance"].size(),
                               d.empty() ? "" : fmt::format(", median {:.6g}", d[d.size() / 2]));
    }
  }
  return 0;
}

int run_data(const po::variables_map& vm, const GlobalOptions& g, const engine::TreeEnsemble* tree) {
  std::string model = vm["model"].as<std::string>();
  if (!vm.count("eps")) throw InputError("verify", "--data needs --eps");
  if (!vm.count("out")) throw InputError("verify", "--data needs --out V.json");
  std::string norm = vm["norm"].as<std::string>();
  if (std::find(verify::robustness_norms().begin(), verify::robustness_norms().end(), norm) == verify::robustness_norms().end())
    throw InputError("verify", "--norm: only linf is supported, got '" + norm + "'");
  bool quiet = g.quiet || vm.count("quiet");
  verify::RobustnessOptions ro;
  ro.eps = parse_double_list("--eps", vm["eps"].as<std::string>());
  for (double e : ro.eps)
    if (!(e >= 0) || !std::isfinite(e)) throw InputError("verify", fmt::format("--eps values must be finite and >= 0, got {}", e));
  // The input domain: attack's options and defaults ([0, 1]); -inf / inf leave a side unbounded.
  ro.clip_min = vm["clip-min"].as<double>();
  ro.clip_max = vm["clip-max"].as<double>();
  if (std::isnan(ro.clip_min) || std::isnan(ro.clip_max) || !(ro.clip_min < ro.clip_max))
    throw InputError("verify", fmt::format("--clip-min {} must be less than --clip-max {}", ro.clip_min, ro.clip_max));
  ro.solver = solver_options(vm, g);
  const std::string data_path = vm["data"].as<std::string>();
  engine::Tensor data = datasets::read_npy_float(data_path);
  if (data.rank() < 1) throw InputError("verify", "--data " + data_path + ": needs a batch axis [N, ...]");
  try {
    datasets::check_in_domain("verify: --data " + data_path, data, ro.clip_min, ro.clip_max);
  } catch (const InputError& e) {
    const std::string what = e.what();
    const bool outside = what.find("outside the input domain") != std::string::npos;
    throw InputError("verify", what.substr(what.find(": ") + 2) +
                                   (outside ? fmt::format(" (the default is attack's [0, 1]; --clip-min=-inf --clip-max=inf "
                                                          "verifies unbounded balls)")
                                            : ""));
  }
  const std::string labels_path = vm.count("labels") ? vm["labels"].as<std::string>() : "";
  std::vector<int64_t> labels;
  if (!labels_path.empty()) {
    labels = datasets::read_npy_labels(labels_path).to_int64s();
    datasets::check_label_count("verify: --labels " + labels_path, int64_t(labels.size()), data.dim(0), data_path);
  }
  if (vm.count("limit")) {
    const int64_t limit = vm["limit"].as<int64_t>();
    if (limit < 1) throw InputError("verify", fmt::format("--limit must be >= 1, got {}", limit));
    int64_t n = std::min<int64_t>(limit, data.dim(0));
    data = data.slice_rows(0, n);
    if (!labels.empty()) labels.resize(size_t(n));
  }
  // --shard I/N: rows [first, end); verdicts keep global indices, and the falsifier's seed
  // (seed + sample index, verify::verify_robustness) is shifted so each row draws as in one process.
  shard::Shard part = shard::parse("verify", vm);
  shard::set_total(part, "verify", data.dim(0));
  if (part.on) {
    data = data.slice_rows(part.first, part.end);
    if (!labels.empty()) labels.assign(labels.begin() + part.first, labels.begin() + part.end);
    ro.solver.seed += uint64_t(part.first);
  }
  if (!fs::exists(model)) throw InputError("verify", "model file not found: " + model);
  if (tree) return run_tree_data(vm, g, *tree, data, labels, ro, data_path, labels_path, part);
  const engine::Device device = bound_device(g, quiet);
  std::optional<verify::Network> net;
  std::string reason;
  try {
    net = verify::load_network(model);
    net->product_device = device;
    widen_binary_logit(*net, model, quiet);
    auto session = try_session(model, g, quiet, /*two_classes=*/true);
    ro.solver.concrete = engine_forward(session, net->input_shape);
  } catch (const UnsupportedError& e) {
    reason = e.what();
    if (!quiet) std::cerr << "verify: every sample is unknown: " << reason << "\n";
  }
  if (net && !labels.empty()) datasets::check_labels("verify: --labels " + labels_path, labels, net->output_size());
  if (!quiet)
    std::cerr << fmt::format("verify: input domain {} (--clip-min/--clip-max); each query box is the L-inf ball intersected with it\n",
                             domain_text(ro.clip_min, ro.clip_max));
  std::vector<verify::SampleVerdict> verdicts;
  {
    engine::ProgressLine progress("verify", "queries", g.show_progress());
    ro.progress = progress.fn();
    verdicts = verify::verify_robustness(net ? &*net : nullptr, reason, data, labels, ro);
    ro.progress = nullptr;
  }
  for (auto& v : verdicts) v.index += part.first;
  auto report = verify::robustness_report(verdicts, ro, model, MLAUDIT_VERSION);
  report["inputs"] = inputs_block({{"model", model}, {"data", data_path}, {"labels", labels_path}});
  if (part.on) shard::make_part(report, "verify", part, vm, g);
  datasets::write_file_atomic(vm["out"].as<std::string>(), report.dump(2) + "\n");
  if (!quiet) print_by_eps(report);
  return 0;
}

int run_fairness(const po::variables_map& vm, const GlobalOptions& g, const engine::TreeEnsemble* tree) {
  std::string model = vm["model"].as<std::string>();
  for (const char* need : {"protected", "features", "domain", "out"})
    if (!vm.count(need)) throw InputError("verify", fmt::format("--fairness needs --{}", need));
  bool quiet = g.quiet || vm.count("quiet");
  std::vector<std::string> features = parse_name_list("features", vm["features"].as<std::string>());
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
  std::vector<verify::FairnessPartition> parts;
  double delta = -1;
  std::string data_path;
  double secs = 0;
  if (tree) {
    // Exact on trees: the domain's partitions, or a box of radius --eps around each --data row.
    if (tree->features != int64_t(features.size()))
      throw InputError("verify", fmt::format("--features lists {} names, the model takes {} inputs", features.size(),
                                             tree->features));
    if (vm.count("delta")) {
      delta = vm["delta"].as<double>();
      if (!(delta >= 0) || !std::isfinite(delta)) throw InputError("verify", fmt::format("--delta must be finite and >= 0, got {}", delta));
    }
    verify::TreeVerifyOptions to = tree_options(vm, g, *tree, model, quiet);
    auto t0 = std::chrono::steady_clock::now();
    if (vm.count("data")) {
      if (!vm.count("eps")) throw InputError("verify", "--fairness --data needs --eps (the radius around each row)");
      const double eps = parse_double_list("--eps", vm["eps"].as<std::string>()).front();
      data_path = vm["data"].as<std::string>();
      engine::Tensor data = datasets::read_npy_float(data_path);
      if (vm.count("limit")) {
        const int64_t limit = vm["limit"].as<int64_t>();
        if (limit < 1) throw InputError("verify", fmt::format("--limit must be >= 1, got {}", limit));
        data = data.slice_rows(0, std::min<int64_t>(limit, data.dim(0)));
      }
      parts = verify::verify_tree_fairness_samples(*tree, data, eps, fo, delta, to);
    } else {
      for (const char* need_data : {"eps", "limit"})
        if (vm.count(need_data))
          throw InputError("verify", fmt::format("--fairness --{} needs --data (the rows the boxes are centred on)", need_data));
      parts = verify::verify_tree_fairness_partitions(*tree, fo, delta, to);
    }
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } else {
    for (const char* tree_only : {"delta", "data", "eps", "limit"})
      if (vm.count(tree_only))
        throw InputError("verify", fmt::format("--{} in --fairness mode is for tree-ensemble models; {} is a network", tree_only, model));
    const engine::Device device = bound_device(g, quiet);
    verify::Network net = verify::load_network(model);
    net.product_device = device;  // (the twin networks of the partitions are small: CPU products)
    if (net.input_size() != int64_t(features.size()))
      throw InputError("verify", fmt::format("--features lists {} names, the model takes {} inputs", features.size(),
                                             net.input_size()));
    widen_binary_logit(net, model, quiet);
    auto session = try_session(model, g, quiet, /*two_classes=*/true);
    fo.solver.concrete = engine_forward(session, net.input_shape);
    auto t0 = std::chrono::steady_clock::now();
    parts = verify::verify_fairness(net, fo);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  nlohmann::json j;
  j["schema"] = "mlaudit.verify/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["kind"] = "individual_fairness";
  j["method"] = tree ? "exact tree-ensemble verification over each partition (clique bound, then branch and bound over "
                       "threshold cells)"
                     : "Fairify-style domain partitioning (Biswas & Rajan, ICSE 2023) with bound propagation, BaB and Z3";
  if (tree) {
    j["model_kind"] = "tree_ensemble";
    j["tree_ensemble"] = tree_block(*tree);
    j["score_delta"] = delta >= 0 ? nlohmann::json(delta) : nlohmann::json(nullptr);
    j["boxes"] = data_path.empty() ? "partitions" : "samples";
    if (!data_path.empty()) j["eps"] = parse_double_list("--eps", vm["eps"].as<std::string>()).front();
  }
  j["model"] = model;
  j["protected"] = prot;
  j["protected_values"] = fo.protected_values;
  j["features"] = features;
  j["timeout_s_per_partition"] = fo.solver.timeout_s;
  nlohmann::json ranges_json = nlohmann::json::array();
  for (size_t i = 0; i < features.size(); ++i)
    ranges_json.push_back({{"feature", features[i]}, {"min", fo.domain.lower[i]}, {"max", fo.domain.upper[i]}});
  j["feature_ranges"] = ranges_json;  // the domain the partitions cover (--domain)
  const std::string features_spec = vm["features"].as<std::string>();
  j["inputs"] = inputs_block({{"model", model},
                              {"domain", vm["domain"].as<std::string>()},
                              {"features", fs::is_regular_file(features_spec) ? features_spec : ""},
                              {"data", data_path}});
  std::map<std::string, int> counts;
  nlohmann::json arr = nlohmann::json::array();
  nlohmann::json pairs = nlohmann::json::array();
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& p = parts[i];
    counts[verify::fairness_word(p.verdict)]++;
    nlohmann::json e{{"index", i}, {"lower", p.box.lower}, {"upper", p.box.upper}, {"verdict", verify::fairness_word(p.verdict)},
                     {"seconds", p.seconds}};
    if (p.verdict == verify::Verdict::Sat) {
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
  std::string listed;  ///< "onnx,vnnlib" as written in instances.csv
  double timeout = 0;
  std::string expected;
};

// Run one instance in the persistent child process (cli/task_server.h: `mlaudit verify
// --vnnlib` without a process start per task), killed when it outlives its timeout by 10 s: the
// limit holds whatever the solver does.
std::string run_instance_process(const Instance& in, double timeout, const GlobalOptions& g, const std::string& tmp,
                                 const std::vector<std::string>& solver_args) {
  std::string result = tmp + "/result.txt";
  fs::remove(result);
  if (!(timeout > 0)) return "timeout";
  std::vector<std::string> args;
  if (g.threads > 0) args.insert(args.end(), {"--threads", std::to_string(g.threads)});
  if (g.device != engine::Device::Cpu) args.insert(args.end(), {"--device", g.device == engine::Device::Cuda ? "cuda" : "auto"});
  args.insert(args.end(), {"--quiet", "verify", "--model", in.onnx, "--vnnlib", in.vnnlib, "--timeout",
                           fmt::format("{}", timeout), "--result", result});
  args.insert(args.end(), solver_args.begin(), solver_args.end());
  const int code = TaskServer::shared().run(args, timeout + 10);
  if (code == TaskServer::kKilled) return "timeout";
  std::ifstream f(result);
  std::string first;
  if (!std::getline(f, first)) return code == 2 ? "error" : "unknown";
  return first;
}

// The solver options given to --benchmark, passed on to every instance's child process.
std::vector<std::string> forwarded_solver_args(const po::variables_map& vm) {
  std::vector<std::string> a;
  if (vm.count("no-alpha")) a.push_back("--no-alpha");
  if (vm.count("no-beta")) a.push_back("--no-beta");
  if (vm.count("alpha-hidden")) a.push_back("--alpha-hidden");
  if (!vm["lookahead-depth"].defaulted()) a.insert(a.end(), {"--lookahead-depth", std::to_string(vm["lookahead-depth"].as<int>())});
  if (!vm["seed"].defaulted()) a.insert(a.end(), {"--seed", std::to_string(vm["seed"].as<uint64_t>())});
  return a;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run_benchmark(const po::variables_map& vm, const GlobalOptions& g) {
  fs::path dir = vm["benchmark"].as<std::string>();
  if (!vm.count("out")) throw InputError("verify", "--benchmark needs --out results.csv (or results.json)");
  const std::string out_path = vm["out"].as<std::string>();
  bool quiet = g.quiet || vm.count("quiet");
  fs::path csv = dir / "instances.csv";
  if (!fs::exists(csv)) throw InputError("verify", "benchmark: " + csv.string() + " not found");
  bound_device(g, quiet);  // cuda without a device: exit 2 here, not once per instance
  datasets::CsvOptions co;
  co.has_header = false;
  datasets::CsvTable t = datasets::read_csv(csv.string(), co);
  if (t.columns.size() < 3) throw InputError("verify", csv.string() + ": expected columns onnx,vnnlib,timeout");
  if (t.rows() == 0) throw InputError("verify", csv.string() + ": lists no instances");
  auto tos = t.numbers("c2");
  std::map<std::string, std::string> expected;
  if (fs::exists(dir / "expected.csv")) {
    datasets::CsvTable e = datasets::read_csv((dir / "expected.csv").string());
    for (size_t r = 0; r < e.rows(); ++r)
      expected[fs::path(e.strings("onnx")[r]).filename().string() + "," + fs::path(e.strings("vnnlib")[r]).filename().string()] =
          e.strings("expected")[r];
  }
  std::optional<std::regex> filter;
  const std::string filter_text = vm.count("filter") ? vm["filter"].as<std::string>() : "";
  if (vm.count("filter")) {
    try {
      filter = std::regex(filter_text);
    } catch (const std::regex_error&) {
      throw InputError("verify", "--filter: not a valid regular expression");
    }
  }
  // An instance is named two ways: "onnx/N.onnx,vnnlib/P.vnnlib" as instances.csv lists it, and
  // "N.onnx,P.vnnlib" (file names) as expected.csv and the results file do; the filter may use either.
  std::vector<Instance> all, instances;
  for (size_t r = 0; r < t.rows(); ++r) {
    Instance in;
    in.onnx = (dir / t.strings("c0")[r]).string();
    in.vnnlib = (dir / t.strings("c1")[r]).string();
    in.listed = t.strings("c0")[r] + "," + t.strings("c1")[r];
    in.timeout = tos[r];
    std::string key = fs::path(in.onnx).filename().string() + "," + fs::path(in.vnnlib).filename().string();
    if (expected.count(key)) in.expected = expected[key];
    all.push_back(in);
    if (filter && !std::regex_search(in.listed, *filter) && !std::regex_search(key, *filter)) continue;
    instances.push_back(in);
  }
  if (instances.empty()) {
    std::string names;
    for (size_t i = 0; i < std::min<size_t>(3, all.size()); ++i) names += (i ? "; " : "") + all[i].listed;
    const Instance& e = all.front();
    throw InputError("verify", fmt::format("--filter '{}' matches none of the {} instances of {} (each is matched as "
                                           "'onnx,vnnlib' in instances.csv's form, e.g. '{}', and in expected.csv's "
                                           "file-name form, e.g. '{}'); the first instances: {}{}",
                                           filter_text, all.size(), csv.string(), e.listed,
                                           fs::path(e.onnx).filename().string() + "," + fs::path(e.vnnlib).filename().string(),
                                           names, all.size() > 3 ? "; ..." : ""));
  }
  double cap = vm.count("timeout-override") ? vm["timeout-override"].as<double>() : 0;
  if (vm.count("timeout-override") && !(cap > 0)) throw InputError("verify", "--timeout-override must be > 0");
  // --shard I/N: instances [first, end) of the (filtered) list; a part is JSON, for `mlaudit merge`.
  shard::Shard part = shard::parse("verify", vm);
  if (part.on && !ends_with(out_path, ".json"))
    throw InputError("verify", fmt::format("--benchmark --shard writes a part for 'mlaudit merge': give --out PART.json, not {} "
                                           "(merge writes results.csv or .json)", out_path));
  shard::set_total(part, "verify", int64_t(instances.size()));
  if (part.on)
    instances = std::vector<Instance>(instances.begin() + part.first, instances.begin() + part.end);
  const std::vector<std::string> solver_args = forwarded_solver_args(vm);
  std::string tmp = (fs::temp_directory_path() / fmt::format("mlaudit-bench-{}", getpid())).string();
  fs::create_directories(tmp);
  // --split-after S (docs/scale-out.md): an instance still open after S seconds hands out its
  // open branches. --hand-out (what --mpi's workers run): one task of one instance, its open
  // branches in the row for rank 0 to cut; otherwise the pieces run here, one after another.
  const double split_after = vm.count("split-after") ? vm["split-after"].as<double>() : 0;
  if (vm.count("split-after") && !(split_after > 0)) throw InputError("verify", "--split-after must be > 0 seconds");
  const bool hand_out = vm.count("hand-out") > 0;
  const std::string branches_in = vm.count("branches") ? vm["branches"].as<std::string>() : "";
  int pieces = vm.count("split-pieces") ? vm["split-pieces"].as<int>() : 64;
  if (pieces < 1) throw InputError("verify", "--split-pieces must be >= 1");
  if ((hand_out || !branches_in.empty() || vm.count("split-pieces")) && !(split_after > 0))
    throw InputError("verify", "--hand-out, --branches and --split-pieces belong to --split-after S");
  if ((hand_out || !branches_in.empty()) && (!part.on || instances.size() != 1))
    throw InputError("verify", "--benchmark --hand-out/--branches run one instance: give --shard I/N with N the instance count");
  if (!branches_in.empty() && !hand_out) throw InputError("verify", "--benchmark --branches needs --hand-out");
  const std::string branches_out = tmp + "/branches-out.json";  // a task's open branches, when it split
  // A piece splits again after --resplit-after S2 (default S/4): its critical path adds S2 per
  // level where the root adds S (docs/scale-out.md).
  const double resplit_after = vm.count("resplit-after") ? vm["resplit-after"].as<double>() : split_after / 4;
  if (vm.count("resplit-after") && !(split_after > 0))
    throw InputError("verify", "--resplit-after belongs to --split-after S");
  if (vm.count("resplit-after") && !(resplit_after > 0)) throw InputError("verify", "--resplit-after must be > 0 seconds");
  auto split_args = [&](bool piece) -> std::vector<std::string> {
    if (!(split_after > 0)) return {};
    // 4 open branches per piece its split is cut into (split::Instance::answer: a piece's split
    // into pieces / 4): balanced pieces, less work in all than 1 per piece (measured on ACAS Xu:
    // 39.2 s of tasks against 42.5 s). Split on demand expands to 1 per piece (bab.cpp).
    return {"--split-after", fmt::format("{}", piece ? resplit_after : split_after), "--split-branches",
            std::to_string(4 * (piece ? split::resplit_pieces(pieces) : pieces)), "--branches-out", branches_out};
  };
  // One task: the instance (or the branches of `in_file`) in a child process; "split" when it
  // wrote open branches (then in `file`).
  auto run_task = [&](const Instance& in, double timeout, const std::string& in_file, nlohmann::json& file) {
    std::vector<std::string> a = solver_args;
    for (auto& x : split_args(!in_file.empty())) a.push_back(x);
    if (!in_file.empty()) a.insert(a.end(), {"--branches", in_file});
    fs::remove(branches_out);
    std::string res = run_instance_process(in, timeout, g, tmp, a);
    if (split_after > 0 && res == "unknown" && fs::exists(branches_out)) {
      file = read_branches_text(branches_out);
      res = "split";
    }
    return res;
  };
  nlohmann::json rows = nlohmann::json::array();
  std::map<std::string, nlohmann::json> provenance;  // one hash per file, however many instances share it
  auto prov = [&](const std::string& path) -> const nlohmann::json& {
    auto it = provenance.find(path);
    if (it == provenance.end()) it = provenance.emplace(path, datasets::file_provenance(path)).first;
    return it->second;
  };
  const bool want_json = ends_with(out_path, ".json");
  int sat = 0, unsat = 0, wrong = 0, other = 0;
  double total = 0;
  std::vector<double> times;
  for (const auto& in : instances) {
    double to = cap > 0 ? std::min(cap, in.timeout) : in.timeout;
    auto t0 = std::chrono::steady_clock::now();
    std::string res;
    nlohmann::json split_block, open_file;
    if (!(split_after > 0)) {
      res = run_instance_process(in, to, g, tmp, solver_args);
    } else if (hand_out) {
      double task_to = to;
      if (!branches_in.empty()) {
        // The piece carries the time its instance has left (rank 0 counts from the instance's start).
        const nlohmann::json piece = read_branches_text(branches_in);
        if (piece.is_object() && piece.contains("timeout_s") && piece["timeout_s"].is_number())
          task_to = std::min(to, piece["timeout_s"].get<double>());
      }
      res = run_task(in, task_to, branches_in, open_file);
    } else {
      // The pieces one after another (first in, first out), within the instance's time.
      split::Instance st;
      std::deque<std::pair<int64_t, nlohmann::json>> queue{{-1, nlohmann::json()}};
      double used = 0;
      while (!queue.empty() && !st.decided()) {
        auto [parent, piece] = std::move(queue.front());
        queue.pop_front();
        const std::string piece_file = tmp + "/branches-in.json";
        if (!piece.is_null()) {
          // Scratch, read back by the task at once: no sync to disk (datasets::set_sync_writes).
          std::ofstream f(piece_file, std::ios::binary | std::ios::trunc);
          f << split::piece_text(open_file, piece, to - used);
          if (!f) throw InputError("verify", "cannot write " + piece_file);
        }
        nlohmann::json file;
        auto ts = std::chrono::steady_clock::now();
        const std::string r = run_task(in, to - used, piece.is_null() ? "" : piece_file, file);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
        used += secs;
        if (r == "split") open_file = file;
        const int64_t me = int64_t(st.tasks.size());
        for (auto& p : st.answer(parent, r, secs, piece.is_null() ? 0 : int64_t(piece.size()), &file, pieces,
                                 split::falsify_only(piece)))
          queue.emplace_back(me, std::move(p));
      }
      res = st.result();
      split_block = st.summary();
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += s;
    times.push_back(s);
    const nlohmann::json correct = shard::benchmark_correct(res, in.expected);
    const bool is_wrong = correct.is_boolean() && !correct.get<bool>();
    if (is_wrong) ++wrong;
    else if (res == "sat") ++sat;
    else if (res == "unsat") ++unsat;
    else ++other;
    nlohmann::json row{{"onnx", fs::path(in.onnx).filename().string()},
                       {"vnnlib", fs::path(in.vnnlib).filename().string()},
                       {"instance", in.listed},
                       {"result", res},
                       {"expected", in.expected.empty() ? nlohmann::json(nullptr) : nlohmann::json(in.expected)},
                       {"correct", correct},
                       {"seconds", s},
                       {"timeout_s", to}};
    if (!split_block.is_null()) row["split"] = split_block;
    if (res == "split") {
      // --hand-out: rank 0 cuts these into pieces (the row is not a verdict; correct is null).
      row["open_branches"] = open_file;
    }
    if (want_json) {
      nlohmann::json files = nlohmann::json::object();
      for (const auto& [role, path] : {std::pair<std::string, std::string>{"model", in.onnx}, {"vnnlib", in.vnnlib}})
        if (fs::exists(path)) files[role] = prov(path);
      row["inputs"] = files;
    }
    rows.push_back(row);
    if (!quiet) {
      // [k/N] and the time left at the mean pace so far: a benchmark runs for minutes to hours.
      const size_t k = times.size();
      const double left = total / double(k) * double(instances.size() - k);
      std::cerr << fmt::format("[{}/{}] {} {} -> {} ({:.2f} s){}{}\n", k, instances.size(),
                               fs::path(in.onnx).filename().string(), fs::path(in.vnnlib).filename().string(), res, s,
                               is_wrong ? "  WRONG" : "",
                               k < instances.size() ? ", ETA " + engine::ProgressLine::duration(left) : "");
    }
  }
  fs::remove_all(tmp);
  if (want_json) {
    nlohmann::json j;
    j["schema"] = "mlaudit.verify/1";
    j["tool_version"] = MLAUDIT_VERSION;
    j["kind"] = "vnncomp_benchmark";
    j["benchmark"] = dir.string();
    j["filter"] = vm.count("filter") ? nlohmann::json(filter_text) : nlohmann::json(nullptr);
    j["timeout_override_s"] = cap > 0 ? nlohmann::json(cap) : nlohmann::json(nullptr);
    j["instances"] = rows;
    shard::benchmark_summary(j);
    j["inputs"] = inputs_block({{"instances", csv.string()},
                                {"expected", fs::exists(dir / "expected.csv") ? (dir / "expected.csv").string() : ""}});
    if (part.on) shard::make_part(j, "verify", part, vm, g);
    datasets::write_file_atomic(out_path, j.dump(2) + "\n");
  } else {
    datasets::write_file_atomic(out_path, shard::benchmark_csv(rows));
  }
  std::sort(times.begin(), times.end());
  double median = times.empty() ? 0 : times[times.size() / 2];
  if (!quiet)
    std::cout << fmt::format("instances {}: solved {} (sat {}, unsat {}), wrong {}, unsolved {}; total {:.2f} s, median {:.3f} s\n",
                             instances.size(), sat + unsat, sat, unsat, wrong, other, total, median);
  return 0;
}

// The options each mode reads; any other option given on the command line is an error
// (exit 2) rather than silently ignored. Options left at their defaults are not "given".
const std::vector<std::string>& solver_option_names() {
  static const std::vector<std::string> names{"timeout", "no-alpha", "no-beta", "alpha-hidden", "lookahead-depth", "seed"};
  return names;
}

void check_mode_options(const po::variables_map& vm, const std::string& mode, std::vector<std::string> used) {
  for (const auto& always : {"help", "quiet"}) used.push_back(always);
  for (const auto& [name, value] : vm) {
    if (value.defaulted() || std::find(used.begin(), used.end(), name) != used.end()) continue;
    std::string why;
    if (mode == "--vnnlib" && (name == "eps" || name == "limit" || name == "clip-min" || name == "clip-max" || name == "labels" ||
                               name == "norm"))
      why = " (the .vnnlib file fixes the input region)";
    else if (mode == "--benchmark" && name == "timeout")
      why = " (each instance runs under its instances.csv limit; cap it with --timeout-override S)";
    else if (mode == "--data" && name == "result")
      why = " (the VNN-COMP result file belongs to --vnnlib; this mode writes --out V.json)";
    else if (mode == "--data" && name == "domain")
      why = " (--domain is the fairness ranges.csv; this mode's input domain is --clip-min/--clip-max)";
    else if (mode == "--fairness" && (name == "clip-min" || name == "clip-max"))
      why = " (the fairness domain is --domain ranges.csv)";
    std::string list;
    for (const auto& u : used)
      if (u != "help" && u != "quiet") list += " --" + u;
    throw InputError("verify", fmt::format("--{} is not used in {} mode{}; that mode takes{}", name, mode, why, list));
  }
}

int cmd_verify(const std::vector<std::string>& args, const GlobalOptions& g) {
  po::options_description desc("verify options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX model")(
      "vnnlib", po::value<std::string>(), "VNN-LIB property (VNN-COMP format)")(
      "result", po::value<std::string>(), "VNN-COMP result file to write (sat/unsat/timeout/unknown [+ counterexample])")(
      "timeout", po::value<double>()->default_value(60.0), "seconds per query (per sample and eps, per partition)")(
      "data,d", po::value<std::string>(), "inputs .npy [N, ...] for local robustness")(
      "labels,l", po::value<std::string>(), "labels .npy [N] (default: the model's predictions)")(
      "eps", po::value<std::string>(), "perturbation radii, comma separated")(
      "norm", po::value<std::string>()->default_value("linf"), "perturbation norm (linf)")(
      "clip-min", po::value<double>()->default_value(0.0, "0"),
      "data: lower end of the input domain, as attack (-inf: unbounded, written --clip-min=-inf)")(
      "clip-max", po::value<double>()->default_value(1.0, "1"), "data: upper end of the input domain (inf: unbounded)")(
      "limit", po::value<int64_t>(), "verify only the first N samples")(
      "out,o", po::value<std::string>(), "JSON report (vnnlib, data, fairness); benchmark: results.csv, or a JSON report when it ends in .json")(
      "benchmark", po::value<std::string>(), "VNN-COMP benchmark folder (instances.csv)")(
      "filter", po::value<std::string>(),
      "benchmark: only instances whose 'onnx,vnnlib' matches this regex (searched in instances.csv's form, "
      "onnx/N.onnx,vnnlib/P.vnnlib, and in expected.csv's, N.onnx,P.vnnlib)")(
      "timeout-override", po::value<double>(), "benchmark: cap every instance's timeout at this many seconds")(
      "fairness", "individual fairness: decisions must not depend on --protected")(
      "protected", po::value<std::string>(), "protected feature name")(
      "protected-values", po::value<std::string>(), "values of the protected feature to compare (default: integers in its range)")(
      "features", po::value<std::string>(), "model feature names in input order (comma list or a file, one per line)")(
      "domain", po::value<std::string>(), "ranges.csv with columns feature,min,max")(
      "partitions", po::value<int>()->default_value(2), "fairness: slices per non-protected feature")(
      "delta", po::value<double>(), "fairness, tree models: the score (raw margin / regression output) may move by at most this")(
      "minimal-distance", "data, tree models: also each sample's exact minimal adversarial L-inf distance")(
      "no-alpha", "skip alpha-CROWN slope optimisation")(
      "no-beta", "ReLU branch and bound: re-bound every layer with CROWN per branch instead of beta-CROWN (the split "
                 "constraints' multipliers on the parent's bounds)")(
      "alpha-hidden", "at the root, alpha-CROWN also tightens every hidden layer's bounds (networks up to 4096 ReLUs)")(
      "lookahead-depth", po::value<int>()->default_value(6), "input BaB: pick splits by bounding both halves above this depth")("seed", po::value<uint64_t>()->default_value(0), "falsifier seed")(
      "split-after", po::value<double>(),
      "scale-out: a query still open after S seconds stops and hands its open branches on (--vnnlib: to --branches-out; "
      "--benchmark: as pieces to the other MPI ranks, or one after another without --mpi)")(
      "resplit-after", po::value<double>(), "benchmark --split-after: a piece still open after this many seconds "
                                            "splits again (default S/4)")(
      "split-pieces", po::value<int>(), "benchmark --split-after: pieces a split query's open branches are cut into "
                                        "(default: the MPI workers; without --mpi 64)")(
      "hand-out", "benchmark --split-after (what --mpi's workers run): one task of the one instance of --shard I/N, "
                  "its open branches in the row")(
      "split-branches", po::value<int>(),
      "vnnlib --split-after: expand the shallowest open branches until this many are open before handing them out "
      "(at most S/2 more; default 256; the benchmark asks 4 per piece)")(
      "branches-out", po::value<std::string>(), "vnnlib --split-after: write the open branches here (mlaudit.branches/1)")(
      "branches", po::value<std::string>(),
      "vnnlib: decide only these open branches of the property (a --branches-out file; the verdict is theirs)")(
      "quiet,q", "only the verdict / summary");
  shard::add_option(desc);
  po::variables_map vm;
  if (!parse_options("verify",
                     "mlaudit verify --model M.onnx (--vnnlib P.vnnlib [--result R.txt] [--out V.json] "
                     "| --data X.npy --eps E [--clip-min 0 --clip-max 1] [--shard I/N] --out V.json "
                     "| --fairness --protected COL --features F --domain ranges.csv --out F.json) [--timeout S]\n"
                     "       mlaudit verify --benchmark DIR --out results.csv|results.json [--filter REGEX] [--timeout-override S]\n"
                     "Tree-ensemble models are verified exactly; tree-only options: --minimal-distance (--data), "
                     "--data X.npy --eps E and --delta D (--fairness).\n"
                     "An option the chosen mode does not use is an error.",
                     desc, args, vm))
    return 0;
  std::vector<std::string> solver = solver_option_names();
  auto with_solver = [&](std::vector<std::string> names) {
    names.insert(names.end(), solver.begin(), solver.end());
    return names;
  };
  if (vm.count("benchmark")) {
    // Each instance runs under its own limit (instances.csv, --timeout-override); the other solver options pass on.
    check_mode_options(vm, "--benchmark",
                       {"benchmark", "out", "filter", "timeout-override", "no-alpha", "no-beta", "alpha-hidden", "lookahead-depth",
                        "seed", "shard", "split-after", "resplit-after", "split-pieces", "hand-out", "branches"});
    return run_benchmark(vm, g);
  }
  // --fairness may take --data (tree models: boxes around rows); otherwise --data is the robustness mode.
  int modes = int(vm.count("vnnlib")) + int(vm.count("data") && !vm.count("fairness")) + int(vm.count("fairness"));
  if (modes != 1) throw InputError("verify", "give exactly one of --vnnlib, --data, --fairness (or --benchmark DIR)");
  if (vm.count("vnnlib"))
    check_mode_options(vm, "--vnnlib", with_solver({"model", "vnnlib", "result", "out", "split-after", "split-branches",
                                                    "branches-out", "branches", "shard"}));
  else if (vm.count("data") && !vm.count("fairness"))
    check_mode_options(vm, "--data",
                       with_solver({"model", "data", "labels", "eps", "norm", "clip-min", "clip-max", "limit", "out",
                                    "minimal-distance", "shard"}));
  else
    check_mode_options(vm, "--fairness", with_solver({"model", "fairness", "protected", "protected-values", "features",
                                                      "domain", "partitions", "out", "delta", "data", "eps", "limit"}));
  if (!vm.count("model")) throw InputError("verify", "the option '--model' is required (see 'mlaudit verify --help')");
  std::optional<engine::TreeEnsemble> tree;
  {
    // Bound propagation needs a network of differentiable layers: a tree ensemble goes to the
    // tree verifier; an SVM or other ONNX-ML op on the path is a usage error (exit 2), not an
    // 'unknown' verdict.
    const std::string model = vm["model"].as<std::string>();
    if (fs::exists(model)) {
      engine::Graph graph = engine::load_onnx(model);
      // A tree ensemble the engine cannot recover exactly (a pipeline step before it, an EQ split...)
      // is refused with the reason, as any other non-differentiable model.
      std::string tree_reason;
      if (engine::has_tree_ensemble(graph)) {
        try {
          tree = engine::extract_tree_ensemble(graph, g.model_output);
        } catch (const UnsupportedError& e) {
          tree_reason = e.what();
        }
      }
      auto blockers = engine::non_differentiable_nodes(graph, 0);
      if (!tree && !blockers.empty()) {
        const engine::Node& n = *blockers.front();
        throw UnsupportedError(
            "verify", fmt::format("{}: bound propagation cannot verify this model: node '{}' ({}) is not a "
                                  "differentiable layer{}; falsify by sampling instead (attack --attack square)",
                                  model, n.name, n.domain.empty() ? n.op_type : n.domain + "." + n.op_type,
                                  tree_reason.empty() ? "" : ", and the exact tree verifier cannot read it (" + tree_reason + ")"));
      }
    }
  }
  if (!tree && vm.count("minimal-distance"))
    throw InputError("verify", "--minimal-distance is for tree-ensemble models (exact over threshold cells)");
  const engine::TreeEnsemble* t = tree ? &*tree : nullptr;
  if (vm.count("vnnlib")) return run_vnnlib(vm, g, t);
  if (vm.count("fairness")) return run_fairness(vm, g, t);
  return run_data(vm, g, t);
}

}  // namespace

MLAUDIT_COMMAND("verify", "prove or falsify robustness/fairness properties (bound propagation, BaB, Z3)", cmd_verify);

}  // namespace mlaudit::cli
