// ONNX loading: untrusted files give one clear InputError; graph structure
// (topological order, dead nodes, initializers listed as inputs) is handled.
#include <catch2/catch.hpp>
#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;

namespace {

// A tiny model y = Relu(x) built with the protobuf classes; tests mutate it.
onnx::ModelProto tiny_model(const std::string& op = "Relu", int opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  auto* imp = m.add_opset_import();
  imp->set_domain("");
  imp->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto* in = g->add_input();
  in->set_name("x");
  auto* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_param("N");
  tt->mutable_shape()->add_dim()->set_dim_value(3);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("node_0");
  n->add_input("x");
  n->add_output("y");
  return m;
}

std::string bytes_of(const onnx::ModelProto& m) { return m.SerializeAsString(); }

std::string load_error(const std::string& bytes) {
  try {
    engine::Graph g = engine::parse_onnx(bytes.data(), bytes.size(), "m.onnx");
    engine::Session s(std::move(g));
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tiny model loads and runs", "[engine][loader]") {
  std::string b = bytes_of(tiny_model());
  engine::Graph g = engine::parse_onnx(b.data(), b.size(), "m.onnx");
  REQUIRE(g.inputs.size() == 1);
  CHECK(g.inputs[0].shape == engine::Shape{-1, 3});
  engine::Session s(std::move(g));
  auto y = s.forward(engine::Tensor::from_floats({1, 3}, {-1.f, 0.5f, 2.f}));
  CHECK(y.to_doubles() == std::vector<double>{0.0, 0.5, 2.0});
}

TEST_CASE("malformed model files give an InputError naming the problem", "[engine][loader][errors]") {
  CHECK(contains(load_error(""), "m.onnx: file is empty"));
  CHECK(contains(load_error("this is not protobuf at all \xff\xff\xff"), "not a valid ONNX model"));
  std::string good = bytes_of(tiny_model());
  CHECK(contains(load_error(good.substr(0, good.size() / 2)), "m.onnx"));
  CHECK(contains(load_error(bytes_of(tiny_model("Resize"))), "unsupported op 'Resize' (opset 13) at node 'node_0'"));
  CHECK(contains(load_error(bytes_of(tiny_model("Relu", 19))), "opset 19 is not supported (supported: 7 to 18)"));
  CHECK(contains(load_error(bytes_of(tiny_model("Relu", 6))), "opset 6 is not supported"));

  auto undefined = tiny_model();
  undefined.mutable_graph()->mutable_node(0)->set_input(0, "nope");
  CHECK(contains(load_error(bytes_of(undefined)), "node 'node_0' (Relu) uses undefined value 'nope'"));

  auto cycle = tiny_model();
  {
    auto* g = cycle.mutable_graph();
    auto* a = g->mutable_node(0);
    a->set_input(0, "z");
    auto* b = g->add_node();
    b->set_op_type("Relu");
    b->set_name("node_1");
    b->add_input("y");
    b->add_output("z");
  }
  CHECK(contains(load_error(bytes_of(cycle)), "graph has a cycle"));

  auto bad_init = tiny_model("Add");
  {
    auto* g = bad_init.mutable_graph();
    g->mutable_node(0)->add_input("w");
    auto* t = g->add_initializer();
    t->set_name("w");
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(3);
    t->set_raw_data(std::string(8, '\0'));  // 2 floats for 3 elements
  }
  CHECK(contains(load_error(bytes_of(bad_init)), "tensor 'w' has 8 bytes of raw data, expected 12"));

  auto foreign = tiny_model();
  foreign.mutable_graph()->mutable_node(0)->set_domain("com.microsoft");
  CHECK(contains(load_error(bytes_of(foreign)), "unsupported op 'Relu' from domain 'com.microsoft'"));

  auto dup = tiny_model();
  {
    auto* n = dup.mutable_graph()->add_node();
    n->set_op_type("Relu");
    n->add_input("x");
    n->add_output("y");
  }
  CHECK(contains(load_error(bytes_of(dup)), "value 'y'"));
}

TEST_CASE("dead nodes are removed and nodes are topologically sorted", "[engine][loader]") {
  auto m = tiny_model();
  auto* g = m.mutable_graph();
  // Listed out of order: y = Relu(t), t = Neg(x); plus a dead node.
  g->mutable_node(0)->set_input(0, "t");
  auto* neg = g->add_node();
  neg->set_op_type("Neg");
  neg->set_name("neg");
  neg->add_input("x");
  neg->add_output("t");
  auto* dead = g->add_node();
  dead->set_op_type("Exp");
  dead->set_name("dead");
  dead->add_input("x");
  dead->add_output("unused");
  std::string b = bytes_of(m);
  engine::Graph graph = engine::parse_onnx(b.data(), b.size(), "m.onnx");
  REQUIRE(graph.nodes.size() == 2);
  CHECK(graph.nodes[0].name == "neg");
  CHECK(graph.nodes[1].name == "node_0");
  auto shapes = engine::infer_shapes(graph, {{5, 3}});
  CHECK(shapes.at("t") == engine::Shape{5, 3});
  CHECK(shapes.at("y") == engine::Shape{5, 3});
}

TEST_CASE("models that list initializers as graph inputs load (ACAS Xu)", "[engine][loader]") {
  std::string path = test::shared_dataset("vnncomp2022/acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx");
  if (!std::ifstream(path)) {
    WARN("ACAS Xu networks not found at " << path << "; skipped");
    return;
  }
  auto s = engine::Session::load(path);
  REQUIRE(s->inputs().size() == 1);
  auto y = s->run({engine::Tensor(engine::Shape{1, 1, 1, 5})});
  CHECK(y[0].numel() == 5);
}

TEST_CASE("CLI: bad input exits 2 with one clear line", "[engine][cli][errors]") {
  std::string dir = test::temp_dir("engine-cli");
  datasets::write_file_atomic(dir + "/garbage.onnx", "garbage bytes");
  auto r = test::run_cli("info --model " + dir + "/garbage.onnx");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "garbage.onnx: not a valid ONNX model"));

