// The report in a real browser (#24). Headless Chromium opens report.html: no console
// errors; at desktop (1280 px) and phone (390 px) widths nothing is wider than the page
// and every chart is present (a probe script, added to a copy of the page only, writes
// the layout into the DOM that --dump-dom returns); screenshots at both widths. The PDF
// printed by html_to_pdf (the audit's own code path): A4 pages (letter on request), the
// running header and "Page n of N" in the text layer, contents whose page numbers point
// at the right pages, and, with the pages rendered to PNG, nothing past the right margin.
// Labelled `chromium`; skipped (WARN) when Chromium is absent, and the PDF checks when
// poppler-utils (pdfinfo, pdftotext, pdftoppm) is (scripts/install-deps.sh installs both).
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <png.h>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/common/tensor.h"
#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string find_chromium() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"})
    if (fs::exists(p)) return p;
  return {};
}

std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// stdout only (Chromium's log lines on stderr would corrupt a dumped DOM)
std::string shell_stdout(const std::string& cmd) { return shell(cmd + " 2>/dev/null"); }

bool have_tool(const std::string& name) { return shell("command -v " + name + " >/dev/null && echo yes").find("yes") == 0; }

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  const unsigned char* at(int x, int y) const { return &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3]; }
};

Image read_png(const std::string& path) {
  Image im;
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return im;
  img.format = PNG_FORMAT_RGB;
  im.rgb.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, im.rgb.data(), 0, nullptr)) return Image{};
  im.width = int(img.width), im.height = int(img.height);
  return im;
}

size_t distinct_colours(const Image& im) {
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < im.rgb.size(); i += 3) colours.insert(im.rgb[i] << 16 | im.rgb[i + 1] << 8 | im.rgb[i + 2]);
  return colours.size();
}

