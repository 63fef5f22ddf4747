// Randomized smoothing CERTIFY / PREDICT (Cohen, Rosenfeld, Kolter 2019, Sec. 3.2 and core.py).
#include "mlaudit/robustness/smoothing.h"

#include <algorithm>
#include <boost/math/distributions/binomial.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/special_functions/beta.hpp>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <random>

#include "common.h"
#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/random.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::robustness {

double clopper_pearson_lower(int64_t k, int64_t n, double alpha) {
  // Lower end of the one-sided Clopper-Pearson interval: B(alpha; k, n - k + 1)
  // (equals statsmodels proportion_confint(k, n, alpha=2*alpha, method="beta")[0]).
  if (n <= 0 || k < 0 || k > n) throw InputError("robustness", fmt::format("Clopper-Pearson bound needs 0 <= k <= n, got k={} n={}", k, n));
  if (k == 0) return 0.0;
  return boost::math::ibeta_inv(double(k), double(n - k + 1), alpha);
}

double binomial_test_two_sided(int64_t k, int64_t n, double p) {
  // scipy.stats.binomtest(..., alternative="two-sided"): sum of the probabilities of
  // all outcomes no more likely than k (relative tolerance 1 + 1e-7 as scipy uses).
  if (n <= 0) return 1.0;
  boost::math::binomial_distribution<double> b(double(n), p);
  const double pk = boost::math::pdf(b, double(k));
  const double rerr = 1 + 1e-7;
  double total = 0;
  // Probabilities are unimodal: walk from both tails while they are <= pk * rerr.
  for (int64_t i = 0; i <= n; ++i) {
    const double pi = boost::math::pdf(b, double(i));
    if (pi <= pk * rerr) total += pi;
    else break;
  }
  for (int64_t i = n; i >= 0; --i) {
    const double pi = boost::math::pdf(b, double(i));
    if (pi <= pk * rerr) total += pi;
    else break;
  }
  // When every outcome qualifies (k at the mode of a flat distribution) both walks covered all.
  return std::min(1.0, total > 1.0 + 1e-12 ? 1.0 : total);
}

double normal_quantile(double p) { return boost::math::quantile(boost::math::normal_distribution<double>(0, 1), p); }

namespace {

// Noisy copy number `copy` of x: x + sigma * N(0, I), its normals drawn by Box-Muller from
// a stream seeded by (seed, copy) alone, so the noise does not depend on the batch size or
// on how many threads fill the batch.
void fill_noisy_copy(float* out, const float* x0, int64_t d, double sigma, uint64_t seed, uint64_t copy) {
  uint64_t mix = seed ^ (copy * 0xD1B54A32D192ED03ULL);
  engine::Xoshiro256 rng(engine::splitmix64(mix));
  for (int64_t k = 0; k < d; k += 2) {
    const double u1 = rng.uniform_open(), u2 = rng.uniform_open();
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 6.283185307179586 * u2;
    out[k] = float(x0[k] + sigma * r * std::cos(t));
    if (k + 1 < d) out[k + 1] = float(x0[k + 1] + sigma * r * std::sin(t));
  }
}

}  // namespace

std::vector<int64_t> sample_noise_counts(const engine::Model& model, const engine::Tensor& x, int64_t num,
                                         double sigma, int batch, uint64_t seed) {
  const int64_t d = x.numel();
  std::vector<int64_t> counts;
  engine::Shape shape = x.shape();
  const float* x0 = x.f32();
  shape[0] = std::min<int64_t>(batch, num);
  engine::Tensor noisy(shape);  // reused by every full batch
  for (int64_t done = 0; done < num;) {
    const int64_t b = std::min<int64_t>(batch, num - done);
    if (b != noisy.dim(0)) {
      shape[0] = b;
      noisy = engine::Tensor(shape);
    }
    float* p = noisy.f32();
    // One independent stream per noisy copy: filled in parallel, identical for any thread count.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < b; ++i) fill_noisy_copy(p + i * d, x0, d, sigma, seed, uint64_t(done + i));
    engine::Tensor logits = model.forward(noisy);
    if (logits.rank() != 2 || logits.dim(0) != b)
      throw InputError("robustness", "model output must be logits [N,C], got " + engine::shape_str(logits.shape()));
    if (counts.empty()) counts.assign(size_t(logits.dim(1)), 0);
    for (int64_t i = 0; i < b; ++i) counts[size_t(detail::row_argmax(logits, i))] += 1;
    done += b;
  }
  return counts;
}

namespace {

// CERTIFY's decision from the selection counts c0 (N0 draws) and estimation counts c1 (N draws).
CertifyRecord certify_from_counts(const std::vector<int64_t>& c0, const std::vector<int64_t>& c1, const SmoothingConfig& cfg) {
  CertifyRecord rec;
  const int64_t ca = std::max_element(c0.begin(), c0.end()) - c0.begin();
  rec.count_a = c1[size_t(ca)];
  rec.pa_lower = clopper_pearson_lower(rec.count_a, cfg.n, cfg.alpha);
  if (rec.pa_lower < 0.5) {
    rec.prediction = -1;
    rec.radius = 0;
  } else {
    rec.prediction = ca;
    rec.radius = cfg.sigma * normal_quantile(rec.pa_lower);  // R = sigma * PhiInv(pA_lower) (Thm. 1, pB = 1 - pA)
  }
  return rec;
}

}  // namespace

