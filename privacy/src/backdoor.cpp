// Backdoor scanning: Neural Cleanse (Wang et al. 2019) and STRIP (Gao et al. 2019).
#include "mlaudit/privacy/backdoor.h"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::privacy {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw InputError("privacy", msg); }

void check_images(const engine::Tensor& x, const char* what) {
  if (x.empty() || x.rank() != 4)
    fail(fmt::format("{} must be images [N,C,H,W], got {}", what, x.empty() ? "nothing" : engine::shape_str(x.shape())));
  if (x.dtype() != engine::DType::Float32) fail(fmt::format("{} must be float32, got {}", what, engine::dtype_name(x.dtype())));
  if (x.dim(0) == 0) fail(fmt::format("{} is empty", what));
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Adam (Kingma & Ba 2015) on a flat parameter vector, bias-corrected, step t >= 1.
struct Adam {
  std::vector<double> m, v;
  double lr, b1, b2, eps;
  void step(std::vector<double>& w, const std::vector<double>& g, int t) {
    const double c1 = 1.0 - std::pow(b1, t), c2 = 1.0 - std::pow(b2, t);
    for (size_t k = 0; k < w.size(); ++k) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
      w[k] -= lr * (m[k] / c1) / (std::sqrt(v[k] / c2) + eps);
    }
  }
};

void append_bytes(png_structp png, png_bytep data, png_size_t len) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), len);
}
void no_flush(png_structp) {}

}  // namespace