// Pixels that are not (near) white in the column strip [x0, x1) x [y0, y1).
int ink_in(const Image& im, int x0, int x1, int y0, int y1) {
  int ink = 0;
  for (int y = std::max(0, y0); y < std::min(im.height, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(im.width, x1); ++x) {
      const unsigned char* p = im.at(x, y);
      if (p[0] < 235 || p[1] < 235 || p[2] < 235) ++ink;
    }
  return ink;
}

// A section record as the pipeline writes it, around a command's result JSON.
json section(const std::string& id, const std::string& kind, const std::string& model, json params, json result) {
  return {{"id", id}, {"kind", kind}, {"model", model}, {"status", "ok"}, {"params", std::move(params)}, {"result", std::move(result)}};
}

// A report with every section kind and chart: the fixture audit (fake runner), its image
// explanation given an attributions file, plus privacy, backdoor and individual-fairness
// verification sections (a counterexample with long numbers, as the demo's). Written by
// write_report_files into DIR/out (report.html, no PDF).
json rich_report(const std::string& dir, const std::string& gates, reports::Paper paper = reports::Paper::A4) {
  test::write_text(dir + "/audit.yaml", test::full_config(gates));
  reports::AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  json report = reports::run_audit(reports::load_config(dir + "/audit.yaml"), o, std::ref(fake)).report;
  std::vector<float> attr(2 * 28 * 28);
  for (size_t i = 0; i < attr.size(); ++i) attr[i] = float((i * 37) % 101) / 100.0f;
  datasets::write_npy(dir + "/out/sections/attr.npy", engine::Tensor::from_floats({2, 1, 28, 28}, attr));
  for (auto& s : report["sections"])
    if (s["kind"] == "explanations") {
      s["result"]["input_shape"] = {2, 1, 28, 28};
      s["result"]["attributions_file"] = "sections/attr.npy";
    }
  json privacy = json::parse(test::read_text(test::fixture("privacy.json")));
  report["sections"].push_back(section("privacy-cnn", "privacy", "cnn", {{"members", "fmnist_train"}, {"non_members", "fmnist"}}, privacy));
  std::string backdoor = test::read_text(test::fixture("backdoor.json"));
  for (size_t p; (p = backdoor.find("TRIGGER_DIR/")) != std::string::npos;) {
    size_t end = backdoor.find('"', p);
    backdoor.replace(p, end - p, test::fixture("heatmap_0.png"));
  }
  report["sections"].push_back(section("backdoor-cnn", "backdoor", "cnn", json::object(), json::parse(backdoor)));
  json cex = {{"index", 0},
              {"input_a", {53.99711608886719, 260.0999755859375, 0.8369999527931213, 35.79999923706055, 5.654629707336426,
                           3.2776291370391846, 0.0}},
              {"input_b", {53.99711608886719, 260.0999755859375, 0.8369999527931213, 35.79999923706055, 5.654629707336426,
                           3.2776291370391846, 1.0}},
              {"lower", {18.0, 9.0, 0.006, 0.0, 1.0, 0.0, 0.0}},
              {"upper", {75.0, 260.1, 0.837, 35.8, 12.0, 5.0, 1.0}},
              {"output_a", {0.3962920904159546, -0.27459776401519775}},
              {"output_b", {-1.0701919794082642, 0.8725231289863586}},
              {"seconds", 0.000236454},
              {"verdict", "counterexample"}};
  report["sections"].push_back(section(
      "verification-credit-fairness", "verification", "credit", {{"mode", "fairness"}, {"protected", "sex"}},
      {{"features", {"age", "income", "debt_ratio", "years_employed", "num_credit_lines", "late_payments", "sex"}},
       {"summary", {{"partitions", 1}, {"proved", 0}, {"counterexample", 1}, {"unknown", 0}, {"timeout", 0}}},
       {"counterexample_pairs", {cex}}}));
  reports::finalize_report(report);
  std::string note;
  reports::write_report_files(report, dir + "/out", false, &note, dir + "/out", reports::paper_name(paper));
  return report;
}

// Every chart kind the rich report draws (class "chart-<kind>" on its <svg>).
const std::vector<std::string> kChartKinds = {"robust-eps",          "certified-radius",       "corruption-severity",
                                              "fairness-groups",     "fairness-ratios",        "attribution-heatmap",
                                              "verification-verdicts", "privacy-roc",          "backdoor-anomaly"};

// A page that shows `src` in an iframe exactly `width` CSS pixels wide (headless Chromium
// keeps its window at least 500 px wide, so a phone viewport needs a frame) and copies
// whatever the framed page posts into <pre id="layout-probe"> for --dump-dom.
std::string frame_page(const std::string& dir, const std::string& src, int width, int height) {
  std::string path = dir + "/frame-" + std::to_string(width) + "-" + fs::path(src).stem().string() + ".html";
  test::write_text(path, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{margin:0;background:#fff}iframe{border:0;"
                         "display:block}</style></head><body><iframe src=\"file://" + src + "\" width=\"" + std::to_string(width) +
                         "\" height=\"" + std::to_string(height) + "\"></iframe><pre id=\"layout-probe\"></pre><script>"
                         "addEventListener('message', e => { document.getElementById('layout-probe').textContent = e.data; });"
                         "</script></body></html>");
  return path;
}

// Layout of `html` in a viewport `width` CSS pixels wide: a copy of the page with a probe
// script that measures every element (outside a horizontally scrolling table box and
// outside SVG drawings) and lists the charts, read back through --dump-dom. `print`
// applies the print stylesheet on screen (its @media print rules for all media), so
// `width` = the paper's content width measures the printed layout.
json layout_probe(const std::string& chromium, const std::string& html, int width, const std::string& dir, bool print = false) {
  std::string page = test::read_text(html);
  if (print)
    for (size_t p; (p = page.find("@media print{")) != std::string::npos;) page.replace(p, 13, "@media all{");
  const std::string probe = R"(<script>
(() => {
  const vw = document.documentElement.clientWidth;
  const out = {inner: window.innerWidth, client: vw, scroll: document.documentElement.scrollWidth, over: [], charts: {}, text_alt: true};
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;           // drawn inside its chart
    if (el.closest('.table-wrap') && !el.classList.contains('table-wrap') && !PRINT) continue;  // scrolls inside its own box
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5))
      out.over.push(el.tagName + '.' + (typeof el.className === 'string' ? el.className : '') + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  for (const svg of document.querySelectorAll('svg.chart')) {
    for (const c of svg.classList) if (c.startsWith('chart-')) out.charts[c.slice(6)] = (out.charts[c.slice(6)] || 0) + 1;
    if (!svg.querySelector('title') || !svg.querySelector('desc') || svg.getAttribute('role') !== 'img') out.text_alt = false;
  }
  parent.postMessage(JSON.stringify(out), '*');
})();
</script>
)";
  std::string script = probe;
  script.replace(script.find("PRINT"), 5, print ? "true" : "false");
  page.insert(page.rfind("</body>"), script);
  const std::string copy = dir + "/probe-" + std::to_string(width) + (print ? "-print" : "") + ".html";
  test::write_text(copy, page);
  std::string frame = frame_page(dir, copy, width, 900);
  std::string dom = shell_stdout(chromium + " --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=" +
                                 std::to_string(std::max(width + 20, 520)) + ",950 --virtual-time-budget=8000 --dump-dom file://" + frame);
  size_t at = dom.find("<pre id=\"layout-probe\">");
  if (at == std::string::npos) return json();
  at = dom.find('>', at) + 1;
  std::string text = dom.substr(at, dom.find("</pre>", at) - at);
  for (const auto& [ent, ch] : std::vector<std::pair<std::string, std::string>>{{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}})
    for (size_t p; (p = text.find(ent)) != std::string::npos;) text.replace(p, ent.size(), ch);
  return json::parse(text, nullptr, false);
}

