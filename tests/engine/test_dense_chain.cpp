// The fused dense-chain forward (engine/src/dense_chain.*) against the op-by-op executor on
// the same graphs, which test_ops checks against onnxruntime op by op: chains of every step
// kind at widths that are not multiples of the vector width, graphs that must not be fused,
// and the invariants the fusion promises (rows independent of batch, block split and threads).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>

#include "engine_test_util.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using engine::Graph;
using engine::Node;
using engine::Tensor;

namespace {

Tensor random_tensor(engine::Shape s, std::mt19937& rng, float lo = -1.f, float hi = 1.f) {
  Tensor t(std::move(s));
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = u(rng);
  return t;
}

// A graph builder: nodes appended in order, each consuming the previous value.
struct Chain {
  Graph g;
  std::string cur = "x";
  int n = 0;
  std::mt19937 rng{7};
  explicit Chain(int64_t width, int64_t opset = 13) {
    g.source = "chain";
    g.opset = opset;
    g.inputs.push_back({"x", engine::DType::Float32, {-1, width}});
  }
  std::string constant(Tensor t) {
    std::string name = "c" + std::to_string(n++);
    g.initializers[name] = std::move(t);
    return name;
  }
  Node& add(const std::string& op, std::vector<std::string> extra = {}, bool data_first = true) {
    Node node;
    node.name = op + std::to_string(n);
    node.op_type = op;
    node.inputs = data_first ? std::vector<std::string>{cur} : std::vector<std::string>{};
    for (auto& e : extra) node.inputs.push_back(e);
    if (!data_first) node.inputs.push_back(cur);
    cur = "v" + std::to_string(n++);
    node.outputs = {cur};
    g.nodes.push_back(node);
    return g.nodes.back();
  }
  Node& gemm(int64_t in, int64_t out, bool trans_b = true, bool bias = true) {
    std::vector<std::string> ins{constant(random_tensor(trans_b ? engine::Shape{out, in} : engine::Shape{in, out}, rng))};
    if (bias) ins.push_back(constant(random_tensor({out}, rng)));
    Node& node = add("Gemm", ins);
    if (trans_b) node.attributes["transB"].i = 1;
    return node;
  }
  Graph done() {
    g.outputs.push_back({cur, engine::DType::Float32, {}});
    return g;
  }
};

engine::Tensor run(const Graph& g, const Tensor& x, bool fuse, bool* fused = nullptr) {
  engine::SessionOptions o;
  o.fuse_dense = fuse;
  engine::Session s(g, o);
  if (fused) *fused = s.fused();
  return s.forward(x);
}

// Fused and op-by-op forwards agree; the fused one is taken. Tolerance: both sum each dot
// product of K <= 64 float products, in different orders (sgemm's blocking vs k = 0..K-1), so
// they differ by a few float ulps of the sum of |terms|: 1e-5 relative + 1e-5 absolute.
void check_chain(const Graph& g, int64_t width, bool expect_fused = true) {
  std::mt19937 rng(11);
  for (int64_t rows : {1, 15, 33, 257}) {
    INFO("rows " << rows);
    const Tensor x = random_tensor({rows, width}, rng, 0.5f, 2.f);
    bool fused = false;
    const Tensor a = run(g, x, true, &fused), b = run(g, x, false);
    CHECK(fused == expect_fused);
    REQUIRE(a.shape() == b.shape());
    CHECK(test::worst_ratio(a, b, 1e-5, 1e-5) <= 1.0);
  }
}

}  // namespace

namespace {
// A tabular MLP: Sub (and Div when `divide`) by per-feature constants, Relu layers of the
// given widths, a linear output layer.
Graph mlp(int64_t in, const std::vector<int64_t>& hidden, int64_t out, bool divide) {
  Chain c(in);
  c.add("Sub", {c.constant(random_tensor({in}, c.rng))});
  if (divide) c.add("Div", {c.constant(random_tensor({in}, c.rng, 0.5f, 2.f))});
  int64_t w = in;
  for (int64_t h : hidden) {
    c.gemm(w, h);
    c.add("Relu");
    w = h;
  }
  c.gemm(w, out);
  return c.done();
}
}  // namespace

