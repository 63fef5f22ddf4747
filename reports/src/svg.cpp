// Inline SVG charts generated in C++ (no JavaScript, prints cleanly).
//
// Every chart carries its text alternative (<title> and a <desc> that lists the
// plotted numbers, beside role="img" and aria-label), draws with the Okabe-Ito
// palette (Okabe & Ito 2008, "Color Universal Design": distinguishable under
// protanopia, deuteranopia and tritanopia), and puts axis ticks at round values
// (1-2-5 x 10^k, Heckbert's "nice numbers", Graphics Gems 1990).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "doc.h"
#include "mlaudit/reports/report.h"

namespace mlaudit::reports::detail {

namespace {

// Okabe-Ito order: blue, vermillion, bluish green, reddish purple, orange, sky blue,
// black, yellow (last: it has the least contrast on white).
const std::vector<std::string> kPalette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                           "#E69F00", "#56B4E9", "#000000", "#F0E442"};
// Dash patterns cycle with the colours' second round, so two series never share both.
const char* kDashes[] = {"", "6,3", "2,2", "8,3,2,3"};

std::string num_text(double v) { return fmt::format("{:.3g}", v); }

// Opening tag with the accessible name and the text alternative.
std::string svg_open(double W, double H, const std::string& title, const std::string& desc) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" height=\"{1}\" role=\"img\" "
      "aria-label=\"{2}\" class=\"chart\">\n<title>{2}</title>\n<desc>{3}</desc>\n",
      W, H, xml_escape(title), xml_escape(desc));
}

// A <desc> longer than this is cut (the table beside each chart has every number).
std::string clip_desc(std::string s) {
  if (s.size() > 1200) s = s.substr(0, 1190) + " ...";
  return s;
}

}  // namespace

const std::vector<std::string>& chart_palette() { return kPalette; }

double nice_step(double range, int max_intervals) {
  if (!(range > 0) || !std::isfinite(range) || max_intervals < 1) return 1;
  const double raw = range / max_intervals;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * (1 - 1e-9)) return m * mag;
  return 10 * mag;
}

Ticks nice_ticks(double lo, double hi, int max_intervals) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {  // one value: a unit-sized window around it
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.5;
    lo -= pad, hi += pad;
  }
  Ticks t;
  t.step = nice_step(hi - lo, max_intervals);
  // snap the ends outward to multiples of the step (a relative tolerance keeps 0.3 from becoming 0.4)
  const double tol = 1e-9 * t.step;
  t.lo = std::floor((lo + tol) / t.step) * t.step;
  t.hi = std::ceil((hi - tol) / t.step) * t.step;
  const int n = int(std::lround((t.hi - t.lo) / t.step));
  for (int k = 0; k <= n; ++k) {
    double v = t.lo + k * t.step;
    if (std::fabs(v) < tol) v = 0;  // no "-0" or "1e-17"
    t.values.push_back(v);
  }
  return t;
}

