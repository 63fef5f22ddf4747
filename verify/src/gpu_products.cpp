// GPU products for bound propagation (gpu_products.h): Lambda W and G W^T by cuBLAS DGEMM on
// dense device copies of the weights, uploaded once per Network and layer.
//
// Why the bounds stay sound (bounds.cpp's rounding allowance holds for the device result).
// Every entry (Lambda W)_ij = sum_k Lambda_ik W_kj is evaluated by cuBLAS as some tree of IEEE
// binary64 multiplications, additions and fused multiply-adds: any blocking, any split of k,
// any order. Stream::dgemm asks for CUBLAS_COMPUTE_64F_PEDANTIC, so no reduced-precision or
// fixed-point (Ozaki) emulation is used (where a cuBLAS lacks it, plain cublasDgemm under
// CUBLAS_DEFAULT_MATH, also native binary64: emulation needs CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH).
// For any order of evaluation, and with or without FMA (one rounding per fused
// operation), |fl(x.y) - x.y| <= gamma_n |x|.|y| with gamma_n = n u / (1 - n u), u = 2^-53,
// n the number of products (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed.,
// Sec. 3.1 and Lemma 3.4; the bound does not depend on the order). A product with an exact zero
// factor is exactly 0 and adding 0 is exact, so the zeros of the dense copy of a sparse
// (convolution) layer add no error: n is at most the number of non-zero terms, as in the CSR loop
// on the CPU. alpha = 1 and beta = 0 make the scaling exact (beta = 0: C is not read).
// bounds.cpp charges gamma(max(in, out)) |Lambda| |W| |a|_max for every Lambda W (its gamma(n) =
// 2 (n + 2) u >= gamma_n; the factor 2 also covers a directed rounding of each operation), with
// |Lambda| and |W| taken from the host copies, so the allowance is the same whichever device
// computed the product. Underflow is treated as on the CPU path. The result is copied back
// bit for bit. G W^T (alpha-CROWN's reverse pass) only steers the slope optimisation; the
// chosen slopes' bound is recomputed by the sound back-substitution.
#include "gpu_products.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#ifdef MLAUDIT_WITH_CUDA
#include "mlaudit/engine/device.h"  // the engine's public device API
#endif

namespace mlaudit::verify::detail {

#ifdef MLAUDIT_WITH_CUDA
namespace {

namespace cu = mlaudit::engine::cuda;

// The layer contents a device copy was made from, kept on the host and compared in full on every
// lookup (O(weights), small beside the product the device then runs): a device copy is reused only
// for an unmodified layer, so a layer changed in place can never leave stale weights on the device.
struct LayerKey {
  int64_t in = 0, out = 0;
  std::vector<double> weight, csr_val;
  std::vector<int> csr_row, csr_col;

  static LayerKey of(const AffineLayer& L) {
    LayerKey k;
    k.in = L.in;
    k.out = L.out;
    k.weight = L.weight;
    k.csr_val = L.csr_val;
    k.csr_row = L.csr_row;
    k.csr_col = L.csr_col;
    return k;
  }
  bool matches(const AffineLayer& L) const {
    return in == L.in && out == L.out && weight == L.weight && csr_val == L.csr_val && csr_row == L.csr_row &&
           csr_col == L.csr_col;
  }
};

class CudaProducts final : public ProductBackend {
 public:
  explicit CudaProducts(const ProductOptions& opts) : opts_(opts), stream_(std::make_unique<cu::Stream>()) {}
  ~CudaProducts() override {
    layers_.clear();  // weight blocks go back to the stream's pool list before the stream goes
  }

  bool left_mul(const double* lambda, int64_t rows, const AffineLayer& L, double* out) override {
    // Row-major out[rows, in] = lambda[rows, out] W[out, in].
    return product(lambda, rows, L, out, false);
  }
  bool right_mul_t(const double* g, int64_t rows, const AffineLayer& L, double* out) override {
    // Row-major out[rows, out] = g[rows, in] W^T.
    return product(g, rows, L, out, true);
  }
  ProductStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  struct DeviceLayer {
    LayerKey key;
    cu::BufferPtr weight;  // dense row-major [out, in]; null when it does not fit
  };

  // The cost model of ProductOptions: is the device estimated to be min_speedup times faster?
  bool worth_it(const double* x, int64_t rows, const AffineLayer& L, bool transpose) const {
    const double weights = double(L.out) * double(L.in);
    if (rows <= 0 || weights < double(opts_.min_layer_weights)) return false;
    if (opts_.min_speedup <= 0) return true;
    const double r = double(rows);
    double cpu_s;
    if (!L.sparse()) {
      cpu_s = r * weights / opts_.cpu_dense_macs_per_s;
    } else if (transpose) {
      cpu_s = r * double(L.csr_val.size()) / opts_.cpu_sparse_macs_per_s;  // every row against every non-zero
    } else {
      // Lambda W skips Lambda's zeros: sample up to 8 rows for the fraction of non-zeros.
      const int64_t samples = std::min<int64_t>(rows, 8);
      double nonzero = 0;
      for (int64_t s = 0; s < samples; ++s) {
        const double* row = x + (s * rows / samples) * L.out;
        for (int64_t k = 0; k < L.out; ++k) nonzero += row[k] != 0;
      }
      const double lambda_nnz = nonzero / double(samples) * r;
      cpu_s = lambda_nnz * (double(L.csr_val.size()) / double(L.out)) / opts_.cpu_sparse_macs_per_s;
    }
    const double device_s = opts_.call_seconds + r * double(L.in + L.out) * sizeof(double) / opts_.link_bytes_per_s +
                            r * weights / opts_.device_macs_per_s;
    return cpu_s >= opts_.min_speedup * device_s;
  }