ReversedTrigger reverse_trigger(const engine::Model& model, const engine::Tensor& x_clean, int64_t target,
                                const NeuralCleanseConfig& cfg) {
  check_images(x_clean, "clean images");
  if (cfg.epochs < 1 || cfg.batch < 1) fail(fmt::format("Neural Cleanse needs epochs >= 1 and batch >= 1 (got {}, {})", cfg.epochs, cfg.batch));
  if (!(cfg.clip_max > cfg.clip_min)) fail("Neural Cleanse needs clip_max > clip_min");
  const int64_t n = x_clean.dim(0), ch = x_clean.dim(1), h = x_clean.dim(2), w = x_clean.dim(3), hw = h * w;
  const double lo = cfg.clip_min, span = cfg.clip_max - cfg.clip_min;
  // Reference parameterisation: m = tanh(a) / (2 - eps) + 0.5 keeps the mask strictly in (0,1).
  const double keps = 1e-7, squash = 2.0 - keps;
  std::mt19937_64 rng(cfg.seed * 1000003ULL + uint64_t(target));
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::vector<double> a(static_cast<size_t>(hw)), b(static_cast<size_t>(ch * hw));
  for (auto& v : a) v = std::atanh((uni(rng) - 0.5) * squash);  // reference: mask_init = random
  for (auto& v : b) v = std::atanh((uni(rng) - 0.5) * squash);  // reference: pattern_init = random
  Adam opt_a{std::vector<double>(a.size(), 0.0), std::vector<double>(a.size(), 0.0), cfg.learning_rate, cfg.beta1,
             cfg.beta2, cfg.adam_epsilon};
  Adam opt_b{std::vector<double>(b.size(), 0.0), std::vector<double>(b.size(), 0.0), cfg.learning_rate, cfg.beta1,
             cfg.beta2, cfg.adam_epsilon};
  std::vector<double> mask(static_cast<size_t>(hw)), pattern(static_cast<size_t>(ch * hw));
  auto materialise = [&] {
    for (int64_t k = 0; k < hw; ++k) mask[size_t(k)] = std::tanh(a[size_t(k)]) / squash + 0.5;
    for (int64_t k = 0; k < ch * hw; ++k) pattern[size_t(k)] = lo + span * (std::tanh(b[size_t(k)]) / squash + 0.5);
  };
  auto stamp = [&](const engine::Tensor& x) {  // (1 - m) x + m p
    engine::Tensor out(x.shape());
    const int64_t rows = x.dim(0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < ch; ++c)
        for (int64_t k = 0; k < hw; ++k) {
          const int64_t idx = (i * ch + c) * hw + k;
          out.f32()[idx] = float((1.0 - mask[size_t(k)]) * x.f32()[idx] + mask[size_t(k)] * pattern[size_t(c * hw + k)]);
        }
    return out;
  };

  ReversedTrigger best;
  best.target = target;
  double reg_best = std::numeric_limits<double>::infinity();
  std::vector<double> mask_best, pattern_best;
  double cost = cfg.init_cost;
  const double up = cfg.cost_multiplier, down = std::pow(cfg.cost_multiplier, 1.5);
  int cost_set_counter = 0, cost_up_counter = 0, cost_down_counter = 0, early_stop_counter = 0;
  bool cost_up_flag = false, cost_down_flag = false;
  double early_stop_reg_best = reg_best;
  int t = 0;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  std::vector<double> ga(a.size()), gb(b.size());
  int epoch = 0;
  for (; epoch < cfg.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    double acc_sum = 0, reg_sum = 0;
    int batches = 0;
    for (int64_t s = 0; s < n; s += cfg.batch) {
      const int64_t e = std::min(n, s + int64_t(cfg.batch)), rows = e - s;
      const engine::Tensor xb = x_clean.gather_rows(std::vector<int64_t>(order.begin() + s, order.begin() + e));
      materialise();
      const engine::Tensor xa = stamp(xb);
      engine::Tensor logits;
      // d(sum of CE)/d x_adv; the reference minimises the batch mean, hence the 1/rows below.
      const engine::Tensor g = engine::cross_entropy_gradient(model, xa, std::vector<int64_t>(size_t(rows), target), &logits);
      best.gradient_calls += 1;
      const auto pred = engine::argmax_rows(logits);
      acc_sum += double(std::count(pred.begin(), pred.end(), target)) / double(rows);
      double l1 = 0;
      for (double m : mask) l1 += m;
      reg_sum += l1;
      // Chain rule through x_adv = (1-m) x + m p: d/dm = g (p - x), d/dp = g m; plus cost * d|m|_1/dm = cost.
      std::fill(ga.begin(), ga.end(), cost);
      std::fill(gb.begin(), gb.end(), 0.0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < ch; ++c)
          for (int64_t k = 0; k < hw; ++k) {
            const int64_t idx = (i * ch + c) * hw + k;
            const double gi = double(g.f32()[idx]) / double(rows);
            ga[size_t(k)] += gi * (pattern[size_t(c * hw + k)] - xb.f32()[idx]);
            gb[size_t(c * hw + k)] += gi * mask[size_t(k)];
          }
      for (size_t k = 0; k < a.size(); ++k) {
        const double th = std::tanh(a[k]);
        ga[k] *= (1.0 - th * th) / squash;
      }
      for (size_t k = 0; k < b.size(); ++k) {
        const double th = std::tanh(b[k]);
        gb[k] *= span * (1.0 - th * th) / squash;
      }
      ++t;
      opt_a.step(a, ga, t);
      opt_b.step(b, gb, t);
      ++batches;
    }
    const double avg_acc = acc_sum / batches, avg_reg = reg_sum / batches;
    // Keep the smallest mask that reaches the success threshold (reference visualizer).
    if (avg_acc >= cfg.attack_success_threshold && avg_reg < reg_best) {
      materialise();
      mask_best = mask;
      pattern_best = pattern;
      reg_best = avg_reg;
    }
    if (cfg.early_stop) {
      if (reg_best < std::numeric_limits<double>::infinity()) {
        if (reg_best >= cfg.early_stop_threshold * early_stop_reg_best) ++early_stop_counter;
        else early_stop_counter = 0;
      }
      early_stop_reg_best = std::min(reg_best, early_stop_reg_best);
      if (cost_down_flag && cost_up_flag && early_stop_counter >= cfg.early_stop_patience) {
        ++epoch;
        break;
      }
    }
    // Dynamic cost: raise it after `patience` successful steps, lower it after `patience` failures.
    if (cost == 0 && avg_acc >= cfg.attack_success_threshold) {
      if (++cost_set_counter >= cfg.patience) {
        cost = cfg.init_cost;
        cost_up_counter = cost_down_counter = 0;
        cost_up_flag = cost_down_flag = false;
      }
    } else {
      cost_set_counter = 0;
    }
    if (avg_acc >= cfg.attack_success_threshold) {
      ++cost_up_counter;
      cost_down_counter = 0;
    } else {
      cost_up_counter = 0;
      ++cost_down_counter;
    }
    if (cost_up_counter >= cfg.patience) {
      cost_up_counter = 0;
      cost *= up;
      cost_up_flag = true;
    } else if (cost_down_counter >= cfg.patience) {
      cost_down_counter = 0;
      cost /= down;
      cost_down_flag = true;
    }
  }
  best.epochs_run = epoch;
  best.reached_threshold = !mask_best.empty();
  if (mask_best.empty()) {  // the reference keeps the last mask when none succeeded
    materialise();
    mask_best = mask;
    pattern_best = pattern;
  }
  best.mask = engine::Tensor({h, w});
  best.pattern = engine::Tensor({ch, h, w});
  best.l1_norm = 0;
  for (int64_t k = 0; k < hw; ++k) {
    best.mask.f32()[k] = float(mask_best[size_t(k)]);
    best.l1_norm += mask_best[size_t(k)];
  }
  for (int64_t k = 0; k < ch * hw; ++k) best.pattern.f32()[k] = float(pattern_best[size_t(k)]);
  // Fresh forward pass over the whole clean set with the kept trigger.
  mask = mask_best;
  pattern = pattern_best;
  int64_t hits = 0;
  for (int64_t s = 0; s < n; s += 256) {
    const auto pred = engine::argmax_rows(model.forward(stamp(x_clean.slice_rows(s, std::min(n, s + 256)))));
    hits += std::count(pred.begin(), pred.end(), target);
  }
  best.attack_success = double(hits) / double(n);
  return best;
}

