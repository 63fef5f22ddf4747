// Falsification before proof: uniform samples, then PGD (Madry et al., ICLR
// 2018) on the unsafe margin. Every candidate is re-checked by the concrete
// float32 forward pass before it is returned.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "mlaudit/verify/solver.h"

namespace mlaudit::verify {

bool violates(const std::vector<OutputConjunction>& unsafe, const std::vector<double>& output) {
  for (const auto& conj : unsafe) {
    bool all = true;
    for (const auto& c : conj) {
      double v = c.constant;
      for (size_t j = 0; j < c.coef.size(); ++j) v += c.coef[j] * output[j];
      if (!(v <= 0)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

std::optional<std::vector<float>> float_point_in_box(const std::vector<double>& x, const InputBox& box) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::vector<float> xf(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double lo = box.lower[i], hi = box.upper[i];
    float v = float(std::clamp(x[i], lo, hi));
    if (double(v) < lo) v = std::nextafter(v, kInf);
    if (double(v) > hi) v = std::nextafter(v, -kInf);
    if (double(v) < lo || double(v) > hi) {
      // No float32 within one ulp inside [lo, hi]: fine only when the interval holds none at all.
      float first = float(lo);
      if (double(first) < lo) first = std::nextafter(first, kInf);
      if (double(first) <= hi) return std::nullopt;
      v = float(std::clamp(x[i], lo, hi));  // nearest float32 (round to nearest)
    }
    xf[i] = v;
  }
  return xf;
}

namespace {

// Margin of the unsafe region: min over conjunctions of max over rows of
// (coef . y + c); <= 0 inside the unsafe region. `grad_out` receives d margin / dy.
double unsafe_margin(const std::vector<OutputConjunction>& unsafe, const std::vector<double>& y,
                     std::vector<double>* grad_out) {
  double best = std::numeric_limits<double>::infinity();
  const OutputConstraint* arg = nullptr;
  for (const auto& conj : unsafe) {
    double worst = -std::numeric_limits<double>::infinity();
    const OutputConstraint* warg = nullptr;
    for (const auto& c : conj) {
      double v = c.constant;
      for (size_t j = 0; j < c.coef.size(); ++j) v += c.coef[j] * y[j];
      if (v > worst) {
        worst = v;
        warg = &c;
      }
    }
    if (conj.empty()) worst = -1;  // empty conjunction: every output is unsafe
    if (worst < best) {
      best = worst;
      arg = warg;
    }
  }
  if (grad_out) {
    grad_out->assign(y.size(), 0.0);
    if (arg) *grad_out = arg->coef;
  }
  return best;
}

// d margin / dx by reverse mode through the network (ReLU masks; a max pool
// passes the gradient to its window's first maximal input, as PyTorch does).
std::vector<double> input_gradient(const Network& net, const std::vector<double>& x, const std::vector<double>& gy) {
  auto pre = net.pre_activations(x);
  std::vector<double> g = gy;
  for (size_t k = net.layers.size(); k-- > 0;) {
    const AffineLayer& L = net.layers[k];
    if (k + 1 < net.layers.size()) {
      if (const MaxPool* mp = net.pool(k)) {
        std::vector<double> gr(size_t(L.out), 0.0);
        for (size_t i = 0; i < mp->windows.size(); ++i) {
          int64_t arg = mp->windows[i][0];
          for (int64_t j : mp->windows[i])
            if (std::max(0.0, pre[k][size_t(j)]) > std::max(0.0, pre[k][size_t(arg)])) arg = j;
          gr[size_t(arg)] += g[i];
        }
        g = std::move(gr);
      }
      for (int64_t j = 0; j < L.out; ++j)
        if (pre[k][size_t(j)] <= 0) g[size_t(j)] = 0;
    }
    g = L.apply_transpose(g);
  }
  return g;
}

std::optional<Counterexample> confirm(const Network& net, const SubProperty& sub, const std::vector<double>& x,
                                      const VerifyOptions& opts) {
  auto point = float_point_in_box(x, sub.box);
  if (!point) return std::nullopt;
  const std::vector<float>& xf = *point;
  std::vector<float> yf = opts.concrete ? opts.concrete(xf) : net.forward_f32(xf);
  std::vector<double> y(yf.begin(), yf.end());
  if (!violates(sub.unsafe, y)) return std::nullopt;
  return Counterexample{std::vector<double>(xf.begin(), xf.end()), y};
}

}  // namespace

std::optional<Counterexample> falsify(const Network& net, const SubProperty& sub, const VerifyOptions& opts,
                                      const Deadline& deadline, uint64_t seed) {
  const size_t n = sub.box.lower.size();
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  auto sample = [&]() {
    std::vector<double> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = sub.box.lower[i] + uni(rng) * (sub.box.upper[i] - sub.box.lower[i]);
    return x;
  };
  // Uniform samples plus the centre; the best few seed PGD.
  std::vector<std::pair<double, std::vector<double>>> seeds;
  std::vector<double> centre(n);
  for (size_t i = 0; i < n; ++i) centre[i] = 0.5 * (sub.box.lower[i] + sub.box.upper[i]);
  // Every other sample lies on a face of the box: each coordinate independently
  // at its lower or upper bound with probability 1/4 each. Margins of piecewise-
  // linear networks are extreme on the boundary, and thin unsafe regions touch
  // it (ACAS Xu 1_9 property 7: 3 unsafe points in 10^7 uniform samples, 1.8
  // in 10^4 with X_0 at its lower bound).
  auto face_sample = [&]() {
    std::vector<double> x = sample();
    for (size_t i = 0; i < n; ++i) {
      double u = uni(rng);
      if (u < 0.25) x[i] = sub.box.lower[i];
      else if (u < 0.5) x[i] = sub.box.upper[i];
    }
    return x;
  };
  for (int s = 0; s <= opts.random_samples && !deadline.stop(); ++s) {
    std::vector<double> x = s == 0 ? centre : (s % 2 ? sample() : face_sample());
    double m = unsafe_margin(sub.unsafe, net.forward(x), nullptr);
    if (m <= 0)
      if (auto cex = confirm(net, sub, x, opts)) return cex;
    seeds.emplace_back(m, std::move(x));
  }
  std::sort(seeds.begin(), seeds.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (int r = 0; r < opts.pgd_restarts && !deadline.stop(); ++r) {
    std::vector<double> x = r < int(seeds.size()) ? seeds[size_t(r)].second : sample();
    for (int t = 0; t < opts.pgd_steps && !deadline.stop(); ++t) {
      std::vector<double> gy;
      double m = unsafe_margin(sub.unsafe, net.forward(x), &gy);
      if (m <= 0)
        if (auto cex = confirm(net, sub, x, opts)) return cex;
      std::vector<double> g = input_gradient(net, x, gy);
      // Signed step of 2.5 * radius / steps per coordinate (Madry et al.'s step rule),
      // decaying over the run, projected back onto the box.
      double decay = 1.0 - double(t) / opts.pgd_steps;
      for (size_t i = 0; i < n; ++i) {
        double radius = 0.5 * (sub.box.upper[i] - sub.box.lower[i]);
        double step = 2.5 * radius / opts.pgd_steps * (0.25 + decay);
        if (g[i] > 0) x[i] -= step;
        else if (g[i] < 0) x[i] += step;
        x[i] = std::clamp(x[i], sub.box.lower[i], sub.box.upper[i]);
      }
    }
    // Refinement: signed steps that halve whenever they stop improving the
    // margin, from the last step size down to float resolution. The decayed
    // schedule above ends at a quarter of its first step, too coarse for thin
    // unsafe regions (ACAS Xu 1_9 property 7: margin -2e-4, 3 in 10^7 of the box).
    std::vector<double> g;
    {
      std::vector<double> gy;
      double m = unsafe_margin(sub.unsafe, net.forward(x), &gy);
      if (m <= 0)
        if (auto cex = confirm(net, sub, x, opts)) return cex;
      g = input_gradient(net, x, gy);
      double scale = 2.5 * 0.25 / opts.pgd_steps;
      for (int t = 0; t < 4 * opts.pgd_steps && scale > 1e-9 && !deadline.stop(); ++t) {
        std::vector<double> xn = x;
        for (size_t i = 0; i < n; ++i) {
          double step = scale * 0.5 * (sub.box.upper[i] - sub.box.lower[i]);
          if (g[i] > 0) xn[i] -= step;
          else if (g[i] < 0) xn[i] += step;
          xn[i] = std::clamp(xn[i], sub.box.lower[i], sub.box.upper[i]);
        }
        std::vector<double> gyn;
        double mn = unsafe_margin(sub.unsafe, net.forward(xn), &gyn);
        if (mn <= 0)
          if (auto cex = confirm(net, sub, xn, opts)) return cex;
        if (mn < m) {
          x = std::move(xn);
          m = mn;
          g = input_gradient(net, x, gyn);
        } else {
          scale *= 0.5;
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace mlaudit::verify