TEST_CASE("dense chain: a tabular MLP with input normalisation", "[engine][dense]") {
  check_chain(mlp(7, {32, 16}, 2, true), 7);
}

TEST_CASE("dense chain: MatMul + Add, LeakyRelu, Gemm alpha/beta with scalar C, Sigmoid, Softmax", "[engine][dense]") {
  Chain c(5);
  c.add("MatMul", {c.constant(random_tensor({5, 37}, c.rng))});
  c.add("Add", {c.constant(random_tensor({1, 37}, c.rng))});
  c.add("LeakyRelu").attributes["alpha"] = engine::Attribute::of_float(0.2f);
  Node& g2 = c.gemm(37, 9, false, false);
  g2.attributes["alpha"] = engine::Attribute::of_float(0.5f);
  g2.attributes["beta"] = engine::Attribute::of_float(2.f);
  g2.inputs.push_back(c.constant(Tensor::scalar(0.25f)));
  c.add("Sigmoid");
  c.gemm(9, 3);
  c.add("Softmax");
  check_chain(c.done(), 5);
}

TEST_CASE("dense chain: constants on either side, scalars, Tanh, Flatten, Identity, LogSoftmax", "[engine][dense]") {
  Chain c(3, 11);
  c.add("Mul", {c.constant(Tensor::scalar(1.5f))}, false);             // 1.5 * x
  c.add("Sub", {c.constant(random_tensor({3}, c.rng, 3.f, 4.f))}, false);  // c - x (> 0 for x <= 3)
  c.add("Div", {c.constant(Tensor::scalar(2.f))}, false);              // 2 / v
  c.add("Flatten");
  c.gemm(3, 17);
  c.add("Tanh");
  c.add("Identity");
  c.gemm(17, 1);
  c.add("Add", {c.constant(Tensor::scalar(-0.5f))});
  c.gemm(1, 4);
  c.add("LeakyRelu");  // fused into the Gemm's store, default slope 0.01
  c.add("LogSoftmax");  // opset 11: axis defaults to 1
  check_chain(c.done(), 3);
}

TEST_CASE("dense chain: graphs that are not a single dense chain run op by op", "[engine][dense]") {
  SECTION("a value read twice (residual connection)") {
    Chain c(6);
    c.gemm(6, 6);
    const std::string skip = c.cur;
    c.add("Relu");
    c.add("Add", {skip});
    check_chain(c.done(), 6, false);
  }
  SECTION("Gemm with transA") {
    Chain c(4);
    c.gemm(4, 4).attributes["transA"].i = 1;
    // [N,4]^T x [4,4]: only square batches are valid; rows = 4 below.
    Graph g = c.done();
    std::mt19937 rng(3);
    const Tensor x = random_tensor({4, 4}, rng);
    bool fused = true;
    const Tensor a = run(g, x, true, &fused);
    CHECK_FALSE(fused);
    CHECK(test::worst_ratio(a, run(g, x, false), 1e-6, 1e-6) <= 1.0);
  }
  SECTION("a per-row constant") {
    Chain c(4);
    c.add("Add", {c.constant(random_tensor({3, 4}, c.rng))});
    Graph g = c.done();
    std::mt19937 rng(3);
    bool fused = true;
    const Tensor a = run(g, random_tensor({3, 4}, rng), true, &fused);
    CHECK_FALSE(fused);
    CHECK(a.shape() == engine::Shape{3, 4});
  }
  SECTION("an op outside the set (Exp)") {
    Chain c(4);
    c.gemm(4, 4);
    c.add("Exp");
    check_chain(c.done(), 4, false);
  }
}

TEST_CASE("dense chain: rows do not depend on batch size, block split or threads", "[engine][dense]") {
  const Graph g = mlp(7, {50}, 10, false);
  std::mt19937 rng(5);
  const Tensor x = random_tensor({4000, 7}, rng);  // 7 MFLOP: the parallel path
  engine::Session s(g);
  REQUIRE(s.fused());
  engine::set_num_threads(2);
  const Tensor all = s.forward(x);
  engine::set_num_threads(1);
  const Tensor one_thread = s.forward(x);
  engine::set_num_threads(0);
  for (int64_t i = 0; i < all.numel(); ++i) REQUIRE(all.f32()[i] == one_thread.f32()[i]);
  const Tensor none = s.forward(x.first_rows(0));
  CHECK(none.shape() == engine::Shape{0, 10});
  for (int64_t r : {0, 31, 32, 3999}) {
    const Tensor row = s.forward(x.slice_rows(r, r + 1));
    for (int64_t j = 0; j < 10; ++j) REQUIRE(row.f32()[j] == all.f32()[r * 10 + j]);
  }
}

