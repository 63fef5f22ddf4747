// Backdoor scanning: Neural Cleanse on a closed-form model and on the planted-backdoor
// CNN (target class plus two others, small budget), the MAD anomaly index, STRIP, PNG.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "analytic_models.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/privacy/backdoor.h"
#include "test_util.h"

using namespace mlaudit;
using mlaudit::test::close;
using mlaudit::test::source_path;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// 2-class model on [N,1,4,4]: z0 = 0, z1 = 20 x[3,3] - 10, so class 1 iff pixel (3,3) > 1/2.
privacy::test::LinearModel corner_pixel_model() {
  std::vector<float> w1(16, 0.f);
  w1[15] = 20.f;
  return privacy::test::LinearModel({1, 4, 4}, {std::vector<float>(16, 0.f), w1}, {0.f, -10.f});
}

engine::Tensor dim_images(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 0.4f);
  engine::Tensor x({n, 1, 4, 4});
  for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = u(rng);
  return x;
}

// Fraction of a [28,28] mask's mass inside the bottom-right 6x6 corner (trigger at rows/cols 25..27).
double corner_mass(const engine::Tensor& mask) {
  double in = 0, all = 0;
  for (int64_t r = 0; r < 28; ++r)
    for (int64_t c = 0; c < 28; ++c) {
      const double v = mask.f32()[r * 28 + c];
      all += v;
      if (r >= 22 && c >= 22) in += v;
    }
  return in / all;
}

}  // namespace

TEST_CASE("privacy: Neural Cleanse finds the one pixel a closed-form model keys on", "[privacy][backdoor]") {
  const auto m = corner_pixel_model();
  const engine::Tensor x = dim_images(64, 1);
  privacy::NeuralCleanseConfig cfg;
  cfg.epochs = 30;
  const auto t = privacy::reverse_trigger(m, x, 1, cfg);
  // The only way to class 1 is pixel (3,3) > 1/2: the mask opens there with a bright
  // pattern ((1-m) x + m p > 1/2 for x <= 0.4 needs m p > 0.1 + ..., and the CE margin
  // pushes further), while every other mask entry feels only the L1 term and is driven to
  // 0 (Adam moves each tanh parameter by ~lr = 0.1 per step, 60 steps: m ~ 1e-5..1e-2).
  CHECK(t.reached_threshold);
  CHECK(t.attack_success == 1.0);
  CHECK(t.mask.f32()[15] > 0.5);
  CHECK(t.mask.f32()[15] * t.pattern.f32()[15] > 0.5);
  CHECK(t.l1_norm - t.mask.f32()[15] < 0.1);
  CHECK(t.gradient_calls == 60);  // 30 epochs x 2 batches of 32
  // Class 0 needs no trigger: nothing but pixel (3,3) opens (there the mask may darken the
  // pixel, which lowers z1 and the CE further), and the mask is smaller than class 1's.
  const auto t0 = privacy::reverse_trigger(m, x, 0, cfg);
  CHECK(t0.attack_success == 1.0);
  CHECK(t0.l1_norm - t0.mask.f32()[15] < 0.1);
  CHECK(t0.pattern.f32()[15] < 0.5);
  CHECK(t0.l1_norm < t.l1_norm);
}

TEST_CASE("privacy: MAD anomaly index has its closed form", "[privacy][backdoor]") {
  // values 1,2,3,4,100: median 3, |v - 3| = 2,1,0,1,97, MAD = 1.
  double med = 0, mad = 0;
  const auto idx = privacy::anomaly_indices({1, 2, 3, 4, 100}, &med, &mad);
  CHECK(med == 3.0);
  CHECK(mad == 1.0);
  CHECK(close(idx[4], 97 / 1.4826, 1e-15, 0));
  CHECK(close(idx[0], 2 / 1.4826, 1e-15, 0));
  CHECK(idx[2] == 0.0);
  // Even count: median is the mean of the middle two (numpy's rule), as in the reference code.
  privacy::anomaly_indices({1, 2, 3, 10}, &med, &mad);
  CHECK(med == 2.5);
  CHECK(mad == 1.0);  // |v - 2.5| = 1.5, 0.5, 0.5, 7.5 -> median 1.0
  CHECK_THAT(error_of([] { privacy::anomaly_indices({1}); }), Catch::Contains("at least 2 values"));
}

