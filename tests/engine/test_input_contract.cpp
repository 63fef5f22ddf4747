// One input contract for every command (issue #18): the same bad input -> exit 2 with the same
// message from every command that reads it (datasets/validate.h), results that carry their
// provenance (SHA-256 of model and data) and their sample count with a 95 % Clopper-Pearson
// interval, and binary classifiers with one output column audited as two classes.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <sstream>
#include <nlohmann/json.hpp>

#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "test_util.h"

using namespace mlaudit;
using nlohmann::json;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

json read_json(const std::string& path) { return json::parse(datasets::read_file(path)); }

const std::string kCnn = test::source_path("models/fmnist_cnn.onnx");

struct Fixture {
  std::string dir, x, y, x_nan, x_out, x_flat, y_neg, y_big, y_short;
};

// 20 Fashion-MNIST rows of the demo set and their labels, and one bad variant of each.
Fixture make_fixture() {
  Fixture f;
  f.dir = test::temp_dir("contract");
  engine::Tensor x = datasets::read_npy_float(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(0, 20);
  std::vector<int64_t> y = datasets::read_npy_labels(test::source_path("datasets/demo/fmnist_y.npy")).to_int64s();
  y.resize(20);
  f.x = f.dir + "/x.npy";
  f.y = f.dir + "/y.npy";
  datasets::write_npy(f.x, x);
  datasets::write_npy(f.y, engine::Tensor::from_ints({20}, y));
  engine::Tensor nan = x.clone();
  nan.f32()[3 * 784 + 17] = std::nanf("");
  f.x_nan = f.dir + "/x_nan.npy";
  datasets::write_npy(f.x_nan, nan);
  engine::Tensor out = x.clone();
  out.f32()[2 * 784 + 5] = 1.5f;
  f.x_out = f.dir + "/x_out.npy";
  datasets::write_npy(f.x_out, out);
  f.x_flat = f.dir + "/x_flat.npy";  // [20, 784] for a model that takes [N, 1, 28, 28]
  datasets::write_npy(f.x_flat, x.reshape({20, 784}));
  f.y_neg = f.dir + "/y_neg.npy";  // every label -1 (abstention-like)
  datasets::write_npy(f.y_neg, engine::Tensor::from_ints({20}, std::vector<int64_t>(20, -1)));
  std::vector<int64_t> big;
  for (int64_t i = 0; i < 20; ++i) big.push_back(5 + i % 10);  // 5..14 on a 10-class model
  f.y_big = f.dir + "/y_big.npy";
  datasets::write_npy(f.y_big, engine::Tensor::from_ints({20}, big));
  // privacy's non-members: 20 other rows of the demo set
  engine::Tensor xn = datasets::read_npy_float(test::source_path("datasets/demo/fmnist_x.npy")).slice_rows(20, 40);
  std::vector<int64_t> yn = datasets::read_npy_labels(test::source_path("datasets/demo/fmnist_y.npy")).to_int64s();
  datasets::write_npy(f.dir + "/xn.npy", xn);
  datasets::write_npy(f.dir + "/yn.npy", engine::Tensor::from_ints({20}, std::vector<int64_t>(yn.begin() + 20, yn.begin() + 40)));
  f.y_short = f.dir + "/y_short.npy";
  datasets::write_npy(f.y_short, engine::Tensor::from_ints({19}, std::vector<int64_t>(y.begin(), y.begin() + 19)));
  return f;
}

// Each labelled command with data X and labels Y ({x}, {y}, {dir} placeholders).
struct Cmd {
  std::string name, args;
  bool clean_run = true;  // verify proves 20 CNN queries in about a minute: only its refusals run here
};
std::vector<Cmd> labelled_commands() {
  return {{"attack", "attack --model {m} --data {x} --labels {y} --attack fgsm --eps 0.01 --out {dir}/a.json"},
          {"certify", "certify --model {m} --data {x} --labels {y} --sigma 0.25 --n0 10 --n 20 --out {dir}/c.json"},
          {"corrupt", "corrupt --model {m} --data {x} --labels {y} --corruptions gaussian_noise --severities 1 --out {dir}/k.json"},
          {"explain", "explain --model {m} --data {x} --labels {y} --method gradient --target label --out {dir}/e.npy"},
          {"privacy", "privacy --model {m} --members {x} --member-labels {y} --non-members {dir}/xn.npy "
                      "--non-member-labels {dir}/yn.npy --attacks loss --out {dir}/p.json"},
          {"verify", "verify --model {m} --data {x} --labels {y} --eps 0.001 --out {dir}/v.json", false}};
}

std::string fill(const std::string& t, const std::string& x, const std::string& y, const std::string& dir) {
  return fmt::format(fmt::runtime(t), fmt::arg("m", kCnn), fmt::arg("x", x), fmt::arg("y", y), fmt::arg("dir", dir));
}

// mlaudit fairness on the bundled credit model and its test CSV, with `features` (a list or
// @FILE) and extra options; writes DIR/f.json.
test::CommandResult credit_fairness(const std::string& features, const std::string& extra, const std::string& dir) {
  return test::run_cli(fmt::format("fairness --data {} --label approved --protected sex --model {} --features {} {} --out {}/f.json",
                                   test::source_path("datasets/credit/credit_test.csv"),
                                   test::source_path("models/credit_mlp.onnx"), features, extra, dir));
}
const std::string kCreditFeatures = "age,income,debt_ratio,years_employed,num_credit_lines,late_payments,sex";

}  // namespace

