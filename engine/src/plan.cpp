#include "plan.h"

namespace mlaudit::engine {

ExecutionPlan make_execution_plan(const Graph& g) {
  ExecutionPlan p;
  auto get = [&](const std::string& name) {
    auto it = p.slot.find(name);
    if (it != p.slot.end()) return it->second;
    int s = static_cast<int>(p.names.size());
    p.names.push_back(name);
    p.slot[name] = s;
    return s;
  };
  for (const auto& [name, t] : g.initializers) get(name);
  for (const auto& in : g.inputs) p.input_slots.push_back(get(in.name));
  for (const auto& n : g.nodes) {
    std::vector<int> ins, outs;
    for (const auto& i : n.inputs) ins.push_back(i.empty() ? -1 : get(i));
    for (const auto& o : n.outputs) outs.push_back(o.empty() ? -1 : get(o));
    p.node_inputs.push_back(ins);
    p.node_outputs.push_back(outs);
  }
  for (const auto& o : g.outputs) p.output_slots.push_back(get(o.name));
  size_t n = p.names.size();
  p.requires_grad.assign(n, false);
  for (size_t k = 0; k < g.inputs.size(); ++k)
    if (g.inputs[k].dtype == DType::Float32) p.requires_grad[p.input_slots[k]] = true;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    bool any = false;
    for (int s : p.node_inputs[i])
      if (s >= 0 && p.requires_grad[s]) any = true;
    const std::string& op = g.nodes[i].op_type;
    if (op == "Shape" || op == "Constant") any = false;  // no gradient flows through these
    if (any)
      for (int s : p.node_outputs[i])
        if (s >= 0) p.requires_grad[s] = true;
  }
  p.last_use.assign(n, -1);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int s : p.node_inputs[i])
      if (s >= 0) p.last_use[s] = static_cast<int>(i);
  p.keep.assign(n, false);
  p.is_constant.assign(n, false);
  for (int s : p.output_slots) p.keep[s] = true;
  for (const auto& [name, t] : g.initializers) {
    p.keep[p.slot.at(name)] = true;
    p.is_constant[p.slot.at(name)] = true;
  }
  return p;
}

}  // namespace mlaudit::engine
