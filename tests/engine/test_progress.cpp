// engine::ProgressLine: the progress line long commands print on stderr.
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "mlaudit/engine/progress.h"

using mlaudit::engine::ProgressLine;

TEST_CASE("progress: plain lines off a terminal, with rate and ETA, a final line with the totals", "[engine][progress]") {
  std::ostringstream out;
  {
    // delay 0 and interval 0: every update prints (a real command waits 1 s, then every 10 s).
    ProgressLine p("certify", "samples", true, &out, 0.0, 0.0);
    p.update(1, 4);
    p.update(2, 4);
    p.update(4, 4);  // done: printed once, by the destructor
  }
  const std::string s = out.str();
  INFO(s);
  CHECK(s.find("certify: 1/4 samples") == 0);
  CHECK(s.find("certify: 2/4 samples") != std::string::npos);
  CHECK(s.find("ETA") != std::string::npos);
  CHECK(s.find("certify: 4/4 samples") != std::string::npos);
  CHECK(s.find("done in") != std::string::npos);
  CHECK(s.find('\r') == std::string::npos);  // no redraw in a log
  CHECK(std::count(s.begin(), s.end(), '\n') == 3);
}

TEST_CASE("progress: silent when disabled (--quiet) or when the work ends before the delay", "[engine][progress]") {
  std::ostringstream quiet, quick;
  {
    ProgressLine p("attack", "points", false, &quiet, 0.0, 0.0);
    p.update(1, 2);
    p.update(2, 2);
  }
  {
    ProgressLine p("attack", "points", true, &quick, 60.0, 10.0);
    p.update(1, 2);
    p.update(2, 2);
  }
  CHECK(quiet.str().empty());
  CHECK(quick.str().empty());
  CHECK(ProgressLine::duration(5) == "5s");
  CHECK(ProgressLine::duration(208) == "3m28s");
  CHECK(ProgressLine::duration(3900) == "1h05m");
}

TEST_CASE("progress: a slow rate names one unit in the singular (query, sample)", "[engine][progress]") {
  std::ostringstream out;
  ProgressLine p("verify", "queries", true, &out, 0.0, 0.0);
  CHECK(p.text(1, 20, 3.0) == "verify: 1/20 queries, 3s per query, ETA 57s");
  ProgressLine q("certify", "samples", true, &out, 0.0, 0.0);
  CHECK(q.text(1, 4, 2.0) == "certify: 1/4 samples, 2s per sample, ETA 6s");
}

TEST_CASE("progress: singulars of the units commands use", "[engine][progress]") {
  std::ostringstream out;
  ProgressLine c("backdoor", "classes", true, &out, 0.0, 0.0);
  CHECK(c.text(1, 10, 2.0) == "backdoor: 1/10 classes, 2s per class, ETA 18s");
  ProgressLine b("verify", "boxes", true, &out, 0.0, 0.0);
  CHECK(b.text(1, 2, 2.0) == "verify: 1/2 boxes, 2s per box, ETA 2s");
  ProgressLine s("privacy", "steps", true, &out, 0.0, 0.0);
  CHECK(s.text(1, 2, 4.0) == "privacy: 1/2 steps, 4s per step, ETA 4s");
}