std::vector<double> anomaly_indices(const std::vector<double>& values, double* median, double* mad) {
  if (values.size() < 2) fail(fmt::format("anomaly index needs at least 2 values, got {}", values.size()));
  const double med = median_of(values);
  std::vector<double> dev(values.size());
  for (size_t i = 0; i < values.size(); ++i) dev[i] = std::fabs(values[i] - med);
  const double m = median_of(dev);
  if (median) *median = med;
  if (mad) *mad = m;
  std::vector<double> idx(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (m > 0) idx[i] = dev[i] / (1.4826 * m);
    else idx[i] = dev[i] == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  }
  return idx;
}

NeuralCleanseResult neural_cleanse(const engine::Model& model, const engine::Tensor& x_clean,
                                   std::vector<int64_t> classes, const NeuralCleanseConfig& cfg,
                                   double anomaly_threshold) {
  check_images(x_clean, "clean images");
  const engine::Tensor probe = model.forward(x_clean.slice_rows(0, 1));
  if (probe.rank() != 2) fail("model output must be logits [N,K], got " + engine::shape_str(probe.shape()));
  const int64_t k = probe.dim(1);
  if (classes.empty())
    for (int64_t c = 0; c < k; ++c) classes.push_back(c);
  if (classes.size() < 2) fail(fmt::format("Neural Cleanse needs at least 2 classes to compare, got {}", classes.size()));
  for (int64_t c : classes)
    if (c < 0 || c >= k) fail(fmt::format("class {} is outside the model's {} outputs", c, k));
  NeuralCleanseResult r;
  r.threshold = anomaly_threshold;
  std::vector<double> l1;
  for (int64_t c : classes) {
    r.triggers.push_back(reverse_trigger(model, x_clean, c, cfg));
    if (cfg.progress) cfg.progress(int64_t(r.triggers.size()), int64_t(classes.size()));
    l1.push_back(r.triggers.back().l1_norm);
  }
  r.anomaly_index = anomaly_indices(l1, &r.median_l1, &r.mad_l1);
  // Only small masks indicate a backdoor (a trigger much easier than for other classes).
  for (size_t i = 0; i < classes.size(); ++i)
    if (r.anomaly_index[i] > anomaly_threshold && l1[i] < r.median_l1) r.flagged.push_back(classes[i]);
  return r;
}

void write_trigger_png(const std::string& path, const ReversedTrigger& trigger, double clip_min, double clip_max,
                       int scale) {
  if (trigger.mask.rank() != 2 || trigger.pattern.rank() != 3) fail("trigger has no mask/pattern to draw");
  if (scale < 1 || scale > 64) fail(fmt::format("trigger image scale {} outside 1..64", scale));
  const int64_t ch = trigger.pattern.dim(0), h = trigger.mask.dim(0), w = trigger.mask.dim(1);
  if (ch != 1 && ch != 3) fail(fmt::format("trigger image needs 1 or 3 channels, got {}", ch));
  const int64_t H = h * scale, W = w * scale;
  const double span = clip_max > clip_min ? clip_max - clip_min : 1.0;
  std::vector<png_byte> px(size_t(H * W * ch));
  for (int64_t r = 0; r < H; ++r)
    for (int64_t c = 0; c < W; ++c) {
      const int64_t k = (r / scale) * w + c / scale;
      for (int64_t q = 0; q < ch; ++q) {
        // The trigger as the paper draws it: mask * pattern, pattern mapped to [0,1].
        const double v = trigger.mask.f32()[k] * (trigger.pattern.f32()[q * h * w + k] - clip_min) / span;
        px[size_t((r * W + c) * ch + q)] = png_byte(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
      }
    }
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) throw std::runtime_error("privacy: png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("privacy: libpng failed while encoding a trigger image");
  }
  png_set_write_fn(png, &out, append_bytes, no_flush);
  png_set_IHDR(png, info, png_uint_32(W), png_uint_32(H), 8, ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t r = 0; r < H; ++r) png_write_row(png, px.data() + r * W * ch);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  datasets::write_file_atomic(path, out);
}

