// Targets, the softmax wrapper and the gradient family of attributions.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "detail.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

const std::vector<std::string>& method_names() {
  static const std::vector<std::string> names = {"gradient",   "saliency",      "input-x-gradient", "integrated-gradients",
                                                 "deeplift",   "smoothgrad",    "smoothgrad-sq",    "occlusion",
                                                 "kernel-shap", "lime",         "permutation", "tree-shap",
                                                 "shap"};
  return names;
}


namespace detail {
void check_batch(const Tensor& x, const char* what) {
  if (x.empty() || x.rank() < 2 || x.shape()[0] < 1)
    throw InputError("explain", fmt::format("{}: expected a batch [N,...] with N >= 1 and at least one feature, got {}",
                                            what, x.empty() ? std::string("no data") : engine::shape_str(x.shape())));
  if (x.dtype() != engine::DType::Float32)
    throw InputError("explain", fmt::format("{}: expected float32 data, got {}", what, engine::dtype_name(x.dtype())));
}
}  // namespace detail

using detail::row_size;

// ---------------------------------------------------------------- targets

Target parse_target(const std::string& text) {
  Target t;
  if (text == "label") {
    t.kind = Target::Kind::Label;
  } else if (text == "predicted") {
    t.kind = Target::Kind::Predicted;
  } else {
    char* end = nullptr;
    long long k = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end || k < 0)
      throw InputError("explain", fmt::format("--target: '{}' is not 'label', 'predicted' or an output index", text));
    t.kind = Target::Kind::Index;
    t.index = k;
  }
  return t;
}

std::vector<int64_t> resolve_targets(const Model& model, const Tensor& x, const Target& target, const Tensor* labels) {
  detail::check_batch(x, "targets");
  const int64_t n = x.shape()[0];
  Tensor probe = model.forward(x.slice_rows(0, 1));
  if (probe.rank() != 2)
    throw InputError("explain", fmt::format("model output must be [N,C], got {}", engine::shape_str(probe.shape())));
  const int64_t classes = probe.shape()[1];
  std::vector<int64_t> out;
  switch (target.kind) {
    case Target::Kind::Index:
      if (target.index >= classes)
        throw InputError("explain", fmt::format("--target {} is out of range: the model has {} outputs", target.index, classes));
      out.assign(n, target.index);
      break;
    case Target::Kind::Label: {
      if (!labels || labels->empty())
        throw InputError("explain", "--target label needs labels (--labels y.npy)");
      if (labels->numel() != n)
        throw InputError("explain", fmt::format("labels: {} values for {} rows", labels->numel(), n));
      out = labels->to_int64s();
      for (int64_t i = 0; i < n; ++i)
        if (out[i] < 0 || out[i] >= classes)
          throw InputError("explain", fmt::format("labels: row {} has label {}, outside 0..{}", i, out[i], classes - 1));
      break;
    }
    case Target::Kind::Predicted: {
      out.reserve(n);
      for (int64_t b = 0; b < n; b += 4096) {
        auto am = engine::argmax_rows(model.forward(x.slice_rows(b, std::min(n, b + 4096))));
        out.insert(out.end(), am.begin(), am.end());
      }
      break;
    }
  }
  return out;
}

Tensor SoftmaxModel::forward(const Tensor& x) const { return engine::softmax_rows(inner_.forward(x)); }

void SoftmaxModel::forward_mixtures(const std::vector<engine::Mixtures>& batch, const engine::Shape& row_shape,
                                    int64_t max_rows, bool ends, engine::MixtureOutputs& out) const {
  inner_.forward_mixtures(batch, row_shape, max_rows, ends, out);
  if (out.outputs == 0) return;
  const int64_t C = out.outputs, rows = static_cast<int64_t>(out.values.size()) / C;
  Tensor logits = Tensor::uninitialized(engine::DType::Float32, {rows, C});
  std::copy(out.values.begin(), out.values.end(), logits.f32());
  const Tensor p = engine::softmax_rows(logits);
  std::copy(p.f32(), p.f32() + rows * C, out.values.begin());
}

