// ONNX's own backend node tests (copied from the onnx package by
// tools/export_onnx_node_tests.py) for every supported op: all must pass.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "engine_test_util.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
namespace fs = std::filesystem;

TEST_CASE("ONNX backend node tests pass", "[engine][onnx-node]") {
  std::string root = test::source_path("tests/fixtures/onnx_node");
  std::ifstream list(root + "/LIST.txt");
  if (!list) {
    WARN("no ONNX node-test fixtures at " << root);
    return;
  }
  std::string name;
  int passed = 0;
  std::vector<std::string> failures;
  while (std::getline(list, name)) {
    if (name.empty() || name[0] == '#') continue;
    std::string dir = root + "/" + name;
    try {
    auto session = engine::Session::load(dir + "/model.onnx");
    std::vector<engine::Tensor> inputs, want;
    for (int i = 0;; ++i) {
      std::string p = dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb";
      if (!fs::exists(p)) break;
      inputs.push_back(engine::parse_tensor_proto(datasets::read_file(p), p));
    }
    for (int i = 0;; ++i) {
      std::string p = dir + "/test_data_set_0/output_" + std::to_string(i) + ".pb";
      if (!fs::exists(p)) break;
      want.push_back(engine::parse_tensor_proto(datasets::read_file(p), p));
    }
    auto got = session->run(inputs);
    bool ok = got.size() >= want.size();
    for (size_t k = 0; ok && k < want.size(); ++k) {
      // ONNX's backend test runner compares with rtol 1e-3, atol 1e-7.
      ok = got[k].shape() == want[k].shape() && test::worst_ratio(got[k], want[k], 1e-3, 1e-7) <= 1.0;
    }
    if (ok) ++passed;
    else failures.push_back(name + ": output differs");
    } catch (const std::exception& e) {
      failures.push_back(name + ": " + e.what());
    }
  }
  for (const auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());
  CHECK(passed >= 1100);  // every kept case of tools/export_onnx_node_tests.py (1121 from onnx 1.23.2)
}