TEST_CASE("dense chain: 8-float and 16-float kernels give the same bits", "[engine][dense]") {
  // Each output lane is the same FMA chain whatever the register width (release builds target
  // x86-64-v3, which has FMA; on a machine without AVX-512 both runs take the 8-float kernels).
  Chain c(9);
  c.add("Div", {c.constant(random_tensor({9}, c.rng, 0.5f, 2.f))});
  c.gemm(9, 21);
  c.add("LeakyRelu");
  c.gemm(21, 13);
  c.add("Relu");
  c.gemm(13, 3);
  c.add("Softmax");
  const Graph g = c.done();
  engine::Session s(g);
  REQUIRE(s.fused());
  setenv("MLAUDIT_DENSE_LANES", "8", 1);  // read when a session compiles its chain
  engine::Session s8(g);
  unsetenv("MLAUDIT_DENSE_LANES");
  std::mt19937 rng(9);
  const Tensor x = random_tensor({77, 9}, rng);
  const Tensor wide = s.forward(x);
  const Tensor narrow = s8.forward(x);
#ifdef __FMA__
  for (int64_t i = 0; i < wide.numel(); ++i) REQUIRE(wide.f32()[i] == narrow.f32()[i]);
#else
  // A build without FMA (debug/sanitizer: generic x86-64) rounds each product of the 8-float
  // kernels before adding it: a few ulps, as against the executor.
  CHECK(test::worst_ratio(wide, narrow, 1e-5, 1e-5) <= 1.0);
#endif
}

TEST_CASE("dense chain: the bundled credit MLP is fused and matches the executor", "[engine][dense]") {
  const std::string model = test::source_path("models/credit_mlp.onnx");
  const Tensor x = datasets::read_npy(test::source_path("datasets/demo/credit_x.npy"));
  auto fused = engine::Session::load(model);
  engine::SessionOptions o;
  o.fuse_dense = false;
  auto plain = engine::Session::load(model, o);
  REQUIRE(fused->fused());
  REQUIRE_FALSE(plain->fused());
  CHECK(test::worst_ratio(fused->forward(x), plain->forward(x), 1e-5, 1e-5) <= 1.0);
}

namespace {

// Mixtures of one row x with `rows` rows b (mask per b: the groups to mix), groups of 1-3
// features. The session's answer against Model's default (rows built, forward run op by op on
// an unfused session): pattern by pattern, ends included.
struct MixCase {
  std::vector<std::vector<int64_t>> groups;
  std::vector<Tensor> xs;
  Tensor b;
  std::vector<engine::Mixtures> batch;
};

MixCase mix_case(int64_t width, int64_t items, int64_t rows, std::mt19937& rng) {
  MixCase m;
  // Groups: features 0..width-1 dealt out to ceil(width/2) groups, in a shuffled order.
  std::vector<int64_t> f(width);
  for (int64_t j = 0; j < width; ++j) f[j] = j;
  std::shuffle(f.begin(), f.end(), rng);
  const int64_t G = (width + 1) / 2;
  m.groups.assign(G, {});
  for (int64_t j = 0; j < width; ++j) m.groups[j % G].push_back(f[j]);
  m.b = random_tensor({rows, width}, rng);
  for (int64_t i = 0; i < items; ++i) m.xs.push_back(random_tensor({width}, rng));
  for (int64_t i = 0; i < items; ++i) {
    engine::Mixtures it;
    it.x = m.xs[i].f32();
    it.groups = &m.groups;
    for (int64_t k = 0; k < rows; ++k) {
      it.rows.push_back(m.b.f32() + k * width);
      // Every number of mixed groups from 0 to G (one, two or several 16-pattern chunks).
      uint64_t mask = 0;
      const int64_t n = (k + i) % (G + 1);
      std::vector<int64_t> pick(G);
      for (int64_t g = 0; g < G; ++g) pick[g] = g;
      std::shuffle(pick.begin(), pick.end(), rng);
      for (int64_t q = 0; q < n; ++q) mask |= uint64_t(1) << pick[q];
      it.masks.push_back(mask);
    }
    m.batch.push_back(std::move(it));
  }
  return m;
}

// Largest |a - b| / (atol + rtol |b|) over every pattern of every item.
double mix_worst(const engine::MixtureOutputs& a, const engine::MixtureOutputs& b, const MixCase& m, double rtol,
                 double atol) {
  REQUIRE(a.outputs == b.outputs);
  double worst = 0;
  for (size_t i = 0; i < m.batch.size(); ++i)
    for (size_t k = 0; k < m.batch[i].masks.size(); ++k) {
      const int64_t np = int64_t(1) << __builtin_popcountll(m.batch[i].masks[k]);
      for (int64_t p = 0; p < np; ++p)
        for (int64_t c = 0; c < a.outputs; ++c) {
          const double va = a.values[(a.offsets[i][k] + p) * a.outputs + c];
          const double vb = b.values[(b.offsets[i][k] + p) * b.outputs + c];
          worst = std::max(worst, std::fabs(va - vb) / (atol + rtol * std::fabs(vb)));
        }
    }
  return worst;
}

}  // namespace

