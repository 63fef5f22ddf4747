// Every op: forward against onnxruntime and vector-Jacobian products against
// PyTorch autograd (fixtures by tools/engine_goldens.py), plus a finite-difference
// check of each VJP through the engine's own forward.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;

namespace {

std::string ops_dir() { return test::source_path("tests/fixtures/engine/ops"); }

nlohmann::json load_cases() {
  std::ifstream in(ops_dir() + "/cases.json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

struct Case {
  std::string name;
  std::vector<Tensor> inputs, outputs, seeds;
  std::vector<int> grads;
};

Case read_case(const nlohmann::json& c) {
  Case k;
  k.name = c["name"];
  std::string dir = ops_dir() + "/" + k.name;
  for (int i = 0; i < c["inputs"].get<int>(); ++i) k.inputs.push_back(datasets::read_npy(fmt::format("{}/input_{}.npy", dir, i)));
  for (int i = 0; i < c["outputs"].get<int>(); ++i) k.outputs.push_back(datasets::read_npy(fmt::format("{}/output_{}.npy", dir, i)));
  for (int g : c["grads"]) k.grads.push_back(g);
  return k;
}

// Forward tolerance: onnxruntime and the engine both compute in float32 but
// sum in different orders (GEMM blocking, conv algorithms); 1e-4 relative plus
// 1e-5 absolute covers that for the fixtures' O(1) values and sizes.
constexpr double kFwdRtol = 1e-4, kFwdAtol = 1e-5;
// Gradients accumulate two chains of float32 sums (ours vs PyTorch's): 1e-4 / 1e-5.
constexpr double kGradRtol = 1e-4, kGradAtol = 1e-5;

}  // namespace

TEST_CASE("every op: forward matches onnxruntime", "[engine][ops]") {
  auto cases = load_cases();
  REQUIRE(cases.size() >= 80);
  for (const auto& c : cases) {
    Case k = read_case(c);
    INFO("case " << k.name);
    auto session = engine::Session::load(ops_dir() + "/" + k.name + "/model.onnx");
    auto out = session->run(k.inputs);
    REQUIRE(out.size() == k.outputs.size());
    for (size_t i = 0; i < out.size(); ++i) {
      INFO("output " << i);
      CHECK(out[i].shape() == k.outputs[i].shape());
      CHECK(test::worst_ratio(out[i], k.outputs[i], kFwdRtol, kFwdAtol) <= 1.0);
    }
  }
}

TEST_CASE("every op: vector-Jacobian product matches PyTorch autograd", "[engine][ops][grad]") {
  auto cases = load_cases();
  int checked = 0;
  for (const auto& c : cases) {
    if (c["grads"].empty()) continue;
    Case k = read_case(c);
    INFO("case " << k.name);
    std::string dir = ops_dir() + "/" + k.name;
    auto session = engine::Session::load(dir + "/model.onnx");
    std::vector<Tensor> seeds(k.outputs.size());
    for (int s : c["seeds"]) seeds[s] = datasets::read_npy(fmt::format("{}/seed_{}.npy", dir, s));
    auto grads = session->gradient(k.inputs, seeds);
    for (int g : k.grads) {
      INFO("input " << g);
      Tensor want = datasets::read_npy(fmt::format("{}/grad_{}.npy", dir, g));
      REQUIRE(!grads[g].empty());
      CHECK(grads[g].shape() == want.shape());
      CHECK(test::worst_ratio(grads[g], want, kGradRtol, kGradAtol) <= 1.0);
      ++checked;
    }
  }
  CHECK(checked >= 70);
}

TEST_CASE("every op: VJP agrees with central finite differences of the forward", "[engine][ops][fd]") {
  // Directional check: <grad, v> vs (f(x+hv) - f(x-hv)) / 2h with f = <seed, out>.
  // Forward is float32, so h = 1e-2 on O(1) inputs keeps rounding (~1e-7/h) and
  // curvature (~h^2) errors near 1e-4; we allow 2e-3 relative + 2e-3 absolute.
  auto cases = load_cases();
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  int checked = 0;
  for (const auto& c : cases) {
    if (c["grads"].empty()) continue;
    std::string op = c["op"];
    // Piecewise ops (kinks at 0 or ties) and the int-cast case are covered by the autograd goldens.
    if (op == "Sign" || op == "Cast") continue;
    Case k = read_case(c);
    INFO("case " << k.name);
    std::string dir = ops_dir() + "/" + k.name;
    auto session = engine::Session::load(dir + "/model.onnx");
    std::vector<Tensor> seeds(k.outputs.size());
    for (int s : c["seeds"]) seeds[s] = datasets::read_npy(fmt::format("{}/seed_{}.npy", dir, s));
    auto grads = session->gradient(k.inputs, seeds);
    auto f = [&](const std::vector<Tensor>& in) {
      auto out = session->run(in);
      double acc = 0;
      for (size_t o = 0; o < out.size(); ++o) {
        if (seeds[o].empty()) continue;
        auto a = out[o].to_doubles(), b = seeds[o].to_doubles();
        for (size_t i = 0; i < a.size(); ++i) acc += a[i] * b[i];
      }
      return acc;
    };
    for (int g : k.grads) {
      Tensor v(k.inputs[g].shape());
      for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] = normal(rng);
      const float h = 1e-2f;
      auto plus = k.inputs, minus = k.inputs;
      plus[g] = k.inputs[g].clone();
      minus[g] = k.inputs[g].clone();
      for (int64_t i = 0; i < v.numel(); ++i) {
        plus[g].f32()[i] += h * v.f32()[i];
        minus[g].f32()[i] -= h * v.f32()[i];
      }
      double fd = (f(plus) - f(minus)) / (2.0 * h);
      double an = 0;
      for (int64_t i = 0; i < v.numel(); ++i) an += double(grads[g].f32()[i]) * v.f32()[i];
      INFO("input " << g << " analytic " << an << " fd " << fd);
      CHECK(test::close(an, fd, 2e-3, 2e-3 * (1 + std::sqrt(double(v.numel())))));
      ++checked;
    }
  }
  CHECK(checked >= 60);
}
