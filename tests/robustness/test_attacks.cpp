// Attacks: closed forms on linear models, invariants on a non-linear analytic model,
// APGD schedule, DLR loss, bad input.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "analytic_models.h"
#include "common.h"  // robustness/src: detail::eval_loss for the gradient check
#include "mlaudit/engine/error.h"
#include "mlaudit/robustness/attacks.h"
#include "test_util.h"

using namespace mlaudit;
using robustness::AttackConfig;
using robustness::Norm;

namespace {

// Binary linear model on D features and points uniform in [0.3, 0.7]^D, so that
// every Linf ball with eps <= 0.3 stays inside the [0,1] domain (no clipping).
struct BinaryCase {
  test::LinearModel model;
  engine::Tensor x;
  std::vector<int64_t> y;
};

BinaryCase make_binary(int64_t n, int64_t d, unsigned seed, engine::Shape shape = {}) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::uniform_real_distribution<float> u(0.3f, 0.7f);
  std::vector<float> w(size_t(2 * d)), b = {0.f, 0.f};
  for (auto& v : w) v = g(rng);
  // Boundary through the centre of the cube, so both classes and small margins occur.
  for (int64_t k = 0; k < d; ++k) b[0] -= 0.5f * (w[size_t(k)] - w[size_t(d + k)]);
  if (shape.empty()) shape = {-1, d};
  test::LinearModel m(shape, 2, w, b);
  engine::Shape xs = shape;
  xs[0] = n;
  engine::Tensor x(xs);
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng);
  auto z = m.forward(x);
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) y.push_back(z.f32()[2 * i] >= z.f32()[2 * i + 1] ? 0 : 1);  // model is 100% correct
  return {m, x, y};
}

// Smallest eps that flips point i of a binary linear model: margin / ||w_y - w_j||_dual
// (dual of Linf is L1, of L2 is L2): the optimum is x - eps * sign(w_y - w_j) (Linf)
// or x - eps (w_y - w_j)/||w_y - w_j||_2 (L2).
double required_eps(const BinaryCase& c, int64_t i, Norm norm) {
  const int64_t d = c.model.dim(), yi = c.y[size_t(i)], j = 1 - yi;
  double margin = c.model.bias(yi) - c.model.bias(j), dual = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double dw = double(c.model.weight(yi, k)) - c.model.weight(j, k);
    margin += dw * c.x.f32()[i * d + k];
    dual += norm == Norm::Linf ? std::fabs(dw) : dw * dw;
  }
  return margin / (norm == Norm::Linf ? dual : std::sqrt(dual));
}

}  // namespace

TEST_CASE("robustness: APGD checkpoints for 100 iterations are 0,22,41,57,70,80,87,93,99", "[robustness][apgd]") {
  // Croce & Hein 2020, Sec. 3.2: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
  CHECK(robustness::apgd_checkpoints(100) == std::vector<int>{0, 22, 41, 57, 70, 80, 87, 93, 99});
  // 1000 iterations: periods 220, 190, 160, ..., 70, 60, 60: cumulative sums.
  auto w = robustness::apgd_checkpoints(1000);
  REQUIRE(w.size() >= 4);
  CHECK(w[1] == 220);
  CHECK(w[2] == 410);
  CHECK(w.back() <= 1000);
}

