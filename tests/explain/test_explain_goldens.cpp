// Goldens from Captum 0.9 and shap 0.51 (tools/explain_goldens.py) on the bundled ONNX models.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"
#include "golden_util.h"
#include "test_util.h"

using namespace mlaudit;
using namespace mlaudit::explain;
using mlaudit::test::explain_fixture;
using mlaudit::test::max_scaled_error;
using mlaudit::test::source_path;

namespace {

bool have_models() {
  return std::filesystem::exists(source_path("models/fmnist_cnn.onnx")) &&
         std::filesystem::exists(source_path("models/credit_mlp.onnx"));
}

struct Fmnist {
  std::unique_ptr<engine::Session> model;
  Tensor x;
  std::vector<int64_t> targets;
};

Fmnist load_fmnist() {
  Fmnist f;
  f.model = engine::Session::load(source_path("models/fmnist_cnn.onnx"));
  f.x = datasets::read_npy_float(source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 4);
  // goldens.json: fmnist_targets = predicted classes in PyTorch
  f.targets = resolve_targets(*f.model, f.x, parse_target("predicted"), nullptr);
  return f;
}

}  // namespace

TEST_CASE("goldens: fmnist CNN predictions match the PyTorch targets", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  CHECK(f.targets == std::vector<int64_t>{9, 2, 1, 1});
}

TEST_CASE("goldens: saliency and SmoothGrad (fixed noise) match Captum on the CNN", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  // One backward pass in float32 through conv/pool/gemm: engine and PyTorch agree to ~1e-6 of scale.
  CHECK(max_scaled_error(saliency(*f.model, f.x, f.targets), datasets::read_npy_float(explain_fixture("saliency_fmnist.npy"))) <
        1e-5);
  Tensor noise = datasets::read_npy_float(explain_fixture("sg_noise.npy"));
  SmoothGradOptions o;
  o.noise = &noise;
  o.batch_rows = 5;  // deliberately not a divisor of the 32 noisy rows
  // Mean of 8 gradients at noisy points; noisy inputs sit near ReLU/max-pool kinks where float
  // rounding may route a gradient differently, so allow 1e-4 of scale.
  CHECK(max_scaled_error(smoothgrad(*f.model, f.x, f.targets, o),
                         datasets::read_npy_float(explain_fixture("smoothgrad_fmnist.npy"))) < 1e-4);
  o.squared = true;
  CHECK(max_scaled_error(smoothgrad(*f.model, f.x, f.targets, o),
                         datasets::read_npy_float(explain_fixture("smoothgrad_sq_fmnist.npy"))) < 1e-4);
}

TEST_CASE("goldens: integrated gradients match Captum on both bundled models", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  auto r = integrated_gradients(*f.model, f.x, Tensor(f.x.shape()), f.targets);
  // 50 path points; at each, a ReLU or max-pool decision within float rounding of its kink may
  // flip between engines, moving one point's weighted gradient: measured 7e-4 of scale, bound 3e-3.
  CHECK(max_scaled_error(r.attributions, datasets::read_npy_float(explain_fixture("ig_fmnist.npy"))) < 3e-3);
  for (double gap : r.relative_gap) CHECK(gap < 0.05);  // Captum's deltas are <= 0.035 absolute here

  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 6);
  Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  IgOptions o;
  o.rule = IgRule::RiemannMiddle;
  o.steps = 20;
  auto rc = integrated_gradients(*mlp, cx, make_baseline("mean", cx, &bg), std::vector<int64_t>(6, 1), o);
  // Small MLP, smooth in the standardised features: float32 agreement ~1e-6 of scale.
  CHECK(max_scaled_error(rc.attributions, datasets::read_npy_float(explain_fixture("ig_credit.npy"))) < 1e-4);
}

TEST_CASE("goldens: occlusion matches Captum on both bundled models", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  OcclusionOptions o;
  o.window = {1, 4, 4};
  o.stride = {1, 2, 2};
  // Differences of two forward passes in float32: ~1e-6 of scale.
  CHECK(max_scaled_error(occlusion(*f.model, f.x, f.targets, o), datasets::read_npy_float(explain_fixture("occlusion_fmnist.npy"))) <
        1e-4);
  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 6);
  OcclusionOptions oc;
  oc.window = {1};
  CHECK(max_scaled_error(occlusion(*mlp, cx, std::vector<int64_t>(6, 1), oc),
                         datasets::read_npy_float(explain_fixture("occlusion_credit.npy"))) < 1e-4);
}

TEST_CASE("goldens: KernelSHAP matches shap.KernelExplainer (exact mode) on the credit MLP", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 6);
  Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  auto r = kernel_shap(*mlp, cx, bg, std::vector<int64_t>(6, 1));
  Tensor want = datasets::read_npy(explain_fixture("kernelshap_credit.npy"));
  // Same 126 coalitions and weights; only float32 model outputs differ (~1e-7 relative), and the
  // 6x6 weighted least squares is well conditioned: 1e-5 of scale.
  CHECK(max_scaled_error(r.attributions, want) < 1e-5);
  for (int i = 0; i < 6; ++i) {
    CHECK(r.exact[i]);
    // goldens.json kernelshap_expected_value = 0.7208885957300664 (float32 model, float64 mean)
    CHECK(mlaudit::test::close(r.expected_value[i], 0.7208885957300664, 1e-5, 0));
  }
}

