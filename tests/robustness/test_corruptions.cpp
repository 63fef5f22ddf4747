// Common corruptions: the CIFAR-10-C definitions on inputs where the result is known.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analytic_models.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/robustness/corruptions.h"
#include "test_util.h"

using namespace mlaudit;

namespace {
engine::Tensor pattern() {
  // ((k * 37) % 101) / 100 on a 28x28 plane, as in tools/robustness_goldens.py.
  engine::Tensor x({1, 1, 28, 28});
  for (int k = 0; k < 784; ++k) x.f32()[k] = float((k * 37) % 101) / 100.f;
  return x;
}
}  // namespace

TEST_CASE("robustness: Gaussian noise adds N(0, c^2) with the CIFAR-10-C constants", "[robustness][corrupt]") {
  engine::Tensor x = engine::Tensor::full({4, 1, 28, 28}, 0.5f);
  const double c[] = {0.04, 0.06, 0.08, 0.09, 0.10};
  for (int s = 1; s <= 5; ++s) {
    auto y = robustness::corrupt(x, "gaussian_noise", s, 1);
    double m = 0, v = 0;
    for (int64_t k = 0; k < y.numel(); ++k) m += y.f32()[k] - 0.5;
    m /= double(y.numel());
    for (int64_t k = 0; k < y.numel(); ++k) v += (y.f32()[k] - 0.5 - m) * (y.f32()[k] - 0.5 - m);
    // 3136 draws: the sample std is within ~4% of c at 3 standard errors (1/sqrt(2n) ~ 1.3%).
    CHECK(std::sqrt(v / double(y.numel())) == Approx(c[s - 1]).epsilon(0.04));
  }
}

TEST_CASE("robustness: contrast, brightness, pixelate and blur follow their definitions", "[robustness][corrupt]") {
  auto x = pattern();
  double mean = 0;
  for (int k = 0; k < 784; ++k) mean += x.f32()[k] / 784.0;
  auto y = robustness::corrupt(x, "contrast", 5, 0);  // (x - mean) * 0.15 + mean
  for (int k = 0; k < 784; k += 31) CHECK(y.f32()[k] == Approx((x.f32()[k] - mean) * 0.15 + mean).margin(1e-6));
  y = robustness::corrupt(x, "brightness", 3, 0);  // grayscale: V + 0.15, clipped
  for (int k = 0; k < 784; k += 31) CHECK(y.f32()[k] == Approx(std::min(1.0, x.f32()[k] + 0.15)).margin(1e-6));
  // RGB brightness keeps hue and saturation: channels scale by V'/V.
  engine::Tensor rgb = engine::Tensor::from_floats({1, 3, 1, 1}, {0.4f, 0.2f, 0.1f});
  y = robustness::corrupt(rgb, "brightness", 1, 0);
  CHECK(y.f32()[0] == Approx(0.45).margin(1e-6));
  CHECK(y.f32()[1] == Approx(0.2 * 0.45 / 0.4).margin(1e-6));
  // Pixelate and blur keep a constant image constant.
  engine::Tensor flat = engine::Tensor::full({1, 1, 28, 28}, 0.3f);
  for (const char* c : {"pixelate", "gaussian_blur"})
    for (int s = 1; s <= 5; ++s) {
      auto z = robustness::corrupt(flat, c, s, 0);
      for (int k = 0; k < 784; ++k) REQUIRE(z.f32()[k] == Approx(0.3).margin(1e-6));
    }
  // Pixelate severity 5: 28 -> int(28 * 0.65) = 18 -> 28 changes a varying image.
  y = robustness::corrupt(x, "pixelate", 5, 0);
  int changed = 0;
  for (int k = 0; k < 784; ++k) changed += std::fabs(y.f32()[k] - x.f32()[k]) > 1e-6;
  CHECK(changed > 300);
}

TEST_CASE("robustness: Gaussian blur matches scipy.ndimage.gaussian_filter (mode nearest)", "[robustness][corrupt]") {
  std::ifstream f(test::source_path("tests/fixtures/robustness/stats_goldens.json"));
  REQUIRE(f.good());
  auto fx = nlohmann::json::parse(f);
  auto x = pattern();
  for (int s = 1; s <= 5; ++s) {
    auto y = robustness::corrupt(x, "gaussian_blur", s, 0);
    auto ref = fx["gaussian_blur"][std::to_string(s)];
    int k = 0;
    for (int i = 0; i < 28; i += 7)
      for (int j = 0; j < 28; j += 7) {
        // float32 accumulation vs scipy's float64: 1e-5 absolute on values in [0,1].
        CHECK(y.f32()[i * 28 + j] == Approx(ref[k++].get<double>()).margin(1e-5));
      }
  }
}

