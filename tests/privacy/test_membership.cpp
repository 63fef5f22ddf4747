// Membership inference: ROC metrics against scikit-learn goldens, closed-form scores,
// the overfit model's leak, the same-distribution null and bad-input errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analytic_models.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/privacy/membership.h"
#include "test_util.h"

using namespace mlaudit;
using mlaudit::test::close;
using mlaudit::test::source_path;

namespace {

nlohmann::json goldens() {
  std::ifstream f(source_path("tests/fixtures/privacy/membership_goldens.json"));
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

struct OverfitData {
  engine::Tensor xm, xn;
  std::vector<int64_t> ym, yn;
};

OverfitData overfit_data() {
  OverfitData d;
  d.xm = datasets::read_npy_float(source_path("datasets/privacy/overfit_members_x.npy"));
  d.ym = datasets::read_npy_labels(source_path("datasets/privacy/overfit_members_y.npy")).to_int64s();
  d.xn = datasets::read_npy_float(source_path("datasets/privacy/overfit_nonmembers_x.npy"));
  d.yn = datasets::read_npy_labels(source_path("datasets/privacy/overfit_nonmembers_y.npy")).to_int64s();
  return d;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

}  // namespace

TEST_CASE("privacy: ROC metrics match scikit-learn on committed scores", "[privacy][membership]") {
  const auto g = goldens();
  for (const auto& [name, a] : g["attacks"].items()) {
    INFO("attack " << name);
    const auto sm = a["member_scores"].get<std::vector<double>>();
    const auto sn = a["non_member_scores"].get<std::vector<double>>();
    const bool per_class = a.contains("balanced_accuracy_per_class");
    const auto r = per_class ? privacy::evaluate_scores(name, sm, sn, g["member_labels"].get<std::vector<int64_t>>(),
                                                        g["non_member_labels"].get<std::vector<int64_t>>())
                             : privacy::evaluate_scores(name, sm, sn);
    // The scores are the same doubles, so only summation order differs: 1e-9 absolute
    // (the bar) is far above double rounding on 10^3 terms.
    CHECK(close(r.auc, a["auc"].get<double>(), 0, 1e-9));
    CHECK(close(r.tpr_at_fpr_0_001, a["tpr_at_fpr_0.001"].get<double>(), 0, 1e-9));
    CHECK(close(r.tpr_at_fpr_0_01, a["tpr_at_fpr_0.01"].get<double>(), 0, 1e-9));
    CHECK(close(r.balanced_accuracy_global, a["balanced_accuracy_global"].get<double>(), 0, 1e-9));
    if (per_class) {
      const double expect = std::max(a["balanced_accuracy_global"].get<double>(), a["balanced_accuracy_per_class"].get<double>());
      CHECK(close(r.balanced_accuracy, expect, 0, 1e-9));
      // Per-class thresholds include the global one as a special case, so they never lose.
      CHECK(a["balanced_accuracy_per_class"].get<double>() >= a["balanced_accuracy_global"].get<double>() - 1e-12);
    }
    // The thinned curve keeps both end points and the area.
    REQUIRE(r.roc.fpr.size() >= 2);
    CHECK(r.roc.fpr.front() == 0.0);
    CHECK(r.roc.tpr.back() == 1.0);
    CHECK(close(privacy::roc_auc(r.roc), r.auc, 0, 1e-12));
  }
}

TEST_CASE("privacy: ROC and AUC on a hand-worked example with a tie", "[privacy][membership]") {
  // members 0.9, 0.8; non-members 0.8, 0.1. Pairs (m > n): (0.9,0.8) 1, (0.9,0.1) 1,
  // (0.8,0.8) 1/2, (0.8,0.1) 1 -> AUC = 3.5 / 4.
  const auto roc = privacy::roc_curve({0.9, 0.8, 0.8, 0.1}, {1, 1, 0, 0});
  REQUIRE(roc.fpr.size() == 4);  // +inf, 0.9, 0.8 (tie shares one point), 0.1
  CHECK(roc.fpr == std::vector<double>{0, 0, 0.5, 1});
  CHECK(roc.tpr == std::vector<double>{0, 0.5, 1, 1});
  CHECK(privacy::roc_auc(roc) == 0.875);
  CHECK(privacy::tpr_at_fpr(roc, 0.001) == 0.5);
  CHECK(privacy::tpr_at_fpr(roc, 0.5) == 1.0);
  CHECK(privacy::best_balanced_accuracy(roc) == 0.75);  // threshold 0.9 or 0.8: (0.5+1)/2, (1+0.5)/2
  // Per class: class 0 = {0.9 m, 0.8 n}, class 1 = {0.8 m, 0.1 n}: each separable,
  // 1/2 + 1/2 (1/2 + 1/2) = 1.
  CHECK(privacy::best_balanced_accuracy_per_class({0.9, 0.8, 0.8, 0.1}, {1, 0, 1, 0}, {0, 0, 1, 1}) == 1.0);
}

TEST_CASE("privacy: attack scores have their closed forms", "[privacy][membership]") {
  // logits (2, 0, 0), label 0: p0 = e^2 / (e^2 + 2), p1 = p2 = 1 / (e^2 + 2).
  const engine::Tensor z = engine::Tensor::from_floats({1, 3}, {2.f, 0.f, 0.f});
  const double e2 = std::exp(2.0), p0 = e2 / (e2 + 2), p1 = 1 / (e2 + 2);
  // Double arithmetic on exact float inputs: agreement to a few ulps, 1e-12 relative.
  CHECK(close(privacy::loss_scores(z, {0})[0], std::log(p0), 1e-12, 0));
  CHECK(close(privacy::confidence_scores(z, {0})[0], p0, 1e-12, 0));
  // Mentr = -(1-p0) log p0 - 2 p1 log(1-p1) (Song & Mittal 2021, Eq. 5).
  const double mentr = -(1 - p0) * std::log(p0) - 2 * p1 * std::log(1 - p1);
  CHECK(close(privacy::modified_entropy_scores(z, {0})[0], -mentr, 1e-12, 0));
  // phi = log(p0 / (1 - p0)) = 2 - log 2.
  CHECK(close(privacy::logit_scaled_confidence(z, {0})[0], 2 - std::log(2.0), 1e-12, 0));
  // Label 1: phi = 0 - logsumexp(2, 0).
  CHECK(close(privacy::logit_scaled_confidence(z, {1})[0], -std::log(e2 + 1), 1e-12, 0));
  // Saturated logits: p_y rounds to 1 in double, yet phi and Mentr stay finite and ordered.
  const engine::Tensor big = engine::Tensor::from_floats({2, 2}, {60.f, 0.f, 50.f, 0.f});
  const auto phi = privacy::logit_scaled_confidence(big, {0, 0});
  CHECK(close(phi[0], 60.0, 1e-12, 0));
  CHECK(phi[0] > phi[1]);
  const auto me = privacy::modified_entropy_scores(big, {0, 0});
  CHECK(std::isfinite(me[0]));
  CHECK(me[0] > me[1]);
}

TEST_CASE("privacy: offline LiRA is the standardised logit-scaled confidence", "[privacy][membership]") {
  // Two targets, three reference models. Per-example means 1 and 0, variances (ddof 1) 1 and 4.
  const std::vector<std::vector<double>> ref = {{0, -2}, {1, 0}, {2, 2}};
  const auto per = privacy::lira_offline_scores({3, 1}, ref, {0});
  CHECK(close(per[0], 2.0, 1e-12, 0));   // (3 - 1) / 1
  CHECK(close(per[1], 0.5, 1e-12, 0));   // (1 - 0) / 2
  const auto glob = privacy::lira_offline_scores({3, 1}, ref, {1});
  const double s = std::sqrt(2.5);       // mean of the variances 1 and 4
  CHECK(close(glob[0], 2 / s, 1e-12, 0));
  CHECK(close(glob[1], 1 / s, 1e-12, 0));
  CHECK_THAT(error_of([&] { privacy::lira_offline_scores({1}, {{0}}); }),
             Catch::Contains("at least 2 reference models"));
}

TEST_CASE("privacy: label-only scores are boundary distances, 0 when misclassified", "[privacy][membership]") {
  // Binary linear classifier z1 - z0 = 2 x0 - 1: boundary x0 = 1/2, distance |x0 - 1/2|.
  privacy::test::LinearModel m({2}, {{0.f, 0.f}, {2.f, 0.f}}, {0.f, -1.f});
  const engine::Tensor x = engine::Tensor::from_floats({3, 2}, {0.9f, 0.3f, 0.1f, 0.0f, 0.8f, 0.5f});
  privacy::BoundaryDistanceFn dist = [](const engine::Tensor& xs, const std::vector<int64_t>&) {
    std::vector<double> d;
    for (int64_t i = 0; i < xs.dim(0); ++i) d.push_back(std::fabs(double(xs.f32()[i * 2]) - 0.5));
    return d;
  };
  // Labels: 1 (correct, d 0.4), 1 (wrong: predicted 0 -> 0), 1 (correct, d 0.3).
  const auto s = privacy::label_only_scores(m, x, {1, 1, 1}, dist);
  REQUIRE(s.size() == 3);
  CHECK(close(s[0], 0.4, 0, 1e-6));  // float inputs: 1e-6 covers float(0.9) - 0.5
  CHECK(s[1] == 0.0);
  CHECK(close(s[2], 0.3, 0, 1e-6));
  CHECK_THAT(error_of([&] { privacy::label_only_scores(m, x, {1, 1, 1}, {}); }),
             Catch::Contains("boundary-distance function"));
}

TEST_CASE("privacy: a slice's scores are the whole run's, label-only on the whole run's blocks", "[privacy][membership]") {
  // Samples are the members then the non-members; every slice of 3 and 7 cuts across the sets.
  const auto d = overfit_data();
  auto target = engine::Session::load(source_path("models/privacy/overfit_mlp.onnx"));
  std::vector<std::unique_ptr<engine::Session>> refs;
  privacy::MembershipOptions opts;
  opts.attacks = {"loss", "confidence", "entropy", "lira", "label-only"};
  for (int r = 0; r < 2; ++r) {
    refs.push_back(engine::Session::load(source_path("models/privacy/overfit_refs/ref_" + std::to_string(r) + ".onnx")));
    opts.reference_models.push_back(refs.back().get());
  }
  // A distance that depends on the sample's position in its block of 32 in the call, as a conv
  // model's rounding depends on the block: slices equal the whole run only on its blocks.
  opts.boundary_distance = [](const engine::Tensor& xs, const std::vector<int64_t>&) {
    const int64_t f = xs.numel() / xs.dim(0);
    std::vector<double> out;
    for (int64_t i = 0; i < xs.dim(0); ++i) out.push_back(std::fabs(double(xs.f32()[i * f])) + 1e-3 * double(i % 32));
    return out;
  };
  opts.distance_batch = 32;
  const auto whole = privacy::membership_scores(*target, d.xm, d.ym, d.xn, d.yn, opts);
  const int64_t total = int64_t(d.ym.size() + d.yn.size());
  const auto reports = privacy::run_membership_inference(*target, d.xm, d.ym, d.xn, d.yn, opts);
  for (size_t k = 0; k < reports.size(); ++k) {
    CHECK(reports[k].scores == whole[k]);
    CHECK(privacy::evaluate_attack(opts.attacks[k], whole[k], d.ym, d.yn).auc == reports[k].auc);
  }
  for (int64_t n : {3, 7}) {
    std::vector<std::vector<double>> joined(opts.attacks.size());
    for (int64_t i = 0; i < n; ++i) {
      const auto part = privacy::membership_scores(*target, d.xm, d.ym, d.xn, d.yn, opts, total * i / n, total * (i + 1) / n);
      for (size_t k = 0; k < part.size(); ++k) {
        REQUIRE(int64_t(part[k].size()) == total * (i + 1) / n - total * i / n);
        joined[k].insert(joined[k].end(), part[k].begin(), part[k].end());
      }
    }
    for (size_t k = 0; k < joined.size(); ++k) {
      INFO(n << " slices, attack " << opts.attacks[k]);
      CHECK(joined[k] == whole[k]);
    }
  }
  CHECK_THAT(error_of([&] { privacy::membership_scores(*target, d.xm, d.ym, d.xn, d.yn, opts, 5, total + 1); }),
             Catch::Contains("sample range [5, 751) is outside the 750 members and non-members"));
}

TEST_CASE("privacy: engine scores on the overfit model match onnxruntime goldens", "[privacy][membership]") {
  const auto g = goldens();
  const auto d = overfit_data();
  auto target = engine::Session::load(source_path("models/privacy/overfit_mlp.onnx"));
  std::vector<std::unique_ptr<engine::Session>> refs;
  privacy::MembershipOptions opts;
  opts.attacks = {"loss", "confidence", "entropy", "lira"};
  for (int r = 0; r < 4; ++r) {
    refs.push_back(engine::Session::load(source_path("models/privacy/overfit_refs/ref_" + std::to_string(r) + ".onnx")));
    opts.reference_models.push_back(refs.back().get());
  }
  const auto reports = privacy::run_membership_inference(*target, d.xm, d.ym, d.xn, d.yn, opts);
  REQUIRE(reports.size() == 4);
  for (const auto& r : reports) {
    INFO("attack " << r.name);
    const auto& a = g["attacks"][r.name];
    auto expect = a["member_scores"].get<std::vector<double>>();
    const auto en = a["non_member_scores"].get<std::vector<double>>();
    expect.insert(expect.end(), en.begin(), en.end());
    REQUIRE(r.scores.size() == expect.size());
    // Engine and onnxruntime logits are float32 GEMMs with different summation order
    // (~1e-6 relative); scores are smooth in the logits with slope <= 2 (LiRA: <= 2/sigma,
    // sigma ~ 1), so 2e-4 absolute + 1e-4 relative bounds the difference.
    for (size_t i = 0; i < expect.size(); ++i) {
      INFO("sample " << i);
      CHECK(close(r.scores[i], expect[i], 1e-4, 2e-4));
    }
    // AUC moves only where two scores closer than the error above swap ranks: 1e-3.
    CHECK(close(r.auc, a["auc"].get<double>(), 0, 1e-3));
  }
}

TEST_CASE("privacy: overfit model leaks membership, a same-distribution split does not", "[privacy][membership]") {
  const auto d = overfit_data();
  auto target = engine::Session::load(source_path("models/privacy/overfit_mlp.onnx"));
  privacy::MembershipOptions opts;
  opts.attacks = {"loss", "confidence", "entropy"};
  const auto leak = privacy::run_membership_inference(*target, d.xm, d.ym, d.xn, d.yn, opts);
  for (const auto& r : leak) {
    INFO("attack " << r.name << " auc " << r.auc << " bal.acc " << r.balanced_accuracy);
    // Train accuracy 1.0 vs held-out 0.73 (goldens: AUC ~0.70, balanced accuracy ~0.76).
    // Under H0 the AUC of 250 vs 500 has sd sqrt(751/(12*250*500)) = 0.022, so 0.65 is
    // 6.7 sd above chance: "well above 0.5" with room for engine-vs-ORT rank swaps.
    CHECK(r.auc > 0.65);
    CHECK(r.balanced_accuracy > 0.65);
  }
  // Null: "members" and "non-members" are two halves of the never-trained-on set. Under
  // H0 the AUC of 250 vs 250 has sd sqrt((n1+n2+1)/(12 n1 n2)) = 0.0259 (Mann-Whitney);
  // accept |AUC - 0.5| < 4 sd = 0.104.
  const int64_t h = d.xn.dim(0) / 2;
  std::vector<int64_t> ya(d.yn.begin(), d.yn.begin() + h), yb(d.yn.begin() + h, d.yn.end());
  const auto null = privacy::run_membership_inference(*target, d.xn.slice_rows(0, h), ya,
                                                      d.xn.slice_rows(h, d.xn.dim(0)), yb, opts);
  for (const auto& r : null) {
    INFO("null attack " << r.name << " auc " << r.auc);
    CHECK(std::fabs(r.auc - 0.5) < 0.104);
  }
}

TEST_CASE("privacy: bad membership input names the problem", "[privacy][membership][errors]") {
  privacy::test::LinearModel m({2}, {{1.f, 0.f}, {0.f, 1.f}}, {0.f, 0.f});
  const engine::Tensor x = engine::Tensor::from_floats({2, 2}, {1, 0, 0, 1});
  privacy::MembershipOptions opts;
  opts.attacks = {"loss", "shadow"};
  CHECK_THAT(error_of([&] { privacy::run_membership_inference(m, x, {0, 1}, x, {0, 1}, opts); }),
             Catch::Contains("unknown membership attack 'shadow'"));
  opts.attacks = {"loss"};
  CHECK_THAT(error_of([&] { privacy::run_membership_inference(m, x, {0}, x, {0, 1}, opts); }),
             Catch::Contains("1 member labels for 2 members"));
  CHECK_THAT(error_of([&] { privacy::run_membership_inference(m, x, {0, 5}, x, {0, 1}, opts); }),
             Catch::Contains("label 5 of sample 1 is outside [0, 2)"));
  const engine::Tensor x3 = engine::Tensor::from_floats({1, 3}, {1, 0, 0});
  CHECK_THAT(error_of([&] { privacy::run_membership_inference(m, x, {0, 1}, x3, {0}, opts); }),
             Catch::Contains("differ in sample shape"));
  opts.attacks = {"lira"};
  CHECK_THAT(error_of([&] { privacy::run_membership_inference(m, x, {0, 1}, x, {0, 1}, opts); }),
             Catch::Contains("attack 'lira' needs at least 2 reference models, got 0"));
  CHECK_THAT(error_of([&] { privacy::roc_curve({0.1, NAN}, {1, 0}); }), Catch::Contains("attack score 1 is NaN"));
  CHECK_THAT(error_of([&] { privacy::roc_curve({0.1, 0.2}, {1, 1}); }),
             Catch::Contains("at least one member and one non-member"));
}
