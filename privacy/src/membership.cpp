// Membership inference: attack scores and their ROC metrics.
#include "mlaudit/privacy/membership.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "mlaudit/engine/error.h"

namespace mlaudit::privacy {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw InputError("privacy", msg); }

// log-softmax of one row in double: z_j - logsumexp(z).
std::vector<double> log_softmax_row(const float* z, int64_t c) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < c; ++j) mx = std::max(mx, double(z[j]));
  double s = 0;
  for (int64_t j = 0; j < c; ++j) s += std::exp(double(z[j]) - mx);
  const double lse = mx + std::log(s);
  std::vector<double> out(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; ++j) out[size_t(j)] = double(z[j]) - lse;
  return out;
}

// logsumexp of row entries other than `skip`.
double logsumexp_except(const float* z, int64_t c, int64_t skip) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < c; ++j)
    if (j != skip) mx = std::max(mx, double(z[j]));
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (int64_t j = 0; j < c; ++j)
    if (j != skip) s += std::exp(double(z[j]) - mx);
  return mx + std::log(s);
}

void check_logits(const engine::Tensor& logits, const std::vector<int64_t>& labels) {
  if (logits.rank() != 2) fail("model output must be logits [N,C], got " + engine::shape_str(logits.shape()));
  if (logits.dim(0) != int64_t(labels.size()))
    fail(fmt::format("{} labels for {} model outputs", labels.size(), logits.dim(0)));
  if (logits.dim(1) < 2) fail("model output needs at least 2 classes, got " + engine::shape_str(logits.shape()));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= logits.dim(1))
      fail(fmt::format("label {} of sample {} is outside [0, {})", labels[i], i, logits.dim(1)));
}

}  // namespace

RocCurve roc_curve(const std::vector<double>& scores, const std::vector<uint8_t>& is_member) {
  if (scores.size() != is_member.size())
    fail(fmt::format("{} scores for {} membership flags", scores.size(), is_member.size()));
  int64_t p = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) fail(fmt::format("attack score {} is NaN", i));
    p += is_member[i] ? 1 : 0;
  }
  const int64_t n = int64_t(scores.size()) - p;
  if (p == 0 || n == 0) fail("ROC needs at least one member and one non-member");
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  RocCurve r;
  r.thresholds.push_back(std::numeric_limits<double>::infinity());
  r.true_positives.push_back(0);
  r.false_positives.push_back(0);
  int64_t tp = 0, fp = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    (is_member[order[k]] ? tp : fp) += 1;
    // One point per distinct score: emit after the last sample of a tie group.
    if (k + 1 == order.size() || scores[order[k + 1]] != scores[order[k]]) {
      r.thresholds.push_back(scores[order[k]]);
      r.true_positives.push_back(tp);
      r.false_positives.push_back(fp);
    }
  }
  for (size_t k = 0; k < r.thresholds.size(); ++k) {
    r.tpr.push_back(double(r.true_positives[k]) / double(p));
    r.fpr.push_back(double(r.false_positives[k]) / double(n));
  }
  return r;
}

double roc_auc(const RocCurve& roc) {
  if (roc.true_positives.size() < 2) fail("ROC curve has fewer than 2 points");
  // Trapezoid in integer counts: sum (FP_k - FP_{k-1}) (TP_k + TP_{k-1}) / 2, exact for
  // |counts| < 2^26; divided once by P N (= 2 * U_Mann-Whitney / (2 P N)).
  const int64_t p = roc.true_positives.back(), n = roc.false_positives.back();
  long double twice_area = 0;
  for (size_t k = 1; k < roc.true_positives.size(); ++k)
    twice_area += (long double)(roc.false_positives[k] - roc.false_positives[k - 1]) *
                  (long double)(roc.true_positives[k] + roc.true_positives[k - 1]);
  return double(twice_area / (2.0L * (long double)p * (long double)n));
}

double tpr_at_fpr(const RocCurve& roc, double max_fpr) {
  double best = 0;
  for (size_t k = 0; k < roc.fpr.size(); ++k)
    if (roc.fpr[k] <= max_fpr) best = std::max(best, roc.tpr[k]);
  return best;
}

double best_balanced_accuracy(const RocCurve& roc) {
  double best = 0;
  for (size_t k = 0; k < roc.fpr.size(); ++k) best = std::max(best, 0.5 * (roc.tpr[k] + 1.0 - roc.fpr[k]));
  return best;
}