CertifyRecord certify(const engine::Model& model, const engine::Tensor& x, const SmoothingConfig& cfg,
                      uint64_t sample_seed) {
  const auto t0 = std::chrono::steady_clock::now();
  // Selection and estimation use independent noise streams.
  auto c0 = sample_noise_counts(model, x, cfg.n0, cfg.sigma, cfg.batch, sample_seed * 2 + 1);
  auto c1 = sample_noise_counts(model, x, cfg.n, cfg.sigma, cfg.batch, sample_seed * 2 + 2);
  CertifyRecord rec = certify_from_counts(c0, c1, cfg);
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rec;
}

int64_t predict(const engine::Model& model, const engine::Tensor& x, const SmoothingConfig& cfg, uint64_t sample_seed) {
  auto c = sample_noise_counts(model, x, cfg.n, cfg.sigma, cfg.batch, sample_seed * 2 + 3);
  std::vector<int64_t> order(c.size());
  for (size_t i = 0; i < c.size(); ++i) order[i] = int64_t(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return c[size_t(a)] > c[size_t(b)]; });
  const int64_t na = c[size_t(order[0])], nb = c.size() > 1 ? c[size_t(order[1])] : 0;
  if (binomial_test_two_sided(na, na + nb, 0.5) > cfg.alpha) return -1;
  return order[0];
}

static void check_config(const SmoothingConfig& cfg) {
  if (!(cfg.sigma > 0) || !std::isfinite(cfg.sigma)) throw ParameterError("robustness", "sigma", fmt::format(" must be > 0, got {}", cfg.sigma));
  if (cfg.n0 < 1) throw ParameterError("robustness", "n0", " must be >= 1");
  if (cfg.n < 1) throw ParameterError("robustness", "n", " must be >= 1");
  if (!(cfg.alpha > 0 && cfg.alpha < 1)) throw ParameterError("robustness", "alpha", fmt::format(" must be in (0,1), got {}", cfg.alpha));
  if (cfg.batch < 1) throw ParameterError("robustness", "batch", " must be >= 1");
}

std::vector<CertifyRecord> certify_dataset(const engine::Model& model, const engine::Tensor& x_in,
                                           const std::vector<int64_t>& labels, const SmoothingConfig& cfg) {
  check_config(cfg);
  if (x_in.rank() < 2) throw InputError("robustness", "input data must be [N, ...] with a batch axis, got " + engine::shape_str(x_in.shape()));
  const engine::Tensor x = x_in.to(engine::DType::Float32);
  if (int64_t(labels.size()) != x.dim(0))
    throw InputError("robustness", fmt::format("labels have {} entries but the data has {} samples", labels.size(), x.dim(0)));
  std::vector<CertifyRecord> out;
  // Fused device sampler (robustness::device_smoothing_counts: noise by counter-based Philox in the sampling kernel, forward and
  // argmax histogram on the GPU) when the model is a Session on CUDA: all samples in one call
  // for N0 and one for N. Same CERTIFY decision; other noise draws than the host sampler.
  if (const engine::Session* session = model.device_resident()) {
    const auto t0 = std::chrono::steady_clock::now();
    auto c0 = robustness::device_smoothing_counts(*session, x, float(cfg.sigma), cfg.n0, cfg.batch, cfg.seed * 2 + 1);
    auto c1 = robustness::device_smoothing_counts(*session, x, float(cfg.sigma), cfg.n, cfg.batch, cfg.seed * 2 + 2);
    if (c0 && c1) {
      const double per = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(std::max<int64_t>(x.dim(0), 1));
      const int64_t k = c0->dim(1);
      for (int64_t i = 0; i < x.dim(0); ++i) {
        std::vector<int64_t> s0(c0->i64() + i * k, c0->i64() + (i + 1) * k), s1(c1->i64() + i * k, c1->i64() + (i + 1) * k);
        CertifyRecord r = certify_from_counts(s0, s1, cfg);
        r.index = i;
        r.label = labels[size_t(i)];
        r.correct = r.prediction == r.label;
        r.seconds = per;
        r.device = true;
        out.push_back(r);
      }
      return out;
    }
  }
  for (int64_t i = 0; i < x.dim(0); ++i) {
    CertifyRecord r = certify(model, x.slice_rows(i, i + 1), cfg, cfg.seed * 1000003ULL + uint64_t(i));
    r.index = i;
    r.label = labels[size_t(i)];
    r.correct = r.prediction == r.label;
    out.push_back(r);
    if (cfg.progress) cfg.progress(i + 1, x.dim(0));
  }
  return out;
}

std::vector<double> certified_accuracy(const std::vector<CertifyRecord>& records, const std::vector<double>& radii) {
  std::vector<double> acc;
  for (double r : radii) {
    size_t k = 0;
    for (const auto& rec : records) k += rec.correct && rec.prediction >= 0 && rec.radius >= r;  // an abstention is never correct
    acc.push_back(records.empty() ? 0.0 : double(k) / records.size());
  }
  return acc;
}

}  // namespace mlaudit::robustness
