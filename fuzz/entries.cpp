// Entry points shared by the libFuzzer targets and the regression test (see entries.h).
#include "entries.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/idx.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/fairness/datasets.h"
#include "mlaudit/reports/check.h"
#include "mlaudit/reports/config.h"
#include "mlaudit/reports/gates.h"
#include "mlaudit/reports/report.h"
#include "mlaudit/verify/solver.h"
#include "mlaudit/verify/verify.h"
#include "mlaudit/verify/vnnlib.h"
#include "merge.h"

namespace mlaudit::fuzz {

namespace {
std::string text_of(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }
// Forward passes on hostile graphs are capped in size: the point is the parser and shape
// checks, not a model that legitimately asks for gigabytes.
constexpr int64_t kMaxForwardElements = 4096;
}  // namespace

void onnx_model(const uint8_t* data, size_t size) {
  engine::LoadLimits limits;
  limits.max_file_bytes = int64_t(1) << 20;
  limits.max_tensor_elements = int64_t(1) << 22;  // 16 MB of float: far above any fuzz input's worth
  engine::Graph graph = engine::parse_onnx(data, size, "fuzz.onnx", limits, "/nonexistent");
  engine::Session session(std::move(graph));
  std::vector<engine::Tensor> inputs;
  for (const auto& in : session.inputs()) {
    engine::Shape shape = in.shape;
    for (auto& d : shape)
      if (d < 0) d = 1;
    if (engine::shape_numel(shape) > kMaxForwardElements) return;
    inputs.emplace_back(in.dtype, shape);
  }
  (void)session.run(inputs);
}

void npy(const uint8_t* data, size_t size) {
  engine::Tensor t = datasets::parse_npy(text_of(data, size), "fuzz.npy");
  (void)datasets::encode_npy(t);
}

void csv(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const std::string text = text_of(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      datasets::CsvTable table = datasets::parse_csv(text, "fuzz.csv");
      for (const auto& name : table.columns) {
        std::vector<std::string> levels;
        (void)table.codes(name, levels);
        try {
          (void)table.numbers(name);
        } catch (const InputError&) {
          // a text column: the next one may be numeric
        }
      }
      break;
    }
    case 1: (void)fairness::parse_adult(text, "adult.data"); break;
    case 2: (void)fairness::parse_german(text, "german.data"); break;
    default: (void)fairness::parse_compas(text, "compas-scores-two-years.csv"); break;
  }
}

void idx(const uint8_t* data, size_t size) { (void)datasets::parse_idx(text_of(data, size), "fuzz.idx"); }

void vnnlib(const uint8_t* data, size_t size) { (void)verify::parse_vnnlib(text_of(data, size), "fuzz.vnnlib"); }

void audit_yaml(const uint8_t* data, size_t size) {
  (void)reports::parse_config(text_of(data, size), "audit.yaml", "/nonexistent", /*check_files=*/false);
}

void result_json(const uint8_t* data, size_t size) {
  nlohmann::json report = reports::parse_report(text_of(data, size), "fuzz.json");
  for (const auto& metric : reports::metric_table()) {
    try {
      (void)reports::lookup_metric(report, metric.name, {}, "model");
    } catch (const InputError&) {
      // a metric the report does not hold
    }
  }
  (void)reports::render_markdown(report, "/nonexistent");
  (void)reports::render_html(report, "/nonexistent");
  (void)reports::render_junit(report);
}

void merge_parts(const uint8_t* data, size_t size) {
  if (size == 0) return;
  // First byte: bit 0 picks the output (results CSV or JSON); the rest is up to 16 parts
  // separated by the ASCII record separator 0x1E.
  const std::string out = (data[0] & 1) ? "merged.csv" : "merged.json";
  std::vector<cli::PartText> parts;
  std::string text = text_of(data + 1, size - 1);
  size_t start = 0;
  while (parts.size() < 16) {
    const size_t end = text.find('\x1e', start);
    parts.push_back({fmt::format("part{}.json", parts.size()), text.substr(start, end == std::string::npos ? end : end - start)});
    if (end == std::string::npos) break;
    start = end + 1;
  }
  (void)cli::merge_parts(parts, out);
}

void open_branches(const uint8_t* data, size_t size) {
  static const verify::Network net = [] {
    verify::Network n;
    verify::AffineLayer a, b;
    a.in = 2, a.out = 4, a.weight = {1, -1, 0.5, 2, -1, 1, 1, 0.25}, a.bias = {0, 0.1, -0.2, 0};
    b.in = 4, b.out = 2, b.weight = {1, -1, 0.5, 0, -1, 1, 0, 0.5}, b.bias = {0, 0};
    n.layers = {a, b};
    n.input_shape = {1, 2};
    return n;
  }();
  static const verify::Property prop = verify::parse_vnnlib(
      "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
      "(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1)) (and (>= X_0 -1) (<= X_0 0) (>= X_1 0) (<= X_1 1))))\n"
      "(assert (or (and (>= Y_0 Y_1) (>= Y_0 0.5)) (and (>= Y_1 2))))\n",
      "fuzz.vnnlib");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text_of(data, size));
  } catch (const nlohmann::json::exception& e) {
    throw InputError("verify", std::string("fuzz.json: not JSON (") + e.what() + ")");  // as read_branches_file
  }
  const auto branches = verify::parse_open_branches(j, net, "fuzz.json");
  verify::VerifyOptions o;
  o.threads = 1;
  o.timeout_s = 0.02;
  o.random_samples = 8;
  o.pgd_restarts = 1;
  o.pgd_steps = 5;
  o.strong_random_samples = 16;
  o.strong_pgd_restarts = 1;
  (void)verify::verify_branches(net, prop, branches, o);
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"onnx", onnx_model}, {"npy", npy},         {"csv", csv},
                                          {"idx", idx},         {"vnnlib", vnnlib},   {"yaml", audit_yaml},
                                          {"json", result_json}, {"merge", merge_parts}, {"branches", open_branches}};
  return all;
}

}  // namespace mlaudit::fuzz
