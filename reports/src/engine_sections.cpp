// Sections computed in-process with the engine: model summary, performance
// (accuracy with bootstrap interval) and efficiency (FLOPs, latency, throughput).
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/graph.h"
#include "mlaudit/engine/model.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/reports/audit.h"

using nlohmann::json;

namespace mlaudit::reports {

namespace {

json value_infos(const std::vector<engine::ValueInfo>& vs) {
  json out = json::array();
  for (const auto& v : vs) out.push_back({{"name", v.name}, {"dtype", engine::dtype_name(v.dtype)}, {"shape", v.shape}});
  return out;
}

// Batch-1 input shape: dynamic dims (-1) become 1.
engine::Shape concrete_shape(engine::Shape s) {
  for (auto& d : s)
    if (d < 0) d = 1;
  return s;
}

// Inputs and labels of a section's data set (first `samples` rows when set).
void load_data(const DatasetSpec& ds, int64_t samples, engine::Tensor& x, std::vector<int64_t>& y) {
  if (ds.is_csv()) {
    auto table = datasets::read_csv(ds.csv);
    if (ds.features.empty()) throw InputError("audit", fmt::format("data set '{}': 'features' is needed to run the model", ds.id));
    x = table.matrix(ds.features);
    for (double v : table.numbers(ds.label)) y.push_back(static_cast<int64_t>(std::llround(v)));
  } else {
    x = datasets::read_npy_float(ds.data);
    y = datasets::read_npy_labels(ds.labels).to_int64s();
  }
  if (x.rank() == 0 || x.dim(0) != static_cast<int64_t>(y.size()))
    throw InputError("audit", fmt::format("data set '{}': {} inputs but {} labels", ds.id, x.rank() ? x.dim(0) : 0, y.size()));
  if (samples > 0 && samples < x.dim(0)) {
    x = x.slice_rows(0, samples);
    y.resize(samples);
  }
}

// Percentile (linear interpolation between order statistics, numpy's default).
double percentile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  double pos = q * double(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

double peak_rss_mb() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace

double estimate_flops(const std::string& model_path) {
  engine::Graph g = engine::load_onnx(model_path);
  std::vector<engine::Shape> shapes;
  for (const auto& in : g.inputs) shapes.push_back(concrete_shape(in.shape));
  auto values = engine::infer_shapes(g, shapes);
  auto shape_of = [&](const std::string& name) -> engine::Shape {
    if (auto it = values.find(name); it != values.end()) return it->second;
    if (const engine::Tensor* t = g.initializer(name)) return t->shape();
    return {};
  };
  double flops = 0;
  for (const auto& n : g.nodes) {
    if (n.outputs.empty()) continue;
    engine::Shape out = shape_of(n.outputs[0]);
    double out_elems = out.empty() ? 1 : double(engine::shape_numel(out));
    if (n.op_type == "Conv" && n.inputs.size() >= 2) {
      // each output element: Cin/groups * kh * kw multiply-adds (+ bias add)
      engine::Shape w = shape_of(n.inputs[1]);
      double k = 1;
      for (size_t i = 1; i < w.size(); ++i) k *= double(w[i]);
      flops += 2 * out_elems * k + (n.inputs.size() > 2 ? out_elems : 0);
    } else if ((n.op_type == "Gemm" || n.op_type == "MatMul") && n.inputs.size() >= 2) {
      // out [.., M, N], reduction length K = A's contracted dimension
      engine::Shape a = shape_of(n.inputs[0]);
      double k = a.empty() ? 1 : double(a.back());
      if (n.op_type == "Gemm" && n.get_int("transA", 0) && a.size() == 2) k = double(a[0]);
      flops += 2 * out_elems * k + (n.op_type == "Gemm" && n.inputs.size() > 2 ? out_elems : 0);
    } else if (n.op_type == "Shape" || n.op_type == "Constant" || n.op_type == "Reshape" || n.op_type == "Flatten" ||
               n.op_type == "Identity" || n.op_type == "Squeeze" || n.op_type == "Unsqueeze" || n.op_type == "Dropout") {
      // data movement only
    } else {
      flops += out_elems;  // element-wise, pooling, normalisation: one op per output element
    }
  }
  return flops;
}

json summarize_model(const std::string& path) {
  engine::Graph g = engine::load_onnx(path);
  json s;
  s["opset"] = g.opset;
  s["producer"] = g.producer;
  s["inputs"] = value_infos(g.inputs);
  s["outputs"] = value_infos(g.outputs);
  s["nodes"] = g.nodes.size();
  s["parameters"] = g.parameter_count();
  s["ops"] = g.op_histogram();
  s["unsupported_ops"] = engine::unsupported_ops(g);
  try {
    s["flops"] = estimate_flops(path);
  } catch (const std::exception& e) {
    s["flops"] = nullptr;
    s["flops_error"] = e.what();
  }
  return s;
}

namespace {
// The model of a section, with the output its spec names (models.<id>.output).
std::unique_ptr<engine::Session> load_session(const ModelSpec& m) {
  engine::SessionOptions options;
  options.output = m.output;
  options.binary_two_classes = true;  // a one-column binary classifier scores two classes, as in the commands
  return engine::Session::load(m.path, options);
}
}  // namespace

json run_performance(const SectionSpec& section, const AuditConfig& cfg, uint64_t seed) {
  const ModelSpec* m = cfg.model(section.model);
  const DatasetSpec* ds = cfg.dataset(section.data);
  engine::Tensor x;
  std::vector<int64_t> y;
  load_data(*ds, section.params.value("limit", int64_t(0)), x, y);
  auto session = load_session(*m);
  const int64_t n = x.dim(0), batch = 256;
  std::vector<int64_t> pred;
  int64_t classes = 0;
  for (int64_t b = 0; b < n; b += batch) {
    engine::Tensor logits = session->forward(x.slice_rows(b, std::min(n, b + batch)));
    if (logits.rank() != 2) throw InputError("audit", fmt::format("model '{}': expected logits [N,C], got {}", m->id, engine::shape_str(logits.shape())));
    classes = logits.dim(1);
    auto p = engine::argmax_rows(logits);
    pred.insert(pred.end(), p.begin(), p.end());
  }
  std::vector<double> correct(n);
  for (int64_t i = 0; i < n; ++i) correct[i] = pred[i] == y[i] ? 1.0 : 0.0;
  double acc = 0;
  for (double c : correct) acc += c;
  acc /= double(std::max<int64_t>(n, 1));
  // Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the n
  // rows with replacement B times; the interval is the (1-ci)/2 and
  // 1-(1-ci)/2 percentiles of the resampled accuracies. std::mt19937_64 seeded
  // with the config seed, so the interval is reproducible.
  int64_t B = section.params.value("bootstrap", int64_t(1000));
  double ci = section.params.value("ci", 0.95);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(n - 1, 0));
  std::vector<double> stats(B);
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += correct[pick(rng)];
    stats[b] = s / double(std::max<int64_t>(n, 1));
  }
  json r;
  r["schema"] = "mlaudit.performance/1";
  r["samples"] = n;
  r["accuracy"] = acc;
  r["accuracy_interval"] = {percentile(stats, (1 - ci) / 2), percentile(stats, 1 - (1 - ci) / 2)};
  r["ci"] = ci;
  r["bootstrap"] = B;
  r["interval_method"] = "percentile bootstrap";
  // exact binomial interval of the same accuracy (what gates' `accuracy().lower` compare)
  r["accuracy_ci"] = datasets::proportion_json(std::llround(acc * double(n)), n, 0.95);
  r["per_class"] = json::array();
  for (int64_t c = 0; c < classes; ++c) {
    int64_t count = 0, hit = 0;
    for (int64_t i = 0; i < n; ++i)
      if (y[i] == c) ++count, hit += pred[i] == c;
    r["per_class"].push_back({{"class", c}, {"count", count}, {"accuracy", count ? json(double(hit) / count) : json(nullptr)}});
  }
  return r;
}

json run_efficiency(const SectionSpec& section, const AuditConfig& cfg) {
  const ModelSpec* m = cfg.model(section.model);
  auto session = load_session(*m);
  if (session->inputs().empty()) throw InputError("audit", fmt::format("model '{}' has no inputs", m->id));
  engine::Shape shape = concrete_shape(session->inputs()[0].shape);
  int64_t runs = section.params.value("runs", int64_t(200));
  int64_t big = section.params.value("batch", int64_t(256));
  // Inputs: uniform in [0, 1) (or the data set's domain), seeded; timing does
  // not depend on the values for these dense models.
  std::mt19937 rng(cfg.seed);
  double lo = 0, hi = 1;
  if (const DatasetSpec* ds = section.data.empty() ? nullptr : cfg.dataset(section.data);
      ds && ds->domain && std::isfinite(ds->domain->first) && std::isfinite(ds->domain->second))
    lo = ds->domain->first, hi = ds->domain->second;  // an open domain keeps [0, 1)
  auto random_input = [&](int64_t batch) {
    engine::Shape s = shape;
    s[0] = batch;
    engine::Tensor t(s);
    std::uniform_real_distribution<float> u{static_cast<float>(lo), static_cast<float>(hi)};
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
    return t;
  };
  using clock = std::chrono::steady_clock;
  engine::Tensor one = random_input(1);
  for (int i = 0; i < 3; ++i) session->forward(one);  // warm-up: allocations, caches
  // `runs` timed calls, stopping early after 10 s of wall time (large models);
  // p99 of fewer than 100 runs is the maximum, so runs defaults to 200.
  std::vector<double> ms;
  auto start = clock::now();
  for (int64_t i = 0; i < runs; ++i) {
    auto t0 = clock::now();
    session->forward(one);
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (std::chrono::duration<double>(clock::now() - start).count() > 10.0) break;
  }
  engine::Tensor many = random_input(big);
  session->forward(many);
  const int reps = 5;
  auto t0 = clock::now();
  for (int i = 0; i < reps; ++i) session->forward(many);
  double secs = std::chrono::duration<double>(clock::now() - t0).count();
  json r;
  r["schema"] = "mlaudit.efficiency/1";
  r["backend"] = session->backend_name();
  r["threads"] = engine::num_threads();
  r["parameters"] = session->graph().parameter_count();
  try {
    r["flops"] = estimate_flops(m->path);
  } catch (const std::exception&) {
    r["flops"] = nullptr;
  }
  r["latency_runs"] = ms.size();
  r["latency_p50_ms"] = percentile(ms, 0.50);
  r["latency_p99_ms"] = percentile(ms, 0.99);
  r["batch"] = big;
  r["throughput_per_s"] = secs > 0 ? double(big * reps) / secs : 0.0;
  r["peak_rss_mb"] = peak_rss_mb();
  return r;
}

}  // namespace mlaudit::reports