std::vector<double> strip_entropies(const engine::Model& model, const engine::Tensor& x,
                                    const engine::Tensor& overlay_pool, const StripConfig& cfg, bool exclude_self) {
  check_images(x, "STRIP inputs");
  check_images(overlay_pool, "STRIP clean pool");
  if (engine::Shape(x.shape().begin() + 1, x.shape().end()) !=
      engine::Shape(overlay_pool.shape().begin() + 1, overlay_pool.shape().end()))
    fail("STRIP inputs " + engine::shape_str(x.shape()) + " and clean pool " + engine::shape_str(overlay_pool.shape()) +
         " differ in image shape");
  if (cfg.overlays < 1) fail(fmt::format("STRIP needs at least 1 overlay, got {}", cfg.overlays));
  const int64_t n = x.dim(0), pool = overlay_pool.dim(0), d = x.numel() / n;
  if (exclude_self && pool < 2) fail("STRIP needs at least 2 clean samples to overlay a clean input");
  std::mt19937_64 rng(cfg.seed);
  std::vector<double> out(static_cast<size_t>(n));
  const int64_t per_call = std::max<int64_t>(1, cfg.batch / cfg.overlays);  // inputs per model call
  for (int64_t s = 0; s < n; s += per_call) {
    const int64_t e = std::min(n, s + per_call);
    engine::Shape shp = x.shape();
    shp[0] = (e - s) * cfg.overlays;
    engine::Tensor batch(shp);
    for (int64_t i = s; i < e; ++i) {
      // Overlay indices: a random sample of the pool (without replacement while it lasts).
      std::vector<int64_t> cand;
      for (int64_t j = 0; j < pool; ++j)
        if (!(exclude_self && j == i)) cand.push_back(j);
      std::shuffle(cand.begin(), cand.end(), rng);
      for (int o = 0; o < cfg.overlays; ++o) {
        const int64_t j = cand[size_t(o) % cand.size()];
        float* dst = batch.f32() + ((i - s) * cfg.overlays + o) * d;
        const float* xi = x.f32() + i * d;
        const float* xj = overlay_pool.f32() + j * d;
        // Superimposition = saturating image addition (cv2.addWeighted(bg, 1, fg, 1, 0) in the reference).
        for (int64_t k = 0; k < d; ++k)
          dst[k] = float(std::clamp(double(xi[k]) + double(xj[k]), cfg.clip_min, cfg.clip_max));
      }
    }
    const engine::Tensor p = engine::softmax_rows(model.forward(batch));
    if (p.rank() != 2) fail("model output must be logits [N,K], got " + engine::shape_str(p.shape()));
    const int64_t k = p.dim(1);
    for (int64_t i = s; i < e; ++i) {
      double total = 0;  // Eq. 2-3: H_sum / N with H = -sum p log2 p
      for (int o = 0; o < cfg.overlays; ++o) {
        const float* pr = p.f32() + ((i - s) * cfg.overlays + o) * k;
        for (int64_t c = 0; c < k; ++c)
          if (pr[c] > 0) total -= double(pr[c]) * std::log2(double(pr[c]));
      }
      out[size_t(i)] = total / cfg.overlays;
    }
  }
  return out;
}

StripResult strip(const engine::Model& model, const engine::Tensor& x_suspect, const engine::Tensor& x_clean,
                  const StripConfig& cfg) {
  if (!(cfg.false_rejection_rate > 0 && cfg.false_rejection_rate < 1))
    fail(fmt::format("STRIP false rejection rate {} outside (0,1)", cfg.false_rejection_rate));
  StripResult r;
  r.clean_entropy = strip_entropies(model, x_clean, x_clean, cfg, true);
  r.suspect_entropy = strip_entropies(model, x_suspect, x_clean, cfg, false);
  const double n = double(r.clean_entropy.size());
  for (double v : r.clean_entropy) r.clean_mean += v / n;
  for (double v : r.clean_entropy) r.clean_std += (v - r.clean_mean) * (v - r.clean_mean);
  r.clean_std = std::sqrt(r.clean_std / std::max(1.0, n - 1));
  // Gao et al. 2019, Sec. V.C: the clean entropies are taken as normal; the detection
  // boundary is their FRR-quantile.
  const double z = boost::math::quantile(boost::math::normal_distribution<double>(), cfg.false_rejection_rate);
  r.threshold = r.clean_mean + r.clean_std * z;
  for (double v : r.suspect_entropy) r.flagged.push_back(v < r.threshold ? 1 : 0);
  return r;
}

}  // namespace mlaudit::privacy
