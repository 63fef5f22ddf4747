// One input contract shared by every command (see validate.h).
#include "mlaudit/datasets/validate.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/math/special_functions/beta.hpp>
#include <cmath>
#include <filesystem>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"

namespace mlaudit::datasets {

namespace {
std::string module_of(const std::string& where) { return where.substr(0, where.find(':')); }
std::string rest_of(const std::string& where) {
  const size_t c = where.find(':');
  return c == std::string::npos ? where : where.substr(std::min(where.size(), c + 2));
}
std::string row_of(const engine::Tensor& x, int64_t flat) {
  const int64_t per_row = x.rank() >= 1 && x.dim(0) > 0 ? x.numel() / x.dim(0) : 1;
  return per_row > 0 ? fmt::format("row {} (element {} of the row)", flat / per_row, flat % per_row) : "row 0";
}
}  // namespace

void check_labels(const std::string& where, const std::vector<int64_t>& y, int64_t classes) {
  if (y.empty()) return;
  const auto [lo, hi] = std::minmax_element(y.begin(), y.end());
  if (*lo >= 0 && *hi < classes) return;
  const auto bad = std::find_if(y.begin(), y.end(), [classes](int64_t v) { return v < 0 || v >= classes; });
  const std::string hint = classes == 1 ? " (a one-output model: a binary classifier's single logit or probability "
                                          "must be turned into two classes, see docs/models.md)"
                                        : "";
  throw InputError(module_of(where),
                   fmt::format("{}: label {} at row {} is outside [0, {}): labels range over [{}, {}] but the model has "
                               "{} output class{}{}",
                               rest_of(where), *bad,
                               bad - y.begin(), classes, *lo, *hi, classes, classes == 1 ? "" : "es", hint));
}


void check_label_count(const std::string& where, int64_t labels, int64_t rows, const std::string& data_path) {
  if (labels != rows)
    throw InputError(module_of(where),
                     fmt::format("{}: {} labels for the {} rows of --data {}", rest_of(where), labels, rows, data_path));
}

void check_finite(const std::string& where, const engine::Tensor& x) {
  if (x.dtype() != engine::DType::Float32) return;
  const float* d = x.f32();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(d[i]))
      throw InputError(module_of(where), fmt::format("{}: {} is {} (data must be finite)", rest_of(where), row_of(x, i),
                                                     std::isnan(d[i]) ? "NaN" : (d[i] > 0 ? "+Inf" : "-Inf")));
}

void check_in_domain(const std::string& where, const engine::Tensor& x, double lo, double hi, const std::string& hint) {
  check_finite(where, x);
  if (x.dtype() != engine::DType::Float32 || x.numel() == 0) return;
  const float* d = x.f32();
  const int64_t n = x.numel();
  const auto [mn, mx] = std::minmax_element(d, d + n);
  // The same relative slack as the attacks' own domain check (float32 rounding of the bounds).
  const double tol = 1e-6 * std::max({1.0, std::fabs(lo), std::fabs(hi)});
  if (double(*mn) >= lo - tol && double(*mx) <= hi + tol) return;
  const int64_t bad =
      std::find_if(d, d + n, [lo, hi, tol](float v) { return double(v) < lo - tol || double(v) > hi + tol; }) - d;
  throw InputError(module_of(where),
                   fmt::format("{}: {} is {}, outside the input domain [{}, {}] (data range [{}, {}]); {}", rest_of(where),
                               row_of(x, bad), d[bad], lo, hi, *mn, *mx, hint));
}

Proportion clopper_pearson(int64_t k, int64_t n, double confidence) {
  if (n < 0 || k < 0 || k > n || !(confidence > 0 && confidence < 1))
    throw InputError("stats", fmt::format("Clopper-Pearson interval needs 0 <= k <= n and 0 < confidence < 1, got k={} n={} "
                                          "confidence={}", k, n, confidence));
  Proportion p;
  p.k = k;
  p.n = n;
  if (n == 0) return p;  // no evidence: [0, 1]
  p.value = double(k) / double(n);
  const double a = 1 - confidence;
  // Beta quantiles: lower = B(a/2; k, n-k+1), upper = B(1-a/2; k+1, n-k).
  p.lower = k == 0 ? 0.0 : boost::math::ibeta_inv(double(k), double(n - k + 1), a / 2);
  p.upper = k == n ? 1.0 : boost::math::ibeta_inv(double(k + 1), double(n - k), 1 - a / 2);
  return p;
}

nlohmann::json proportion_json(int64_t k, int64_t n, double confidence) {
  const Proportion p = clopper_pearson(k, n, confidence);
  return {{"k", p.k}, {"n", p.n}, {"lower", p.lower}, {"upper", p.upper}, {"confidence", confidence},
          {"method", "Clopper-Pearson"}};
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string did_you_mean(const std::string& value, const std::vector<std::string>& options) {
  std::string best, all;
  size_t best_d = std::string::npos;
  for (const auto& o : options) {
    const size_t d = edit_distance(value, o);
    if (d < best_d) best_d = d, best = o;
    all += (all.empty() ? "" : ", ") + o;
  }
  if (!best.empty() && best_d <= std::max<size_t>(2, value.size() / 3))
    return fmt::format(" (did you mean '{}'? expected one of: {})", best, all);
  return fmt::format(" (expected one of: {})", all);
}

nlohmann::json file_provenance(const std::string& path) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  return {{"path", path}, {"sha256", sha256_file(path)}, {"bytes", ec ? 0 : int64_t(bytes)}};
}

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    start = end + 1;
  }
  return out;
}

std::vector<double> parse_number_list(const std::string& origin, const std::string& what, const std::string& text) {
  std::vector<double> out;
  auto number = [&](const std::string& item, const std::string& part) {
    size_t pos = 0;
    double v = 0;
    try {
      v = std::stod(part, &pos);
    } catch (...) {
      pos = 0;
    }
    if (part.empty() || pos != part.size())
      throw InputError(origin, fmt::format("{}: '{}' is not a number (or a fraction like 8/255)", what, item));
    return v;
  };
  for (const auto& item : split_list(text)) {
    const size_t slash = item.find('/');
    if (slash == std::string::npos) {
      out.push_back(number(item, item));
      continue;
    }
    const double num = number(item, item.substr(0, slash)), den = number(item, item.substr(slash + 1));
    if (den == 0) throw InputError(origin, fmt::format("{}: '{}' divides by zero", what, item));
    out.push_back(num / den);
  }
  if (out.empty()) throw InputError(origin, fmt::format("{}: expected a comma-separated list of numbers", what));
  return out;
}

}  // namespace mlaudit::datasets
