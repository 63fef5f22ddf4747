// Closed-form, invariant and error-text tests of the explain module on analytic models.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <numeric>

#include "analytic_models.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::explain;
using mlaudit::test::close;
using mlaudit::test::IgToyModel;
using mlaudit::test::LinearModel;
using mlaudit::test::ProductModel;
using mlaudit::test::TenFeatureModel;

namespace {

// Float32 model outputs carry ~1e-7 relative rounding per op; sums over <= 100
// features and least-squares solves amplify that to ~1e-5 at worst.
constexpr double kFloatTol = 1e-4;

LinearModel make_linear(int64_t d, int64_t c = 3) {
  std::vector<float> w(c * d), b(c);
  for (int64_t k = 0; k < c; ++k) {
    b[k] = 0.25f * (k + 1);
    for (int64_t j = 0; j < d; ++j) w[k * d + j] = std::sin(1.0f + 0.7f * j + 1.3f * k);
  }
  return LinearModel({d}, c, w, b);
}

Tensor random_rows(int64_t n, int64_t d, unsigned seed) {
  Tensor t({n, d});
  uint64_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    t.f32()[i] = float((s >> 33) % 20000) / 10000.f - 1.f;
  }
  return t;
}

}  // namespace

TEST_CASE("targets: parse and resolve label, predicted and index", "[explain]") {
  auto m = make_linear(4);
  Tensor x = random_rows(5, 4, 1);
  auto pred = engine::argmax_rows(m.forward(x));
  CHECK(resolve_targets(m, x, parse_target("predicted"), nullptr) == pred);
  CHECK(resolve_targets(m, x, parse_target("2"), nullptr) == std::vector<int64_t>(5, 2));
  Tensor y = Tensor::from_ints({5}, {0, 1, 2, 1, 0});
  CHECK(resolve_targets(m, x, parse_target("label"), &y) == std::vector<int64_t>{0, 1, 2, 1, 0});
  CHECK_THROWS_WITH(parse_target("best"), Catch::Contains("'best' is not 'label', 'predicted'"));
  CHECK_THROWS_WITH(resolve_targets(m, x, parse_target("3"), nullptr), Catch::Contains("--target 3 is out of range"));
  CHECK_THROWS_WITH(resolve_targets(m, x, parse_target("label"), nullptr), Catch::Contains("needs labels"));
  Tensor bad = Tensor::from_ints({5}, {0, 1, 7, 1, 0});
  CHECK_THROWS_WITH(resolve_targets(m, x, parse_target("label"), &bad), Catch::Contains("row 2 has label 7"));
}

TEST_CASE("gradient family on a linear model equals W rows", "[explain]") {
  auto m = make_linear(6);
  Tensor x = random_rows(4, 6, 2);
  std::vector<int64_t> t{0, 1, 2, 1};
  Tensor g = gradient(m, x, t, 3);
  Tensor s = saliency(m, x, t, 3);
  Tensor ixg = input_x_gradient(m, x, t, 3);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      CHECK(g.f32()[i * 6 + j] == Approx(m.w(t[i], j)));
      CHECK(s.f32()[i * 6 + j] == Approx(std::fabs(m.w(t[i], j))));
      CHECK(ixg.f32()[i * 6 + j] == Approx(m.w(t[i], j) * x.f32()[i * 6 + j]));
    }
}

TEST_CASE("Gauss-Legendre nodes and weights match the closed forms for n = 2, 3", "[explain]") {
  std::vector<double> x, w;
  gauss_legendre(2, x, w);
  // n=2: +-1/sqrt(3), weights 1 (Abramowitz & Stegun table 25.4); 1e-14: Newton converges to double precision.
  CHECK(close(x[0], -1 / std::sqrt(3.0), 0, 1e-14));
  CHECK(close(x[1], 1 / std::sqrt(3.0), 0, 1e-14));
  CHECK(close(w[0], 1.0, 0, 1e-14));
  gauss_legendre(3, x, w);
  CHECK(close(x[0], -std::sqrt(0.6), 0, 1e-14));
  CHECK(close(x[1], 0.0, 0, 1e-14));
  CHECK(close(w[1], 8.0 / 9, 0, 1e-14));
  CHECK(close(w[2], 5.0 / 9, 0, 1e-14));
  gauss_legendre(50, x, w);
  CHECK(close(std::accumulate(w.begin(), w.end(), 0.0), 2.0, 0, 1e-12));
  CHECK(std::is_sorted(x.begin(), x.end()));
}