TEST_CASE("robustness: impulse and shot noise stay in [0,1] and hit the expected fraction", "[robustness][corrupt]") {
  engine::Tensor x = engine::Tensor::full({10, 1, 28, 28}, 0.5f);
  auto y = robustness::corrupt(x, "impulse_noise", 5, 2);  // amount 0.07
  int hit = 0;
  for (int64_t k = 0; k < y.numel(); ++k) {
    REQUIRE((y.f32()[k] == 0.f || y.f32()[k] == 1.f || y.f32()[k] == 0.5f));
    hit += y.f32()[k] != 0.5f;
  }
  // 7840 cells, p = 0.07: sd = sqrt(7840 * 0.07 * 0.93) ~ 22.6; allow 4 sd.
  CHECK(std::abs(hit - 548.8) < 4 * 22.6);
  y = robustness::corrupt(x, "shot_noise", 1, 2);  // Poisson(250)/500: mean 0.5, sd sqrt(250)/500
  double m = 0;
  for (int64_t k = 0; k < y.numel(); ++k) m += y.f32()[k] / double(y.numel());
  CHECK(m == Approx(0.5).margin(4 * 0.0316 / std::sqrt(7840.0)));
  // Black pixels: Poisson(0) = 0, they stay black.
  auto black = robustness::corrupt(engine::Tensor::full({1, 1, 4, 4}, 0.f), "shot_noise", 5, 2);
  for (int64_t k = 0; k < 16; ++k) CHECK(black.f32()[k] == 0.f);
}

TEST_CASE("robustness: tabular corruptions and the sweep report", "[robustness][corrupt]") {
  test::LinearModel m({-1, 2}, 2, {1.f, 0.f, 0.f, 1.f}, {0.f, 0.f});
  engine::Tensor x = engine::Tensor::from_floats({4, 2}, {5, 1, 1, 5, 6, 0, 0, 6});
  std::vector<int64_t> y = {0, 1, 0, 1};
  auto rep = robustness::evaluate_corruptions(m, x, y, {"feature_noise", "feature_dropout"}, {1, 5}, 3);
  CHECK(rep.clean_accuracy == 1.0);
  REQUIRE(rep.scores.size() == 4);
  CHECK(rep.mean_corruption_accuracy() <= 1.0);
  // Dropout sets cells to the column mean (3, 3): probability 0.5 at severity 5.
  auto d = robustness::corrupt(x, "feature_dropout", 5, 9, {3, 3}, {1, 1});
  for (int64_t k = 0; k < d.numel(); ++k) CHECK((d.f32()[k] == x.f32()[k] || d.f32()[k] == 3.f));
  CHECK_THROWS_WITH(robustness::corrupt(x, "gaussian_blur", 1, 0), Catch::Contains("data must be [N,C,H,W]"));
  CHECK_THROWS_WITH(robustness::corrupt(x, "fog", 1, 0), Catch::Contains("unknown corruption 'fog'"));
  CHECK_THROWS_WITH(robustness::corrupt(x, "feature_noise", 6, 0, {0, 0}, {1, 1}), Catch::Contains("severity must be 1..5"));
}

TEST_CASE("robustness: jpeg_compression equals Pillow's JPEG round trip (CIFAR-10-C qualities)", "[robustness][corrupt]") {
  // Goldens: tools/robustness_jpeg_goldens.py (Pillow with its own libjpeg-turbo; mlaudit uses
  // Debian's). Both run libjpeg's baseline ISLOW coder with the standard tables, so the decoded
  // 8-bit pixels should agree exactly; allow one grey level on 0.5% of pixels for codec builds
  // that round the IDCT differently, and never more than one level.
  for (const char* kind : {"gray", "rgb"}) {
    INFO("images " << kind);
    engine::Tensor in = datasets::read_npy(test::source_path(std::string("tests/fixtures/robustness/jpeg_") + kind + "_in.npy"));
    engine::Tensor want = datasets::read_npy(test::source_path(std::string("tests/fixtures/robustness/jpeg_") + kind + "_out.npy"));
    const int64_t per = in.numel();
    for (int sev = 1; sev <= 5; ++sev) {
      INFO("severity " << sev);
      engine::Tensor got = robustness::corrupt(in, "jpeg_compression", sev, 0);
      REQUIRE(got.shape() == in.shape());
      int64_t off = 0;
      double change = 0;
      for (int64_t k = 0; k < per; ++k) {
        const double d = std::fabs(double(got.f32()[k]) - double(want.f32()[(sev - 1) * per + k]));
        REQUIRE(d <= 1.0 / 255 + 1e-6);
        off += d > 1e-6;
        change += std::fabs(double(got.f32()[k]) - double(in.f32()[k]));
      }
      CHECK(off <= per / 200);
      CHECK(change > 0);  // the codec really changed the image
    }
  }
  // Deterministic and seed-independent (no randomness in a JPEG round trip).
  engine::Tensor x = pattern();
  REQUIRE(robustness::corrupt(x, "jpeg_compression", 3, 1).to_doubles() == robustness::corrupt(x, "jpeg_compression", 3, 2).to_doubles());
}
