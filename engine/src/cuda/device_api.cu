// Device runtime: status checks, pooled allocator, stream + cuBLAS, copies, cuRAND.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <curand.h>
#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "device_api.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine::cuda {

namespace {

void check(cudaError_t e, const char* call) {
  if (e != cudaSuccess) throw Error("engine", std::string("cuda: ") + call + " failed: " + cudaGetErrorString(e));
}
void check_blas(cublasStatus_t st, const char* call) {
  if (st != CUBLAS_STATUS_SUCCESS) throw Error("engine", std::string("cuda: ") + call + " failed (cuBLAS status " + std::to_string(int(st)) + ")");
}
void check_rand(curandStatus_t st, const char* call) {
  if (st != CURAND_STATUS_SUCCESS) throw Error("engine", std::string("cuda: ") + call + " failed (cuRAND status " + std::to_string(int(st)) + ")");
}

// cuBLAS and cuRAND are opened at their first use (dlopen), not linked: linked, libcublasLt
// alone is mapped and relocated at every start of mlaudit (about 220 MB of RSS and 50-200 ms),
// also for the commands that never touch a GPU. Only the functions below are used.
#define MLAUDIT_CUDA_STR2(x) #x
#define MLAUDIT_CUDA_STR(x) MLAUDIT_CUDA_STR2(x)  // the symbol a cuBLAS macro names (cublasCreate -> cublasCreate_v2)
// cublasGemmEx is overloaded in C++ (an inline wrapper taking the old cudaDataType compute type).
using CublasGemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                          const void*, const void*, cudaDataType, int, const void*, cudaDataType, int,
                                          const void*, void*, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
#define MLAUDIT_CUDA_T(name) decltype(&::name)
// One list per library: X(function, its pointer type) declares the table's member and resolves it.
#define MLAUDIT_CUBLAS_FUNCTIONS(X)                                 \
  X(cublasCreate, MLAUDIT_CUDA_T(cublasCreate))                     \
  X(cublasDestroy, MLAUDIT_CUDA_T(cublasDestroy))                   \
  X(cublasSetStream, MLAUDIT_CUDA_T(cublasSetStream))               \
  X(cublasSetWorkspace, MLAUDIT_CUDA_T(cublasSetWorkspace))         \
  X(cublasSetMathMode, MLAUDIT_CUDA_T(cublasSetMathMode))           \
  X(cublasSgemm, MLAUDIT_CUDA_T(cublasSgemm))                       \
  X(cublasSgemmStridedBatched, MLAUDIT_CUDA_T(cublasSgemmStridedBatched)) \
  X(cublasGemmEx, CublasGemmExFn)                                   \
  X(cublasDgemm, MLAUDIT_CUDA_T(cublasDgemm))
#define MLAUDIT_CURAND_FUNCTIONS(X)                                                   \
  X(curandCreateGenerator, MLAUDIT_CUDA_T(curandCreateGenerator))                     \
  X(curandDestroyGenerator, MLAUDIT_CUDA_T(curandDestroyGenerator))                   \
  X(curandSetPseudoRandomGeneratorSeed, MLAUDIT_CUDA_T(curandSetPseudoRandomGeneratorSeed)) \
  X(curandSetStream, MLAUDIT_CUDA_T(curandSetStream))                                 \
  X(curandGenerateNormal, MLAUDIT_CUDA_T(curandGenerateNormal))                       \
  X(curandGenerateUniform, MLAUDIT_CUDA_T(curandGenerateUniform))
#define MLAUDIT_CUDA_MEMBER(name, type) type fn_##name = nullptr;
struct Blas {
  MLAUDIT_CUBLAS_FUNCTIONS(MLAUDIT_CUDA_MEMBER)
};
struct Rand {
  MLAUDIT_CURAND_FUNCTIONS(MLAUDIT_CUDA_MEMBER)
};

// The first of `names` that dlopen finds (the loader's search: LD_LIBRARY_PATH, the cache), then
// the same names in the toolkit's library folder found at configure time.
void* open_library(const std::vector<std::string>& names, const char* what) {
  std::string tried;
  std::vector<std::string> paths = names;
#ifdef MLAUDIT_CUDA_LIB_DIR
  for (const auto& n : names) paths.push_back(std::string(MLAUDIT_CUDA_LIB_DIR) + "/" + n);
#endif
  for (const auto& p : paths) {
    if (void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL)) return h;
    tried += (tried.empty() ? "" : ", ") + p;
  }
  throw Error("engine", std::string("cuda: cannot load ") + what + " (tried " + tried +
                            "); put the CUDA toolkit's lib folder on LD_LIBRARY_PATH");
}

template <class Fn>
void resolve(void* lib, Fn& fn, const char* symbol, const char* what) {
  fn = reinterpret_cast<Fn>(dlsym(lib, symbol));
  if (!fn) throw Error("engine", std::string("cuda: ") + what + " has no " + symbol);
}
// Every function of a library's list, resolved into `t` (the symbol a cuBLAS macro names).
#define MLAUDIT_CUDA_RESOLVE(name, type) resolve(lib, t.fn_##name, MLAUDIT_CUDA_STR(name), what);