TEST_CASE("IG paths follow Captum's alphas and step sizes", "[explain]") {
  auto gl = ig_path(IgRule::GaussLegendre, 3);
  CHECK(close(gl.alphas[0], 0.5 * (1 - std::sqrt(0.6)), 0, 1e-14));
  CHECK(close(gl.step_sizes[1], 4.0 / 9, 0, 1e-14));
  auto left = ig_path(IgRule::RiemannLeft, 4);
  CHECK(left.alphas == std::vector<double>{0, 0.25, 0.5, 0.75});
  auto right = ig_path(IgRule::RiemannRight, 4);
  CHECK(right.alphas == std::vector<double>{0.25, 0.5, 0.75, 1.0});
  auto mid = ig_path(IgRule::RiemannMiddle, 4);
  CHECK(close(mid.alphas[0], 0.125, 0, 1e-15));
  CHECK(close(mid.alphas[3], 0.875, 0, 1e-15));
  auto trap = ig_path(IgRule::RiemannTrapezoid, 4);
  CHECK(trap.step_sizes == std::vector<double>{0.125, 0.25, 0.25, 0.125});
  CHECK_THROWS_WITH(ig_path(IgRule::RiemannLeft, 1), Catch::Contains("Riemann rules need at least 2"));
  CHECK_THROWS_WITH(ig_path(IgRule::GaussLegendre, 0), Catch::Contains("explain: steps: 0"));  // the CLI says --steps
  CHECK_THROWS_WITH(parse_ig_rule("simpson"), Catch::Contains("'simpson' is not one of gausslegendre"));
}

TEST_CASE("IG with zero baseline on a linear model equals w * x", "[explain]") {
  auto m = make_linear(8);
  Tensor x = random_rows(3, 8, 3);
  std::vector<int64_t> t{2, 0, 1};
  for (auto rule : {IgRule::GaussLegendre, IgRule::RiemannLeft, IgRule::RiemannRight, IgRule::RiemannMiddle,
                    IgRule::RiemannTrapezoid}) {
    IgOptions o;
    o.rule = rule;
    auto r = integrated_gradients(m, x, Tensor(x.shape()), t, o);
    // Captum's trapezoid steps sum to 1 - 1/n (end weights halved from 1/n); the others sum to 1.
    const double path_mass = rule == IgRule::RiemannTrapezoid ? 1 - 1.0 / o.steps : 1.0;
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 8; ++j)
        CHECK(close(r.attributions.f32()[i * 8 + j], path_mass * m.w(t[i], j) * x.f32()[i * 8 + j], kFloatTol, 1e-6));
      if (rule != IgRule::RiemannTrapezoid) CHECK(r.relative_gap[i] < 1e-5);
    }
  }
}

TEST_CASE("IG on the paper's toy network at (3,1) gives (1.5, -0.5)", "[explain]") {
  // Sundararajan et al. 2017: f = ReLU(ReLU(x1) - 1 - ReLU(x2)); Captum's test asserts 0.05 at 50 steps.
  IgToyModel m;
  Tensor x = Tensor::from_floats({1, 2}, {3.f, 1.f});
  for (auto rule : {IgRule::GaussLegendre, IgRule::RiemannMiddle, IgRule::RiemannRight, IgRule::RiemannTrapezoid}) {
    IgOptions o;
    o.rule = rule;
    auto r = integrated_gradients(m, x, Tensor(x.shape()), {0}, o);
    CHECK(close(r.attributions.f32()[0], 1.5, 0, 0.05));
    CHECK(close(r.attributions.f32()[1], -0.5, 0, 0.05));
    CHECK(r.output_x[0] == Approx(1.0));
    CHECK(r.output_baseline[0] == Approx(0.0));
  }
  // riemann_left's 50 alphas 0, 0.02, ..., 0.98 put 24 points (mass 0.48) past the kink at 1/2:
  // attribution 3 * 0.48 = 1.44 (float rounding only).
  IgOptions left;
  left.rule = IgRule::RiemannLeft;
  auto rl = integrated_gradients(m, x, Tensor(x.shape()), {0}, left);
  CHECK(close(rl.attributions.f32()[0], 1.44, 0, 1e-5));
  CHECK(close(rl.attributions.f32()[1], -0.48, 0, 1e-5));
  // 50 Gauss-Legendre nodes are symmetric about alpha = 1/2, where the gradient switches on,
  // so exactly half the path mass sees gradient (1,-1): completeness holds to rounding.
  auto r = integrated_gradients(m, x, Tensor(x.shape()), {0});
  CHECK(r.relative_gap[0] < 1e-6);
}

TEST_CASE("IG results do not depend on the internal batch size", "[explain]") {
  IgToyModel m;
  Tensor x = Tensor::from_floats({3, 2}, {3.f, 1.f, 2.f, -1.f, 5.f, 2.5f});
  Tensor b = Tensor::from_floats({3, 2}, {0.f, 0.f, 0.5f, 0.f, -1.f, 1.f});
  IgOptions o;
  o.batch_rows = 1;
  auto r1 = integrated_gradients(m, x, b, {0, 0, 0}, o);
  o.batch_rows = 7;
  auto r7 = integrated_gradients(m, x, b, {0, 0, 0}, o);
  o.batch_rows = 1000;
  auto rall = integrated_gradients(m, x, b, {0, 0, 0}, o);
  // Same per-row summation order in every chunking: bitwise equal.
  for (int64_t i = 0; i < 6; ++i) {
    CHECK(r1.attributions.f32()[i] == r7.attributions.f32()[i]);
    CHECK(r1.attributions.f32()[i] == rall.attributions.f32()[i]);
  }
}