std::string tick_label(double v, double step) {
  // as many decimals as the step needs (0.05 -> 2, 0.2 -> 1, 50 -> 0)
  int decimals = step > 0 ? std::max(0, int(std::ceil(-std::log10(step) - 1e-9))) : 3;
  if (std::fabs(v) >= 1e6 || (v != 0 && std::fabs(v) < 1e-4)) return fmt::format("{:.2g}", v);
  return fmt::format("{:.{}f}", v, std::min(decimals, 6));
}

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<Series>& series) {
  const double W = 560, H = 300, L = 56, R = 150, T = 30, B = 44;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 1;
  bool first = true;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.points.size(); ++i) {
      auto [x, y] = s.points[i];
      if (first) x0 = x1 = x, first = false;
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
      if (i < s.band.size()) y0 = std::min(y0, s.band[i].first), y1 = std::max(y1, s.band[i].second);
    }
  }
  x0 = std::min(x0, 0.0);
  if (x1 <= x0) x1 = x0 + 1;
  const Ticks xt = nice_ticks(x0, x1, 5), yt = nice_ticks(y0, y1, 5);
  auto px = [&](double x) { return L + (x - xt.lo) / (xt.hi - xt.lo) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - yt.lo) / (yt.hi - yt.lo) * (H - T - B); };
  std::string desc = fmt::format("Line chart, x: {}, y: {}.", x_label, y_label);
  for (const auto& s : series) {
    if (s.dashed) continue;  // reference lines (chance diagonal) are named in the legend only
    desc += " " + s.name + ":";
    auto pts = s.points;
    std::sort(pts.begin(), pts.end());
    const size_t shown = std::min<size_t>(pts.size(), 12);
    for (size_t i = 0; i < shown; ++i) desc += fmt::format("{} ({}, {})", i ? "," : "", num_text(pts[i].first), num_text(pts[i].second));
    if (pts.size() > shown) desc += fmt::format(", ... ({} points)", pts.size());
    desc += ";";
  }
  bool any_band = false;
  for (const auto& s : series) any_band |= !s.band.empty();
  if (any_band) desc += " Shaded: 95 % Clopper-Pearson interval.";
  std::string s = svg_open(W, H, title, clip_desc(desc));
  s += fmt::format("<text x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", L, xml_escape(title));
  for (double y : yt.values) {  // horizontal grid + y ticks
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>", L, py(y), W - R, py(y));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", L - 6, py(y) + 4,
                     tick_label(y, yt.step));
  }
  for (double x : xt.values) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\"/>", px(x), H - B, H - B + 4);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n", px(x), H - B + 16,
                     tick_label(x, xt.step));
  }
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>", L, H - B, W - R, H - B);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", L, T, L, H - B);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2, H - 8, xml_escape(x_label));
  s += fmt::format("<text x=\"14\" y=\"{:.1f}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1f})\">{}</text>\n",
                   (T + H - B) / 2, (T + H - B) / 2, xml_escape(y_label));
  size_t colour = 0;
  for (size_t i = 0; i < series.size(); ++i) {
    const size_t c = series[i].dashed ? 0 : colour++;
    const std::string color = series[i].dashed ? "#888" : kPalette[c % kPalette.size()];
    const char* dash = series[i].dashed ? "5,3" : kDashes[(c / kPalette.size()) % 4];
    // points sorted by x, each with its band entry
    std::vector<size_t> order(series[i].points.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return series[i].points[a] < series[i].points[b]; });
    if (series[i].band.size() == series[i].points.size() && !order.empty()) {
      std::string upper, lower;
      for (size_t k : order) upper += fmt::format("{:.1f},{:.1f} ", px(series[i].points[k].first), py(series[i].band[k].second));
      for (auto it = order.rbegin(); it != order.rend(); ++it)
        lower += fmt::format("{:.1f},{:.1f} ", px(series[i].points[*it].first), py(series[i].band[*it].first));
      s += fmt::format("<polygon class=\"band\" fill=\"{}\" fill-opacity=\"0.15\" stroke=\"none\" points=\"{}{}\"><title>{}: 95 % "
                       "interval</title></polygon>\n",
                       color, upper, lower, xml_escape(series[i].name));
    }
    std::string path;
    for (size_t k : order)
      path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "" : " ", px(series[i].points[k].first), py(series[i].points[k].second));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{} points=\"{}\"/>\n", color,
                     series[i].dashed ? 1 : 2, *dash ? fmt::format(" stroke-dasharray=\"{}\"", dash) : "", path);
    if (series[i].markers)
      for (size_t k : order) {
        auto [x, y] = series[i].points[k];
        std::string ci = k < series[i].band.size()
                             ? fmt::format(", 95 % CI {}-{}", num_text(series[i].band[k].first), num_text(series[i].band[k].second))
                             : "";
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: ({}, {}){}</title></circle>", px(x), py(y),
                         color, xml_escape(series[i].name), num_text(x), num_text(y), ci);
      }
    double ly = T + 14 + 18 * double(i);
    std::string name = series[i].name.size() > 22 ? series[i].name.substr(0, 21) + "…" : series[i].name;
    s += fmt::format("\n<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"3\"{}/><text x=\"{}\" "
                     "y=\"{:.1f}\" font-size=\"11\">{}</text>\n",
                     W - R + 8, ly - 4, W - R + 24, ly - 4, color, *dash ? fmt::format(" stroke-dasharray=\"{}\"", dash) : "",
                     W - R + 28, ly, xml_escape(name));
  }
  s += "</svg>";
  return s;
}