TEST_CASE("robustness: DLR and targeted DLR losses match Croce & Hein 2020 Eq. 6-7 and their gradients", "[robustness][dlr]") {
  auto z = engine::Tensor::from_floats({2, 4}, {3, 1, 2, 0, 3, 1, 2, 0});
  // y = 0: sorted 3,2,1,0; -(3 - 2) / (3 - 1) = -0.5.  y = 1: -(1 - 3) / (3 - 1) = 1.
  auto v = robustness::dlr_loss(z, {0, 1});
  CHECK(v[0] == Approx(-0.5).epsilon(1e-6));
  CHECK(v[1] == Approx(1.0).epsilon(1e-6));
  // Targeted, y = 0, t = 3: -(3 - 0) / (3 - (1 + 0)/2) = -1.2.
  auto t = robustness::dlr_targeted_loss(z, {0, 0}, {3, 2});
  CHECK(t[0] == Approx(-1.2).epsilon(1e-6));
  CHECK(t[1] == Approx(-(3.0 - 2.0) / 2.5).epsilon(1e-6));
  // Analytic d loss / d logits against central differences (h = 1e-3 on logits of order 1:
  // truncation error O(h^2) ~ 1e-6, float rounding ~ 1e-7/h ~ 1e-4, so compare at 1e-3).
  using robustness::detail::Loss;
  auto zz = engine::Tensor::from_floats({1, 5}, {0.3f, 2.1f, -0.7f, 1.4f, 0.9f});
  for (Loss loss : {Loss::CrossEntropy, Loss::Dlr, Loss::DlrTargeted}) {
    std::vector<int64_t> y = {3}, tgt = {4};
    engine::Tensor seed;
    std::vector<float> base;
    robustness::detail::eval_loss(loss, zz, y, &tgt, &base, &seed);
    for (int k = 0; k < 5; ++k) {
      auto zp = zz.clone(), zm = zz.clone();
      zp.f32()[k] += 1e-3f;
      zm.f32()[k] -= 1e-3f;
      std::vector<float> vp, vm;
      robustness::detail::eval_loss(loss, zp, y, &tgt, &vp, nullptr);
      robustness::detail::eval_loss(loss, zm, y, &tgt, &vm, nullptr);
      CHECK(seed.f32()[k] == Approx((vp[0] - vm[0]) / 2e-3).margin(1e-3));
    }
  }
  CHECK_THROWS_WITH(robustness::dlr_loss(engine::Tensor::from_floats({1, 2}, {1, 2}), {0}),
                    Catch::Contains("DLR loss needs at least 3 classes"));
}

TEST_CASE("robustness: FGSM on a binary linear model is the closed-form optimum x - eps*sign(w_y - w_j)", "[robustness][fgsm]") {
  auto c = make_binary(200, 8, 11);
  AttackConfig cfg;
  cfg.eps = 0.1;
  auto r = robustness::run_attack("fgsm", c.model, c.x, c.y, cfg);
  CHECK(r.clean_accuracy() == 1.0);
  int checked = 0;
  for (int64_t i = 0; i < 200; ++i) {
    const double need = required_eps(c, i, Norm::Linf);
    if (std::fabs(need - cfg.eps) < 1e-4) continue;  // float ties at the boundary
    CHECK(bool(r.success[size_t(i)]) == (need < cfg.eps));
    if (!r.success[size_t(i)]) continue;
    const int64_t yi = c.y[size_t(i)];
    for (int64_t k = 0; k < 8; ++k) {
      const double dw = double(c.model.weight(yi, k)) - c.model.weight(1 - yi, k);
      const double expect = c.x.f32()[i * 8 + k] - cfg.eps * ((dw > 0) - (dw < 0));
      CHECK(r.adversarial.f32()[i * 8 + k] == Approx(expect).margin(1e-6));  // float32 rounding of x +- eps
    }
    ++checked;
  }
  CHECK(checked > 20);
  CHECK(r.gradient_calls[0] == 1);
}

TEST_CASE("robustness: PGD and APGD reach the exact minimal margin on a binary linear model", "[robustness][pgd][apgd]") {
  auto c = make_binary(150, 8, 5);
  for (const char* attack : {"pgd", "apgd-ce"})
    for (Norm norm : {Norm::Linf, Norm::L2}) {
      AttackConfig cfg;
      cfg.norm = norm;
      cfg.eps = norm == Norm::Linf ? 0.08 : 0.2;
      cfg.steps = std::string(attack) == "pgd" ? 20 : 30;
      cfg.seed = 3;
      auto r = robustness::run_attack(attack, c.model, c.x, c.y, cfg);
      int broken = 0, mismatched = 0;
      for (int64_t i = 0; i < 150; ++i) {
        // The optimum is a vertex (Linf) or the dual direction (L2); both attacks hit it
        // up to float error, so only points within 0.1% of the threshold are skipped.
        // L2 PGD approaches the optimal direction geometrically (each projection shrinks the
        // angle), not exactly, so its band is 2%.
        const double need = required_eps(c, i, norm);
        const double band = (norm == Norm::L2 && std::string(attack) == "pgd") ? 5e-2 : 1e-3;
        if (std::fabs(need - cfg.eps) < band * cfg.eps) continue;
        mismatched += bool(r.success[size_t(i)]) != (need < cfg.eps);
        broken += r.success[size_t(i)];
      }
      INFO(attack << " " << robustness::norm_name(norm));
      CHECK(mismatched == 0);
      CHECK(broken > 10);
      CHECK(broken < 140);
    }
}

