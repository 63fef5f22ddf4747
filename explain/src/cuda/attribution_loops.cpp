// The explain module's device loops: integrated gradients and SmoothGrad batches built, run
// (forward + input gradient on the Program, the Session's graph on the device) and reduced on the
// device with this module's kernels (attribution_kernels.cu). The CPU twins are in gradient.cpp.
#include "attribution_loops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>

#include "../detail.h"
#include "attribution_kernels.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::explain::cuda {

namespace ec = ::mlaudit::engine::cuda;
using ec::DeviceArray;
using ec::with_batch;
using engine::DType;
using engine::Shape;
using engine::Tensor;
using engine::shape_numel;
using engine::shape_str;

namespace {

// Seed rows [m, k] with `weight[r]` at column `target` (d/dlogits of sum_r weight_r * logits[r, target]).
DeviceArray target_seed(int64_t m, int64_t k, int64_t target, const std::vector<float>& weight, const ec::Stream& st) {
  Tensor seed(Shape{m, k});
  for (int64_t r = 0; r < m; ++r) seed.f32()[r * k + target] = weight[size_t(r)];
  return ec::upload_array(seed, st);
}

void check_targets(const std::vector<int64_t>& targets, int64_t images, int64_t k, const char* what) {
  if (static_cast<int64_t>(targets.size()) != images)
    throw InputError("explain", fmt::format("{}: {} targets for {} inputs", what, targets.size(), images));
  for (int64_t t : targets)
    if (t < 0 || t >= k) throw InputError("explain", fmt::format("{}: target {} out of range for {} outputs", what, t, k));
}

int64_t output_classes(const ec::Program& p, const Shape& sample, const char* what) {
  DeviceArray out = p.forward(ec::device_array_zeros(with_batch(sample, 1), p.stream()));
  if (out.shape.size() != 2)
    throw InputError("explain", fmt::format("{}: the model output {} is not [N, classes]", what, shape_str(out.shape)));
  return out.shape[1];
}

}  // namespace

Tensor integrated_gradients_on(const ec::Program& p, const Tensor& x, const Tensor& baseline,
                               const std::vector<int64_t>& targets, const std::vector<double>& alphas,
                               const std::vector<double>& weights, int64_t batch, const engine::ProgressFn& progress) {
  ec::require_float_batch(x, "explain", "integrated gradients");
  if (!baseline.empty() && baseline.shape() != x.shape())
    throw InputError("explain", fmt::format("integrated gradients: baseline shape {} differs from the input's {}",
                                            shape_str(baseline.shape()), shape_str(x.shape())));
  if (alphas.empty() || alphas.size() != weights.size())
    throw InputError("explain", "integrated gradients: alphas and weights must be non-empty and of equal length");
  std::lock_guard<std::mutex> lock(p.lock());
  const ec::Stream& st = p.stream();
  ec::StreamScope scope(st);
  void* s = st.get();
  const int64_t images = x.shape()[0];
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t k = output_classes(p, sample, "integrated gradients");
  check_targets(targets, images, k, "integrated gradients");
  const int64_t steps = static_cast<int64_t>(alphas.size());
  int64_t chunk = batch > 0 ? batch : p.fitting_batch(sample, 4096);
  chunk = std::max<int64_t>(1, std::min(chunk, steps));
  const Tensor base = baseline.empty() ? Tensor(x.shape()) : baseline.to(DType::Float32);
  const int64_t d = shape_numel(sample);
  Tensor result(x.shape());
  Tensor diff_h(with_batch(sample, 1));
  std::vector<float> acc_h(static_cast<size_t>(d));
  DeviceArray points = ec::device_array(with_batch(sample, chunk));
  ec::BufferPtr alpha_d = ec::allocate(size_t(chunk) * sizeof(float));
  for (int64_t b = 0; b < images; ++b) {
    // x - baseline (float, as the CPU loop), [1, sample]
    const float* xb = x.f32() + b * d;
    const float* bb = base.f32() + b * d;
    for (int64_t j = 0; j < d; ++j) diff_h.f32()[j] = xb[j] - bb[j];
    DeviceArray base_d = ec::upload_array(base.slice_rows(b, b + 1), st);
    DeviceArray diff_d = ec::upload_array(diff_h, st);
    DeviceArray acc = ec::device_array_zeros(with_batch(sample, 1), st);
    for (int64_t s0 = 0; s0 < steps; s0 += chunk) {
      const int64_t m = std::min(chunk, steps - s0);
      std::vector<float> a(static_cast<size_t>(m)), w(static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r) {
        a[size_t(r)] = float(alphas[size_t(s0 + r)]);
        w[size_t(r)] = float(weights[size_t(s0 + r)]);
      }
      ec::upload(alpha_d->get(), a.data(), a.size() * sizeof(float), st);
      // Path points base + alpha_k (x - base), built on the device.
      launch_ig_points(base_d.f(), diff_d.f(), alpha_d->f32(), points.f(), m, d, s);
      ec::Tape tape;
      p.forward(ec::first_rows(points, m), &tape);
      // Weighted one-hot seed: the gradient rows come out already multiplied by w_k.
      DeviceArray grad = p.input_gradient(tape, target_seed(m, k, targets[size_t(b)], w, st));
      launch_accumulate_rows(grad.f(), acc.f(), m, d, 1.0, false, s);
    }
    ec::download(acc_h.data(), acc.f(), size_t(d) * sizeof(float), st);
    for (int64_t j = 0; j < d; ++j) result.f32()[b * d + j] = acc_h[size_t(j)] * diff_h.f32()[j];
    if (progress) progress(b + 1, images);
  }
  return result;
}

