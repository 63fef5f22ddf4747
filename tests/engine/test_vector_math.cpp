// The vectorised kernels of engine/src/vector_math.h (exp, sigmoid, softmax rows) against
// double-precision references, their special values and array tails; and the ops that use
// them or the other fast paths of the same change (Sigmoid, Softmax/LogSoftmax, broadcast
// Mul/Add with coalesced dims, tiled Transpose) against references computed here.
//
// Errors are measured in ulps of the correctly rounded float result, ulp(v) = 2^(e - 23) for
// v in [2^e, 2^(e+1)) (single precision, 24-bit significand). The bounds:
//  - exp: 2 ulp. The argument reduction r = x - n ln2 is exact to ~2^-32 (Cody-Waite with
//    FMA), the degree-5 Cephes polynomial is within ~1e-8 relative of e^r on |r| <= ln2/2,
//    and the Horner steps and the final "+1" add about one rounding of e^r; the power-of-two
//    scaling is exact for normal results. So ~1 ulp plus the reference's own 0.5 ulp
//    rounding distance; 2 ulp leaves a margin. Subnormal results (below 2^-126) take one
//    more rounding at the absolute granularity 2^-149: bound 1 such unit.
//  - sigmoid: 4 ulp. e^-|x| (2 ulp, damped by e/(1+e) <= 1/2 in the denominator), the sum
//    1 + e (0.5) and the division (0.5), plus the reference's 0.5.
//  - softmax: 4 ulp of each probability (exp 2, product with the rounded 1/s 1, s itself
//    accumulated in double), plus what the float subtraction z = x - m costs (as in the
//    portable form, which the kernels reproduce): |dz| <= 2^-24 |z| moves e^z by the
//    relative amount 2^-24 |z| (tens of ulp for probabilities near e^-100, which rtol-scaled
//    comparisons do not see); probabilities below FLT_MIN within FLT_MIN absolute.
//    Log-softmax: 4 ulp of max(|y|, 1) (x - m rounded in float, log s from a sum whose terms
//    carry 2 ulp each).
// The portable forms (std::exp) are held to the same bounds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

// The kernels are engine internals (engine/src is not on the test include path).
#include "../../engine/src/vector_math.h"
#include "op_graph.h"

using namespace mlaudit::test;
namespace detail = mlaudit::engine::detail;