// Length in pixels of the longest run of the report's title rule (#0072B2, the h1's
// bottom border, as wide as the page's content box) in any row of `im`.
int title_rule_length(const Image& im) {
  int best = 0;
  for (int y = 0; y < im.height; ++y) {
    int run = 0;
    for (int x = 0; x < im.width; ++x) {
      const unsigned char* p = im.at(x, y);
      bool blue = std::abs(p[0] - 0x00) < 40 && std::abs(p[1] - 0x72) < 40 && std::abs(p[2] - 0xB2) < 40;
      run = blue ? run + 1 : 0;
      best = std::max(best, run);
    }
  }
  return best;
}

// "Pages:" and "Page size:" of pdfinfo.
void pdf_info(const std::string& pdf, int& pages, double& width_pt, double& height_pt) {
  std::string info = shell_stdout("pdfinfo " + pdf);
  std::smatch m;
  pages = std::regex_search(info, m, std::regex("Pages:\\s+(\\d+)")) ? std::stoi(m[1]) : 0;
  if (std::regex_search(info, m, std::regex("Page size:\\s+([0-9.]+) x ([0-9.]+) pts")))
    width_pt = std::stod(m[1]), height_pt = std::stod(m[2]);
}

}  // namespace

TEST_CASE("html report opens in headless Chromium without console errors, screenshots at desktop and phone width", "[reports][chromium]") {
  std::string chromium = find_chromium();
  if (chromium.empty()) {
    WARN("chromium not installed: skipping the browser check (apt-get install chromium)");
    return;
  }
  std::string dir = test::temp_dir("chromium");
  rich_report(dir, test::kPassingGates);
  REQUIRE(fs::exists(dir + "/out/report.html"));
  // Control: a page that logs to the console is detected by the same check.
  test::write_text(dir + "/control.html", "<html><body><script>console.error('control')</script></body></html>");
  std::string control = shell(chromium + " --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --screenshot=" +
                              dir + "/control.png file://" + dir + "/control.html");
  REQUIRE(control.find("CONSOLE") != std::string::npos);
  std::string log = shell(chromium + " --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 "
                          "--enable-logging=stderr --v=0 --screenshot=" + dir + "/direct.png file://" + dir + "/out/report.html");
  INFO(log);
  // Chromium logs page console messages as "CONSOLE(...)" / ":CONSOLE"; resource failures as "Failed to load".
  CHECK(log.find("CONSOLE") == std::string::npos);
  CHECK(log.find("Failed to load") == std::string::npos);
  CHECK(log.find("Uncaught") == std::string::npos);
  // Screenshots at desktop and phone width (kept in the test's folder for a person to look at):
  // the page in a frame of exactly that width, since Chromium's window is at least 500 px wide.
  for (int width : {1280, 390}) {
    std::string shot = dir + "/screenshot-" + std::to_string(width) + ".png";
    std::string frame = frame_page(dir, dir + "/out/report.html", width, 2400);
    shell(chromium + " --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=" + std::to_string(std::max(width, 500)) +
          ",2400 --virtual-time-budget=5000 --screenshot=" + shot + " file://" + frame);
    REQUIRE(fs::exists(shot));
    Image im = read_png(shot);
    CHECK(im.width == std::max(width, 500));
    CHECK(distinct_colours(im) > 16);  // text, badges, charts: a blank page has one or two colours
    CHECK(ink_in(im, 0, width, 0, im.height) > 1000);
  }
}

