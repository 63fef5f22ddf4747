// Square Attack (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020): random search
// with square-shaped updates, margin loss, forward passes only. Windows are drawn
// per image, as in the authors' original NumPy implementation.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <optional>

#include "common.h"
#include "mlaudit/robustness/device.h"
#include "square_schedule.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::robustness::detail {
namespace {

// Meta pseudo-Gaussian perturbation of size s x s: +eta on the top half, -eta on the
// bottom half, unit L2 norm, transposed with probability 1/2.
std::vector<double> meta_pseudo_gaussian(int s, std::mt19937_64& rng) {
  std::vector<double> m = square_meta_pattern(s);
  if (std::uniform_real_distribution<double>(0, 1)(rng) > 0.5) {
    std::vector<double> t(m.size());
    for (int a = 0; a < s; ++a)
      for (int b = 0; b < s; ++b) t[size_t(b * s + a)] = m[size_t(a * s + b)];
    m = t;
  }
  return m;
}

// Square (L-inf and L2) as the module's fused device loop (robustness::device_square: best point, margin and
// query count of every row on the GPU, one forward per iteration on the rows still unbroken) when
// the model is a Session on CUDA. Same algorithm and defaults as the loop below; the random draws
// come from a counter-based Philox stream instead of rng. std::nullopt: run the host loop.
std::optional<SubsetResult> square_on_device(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                                             const AttackConfig& cfg, RowRngs& rng, std::vector<std::string>& notes) {
  const engine::Session* session = m.device_resident();
  if (!session) return std::nullopt;
  // L2 Square needs [N,C,H,W] images with H, W >= 5: leave the error to the host loop's check.
  if (cfg.norm == Norm::L2 && !(x.rank() == 4 && x.dim(2) >= 5 && x.dim(3) >= 5)) return std::nullopt;
  DeviceSquareOptions o;
  o.norm = norm_name(cfg.norm);
  o.eps = float(cfg.eps);
  o.n_queries = cfg.queries;
  o.p_init = cfg.p_init;
  o.clip_min = float(cfg.clip_min);
  o.clip_max = float(cfg.clip_max);
  o.seed = rng.device_seed();
  const int64_t n = x.dim(0), d = sample_dim(x);
  auto res = robustness::device_square(*session, x, engine::Tensor::from_ints({n}, y), o);
  if (!res) {
    notes.push_back("square: the device session declined the fused loop; ran the host loop");
    return std::nullopt;
  }
  SubsetResult r = make_subset_result(x);
  for (int64_t i = 0; i < n; ++i) {
    r.queries[size_t(i)] = res->queries[size_t(i)];
    if (res->robust[size_t(i)]) continue;
    r.found[size_t(i)] = 1;
    std::copy_n(res->x_adv.f32() + i * d, d, r.adversarial.f32() + i * d);
  }
  r.notes.push_back(fmt::format("square ran as the fused device loop (robustness::device_square, {} backend, device batch {}, Philox draws)",
                                session->backend_name(), res->batch));
  return r;
}

}  // namespace