TEST_CASE("IG input errors name the problem", "[explain]") {
  auto m = make_linear(4);
  Tensor x = random_rows(2, 4, 4);
  CHECK_THROWS_AS(integrated_gradients(m, x, Tensor({2, 3}), {0, 0}), InputError);
  CHECK_THROWS_WITH(integrated_gradients(m, x, Tensor({2, 3}), {0, 0}), Catch::Contains("baseline shape [2,3] differs"));
  CHECK_THROWS_WITH(integrated_gradients(m, x, Tensor(x.shape()), {0}), Catch::Contains("1 targets for 2 rows"));
  CHECK_THROWS_WITH(gradient(m, Tensor(), {}), Catch::Contains("expected a batch"));
}

TEST_CASE("baselines: zeros, mean of background, blur and errors", "[explain]") {
  Tensor x = random_rows(2, 3, 5);
  Tensor bg = Tensor::from_floats({2, 3}, {1, 2, 3, 3, 4, 5});
  Tensor mean = make_baseline("mean", x, &bg);
  CHECK(mean.shape() == x.shape());
  CHECK(mean.f32()[3] == 2.f);
  CHECK(mean.f32()[5] == 4.f);
  CHECK(make_baseline("zeros", x, nullptr).f32()[4] == 0.f);
  CHECK_THROWS_WITH(make_baseline("mean", x, nullptr), Catch::Contains("needs a background set"));
  CHECK_THROWS_WITH(make_baseline("blur", x, nullptr), Catch::Contains("needs image input"));
  CHECK_THROWS_WITH(make_baseline("ones", x, nullptr), Catch::Contains("'ones' is not zeros, mean, blur"));
  CHECK_THROWS_WITH(make_baseline("/nonexistent/b.npy", x, nullptr), Catch::Contains("/nonexistent/b.npy"));
  // Blur preserves a constant image and the mean of a symmetric pattern's centre.
  Tensor img = Tensor::full({1, 1, 9, 9}, 0.5f);
  Tensor bl = make_baseline("blur", img, nullptr, 1.0);
  for (int64_t i = 0; i < 81; ++i) CHECK(bl.f32()[i] == Approx(0.5f));
}

TEST_CASE("SmoothGrad of a linear model equals its gradient, fixed noise is honoured", "[explain]") {
  auto m = make_linear(5);
  Tensor x = random_rows(2, 5, 6);
  SmoothGradOptions o;
  o.samples = 10;
  Tensor sg = smoothgrad(m, x, {1, 2}, o);
  for (int64_t j = 0; j < 5; ++j) CHECK(sg.f32()[j] == Approx(m.w(1, j)));
  o.squared = true;
  Tensor sq = smoothgrad(m, x, {1, 2}, o);
  for (int64_t j = 0; j < 5; ++j) CHECK(sq.f32()[5 + j] == Approx(m.w(2, j) * m.w(2, j)));
  // Toy model with two fixed noise draws: one turns the ReLU on, one leaves it off.
  IgToyModel toy;
  Tensor p = Tensor::from_floats({1, 2}, {1.f, 0.5f});
  Tensor noise = Tensor::from_floats({2, 2}, {2.f, 0.f, -2.f, 0.f});
  SmoothGradOptions f;
  f.noise = &noise;
  Tensor r = smoothgrad(toy, p, {0}, f);
  CHECK(r.f32()[0] == Approx(0.5));   // mean of 1 and 0
  CHECK(r.f32()[1] == Approx(-0.5));  // mean of -1 and 0
}

TEST_CASE("SmoothGrad: stdevs (Captum's absolute sigma) equals the matching relative noise level", "[explain]") {
  // The row [1, 0.5] spans 0.5, so noise_level 0.4 means sigma = 0.2 = stdevs 0.2: the same
  // draws (same seed) give the same attributions; another sigma gives other ones.
  IgToyModel toy;
  Tensor p = Tensor::from_floats({1, 2}, {1.f, 0.5f});
  SmoothGradOptions rel, abs, other;
  rel.samples = abs.samples = other.samples = 64;
  rel.noise_level = 0.4;
  abs.stdevs = 0.2;
  other.stdevs = 0.6;
  Tensor a = smoothgrad(toy, p, {0}, rel), b = smoothgrad(toy, p, {0}, abs), c = smoothgrad(toy, p, {0}, other);
  CHECK(a.f32()[0] == Approx(b.f32()[0]).margin(1e-12));
  CHECK(a.f32()[1] == Approx(b.f32()[1]).margin(1e-12));
  CHECK(std::fabs(a.f32()[0] - c.f32()[0]) + std::fabs(a.f32()[1] - c.f32()[1]) > 1e-3);
}

