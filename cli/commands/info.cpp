// mlaudit info: inputs, outputs, shapes, op histogram, parameters, op support.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/cost.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/trees.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

nlohmann::json value_json(const engine::ValueInfo& v) {
  return {{"name", v.name}, {"dtype", engine::dtype_name(v.dtype)}, {"shape", v.shape}};
}

// The op support table, from the engine's registry (the same one that runs the ops).
int print_ops(bool json) {
  auto rows = engine::op_support_table();
  if (json) {
    nlohmann::json j;
    j["schema"] = "mlaudit.ops/1";
    j["tool_version"] = MLAUDIT_VERSION;
    j["onnx_schema_release"] = engine::onnx_schema_release();
    j["newest_opset"] = {{"ai.onnx", engine::newest_known_opset("")}, {"ai.onnx.ml", engine::newest_known_opset("ai.onnx.ml")}};
    j["ops"] = nlohmann::json::array();
    for (const auto& r : rows)
      j["ops"].push_back({{"domain", r.domain.empty() ? "ai.onnx" : r.domain},
                          {"op", r.op_type},
                          {"first_opset", r.first_opset},
                          {"last_opset", r.last_opset},
                          {"unsupported_versions", r.unsupported_versions},
                          {"forward", r.forward},
                          {"gradient", r.gradient},
                          {"differentiable", r.differentiable},
                          {"cuda", r.cuda ? "kernel" : "cpu-fallback"}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("Ops this build runs (schemas of onnx {}; opsets up to {} for ai.onnx, {} for ai.onnx.ml).\n"
                           "gradient: input gradients flow through the op ('none': integer/piecewise-constant outputs; "
                           "'not differentiable': gradient commands refuse the model).\n"
                           "cuda: a CUDA kernel, or the per-op CPU fallback.\n\n",
                           engine::onnx_schema_release(), engine::newest_known_opset(""),
                           engine::newest_known_opset("ai.onnx.ml"));
  std::cout << fmt::format("{:<11} {:<28} {:<13} {:<8} {:<18} {}\n", "domain", "op", "opsets", "forward", "gradient", "cuda");
  for (const auto& r : rows) {
    std::string opsets = fmt::format("{}-{}", r.first_opset, r.last_opset);
    if (!r.unsupported_versions.empty()) opsets += fmt::format(" (not {})", fmt::join(r.unsupported_versions, ","));
    std::string grad = !r.differentiable ? "not differentiable" : r.gradient ? "yes" : "none";
    std::cout << fmt::format("{:<11} {:<28} {:<13} {:<8} {:<18} {}\n", r.domain.empty() ? "ai.onnx" : r.domain, r.op_type,
                             opsets, r.forward ? "yes" : "no", grad, r.cuda ? "kernel" : "cpu fallback");
  }
  std::cout << fmt::format("\n{} ops.\n", rows.size());
  return 0;
}

int cmd_info(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("info options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX model file")("json", "print JSON instead of text")(
      "out,o", po::value<std::string>(), "also write the JSON (mlaudit.info/1) to this file")(
      "ops", "print the table of ops this build runs (domain, opsets, forward, gradient, CUDA) instead");
  po::variables_map vm;
  if (!parse_options("info", "mlaudit info --model M.onnx [--json] [--out INFO.json]\n       mlaudit info --ops [--json]", desc, args, vm))
    return 0;
  if (vm.count("ops")) return print_ops(vm.count("json") != 0);
  if (!vm.count("model"))
    throw InputError("cli", "info: the option '--model' is required (or --ops for the op table; see 'mlaudit info --help')");
  engine::Graph g = engine::load_onnx(vm["model"].as<std::string>());
  auto unsupported = engine::unsupported_ops(g);
  nlohmann::json j;
  j["schema"] = "mlaudit.info/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["model"] = g.source;
  j["opset"] = g.opset;
  if (g.ml_opset) j["ml_opset"] = g.ml_opset;
  j["producer"] = g.producer;
  j["inputs"] = nlohmann::json::array();
  for (const auto& v : g.inputs) j["inputs"].push_back(value_json(v));
  j["outputs"] = nlohmann::json::array();
  for (const auto& v : g.outputs) j["outputs"].push_back(value_json(v));
  j["opaque_outputs"] = nlohmann::json::array();
  for (const auto& o : g.opaque_outputs) j["opaque_outputs"].push_back({{"name", o.name}, {"type", o.type}, {"hint", o.hint}});
  j["nodes"] = g.nodes.size();
  j["op_histogram"] = g.op_histogram();
  j["parameters"] = g.parameter_count();
  j["all_ops_supported"] = unsupported.empty();
  j["unsupported_ops"] = unsupported;
  // How the CPU runs a forward pass: the fused dense-chain path (single-chain tabular MLPs) or
  // op by op (docs/dev/architecture.md).
  bool fused = false;
  std::string audited, activation;
  std::vector<std::string> blockers;
  if (unsupported.empty()) {
    engine::SessionOptions so;
    so.output = global.model_output;
    engine::Session session(g, so);
    fused = session.fused();
    audited = session.audited_output().name;
    activation = session.output_activation();
    for (const auto* n : session.gradient_blockers())
      blockers.push_back(fmt::format("{} ({})", n->name, n->domain.empty() ? n->op_type : n->domain + "." + n->op_type));
    j["audited_output"] = audited;
    j["output_activation"] = activation.empty() ? nlohmann::json(nullptr) : nlohmann::json(activation);
    j["differentiable"] = blockers.empty();
    j["non_differentiable_nodes"] = blockers;
  }
  j["cpu_forward"] = fused ? "fused-dense-chain" : "op-by-op";
  // Tree ensembles: whether the exact tree methods (TreeSHAP, the exact verifier, the exact
  // minimal attack) can read the model, and why not.
  std::string trees;
  if (unsupported.empty() && engine::has_tree_ensemble(g)) {
    try {
      engine::TreeEnsemble t = engine::extract_tree_ensemble(g, global.model_output);
      trees = t.describe();
      j["tree_ensemble"] = {{"exact_methods", true}, {"trees", t.tree_count()}, {"max_depth", t.max_depth()},
                            {"leaves", t.leaf_count()}, {"features", t.features}, {"description", trees}};
    } catch (const UnsupportedError& e) {
      trees = std::string("exact tree methods unavailable: ") + e.what();
      j["tree_ensemble"] = {{"exact_methods", false}, {"reason", e.what()}};
    }
  }
  // Operations of a batch-1 forward (engine/cost.h); null with the reason when shapes cannot
  // be inferred.
  try {
    j["flops"] = engine::estimate_flops(g);
  } catch (const InputError& e) {
    j["flops"] = nullptr;
    j["flops_error"] = e.what();
  }
  if (vm.count("out")) {
    datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(1) + "\n");
    if (global.quiet) return 0;  // written for a caller (the audit's model summary)
  }
  if (vm.count("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("model:      {}\nopset:      {}{}\nproducer:   {}\n", g.source,
                           g.opset ? std::to_string(g.opset) : std::string("none (ai.onnx not imported)"),
                           g.ml_opset ? fmt::format(" (ai.onnx.ml {})", g.ml_opset) : "", g.producer);
  for (const auto& v : g.inputs)
    std::cout << fmt::format("input:      {} {} {}\n", v.name, engine::dtype_name(v.dtype), engine::shape_str(v.shape));
  for (const auto& v : g.outputs)
    std::cout << fmt::format("output:     {} {} {}\n", v.name, engine::dtype_name(v.dtype), engine::shape_str(v.shape));
  for (const auto& o : g.opaque_outputs)
    std::cout << fmt::format("output:     {} ({}, not computed{})\n", o.name, o.type, o.hint.empty() ? "" : "; " + o.hint);
  std::cout << fmt::format("nodes:      {}\nparameters: {}\n", g.nodes.size(), g.parameter_count());
  if (j["flops"].is_number()) std::cout << fmt::format("operations: {:.4g} per batch-1 forward\n", j["flops"].get<double>());
  std::cout << "ops:       ";
  for (const auto& [op, n] : g.op_histogram()) std::cout << fmt::format(" {}x{}", op, n);
  std::cout << "\n";
  if (unsupported.empty()) {
    std::cout << fmt::format("supported:  all ops\ncpu fwd:    {}\n", fused ? "fused dense chain" : "op by op");
    std::cout << fmt::format("audited:    output '{}'{} (choose with --output NAME)\n", audited,
                             activation.empty() ? "" : fmt::format(", already through {}: not logits", activation));
    if (blockers.empty()) std::cout << "gradients:  yes (gradient attacks, IG/SmoothGrad/DeepLIFT, bound propagation)\n";
    else
      std::cout << fmt::format("gradients:  no, not differentiable at {} (black-box methods only: attack --attack square|hsja|boundary, "
                               "explain --method kernel-shap|lime|permutation|occlusion)\n",
                               fmt::join(blockers, ", "));
    if (!trees.empty()) std::cout << fmt::format("trees:      {}\n", trees);
    if (j.contains("tree_ensemble") && j["tree_ensemble"]["exact_methods"].get<bool>())
      std::cout << "exact:      explain --method tree-shap, attack --attack exact-tree, verify (exact, threshold cells)\n";
  }
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
