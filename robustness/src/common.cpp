// Attack driver: validation, batching over clean-correct points, re-check of every candidate.
#include <algorithm>
#include <limits>
#include <tuple>
#include <random>
#include <cmath>
#include <fmt/format.h>

#include "mlaudit/engine/random.h"
#include "common.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::robustness {

Norm parse_norm(const std::string& s) {
  if (s == "linf" || s == "Linf" || s == "inf") return Norm::Linf;
  if (s == "l2" || s == "L2") return Norm::L2;
  throw InputError("robustness", "unknown norm '" + s + "' (expected linf or l2)");
}

const char* norm_name(Norm n) { return n == Norm::Linf ? "linf" : "l2"; }

double AttackResult::clean_accuracy() const {
  if (clean_correct.empty()) return 0;
  return double(std::count(clean_correct.begin(), clean_correct.end(), 1)) / clean_correct.size();
}

double AttackResult::robust_accuracy() const {
  if (clean_correct.empty()) return 0;
  size_t robust = 0;
  for (size_t i = 0; i < clean_correct.size(); ++i) robust += clean_correct[i] && !success[i];
  return double(robust) / clean_correct.size();
}

double AttackResult::success_rate() const {
  size_t correct = std::count(clean_correct.begin(), clean_correct.end(), 1);
  if (!correct) return 0;
  return double(std::count(success.begin(), success.end(), 1)) / correct;
}

const std::vector<std::string>& attack_names() {
  static const std::vector<std::string> names = {"fgsm", "pgd",   "apgd-ce", "apgd-dlr", "apgd-t", "square",   "fab",
                                                 "fab-t", "cw-l2", "deepfool", "hsja",   "boundary", "autoattack"};
  return names;
}

std::string canonical_attack_name(const std::string& name) {
  if (name == "hop-skip-jump" || name == "hopskipjump" || name == "hop_skip_jump") return "hsja";
  if (name == "boundary-attack" || name == "boundary_attack") return "boundary";
  return name;
}

bool is_minimal_attack(const std::string& name) {
  const std::string n = canonical_attack_name(name);
  return n == "cw-l2" || n == "deepfool" || n == "hsja" || n == "boundary";
}

bool is_decision_attack(const std::string& name) {
  const std::string n = canonical_attack_name(name);
  return n == "hsja" || n == "boundary";
}

bool is_black_box_attack(const std::string& name) { return canonical_attack_name(name) == "square" || is_decision_attack(name); }

std::vector<std::string> autoattack_stages(bool gradients_available, Norm norm) {
  if (!gradients_available) {
    if (norm == Norm::L2) return {"square", "hsja", "boundary"};
    return {"square", "hsja"};
  }
  return {"apgd-ce", "apgd-t", "fab-t", "square"};
}

std::string autoattack_black_box_text(Norm norm) {
  std::string t;
  for (const auto& st : autoattack_stages(false, norm)) t += (t.empty() ? "" : ", ") + st;
  return t;
}