double best_balanced_accuracy_per_class(const std::vector<double>& scores, const std::vector<uint8_t>& is_member,
                                        const std::vector<int64_t>& classes) {
  if (classes.size() != scores.size())
    fail(fmt::format("{} class labels for {} scores", classes.size(), scores.size()));
  int64_t p = 0;
  for (auto m : is_member) p += m ? 1 : 0;
  const int64_t n = int64_t(scores.size()) - p;
  if (p == 0 || n == 0) fail("balanced accuracy needs at least one member and one non-member");
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < scores.size(); ++i) by_class[classes[i]].push_back(i);
  double total = 0;
  for (auto& [c, idx] : by_class) {
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    // Threshold +inf (nobody in class c called member) contributes 0.
    double best = 0;
    int64_t tp = 0, fp = 0;
    for (size_t k = 0; k < idx.size(); ++k) {
      (is_member[idx[k]] ? tp : fp) += 1;
      if (k + 1 == idx.size() || scores[idx[k + 1]] != scores[idx[k]])
        best = std::max(best, double(tp) / double(p) - double(fp) / double(n));
    }
    total += best;
  }
  return 0.5 + 0.5 * total;
}

RocCurve thin_roc(const RocCurve& roc) {
  // Keep the end points and every point where the curve bends (scikit-learn's rule:
  // the second difference of FP or TP counts is non-zero).
  RocCurve out;
  const size_t m = roc.fpr.size();
  for (size_t k = 0; k < m; ++k) {
    bool keep = k == 0 || k + 1 == m;
    if (!keep) {
      const int64_t dfp = roc.false_positives[k + 1] - 2 * roc.false_positives[k] + roc.false_positives[k - 1];
      const int64_t dtp = roc.true_positives[k + 1] - 2 * roc.true_positives[k] + roc.true_positives[k - 1];
      keep = dfp != 0 || dtp != 0;
    }
    if (!keep) continue;
    out.fpr.push_back(roc.fpr[k]);
    out.tpr.push_back(roc.tpr[k]);
    out.thresholds.push_back(roc.thresholds[k]);
    out.true_positives.push_back(roc.true_positives[k]);
    out.false_positives.push_back(roc.false_positives[k]);
  }
  return out;
}

AttackReport evaluate_scores(const std::string& name, const std::vector<double>& member_scores,
                             const std::vector<double>& non_member_scores,
                             const std::vector<int64_t>& member_classes,
                             const std::vector<int64_t>& non_member_classes) {
  AttackReport r;
  r.name = name;
  r.members = int64_t(member_scores.size());
  r.non_members = int64_t(non_member_scores.size());
  r.scores = member_scores;
  r.scores.insert(r.scores.end(), non_member_scores.begin(), non_member_scores.end());
  std::vector<uint8_t> is_member(r.scores.size(), 0);
  std::fill(is_member.begin(), is_member.begin() + r.members, uint8_t(1));
  RocCurve full = roc_curve(r.scores, is_member);
  r.auc = roc_auc(full);
  r.tpr_at_fpr_0_001 = tpr_at_fpr(full, 0.001);
  r.tpr_at_fpr_0_01 = tpr_at_fpr(full, 0.01);
  r.balanced_accuracy_global = best_balanced_accuracy(full);
  r.balanced_accuracy = r.balanced_accuracy_global;
  if (!member_classes.empty() || !non_member_classes.empty()) {
    if (member_classes.size() != member_scores.size() || non_member_classes.size() != non_member_scores.size())
      fail("class labels must be given for every member and non-member");
    std::vector<int64_t> classes = member_classes;
    classes.insert(classes.end(), non_member_classes.begin(), non_member_classes.end());
    const double per_class = best_balanced_accuracy_per_class(r.scores, is_member, classes);
    if (per_class > r.balanced_accuracy) {
      r.balanced_accuracy = per_class;
      r.threshold_mode = "per_class";
    }
  }
  r.roc = thin_roc(full);
  return r;
}

std::vector<double> loss_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels) {
  check_logits(logits, labels);
  const int64_t c = logits.dim(1);
  std::vector<double> s(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) s[i] = log_softmax_row(logits.f32() + int64_t(i) * c, c)[size_t(labels[i])];
  return s;
}

std::vector<double> confidence_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels) {
  std::vector<double> s = loss_scores(logits, labels);
  for (double& v : s) v = std::exp(v);
  return s;
}

