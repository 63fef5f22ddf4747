#pragma once
// The engine's public device API: what a module needs to run its own loops on the CUDA device
// (robustness/src/cuda: PGD, APGD, Square, smoothing; explain/src/cuda: IG, SmoothGrad;
// verify/src/gpu_products.cpp: DGEMM bound products). Plain C++: no CUDA types, handles are
// opaque pointers (a stream is a cudaStream_t passed as void* to a module's kernel launchers).
//
// - device memory: pooled buffers (allocate), float32 arrays (DeviceArray), copies;
// - a Stream (cuBLAS SGEMM/DGEMM bound to it, CUDA graph capture) and Philox random streams (Rng);
// - a Session's graph resident on the device (Program): forward and input gradient (VJP) on
//   device arrays, found through device_program(session), never a cast.
//
// Definitions live in mlaudit_engine_cuda (engine/src/cuda), built only with the CUDA backend
// (MLAUDIT_WITH_CUDA); without it only cuda_device_count() and cuda_supported_ops() exist.
// Kernels of a module's .cu files use mlaudit/engine/device_kernels.cuh.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine {

class Session;

/// Number of CUDA devices visible (0 without a CUDA build or a GPU).
int cuda_device_count();
/// Op types the CUDA backend runs forward and backward (empty without a CUDA build).
std::vector<std::string> cuda_supported_ops();

}  // namespace mlaudit::engine

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

class Stream;

/// Makes `stream` the current allocation stream of the calling thread (restored on exit):
/// allocations inside the scope are reused only by that stream.
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
  /// The cudaStream_t, for a module's kernel launchers.
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
/// Device to host; synchronises with the stream.
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

/// True when MLAUDIT_CUDA_PROFILE is set: nodes are timed one by one (device loops then skip CUDA graphs).
bool profiling();

/// A float32 tensor in device memory (a view: copies share the buffer; `shape` may be changed to
/// view fewer rows of the same buffer).
struct DeviceArray {
  Shape shape;
  BufferPtr buf;
  float* f() const { return buf->f32(); }
  int64_t numel() const { return shape_numel(shape); }
  bool empty() const { return !buf; }
};
/// The device loops' input check: x a float32 tensor of rank >= min_rank, else
/// InputError(module, "<what>: x must be a float32 batch [<n>,...]").
inline void require_float_batch(const Tensor& x, const std::string& module, const std::string& what,
                                const char* n = "B", size_t min_rank = 1) {
  if (x.rank() < min_rank || x.dtype() != DType::Float32)
    throw InputError(module, what + ": x must be a float32 batch [" + n + ",...]");
}
/// [n, sample...]: a batch of n rows of the sample shape (the device loops' batch shapes).
inline Shape with_batch(const Shape& sample, int64_t n) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}
/// The first `rows` rows of a (a view of the same buffer; a's shape with dim 0 = rows).
inline DeviceArray first_rows(const DeviceArray& a, int64_t rows) {
  DeviceArray v = a;
  v.shape.at(0) = rows;
  return v;
}
/// A fresh (uninitialised) device array of the shape, from the pool.
DeviceArray device_array(const Shape& shape);
/// A zero-filled device array.
DeviceArray device_array_zeros(const Shape& shape, const Stream& s);
/// Upload a host tensor (converted to float32).
DeviceArray upload_array(const Tensor& t, const Stream& s);
/// Download to a host float32 tensor.
Tensor download_array(const DeviceArray& a, const Stream& s);

/// The values a forward kept for a following input gradient (opaque; device memory).
class Tape {
 public:
  bool empty() const { return !state_; }
  std::shared_ptr<const void> state_;  ///< the program's own record (engine-internal)
};

/// A single-input, single-output graph resident on the device (a Session's CUDA executor, its
/// weights uploaded at load). Callers hold lock() for a whole loop and launch their kernels on
/// stream() (under a StreamScope of it), so the executor's work and theirs stay in order.
class Program {
 public:
  virtual ~Program() = default;
  virtual const Graph& graph() const = 0;
  virtual const Stream& stream() const = 0;
  virtual std::mutex& lock() const = 0;
  /// Forward of a device batch x [N, ...]: the graph's first output (on the device). With a tape,
  /// every value the input gradient needs is kept in it.
  virtual DeviceArray forward(const DeviceArray& x, Tape* tape = nullptr) const = 0;
  /// Input gradient (VJP) d<seed, output>/dx of the forward recorded in `tape`; seed has the output's shape.
  virtual DeviceArray input_gradient(const Tape& tape, const DeviceArray& seed) const = 0;
  /// Samples per device batch so that a forward + input gradient fits in half the free device
  /// memory: the bytes of every value a one-sample pass keeps, times 3 (values, gradients,
  /// temporaries), between 1 and `cap`. `sample` is the input shape without the batch axis.
  virtual int64_t fitting_batch(const Shape& sample, int64_t cap) const = 0;
};

/// The Session's graph on the device, when the session runs on the CUDA backend and a device is
/// present (Model::device_resident() finds such a session); nullptr otherwise.
const Program* device_program(const Session& session);

}  // namespace mlaudit::engine::cuda