namespace detail {

namespace {
// splitmix64 (Steele, Lea, Flood 2014): decorrelates neighbouring (seed, index) pairs.
uint64_t mix64(uint64_t z) { return engine::splitmix64(z); }
}  // namespace

RowRngs::RowRngs(uint64_t seed, const std::vector<int64_t>& sample_index)
    : own_(std::make_shared<std::vector<std::mt19937_64>>()) {
  own_->reserve(sample_index.size());
  for (int64_t i : sample_index) own_->emplace_back(mix64(mix64(seed) ^ uint64_t(i)));
  for (auto& g : *own_) rows_.push_back(&g);
}

RowRngs RowRngs::subset(const std::vector<int64_t>& rows) const {
  RowRngs r;
  r.own_ = own_;
  for (int64_t k : rows) r.rows_.push_back(rows_.at(size_t(k)));
  return r;
}

uint64_t RowRngs::device_seed() const { return rows_.empty() ? 0 : (*rows_[0])(); }

int64_t sample_dim(const engine::Tensor& x) { return x.dim(0) ? x.numel() / x.dim(0) : 0; }

double vector_norm(const float* v, int64_t n, Norm norm) {
  double r = 0;
  if (norm == Norm::Linf) {
    for (int64_t i = 0; i < n; ++i) r = std::max(r, double(std::fabs(v[i])));
    return r;
  }
  for (int64_t i = 0; i < n; ++i) r += double(v[i]) * v[i];
  return std::sqrt(r);
}

double distance(const float* a, const float* b, int64_t n, Norm norm) {
  double r = 0;
  if (norm == Norm::Linf) {
    for (int64_t i = 0; i < n; ++i) r = std::max(r, std::fabs(double(a[i]) - b[i]));
    return r;
  }
  for (int64_t i = 0; i < n; ++i) r += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(r);
}

void project(float* x_adv, const float* x0, int64_t n, Norm norm, double eps, double lo, double hi) {
  if (norm == Norm::Linf) {
    for (int64_t i = 0; i < n; ++i) {
      double v = std::clamp(double(x_adv[i]), double(x0[i]) - eps, double(x0[i]) + eps);
      x_adv[i] = float(std::clamp(v, lo, hi));
    }
    return;
  }
  double d = distance(x_adv, x0, n, Norm::L2);
  double scale = d > eps ? eps / d : 1.0;
  for (int64_t i = 0; i < n; ++i)
    x_adv[i] = float(std::clamp(double(x0[i]) + (double(x_adv[i]) - x0[i]) * scale, lo, hi));
}

engine::Tensor forward_batched(const engine::Model& model, const engine::Tensor& x, int batch) {
  const int64_t n = x.dim(0);
  if (n <= batch) return model.forward(x);
  std::vector<engine::Tensor> parts;
  for (int64_t b = 0; b < n; b += batch) parts.push_back(model.forward(x.slice_rows(b, std::min<int64_t>(n, b + batch))));
  return engine::concat_rows(parts);
}

int64_t row_argmax(const engine::Tensor& logits, int64_t i) {
  const int64_t c = logits.dim(1);
  const float* z = logits.f32() + i * c;
  return std::max_element(z, z + c) - z;
}

std::pair<double, double> decision_range(const engine::Tensor& x, const AttackConfig& cfg) {
  double lo = cfg.clip_min, hi = cfg.clip_max;
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    double mn = std::numeric_limits<double>::infinity(), mx = -mn;
    const float* p = x.f32();
    for (int64_t i = 0; i < x.numel(); ++i)
      if (std::isfinite(p[i])) {
        mn = std::min(mn, double(p[i]));
        mx = std::max(mx, double(p[i]));
      }
    if (!(mn <= mx)) mn = mx = 0;
    if (!std::isfinite(lo)) lo = std::max(mn, cfg.clip_min);
    if (!std::isfinite(hi)) hi = std::min(mx, cfg.clip_max);
    if (!(lo < hi)) hi = lo + 1;  // constant data: a unit box
  }
  return {lo, hi};
}

DecisionOracle::DecisionOracle(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                               const AttackConfig& cfg, std::vector<int64_t>& queries)
    : model_(m), row_shape_(x.shape()), y_(y), queries_(queries), lo_(cfg.clip_min), hi_(cfg.clip_max),
      d_(sample_dim(x)) {
  std::tie(start_lo_, start_hi_) = decision_range(x, cfg);
  max_rows_ = std::max<int64_t>(cfg.batch, (int64_t(1) << 22) / std::max<int64_t>(d_, 1));
}

engine::Tensor DecisionOracle::candidates(int64_t rows) const {
  engine::Shape s = row_shape_;
  s[0] = rows;
  return engine::Tensor(s);
}

std::vector<uint8_t> DecisionOracle::is_adversarial(engine::Tensor& rows, const std::vector<int64_t>& owner) const {
  const int64_t k = rows.dim(0);
  float* p = rows.f32();
  for (int64_t q = 0; q < k * d_; ++q) p[q] = float(std::clamp(double(p[q]), lo_, hi_));
  std::vector<uint8_t> adv(size_t(k), 0);
  for (int64_t b = 0; b < k; b += max_rows_) {
    const int64_t e = std::min(k, b + max_rows_);
    engine::Tensor logits = model_.forward(b == 0 && e == k ? rows : rows.slice_rows(b, e));
    for (int64_t r = b; r < e; ++r) {
      const int64_t i = owner[size_t(r)];
      adv[size_t(r)] = row_argmax(logits, r - b) != y_[size_t(i)];
      queries_[size_t(i)] += 1;
    }
  }
  return adv;
}