TEST_CASE("softmax output wrapper: gradient matches finite differences", "[explain]") {
  auto m = make_linear(3);
  SoftmaxModel sm(m);
  Tensor x = Tensor::from_floats({1, 3}, {0.3f, -0.2f, 0.9f});
  Tensor g = gradient(sm, x, {1});
  for (int j = 0; j < 3; ++j) {
    Tensor xp = x.clone(), xm = x.clone();
    xp.f32()[j] += 1e-2f;
    xm.f32()[j] -= 1e-2f;
    const double fd = (sm.forward(xp).f32()[1] - sm.forward(xm).f32()[1]) / 2e-2;
    // central difference error O(h^2) ~ 1e-4 for these O(1) weights, plus float rounding 1e-5/h
    CHECK(close(g.f32()[j], fd, 0, 2e-3));
  }
}

TEST_CASE("occlusion of one feature equals w_i (x_i - baseline)", "[explain]") {
  auto m = make_linear(6);
  Tensor x = random_rows(2, 6, 7);
  OcclusionOptions o;
  o.window = {1};
  o.baseline = 0.3f;
  Tensor a = occlusion(m, x, {0, 2}, o);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 6; ++j)
      CHECK(close(a.f32()[i * 6 + j], m.w(i == 0 ? 0 : 2, j) * (x.f32()[i * 6 + j] - 0.3), kFloatTol, 1e-6));
  // Window 2, stride 1 on 4 features: element j averages the windows that cover it.
  auto m4 = make_linear(4);
  Tensor x4 = Tensor::from_floats({1, 4}, {1, 2, 3, 4});
  o.window = {2};
  o.stride = {1};
  o.baseline = 0;
  Tensor a4 = occlusion(m4, x4, {1}, o);
  auto win = [&](int s) { return m4.w(1, s) * x4.f32()[s] + m4.w(1, s + 1) * x4.f32()[s + 1]; };
  CHECK(a4.f32()[0] == Approx(win(0)));
  CHECK(a4.f32()[1] == Approx((win(0) + win(1)) / 2));
  CHECK(a4.f32()[3] == Approx(win(2)));
  o.window = {5};
  CHECK_THROWS_WITH(occlusion(m4, x4, {1}, o), Catch::Contains("do not fit axis 1 of size 4"));
  // Batch size never changes results: the per-window differences are independent rows.
  o.window = {2};
  o.batch_rows = 1;
  Tensor b1 = occlusion(m4, x4, {1}, o);
  for (int j = 0; j < 4; ++j) CHECK(b1.f32()[j] == a4.f32()[j]);
}

TEST_CASE("KernelSHAP on a linear model with independent background equals w (x - E x)", "[explain]") {
  const int64_t d = 6;
  auto m = make_linear(d);
  Tensor x = random_rows(3, d, 8);
  Tensor bg = random_rows(20, d, 9);
  auto r = kernel_shap(m, x, bg, {0, 1, 2});
  for (int64_t i = 0; i < 3; ++i) {
    CHECK(r.exact[i]);
    CHECK(r.coalitions[i] == (1 << d) - 2);  // exact enumeration of every proper coalition
    for (int64_t j = 0; j < d; ++j) {
      double mean = 0;
      for (int64_t k = 0; k < 20; ++k) mean += bg.f32()[k * d + j];
      mean /= 20;
      CHECK(close(r.phi[i][j], m.w(i, j) * (x.f32()[i * d + j] - mean), kFloatTol, 1e-5));
    }
    CHECK(std::fabs(r.efficiency_gap[i]) < 1e-9);  // enforced by the constraint, up to double rounding
  }
}

TEST_CASE("KernelSHAP exact with background rows sharing some of x's values equals w (x - E x)", "[explain]") {
  // Background rows equal x on a few features each, so their masks differ and rows are
  // grouped by mask: with 7 features by counting (12 groups or fewer), with 13 by sorting.
  // One output (pattern sums of stride 1) and three (the general stride).
  for (int64_t d : {7, 13})
    for (int64_t c : {1, 3}) {
      CAPTURE(d, c);
      auto m = make_linear(d, c);
      Tensor x = random_rows(1, d, 21);
      Tensor bg = random_rows(6, d, 22);
      for (int64_t k = 0; k < 6; ++k)
        for (int64_t j = 0; j < d; ++j)
          if ((j + k) % 3 == 0) bg.f32()[k * d + j] = x.f32()[j];
      KernelShapOptions o;
      o.samples = (int64_t(1) << d) - 2;
      auto r = kernel_shap(m, x, bg, {c - 1}, o);
      REQUIRE(r.exact[0]);
      for (int64_t j = 0; j < d; ++j) {
        double mean = 0;
        for (int64_t k = 0; k < 6; ++k) mean += bg.f32()[k * d + j];
        mean /= 6;
        CHECK(close(r.phi[0][j], m.w(c - 1, j) * (x.f32()[j] - mean), kFloatTol, 1e-5));
      }
    }
}