TEST_CASE("input contract: every labelled command refuses labels the model cannot have, with one message",
          "[cli][contract]") {
  const Fixture f = make_fixture();
  for (const auto& c : labelled_commands()) {
    // A clean run first: the command itself works on these inputs.
    INFO(c.name);
    if (c.clean_run) {
      auto ok = test::run_cli(fill(c.args, f.x, f.y, f.dir));
      INFO(ok.output);
      REQUIRE(ok.exit_code == 0);
    }
    auto neg = test::run_cli(fill(c.args, f.x, f.y_neg, f.dir));
    INFO(neg.output);
    CHECK(neg.exit_code == 2);
    CHECK(contains(neg.output, "label -1 at row 0 is outside [0, 10): labels range over [-1, -1] but the model has 10 "
                               "output classes"));
    auto big = test::run_cli(fill(c.args, f.x, f.y_big, f.dir));
    INFO(big.output);
    CHECK(big.exit_code == 2);
    CHECK(contains(big.output, "label 10 at row 5 is outside [0, 10): labels range over [5, 14]"));
    auto nan = test::run_cli(fill(c.args, f.x_nan, f.y, f.dir));
    INFO(nan.output);
    CHECK(nan.exit_code == 2);
    CHECK(contains(nan.output, "row 3 (element 17 of the row) is NaN (data must be finite)"));
    if (c.name != "privacy" && c.name != "explain" && c.name != "verify") {  // read through read_labeled_data
      auto flat = test::run_cli(fill(c.args, f.x_flat, f.y, f.dir));
      INFO(flat.output);
      CHECK(flat.exit_code == 2);
      CHECK(contains(flat.output, "rows are [784] but model input 'input' takes [1,28,28] per row"));
    }
    if (c.name != "privacy") {  // privacy pairs files itself (below); every other command says it one way (members vs labels), checked below
      auto shorter = test::run_cli(fill(c.args, f.x, f.y_short, f.dir));
      INFO(shorter.output);
      CHECK(shorter.exit_code == 2);
      CHECK(contains(shorter.output, "19 labels for the 20 rows of --data " + f.x));
    }
  }
}

TEST_CASE("input contract: privacy refuses the same file as members and non-members", "[cli][contract]") {
  const Fixture f = make_fixture();
  auto r = test::run_cli(fmt::format("privacy --model {} --members {} --member-labels {} --non-members {} --non-member-labels {} "
                                     "--attacks loss --out {}/p.json",
                                     kCnn, f.x, f.y, f.x, f.y, f.dir));
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "hold the same bytes"));
}

TEST_CASE("input contract: fairness refuses a model threshold that is not a probability", "[cli][contract]") {
  // --threshold 5 on softmax probabilities makes every decision unfavourable: disparities of 0
  // that look like a perfectly fair model.
  auto r = credit_fairness(kCreditFeatures, "--threshold 5", test::temp_dir("fair-thr"));
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.output, "--threshold 5 is not a probability in (0, 1]"));
}