const Blas& blas() {
  static const Blas b = [] {
    const char* what = "cuBLAS";
    void* lib = open_library({"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, what);
    Blas t;
    MLAUDIT_CUBLAS_FUNCTIONS(MLAUDIT_CUDA_RESOLVE)
    return t;
  }();
  return b;
}

const Rand& rand_lib() {
  static const Rand r = [] {
    const char* what = "cuRAND";
    void* lib = open_library({"libcurand.so.10", "libcurand.so"}, what);
    Rand t;
    MLAUDIT_CURAND_FUNCTIONS(MLAUDIT_CUDA_RESOLVE)
    return t;
  }();
  return r;
}

// Size-bucketed free lists per owning stream: bucket = next power of two >= 256 bytes.
// A block freed by stream S goes back to S's list (later work on S is ordered after the
// kernels that used it); blocks of a destroyed (synchronized) stream move to the shared list.
struct Pool {
  std::mutex mu;
  std::map<std::pair<void*, size_t>, std::vector<void*>> free_blocks;
  size_t held = 0, cached = 0;

  static size_t bucket(size_t bytes) {
    size_t b = 256;
    while (b < bytes) b <<= 1;
    return b;
  }
  void* pop(void* stream, size_t b) {
    auto it = free_blocks.find({stream, b});
    if (it == free_blocks.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached -= b;
    return p;
  }
  void* take(size_t b, void* stream) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (void* p = pop(stream, b)) return p;
      if (stream)
        if (void* p = pop(nullptr, b)) return p;
    }
    void* p = nullptr;
    if (cudaMalloc(&p, b) != cudaSuccess) {
      cudaGetLastError();  // clear the allocation error, release cached blocks, retry once
      trim();
      check(cudaMalloc(&p, b), "cudaMalloc");
    }
    std::lock_guard<std::mutex> lock(mu);
    held += b;
    return p;
  }
  void give(void* p, size_t b, void* stream) {
    std::lock_guard<std::mutex> lock(mu);
    free_blocks[{stream, b}].push_back(p);
    cached += b;
  }
  void release_stream(void* stream) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = free_blocks.begin(); it != free_blocks.end();) {
      if (it->first.first == stream && stream) {
        auto& shared = free_blocks[{nullptr, it->first.second}];
        shared.insert(shared.end(), it->second.begin(), it->second.end());
        it = free_blocks.erase(it);
      } else {
        ++it;
      }
    }
  }
  void trim() {
    cudaDeviceSynchronize();
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [key, v] : free_blocks) {
      for (void* p : v) cudaFree(p);
      held -= key.second * v.size();
      cached -= key.second * v.size();
      v.clear();
    }
  }
};

thread_local void* t_current_stream = nullptr;

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: blocks may be released after static destruction
  return *p;
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void memory_info(size_t& free_bytes, size_t& total_bytes) { check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"); }

const char* device_description() {
  static std::string desc;
  static std::once_flag once;
  std::call_once(once, [] {
    cudaDeviceProp prop{};
    int dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
      desc = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
    else
      desc = "unknown CUDA device";
  });
  return desc.c_str();
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) pool().give(ptr_, bytes_, stream_);
}

BufferPtr allocate(size_t bytes) {
  size_t b = Pool::bucket(bytes == 0 ? 1 : bytes);
  void* owner = t_current_stream;
  return std::make_shared<DeviceBuffer>(pool().take(b, owner), b, owner);
}

StreamScope::StreamScope(const Stream& stream) : previous_(t_current_stream) { t_current_stream = stream.get(); }
StreamScope::~StreamScope() { t_current_stream = previous_; }

void pool_stats(size_t& held_bytes, size_t& cached_bytes) {
  std::lock_guard<std::mutex> lock(pool().mu);
  held_bytes = pool().held;
  cached_bytes = pool().cached;
}

void pool_trim() { pool().trim(); }

Stream::Stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  stream_ = s;
  cublasHandle_t h = nullptr;
  check_blas(blas().fn_cublasCreate(&h), "cublasCreate");
  blas_ = h;
  check_blas(blas().fn_cublasSetStream(h, s), "cublasSetStream");
  // An explicit workspace keeps cuBLAS from allocating during CUDA graph capture (cuBLAS docs, "CUDA Graphs Support").
  const size_t ws = size_t(32) << 20;
  check(cudaMalloc(&workspace_, ws), "cudaMalloc(cuBLAS workspace)");
  check_blas(blas().fn_cublasSetWorkspace(h, workspace_, ws), "cublasSetWorkspace");
  // Full fp32: no TF32 tensor-core rounding, so results match the CPU backend.
  check_blas(blas().fn_cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

Stream::~Stream() {
  if (blas_) blas().fn_cublasDestroy(static_cast<cublasHandle_t>(blas_));
  if (stream_) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
    pool().release_stream(stream_);  // its cached blocks are idle now: any stream may take them
    cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
  }
  if (workspace_) cudaFree(workspace_);
}

