// Heatmap PNGs: grayscale input under a diverging blue-white-red attribution overlay (libpng).
#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cmath>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

namespace {
// Collapse [C,H,W] (channels averaged) or [H,W] to H*W doubles.
std::vector<double> plane(const Tensor& t, int64_t& h, int64_t& w, const char* what) {
  if (t.rank() < 2 || t.dtype() != engine::DType::Float32)
    throw InputError("explain", fmt::format("heatmap: {} must be a float image [C,H,W] or [H,W], got {}", what,
                                            engine::shape_str(t.shape())));
  h = t.dim(-2);
  w = t.dim(-1);
  const int64_t c = t.numel() / (h * w);
  std::vector<double> p(h * w, 0.0);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t i = 0; i < h * w; ++i) p[i] += t.f32()[k * h * w + i] / c;
  return p;
}

void append_bytes(png_structp png, png_bytep data, png_size_t len) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), len);
}
void no_flush(png_structp) {}
}  // namespace

std::string encode_heatmap_png(const Tensor& image, const Tensor& attribution, int scale) {
  int64_t h = 0, w = 0, ha = 0, wa = 0;
  const auto img = plane(image, h, w, "image");
  const auto att = plane(attribution, ha, wa, "attribution");
  if (h != ha || w != wa) throw InputError("explain", "heatmap: image and attribution sizes differ");
  if (scale < 1 || scale > 64) throw InputError("explain", fmt::format("heatmap: scale {} outside 1..64", scale));
  const auto [lo, hi] = std::minmax_element(img.begin(), img.end());
  const double range = *hi - *lo > 0 ? *hi - *lo : 1.0;
  // Scale by the 98th percentile of |a| and clip, as Captum's visualize_image_attr (outlier_perc=2),
  // so a few extreme pixels do not wash out the map.
  std::vector<double> mags(att.size());
  for (size_t i = 0; i < att.size(); ++i) mags[i] = std::fabs(att[i]);
  const size_t q = std::min(mags.size() - 1, static_cast<size_t>(std::ceil(0.98 * (mags.size() - 1))));
  std::nth_element(mags.begin(), mags.begin() + q, mags.end());
  double amax = mags[q];
  if (amax == 0) amax = *std::max_element(mags.begin(), mags.end());
  if (amax == 0) amax = 1;
  const int64_t H = h * scale, W = w * scale;
  std::vector<png_byte> rgb(static_cast<size_t>(H * W * 3));
  for (int64_t r = 0; r < H; ++r)
    for (int64_t c = 0; c < W; ++c) {
      const int64_t i = (r / scale) * w + c / scale;
      const double g = (img[i] - *lo) / range;  // grayscale base in [0,1]
      const double a = std::clamp(att[i] / amax, -1.0, 1.0);  // signed attribution in [-1,1]
      // Diverging map: white at 0, red (1,0,0) for +1, blue (0,0,1) for -1; alpha = |a|.
      const double cr = a >= 0 ? 1.0 : 1.0 + a, cb = a <= 0 ? 1.0 : 1.0 - a, cg = 1.0 - std::fabs(a);
      const double alpha = std::min(1.0, std::fabs(a) * 0.85);
      const double base = 0.35 + 0.65 * g;  // lifted gray so the overlay stays visible on black
      const double rgbv[3] = {(1 - alpha) * base + alpha * cr, (1 - alpha) * base + alpha * cg,
                              (1 - alpha) * base + alpha * cb};
      for (int k = 0; k < 3; ++k)
        rgb[(r * W + c) * 3 + k] = static_cast<png_byte>(std::lround(std::clamp(rgbv[k], 0.0, 1.0) * 255));
    }
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) throw std::runtime_error("explain: png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("explain: libpng failed while encoding a heatmap");
  }
  png_set_write_fn(png, &out, append_bytes, no_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(W), static_cast<png_uint_32>(H), 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int64_t r = 0; r < H; ++r) png_write_row(png, rgb.data() + r * W * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_heatmap_png(const std::string& path, const Tensor& image, const Tensor& attribution, int scale) {
  datasets::write_file_atomic(path, encode_heatmap_png(image, attribution, scale));
}

}  // namespace mlaudit::explain