Tensor SoftmaxModel::input_gradient(const Tensor& x, const engine::SeedFn& seed, Tensor* output) const {
  Tensor probs;
  Tensor g = inner_.input_gradient(
      x,
      [&](const Tensor& logits) {
        probs = engine::softmax_rows(logits);
        Tensor sp = seed(probs);
        // d<s,p>/dz_j = p_j (s_j - sum_k s_k p_k)  (Jacobian of softmax: diag(p) - p p^T)
        Tensor sz(logits.shape());
        const int64_t n = logits.shape()[0], c = logits.shape()[1];
        const float* p = probs.f32();
        const float* s = sp.f32();
        float* o = sz.f32();
        for (int64_t i = 0; i < n; ++i) {
          double dot = 0;
          for (int64_t j = 0; j < c; ++j) dot += double(s[i * c + j]) * p[i * c + j];
          for (int64_t j = 0; j < c; ++j) o[i * c + j] = float(p[i * c + j] * (s[i * c + j] - dot));
        }
        return sz;
      },
      nullptr);
  if (output) *output = probs;
  return g;
}

std::vector<double> target_outputs(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                                   int64_t batch_rows) {
  const int64_t n = x.shape()[0];
  std::vector<double> out(n);
  batch_rows = std::max<int64_t>(1, batch_rows);
  for (int64_t b = 0; b < n; b += batch_rows) {
    const int64_t e = std::min(n, b + batch_rows);
    Tensor y = model.forward(x.slice_rows(b, e));
    if (y.rank() != 2 || y.shape()[0] != e - b)
      throw InputError("explain", fmt::format("model output must be [N,C], got {}", engine::shape_str(y.shape())));
    const int64_t c = y.shape()[1];
    for (int64_t i = b; i < e; ++i) {
      if (targets[i] < 0 || targets[i] >= c)
        throw InputError("explain", fmt::format("target {} out of range for {} outputs", targets[i], c));
      out[i] = y.f32()[(i - b) * c + targets[i]];
    }
  }
  return out;
}

// ---------------------------------------------------------------- plain gradients

Tensor gradient(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, int64_t batch_rows) {
  detail::check_batch(x, "gradient");
  const int64_t n = x.shape()[0], d = row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("gradient: {} targets for {} rows", targets.size(), n));
  batch_rows = std::max<int64_t>(1, batch_rows);
  Tensor out(x.shape());
  for (int64_t b = 0; b < n; b += batch_rows) {
    const int64_t e = std::min(n, b + batch_rows);
    std::vector<int64_t> t(targets.begin() + b, targets.begin() + e);
    Tensor g = engine::logit_gradient(model, x.slice_rows(b, e), t);
    std::memcpy(out.f32() + b * d, g.f32(), sizeof(float) * (e - b) * d);
  }
  return out;
}

Tensor saliency(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, int64_t batch_rows) {
  Tensor g = gradient(model, x, targets, batch_rows);
  float* p = g.f32();
  for (int64_t i = 0; i < g.numel(); ++i) p[i] = std::fabs(p[i]);
  return g;
}

Tensor input_x_gradient(const Model& model, const Tensor& x, const std::vector<int64_t>& targets, int64_t batch_rows) {
  Tensor g = gradient(model, x, targets, batch_rows);
  float* p = g.f32();
  const float* q = x.f32();
  for (int64_t i = 0; i < g.numel(); ++i) p[i] *= q[i];
  return g;
}

// ---------------------------------------------------------------- integrated gradients

IgRule parse_ig_rule(const std::string& text) {
  if (text == "gausslegendre") return IgRule::GaussLegendre;
  if (text == "riemann_left") return IgRule::RiemannLeft;
  if (text == "riemann_right") return IgRule::RiemannRight;
  if (text == "riemann_middle") return IgRule::RiemannMiddle;
  if (text == "riemann_trapezoid") return IgRule::RiemannTrapezoid;
  throw InputError("explain", fmt::format("--rule: '{}' is not one of gausslegendre, riemann_left, riemann_right, "
                                          "riemann_middle, riemann_trapezoid",
                                          text));
}