std::string svg_bar_chart(const std::string& title, const std::vector<Bar>& bars, std::optional<double> threshold,
                          const std::string& threshold_label) {
  const double W = 560, L = 210, R = 60, T = 30, row = 22;
  double H = T + row * double(bars.size()) + 30 + (threshold ? 12 : 0);
  double v0 = 0, v1 = 0;
  for (const auto& b : bars) {
    v0 = std::min(v0, b.value), v1 = std::max(v1, b.value);
    if (b.interval) v0 = std::min(v0, b.interval->first), v1 = std::max(v1, b.interval->second);
  }
  if (threshold) v0 = std::min(v0, *threshold), v1 = std::max(v1, *threshold);
  if (v1 <= v0) v1 = v0 + 1;
  const Ticks vt = nice_ticks(v0, v1, 5);
  auto px = [&](double v) { return L + (v - vt.lo) / (vt.hi - vt.lo) * (W - L - R); };
  std::string desc = "Bar chart.";
  for (const auto& b : bars)
    desc += fmt::format(" {}: {}{};", b.label, num_text(b.value),
                        b.interval ? fmt::format(" (interval {}-{})", num_text(b.interval->first), num_text(b.interval->second)) : "");
  if (threshold) desc += fmt::format(" Reference line at {} ({}).", num_text(*threshold), threshold_label.empty() ? "threshold" : threshold_label);
  std::string s = svg_open(W, H, title, clip_desc(desc));
  s += fmt::format("<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", xml_escape(title));
  double axis_y = T + row * double(bars.size());
  for (double v : vt.values)
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>", px(v), T - 2, axis_y);
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    double y = T + row * double(i);
    double a = px(std::min(0.0, b.value)), z = px(std::max(0.0, b.value));
    std::string label = b.label.size() > 32 ? b.label.substr(0, 31) + "…" : b.label;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>", L - 6, y + 14, xml_escape(label));
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>", a,
                     y + 3, std::max(0.5, z - a), row - 6, kPalette[0], xml_escape(b.label), num_text(b.value));
    if (b.interval)
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#222\" stroke-width=\"1.5\"/>",
                       px(b.interval->first), y + row / 2, px(b.interval->second), y + row / 2);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", std::max(z, b.interval ? px(b.interval->second) : z) + 4,
                     y + 14, num_text(b.value));
  }
  s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#333\"/>", L, axis_y, W - R, axis_y);
  for (double v : vt.values)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", px(v), axis_y + 14,
                     tick_label(v, vt.step));
  if (threshold) {
    s += fmt::format("\n<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"/>",
                     px(*threshold), T - 4, px(*threshold), axis_y, kPalette[1]);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"{}\" text-anchor=\"middle\">{}</text>", px(*threshold),
                     axis_y + 28, kPalette[1], xml_escape(threshold_label.empty() ? "threshold " + num_text(*threshold) : threshold_label));
  }
  s += "\n</svg>";
  return s;
}

