// Operation counts of a forward pass from the graph (see cost.h).
#include "mlaudit/engine/cost.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {

// Batch-1 input shape: dynamic dims (-1) become 1.
Shape concrete_shape(Shape s) {
  for (auto& d : s)
    if (d < 0) d = 1;
  return s;
}

// A TreeEnsembleClassifier/Regressor's operations for one row: per tree, one comparison per
// level of its deepest path (an upper bound of the path a row takes) and one add for the leaf
// it reaches. -1 for any other node, or one whose tree attributes do not fit together
// (the engine refuses such a node when it runs; the estimate then counts its outputs).
double tree_ensemble_ops(const Node& n) {
  if (n.op_type != "TreeEnsembleClassifier" && n.op_type != "TreeEnsembleRegressor") return -1;
  const auto tree = n.get_ints("nodes_treeids"), id = n.get_ints("nodes_nodeids");
  const auto yes = n.get_ints("nodes_truenodeids"), no = n.get_ints("nodes_falsenodeids");
  auto m = n.attributes.find("nodes_modes");
  if (m == n.attributes.end()) return -1;
  const auto& modes = m->second.strings;
  const size_t k = tree.size();
  if (k == 0 || id.size() != k || yes.size() != k || no.size() != k || modes.size() != k) return -1;
  std::map<std::pair<int64_t, int64_t>, size_t> at;
  for (size_t i = 0; i < k; ++i) at.emplace(std::make_pair(tree[i], id[i]), i);
  // Depth of every node from the leaves up, iteratively (an untrusted model may be deep, or
  // have cycles: a node is expanded once, a cycle counts as a leaf).
  std::vector<int> depth(k, -1), state(k, 0);  // state 0 new, 1 on the stack, 2 done
  std::map<int64_t, size_t> root;
  for (size_t i = 0; i < k; ++i) root.emplace(tree[i], i);  // the tree's first node
  double ops = 0;
  for (const auto& [t, r] : root) {
    std::vector<size_t> stack{r};
    while (!stack.empty()) {
      const size_t i = stack.back();
      if (modes[i] == "LEAF") {
        depth[i] = 0, state[i] = 2;
        stack.pop_back();
        continue;
      }
      std::vector<size_t> kids;
      for (int64_t c : {yes[i], no[i]})
        if (auto it = at.find({t, c}); it != at.end()) kids.push_back(it->second);
      if (state[i] == 0) {
        state[i] = 1;
        for (size_t c : kids)
          if (state[c] == 0) stack.push_back(c);
        continue;
      }
      int d = 0;
      for (size_t c : kids) d = std::max(d, depth[c] < 0 ? 0 : depth[c]);
      depth[i] = d + 1, state[i] = 2;
      stack.pop_back();
    }
    ops += double(std::max(depth[r], 0)) + 1;
  }
  return ops;
}

}  // namespace

double estimate_flops(const Graph& g) {
  std::vector<Shape> shapes;
  for (const auto& in : g.inputs) shapes.push_back(concrete_shape(in.shape));
  auto values = infer_shapes(g, shapes);
  auto shape_of = [&](const std::string& name) -> Shape {
    if (auto it = values.find(name); it != values.end()) return it->second;
    if (const Tensor* t = g.initializer(name)) return t->shape();
    return {};
  };
  double flops = 0;
  for (const auto& n : g.nodes) {
    if (n.outputs.empty()) continue;
    Shape out = shape_of(n.outputs[0]);
    double out_elems = out.empty() ? 1 : double(shape_numel(out));
    if (n.op_type == "Conv" && n.inputs.size() >= 2) {
      // each output element: Cin/groups * kh * kw multiply-adds (+ bias add)
      Shape w = shape_of(n.inputs[1]);
      double k = 1;
      for (size_t i = 1; i < w.size(); ++i) k *= double(w[i]);
      flops += 2 * out_elems * k + (n.inputs.size() > 2 ? out_elems : 0);
    } else if ((n.op_type == "Gemm" || n.op_type == "MatMul") && n.inputs.size() >= 2) {
      // out [.., M, N], reduction length K = A's contracted dimension
      Shape a = shape_of(n.inputs[0]);
      double k = a.empty() ? 1 : double(a.back());
      if (n.op_type == "Gemm" && n.get_int("transA", 0) && a.size() == 2) k = double(a[0]);
      flops += 2 * out_elems * k + (n.op_type == "Gemm" && n.inputs.size() > 2 ? out_elems : 0);
    } else if (n.op_type == "Shape" || n.op_type == "Constant" || n.op_type == "Reshape" || n.op_type == "Flatten" ||
               n.op_type == "Identity" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze" || n.op_type == "Dropout") {
      // data movement only
    } else if (double t = tree_ensemble_ops(n); t >= 0) {
      flops += t;
    } else {
      flops += out_elems;  // element-wise, pooling, normalisation: one op per output element
    }
  }
  return flops;
}

}  // namespace mlaudit::engine