TEST_CASE("robustness: FGSM equals one PGD step of size eps without random start", "[robustness][fgsm][pgd]") {
  test::TanhMlp m(12, 16, 5, 7);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(0, 1);
  engine::Tensor x({64, 12});
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng);
  auto y = engine::argmax_rows(m.forward(x));
  AttackConfig cfg;
  cfg.eps = 0.15;
  auto f = robustness::run_attack("fgsm", m, x, y, cfg);
  cfg.steps = 1;
  cfg.step_size = cfg.eps;
  cfg.random_start = false;
  auto p = robustness::run_attack("pgd", m, x, y, cfg);
  CHECK(f.success == p.success);
  const auto a = f.adversarial.to_doubles(), b = p.adversarial.to_doubles();
  for (size_t k = 0; k < a.size(); ++k) REQUIRE(a[k] == b[k]);
  CHECK(std::count(f.success.begin(), f.success.end(), 1) > 0);
}

TEST_CASE("robustness: eps = 0 returns x unchanged for every eps-bounded attack", "[robustness]") {
  test::TanhMlp m(6, 8, 4, 3);
  engine::Tensor x = engine::Tensor::full({10, 6}, 0.5f);
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = 0.1f * float(k % 9);
  auto y = engine::argmax_rows(m.forward(x));
  for (const char* a : {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "autoattack"}) {
    AttackConfig cfg;
    cfg.eps = 0;
    auto r = robustness::run_attack(a, m, x, y, cfg);
    INFO(a);
    CHECK(r.robust_accuracy() == r.clean_accuracy());
    const auto xa = x.to_doubles(), aa = r.adversarial.to_doubles();
    CHECK(xa == aa);
  }
}

TEST_CASE("robustness: every adversarial example stays in the ball and the domain and changes the label", "[robustness]") {
  test::TanhMlp m(20, 24, 6, 9);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(0, 1);
  engine::Tensor x({40, 20});
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng) < 0.2f ? 0.f : u(rng);  // some on the boundary
  std::vector<int64_t> y = engine::argmax_rows(m.forward(x));
  y[0] = (y[0] + 1) % 6;  // one misclassified point: never attacked
  struct Case { const char* attack; Norm norm; double eps; };
  for (Case cs : {Case{"fgsm", Norm::Linf, 0.1}, Case{"fgsm", Norm::L2, 0.5}, Case{"pgd", Norm::Linf, 0.1},
                  Case{"pgd", Norm::L2, 0.5}, Case{"apgd-ce", Norm::Linf, 0.1}, Case{"apgd-dlr", Norm::L2, 0.5},
                  Case{"apgd-t", Norm::Linf, 0.1}, Case{"square", Norm::Linf, 0.1}, Case{"deepfool", Norm::L2, 0},
                  Case{"deepfool", Norm::Linf, 0}, Case{"cw-l2", Norm::L2, 0}, Case{"autoattack", Norm::Linf, 0.1}}) {
    AttackConfig cfg;
    cfg.norm = cs.norm;
    cfg.eps = cs.eps;
    cfg.queries = 300;
    if (std::string(cs.attack) == "cw-l2") { cfg.steps = 100; cfg.binary_search_steps = 4; }
    if (std::string(cs.attack) == "autoattack") cfg.steps = 20;
    auto r = robustness::run_attack(cs.attack, m, x, y, cfg);
    INFO(cs.attack << " " << robustness::norm_name(cs.norm));
    CHECK(r.success[0] == 0);
    auto z = m.forward(r.adversarial);
    int broken = 0;
    for (int64_t i = 0; i < 40; ++i) {
      if (!r.success[size_t(i)]) continue;
      ++broken;
      const float* a = r.adversarial.f32() + i * 20;
      const float* o = x.f32() + i * 20;
      double dist = 0;
      for (int k = 0; k < 20; ++k) {
        CHECK(a[k] >= 0.f);
        CHECK(a[k] <= 1.f);
        const double dlt = double(a[k]) - o[k];
        dist = cs.norm == Norm::Linf ? std::max(dist, std::fabs(dlt)) : dist + dlt * dlt;
      }
      if (cs.norm == Norm::L2) dist = std::sqrt(dist);
      // 1e-6: float32 rounding of x +- eps for |x| <= 1.
      if (cs.eps > 0) CHECK(dist <= cs.eps + 1e-6);
      CHECK(dist == Approx(r.perturbation_norm[size_t(i)]).margin(1e-9));
      CHECK(engine::argmax_rows(z)[size_t(i)] != y[size_t(i)]);
    }
    CHECK(broken > 0);
    CHECK(r.rejected == 0);
  }
}