std::vector<double> modified_entropy_scores(const engine::Tensor& logits, const std::vector<int64_t>& labels) {
  check_logits(logits, labels);
  const int64_t c = logits.dim(1);
  std::vector<double> s(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* z = logits.f32() + int64_t(i) * c;
    const std::vector<double> lp = log_softmax_row(z, c);
    double mentr = 0;
    for (int64_t j = 0; j < c; ++j) {
      const double p = std::exp(lp[size_t(j)]);
      double log_p = lp[size_t(j)], log_one_minus = 0, one_minus = 0;
      if (p < 0.5) {
        one_minus = -std::expm1(log_p);
        log_one_minus = std::log1p(-p);  // p is accurate in relative terms here
      } else {
        // p >= 1/2: 1 - p = S / (1 + S) with S = sum_{k!=j} exp(z_k - z_j) <= 1, which keeps
        // 1 - p and log p accurate even when p rounds to 1 (saturated members).
        double sum = 0;
        for (int64_t k = 0; k < c; ++k)
          if (k != j) sum += std::exp(double(z[k]) - double(z[j]));
        log_p = -std::log1p(sum);
        one_minus = sum / (1.0 + sum);
        log_one_minus = std::log(sum) - std::log1p(sum);
      }
      if (j == labels[i]) mentr -= one_minus * log_p;   // -(1-p_y) log p_y
      else mentr -= p * log_one_minus;                  // -p_i log(1-p_i)
    }
    s[i] = -mentr;
  }
  return s;
}

std::vector<double> logit_scaled_confidence(const engine::Tensor& logits, const std::vector<int64_t>& labels) {
  check_logits(logits, labels);
  const int64_t c = logits.dim(1);
  std::vector<double> s(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* z = logits.f32() + int64_t(i) * c;
    s[i] = double(z[labels[i]]) - logsumexp_except(z, c, labels[i]);
  }
  return s;
}

std::vector<double> lira_offline_scores(const std::vector<double>& target_phi,
                                        const std::vector<std::vector<double>>& reference_phi,
                                        const LiraOptions& opts) {
  const size_t r = reference_phi.size(), n = target_phi.size();
  if (r < 2) fail(fmt::format("LiRA needs at least 2 reference models, got {}", r));
  for (const auto& ref : reference_phi)
    if (ref.size() != n) fail(fmt::format("reference model scored {} samples, target {}", ref.size(), n));
  const bool global = opts.fixed_variance == 1 || (opts.fixed_variance < 0 && r < 64);
  std::vector<double> mu(n, 0.0), var(n, 0.0);
  double pooled = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < r; ++k) mu[i] += reference_phi[k][i];
    mu[i] /= double(r);
    for (size_t k = 0; k < r; ++k) var[i] += (reference_phi[k][i] - mu[i]) * (reference_phi[k][i] - mu[i]);
    var[i] /= double(r - 1);  // unbiased per-example variance
    pooled += var[i];
  }
  pooled /= double(std::max<size_t>(n, 1));  // global variance: mean of the per-example variances
  std::vector<double> s(n);
  for (size_t i = 0; i < n; ++i) {
    const double sigma = std::sqrt(global ? pooled : var[i]) + 1e-30;  // 1e-30 as in the reference code
    s[i] = (target_phi[i] - mu[i]) / sigma;
  }
  return s;
}

engine::Tensor batched_logits(const engine::Model& model, const engine::Tensor& x, int batch) {
  const int64_t n = x.dim(0), b = std::max(1, batch);
  std::vector<engine::Tensor> parts;
  for (int64_t i = 0; i < n; i += b) parts.push_back(model.forward(x.slice_rows(i, std::min(n, i + b))));
  if (parts.size() == 1) return parts[0];
  return engine::concat_rows(parts);
}

std::vector<double> label_only_scores(const engine::Model& model, const engine::Tensor& x,
                                      const std::vector<int64_t>& labels, const BoundaryDistanceFn& distance,
                                      int batch) {
  if (!distance) fail("label-only attack needs a boundary-distance function");
  const engine::Tensor logits = batched_logits(model, x, batch);
  check_logits(logits, labels);
  const std::vector<int64_t> pred = engine::argmax_rows(logits);
  std::vector<int64_t> correct;
  for (size_t i = 0; i < labels.size(); ++i)
    if (pred[i] == labels[i]) correct.push_back(int64_t(i));
  std::vector<double> s(labels.size(), 0.0);  // misclassified: distance 0 (already across the boundary)
  if (correct.empty()) return s;
  std::vector<int64_t> yc;
  for (int64_t i : correct) yc.push_back(labels[size_t(i)]);
  const std::vector<double> d = distance(x.gather_rows(correct), yc);
  if (d.size() != correct.size())
    fail(fmt::format("boundary-distance function returned {} values for {} samples", d.size(), correct.size()));
  for (size_t k = 0; k < correct.size(); ++k) {
    if (std::isnan(d[k]) || d[k] < 0) fail(fmt::format("boundary distance of sample {} is {}", correct[k], d[k]));
    s[size_t(correct[k])] = d[k];
  }
  return s;
}