std::vector<std::vector<float>> DecisionOracle::uniform_starts(int64_t n, int rounds, RowRngs& rng) const {
  std::vector<std::vector<float>> found(static_cast<size_t>(n));
  std::vector<int64_t> searching;
  for (int64_t i = 0; i < n; ++i) searching.push_back(i);
  for (int round = 0; round < rounds && !searching.empty(); ++round) {
    engine::Tensor cand = candidates(int64_t(searching.size()));
    for (size_t q = 0; q < searching.size(); ++q) {
      std::uniform_real_distribution<double> u(start_lo_, start_hi_);
      auto& g = rng[size_t(searching[q])];
      float* c = cand.f32() + int64_t(q) * d_;
      for (int64_t k = 0; k < d_; ++k) c[k] = float(u(g));
    }
    auto adv = is_adversarial(cand, searching);
    std::vector<int64_t> still;
    for (size_t q = 0; q < searching.size(); ++q) {
      if (adv[q]) found[size_t(searching[q])].assign(cand.f32() + int64_t(q) * d_, cand.f32() + int64_t(q + 1) * d_);
      else still.push_back(searching[q]);
    }
    searching.swap(still);
  }
  return found;
}

SubsetResult make_subset_result(const engine::Tensor& x) {
  SubsetResult r;
  r.adversarial = x.clone();
  const size_t n = size_t(x.dim(0));
  r.found.assign(n, 0);
  r.gradient_calls.assign(n, 0);
  r.queries.assign(n, 0);
  r.stage.assign(n, "");
  return r;
}

}  // namespace detail

std::vector<uint8_t> verify_adversarial(const engine::Model& model, const engine::Tensor& x,
                                        const engine::Tensor& adv, const std::vector<int64_t>& y, Norm norm,
                                        double eps, double clip_min, double clip_max, int batch,
                                        std::vector<int64_t>* prediction) {
  if (adv.shape() != x.shape()) throw InputError("robustness", "adversarial batch shape differs from the input");
  const int64_t n = x.dim(0), d = detail::sample_dim(x);
  engine::Tensor logits = detail::forward_batched(model, adv, std::max(batch, 1));
  std::vector<uint8_t> ok(size_t(n), 0);
  if (prediction) prediction->assign(size_t(n), -1);
  // Float tolerance: the attacks compute in float32, so x +- eps rounds by at most
  // one ulp of |x| + eps; 1e-6 absolute + 1e-5 relative covers that for inputs of order 1.
  const double ball = eps + 1e-5 * eps + 1e-6;
  const double dom = 1e-6 * std::max(1.0, std::max(std::fabs(clip_min), std::fabs(clip_max)));
  for (int64_t i = 0; i < n; ++i) {
    const float* a = adv.f32() + i * d;
    const float* o = x.f32() + i * d;
    const int64_t p = detail::row_argmax(logits, i);
    if (prediction) (*prediction)[size_t(i)] = p;
    bool good = p != y[size_t(i)];
    if (good && eps >= 0) good = detail::distance(a, o, d, norm) <= ball;
    for (int64_t k = 0; good && k < d; ++k)
      good = std::isfinite(a[k]) && a[k] >= clip_min - dom && a[k] <= clip_max + dom;
    ok[size_t(i)] = good;
  }
  return ok;
}

