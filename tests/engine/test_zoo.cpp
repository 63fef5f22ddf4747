// The model zoo (tests/fixtures/zoo/, written by tools/export_zoo.py): small models as today's
// exporters write them (torch's TorchScript and dynamo exporters, skl2onnx, onnxmltools for XGBoost
// and LightGBM). For every model of manifest.json: load it, run it at batch 1 and 7 and compare each
// output the manifest marks (by name; plus the probability tensor a ZipMap reads, which the engine
// exposes as an output) against onnxruntime's golden, and for differentiable (PyTorch) models
// compare the input gradient of sum_k sum(output_k * w_k) against PyTorch's.
//
// Tolerances come from the manifest, per model, with the reason next to them (see export_zoo.py):
//  * float32 networks: rtol 1e-4, atol 1e-5. The engine and onnxruntime sum convolutions, matmuls and
//    reductions in different orders, so results differ by float32 rounding (~1e-7 relative per op,
//    growing with depth); export_zoo.py checks PyTorch agrees with onnxruntime within half of it.
//  * tree ensembles: atol 1e-5 (leaf values summed in float32 in any order);
//  * linear / kernel models: rtol 1e-5, atol 1e-5 (dot products in another order);
//  * integer outputs (labels, top-k indices, argmax) must match exactly;
//  * gradients: rtol 1e-3, atol 1e-4 x max|PyTorch gradient| (a float32 backward pass in another
//    order; export_zoo.py checks PyTorch's float32 gradient is within a quarter of that of its
//    float64 gradient).
// And every model's rows are checked against themselves: the first rows of the largest batch
// alone give the same bits as inside the batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string zoo_root() { return test::source_path("tests/fixtures/zoo"); }

bool load_manifest(json& out) {
  std::ifstream in(zoo_root() + "/manifest.json");
  if (!in) return false;
  out = json::parse(in);
  return true;
}

bool is_integer(engine::DType t) {
  return t == engine::DType::Int64 || t == engine::DType::Int32 || t == engine::DType::Bool ||
         t == engine::DType::UInt8;
}

/// "" when `got` matches `want` (same shape; integers exactly, floats within rtol/atol), else why not.
std::string mismatch(const engine::Tensor& got, const engine::Tensor& want, double rtol, double atol) {
  std::ostringstream why;
  if (got.empty()) return "no output";
  if (got.shape() != want.shape()) {
    why << "shape " << engine::shape_str(got.shape()) << " vs golden " << engine::shape_str(want.shape());
    return why.str();
  }
  if (is_integer(want.dtype())) {
    auto g = got.to_int64s(), w = want.to_int64s();
    for (size_t i = 0; i < w.size(); ++i)
      if (g[i] != w[i]) {
        why << "element " << i << ": " << g[i] << " vs golden " << w[i] << " (integer output, exact)";
        return why.str();
      }
    return "";
  }
  double worst = test::worst_ratio(got, want, rtol, atol);
  if (worst <= 1.0) return "";
  auto g = got.to_doubles(), w = want.to_doubles();
  size_t at = 0;
  double best = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    double r = std::fabs(g[i] - w[i]) / (atol + rtol * std::fabs(w[i]));
    if (r > best) best = r, at = i;
  }
  why << "worst element " << at << ": " << g[at] << " vs golden " << w[at] << " (" << worst
      << "x the tolerance rtol " << rtol << " atol " << atol << ")";
  return why.str();
}