TEST_CASE("KernelSHAP exact mode equals brute-force Shapley values of a non-additive model", "[explain]") {
  ProductModel m;
  Tensor x = Tensor::from_floats({1, 4}, {1.5f, -2.f, 0.5f, 1.f});
  Tensor bg = random_rows(8, 4, 10);
  auto r = kernel_shap(m, x, bg, {0});
  // v(S) = mean_k f(x_S, bg_k elsewhere); phi_j = sum_S |S|!(M-|S|-1)!/M! (v(S+j) - v(S)).
  auto v = [&](int mask) {
    double s = 0;
    for (int k = 0; k < 8; ++k) {
      float row[4];
      for (int j = 0; j < 4; ++j) row[j] = (mask >> j & 1) ? x.f32()[j] : bg.f32()[k * 4 + j];
      s += ProductModel::value(row);
    }
    return s / 8;
  };
  const double fact[5] = {1, 1, 2, 6, 24};
  for (int j = 0; j < 4; ++j) {
    double phi = 0;
    for (int mask = 0; mask < 16; ++mask) {
      if (mask >> j & 1) continue;
      const int size = __builtin_popcount(mask);
      phi += fact[size] * fact[4 - size - 1] / fact[4] * (v(mask | 1 << j) - v(mask));
    }
    CHECK(close(r.phi[0][j], phi, kFloatTol, 1e-5));
  }
}

TEST_CASE("KernelSHAP memoises equal synthetic rows without changing the Shapley values", "[explain]") {
  // Background rows that share values with x (categorical-like features) make many synthetic
  // rows equal; each distinct row is evaluated once and rows equal to x / to a background row
  // reuse f(x) / f(background). Values must still be the brute-force Shapley values.
  struct Counting : ProductModel {
    mutable int64_t rows = 0;
    Tensor forward(const Tensor& x) const override {
      rows += x.shape()[0];
      return ProductModel::forward(x);
    }
  } m;
  Tensor x = Tensor::from_floats({2, 4}, {1.5f, -2.f, 0.5f, 1.f, 0.25f, 1.f, -1.f, 2.f});
  Tensor bg = random_rows(8, 4, 10);
  for (int k = 0; k < 8; k += 2) bg.f32()[k * 4 + 1] = -2.f;  // half the rows equal x0 in feature 1
  for (int k = 0; k < 8; k += 3) bg.f32()[k * 4 + 3] = 1.f;   // some equal x0 in feature 3
  bg.f32()[5 * 4 + 0] = 0.25f;                                // one equals x1 in feature 0
  auto r = kernel_shap(m, x, bg, {0, 1});
  for (int i = 0; i < 2; ++i) {
    const float* xi = x.f32() + 4 * i;
    auto v = [&](int mask) {
      double s = 0;
      for (int k = 0; k < 8; ++k) {
        float row[4];
        for (int j = 0; j < 4; ++j) row[j] = (mask >> j & 1) ? xi[j] : bg.f32()[k * 4 + j];
        s += (i == 0 ? 1 : -1) * ProductModel::value(row);
      }
      return s / 8;
    };
    const double fact[5] = {1, 1, 2, 6, 24};
    for (int j = 0; j < 4; ++j) {
      double phi = 0;
      for (int mask = 0; mask < 16; ++mask) {
        if (mask >> j & 1) continue;
        const int size = __builtin_popcount(mask);
        phi += fact[size] * fact[4 - size - 1] / fact[4] * (v(mask | 1 << j) - v(mask));
      }
      CHECK(close(r.phi[i][j], phi, kFloatTol, 1e-5));
    }
    CHECK(r.coalitions[i] == 14);
  }
  // Without memoisation: 2 samples x 14 coalitions x 8 rows = 224 synthetic rows (+ bg + x).
  // With it, per row k only the 2^d_k - 2 non-trivial subsets of its differing features remain.
  int64_t distinct = 0;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 8; ++k) {
      int dk = 0;
      for (int j = 0; j < 4; ++j) dk += bg.f32()[k * 4 + j] != x.f32()[i * 4 + j];
      distinct += (int64_t(1) << dk) - 2;
    }
  CHECK(distinct < 224);
  CHECK(m.rows == distinct + 8 + 2);  // + the background's forward + f(x)
}

TEST_CASE("KernelSHAP sampling mode: efficiency holds, additive model still recovered, seed reproducible", "[explain]") {
  const int64_t d = 14;
  auto m = make_linear(d);
  Tensor x = random_rows(1, d, 11);
  Tensor bg = random_rows(10, d, 12);
  KernelShapOptions o;
  o.samples = 400;
  o.seed = 3;
  auto r = kernel_shap(m, x, bg, {1}, o);
  CHECK_FALSE(r.exact[0]);
  CHECK(r.coalitions[0] == 400);
  CHECK(std::fabs(r.efficiency_gap[0]) < 1e-9);
  // An additive value function is fit exactly by any full-rank coalition set.
  for (int64_t j = 0; j < d; ++j) {
    double mean = 0;
    for (int64_t k = 0; k < 10; ++k) mean += bg.f32()[k * d + j];
    CHECK(close(r.phi[0][j], m.w(1, j) * (x.f32()[j] - mean / 10), kFloatTol, 1e-4));
  }
  auto r2 = kernel_shap(m, x, bg, {1}, o);
  CHECK(r2.phi[0] == r.phi[0]);
  o.batch_rows = 37;  // batch size never changes results (rows evaluated independently)
  auto r3 = kernel_shap(m, x, bg, {1}, o);
  for (int64_t j = 0; j < d; ++j) CHECK(close(r3.phi[0][j], r.phi[0][j], 1e-9, 1e-12));
}

