#pragma once
// Execution plan shared by the CPU executor and the CUDA executor: values
// numbered, per-node slots, which values carry gradients, and last readers.
#include <string>
#include <unordered_map>
#include <vector>

#include "mlaudit/engine/graph.h"

namespace mlaudit::engine {

struct ExecutionPlan {
  std::vector<std::string> names;                  ///< slot -> value name
  std::unordered_map<std::string, int> slot;       ///< value name -> slot
  std::vector<std::vector<int>> node_inputs;       ///< -1 for an omitted input
  std::vector<std::vector<int>> node_outputs;      ///< -1 for an omitted output
  std::vector<int> input_slots, output_slots;
  std::vector<bool> requires_grad;                 ///< depends on a float graph input
  std::vector<bool> keep;                          ///< graph outputs and constants: never freed
  std::vector<bool> is_constant;                   ///< initializers
  std::vector<int> last_use;                       ///< node index of the last reader (-1: none)
};

/// Plan of a graph whose nodes are in topological order.
ExecutionPlan make_execution_plan(const Graph& g);

/// The reverse walk of a vector-Jacobian product over a plan, shared by the CPU and CUDA
/// executors (V: their value type). For each node, last to first, that has an output gradient
/// and an input needing one (requires_grad, present, `is_float`), calls
/// `node_backward(i, ins, outs, gouts, need, gin)`, adds gin into `grad` through `accumulate`
/// and frees the node's output gradients unless kept. `handled(i)` runs first and returns true
/// when the caller processed node i itself (a fused backward), which skips it.
template <class V, class IsFloat, class Handled, class NodeBackward, class Accumulate>
void backward_walk(const ExecutionPlan& plan, size_t node_count, const std::vector<V>& v, std::vector<V>& grad,
                   IsFloat is_float, Handled handled, NodeBackward node_backward, Accumulate accumulate) {
  for (size_t i = node_count; i-- > 0;) {
    if (handled(i)) continue;
    bool any_grad = false;
    for (int s : plan.node_outputs[i])
      if (s >= 0 && !grad[s].empty()) any_grad = true;
    if (!any_grad) continue;
    std::vector<bool> need;
    bool any_need = false;
    std::vector<const V*> ins, outs, gouts;
    for (int s : plan.node_inputs[i]) {
      bool n = s >= 0 && plan.requires_grad[s] && !v[s].empty() && is_float(v[s]);
      need.push_back(n);
      any_need |= n;
      ins.push_back(s >= 0 && !v[s].empty() ? &v[s] : nullptr);
    }
    if (!any_need) continue;
    for (int s : plan.node_outputs[i]) {
      outs.push_back(s >= 0 && !v[s].empty() ? &v[s] : nullptr);
      gouts.push_back(s >= 0 && !grad[s].empty() && is_float(grad[s]) ? &grad[s] : nullptr);
    }
    std::vector<V> gin(ins.size());
    node_backward(i, ins, outs, gouts, need, gin);
    for (size_t k = 0; k < gin.size(); ++k) {
      int s = plan.node_inputs[i][k];
      if (need[k] && !gin[k].empty()) accumulate(grad[s], gin[k], plan.names[s]);
    }
    // Free output gradients no longer needed.
    for (int s : plan.node_outputs[i])
      if (s >= 0 && !plan.keep[s]) grad[s] = V();
  }
}

}  // namespace mlaudit::engine
