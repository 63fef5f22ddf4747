// Row-invariant GEMM (engine/src/cpu/row_gemm.h): every output is the in-order chain of fused
// multiply-adds, so a row's results do not depend on the batch it came in, on the thread count or
// on the vector width; Gemm and MatMul (forward and input gradient) and a whole CNN's logits are
// checked at several batch sizes, bit for bit.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "../../engine/src/cpu/row_gemm.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "op_graph.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Shape;
using engine::Tensor;
using test::OneNode;

namespace {

std::vector<float> normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

Tensor random_tensor(const Shape& s, uint32_t seed) {
  Tensor t(s);
  const auto v = normal(size_t(t.numel()), seed);
  std::copy(v.begin(), v.end(), t.f32());
  return t;
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

TEST_CASE("row_gemm: every output is the in-order chain of fused multiply-adds, either tile width", "[engine][row_gemm]") {
  struct Case {
    int64_t m, k, n;
  };
  // Tile tails in rows (6) and columns (16, 64), one-term sums, K over one block (1024 terms).
  const std::vector<Case> cases = {{1, 1, 1}, {7, 3, 17}, {13, 300, 33}, {6, 64, 64}, {25, 1100, 70}, {2, 2500, 5}};
  for (int lanes : {8, 16}) {
    if (!engine::detail::row_gemm_force_tiles(lanes)) continue;  // no AVX-512 here
    for (const Case& c : cases)
      for (bool trans : {false, true})
        for (float alpha : {1.f, 0.5f})
          for (bool accumulate : {false, true}) {
            INFO(lanes << " lanes, " << c.m << "x" << c.k << "x" << c.n << " trans " << trans << " alpha " << alpha
                       << " accumulate " << accumulate);
            const auto a = normal(size_t(c.m * c.k), 1);
            const auto b = normal(size_t(c.k * c.n), 2);  // [k][n], or [n][k] when trans
            const auto c0 = normal(size_t(c.m * c.n), 3);
            auto packed = engine::detail::pack_b(b.data(), trans ? c.k : c.n, trans, c.k, c.n);
            std::vector<float> out = c0;
            engine::detail::row_gemm(c.m, a.data(), c.k, *packed, alpha, accumulate, out.data(), c.n);
            std::vector<float> want(size_t(c.m * c.n));
            for (int64_t i = 0; i < c.m; ++i)
              for (int64_t j = 0; j < c.n; ++j) {
                float acc = 0.f;
                for (int64_t kk = 0; kk < c.k; ++kk)
                  acc = std::fma(a[size_t(i * c.k + kk)], b[size_t(trans ? j * c.k + kk : kk * c.n + j)], acc);
                const float old = c0[size_t(i * c.n + j)];
                want[size_t(i * c.n + j)] = accumulate ? (alpha != 1.f ? std::fma(acc, alpha, old) : old + acc)
                                                       : (alpha != 1.f ? acc * alpha : acc);
              }
            CHECK(same_bits(out.data(), want.data(), want.size()));
          }
  }
  engine::detail::row_gemm_force_tiles(0);
}

TEST_CASE("Gemm and MatMul rows do not depend on the batch, forward and input gradient", "[engine][row_gemm]") {
  const int64_t big = 40;
  SECTION("Gemm, transB, bias") {
    const Tensor w = random_tensor({24, 200}, 5), bias = random_tensor({24}, 6);
    auto run = [&](const Tensor& x) {
      OneNode g("Gemm", 13);
      g.in("a", x).in("b", w).in("c", bias).attr("transB", int64_t(1)).attr("alpha", 0.75f);
      Tensor seed = Tensor::full({x.dim(0), 24}, 1.f);
      for (int64_t i = 0; i < seed.numel(); ++i) seed.f32()[i] = float(i % 7) - 3.f;
      return std::make_pair(g.run()[0], g.gradient({seed}).at(0));
    };
    const Tensor x = random_tensor({big, 200}, 7);
    const auto whole = run(x);
    for (int64_t rows : {1, 5, 13}) {
      INFO(rows << " rows");
      const auto part = run(x.slice_rows(0, rows));
      CHECK(same_bits(part.first.f32(), whole.first.f32(), size_t(rows * 24)));
      // the seed is a function of the flat index, so row r's seed is the same in every batch
      REQUIRE(part.second.shape() == Shape{rows, 200});
      CHECK(same_bits(part.second.f32(), whole.second.f32(), size_t(rows * 200)));
    }
  }
  SECTION("MatMul over a batch of sequences, plain and batched right-hand side") {
    const Tensor w = random_tensor({48, 80}, 8);
    const Tensor x = random_tensor({big, 9, 48}, 9);
    auto fwd = [&](const Tensor& xs) { return OneNode("MatMul", 13).in("a", xs).in("b", w).run()[0]; };
    auto grad = [&](const Tensor& xs) {
      OneNode mm("MatMul", 13);
      mm.in("a", xs).in("b", w);
      Tensor seed({xs.dim(0), 9, 80});
      for (int64_t i = 0; i < seed.numel(); ++i) seed.f32()[i] = float((i % 80) % 5) - 2.f;  // the same per row
      return mm.gradient({seed}).at(0);
    };
    const Tensor y = fwd(x), gx = grad(x);
    for (int64_t rows : {1, 3, 17}) {
      INFO(rows << " rows");
      CHECK(same_bits(fwd(x.slice_rows(0, rows)).f32(), y.f32(), size_t(rows * 9 * 80)));
      CHECK(same_bits(grad(x.slice_rows(0, rows)).f32(), gx.f32(), size_t(rows * 9 * 48)));
    }
    // Attention-style product: both sides batched.
    const Tensor k = random_tensor({big, 2, 16, 9}, 10), q = random_tensor({big, 2, 9, 16}, 11);
    const Tensor s = OneNode("MatMul", 13).in("a", q).in("b", k).run()[0];
    const Tensor s3 = OneNode("MatMul", 13).in("a", q.slice_rows(0, 3)).in("b", k.slice_rows(0, 3)).run()[0];
    CHECK(same_bits(s3.f32(), s.f32(), size_t(3 * 2 * 9 * 9)));
  }
}

TEST_CASE("a row's logits do not depend on its batch: the bundled CNN and MLP", "[engine][row_gemm]") {
  // Convolutions (direct and oneDNN), pooling and the Gemm layers with constant (packed, cached)
  // weights: rows 0..12 alone, in a batch of 13, and inside the 200-row batch.
  const Tensor x = datasets::read_npy_float(test::source_path("datasets/demo/fmnist_x.npy"));
  engine::Session cnn(engine::load_onnx(test::source_path("models/fmnist_cnn.onnx")));
  const Tensor all = cnn.forward(x);
  const int64_t c = all.dim(1);
  const Tensor first = cnn.forward(x.slice_rows(0, 13));
  CHECK(same_bits(first.f32(), all.f32(), size_t(13 * c)));
  for (int64_t i = 0; i < 13; ++i) {
    INFO("row " << i);
    CHECK(same_bits(cnn.forward(x.slice_rows(i, i + 1)).f32(), all.f32() + i * c, size_t(c)));
  }
  // The same rows in another order: each row's logits move with it.
  Tensor shuffled = x.slice_rows(0, 13);
  std::vector<float> rev(size_t(shuffled.numel()));
  const int64_t d = shuffled.numel() / 13;
  for (int64_t i = 0; i < 13; ++i) std::memcpy(rev.data() + i * d, x.f32() + (12 - i) * d, size_t(d) * sizeof(float));
  std::copy(rev.begin(), rev.end(), shuffled.f32());
  const Tensor back = cnn.forward(shuffled);
  for (int64_t i = 0; i < 13; ++i) CHECK(same_bits(back.f32() + i * c, all.f32() + (12 - i) * c, size_t(c)));
}