/// Runs one manifest model; returns the failures (empty when everything matches).
std::vector<std::string> check_model(const json& m) {
  std::vector<std::string> failures;
  const std::string name = m.at("name");
  const std::string dir = zoo_root() + "/" + name;
  std::unique_ptr<engine::Session> session;
  try {
    session = engine::Session::load(dir + "/model.onnx");
  } catch (const std::exception& e) {
    failures.push_back("load: " + std::string(e.what()));
    return failures;
  }
  const double rtol = m.at("tolerance").at("rtol"), atol = m.at("tolerance").at("atol");
  const auto& outputs = m.at("outputs");
  for (int batch : m.at("batches").get<std::vector<int>>()) {
    const std::string b = std::to_string(batch);
    const std::string where = "batch " + b + ": ";
    try {
      engine::Tensor x = datasets::read_npy(dir + "/" + m.at("input_files").at(b).get<std::string>());
      auto got = session->run({x});
      // The engine lists tensor outputs by name, audited output first (SessionOptions::output), and
      // exposes the probability tensor a ZipMap reads; match the manifest's outputs by name.
      const auto& names = session->outputs();
      auto find = [&](const std::string& n) -> const engine::Tensor* {
        for (size_t i = 0; i < names.size() && i < got.size(); ++i)
          if (names[i].name == n) return &got[i];
        return nullptr;
      };
      std::vector<json> compared;
      for (const auto& o : outputs)
        if (o.at("compare").get<bool>()) compared.push_back(o);
      if (m.contains("extra_outputs"))
        for (const auto& o : m.at("extra_outputs")) compared.push_back(o);
      for (const auto& o : compared) {
        const std::string oname = o.at("name");
        const engine::Tensor* t = find(oname);
        if (!t) {
          failures.push_back(where + "output '" + oname + "' missing from the session's outputs" +
                             (o.contains("via") ? " (" + o.at("via").get<std::string>() + ")" : ""));
          continue;
        }
        engine::Tensor want = datasets::read_npy(dir + "/" + o.at("golden").at(b).get<std::string>());
        std::string why = mismatch(*t, want, rtol, atol);
        if (!why.empty()) failures.push_back(where + "output '" + oname + "': " + why);
      }
      if (m.at("differentiable").get<bool>()) {
        const auto& g = m.at("gradient");
        const double grtol = g.at("rtol"), gatol = g.at("atol");
        engine::Tensor want = datasets::read_npy(dir + "/" + g.at("files").at(b).get<std::string>());
        // One seed per session output, in the session's order (empty: zero).
        std::vector<engine::Tensor> seeds(names.size());
        for (const auto& o : outputs)
          for (size_t i = 0; i < names.size(); ++i)
            if (names[i].name == o.at("name").get<std::string>())
              seeds[i] = datasets::read_npy(dir + "/" + o.at("seed").at(b).get<std::string>());
        auto grads = session->gradient({x}, seeds);
        std::string why = grads.empty() ? "no gradient" : mismatch(grads[0], want, grtol, gatol);
        if (!why.empty()) failures.push_back(where + "gradient (Session::gradient): " + why);
        if (outputs.size() == 1 && names.size() == 1) {  // the Model interface attacks and attributions use
          engine::Tensor seed = seeds[0];
          engine::Tensor gi = session->input_gradient(x, [&](const engine::Tensor&) { return seed; });
          why = mismatch(gi, want, grtol, gatol);
          if (!why.empty()) failures.push_back(where + "gradient (Session::input_gradient): " + why);
        }
      }
    } catch (const std::exception& e) {
      failures.push_back(where + e.what());
    }
  }
  // A row's outputs do not depend on the batch (row-invariant Gemm/MatMul, engine/src/cpu/
  // row_gemm.h): the first rows of the largest batch alone and as a batch of 3 give the same bits
  // as inside it, every output whose first dimension is the batch.
  try {
    const auto batches = m.at("batches").get<std::vector<int>>();
    const int big = *std::max_element(batches.begin(), batches.end());
    const engine::Tensor x = datasets::read_npy(dir + "/" + m.at("input_files").at(std::to_string(big)).get<std::string>());
    const auto whole = session->run({x});
    for (int64_t rows : {int64_t(1), int64_t(3)}) {
      if (rows >= big) continue;
      const auto part = session->run({x.slice_rows(0, rows)});
      for (size_t o = 0; o < whole.size() && o < part.size(); ++o) {
        const engine::Tensor& w = whole[o];
        const engine::Tensor& p = part[o];
        if (w.rank() == 0 || w.dim(0) != big || p.dim(0) != rows) continue;
        const size_t bytes = size_t(p.numel()) * engine::dtype_size(p.dtype());
        if (std::memcmp(p.raw(), w.raw(), bytes) != 0)
          failures.push_back("output " + std::to_string(o) + ": its first " + std::to_string(rows) +
                             " rows alone differ from the same rows in a batch of " + std::to_string(big));
      }
    }
  } catch (const std::exception& e) {
    failures.push_back(std::string("batch invariance: ") + e.what());
  }
  return failures;
}

void check_family(const std::set<std::string>& families) {
  json manifest;
  if (!load_manifest(manifest)) {
    WARN("no zoo manifest at " << zoo_root() << " (run tools/export_zoo.py)");
    return;
  }
  int n = 0;
  for (const auto& m : manifest.at("models")) {
    if (!families.count(m.at("family").get<std::string>())) continue;
    ++n;
    const std::string name = m.at("name");
    DYNAMIC_SECTION(name << " (" << m.at("exporter_short").get<std::string>() << ")") {
      auto failures = check_model(m);
      for (const auto& f : failures) UNSCOPED_INFO(name << ": " << f);
      CHECK(failures.empty());
    }
  }
  CHECK(n > 0);
}

}  // namespace

TEST_CASE("zoo: PyTorch models (TorchScript and dynamo exporters) match onnxruntime and PyTorch gradients",
          "[engine][zoo][zoo-torch]") {
  check_family({"torch"});
}

TEST_CASE("zoo: scikit-learn models (skl2onnx) match onnxruntime", "[engine][zoo][zoo-sklearn]") {
  check_family({"sklearn"});
}

TEST_CASE("zoo: XGBoost and LightGBM models (onnxmltools) match onnxruntime", "[engine][zoo][zoo-boosting]") {
  check_family({"xgboost", "lightgbm"});
}

TEST_CASE("zoo manifest lists every exported model with goldens", "[engine][zoo]") {
  json manifest;
  if (!load_manifest(manifest)) {
    WARN("no zoo manifest at " << zoo_root());
    return;
  }
  std::set<std::string> exporters;
  for (const auto& m : manifest.at("models")) {
    const std::string dir = zoo_root() + "/" + m.at("name").get<std::string>();
    INFO(m.at("name").get<std::string>());
    CHECK(fs::exists(dir + "/model.onnx"));
    for (int batch : m.at("batches").get<std::vector<int>>()) {
      const std::string b = std::to_string(batch);
      CHECK(fs::exists(dir + "/" + m.at("input_files").at(b).get<std::string>()));
      for (const auto& o : m.at("outputs"))
        if (o.at("compare").get<bool>()) CHECK(fs::exists(dir + "/" + o.at("golden").at(b).get<std::string>()));
    }
    exporters.insert(m.at("exporter_short").get<std::string>());
  }
  // Both torch exporters, skl2onnx and onnxmltools are represented.
  CHECK(exporters.count("torch-ts"));
  CHECK(exporters.count("torch-dynamo"));
  CHECK(exporters.count("skl2onnx"));
  CHECK(exporters.count("onnxmltools"));
}