Tensor smoothgrad_on(const ec::Program& p, const Tensor& x, const std::vector<int64_t>& targets,
                     const std::vector<float>& sigmas, int64_t n, bool squared, int64_t batch, uint64_t seed,
                     const NoisySamples& samples_fn, const engine::ProgressFn& progress) {
  ec::require_float_batch(x, "explain", "SmoothGrad");
  const int64_t images = x.shape()[0];
  if (n < 1) throw InputError("explain", "SmoothGrad: n must be >= 1");
  if (sigmas.size() != 1 && static_cast<int64_t>(sigmas.size()) != images)
    throw InputError("explain", fmt::format("SmoothGrad: {} sigmas for {} inputs", sigmas.size(), images));
  for (float sg : sigmas)
    if (!(sg >= 0)) throw InputError("explain", "SmoothGrad: sigma must be >= 0");
  std::lock_guard<std::mutex> lock(p.lock());
  const ec::Stream& st = p.stream();
  ec::StreamScope scope(st);
  void* s = st.get();
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t d = shape_numel(sample);
  const int64_t k = output_classes(p, sample, "SmoothGrad");
  check_targets(targets, images, k, "SmoothGrad");
  int64_t chunk = batch > 0 ? batch : p.fitting_batch(sample, 4096);
  chunk = std::max<int64_t>(1, std::min(chunk, n));
  // Device noise only without host samples (cuRAND is opened at its first use).
  std::optional<ec::Rng> rng;
  if (!samples_fn) rng.emplace(seed, st);
  ec::BufferPtr noise = samples_fn ? nullptr : ec::allocate(size_t(chunk * d + 1) * sizeof(float));
  std::vector<float> host_samples(samples_fn ? static_cast<size_t>(chunk * d) : 0);
  DeviceArray samples = ec::device_array(with_batch(sample, chunk));
  Tensor result(x.shape());
  for (int64_t b = 0; b < images; ++b) {
    DeviceArray xb = ec::upload_array(x.slice_rows(b, b + 1), st);
    DeviceArray acc = ec::device_array_zeros(xb.shape, st);
    const float sigma = sigmas.size() == 1 ? sigmas[0] : sigmas[size_t(b)];
    for (int64_t done = 0; done < n; done += chunk) {
      const int64_t m = std::min(chunk, n - done);
      if (samples_fn) {
        samples_fn(b, done, m, host_samples.data());
        ec::upload(samples.f(), host_samples.data(), size_t(m * d) * sizeof(float), st);
      } else {
        rng->normal(noise->f32(), size_t(m * d));
        launch_add_noise(xb.f(), noise->f32(), samples.f(), m, d, sigma, s);
      }
      ec::Tape tape;
      p.forward(ec::first_rows(samples, m), &tape);
      DeviceArray grad = p.input_gradient(tape, target_seed(m, k, targets[size_t(b)], std::vector<float>(size_t(m), 1.f), st));
      launch_accumulate_rows(grad.f(), acc.f(), m, d, 1.0 / double(n), squared, s);
    }
    ec::download(result.f32() + b * d, acc.f(), size_t(d) * sizeof(float), st);
    if (progress) progress(b + 1, images);
  }
  return result;
}