TEST_CASE("input contract: data outside the input domain is refused by attack and backdoor, accepted where no domain applies",
          "[cli][contract]") {
  const Fixture f = make_fixture();
  auto a = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack fgsm --eps 0.01 --out {}/a.json", kCnn,
                                     f.x_out, f.y, f.dir));
  INFO(a.output);
  CHECK(a.exit_code == 2);
  CHECK(contains(a.output, "row 2 (element 5 of the row) is 1.5, outside the input domain [0, 1] (data range [0, 1.5])"));
  CHECK(contains(a.output, "--clip-min/--clip-max"));
  // The same data inside a wider domain the user states is accepted.
  auto wide = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack fgsm --eps 0.01 --clip-max 2 "
                                        "--out {}/a.json",
                                        kCnn, f.x_out, f.y, f.dir));
  INFO(wide.output);
  CHECK(wide.exit_code == 0);
  CHECK(read_json(f.dir + "/a.json")["domain"] == json::array({0.0, 2.0}));
  auto b = test::run_cli(fmt::format("backdoor --model {} --clean {} --out {}/b.json", kCnn, f.x_out, f.dir));
  INFO(b.output);
  CHECK(b.exit_code == 2);
  CHECK(contains(b.output, "outside the input domain [0, 1]"));
  // Image corruptions are defined on [0, 1] pixels.
  auto k = test::run_cli(fmt::format("corrupt --model {} --data {} --labels {} --corruptions gaussian_noise --severities 1 "
                                     "--out {}/k.json",
                                     kCnn, f.x_out, f.y, f.dir));
  CHECK(k.exit_code == 2);
  CHECK(contains(k.output, "outside the input domain [0, 1]"));
}

TEST_CASE("input contract: results carry the SHA-256 of their inputs and accuracies carry n and a 95% Clopper-Pearson interval",
          "[cli][contract]") {
  const Fixture f = make_fixture();
  auto a = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack fgsm --eps 0.01,0.1 --out {}/a.json",
                                     kCnn, f.x, f.y, f.dir));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  json j = read_json(f.dir + "/a.json");
  CHECK(j["inputs"]["model"]["sha256"] == datasets::sha256_file(kCnn));
  CHECK(j["inputs"]["data"]["sha256"] == datasets::sha256_file(f.x));
  CHECK(j["inputs"]["labels"]["sha256"] == datasets::sha256_file(f.y));
  for (const auto& e : j["by_eps"]) {
    const json& ci = e["robust_accuracy_ci"];
    CHECK(ci["n"] == 20);
    CHECK(double(ci["k"]) / 20.0 == Approx(e["robust_accuracy"].get<double>()));
    CHECK(ci["lower"].get<double>() <= e["robust_accuracy"].get<double>());
    CHECK(ci["upper"].get<double>() >= e["robust_accuracy"].get<double>());
    CHECK(ci["method"] == "Clopper-Pearson");
  }
  CHECK(j["clean_accuracy_ci"]["n"] == 20);
  auto c = test::run_cli(fmt::format("certify --model {} --data {} --labels {} --sigma 0.25 --n0 10 --n 50 --out {}/c.json",
                                     kCnn, f.x, f.y, f.dir));
  REQUIRE(c.exit_code == 0);
  json cj = read_json(f.dir + "/c.json");
  CHECK(cj["inputs"]["model"]["sha256"] == datasets::sha256_file(kCnn));
  for (const auto& e : cj["certified_accuracy"]) {
    CHECK(e["accuracy_ci"]["n"] == 20);
    CHECK(double(e["accuracy_ci"]["k"]) / 20.0 == Approx(e["accuracy"].get<double>()));
  }
}

