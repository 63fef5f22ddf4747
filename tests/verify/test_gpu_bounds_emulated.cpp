// GPU bound products (verify/src/gpu_products.cpp) through the host emulation of the device
// runtime (tests/cuda/device_api_host.cpp: dgemm is a reference column-major BLAS loop behind the
// same operand swap as device_api.cu): every machine checks the product plumbing (row-major
// swap, transposes, weight upload and reuse, thresholds) and that bounds computed with the
// products "on the device" equal the CPU path's and contain sampled concrete values.
// This file is compiled with gpu_products.cpp renamed (make_gpu_products ->
// emulated_make_gpu_products, namespace cuda -> cuda_host_emulation; tests/verify/CMakeLists.txt),
// so the name make_gpu_products below is the emulated factory.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "gpu_bounds_util.h"
#include "gpu_products.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/verify/bounds.h"
#include "test_util.h"
#include "verify_test_util.h"

using namespace mlaudit::verify;
using namespace mlaudit::verify::testing;
namespace detail = mlaudit::verify::detail;

namespace {

// Tolerance of GPU-versus-CPU bounds. Both paths compute the same back-substitution in double
// precision; only the summation order of the entries of Lambda W differs, which moves each entry
// by at most gamma_n |Lambda| |W| (~1e-12 relative for n <= 12544) and can flip the relaxation of
// a coefficient within that distance of zero (changing the bound by as little). 1e-9 relative to
// (1 + |bound|) is a thousand times that and far below any bound difference that matters.
constexpr double kGpuCpuTolerance = 1e-9;

// Every product on the (emulated) device, whatever its size.
detail::ProductOptions all_on_device() {
  detail::ProductOptions o;
  o.min_layer_weights = 0;
  o.min_speedup = 0;
  return o;
}

// Installs the emulated factory for the test's lifetime.
struct EmulatedDevice {
  explicit EmulatedDevice(const detail::ProductOptions& o) { detail::set_product_factory(&detail::make_gpu_products, o); }
  ~EmulatedDevice() { detail::set_product_factory(nullptr); }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("gpu products (emulated): dgemm and its transposes equal a direct product", "[verify][gpu]") {
  EmulatedDevice device(all_on_device());
  auto backend = detail::make_gpu_products(all_on_device());
  REQUIRE(backend);
  std::mt19937_64 rng(3);
  Network net = random_network({37, 53}, 5);
  const AffineLayer& L = net.layers[0];
  std::normal_distribution<double> nd(0, 1);
  const int64_t rows = 11;
  std::vector<double> lambda(size_t(rows * L.out)), g(size_t(rows * L.in));
  for (auto& v : lambda) v = nd(rng);
  for (auto& v : g) v = nd(rng);
  std::vector<double> out(size_t(rows * L.in)), out_t(size_t(rows * L.out));
  REQUIRE(backend->left_mul(lambda.data(), rows, L, out.data()));
  REQUIRE(backend->right_mul_t(g.data(), rows, L, out_t.data()));
  // Reference sums in long double: exact to far below the 1e-12 allowed (53 terms of size ~1).
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < L.in; ++j) {
      long double s = 0;
      for (int64_t k = 0; k < L.out; ++k) s += (long double)lambda[size_t(i * L.out + k)] * L.weight[size_t(k * L.in + j)];
      CHECK(std::fabs(double(s) - out[size_t(i * L.in + j)]) <= 1e-12);
    }
    for (int64_t k = 0; k < L.out; ++k) {
      long double s = 0;
      for (int64_t j = 0; j < L.in; ++j) s += (long double)g[size_t(i * L.in + j)] * L.weight[size_t(k * L.in + j)];
      CHECK(std::fabs(double(s) - out_t[size_t(i * L.out + k)]) <= 1e-12);
    }
  }
  auto st = backend->stats();
  CHECK(st.device_products == 2);
  CHECK(st.layers_uploaded == 1);  // the second product reused the device copy
  // A layer changed in place, even in one weight, is uploaded again, never served stale
  // (the whole layer is compared with the host snapshot the device copy was made from).
  AffineLayer& M = net.layers[0];
  REQUIRE(M.in > 1);
  M.weight[1] += 1.0;
  REQUIRE(backend->left_mul(lambda.data(), rows, M, out.data()));
  CHECK(backend->stats().layers_uploaded == 2);
  for (int64_t i = 0; i < rows; ++i) {
    long double s = 0;
    for (int64_t k = 0; k < M.out; ++k) s += (long double)lambda[size_t(i * M.out + k)] * M.weight[size_t(k * M.in + 1)];
    CHECK(std::fabs(double(s) - out[size_t(i * M.in + 1)]) <= 1e-12);
  }
}