namespace {

constexpr double kExpUlps = 2.0;
constexpr double kSigmoidUlps = 4.0;
constexpr double kSoftmaxUlps = 4.0;
const double kFltMin = double(std::numeric_limits<float>::min());
const double kSubnormalUnit = std::ldexp(1.0, -149);

/// ulp of the float nearest to the positive double v (v >= FLT_MIN).
double ulp_of(double v) {
  int e = 0;
  std::frexp(v, &e);  // v = f 2^e, f in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

float from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

using ArrayKernel = void (*)(const float*, float*, int64_t);

/// |softmax output - r| allowed for the exact probability r = e^z / s, z = x - max <= 0.
double softmax_allowed(double r, double z) {
  if (r < kFltMin) return kFltMin;
  return kSoftmaxUlps * ulp_of(r) + r * std::fabs(z) * std::ldexp(1.0, -24);
}

struct ExpSweep {
  double worst_ulps = 0;       // normal results
  double worst_subnormal = 0;  // subnormal results, in units of 2^-149
  float worst_x = 0;
};

// Every 61st float (an odd step, so every low-bit pattern occurs) with e^x between 0 and
// FLT_MAX: bit patterns of [0, 89) and of (-104, -0].
ExpSweep sweep_exp(ArrayKernel exp_kernel) {
  ExpSweep r;
  std::vector<float> xs, ys;
  auto flush = [&] {
    ys.resize(xs.size());
    exp_kernel(xs.data(), ys.data(), int64_t(xs.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      const double ref = std::exp(double(xs[i]));
      if (ref > double(std::numeric_limits<float>::max())) continue;
      const double err = std::fabs(double(ys[i]) - ref);
      if (ref >= kFltMin) {
        const double u = err / ulp_of(ref);
        if (u > r.worst_ulps) {
          r.worst_ulps = u;
          r.worst_x = xs[i];
        }
      } else {
        r.worst_subnormal = std::max(r.worst_subnormal, err / kSubnormalUnit);
      }
    }
    xs.clear();
  };
  const uint32_t pos_end = 0x42B20000u;  // 89.0f
  const uint32_t neg_end = 0xC2D00000u;  // -104.0f
  for (uint32_t b = 0; b < pos_end; b += 61) {
    xs.push_back(from_bits(b));
    if (xs.size() == 65536) flush();
  }
  for (uint32_t b = 0x80000000u; b < neg_end; b += 61) {
    xs.push_back(from_bits(b));
    if (xs.size() == 65536) flush();
  }
  flush();
  return r;
}

void check_exp_specials(ArrayKernel exp_kernel) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x = {-inf, inf, nan, 0.f, -0.f, 89.f, 1000.f, -104.f, -1000.f, 88.72283f, -87.33654f, -103.9f, 1.f};
  std::vector<float> y(x.size());
  exp_kernel(x.data(), y.data(), int64_t(x.size()));
  CHECK(y[0] == 0.f);
  CHECK(std::isinf(y[1]));
  CHECK(y[1] > 0);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.f);
  CHECK(y[4] == 1.f);
  CHECK(std::isinf(y[5]));  // e^89 > FLT_MAX
  CHECK(std::isinf(y[6]));
  CHECK(y[7] == 0.f);  // e^-104 < 2^-150: rounds to 0
  CHECK(y[8] == 0.f);
  CHECK(std::isfinite(y[9]));  // e^88.72283 ~ 3.4028e38, just under FLT_MAX
  CHECK(std::fabs(double(y[9]) - std::exp(double(x[9]))) <= kExpUlps * ulp_of(std::exp(double(x[9]))));
  CHECK(y[10] > 0.f);  // ~FLT_MIN
  CHECK(y[11] > 0.f);  // subnormal, not flushed
  CHECK(std::fabs(double(y[11]) - std::exp(-103.9)) <= kSubnormalUnit);
  CHECK(std::fabs(double(y[12]) - std::exp(1.0)) <= kExpUlps * ulp_of(std::exp(1.0)));
}

// Lengths 0..19 cover every tail (n mod 8) and a masked tail after full registers; the
// elements past n must stay untouched.
void check_tails(ArrayKernel kernel, double (*ref)(double), double ulps) {
  for (int64_t n = 0; n < 20; ++n) {
    std::vector<float> x(size_t(n) + 8), y(size_t(n) + 8, 42.f);
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -3.f + 0.37f * float(i);
    kernel(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double r = ref(double(x[size_t(i)]));
      CHECK(std::fabs(double(y[size_t(i)]) - r) <= ulps * ulp_of(r));
    }
    for (size_t i = size_t(n); i < y.size(); ++i) CHECK(y[i] == 42.f);
  }
}

double exp_ref(double x) { return std::exp(x); }
double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double sweep_sigmoid(ArrayKernel sigmoid_kernel) {
  // x in [-87, 88] in steps of ~1e-3 plus tiny magnitudes; the results stay normal.
  std::vector<float> xs;
  for (int i = -87000; i <= 88000; ++i) xs.push_back(float(i) * 1e-3f + 1.3e-4f);
  for (float t = 1e-30f; t < 1e-2f; t *= 1.7f) {
    xs.push_back(t);
    xs.push_back(-t);
  }
  std::vector<float> ys(xs.size());
  sigmoid_kernel(xs.data(), ys.data(), int64_t(xs.size()));
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double r = sigmoid_ref(double(xs[i]));
    worst = std::max(worst, std::fabs(double(ys[i]) - r) / ulp_of(r));
  }
  return worst;
}

