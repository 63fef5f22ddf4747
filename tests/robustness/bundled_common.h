#pragma once
// Helpers for the tests on the bundled models (skipped with a WARN when absent).
#include <catch2/catch.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/robustness/attacks.h"
#include "test_util.h"

namespace mlaudit::test {

inline bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

struct BundledCnn {
  std::unique_ptr<engine::Session> model;
  engine::Tensor x;
  std::vector<int64_t> y;
};

/// The bundled Fashion-MNIST CNN and its 200 demo images, or an empty model (WARN) when absent.
inline BundledCnn load_bundled_cnn() {
  BundledCnn b;
  const std::string m = source_path("models/fmnist_cnn.onnx"), xs = source_path("datasets/demo/fmnist_x.npy"),
                    ys = source_path("datasets/demo/fmnist_y.npy");
  if (!file_exists(m) || !file_exists(xs) || !file_exists(ys)) {
    WARN("bundled CNN or demo data missing: skipped");
    return b;
  }
  engine::SessionOptions opts;
  opts.threads = 2;
  b.model = engine::Session::load(m, opts);
  b.x = datasets::read_npy_float(xs);
  b.y = datasets::read_npy_labels(ys).to_int64s();
  return b;
}

/// Golden runs from tools/robustness_goldens.py (torchattacks on the same CNN and images).
inline nlohmann::json attack_goldens() {
  std::ifstream f(source_path("tests/fixtures/robustness/attack_goldens.json"));
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

/// Attack config matching one golden run.
inline robustness::AttackConfig config_for(const nlohmann::json& run) {
  robustness::AttackConfig cfg;
  cfg.norm = robustness::parse_norm(run["norm"].get<std::string>());
  cfg.eps = run["eps"].get<double>();
  if (run.contains("steps")) cfg.steps = run["steps"].get<int>();
  if (run.contains("queries")) cfg.queries = run["queries"].get<int>();
  cfg.seed = 1;
  return cfg;
}

}  // namespace mlaudit::test