TEST_CASE("gpu products (emulated): small CNN bounds equal the CPU path's and contain sampled outputs", "[verify][gpu]") {
  EmulatedDevice device(all_on_device());
  for (uint64_t seed : {11u, 12u}) {
    Network cpu_net = small_cnn(seed);
    Network gpu_net = small_cnn(seed);
    gpu_net.product_device = mlaudit::engine::Device::Cuda;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0, 1);
    std::vector<double> x0(144);
    for (auto& v : x0) v = u01(rng);
    for (double eps : {0.02, 0.08}) {
      INFO("seed " << seed << " eps " << eps);
      InputBox box = linf_box(x0, eps);
      LayerBounds cpu = crown_bounds(cpu_net, box);
      LayerBounds gpu = crown_bounds(gpu_net, box);
      CHECK(max_relative_gap(gpu, cpu) <= kGpuCpuTolerance);
      CHECK(sampled_violations(gpu_net, box, gpu, 1000, seed + 1) == 0);
      // Objectives (margins of class 0) and alpha-CROWN: the slopes' optimisation runs its forward
      // (Lambda W) and reverse (G W^T) products on the device; its bound is recomputed soundly.
      auto rows = margin_objectives(0, 10);
      auto lin_cpu = crown_objective(cpu_net, box, cpu, rows);
      auto lin_gpu = crown_objective(gpu_net, box, gpu, rows);
      for (size_t r = 0; r < rows.size(); ++r)
        CHECK(std::fabs(lin_gpu[r].lower - lin_cpu[r].lower) <= kGpuCpuTolerance * (1 + std::fabs(lin_cpu[r].lower)));
      ObjectiveBound a_gpu = alpha_crown_objective(gpu_net, box, gpu, rows[0]);
      CHECK(a_gpu.lower >= lin_gpu[0].lower);  // never looser than CROWN
      std::mt19937_64 srng(seed + 2);
      int64_t below = 0;
      for (int s = 0; s < 500; ++s) {
        auto y = gpu_net.forward(sample_in_box(box, srng, s));
        if (y[0] - y[1] < a_gpu.lower) ++below;
      }
      CHECK(below == 0);
      LayerBounds acr = alpha_crown_bounds(gpu_net, box);
      CHECK(sampled_violations(gpu_net, box, acr, 500, seed + 3) == 0);
    }
    detail::ProductBackend* b = detail::products_of(gpu_net);
    REQUIRE(b);
    auto st = b->stats();
    CHECK(st.device_products > 0);
    CHECK(st.declined_products == 0);
    CHECK(st.layers_uploaded == 4);  // once per layer, reused across calls and radii
    CHECK(detail::products_of(cpu_net) == nullptr);  // product_device Cpu: no backend made
  }
}

TEST_CASE("gpu products (emulated): concurrent bound computations share one backend", "[verify][gpu]") {
  // Branch and bound bounds branches on several threads against one Network: the first
  // ProductScope makes the backend, the products are serialised on its stream.
  EmulatedDevice device(all_on_device());
  Network cpu_net = small_cnn(21), gpu_net = small_cnn(21);
  gpu_net.product_device = mlaudit::engine::Device::Cuda;
  std::vector<InputBox> boxes;
  for (int t = 0; t < 4; ++t) boxes.push_back(linf_box(std::vector<double>(144, 0.2 + 0.15 * t), 0.05));
  std::vector<LayerBounds> gpu(boxes.size());
  std::vector<std::thread> workers;
  for (size_t t = 0; t < boxes.size(); ++t)
    workers.emplace_back([&, t] { gpu[t] = crown_bounds(gpu_net, boxes[t]); });
  for (auto& w : workers) w.join();
  for (size_t t = 0; t < boxes.size(); ++t) CHECK(max_relative_gap(gpu[t], crown_bounds(cpu_net, boxes[t])) <= kGpuCpuTolerance);
  REQUIRE(detail::products_of(gpu_net));
  CHECK(detail::products_of(gpu_net)->stats().layers_uploaded == 4);  // one backend, one upload per layer
}