TEST_CASE("input contract: a binary classifier with one output column is audited as two classes", "[cli][contract][binary]") {
  // tools/export_binary_models.py: PyTorch Linear(16, 1) heads, with and without a Sigmoid;
  // z and p are onnxruntime's outputs.
  const std::string dir = test::source_path("tests/fixtures/binary");
  engine::Tensor x = datasets::read_npy_float(dir + "/x.npy");
  engine::Tensor z = datasets::read_npy_float(dir + "/z.npy"), p = datasets::read_npy_float(dir + "/p.npy");
  engine::SessionOptions opts;
  opts.binary_two_classes = true;
  auto logit = engine::Session::load(dir + "/logit.onnx", opts);
  CHECK(logit->binary_of_output() == "score");
  engine::Tensor two = logit->forward(x);
  REQUIRE(two.shape() == engine::Shape{64, 2});
  for (int64_t i = 0; i < 64; ++i) {
    CHECK(two.f32()[2 * i] == 0.0f);  // class 0's logit
    // float32 engine vs onnxruntime on a 2-layer MLP: a few ulps of |z| <= 2.
    CHECK(test::close(two.f32()[2 * i + 1], z.f32()[i], 1e-5, 1e-5));
  }
  auto sig = engine::Session::load(dir + "/sigmoid.onnx", opts);
  CHECK(sig->log_of_output() == "score");
  engine::Tensor lp = sig->forward(x);
  REQUIRE(lp.shape() == engine::Shape{64, 2});
  for (int64_t i = 0; i < 64; ++i) {
    CHECK(test::close(std::exp(lp.f32()[2 * i + 1]), p.f32()[i], 1e-5, 1e-6));
    CHECK(test::close(std::exp(lp.f32()[2 * i]), 1 - p.f32()[i], 1e-4, 1e-6));
  }
  // Without the option a session keeps the model's own output.
  CHECK(engine::Session::load(dir + "/logit.onnx")->forward(x).shape() == engine::Shape{64, 1});
  // Through the commands: labels 0/1 are the model's classes; the logit and the sigmoid models,
  // the same network, get the same robust accuracies.
  const std::string t = test::temp_dir("binary");
  double acc[2][2];
  int k = 0;
  for (const char* m : {"logit.onnx", "sigmoid.onnx"}) {
    auto r = test::run_cli(fmt::format("attack --model {0}/{1} --data {0}/x.npy --labels {0}/y.npy --attack pgd --eps 0.05,0.1 "
                                       "--out {2}/a.json",
                                       dir, m, t));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.output, "has one column"));
    json j = read_json(t + "/a.json");
    CHECK(j["clean_accuracy"] == 1.0);
    acc[k][0] = j["by_eps"][0]["robust_accuracy"];
    acc[k][1] = j["by_eps"][1]["robust_accuracy"];
    ++k;
  }
  CHECK(acc[0][0] == acc[1][0]);
  CHECK(acc[0][1] == acc[1][1]);
  CHECK(acc[0][1] < 1.0);
  // verify proves the same model as two classes [0, z]: every query decided (a small ReLU
  // net), never more verified than the attack leaves robust (soundness), and here exactly as many.
  auto v = test::run_cli(fmt::format("verify --model {0}/logit.onnx --data {0}/x.npy --labels {0}/y.npy --eps 0.05,0.1 "
                                     "--out {1}/v.json",
                                     dir, t));
  INFO(v.output);
  REQUIRE(v.exit_code == 0);
  CHECK(contains(v.output, "verified as a binary classifier with two classes"));
  json vj = read_json(t + "/v.json");
  for (int e = 0; e < 2; ++e) {
    const json& row = vj["by_eps"][e];
    CHECK(row["verified"].get<int>() + row["falsified"].get<int>() == 64);
    CHECK(row["verified_robust_accuracy"].get<double>() <= acc[0][e] + 1e-12);
    CHECK(row["verified_robust_accuracy"].get<double>() == Approx(acc[0][e]));
  }
  auto bad = test::run_cli(fmt::format("certify --model {0}/logit.onnx --data {0}/x.npy --labels {0}/z.npy --sigma 0.1 --n 20 "
                                       "--out {1}/c.json",
                                       dir, t));
  CHECK(bad.exit_code == 2);  // z holds non-integer scores, not labels
}