// Worst softmax error over random rows: probabilities as a fraction of softmax_allowed (<= 1
// passes), log-probabilities in ulps of max(|y|, 1). In place (y == x) on every other row.
double sweep_softmax(void (*row)(const float*, float*, int64_t, bool), bool log) {
  std::mt19937 rng(11);
  double worst = 0;
  for (int64_t len : {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 1000}) {
    for (float scale : {0.1f, 3.f, 30.f}) {
      std::normal_distribution<float> nd(0.f, scale);
      std::vector<float> x(size_t(len) + 3), y(size_t(len) + 3, 7.f);
      for (auto& v : x) v = nd(rng);
      for (int in_place = 0; in_place < 2; ++in_place) {
        std::vector<float> xin = x;
        float* out = in_place ? xin.data() : y.data();
        row(xin.data(), out, len, log);
        double m = -1e300, s = 0;
        for (int64_t k = 0; k < len; ++k) m = std::max(m, double(x[size_t(k)]));
        for (int64_t k = 0; k < len; ++k) s += std::exp(double(x[size_t(k)]) - m);
        for (int64_t k = 0; k < len; ++k) {
          const double z = double(x[size_t(k)]) - m;
          if (log) {
            const double r = z - std::log(s);
            worst = std::max(worst, std::fabs(double(out[size_t(k)]) - r) / ulp_of(std::max(std::fabs(r), 1.0)));
          } else {
            const double r = std::exp(z) / s;
            worst = std::max(worst, std::fabs(double(out[size_t(k)]) - r) / softmax_allowed(r, z));
          }
        }
        // Nothing past the row is written.
        for (size_t k = size_t(len); k < x.size(); ++k) CHECK(out[k] == (in_place ? x[k] : 7.f));
      }
    }
  }
  return worst;
}

}  // namespace

TEST_CASE("vector exp is within 2 ulp of e^x over the float range", "[engine][vector_math]") {
  INFO("AVX2 + FMA kernels in use: " << detail::vector_math_uses_avx2());
  for (ArrayKernel k : {ArrayKernel(detail::exp_array), ArrayKernel(detail::exp_array_scalar)}) {
    const ExpSweep r = sweep_exp(k);
    INFO("worst " << r.worst_ulps << " ulp at x = " << r.worst_x << "; subnormal " << r.worst_subnormal);
    CHECK(r.worst_ulps <= kExpUlps);
    CHECK(r.worst_subnormal <= 1.0);
    check_exp_specials(k);
    check_tails(k, exp_ref, kExpUlps);
  }
}

TEST_CASE("vector sigmoid is within 4 ulp, with exact limits", "[engine][vector_math]") {
  const float inf = std::numeric_limits<float>::infinity();
  for (ArrayKernel k : {ArrayKernel(detail::sigmoid_array), ArrayKernel(detail::sigmoid_array_scalar)}) {
    const double worst = sweep_sigmoid(k);
    INFO("worst " << worst << " ulp");
    CHECK(worst <= kSigmoidUlps);
    std::vector<float> x = {-inf, inf, std::numeric_limits<float>::quiet_NaN(), 0.f, -200.f, 200.f, -100.f};
    std::vector<float> y(x.size());
    k(x.data(), y.data(), int64_t(x.size()));
    CHECK(y[0] == 0.f);
    CHECK(y[1] == 1.f);
    CHECK(std::isnan(y[2]));
    CHECK(y[3] == 0.5f);
    CHECK(y[4] == 0.f);
    CHECK(y[5] == 1.f);
    CHECK(std::fabs(double(y[6]) - sigmoid_ref(-100.0)) <= kSubnormalUnit);  // subnormal 3.7e-44, not 0
    check_tails(k, sigmoid_ref, kSigmoidUlps);
  }
}

