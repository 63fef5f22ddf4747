#pragma once
// Randomized smoothing (Cohen, Rosenfeld, Kolter, "Certified adversarial robustness
// via randomized smoothing", ICML 2019): CERTIFY and PREDICT of the smoothed
// classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c).
#include <cstdint>
#include <vector>

#include "mlaudit/engine/progress.h"

#include "mlaudit/engine/model.h"
#include "mlaudit/engine/tensor.h"

namespace mlaudit::robustness {

/// CERTIFY/PREDICT options; defaults are the paper's (N0 = 100, N = 100000, alpha = 0.001).
struct SmoothingConfig {
  double sigma = 0.25;      ///< noise standard deviation, input units
  int64_t n0 = 100;         ///< selection samples
  int64_t n = 100000;       ///< estimation samples
  double alpha = 0.001;     ///< failure probability
  int batch = 1000;         ///< noisy copies per forward call
  uint64_t seed = 0;        ///< noise RNG seed (one xoshiro256** stream per noisy copy, Box-Muller normals)
  engine::ProgressFn progress;  ///< certify_dataset: called after each sample (done, total)
};

/// One sample's certificate.
struct CertifyRecord {
  int64_t index = 0;
  int64_t label = -1;
  int64_t prediction = -1;  ///< -1 when abstaining
  double radius = 0;        ///< certified L2 radius sigma * PhiInv(pA_lower); 0 when abstaining
  bool correct = false;     ///< prediction == label
  int64_t count_a = 0;      ///< votes for the guessed class among the N samples
  double pa_lower = 0;      ///< one-sided Clopper-Pearson lower bound on pA
  double seconds = 0;       ///< wall time for this sample
  bool device = false;      ///< counts from the fused device sampler (robustness::device_smoothing_counts, Philox)
};

/// One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion:
/// the alpha quantile of Beta(k, n - k + 1), 0 when k = 0.
double clopper_pearson_lower(int64_t k, int64_t n, double alpha);
/// Two-sided exact binomial test p-value of k successes in n trials at p (scipy.stats.binomtest).
double binomial_test_two_sided(int64_t k, int64_t n, double p = 0.5);
/// Standard normal quantile Phi^{-1}(p).
double normal_quantile(double p);

/// Class counts of f(x + sigma * eps) over `num` Gaussian draws, x of shape [1,...]. Noisy copy j
/// uses its own stream seeded by (seed, j): results do not depend on `batch` or the thread count.
std::vector<int64_t> sample_noise_counts(const engine::Model& model, const engine::Tensor& x, int64_t num,
                                         double sigma, int batch, uint64_t seed);

/// CERTIFY (Cohen et al. 2019, Alg. 1 / core.py): guess cA from N0 draws, count cA in N
/// fresh draws, pA_lower = Clopper-Pearson lower bound at alpha; abstain (prediction -1)
/// when pA_lower < 1/2, otherwise radius = sigma * PhiInv(pA_lower).
CertifyRecord certify(const engine::Model& model, const engine::Tensor& x, const SmoothingConfig& cfg,
                      uint64_t sample_seed);
/// PREDICT (Alg. 2): top two classes of N draws, abstain (-1) unless the two-sided
/// binomial test of nA in nA + nB at 1/2 has p-value <= alpha.
int64_t predict(const engine::Model& model, const engine::Tensor& x, const SmoothingConfig& cfg, uint64_t sample_seed);

/// CERTIFY every sample of x [N,...]; on a CUDA Session the counts come from the fused device
/// sampler (records flagged `device`). Throws InputError on bad options or shapes.
std::vector<CertifyRecord> certify_dataset(const engine::Model& model, const engine::Tensor& x,
                                           const std::vector<int64_t>& labels, const SmoothingConfig& cfg);
/// Fraction of samples with a correct prediction and radius >= r, for each r.
std::vector<double> certified_accuracy(const std::vector<CertifyRecord>& records, const std::vector<double>& radii);

}  // namespace mlaudit::robustness
