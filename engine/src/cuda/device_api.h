#pragma once
// Device runtime for the CUDA backend (device_api.cu): status checks, a pooled
// device allocator, streams, host<->device copies, cuBLAS GEMM and cuRAND.
// Plain C++ only; handles are opaque pointers.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace mlaudit::engine::cuda {

/// Number of visible CUDA devices (0 on error or without a driver).
int device_count();
/// Free and total device memory in bytes (cudaMemGetInfo).
void memory_info(size_t& free_bytes, size_t& total_bytes);
/// Device name and compute capability, e.g. "NVIDIA H100 80GB HBM3 (sm_90)".
const char* device_description();

/// A block of device memory from the pool; returned to its size bucket when released.
/// Blocks remember the stream they were allocated under and are reused only by that
/// stream (stream-ordered reuse is safe without events) until the stream is destroyed,
/// when its cached blocks become free for every stream.
class DeviceBuffer {
 public:
  DeviceBuffer(void* ptr, size_t bytes, void* stream) : ptr_(ptr), bytes_(bytes), stream_(stream) {}
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;   // bucket size
  void* stream_;   // owning stream (nullptr: allocated outside any StreamScope)
};
using BufferPtr = std::shared_ptr<DeviceBuffer>;

/// Allocate from the process-wide pool (power-of-two size buckets, reused across nodes and
/// calls; on cudaMalloc failure the cached blocks are released and the allocation retried).
BufferPtr allocate(size_t bytes);
/// Bytes currently held by the pool (in use + cached) and cached only.
void pool_stats(size_t& held_bytes, size_t& cached_bytes);
/// Release cached (unused) blocks back to the driver.
void pool_trim();

/// Open cuBLAS and cuRAND and resolve every function the backend calls (done at their first use
/// otherwise; they are not linked, so a process that never uses the GPU never loads them).
/// Throws Error naming the library or symbol. Needs no device.
void load_libraries();

class Stream;
/// Makes `stream` the owner of blocks allocated on this thread while the scope lives.
class StreamScope {
 public:
  explicit StreamScope(const Stream& stream);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  void* previous_;
};

/// A CUDA stream with a cuBLAS handle bound to it (one per device session).
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void* get() const { return stream_; }
  void synchronize() const;
  /// Row-major C[m,n] = alpha op(A) op(B) + beta C via column-major cuBLAS on the transposed problem
  /// (C^T = op(B)^T op(A)^T). lda/ldb/ldc are row-major leading dimensions.
  void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const;
  /// Strided-batched form of sgemm: `batch` products, operand i at a + i*stride_a etc. (stride 0 shares an operand).
  void sgemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                     int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc,
                     int64_t stride_c, int64_t batch) const;
  /// Double-precision row-major GEMM with the same conventions as sgemm (the verifier's bound
  /// products). Runs cublasGemmEx with CUBLAS_COMPUTE_64F_PEDANTIC (IEEE fp64 multiply/add/FMA in
  /// some summation order, never the fixed-point (Ozaki) FP64 emulation), or cublasDgemm under this
  /// handle's CUBLAS_DEFAULT_MATH where a cuBLAS lacks that compute type (also native fp64).
  void dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
             const double* b, int64_t ldb, double beta, double* c, int64_t ldc) const;
  /// Begin / end capturing the stream into a CUDA graph; end returns an executable graph or nullptr
  /// when capture failed (the caller then runs eagerly).
  void begin_capture() const;
  void* end_capture() const;
  void launch_graph(void* graph_exec) const;
  static void destroy_graph(void* graph_exec);

 private:
  void* stream_ = nullptr;
  void* blas_ = nullptr;
  void* workspace_ = nullptr;
};

void upload(void* dst, const void* src, size_t bytes, const Stream& s);
void download(void* dst, const void* src, size_t bytes, const Stream& s);
void copy_device(void* dst, const void* src, size_t bytes, const Stream& s);
void memset_zero(void* dst, size_t bytes, const Stream& s);

/// cuRAND Philox4x32-10 generator on a stream.
class Rng {
 public:
  Rng(uint64_t seed, const Stream& s);
  ~Rng();
  Rng(const Rng&) = delete;
  Rng& operator=(const Rng&) = delete;
  /// n standard normal floats (n rounded up to even by the caller's buffer).
  void normal(float* out, size_t n) const;
  /// n uniform floats in (0, 1].
  void uniform(float* out, size_t n) const;

 private:
  void* gen_ = nullptr;
};

}  // namespace mlaudit::engine::cuda