TEST_CASE("html report at desktop and phone width and in print: nothing wider than the page, every chart present", "[reports][chromium]") {
  std::string chromium = find_chromium();
  if (chromium.empty()) {
    WARN("chromium not installed: skipping the layout check (apt-get install chromium)");
    return;
  }
  std::string dir = test::temp_dir("chromium-layout");
  rich_report(dir, test::kPassingGates);
  // Control: a page with a 2000 px wide block is caught by the same probe.
  test::write_text(dir + "/wide.html", "<!DOCTYPE html><html><body><div style=\"width:2000px\">wide</div></body></html>");
  json wide = layout_probe(chromium, dir + "/wide.html", 390, dir);
  REQUIRE(wide.is_object());
  CHECK(wide["scroll"].get<int>() > 390);
  CHECK_FALSE(wide["over"].empty());
  // 1280 and 390 on screen; 687 = A4's content width (210 - 2 x 14 mm at 96 px per inch) with
  // the print stylesheet, where tables cannot scroll and must fit
  for (auto [width, print] : std::vector<std::pair<int, bool>>{{1280, false}, {390, false}, {687, true}}) {
    json layout = layout_probe(chromium, dir + "/out/report.html", width, dir, print);
    INFO("width " << width << (print ? " (print)" : "") << ": " << layout.dump());
    REQUIRE(layout.is_object());
    CHECK(layout["inner"].get<int>() == width);
    CHECK(layout["scroll"].get<int>() <= layout["client"].get<int>());  // the page never scrolls sideways
    CHECK(layout["over"].empty());                                       // no element reaches past either edge
    for (const auto& kind : kChartKinds) CHECK(layout["charts"].value(kind, 0) >= 1);
    CHECK(layout["text_alt"] == true);  // every chart: role="img", <title> and <desc>
  }
}