TEST_CASE("robustness: APGD-T breaks every point of a 4-class linear model that has slack", "[robustness][apgd]") {
  // Closed form: point i is breakable iff min_j margin_j / ||w_y - w_j||_1 < eps.
  std::mt19937 rng(21);
  std::normal_distribution<float> g(0, 1);
  const int64_t d = 10, n = 80;
  std::vector<float> w(size_t(4 * d)), b(4, 0.f);
  for (auto& v : w) v = g(rng);
  test::LinearModel m({-1, d}, 4, w, b);
  engine::Tensor x({n, d});
  std::uniform_real_distribution<float> u(0.3f, 0.7f);
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng);
  auto z = m.forward(x);
  auto y = engine::argmax_rows(z);
  AttackConfig cfg;
  cfg.eps = 0.05;
  cfg.steps = 50;
  auto r = robustness::run_attack("apgd-t", m, x, y, cfg);
  int slack = 0;
  for (int64_t i = 0; i < n; ++i) {
    double need = 1e9;
    for (int64_t j = 0; j < 4; ++j) {
      if (j == y[size_t(i)]) continue;
      double l1 = 0;
      for (int64_t k = 0; k < d; ++k) l1 += std::fabs(double(m.weight(y[size_t(i)], k)) - m.weight(j, k));
      need = std::min(need, (double(z.f32()[i * 4 + y[size_t(i)]]) - z.f32()[i * 4 + j]) / l1);
    }
    if (need > cfg.eps) CHECK(r.success[size_t(i)] == 0);  // impossible: the re-check guarantees it
    // With 5% slack, the targeted-DLR ascent towards the right target must get there.
    if (need < 0.95 * cfg.eps) { ++slack; CHECK(r.success[size_t(i)] == 1); }
  }
  CHECK(slack > 5);
}

TEST_CASE("robustness: DeepFool on a binary linear model steps exactly to the boundary (times 1 + overshoot)", "[robustness][deepfool]") {
  auto c = make_binary(30, 8, 17);
  AttackConfig cfg;
  cfg.norm = Norm::L2;
  auto r = robustness::run_attack("deepfool", c.model, c.x, c.y, cfg);
  int n_ok = 0;
  for (int64_t i = 0; i < 30; ++i) {
    const double need = required_eps(c, i, Norm::L2);
    if (need > 0.25) continue;  // the step would leave [0.3,0.7] +- clipping region
    REQUIRE(r.success[size_t(i)] == 1);
    // r = (|f|/||w|| + 1e-4) w/||w|| (the authors' code), applied as (1 + 0.02) r: norm 1.02 (need + 1e-4);
    // x + r is stored in float32 (ulp 6e-8 at 0.5 per coordinate, 8 coordinates): 1e-6 absolute.
    CHECK(r.perturbation_norm[size_t(i)] == Approx(1.02 * (need + 1e-4)).margin(1e-6));
    ++n_ok;
  }
  CHECK(n_ok > 5);
}

