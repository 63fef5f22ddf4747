// Inline SVG charts generated in C++ (no JavaScript, prints cleanly).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "doc.h"
#include "mlaudit/reports/report.h"

namespace mlaudit::reports::detail {

namespace {
const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string tick(double v) { return fmt::format("{:.3g}", v); }
}  // namespace

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series) {
  const double W = 560, H = 300, L = 56, R = 150, T = 30, B = 44;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 1;
  bool first = true;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (first) x0 = x1 = x, first = false;
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  x0 = std::min(x0, 0.0);
  if (x1 <= x0) x1 = x0 + 1;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\" class=\"chart\">\n",
      W, H, W, H, xml_escape(title));
  s += fmt::format("<text x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", L, xml_escape(title));
  for (int k = 0; k <= 4; ++k) {  // horizontal grid + y ticks
    double y = y0 + (y1 - y0) * k / 4;
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>", L, py(y), W - R, py(y));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", L - 6, py(y) + 4, tick(y));
  }
  for (int k = 0; k <= 4; ++k) {
    double x = x0 + (x1 - x0) * k / 4;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n", px(x), H - B + 16, tick(x));
  }
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>", L, H - B, W - R, H - B);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", L, T, L, H - B);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2, H - 8, xml_escape(x_label));
  s += fmt::format("<text x=\"14\" y=\"{:.1f}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1f})\">{}</text>\n",
                   (T + H - B) / 2, (T + H - B) / 2, xml_escape(y_label));
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = series[i].dashed ? "#888" : kPalette[i % 8];
    auto pts = series[i].points;
    std::sort(pts.begin(), pts.end());
    std::string path;
    for (const auto& [x, y] : pts) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", px(x), py(y));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{} points=\"{}\"/>\n", color,
                     series[i].dashed ? 1 : 2, series[i].dashed ? " stroke-dasharray=\"5,3\"" : "", path);
    if (series[i].markers)
      for (const auto& [x, y] : pts)
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: ({}, {})</title></circle>", px(x), py(y), color,
                         xml_escape(series[i].name), tick(x), tick(y));
    double ly = T + 14 + 18 * double(i);
    s += fmt::format("\n<rect x=\"{}\" y=\"{:.1f}\" width=\"12\" height=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n",
                     W - R + 10, ly - 4, color, W - R + 26, ly, xml_escape(series[i].name));
  }
  s += "</svg>";
  return s;
}

std::string svg_bar_chart(const std::string& title, const std::vector<Bar>& bars, std::optional<double> threshold,
                          const std::string& threshold_label) {
  const double W = 560, L = 210, R = 60, T = 30, row = 22;
  double H = T + row * double(bars.size()) + 30;
  double v0 = 0, v1 = 0;
  for (const auto& b : bars) {
    v0 = std::min(v0, b.value), v1 = std::max(v1, b.value);
    if (b.interval) v0 = std::min(v0, b.interval->first), v1 = std::max(v1, b.interval->second);
  }
  if (threshold) v0 = std::min(v0, *threshold), v1 = std::max(v1, *threshold);
  if (v1 <= v0) v1 = v0 + 1;
  auto px = [&](double v) { return L + (v - v0) / (v1 - v0) * (W - L - R); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\" class=\"chart\">\n",
      W, H, W, H, xml_escape(title));
  s += fmt::format("<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", xml_escape(title));
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    double y = T + row * double(i);
    double a = px(std::min(0.0, b.value)), z = px(std::max(0.0, b.value));
    std::string label = b.label.size() > 32 ? b.label.substr(0, 31) + "…" : b.label;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>", L - 6, y + 14, xml_escape(label));
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>", a,
                     y + 3, std::max(0.5, z - a), row - 6, kPalette[0], xml_escape(b.label), tick(b.value));
    if (b.interval)
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#222\" stroke-width=\"1.5\"/>",
                       px(b.interval->first), y + row / 2, px(b.interval->second), y + row / 2);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", std::max(z, b.interval ? px(b.interval->second) : z) + 4,
                     y + 14, tick(b.value));
  }
  double axis_y = T + row * double(bars.size());
  s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#333\"/>", L, axis_y, W - R, axis_y);
  for (int k = 0; k <= 4; ++k) {
    double v = v0 + (v1 - v0) * k / 4;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", px(v), axis_y + 14, tick(v));
  }
  if (threshold) {
    s += fmt::format("\n<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#d62728\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"/>",
                     px(*threshold), T - 4, px(*threshold), axis_y);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#d62728\" text-anchor=\"middle\">{}</text>", px(*threshold),
                     axis_y + 26, xml_escape(threshold_label.empty() ? "threshold " + tick(*threshold) : threshold_label));
  }
  s += "\n</svg>";
  return s;
}

}  // namespace mlaudit::reports::detail