// ---- integrated_gradients() / smoothgrad() (gradient.cpp) with the loops above: the same checks,
// quadrature, sigmas, noise stream and result fields.

IgResult integrated_gradients_result_on(const ec::Program& program, const engine::Model& model, const Tensor& x,
                                        const Tensor& baseline, const std::vector<int64_t>& targets, const IgOptions& opts) {
  // integrated_gradients()'s checks and quadrature (gradient.cpp).
  detail::check_batch(x, "integrated-gradients");
  if (baseline.shape() != x.shape())
    throw InputError("explain", fmt::format("integrated-gradients: baseline shape {} differs from input shape {}",
                                            engine::shape_str(baseline.shape()), engine::shape_str(x.shape())));
  const int64_t n = x.shape()[0], d = detail::row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("integrated-gradients: {} targets for {} rows", targets.size(), n));
  const IgPath path = ig_path(opts.rule, opts.steps);
  IgResult res;
  res.attributions = integrated_gradients_on(program, x, baseline, targets, path.alphas, path.step_sizes, 0,
                                                   opts.progress);
  const float* a = res.attributions.f32();
  res.attribution_sum.assign(size_t(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += a[i * d + j];
    res.attribution_sum[size_t(i)] = s;
  }
  res.output_x = target_outputs(model, x, targets);
  res.output_baseline = target_outputs(model, baseline, targets);
  res.relative_gap.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const double diff = res.output_x[size_t(i)] - res.output_baseline[size_t(i)];
    res.relative_gap[size_t(i)] = std::fabs(res.attribution_sum[size_t(i)] - diff) / std::max(std::fabs(diff), 1e-12);
  }
  return res;
}

Tensor smoothgrad_options_on(const ec::Program& program, const Tensor& x, const std::vector<int64_t>& targets,
                             const SmoothGradOptions& opts) {
  // smoothgrad()'s checks, sigmas and noise (gradient.cpp): the same samples in the same order.
  detail::check_batch(x, "smoothgrad");
  const int64_t n = x.shape()[0], d = detail::row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("smoothgrad: {} targets for {} rows", targets.size(), n));
  int64_t samples = opts.samples;
  if (opts.noise) {
    if (opts.noise->rank() < 1 || detail::row_size(*opts.noise) != d)
      throw InputError("explain", fmt::format("smoothgrad: noise shape {} does not match rows of {}",
                                              engine::shape_str(opts.noise->shape()), engine::shape_str(x.shape())));
    samples = opts.noise->shape()[0];
  }
  if (samples < 1) throw ParameterError("explain", "samples", fmt::format(": {} must be at least 1", samples));
  if (!(opts.noise_level >= 0)) throw ParameterError("explain", "noise_level", " must be non-negative");
  const float* xp = x.f32();
  std::vector<double> sigma(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    auto [lo, hi] = std::minmax_element(xp + i * d, xp + (i + 1) * d);
    sigma[size_t(i)] = opts.stdevs >= 0 ? opts.stdevs : opts.noise_level * (double(*hi) - *lo);
  }
  detail::Rng rng(0);
  const Tensor* fixed = opts.noise;
  // Called for rows in order and samples in order: each row's own stream (detail::row_seed), as
  // the CPU loop draws it.
  auto fill = [&](int64_t row, int64_t first, int64_t count, float* out) {
    const float* xi = xp + row * d;
    if (!fixed && first == 0) rng = detail::Rng(detail::row_seed(opts.seed, opts.row_offset + row));
    for (int64_t k = 0; k < count; ++k) {
      float* q = out + k * d;
      if (fixed) {
        const float* e = fixed->f32() + (first + k) * d;
        for (int64_t j = 0; j < d; ++j) q[j] = xi[j] + e[j];
      } else {
        for (int64_t j = 0; j < d; ++j) q[j] = static_cast<float>(xi[j] + sigma[size_t(row)] * rng.normal());
      }
    }
  };
  std::vector<float> sig(sigma.begin(), sigma.end());
  return smoothgrad_on(program, x, targets, sig, samples, opts.squared, 0, opts.seed, fill, opts.progress);
}

}  // namespace mlaudit::explain::cuda