TEST_CASE("robustness: FAB and FAB-T converge to the exact minimal perturbation of a binary linear model", "[robustness][fab]") {
  // For a linear model the linearisation is exact: the first step lands at x + eta d*
  // (d* the minimal perturbation, norm `need`), and the beta/alpha steps then approach the
  // boundary from the adversarial side, so the best norm tends to `need` from above.
  auto c = make_binary(30, 8, 29);
  for (Norm norm : {Norm::Linf, Norm::L2}) {
    for (const char* attack : {"fab", "fab-t"}) {
      AttackConfig cfg;
      cfg.norm = norm;
      cfg.eps = 1.0;  // accept every point FAB finds: compare its norm
      auto r = robustness::run_attack(attack, c.model, c.x, c.y, cfg);
      int n_ok = 0;
      for (int64_t i = 0; i < 30; ++i) {
        const double need = required_eps(c, i, norm);
        if (need > 0.25) continue;  // the optimum would leave the [0,1] box
        INFO(attack << " " << robustness::norm_name(norm) << " sample " << i << " need " << need);
        REQUIRE(r.success[size_t(i)] == 1);
        // Never below the optimum (float32 storage: 1e-6 absolute); after 100 iterations
        // within 1% above it (the first success is at 1.05 need, the second at ~1.005 need).
        CHECK(r.perturbation_norm[size_t(i)] >= need - 1e-6);
        CHECK(r.perturbation_norm[size_t(i)] <= 1.01 * need + 1e-6);
        ++n_ok;
      }
      CHECK(n_ok > 5);
      CHECK(r.rejected == 0);
    }
  }
  // Inside the ball: with eps below every point's need FAB-T breaks nothing.
  AttackConfig small;
  small.eps = 1e-4;
  auto r = robustness::run_attack("fab-t", c.model, c.x, c.y, small);
  for (int64_t i = 0; i < 30; ++i)
    if (required_eps(c, i, Norm::Linf) > small.eps) CHECK(r.success[size_t(i)] == 0);
}

TEST_CASE("robustness: CW-L2 finds a near-minimal L2 perturbation on a binary linear model", "[robustness][cw]") {
  auto c = make_binary(20, 6, 23);
  AttackConfig cfg;
  cfg.norm = Norm::L2;
  cfg.steps = 300;
  auto r = robustness::run_attack("cw-l2", c.model, c.x, c.y, cfg);
  int n_ok = 0;
  for (int64_t i = 0; i < 20; ++i) {
    const double need = required_eps(c, i, Norm::L2);
    if (need > 0.2) continue;  // keep the optimum inside the box
    REQUIRE(r.success[size_t(i)] == 1);
    // Never below the exact minimum (up to float), and within 5% + 0.005 of it: Adam with
    // lr 0.01 in tanh space moves each coordinate by up to ~0.005 per step, so it stops
    // slightly past the boundary (observed: 0.1% to 2% above, +0.004 on the smallest).
    CHECK(r.perturbation_norm[size_t(i)] >= need * (1 - 1e-4));
    CHECK(r.perturbation_norm[size_t(i)] <= need * 1.05 + 5e-3);
    ++n_ok;
  }
  CHECK(n_ok > 3);
}

