// Host emulation of engine/src/cuda/device_api.h for test_cuda_emulated: "device" memory is
// host memory (new blocks are filled with NaN so a kernel reading memory nobody wrote shows up
// as NaN in the results), copies are memcpy, GEMM (sgemm, dgemm) is a reference column-major BLAS GEMM behind
// the SAME row-major-to-column-major operand swap as device_api.cu, and cuRAND is std::mt19937.
// CUDA graph capture reports failure, so the fused loops take their eager path.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <random>
#include <vector>

#include "device_api.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {
thread_local void* t_current_stream = nullptr;
std::mutex g_mu;
size_t g_held = 0;

// Reference column-major sgemm (BLAS semantics): C = alpha op(A) op(B) + beta C.
void colmajor_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                    const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        float av = ta ? a[p + i * lda] : a[i + p * lda];
        float bv = tb ? b[j + p * ldb] : b[p + j * ldb];
        acc += double(av) * bv;
      }
      float& cij = c[i + j * ldc];
      cij = float(alpha * acc + (beta == 0.f ? 0.0 : double(beta) * cij));
    }
}

// Reference column-major dgemm (BLAS semantics). Blocked over 8 columns of C so each pass over A
// (the verifier's weight matrix, up to 150 MB) serves 8 rows of Lambda; same results as a plain
// triple loop up to summation order (each c_ij is still summed over p in order).
void colmajor_dgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                    const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  std::vector<double> acc(size_t(m) * 8);
  for (int64_t j0 = 0; j0 < n; j0 += 8) {
    const int64_t nb = std::min<int64_t>(8, n - j0);
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t jj = 0; jj < nb; ++jj) {
        const int64_t j = j0 + jj;
        const double bv = tb ? b[j + p * ldb] : b[p + j * ldb];
        double* dst = acc.data() + jj * m;
        if (!ta) {
          const double* col = a + p * lda;
          for (int64_t i = 0; i < m; ++i) dst[i] += col[i] * bv;
        } else {
          for (int64_t i = 0; i < m; ++i) dst[i] += a[p + i * lda] * bv;
        }
      }
    }
    for (int64_t jj = 0; jj < nb; ++jj)
      for (int64_t i = 0; i < m; ++i) {
        double& cij = c[i + (j0 + jj) * ldc];
        cij = alpha * acc[size_t(jj * m + i)] + (beta == 0.0 ? 0.0 : beta * cij);
      }
  }
}
}  // namespace

int device_count() { return 1; }
void memory_info(size_t& free_bytes, size_t& total_bytes) {
  free_bytes = size_t(2) << 30;  // 2 GiB: makes the batch / im2col chunking logic split realistic sizes
  total_bytes = size_t(4) << 30;
}
const char* device_description() { return "host emulation"; }

DeviceBuffer::~DeviceBuffer() {
  std::free(ptr_);
  std::lock_guard<std::mutex> lock(g_mu);
  g_held -= bytes_;
}

BufferPtr allocate(size_t bytes) {
  size_t b = std::max<size_t>(bytes, 4);
  b = (b + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, b);
  if (!p) throw Error("engine", "emulation: out of memory");
  float* f = static_cast<float*>(p);
  std::fill(f, f + b / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  std::lock_guard<std::mutex> lock(g_mu);
  g_held += b;
  return std::make_shared<DeviceBuffer>(p, b, t_current_stream);
}

void pool_stats(size_t& held_bytes, size_t& cached_bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  held_bytes = g_held;
  cached_bytes = 0;
}
void pool_trim() {}

StreamScope::StreamScope(const Stream& stream) : previous_(t_current_stream) { t_current_stream = stream.get(); }
StreamScope::~StreamScope() { t_current_stream = previous_; }

Stream::Stream() { stream_ = this; }
Stream::~Stream() = default;
void Stream::synchronize() const {}

void Stream::sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  // The same operand swap as device_api.cu: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  colmajor_sgemm(trans_b, trans_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
}

void Stream::sgemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                           int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                           float* c, int64_t ldc, int64_t stride_c, int64_t batch) const {
  if (m == 0 || n == 0 || batch == 0) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  for (int64_t i = 0; i < batch; ++i)
    colmajor_sgemm(trans_b, trans_a, n, m, k, alpha, b + i * stride_b, ldb, a + i * stride_a, lda, beta, c + i * stride_c, ldc);
}

void Stream::dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                   const double* b, int64_t ldb, double beta, double* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  colmajor_dgemm(trans_b, trans_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);  // the device_api.cu operand swap
}

// Capture is refused (as a real capture that hits an uncapturable call): the loop runs eagerly.
void Stream::begin_capture() const { throw Error("engine", "emulation: no CUDA graph capture"); }
void* Stream::end_capture() const { return nullptr; }
void Stream::launch_graph(void*) const { throw Error("engine", "emulation: no CUDA graphs"); }
void Stream::destroy_graph(void*) {}

void upload(void* dst, const void* src, size_t bytes, const Stream&) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void download(void* dst, const void* src, size_t bytes, const Stream&) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_device(void* dst, const void* src, size_t bytes, const Stream&) {
  if (bytes) std::memmove(dst, src, bytes);
}
void memset_zero(void* dst, size_t bytes, const Stream&) {
  if (bytes) std::memset(dst, 0, bytes);
}

Rng::Rng(uint64_t seed, const Stream&) { gen_ = new std::mt19937_64(seed); }
Rng::~Rng() { delete static_cast<std::mt19937_64*>(gen_); }
void Rng::normal(float* out, size_t n) const {
  std::normal_distribution<float> d(0.f, 1.f);
  auto& g = *static_cast<std::mt19937_64*>(gen_);
  for (size_t i = 0; i < n; ++i) out[i] = d(g);  // the real generator writes an even count; callers size for it
}
void Rng::uniform(float* out, size_t n) const {
  std::uniform_real_distribution<float> d(0.f, 1.f);
  auto& g = *static_cast<std::mt19937_64*>(gen_);
  for (size_t i = 0; i < n; ++i) out[i] = 1.f - d(g);  // (0, 1] as curandGenerateUniform
}

}  // namespace mlaudit::engine::cuda