TEST_CASE("first hour: did-you-mean for commands, attacks and methods, case-insensitive names, eps as a fraction",
          "[cli][contract][names]") {
  auto cmd = test::run_cli("fairnes --help");
  CHECK(cmd.exit_code == 2);
  CHECK(contains(cmd.output, "unknown command 'fairnes' (did you mean 'fairness'?"));
  const Fixture f = make_fixture();
  auto atk = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack pgdd --eps 0.1 --out {}/a.json", kCnn,
                                       f.x, f.y, f.dir));
  CHECK(atk.exit_code == 2);
  CHECK(contains(atk.output, "unknown --attack 'pgdd' (did you mean 'pgd'?"));
  auto me = test::run_cli(fmt::format("explain --model {} --data {} --method integrated-gradient --out {}/e.npy", kCnn, f.x,
                                      f.dir));
  CHECK(me.exit_code == 2);
  CHECK(contains(me.output, "(did you mean 'integrated-gradients'?)"));
  // PGD in capitals and eps as papers write it (8/255): the same run as pgd at 0.0313725...
  auto upper = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack PGD --norm Linf --eps 8/255 "
                                         "--out {}/u.json",
                                         kCnn, f.x, f.y, f.dir));
  INFO(upper.output);
  REQUIRE(upper.exit_code == 0);
  json u = read_json(f.dir + "/u.json");
  CHECK(u["attack"] == "pgd");
  CHECK(u["by_eps"][0]["eps"].get<double>() == 8.0 / 255.0);
  // Errors are prefixed with the command the user typed, not an internal module.
  auto missing = test::run_cli(fmt::format("verify --model {} --vnnlib {}/nope.vnnlib", kCnn, f.dir));
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.rfind("mlaudit: error: verify: cannot open '", 0) == 0);
  auto nomodel = test::run_cli(fmt::format("attack --model {}/nope.onnx --data {} --labels {} --eps 0.1 --out {}/n.json", f.dir,
                                           f.x, f.y, f.dir));
  CHECK(nomodel.output.rfind("mlaudit: error: attack: ", 0) == 0);
  auto zero = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --eps 8/0 --out {}/z.json", kCnn, f.x, f.y,
                                        f.dir));
  CHECK(zero.exit_code == 2);
  CHECK(contains(zero.output, "'8/0' divides by zero"));
}

TEST_CASE("first hour: --quiet after the command name, --limit in corrupt and backdoor", "[cli][contract][names]") {
  const Fixture f = make_fixture();
  auto q = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack fgsm --eps 0.01 --out {}/q.json --quiet",
                                     kCnn, f.x, f.y, f.dir));
  INFO(q.output);
  CHECK(q.exit_code == 0);
  CHECK(q.output.empty());  // nothing on stdout or stderr
  auto c = test::run_cli(fmt::format("corrupt --model {} --data {} --labels {} --corruptions gaussian_noise --severities 1 "
                                     "--limit 5 --out {}/c.json -q",
                                     kCnn, f.x, f.y, f.dir));
  INFO(c.output);
  REQUIRE(c.exit_code == 0);
  CHECK(read_json(f.dir + "/c.json")["n_samples"] == 5);
  CHECK(read_json(f.dir + "/c.json")["clean_accuracy_ci"]["n"] == 5);
}

TEST_CASE("first hour: --limit in privacy and fairness", "[cli][contract][names]") {
  const Fixture f = make_fixture();
  auto p = test::run_cli(fmt::format("privacy --model {} --members {} --member-labels {} --non-members {}/xn.npy "
                                     "--non-member-labels {}/yn.npy --attacks loss --limit 7 --out {}/p.json -q",
                                     kCnn, f.x, f.y, f.dir, f.dir, f.dir));
  INFO(p.output);
  REQUIRE(p.exit_code == 0);
  json pj = read_json(f.dir + "/p.json");
  CHECK(pj["members"]["count"] == 7);
  CHECK(pj["non_members"]["count"] == 7);
  auto fr = credit_fairness(kCreditFeatures, "--limit 100 -q", f.dir);
  INFO(fr.output);
  REQUIRE(fr.exit_code == 0);
  CHECK(read_json(f.dir + "/f.json")["data"]["rows"] == 100);
}

TEST_CASE("first hour: feature lists are a,b,c or @FILE in every command", "[cli][contract][names]") {
  const std::string dir = test::temp_dir("features");
  const std::string list = test::source_path("datasets/credit/features.txt");
  auto f = credit_fairness("@" + list, "-q", dir);
  INFO(f.output);
  CHECK(f.exit_code == 0);
  auto missing = credit_fairness("@" + dir + "/nope.txt", "", dir);
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.output, "--features: "));
  CHECK(contains(missing.output, "nope.txt"));
}

TEST_CASE("first hour: explain --nsamples (draws per row), --samples kept as its old spelling", "[cli][contract][names]") {
  const Fixture f = make_fixture();
  auto a = test::run_cli(fmt::format("explain --model {} --data {} --method smoothgrad --nsamples 3 --limit 2 --json {}/a.json -q",
                                     kCnn, f.x, f.dir));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  auto b = test::run_cli(fmt::format("explain --model {} --data {} --method smoothgrad --samples 3 --limit 2 --json {}/b.json -q",
                                     kCnn, f.x, f.dir));
  REQUIRE(b.exit_code == 0);
  CHECK(read_json(f.dir + "/a.json")["options"]["samples"] == 3);
  CHECK(read_json(f.dir + "/b.json")["options"]["samples"] == 3);
  auto both = test::run_cli(fmt::format("explain --model {} --data {} --method smoothgrad --samples 3 --nsamples 4 --json {}/c.json",
                                        kCnn, f.x, f.dir));
  CHECK(both.exit_code == 2);
}

