#pragma once
// Descriptors shared by the CUDA kernel families (*_impl.h / *_impl.cu) and the host code of the
// ops (<family>.cpp). Plain C++: no CUDA types (ONNX Runtime's *_impl.h convention). Every
// launcher takes the stream as a cudaStream_t passed as void*, checks the launch and throws
// mlaudit::Error naming the kernel on failure.
#include <cstdint>

namespace mlaudit::engine::cuda {

constexpr int kMaxRank = 6;

/// Broadcast iteration over an output of up to 6 dims: per-operand element strides (0 on broadcast dims).
struct BroadcastDesc {
  int rank = 0;
  int64_t out_dims[kMaxRank] = {};
  int64_t a_strides[kMaxRank] = {};
  int64_t b_strides[kMaxRank] = {};
};

/// Sum over the reduced dims of an input: out_dims has the reduced dims set to 1,
/// red_dims has the kept dims set to 1, in_strides are the input's element strides.
struct ReduceDesc {
  int rank = 0;
  int64_t out_dims[kMaxRank] = {};
  int64_t red_dims[kMaxRank] = {};
  int64_t in_strides[kMaxRank] = {};
};

/// 2-D convolution / pooling geometry (NCHW), as ops_nn.cpp resolves it.
struct ConvGeom {
  int64_t n, c, h, w, oc, kh, kw, oh, ow, group, sh, sw, dh, dw, pt, pl;
};

}  // namespace mlaudit::engine::cuda