std::string svg_grouped_bar_chart(const std::string& title, const std::string& value_label,
                                  const std::vector<std::string>& categories, const std::vector<std::string>& groups,
                                  const std::vector<std::vector<std::optional<Bar>>>& values) {
  const double W = 560, L = 150, R = 40, T = 30, row = 16, gap = 10;
  const double legend_h = 18;
  double v0 = 0, v1 = 0;
  size_t rows = 0;
  for (const auto& cat : values)
    for (const auto& b : cat)
      if (b) {
        ++rows;
        v0 = std::min(v0, b->value), v1 = std::max(v1, b->value);
        if (b->interval) v0 = std::min(v0, b->interval->first), v1 = std::max(v1, b->interval->second);
      }
  if (v1 <= v0) v1 = v0 + 1;
  const Ticks vt = nice_ticks(v0, v1, 5);
  auto px = [&](double v) { return L + (v - vt.lo) / (vt.hi - vt.lo) * (W - L - R); };
  double H = T + legend_h + row * double(rows) + gap * double(categories.size()) + 34;
  std::string desc = fmt::format("Grouped bar chart of {} per group, with 95 % intervals.", value_label);
  for (size_t c = 0; c < categories.size() && c < values.size(); ++c) {
    desc += " " + categories[c] + ":";
    for (size_t g = 0; g < groups.size() && g < values[c].size(); ++g)
      if (values[c][g])
        desc += fmt::format(" {} {}{},", groups[g], num_text(values[c][g]->value),
                            values[c][g]->interval ? fmt::format(" [{}, {}]", num_text(values[c][g]->interval->first),
                                                                 num_text(values[c][g]->interval->second))
                                                   : "");
    desc.back() = ';';
  }
  std::string s = svg_open(W, H, title, clip_desc(desc));
  s += fmt::format("<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", xml_escape(title));
  // legend: one swatch per group
  double lx = L;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::string name = groups[g].size() > 24 ? groups[g].substr(0, 23) + "…" : groups[g];
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1f}\" y=\"{}\" font-size=\"11\">{}</text>",
                     lx, T - 2, kPalette[g % kPalette.size()], lx + 14, T + 7, xml_escape(name));
    lx += 24 + 6.5 * double(name.size());
  }
  s += "\n";
  double y = T + legend_h;
  const double top = y;
  for (size_t c = 0; c < categories.size() && c < values.size(); ++c) {
    double cat_top = y;
    for (size_t g = 0; g < groups.size() && g < values[c].size(); ++g) {
      if (!values[c][g]) continue;
      const Bar& b = *values[c][g];
      double a = px(std::min(0.0, b.value)), z = px(std::max(0.0, b.value));
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"><title>{}, {}: {}</title></rect>", a, y + 2,
                       std::max(0.5, z - a), row - 4, kPalette[g % kPalette.size()], xml_escape(categories[c]), xml_escape(groups[g]),
                       num_text(b.value));
      if (b.interval)
        s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#222\" stroke-width=\"1.5\"/>",
                         px(b.interval->first), y + row / 2, px(b.interval->second), y + row / 2);
      y += row;
    }
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n", L - 6, (cat_top + y) / 2 + 4,
                     xml_escape(categories[c]));
    y += gap;
  }
  for (double v : vt.values) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>", px(v), top, y);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", px(v), y + 14,
                     tick_label(v, vt.step));
  }
  s += fmt::format("\n<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#333\"/>", L, y, W - R, y);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n</svg>", (L + W - R) / 2, y + 28,
                   xml_escape(value_label));
  return s;
}

std::string svg_stacked_bar_chart(const std::string& title, const std::string& value_label,
                                  const std::vector<StackedBar>& bars, const std::vector<std::string>& part_names,
                                  const std::vector<std::string>& part_colours) {
  const double W = 560, L = 110, R = 40, T = 30, row = 26, legend_h = 20;
  double total_max = 0;
  for (const auto& b : bars) total_max = std::max(total_max, std::accumulate(b.parts.begin(), b.parts.end(), 0.0));
  if (total_max <= 0) total_max = 1;
  const Ticks vt = nice_ticks(0, total_max, 5);
  auto px = [&](double v) { return L + v / vt.hi * (W - L - R); };
  double H = T + legend_h + row * double(bars.size()) + 34;
  std::string desc = fmt::format("Stacked bar chart of {}.", value_label);
  for (const auto& b : bars) {
    desc += " " + b.label + ":";
    for (size_t k = 0; k < b.parts.size() && k < part_names.size(); ++k) desc += fmt::format(" {} {},", part_names[k], num_text(b.parts[k]));
    desc.back() = ';';
  }
  std::string s = svg_open(W, H, title, clip_desc(desc));
  s += fmt::format("<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", xml_escape(title));
  double lx = L;
  for (size_t k = 0; k < part_names.size(); ++k) {
    const std::string& colour = k < part_colours.size() ? part_colours[k] : kPalette[k % kPalette.size()];
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\" stroke=\"#333\" stroke-width=\"0.5\"/><text "
                     "x=\"{:.1f}\" y=\"{}\" font-size=\"11\">{}</text>",
                     lx, T - 2, colour, lx + 14, T + 7, xml_escape(part_names[k]));
    lx += 24 + 6.5 * double(part_names[k].size());
  }
  s += "\n";
  const double top = T + legend_h;
  for (size_t i = 0; i < bars.size(); ++i) {
    double y = top + row * double(i), acc = 0;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>", L - 6, y + row / 2 + 4,
                     xml_escape(bars[i].label));
    for (size_t k = 0; k < bars[i].parts.size(); ++k) {
      double v = bars[i].parts[k];
      if (!(v > 0)) continue;
      const std::string& colour = k < part_colours.size() ? part_colours[k] : kPalette[k % kPalette.size()];
      const std::string name = k < part_names.size() ? part_names[k] : "";
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\">"
                       "<title>{}, {}: {}</title></rect>",
                       px(acc), y + 3, px(acc + v) - px(acc), row - 6, colour, xml_escape(bars[i].label), xml_escape(name), num_text(v));
      acc += v;
    }
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\">{}</text>\n", px(acc) + 4, y + row / 2 + 4, num_text(acc));
  }
  const double axis_y = top + row * double(bars.size());
  s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#333\"/>", L, axis_y, W - R, axis_y);
  for (double v : vt.values)
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"middle\">{}</text>", px(v), axis_y + 14,
                     tick_label(v, vt.step));
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n</svg>", (L + W - R) / 2,
                   axis_y + 28, xml_escape(value_label));
  return s;
}

