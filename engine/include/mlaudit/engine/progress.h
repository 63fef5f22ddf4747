#pragma once
// Progress of long commands (certify, attack, backdoor, ...): a library loop reports
// (done, total) through a ProgressFn; the CLI turns it into a ProgressLine on stderr.
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>

namespace mlaudit::engine {

/// Called after each finished item: `done` of `total` (total may grow between calls).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

/// Sees every ProgressLine's updates, whether or not the line prints (the Python bindings:
/// progress bars, and Ctrl-C, by throwing Interrupted from an update). Called with end = true
/// once when a line that saw updates is destroyed; it must not throw then.
using ProgressObserver =
    std::function<void(const std::string& label, const std::string& unit, int64_t done, int64_t total, bool end)>;
/// Install (or, with an empty function, remove) the process-wide observer; returns the previous one.
ProgressObserver set_progress_observer(ProgressObserver observer);

/// Thrown by a progress observer to stop a run (the Python bindings turn it into KeyboardInterrupt).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

/// "certify: 12/200 samples, 0.9/s, ETA 3m28s" on a stream (stderr): shown only once the work
/// has run longer than `delay` seconds (1 s: short commands stay silent; MLAUDIT_PROGRESS_DELAY=S
/// overrides it, 0 shows every run). On a terminal the
/// line redraws in place (\r) and ends with a newline when finished; elsewhere (CI logs) a
/// plain line is printed at most every `interval` seconds and at the end.
class ProgressLine {
 public:
  ProgressLine(std::string label, std::string unit, bool enabled, std::ostream* out = nullptr, double delay = 1.0,
               double interval = 10.0);
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine();
  /// Record progress; prints when due.
  void update(int64_t done, int64_t total);
  /// A ProgressFn that updates this line (the line must outlive the call).
  ProgressFn fn() {
    return [this](int64_t done, int64_t total) { update(done, total); };
  }
  /// "3m28s", "42s", "1h05m": a duration for the line.
  static std::string duration(double seconds);
  /// The line for `done` of `total` after `elapsed` seconds (what update() prints).
  std::string text(int64_t done, int64_t total, double elapsed) const;

 private:
  std::string label_, unit_;
  bool enabled_;
  std::ostream* out_;
  bool tty_;
  double delay_, interval_;
  std::chrono::steady_clock::time_point start_;
  double last_print_ = -1;
  bool drawn_ = false;
  bool observed_ = false;
  int64_t done_ = 0, total_ = 0;
};

}  // namespace mlaudit::engine