TEST_CASE("report.pdf: pages with running header, page numbers and contents, nothing cut or shrunk, A4 and letter",
          "[reports][chromium][pdf]") {
  std::string chromium = find_chromium();
  if (chromium.empty()) {
    WARN("chromium not installed: skipping the PDF check (apt-get install chromium)");
    return;
  }
  std::string dir = test::temp_dir("chromium-pdf");
  const json report = rich_report(dir, test::kPassingGates);
  const std::string pdf = dir + "/out/report.pdf";
  REQUIRE(reports::html_to_pdf(chromium, dir + "/out/report.html", pdf, reports::Paper::A4) == "");
  REQUIRE(fs::file_size(pdf) > 1000);
  if (!have_tool("pdfinfo") || !have_tool("pdftotext") || !have_tool("pdftoppm")) {
    WARN("poppler-utils not installed: skipping the PDF page checks (apt-get install poppler-utils)");
    return;
  }
  int pages = 0;
  double w = 0, h = 0;
  pdf_info(pdf, pages, w, h);
  CHECK(pages >= 5);
  CHECK(w == Approx(595.3).margin(1.5));  // A4: 210 x 297 mm
  CHECK(h == Approx(841.9).margin(1.5));
  // the text layer, page by page: running header and "Page n of N" on every page
  std::vector<std::string> text;
  std::string all = shell_stdout("pdftotext -layout " + pdf + " -");
  {
    std::stringstream in(all);
    std::string page;
    while (std::getline(in, page, '\f')) text.push_back(page);
  }
  REQUIRE(int(text.size()) >= pages);
  for (int p = 1; p <= pages; ++p) {
    INFO("page " << p);
    CHECK(text[p - 1].find(fmt::format("Page {} of {}", p, pages)) != std::string::npos);
    CHECK(text[p - 1].find("mlaudit report: Test system | verdict PASS") != std::string::npos);
  }
  // contents: each entry's page number is the page its section starts on
  std::smatch m;
  std::string contents = text[0] + text[1];
  for (const char* title : {"Executive summary", "Gate verdicts", "Robustness", "Fairness", "Formal verification", "Backdoor scan",
                            "Compliance mapping", "Limitations"}) {
    INFO(title);
    REQUIRE(std::regex_search(contents, m, std::regex(std::string("\\n\\s*") + title + "\\s+(\\d+)\\s*\\n")));
    int page = std::stoi(m[1]);
    REQUIRE(page >= 1);
    REQUIRE(page <= pages);
    CHECK(std::regex_search(text[page - 1], std::regex(std::string("(^|\\n)\\s*") + title + "\\s*\\n")));
  }
  // Nothing cut at the page edge: every SHA-256 of the manifest and every value of the
  // counterexample is whole in the text layer (Chromium drops what falls outside the page).
  std::string flat;
  for (char c : all)
    if (!std::isspace(static_cast<unsigned char>(c))) flat += c;
  for (const auto& input : report["manifest"]["inputs"])
    if (input.contains("sha256") && input["sha256"].is_string()) CHECK(flat.find(input["sha256"].get<std::string>()) != std::string::npos);
  for (const char* value : {"53.9971", "260.1", "0.837", "35.8", "5.65463", "3.27763", "class1(outputs-1.07,0.8725)"}) {
    INFO(value);
    CHECK(flat.find(value) != std::string::npos);
  }
  // Printed at full scale: the title's rule spans the content box, 182 mm (a renderer that
  // shrinks a document to fit, as wkhtmltopdf's smart shrinking does, would draw it
  // shorter). What is wider than the paper is cut, not shrunk, by Chromium: a control page
  // with a table too wide for the paper keeps the full rule and loses its text's end.
  const int dpi = 40;
  const double full_rule = 182 / 25.4 * dpi;
  test::write_text(dir + "/wide.html",
                   "<!DOCTYPE html><html><head><style>@page{size:A4;margin:18mm 14mm}body{margin:0}h1{border-bottom:3px solid "
                   "#0072B2}</style></head><body><h1>Wide</h1><table><tr><td style=\"white-space:nowrap\">" +
                       std::string(300, 'W') + "END</td></tr></table></body></html>");
  REQUIRE(reports::html_to_pdf(chromium, dir + "/wide.html", dir + "/wide.pdf", reports::Paper::A4) == "");
  shell("pdftoppm -r " + std::to_string(dpi) + " -png -f 1 -l 1 " + dir + "/wide.pdf " + dir + "/wide");
  Image control = read_png(dir + "/wide-1.png");
  REQUIRE(control.width > 0);
  CHECK(title_rule_length(control) == Approx(full_rule).margin(3));
  CHECK(shell_stdout("pdftotext " + dir + "/wide.pdf -").find("WEND") == std::string::npos);
  shell("pdftoppm -r " + std::to_string(dpi) + " -png " + pdf + " " + dir + "/page");
  int rendered = 0;
  for (int p = 1; p <= pages; ++p) {
    // pdftoppm pads page numbers to the digits of the page count
    std::string number = std::to_string(p);
    number.insert(0, std::to_string(pages).size() - number.size(), '0');
    std::string png = dir + "/page-" + number + ".png";
    Image im = read_png(png);
    INFO(png);
    REQUIRE(im.width > 0);
    ++rendered;
    CHECK(im.width == Approx(210.0 / 25.4 * dpi).margin(2));
    CHECK(distinct_colours(im) > 2);  // not a blank page
    if (p == 1) CHECK(title_rule_length(im) == Approx(full_rule).margin(3));
  }
  CHECK(rendered == pages);
  // --paper letter: the HTML asks for letter and the PDF has it
  std::string letter_dir = test::temp_dir("chromium-letter");
  rich_report(letter_dir, test::kPassingGates, reports::Paper::Letter);
  REQUIRE(reports::html_to_pdf(chromium, letter_dir + "/out/report.html", letter_dir + "/out/report.pdf", reports::Paper::Letter) == "");
  pdf_info(letter_dir + "/out/report.pdf", pages, w, h);
  CHECK(w == Approx(612).margin(1.5));  // 8.5 x 11 in
  CHECK(h == Approx(792).margin(1.5));
}