void gauss_legendre(int n, std::vector<double>& nodes, std::vector<double>& weights) {
  // Newton iteration on P_n from the Tricomi initial guess cos(pi (i - 1/4) / (n + 1/2));
  // weights 2 / ((1 - x^2) P_n'(x)^2) (Abramowitz & Stegun 25.4.29).
  nodes.assign(n, 0.0);
  weights.assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    double xi = std::cos(M_PI * (i + 0.75) / (n + 0.5));
    double dp = 0;
    for (int it = 0; it < 100; ++it) {
      double p0 = 1, p1 = xi;
      for (int k = 2; k <= n; ++k) {
        double p2 = ((2 * k - 1) * xi * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      if (n == 1) p0 = 1;
      // P_n' = n (x P_n - P_{n-1}) / (x^2 - 1)
      dp = n * (xi * p1 - p0) / (xi * xi - 1);
      const double dx = p1 / dp;
      xi -= dx;
      if (std::fabs(dx) < 1e-15) break;
    }
    // recompute derivative at the converged root
    double p0 = 1, p1 = xi;
    for (int k = 2; k <= n; ++k) {
      double p2 = ((2 * k - 1) * xi * p1 - (k - 1) * p0) / k;
      p0 = p1;
      p1 = p2;
    }
    dp = n * (xi * p1 - p0) / (xi * xi - 1);
    nodes[n - 1 - i] = xi;  // the guess runs from the largest root down; store ascending
    weights[n - 1 - i] = 2.0 / ((1 - xi * xi) * dp * dp);
  }
}

IgPath ig_path(IgRule rule, int steps) {
  IgPath p;
  if (rule == IgRule::GaussLegendre) {
    if (steps < 1) throw ParameterError("explain", "steps", fmt::format(": {} (Gauss-Legendre needs at least 1)", steps));
    std::vector<double> x, w;
    gauss_legendre(steps, x, w);
    // Captum: alphas = 0.5 (1 + x) maps [-1,1] to [0,1]; step sizes = 0.5 w.
    for (int i = 0; i < steps; ++i) {
      p.alphas.push_back(0.5 * (1 + x[i]));
      p.step_sizes.push_back(0.5 * w[i]);
    }
    return p;
  }
  if (steps < 2) throw ParameterError("explain", "steps", fmt::format(": {} (Riemann rules need at least 2)", steps));
  const double n = steps;
  p.step_sizes.assign(steps, 1.0 / n);
  // torch.linspace(a, b, n): a + i (b - a) / (n - 1)
  auto linspace = [&](double a, double b) {
    for (int i = 0; i < steps; ++i) p.alphas.push_back(a + i * (b - a) / (n - 1));
  };
  switch (rule) {
    case IgRule::RiemannTrapezoid:
      // Captum halves the end weights of the 1/n steps (sum = 1 - 1/n).
      p.step_sizes.front() /= 2;
      p.step_sizes.back() /= 2;
      linspace(0, 1);
      break;
    case IgRule::RiemannLeft: linspace(0, 1 - 1 / n); break;
    case IgRule::RiemannMiddle: linspace(1 / (2 * n), 1 - 1 / (2 * n)); break;
    case IgRule::RiemannRight: linspace(1 / n, 1); break;
    default: break;
  }
  return p;
}

IgResult integrated_gradients(const Model& model, const Tensor& x, const Tensor& baseline,
                              const std::vector<int64_t>& targets, const IgOptions& opts) {
  detail::check_batch(x, "integrated-gradients");
  if (baseline.shape() != x.shape())
    throw InputError("explain", fmt::format("integrated-gradients: baseline shape {} differs from input shape {}",
                                            engine::shape_str(baseline.shape()), engine::shape_str(x.shape())));
  const int64_t n = x.shape()[0], d = row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("integrated-gradients: {} targets for {} rows", targets.size(), n));
  const IgPath path = ig_path(opts.rule, opts.steps);
  const int64_t steps = static_cast<int64_t>(path.alphas.size());
  const int64_t total = n * steps;
  const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);
  const engine::Shape rs = detail::row_shape(x);
  const float* xp = x.f32();
  const float* bp = baseline.f32();

  // sum_k w_k grad(b + alpha_k (x - b)), accumulated in double in step order per row,
  // so the chunking never changes the summation order.
  std::vector<double> acc(static_cast<size_t>(n * d), 0.0);
  for (int64_t r0 = 0; r0 < total; r0 += chunk) {
    const int64_t r1 = std::min(total, r0 + chunk);
    Tensor batch(detail::batch_shape(r1 - r0, rs));
    std::vector<int64_t> t(r1 - r0);
    float* q = batch.f32();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / steps, k = r % steps;
      const float a = static_cast<float>(path.alphas[k]);
      const float* xi = xp + i * d;
      const float* bi = bp + i * d;
      float* qi = q + (r - r0) * d;
      for (int64_t j = 0; j < d; ++j) qi[j] = bi[j] + a * (xi[j] - bi[j]);
      t[r - r0] = targets[i];
    }
    Tensor g = engine::logit_gradient(model, batch, t);
    const float* gp = g.f32();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / steps, k = r % steps;
      const double w = path.step_sizes[k];
      double* ai = acc.data() + i * d;
      const float* gi = gp + (r - r0) * d;
      for (int64_t j = 0; j < d; ++j) ai[j] += w * gi[j];
    }
    if (opts.progress) opts.progress(r1 / steps, n);
  }
  IgResult res;
  res.attributions = Tensor(x.shape());
  float* out = res.attributions.f32();
  res.attribution_sum.assign(n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const double v = (double(xp[i * d + j]) - bp[i * d + j]) * acc[i * d + j];
      out[i * d + j] = static_cast<float>(v);
      s += v;
    }
    res.attribution_sum[i] = s;
  }
  res.output_x = target_outputs(model, x, targets);
  res.output_baseline = target_outputs(model, baseline, targets);
  res.relative_gap.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const double diff = res.output_x[i] - res.output_baseline[i];
    res.relative_gap[i] = std::fabs(res.attribution_sum[i] - diff) / std::max(std::fabs(diff), 1e-12);
  }
  return res;
}