namespace {
// Forwards to a model without overriding forward_mixtures: KernelSHAP then takes Model's
// default (rows built, forward() called) instead of the dense chain's pattern tables.
struct PlainForward : engine::Model {
  const engine::Model& m;
  explicit PlainForward(const engine::Model& inner) : m(inner) {}
  engine::Shape input_shape() const override { return m.input_shape(); }
  Tensor forward(const Tensor& x) const override { return m.forward(x); }
  Tensor input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* out) const override {
    return m.input_gradient(x, seed, out);
  }
};
}  // namespace

TEST_CASE("goldens: KernelSHAP through the dense chain's pattern tables equals it through built rows", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  REQUIRE(mlp->fused());
  PlainForward plain(*mlp);
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 12);
  Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  const std::vector<int64_t> t(12, 1);
  // Float rounding of the model values only (first-layer sums in another order): 1e-5 of scale.
  CHECK(max_scaled_error(kernel_shap(*mlp, cx, bg, t).attributions, kernel_shap(plain, cx, bg, t).attributions) < 1e-5);
  // --output softmax: SoftmaxModel's mixtures (the chain's, then softmax) against its forward().
  SoftmaxModel soft(*mlp);
  PlainForward soft_plain(soft);
  CHECK(max_scaled_error(kernel_shap(soft, cx, bg, t).attributions, kernel_shap(soft_plain, cx, bg, t).attributions) <
        1e-5);
}

TEST_CASE("goldens: batch size never changes IG or KernelSHAP on the real models", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  Tensor x2 = f.x.slice_rows(0, 2);
  std::vector<int64_t> t2(f.targets.begin(), f.targets.begin() + 2);
  IgOptions a, b;
  a.steps = b.steps = 16;
  a.batch_rows = 7;  // chunks straddle the two samples' paths
  b.batch_rows = 64;
  auto ra = integrated_gradients(*f.model, x2, Tensor(x2.shape()), t2, a);
  auto rb = integrated_gradients(*f.model, x2, Tensor(x2.shape()), t2, b);
  // Kernels may block differently per batch size: float summation noise only (1e-5 of scale).
  CHECK(max_scaled_error(ra.attributions, rb.attributions) < 1e-5);
  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 2);
  Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  KernelShapOptions s1, s2;
  s1.batch_rows = 1000;  // 10 coalitions x 100 background rows per call, the last call partial
  s2.batch_rows = 1 << 20;
  CHECK(max_scaled_error(kernel_shap(*mlp, cx, bg, {1, 0}, s1).attributions,
                         kernel_shap(*mlp, cx, bg, {1, 0}, s2).attributions) < 1e-5);
}

TEST_CASE("randomizing the CNN's last layer changes gradient explanations", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto f = load_fmnist();
  std::string layer;
  engine::Session randomized(randomize_last_layer(f.model->graph(), 1, &layer));
  CHECK(layer.find("Gemm") != std::string::npos);
  // The original session is untouched (initializers are replaced, never written through).
  CHECK(max_scaled_error(saliency(*f.model, f.x, f.targets),
                         datasets::read_npy_float(explain_fixture("saliency_fmnist.npy"))) < 1e-5);
  auto rho = randomization_correlation(gradient(*f.model, f.x, f.targets), gradient(randomized, f.x, f.targets));
  // Adebayo et al. 2018 report rank correlations well below 1 for gradients after top-layer randomization.
  for (double r : rho) CHECK(r < 0.95);
}

TEST_CASE("goldens: LIME matches lime.LimeTabularExplainer given the same normal draws", "[explain][golden]") {
  if (!have_models()) {
    WARN("bundled models absent: skipped");
    return;
  }
  auto mlp = engine::Session::load(source_path("models/credit_mlp.onnx"));
  Tensor cx = datasets::read_npy_float(source_path("datasets/demo/credit_x.npy")).slice_rows(0, 3);
  Tensor bg = datasets::read_npy_float(source_path("datasets/demo/credit_background.npy"));
  Tensor noise = datasets::read_npy_float(explain_fixture("lime_noise.npy"));
  LimeOptions o;
  o.noise = &noise;
  auto r = lime(*mlp, cx, bg, std::vector<int64_t>(3, 1), o);
  // Same perturbations, kernel and Ridge(alpha=1): only float32 model outputs differ (~1e-7
  // relative), amplified by the 7x7 ridge solve to well under 1e-4 of the coefficient scale.
  CHECK(max_scaled_error(r.attributions, datasets::read_npy(explain_fixture("lime_credit.npy"))) < 1e-4);
  // goldens.json lime_r2 / lime_local_pred
  const double r2[3] = {0.9652229196983199, 0.9656893799488068, 0.9643222768419175};
  const double pred[3] = {1.7185220746940235, 0.4200694124963467, -0.3200222077269411};
  for (int i = 0; i < 3; ++i) {
    CHECK(mlaudit::test::close(r.r2[i], r2[i], 0, 1e-5));
    CHECK(mlaudit::test::close(r.local_pred[i], pred[i], 0, 1e-4));
  }
  Tensor bad({5, 3});
  o.noise = &bad;
  CHECK_THROWS_WITH(lime(*mlp, cx, bg, std::vector<int64_t>(3, 1), o), Catch::Contains("fixed noise must be [samples, 7]"));
}
