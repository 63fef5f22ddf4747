// Every op: forward against onnxruntime and vector-Jacobian products against
// PyTorch autograd (fixtures by tools/engine_goldens.py), plus a finite-difference
// check of each VJP through the engine's own forward.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine_test_util.h"
#include "op_cases.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;

namespace {

std::string ops_dir() { return test::source_path("tests/fixtures/engine/ops"); }

}  // namespace

TEST_CASE("every op: forward matches onnxruntime", "[engine][ops]") {
  CHECK(test::check_op_forward(ops_dir()) >= 80);
}

TEST_CASE("every op: vector-Jacobian product matches PyTorch autograd", "[engine][ops][grad]") {
  CHECK(test::check_op_vjp(ops_dir()) >= 70);
}

TEST_CASE("every op: VJP agrees with central finite differences of the forward", "[engine][ops][fd]") {
  // Piecewise ops (kinks at 0 or ties) and the int-cast case are covered by the autograd goldens.
  CHECK(test::check_op_finite_differences(ops_dir(), {"Sign", "Cast"}) >= 60);
}
