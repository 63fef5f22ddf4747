// ProgressLine: progress of long commands on stderr (see progress.h).
#include "mlaudit/engine/progress.h"

#include <fmt/format.h>

#include <cstring>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <iostream>

namespace mlaudit::engine {

namespace {
// MLAUDIT_PROGRESS_DELAY=S: seconds before the first line (default: the caller's, 1 s); 0 shows
// progress of short runs too (tests, demos). Unset, empty or not a number: the default.
double progress_delay(double fallback) {
  const char* v = std::getenv("MLAUDIT_PROGRESS_DELAY");
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  return end && *end == '\0' && d >= 0 && std::isfinite(d) ? d : fallback;
}
ProgressObserver& observer() {
  static ProgressObserver o;
  return o;
}
}  // namespace

ProgressObserver set_progress_observer(ProgressObserver o) {
  std::swap(observer(), o);
  return o;
}

ProgressLine::ProgressLine(std::string label, std::string unit, bool enabled, std::ostream* out, double delay,
                           double interval)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      enabled_(enabled),
      out_(out ? out : &std::cerr),
      // redraw in place only on a terminal, and only when writing to the real stderr
      tty_(!out && isatty(STDERR_FILENO) == 1),
      delay_(progress_delay(delay)),
      interval_(tty_ ? 0.2 : interval),
      start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() {
  if (observed_ && observer()) {
    try {
      observer()(label_, unit_, done_, total_, true);
    } catch (...) {
    }
  }
  if (!enabled_ || !drawn_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // the final state, so a log ends with the totals
  *out_ << (tty_ ? "\r\033[K" : "") << text(done_, total_, elapsed) << "\n";
  out_->flush();
}

std::string ProgressLine::duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  const int64_t t = int64_t(std::llround(s));
  if (t < 60) return fmt::format("{}s", t);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

std::string ProgressLine::text(int64_t done, int64_t total, double elapsed) const {
  const double rate = elapsed > 0 ? double(done) / elapsed : 0.0;
  std::string line = fmt::format("{}: {}/{} {}", label_, done, total, unit_);
  if (rate > 0) {
    if (rate >= 1) {
      line += fmt::format(", {:.{}f}/s", rate, rate >= 10 ? 0 : 1);
    } else {
      // The singular of the unit: queries -> query, classes -> class, boxes -> box, samples -> sample.
      std::string one = unit_;
      auto ends = [&](const char* tail) {
        const size_t n = std::strlen(tail);
        return one.size() > n && one.compare(one.size() - n, n, tail) == 0;
      };
      if (ends("ies")) one = one.substr(0, one.size() - 3) + "y";
      else if (ends("sses") || ends("xes") || ends("ches") || ends("shes")) one.resize(one.size() - 2);
      else if (ends("s")) one.pop_back();
      line += fmt::format(", {} per {}", duration(1 / rate), one.empty() ? "item" : one);
    }
    if (done < total) line += ", ETA " + duration(double(total - done) / rate);
    else line += fmt::format(", done in {}", duration(elapsed));
  }
  return line;
}

void ProgressLine::update(int64_t done, int64_t total) {
  done_ = done;
  total_ = total;
  if (observer()) {
    observed_ = true;
    observer()(label_, unit_, done, total, false);
  }
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (elapsed < delay_) return;
  if (drawn_ && elapsed - last_print_ < interval_ && done < total) return;
  last_print_ = elapsed;
  drawn_ = true;
  if (tty_) *out_ << "\r\033[K" << text(done, total, elapsed);
  else if (done < total) *out_ << text(done, total, elapsed) << "\n";
  else return;  // the destructor prints the final line
  out_->flush();
}

}  // namespace mlaudit::engine