TEST_CASE("KernelSHAP exact mode with groups over rows wider than 8 equals brute-force group Shapley values", "[explain]") {
  // Ten features in six groups (two of them pairs split across the 8-lane boundary), exact
  // plan; some background rows equal x in whole groups, so each background row has its own set
  // of differing groups. Reference: Shapley values of the game v(S) = mean_k f(x on S's groups).
  TenFeatureModel m;
  Tensor x = random_rows(1, 10, 21);
  Tensor bg = random_rows(6, 10, 22);
  for (int j : {7, 8}) bg.f32()[1 * 10 + j] = x.f32()[j];  // row 1 equals x in group 4
  for (int j : {0, 1, 9}) bg.f32()[4 * 10 + j] = x.f32()[j];  // row 4 equals x in groups 0 and 5
  KernelShapOptions o;
  o.groups = {0, 0, 1, 1, 2, 2, 3, 4, 4, 5};
  auto r = kernel_shap(m, x, bg, {0}, o);
  REQUIRE(r.exact[0]);
  const int G = 6;
  auto v = [&](int mask) {
    double sum = 0;
    for (int k = 0; k < 6; ++k) {
      float row[10];
      for (int j = 0; j < 10; ++j) row[j] = (mask >> o.groups[j] & 1) ? x.f32()[j] : bg.f32()[k * 10 + j];
      sum += float(TenFeatureModel::value(row));
    }
    return sum / 6;
  };
  const double fact[7] = {1, 1, 2, 6, 24, 120, 720};
  for (int g = 0; g < G; ++g) {
    double phi = 0;
    for (int mask = 0; mask < (1 << G); ++mask) {
      if (mask >> g & 1) continue;
      const int size = __builtin_popcount(mask);
      phi += fact[size] * fact[G - size - 1] / fact[G] * (v(mask | 1 << g) - v(mask));
    }
    CHECK(close(r.phi[0][g], phi, kFloatTol, 1e-5));
  }
}

TEST_CASE("KernelSHAP: features equal to every background row get 0, groups share phi", "[explain]") {
  auto m = make_linear(4);
  Tensor x = Tensor::from_floats({1, 4}, {1, 2, 3, 4});
  Tensor bg = Tensor::from_floats({2, 4}, {0, 2, 0, 0, 1, 2, 1, 0});
  auto r = kernel_shap(m, x, bg, {0});
  CHECK(r.phi[0][1] == 0.0);
  KernelShapOptions o;
  o.groups = {0, 0, 1, 1};
  auto g = kernel_shap(m, x, bg, {0}, o);
  CHECK(g.num_groups == 2);
  CHECK(g.attributions.f32()[0] == g.attributions.f32()[1]);
  CHECK(close(g.phi[0][0] + g.phi[0][1], r.phi[0][0] + r.phi[0][1] + r.phi[0][2] + r.phi[0][3], kFloatTol, 1e-5));
  o.groups = {0, 0, 2, 2};
  CHECK_THROWS_WITH(kernel_shap(m, x, bg, {0}, o), Catch::Contains("feature group 1 has no member"));
  CHECK_THROWS_WITH(kernel_shap(m, x, Tensor({2, 3}), {0}), Catch::Contains("background rows [2,3] do not match"));
}

TEST_CASE("grid superpixels tile the last two axes", "[explain]") {
  auto g = grid_superpixels({1, 4, 6}, 2);
  CHECK(g.size() == 24);
  CHECK(g[0] == 0);
  CHECK(g[1] == 0);
  CHECK(g[2] == 1);
  CHECK(g[6] == 0);
  CHECK(g[12] == 3);
  CHECK(*std::max_element(g.begin(), g.end()) == 5);
  CHECK_THROWS_WITH(grid_superpixels({5}, 2), Catch::Contains("need image samples"));
}

TEST_CASE("LIME tabular recovers a linear model's standardised weights with R^2 ~ 1", "[explain]") {
  const int64_t d = 5;
  auto m = make_linear(d);
  Tensor x = random_rows(2, d, 13);
  Tensor bg = random_rows(200, d, 14);
  auto r = lime(m, x, bg, {0, 2});
  for (int64_t i = 0; i < 2; ++i) {
    CHECK(r.r2[i] > 0.999);
    for (int64_t j = 0; j < d; ++j) {
      double mean = 0, var = 0;
      for (int64_t k = 0; k < 200; ++k) mean += bg.f32()[k * d + j];
      mean /= 200;
      for (int64_t k = 0; k < 200; ++k) var += std::pow(bg.f32()[k * d + j] - mean, 2);
      const double sd = std::sqrt(var / 200);
      // coefficient on standardised features = w_j sd_j, shrunk by Ridge(alpha=1) over ~5000
      // kernel-weighted samples: relative shrinkage well under 1%.
      CHECK(close(r.attributions.f32()[i * d + j], m.w(i == 0 ? 0 : 2, j) * sd, 1e-2, 1e-3));
    }
    CHECK(close(r.local_pred[i], m.forward(x).f32()[i * 3 + (i == 0 ? 0 : 2)], 1e-2, 1e-2));
  }
}

