#pragma once
// Shared helpers for tests: paths, running the CLI, tolerant comparisons.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>

namespace mlaudit::test {

/// Repository-relative path. MLAUDIT_TEST_SOURCE_DIR overrides the compiled-in source tree, so a
/// packed test binary finds its fixtures on another machine (bench/gpu/device_check.sh sets it).
inline std::string source_path(const std::string& rel) {
  const char* root = std::getenv("MLAUDIT_TEST_SOURCE_DIR");
  return (root && *root ? std::string(root) : std::string(MLAUDIT_SOURCE_DIR)) + "/" + rel;
}
inline std::string shared_dataset(const std::string& rel) { return std::string(MLAUDIT_SHARED_DATASETS) + "/" + rel; }
/// s with every occurrence of `from` replaced by `to` (fixture command lines' {D}/{T} placeholders).
inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}
/// The mlaudit executable; MLAUDIT_TEST_EXE overrides the compiled-in path (device_check.sh sets it).
inline std::string mlaudit_exe() {
  const char* exe = std::getenv("MLAUDIT_TEST_EXE");
  return exe && *exe ? std::string(exe) : std::string(MLAUDIT_EXE);
}

/// Result of running a shell command: exit code and combined stdout+stderr.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};

/// Run `mlaudit <args>` through the shell, capturing stdout and stderr.
inline CommandResult run_cli(const std::string& args) {
  std::string cmd = mlaudit_exe() + " " + args + " 2>&1";
  CommandResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Multiplier for the time limits of tests whose verdict depends on a solver time budget
/// (MLAUDIT_TEST_TIME_SCALE, default 1): `make sanitize` sets it, because ASan/UBSan slow the
/// solvers several-fold and a timeout there says nothing about memory errors.
inline double time_scale() {
  const char* e = std::getenv("MLAUDIT_TEST_TIME_SCALE");
  double v = e ? std::atof(e) : 1.0;
  return v >= 1.0 ? v : 1.0;
}

/// |a-b| <= atol + rtol*|b|: the comparison every golden test uses; callers
/// state why their tolerances are what they are.
inline bool close(double a, double b, double rtol, double atol) { return std::fabs(a - b) <= atol + rtol * std::fabs(b); }

/// Fresh temporary directory for a test.
inline std::string temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/mlaudit-" + tag + "-XXXXXX";
  char* d = mkdtemp(tmpl.data());
  return d ? std::string(d) : std::string("/tmp");
}

/// A whole file as text ("" when it cannot be read: the test's checks then fail on it).
inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace mlaudit::test
