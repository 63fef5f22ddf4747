// VNN-LIB parser: boxes, output constraints, disjunctions, error positions.
#include <catch2/catch.hpp>

#include <filesystem>

#include "mlaudit/engine/error.h"
#include "mlaudit/verify/vnnlib.h"
#include "test_util.h"

using namespace mlaudit::verify;

namespace {
const char* kProp1 = R"(; ACAS Xu property 1 (excerpt)
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (<= X_0 0.679857769))
(assert (>= X_0 0.6))
(assert (<= X_1 0.5))
(assert (>= X_1 -0.5))
(assert (>= Y_0 3.991125645861615))
)";

std::string error_of(const std::string& text) {
  try {
    parse_vnnlib(text, "p.vnnlib");
  } catch (const mlaudit::InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("VNN-LIB: input box and a single output constraint", "[verify][vnnlib]") {
  Property p = parse_vnnlib(kProp1, "p1");
  REQUIRE(p.num_inputs == 2);
  REQUIRE(p.num_outputs == 2);
  REQUIRE(p.cases.size() == 1);
  CHECK(p.cases[0].box.lower == std::vector<double>{0.6, -0.5});
  CHECK(p.cases[0].box.upper == std::vector<double>{0.679857769, 0.5});
  REQUIRE(p.cases[0].unsafe.size() == 1);
  REQUIRE(p.cases[0].unsafe[0].size() == 1);
  // Y_0 >= 3.99 is stored as -Y_0 + 3.99 <= 0.
  const auto& c = p.cases[0].unsafe[0][0];
  CHECK(c.coef == std::vector<double>{-1, 0});
  CHECK(c.constant == 3.991125645861615);
}

TEST_CASE("VNN-LIB: or/and of output constraints and linear terms", "[verify][vnnlib]") {
  Property p = parse_vnnlib(R"(
(declare-const X_0 Real)
(declare-const Y_0 Real) (declare-const Y_1 Real) (declare-const Y_2 Real)
(assert (and (>= X_0 -1) (<= X_0 1)))
(assert (or (and (<= Y_1 Y_0) (<= Y_2 Y_0)) (and (>= (+ Y_0 (* 2 Y_1)) (- 3 Y_2)))))
)",
                            "p");
  REQUIRE(p.cases.size() == 1);
  const auto& u = p.cases[0].unsafe;
  REQUIRE(u.size() == 2);
  REQUIRE(u[0].size() == 2);
  CHECK(u[0][0].coef == std::vector<double>{-1, 1, 0});  // Y_1 - Y_0 <= 0
  CHECK(u[0][1].coef == std::vector<double>{-1, 0, 1});
  // Y_0 + 2 Y_1 >= 3 - Y_2  ->  3 - Y_2 - Y_0 - 2 Y_1 <= 0
  REQUIRE(u[1].size() == 1);
  CHECK(u[1][0].coef == std::vector<double>{-1, -2, -1});
  CHECK(u[1][0].constant == 3);
}

TEST_CASE("VNN-LIB: ACAS Xu property 6 is a disjunction of two input boxes", "[verify][vnnlib]") {
  std::string path = mlaudit::test::shared_dataset("vnncomp2022/acasxu/vnnlib/prop_6.vnnlib");
  if (!std::filesystem::exists(path)) {
    WARN("ACAS Xu data absent: " << path);
    return;
  }
  Property p = read_vnnlib(path);
  REQUIRE(p.num_inputs == 5);
  REQUIRE(p.num_outputs == 5);
  REQUIRE(p.cases.size() == 2);
  CHECK(p.cases[0].box.lower[1] == 0.11140846);
  CHECK(p.cases[0].box.upper[1] == 0.499999896);
  CHECK(p.cases[1].box.lower[1] == -0.499999896);
  CHECK(p.cases[1].box.upper[1] == -0.11140846);
  // "COC not minimal": four single-row disjuncts per box.
  for (const auto& c : p.cases) CHECK(c.unsafe.size() == 4);
}

TEST_CASE("VNN-LIB: errors name line and column", "[verify][vnnlib][errors]") {
  CHECK(error_of("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1)\n") ==
        "verify: p.vnnlib:3:1: unbalanced '(' (no matching ')')");
  CHECK(error_of("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_7 1))\n") ==
        "verify: p.vnnlib:3:13: undeclared variable 'X_7'");
  CHECK(error_of("(declare-const X_0 Real)\n  (declare-const Y_0 Int)\n") == "verify: p.vnnlib:2:22: sort 'Int' is not Real");
  CHECK(error_of("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1.5.2))\n") ==
        "verify: p.vnnlib:3:17: expected a number or a variable, got '1.5.2'");
  CHECK(error_of("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= (* X_0 Y_0) 1))\n") ==
        "verify: p.vnnlib:3:13: product of two variables is not linear");
  CHECK(error_of("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= Y_0 1))\n") ==
        "verify: p.vnnlib: input X_0 has no lower and upper bound");
  CHECK(error_of("(declare-const X_0 Real)\n(check-sat)\n") == "verify: p.vnnlib:2:2: unsupported command 'check-sat'");
  CHECK(error_of(")") == "verify: p.vnnlib:1:1: unexpected ')'");
}

TEST_CASE("Local robustness property: clipped box and one disjunct per other class", "[verify][vnnlib]") {
  Property p = robustness_property({0.05, 0.5, 0.98}, 1, 3, 0.1, 0.0, 1.0);
  REQUIRE(p.cases.size() == 1);
  CHECK(p.cases[0].box.lower == std::vector<double>{0.0, 0.4, 0.88});
  CHECK(p.cases[0].box.upper[2] == 1.0);
  REQUIRE(p.cases[0].unsafe.size() == 2);
  CHECK(p.cases[0].unsafe[0][0].coef == std::vector<double>{-1, 1, 0});  // y1 - y0 <= 0
}