TEST_CASE("LIME image mode: superpixel coefficients follow the pixel weights", "[explain]") {
  // 1x4x4 image, two 2x2 superpixels on the left half only matter.
  std::vector<float> w(16, 0.f);
  for (int r = 0; r < 4; ++r) w[r * 4 + 0] = 1.f;
  LinearModel m({1, 4, 4}, 1, w, {0.f});
  Tensor x = Tensor::full({1, 1, 4, 4}, 1.f);
  for (int r = 0; r < 4; ++r) x.f32()[r * 4] = 2.f;  // superpixel mean of the left blocks is 1.5
  LimeOptions o;
  o.groups = grid_superpixels({1, 4, 4}, 2);
  auto r = lime(m, x, Tensor(), {0}, o);
  CHECK(r.r2[0] > 0.99);
  // Turning a left superpixel off lowers f by 2 * (2 - 1.5) = 1; right ones change nothing.
  CHECK(close(r.attributions.f32()[0], 1.0, 0.05, 0.02));
  CHECK(close(r.attributions.f32()[3], 0.0, 0, 0.02));
}

TEST_CASE("permutation importance: unused features score exactly 0", "[explain]") {
  std::vector<float> w(6, 0.f);
  w[0] = 1.f;  // class 0 logit = x0, class 1 logit = -x0
  w[3] = -1.f;
  LinearModel m({3}, 2, w, {0.f, 0.f});
  Tensor x = random_rows(200, 3, 15);
  std::vector<int64_t> y(200);
  for (int i = 0; i < 200; ++i) y[i] = x.f32()[i * 3] > 0 ? 0 : 1;
  auto r = permutation_importance(m, x, y);
  CHECK(r.baseline_accuracy == 1.0);
  CHECK(r.importance_mean[1] == 0.0);
  CHECK(r.importance_mean[2] == 0.0);
  CHECK(r.importance_mean[0] > 0.3);  // shuffling the deciding feature leaves ~chance accuracy
  CHECK_THROWS_WITH(permutation_importance(m, x, {0, 1}), Catch::Contains("2 labels for 200 rows"));
}

