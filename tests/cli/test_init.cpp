// `mlaudit init`: the starter audit.yaml it writes for the bundled models passes
// `mlaudit audit --check` as written, carries a comment on every line, picks its sections and
// gates from the model (image or rows, gradients, verifier support) and the data, and runs end
// to end with `mlaudit audit`. Bad input exits 2 with one line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/tensor.h"
#include "test_util.h"

using namespace mlaudit;
namespace fs = std::filesystem;

namespace {

std::string src(const std::string& rel) { return test::source_path(rel); }

// `mlaudit init <args> --out DIR/audit.yaml`, the written file's text in `yaml`.
test::CommandResult init(const std::string& dir, const std::string& args, std::string* yaml = nullptr) {
  auto r = test::run_cli("init " + args + " --out " + dir + "/audit.yaml");
  if (yaml) *yaml = test::read_text(dir + "/audit.yaml");
  return r;
}

test::CommandResult check(const std::string& dir) { return test::run_cli("audit --config " + dir + "/audit.yaml --check"); }

// Every line is a comment, blank, or carries a comment (on it or on the line above).
void expect_every_line_commented(const std::string& yaml) {
  std::istringstream in(yaml);
  std::string line, previous;
  int uncommented = 0;
  while (std::getline(in, line)) {
    const bool blank = line.find_first_not_of(' ') == std::string::npos;
    const bool has_comment = line.find('#') != std::string::npos;
    const bool above = previous.find_first_not_of(' ') != std::string::npos &&
                       previous[previous.find_first_not_of(' ')] == '#';
    if (!blank && !has_comment && !above) {
      ++uncommented;
      UNSCOPED_INFO("uncommented line: " << line);
    }
    previous = line;
  }
  CHECK(uncommented == 0);
}

// One line on stderr: "mlaudit: error: init: ...".
void expect_refused(const test::CommandResult& r, const std::string& phrase) {
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.rfind("mlaudit: error: init: ", 0) == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
  CHECK(r.output.find(phrase) != std::string::npos);
}

std::string fmnist_args() {
  return "--model " + src("models/fmnist_cnn.onnx") + " --data " + src("datasets/demo/fmnist_x.npy") + " --labels " +
         src("datasets/demo/fmnist_y.npy");
}

std::string credit_args() {
  return "--model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/demo/credit_x.npy") + " --labels " +
         src("datasets/demo/credit_y.npy") + " --table " + src("datasets/credit/credit_test.csv") +
         " --label-column approved --protected sex --features " + src("datasets/credit/features.txt") + " --background " +
         src("datasets/demo/credit_background.npy");
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("init: the image CNN gets attack, corruption, certification, IG and verification, and --check accepts it",
          "[cli][init]") {
  const std::string dir = test::temp_dir("init-cnn");
  std::string yaml;
  auto r = init(dir, fmnist_args(), &yaml);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(has(r.output, "checked with 'mlaudit audit --check'"));
  INFO(yaml);
  expect_every_line_commented(yaml);
  // pixels in [0, 1]: eps in grey levels, the benchmark radius 8/255 last
  CHECK(has(yaml, "domain: [0, 1]"));
  CHECK(has(yaml, "attacks: [pgd]"));
  CHECK(has(yaml, "eps: [1/255, 2/255, 8/255]"));
  CHECK(has(yaml, "corruption:"));
  CHECK(has(yaml, "certification:"));
  CHECK(has(yaml, "method: integrated-gradients"));
  CHECK(has(yaml, "heatmaps: true"));
  CHECK(has(yaml, "verification:"));
  CHECK(has(yaml, "eps: [0.5/255]"));
  // gates: chance level from the class balance (200 demo images: the largest class holds 27),
  // the regression gate 2 points under the 0.895 the model scores on them
  CHECK(has(yaml, "- check: accuracy_lower() >= 0.135"));
  CHECK(has(yaml, "- check: accuracy() >= 0.875"));
  CHECK(has(yaml, "robust_accuracy(pgd, linf, 0.003921568627)"));
  CHECK(has(yaml, "ig_completeness_gap() <= 0.05"));
  CHECK(has(yaml, "verified_fraction(linf, 0.001960784314)"));
  CHECK(!has(yaml, "fairness:\n"));  // no table: fairness only as a note
  // a config under /tmp names the repository's files by absolute path (a relative one would climb
  // out of /tmp), unless the checkout is itself under /tmp: then both share the top folder and the
  // path is relative to the config's folder
  const fs::path model_abs = fs::path(src("models/fmnist_cnn.onnx")).lexically_normal();
  const bool same_top = *std::next(model_abs.begin()) == *std::next(fs::path(dir).lexically_normal().begin());
  CHECK(has(yaml, "fmnist_cnn: " + (same_top ? model_abs.lexically_relative(fs::path(dir).lexically_normal()).string()
                                             : model_abs.string())));
  auto c = check(dir);
  INFO(c.output);
  CHECK(c.exit_code == 0);
  CHECK(has(c.output, "is valid"));
}

TEST_CASE("init: the credit MLP on rows and its CSV gets attack, KernelSHAP, permutation, verification and fairness",
          "[cli][init]") {
  const std::string dir = test::temp_dir("init-credit");
  std::string yaml;
  auto r = init(dir, credit_args(), &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  expect_every_line_commented(yaml);
  CHECK(has(yaml, "domain: [0, .inf]"));  // raw features, every value >= 0
  // eps sized by the tightest feature, named from the CSV's columns (the model's inputs in order)
  CHECK(has(yaml, "eps: [0.0015, 0.0075, 0.015]"));
  CHECK(has(yaml, "(0.150232 of 'debt_ratio')"));
  CHECK(has(yaml, "method: kernel-shap"));
  CHECK(has(yaml, "method: permutation"));
  CHECK(has(yaml, "corruptions: [feature_noise, feature_dropout]"));
  CHECK(!has(yaml, "certification:"));
  CHECK(has(yaml, "verification:"));
  CHECK(has(yaml, "fairness:"));
  CHECK(has(yaml, "counterfactual: true"));  // sex is a model input
  CHECK(has(yaml, "demographic_parity_ratio(sex) >= 0.8"));
  CHECK(has(yaml, "counterfactual_flip_rate(sex) <= 0.05"));
  CHECK(has(yaml, "kernel_shap_efficiency_gap() <= 0.00001"));
  auto c = check(dir);
  INFO(c.output);
  CHECK(c.exit_code == 0);
}

TEST_CASE("init: a CSV alone gives performance and fairness with every column but the label as input",
          "[cli][init]") {
  const std::string dir = test::temp_dir("init-csv");
  std::string yaml;
  auto r = init(dir, "--model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/credit/credit_test.csv") +
                         " --label-column approved --protected sex,age",
                &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  expect_every_line_commented(yaml);
  CHECK(has(yaml, "features: [age, income, debt_ratio, years_employed, num_credit_lines, late_payments, sex]"));
  CHECK(has(yaml, "bins: 'age:q4'"));  // age has more than 10 values: cut into quartiles
  CHECK(!has(yaml, "robustness:"));    // the attack sections need .npy inputs
  CHECK(has(yaml, "need the inputs as .npy"));
  auto c = check(dir);
  INFO(c.output);
  CHECK(c.exit_code == 0);
}

TEST_CASE("init: without data only efficiency is active and the rest is a commented template", "[cli][init]") {
  const std::string dir = test::temp_dir("init-nodata");
  std::string yaml;
  auto r = init(dir, "--model " + src("models/fmnist_cnn.onnx"), &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  expect_every_line_commented(yaml);
  CHECK(has(yaml, "\n  efficiency:"));
  CHECK(has(yaml, "\n# datasets:"));
  CHECK(has(yaml, "\n  # robustness:"));
  CHECK(has(r.output, "sections efficiency; 0 gates"));
  CHECK(check(dir).exit_code == 0);
}

// `audit --check` and the performance section load models as the commands do
// (engine::SessionOptions::binary_two_classes), so label 1 is a class of a one-logit model.
TEST_CASE("init: a binary classifier with one logit is audited as two classes", "[cli][init]") {
  const std::string dir = test::temp_dir("init-binary");
  std::string yaml;
  auto r = init(dir, "--model " + src("tests/fixtures/binary/logit.onnx") + " --data " + src("tests/fixtures/binary/x.npy") +
                         " --labels " + src("tests/fixtures/binary/y.npy"),
                &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  CHECK(has(yaml, "(one column, audited as two classes): 2 classes"));
  CHECK(has(yaml, "domain: [0, 1]"));
  CHECK(check(dir).exit_code == 0);
}

TEST_CASE("init: a tree ensemble without gradients gets Square and permutation, no verification", "[cli][init]") {
  // models/adult/adult_gbt.onnx (skl2onnx defaults: ZipMap output) on rows in Adult's ranges;
  // labels are the model's own decisions on half the rows, so both classes occur.
  const std::string dir = test::temp_dir("init-gbt");
  std::mt19937 rng(1);
  const int64_t n = 64;
  engine::Tensor x(engine::Shape{n, 5});
  engine::Tensor y(engine::DType::Int64, engine::Shape{n});
  const float lo[5] = {17, 1, 0, 0, 1}, hi[5] = {90, 16, 20000, 2000, 99};
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < 5; ++j) x.f32()[i * 5 + j] = std::uniform_real_distribution<float>(lo[j], hi[j])(rng);
    y.i64()[i] = i % 2;
  }
  datasets::write_npy(dir + "/x.npy", x);
  datasets::write_npy(dir + "/y.npy", y);
  std::string yaml;
  auto r = init(dir, "--model " + src("models/adult/adult_gbt.onnx") + " --data " + dir + "/x.npy --labels " + dir + "/y.npy",
                &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  CHECK(has(yaml, "not differentiable"));
  CHECK(has(yaml, "attacks: [square]"));
  CHECK(has(yaml, "method: permutation"));
  CHECK(has(yaml, "# verification: not written: "));
  CHECK(has(yaml, "KernelSHAP (per-row contributions) needs background rows"));
  CHECK(check(dir).exit_code == 0);
}

TEST_CASE("init: an existing file is kept unless --force", "[cli][init]") {
  const std::string dir = test::temp_dir("init-force");
  const std::string args = "--model " + src("models/fmnist_cnn.onnx");
  REQUIRE(init(dir, args).exit_code == 0);
  write_text(dir + "/audit.yaml", "my edits\n");
  expect_refused(init(dir, args), "exists; give --force to overwrite it");
  CHECK(test::read_text(dir + "/audit.yaml") == "my edits\n");
  CHECK(init(dir, args + " --force").exit_code == 0);
  CHECK(test::read_text(dir + "/audit.yaml") != "my edits\n");
}

TEST_CASE("init: bad input exits 2 with one line", "[cli][init]") {
  const std::string dir = test::temp_dir("init-bad");
  write_text(dir + "/not-a-model.onnx", "hello");
  const std::string cnn = "--model " + src("models/fmnist_cnn.onnx");
  expect_refused(init(dir, "--model " + dir + "/not-a-model.onnx"), "not-a-model.onnx");
  expect_refused(init(dir, "--model " + dir + "/missing.onnx"), "missing.onnx: file not found");
  expect_refused(init(dir, cnn + " --data " + src("datasets/demo/fmnist_x.npy")), "needs --labels");
  expect_refused(init(dir, cnn + " --labels " + src("datasets/demo/fmnist_y.npy")), "--labels needs --data");
  expect_refused(init(dir, cnn + " --protected sex"), "--protected applies to a CSV");
  // the credit rows do not fit the CNN: the shared input contract names the expected shape
  expect_refused(init(dir, cnn + " --data " + src("datasets/demo/credit_x.npy") + " --labels " + src("datasets/demo/credit_y.npy")),
                 "takes [1,28,28] per row");
  expect_refused(init(dir, "--model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/credit/credit_test.csv")),
                 "needs --label-column");
  expect_refused(init(dir, "--model " + src("models/credit_mlp.onnx") + " --data " + src("datasets/credit/credit_test.csv") +
                               " --label-column approved --protected gender"),
                 "gender");
  CHECK(test::run_cli("init --model").exit_code == 2);
  auto help = test::run_cli("init --help");
  CHECK(help.exit_code == 0);
  for (const char* opt : {"--model", "--data", "--labels", "--table", "--label-column", "--features", "--protected",
                          "--background", "--limit", "--out", "--force", "--quiet"})
    CHECK(has(help.output, opt));
  CHECK(has(test::run_cli("--help").output, "init "));
}

// The audit the written configs describe runs end to end on the bundled models and data
// (exit 0: every gate passed, or 1: an error gate failed; never 2, a section that did not run).
TEST_CASE("init: mlaudit audit runs the written configs end to end", "[cli][init][e2e]") {
  const std::string binary = "--model " + src("tests/fixtures/binary/logit.onnx") + " --data " + src("tests/fixtures/binary/x.npy") +
                             " --labels " + src("tests/fixtures/binary/y.npy");
  for (const auto& [tag, args] : std::vector<std::pair<std::string, std::string>>{
           {"cnn", fmnist_args()}, {"credit", credit_args()}, {"binary", binary}}) {
    const std::string dir = test::temp_dir("init-e2e-" + tag);
    REQUIRE(init(dir, args + " --limit 4").exit_code == 0);  // 4 rows: verification of the CNN takes ~4 s a row
    auto r = test::run_cli("audit --config " + dir + "/audit.yaml --out " + dir + "/report --no-pdf");
    INFO(tag << ": " << r.output);
    CHECK((r.exit_code == 0 || r.exit_code == 1));
    const auto report = nlohmann::json::parse(test::read_text(dir + "/report/report.json"));
    for (const auto& s : report["sections"]) {
      INFO(s.dump());
      CHECK(s.value("status", "") == "ok");
    }
    for (const auto& g : report["gates"]) {
      INFO(g.dump());
      CHECK(g.value("status", "") != "error");
    }
    CHECK(fs::exists(dir + "/report/report.html"));
  }
}

TEST_CASE("init: a config inside the project names its files relative to itself", "[cli][init]") {
  const std::string dir = std::string(MLAUDIT_BINARY_DIR) + "/init-relative-test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string yaml;
  REQUIRE(init(dir, fmnist_args(), &yaml).exit_code == 0);
  const std::string model_rel = fs::path(src("models/fmnist_cnn.onnx")).lexically_normal().lexically_relative(dir).string();
  INFO(yaml);
  CHECK(model_rel.rfind("..", 0) == 0);
  CHECK(has(yaml, "fmnist_cnn: " + model_rel + " "));
  CHECK(check(dir).exit_code == 0);
  fs::remove_all(dir);
}

TEST_CASE("init: images in [0, 255] get radii in grey levels and no corruption section", "[cli][init]") {
  const std::string dir = test::temp_dir("init-255");
  engine::Tensor x = datasets::read_npy_float(src("datasets/demo/fmnist_x.npy"));
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::round(x.f32()[i] * 255.0f);
  datasets::write_npy(dir + "/x255.npy", x);
  std::string yaml;
  auto r = init(dir, "--model " + src("models/fmnist_cnn.onnx") + " --data " + dir + "/x255.npy --labels " +
                         src("datasets/demo/fmnist_y.npy"),
                &yaml);
  INFO(r.output << yaml);
  REQUIRE(r.exit_code == 0);
  CHECK(has(yaml, "domain: [0, 255]"));
  CHECK(has(yaml, "eps: [1, 2, 8]"));
  CHECK(has(yaml, "robust_accuracy(pgd, linf, 1) >= "));
  CHECK(has(yaml, "sigma: 63.75"));
  CHECK(has(yaml, "# corruption: not written: the image corruptions are defined on pixels in [0, 1]"));
  CHECK(check(dir).exit_code == 0);
}
