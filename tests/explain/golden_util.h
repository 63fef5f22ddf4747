#pragma once
// Helpers shared by the explain tests that compare against committed goldens.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>

#include "mlaudit/engine/tensor.h"
#include "test_util.h"

namespace mlaudit::test {

/// A file of tests/fixtures/explain/.
inline std::string explain_fixture(const std::string& name) {
  return source_path("tests/fixtures/explain/" + name);
}

/// Largest |got - want| relative to want's largest magnitude (both the same size).
inline double max_scaled_error(const engine::Tensor& got, const engine::Tensor& want) {
  REQUIRE(got.numel() == want.numel());
  auto g = got.to_doubles(), w = want.to_doubles();
  double scale = 0, err = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    scale = std::max(scale, std::fabs(w[i]));
    err = std::max(err, std::fabs(g[i] - w[i]));
  }
  return err / std::max(scale, 1e-30);
}

}  // namespace mlaudit::test