TEST_CASE("16-lane exp / sigmoid / SiLU kernels give the 8-lane bits and SiLU is x times sigmoid", "[engine][vector_math]") {
  // Every 4099th float bit pattern (both signs, subnormals, infinities, NaNs), lengths that
  // leave a masked tail.
  std::vector<float> x;
  for (uint64_t u = 0; u <= 0xffffffffull; u += 4099) {
    const uint32_t b = uint32_t(u);
    float f;
    std::memcpy(&f, &b, sizeof f);
    x.push_back(f);
  }
  x.resize(x.size() - x.size() % 16 + 13);
  const int64_t n = int64_t(x.size());
  auto same = [](float a, float b) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    return (std::isnan(a) && std::isnan(b)) || ua == ub;
  };
  std::vector<float> a(x.size()), b(x.size()), s(x.size());
  // SiLU = x * sigmoid(x) with the product rounded once, whichever kernels run.
  detail::sigmoid_array(x.data(), s.data(), n);
  detail::silu_array(x.data(), a.data(), n);
  for (int64_t i = 0; i < n; ++i) REQUIRE(same(a[i], x[i] * s[i]));
  detail::silu_array_scalar(x.data(), a.data(), n);
  detail::sigmoid_array_scalar(x.data(), s.data(), n);
  for (int64_t i = 0; i < n; ++i) REQUIRE(same(a[i], x[i] * s[i]));
  if (!detail::vector_math_uses_avx2() || !detail::vector_math_avx512_usable()) {
    WARN("no AVX-512F here: the 16-lane kernels were not compared");
    return;
  }
  using K = void (*)(const float*, float*, int64_t);
  const std::pair<K, K> pairs[] = {{detail::exp_array_avx512, detail::exp_array_avx2},
                                   {detail::sigmoid_array_avx512, detail::sigmoid_array_avx2},
                                   {detail::silu_array_avx512, detail::silu_array_avx2}};
  for (const auto& [wide, narrow] : pairs) {
    std::fill(a.begin(), a.end(), 7.f);
    std::fill(b.begin(), b.end(), 7.f);
    wide(x.data(), a.data(), n - 1);  // the last element stays untouched
    narrow(x.data(), b.data(), n - 1);
    for (int64_t i = 0; i < n; ++i) REQUIRE(same(a[i], b[i]));
    REQUIRE(a[n - 1] == 7.f);
  }
}

TEST_CASE("vector softmax rows match a double reference", "[engine][vector_math]") {
  using Row = void (*)(const float*, float*, int64_t, bool);
  for (Row row : {Row(detail::softmax_row), Row(detail::softmax_row_scalar)}) {
    const double p = sweep_softmax(row, false), lp = sweep_softmax(row, true);
    INFO("softmax worst " << p << " of the allowed error, log-softmax " << lp << " ulp of max(|y|, 1)");
    CHECK(p <= 1.0);
    CHECK(lp <= kSoftmaxUlps);
    // -inf entries get probability 0 (log -inf); a NaN reaches the whole row.
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> x = {0.f, -inf, 0.f, 1.f, -inf, 2.f, 3.f, 4.f, 5.f, 6.f}, y(x.size());
    row(x.data(), y.data(), int64_t(x.size()), false);
    CHECK(y[1] == 0.f);
    CHECK(y[4] == 0.f);
    // Ten probabilities below 1, each within kSoftmaxUlps ulp <= 2^-24 of its value (the
    // x - m rounding is exact here: small integers), summed in double.
    const double sum_tolerance = 10 * kSoftmaxUlps * std::ldexp(1.0, -24);
    CHECK(std::fabs(std::accumulate(y.begin(), y.end(), 0.0) - 1.0) <= sum_tolerance);
    row(x.data(), y.data(), int64_t(x.size()), true);
    CHECK(y[1] == -inf);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    row(x.data(), y.data(), int64_t(x.size()), false);
    for (float v : y) CHECK(std::isnan(v));
  }
}

TEST_CASE("Sigmoid and Softmax ops use the vector kernels within their bounds", "[engine][vector_math]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 4.f);
  Tensor x({3, 5, 37});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = nd(rng);
  const std::vector<double> xv = values(x);

  const auto sig = values(OneNode("Sigmoid", 13).in("x", x).run()[0]);
  for (size_t i = 0; i < xv.size(); ++i) {
    const double r = sigmoid_ref(xv[i]);
    CHECK(std::fabs(sig[i] - r) <= kSigmoidUlps * ulp_of(r));
  }
  const auto ex = values(OneNode("Exp", 13).in("x", x).run()[0]);
  for (size_t i = 0; i < xv.size(); ++i) CHECK(std::fabs(ex[i] - std::exp(xv[i])) <= kExpUlps * ulp_of(std::exp(xv[i])));

  // Softmax over the last axis (contiguous rows) and over axis 1 (strided lines).
  for (int64_t axis : {2, 1}) {
    const auto sm = values(OneNode("Softmax", 13).in("x", x).attr("axis", axis).run()[0]);
    const int64_t len = x.shape()[size_t(axis)], stride = axis == 2 ? 1 : 37;
    for (int64_t o = 0; o < 3; ++o)
      for (int64_t i = 0; i < (axis == 2 ? 5 : 37); ++i) {
        const int64_t base = axis == 2 ? o * 5 * 37 + i * 37 : o * 5 * 37 + i;
        double m = -1e300, s = 0;
        for (int64_t k = 0; k < len; ++k) m = std::max(m, xv[size_t(base + k * stride)]);
        for (int64_t k = 0; k < len; ++k) s += std::exp(xv[size_t(base + k * stride)] - m);
        for (int64_t k = 0; k < len; ++k) {
          const size_t j = size_t(base + k * stride);
          const double r = std::exp(xv[j] - m) / s;
          CHECK(std::fabs(sm[j] - r) <= softmax_allowed(r, xv[j] - m));
        }
      }
  }
}

