// The CUDA executor with host-emulated kernels (see CMakeLists.txt) against the CPU backend:
// every op case forward and VJP, the bundled models, and the fused PGD / smoothing loops.
// Runs on every machine; the real-GPU twin of these checks is test_cuda (label `cuda`).
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "apgd_check.h"
#include "attack_kernels.h"
#include "attack_loops.h"
#include "attribution_loops.h"
#include "cuda_executor.h"
#include "fusion_graphs.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"
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

TEST_CASE("cuda emulated: the CUDA backend's graph compute (backend contract) is the executor", "[cuda][emulated]") {
  auto cuda = engine::make_cuda_backend();  // renamed to the emulated backend
  REQUIRE(cuda);
  auto cpu = engine::make_cpu_backend();
  engine::Graph g = engine::load_onnx(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = cuda->compute(g);
  REQUIRE(dev);
  CHECK(dev->name() == "cuda");
  CHECK(dynamic_cast<const engine::cuda::CudaExecutor*>(dev.get()) != nullptr);
  // The executor dispatches through the op table: every node of the CNN has an entry.
  for (const auto& n : g.nodes) CHECK(cuda->supports_op(n, g.opset));
  Tensor x = datasets::read_npy(models_dir() + "/fmnist_cnn_x.npy").slice_rows(0, 4);
  Tensor lc = cpu->compute(g)->run({x}).at(0);
  REQUIRE(nmse(dev->run({x}).at(0), lc) <= kNmse);
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
    robustness::DeviceApgdOptions o;
    o.norm = norm;
    o.eps = std::string(norm) == "linf" ? 0.05f : 1.0f;
    o.steps = 16;
    o.batch = 7;
    o.seed = 5;
    auto res = robustness::cuda::apgd_ce_on(ex, x, y, o);
    int64_t robust_dev = test::check_device_apgd(*cpu, x, labels, res, o);
    int64_t robust_cpu = test::cpu_apgd_robust(*cpu, x, labels, o);
    // Same algorithm, different random starts: on 12 images the robust counts may differ by a
    // point or two near the boundary; an error in the step, the projection or the restart logic
    // leaves most points unbroken (the clean model is ~90% accurate) and fails this.
    REQUIRE(std::abs(robust_dev - robust_cpu) <= 2);
  }
}

TEST_CASE("cuda emulated: DLR and targeted-DLR values and logit gradients match the robustness module and finite differences",
          "[cuda][emulated][apgd]") {
  // Logits with well-separated values (gaps >= 0.3), so the top-4 order is stable under the
  // finite-difference steps of 1e-3: the loss is then a smooth rational function of the logits.
  const int64_t n = 6, k = 10;
  std::mt19937 gen(7);
  Tensor logits(engine::Shape{n, k});
  std::vector<int64_t> y(n), tgt(n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int> perm(k);
    for (int j = 0; j < k; ++j) perm[size_t(j)] = j;
    std::shuffle(perm.begin(), perm.end(), gen);
    for (int64_t j = 0; j < k; ++j)
      logits.f32()[i * k + j] = 0.5f * float(perm[size_t(j)]) + std::uniform_real_distribution<float>(0.f, 0.2f)(gen);
    y[size_t(i)] = i % k;               // the label is sometimes the top class, sometimes not
    tgt[size_t(i)] = (i * 3 + 1) % k == y[size_t(i)] ? (i * 3 + 2) % k : (i * 3 + 1) % k;
  }
  for (auto kind : {robustness::cuda::ApgdLoss::Dlr, robustness::cuda::ApgdLoss::DlrTargeted}) {
    const bool targeted = kind == robustness::cuda::ApgdLoss::DlrTargeted;
    INFO((targeted ? "targeted DLR" : "DLR"));
    std::vector<float> seed(size_t(n * k)), loss(n), correct(n);
    robustness::cuda::launch_apgd_loss_seed(kind, logits.f32(), y.data(), tgt.data(), seed.data(), loss.data(), correct.data(), n,
                                        k, nullptr);
    auto value = [&](const Tensor& z) { return targeted ? robustness::dlr_targeted_loss(z, y, tgt) : robustness::dlr_loss(z, y); };
    auto ref = value(logits);
    for (int64_t i = 0; i < n; ++i) {
      REQUIRE(loss[size_t(i)] == Approx(ref[size_t(i)]).epsilon(1e-6));  // same float formula, same order
      REQUIRE(correct[size_t(i)] == (engine::argmax_rows(logits)[size_t(i)] == y[size_t(i)] ? 1.f : 0.f));
    }
    // Central differences of the module's loss (float32 values ~1, step 1e-3: truncation ~1e-6,
    // rounding ~1e-7 / 1e-3 = 1e-4); a wrong or missing term is off by >= 0.05 (1/den, den <= 5).
    const float h = 1e-3f;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        Tensor zp = logits.clone(), zm = logits.clone();
        zp.f32()[i * k + j] += h;
        zm.f32()[i * k + j] -= h;
        double fd = (double(value(zp)[size_t(i)]) - double(value(zm)[size_t(i)])) / (double(zp.f32()[i * k + j]) - zm.f32()[i * k + j]);
        INFO("row " << i << " class " << j);
        REQUIRE(std::fabs(seed[size_t(i * k + j)] - fd) <= 2e-3);
      }
  }
  // APGD-T's target ranking: rank r = the (r+1)-th largest logit, ties in index order (std::stable_sort).
  Tensor z = Tensor::from_floats({2, 5}, {0.f, 3.f, 1.f, 3.f, 2.f, 5.f, 4.f, 3.f, 2.f, 1.f});
  std::vector<int64_t> got(2);
  const std::vector<std::vector<int64_t>> order = {{1, 3, 4, 2, 0}, {0, 1, 2, 3, 4}};
  for (int64_t r = 0; r < 5; ++r) {
    robustness::cuda::launch_rank_class(z.f32(), got.data(), 2, 5, r, nullptr);
    REQUIRE(got[0] == order[0][size_t(r)]);
    REQUIRE(got[1] == order[1][size_t(r)]);
  }
}

