// The CUDA executor with host-emulated kernels (see CMakeLists.txt) against the CPU backend:
// every op case forward and VJP, the bundled models, and the fused PGD / smoothing loops.
// Runs on every machine; the real-GPU twin of these checks is test_cuda (label `cuda`).
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apgd_check.h"
#include "cuda_executor.h"
#include "fusion_graphs.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/session.h"
#include "reference_loops.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;

namespace {

std::string ops_dir() { return test::source_path("tests/fixtures/engine/ops"); }
std::string models_dir() { return test::source_path("tests/fixtures/engine/models"); }

std::unique_ptr<engine::DeviceSession> emulated(const std::string& onnx) {
  auto s = engine::make_cuda_session(engine::load_onnx(onnx));  // renamed to the emulated backend
  REQUIRE(s);
  return s;
}

// Normalised mean squared error sum (a-b)^2 / sum b^2 (ggml test-backend-ops' NMSE); NaN counts as a failure.
double nmse(const Tensor& a, const Tensor& b) {
  auto x = a.to_doubles(), y = b.to_doubles();
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return INFINITY;
    if (std::isnan(x[i])) continue;
    if (std::isinf(x[i]) || std::isinf(y[i])) {
      if (x[i] != y[i]) return INFINITY;
      continue;
    }
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return den > 0 ? num / den : num;
}

// Both sides compute in float32 with the same formulas; the emulated GEMM accumulates in double
// and the kernels sum in another order than oneDNN/the CPU loops: relative differences ~1e-7,
// NMSE ~1e-13. 1e-9 leaves margin while a wrong index or a missing term gives NMSE >~ 1e-2.
constexpr double kNmse = 1e-9;

}  // namespace

TEST_CASE("cuda emulated: every op case, forward and VJP, matches the CPU backend", "[cuda][emulated]") {
  std::ifstream in(ops_dir() + "/cases.json");
  REQUIRE(in);
  auto cases = nlohmann::json::parse(in);
  REQUIRE(cases.size() >= 80);
  for (const auto& c : cases) {
    std::string name = c["name"], op = c["op"];
    INFO("case " << name << " (" << op << ")");
    std::string dir = ops_dir() + "/" + name;
    std::vector<Tensor> inputs;
    for (int i = 0; i < c["inputs"].get<int>(); ++i) inputs.push_back(datasets::read_npy(fmt::format("{}/input_{}.npy", dir, i)));
    auto cpu = engine::Session::load(dir + "/model.onnx");
    auto dev = emulated(dir + "/model.onnx");
    // The Session converts inputs (float64 -> float32, int32 -> int64) before a device sees them.
    std::vector<Tensor> conv;
    for (size_t k = 0; k < inputs.size(); ++k) {
      engine::DType want = cpu->inputs()[k].dtype;
      if (want == engine::DType::Float64) want = engine::DType::Float32;
      if (want == engine::DType::Int32 || want == engine::DType::UInt8) want = engine::DType::Int64;
      conv.push_back(inputs[k].to(want));
    }
    auto out_cpu = cpu->run(inputs);
    auto out_dev = dev->run(conv);
    REQUIRE(out_cpu.size() == out_dev.size());
    for (size_t k = 0; k < out_cpu.size(); ++k) {
      INFO("output " << k);
      REQUIRE(out_dev[k].shape() == out_cpu[k].shape());
      REQUIRE(out_dev[k].dtype() == out_cpu[k].dtype());
      REQUIRE(nmse(out_dev[k], out_cpu[k]) <= kNmse);
    }
    if (c["grads"].empty()) continue;
    std::vector<Tensor> seeds(out_cpu.size());
    for (int k : c["seeds"]) seeds[k] = datasets::read_npy(fmt::format("{}/seed_{}.npy", dir, k));
    auto g_cpu = cpu->gradient(inputs, seeds);
    std::vector<Tensor> outs;
    auto g_dev = dev->gradient(conv, seeds, &outs);
    REQUIRE(outs.size() == out_cpu.size());
    for (int k : c["grads"]) {
      INFO("gradient of input " << k);
      REQUIRE(g_dev[k].shape() == g_cpu[k].shape());
      REQUIRE(nmse(g_dev[k], g_cpu[k]) <= kNmse);
    }
  }
}