// ---------------------------------------------------------------- baselines

namespace {
// Separable Gaussian blur over the last two axes, kernel radius ceil(3 sigma), edges clamped.
Tensor gaussian_blur(const Tensor& x, double sigma) {
  if (x.rank() < 3)
    throw InputError("explain", fmt::format("--baseline blur needs image input [N,...,H,W], got {}",
                                            engine::shape_str(x.shape())));
  if (!(sigma > 0)) throw ParameterError("explain", "blur_sigma", fmt::format(": {} must be positive", sigma));
  const int64_t h = x.dim(-2), w = x.dim(-1), planes = x.numel() / (h * w);
  const int radius = static_cast<int>(std::ceil(3 * sigma));
  std::vector<double> k(2 * radius + 1);
  double ks = 0;
  for (int i = -radius; i <= radius; ++i) ks += k[i + radius] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (auto& v : k) v /= ks;
  Tensor out(x.shape());
  std::vector<double> tmp(h * w);
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = x.f32() + p * h * w;
    float* dst = out.f32() + p * h * w;
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) {
        double s = 0;
        for (int i = -radius; i <= radius; ++i) s += k[i + radius] * src[r * w + std::clamp<int64_t>(c + i, 0, w - 1)];
        tmp[r * w + c] = s;
      }
    for (int64_t r = 0; r < h; ++r)
      for (int64_t c = 0; c < w; ++c) {
        double s = 0;
        for (int i = -radius; i <= radius; ++i) s += k[i + radius] * tmp[std::clamp<int64_t>(r + i, 0, h - 1) * w + c];
        dst[r * w + c] = static_cast<float>(s);
      }
  }
  return out;
}

Tensor broadcast_rows(const Tensor& one, int64_t n) {
  const int64_t d = one.numel();
  Tensor out(detail::batch_shape(n, one.shape()));
  for (int64_t i = 0; i < n; ++i) std::memcpy(out.f32() + i * d, one.f32(), sizeof(float) * d);
  return out;
}
}  // namespace

