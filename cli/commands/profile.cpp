// mlaudit profile: what a forward pass costs on this machine: batch-1 latency (p50, p99),
// throughput at a batch, peak memory, parameters and operations (mlaudit.efficiency/1; the
// audit's efficiency section).
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "command.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/cost.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::cli {
namespace {

double peak_rss_mb() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

int cmd_profile(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("profile options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX model")(
      "runs", po::value<int64_t>()->default_value(200), "timed batch-1 forward passes (stops after 10 s)")(
      "batch", po::value<int64_t>()->default_value(256), "batch size of the throughput measurement")(
      "clip-min", po::value<double>()->default_value(0.0), "inputs are drawn uniformly from [clip-min, clip-max)")(
      "clip-max", po::value<double>()->default_value(1.0), "upper end of the input range")(
      "seed", po::value<uint64_t>()->default_value(0), "input seed")(
      "out,o", po::value<std::string>(), "write the JSON result (mlaudit.efficiency/1) here");
  po::variables_map vm;
  if (!parse_options("profile",
                     "mlaudit profile --model M.onnx [--runs 200] [--batch 256] [--clip-min 0 --clip-max 1] [--seed S] "
                     "[--out R.json]",
                     desc, args, vm, {"model"}))
    return 0;
  const int64_t runs = vm["runs"].as<int64_t>(), big = vm["batch"].as<int64_t>();
  double lo = vm["clip-min"].as<double>(), hi = vm["clip-max"].as<double>();
  if (runs < 1) throw InputError("cli", "profile: --runs must be >= 1");
  if (big < 1) throw InputError("cli", "profile: --batch must be >= 1");
  if (!(lo < hi)) throw InputError("cli", fmt::format("profile: the input range [{}, {}] is empty", lo, hi));
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;  // an open domain keeps [0, 1)
  const std::string path = vm["model"].as<std::string>();
  auto session = load_model(path, global);
  if (session->inputs().empty()) throw InputError("cli", fmt::format("profile: model '{}' has no inputs", path));
  engine::Shape shape = session->inputs()[0].shape;
  for (auto& d : shape)
    if (d < 0) d = 1;  // dynamic dims: batch 1
  // Inputs uniform in [lo, hi), seeded; timing does not depend on the values for dense models.
  std::mt19937 rng(static_cast<std::mt19937::result_type>(vm["seed"].as<uint64_t>()));
  auto random_input = [&](int64_t batch) {
    engine::Shape s = shape;
    s[0] = batch;
    engine::Tensor t(s);
    std::uniform_real_distribution<float> u{static_cast<float>(lo), static_cast<float>(hi)};
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
    return t;
  };
  using clock = std::chrono::steady_clock;
  engine::Tensor one = random_input(1);
  for (int i = 0; i < 3; ++i) session->forward(one);  // warm-up: allocations, caches
  // `runs` timed calls, stopping early after 10 s of wall time (large models); p99 of fewer
  // than 100 runs is the maximum, so runs defaults to 200.
  std::vector<double> ms;
  auto start = clock::now();
  for (int64_t i = 0; i < runs; ++i) {
    auto t0 = clock::now();
    session->forward(one);
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (std::chrono::duration<double>(clock::now() - start).count() > 10.0) break;
  }
  engine::Tensor many = random_input(big);
  session->forward(many);
  const int reps = 5;
  auto t0 = clock::now();
  for (int i = 0; i < reps; ++i) session->forward(many);
  double secs = std::chrono::duration<double>(clock::now() - t0).count();
  nlohmann::json r;
  r["schema"] = "mlaudit.efficiency/1";
  r["backend"] = session->backend_name();
  r["threads"] = engine::num_threads();
  r["parameters"] = session->graph().parameter_count();
  try {
    r["flops"] = engine::estimate_flops(engine::load_onnx(path));  // the model as exported
  } catch (const InputError& e) {
    r["flops"] = nullptr;  // shapes the estimate cannot infer
    r["flops_error"] = e.what();
  }
  r["latency_runs"] = ms.size();
  r["latency_p50_ms"] = percentile(ms, 0.50);
  r["latency_p99_ms"] = percentile(ms, 0.99);
  r["batch"] = big;
  r["throughput_per_s"] = secs > 0 ? double(big * reps) / secs : 0.0;
  r["peak_rss_mb"] = peak_rss_mb();
  if (vm.count("out")) datasets::write_file_atomic(vm["out"].as<std::string>(), r.dump(1) + "\n");
  if (!global.quiet)
    std::cout << fmt::format("latency p50 {:.3f} ms, p99 {:.3f} ms (batch 1, {} runs); throughput {:.0f}/s at batch {}; "
                             "{} parameters\n",
                             r["latency_p50_ms"].get<double>(), r["latency_p99_ms"].get<double>(), ms.size(),
                             r["throughput_per_s"].get<double>(), big, r["parameters"].get<int64_t>());
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("profile", "latency, throughput, memory, parameters and operations of a forward pass", cmd_profile);
}  // namespace mlaudit::cli
