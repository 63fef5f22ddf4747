// GPU bound products on a real CUDA device (label `cuda`): CROWN / alpha-CROWN bounds of a seeded
// small CNN and of the bundled CNN computed with the products on the GPU equal the CPU path's and
// contain sampled concrete outputs; timings are printed (WARN lines) for bench/verify/gpu_bounds.sh.
// Without a device each test prints a WARN and passes, except the CLI check of
// `--device cuda` without a GPU (exit 2 with a clear message), which needs no device.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <fmt/format.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu_bounds_util.h"
#include "gpu_products.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/verify/bounds.h"
#include "test_util.h"

using namespace mlaudit::verify;
using namespace mlaudit::verify::testing;
namespace detail = mlaudit::verify::detail;

namespace {

// GPU-versus-CPU tolerance: the reasoning of test_gpu_bounds_emulated.cpp (same double-precision
// back-substitution, only the summation order of Lambda W differs, ~1e-12 relative).
constexpr double kGpuCpuTolerance = 1e-9;

#define MLAUDIT_REQUIRE_DEVICE()                         \
  do {                                                   \
    if (mlaudit::engine::cuda_device_count() == 0) {     \
      WARN("SKIPPED: no CUDA device");                   \
      return;                                            \
    }                                                    \
  } while (0)

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("cuda: small CNN bounds with every product on the GPU equal the CPU path's", "[cuda][verify]") {
  MLAUDIT_REQUIRE_DEVICE();
  detail::ProductOptions all;
  all.min_layer_weights = 0;
  all.min_speedup = 0;
  detail::set_product_factory(nullptr, all);
  for (uint64_t seed : {11u, 12u}) {
    Network cpu_net = small_cnn(seed), gpu_net = small_cnn(seed);
    gpu_net.product_device = mlaudit::engine::Device::Cuda;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0, 1);
    std::vector<double> x0(144);
    for (auto& v : x0) v = u01(rng);
    InputBox box = linf_box(x0, 0.05);
    LayerBounds cpu = crown_bounds(cpu_net, box), gpu = crown_bounds(gpu_net, box);
    CHECK(max_relative_gap(gpu, cpu) <= kGpuCpuTolerance);
    CHECK(sampled_violations(gpu_net, box, gpu, 1000, seed) == 0);
    LayerBounds acr = alpha_crown_bounds(gpu_net, box);
    CHECK(sampled_violations(gpu_net, box, acr, 500, seed + 1) == 0);
    REQUIRE(detail::products_of(gpu_net));
    CHECK(detail::products_of(gpu_net)->stats().device_products > 0);
  }
  detail::set_product_factory(nullptr);
}