TEST_CASE("cuda emulated: device APGD-DLR and APGD-T break what the CPU loops break, independent of the batch split",
          "[cuda][emulated][apgd]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 12);
  Tensor y = datasets::read_npy(test::source_path("datasets/demo/fmnist_y.npy")).slice_rows(0, 12);
  std::vector<int64_t> labels = y.to_int64s();
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  for (const char* loss : {"dlr", "dlr-targeted"}) {
    INFO("loss " << loss);
    robustness::DeviceApgdOptions o;
    o.loss = loss;
    o.eps = 0.05f;
    o.steps = 8;              // checkpoints at 1, 2, 3, ...: halving and restarts happen
    o.n_target_classes = 1;   // APGD-T: the runner-up class only (AutoAttack uses 9; small budget here; more below)
    o.batch = 5;              // three device batches
    o.seed = 5;
    auto res = robustness::cuda::apgd_on(ex, x, y, o);
    int64_t robust_dev = test::check_device_attack(*cpu, x, labels, res, o.norm, o.eps, o.clip_min, o.clip_max);
    int64_t robust_cpu = test::cpu_apgd_robust(*cpu, x, labels, o);
    // Same algorithm, other random starts: near-boundary points may differ by one or two on 12
    // images; a wrong loss gradient or target leaves most of the ~9 breakable points unbroken.
    INFO("robust: device " << robust_dev << ", CPU " << robust_cpu);
    REQUIRE(std::abs(robust_dev - robust_cpu) <= 2);
    REQUIRE(robust_dev < 10);  // the attack does break points at eps 0.05 (clean accuracy 11/12)
    if (std::string(loss) == "dlr-targeted") {
      // Philox starts keyed by (row, element): batches of 5 + 5 + 2 and one batch of 16 (padded to
      // even sizes: batch / 8 = 2, padding rows inactive; the first target leaves 3 rows here, run
      // as 4) give the same points (3 iterations).
      o.steps = 3;
      o.n_target_classes = 2;  // two targeted runs: the second runs on the rows the first left robust
      o.batch = 5;
      auto split = robustness::cuda::apgd_on(ex, x, y, o);
      o.batch = 16;
      auto one = robustness::cuda::apgd_on(ex, x, y, o);
      REQUIRE(one.robust == split.robust);
      REQUIRE(nmse(one.x_adv, split.x_adv) == 0.0);
      Tensor x4 = x.slice_rows(0, 4), y4 = y.slice_rows(0, 4);
      // A second restart (run 1) only runs on the rows run 0 left robust, and run 0 is the same
      // Philox stream: rows broken with 1 restart stay broken, with the same point.
      o.n_target_classes = 1;
      o.restarts = 1;
      auto r1 = robustness::cuda::apgd_on(ex, x4, y4, o);
      o.restarts = 2;
      auto r2 = robustness::cuda::apgd_on(ex, x4, y4, o);
      REQUIRE(r2.robust_count <= r1.robust_count);
      for (int64_t i = 0; i < 4; ++i)
        if (!r1.robust[size_t(i)]) {
          REQUIRE_FALSE(r2.robust[size_t(i)]);
          for (int64_t j = 0; j < 784; ++j) REQUIRE(r2.x_adv.f32()[i * 784 + j] == r1.x_adv.f32()[i * 784 + j]);
        }
    }
  }
  // Too few classes for the loss: an InputError naming it.
  auto mlp = emulated(test::source_path("models/credit_mlp.onnx"));
  robustness::DeviceApgdOptions o;
  o.loss = "dlr";
  Tensor xc(engine::Shape{2, static_cast<const engine::cuda::CudaExecutor&>(*mlp).graph().inputs[0].shape.back()});
  REQUIRE_THROWS_WITH(robustness::cuda::apgd_on(static_cast<const engine::cuda::CudaExecutor&>(*mlp), xc,
                                            Tensor::from_ints({2}, {0, 1}), o),
                      Catch::Contains("DLR loss needs at least 3 classes"));
  o.loss = "hinge";
  REQUIRE_THROWS_WITH(robustness::cuda::apgd_on(ex, x, y, o), Catch::Contains("loss 'hinge'"));
}