TEST_CASE("first hour: one vocabulary (short options, --out for JSON, old spellings as documented aliases)", "[cli][contract][names]") {
  const Fixture f = make_fixture();
  // -m -d -l -o -q mean --model --data --labels --out --quiet in every command that has them
  auto lng = test::run_cli(fmt::format("attack --model {} --data {} --labels {} --attack fgsm --eps 0.05 --out {}/long.json --quiet",
                                       kCnn, f.x, f.y, f.dir));
  auto shrt = test::run_cli(fmt::format("attack -m {} -d {} -l {} --attack FGSM --eps 0.05 -o {}/short.json -q", kCnn, f.x, f.y, f.dir));
  INFO(lng.output << shrt.output);
  REQUIRE(lng.exit_code == 0);
  REQUIRE(shrt.exit_code == 0);
  CHECK(lng.output.empty());
  CHECK(shrt.output.empty());
  CHECK(read_json(f.dir + "/long.json")["robust_accuracy"] == read_json(f.dir + "/short.json")["robust_accuracy"]);
  for (const char* cmd : {"attack", "certify", "corrupt", "explain", "verify", "backdoor", "run", "info"}) {
    auto h = test::run_cli(std::string(cmd) + " --help");
    INFO(cmd << "\n" << h.output);
    CHECK(h.exit_code == 0);
    CHECK(contains(h.output, "-m [ --model ]"));
    CHECK(contains(h.output, "-q [ --quiet ]"));
  }
  // explain: --out is the report JSON as everywhere, --attributions the array; an --out
  // ending in .npy and --json are the old forms
  auto e = test::run_cli(fmt::format("explain -m {} -d {} --method gradient --limit 2 -o {}/e.json --attributions {}/e.npy -q",
                                     kCnn, f.x, f.dir, f.dir));
  INFO(e.output);
  REQUIRE(e.exit_code == 0);
  CHECK(read_json(f.dir + "/e.json")["attributions_file"] == f.dir + "/e.npy");
  CHECK(datasets::read_npy_float(f.dir + "/e.npy").shape() == engine::Shape{2, 1, 28, 28});
  auto old = test::run_cli(fmt::format("explain -m {} -d {} --method gradient --limit 2 --out {}/o.npy --json {}/o.json -q",
                                       kCnn, f.x, f.dir, f.dir));
  REQUIRE(old.exit_code == 0);
  CHECK(read_json(f.dir + "/o.json")["attributions_file"] == f.dir + "/o.npy");
  auto two_json = test::run_cli(fmt::format("explain -m {} -d {} --out {}/a.json --json {}/b.json", kCnn, f.x, f.dir, f.dir));
  CHECK(two_json.exit_code == 2);
  CHECK(contains(two_json.output, "explain: give --out only (--json is its old spelling)"));
  auto none = test::run_cli(fmt::format("explain -m {} -d {}", kCnn, f.x));
  CHECK(none.exit_code == 2);
  CHECK(contains(none.output, "give --out R.json and/or --attributions A.npy"));
  // run: --data and --out like every command; --input and --output-dir still work
  auto r1 = test::run_cli(fmt::format("run -m {} -d {} -o {}/run1 -q", kCnn, f.x, f.dir));
  auto r2 = test::run_cli(fmt::format("run --model {} --input {} --output-dir {}/run2 -q", kCnn, f.x, f.dir));
  INFO(r1.output << r2.output);
  REQUIRE(r1.exit_code == 0);
  REQUIRE(r2.exit_code == 0);
  CHECK(datasets::read_file(f.dir + "/run1/logits.npy") == datasets::read_file(f.dir + "/run2/logits.npy"));
  // every old spelling: listed under --help, and refused beside its new spelling
  for (const auto& [command, old_name, name] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"backdoor", "clean", "data"}, {"explain", "samples", "nsamples"}, {"explain", "feature-names", "features"},
           {"fairness", "label", "label-column"}, {"privacy", "feature-list", "features"}, {"run", "input", "data"},
           {"run", "output-dir", "out"}}) {
    auto h = test::run_cli(command + " --help");
    INFO(command << " --" << old_name);
    CHECK(contains(h.output, "--" + old_name + " is the old spelling of --" + name));
    auto both = test::run_cli(fmt::format("{} --{} a --{} b", command, old_name, name));
    CHECK(both.exit_code == 2);
    CHECK(contains(both.output, fmt::format("{}: give --{} only (--{} is its old spelling)", command, name, old_name)));
  }
}