  // The layer's dense device copy, uploaded on first use (nullptr: it does not fit).
  const cu::DeviceBuffer* weights_of(const AffineLayer& L) {
    auto it = layers_.find(&L);
    if (it != layers_.end() && it->second.key.matches(L)) return it->second.weight.get();
    DeviceLayer dl;
    dl.key = LayerKey::of(L);
    const size_t bytes = size_t(L.out) * size_t(L.in) * sizeof(double);
    size_t free_bytes = 0, total_bytes = 0;
    cu::memory_info(free_bytes, total_bytes);
    if (double(bytes) <= opts_.max_weight_fraction * double(free_bytes)) {
      std::vector<double> dense;
      const double* host = L.weight.data();
      if (L.weight.size() != size_t(L.out * L.in)) {  // only the compressed copy is kept: expand it
        dense.assign(size_t(L.out * L.in), 0.0);
        for (int64_t r = 0; r < L.out; ++r)
          for (int p = L.csr_row[size_t(r)]; p < L.csr_row[size_t(r + 1)]; ++p)
            dense[size_t(r * L.in + L.csr_col[size_t(p)])] = L.csr_val[size_t(p)];
        host = dense.data();
      }
      cu::StreamScope scope(*stream_);
      dl.weight = cu::allocate(bytes);
      cu::upload(dl.weight->get(), host, bytes, *stream_);
      ++stats_.layers_uploaded;
    }
    auto& slot = layers_[&L];
    slot = std::move(dl);
    return slot.weight.get();
  }

  bool product(const double* x, int64_t rows, const AffineLayer& L, double* out, bool transpose) {
    if (!worth_it(x, rows, L, transpose)) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.declined_products;
      return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_) {
      ++stats_.declined_products;
      return false;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      const cu::DeviceBuffer* w = weights_of(L);
      if (!w) {
        ++stats_.declined_products;
        return false;
      }
      const int64_t x_cols = transpose ? L.in : L.out, y_cols = transpose ? L.out : L.in;
      cu::StreamScope scope(*stream_);
      cu::BufferPtr dx = cu::allocate(size_t(rows * x_cols) * sizeof(double));
      cu::BufferPtr dy = cu::allocate(size_t(rows * y_cols) * sizeof(double));
      const double* a = static_cast<const double*>(dx->get());
      const double* wd = static_cast<const double*>(w->get());
      double* c = static_cast<double*>(dy->get());
      cu::upload(dx->get(), x, size_t(rows * x_cols) * sizeof(double), *stream_);
      if (!transpose)
        stream_->dgemm(false, false, rows, L.in, L.out, 1.0, a, L.out, wd, L.in, 0.0, c, L.in);
      else
        stream_->dgemm(false, true, rows, L.out, L.in, 1.0, a, L.in, wd, L.in, 0.0, c, L.out);
      cu::download(out, dy->get(), size_t(rows * y_cols) * sizeof(double), *stream_);  // synchronises
    } catch (const std::exception&) {
      // A device error (out of memory, a lost context): every later product runs on the CPU.
      failed_ = true;
      ++stats_.declined_products;
      return false;
    }
    ++stats_.device_products;
    stats_.device_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return true;
  }

  ProductOptions opts_;
  mutable std::mutex mu_;
  std::unique_ptr<cu::Stream> stream_;
  std::map<const AffineLayer*, DeviceLayer> layers_;
  ProductStats stats_;
  bool failed_ = false;
};

}  // namespace

std::shared_ptr<ProductBackend> make_gpu_products(const ProductOptions& opts) {
  if (cu::device_count() <= 0) return nullptr;
  return std::make_shared<CudaProducts>(opts);
}
#else
std::shared_ptr<ProductBackend> make_gpu_products(const ProductOptions&) { return nullptr; }
#endif

// The per-thread selection and the factory. Left out of the host-emulation test's copy of this
// file (it only contributes its renamed make_gpu_products to the library's registry).
#ifndef MLAUDIT_GPU_PRODUCTS_FACTORY_ONLY
namespace {

struct ProductState {
  std::shared_ptr<ProductBackend> backend;  // nullptr: no device, CPU products
};

std::mutex g_registry_mu;
ProductFactory g_factory = nullptr;  // nullptr: make_gpu_products
ProductOptions g_options;
thread_local ProductBackend* t_current = nullptr;

}  // namespace

ProductBackend* current_products() { return t_current; }

ProductScope::ProductScope(const Network& net) : previous_(t_current) {
  if (net.product_device == engine::Device::Cpu) {
    t_current = nullptr;
    return;
  }
  std::lock_guard<std::mutex> lock(g_registry_mu);
  if (!net.product_state) {
    auto state = std::make_shared<ProductState>();
    try {
      state->backend = g_factory ? g_factory(g_options) : make_gpu_products(g_options);
    } catch (const std::exception&) {
      state->backend = nullptr;  // the device would not start: CPU products (equally sound)
    }
    net.product_state = state;
  }
  t_current = static_cast<ProductState*>(net.product_state.get())->backend.get();
}

ProductScope::~ProductScope() { t_current = previous_; }

void set_product_factory(ProductFactory factory, const ProductOptions& opts) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  g_factory = factory;
  g_options = opts;
}

ProductBackend* products_of(const Network& net) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  if (!net.product_state) return nullptr;
  return static_cast<ProductState*>(net.product_state.get())->backend.get();
}
#endif

}  // namespace mlaudit::verify::detail