namespace {
// Viridis (van der Walt & Smith, matplotlib 2015): perceptually uniform and readable
// with every common colour-vision deficiency. Nine stops, linear in between.
const unsigned char kViridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                      {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
std::string viridis(double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8;
  int k = std::min(7, int(t));
  double f = t - k;
  auto c = [&](int ch) { return int(std::lround(kViridis[k][ch] + f * (kViridis[k + 1][ch] - kViridis[k][ch]))); };
  return fmt::format("#{:02x}{:02x}{:02x}", c(0), c(1), c(2));
}
}  // namespace

std::string svg_heatmap(const std::string& title, const std::string& value_label, int rows, int cols,
                        const std::vector<double>& values) {
  const double cell = std::max(2.0, std::min(8.0, 224.0 / std::max(rows, cols)));
  const double T = 24, L = 4, bar_w = 12, gap = 8;
  const double W = L + cell * cols + gap + bar_w + 44, H = T + cell * rows + 20;
  double vmax = 0, vmin = 0;
  size_t peak = 0;
  for (size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i])) {
      if (values[i] > vmax) vmax = values[i], peak = i;
      vmin = std::min(vmin, values[i]);
    }
  if (vmax <= vmin) vmax = vmin + 1;
  const std::string desc = fmt::format("Heatmap of {} over a {} x {} grid, from {} (dark purple) to {} (yellow); the largest value is at row "
                                       "{}, column {}.",
                                       value_label, rows, cols, num_text(vmin), num_text(vmax), cols ? peak / size_t(cols) : 0,
                                       cols ? peak % size_t(cols) : 0);
  std::string s = svg_open(W, H, title, desc);
  s += fmt::format("<text x=\"{}\" y=\"16\" font-size=\"12\" font-weight=\"bold\">{}</text>\n", L, xml_escape(title));
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      size_t i = size_t(r) * size_t(cols) + size_t(c);
      double v = i < values.size() ? values[i] : 0;
      // cells overlap by a hair so no background seams show between them
      s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>", L + c * cell, T + r * cell,
                       cell + 0.3, cell + 0.3, viridis((v - vmin) / (vmax - vmin)));
    }
  // colour bar with its two ends labelled
  const double bx = L + cell * cols + gap;
  for (int k = 0; k < 32; ++k)
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.2f}\" width=\"{}\" height=\"{:.2f}\" fill=\"{}\"/>", bx, T + (31 - k) * cell * rows / 32,
                     bar_w, cell * rows / 32 + 0.3, viridis(k / 31.0));
  s += fmt::format("\n<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{}</text><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{}</text>",
                   bx + bar_w + 3, T + 8, num_text(vmax), bx + bar_w + 3, T + cell * rows, num_text(vmin));
  s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#555\">{}</text>\n</svg>", L, T + cell * rows + 14,
                   xml_escape(value_label));
  return s;
}

}  // namespace mlaudit::reports::detail