TEST_CASE("cuda emulated: device Square (L-inf, L2) breaks what the CPU Square breaks, stays in the ball, split-independent",
          "[cuda][emulated][square]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 12);
  Tensor y = datasets::read_npy(test::source_path("datasets/demo/fmnist_y.npy")).slice_rows(0, 12);
  std::vector<int64_t> labels = y.to_int64s();
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  robustness::DeviceSquareOptions o;
  o.eps = 0.1f;
  o.n_queries = 60;  // p schedule rescaled to 60 queries: levels p_init/4 .. p_init/512 are visited
  o.batch = 5;
  o.check_every = 7;
  o.seed = 9;
  auto res = robustness::cuda::square_on(ex, x, y, o);
  int64_t robust_dev = test::check_device_attack(*cpu, x, labels, res, "linf", o.eps, o.clip_min, o.clip_max);
  int64_t robust_cpu = test::cpu_square_robust(*cpu, x, labels, o);
  // Random search with other draws: on 12 images the counts may differ by a few near-boundary
  // points; a wrong window, sign or acceptance rule breaks (almost) nothing or everything.
  INFO("robust: device " << robust_dev << ", CPU " << robust_cpu);
  REQUIRE(std::abs(robust_dev - robust_cpu) <= 3);
  REQUIRE(robust_dev < 11);
  REQUIRE(robust_dev > 0);
  // Every row (broken or not) lies in the ball and the box; queries: robust rows spent the budget.
  REQUIRE(res.queries.size() == 12);
  for (int64_t i = 0; i < 12; ++i) {
    for (int64_t j = 0; j < 784; ++j) {
      float v = res.x_adv.f32()[i * 784 + j], c = x.f32()[i * 784 + j];
      REQUIRE(std::fabs(v - c) <= o.eps + 1e-6f);
    }
    REQUIRE(res.queries[size_t(i)] >= 1);
    REQUIRE(res.queries[size_t(i)] <= o.n_queries);
    if (res.robust[size_t(i)]) REQUIRE(res.queries[size_t(i)] == o.n_queries);
  }
  // Draws keyed by (seed, global row, iteration): another batch split and another compaction
  // period give the same points.
  o.batch = 12;
  o.check_every = 1;
  auto one = robustness::cuda::square_on(ex, x, y, o);
  REQUIRE(one.robust == res.robust);
  REQUIRE(one.queries == res.queries);
  REQUIRE(nmse(one.x_adv, res.x_adv) == 0.0);
  // L2 (Alg. 3: meta pseudo-Gaussian windows, tile-grid init) against the CPU L2 Square; every
  // point (broken or not) in the L2 ball and the box.
  o.norm = "l2";
  o.eps = 3.0f;
  o.n_queries = 40;
  o.batch = 5;
  auto l2 = robustness::cuda::square_on(ex, x, y, o);
  int64_t robust_l2 = test::check_device_attack(*cpu, x, labels, l2, "l2", o.eps, o.clip_min, o.clip_max);
  int64_t robust_l2_cpu = test::cpu_square_robust(*cpu, x, labels, o);
  INFO("L2 robust: device " << robust_l2 << ", CPU " << robust_l2_cpu);
  REQUIRE(std::abs(robust_l2 - robust_l2_cpu) <= 3);
  REQUIRE(robust_l2 < 11);
  for (int64_t i = 0; i < 12; ++i) {
    double dn = 0;
    for (int64_t j = 0; j < 784; ++j) {
      double dv = double(l2.x_adv.f32()[i * 784 + j]) - x.f32()[i * 784 + j];
      dn += dv * dv;
    }
    REQUIRE(std::sqrt(dn) <= o.eps * (1 + 1e-5) + 1e-6);
  }
  // Split independence for L2 on 4 images, 20 queries (kept short).
  Tensor x4 = x.slice_rows(0, 4), y4 = y.slice_rows(0, 4);
  o.n_queries = 20;
  o.batch = 3;
  auto l2split = robustness::cuda::square_on(ex, x4, y4, o);
  o.batch = 4;
  auto l2one = robustness::cuda::square_on(ex, x4, y4, o);
  REQUIRE(l2one.robust == l2split.robust);
  REQUIRE(nmse(l2one.x_adv, l2split.x_adv) == 0.0);
  o.norm = "l1";
  REQUIRE_THROWS_WITH(robustness::cuda::square_on(ex, x, y, o), Catch::Contains("norm 'l1'"));
  o.norm = "l2";
  Tensor flat(engine::Shape{2, 784});
  REQUIRE_THROWS_WITH(robustness::cuda::square_on(ex, flat, Tensor::from_ints({2}, {0, 1}), o), Catch::Contains("H,W >= 5"));
}

