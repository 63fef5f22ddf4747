// Common corruptions, severities 1..5 with the CIFAR-10-C constants of Hendrycks &
// Dietterich 2019 (make_cifar_c.py), on float images in [0,1].
#include "mlaudit/robustness/corruptions.h"

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fmt/format.h>
#include <random>

#include "common.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/random.h"

namespace mlaudit::robustness {

const std::vector<std::string>& image_corruptions() {
  static const std::vector<std::string> v = {"gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur",
                                             "brightness", "contrast", "pixelate", "jpeg_compression"};
  return v;
}

const std::vector<std::string>& tabular_corruptions() {
  static const std::vector<std::string> v = {"feature_noise", "feature_dropout"};
  return v;
}

namespace {

float clip01(double v) { return float(std::clamp(v, 0.0, 1.0)); }

// PIL's BOX resampling along one axis (ImagingResample precompute_coeffs): output pixel j
// averages the source pixels whose centres fall in its footprint, centre (j + 0.5) * scale.
std::vector<std::vector<std::pair<int64_t, double>>> box_coeffs(int64_t in, int64_t out) {
  const double scale = double(in) / double(out);
  const double filterscale = std::max(scale, 1.0);
  const double support = 0.5 * filterscale;
  std::vector<std::vector<std::pair<int64_t, double>>> c(static_cast<size_t>(out));
  for (int64_t j = 0; j < out; ++j) {
    const double center = (j + 0.5) * scale;
    const int64_t xmin = std::max<int64_t>(int64_t(center - support + 0.5), 0);
    const int64_t xmax = std::min<int64_t>(int64_t(center + support + 0.5), in);
    double total = 0;
    for (int64_t x = xmin; x < xmax; ++x) {
      const double t = (x - center + 0.5) / filterscale;
      if (t >= -0.5 && t < 0.5) { c[size_t(j)].push_back({x, 1.0}); total += 1.0; }
    }
    for (auto& p : c[size_t(j)]) p.second /= total;
  }
  return c;
}

// Resize one channel plane (h x w) to (h2 x w2) with the box filter, horizontal pass first.
std::vector<double> box_resize(const std::vector<double>& img, int64_t h, int64_t w, int64_t h2, int64_t w2) {
  auto cw = box_coeffs(w, w2), ch = box_coeffs(h, h2);
  std::vector<double> tmp(size_t(h * w2), 0.0), out(size_t(h2 * w2), 0.0);
  for (int64_t r = 0; r < h; ++r)
    for (int64_t j = 0; j < w2; ++j)
      for (auto [x, wt] : cw[size_t(j)]) tmp[size_t(r * w2 + j)] += wt * img[size_t(r * w + x)];
  for (int64_t i = 0; i < h2; ++i)
    for (int64_t j = 0; j < w2; ++j)
      for (auto [y, wt] : ch[size_t(i)]) out[size_t(i * w2 + j)] += wt * tmp[size_t(y * w2 + j)];
  return out;
}

// 1-D Gaussian kernel as scipy.ndimage.gaussian_filter: radius int(4 sigma + 0.5), normalised.
std::vector<double> gaussian_kernel(double sigma) {
  const int radius = int(4.0 * sigma + 0.5);
  std::vector<double> k(static_cast<size_t>(2 * radius + 1));
  double s = 0;
  for (int i = -radius; i <= radius; ++i) s += k[size_t(i + radius)] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (auto& v : k) v /= s;
  return k;
}

// libjpeg reports fatal errors through error_exit; jump back instead of exiting the process.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};
void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// One image (interleaved 8-bit samples, 1 or 3 components) through a JPEG encode/decode at
// `quality` with libjpeg(-turbo)'s defaults: baseline, standard tables, ISLOW DCT, 4:2:0
// chroma subsampling for RGB (what PIL's Image.save(format="JPEG", quality=q) does).
std::vector<uint8_t> jpeg_roundtrip(const std::vector<uint8_t>& pixels, int width, int height, int components, int quality) {
  JpegError err{};
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  std::vector<uint8_t> out(pixels.size());
  {
    jpeg_compress_struct c{};
    c.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    if (setjmp(err.jump)) {
      jpeg_destroy_compress(&c);
      std::free(buffer);
      throw Error("robustness", std::string("jpeg_compression: libjpeg encode failed: ") + err.message);
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buffer, &size);
    c.image_width = JDIMENSION(width);
    c.image_height = JDIMENSION(height);
    c.input_components = components;
    c.in_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
      JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + size_t(c.next_scanline) * size_t(width * components));
      jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
  }
  {
    jpeg_decompress_struct d{};
    d.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_error_exit;
    if (setjmp(err.jump)) {
      jpeg_destroy_decompress(&d);
      std::free(buffer);
      throw Error("robustness", std::string("jpeg_compression: libjpeg decode failed: ") + err.message);
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, buffer, size);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = components == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&d);
    while (d.output_scanline < d.output_height) {
      JSAMPROW row = out.data() + size_t(d.output_scanline) * size_t(width * components);
      jpeg_read_scanlines(&d, &row, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
  }
  std::free(buffer);
  return out;
}

}  // namespace

namespace {
// Sample `index`'s own stream: every random draw of a sample depends on (seed, its global index)
// only, so a slice of the data (--shard) draws exactly what the whole run draws for those rows.
engine::Xoshiro256 sample_stream(uint64_t seed, int64_t index) {
  return engine::Xoshiro256(seed ^ (uint64_t(index) * 0xD1B54A32D192ED03ULL));
}
}  // namespace

engine::Tensor corrupt(const engine::Tensor& x_in, const std::string& name, int severity, uint64_t seed,
                       const std::vector<double>& column_mean, const std::vector<double>& column_std, int64_t first_index) {
  if (severity < 1 || severity > 5) throw InputError("robustness", fmt::format("corruption severity must be 1..5, got {}", severity));
  const size_t s = size_t(severity - 1);
  const bool is_image = std::find(image_corruptions().begin(), image_corruptions().end(), name) != image_corruptions().end();
  const bool is_tab = std::find(tabular_corruptions().begin(), tabular_corruptions().end(), name) != tabular_corruptions().end();
  if (!is_image && !is_tab)
    throw InputError("robustness", "unknown corruption '" + name + "' (image: gaussian_noise, shot_noise, impulse_noise, gaussian_blur, brightness, contrast, pixelate, jpeg_compression; tabular: feature_noise, feature_dropout)");
  engine::Tensor x = x_in.to(engine::DType::Float32).clone();
  float* p = x.f32();
  const int64_t total = x.numel();
  if (is_tab) {
    if (x.rank() != 2) throw InputError("robustness", name + " is a tabular corruption: data must be [N,F], got " + engine::shape_str(x.shape()));
    const int64_t n = x.dim(0), f = x.dim(1);
    if (int64_t(column_mean.size()) != f || int64_t(column_std.size()) != f)
      throw InputError("robustness", "tabular corruption needs a mean and std per column");
    if (name == "feature_noise") {
      // x_ij + N(0, (c * std_j)^2), c = 0.1, 0.2, 0.3, 0.5, 1.0 (mlaudit's definition).
      static const double c[] = {0.1, 0.2, 0.3, 0.5, 1.0};
      for (int64_t i = 0; i < n; ++i) {
        auto rng = sample_stream(seed, first_index + i);
        std::normal_distribution<double> g(0, 1);
        for (int64_t j = 0; j < f; ++j) p[i * f + j] = float(p[i * f + j] + c[s] * column_std[size_t(j)] * g(rng));
      }
    } else {
      // Each cell replaced by its column mean with probability c = 0.1 .. 0.5 (mlaudit's definition).
      static const double c[] = {0.1, 0.2, 0.3, 0.4, 0.5};
      std::bernoulli_distribution drop(c[s]);
      for (int64_t i = 0; i < n; ++i) {
        auto rng = sample_stream(seed, first_index + i);
        for (int64_t j = 0; j < f; ++j)
          if (drop(rng)) p[i * f + j] = float(column_mean[size_t(j)]);
      }
    }
    return x;
  }
  if (x.rank() != 4) throw InputError("robustness", name + " is an image corruption: data must be [N,C,H,W], got " + engine::shape_str(x.shape()));
  const int64_t n = x.dim(0), ch = x.dim(1), h = x.dim(2), w = x.dim(3), plane = h * w;
  const int64_t per_sample = n ? total / n : 0;
  if (name == "gaussian_noise") {
    static const double c[] = {0.04, 0.06, 0.08, 0.09, 0.10};
    for (int64_t b = 0; b < n; ++b) {
      auto rng = sample_stream(seed, first_index + b);
      std::normal_distribution<double> g(0, c[s]);
      for (int64_t k = b * per_sample; k < (b + 1) * per_sample; ++k) p[k] = clip01(p[k] + g(rng));
    }
  } else if (name == "shot_noise") {
    // Poisson(x * c) / c.
    static const double c[] = {500, 250, 100, 75, 50};
    for (int64_t b = 0; b < n; ++b) {
      auto rng = sample_stream(seed, first_index + b);
      for (int64_t k = b * per_sample; k < (b + 1) * per_sample; ++k) {
        const double lambda = double(p[k]) * c[s];
        if (!(lambda > 0)) { p[k] = 0.f; continue; }  // Poisson(0) is 0 (std::poisson_distribution needs mean > 0)
        std::poisson_distribution<int64_t> po(lambda);
        p[k] = clip01(double(po(rng)) / c[s]);
      }
    }
  } else if (name == "impulse_noise") {
    // Salt and pepper (skimage random_noise mode "s&p"): each value replaced with probability c, half salt.
    static const double c[] = {0.01, 0.02, 0.03, 0.05, 0.07};
    for (int64_t b = 0; b < n; ++b) {
      auto rng = sample_stream(seed, first_index + b);
      std::bernoulli_distribution hit(c[s]), salt(0.5);
      for (int64_t k = b * per_sample; k < (b + 1) * per_sample; ++k)
        if (hit(rng)) p[k] = salt(rng) ? 1.f : 0.f;
    }
  } else if (name == "gaussian_blur") {
    // skimage.filters.gaussian(sigma = c, mode "nearest"), separable per channel.
    static const double c[] = {0.4, 0.6, 0.7, 0.8, 1.0};
    auto k = gaussian_kernel(c[s]);
    const int64_t r = int64_t(k.size() / 2);
    std::vector<double> tmp(static_cast<size_t>(plane));
    for (int64_t b = 0; b < n * ch; ++b) {
      float* img = p + b * plane;
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double v = 0;
          for (int64_t t = -r; t <= r; ++t) v += k[size_t(t + r)] * img[i * w + std::clamp<int64_t>(j + t, 0, w - 1)];
          tmp[size_t(i * w + j)] = v;
        }
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          double v = 0;
          for (int64_t t = -r; t <= r; ++t) v += k[size_t(t + r)] * tmp[size_t(std::clamp<int64_t>(i + t, 0, h - 1) * w + j)];
          img[i * w + j] = clip01(v);
        }
    }
  } else if (name == "brightness") {
    // HSV value shift V' = clip(V + c); with H and S fixed, RGB scales by V'/V. One
    // channel: V is the pixel itself.
    static const double c[] = {0.05, 0.1, 0.15, 0.2, 0.3};
    for (int64_t b = 0; b < n; ++b) {
      float* img = p + b * ch * plane;
      for (int64_t q = 0; q < plane; ++q) {
        double v = 0;
        for (int64_t cc = 0; cc < ch; ++cc) v = std::max(v, double(img[cc * plane + q]));
        const double v2 = std::clamp(v + c[s], 0.0, 1.0);
        for (int64_t cc = 0; cc < ch; ++cc) {
          float& e = img[cc * plane + q];
          e = v > 0 ? clip01(e * v2 / v) : float(v2);
        }
      }
    }
  } else if (name == "contrast") {
    // (x - mean) * c + mean with the per-channel spatial mean.
    static const double c[] = {0.75, 0.5, 0.4, 0.3, 0.15};
    for (int64_t b = 0; b < n * ch; ++b) {
      float* img = p + b * plane;
      double m = 0;
      for (int64_t q = 0; q < plane; ++q) m += img[q];
      m /= double(plane);
      for (int64_t q = 0; q < plane; ++q) img[q] = clip01((img[q] - m) * c[s] + m);
    }
  } else if (name == "jpeg_compression") {
    // CIFAR-10-C: PIL JPEG save at quality c and reload. Pixels are quantised to 8 bits as PIL
    // does (round(x * 255)); 3-channel images are coded as RGB, any other channel count one
    // grayscale plane per channel.
    static const int c[] = {80, 65, 58, 50, 40};
    const int comps = ch == 3 ? 3 : 1;
    const int64_t planes_per_image = ch == 3 ? 1 : ch;
    if (h > 65500 || w > 65500) throw InputError("robustness", "jpeg_compression: images larger than 65500 pixels per side");
    std::vector<uint8_t> px(static_cast<size_t>(plane * comps));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t cp = 0; cp < planes_per_image; ++cp) {
        float* img = p + b * ch * plane + cp * plane;
        for (int64_t q = 0; q < plane; ++q)
          for (int k = 0; k < comps; ++k)
            px[size_t(q * comps + k)] = uint8_t(std::lround(std::clamp(double(img[k * plane + q]), 0.0, 1.0) * 255.0));
        auto back = jpeg_roundtrip(px, int(w), int(h), comps, c[s]);
        for (int64_t q = 0; q < plane; ++q)
          for (int k = 0; k < comps; ++k) img[k * plane + q] = float(back[size_t(q * comps + k)]) / 255.f;
      }
  } else if (name == "pixelate") {
    // PIL BOX down to int(size * c) and back up with BOX (in float, without PIL's 8-bit rounding).
    static const double c[] = {0.95, 0.9, 0.85, 0.75, 0.65};
    const int64_t h2 = std::max<int64_t>(1, int64_t(h * c[s])), w2 = std::max<int64_t>(1, int64_t(w * c[s]));
    std::vector<double> img(static_cast<size_t>(plane));
    for (int64_t b = 0; b < n * ch; ++b) {
      float* pl = p + b * plane;
      for (int64_t q = 0; q < plane; ++q) img[size_t(q)] = pl[q];
      auto small = box_resize(img, h, w, h2, w2);
      auto back = box_resize(small, h2, w2, h, w);
      for (int64_t q = 0; q < plane; ++q) pl[q] = clip01(back[size_t(q)]);
    }
  }
  return x;
}