TEST_CASE("cuda: bundled CNN CROWN bounds on the GPU equal the CPU path's (timings)", "[cuda][verify]") {
  // MLAUDIT_GPU_BOUNDS_CPU_ONLY=1 (bench/verify/gpu_bounds.sh --cpu) times the CPU side alone on a
  // machine without a GPU; otherwise the test needs a device.
  const char* cpu_only_env = std::getenv("MLAUDIT_GPU_BOUNDS_CPU_ONLY");
  const bool cpu_only = cpu_only_env && std::string(cpu_only_env) == "1";
  if (!cpu_only) MLAUDIT_REQUIRE_DEVICE();
  std::string cnn = mlaudit::test::source_path("models/fmnist_cnn.onnx");
  std::string fx = mlaudit::test::source_path("datasets/demo/fmnist_x.npy");
  std::string fy = mlaudit::test::source_path("datasets/demo/fmnist_y.npy");
  if (!std::filesystem::exists(cnn) || !std::filesystem::exists(fx) || !std::filesystem::exists(fy)) {
    WARN("bundled CNN or demo data absent");
    return;
  }
  detail::set_product_factory(nullptr);  // the default cost model
  Network cpu_net = load_network(cnn);
  Network gpu_net = load_network(cnn);
  gpu_net.product_device = mlaudit::engine::Device::Cuda;
  auto data = mlaudit::datasets::read_npy_float(fx).to_doubles();
  auto labels = mlaudit::datasets::read_npy_labels(fy).to_int64s();
  auto timed = [](auto&& f) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = f();
    return std::make_pair(std::move(r), seconds_since(t0));
  };
  for (size_t idx = 0; idx < 2; ++idx) {
    std::vector<double> x0(data.begin() + long(idx * 784), data.begin() + long((idx + 1) * 784));
    // The margin of the label against the next class: the objective alpha-CROWN optimises.
    const auto margin = margin_objectives(labels[idx], 10)[0];
    for (double eps : {0.005, 0.01, 0.02}) {
      INFO("image " << idx << " eps " << eps);
      InputBox box = linf_box(x0, eps);
      auto [cpu, cpu_s] = timed([&] { return crown_bounds(cpu_net, box); });
      auto [cpu_alpha, cpu_alpha_s] = timed([&] { return alpha_crown_objective(cpu_net, box, cpu, margin); });
      if (cpu_only) {
        WARN("gpu_bounds: fmnist_cnn image " << idx << " eps " << eps << " unstable " << unstable_relu_count(cpu_net, cpu)
                                             << " CROWN cpu_s=" << cpu_s << " alpha cpu_alpha_s=" << cpu_alpha_s
                                             << " alpha_lower_cpu=" << cpu_alpha.lower);
        continue;
      }
      const auto before = detail::products_of(gpu_net) ? detail::products_of(gpu_net)->stats() : detail::ProductStats{};
      auto [gpu, gpu_s] = timed([&] { return crown_bounds(gpu_net, box); });
      auto [gpu_alpha, gpu_alpha_s] = timed([&] { return alpha_crown_objective(gpu_net, box, gpu, margin); });
      const auto after = detail::products_of(gpu_net)->stats();
      CHECK(max_relative_gap(gpu, cpu) <= kGpuCpuTolerance);
      CHECK(sampled_violations(gpu_net, box, gpu, 200, idx + 7) == 0);
      CHECK(after.device_products > before.device_products);
      // alpha-CROWN: the optimisation may take a slightly different path (gradients differ in the
      // last bits), so the two bounds are not compared bit for bit; each is sound and never looser
      // than its CROWN bound.
      CHECK(gpu_alpha.lower >= crown_objective(gpu_net, box, gpu, {margin})[0].lower);
      std::mt19937_64 srng(idx + 11);
      int64_t below = 0;
      for (int s = 0; s < 200; ++s) {
        auto y = gpu_net.forward(sample_in_box(box, srng, s));
        double m = 0;
        for (size_t j = 0; j < y.size(); ++j) m += margin.coef[j] * y[j];
        if (m < gpu_alpha.lower) ++below;
      }
      CHECK(below == 0);
      WARN("gpu_bounds: fmnist_cnn image " << idx << " eps " << eps << " unstable " << unstable_relu_count(cpu_net, cpu)
                                           << " CROWN cpu_s=" << cpu_s << " gpu_s=" << gpu_s << " speedup=" << cpu_s / gpu_s
                                           << " alpha cpu_alpha_s=" << cpu_alpha_s << " gpu_alpha_s=" << gpu_alpha_s
                                           << " alpha_speedup=" << cpu_alpha_s / gpu_alpha_s
                                           << " alpha_lower_cpu=" << cpu_alpha.lower << " alpha_lower_gpu=" << gpu_alpha.lower
                                           << " device_products=" << after.device_products - before.device_products
                                           << " declined=" << after.declined_products - before.declined_products
                                           << " device_s=" << after.device_seconds - before.device_seconds);
    }
  }
}

TEST_CASE("cuda: mlaudit --device cuda verify: exit 2 without a GPU, the CPU verdicts with one", "[cuda][verify][cli]") {
  std::string dir = mlaudit::test::temp_dir("verify-gpu");
  std::string common = fmt::format("verify --model {} --data {} --labels {} --eps 0.005 --limit 2 --clip-min 0 --clip-max 1 --timeout 60",
                                   mlaudit::test::source_path("models/fmnist_cnn.onnx"),
                                   mlaudit::test::source_path("datasets/demo/fmnist_x.npy"),
                                   mlaudit::test::source_path("datasets/demo/fmnist_y.npy"));
  auto gpu = mlaudit::test::run_cli(fmt::format("--device cuda {} --out {}/gpu.json", common, dir));
  if (mlaudit::engine::cuda_device_count() == 0) {
    REQUIRE(gpu.exit_code == 2);
    REQUIRE(gpu.output.find("--device cuda: no CUDA device is available") != std::string::npos);
    CHECK(!std::filesystem::exists(dir + "/gpu.json"));  // nothing written
    auto automatic = mlaudit::test::run_cli(fmt::format("--device auto {} --out {}/auto.json", common, dir));
    CHECK(automatic.exit_code == 0);
    CHECK(automatic.output.find("no CUDA device, bound products on the CPU") != std::string::npos);
    return;
  }
  REQUIRE(gpu.exit_code == 0);
  auto cpu = mlaudit::test::run_cli(fmt::format("--device cpu {} --out {}/cpu.json", common, dir));
  REQUIRE(cpu.exit_code == 0);
  auto read = [](const std::string& p) { return nlohmann::json::parse(std::ifstream(p)); };
  auto g = read(dir + "/gpu.json"), c = read(dir + "/cpu.json");
  REQUIRE(g["per_sample"].size() == c["per_sample"].size());
  for (size_t i = 0; i < c["per_sample"].size(); ++i)
    CHECK(g["per_sample"][i]["verdict"] == c["per_sample"][i]["verdict"]);
  WARN("gpu_bounds: CLI verify eps 0.005, 2 samples: cpu " << c["by_eps"][0]["mean_seconds_per_sample"].get<double>()
                                                          << " s/sample, cuda " << g["by_eps"][0]["mean_seconds_per_sample"].get<double>()
                                                          << " s/sample");
}
