#pragma once
// Op cases (tools/engine_goldens*.py: one- or few-node ONNX models with onnxruntime outputs,
// PyTorch autograd VJPs and seeds) checked three ways: forward against onnxruntime, VJP
// against PyTorch, VJP against central finite differences of the engine's own forward.
// Each ops_*.cpp test file runs them over its own fixture folder.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>

#include "engine_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

namespace mlaudit::test {

struct OpCase {
  std::string name;
  std::vector<engine::Tensor> inputs, outputs, seeds;
  std::vector<int> grads;
};

inline nlohmann::json load_op_cases(const std::string& dir) {
  std::ifstream in(dir + "/cases.json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

inline OpCase read_op_case(const std::string& root, const nlohmann::json& c) {
  OpCase k;
  k.name = c["name"];
  std::string dir = root + "/" + k.name;
  for (int i = 0; i < c["inputs"].get<int>(); ++i) k.inputs.push_back(datasets::read_npy(fmt::format("{}/input_{}.npy", dir, i)));
  for (int i = 0; i < c["outputs"].get<int>(); ++i) k.outputs.push_back(datasets::read_npy(fmt::format("{}/output_{}.npy", dir, i)));
  for (int g : c["grads"]) k.grads.push_back(g);
  // Seeds of the VJP checks: one per float output named in "seeds" (empty: zero).
  k.seeds.resize(k.outputs.size());
  if (c.contains("seeds"))
    for (int s : c["seeds"]) k.seeds.at(size_t(s)) = datasets::read_npy(fmt::format("{}/seed_{}.npy", dir, s));
  return k;
}

// Forward tolerance: onnxruntime and the engine both compute in float32 but
// sum in different orders (GEMM blocking, conv algorithms); 1e-4 relative plus
// 1e-5 absolute covers that for the fixtures' O(1) values and sizes.
constexpr double kFwdRtol = 1e-4, kFwdAtol = 1e-5;
// Gradients accumulate two chains of float32 sums (ours vs PyTorch's): 1e-4 / 1e-5.
constexpr double kGradRtol = 1e-4, kGradAtol = 1e-5;

/// Forward of every case against onnxruntime; returns the number of cases.
inline int check_op_forward(const std::string& root) {
  auto cases = load_op_cases(root);
  int n = 0;
  for (const auto& c : cases) {
    OpCase k = read_op_case(root, c);
    INFO("case " << k.name);
    auto session = engine::Session::load(root + "/" + k.name + "/model.onnx");
    auto out = session->run(k.inputs);
    REQUIRE(out.size() == k.outputs.size());
    for (size_t i = 0; i < out.size(); ++i) {
      INFO("output " << i);
      CHECK(out[i].shape() == k.outputs[i].shape());
      if (out[i].dtype() != engine::DType::Float32)
        CHECK(out[i].to_doubles() == k.outputs[i].to_doubles());  // integer and bool outputs: exact
      else
        CHECK(worst_ratio(out[i], k.outputs[i], kFwdRtol, kFwdAtol) <= 1.0);
    }
    ++n;
  }
  return n;
}

/// VJP of every case with gradients against PyTorch autograd; returns the number of inputs checked.
inline int check_op_vjp(const std::string& root) {
  auto cases = load_op_cases(root);
  int checked = 0;
  for (const auto& c : cases) {
    if (c["grads"].empty()) continue;
    OpCase k = read_op_case(root, c);
    INFO("case " << k.name);
    std::string dir = root + "/" + k.name;
    auto session = engine::Session::load(dir + "/model.onnx");
    const std::vector<engine::Tensor>& seeds = k.seeds;
    auto grads = session->gradient(k.inputs, seeds);
    for (int g : k.grads) {
      INFO("input " << g);
      engine::Tensor want = datasets::read_npy(fmt::format("{}/grad_{}.npy", dir, g));
      REQUIRE(!grads[g].empty());
      CHECK(grads[g].shape() == want.shape());
      CHECK(worst_ratio(grads[g], want, kGradRtol, kGradAtol) <= 1.0);
      ++checked;
    }
  }
  return checked;
}

/// Directional finite-difference check of every case's VJP, skipping ops in `skip_ops`
/// (piecewise ops whose kinks a step can cross); returns the number of inputs checked.
inline int check_op_finite_differences(const std::string& root, const std::set<std::string>& skip_ops) {
  // Directional check: <grad, v> vs (f(x+hv) - f(x-hv)) / 2h with f = <seed, out>.
  // Forward is float32, so h = 1e-2 on O(1) inputs keeps rounding (~1e-7/h) and
  // curvature (~h^2) errors near 1e-4; we allow 2e-3 relative + 2e-3 absolute.
  auto cases = load_op_cases(root);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  int checked = 0;
  for (const auto& c : cases) {
    if (c["grads"].empty()) continue;
    std::string op = c["op"];
    if (skip_ops.count(op)) continue;
    OpCase k = read_op_case(root, c);
    INFO("case " << k.name);
    std::string dir = root + "/" + k.name;
    auto session = engine::Session::load(dir + "/model.onnx");
    const std::vector<engine::Tensor>& seeds = k.seeds;
    auto grads = session->gradient(k.inputs, seeds);
    auto f = [&](const std::vector<engine::Tensor>& in) {
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
      engine::Tensor v(k.inputs[g].shape());
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
      CHECK(close(an, fd, 2e-3, 2e-3 * (1 + std::sqrt(double(v.numel())))));
      ++checked;
    }
  }
  return checked;
}

}  // namespace mlaudit::test