TEST_CASE("cuda emulated: fused PGD follows the CPU PGD loop", "[cuda][emulated][pgd]") {
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 12);
  Tensor y = datasets::read_npy(test::source_path("datasets/demo/fmnist_y.npy")).slice_rows(0, 12);
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  for (const char* norm : {"linf", "l2"}) {
    INFO("norm " << norm);
    robustness::DevicePgdOptions o;
    o.norm = norm;
    o.eps = std::string(norm) == "linf" ? 0.1f : 1.5f;
    o.alpha = std::string(norm) == "linf" ? 0.02f : 0.3f;
    o.steps = 4;
    o.random_start = false;
    o.batch = 5;  // three device batches (5, 5, 2): exercises the batch loop
    auto res = robustness::cuda::pgd_on(ex, x, y, o);
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
  robustness::DevicePgdOptions o;
  o.steps = 2;
  o.seed = 5;
  auto a = robustness::cuda::pgd_on(ex, x, y, o), b = robustness::cuda::pgd_on(ex, x, y, o);
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
  Tensor c0 = robustness::cuda::smoothing_on(ex, x, 0.f, 20, 7, 1);
  REQUIRE(c0.shape() == engine::Shape{3, 10});
  for (int64_t b = 0; b < 3; ++b) REQUIRE(c0.i64()[b * 10 + clean[b]] == 20);
  Tensor c1 = robustness::cuda::smoothing_on(ex, x, 0.25f, 50, 16, 9), c2 = robustness::cuda::smoothing_on(ex, x, 0.25f, 50, 16, 9);
  REQUIRE(c1.to_int64s() == c2.to_int64s());
  for (int64_t b = 0; b < 3; ++b) {
    int64_t total = 0;
    for (int64_t k = 0; k < 10; ++k) total += c1.i64()[b * 10 + k];
    REQUIRE(total == 50);
  }
  // Counter-based noise: the counts do not depend on the batch split.
  Tensor c3 = robustness::cuda::smoothing_on(ex, x, 0.25f, 50, 50, 9);
  REQUIRE(c3.to_int64s() == c1.to_int64s());
  REQUIRE_THROWS_WITH(robustness::cuda::smoothing_on(ex, x, -1.f, 5, 0, 0), Catch::Contains("sigma"));
}

