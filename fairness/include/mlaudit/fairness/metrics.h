#pragma once
// Group fairness metrics, disparities and individual-fairness indices with
// percentile bootstrap confidence intervals. Conventions follow Fairlearn
// (difference = max - min over groups, ratio = min / max) and AIF360
// (generalized entropy index, Theil index, kNN consistency); see docs/fairness.md.
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "mlaudit/fairness/attributes.h"

namespace mlaudit::fairness {

/// How a score column relates to the favourable outcome.
enum class ScoreDirection {
  HigherIsFavorable,    ///< e.g. a probability of approval: decision favourable when score >= threshold
  HigherIsUnfavorable,  ///< e.g. a risk score (COMPAS decile_score): decision favourable when score < threshold
};

/// Which outcome the confusion matrix calls "positive" (TPR, FPR, TNR, FNR, PPV, NPV).
enum class PositiveClass {
  Favorable,    ///< Fairlearn's pos_label = the favourable value (default)
  Unfavorable,  ///< e.g. ProPublica on COMPAS: recidivism and "higher risk" are positive
};
/// The names `mlaudit fairness --positive` (and the audit's `positive:`) accept, in enum order.
inline const std::vector<std::string>& positive_class_names() {
  static const std::vector<std::string> names = {"favorable", "unfavorable"};
  return names;
}

/// Binarised outcomes of a classifier on a table.
struct Decisions {
  std::vector<uint8_t> y_true;  ///< 1 when the true label is the favorable value
  std::vector<uint8_t> y_pred;  ///< 1 when the decision is favorable (empty with Options::labels_only)
  std::vector<double> scores;   ///< optional score of the favorable outcome (empty = none)

  size_t rows() const { return y_true.size(); }
};

/// Per-group metric names, in report order (score metrics last).
const std::vector<std::string>& group_metric_names();
/// Number of metrics that need only the confusion counts (the first entries of group_metric_names()).
size_t confusion_metric_count();

/// How the evaluation runs.
struct Options {
  int bootstrap = 1000;          ///< resamples (0 = no intervals)
  double ci = 0.95;              ///< central interval mass
  uint64_t seed = 0;             ///< bootstrap seed; each resample has its own stream
  int threads = 0;               ///< 0 = hardware concurrency
  int64_t min_group_size = 30;   ///< groups below are flagged `small_group`
  int ece_bins = 10;             ///< equal-width calibration bins on [0,1]
  double gei_alpha = 2.0;        ///< generalized entropy index order (AIF360 default 2)
  bool intersection = true;      ///< add the intersection of all attributes when there are several
  std::map<std::string, std::string> reference;  ///< attribute name -> reference group
  /// Positive class of TPR/FPR/TNR/FNR/PPV/NPV (and the disparities built on them). base_rate and
  /// selection_rate stay the rates of the favourable label / decision whatever this says, so
  /// demographic parity and the four-fifths rule always compare favourable outcomes.
  PositiveClass positive = PositiveClass::Favorable;
  /// No decisions: report count and base_rate per group and base_rate_difference / _ratio only
  /// (a data audit, as AIF360's BinaryLabelDatasetMetric); Decisions::y_pred is ignored.
  bool labels_only = false;
};

/// A point estimate with its percentile interval; value NaN means undefined (`reason` says why).
struct Estimate {
  double value = std::numeric_limits<double>::quiet_NaN();
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  std::string reason;               ///< why the value is undefined (empty when defined)
  int64_t undefined_resamples = 0;  ///< resamples in which the metric was undefined (left out of the interval)
  int64_t resamples = 0;            ///< resamples drawn (0 = no interval)
  /// Set when the percentile interval excludes the point estimate: says so and why
  /// (resamples left undefined, or a bootstrap distribution shifted from the estimate).
  std::string interval_note;
  bool defined() const { return value == value; }
};

/// Metrics of one group of one attribute.
struct GroupResult {
  std::string attribute;
  std::string group;
  int64_t count = 0;
  bool small_group = false;            ///< count < Options::min_group_size
  std::vector<Estimate> metrics;       ///< indexed like group_metric_names()
};

/// One disparity of one attribute.
struct Disparity {
  std::string attribute;
  std::string name;       ///< e.g. "demographic_parity_difference"
  std::string reference;  ///< reference group, empty for the between-groups form
  std::string formula;
  Estimate estimate;
  std::string four_fifths_rule;  ///< "pass", "fail" or "" (only for demographic parity ratios)
};

/// Everything evaluate() computes.
struct Evaluation {
  int64_t rows = 0;
  bool has_scores = false;
  std::string scores_note;            ///< why Brier/ECE were left out, when they were
  std::vector<std::string> attributes;  ///< reported attributes in order (singles, then the intersection)
  std::vector<GroupResult> groups;
  std::vector<Disparity> disparities;
  Estimate generalized_entropy_index;  ///< alpha = Options::gei_alpha over all rows
  Estimate theil_index;                ///< generalized entropy index with alpha = 1
  Options options;
  std::string bootstrap_method;        ///< how resamples were drawn (documented in the report)
  /// Over the reported estimates with a defined point value: how many had resamples left
  /// undefined, the largest such count, and how many intervals exclude their estimate.
  int64_t estimates_with_undefined_resamples = 0;
  int64_t max_undefined_resamples = 0;
  int64_t intervals_excluding_value = 0;
  /// One line per reported estimate whose interval needs a warning ("attribute group metric: ...").
  std::vector<std::string> warnings;
};

/// Evaluate every group metric and disparity of `attributes` (and their
/// intersection) with bootstrap intervals. Throws InputError when lengths differ,
/// there are no rows, or options are out of range.
Evaluation evaluate(const Decisions& d, const std::vector<Attribute>& attributes, const Options& opts = {});

/// Percentile of sorted finite values with linear interpolation (numpy's default method).
double percentile_sorted(const std::vector<double>& sorted, double q);

/// AIF360's generalized entropy index of the benefits b_i = yhat_i - y_i + 1:
/// GE(a) = mean((b/mu)^a - 1) / (a (a-1)), a=1: mean(b/mu ln(b/mu)), a=0: -mean(ln(b/mu)).
double generalized_entropy_index(const Decisions& d, double alpha);
/// AIF360's between-group index: every b_i replaced by its group's mean benefit.
double between_group_generalized_entropy_index(const Decisions& d, const Attribute& a, double alpha);

/// AIF360's consistency (Zemel et al. 2013, yNN): 1 - mean_i |yhat_i - mean_{j in kNN(i)} yhat_j|
/// with Euclidean neighbours in `features` (row-major [n, dims]) that include row i itself.
/// Brute force, multithreaded; ties at equal distance go to the lower row index.
double consistency(const std::vector<double>& features, size_t dims, const std::vector<uint8_t>& y_pred, int k = 5,
                   int threads = 0);

}  // namespace mlaudit::fairness
