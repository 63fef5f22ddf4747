// Group metrics, disparities and their percentile bootstrap intervals.
//
// Every quantity here is a function of per-row (group, y, yhat[, score]) data.
// One "accumulation" turns row weights into sufficient statistics per fine
// group (the intersection of all attributes): confusion counts, Brier sums,
// calibration bins, and per attribute-group Mann-Whitney sums for AUC. The
// point estimate uses weight 1 for every row; a bootstrap resample uses the
// multiplicities of n rows drawn with replacement (Efron & Tibshirani 1993,
// ch. 13: percentile interval).
//
// Resampling (stated in the report as `bootstrap_method`):
//  * without scores every metric depends on the rows only through the counts of
//    the cells (fine group, y, yhat). Drawing n rows with replacement gives cell
//    counts ~ Multinomial(n, cell frequencies) exactly, so we draw those counts
//    directly (sequential conditional binomials) in O(cells) per resample:
//    the same distribution as resampling rows, not an approximation;
//  * with scores (AUC, Brier, ECE depend on individual rows) we draw n row
//    indices per resample and run one pass over the rows in score order.
// Each resample r has its own RNG stream seeded from (seed, r), so intervals do
// not depend on the number of threads.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/random.h"
#include "mlaudit/fairness/metrics.h"

namespace mlaudit::fairness {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Metric slots of a group, in group_metric_names() order.
enum Metric : int {
  kBaseRate, kSelectionRate, kTpr, kFpr, kTnr, kFnr, kPpv, kNpv, kAccuracy, kBalancedAccuracy,
  kAuc, kBrier, kEce, kMetricCount
};
constexpr int kConfusionMetrics = kAuc;

// Cells: index y*2 + yhat.
enum Cell : int { kTN = 0, kFP = 1, kFN = 2, kTP = 3 };

// One xoshiro256** stream per resample r (engine/random.h), seeded from (seed, r).
engine::Xoshiro256 resample_rng(uint64_t seed, uint64_t stream) {
  return engine::Xoshiro256(seed ^ (stream * 0xd1342543de82ef95ULL + 0x632be59bd9b4e019ULL));
}

double safe_div(double a, double b) { return b > 0 ? a / b : kNaN; }

// Generalized entropy index from benefit counts: n0 rows with b=0 (FN), n1 with b=1 (TN, TP), n2 with b=2 (FP).
// GE(a) = 1/(N a (a-1)) sum_i ((b_i/mu)^a - 1); a = 1: 1/N sum_i (b_i/mu) ln(b_i/mu) (AIF360, Speicher et al. 2018).
double gei_from_benefits(const double* b_values, const double* weights, int k, double alpha) {
  double N = 0, total = 0;
  for (int i = 0; i < k; ++i) {
    N += weights[i];
    total += weights[i] * b_values[i];
  }
  if (!(N > 0) || !(total > 0)) return kNaN;
  double mu = total / N, sum = 0;
  for (int i = 0; i < k; ++i) {
    if (weights[i] == 0) continue;
    double r = b_values[i] / mu;
    if (alpha == 1.0) sum += weights[i] * (r > 0 ? r * std::log(r) : 0.0);
    else sum += weights[i] * (std::pow(r, alpha) - 1.0);
  }
  return alpha == 1.0 ? sum / N : sum / (N * alpha * (alpha - 1.0));
}

struct DisparityDef {
  const char* name;
  int metric;      // primary metric
  int metric2;     // second metric for equalized odds (-1 otherwise)
  bool ratio;
};

const DisparityDef kDisparities[] = {
    {"demographic_parity_difference", kSelectionRate, -1, false},
    {"demographic_parity_ratio", kSelectionRate, -1, true},
    {"equalized_odds_difference", kTpr, kFpr, false},
    {"equalized_odds_ratio", kTpr, kFpr, true},
    {"equal_opportunity_difference", kTpr, -1, false},
    {"equal_opportunity_ratio", kTpr, -1, true},
    {"predictive_parity_difference", kPpv, -1, false},
    {"false_positive_rate_difference", kFpr, -1, false},
    {"false_negative_rate_difference", kFnr, -1, false},
    {"accuracy_difference", kAccuracy, -1, false},
    // Label-only (Options::labels_only): parity of the base rates, AIF360's dataset-level
    // statistical_parity_difference / disparate_impact with every group compared.
    {"base_rate_difference", kBaseRate, -1, false},
    {"base_rate_ratio", kBaseRate, -1, true},
};
constexpr int kDisparityCount = sizeof(kDisparities) / sizeof(kDisparities[0]);
constexpr int kDecisionDisparities = kDisparityCount - 2;  // the ones reported when there are decisions

const char* kMetricNames[kMetricCount] = {"base_rate", "selection_rate", "tpr", "fpr", "tnr", "fnr", "ppv",
                                          "npv", "accuracy", "balanced_accuracy", "auc", "brier_score", "ece"};

std::string disparity_formula(const DisparityDef& d, bool to_reference) {
  auto one = [&](int m) {
    std::string s = kMetricNames[m];
    if (to_reference)
      return d.ratio ? fmt::format("min_g min({0}(g)/{0}(ref), {0}(ref)/{0}(g))", s)
                     : fmt::format("max_g |{0}(g) - {0}(ref)|", s);
    return d.ratio ? fmt::format("min_g {0}(g) / max_g {0}(g)", s)
                   : fmt::format("max_g {0}(g) - min_g {0}(g)", s);
  };
  if (d.metric2 < 0) return one(d.metric);
  return fmt::format("{}({}, {})", d.ratio ? "min" : "max", one(d.metric), one(d.metric2));
}

// Everything fixed for one evaluation: rows in processing order and the group maps.
struct Plan {
  size_t n = 0;
  bool scores = false;       // AUC is computed
  bool calibrated = false;   // Brier and ECE are computed (scores within [0,1])
  bool positive_unfavorable = false;  // TPR/FPR/... count the unfavourable outcome as positive
  int bins = 10;
  double alpha = 2;
  int fine_groups = 0;
  std::vector<Attribute> attributes;           // reported attributes
  std::vector<int> group_offset;               // first global group index of each attribute
  int total_groups = 0;
  std::vector<std::vector<int32_t>> fine_to_group;  // [attribute][fine] -> global group
  std::vector<int32_t> reference;              // per attribute: reference group code or -1
  // Rows in processing order (score order when there are scores).
  std::vector<int32_t> fine;
  std::vector<uint8_t> cell;
  std::vector<double> score;
  std::vector<double> sq_error;  // (score - y)^2
  std::vector<int16_t> bin;
  std::vector<uint8_t> run_last;  // last row of a run of equal scores
  std::vector<double> cell_prob;  // fine*4 + cell -> frequency (multinomial resampling)