TEST_CASE("cuda emulated: bundled models' logits and input gradients match the CPU backend", "[cuda][emulated]") {
  for (std::string m : {"fmnist_cnn", "credit_mlp"}) {
    INFO("model " << m);
    Tensor x = datasets::read_npy(models_dir() + "/" + m + "_x.npy");
    std::vector<int64_t> cls = datasets::read_npy(models_dir() + "/" + m + "_labels.npy").to_int64s();
    auto cpu = engine::Session::load(test::source_path("models/" + m + ".onnx"));
    auto dev = emulated(test::source_path("models/" + m + ".onnx"));
    Tensor lc = cpu->forward(x);
    Tensor ld = dev->run({x}).at(0);
    REQUIRE(nmse(ld, lc) <= kNmse);
    // Gradient of sum_i logits[i, y_i]: one-hot seed.
    Tensor seed(lc.shape());
    int64_t k = lc.shape()[1];
    for (size_t i = 0; i < cls.size(); ++i) seed.f32()[i * k + cls[i]] = 1.f;
    Tensor gc = cpu->gradient({x}, {seed}).at(0);
    Tensor gd = dev->gradient({x}, {seed}, nullptr).at(0);
    REQUIRE(nmse(gd, gc) <= kNmse);
    // A second call reuses the executor's caches (index maps, shapes) and gives the same result.
    REQUIRE(nmse(dev->gradient({x}, {seed}, nullptr).at(0), gd) == 0.0);
  }
}

TEST_CASE("cuda emulated: fused Conv+Relu(+MaxPool) chains match the CPU backend", "[cuda][emulated][fusion]") {
  for (const auto& fc : test::fusion_cases()) {
    INFO("case " << fc.name);
    engine::Graph g = test::fusion_graph(fc);
    engine::Session cpu(g);
    auto dev = engine::make_cuda_session(g);
    REQUIRE(dev);
    Tensor x = test::fusion_input(fc, 3);
    Tensor lc = cpu.run({x}).at(0);
    Tensor ld = dev->run({x}).at(0);  // forward only: conv+relu+pool fused
    REQUIRE(ld.shape() == lc.shape());
    REQUIRE(nmse(ld, lc) <= kNmse);
    Tensor seed(lc.shape());
    for (int64_t i = 0; i < seed.numel(); ++i) seed.f32()[i] = float(i % 5) - 2.f;
    Tensor gc = cpu.gradient({x}, {seed}).at(0);
    std::vector<Tensor> outs;
    Tensor gd = dev->gradient({x}, {seed}, &outs).at(0);  // with a backward: conv+relu fused, pool separate
    REQUIRE(nmse(outs.at(0), lc) <= kNmse);
    REQUIRE(nmse(gd, gc) <= kNmse);
  }
}

TEST_CASE("cuda emulated: device APGD-CE breaks what the CPU APGD-CE breaks, every break re-checked", "[cuda][emulated][apgd]") {
  // 12 images, 16 iterations (checkpoints at 3, 5, 7, ...: step halving and restarts happen),
  // two device batches; the emulated kernels are serial loops, so the budget stays small.
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 12);
  Tensor y = datasets::read_npy(test::source_path("datasets/demo/fmnist_y.npy")).slice_rows(0, 12);
  std::vector<int64_t> labels = y.to_int64s();
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  for (const char* norm : {"linf", "l2"}) {
    INFO("norm " << norm);
    engine::DeviceApgdOptions o;
    o.norm = norm;
    o.eps = std::string(norm) == "linf" ? 0.05f : 1.0f;
    o.steps = 16;
    o.batch = 7;
    o.seed = 5;
    auto res = engine::cuda::apgd_ce_on(ex, x, y, o);
    int64_t robust_dev = test::check_device_apgd(*cpu, x, labels, res, o);
    int64_t robust_cpu = test::cpu_apgd_robust(*cpu, x, labels, o);
    // Same algorithm, different random starts: on 12 images the robust counts may differ by a
    // point or two near the boundary; an error in the step, the projection or the restart logic
    // leaves most points unbroken (the clean model is ~90% accurate) and fails this.
    REQUIRE(std::abs(robust_dev - robust_cpu) <= 2);
  }
}