// Broadcast Mul/Add (coalesced dims: [N,C,H,W] * [N,C,1,1], [N,S,D] + [D], size-1 dims in
// the middle) against an index-by-index reference; exact, one float operation per element.
TEST_CASE("broadcast Mul and Add with coalesced dims are exact", "[engine][vector_math]") {
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {{{2, 3, 5, 7}, {2, 3, 1, 1}}, {{2, 4, 9}, {9}},    {{2, 3, 5, 7}, {3, 1, 1}},
                                   {{2, 1, 5, 7}, {1, 4, 1, 7}}, {{3, 1, 4}, {3, 5, 1}}, {{4, 1, 1, 6}, {1, 1, 6}},
                                   {{1, 1}, {1}},                {{2, 3, 1, 1}, {2, 3, 5, 7}}};
  for (const auto& c : cases) {
    Tensor a = iota(c.a), b = iota(c.b);
    for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] = 0.5f + 0.25f * float(i);
    const size_t r = std::max(c.a.size(), c.b.size());
    Shape out(r);
    auto dim = [r](const Shape& s, size_t d) { return d + s.size() < r ? int64_t(1) : s[d + s.size() - r]; };
    for (size_t d = 0; d < r; ++d) out[d] = std::max(dim(c.a, d), dim(c.b, d));
    for (const char* op : {"Mul", "Add"}) {
      const Tensor y = OneNode(op, 14).in("a", a).in("b", b).run()[0];
      REQUIRE(y.shape() == out);
      std::vector<int64_t> idx(r, 0);
      for (int64_t n = 0; n < y.numel(); ++n) {
        int64_t rem = n;
        for (size_t d = r; d-- > 0;) {
          idx[d] = rem % out[d];
          rem /= out[d];
        }
        auto offset = [&](const Shape& s) {
          int64_t o = 0;
          for (size_t d = 0; d < r; ++d) o = o * dim(s, d) + (dim(s, d) == 1 ? 0 : idx[d]);
          return o;
        };
        const float va = a.f32()[offset(c.a)], vb = b.f32()[offset(c.b)];
        CHECK(y.f32()[n] == (op[0] == 'M' ? va * vb : va + vb));
      }
    }
  }
}