TEST_CASE("first hour: --help names the published setting or peer tool each command's defaults follow", "[cli][contract][names]") {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"attack", "Madry et al. 2018"}, {"certify", "Cohen et al. 2019"},     {"corrupt", "CIFAR-10-C"},
      {"explain", "Captum's defaults"}, {"fairness", "Fairlearn"},           {"privacy", "Carlini et al. 2022"},
      {"backdoor", "Neural Cleanse"},    {"verify", "VNN-COMP result format"}};
  for (const auto& [command, phrase] : expected) {
    auto h = test::run_cli(command + " --help");
    INFO(command << "\n" << h.output);
    CHECK(h.exit_code == 0);
    CHECK(contains(h.output, "Defaults and the conventions they follow:"));
    CHECK(contains(h.output, phrase));
    // wrapped for an 80-column terminal
    std::istringstream lines(h.output.substr(h.output.find("Defaults and the conventions")));
    for (std::string line; std::getline(lines, line);) CHECK(line.size() <= 80);
  }
}

TEST_CASE("first hour: progress lines from explain, and from inside a running audit section", "[cli][contract][progress]") {
  const Fixture f = make_fixture();
  setenv("MLAUDIT_PROGRESS_DELAY", "0", 1);  // show progress of these short runs (stderr is not a terminal)
  // each command succeeds and prints its progress line (label, done/total, unit)
  auto shows = [](const std::string& args, const std::string& line) {
    auto r = test::run_cli(args);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.output, line));
    return r.output;
  };
  CHECK(contains(shows(fmt::format("explain -m {} -d {} --method smoothgrad --nsamples 4 --limit 3 -o {}/sg.json", kCnn, f.x, f.dir),
                       "explain smoothgrad: 3/3 rows"),
                 "done in"));
  shows(fmt::format("corrupt -m {} -d {} -l {} --corruptions gaussian_noise,contrast --severities 1,2 -o {}/k.json", kCnn, f.x, f.y,
                    f.dir),
        "corrupt (corruption x severity): 4/4 runs");
  shows(fmt::format("privacy -m {} --members {} --member-labels {} --non-members {}/xn.npy --non-member-labels {}/yn.npy "
                    "--attacks loss,label-only --label-only-steps 3 --limit 4 -o {}/p.json",
                    kCnn, f.x, f.y, f.dir, f.dir, f.dir),
        "privacy (LiRA reference models, label-only sets): 2/2 steps");
  auto quiet = test::run_cli(fmt::format("explain -m {} -d {} --method smoothgrad --nsamples 4 --limit 3 -o {}/sg.json -q", kCnn, f.x, f.dir));
  CHECK(quiet.exit_code == 0);
  CHECK(quiet.output.empty());
  const std::string yaml = "models:\n  cnn: " + kCnn + "\ndatasets:\n  fmnist: {data: " + f.x + ", labels: " + f.y +
                           "}\nsections:\n  certification:\n    - {model: cnn, data: fmnist, sigma: 0.25, n0: 10, n: 40, limit: 2}\n";
  datasets::write_file_atomic(f.dir + "/audit.yaml", yaml);
  auto a = test::run_cli(fmt::format("audit --config {}/audit.yaml --out {}/report --no-pdf", f.dir, f.dir));
  INFO(a.output);
  CHECK(a.exit_code == 0);
  CHECK(contains(a.output, "certify: 2/2 samples"));  // the section's own line, inside the audit
  auto aq = test::run_cli(fmt::format("audit --config {}/audit.yaml --out {}/report-q --no-pdf --quiet", f.dir, f.dir));
  CHECK(aq.exit_code == 0);
  CHECK_FALSE(contains(aq.output, "certify:"));
  unsetenv("MLAUDIT_PROGRESS_DELAY");
}
