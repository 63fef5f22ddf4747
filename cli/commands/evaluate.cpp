// mlaudit evaluate: accuracy of a classifier on labelled data, with a percentile-bootstrap
// interval, the exact binomial interval and per-class accuracy (mlaudit.performance/1; the
// audit's performance section).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "command.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/model.h"

namespace mlaudit::cli {
namespace {

int cmd_evaluate(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("evaluate options");
  desc.add_options()("model,m", po::value<std::string>(), "ONNX classifier")(
      "data,d", po::value<std::string>(), "inputs: X.npy [N, ...], or a CSV table with --label-column and --features")(
      "labels,l", po::value<std::string>(), "integer labels y.npy [N] (with an .npy --data)")(
      "label-column", po::value<std::string>(), "CSV: the label column")(
      "features", po::value<std::string>(), "CSV: the model's feature columns in input order (a,b,c or @FILE)")(
      "limit", po::value<int64_t>()->default_value(0), "first N rows only (0: all)")(
      "bootstrap", po::value<int64_t>()->default_value(1000), "percentile-bootstrap resamples")(
      "ci", po::value<double>()->default_value(0.95), "confidence level of the bootstrap interval")(
      "seed", po::value<uint64_t>()->default_value(0), "bootstrap seed")(
      "out,o", po::value<std::string>(), "write the JSON result (mlaudit.performance/1) here");
  po::variables_map vm;
  if (!parse_options("evaluate",
                     "mlaudit evaluate --model M.onnx --data X.npy --labels y.npy [--limit N] [--bootstrap B] [--ci C] "
                     "[--seed S] [--out R.json]\n"
                     "       mlaudit evaluate --model M.onnx --data T.csv --label-column C --features a,b,c [...]",
                     desc, args, vm, {"model", "data"}))
    return 0;
  const std::string data = vm["data"].as<std::string>();
  const int64_t limit = vm["limit"].as<int64_t>(), B = vm["bootstrap"].as<int64_t>();
  const double ci = vm["ci"].as<double>();
  if (limit < 0) throw InputError("cli", "evaluate: --limit must be >= 0");
  if (B < 1) throw InputError("cli", "evaluate: --bootstrap must be >= 1");
  if (!(ci > 0 && ci < 1)) throw InputError("cli", fmt::format("evaluate: --ci {} is not a level in (0, 1)", ci));
  engine::Tensor x;
  std::vector<int64_t> y;
  const bool csv = data.size() > 4 && to_lower(data.substr(data.size() - 4)) == ".csv";
  if (csv) {
    if (!vm.count("label-column") || !vm.count("features"))
      throw InputError("cli", "evaluate: a CSV --data needs --label-column and --features");
    auto table = datasets::read_csv(data);
    x = table.matrix(parse_name_list("--features", vm["features"].as<std::string>()));
    for (double v : table.numbers(vm["label-column"].as<std::string>())) y.push_back(static_cast<int64_t>(std::llround(v)));
  } else {
    if (!vm.count("labels")) throw InputError("cli", "evaluate: the option '--labels' is required with an .npy --data");
    x = datasets::read_npy_float(data);
    y = datasets::read_npy_labels(vm["labels"].as<std::string>()).to_int64s();
  }
  if (x.rank() == 0 || x.dim(0) != static_cast<int64_t>(y.size()))
    throw InputError("cli", fmt::format("evaluate: {} inputs but {} labels", x.rank() ? x.dim(0) : 0, y.size()));
  if (limit > 0 && limit < x.dim(0)) {
    x = x.slice_rows(0, limit);
    y.resize(size_t(limit));
  }
  auto session = load_model(vm["model"].as<std::string>(), global);
  const int64_t n = x.dim(0), batch = 256;
  std::vector<int64_t> pred;
  int64_t classes = 0;
  for (int64_t b = 0; b < n; b += batch) {
    engine::Tensor logits = session->forward(x.slice_rows(b, std::min(n, b + batch)));
    if (logits.rank() != 2)
      throw InputError("cli", fmt::format("evaluate: expected class scores [N,C] from the model, got {}",
                                          engine::shape_str(logits.shape())));
    classes = logits.dim(1);
    auto p = engine::argmax_rows(logits);
    pred.insert(pred.end(), p.begin(), p.end());
  }
  std::vector<double> correct(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) correct[size_t(i)] = pred[size_t(i)] == y[size_t(i)] ? 1.0 : 0.0;
  double acc = 0;
  for (double c : correct) acc += c;
  acc /= double(std::max<int64_t>(n, 1));
  // Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the n rows with
  // replacement B times; the interval is the (1-ci)/2 and 1-(1-ci)/2 percentiles of the
  // resampled accuracies. std::mt19937_64 seeded with --seed, so the interval is reproducible.
  std::mt19937_64 rng(vm["seed"].as<uint64_t>());
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(n - 1, 0));
  std::vector<double> stats(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += correct[size_t(pick(rng))];
    stats[size_t(b)] = s / double(std::max<int64_t>(n, 1));
  }
  nlohmann::json r;
  r["schema"] = "mlaudit.performance/1";
  r["samples"] = n;
  r["accuracy"] = acc;
  r["accuracy_interval"] = {percentile(stats, (1 - ci) / 2), percentile(stats, 1 - (1 - ci) / 2)};
  r["ci"] = ci;
  r["bootstrap"] = B;
  r["interval_method"] = "percentile bootstrap";
  // exact binomial interval of the same accuracy (what gates' `accuracy().lower` compare)
  r["accuracy_ci"] = datasets::proportion_json(std::llround(acc * double(n)), n, 0.95);
  r["per_class"] = nlohmann::json::array();
  for (int64_t c = 0; c < classes; ++c) {
    int64_t count = 0, hit = 0;
    for (int64_t i = 0; i < n; ++i)
      if (y[size_t(i)] == c) ++count, hit += pred[size_t(i)] == c;
    r["per_class"].push_back({{"class", c},
                              {"count", count},
                              {"accuracy", count ? nlohmann::json(double(hit) / double(count)) : nlohmann::json(nullptr)}});
  }
  if (vm.count("out")) datasets::write_file_atomic(vm["out"].as<std::string>(), r.dump(1) + "\n");
  if (!global.quiet)
    std::cout << fmt::format("accuracy {:.4f} on {} samples ({:.0f}% bootstrap interval [{:.4f}, {:.4f}])\n", acc, n,
                             100 * ci, r["accuracy_interval"][0].get<double>(), r["accuracy_interval"][1].get<double>());
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("evaluate", "accuracy on labelled data with bootstrap and exact intervals, per class", cmd_evaluate);
}  // namespace mlaudit::cli