// Tiled/row Transpose against the definition y[i_0..] = x[i_perm^-1...] for every 4-D
// permutation of a shape with odd extents, a size-1 axis, and tiles larger than one block.
TEST_CASE("Transpose of every 4-D permutation matches the index definition", "[engine][vector_math]") {
  // The last two shapes have more than 2^16 elements: threads take slices of the outermost
  // axis that is not copied whole.
  for (const Shape& xs : std::vector<Shape>{{2, 3, 5, 7}, {2, 1, 19, 33}, {1, 17, 4, 40}, {3, 64, 20, 70}, {5, 1, 130, 120}}) {
    const Tensor x = iota(xs);
    std::vector<int64_t> perm = {0, 1, 2, 3};
    do {
      const Tensor y = OneNode("Transpose", 13).in("x", x).attr("perm", perm).run()[0];
      Shape ys(4);
      for (size_t i = 0; i < 4; ++i) ys[i] = xs[size_t(perm[i])];
      REQUIRE(y.shape() == ys);
      int64_t bad = 0;
      std::vector<int64_t> yi(4), xi(4);
      for (int64_t n = 0; n < y.numel(); ++n) {
        int64_t rem = n;
        for (size_t d = 4; d-- > 0;) {
          yi[d] = rem % ys[d];
          rem /= ys[d];
        }
        for (size_t d = 0; d < 4; ++d) xi[size_t(perm[d])] = yi[d];
        const int64_t xoff = ((xi[0] * xs[1] + xi[1]) * xs[2] + xi[2]) * xs[3] + xi[3];
        bad += y.f32()[n] != float(xoff);
      }
      INFO("perm " << perm[0] << perm[1] << perm[2] << perm[3]);
      CHECK(bad == 0);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST_CASE("Gelu through the vector kernels matches a double reference, both forms", "[engine][vector_math]") {
  // Every 2^-9 step of [-12, 12] (12289 points, crossing the 256-element chunks of the kernel).
  // The erf form rests on Numerical Recipes' erfc (fractional error < 1.2e-7) and the vector exp
  // (<= 2 ulp), plus float roundings of the polynomial and products: 2e-6 relative. In the negative
  // tail the exponent -x^2/2 + P(t) is itself a float of magnitude up to 72 whose rounding
  // (2^-24 relative, a few roundings) becomes relative error of the result: ~1e-7 x^2 more.
  // The tanh form is x sigmoid(2u) (sigmoid within 4 ulp; u rounded in float, a relative error
  // ~1e-7 of u that moves sigmoid(2u) by ~2|u| 1e-7 relative where it is small): the same bound.
  const int64_t n = 24 * 512 + 1;
  Tensor x({n});
  for (int64_t i = 0; i < n; ++i) x.f32()[i] = -12.f + float(i) / 512.f;
  const std::vector<double> xv = values(x);
  const auto erf_form = values(OneNode("Gelu", 20).in("x", x).run()[0]);
  const auto tanh_form = values(OneNode("Gelu", 20).in("x", x).attr("approximate", str_attr("tanh")).run()[0]);
  double worst_erf = 0, worst_tanh = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = xv[size_t(i)];
    const double r_erf = 0.5 * v * std::erfc(-v / std::sqrt(2.0));
    const double u = std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
    const double r_tanh = v / (1.0 + std::exp(-2.0 * u));  // 0.5 (1 + tanh u), without cancellation
    const double floor = 1e-30;  // both vanish at 0 and far in the negative tail
    const double bound = 2e-6 + 2e-7 * v * v;
    worst_erf = std::max(worst_erf, std::fabs(erf_form[size_t(i)] - r_erf) / std::max(std::fabs(r_erf), floor) / bound);
    if (std::fabs(r_tanh) > 1e-30)  // below, float underflows (the tanh form decays like e^{-0.14 x^3})
      worst_tanh = std::max(worst_tanh, std::fabs(tanh_form[size_t(i)] - r_tanh) / std::fabs(r_tanh) / bound);
  }
  INFO("worst relative error as a share of its bound: erf form " << worst_erf << ", tanh form " << worst_tanh);
  CHECK(worst_erf <= 1.0);
  CHECK(worst_tanh <= 1.0);
  // The erf form's gradient, Phi(x) + x phi(x) through the same erfc and the vector exp of
  // -x^2/2: each term within the bound above of its own size (the sum cancels near x = -0.75,
  // so the error is measured against |Phi| + |x phi|).
  OneNode gelu("Gelu", 20);
  gelu.in("x", x);
  const auto grad = values(gelu.gradient({Tensor::full({n}, 1.f)}).at(0));
  double worst_grad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = xv[size_t(i)];
    const double cdf = 0.5 * std::erfc(-v / std::sqrt(2.0)), xpdf = v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * M_PI);
    const double scale = std::max(std::fabs(cdf) + std::fabs(xpdf), 1e-30);
    worst_grad = std::max(worst_grad, std::fabs(grad[size_t(i)] - (cdf + xpdf)) / scale / (2e-6 + 2e-7 * v * v));
  }
  INFO("gradient: worst error as a share of its bound " << worst_grad);
  CHECK(worst_grad <= 1.0);
  // NaN passes through; +inf stays inf.
  Tensor special = Tensor::from_floats({2}, {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()});
  const auto sp = values(OneNode("Gelu", 20).in("x", special).run()[0]);
  CHECK(std::isnan(sp[0]));
  CHECK(sp[1] == std::numeric_limits<double>::infinity());
}
