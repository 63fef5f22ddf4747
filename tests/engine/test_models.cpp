// Bundled models end to end: logits and input gradients against PyTorch
// (fixtures by tools/engine_goldens.py), batch invariance, empty batch.
#include <catch2/catch.hpp>

#include "engine_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Tensor;

namespace {
std::string fixture(const std::string& f) { return test::source_path("tests/fixtures/engine/models/" + f); }
}  // namespace

TEST_CASE("bundled models: logits and input gradients match PyTorch to 1e-4 relative", "[engine][models]") {
  for (std::string name : {"fmnist_cnn", "credit_mlp"}) {
    INFO("model " << name);
    auto session = engine::Session::load(test::source_path("models/" + name + ".onnx"));
    Tensor x = datasets::read_npy_float(fixture(name + "_x.npy"));
    Tensor want_logits = datasets::read_npy(fixture(name + "_logits.npy"));
    Tensor want_grad = datasets::read_npy(fixture(name + "_grad.npy"));
    auto labels = datasets::read_npy_labels(fixture(name + "_labels.npy")).to_int64s();
    Tensor logits;
    Tensor grad = engine::logit_gradient(*session, x, labels, &logits);
    // 1e-4 relative as the issue asks; the absolute floor 1e-5 (logits) / 1e-6
    // (gradients, whose entries reach ~1e-3) absorbs sums that cancel to ~0.
    CHECK(test::worst_ratio(logits, want_logits, 1e-4, 1e-5) <= 1.0);
    CHECK(test::worst_ratio(grad, want_grad, 1e-4, 1e-6) <= 1.0);
  }
}

TEST_CASE("bundled CNN: batch size does not change results, batch 1 and empty batch work", "[engine][models]") {
  auto session = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  Tensor x = datasets::read_npy_float(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 16);
  Tensor all = session->forward(x);
  REQUIRE(all.shape() == engine::Shape{16, 10});
  for (int64_t i = 0; i < 16; i += 5) {
    Tensor one = session->forward(x.slice_rows(i, i + 1));
    REQUIRE(one.shape() == engine::Shape{1, 10});
    // Same float32 arithmetic per sample; different batching may reorder
    // GEMM blocks, so allow 1e-5 relative.
    CHECK(test::worst_ratio(one, all.slice_rows(i, i + 1), 1e-5, 1e-6) <= 1.0);
  }
  Tensor empty = session->forward(x.slice_rows(0, 0));
  CHECK(empty.shape() == engine::Shape{0, 10});
  Tensor g = engine::cross_entropy_gradient(*session, x.slice_rows(0, 0), {});
  CHECK(g.shape() == engine::Shape{0, 1, 28, 28});
}

TEST_CASE("cross-entropy gradient equals the finite difference of the loss", "[engine][models]") {
  auto session = engine::Session::load(test::source_path("models/credit_mlp.onnx"));
  Tensor x = datasets::read_npy_float(test::source_path("datasets/demo/credit_x.npy")).slice_rows(0, 4);
  std::vector<int64_t> y = {0, 1, 0, 1};
  std::vector<float> losses;
  Tensor g = engine::cross_entropy_gradient(*session, x, y, nullptr, &losses);
  REQUIRE(losses.size() == 4);
  auto loss_sum = [&](const Tensor& xx) {
    std::vector<float> l;
    engine::cross_entropy_gradient(*session, xx, y, nullptr, &l);
    double s = 0;
    for (float v : l) s += v;
    return s;
  };
  for (int64_t j = 0; j < x.shape()[1]; ++j) {
    // Raw features span 1..1e5 (income); step relative to the value.
    double h = 1e-2 * std::max(1.0, std::fabs(double(x.f32()[j])));
    Tensor p = x.clone(), m = x.clone();
    p.f32()[j] += float(h);
    m.f32()[j] -= float(h);
    double fd = (loss_sum(p) - loss_sum(m)) / (2 * h);
    INFO("feature " << j);
    CHECK(test::close(g.f32()[j], fd, 2e-2, 1e-4));
  }
}

TEST_CASE("wrong input shape is a clear InputError", "[engine][errors]") {
  auto session = engine::Session::load(test::source_path("models/fmnist_cnn.onnx"));
  Tensor bad(engine::Shape{2, 784});
  try {
    session->forward(bad);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("input 'input' expects shape [-1,1,28,28]") != std::string::npos);
    CHECK(std::string(e.what()).find("got [2,784]") != std::string::npos);
  }
}