TEST_CASE("cuda emulated: fused PGD follows the CPU PGD loop", "[cuda][emulated][pgd]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 12);
  Tensor y = datasets::read_npy(test::source_path("datasets/demo/fmnist_y.npy")).slice_rows(0, 12);
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  for (const char* norm : {"linf", "l2"}) {
    INFO("norm " << norm);
    engine::DevicePgdOptions o;
    o.norm = norm;
    o.eps = std::string(norm) == "linf" ? 0.1f : 1.5f;
    o.alpha = std::string(norm) == "linf" ? 0.02f : 0.3f;
    o.steps = 4;
    o.random_start = false;
    o.batch = 5;  // three device batches (5, 5, 2): exercises the batch loop
    auto res = engine::cuda::pgd_on(ex, x, y, o);
    REQUIRE_FALSE(res.cuda_graph);  // the emulation cannot capture: eager fallback
    Tensor ref = test::pgd_reference(*cpu, x, y.to_int64s(), o);
    // Same trajectory up to float32 summation order: the iterates agree to ~1e-6 except where a
    // gradient coordinate is ~0 and its sign flips (L-inf); allow 0.5% of coordinates to differ by
    // up to 2 alpha, the rest to 1e-4.
    int64_t far = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      float dlt = std::fabs(res.x_adv.f32()[i] - ref.f32()[i]);
      if (dlt > 1e-4f) ++far;
      REQUIRE(dlt <= 2 * o.alpha + 1e-5f);
    }
    REQUIRE(far <= ref.numel() / 200);
    auto pred = engine::argmax_rows(cpu->forward(res.x_adv));
    auto labels = y.to_int64s();
    int64_t robust = 0;
    for (size_t i = 0; i < pred.size(); ++i) robust += pred[i] == labels[i];
    REQUIRE(res.robust_count == robust);
  }
  // Random start: reproducible for a seed, inside the ball and the box.
  engine::DevicePgdOptions o;
  o.steps = 2;
  o.seed = 5;
  auto a = engine::cuda::pgd_on(ex, x, y, o), b = engine::cuda::pgd_on(ex, x, y, o);
  REQUIRE(nmse(a.x_adv, b.x_adv) == 0.0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    REQUIRE(std::fabs(a.x_adv.f32()[i] - x.f32()[i]) <= o.eps + 1e-6f);
    REQUIRE(a.x_adv.f32()[i] >= 0.f);
    REQUIRE(a.x_adv.f32()[i] <= 1.f);
  }
}

TEST_CASE("cuda emulated: smoothing counts sum to n and follow the clean prediction at small sigma", "[cuda][emulated]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 3);
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  auto clean = engine::argmax_rows(cpu->forward(x));
  // sigma = 0: every sample is the clean input, so all n counts land on the clean class (batch 7 leaves a partial batch).
  Tensor c0 = engine::cuda::smoothing_on(ex, x, 0.f, 20, 7, 1);
  REQUIRE(c0.shape() == engine::Shape{3, 10});
  for (int64_t b = 0; b < 3; ++b) REQUIRE(c0.i64()[b * 10 + clean[b]] == 20);
  Tensor c1 = engine::cuda::smoothing_on(ex, x, 0.25f, 50, 16, 9), c2 = engine::cuda::smoothing_on(ex, x, 0.25f, 50, 16, 9);
  REQUIRE(c1.to_int64s() == c2.to_int64s());
  for (int64_t b = 0; b < 3; ++b) {
    int64_t total = 0;
    for (int64_t k = 0; k < 10; ++k) total += c1.i64()[b * 10 + k];
    REQUIRE(total == 50);
  }
  // Counter-based noise: the counts do not depend on the batch split.
  Tensor c3 = engine::cuda::smoothing_on(ex, x, 0.25f, 50, 50, 9);
  REQUIRE(c3.to_int64s() == c1.to_int64s());
  REQUIRE_THROWS_WITH(engine::cuda::smoothing_on(ex, x, -1.f, 5, 0, 0), Catch::Contains("sigma"));
}

