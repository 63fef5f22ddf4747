// Opens a rendered report.html in headless Chromium: no console errors and a
// screenshot that is not blank. Labelled `chromium`; skipped (WARN) when no
// Chromium is installed (CI installs the Debian 'chromium' package).
#include <catch2/catch.hpp>
#include <png.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "mlaudit/reports/audit.h"
#include "mlaudit/reports/report.h"
#include "report_test_util.h"

using namespace mlaudit;
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

// Distinct RGB colours in a PNG (libpng simplified API).
size_t distinct_colours(const std::string& path, int& width, int& height) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) return 0;
  img.format = PNG_FORMAT_RGB;
  std::vector<unsigned char> px(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, px.data(), 0, nullptr)) return 0;
  width = int(img.width), height = int(img.height);
  std::set<uint32_t> colours;
  for (size_t i = 0; i + 2 < px.size(); i += 3) colours.insert(px[i] << 16 | px[i + 1] << 8 | px[i + 2]);
  return colours.size();
}

}  // namespace

TEST_CASE("html report opens in headless Chromium without console errors, screenshot not blank", "[reports][chromium]") {
  std::string chromium = find_chromium();
  if (chromium.empty()) {
    WARN("chromium not installed: skipping the browser check (apt-get install chromium)");
    return;
  }
  std::string dir = test::temp_dir("chromium");
  test::write_text(dir + "/audit.yaml", test::full_config(test::kPassingGates));
  reports::AuditOptions o;
  o.out_dir = dir + "/out";
  o.quiet = true;
  o.pdf = false;
  test::FakeRunner fake;
  auto res = reports::run_audit(reports::load_config(dir + "/audit.yaml"), o, std::ref(fake));
  REQUIRE(fs::exists(dir + "/out/report.html"));
  // Control: a page that logs to the console is detected by the same check.
  test::write_text(dir + "/control.html", "<html><body><script>console.error('control')</script></body></html>");
  std::string control = shell(chromium + " --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --screenshot=" +
                              dir + "/control.png file://" + dir + "/control.html");
  REQUIRE(control.find("CONSOLE") != std::string::npos);
  std::string shot = dir + "/shot.png";
  std::string log = shell(chromium + " --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,1600 "
                          "--enable-logging=stderr --v=0 --screenshot=" + shot + " file://" + dir + "/out/report.html");
  INFO(log);
  REQUIRE(fs::exists(shot));
  // Chromium logs page console messages as "CONSOLE(...)" / ":CONSOLE"; resource failures as "Failed to load".
  CHECK(log.find("CONSOLE") == std::string::npos);
  CHECK(log.find("Failed to load") == std::string::npos);
  CHECK(log.find("Uncaught") == std::string::npos);
  int w = 0, h = 0;
  size_t colours = distinct_colours(shot, w, h);
  CHECK(w == 1200);
  CHECK(colours > 16);  // text, badges, charts: a blank page has one or two colours
}
