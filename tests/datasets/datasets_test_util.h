#pragma once
// Helpers shared by the datasets tests: fixture paths, the golden JSON, error-text checks.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "mlaudit/common/error.h"
#include "test_util.h"

namespace mlaudit::test {

/// Path of a committed fixture written by tools/datasets_fixtures.py.
inline std::string fixture(const std::string& name) { return source_path("tests/fixtures/datasets/" + name); }

/// tests/fixtures/datasets/expected.json, parsed once.
inline const nlohmann::json& expected_json() {
  static const nlohmann::json j = [] {
    std::ifstream in(fixture("expected.json"));
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return j;
}

/// Write bytes to a file (test set-up only; the code under test uses write_file_atomic).
inline void put_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

}  // namespace mlaudit::test

/// Expect `expr` to throw mlaudit::InputError whose message contains `text`.
#define MLAUDIT_REQUIRE_INPUT_ERROR(expr, text)                                          \
  do {                                                                                   \
    bool mlaudit_thrown = false;                                                         \
    try {                                                                                \
      (void)(expr);                                                                      \
    } catch (const mlaudit::InputError& mlaudit_error) {                                 \
      mlaudit_thrown = true;                                                             \
      INFO("message: " << mlaudit_error.what());                                         \
      CHECK_THAT(std::string(mlaudit_error.what()), Catch::Contains(std::string(text))); \
    }                                                                                    \
    if (!mlaudit_thrown) FAIL("expected mlaudit::InputError containing: " << (text));    \
  } while (0)