TEST_CASE("cuda emulated: Philox sampling noise is standard normal and independent of the batch split", "[cuda][emulated]") {
  // The kernel body (Philox4x32-10 + Box-Muller) runs as the same source on the host here.
  const int64_t d = 999, rows = 40;
  std::vector<float> zero(static_cast<size_t>(d), 0.f), all(static_cast<size_t>(rows * d)), parts(all.size());
  engine::cuda::launch_noisy_samples(zero.data(), all.data(), rows, d, 1.f, 42, 0, nullptr);
  // The same elements drawn in three uneven batches (bases not multiples of 4).
  engine::cuda::launch_noisy_samples(zero.data(), parts.data(), 3, d, 1.f, 42, 0, nullptr);
  engine::cuda::launch_noisy_samples(zero.data(), parts.data() + 3 * d, 1, d, 1.f, 42, 3 * d, nullptr);
  engine::cuda::launch_noisy_samples(zero.data(), parts.data() + 4 * d, 36, d, 1.f, 42, 4 * d, nullptr);
  REQUIRE(parts == all);
  // Moments of 39,960 draws: mean within 5 standard errors, variance within 5 x sqrt(2/n),
  // fourth moment near 3 (a uniform or a broken Box-Muller would miss these by far).
  double m1 = 0, m2 = 0, m4 = 0;
  for (float v : all) {
    m1 += v;
    m2 += double(v) * v;
    m4 += double(v) * v * v * v;
  }
  const double n = double(all.size());
  m1 /= n;
  m2 /= n;
  m4 /= n;
  REQUIRE(std::fabs(m1) < 5.0 / std::sqrt(n));
  REQUIRE(std::fabs(m2 - 1.0) < 5.0 * std::sqrt(2.0 / n));
  REQUIRE(std::fabs(m4 - 3.0) < 0.25);
  // Another seed gives other noise.
  std::vector<float> other(all.size());
  engine::cuda::launch_noisy_samples(zero.data(), other.data(), rows, d, 1.f, 43, 0, nullptr);
  REQUIRE(other != all);
}

TEST_CASE("cuda emulated: integrated gradients and SmoothGrad batches match the CPU formulas", "[cuda][emulated]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 2);
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  std::vector<int64_t> targets = {3, 7};
  // Riemann-middle rule with 8 points, run in device batches of 3 (3 + 3 + 2).
  std::vector<double> alphas, weights;
  for (int k = 0; k < 8; ++k) {
    alphas.push_back((k + 0.5) / 8);
    weights.push_back(1.0 / 8);
  }
  Tensor half = Tensor::full(x.shape(), 0.5f);
  std::vector<Tensor> bases = {Tensor(), half};  // zero baseline (empty) and a constant 0.5 image
  for (const Tensor& b : bases) {
    Tensor got = engine::cuda::integrated_gradients_on(ex, x, b, targets, alphas, weights, 3);
    Tensor want = test::ig_reference(*cpu, x, b, targets, alphas, weights);
    REQUIRE(nmse(got, want) <= kNmse);
  }
  // SmoothGrad with sigma 0 is the plain gradient (every sample is x); squared: its square.
  Tensor g = engine::logit_gradient(*cpu, x, targets);
  Tensor sg = engine::cuda::smoothgrad_on(ex, x, targets, 0.f, 5, false, 2, 1);
  REQUIRE(nmse(sg, g) <= kNmse);
  Tensor g2 = g.clone();
  for (int64_t i = 0; i < g2.numel(); ++i) g2.f32()[i] *= g2.f32()[i];
  REQUIRE(nmse(engine::cuda::smoothgrad_on(ex, x, targets, 0.f, 5, true, 2, 1), g2) <= kNmse);
  // Noise is reproducible for a seed.
  REQUIRE(nmse(engine::cuda::smoothgrad_on(ex, x, targets, 0.2f, 6, false, 4, 3),
               engine::cuda::smoothgrad_on(ex, x, targets, 0.2f, 6, false, 4, 3)) == 0.0);
  REQUIRE_THROWS_WITH(engine::cuda::integrated_gradients_on(ex, x, Tensor(), {3}, alphas, weights, 0),
                      Catch::Contains("1 targets for 2 inputs"));
  REQUIRE_THROWS_WITH(engine::cuda::smoothgrad_on(ex, x, {3, 12}, 0.1f, 4, false, 0, 0), Catch::Contains("target 12 out of range"));
}
