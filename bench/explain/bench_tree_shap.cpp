// Exact TreeSHAP timed as bench/explain/tree_shap_peer.py times shap.TreeExplainer: the explainer
// is built (trees flattened; covers counted, path-dependent), a warm-up call on 10 rows, then one
// timed shap_values call on all rows. Prints "<wall seconds> <CPU seconds> <construction seconds>"
// (CPU: the process's, all threads, during the call) and writes the
// values (float64 [N, F]) to OUT.npy for the agreement check against shap.
// MODE interactions: path-dependent SHAP interaction values on the first 1,000 rows (OUT: [N, F*F]).
// Usage: bench_tree_shap MODEL.onnx X.npy BACKGROUND.npy THREADS interventional|tree-path-dependent|interactions OUT.npy
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/engine/tensor.h"
#include "mlaudit/engine/trees.h"
#include "mlaudit/explain/tree_shap.h"

using namespace mlaudit;

int main(int argc, char** argv) {
  if (argc != 7) {
    fmt::print(stderr, "usage: bench_tree_shap MODEL.onnx X.npy BACKGROUND.npy THREADS interventional|path OUT.npy\n");
    return 2;
  }
  try {
    engine::set_num_threads(std::atoi(argv[4]));
    const engine::TreeEnsemble trees = engine::extract_tree_ensemble(engine::load_onnx(argv[1]));
    const engine::Tensor x = datasets::read_npy_float(argv[2]);
    const engine::Tensor bg = datasets::read_npy_float(argv[3]);
    explain::TreeShapOptions opts;
    const bool interactions = std::string(argv[5]) == "interactions";
    opts.perturbation = interactions ? explain::FeaturePerturbation::TreePathDependent
                                     : explain::parse_feature_perturbation(argv[5]);
    opts.threads = std::atoi(argv[4]);
    const auto c0 = std::chrono::steady_clock::now();
    explain::TreeExplainer ex(trees, bg, opts);
    const double build = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
    if (interactions) {
      const engine::Tensor xi = x.slice_rows(0, std::min<int64_t>(1000, x.shape()[0]));
      ex.shap_interaction_values(xi.slice_rows(0, 10));  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t cpu0 = std::clock();
      const auto r = ex.shap_interaction_values(xi);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
      std::vector<float> v(r.values.begin(), r.values.end());
      datasets::write_npy(argv[6], engine::Tensor::from_floats({r.rows, r.features * r.features * r.outputs}, v));
      fmt::print("{:.4f} {:.4f} {:.4f}\n", seconds, cpu, build);
      return 0;
    }
    ex.shap_values(x.slice_rows(0, 10));  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t cpu0 = std::clock();
    const auto r = ex.shap_values(x);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = double(std::clock() - cpu0) / CLOCKS_PER_SEC;
    std::vector<float> v(r.values.begin(), r.values.end());
    datasets::write_npy(argv[6], engine::Tensor::from_floats({r.rows, r.features * r.outputs}, v));
    fmt::print("{:.4f} {:.4f} {:.4f}\n", seconds, cpu, build);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_tree_shap: {}\n", e.what());
    return 1;
  }
  return 0;
}