const std::vector<std::string>& membership_attack_names() {
  static const std::vector<std::string> names = {"loss", "confidence", "entropy", "lira", "label-only"};
  return names;
}

std::vector<std::vector<double>> membership_scores(const engine::Model& target, const engine::Tensor& xm,
                                                   const std::vector<int64_t>& ym, const engine::Tensor& xn,
                                                   const std::vector<int64_t>& yn, const MembershipOptions& opts,
                                                   int64_t first, int64_t end) {
  const auto& known = membership_attack_names();
  for (const auto& a : opts.attacks)
    if (std::find(known.begin(), known.end(), a) == known.end())
      fail("unknown membership attack '" + a + "' (expected loss, confidence, entropy, lira, label-only)");
  if (opts.attacks.empty()) fail("no membership attack requested");
  if (xm.rank() == 0 || xn.rank() == 0 || xm.dim(0) == 0 || xn.dim(0) == 0)
    fail("member and non-member sets must both be non-empty");
  if (xm.dtype() != engine::DType::Float32 || xn.dtype() != engine::DType::Float32)
    fail("member and non-member inputs must be float32");
  if (engine::Shape(xm.shape().begin() + 1, xm.shape().end()) != engine::Shape(xn.shape().begin() + 1, xn.shape().end()))
    fail("members " + engine::shape_str(xm.shape()) + " and non-members " + engine::shape_str(xn.shape()) +
         " differ in sample shape");
  if (xm.dim(0) != int64_t(ym.size())) fail(fmt::format("{} member labels for {} members", ym.size(), xm.dim(0)));
  if (xn.dim(0) != int64_t(yn.size()))
    fail(fmt::format("{} non-member labels for {} non-members", yn.size(), xn.dim(0)));
  const int64_t m = int64_t(ym.size()), total = m + int64_t(yn.size());
  if (end < 0) end = total;
  if (first < 0 || first > end || end > total)
    fail(fmt::format("sample range [{}, {}) is outside the {} members and non-members", first, end, total));
  const engine::Tensor zm = batched_logits(target, xm, opts.batch), zn = batched_logits(target, xn, opts.batch);
  check_logits(zm, ym);
  check_logits(zn, yn);
  // Members' rows of the slice are [first, end) clipped to [0, m); non-members' are shifted by m.
  const int64_t m0 = std::min(first, m), m1 = std::min(end, m), n0 = std::max(first, m) - m, n1 = std::max(end, m) - m;
  auto slice = [&](const std::vector<double>& sm, const std::vector<double>& sn) {
    std::vector<double> s(sm.begin() + m0, sm.begin() + m1);
    s.insert(s.end(), sn.begin() + n0, sn.begin() + n1);
    return s;
  };
  std::vector<std::vector<double>> out;
  int64_t steps = 0, done = 0;
  for (const auto& a : opts.attacks) steps += a == "lira" ? int64_t(opts.reference_models.size()) : a == "label-only" ? 2 : 0;
  auto step = [&]() {
    if (opts.progress) opts.progress(++done, steps);
  };
  for (const auto& a : opts.attacks) {
    if (a == "loss") out.push_back(slice(loss_scores(zm, ym), loss_scores(zn, yn)));
    else if (a == "confidence") out.push_back(slice(confidence_scores(zm, ym), confidence_scores(zn, yn)));
    else if (a == "entropy") out.push_back(slice(modified_entropy_scores(zm, ym), modified_entropy_scores(zn, yn)));
    else if (a == "lira") {
      if (opts.reference_models.size() < 2)
        fail(fmt::format("attack 'lira' needs at least 2 reference models, got {}", opts.reference_models.size()));
      // One call over members and non-members together, so a global variance is pooled
      // over every target example alike (on every shard: the slice is cut afterwards).
      std::vector<std::vector<double>> ref_phi;
      for (const engine::Model* ref : opts.reference_models) {
        std::vector<double> phi = logit_scaled_confidence(batched_logits(*ref, xm, opts.batch), ym);
        const std::vector<double> pn = logit_scaled_confidence(batched_logits(*ref, xn, opts.batch), yn);
        phi.insert(phi.end(), pn.begin(), pn.end());
        ref_phi.push_back(std::move(phi));
        step();
      }
      std::vector<double> phi = logit_scaled_confidence(zm, ym);
      const std::vector<double> pn = logit_scaled_confidence(zn, yn);
      phi.insert(phi.end(), pn.begin(), pn.end());
      const std::vector<double> s = lira_offline_scores(phi, ref_phi, opts.lira);
      out.emplace_back(s.begin() + first, s.begin() + end);
    } else if (a == "label-only") {
      if (!opts.boundary_distance) fail("attack 'label-only' needs a boundary-distance function");
      // label_only_scores on the slice's rows [r0, r1) of one set, with the correctness taken
      // from the logits of the whole set (the same bits as the whole run's, whatever the slice).
      // The distance function is called as the whole run calls it, on the set's correctly
      // classified rows, but only on the blocks of distance_batch of them that hold the slice's.
      auto scores = [&](const engine::Tensor& x, const engine::Tensor& z, const std::vector<int64_t>& y, int64_t r0,
                        int64_t r1) {
        const std::vector<int64_t> pred = engine::argmax_rows(z);
        std::vector<int64_t> correct;
        size_t p0 = 0, p1 = 0;  // the slice's correct rows are correct[p0, p1)
        for (int64_t i = 0; i < int64_t(y.size()); ++i) {
          if (i == r0) p0 = correct.size();
          if (i == r1) p1 = correct.size();
          if (pred[size_t(i)] == y[size_t(i)]) correct.push_back(i);
        }
        if (r0 == int64_t(y.size())) p0 = correct.size();
        if (r1 == int64_t(y.size())) p1 = correct.size();
        std::vector<double> s(size_t(r1 - r0), 0.0);  // misclassified: distance 0 (already across the boundary)
        if (p0 == p1) return s;
        size_t q0 = p0, q1 = p1;
        if (const size_t b = size_t(opts.distance_batch); b > 0) q0 = p0 / b * b, q1 = std::min(correct.size(), (p1 + b - 1) / b * b);
        const std::vector<int64_t> rows(correct.begin() + int64_t(q0), correct.begin() + int64_t(q1));
        std::vector<int64_t> yc;
        for (int64_t i : rows) yc.push_back(y[size_t(i)]);
        const std::vector<double> d = opts.boundary_distance(x.gather_rows(rows), yc);
        if (d.size() != rows.size())
          fail(fmt::format("boundary-distance function returned {} values for {} samples", d.size(), rows.size()));
        for (size_t k = p0; k < p1; ++k) {
          const double v = d[k - q0];
          if (std::isnan(v) || v < 0) fail(fmt::format("boundary distance of sample {} is {}", correct[k], v));
          s[size_t(correct[k] - r0)] = v;
        }
        return s;
      };
      std::vector<double> s = scores(xm, zm, ym, m0, m1);
      step();
      const std::vector<double> sn = scores(xn, zn, yn, n0, n1);
      step();
      s.insert(s.end(), sn.begin(), sn.end());
      out.push_back(std::move(s));
    }
  }
  return out;
}

AttackReport evaluate_attack(const std::string& name, const std::vector<double>& scores, const std::vector<int64_t>& ym,
                             const std::vector<int64_t>& yn) {
  if (scores.size() != ym.size() + yn.size())
    fail(fmt::format("attack '{}': {} scores for {} members and {} non-members", name, scores.size(), ym.size(), yn.size()));
  const auto split = scores.begin() + int64_t(ym.size());
  const std::vector<double> sm(scores.begin(), split), sn(split, scores.end());
  if (name == "lira") return evaluate_scores(name, sm, sn);
  return evaluate_scores(name, sm, sn, ym, yn);
}

std::vector<AttackReport> run_membership_inference(const engine::Model& target, const engine::Tensor& xm,
                                                   const std::vector<int64_t>& ym, const engine::Tensor& xn,
                                                   const std::vector<int64_t>& yn, const MembershipOptions& opts) {
  const std::vector<std::vector<double>> scores = membership_scores(target, xm, ym, xn, yn, opts);
  std::vector<AttackReport> out;
  for (size_t k = 0; k < opts.attacks.size(); ++k) out.push_back(evaluate_attack(opts.attacks[k], scores[k], ym, yn));
  return out;
}

}  // namespace mlaudit::privacy
