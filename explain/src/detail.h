#pragma once
// Internals shared by the explain sources: explain's distributions on the project's portable
// RNG (same stream on every platform and standard library, unlike std::normal_distribution)
// and row helpers.
#include <cmath>
#include <cstdint>
#include <vector>

#include "mlaudit/engine/random.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::explain::detail {

/// The project's generator (engine/random.h) with explain's distributions on top.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t next() { return g_.next(); }
  /// Uniform in [0,1) with 53 random bits.
  double uniform() { return g_.uniform(); }
  /// Uniform integer in [0, n) (floor of uniform() * n: explain's published streams).
  uint64_t below(uint64_t n) { return uint64_t(uniform() * double(n)) % n; }
  /// Standard normal (Box-Muller, one value per call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0;
    while (u1 <= 0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2 * M_PI * u2);
  }
  /// Fisher-Yates shuffle.
  template <class T> void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  engine::Xoshiro256 g_;
  bool has_spare_ = false;
  double spare_ = 0;
};

/// Seed of row `row`'s own stream (row counted in the whole data set): SmoothGrad, KernelSHAP,
/// LIME and max-sensitivity draw each row's randomness from it, so a row's numbers do not depend
/// on which other rows are explained with it (`--shard`, `--limit`). The golden-ratio constant
/// spreads consecutive rows' seeds over the 64-bit range.
inline uint64_t row_seed(uint64_t seed, int64_t row) { return seed + 0x9E3779B97F4A7C15ULL * uint64_t(row); }

/// Elements per row of a batch tensor (product of all dims but the first).
inline int64_t row_size(const engine::Tensor& t) { return t.rank() == 0 ? 1 : (t.shape()[0] == 0 ? 0 : t.numel() / t.shape()[0]); }
/// Shape of one row (drops axis 0).
inline engine::Shape row_shape(const engine::Tensor& t) { return engine::Shape(t.shape().begin() + 1, t.shape().end()); }
/// Shape [n, row...].
inline engine::Shape batch_shape(int64_t n, const engine::Shape& row) {
  engine::Shape s{n};
  s.insert(s.end(), row.begin(), row.end());
  return s;
}
/// Throws InputError unless x is a float32 batch [N, ...] with N >= 1.
void check_batch(const engine::Tensor& x, const char* what);

}  // namespace mlaudit::explain::detail
