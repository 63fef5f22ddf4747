// mlaudit certify: randomized-smoothing L2 certificates (Cohen, Rosenfeld, Kolter 2019).
#ifdef MLAUDIT_HAVE_robustness
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "shard.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/robustness/report.h"
#include "mlaudit/robustness/smoothing.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

int cmd_certify(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("certify options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model (one input, logits output)")
      ("data,d", po::value<std::string>(), "inputs .npy [N,...]")
      ("labels,l", po::value<std::string>(), "integer labels .npy [N]")
      ("sigma", po::value<double>(), "Gaussian noise standard deviation (input units)")
      ("n0", po::value<int64_t>()->default_value(100), "selection samples N0")
      ("n", po::value<int64_t>()->default_value(100000), "estimation samples N")
      ("alpha", po::value<double>()->default_value(0.001), "failure probability")
      ("batch", po::value<int>()->default_value(1000), "noisy copies per forward call")
      ("seed", po::value<uint64_t>()->default_value(0), "noise seed")
      ("radii", po::value<std::string>()->default_value("0,0.25,0.5,0.75,1,1.5,2"), "radii for certified accuracy")
      ("limit", po::value<int64_t>()->default_value(0), "certify only the first N samples (0: all)")
      ("out,o", po::value<std::string>(), "report JSON");
  shard::add_option(desc);
  po::variables_map vm;
  if (!parse_options("certify",
                     "mlaudit certify --model M --data X.npy --labels y.npy --sigma S [--n0 100] [--n 100000] "
                     "[--alpha 0.001] [--batch B] [--seed S] [--shard I/N] --out C.json",
                     desc, args, vm, {"model", "data", "labels", "sigma", "out"}))
    return 0;
  robustness::SmoothingConfig cfg;
  cfg.sigma = vm["sigma"].as<double>();
  cfg.n0 = vm["n0"].as<int64_t>();
  cfg.n = vm["n"].as<int64_t>();
  cfg.alpha = vm["alpha"].as<double>();
  cfg.batch = vm["batch"].as<int>();
  cfg.seed = vm["seed"].as<uint64_t>();
  const auto radii = parse_double_list("radii", vm["radii"].as<std::string>());
  shard::Shard part = shard::parse("certify", vm);
  auto model = load_model(vm["model"].as<std::string>(), global);
  // Smoothing adds unbounded Gaussian noise, so there is no input domain to check; data must be finite.
  LabeledData in = read_labeled_data("certify", vm["data"].as<std::string>(), vm["labels"].as<std::string>(), *model,
                                     vm["limit"].as<int64_t>());
  // --shard I/N: rows [first, end). Sample i's noise is seeded by seed * 1000003 + i
  // (robustness::certify_dataset, i counted from the first row it is given); 1000003 is odd, so
  // it has an inverse modulo 2^64 and the seed below makes row k of the slice draw exactly the
  // noise of global sample first + k.
  shard::set_total(part, "certify", in.x.dim(0));
  robustness::SmoothingConfig run_cfg = cfg;
  if (part.on) {
    in.x = in.x.slice_rows(part.first, part.end);
    in.y.assign(in.y.begin() + part.first, in.y.begin() + part.end);
    uint64_t inverse = 1;  // 1000003^-1 mod 2^64 by Newton's iteration (each step doubles the correct bits)
    for (int k = 0; k < 6; ++k) inverse *= 2 - 1000003ULL * inverse;
    run_cfg.seed = cfg.seed + uint64_t(part.first) * inverse;
  }
  engine::Tensor& x = in.x;
  std::vector<int64_t>& y = in.y;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<robustness::CertifyRecord> recs;
  {
    engine::ProgressLine progress("certify", "samples", global.show_progress());
    run_cfg.progress = progress.fn();
    recs = robustness::certify_dataset(*model, x, y, run_cfg);
    run_cfg.progress = nullptr;
  }
  for (auto& r : recs) r.index += part.first;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = robustness::certify_report(
      recs, cfg, radii, vm["model"].as<std::string>(), vm["data"].as<std::string>(),
      {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
       {"data", datasets::file_provenance(vm["data"].as<std::string>())},
       {"labels", datasets::file_provenance(vm["labels"].as<std::string>())}},
      seconds, MLAUDIT_VERSION);
  const bool on_device = !recs.empty() && recs.front().device;
  if (part.on) {
    shard::make_part(j, "certify", part, vm, global);
    // The device sampler's Philox counters run over the whole call, so a slice draws other noise
    // than one process would: valid certificates, not the same ones.
    if (on_device) j["shard"]["device_sampler"] = true;
  }
  datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(1) + "\n");
  if (!global.quiet) {
    std::cout << fmt::format("certify sigma {} on {} samples ({:.3f} s/sample, {} sampler), abstain rate {:.3f}\n", cfg.sigma, recs.size(),
                             j["seconds_per_sample"].get<double>(), on_device ? "device" : "host", j["abstain_rate"].get<double>());
    for (size_t k = 0; k < radii.size(); ++k) {
      const auto& ci = j["certified_accuracy"][k]["accuracy_ci"];
      std::cout << fmt::format("  certified accuracy at r = {:<6g} {:.4f} (95% CI {:.3f}-{:.3f}, n = {})\n", radii[k],
                               j["certified_accuracy"][k]["accuracy"].get<double>(),
                               ci["lower"].get<double>(), ci["upper"].get<double>(), recs.size());
    }
    std::cout << "report: " << vm["out"].as<std::string>() << "\n";
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("certify", "randomized-smoothing certified L2 radii and certified accuracy", cmd_certify);
}  // namespace mlaudit::cli
#endif  // MLAUDIT_HAVE_robustness
