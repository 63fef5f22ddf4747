#pragma once
// Helpers shared by the fairness tests.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test_util.h"

namespace mlaudit::test {

/// A committed fixture under tests/fixtures/fairness/ as JSON.
inline nlohmann::json fairness_fixture(const std::string& name) {
  std::ifstream in(source_path("tests/fixtures/fairness/" + name));
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

inline bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

}  // namespace mlaudit::test
