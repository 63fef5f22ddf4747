#pragma once
// Internals shared by the explain sources: a portable RNG (same stream on every
// platform and standard library, unlike std::normal_distribution) and row helpers.
#include <cmath>
#include <cstdint>
#include <vector>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::explain::detail {

/// xoshiro256** seeded through splitmix64 (Blackman & Vigna 2018).
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t z = seed;
    for (auto& s : s_) s = splitmix(z);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0,1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n).
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
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix(uint64_t& z) {
    uint64_t r = (z += 0x9e3779b97f4a7c15ULL);
    r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ULL;
    r = (r ^ (r >> 27)) * 0x94d049bb133111ebULL;
    return r ^ (r >> 31);
  }
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

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
