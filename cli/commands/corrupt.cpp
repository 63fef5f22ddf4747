// mlaudit corrupt: accuracy under common corruptions (Hendrycks & Dietterich 2019) or tabular noise.
#ifdef MLAUDIT_HAVE_robustness
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/robustness/report.h"
#include "shard.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/robustness/corruptions.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

std::vector<int> parse_severities(const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split_list(text)) {
    auto dash = item.find('-');
    int a = 0, b = 0;
    try {
      size_t p1 = 0, p2 = 0;
      if (dash == std::string::npos) {
        a = b = std::stoi(item, &p1);
        p2 = item.size() - p1;
        if (p1 != item.size()) throw 0;
      } else {
        a = std::stoi(item.substr(0, dash), &p1);
        b = std::stoi(item.substr(dash + 1), &p2);
        if (p1 != dash || p2 != item.size() - dash - 1) throw 0;
      }
    } catch (...) {
      throw InputError("cli", fmt::format("corrupt: --severities: '{}' is not a severity or a range like 1-5", item));
    }
    if (a < 1 || b > 5 || a > b) throw InputError("cli", fmt::format("corrupt: --severities: '{}' is outside 1..5", item));
    for (int s = a; s <= b; ++s) out.push_back(s);
  }
  if (out.empty()) throw InputError("cli", "corrupt: --severities is empty");
  return out;
}

int cmd_corrupt(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("corrupt options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model (one input, logits output)")
      ("data,d", po::value<std::string>(), "inputs .npy: images [N,C,H,W] in [0,1] or tabular [N,F]")
      ("labels,l", po::value<std::string>(), "integer labels .npy [N]")
      ("corruptions", po::value<std::string>(), "comma list (default: all image corruptions for [N,C,H,W], all tabular for [N,F])")
      ("severities", po::value<std::string>()->default_value("1-5"), "severities, e.g. 1-5 or 1,3,5")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("batch", po::value<int>()->default_value(256), "samples per model call")
      ("limit", po::value<int64_t>()->default_value(0), "use only the first N samples (0: all)")
      ("out,o", po::value<std::string>(), "report JSON");
  shard::add_option(desc);
  po::variables_map vm;
  if (!parse_options("corrupt", "mlaudit corrupt --model M --data X.npy --labels y.npy [--corruptions list] [--severities 1-5] [--shard I/N] --out C.json",
                     desc, args, vm, {"model", "data", "labels", "out"}))
    return 0;
  const auto severities = parse_severities(vm["severities"].as<std::string>());
  shard::Shard part = shard::parse("corrupt", vm);
  auto model = load_model(vm["model"].as<std::string>(), global);
  // Image corruptions are defined on [0, 1] pixels (they clip to it); tabular noise has no domain.
  LabeledData in = read_labeled_data("corrupt", vm["data"].as<std::string>(), vm["labels"].as<std::string>(), *model,
                                     vm["limit"].as<int64_t>());
  engine::Tensor& x = in.x;
  if (x.rank() == 4) datasets::check_in_domain("corrupt: --data " + vm["data"].as<std::string>(), x, 0.0, 1.0);
  std::vector<int64_t>& y = in.y;
  if (x.rank() != 2 && x.rank() != 4)
    throw InputError("cli", fmt::format("corrupt: --data {} must be images [N,C,H,W] or tabular [N,F], got {}", vm["data"].as<std::string>(), engine::shape_str(x.shape())));
  std::vector<std::string> corruptions = vm.count("corruptions") ? split_list(vm["corruptions"].as<std::string>())
                                         : (x.rank() == 4 ? robustness::image_corruptions() : robustness::tabular_corruptions());
  if (corruptions.empty()) throw InputError("cli", "corrupt: --corruptions is empty");
  // --shard I/N: rows [first, end) of the whole set (tabular statistics still from every row;
  // each row's noise is keyed by its global index), so the parts' counts add up to one run's.
  shard::set_total(part, "corrupt", x.dim(0));
  robustness::CorruptionReport rep;
  {
    engine::ProgressLine progress("corrupt (corruption x severity)", "runs", global.show_progress());
    rep = robustness::evaluate_corruptions(*model, x, y, corruptions, severities, vm["seed"].as<uint64_t>(), vm["batch"].as<int>(),
                                           progress.fn(), part.first, part.end);
  }

  nlohmann::json j = robustness::corrupt_report(rep, corruptions, x.rank() == 4, vm["model"].as<std::string>(),
                                                vm["data"].as<std::string>(),
                                                {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
                                                 {"data", datasets::file_provenance(vm["data"].as<std::string>())},
                                                 {"labels", datasets::file_provenance(vm["labels"].as<std::string>())}},
                                                MLAUDIT_VERSION);
  if (part.on) shard::make_part(j, "corrupt", part, vm, global);
  datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(1) + "\n");
  if (!global.quiet) {
    std::cout << fmt::format("clean accuracy {:.4f}, mean corruption accuracy {:.4f} (relative drop {:.3f}){}\n",
                             j["clean_accuracy"].get<double>(), j["mean_corruption_accuracy"].get<double>(),
                             j["relative_drop"].get<double>(),
                             part.on ? fmt::format(" on shard {}/{} (samples {}-{})", part.index, part.count, part.first, part.end - 1) : "");
    for (const auto& e : j["corruptions"])
      std::cout << fmt::format("  {:<16} mean accuracy {:.4f}\n", e["name"].get<std::string>(), e["mean_accuracy"].get<double>());
    std::cout << "report: " << vm["out"].as<std::string>() << "\n";
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("corrupt", "accuracy under common corruptions (images) or feature noise/dropout (tabular)", cmd_corrupt);
}  // namespace mlaudit::cli
#endif  // MLAUDIT_HAVE_robustness