  r = test::run_cli("info --model " + dir + "/missing.onnx");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "cannot open model file"));

  datasets::write_file_atomic(dir + "/bad.npy", "\x93NUMPY garbage");
  r = test::run_cli("run --model " + test::source_path("models/fmnist_cnn.onnx") + " --input " + dir +
                    "/bad.npy --output-dir " + dir + "/out");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "bad.npy"));

  r = test::run_cli("run --model " + test::source_path("models/fmnist_cnn.onnx") + " --input " +
                    test::source_path("datasets/demo/credit_x.npy") + " --output-dir " + dir + "/out");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "input 'input' expects shape [-1,1,28,28]"));

  r = test::run_cli("info --modle x");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "modle"));

  r = test::run_cli("--device cuda info --model " + test::source_path("models/fmnist_cnn.onnx"));
  CHECK(r.exit_code == 0);  // info only reads the graph; no device needed

  r = test::run_cli("--device cuda run --model " + test::source_path("models/fmnist_cnn.onnx") + " --input " +
                    test::source_path("datasets/demo/fmnist_x.npy") + " --output-dir " + dir + "/out");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--device cuda"));
}

TEST_CASE("CLI: run writes every output as .npy and info reports the model", "[engine][cli]") {
  std::string dir = test::temp_dir("engine-run");
  auto r = test::run_cli("run --model " + test::source_path("models/fmnist_cnn.onnx") + " --input " +
                         test::source_path("datasets/demo/fmnist_x.npy") + " --output-dir " + dir);
  REQUIRE(r.exit_code == 0);
  std::ifstream f(dir + "/logits.npy");
  CHECK(f.good());
  r = test::run_cli("info --model " + test::source_path("models/fmnist_cnn.onnx") + " --json");
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "\"all_ops_supported\": true"));
  CHECK(contains(r.output, "\"Conv\": 2"));
  CHECK(contains(r.output, "\"cpu_forward\": \"op-by-op\""));
  r = test::run_cli("info --model " + test::source_path("models/credit_mlp.onnx"));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.output, "cpu fwd:    fused dense chain"));
  r = test::run_cli("--version");
  CHECK(r.exit_code == 0);
  CHECK(contains(r.output, "mlaudit 0.1.0"));
}