SubsetResult square(const engine::Model& m, const engine::Tensor& x, const std::vector<int64_t>& y,
                    const AttackConfig& cfg, RowRngs& rng) {
  std::vector<std::string> notes;
  if (auto dev = square_on_device(m, x, y, cfg, rng, notes)) return *dev;
  SubsetResult r = make_subset_result(x);
  r.notes = notes;
  const int64_t n = x.dim(0), d = sample_dim(x);
  // Image layout [N,C,H,W]; other inputs are treated as one-row images [N,1,1,D].
  int64_t c = 1, h = 1, w = d;
  if (x.rank() == 4) { c = x.dim(1); h = x.dim(2); w = x.dim(3); }
  else if (x.rank() == 3) { h = x.dim(1); w = x.dim(2); }
  const double eps = cfg.eps, lo = cfg.clip_min, hi = cfg.clip_max;
  const int n_queries = cfg.queries;
  if (cfg.norm == Norm::L2 && (h < 5 || w < 5))
    throw InputError("robustness", "square --norm l2 needs image inputs [N,C,H,W] with H,W >= 5, got " + engine::shape_str(x.shape()));
  // Every draw for row i comes from row i's own stream (g points at it while row i is worked on).
  std::mt19937_64* g = nullptr;
  auto coin = [&]() { return std::uniform_int_distribution<int>(0, 1)(*g) ? 1.0 : -1.0; };
  auto randint = [&](int64_t hi_excl) { return hi_excl <= 1 ? int64_t(0) : std::uniform_int_distribution<int64_t>(0, hi_excl - 1)(*g); };
  const double n_features = double(d);

  // Initialisation.
  engine::Tensor x_best = x.clone();
  for (int64_t i = 0; i < n; ++i) {
    g = &rng[size_t(i)];
    float* xb = x_best.f32() + i * d;
    const float* x0 = x.f32() + i * d;
    if (cfg.norm == Norm::Linf) {
      // Vertical stripes: one random sign per (channel, column).
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t col = 0; col < w; ++col) {
          const double sgn = coin();
          for (int64_t row = 0; row < h; ++row) {
            const int64_t k = (ch * h + row) * w + col;
            xb[k] = float(std::clamp(x0[k] + eps * sgn, lo, hi));
          }
        }
    } else {
      // Grid of s x s tiles (s = h/5) carrying +-eta, scaled to norm eps.
      std::vector<double> delta(size_t(d), 0.0);
      const int64_t s = h / 5, sp = (h - s * 5) / 2;
      for (int64_t vh = sp; vh + s <= h && vh < sp + (h / s) * s; vh += s)
        for (int64_t vw = sp; vw + s <= w && vw < sp + (w / s) * s; vw += s) {
          auto mg = meta_pseudo_gaussian(int(s), *g);
          for (int64_t ch = 0; ch < c; ++ch) {
            const double sgn = coin();
            for (int64_t a = 0; a < s; ++a)
              for (int64_t b = 0; b < s; ++b) delta[size_t((ch * h + vh + a) * w + vw + b)] += mg[size_t(a * s + b)] * sgn;
          }
        }
      double dn = 0;
      for (double v : delta) dn += v * v;
      dn = std::sqrt(dn) + 1e-12;
      for (int64_t k = 0; k < d; ++k) xb[k] = float(std::clamp(x0[k] + eps * delta[size_t(k)] / dn, lo, hi));
    }
  }
  std::vector<float> margin;
  eval_loss(Loss::Margin, m.forward(x_best), y, nullptr, &margin, nullptr);
  for (int64_t i = 0; i < n; ++i) r.queries[size_t(i)] = 1;

  std::vector<double> nd(static_cast<size_t>(d));
  for (int it = 1; it < n_queries; ++it) {
    std::vector<int64_t> act;
    for (int64_t i = 0; i < n; ++i)
      if (margin[size_t(i)] > 0) act.push_back(i);
    if (act.empty()) break;
    const double p = square_p_selection(cfg.p_init, it, n_queries);
    engine::Tensor x_new = x_best.gather_rows(act);
    for (size_t j = 0; j < act.size(); ++j) {
      const int64_t i = act[j];
      g = &rng[size_t(i)];
      float* xn = x_new.f32() + int64_t(j) * d;
      const float* x0 = x.f32() + i * d;
      const float* xb = x_best.f32() + i * d;
      if (cfg.norm == Norm::Linf) {
        int64_t s = std::max<int64_t>(int64_t(std::lround(std::sqrt(p * n_features / double(c)))), 1);
        s = std::min(s, std::min(h, w));
        const int64_t vh = randint(h - s), vw = randint(w - s);
        // New window values x_best +- 2 eps per channel, resampled while it would not change the window.
        std::vector<double> sg(static_cast<size_t>(c));
        for (int tries = 0; tries < 20; ++tries) {
          for (auto& v : sg) v = coin();
          bool same = true;
          for (int64_t ch = 0; ch < c && same; ++ch)
            for (int64_t a = 0; a < s && same; ++a)
              for (int64_t b = 0; b < s && same; ++b) {
                const int64_t k = (ch * h + vh + a) * w + vw + b;
                same = std::fabs(std::clamp(x0[k] + 2 * eps * sg[size_t(ch)], lo, hi) - xb[k]) < 1e-7;
              }
          if (!same) break;
        }
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) {
              const int64_t k = (ch * h + vh + a) * w + vw + b;
              xn[k] = float(xb[k] + 2 * eps * sg[size_t(ch)]);
            }
        project(xn, x0, d, Norm::Linf, eps, lo, hi);
      } else {
        int64_t s = std::max<int64_t>(int64_t(std::lround(std::sqrt(p * n_features / double(c)))), 3);
        if (s % 2 == 0) ++s;
        s = std::min(s, std::min(h, w) - 1);
        const int64_t vh = randint(h - s), vw = randint(w - s), vh2 = randint(h - s), vw2 = randint(w - s);
        for (int64_t k = 0; k < d; ++k) nd[size_t(k)] = double(xb[k]) - x0[k];
        auto in1 = [&](int64_t row, int64_t col) { return row >= vh && row < vh + s && col >= vw && col < vw + s; };
        auto in2 = [&](int64_t row, int64_t col) { return row >= vh2 && row < vh2 + s && col >= vw2 && col < vw2 + s; };
        double norm_image = 0, norm_windows = 0;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t row = 0; row < h; ++row)
            for (int64_t col = 0; col < w; ++col) {
              const double v = nd[size_t((ch * h + row) * w + col)];
              norm_image += v * v;
              if (in1(row, col) || in2(row, col)) norm_windows += v * v;
            }
        norm_image = std::sqrt(norm_image);
        norm_windows = std::sqrt(norm_windows);
        auto mg = meta_pseudo_gaussian(int(s), *g);
        // Budget left for the window: sqrt(max(eps^2 - ||delta||^2, 0)/c + ||delta_windows||^2).
        const double budget = std::sqrt(std::max(eps * eps - norm_image * norm_image, 0.0) / double(c) + norm_windows * norm_windows);
        std::vector<double> win(static_cast<size_t>(s * s));
        for (int64_t ch = 0; ch < c; ++ch) {
          double n1 = 0;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) {
              const double v = nd[size_t((ch * h + vh + a) * w + vw + b)];
              n1 += v * v;
            }
          n1 = std::sqrt(n1);
          const double sgn = coin();
          double wn = 0;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) {
              double v = mg[size_t(a * s + b)] * sgn + nd[size_t((ch * h + vh + a) * w + vw + b)] / (1e-12 + n1);
              win[size_t(a * s + b)] = v;
              wn += v * v;
            }
          wn = std::sqrt(wn) + 1e-12;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) nd[size_t((ch * h + vh2 + a) * w + vw2 + b)] = 0;
          for (int64_t a = 0; a < s; ++a)
            for (int64_t b = 0; b < s; ++b) nd[size_t((ch * h + vh + a) * w + vw + b)] = win[size_t(a * s + b)] / wn * budget;
        }
        double dn = 0;
        for (double v : nd) dn += v * v;
        dn = std::sqrt(dn) + 1e-12;
        for (int64_t k = 0; k < d; ++k) xn[k] = float(std::clamp(x0[k] + eps * nd[size_t(k)] / dn, lo, hi));
      }
    }
    std::vector<int64_t> ya;
    for (auto i : act) ya.push_back(y[size_t(i)]);
    std::vector<float> mnew;
    eval_loss(Loss::Margin, m.forward(x_new), ya, nullptr, &mnew, nullptr);
    for (size_t j = 0; j < act.size(); ++j) {
      const size_t i = size_t(act[j]);
      r.queries[i] += 1;
      // Accept when the margin loss decreased (it is also the success criterion: margin <= 0).
      if (mnew[j] < margin[i]) {
        margin[i] = mnew[j];
        std::copy_n(x_new.f32() + int64_t(j) * d, d, x_best.f32() + int64_t(i) * d);
      }
    }
  }
  for (int64_t i = 0; i < n; ++i)
    if (margin[size_t(i)] <= 0) {
      r.found[size_t(i)] = 1;
      std::copy_n(x_best.f32() + i * d, d, r.adversarial.f32() + i * d);
    }
  return r;
}

}  // namespace mlaudit::robustness::detail