TEST_CASE("cuda emulated: Philox sampling noise is standard normal and independent of the batch split", "[cuda][emulated]") {
  // The kernel body (Philox4x32-10 + Box-Muller) runs as the same source on the host here.
  const int64_t d = 999, rows = 40;
  std::vector<float> zero(static_cast<size_t>(d), 0.f), all(static_cast<size_t>(rows * d)), parts(all.size());
  robustness::cuda::launch_noisy_samples(zero.data(), all.data(), rows, d, 1.f, 42, 0, nullptr);
  // The same elements drawn in three uneven batches (bases not multiples of 4).
  robustness::cuda::launch_noisy_samples(zero.data(), parts.data(), 3, d, 1.f, 42, 0, nullptr);
  robustness::cuda::launch_noisy_samples(zero.data(), parts.data() + 3 * d, 1, d, 1.f, 42, 3 * d, nullptr);
  robustness::cuda::launch_noisy_samples(zero.data(), parts.data() + 4 * d, 36, d, 1.f, 42, 4 * d, nullptr);
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
  robustness::cuda::launch_noisy_samples(zero.data(), other.data(), rows, d, 1.f, 43, 0, nullptr);
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
    Tensor got = explain::cuda::integrated_gradients_on(ex, x, b, targets, alphas, weights, 3);
    Tensor want = test::ig_reference(*cpu, x, b, targets, alphas, weights);
    REQUIRE(nmse(got, want) <= kNmse);
  }
  // SmoothGrad with sigma 0 is the plain gradient (every sample is x); squared: its square.
  Tensor g = engine::logit_gradient(*cpu, x, targets);
  Tensor sg = explain::cuda::smoothgrad_on(ex, x, targets, {0.f}, 5, false, 2, 1);
  REQUIRE(nmse(sg, g) <= kNmse);
  Tensor g2 = g.clone();
  for (int64_t i = 0; i < g2.numel(); ++i) g2.f32()[i] *= g2.f32()[i];
  REQUIRE(nmse(explain::cuda::smoothgrad_on(ex, x, targets, {0.f}, 5, true, 2, 1), g2) <= kNmse);
  // Noise is reproducible for a seed.
  REQUIRE(nmse(explain::cuda::smoothgrad_on(ex, x, targets, {0.2f}, 6, false, 4, 3),
               explain::cuda::smoothgrad_on(ex, x, targets, {0.2f}, 6, false, 4, 3)) == 0.0);
  REQUIRE_THROWS_WITH(explain::cuda::integrated_gradients_on(ex, x, Tensor(), {3}, alphas, weights, 0),
                      Catch::Contains("1 targets for 2 inputs"));
  REQUIRE_THROWS_WITH(explain::cuda::smoothgrad_on(ex, x, {3, 12}, {0.1f}, 4, false, 0, 0), Catch::Contains("target 12 out of range"));
}

TEST_CASE("cuda emulated: explain's device integrated gradients and SmoothGrad equal the CPU functions (explain --device cuda)",
          "[cuda][emulated][explain]") {
  // The functions `mlaudit explain --device cuda` runs (explain/include/mlaudit/explain/device.h) on
  // the emulated Program: the same checks, quadrature, sigmas and noise samples as the CPU path.
  Tensor x = datasets::read_npy(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 2);
  auto cpu = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  auto dev = emulated(test::source_path("models/fmnist_cnn.onnx"));
  auto& ex = static_cast<const engine::cuda::CudaExecutor&>(*dev);
  const std::vector<int64_t> targets = {3, 7};
  explain::IgOptions io;
  io.steps = 8;  // Gauss-Legendre, Captum's default rule
  const Tensor base = Tensor::full(x.shape(), 0.25f);
  auto want = explain::integrated_gradients(*cpu, x, base, targets, io);
  auto got = explain::cuda::integrated_gradients_result_on(ex, *cpu, x, base, targets, io);
  REQUIRE(got.attributions.shape() == want.attributions.shape());
  REQUIRE(nmse(got.attributions, want.attributions) <= kNmse);
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(got.output_x[i] == want.output_x[i]);
    REQUIRE(got.attribution_sum[i] == Approx(want.attribution_sum[i]).epsilon(1e-5).margin(1e-6));
    REQUIRE(got.relative_gap[i] == Approx(want.relative_gap[i]).epsilon(1e-3).margin(1e-5));
  }
  REQUIRE_THROWS_WITH(explain::cuda::integrated_gradients_result_on(ex, *cpu, x, Tensor(), targets, io),
                      Catch::Contains("baseline shape"));
  // SmoothGrad and SmoothGrad-Squared: noise_level sigmas, the CPU generator's samples; fixed noise too.
  explain::SmoothGradOptions so;
  so.samples = 6;
  so.seed = 11;
  for (bool squared : {false, true}) {
    INFO("squared " << squared);
    so.squared = squared;
    REQUIRE(nmse(explain::cuda::smoothgrad_options_on(ex, x, targets, so), explain::smoothgrad(*cpu, x, targets, so)) <= kNmse);
  }
  Tensor noise(engine::Shape{3, 1, 28, 28});
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.f, 0.1f);
  for (int64_t i = 0; i < noise.numel(); ++i) noise.f32()[i] = nd(gen);
  so.noise = &noise;
  so.squared = false;
  REQUIRE(nmse(explain::cuda::smoothgrad_options_on(ex, x, targets, so), explain::smoothgrad(*cpu, x, targets, so)) <= kNmse);
  REQUIRE_THROWS_WITH(explain::cuda::smoothgrad_options_on(ex, x, {3}, so), Catch::Contains("1 targets for 2 rows"));
}