TEST_CASE("robustness: Square attack breaks points with slack on a linear image model using forward passes only", "[robustness][square]") {
  for (Norm norm : {Norm::Linf, Norm::L2}) {
    auto c = make_binary(40, 64, 31, {-1, 1, 8, 8});
    AttackConfig cfg;
    cfg.norm = norm;
    cfg.eps = norm == Norm::Linf ? 0.05 : 0.3;
    cfg.queries = 2000;
    auto r = robustness::run_attack("square", c.model, c.x, c.y, cfg);
    CHECK(c.model.gradient_calls == 0);
    int slack = 0;
    for (int64_t i = 0; i < 40; ++i) {
      const double need = required_eps(c, i, norm);
      if (need > cfg.eps) CHECK(r.success[size_t(i)] == 0);
      // Random search is not exact: demand success only with slack, 2x for Linf (vertex
      // search) and 3x for L2 (pseudo-Gaussian windows only approximate the optimal direction;
      // observed misses at need/eps = 0.49 with 2000 queries on 64 pixels).
      if (need < (norm == Norm::Linf ? 0.5 : 0.33) * cfg.eps) { ++slack; INFO(robustness::norm_name(norm) << " need/eps " << need / cfg.eps); CHECK(r.success[size_t(i)] == 1); }
      CHECK(r.queries[size_t(i)] <= cfg.queries + 2);
    }
    INFO(robustness::norm_name(norm));
    CHECK(slack > 3);
  }
}

TEST_CASE("robustness: AutoAttack robust accuracy is never above its APGD-CE stage alone", "[robustness][autoattack]") {
  test::TanhMlp m(16, 20, 6, 13);
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(0, 1);
  engine::Tensor x({60, 16});
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng);
  auto y = engine::argmax_rows(m.forward(x));
  AttackConfig cfg;
  cfg.eps = 0.03;
  cfg.queries = 500;
  auto aa = robustness::run_attack("autoattack", m, x, y, cfg);
  auto ce = robustness::run_attack("apgd-ce", m, x, y, cfg);
  auto pgd = robustness::run_attack("pgd", m, x, y, cfg);
  CHECK(aa.robust_accuracy() <= ce.robust_accuracy());
  CHECK(aa.robust_accuracy() <= pgd.robust_accuracy());
  CHECK(aa.robust_accuracy() < aa.clean_accuracy());
  for (size_t i = 0; i < aa.stage.size(); ++i)
    if (aa.success[i]) CHECK((aa.stage[i] == "apgd-ce" || aa.stage[i] == "apgd-t" || aa.stage[i] == "fab-t" || aa.stage[i] == "square"));
  // 6 classes: FAB-T has 5 targets instead of AutoAttack's 9, and says so.
  bool fab_warned = false;
  for (const auto& w : aa.warnings) fab_warned |= w.find("FAB-T tried the 5 other classes") != std::string::npos;
  CHECK(fab_warned);
}

TEST_CASE("robustness: AutoAttack warns about softmax outputs and zero gradients", "[robustness][autoattack]") {
  test::ConstantModel m(4, {0.1f, 0.2f, 0.3f, 0.4f});  // probabilities, zero gradient
  engine::Tensor x = engine::Tensor::full({3, 4}, 0.5f);
  AttackConfig cfg;
  cfg.eps = 0.1;
  cfg.queries = 10;
  cfg.steps = 5;
  auto r = robustness::run_attack("autoattack", m, x, {3, 3, 3}, cfg);
  std::string all;
  for (auto& w : r.warnings) all += w + "\n";
  CHECK_THAT(all, Catch::Contains("probabilities"));
  CHECK_THAT(all, Catch::Contains("zero input gradient"));
  CHECK(r.robust_accuracy() == 1.0);
}