void Stream::synchronize() const { check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "cudaStreamSynchronize"); }

void Stream::sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                   const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  // cuBLAS requires leading dimensions >= 1 even when k = 0 (then C = beta C).
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap operands, keep the flags.
  check_blas(blas().fn_cublasSgemm(static_cast<cublasHandle_t>(blas_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                         trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda),
                         &beta, c, int(ldc)),
             "cublasSgemm");
}

void Stream::sgemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                           int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                           int64_t ldc, int64_t stride_c, int64_t batch) const {
  if (m == 0 || n == 0 || batch == 0) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  check_blas(blas().fn_cublasSgemmStridedBatched(static_cast<cublasHandle_t>(blas_), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                       trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &alpha, b, int(ldb),
                                       stride_b, a, int(lda), stride_a, &beta, c, int(ldc), stride_c, int(batch)),
             "cublasSgemmStridedBatched");
}

void Stream::dgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                   const double* b, int64_t ldb, double beta, double* c, int64_t ldc) const {
  if (m == 0 || n == 0) return;
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  // The sgemm operand swap. The _PEDANTIC compute type ("standard arithmetic and exact specified
  // internal storage format", cublas_api.h) keeps every operation IEEE binary64: the verifier's
  // rounding allowance (verify/src/gpu_products.cpp) relies on that.
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t st = blas().fn_cublasGemmEx(static_cast<cublasHandle_t>(blas_), op_b, op_a, int(n), int(m), int(k), &alpha, b,
                                   CUDA_R_64F, int(ldb), a, CUDA_R_64F, int(lda), &beta, c, CUDA_R_64F, int(ldc),
                                   CUBLAS_COMPUTE_64F_PEDANTIC, CUBLAS_GEMM_DEFAULT);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE) {
    // A cuBLAS without the pedantic fp64 path: plain DGEMM. Still native binary64: this handle's
    // math mode is CUBLAS_DEFAULT_MATH (Stream()), and FP64 emulation needs
    // CUBLAS_FP64_EMULATED_FIXEDPOINT_MATH (the emulation strategy only acts under that mode).
    st = blas().fn_cublasDgemm(static_cast<cublasHandle_t>(blas_), op_b, op_a, int(n), int(m), int(k), &alpha, b, int(ldb), a,
                     int(lda), &beta, c, int(ldc));
  }
  check_blas(st, "cublasGemmEx(fp64)");
}

void Stream::begin_capture() const {
  check(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream_), cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
}

void* Stream::end_capture() const {
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(static_cast<cudaStream_t>(stream_), &graph);
  if (e != cudaSuccess || !graph) {
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  return exec;
}

void Stream::launch_graph(void* graph_exec) const {
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), static_cast<cudaStream_t>(stream_)), "cudaGraphLaunch");
}

void Stream::destroy_graph(void* graph_exec) {
  if (graph_exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec));
}

void upload(void* dst, const void* src, size_t bytes, const Stream& s) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(s.get())), "cudaMemcpyAsync(H2D)");
  // The host buffer may be released right after the call: wait for pageable copies to finish.
  s.synchronize();
}

void download(void* dst, const void* src, size_t bytes, const Stream& s) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(s.get())), "cudaMemcpyAsync(D2H)");
  s.synchronize();
}

void copy_device(void* dst, const void* src, size_t bytes, const Stream& s) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s.get())), "cudaMemcpyAsync(D2D)");
}

void memset_zero(void* dst, size_t bytes, const Stream& s) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(dst, 0, bytes, static_cast<cudaStream_t>(s.get())), "cudaMemsetAsync");
}

Rng::Rng(uint64_t seed, const Stream& s) {
  curandGenerator_t g = nullptr;
  check_rand(rand_lib().fn_curandCreateGenerator(&g, CURAND_RNG_PSEUDO_PHILOX4_32_10), "curandCreateGenerator(Philox)");
  gen_ = g;
  check_rand(rand_lib().fn_curandSetPseudoRandomGeneratorSeed(g, seed), "curandSetPseudoRandomGeneratorSeed");
  check_rand(rand_lib().fn_curandSetStream(g, static_cast<cudaStream_t>(s.get())), "curandSetStream");
}

Rng::~Rng() {
  if (gen_) rand_lib().fn_curandDestroyGenerator(static_cast<curandGenerator_t>(gen_));
}

void Rng::normal(float* out, size_t n) const {
  check_rand(rand_lib().fn_curandGenerateNormal(static_cast<curandGenerator_t>(gen_), out, n + (n & 1), 0.f, 1.f), "curandGenerateNormal");
}

void Rng::uniform(float* out, size_t n) const {
  check_rand(rand_lib().fn_curandGenerateUniform(static_cast<curandGenerator_t>(gen_), out, n), "curandGenerateUniform");
}

void load_libraries() {
  blas();
  rand_lib();
}

}  // namespace mlaudit::engine::cuda