TEST_CASE("dense chain: mixtures of rows match forward on the built rows", "[engine][dense][mixtures]") {
  // Tolerance: a pattern's first-layer pre-activation is b's plus the mixed groups' deltas
  // (differences of products), not one dot product: rounding of the order of float eps times
  // the sum of |terms| (inputs and weights in [-1, 1], widths <= 37), 2e-5 relative + absolute.
  std::mt19937 rng(21);
  std::vector<std::pair<const char*, Graph>> graphs;
  graphs.emplace_back("relu mlp", mlp(9, {37, 19}, 2, true));
  {
    Chain c(11);  // LeakyRelu, a second layer without activation, Sigmoid, Softmax
    c.gemm(11, 20);
    c.add("LeakyRelu").attributes["alpha"] = engine::Attribute::of_float(0.1f);
    c.gemm(20, 8);
    c.add("Sigmoid");
    c.gemm(8, 3);
    c.add("Softmax");
    graphs.emplace_back("leaky, sigmoid, softmax", c.done());
  }
  {
    Chain c(6);  // a single layer after a per-feature Tanh, alpha != 1, LogSoftmax
    c.add("Tanh");
    Node& g = c.gemm(6, 5);
    g.attributes["alpha"] = engine::Attribute::of_float(0.5f);
    c.add("LogSoftmax");
    graphs.emplace_back("single layer", c.done());
  }
  for (auto& [name, g] : graphs) {
    INFO(name);
    const int64_t width = g.inputs[0].shape[1];
    engine::Session fused(g);
    engine::SessionOptions o;
    o.fuse_dense = false;
    engine::Session plain(g, o);
    REQUIRE(fused.fused());
    MixCase m = mix_case(width, 3, 23, rng);
    engine::MixtureOutputs a, b;
    fused.forward_mixtures(m.batch, {width}, 4096, true, a);
    plain.forward_mixtures(m.batch, {width}, 100, true, b);  // Model's default, 100 rows per call
    CHECK(mix_worst(a, b, m, 2e-5, 2e-5) <= 1.0);
    // The default leaves patterns 0 and all-ones unset when asked (callers know f(b), f(x)).
    engine::MixtureOutputs c;
    plain.forward_mixtures(m.batch, {width}, 7, false, c);
    for (size_t i = 0; i < m.batch.size(); ++i)
      for (size_t k = 0; k < m.batch[i].masks.size(); ++k) {
        const int64_t np = int64_t(1) << __builtin_popcountll(m.batch[i].masks[k]);
        for (int64_t p = 1; p + 1 < np; ++p)
          for (int64_t j = 0; j < c.outputs; ++j)
            REQUIRE(c.values[(c.offsets[i][k] + p) * c.outputs + j] ==
                    Approx(b.values[(b.offsets[i][k] + p) * b.outputs + j]).epsilon(1e-5).margin(1e-5));  // sgemm blocking
      }
    // Pattern 0 is b itself and all-ones is x on every mixed group: against forward on those rows.
    const Tensor fb = plain.forward(m.b);
    for (size_t k = 0; k < m.batch[0].masks.size(); ++k)
      for (int64_t j = 0; j < a.outputs; ++j)
        CHECK(std::fabs(a.values[a.offsets[0][k] * a.outputs + j] - fb.f32()[k * a.outputs + j]) <=
              2e-5 * (1 + std::fabs(fb.f32()[k * a.outputs + j])));
  }
}

