// mlaudit backdoor: Neural Cleanse trigger reverse-engineering over the output classes,
// and STRIP entropy screening of suspicious inputs.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/privacy/backdoor.h"
#include "mlaudit/privacy/report.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

namespace fs = std::filesystem;

int cmd_backdoor(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("backdoor options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX image classifier (input [N,C,H,W], logits output)")
      ("data,d", po::value<std::string>(), "clean images .npy [N,C,H,W] (Neural Cleanse data and STRIP overlay pool)")
      ("limit", po::value<int64_t>()->default_value(0), "use only the first N clean images (0: all)")
      ("classes", po::value<std::string>(), "comma list of classes to scan (default: all)")
      ("epochs", po::value<int>()->default_value(60), "Neural Cleanse outer steps per class (reference: 1000)")
      ("nc-batch", po::value<int>()->default_value(32), "Neural Cleanse mini-batch")
      ("init-cost", po::value<double>()->default_value(1e-3), "initial weight of the mask L1 term")
      ("anomaly-threshold", po::value<double>()->default_value(2.0), "flag classes whose anomaly index exceeds this")
      ("suspicious", po::value<std::string>(), "images .npy to screen with STRIP")
      ("strip-overlays", po::value<int>()->default_value(100), "STRIP: clean overlays per input")
      ("frr", po::value<double>()->default_value(0.01), "STRIP: false rejection rate on clean inputs")
      ("no-neural-cleanse", "skip Neural Cleanse (STRIP only)")
      ("clip-min", po::value<double>()->default_value(0.0), "input domain lower bound")
      ("clip-max", po::value<double>()->default_value(1.0), "input domain upper bound")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("trigger-dir", po::value<std::string>(), "folder for reversed-trigger PNGs (default: <out>.triggers/)")
      ("all-triggers", "save the reversed trigger of every class, not only flagged ones")
      ("fail-on-flag", "exit 1 when a class or an input is flagged (release gate)")
      ("out,o", po::value<std::string>(), "write the report JSON here (mlaudit.backdoor/1)");
  po::variables_map vm;
  const std::string usage =
      "mlaudit backdoor --model M.onnx --data X.npy [--classes 0,1,..] [--epochs N] [--suspicious S.npy] --out B.json";
  if (!parse_options("backdoor", usage, desc, args, vm, {"model", "data", "out"})) return 0;

  privacy::NeuralCleanseConfig nc;
  nc.epochs = vm["epochs"].as<int>();
  nc.batch = vm["nc-batch"].as<int>();
  nc.init_cost = vm["init-cost"].as<double>();
  nc.clip_min = vm["clip-min"].as<double>();
  nc.clip_max = vm["clip-max"].as<double>();
  nc.seed = vm["seed"].as<uint64_t>();
  if (nc.epochs < 1) throw InputError("backdoor", fmt::format("--epochs must be >= 1, got {}", nc.epochs));
  if (nc.batch < 1) throw InputError("backdoor", fmt::format("--nc-batch must be >= 1, got {}", nc.batch));
  if (!(nc.init_cost >= 0)) throw InputError("backdoor", "--init-cost must be >= 0");
  if (!(nc.clip_max > nc.clip_min)) throw InputError("backdoor", "--clip-max must be greater than --clip-min");
  privacy::StripConfig sc;
  sc.overlays = vm["strip-overlays"].as<int>();
  sc.false_rejection_rate = vm["frr"].as<double>();
  sc.clip_min = nc.clip_min;
  sc.clip_max = nc.clip_max;
  sc.seed = nc.seed;
  if (sc.overlays < 1) throw InputError("backdoor", "--strip-overlays must be >= 1");
  if (!(sc.false_rejection_rate > 0 && sc.false_rejection_rate < 1))
    throw InputError("backdoor", "--frr must be inside (0,1)");
  const double anomaly_threshold = vm["anomaly-threshold"].as<double>();
  std::vector<int64_t> classes;
  if (vm.count("classes"))
    for (const auto& s : split_list(vm["classes"].as<std::string>())) {
      try {
        size_t used = 0;
        classes.push_back(std::stoll(s, &used));
        if (used != s.size()) throw std::invalid_argument(s);
      } catch (const std::exception&) {
        throw InputError("backdoor", "--classes: '" + s + "' is not a class index");
      }
    }
  const bool run_nc = !vm.count("no-neural-cleanse");
  if (!run_nc && !vm.count("suspicious")) throw InputError("backdoor", "--no-neural-cleanse needs --suspicious");

  const std::string out = vm["out"].as<std::string>();
  engine::Tensor clean = datasets::read_npy_float(vm["data"].as<std::string>());
  if (vm["limit"].as<int64_t>() < 0) throw InputError("backdoor", "--limit must be >= 0");
  if (const int64_t limit = vm["limit"].as<int64_t>(); limit > 0 && clean.rank() >= 1 && limit < clean.dim(0))
    clean = clean.slice_rows(0, limit);
  if (clean.rank() != 4)
    throw InputError("backdoor", vm["data"].as<std::string>() + ": expected images [N,C,H,W], got " +
                                     engine::shape_str(clean.shape()));
  engine::Tensor suspicious;
  if (vm.count("suspicious")) suspicious = datasets::read_npy_float(vm["suspicious"].as<std::string>());
  datasets::check_in_domain("backdoor: --data " + vm["data"].as<std::string>(), clean, nc.clip_min, nc.clip_max);
  if (vm.count("suspicious"))
    datasets::check_in_domain("backdoor: --suspicious " + vm["suspicious"].as<std::string>(), suspicious, nc.clip_min,
                              nc.clip_max);
  auto model = load_model(vm["model"].as<std::string>(), global);

  nlohmann::json j;
  j["schema"] = "mlaudit.backdoor/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["model"] = vm["model"].as<std::string>();
  j["inputs"] = {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
                 {"clean", datasets::file_provenance(vm["data"].as<std::string>())}};
  if (vm.count("suspicious")) j["inputs"]["suspicious"] = datasets::file_provenance(vm["suspicious"].as<std::string>());
  j["clean"] = {{"file", vm["data"].as<std::string>()}, {"count", clean.dim(0)}};
  bool any_flag = false;
  const auto t0 = std::chrono::steady_clock::now();
  // Everything is computed before any file is written, so a failure leaves nothing half-done.
  std::vector<std::pair<std::string, privacy::ReversedTrigger>> pngs;
  if (run_nc) {
    const auto r = [&] {
      engine::ProgressLine progress("backdoor: Neural Cleanse", "classes", global.show_progress());
      nc.progress = progress.fn();
      auto result = privacy::neural_cleanse(*model, clean, classes, nc, anomaly_threshold);
      nc.progress = nullptr;
      return result;
    }();
    const std::string dir = vm.count("trigger-dir") ? vm["trigger-dir"].as<std::string>() : out + ".triggers";
    const bool all_triggers = vm.count("all-triggers") > 0;
    j["neural_cleanse"] = privacy::neural_cleanse_json(r, nc, [&](const privacy::ReversedTrigger& t, bool flagged) {
      if (!flagged && !all_triggers) return std::string();
      const std::string png = (fs::path(dir) / fmt::format("trigger_class_{}.png", t.target)).string();
      pngs.emplace_back(png, t);
      return png;
    });
    any_flag = any_flag || !r.flagged.empty();
  }
  if (!suspicious.empty()) {
    const auto s = privacy::strip(*model, suspicious, clean, sc);
    j["strip"] = privacy::strip_json(s, sc, vm["suspicious"].as<std::string>());
    any_flag = any_flag || !j["strip"]["flagged"].empty();
  }
  j["timing"] = {{"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                 {"note", "Neural Cleanse and STRIP only: model loading and file I/O excluded"}};
  j["verdict"] = any_flag ? "backdoor_suspected" : "no_backdoor_found";
  for (const auto& [path, t] : pngs) privacy::write_trigger_png(path, t, nc.clip_min, nc.clip_max);
  datasets::write_file_atomic(out, j.dump(1) + "\n");
  if (!global.quiet) {
    if (j.contains("neural_cleanse")) {
      std::cout << fmt::format("Neural Cleanse: median mask L1 {:.2f}, MAD {:.2f}\n", double(j["neural_cleanse"]["median_l1"]),
                               double(j["neural_cleanse"]["mad_l1"]));
      for (const auto& c : j["neural_cleanse"]["classes"])
        std::cout << fmt::format("  class {:>3}: L1 {:8.2f}  anomaly index {:>6}  success {:.3f}{}\n", int64_t(c["class"]),
                                 double(c["l1_norm"]),
                                 c["anomaly_index"].is_null() ? std::string("inf") : fmt::format("{:.2f}", double(c["anomaly_index"])),
                                 double(c["attack_success"]), bool(c["flagged"]) ? "  FLAGGED" : "");
    }
    if (j.contains("strip"))
      std::cout << fmt::format("STRIP: threshold {:.4f} bits, {} of {} inputs flagged\n", double(j["strip"]["threshold"]),
                               j["strip"]["flagged"].size(), suspicious.dim(0));
    std::cout << "verdict: " << std::string(j["verdict"]) << "\nwrote " << out << "\n";
  }
  return any_flag && vm.count("fail-on-flag") ? 1 : 0;
}

}  // namespace
MLAUDIT_COMMAND("backdoor", "backdoor scan: Neural Cleanse trigger reverse-engineering and STRIP", cmd_backdoor);
}  // namespace mlaudit::cli