TEST_CASE("privacy: Neural Cleanse (small budget) separates the planted trigger class", "[privacy][backdoor]") {
  const engine::Tensor x = datasets::read_npy_float(source_path("datasets/privacy/backdoor_clean_x.npy"));
  privacy::NeuralCleanseConfig cfg;
  cfg.epochs = 20;
  auto bad = engine::Session::load(source_path("models/privacy/backdoor_cnn.onnx"));
  auto clean = engine::Session::load(source_path("models/privacy/clean_cnn.onnx"));
  const auto rb = privacy::neural_cleanse(*bad, x, {0, 3, 7}, cfg);
  const auto rc = privacy::neural_cleanse(*clean, x, {0, 3, 7}, cfg);
  const double b0 = rb.triggers[0].l1_norm, b_other = std::min(rb.triggers[1].l1_norm, rb.triggers[2].l1_norm);
  const double c0 = rc.triggers[0].l1_norm, c_other = std::min(rc.triggers[1].l1_norm, rc.triggers[2].l1_norm);
  INFO("backdoored L1: " << b0 << " vs " << b_other << "; clean twin L1: " << c0 << " vs " << c_other);
  // The planted 3x3 patch (L1 <= 9) is far smaller than a natural trigger for another class.
  CHECK(rb.triggers[0].reached_threshold);
  CHECK(b0 < 0.5 * b_other);
  CHECK(corner_mass(rb.triggers[0].mask) > 0.5);
  // The clean twin has no such shortcut to class 0.
  CHECK(c0 > 0.5 * c_other);
}

TEST_CASE("privacy: STRIP flags triggered inputs on the backdoored model only", "[privacy][backdoor]") {
  const engine::Tensor pool = datasets::read_npy_float(source_path("datasets/privacy/backdoor_clean_x.npy"));
  const engine::Tensor trig = datasets::read_npy_float(source_path("datasets/privacy/backdoor_triggered_x.npy"));
  const engine::Tensor held = datasets::read_npy_float(source_path("datasets/privacy/backdoor_heldout_x.npy"));
  auto bad = engine::Session::load(source_path("models/privacy/backdoor_cnn.onnx"));
  auto clean = engine::Session::load(source_path("models/privacy/clean_cnn.onnx"));
  privacy::StripConfig cfg;
  auto frac = [](const std::vector<uint8_t>& f) {
    double s = 0;
    for (auto v : f) s += v;
    return s / double(f.size());
  };
  // One call per model (the clean-pool entropies are the costly part): triggered inputs
  // first, then the held-out clean ones.
  const auto sall = privacy::strip(*bad, engine::concat_rows({trig, held}), pool, cfg);
  const auto sc = privacy::strip(*clean, trig, pool, cfg);
  privacy::StripResult sb = sall, sh = sall;
  sb.flagged.assign(sall.flagged.begin(), sall.flagged.begin() + trig.dim(0));
  sh.flagged.assign(sall.flagged.begin() + trig.dim(0), sall.flagged.end());
  INFO("backdoored: triggered " << frac(sb.flagged) << ", held-out " << frac(sh.flagged) << "; clean twin triggered "
                                << frac(sc.flagged) << "; threshold " << sb.threshold);
  // The trigger survives superimposition (saturating add keeps the white patch), so the
  // prediction stays at class 0 and the entropy collapses.
  CHECK(frac(sb.flagged) >= 0.9);
  // Clean inputs: the threshold is set at FRR 1 %; with 100 held-out inputs allow up to 10 %.
  CHECK(frac(sh.flagged) <= 0.10);
  CHECK(frac(sc.flagged) <= 0.20);
  REQUIRE(sb.clean_entropy.size() == 100);
  CHECK(sb.threshold < sb.clean_mean);
  CHECK_THAT(error_of([&] { privacy::strip(*bad, engine::Tensor::from_floats({1, 4}, {0, 0, 0, 0}), pool, cfg); }),
             Catch::Contains("STRIP inputs must be images [N,C,H,W], got [1,4]"));
}

TEST_CASE("privacy: reversed trigger PNG is written and bad input is rejected", "[privacy][backdoor]") {
  const auto m = corner_pixel_model();
  privacy::NeuralCleanseConfig cfg;
  cfg.epochs = 3;
  const auto t = privacy::reverse_trigger(m, dim_images(8, 2), 1, cfg);
  const std::string dir = mlaudit::test::temp_dir("privacy-png");
  privacy::write_trigger_png(dir + "/t.png", t, 0, 1, 4);
  const std::string bytes = datasets::read_file(dir + "/t.png");
  REQUIRE(bytes.size() > 24);
  CHECK(bytes.substr(1, 3) == "PNG");
  // IHDR width/height (big endian at offsets 16 and 20): 4 px x scale 4 = 16.
  CHECK(uint8_t(bytes[19]) == 16);
  CHECK(uint8_t(bytes[23]) == 16);
  const engine::Tensor flat = engine::Tensor::from_floats({2, 16}, std::vector<float>(32, 0.f));
  CHECK_THAT(error_of([&] { privacy::reverse_trigger(m, flat, 1, cfg); }),
             Catch::Contains("clean images must be images [N,C,H,W], got [2,16]"));
  CHECK_THAT(error_of([&] { privacy::neural_cleanse(m, dim_images(4, 3), {0, 2}, cfg); }),
             Catch::Contains("class 2 is outside the model's 2 outputs"));
  CHECK_THAT(error_of([&] { privacy::neural_cleanse(m, dim_images(4, 3), {1}, cfg); }),
             Catch::Contains("at least 2 classes"));
}
