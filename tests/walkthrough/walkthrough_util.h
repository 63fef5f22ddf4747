#pragma once
// Runs the README's walk-throughs as a newcomer would type them: the fenced block after each
// `<!-- walkthrough:NAME -->` marker, from a scratch copy of the repository root (models/,
// datasets/, examples/ and build/ linked in, ../shared/datasets linked beside it), every
// command's exit code and output checked.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace mlaudit::test {

/// One shell command of a walk-through (continuation lines joined) and what it printed.
struct WalkthroughStep {
  std::string command;
  CommandResult result;
};

/// The commands of the block after `<!-- walkthrough:NAME -->` in README.md: continuation lines
/// ('\' at the end) joined, blank and comment lines dropped. Empty when the marker is missing.
inline std::vector<std::string> walkthrough_commands(const std::string& readme, const std::string& name) {
  const size_t marker = readme.find("<!-- walkthrough:" + name + " -->");
  if (marker == std::string::npos) return {};
  const size_t open = readme.find("```", marker);
  const size_t body = readme.find('\n', open) + 1;
  const size_t close = readme.find("\n```", body);
  std::istringstream in(readme.substr(body, close - body + 1));
  std::vector<std::string> commands;
  std::string line, pending;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(' ');
    if (pending.empty() && (start == std::string::npos || line[start] == '#')) continue;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1);
      continue;
    }
    commands.push_back(pending + line);
    pending.clear();
  }
  return commands;
}

/// A scratch "repository root" T/main holding links to the checkout's models/, datasets/,
/// examples/ and tools/, build/ -> the folder of the mlaudit under test, and T/shared/datasets ->
/// the public data, so '../shared/datasets/...' and '$PWD/build' in the README resolve.
inline std::string walkthrough_root(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path top = temp_dir("walkthrough-" + tag);
  const fs::path root = top / "main";
  fs::create_directories(root);
  for (const char* dir : {"models", "datasets", "examples", "tools"})
    fs::create_directory_symlink(fs::path(source_path(dir)).lexically_normal(), root / dir);
  fs::create_directory_symlink(fs::absolute(mlaudit_exe()).parent_path(), root / "build");
  fs::create_directories(top / "shared");
  if (fs::exists(MLAUDIT_SHARED_DATASETS))
    fs::create_directory_symlink(fs::absolute(MLAUDIT_SHARED_DATASETS), top / "shared" / "datasets");
  return root.string();
}

/// Runs the walk-through `name` in a fresh root: lines starting with `export` set up the
/// environment of every later command; each other line runs in its own shell from the root.
inline std::vector<WalkthroughStep> run_walkthrough(const std::string& name, std::string* root_out = nullptr) {
  const std::string readme = read_text(source_path("README.md"));
  const std::vector<std::string> commands = walkthrough_commands(readme, name);
  REQUIRE(!commands.empty());
  const std::string root = walkthrough_root(name);
  if (root_out) *root_out = root;
  std::string setup;
  std::vector<WalkthroughStep> steps;
  for (const auto& c : commands) {
    if (c.rfind("export ", 0) == 0) {
      setup += c + " && ";
      continue;
    }
    WalkthroughStep s;
    s.command = c;
    const std::string shell = "cd '" + root + "' && " + setup + c + " 2>&1";
    FILE* p = popen(shell.c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.result.output.append(buf, n);
    const int status = pclose(p);
    s.result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    steps.push_back(s);
  }
  return steps;
}

/// Every step exited 0; `expected[k]` are phrases step k must print.
inline void expect_steps(const std::vector<WalkthroughStep>& steps, const std::vector<std::vector<std::string>>& expected) {
  REQUIRE(steps.size() == expected.size());
  for (size_t k = 0; k < steps.size(); ++k) {
    INFO("$ " << steps[k].command << "\n" << steps[k].result.output);
    CHECK(steps[k].result.exit_code == 0);
    for (const auto& phrase : expected[k]) CHECK(steps[k].result.output.find(phrase) != std::string::npos);
  }
}

/// True when the public datasets are present; else a WARN naming the skipped walk-through.
inline bool shared_datasets_present(const std::string& name) {
  if (std::filesystem::exists(MLAUDIT_SHARED_DATASETS)) return true;
  WARN("walkthrough " << name << " skipped: " << MLAUDIT_SHARED_DATASETS << " (the public datasets) is missing");
  return false;
}

}  // namespace mlaudit::test