AttackResult run_attack(const std::string& name_in, const engine::Model& model, const engine::Tensor& x_in,
                        const std::vector<int64_t>& y, const AttackConfig& cfg) {
  using detail::SubsetResult;
  const std::string name = canonical_attack_name(name_in);
  std::function<SubsetResult(const engine::Model&, const engine::Tensor&, const std::vector<int64_t>&,
                             const AttackConfig&, detail::RowRngs&)>
      algo;
  if (name == "fgsm") algo = detail::fgsm;
  else if (name == "pgd") algo = detail::pgd;
  else if (name == "apgd-ce" || name == "apgd-dlr") {
    const auto loss = name == "apgd-ce" ? detail::Loss::CrossEntropy : detail::Loss::Dlr;
    algo = [loss](const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& yy,
                  const AttackConfig& c, detail::RowRngs& rng) { return detail::apgd(m, x, yy, c, rng, loss); };
  } else if (name == "apgd-t") algo = detail::apgd_targeted;
  else if (name == "square") algo = detail::square;
  else if (name == "fab") algo = detail::fab;
  else if (name == "fab-t") algo = detail::fab_targeted;
  else if (name == "cw-l2") algo = detail::cw_l2;
  else if (name == "deepfool") algo = detail::deepfool;
  else if (name == "hsja") algo = detail::hop_skip_jump;
  else if (name == "boundary") algo = detail::boundary_attack;
  else if (name == "autoattack") algo = detail::autoattack;
  else throw InputError("robustness", "unknown attack '" + name + "' (expected one of fgsm, pgd, apgd-ce, apgd-dlr, apgd-t, square, fab, fab-t, cw-l2, deepfool, hsja, boundary, autoattack)");

  // Option checks: every message names the parameter (the CLI words it as its flag).
  if (!(cfg.eps >= 0) || !std::isfinite(cfg.eps)) throw ParameterError("robustness", "eps", fmt::format(" must be >= 0, got {}", cfg.eps));
  if (!(cfg.clip_min < cfg.clip_max)) throw InputError("robustness", fmt::format("--clip-min ({}) must be below --clip-max ({})", cfg.clip_min, cfg.clip_max));
  if (cfg.batch <= 0) throw ParameterError("robustness", "batch", " must be positive");
  if (cfg.steps < 0) throw ParameterError("robustness", "steps", " must be >= 0");
  if (cfg.restarts < 1) throw ParameterError("robustness", "restarts", " must be >= 1");
  if (cfg.queries < 1) throw ParameterError("robustness", "queries", " must be >= 1");
  if (cfg.step_size < 0) throw ParameterError("robustness", "step_size", " must be >= 0");
  if (name == "cw-l2" && cfg.norm != Norm::L2) throw InputError("robustness", "cw-l2 is an L2 attack: use --norm l2");
  if (name == "boundary" && cfg.norm != Norm::L2) throw InputError("robustness", "boundary is an L2 attack: use --norm l2");
  if (cfg.max_queries < 0) throw InputError("robustness", "--queries must be >= 1");
  if (is_decision_attack(name)) {
    if (cfg.hsja_max_eval < 1 || cfg.hsja_init_eval < 1 || cfg.init_size < 1)
      throw InputError("robustness", "hsja: max_eval, init_eval and init_size must be >= 1");
    if (!(cfg.spherical_step > 0) || !(cfg.source_step > 0) || !(cfg.step_adaptation > 1) || cfg.update_stats_every_k < 1 ||
        !(cfg.source_step_convergence >= 0))
      throw InputError("robustness", "boundary: spherical_step and source_step must be > 0, step_adaptation > 1, update_stats_every_k >= 1");
  }

  if (x_in.rank() < 2) throw InputError("robustness", "input data must be [N, ...] with a batch axis, got " + engine::shape_str(x_in.shape()));
  const engine::Tensor x = x_in.to(engine::DType::Float32);
  const int64_t n = x.dim(0), d = detail::sample_dim(x);
  if (int64_t(y.size()) != n)
    throw InputError("robustness", fmt::format("labels have {} entries but the data has {} samples", y.size(), n));
  {
    const float* p = x.f32();
    const double tol = 1e-6 * std::max(1.0, std::max(std::fabs(cfg.clip_min), std::fabs(cfg.clip_max)));
    for (int64_t k = 0; k < x.numel(); ++k)
      if (!std::isfinite(p[k]) || p[k] < cfg.clip_min - tol || p[k] > cfg.clip_max + tol)
        throw InputError("robustness", fmt::format("input sample {} holds {} outside the domain [--clip-min {}, --clip-max {}]",
                                                   k / std::max<int64_t>(d, 1), p[k], cfg.clip_min, cfg.clip_max));
  }

  AttackResult r;
  r.attack = name;
  r.labels = y;
  engine::Tensor clean = detail::forward_batched(model, x, cfg.batch);
  if (clean.rank() != 2 || clean.dim(0) != n)
    throw InputError("robustness", "model output must be logits [N,C], got " + engine::shape_str(clean.shape()));
  const int64_t c = clean.dim(1);
  r.clean_prediction.resize(size_t(n));
  r.clean_correct.assign(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    if (y[size_t(i)] < 0 || y[size_t(i)] >= c)
      throw InputError("robustness", fmt::format("label {} of sample {} is outside the model's {} classes", y[size_t(i)], i, c));
    r.clean_prediction[size_t(i)] = detail::row_argmax(clean, i);
    r.clean_correct[size_t(i)] = r.clean_prediction[size_t(i)] == y[size_t(i)];
  }
  r.adversarial = x.clone();
  r.success.assign(size_t(n), 0);
  r.perturbation_norm.assign(size_t(n), 0.0);
  r.gradient_calls.assign(size_t(n), 0);
  r.queries.assign(size_t(n), 1);  // the clean forward pass
  r.stage.assign(size_t(n), "");

  std::vector<int64_t> todo;
  for (int64_t i = 0; i < n; ++i)
    if (r.clean_correct[size_t(i)]) todo.push_back(i);
  const bool minimal = is_minimal_attack(name);
  for (size_t b = 0; b < todo.size(); b += size_t(cfg.batch)) {
    std::vector<int64_t> rows(todo.begin() + b, todo.begin() + std::min(todo.size(), b + size_t(cfg.batch)));
    engine::Tensor xs = x.gather_rows(rows);
    std::vector<int64_t> ys;
    for (auto i : rows) ys.push_back(y[size_t(i)]);
    detail::RowRngs rng(cfg.seed, rows);  // streams keyed by sample index: --batch changes nothing
    SubsetResult s = (cfg.eps == 0 && !minimal) ? detail::make_subset_result(xs) : algo(model, xs, ys, cfg, rng);
    // Re-check every candidate with a fresh forward pass before it counts.
    std::vector<int64_t> pred;
    auto ok = verify_adversarial(model, xs, s.adversarial, ys, cfg.norm, minimal ? -1.0 : cfg.eps, cfg.clip_min,
                                 cfg.clip_max, cfg.batch, &pred);
    for (const auto& note : s.notes)
      if (std::find(r.notes.begin(), r.notes.end(), note) == r.notes.end()) r.notes.push_back(note);
    for (size_t k = 0; k < rows.size(); ++k) {
      const size_t i = size_t(rows[k]);
      r.gradient_calls[i] += s.gradient_calls[k];
      r.queries[i] += s.queries[k] + 1;  // + the re-check
      if (s.found[k] && !ok[k]) ++r.rejected;
      if (!ok[k]) continue;
      r.success[i] = 1;
      r.stage[i] = s.stage[k];
      std::copy_n(s.adversarial.f32() + int64_t(k) * d, d, r.adversarial.f32() + int64_t(i) * d);
      r.perturbation_norm[i] = detail::distance(s.adversarial.f32() + int64_t(k) * d, xs.f32() + int64_t(k) * d, d, cfg.norm);
    }
    if (cfg.progress) cfg.progress(int64_t(b + rows.size()), int64_t(todo.size()));
  }
  // Predictions on the reported adversarial batch (x where not broken).
  engine::Tensor adv_logits = detail::forward_batched(model, r.adversarial, cfg.batch);
  r.adv_prediction.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) r.adv_prediction[size_t(i)] = detail::row_argmax(adv_logits, i);
  if (name == "autoattack" && !cfg.gradients_available) {
    r.warnings = detail::sanity_warnings(model, x, y, cfg, false);
    r.notes.insert(r.notes.begin(),
                   "autoattack: the model has no input gradients; ran the black-box subset (" +
                       autoattack_black_box_text(cfg.norm) + ") instead of apgd-ce, apgd-t, fab-t, square");
  } else {
    r.warnings = name == "autoattack" ? detail::autoattack_warnings(model, x, y, r, cfg)
                                       : detail::sanity_warnings(model, x, y, cfg, !is_black_box_attack(name));
  }
  // Carlini et al. 2019 ("On Evaluating Adversarial Robustness", sec. 5.2): an L-inf ball that
  // covers the whole domain (L2: its diagonal) contains every input, so an attack must break
  // every point whose label the model does not predict everywhere; survivors point at a failing attack.
  const double width = cfg.clip_max - cfg.clip_min;
  const double diameter = cfg.norm == Norm::Linf ? width : width * std::sqrt(double(d));
  if (!minimal && cfg.eps >= diameter) {
    int64_t survived = 0, correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      correct += r.clean_correct[size_t(i)];
      survived += r.clean_correct[size_t(i)] && !r.success[size_t(i)];
    }
    if (survived > 0)
      r.warnings.push_back(fmt::format(
          "eps {} ({}) covers the whole input domain [{}, {}], yet {} of {} correctly classified points resisted: unless the "
          "model predicts their label everywhere, the attack is failing (gradient masking?); try --attack square or hsja (no gradients)",
          cfg.eps, norm_name(cfg.norm), cfg.clip_min, cfg.clip_max, survived, correct));
  }
  return r;
}

}  // namespace mlaudit::robustness
