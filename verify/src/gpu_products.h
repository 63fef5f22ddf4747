#pragma once
// Private to mlaudit_verify: the large matrix products of bound propagation (Lambda W in
// CROWN back-substitution, G W^T in alpha-CROWN's reverse pass) on a GPU. bounds.cpp asks
// current_products() inside left_mul / right_mul_t; a ProductScope (one line at the top of each
// back-substitution) selects the backend of the Network being bounded for the calling thread.
// Plain C++: no CUDA types (gpu_products.cpp talks to the engine's public device API, mlaudit/engine/device.h).
#include <cstdint>
#include <memory>

#include "mlaudit/verify/network.h"

namespace mlaudit::verify::detail {

/// When a product goes to the device: the layer is large and the estimated device time (a fixed
/// call cost, the copies of Lambda and of the result, the dense DGEMM) is at least `min_speedup`
/// times below the estimated CPU time (dense: rows x out x in multiply-adds; compressed layers:
/// the non-zeros of Lambda, estimated from up to 8 sampled rows, times the non-zeros per row of W,
/// as the CSR loop skips zero coefficients). Defaults: docs/dev/verify.md, "GPU bounds".
struct ProductOptions {
  int64_t min_layer_weights = int64_t(1) << 16;  ///< layers with fewer weights (ACAS Xu's 50x50) stay on the CPU
  double min_speedup = 2.0;                      ///< 0: every product of a large enough layer goes to the device
  double cpu_dense_macs_per_s = 5e9;             ///< Eigen's GEMM, one thread
  double cpu_sparse_macs_per_s = 1e9;            ///< the CSR loops (scattered accumulation)
  double link_bytes_per_s = 1e10;                ///< host <-> device copies of pageable memory (PCIe)
  double device_macs_per_s = 1e13;               ///< fp64 DGEMM (H100: 34 TFLOP/s without tensor cores; conservative)
  double call_seconds = 5e-5;                    ///< launch and synchronisation of one product
  double max_weight_fraction = 0.5;              ///< a layer's dense device copy may take at most this share of free memory
};

/// Counters of one backend (for tests and the benchmark).
struct ProductStats {
  int64_t device_products = 0;   ///< products computed on the device
  int64_t declined_products = 0; ///< products left to the CPU (small, or the layer does not fit)
  int64_t layers_uploaded = 0;   ///< dense weight copies made on the device
  double device_seconds = 0;     ///< wall time inside device products (upload + GEMM + download)
};

/// Large bound-propagation products on a device. Thread-safe (calls are serialised).
class ProductBackend {
 public:
  virtual ~ProductBackend() = default;
  /// out[rows, L.in] = lambda[rows, L.out] W (row-major). False: the product is left to the
  /// caller's CPU path (too small, or L's dense copy does not fit on the device).
  virtual bool left_mul(const double* lambda, int64_t rows, const AffineLayer& L, double* out) = 0;
  /// out[rows, L.out] = g[rows, L.in] W^T (row-major); false as for left_mul.
  virtual bool right_mul_t(const double* g, int64_t rows, const AffineLayer& L, double* out) = 0;
  /// Counters so far.
  virtual ProductStats stats() const = 0;
};

/// The CUDA backend (cuBLAS DGEMM on dense device copies of the weights), or nullptr when this
/// build has no CUDA or no device is present.
std::shared_ptr<ProductBackend> make_gpu_products(const ProductOptions& opts);

/// The backend of the calling thread's current ProductScope (nullptr: CPU products).
ProductBackend* current_products();

/// Selects `net`'s backend (made on first use, kept in net.product_state) for the calling thread
/// while it lives; CPU when net.product_device is Cpu or no device is present.
class ProductScope {
 public:
  explicit ProductScope(const Network& net);
  ~ProductScope();
  ProductScope(const ProductScope&) = delete;
  ProductScope& operator=(const ProductScope&) = delete;

 private:
  ProductBackend* previous_;
};

/// Tests: the factory ProductScope uses for networks with a non-CPU product_device and its
/// options (nullptr restores make_gpu_products and the default options). Networks that already
/// hold a backend keep it.
using ProductFactory = std::shared_ptr<ProductBackend> (*)(const ProductOptions&);
void set_product_factory(ProductFactory factory, const ProductOptions& opts = {});

/// The backend `net` holds (after a bound computation with a non-CPU product_device), or nullptr.
ProductBackend* products_of(const Network& net);

}  // namespace mlaudit::verify::detail
