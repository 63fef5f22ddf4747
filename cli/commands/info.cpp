// mlaudit info: inputs, outputs, shapes, op histogram, parameters, op support.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

nlohmann::json value_json(const engine::ValueInfo& v) {
  return {{"name", v.name}, {"dtype", engine::dtype_name(v.dtype)}, {"shape", v.shape}};
}

int cmd_info(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("info options");
  desc.add_options()("model", po::value<std::string>(), "ONNX model file")("json", "print JSON instead of text");
  po::variables_map vm;
  if (!parse_options("info", "mlaudit info --model M.onnx [--json]", desc, args, vm, {"model"})) return 0;
  engine::Graph g = engine::load_onnx(vm["model"].as<std::string>());
  auto unsupported = engine::unsupported_ops(g);
  nlohmann::json j;
  j["schema"] = "mlaudit.info/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["model"] = g.source;
  j["opset"] = g.opset;
  j["producer"] = g.producer;
  j["inputs"] = nlohmann::json::array();
  for (const auto& v : g.inputs) j["inputs"].push_back(value_json(v));
  j["outputs"] = nlohmann::json::array();
  for (const auto& v : g.outputs) j["outputs"].push_back(value_json(v));
  j["nodes"] = g.nodes.size();
  j["op_histogram"] = g.op_histogram();
  j["parameters"] = g.parameter_count();
  j["all_ops_supported"] = unsupported.empty();
  j["unsupported_ops"] = unsupported;
  // How the CPU runs a forward pass: the fused dense-chain path (single-chain tabular MLPs) or
  // op by op (docs/architecture.md).
  bool fused = false;
  if (unsupported.empty()) fused = engine::Session(g).fused();
  j["cpu_forward"] = fused ? "fused-dense-chain" : "op-by-op";
  if (vm.count("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("model:      {}\nopset:      {}\nproducer:   {}\n", g.source, g.opset, g.producer);
  for (const auto& v : g.inputs)
    std::cout << fmt::format("input:      {} {} {}\n", v.name, engine::dtype_name(v.dtype), engine::shape_str(v.shape));
  for (const auto& v : g.outputs)
    std::cout << fmt::format("output:     {} {} {}\n", v.name, engine::dtype_name(v.dtype), engine::shape_str(v.shape));
  std::cout << fmt::format("nodes:      {}\nparameters: {}\nops:       ", g.nodes.size(), g.parameter_count());
  for (const auto& [op, n] : g.op_histogram()) std::cout << fmt::format(" {}x{}", op, n);
  std::cout << "\n";
  if (unsupported.empty()) std::cout << fmt::format("supported:  all ops\ncpu fwd:    {}\n", fused ? "fused dense chain" : "op by op");
  else {
    std::cout << "supported:  NO, unsupported ops:";
    for (const auto& op : unsupported) std::cout << " " << op;
    std::cout << "\n";
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("info", "describe an ONNX model: inputs, outputs, ops, parameters, support", cmd_info);
}  // namespace mlaudit::cli
