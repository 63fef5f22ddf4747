// Hostile inputs (#25): fuzzer reproducers, the UTF-8 rule and the hostile-size guards.
// Every bad input must end in one InputError line (exit 2 through the CLI), never another
// exception, a crash or an allocation sized by what the file declares rather than holds.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "entries.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/utf8.h"
#include "mlaudit/verify/vnnlib.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using mlaudit::test::run_cli;
using mlaudit::test::source_path;

namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

/// Lines of CLI output (stdout+stderr).
size_t line_count(const std::string& text) { return size_t(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST_CASE("every committed fuzzer reproducer ends in InputError or is accepted", "[fuzz]") {
  size_t files = 0;
  for (const auto& target : fuzz::targets()) {
    const fs::path dir = source_path(std::string("tests/fixtures/fuzz/") + target.format);
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().extension() == ".md") continue;
      const std::string bytes = test::read_text(entry.path().string());
      INFO(target.format << " reproducer " << entry.path().filename().string());
      try {
        target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      } catch (const InputError& e) {
        CHECK(engine::is_utf8(e.what()));
      }
      ++files;
    }
  }
  INFO("reproducers run: " << files);
  SUCCEED();
}

TEST_CASE("merge: the seed part sets merge, every hostile part set is refused with one InputError", "[fuzz][merge]") {
  // Seeds (fuzz/corpus/merge): real parts of certify, corrupt, attack, verify --data and
  // --benchmark, which merge; one seed lacks a shard, which is refused.
  size_t seeds = 0, hostile = 0;
  for (const auto& entry : fs::directory_iterator(source_path("fuzz/corpus/merge"))) {
    const std::string bytes = test::read_text(entry.path().string());
    INFO("seed " << entry.path().filename().string());
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    if (entry.path().filename().string().find("missing") != std::string::npos) {
      CHECK_THROWS_AS(fuzz::merge_parts(data, bytes.size()), InputError);
    } else {
      CHECK_NOTHROW(fuzz::merge_parts(data, bytes.size()));
    }
    ++seeds;
  }
  CHECK(seeds >= 6);
  for (const auto& entry : fs::directory_iterator(source_path("tests/fixtures/fuzz/merge"))) {
    if (entry.path().extension() == ".md") continue;
    const std::string bytes = test::read_text(entry.path().string());
    INFO("hostile " << entry.path().filename().string());
    try {
      fuzz::merge_parts(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      FAIL("merged");
    } catch (const InputError& e) {
      const std::string what = e.what();
      CHECK(what.rfind("merge: ", 0) == 0);
      CHECK(what.find('\n') == std::string::npos);
    }
    ++hostile;
  }
  CHECK(hostile >= 6);
}

TEST_CASE("UTF-8 validation follows RFC 3629", "[fuzz][utf8]") {
  CHECK(engine::is_utf8("plain ascii"));
  CHECK(engine::is_utf8("Fran\xC3\xA7" "ais \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK(engine::find_invalid_utf8("Fran\xE7" "ais") == 4);   // Latin-1 c-cedilla
  CHECK(!engine::is_utf8("\xC0\x80"));                       // overlong NUL
  CHECK(!engine::is_utf8("\xE0\x80\xAF"));                   // overlong '/'
  CHECK(!engine::is_utf8("\xED\xA0\x80"));                   // UTF-16 surrogate
  CHECK(!engine::is_utf8("\xF4\x90\x80\x80"));               // above U+10FFFF
  CHECK(!engine::is_utf8("\xE2\x82"));                       // truncated
  CHECK(engine::latin1_to_utf8("Fran\xE7" "ais") == "Fran\xC3\xA7" "ais");
  CHECK(engine::escape_invalid_utf8("a\xE7" "b") == "a\\xE7b");
  // Every error message is UTF-8, whatever it quotes.
  CHECK(std::string(InputError("datasets", "value 'Fran\xE7" "ais'").what()) == "datasets: value 'Fran\\xE7ais'");
}

TEST_CASE("a Latin-1 CSV is refused naming file, line and column, or read with latin1", "[fuzz][utf8]") {
  const std::string text = "id,nationality\n1,Fran\xE7" "ais\n";
  try {
    datasets::parse_csv(text, "people.csv");
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find("people.csv: line 2, column 'nationality': 'Fran\\xE7ais': byte 0xE7 is not UTF-8") != std::string::npos);
    CHECK(what.find("iconv -f latin1 -t utf-8 people.csv") != std::string::npos);
  }
  datasets::CsvOptions latin1;
  latin1.encoding = datasets::TextEncoding::Latin1;
  CHECK(datasets::parse_csv(text, "people.csv", latin1).strings("nationality")[0] == "Fran\xC3\xA7" "ais");
  CHECK_THROWS_AS(datasets::parse_encoding("--encoding", "ebcdic"), InputError);
}

TEST_CASE("fairness on a Latin-1 CSV: exit 2, one line, nothing written, --encoding latin1 reads it", "[fuzz][utf8][cli]") {
  const std::string dir = test::temp_dir("fuzz-latin1");
  std::string csv = "y,p,nationality\n";
  for (int i = 0; i < 40; ++i) csv += fmt::format("{},{},{}\n", i % 2, (i / 2) % 2, i % 3 ? "Fran\xE7" "ais" : "Deutsch");
  write(dir + "/t.csv", csv);
  const std::string out = dir + "/f.json";
  const std::string args = "fairness --data " + dir + "/t.csv --label-column y --prediction p --protected nationality --out " + out;
  auto r = run_cli(args);
  CHECK(r.exit_code == 2);
  CHECK(line_count(r.output) == 1);
  CHECK(r.output.find("line 3, column 'nationality'") != std::string::npos);
  CHECK(r.output.find("iconv -f latin1 -t utf-8") != std::string::npos);
  CHECK(!fs::exists(out));
  auto ok = run_cli(args + " --encoding latin1 --quiet");
  CHECK(ok.exit_code == 0);
  CHECK(test::read_text(out).find("Fran\xC3\xA7" "ais") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("non-UTF-8 text in every other text input is one InputError line", "[fuzz][utf8][cli]") {
  const std::string dir = test::temp_dir("fuzz-utf8");
  // VNN-LIB (a Latin-1 comment), audit YAML, a feature list, a report.json, and an argument.
  write(dir + "/p.vnnlib", "; propri\xE9t\xE9\n(declare-const X_0 Real)\n");
  CHECK_THROWS_WITH(verify::parse_vnnlib(test::read_text(dir + "/p.vnnlib"), "p.vnnlib"),
                    Catch::Contains("p.vnnlib: line 1, column 9: byte 0xE9 is not UTF-8"));
  write(dir + "/audit.yaml", "system:\n  name: syst\xE8me\n");
  auto y = run_cli("audit --check --config " + dir + "/audit.yaml");
  CHECK(y.exit_code == 2);
  CHECK(y.output.find("audit.yaml: line 2, column 13: byte 0xE8 is not UTF-8") != std::string::npos);
  write(dir + "/report.json", "{\"schema\": \"mlaudit.report/1\", \"system\": {\"name\": \"syst\xE8me\"}}");
  auto j = run_cli("report --in " + dir + "/report.json --format md --out " + dir + "/r.md");
  CHECK(j.exit_code == 2);
  CHECK(j.output.find("report.json: line 1, column") != std::string::npos);
  CHECK(!fs::exists(dir + "/r.md"));
  auto a = run_cli("info --model '" + dir + "/mod\xE8le.onnx'");
  CHECK(a.exit_code == 2);
  CHECK(a.output.find("is not UTF-8") != std::string::npos);
  for (const auto* out : {&y, &j, &a}) CHECK(line_count(out->output) == 1);
  fs::remove_all(dir);
}

TEST_CASE("an ONNX name that is not UTF-8 is refused naming the node", "[fuzz][utf8][cli]") {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  auto* g = model.mutable_graph();
  g->set_name("g");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  auto* node = g->add_node();
  node->set_op_type("Relu");
  node->set_name("r\xE9lu");
  node->add_input("x");
  node->add_output("y");
  const std::string bytes = model.SerializeAsString();
  CHECK_THROWS_WITH(engine::parse_onnx(bytes.data(), bytes.size(), "m.onnx", {}),
                    Catch::Contains("node name 'r\\xE9lu' is not UTF-8 (byte 0xE9)"));
}

TEST_CASE("hostile sizes end in InputError before any allocation", "[fuzz][hostile]") {
  SECTION("an ONNX initializer declaring 10^12 elements") {
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.add_opset_import()->set_version(17);
    auto* g = model.mutable_graph();
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(onnx::TensorProto::FLOAT);
    w->add_dims(1000000);
    w->add_dims(1000000);
    w->set_raw_data(std::string(16, '\0'));
    auto* out = g->add_output();
    out->set_name("w");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    const std::string bytes = model.SerializeAsString();
    CHECK_THROWS_AS(engine::parse_onnx(bytes.data(), bytes.size(), "huge.onnx", {}), InputError);
    // under the element limit (2^31) but far above what the file holds: refused before the 4 GB allocation
    onnx::ModelProto large = model;
    large.mutable_graph()->mutable_initializer(0)->clear_dims();
    large.mutable_graph()->mutable_initializer(0)->add_dims(int64_t(1) << 30);
    const std::string lbytes = large.SerializeAsString();
    CHECK_THROWS_WITH(engine::parse_onnx(lbytes.data(), lbytes.size(), "large.onnx", {}),
                      Catch::Contains("tensor 'w' declares shape [1073741824] (1073741824 elements) but holds 16 bytes"));
    // a Constant node's tensor attribute, same declaration
    onnx::ModelProto constant = model;
    constant.mutable_graph()->clear_initializer();
    auto* node = constant.mutable_graph()->add_node();
    node->set_op_type("Constant");
    node->add_output("w");
    auto* a = node->add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    *a->mutable_t() = model.graph().initializer(0);
    const std::string cbytes = constant.SerializeAsString();
    CHECK_THROWS_AS(engine::parse_onnx(cbytes.data(), cbytes.size(), "huge.onnx", {}), InputError);
    // a graph input declared [10^6, 10^6]: loading is fine, a forward is refused before allocating
    onnx::ModelProto input_model;
    input_model.set_ir_version(8);
    input_model.add_opset_import()->set_version(17);
    auto* ig = input_model.mutable_graph();
    auto* x = ig->add_input();
    x->set_name("x");
    x->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1000000);
    x->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(1000000);
    auto* r = ig->add_node();
    r->set_op_type("Relu");
    r->add_input("x");
    r->add_output("y");
    auto* y = ig->add_output();
    y->set_name("y");
    y->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    const std::string ibytes = input_model.SerializeAsString();
    const std::string dir = test::temp_dir("fuzz-huge");
    write(dir + "/huge.onnx", ibytes);
    auto info = run_cli("info --model " + dir + "/huge.onnx");
    CHECK(info.exit_code == 0);
    fs::remove_all(dir);
  }
  SECTION("a VNN-LIB property with 10^6 disjuncts") {
    std::string text = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (or\n";
    for (int i = 0; i < 1000000; ++i) text += "(and (>= Y_0 1))\n";
    text += "))\n";
    CHECK_THROWS_WITH(verify::parse_vnnlib(text, "many.vnnlib"), Catch::Contains("many.vnnlib") && Catch::Contains("disjuncts"));
  }
  SECTION("a CSV with one 100 MB line") {
    std::string one_field(size_t(100) << 20, 'a');
    CHECK_THROWS_WITH(datasets::parse_csv("h\n" + one_field + "\n", "long.csv"), Catch::Contains("long.csv: line 2"));
    std::string many_fields;
    many_fields.reserve(size_t(100) << 20);
    while (many_fields.size() < (size_t(100) << 20)) many_fields += "1,";
    many_fields.back() = '\n';
    CHECK_THROWS_WITH(datasets::parse_csv(many_fields, "wide.csv"), Catch::Contains("wide.csv: line 1"));
    const std::string dir = test::temp_dir("fuzz-long");
    write(dir + "/long.csv", "y,p,g\n" + one_field + "\n");
    auto r = run_cli("fairness --data " + dir + "/long.csv --label-column y --prediction p --protected g --out " + dir + "/f.json");
    CHECK(r.exit_code == 2);
    CHECK(line_count(r.output) == 1);
    fs::remove_all(dir);
  }
}

TEST_CASE("fuzzer reproducers through the CLI: one line, exit 2, nothing written", "[fuzz][cli]") {
  const std::string dir = test::temp_dir("fuzz-cli");
  // report.json with a number where a string belongs (fuzz/fuzz_json): was "internal error", exit 3
  auto r = run_cli("report --in " + source_path("tests/fixtures/fuzz/json/string-field-holds-number.json") + " --format html --out " +
                   dir + "/r.html");
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(line_count(r.output) == 1);
  CHECK(r.output.find("report: the report's fields do not have the types mlaudit writes") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/r.html"));
  // a one-input MatMul (fuzz/fuzz_onnx): mlaudit info segfaulted while compiling the dense chain
  auto m = run_cli("info --model " + source_path("tests/fixtures/fuzz/onnx/gemm-one-input.onnx"));
  INFO(m.output);
  CHECK(m.exit_code == 0);
  // X_<20 digits> (fuzz/fuzz_vnnlib): signed overflow; now one line naming the variable
  auto v = run_cli("verify --model " + source_path("models/credit_mlp.onnx") + " --vnnlib " +
                   source_path("tests/fixtures/fuzz/vnnlib/huge-variable-index.vnnlib"));
  INFO(v.output);
  CHECK(v.exit_code == 2);
  CHECK(v.output.find("is too large (at most 16777215)") != std::string::npos);
}
