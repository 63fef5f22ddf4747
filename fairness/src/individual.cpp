// Individual-fairness indices computed row by row (AIF360 definitions).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/metrics.h"

namespace mlaudit::fairness {
namespace {

// GE index of benefits b (Speicher et al. 2018, "A Unified Approach to Quantifying
// Algorithmic Unfairness", eq. 3): GE(a) = 1/(n a (a-1)) sum_i ((b_i/mu)^a - 1).
double gei_of(const std::vector<double>& b, double alpha) {
  if (b.empty()) return std::numeric_limits<double>::quiet_NaN();
  double mu = 0;
  for (double x : b) mu += x;
  mu /= double(b.size());
  if (!(mu > 0)) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double x : b) {
    double r = x / mu;
    if (alpha == 1.0) s += r > 0 ? r * std::log(r) : 0.0;  // Theil index, 0 ln 0 = 0
    else s += std::pow(r, alpha) - 1.0;
  }
  return alpha == 1.0 ? s / double(b.size()) : s / (double(b.size()) * alpha * (alpha - 1.0));
}

}  // namespace

double generalized_entropy_index(const Decisions& d, double alpha) {
  std::vector<double> b(d.rows());
  for (size_t i = 0; i < b.size(); ++i) b[i] = double(d.y_pred[i]) - double(d.y_true[i]) + 1.0;
  return gei_of(b, alpha);
}

double between_group_generalized_entropy_index(const Decisions& d, const Attribute& a, double alpha) {
  if (a.rows() != d.rows()) throw InputError("fairness", fmt::format("attribute '{}' has {} rows, labels {}", a.name, a.rows(), d.rows()));
  std::vector<double> sum(a.groups.size(), 0.0), cnt(a.groups.size(), 0.0);
  for (size_t i = 0; i < d.rows(); ++i) {
    sum[a.codes[i]] += double(d.y_pred[i]) - double(d.y_true[i]) + 1.0;
    cnt[a.codes[i]] += 1;
  }
  std::vector<double> b(d.rows());
  for (size_t i = 0; i < b.size(); ++i) b[i] = sum[a.codes[i]] / cnt[a.codes[i]];
  return gei_of(b, alpha);
}

double consistency(const std::vector<double>& x, size_t dims, const std::vector<uint8_t>& y_pred, int k, int threads) {
  const size_t n = y_pred.size();
  if (dims == 0 || x.size() != n * dims)
    throw InputError("fairness", fmt::format("consistency: {} feature values for {} rows x {} features", x.size(), n, dims));
  if (k < 1 || size_t(k) > n) throw InputError("fairness", fmt::format("consistency: k={} needs 1 <= k <= rows ({})", k, n));
  for (double v : x)
    if (!std::isfinite(v)) throw InputError("fairness", "consistency: features must be finite numbers");
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<double> term(n, 0.0);
  std::atomic<size_t> next{0};
  const size_t chunk = 64;
  auto worker = [&]() {
    // Per query row: keep the k smallest (distance, index) pairs; ties go to the lower index.
    std::vector<std::pair<double, size_t>> best;
    for (;;) {
      size_t start = next.fetch_add(chunk);
      if (start >= n) break;
      size_t end = std::min(n, start + chunk);
      for (size_t i = start; i < end; ++i) {
        best.clear();
        const double* xi = &x[i * dims];
        for (size_t j = 0; j < n; ++j) {
          const double* xj = &x[j * dims];
          double d2 = 0;
          for (size_t c = 0; c < dims; ++c) {
            double t = xi[c] - xj[c];
            d2 += t * t;
          }
          if (best.size() < size_t(k)) {
            best.emplace_back(d2, j);
            std::push_heap(best.begin(), best.end());
          } else if (std::make_pair(d2, j) < best.front()) {
            std::pop_heap(best.begin(), best.end());
            best.back() = {d2, j};
            std::push_heap(best.begin(), best.end());
          }
        }
        double mean = 0;
        for (const auto& b : best) mean += y_pred[b.second];
        term[i] = std::fabs(double(y_pred[i]) - mean / double(k));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  double s = 0;
  for (double v : term) s += v;
  return 1.0 - s / double(n);
}

}  // namespace mlaudit::fairness
