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

}  // namespace mlaudit::engine