  size_t slots() const { return size_t(total_groups) * kMetricCount + attributes.size() * (2 * kDisparityCount + 2) + 2; }
  size_t disparity_slot(size_t a, int d, bool ref) const {
    return size_t(total_groups) * kMetricCount + a * (2 * kDisparityCount + 2) + (ref ? kDisparityCount : 0) + d;
  }
  size_t between_slot(size_t a, int which) const {
    return size_t(total_groups) * kMetricCount + a * (2 * kDisparityCount + 2) + 2 * kDisparityCount + which;
  }
  size_t individual_slot(int which) const { return slots() - 2 + which; }
};

// Sufficient statistics of one weighting of the rows.
struct Accumulator {
  std::vector<double> cells;     // fine*4 + cell
  std::vector<double> brier;     // fine
  std::vector<double> ece;       // (fine*bins + bin)*3 + {count, sum y, sum score}
  std::vector<double> auc_num;   // global group: sum over (pos, neg) pairs of [s_pos > s_neg] + 0.5 [tie]
  std::vector<double> cum_neg, run_pos, run_neg;
  std::vector<int32_t> touched;
  std::vector<uint8_t> touched_flag;

  explicit Accumulator(const Plan& p)
      : cells(size_t(p.fine_groups) * 4), brier(p.fine_groups), ece(size_t(p.fine_groups) * p.bins * 3),
        auc_num(p.total_groups), cum_neg(p.total_groups), run_pos(p.total_groups), run_neg(p.total_groups),
        touched_flag(p.total_groups) {}
  void clear() {
    std::fill(cells.begin(), cells.end(), 0.0);
    std::fill(brier.begin(), brier.end(), 0.0);
    std::fill(ece.begin(), ece.end(), 0.0);
    std::fill(auc_num.begin(), auc_num.end(), 0.0);
    std::fill(cum_neg.begin(), cum_neg.end(), 0.0);
  }
};

// One pass over the rows (in score order) with multiplicities w (nullptr = all 1).
void accumulate_rows(const Plan& p, const uint32_t* w, Accumulator& acc) {
  acc.clear();
  const size_t A = p.attributes.size();
  for (size_t i = 0; i < p.n; ++i) {
    double wi = w ? double(w[i]) : 1.0;
    if (wi != 0) {
      int32_t f = p.fine[i];
      uint8_t c = p.cell[i];
      acc.cells[size_t(f) * 4 + c] += wi;
      if (p.scores) {
        if (p.calibrated) {
          acc.brier[f] += wi * p.sq_error[i];
          double* e = &acc.ece[(size_t(f) * p.bins + p.bin[i]) * 3];
          e[0] += wi;
          e[1] += wi * double(c >> 1);
          e[2] += wi * p.score[i];
        }
        bool positive = (c >> 1) != 0;
        if (p.run_last[i] && acc.touched.empty()) {
          // A run of one row (the usual case with continuous scores): no tie to split.
          for (size_t a = 0; a < A; ++a) {
            int32_t g = p.fine_to_group[a][f];
            if (positive) acc.auc_num[g] += wi * acc.cum_neg[g];
            else acc.cum_neg[g] += wi;
          }
          continue;
        }
        for (size_t a = 0; a < A; ++a) {
          int32_t g = p.fine_to_group[a][f];
          (positive ? acc.run_pos : acc.run_neg)[g] += wi;
          if (!acc.touched_flag[g]) {
            acc.touched_flag[g] = 1;
            acc.touched.push_back(g);
          }
        }
      }
    }
    if (p.scores && p.run_last[i] && !acc.touched.empty()) {
      // Mann-Whitney: a positive beats every lower-scored negative and ties count one half.
      for (int32_t g : acc.touched) {
        acc.auc_num[g] += acc.run_pos[g] * (acc.cum_neg[g] + 0.5 * acc.run_neg[g]);
        acc.cum_neg[g] += acc.run_neg[g];
        acc.run_pos[g] = acc.run_neg[g] = 0;
        acc.touched_flag[g] = 0;
      }
      acc.touched.clear();
    }
  }
}

// Metrics of one group from its statistics. `why` (optional) receives reasons for undefined values.
void group_metrics(const double* c, double brier, double auc_num, const double* ece, const Plan& p, double* m,
                   std::string* why) {
  // Cells are kept with favourable = 1. Base and selection rates are always those of the favourable
  // label / decision; the conditional rates use the positive class of Options::positive, which for
  // the unfavourable class swaps TP <-> TN and FP <-> FN (ProPublica's FPR = P(high risk | no recidivism)).
  double n = c[kTN] + c[kFP] + c[kFN] + c[kTP];
  m[kBaseRate] = safe_div(c[kFN] + c[kTP], n);
  m[kSelectionRate] = safe_div(c[kTP] + c[kFP], n);
  double tp = c[kTP], fp = c[kFP], tn = c[kTN], fn = c[kFN];
  if (p.positive_unfavorable) {
    std::swap(tp, tn);
    std::swap(fp, fn);
  }
  double pos = fn + tp, neg = tn + fp;
  double pred_pos = tp + fp, pred_neg = tn + fn;
  m[kTpr] = safe_div(tp, pos);
  m[kFnr] = safe_div(fn, pos);
  m[kFpr] = safe_div(fp, neg);
  m[kTnr] = safe_div(tn, neg);
  m[kPpv] = safe_div(tp, pred_pos);
  m[kNpv] = safe_div(tn, pred_neg);
  m[kAccuracy] = safe_div(tp + tn, n);
  m[kBalancedAccuracy] = (pos > 0 && neg > 0) ? 0.5 * (m[kTpr] + m[kTnr]) : kNaN;
  m[kAuc] = (p.scores && pos > 0 && neg > 0) ? auc_num / (pos * neg) : kNaN;
  m[kBrier] = p.calibrated ? safe_div(brier, n) : kNaN;
  m[kEce] = kNaN;
  if (p.calibrated && n > 0) {
    // ECE = sum_b (n_b / n) |mean(y)_b - mean(score)_b| (Naeini et al. 2015; Guo et al. 2017).
    double e = 0;
    for (int b = 0; b < p.bins; ++b) {
      const double* s = ece + size_t(b) * 3;
      if (s[0] > 0) e += std::fabs(s[1] - s[2]) / n;
    }
    m[kEce] = e;
  }
  if (why) {
    const char* empty = "empty group";
    why[kBaseRate] = why[kSelectionRate] = why[kAccuracy] = n > 0 ? "" : empty;
    // Named by outcome; "(positive)" marks the swap when the unfavorable class is positive.
    const char* P = p.positive_unfavorable ? "unfavorable (positive)" : "favorable";
    const char* N = p.positive_unfavorable ? "favorable (negative)" : "unfavorable";
    why[kTpr] = why[kFnr] = pos > 0 ? "" : fmt::format("no rows with the {} label in the group (denominator TP+FN = 0)", P);
    why[kFpr] = why[kTnr] = neg > 0 ? "" : fmt::format("no rows with the {} label in the group (denominator FP+TN = 0)", N);
    why[kPpv] = pred_pos > 0 ? "" : fmt::format("no {} decisions in the group (denominator TP+FP = 0)", P);
    why[kNpv] = pred_neg > 0 ? "" : fmt::format("no {} decisions in the group (denominator TN+FN = 0)", N);
    why[kBalancedAccuracy] = (pos > 0 && neg > 0) ? "" : "the group does not hold both labels";
    why[kAuc] = !p.scores ? "no scores given (use --score or --model)"
                          : (pos > 0 && neg > 0 ? "" : "the group does not hold both labels");
    why[kBrier] = why[kEce] = !p.calibrated ? "scores are not probabilities in [0,1]" : (n > 0 ? "" : empty);
  }
}

// Disparity over the groups of attribute a (between groups, or to the reference group).
double disparity_value(const Plan& p, size_t a, const DisparityDef& d, bool to_reference, const double* gm,
                       std::string* why) {
  const int G = static_cast<int>(p.attributes[a].groups.size());
  const int off = p.group_offset[a];
  auto one = [&](int metric) -> double {
    double lo = INFINITY, hi = -INFINITY;
    for (int g = 0; g < G; ++g) {
      double v = gm[size_t(off + g) * kMetricCount + metric];
      if (std::isnan(v)) {
        if (why) *why = fmt::format("{} is undefined for group '{}'", kMetricNames[metric], p.attributes[a].groups[g]);
        return kNaN;
      }
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    if (to_reference) {
      double r = gm[size_t(off + p.reference[a]) * kMetricCount + metric];
      double worst = d.ratio ? INFINITY : 0.0;
      for (int g = 0; g < G; ++g) {
        double v = gm[size_t(off + g) * kMetricCount + metric];
        if (d.ratio) {
          if (r == 0) {
            if (why) *why = fmt::format("{} of the reference group is 0", kMetricNames[metric]);
            return kNaN;
          }
          worst = std::min(worst, v == 0 ? 0.0 : std::min(v / r, r / v));
        } else {
          worst = std::max(worst, std::fabs(v - r));
        }
      }
      return worst;
    }
    if (!d.ratio) return hi - lo;
    if (hi == 0) {
      if (why) *why = fmt::format("{} is 0 in every group (ratio 0/0)", kMetricNames[metric]);
      return kNaN;
    }
    return lo / hi;
  };
  double v = one(d.metric);
  if (d.metric2 < 0 || std::isnan(v)) return v;
  double v2 = one(d.metric2);
  if (std::isnan(v2)) return kNaN;
  return d.ratio ? std::min(v, v2) : std::max(v, v2);
}

// All slots (group metrics, disparities, individual indices) from one accumulation.
void compute_slots(const Plan& p, const Accumulator& acc, double* out, std::vector<std::string>* why) {
  const size_t A = p.attributes.size();
  // Aggregate fine statistics to every attribute's groups.
  std::vector<double> cells(size_t(p.total_groups) * 4, 0.0), brier(p.total_groups, 0.0),
      ece(size_t(p.total_groups) * p.bins * 3, 0.0);
  for (size_t a = 0; a < A; ++a) {
    for (int f = 0; f < p.fine_groups; ++f) {
      int32_t g = p.fine_to_group[a][f];
      for (int c = 0; c < 4; ++c) cells[size_t(g) * 4 + c] += acc.cells[size_t(f) * 4 + c];
      if (p.calibrated) {
        brier[g] += acc.brier[f];
        for (int k = 0; k < p.bins * 3; ++k) ece[size_t(g) * p.bins * 3 + k] += acc.ece[size_t(f) * p.bins * 3 + k];
      }
    }
  }
  for (int g = 0; g < p.total_groups; ++g)
    group_metrics(&cells[size_t(g) * 4], brier[g], acc.auc_num[g], &ece[size_t(g) * p.bins * 3], p,
                  out + size_t(g) * kMetricCount, why ? &(*why)[size_t(g) * kMetricCount] : nullptr);
  const double b_values[3] = {0.0, 1.0, 2.0};  // benefit b = yhat - y + 1: FN -> 0, TN/TP -> 1, FP -> 2
  for (size_t a = 0; a < A; ++a) {
    for (int d = 0; d < kDisparityCount; ++d) {
      for (int ref = 0; ref < 2; ++ref) {
        size_t s = p.disparity_slot(a, d, ref);
        if (ref && p.reference[a] < 0) {
          out[s] = kNaN;
          continue;
        }
        out[s] = disparity_value(p, a, kDisparities[d], ref, out, why ? &(*why)[s] : nullptr);
      }
    }
    // Between-group indices: every row's benefit replaced by its group's mean benefit (AIF360).
    const int G = static_cast<int>(p.attributes[a].groups.size());
    std::vector<double> means(G), weights(G);
    for (int g = 0; g < G; ++g) {
      const double* c = &cells[size_t(p.group_offset[a] + g) * 4];
      weights[g] = c[kTN] + c[kFP] + c[kFN] + c[kTP];
      means[g] = weights[g] > 0 ? (c[kTN] + c[kTP] + 2 * c[kFP]) / weights[g] : 0.0;
    }
    out[p.between_slot(a, 0)] = gei_from_benefits(means.data(), weights.data(), G, p.alpha);
    out[p.between_slot(a, 1)] = gei_from_benefits(means.data(), weights.data(), G, 1.0);
  }
  double totals[3] = {0, 0, 0};
  for (int f = 0; f < p.fine_groups; ++f) {
    const double* c = &acc.cells[size_t(f) * 4];
    totals[0] += c[kFN];
    totals[1] += c[kTN] + c[kTP];
    totals[2] += c[kFP];
  }
  out[p.individual_slot(0)] = gei_from_benefits(b_values, totals, 3, p.alpha);
  out[p.individual_slot(1)] = gei_from_benefits(b_values, totals, 3, 1.0);
  if (why) {
    for (size_t a = 0; a < A; ++a)
      for (int k = 0; k < 2; ++k)
        if (std::isnan(out[p.between_slot(a, k)])) (*why)[p.between_slot(a, k)] = "mean benefit is 0";
    for (int k = 0; k < 2; ++k)
      if (std::isnan(out[p.individual_slot(k)])) (*why)[p.individual_slot(k)] = "mean benefit is 0";
  }
}

// Draw one resample's cell counts ~ Multinomial(n, cell_prob) by conditional binomials.
void draw_multinomial(const Plan& p, engine::Xoshiro256& rng, std::vector<double>& cells) {
  int64_t left = static_cast<int64_t>(p.n);
  double mass_left = 1.0;
  for (size_t k = 0; k < p.cell_prob.size(); ++k) {
    double pk = p.cell_prob[k];
    int64_t x = 0;
    if (left > 0 && pk > 0) {
      if (k + 1 == p.cell_prob.size() || pk >= mass_left) {
        x = left;
      } else {
        std::binomial_distribution<int64_t> bin(left, std::min(1.0, pk / mass_left));
        x = bin(rng);
      }
    }
    cells[k] = double(x);
    left -= x;
    mass_left -= pk;
  }
}

}  // namespace

const std::vector<std::string>& group_metric_names() {
  static const std::vector<std::string> names(std::begin(kMetricNames), std::end(kMetricNames));
  return names;
}

size_t confusion_metric_count() { return kConfusionMetrics; }

double percentile_sorted(const std::vector<double>& v, double q) {
  if (v.empty()) return kNaN;
  // numpy 'linear': position q (n-1), interpolate between neighbours.
  double pos = q * double(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = pos - double(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

Evaluation evaluate(const Decisions& d, const std::vector<Attribute>& singles, const Options& opts) {
  const size_t n = d.rows();
  if (n == 0) throw InputError("fairness", "no rows to evaluate");
  if (!opts.labels_only && d.y_pred.size() != n)
    throw InputError("fairness", fmt::format("{} labels but {} decisions", n, d.y_pred.size()));
  if (!d.scores.empty() && d.scores.size() != n)
    throw InputError("fairness", fmt::format("{} labels but {} scores", n, d.scores.size()));
  if (singles.empty()) throw InputError("fairness", "no protected attribute given");
  for (const auto& a : singles)
    if (a.rows() != n) throw InputError("fairness", fmt::format("attribute '{}' has {} rows, labels {}", a.name, a.rows(), n));
  if (opts.bootstrap < 0) throw InputError("fairness", "--bootstrap must be >= 0");
  if (!(opts.ci > 0 && opts.ci < 1)) throw InputError("fairness", fmt::format("--ci {} is not in (0,1)", opts.ci));
  if (opts.ece_bins < 1 || opts.ece_bins > 1000) throw InputError("fairness", "--ece-bins must be in 1..1000");
  if (!(opts.gei_alpha > 0)) throw InputError("fairness", "generalized entropy alpha must be > 0");

  Plan p;
  p.n = n;
  p.bins = opts.ece_bins;
  p.alpha = opts.gei_alpha;
  p.positive_unfavorable = opts.positive == PositiveClass::Unfavorable;
  // Label-only: the decision is taken to be the label, so selection rate = base rate and the
  // cells are (TN, TP) only; only count, base_rate and the base-rate disparities are reported.
  const std::vector<uint8_t>& y_pred = opts.labels_only ? d.y_true : d.y_pred;
  Evaluation ev;
  ev.rows = static_cast<int64_t>(n);
  ev.options = opts;
  if (!d.scores.empty()) {
    p.scores = true;
    p.calibrated = true;
    for (double s : d.scores) {
      if (!std::isfinite(s)) throw InputError("fairness", "scores must be finite numbers");
      if (s < 0 || s > 1) p.calibrated = false;
    }
    if (!p.calibrated) ev.scores_note = "scores outside [0,1]: Brier score and ECE left out";
  }
  ev.has_scores = p.scores;

  // Attributes: the singles, then their intersection; the fine group is the intersection.
  Attribute fine = intersect(singles);
  p.attributes = singles;
  if (singles.size() > 1 && opts.intersection) p.attributes.push_back(fine);
  p.fine_groups = static_cast<int>(fine.groups.size());
  for (const auto& a : p.attributes) {
    p.group_offset.push_back(p.total_groups);
    p.total_groups += static_cast<int>(a.groups.size());
    ev.attributes.push_back(a.name);
  }
  p.fine_to_group.assign(p.attributes.size(), std::vector<int32_t>(p.fine_groups, -1));
  for (size_t i = 0; i < n; ++i)
    for (size_t a = 0; a < p.attributes.size(); ++a)
      p.fine_to_group[a][fine.codes[i]] = p.group_offset[a] + p.attributes[a].codes[i];
  for (const auto& [name, group] : opts.reference) {
    bool found = false;
    for (const auto& a : p.attributes) found = found || a.name == name;
    if (!found) throw InputError("fairness", fmt::format("--reference names attribute '{}', which is not protected", name));
  }
  for (const auto& a : p.attributes) {
    auto it = opts.reference.find(a.name);
    p.reference.push_back(it == opts.reference.end() ? -1 : a.group_index(it->second));
  }

  // Rows in processing order.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  if (p.scores) std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return d.scores[x] < d.scores[y]; });
  p.fine.resize(n);
  p.cell.resize(n);
  if (p.scores) {
    p.score.resize(n);
    p.sq_error.resize(n);
    p.bin.resize(n);
    p.run_last.resize(n);
  }
  for (size_t k = 0; k < n; ++k) {
    size_t i = order[k];
    if (d.y_true[i] > 1 || y_pred[i] > 1) throw InputError("fairness", fmt::format("row {}: labels must be 0/1", i));
    p.fine[k] = fine.codes[i];
    p.cell[k] = static_cast<uint8_t>(d.y_true[i] * 2 + y_pred[i]);
    if (p.scores) {
      double s = d.scores[i];
      p.score[k] = s;
      p.sq_error[k] = (s - d.y_true[i]) * (s - d.y_true[i]);
      p.bin[k] = static_cast<int16_t>(std::clamp(static_cast<int>(s * p.bins), 0, p.bins - 1));
    }
  }
  if (p.scores)
    for (size_t k = 0; k < n; ++k) p.run_last[k] = (k + 1 == n || p.score[k + 1] != p.score[k]) ? 1 : 0;

  // Point estimates.
  const size_t S = p.slots();
  std::vector<double> point(S);
  std::vector<std::string> why(S);
  Accumulator acc(p);
  accumulate_rows(p, nullptr, acc);
  compute_slots(p, acc, point.data(), &why);
  p.cell_prob.resize(acc.cells.size());
  for (size_t k = 0; k < acc.cells.size(); ++k) p.cell_prob[k] = acc.cells[k] / double(n);

  // Bootstrap.
  const int B = opts.bootstrap;
  std::vector<double> samples(size_t(B) * S);
  ev.bootstrap_method = p.scores
      ? "percentile bootstrap: n rows drawn with replacement per resample"
      : "percentile bootstrap: per resample, counts of the (group, label, decision) cells drawn from "
        "Multinomial(n, observed cell frequencies), which is exactly the distribution of those counts when n rows "
        "are drawn with replacement";
  if (B > 0) {
    int threads = opts.threads > 0 ? opts.threads : static_cast<int>(std::thread::hardware_concurrency());
    threads = std::max(1, std::min(threads, B));
    std::atomic<int> next{0};
    auto worker = [&]() {
      Accumulator local(p);
      std::vector<uint32_t> w(p.scores ? n : 0);
      for (;;) {
        int r = next.fetch_add(1);
        if (r >= B) break;
        engine::Xoshiro256 rng = resample_rng(opts.seed, static_cast<uint64_t>(r));
        if (p.scores) {
          std::fill(w.begin(), w.end(), 0u);
          for (size_t k = 0; k < n; ++k) ++w[rng.below(n)];
          accumulate_rows(p, w.data(), local);
        } else {
          local.clear();
          draw_multinomial(p, rng, local.cells);
        }
        compute_slots(p, local, &samples[size_t(r) * S], nullptr);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
  }

  auto estimate = [&](size_t s) {
    Estimate e;
    e.value = point[s];
    e.reason = std::isnan(point[s]) ? why[s] : "";
    e.resamples = B;
    if (B > 0) {
      std::vector<double> v;
      v.reserve(B);
      for (int r = 0; r < B; ++r) {
        double x = samples[size_t(r) * S + s];
        if (std::isnan(x)) ++e.undefined_resamples;
        else v.push_back(x);
      }
      std::sort(v.begin(), v.end());
      double tail = (1.0 - opts.ci) / 2.0;
      e.lo = percentile_sorted(v, tail);
      e.hi = percentile_sorted(v, 1.0 - tail);
      // A percentile interval need not contain the estimate; say so and why rather than print it bare.
      if (e.defined() && !std::isnan(e.lo) && (e.value < e.lo || e.value > e.hi)) {
        std::string cause =
            e.undefined_resamples > 0
                ? fmt::format("{} of {} resamples left it undefined (a group drawn empty or without a label or decision "
                              "it needs) and the interval comes from the other {}, which are not representative",
                              e.undefined_resamples, B, B - e.undefined_resamples)
                : "the bootstrap distribution is shifted from the estimate (e.g. max - min over many small groups "
                  "grows under resampling), which the percentile method does not correct";
        e.interval_note = fmt::format("the {:g}% percentile interval [{:.4f}, {:.4f}] excludes the estimate {:.4f}: {}",
                                      100.0 * opts.ci, e.lo, e.hi, e.value, cause);
      }
    }
    return e;
  };

  for (size_t a = 0; a < p.attributes.size(); ++a) {
    const auto& attr = p.attributes[a];
    std::vector<int64_t> counts(attr.groups.size(), 0);
    for (int32_t c : attr.codes) ++counts[c];
    for (size_t g = 0; g < attr.groups.size(); ++g) {
      GroupResult gr;
      gr.attribute = attr.name;
      gr.group = attr.groups[g];
      gr.count = counts[g];
      gr.small_group = counts[g] < opts.min_group_size;
      size_t gid = size_t(p.group_offset[a]) + g;
      for (int m = 0; m < kMetricCount; ++m) gr.metrics.push_back(estimate(gid * kMetricCount + m));
      ev.groups.push_back(std::move(gr));
    }
    for (int ref = 0; ref < 2; ++ref) {
      if (ref && p.reference[a] < 0) continue;
      for (int k = opts.labels_only ? kDecisionDisparities : 0; k < (opts.labels_only ? kDisparityCount : kDecisionDisparities); ++k) {
        Disparity dp;
        dp.attribute = attr.name;
        dp.name = kDisparities[k].name;
        dp.reference = ref ? attr.groups[p.reference[a]] : "";
        dp.formula = disparity_formula(kDisparities[k], ref);
        dp.estimate = estimate(p.disparity_slot(a, k, ref));
        if (kDisparities[k].metric == kSelectionRate && kDisparities[k].ratio && dp.estimate.defined())
          dp.four_fifths_rule = dp.estimate.value >= 0.8 ? "pass" : "fail";  // EEOC Uniform Guidelines, 29 CFR 1607.4(D)
        ev.disparities.push_back(std::move(dp));
      }
    }
    if (opts.labels_only) continue;  // benefits need decisions
    Disparity bg;
    bg.attribute = attr.name;
    bg.name = "between_group_generalized_entropy_index";
    bg.formula = fmt::format("GE(alpha={}) of b_i replaced by mean_{{j in group(i)}} b_j, b = yhat - y + 1", p.alpha);
    bg.estimate = estimate(p.between_slot(a, 0));
    ev.disparities.push_back(bg);
    bg.name = "between_group_theil_index";
    bg.formula = "GE(alpha=1) of b_i replaced by mean_{j in group(i)} b_j, b = yhat - y + 1";
    bg.estimate = estimate(p.between_slot(a, 1));
    ev.disparities.push_back(bg);
  }
  ev.generalized_entropy_index = estimate(p.individual_slot(0));
  ev.theil_index = estimate(p.individual_slot(1));
  if (opts.labels_only) {
    ev.generalized_entropy_index = ev.theil_index = Estimate{};
    ev.generalized_entropy_index.reason = ev.theil_index.reason = "no decisions given (labels only)";
  }

  // Bootstrap bookkeeping over the reported estimates whose point value is defined.
  const size_t reported_metrics = opts.labels_only ? 1 : (p.scores ? size_t(kMetricCount) : size_t(kConfusionMetrics));
  auto note = [&](const std::string& what, const Estimate& e) {
    if (!e.defined()) return;
    if (e.undefined_resamples > 0) {
      ++ev.estimates_with_undefined_resamples;
      ev.max_undefined_resamples = std::max(ev.max_undefined_resamples, e.undefined_resamples);
    }
    if (!e.interval_note.empty()) {
      ++ev.intervals_excluding_value;
      ev.warnings.push_back(what + ": " + e.interval_note);
    }
  };
  for (const auto& g : ev.groups)
    for (size_t m = 0; m < reported_metrics; ++m) note(g.attribute + " " + g.group + " " + kMetricNames[m], g.metrics[m]);
  for (const auto& dp : ev.disparities)
    note(dp.attribute + " " + dp.name + (dp.reference.empty() ? "" : " (reference " + dp.reference + ")"), dp.estimate);
  note("generalized_entropy_index", ev.generalized_entropy_index);
  note("theil_index", ev.theil_index);
  return ev;
}

}  // namespace mlaudit::fairness