TEST_CASE("dense chain: mixture values do not depend on the batch, threads or register width", "[engine][dense][mixtures]") {
  const Graph g = mlp(8, {40}, 6, false);
  engine::Session s(g);
  setenv("MLAUDIT_DENSE_LANES", "8", 1);
  engine::Session s8(g);
  unsetenv("MLAUDIT_DENSE_LANES");
  std::mt19937 rng(4);
  MixCase m = mix_case(8, 4, 60, rng);  // 15 MFLOP: the parallel path
  engine::MixtureOutputs all, one, narrow;
  engine::set_num_threads(2);
  s.forward_mixtures(m.batch, {8}, 4096, true, all);
  s8.forward_mixtures(m.batch, {8}, 4096, true, narrow);
  engine::set_num_threads(1);
  s.forward_mixtures(m.batch, {8}, 4096, true, one);
  engine::set_num_threads(0);
  CHECK(mix_worst(all, one, m, 0, 1e-30) == 0.0);
#ifdef __FMA__
  CHECK(mix_worst(all, narrow, m, 0, 1e-30) == 0.0);
#else
  CHECK(mix_worst(all, narrow, m, 1e-5, 1e-5) <= 1.0);
#endif
  // Item 2 alone, and its row 7 alone: the same bits.
  std::vector<engine::Mixtures> single{m.batch[2]};
  engine::MixtureOutputs alone;
  s.forward_mixtures(single, {8}, 4096, true, alone);
  single[0].rows = {m.batch[2].rows[7]};
  single[0].masks = {m.batch[2].masks[7]};
  engine::MixtureOutputs row7;
  s.forward_mixtures(single, {8}, 4096, true, row7);
  const int64_t np = int64_t(1) << __builtin_popcountll(m.batch[2].masks[7]);
  for (int64_t p = 0; p < np; ++p)
    for (int64_t j = 0; j < 6; ++j) {
      const float want = all.values[(all.offsets[2][7] + p) * 6 + j];
      REQUIRE(alone.values[(alone.offsets[0][7] + p) * 6 + j] == want);
      REQUIRE(row7.values[(row7.offsets[0][0] + p) * 6 + j] == want);
    }
}

TEST_CASE("dense chain: mixtures reject masks and groups that do not fit", "[engine][dense][mixtures]") {
  Chain c(4);
  c.gemm(4, 3);
  const Graph g = c.done();
  engine::Session s(g);
  engine::SessionOptions o;
  o.fuse_dense = false;
  engine::Session plain(g, o);
  std::vector<std::vector<int64_t>> groups{{0, 1}, {2}};
  const std::vector<float> x{1, 2, 3, 4}, b{0, 0, 0, 0};
  engine::Mixtures it;
  it.x = x.data();
  it.groups = &groups;
  it.rows = {b.data()};
  it.masks = {0x4};  // group 2 does not exist
  engine::MixtureOutputs out;
  for (const engine::Model* m : {static_cast<const engine::Model*>(&s), static_cast<const engine::Model*>(&plain)}) {
    CHECK_THROWS_WITH(m->forward_mixtures({it}, {4}, 16, true, out), Catch::Contains("names groups beyond the 2 given"));
    engine::Mixtures bad = it;
    bad.masks = {0x1};
    groups[1] = {4};  // feature 4 of a 4-wide row
    CHECK_THROWS_WITH(m->forward_mixtures({bad}, {4}, 16, true, out), Catch::Contains("feature 4 outside rows of 4"));
    groups[1] = {2};
    bad.masks = {};
    CHECK_THROWS_WITH(m->forward_mixtures({bad}, {4}, 16, true, out), Catch::Contains("one mask per row"));
  }
}
