#pragma once
// The project's one seeded random generator: xoshiro256** (Blackman & Vigna 2018) seeded
// through splitmix64 (Steele, Lea & Flood 2014). The same stream on every platform and
// standard library, so sampled results (KernelSHAP coalitions, LIME draws, smoothing noise,
// fairness bootstraps) are reproducible from a seed. Distributions that must stay
// bit-identical to earlier releases live beside their callers on top of next().
#include <cstdint>

namespace mlaudit::engine {

/// splitmix64's step: advances `state` and returns the next mixed value.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// xoshiro256**; also a UniformRandomBitGenerator for the standard distributions.
class Xoshiro256 {
 public:
  using result_type = uint64_t;
  /// State = four splitmix64 steps from `seed`.
  explicit Xoshiro256(uint64_t seed) {
    for (auto& v : s_) v = splitmix64(seed);
  }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return ~uint64_t(0); }
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
  uint64_t operator()() { return next(); }
  /// Uniform in [0, 1) from the top 53 bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  /// Uniform in (0, 1) from the top 53 bits (never 0, so log() of it is finite).
  double uniform_open() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Uniform integer in [0, n): Lemire's multiply-shift (bias below n / 2^64).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace mlaudit::engine
