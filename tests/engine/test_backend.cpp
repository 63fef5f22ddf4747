// The backend contract (engine/src/backend.h): both backends list their op table, answer
// supports_op(node, opset) from it, and compute whole graphs; the lists the engine and
// `mlaudit info --ops` print are read from those tables.
#include <catch2/catch.hpp>

#include <algorithm>

#include "backend.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;

namespace {

engine::Node node_of(const std::string& op, const std::string& domain = "") {
  engine::Node n;
  n.name = "node_" + op;
  n.op_type = op;
  n.domain = domain;
  return n;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.to_doubles() == b.to_doubles();
}

}  // namespace

TEST_CASE("backend contract: the CPU backend's op table is the support table's rows", "[engine][backend]") {
  auto cpu = engine::make_cpu_backend();
  REQUIRE(cpu);
  CHECK(cpu->name() == "cpu");
  auto ops = cpu->ops();
  auto rows = engine::op_support_table();
  REQUIRE(ops.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(ops[i].first == rows[i].domain);
    CHECK(ops[i].second == rows[i].op_type);
  }
  // supported_ops(): the table's default-domain entries.
  std::vector<std::string> defaults;
  for (const auto& [domain, op] : ops)
    if (domain.empty()) defaults.push_back(op);
  CHECK(defaults == engine::supported_ops());

  CHECK(cpu->supports_op(node_of("Add"), 13));
  CHECK_FALSE(cpu->supports_op(node_of("NoSuchOp"), 13));
  // Each row's opset range and unsupported versions, through supports_op.
  for (const auto& r : rows) {
    if (!r.domain.empty()) continue;
    INFO("op " << r.op_type);
    bool first_ok = std::count(r.unsupported_versions.begin(), r.unsupported_versions.end(), r.first_opset) == 0;
    CHECK(cpu->supports_op(node_of(r.op_type), r.first_opset) == first_ok);
    for (int64_t v : r.unsupported_versions) CHECK_FALSE(cpu->supports_op(node_of(r.op_type), v));
  }
}

TEST_CASE("backend contract: the CPU backend's graph compute is the Session's executor", "[engine][backend]") {
  auto cpu = engine::make_cpu_backend();
  for (const std::string name : {"credit_mlp", "fmnist_cnn"}) {
    INFO("model " << name);
    engine::SessionOptions opts;
    opts.fuse_dense = false;  // the executor path (the dense chain is Session's own forward)
    auto session = engine::Session::load(test::source_path("models/" + name + ".onnx"), opts);
    Tensor x = datasets::read_npy_float(test::source_path("tests/fixtures/engine/models/" + name + "_x.npy"));
    auto graph = cpu->compute(session->graph());
    REQUIRE(graph);
    CHECK(graph->name() == "cpu");
    Tensor y = graph->run({x}).at(0);
    CHECK(same(y, session->run({x}).at(0)));
    Tensor seed(y.shape());
    for (int64_t i = 0; i < seed.numel(); ++i) seed.f32()[i] = float(i % 3) - 1.f;
    std::vector<Tensor> outs;
    Tensor g = graph->gradient({x}, {seed}, &outs).at(0);
    CHECK(same(outs.at(0), y));
    CHECK(same(g, session->gradient({x}, {seed}).at(0)));
  }
}

TEST_CASE("backend contract: the CUDA backend's op table is cuda_supported_ops()", "[engine][backend][cuda]") {
  auto cuda = engine::make_cuda_backend();
#ifdef MLAUDIT_WITH_CUDA
  REQUIRE(cuda);
  CHECK(cuda->name() == "cuda");
  std::vector<std::string> listed;
  for (const auto& [domain, op] : cuda->ops()) {
    CHECK(domain.empty());
    listed.push_back(op);
  }
  CHECK(listed == engine::cuda_supported_ops());
  CHECK(listed.size() >= 48);
  // Support checks beyond the op type (the device kernels' schema versions).
  CHECK(cuda->supports_op(node_of("Add"), 13));
  CHECK_FALSE(cuda->supports_op(node_of("Add"), 6));  // legacy broadcast attributes: CPU fallback
  CHECK_FALSE(cuda->supports_op(node_of("Sum"), 7));
  CHECK_FALSE(cuda->supports_op(node_of("Add", "ai.onnx.ml"), 13));
  CHECK_FALSE(cuda->supports_op(node_of("Acos"), 13));  // no CUDA kernel: per-op CPU fallback
  CHECK(cuda->supports_op(node_of("Conv"), 13));         // 2-D or not is decided per run, with the shapes
  if (engine::cuda_device_count() == 0) CHECK(cuda->compute(engine::Graph{}) == nullptr);
#else
  CHECK(cuda == nullptr);
  CHECK(engine::cuda_supported_ops().empty());
#endif
}
