// mlaudit run: execute a model on .npy inputs and write each output as .npy.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "command.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::cli {
namespace {

std::string safe_file_name(const std::string& name) {
  std::string out;
  for (char c : name) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') ? c : '_';
  if (out.empty() || out == "." || out == "..") out = "output";
  return out;
}

// Rows of the inputs (their common dim 0) when the model can run them in slices: every graph
// input and output declares a dynamic dim 0 and every input tensor has that many rows; else -1.
int64_t sliceable_rows(const engine::Session& session, const std::vector<engine::Tensor>& tensors) {
  if (tensors.empty()) return -1;
  int64_t rows = -1;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& declared = session.inputs()[k].shape;
    if (declared.empty() || declared[0] >= 0 || tensors[k].rank() == 0) return -1;
    if (rows >= 0 && tensors[k].dim(0) != rows) return -1;
    rows = tensors[k].dim(0);
  }
  for (const auto& o : session.outputs())
    if (o.shape.empty() || o.shape[0] >= 0) return -1;
  return rows;
}

// The model over `tensors`, `batch` rows at a time where the model allows (sliceable_rows), so
// the intermediates of one slice are alive at a time instead of those of every row: the
// outputs equal one whole run's, row for row (rows do not interact in a batched model).
std::vector<engine::Tensor> run_in_batches(const engine::Session& session, const std::vector<engine::Tensor>& tensors,
                                           int64_t batch) {
  const int64_t rows = sliceable_rows(session, tensors);
  if (batch == 0 || rows <= batch) return session.run(tensors);
  std::vector<std::vector<engine::Tensor>> parts(session.outputs().size());
  for (int64_t b = 0; b < rows; b += batch) {
    std::vector<engine::Tensor> slice;
    for (const auto& t : tensors) slice.push_back(t.slice_rows(b, std::min(rows, b + batch)));
    auto outs = session.run(slice);
    for (size_t k = 0; k < outs.size(); ++k) {
      // An output that is not one row per input row cannot be stitched: run everything at once.
      if (outs[k].rank() == 0 || outs[k].dim(0) != slice[0].dim(0)) return session.run(tensors);
      parts[k].push_back(std::move(outs[k]));
    }
  }
  std::vector<engine::Tensor> out;
  for (auto& p : parts) out.push_back(engine::concat_rows(p));
  return out;
}

int cmd_run(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("run options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX model file")(
      "data,d", po::value<std::vector<std::string>>(), "FILE.npy for the first input, or NAME=FILE.npy (repeatable)")(
      "out,o", po::value<std::string>(), "folder for <output name>.npy files")(
      "batch", po::value<int64_t>()->default_value(256),
      "rows per forward pass when every input and output is batched along dim 0 (0: all rows at once)");
  po::variables_map vm;
  if (!parse_options("run", "mlaudit run --model M.onnx --data FILE.npy [--data NAME=FILE.npy ...] --out DIR [--batch 256]\n"
                     "(a model without graph inputs runs without --data)",
                     desc, args, vm, {"model", "out"}))
    return 0;
  auto session = load_model(vm["model"].as<std::string>(), global);
  const auto& ins = session->inputs();
  std::vector<engine::Tensor> tensors(ins.size());
  size_t positional = 0;
  std::vector<std::string> specs;
  if (vm.count("data")) specs = vm["data"].as<std::vector<std::string>>();
  if (specs.empty() && !ins.empty())
    throw InputError("cli", fmt::format("run: the option '--data' is required: the model has {} input(s) ({}{})",
                                        ins.size(), ins[0].name, ins.size() > 1 ? ", ..." : ""));
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    size_t k = 0;
    std::string file = spec;
    if (eq != std::string::npos) {
      std::string name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
      auto it = std::find_if(ins.begin(), ins.end(), [&](const auto& v) { return v.name == name; });
      if (it == ins.end()) {
        std::string names;
        for (const auto& v : ins) names += (names.empty() ? "" : ", ") + v.name;
        throw InputError("cli", fmt::format("run: the model has no input '{}' (inputs: {})", name, names));
      }
      k = it - ins.begin();
    } else {
      k = positional++;
      if (k >= ins.size()) throw InputError("cli", fmt::format("run: more --data files than model inputs ({})", ins.size()));
    }
    tensors[k] = datasets::read_npy(file);
  }
  for (size_t k = 0; k < ins.size(); ++k)
    if (tensors[k].empty()) throw InputError("cli", fmt::format("run: no --data given for model input '{}'", ins[k].name));
  const int64_t batch = vm["batch"].as<int64_t>();
  if (batch < 0) throw InputError("cli", "run: --batch must be >= 0");
  auto outs = run_in_batches(*session, tensors, batch);
  std::string dir = vm["out"].as<std::string>();
  for (size_t k = 0; k < outs.size(); ++k) {
    std::string path = (std::filesystem::path(dir) / (safe_file_name(session->outputs()[k].name) + ".npy")).string();
    datasets::write_npy(path, outs[k]);
    if (!global.quiet) std::cout << fmt::format("{} {} -> {}\n", session->outputs()[k].name, engine::shape_str(outs[k].shape()), path);
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("run", "run a model on .npy inputs and write its outputs as .npy", cmd_run);
}  // namespace mlaudit::cli