TEST_CASE("Spearman correlation and the randomization comparison", "[explain]") {
  CHECK(spearman({1, 2, 3, 4}, {10, 20, 30, 40}) == Approx(1.0));
  CHECK(spearman({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1.0));
  // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138 (average ranks for ties)
  CHECK(close(spearman({1, 2, 2, 3}, {1, 3, 2, 4}), 0.9486832980505138, 0, 1e-12));
  Tensor a = Tensor::from_floats({1, 4}, {1, -2, 3, 4});
  Tensor b = Tensor::from_floats({1, 4}, {-1, 2, -3, -4});
  CHECK(randomization_correlation(a, b)[0] == Approx(1.0));  // |.| ranks identical
}

TEST_CASE("max-sensitivity is 0 for the gradient of a linear model", "[explain]") {
  auto m = make_linear(4);
  Tensor x = random_rows(3, 4, 16);
  auto s = max_sensitivity(m, x, [](const Model& mm, const Tensor& xx) { return gradient(mm, xx, {0, 0, 0}); });
  for (double v : s) CHECK(v == 0.0);
  IgToyModel toy;
  Tensor p = Tensor::from_floats({1, 2}, {1.f, 0.f});  // on the ReLU kink: gradient flips under noise
  auto st = max_sensitivity(toy, p, [](const Model& mm, const Tensor& xx) { return gradient(mm, xx, {0}); }, 0.02, 10);
  CHECK(st[0] >= 0.0);
}

TEST_CASE("heatmap PNG: signature, size and errors", "[explain]") {
  Tensor img = random_rows(1, 28 * 28, 17).reshape({1, 28, 28});
  Tensor att = random_rows(1, 28 * 28, 18).reshape({1, 28, 28});
  std::string png = encode_heatmap_png(img, att, 8);
  REQUIRE(png.size() > 33);
  CHECK(png.substr(1, 3) == "PNG");
  // IHDR width/height big-endian at bytes 16..23: 224 x 224
  CHECK((unsigned char)png[18] == 0);
  CHECK((unsigned char)png[19] == 224);
  CHECK((unsigned char)png[23] == 224);
  CHECK_THROWS_WITH(encode_heatmap_png(img, Tensor({1, 27, 28}), 8), Catch::Contains("sizes differ"));
  CHECK_THROWS_WITH(encode_heatmap_png(Tensor({5}), att, 8), Catch::Contains("must be a float image"));
  const std::string dir = mlaudit::test::temp_dir("explain-heatmap");
  write_heatmap_png(dir + "/h.png", img, att, 2);
  std::ifstream f(dir + "/h.png", std::ios::binary);
  CHECK(f.good());
}

TEST_CASE("KernelSHAP sampling (paired, Shapley-kernel weights) approaches the exact Shapley values", "[explain]") {
  mlaudit::test::TenFeatureModel m;
  Tensor x = random_rows(1, 10, 21);
  Tensor bg = random_rows(6, 10, 22);
  // Brute force over all 1024 coalitions: phi_j = sum_S |S|!(M-|S|-1)!/M! (v(S+j) - v(S)).
  auto v = [&](int mask) {
    double s = 0;
    for (int k = 0; k < 6; ++k) {
      float row[10];
      for (int j = 0; j < 10; ++j) row[j] = (mask >> j & 1) ? x.f32()[j] : bg.f32()[k * 10 + j];
      s += mlaudit::test::TenFeatureModel::value(row);
    }
    return s / 6;
  };
  std::vector<double> fact(11, 1.0);
  for (int i = 1; i <= 10; ++i) fact[i] = fact[i - 1] * i;
  std::vector<double> exact(10, 0.0);
  double scale = 0;
  for (int j = 0; j < 10; ++j) {
    for (int mask = 0; mask < 1024; ++mask)
      if (!(mask >> j & 1))
        exact[j] += fact[__builtin_popcount(mask)] * fact[9 - __builtin_popcount(mask)] / fact[10] *
                    (v(mask | 1 << j) - v(mask));
    scale = std::max(scale, std::fabs(exact[j]));
  }
  auto full = kernel_shap(m, x, bg, {0});  // auto budget 2068 >= 1022: exact enumeration
  REQUIRE(full.exact[0]);
  for (int j = 0; j < 10; ++j) CHECK(close(full.phi[0][j], exact[j], kFloatTol, 1e-5));
  KernelShapOptions o;
  o.samples = 700;  // sizes 1, 9 (and 2, 8) enumerated, the rest sampled in complementary pairs
  o.seed = 5;
  auto sampled = kernel_shap(m, x, bg, {0}, o);
  REQUIRE_FALSE(sampled.exact[0]);
  // A biased weighting shows up as errors of the order of the values themselves; 700 of 1022
  // coalitions keep the sampling error far below that (measured 0.25% of the largest |phi|, seed 5).
  for (int j = 0; j < 10; ++j) CHECK(std::fabs(sampled.phi[0][j] - exact[j]) < 0.03 * scale);
}

TEST_CASE("progress: every slow method reports rows done up to all rows, and reporting changes no value", "[explain][progress]") {
  const int64_t d = 6, n = 7;
  auto m = make_linear(d, 2);
  Tensor x = random_rows(n, d, 21);
  Tensor bg = random_rows(12, d, 22);
  const std::vector<int64_t> t(n, 1);
  struct Calls {
    std::vector<std::pair<int64_t, int64_t>> seen;
    engine::ProgressFn fn() {
      return [this](int64_t done, int64_t total) { seen.emplace_back(done, total); };
    }
    void check(int64_t rows) const {
      REQUIRE_FALSE(seen.empty());
      CHECK(seen.back() == std::make_pair(rows, rows));
      for (size_t k = 1; k < seen.size(); ++k) CHECK(seen[k].first >= seen[k - 1].first);
      for (const auto& [done, total] : seen) CHECK((total == rows && done >= 0 && done <= rows));
    }
  };
  auto same = [](const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) CHECK(a.f32()[i] == b.f32()[i]);
  };
  for (int threads : {1, 2}) {
    INFO("threads " << threads);
    const int before = engine::num_threads();
    engine::set_num_threads(threads);
    // Runs `method` without and with a progress hook: same attributions, rows reported up to n.
    auto reports_rows = [&](auto o, auto method) {
      Calls c;
      const Tensor quiet = method(o);
      o.progress = c.fn();
      same(method(o), quiet);
      c.check(n);
    };
    KernelShapOptions shap;
    shap.batch_rows = 3;  // several forward calls per row
    reports_rows(shap, [&](const KernelShapOptions& o) { return kernel_shap(m, x, bg, t, o).attributions; });
    LimeOptions lo;
    lo.samples = 200;
    reports_rows(lo, [&](const LimeOptions& o) { return lime(m, x, bg, t, o).attributions; });
    SmoothGradOptions sg;
    sg.samples = 5;
    sg.batch_rows = 4;  // chunks that split rows
    reports_rows(sg, [&](const SmoothGradOptions& o) { return smoothgrad(m, x, t, o); });
    IgOptions ig;
    ig.steps = 8;
    ig.batch_rows = 5;
    reports_rows(ig, [&](const IgOptions& o) { return integrated_gradients(m, x, Tensor(x.shape()), t, o).attributions; });
    OcclusionOptions occ;
    occ.window = {2};
    reports_rows(occ, [&](const OcclusionOptions& o) { return occlusion(m, x, t, o); });
    engine::set_num_threads(before);
  }
}