TEST_CASE("gpu products (emulated): ACAS Xu-sized layers stay on the CPU with the default thresholds", "[verify][gpu]") {
  EmulatedDevice device(detail::ProductOptions{});
  Network net = random_network({5, 50, 50, 50, 50, 50, 50, 5}, 9);
  net.product_device = mlaudit::engine::Device::Auto;
  InputBox box{{-0.1, -0.1, -0.1, -0.1, -0.1}, {0.1, 0.1, 0.1, 0.1, 0.1}};
  LayerBounds b = crown_bounds(net, box, {}, true, true);  // refine_stable: every neuron back-substituted
  REQUIRE(detail::products_of(net));
  auto st = detail::products_of(net)->stats();
  CHECK(st.device_products == 0);
  CHECK(st.declined_products > 0);
  CHECK(st.layers_uploaded == 0);
  CHECK(sampled_violations(net, box, b, 500, 4) == 0);
}

TEST_CASE("gpu products (emulated): without a device the CPU path runs", "[verify][gpu]") {
  // A factory that finds no device (make_gpu_products returns nullptr then): CPU products.
  detail::set_product_factory([](const detail::ProductOptions&) -> std::shared_ptr<detail::ProductBackend> { return nullptr; });
  Network net = small_cnn(4);
  net.product_device = mlaudit::engine::Device::Cuda;
  Network ref = small_cnn(4);
  InputBox box = linf_box(std::vector<double>(144, 0.5), 0.05);
  CHECK(max_relative_gap(crown_bounds(net, box), crown_bounds(ref, box)) == 0.0);  // the same CPU arithmetic
  CHECK(detail::products_of(net) == nullptr);
  detail::set_product_factory(nullptr);
}

TEST_CASE("gpu products (emulated): bundled CNN, CROWN bounds at a small radius equal the CPU path's", "[verify][gpu]") {
  std::string cnn = mlaudit::test::source_path("models/fmnist_cnn.onnx");
  std::string fx = mlaudit::test::source_path("datasets/demo/fmnist_x.npy");
  if (!std::filesystem::exists(cnn) || !std::filesystem::exists(fx)) {
    WARN("bundled CNN or demo data absent");
    return;
  }
  // The default cost model: the products it sends to the device (fc1's, and the conv products of
  // the dense coefficient rows that come back from fc1 and the output) run on the emulated one.
  EmulatedDevice device(detail::ProductOptions{});
  Network cpu_net = load_network(cnn);
  Network gpu_net = load_network(cnn);
  gpu_net.product_device = mlaudit::engine::Device::Cuda;
  auto data = mlaudit::datasets::read_npy_float(fx).to_doubles();
  std::vector<double> x0(data.begin(), data.begin() + 784);
  InputBox box = linf_box(x0, 0.002);
  auto t0 = std::chrono::steady_clock::now();
  LayerBounds cpu = crown_bounds(cpu_net, box);
  const double cpu_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  LayerBounds gpu = crown_bounds(gpu_net, box);
  const double gpu_s = seconds_since(t0);
  CHECK(max_relative_gap(gpu, cpu) <= kGpuCpuTolerance);
  CHECK(sampled_violations(gpu_net, box, gpu, 200, 5) == 0);
  auto st = detail::products_of(gpu_net)->stats();
  CHECK(st.device_products > 0);
  CHECK(st.declined_products > 0);  // one-hot and local rows of the conv layers stay on the CPU
  WARN("fmnist_cnn eps 0.002 CROWN: CPU " << cpu_s << " s, emulated device " << gpu_s << " s (" << st.device_products
                                          << " device products, unstable ReLUs " << unstable_relu_count(cpu_net, cpu) << ")");
}
