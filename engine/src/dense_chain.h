#pragma once
// DenseChain: a fused CPU forward for graphs that are a single chain of dense layers
// (per-feature Sub/Add/Mul/Div by constants, Gemm/MatMul by constant weights, Relu, LeakyRelu,
// Sigmoid, Tanh, Identity/Flatten on rows, a final Softmax/LogSoftmax), the shape of most
// tabular models. Rows go through every layer in blocks of 16 or 32 that stay in L1 cache,
// feature-major, with register-blocked FMA kernels (AVX-512 when the CPU has it, else 8-float
// registers), instead of one memory pass (and one allocation) per op over the whole batch. KernelSHAP, LIME, permutation importance and the fairness probes evaluate such models
// on thousands of synthetic rows, where the per-op passes dominate.
//
// Values: the element-wise steps and activations compute exactly what the executor's ops do;
// a dense layer sums its K products in order k = 0..K-1 with fused multiply-adds, so it differs
// from oneDNN's sgemm only in rounding order (a few float ulps). Each row's arithmetic does not
// depend on the batch size, the block split, the thread count or the vector width.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/model.h"
#include "ops.h"
#include "vector_math.h"

namespace mlaudit::engine {

class DenseChain {
 public:
  /// The fused plan of `g`, or nullptr when `g` is not such a chain (the executor then runs it).
  static std::unique_ptr<DenseChain> compile(const Graph& g);
  /// Features per input row (the graph input's last dimension).
  int64_t input_width() const { return in_width_; }
  /// Values per output row.
  int64_t output_width() const { return out_width_; }
  /// y[n x output_width] = f(x[n x input_width]); row blocks run on the engine's threads unless
  /// called from inside a parallel region.
  void forward(const float* x, int64_t n, float* y) const;
  /// True when the chain has a dense layer: the steps before the first one act feature by
  /// feature, so forward_mixtures applies.
  bool mixable() const { return head_ >= 0; }
  /// Model::forward_mixtures for rows of input_width() features, every pattern evaluated (ends
  /// included). A pattern's pre-activation of the first dense layer is b_k's plus the deltas
  /// of the groups it takes from x (W (t(x) - t(b_k)) over the group's features, t the leading
  /// element-wise steps), summed in a fixed order per pattern; the layers after it run as in
  /// forward(), on chunks of 16 patterns. Item k's offsets are multiples of 16 (entries with
  /// at most 4 mixed groups use one chunk).
  void forward_mixtures(const std::vector<Mixtures>& batch, MixtureOutputs& out) const;

  enum class Kind { Sub, SubFrom, Add, Mul, Div, DivInto, Dense, Relu, LeakyRelu, Sigmoid, Tanh, Softmax, LogSoftmax };
  struct Step {
    Kind kind;
    int64_t in = 0, out = 0;                ///< row widths before and after the step
    std::vector<float> c;                   ///< element-wise steps: the constant, one value per feature
    std::vector<float> w;                   ///< Dense: weights [out][in] (row j: output j's weights)
    std::vector<float> bias;                ///< Dense: beta * C, [out] (zeros without C)
    float alpha = 1.f;                      ///< Dense: Gemm's alpha
    Kind act = Kind::Dense;                 ///< Dense: Relu/LeakyRelu fused into its store (Dense: none)
    float slope = 0.f;                      ///< LeakyRelu's alpha (own step or fused)
  };

 private:
  /// The leading element-wise steps (before the first dense layer) on n rows, in place.
  void leading(float* x, int64_t n) const;
  std::vector<Step> steps_;
  int64_t in_width_ = 0, out_width_ = 0, max_width_ = 0;
  double flops_per_row_ = 0;
  bool softmax_ = false, log_softmax_ = false;  ///< the last step, applied to output rows
  bool wide_ = false;                           ///< 16-float (AVX-512) kernels, fixed at compile()
  int head_ = -1;                               ///< index of the first Dense step (-1: none)
  int64_t head_hp_ = 0;                         ///< its outputs rounded up to a multiple of 16
  std::vector<float> head_wt_;                  ///< its weights transposed, [in][head_hp_] (zero padded)
  std::vector<float> head_bias_;                ///< its bias, [head_hp_] (zero padded)
};

}  // namespace mlaudit::engine