double CorruptionReport::mean_accuracy(const std::string& corruption) const {
  double s = 0;
  int k = 0;
  for (const auto& e : scores)
    if (e.corruption == corruption) { s += e.accuracy; ++k; }
  return k ? s / k : 0.0;
}

double CorruptionReport::mean_corruption_accuracy() const {
  double s = 0;
  for (const auto& e : scores) s += e.accuracy;
  return scores.empty() ? 0.0 : s / double(scores.size());
}

CorruptionReport evaluate_corruptions(const engine::Model& model, const engine::Tensor& x_in,
                                      const std::vector<int64_t>& labels, const std::vector<std::string>& corruptions,
                                      const std::vector<int>& severities, uint64_t seed, int batch,
                                      const engine::ProgressFn& progress, int64_t first, int64_t end) {
  const engine::Tensor x_all = x_in.to(engine::DType::Float32);
  if (x_all.rank() < 2) throw InputError("robustness", "input data must be [N, ...], got " + engine::shape_str(x_all.shape()));
  if (int64_t(labels.size()) != x_all.dim(0))
    throw InputError("robustness", fmt::format("labels have {} entries but the data has {} samples", labels.size(), x_all.dim(0)));
  if (batch < 1) throw ParameterError("robustness", "batch", " must be >= 1");
  if (end < 0) end = x_all.dim(0);
  if (first < 0 || first > end || end > x_all.dim(0))
    throw InputError("robustness", fmt::format("rows [{}, {}) are outside the {} samples", first, end, x_all.dim(0)));
  // Tabular statistics always come from every row, so a slice corrupts its rows as the whole run does.
  std::vector<double> mean, stdev;
  if (x_all.rank() == 2) {
    const int64_t n = x_all.dim(0), f = x_all.dim(1);
    mean.assign(size_t(f), 0.0);
    stdev.assign(size_t(f), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < f; ++j) mean[size_t(j)] += x_all.f32()[i * f + j] / double(n);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < f; ++j) {
        const double dv = x_all.f32()[i * f + j] - mean[size_t(j)];
        stdev[size_t(j)] += dv * dv / double(std::max<int64_t>(n - 1, 1));
      }
    for (auto& v : stdev) v = std::sqrt(v);
  }
  const engine::Tensor x = first == 0 && end == x_all.dim(0) ? x_all : x_all.slice_rows(first, end);
  auto correct = [&](const engine::Tensor& xs) {
    engine::Tensor logits = detail::forward_batched(model, xs, batch);
    if (logits.rank() != 2 || logits.dim(0) != xs.dim(0))
      throw InputError("robustness", "model output must be logits [N,C], got " + engine::shape_str(logits.shape()));
    int64_t ok = 0;
    for (int64_t i = 0; i < xs.dim(0); ++i) ok += detail::row_argmax(logits, i) == labels[size_t(first + i)];
    return ok;
  };
  CorruptionReport rep;
  rep.n = x.dim(0);
  rep.clean_correct = correct(x);
  rep.clean_accuracy = rep.accuracy(rep.clean_correct);
  uint64_t k = 0;
  for (const auto& c : corruptions)
    for (int s : severities) {
      engine::Tensor xc = corrupt(x, c, s, seed * 7919ULL + (++k), mean, stdev, first);
      const int64_t ok = correct(xc);
      rep.scores.push_back({c, s, rep.accuracy(ok), ok});
      if (progress) progress(int64_t(k), int64_t(corruptions.size() * severities.size()));
    }
  return rep;
}

}  // namespace mlaudit::robustness
