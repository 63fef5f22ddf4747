// mlaudit merge: the parts written by `attack|certify|corrupt|explain|privacy|verify --data|--benchmark ... --shard I/N`
// into the report one process writes (the merging itself: merge.cpp).
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "merge.h"
#include "mlaudit/datasets/io.h"

namespace mlaudit::cli {
namespace {

int cmd_merge(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("merge options");
  desc.add_options()("parts", po::value<std::vector<std::string>>()->multitoken(), "part JSON files (written with --shard I/N)")(
      "out,o", po::value<std::string>(), "merged report JSON (what one process writes)")(
      "attributions", po::value<std::string>(),
      "explain parts: also join the parts' attribution arrays into A.npy (each read where its part recorded it, or "
      "beside the part)");
  po::positional_options_description pos;
  pos.add("parts", -1);
  po::variables_map vm;
  if (!parse_options("merge", "mlaudit merge PART.json... --out R.json [--attributions A.npy]   (parts of attack, certify, corrupt, explain, privacy, verify --data or --benchmark run with --shard I/N; a benchmark may merge into results.csv)",
                     desc, args, vm, {"parts", "out"}, &pos))
    return 0;
  std::vector<PartText> texts;
  for (const auto& path : vm["parts"].as<std::vector<std::string>>()) texts.push_back({path, datasets::read_file(path, int64_t(4) << 30)});
  const std::string out = vm["out"].as<std::string>();
  const std::string attributions = vm.count("attributions") ? vm["attributions"].as<std::string>() : "";
  const MergedReport r = merge_parts(texts, out, attributions);
  if (!attributions.empty()) datasets::write_file_atomic(attributions, r.attributions_npy);
  datasets::write_file_atomic(out, r.text);
  if (!global.quiet) {
    if (r.device_sampler)
      std::cerr << "mlaudit: warning: merge: the certify parts used the device sampler, whose noise depends on the slice: "
                   "the certificates are valid but not the ones one process draws\n";
    std::cout << fmt::format("merged {} shards of {} ({} samples): {}\n", r.shards, r.command, r.samples, out);
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("merge", "combine the parts of a sharded run (--shard I/N) into the report one process writes", cmd_merge);
}  // namespace mlaudit::cli