Tensor make_baseline(const std::string& spec, const Tensor& x, const Tensor* background, double blur_sigma) {
  detail::check_batch(x, "baseline");
  const int64_t n = x.shape()[0], d = row_size(x);
  const engine::Shape rs = detail::row_shape(x);
  if (spec == "zeros") return Tensor(x.shape());
  if (spec == "blur") return gaussian_blur(x, blur_sigma);
  if (spec == "mean") {
    if (!background || background->empty())
      throw InputError("explain", "--baseline mean needs a background set (--background B.npy)");
    if (row_size(*background) != d || background->rank() < 2)
      throw InputError("explain", fmt::format("background shape {} does not match input rows {}",
                                              engine::shape_str(background->shape()), engine::shape_str(rs)));
    Tensor mean(rs);
    const int64_t m = background->shape()[0];
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t i = 0; i < m; ++i) s += background->f32()[i * d + j];
      mean.f32()[j] = static_cast<float>(s / m);
    }
    return broadcast_rows(mean, n);
  }
  if (spec.size() > 4 && spec.substr(spec.size() - 4) == ".npy") {
    Tensor b = datasets::read_npy_float(spec);
    if (b.shape() == x.shape()) return b;
    if (b.numel() == d) return broadcast_rows(b.reshape(rs), n);
    if (b.rank() >= 1 && b.shape()[0] == 1 && b.numel() == d) return broadcast_rows(b.reshape(rs), n);
    throw InputError("explain", fmt::format("baseline {}: shape {} is neither one sample {} nor the input shape {}", spec,
                                            engine::shape_str(b.shape()), engine::shape_str(rs),
                                            engine::shape_str(x.shape())));
  }
  throw InputError("explain", fmt::format("--baseline: '{}' is not zeros, mean, blur or a .npy file", spec));
}

// ---------------------------------------------------------------- SmoothGrad

Tensor smoothgrad(const Model& model, const Tensor& x, const std::vector<int64_t>& targets,
                  const SmoothGradOptions& opts) {
  detail::check_batch(x, "smoothgrad");
  const int64_t n = x.shape()[0], d = row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("smoothgrad: {} targets for {} rows", targets.size(), n));
  int64_t samples = opts.samples;
  if (opts.noise) {
    if (opts.noise->rank() < 1 || row_size(*opts.noise) != d)
      throw InputError("explain", fmt::format("smoothgrad: noise shape {} does not match rows of {}",
                                              engine::shape_str(opts.noise->shape()), engine::shape_str(x.shape())));
    samples = opts.noise->shape()[0];
  }
  if (samples < 1) throw ParameterError("explain", "samples", fmt::format(": {} must be at least 1", samples));
  if (!(opts.noise_level >= 0)) throw ParameterError("explain", "noise_level", " must be non-negative");
  const engine::Shape rs = detail::row_shape(x);
  const float* xp = x.f32();
  // sigma_i = noise_level * (max(x_i) - min(x_i))  (Smilkov et al. 2017, Sec. 3)
  std::vector<double> sigma(n);
  for (int64_t i = 0; i < n; ++i) {
    auto [lo, hi] = std::minmax_element(xp + i * d, xp + (i + 1) * d);
    sigma[i] = opts.stdevs >= 0 ? opts.stdevs : opts.noise_level * (double(*hi) - *lo);
  }
  // One stream per row, keyed by its index in the whole data set (detail::row_seed): the rows run
  // in order, so the stream is restarted where a row's first sample starts.
  detail::Rng rng(0);
  const int64_t total = n * samples;
  const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);
  std::vector<double> acc(static_cast<size_t>(n * d), 0.0);
  for (int64_t r0 = 0; r0 < total; r0 += chunk) {
    const int64_t r1 = std::min(total, r0 + chunk);
    Tensor batch(detail::batch_shape(r1 - r0, rs));
    std::vector<int64_t> t(r1 - r0);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / samples, k = r % samples;
      float* q = batch.f32() + (r - r0) * d;
      const float* xi = xp + i * d;
      if (opts.noise) {
        const float* e = opts.noise->f32() + k * d;
        for (int64_t j = 0; j < d; ++j) q[j] = xi[j] + e[j];
      } else {
        if (k == 0) rng = detail::Rng(detail::row_seed(opts.seed, opts.row_offset + i));
        for (int64_t j = 0; j < d; ++j) q[j] = static_cast<float>(xi[j] + sigma[i] * rng.normal());
      }
      t[r - r0] = targets[i];
    }
    Tensor g = engine::logit_gradient(model, batch, t);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r / samples;
      const float* gi = g.f32() + (r - r0) * d;
      double* ai = acc.data() + i * d;
      if (opts.squared)
        for (int64_t j = 0; j < d; ++j) ai[j] += double(gi[j]) * gi[j];
      else
        for (int64_t j = 0; j < d; ++j) ai[j] += gi[j];
    }
    if (opts.progress) opts.progress(r1 / samples, n);
  }
  Tensor out(x.shape());
  for (int64_t i = 0; i < n * d; ++i) out.f32()[i] = static_cast<float>(acc[i] / samples);
  return out;
}

}  // namespace mlaudit::explain