TEST_CASE("robustness: attack input errors name the problem", "[robustness][errors]") {
  test::TanhMlp m(4, 4, 3, 1);
  engine::Tensor x = engine::Tensor::full({2, 4}, 0.5f);
  AttackConfig cfg;
  CHECK_THROWS_AS(robustness::run_attack("fgsm", m, x, {0}, cfg), InputError);
  CHECK_THROWS_WITH(robustness::run_attack("fgsm", m, x, {0}, cfg), Catch::Contains("labels have 1 entries but the data has 2 samples"));
  CHECK_THROWS_WITH(robustness::run_attack("fgsmx", m, x, {0, 0}, cfg), Catch::Contains("unknown attack 'fgsmx'"));
  CHECK_THROWS_WITH(robustness::run_attack("fgsm", m, x, {0, 7}, cfg), Catch::Contains("label 7 of sample 1 is outside the model's 3 classes"));
  CHECK_THROWS_WITH(robustness::run_attack("cw-l2", m, x, {0, 0}, cfg), Catch::Contains("use --norm l2"));
  engine::Tensor big = engine::Tensor::full({2, 4}, 2.0f);
  CHECK_THROWS_WITH(robustness::run_attack("pgd", m, big, {0, 0}, cfg), Catch::Contains("outside the domain"));
  cfg.eps = -1;
  CHECK_THROWS_WITH(robustness::run_attack("pgd", m, x, {0, 0}, cfg), Catch::Contains("robustness: eps must be >= 0"));  // the CLI says --eps
  cfg.eps = 0.1;
  cfg.clip_min = 1;
  CHECK_THROWS_WITH(robustness::run_attack("pgd", m, x, {0, 0}, cfg), Catch::Contains("--clip-min"));
  CHECK_THROWS_WITH(robustness::parse_norm("l3"), Catch::Contains("unknown norm 'l3'"));
  CHECK_THROWS_WITH(robustness::run_attack("pgd", m, engine::Tensor::full({4}, 0.5f), {0, 0, 0, 0}, AttackConfig{}),
                    Catch::Contains("batch axis"));
}

TEST_CASE("robustness: every white-box attack warns about gradient masking and a ball that covers the domain",
          "[robustness][masking]") {
  // Saturated logits: z = +-1000 (x0 - 0.3). At x0 = 0.9 the margin is 1200, softmax is exactly
  // one-hot in float32 and the CE input gradient is exactly zero, so gradient steps never move;
  // yet at eps 5 the L-inf ball covers [0, 1]^4, which holds class-1 points (x0 < 0.3).
  test::LinearModel m({1, 4}, 2, {1000.f, 0, 0, 0, -1000.f, 0, 0, 0}, {-300.f, 300.f});
  engine::Tensor x = engine::Tensor::full({3, 4}, 0.9f);
  for (const std::string attack : {"fgsm", "pgd", "apgd-ce", "deepfool"}) {  // (DLR needs 3 classes)
    AttackConfig cfg;
    cfg.eps = 5;
    cfg.steps = 5;
    auto r = robustness::run_attack(attack, m, x, {0, 0, 0}, cfg);
    std::string all;
    for (auto& w : r.warnings) all += w + "\n";
    INFO(attack << ": robust accuracy " << r.robust_accuracy() << "\n" << all);
    CHECK_THAT(all, Catch::Contains("3 of 3 points have a zero input gradient"));
    if (attack == "fgsm") CHECK(r.robust_accuracy() == 1.0);  // a zero gradient step never moves: masked
    if (r.robust_accuracy() > 0) CHECK_THAT(all, Catch::Contains("covers the whole input domain [0, 1], yet"));
  }
  // Square needs no gradient: no zero-gradient warning, and it breaks the points.
  AttackConfig cfg;
  cfg.eps = 5;
  cfg.queries = 200;
  auto sq = robustness::run_attack("square", m, x, {0, 0, 0}, cfg);
  for (auto& w : sq.warnings) CHECK_THAT(w, !Catch::Contains("zero input gradient"));
  CHECK(sq.robust_accuracy() == 0.0);
  // The softmax-output warning is not AutoAttack's alone.
  test::ConstantModel probs(4, {0.1f, 0.2f, 0.3f, 0.4f});
  AttackConfig pc;
  pc.eps = 0.1;
  pc.steps = 3;
  std::string pall;
  for (auto& w : robustness::run_attack("pgd", probs, engine::Tensor::full({3, 4}, 0.5f), {3, 3, 3}, pc).warnings) pall += w;
  CHECK_THAT(pall, Catch::Contains("look like probabilities"));
  // A healthy model at a small eps: no warnings at all.
  test::LinearModel healthy({1, 4}, 2, {1.f, 0, 0, 0, -1.f, 0, 0, 0}, {-0.3f, 0.3f});
  AttackConfig small;
  small.eps = 0.05;
  small.steps = 5;
  CHECK(robustness::run_attack("pgd", healthy, x, {0, 0, 0}, small).warnings.empty());
}
