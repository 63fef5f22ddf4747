#pragma once
// Reading a JSON report written by the CLI in a test (tests that link nlohmann_json).
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace mlaudit::test {

/// Parses the JSON file at `path`; a missing or unreadable file fails the test with its path.
inline nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  INFO("reading " << path);
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

}  // namespace mlaudit::test
