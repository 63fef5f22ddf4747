// mlaudit fairness: group fairness metrics with bootstrap intervals, intersectional
// groups, individual indices and counterfactual flip probes (docs/fairness.md).
#ifdef MLAUDIT_HAVE_fairness
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/counterfactual.h"
#include "mlaudit/fairness/datasets.h"
#include "mlaudit/fairness/metrics.h"
#include "mlaudit/fairness/report.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

using fairness::LoadedTable;

InputError fairness_error(const std::string& msg) { return InputError("fairness", msg); }

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e;
}

// Values equal as numbers when both are numbers ("1" == "1.0"), else as strings.
bool same_value(const std::string& a, const std::string& b) {
  double x, y;
  if (parse_number(a, x) && parse_number(b, y)) return x == y;
  return a == b;
}

bool is_missing(const std::string& s) { return s.empty() || s == "?" || s == "NA" || s == "NaN" || s == "nan"; }

// A 2-D .npy array with named columns as a string table.
LoadedTable read_npy_table(const std::string& path, const std::vector<std::string>& columns) {
  engine::Tensor t = datasets::read_npy(path);
  if (t.rank() != 2)
    throw fairness_error(fmt::format("{}: expected a 2-D array [rows, columns], got {}", path, engine::shape_str(t.shape())));
  if (int64_t(columns.size()) != t.dim(1))
    throw fairness_error(fmt::format("{}: {} columns but --columns names {}", path, t.dim(1), columns.size()));
  auto v = t.to_doubles();
  LoadedTable out;
  out.table.source = path;
  out.table.columns = columns;
  out.table.cells.assign(columns.size(), {});
  const int64_t n = t.dim(0), k = t.dim(1);
  char buf[64];
  for (int64_t c = 0; c < k; ++c) {
    auto& col = out.table.cells[c];
    col.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      double x = v[i * k + c];
      if (std::isnan(x)) {
        col.emplace_back();
        continue;
      }
      auto r = std::to_chars(buf, buf + sizeof buf, x);
      col.emplace_back(buf, r.ptr);
    }
  }
  out.rows_read = n;
  return out;
}

// How a numeric protected column is cut: fixed edges, or q quantile bins of the evaluated rows.
struct BinSpec {
  std::vector<double> edges;  // fixed edges (empty with quantiles)
  int quantiles = 0;          // q of "COL:qQ"
  std::string origin;         // "--bins" or "preset"
};

// "age:25,45;income:q4" -> {age: edges [25, 45], income: 4 quantile bins}
std::map<std::string, BinSpec> parse_bins(const std::string& text) {
  std::map<std::string, BinSpec> out;
  for (const auto& item : split_list(text, ';')) {
    auto colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      throw fairness_error(fmt::format("--bins: '{}' is not COLUMN:EDGE[,EDGE...] or COLUMN:qN", item));
    BinSpec b;
    b.origin = "--bins";
    std::string spec = item.substr(colon + 1);
    if (!spec.empty() && (spec[0] == 'q' || spec[0] == 'Q')) {
      double q;
      if (!parse_number(spec.substr(1), q) || q != std::floor(q) || q < 2 || q > 100)
        throw fairness_error(fmt::format("--bins: '{}': qN needs a whole number of quantile bins N in 2..100", item));
      b.quantiles = int(q);
    } else {
      b.edges = parse_double_list("bins", spec);
    }
    out[item.substr(0, colon)] = b;
  }
  return out;
}

// Distinct values of a column over the kept rows, in first-seen order (at most `limit`).
std::vector<std::string> distinct_values(const std::vector<std::string>& col, const std::vector<size_t>& rows, size_t limit) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t r : rows) {
    if (seen.insert(col[r]).second) out.push_back(col[r]);
    if (out.size() > limit) break;
  }
  return out;
}

std::string join(const std::vector<std::string>& v, size_t limit) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > limit) s += ", ...";
  return s;
}

// A favorable value must be one of the column's values: "Low" for a 0/1 label would make
// every base rate 0 without a word. `origin` names where the value came from.
void check_favorable(const std::string& origin, const std::string& value, const std::string& what,
                     const std::string& column, const std::vector<std::string>& col, const std::vector<size_t>& rows,
                     const std::string& hint, std::vector<std::string>& warnings) {
  for (size_t r : rows)
    if (same_value(col[r], value)) return;
  auto values = distinct_values(col, rows, 12);
  std::string msg = fmt::format("{} '{}' matches no row of {} column '{}' (values: {})", origin, value, what, column,
                                join(values, 12));
  // Two or more other values: certainly a wrong value. One value: all rows share an unfavorable
  // outcome, which can be real (a model that approves nobody); say so and go on.
  if (values.size() >= 2) throw fairness_error(msg + hint);
  warnings.push_back(msg + ": every row counts as unfavorable");
}

// "race=race_a,race_b,race_c;..." -> attribute -> one-hot columns
std::map<std::string, std::vector<std::string>> parse_onehot(const std::string& text) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& item : split_list(text, ';')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw fairness_error(fmt::format("--onehot: '{}' is not ATTRIBUTE=COL,COL,...", item));
    auto cols = split_list(item.substr(eq + 1));
    if (cols.size() < 2) throw fairness_error(fmt::format("--onehot: '{}' needs at least two columns", item));
    out[item.substr(0, eq)] = cols;
  }
  return out;
}

double number_at(const datasets::CsvTable& t, const std::string& col, const std::string& s, size_t row) {
  double v;
  if (!parse_number(s, v) || !std::isfinite(v))
    throw fairness_error(fmt::format("{}: row {}: column '{}' value '{}' is not a number", t.source, row + 1, col, s));
  return v;
}

int cmd_fairness(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("fairness options");
  desc.add_options()
      ("data,d", po::value<std::string>(), "table: CSV with a header, .npy [rows, cols] with --columns, or a --dataset file")
      ("columns", po::value<std::string>(), "column names of a .npy table, comma-separated")
      ("dataset", po::value<std::string>(), "built-in reader for --data: adult | german | compas")
      ("no-propublica-filter", "compas: keep all rows (default: ProPublica's analysis filter)")
      ("keep-missing", "adult: keep rows with '?' (default: drop them, as AIF360 does)")
      ("label-column", po::value<std::string>(), "true label column (built-in data sets: income | credit | two_year_recid)")
      ("favorable", po::value<std::string>(), "favorable value of both the label and the --prediction column (shorthand "
                                              "for --favorable-label V --favorable-prediction V)")
      ("favorable-label", po::value<std::string>(), "favorable label value (default 1; compas: 0 = no recidivism)")
      ("favorable-prediction", po::value<std::string>(), "favorable value of the --prediction column (default: the "
                                                         "favorable label; compas score_text: Low)")
      ("prediction", po::value<std::string>(), "decision column")
      ("score", po::value<std::string>(), "score column; decision from --threshold and --score-direction")
      ("score-direction", po::value<std::string>(), "higher-is-favorable (decision favorable when score >= threshold; "
                                                    "default) | higher-is-unfavorable (a risk score: favorable when "
                                                    "score < threshold; compas decile scores)")
      ("threshold", po::value<double>(), "decision threshold on --score, or on the model's favorable-class probability")
      ("positive", po::value<std::string>(), "class counted as positive by TPR/FPR/TNR/FNR/PPV/NPV: favorable (default) | "
                                             "unfavorable (compas default: recidivism, 'higher risk', as ProPublica)")
      ("model,m", po::value<std::string>(), "ONNX classifier run on --features (logits [N,C])")
      ("features", po::value<std::string>(), "model input columns in order: a,b,c or @FILE (one per line)")
      ("favorable-class", po::value<int64_t>()->default_value(1), "model output class of the favorable decision")
      ("protected", po::value<std::string>(), "protected attribute columns, comma-separated (their intersection is added)")
      ("bins", po::value<std::string>(), "numeric attributes cut at edges or into N quantile bins: 'age:25,45;income:q4'")
      ("limit", po::value<int64_t>()->default_value(0), "use only the first N rows (after a preset's filter; 0: all)")
      ("encoding", po::value<std::string>()->default_value("utf-8"), "text encoding of a CSV --data: utf-8 or latin1 (transcoded to UTF-8)")
      ("max-numeric-groups", po::value<int64_t>()->default_value(10), "refuse an unbinned numeric protected column "
                                                                       "with more distinct values (0: no limit)")
      ("onehot", po::value<std::string>(), "attributes given as one-hot model features: 'race=race_a,race_b,race_c'")
      ("reference", po::value<std::string>(), "reference groups 'sex=Male,race=White' (or GROUP for one attribute)")
      ("no-intersection", "do not add the intersection of the protected attributes")
      ("min-group-size", po::value<int64_t>()->default_value(30), "flag groups with fewer rows")
      ("bootstrap", po::value<int>()->default_value(1000), "bootstrap resamples (0: no intervals)")
      ("ci", po::value<double>()->default_value(0.95, "0.95"), "confidence level of the percentile intervals")
      ("seed", po::value<uint64_t>()->default_value(0), "bootstrap seed")
      ("ece-bins", po::value<int>()->default_value(10), "calibration bins for ECE")
      ("consistency-features", po::value<std::string>(), "columns for AIF360's kNN consistency (default: --features)")
      ("consistency-max-rows", po::value<int64_t>()->default_value(50000), "skip consistency (O(n^2)) above this many rows")
      ("counterfactual", "flip test of every protected attribute that is a model feature (needs --model)")
      ("flip-examples", po::value<int64_t>()->default_value(20), "flipped rows written per attribute")
      ("out,o", po::value<std::string>(), "report JSON (schema mlaudit.fairness/1)");
  po::variables_map vm;
  if (!parse_options("fairness",
                     "mlaudit fairness --data T.csv --label-column Y --protected A[,B] [--prediction P | --score S --threshold T "
                     "| --model M.onnx --features c1,c2,...] [--bins 'age:25'] [--reference A=G] [--bootstrap 1000] "
                     "[--counterfactual] --out F.json\n       mlaudit fairness --dataset adult|german|compas --data PATH ...\n"
                     "       (no decision: base rates of the labels only)",
                     desc, args, vm, {"data", "out"}))
    return 0;
  auto t0 = std::chrono::steady_clock::now();
  const std::string data_path = vm["data"].as<std::string>();
  const std::string out_path = vm["out"].as<std::string>();

  // ---- read the table
  LoadedTable lt;
  std::string format;
  if (vm.count("dataset")) {
    const std::string name = vm["dataset"].as<std::string>();
    if (name == "adult") lt = fairness::read_adult(data_path, !vm.count("keep-missing"));
    else lt = fairness::read_builtin(name, data_path, !vm.count("no-propublica-filter"));
    format = name;
  } else if (data_path.size() > 4 && data_path.substr(data_path.size() - 4) == ".npy") {
    if (!vm.count("columns")) throw fairness_error("a .npy table needs --columns naming its columns");
    lt = read_npy_table(data_path, split_list(vm["columns"].as<std::string>()));
    format = "npy";
  } else {
    datasets::CsvOptions csv_options;
    csv_options.encoding = datasets::parse_encoding("--encoding", vm["encoding"].as<std::string>());
    lt.table = datasets::read_csv(data_path, csv_options);
    lt.rows_read = int64_t(lt.table.rows());
    format = "csv";
  }
  if (vm["limit"].as<int64_t>() < 0) throw fairness_error("--limit must be >= 0");
  if (const int64_t limit = vm["limit"].as<int64_t>(); limit > 0 && size_t(limit) < lt.table.rows())
    for (auto& column : lt.table.cells) column.resize(size_t(limit));  // the first N rows (after a preset's filter)
  const auto& table = lt.table;
  std::string label = vm.count("label-column") ? vm["label-column"].as<std::string>() : lt.label;
  if (label.empty()) throw fairness_error("--label-column is required (the true label column)");

  // Favorable values: --favorable sets both; --favorable-label / --favorable-prediction set one each.
  if (vm.count("favorable") && (vm.count("favorable-label") || vm.count("favorable-prediction")))
    throw fairness_error("--favorable sets both the label's and the decision's favorable value: give it alone, or "
                         "--favorable-label and --favorable-prediction");
  if (vm.count("favorable-prediction") && !vm.count("prediction"))
    throw fairness_error(vm.count("model") ? "--favorable-prediction applies to --prediction COL; with --model the favorable "
                                            "decision is --favorable-class"
                                          : "--favorable-prediction needs --prediction COL (the decision column)");
  std::string favorable, favorable_origin;
  if (vm.count("favorable-label")) favorable = vm["favorable-label"].as<std::string>(), favorable_origin = "--favorable-label";
  else if (vm.count("favorable")) favorable = vm["favorable"].as<std::string>(), favorable_origin = "--favorable";
  else if (!lt.favorable.empty() && label == lt.label)
    favorable = lt.favorable, favorable_origin = fmt::format("the {} preset's favorable label", format);
  else favorable = "1", favorable_origin = "the default favorable label";

  std::vector<std::string> protected_cols =
      vm.count("protected") ? split_list(vm["protected"].as<std::string>()) : lt.protected_attributes;
  if (protected_cols.empty()) throw fairness_error("--protected is required (protected attribute columns)");
  auto bins = vm.count("bins") ? parse_bins(vm["bins"].as<std::string>()) : std::map<std::string, BinSpec>{};
  auto onehot = vm.count("onehot") ? parse_onehot(vm["onehot"].as<std::string>()) : std::map<std::string, std::vector<std::string>>{};
  for (const auto& [col, e] : bins) {
    bool listed = false;
    for (const auto& p : protected_cols) listed = listed || p == col;
    if (!listed) throw fairness_error(fmt::format("--bins names '{}', which is not in --protected", col));
  }
  // A preset's usual cut (German credit: age at 25) unless --bins or --onehot says otherwise.
  for (const auto& p : protected_cols)
    if (!bins.count(p) && !onehot.count(p) && lt.default_bins.count(p)) bins[p] = BinSpec{lt.default_bins.at(p), 0, "preset"};
  const int64_t max_numeric_groups = vm["max-numeric-groups"].as<int64_t>();
  if (max_numeric_groups < 0) throw fairness_error("--max-numeric-groups must be >= 0");

  const int decision_sources = int(vm.count("prediction") > 0) + int(vm.count("score") > 0) + int(vm.count("model") > 0);
  const bool labels_only = decision_sources == 0;
  if (vm.count("model") && (vm.count("prediction") || vm.count("score")))
    throw fairness_error("--model cannot be combined with --prediction or --score");
  if (vm.count("score") && !vm.count("prediction") && !vm.count("threshold"))
    throw fairness_error("--score needs --threshold (decision = score >= threshold) or a --prediction column");
  if (vm.count("score-direction") && !vm.count("score"))
    throw fairness_error("--score-direction needs --score (a model's softmax is always the favorable-class probability)");
  if (vm.count("model") && !vm.count("features")) throw fairness_error("--model needs --features (model input columns in order)");
  if (vm.count("counterfactual") && !vm.count("model")) throw fairness_error("--counterfactual needs --model");

  fairness::ScoreDirection direction = fairness::ScoreDirection::HigherIsFavorable;
  std::string direction_origin = "default";
  if (vm.count("score-direction")) {
    const std::string v = vm["score-direction"].as<std::string>();
    if (v == "higher-is-favorable") direction = fairness::ScoreDirection::HigherIsFavorable;
    else if (v == "higher-is-unfavorable") direction = fairness::ScoreDirection::HigherIsUnfavorable;
    else throw fairness_error(fmt::format("--score-direction '{}' is not higher-is-favorable or higher-is-unfavorable", v));
    direction_origin = "--score-direction";
  } else if (vm.count("score") && lt.score_directions.count(vm["score"].as<std::string>())) {
    direction = lt.score_directions.at(vm["score"].as<std::string>());
    direction_origin = format + " preset";
  }
  const bool higher_favorable = direction == fairness::ScoreDirection::HigherIsFavorable;

  fairness::PositiveClass positive = lt.positive;
  std::string positive_origin = lt.positive == fairness::PositiveClass::Unfavorable ? format + " preset" : "default";
  if (vm.count("positive")) {
    const std::string v = vm["positive"].as<std::string>();
    const auto& names = fairness::positive_class_names();
    if (v == names[0]) positive = fairness::PositiveClass::Favorable;
    else if (v == names[1]) positive = fairness::PositiveClass::Unfavorable;
    else throw fairness_error(fmt::format("--positive '{}' is not favorable or unfavorable", v));
    positive_origin = "--positive";
  }
  const bool positive_favorable = positive == fairness::PositiveClass::Favorable;

  // Columns must exist (CsvTable::index names the available ones).
  std::vector<std::string> needed = {label};
  if (vm.count("prediction")) needed.push_back(vm["prediction"].as<std::string>());
  if (vm.count("score")) needed.push_back(vm["score"].as<std::string>());
  std::vector<std::string> features =
      vm.count("features") ? parse_name_list("features", vm["features"].as<std::string>()) : std::vector<std::string>{};
  for (const auto& p : protected_cols)
    if (!onehot.count(p)) needed.push_back(p);
  for (const auto& [a, cols] : onehot)
    for (const auto& c : cols) needed.push_back(c);
  for (const auto& f : features) needed.push_back(f);
  for (const auto& c : needed) table.index(c);

  // ---- rows used: drop rows with a missing label / decision / protected value, saying why
  const size_t n_all = table.rows();
  std::vector<uint8_t> keep(n_all, 1);
  std::vector<std::string> check_missing = {label};
  if (vm.count("prediction")) check_missing.push_back(vm["prediction"].as<std::string>());
  if (vm.count("score")) check_missing.push_back(vm["score"].as<std::string>());
  for (const auto& p : protected_cols)
    if (!onehot.count(p)) check_missing.push_back(p);
  for (const auto& c : check_missing) {
    const auto& col = table.strings(c);
    int64_t dropped = 0;
    for (size_t i = 0; i < n_all; ++i)
      if (keep[i] && is_missing(col[i])) {
        keep[i] = 0;
        ++dropped;
      }
    if (dropped) lt.dropped.emplace_back(fmt::format("missing value in column '{}'", c), dropped);
  }
  std::vector<size_t> rows;
  for (size_t i = 0; i < n_all; ++i)
    if (keep[i]) rows.push_back(i);
  if (rows.empty()) throw fairness_error(fmt::format("{}: no rows left to evaluate", data_path));
  const size_t n = rows.size();

  // ---- favorable values must occur in their columns
  std::vector<std::string> warnings;
  const std::string both_hint =
      vm.count("favorable") ? "; --favorable sets the label's and the decision's value alike: give them apart with "
                              "--favorable-label and --favorable-prediction"
                            : "";
  check_favorable(favorable_origin, favorable, "label", label, table.strings(label), rows, both_hint, warnings);
  std::string favorable_prediction;
  if (vm.count("prediction")) {
    const std::string pc = vm["prediction"].as<std::string>();
    std::string origin;
    if (vm.count("favorable-prediction")) favorable_prediction = vm["favorable-prediction"].as<std::string>(), origin = "--favorable-prediction";
    else if (vm.count("favorable")) favorable_prediction = vm["favorable"].as<std::string>(), origin = "--favorable";
    else if (lt.favorable_predictions.count(pc))
      favorable_prediction = lt.favorable_predictions.at(pc), origin = fmt::format("the {} preset's favorable decision", format);
    else favorable_prediction = favorable, origin = "the favorable label (the decision's default)";
    check_favorable(origin, favorable_prediction, "decision", pc, table.strings(pc), rows,
                    vm.count("favorable") ? both_hint : "; give the decision's favorable value with --favorable-prediction",
                    warnings);
  }

  // ---- decisions
  fairness::Decisions d;
  d.y_true.resize(n);
  {
    const auto& y = table.strings(label);
    for (size_t k = 0; k < n; ++k) d.y_true[k] = same_value(y[rows[k]], favorable);
  }
  std::string decision_desc, positive_decision;
  std::unique_ptr<engine::Session> model;
  engine::Tensor x;
  fairness::DecisionRule rule;
  rule.favorable_class = vm["favorable-class"].as<int64_t>();
  if (vm.count("threshold")) rule.threshold = vm["threshold"].as<double>();
  // With --model the threshold is on a probability: outside (0, 1] every decision is the same
  // (selection rate 0 or 1 in every group), which would print plausible-looking disparities of 0.
  if (vm.count("model") && vm.count("threshold") && !(rule.threshold > 0 && rule.threshold <= 1))
    throw fairness_error(fmt::format("--threshold {} is not a probability in (0, 1]: with --model it thresholds "
                                     "softmax[:, {}] (a score column's threshold goes with --score)",
                                     rule.threshold, rule.favorable_class));
  if (labels_only) {
    decision_desc = "none: no --prediction, --score or --model, so only the labels' base rates are reported";
  } else if (vm.count("model")) {
    const std::string model_path = vm["model"].as<std::string>();
    model = load_model(model_path, global);
    // Features of the kept rows, in order, as float32 [n, F].
    std::vector<std::vector<std::string> const*> cols;
    for (const auto& f : features) cols.push_back(&table.strings(f));
    x = engine::Tensor(engine::Shape{int64_t(n), int64_t(features.size())});
    float* xp = x.f32();
    for (size_t k = 0; k < n; ++k)
      for (size_t c = 0; c < features.size(); ++c)
        xp[k * features.size() + c] = float(number_at(table, features[c], (*cols[c])[rows[k]], rows[k]));
    fairness::model_decisions(*model, x, rule, d.y_pred, d.scores);
    decision_desc = std::isnan(rule.threshold)
                        ? fmt::format("model {}: argmax == class {}", model_path, rule.favorable_class)
                        : fmt::format("model {}: softmax[:, {}] >= {}", model_path, rule.favorable_class, rule.threshold);
    positive_decision = std::isnan(rule.threshold)
                            ? fmt::format("argmax {} class {}", positive_favorable ? "==" : "!=", rule.favorable_class)
                            : fmt::format("softmax[:, {}] {} {}", rule.favorable_class, positive_favorable ? ">=" : "<", rule.threshold);
  } else {
    if (vm.count("score")) {
      // The evaluation takes the score of the favorable outcome: a risk score s becomes 1 - s
      // (same order reversed, so AUC is that of -s; a probability of the unfavorable outcome
      // becomes the favorable one's, so Brier and ECE stay meaningful).
      const std::string sc = vm["score"].as<std::string>();
      const auto& s = table.strings(sc);
      d.scores.resize(n);
      for (size_t k = 0; k < n; ++k) {
        double v = number_at(table, sc, s[rows[k]], rows[k]);
        d.scores[k] = higher_favorable ? v : 1.0 - v;
      }
    }
    d.y_pred.resize(n);
    if (vm.count("prediction")) {
      const std::string pc = vm["prediction"].as<std::string>();
      const auto& p = table.strings(pc);
      for (size_t k = 0; k < n; ++k) d.y_pred[k] = same_value(p[rows[k]], favorable_prediction);
      decision_desc = fmt::format("column '{}' == {}", pc, favorable_prediction);
      positive_decision = fmt::format("{} {} {}", pc, positive_favorable ? "==" : "!=", favorable_prediction);
    } else {
      const std::string sc = vm["score"].as<std::string>();
      const double thr = vm["threshold"].as<double>();
      const auto& s = table.strings(sc);
      for (size_t k = 0; k < n; ++k) {
        double v = number_at(table, sc, s[rows[k]], rows[k]);
        d.y_pred[k] = higher_favorable ? v >= thr : v < thr;
      }
      decision_desc = higher_favorable ? fmt::format("column '{}' >= {}", sc, thr)
                                       : fmt::format("column '{}' < {} (higher is unfavorable)", sc, thr);
      // The positive decision in words: the favorable side or its complement.
      positive_decision = fmt::format("{} {} {}", sc, (higher_favorable == positive_favorable) ? ">=" : "<", thr);
    }
  }
  const std::string positive_label = fmt::format("{} {} {}", label, positive_favorable ? "==" : "!=", favorable);

  // ---- protected attributes
  std::vector<fairness::Attribute> attrs;
  nlohmann::json attributes_json = nlohmann::json::array();
  for (const auto& p : protected_cols) {
    nlohmann::json aj = {{"name", p}};
    if (onehot.count(p)) {
      // Group of a row = the one-hot column holding 1 (named after the column).
      const auto& cols = onehot.at(p);
      std::vector<std::string> values(n);
      std::vector<const std::vector<std::string>*> cv;
      for (const auto& c : cols) cv.push_back(&table.strings(c));
      for (size_t k = 0; k < n; ++k) {
        int hot = -1;
        for (size_t j = 0; j < cols.size(); ++j)
          if (number_at(table, cols[j], (*cv[j])[rows[k]], rows[k]) == 1.0) {
            if (hot >= 0) throw fairness_error(fmt::format("{}: row {}: several one-hot columns of '{}' are 1", data_path, rows[k] + 1, p));
            hot = int(j);
          }
        if (hot < 0) throw fairness_error(fmt::format("{}: row {}: no one-hot column of '{}' is 1", data_path, rows[k] + 1, p));
        values[k] = cols[hot];
      }
      // Keep every listed column as a group, in the listed order, even one no row holds.
      fairness::Attribute ordered;
      ordered.name = p;
      ordered.parts = {p};
      ordered.groups = cols;
      ordered.codes.resize(n);
      for (size_t k = 0; k < n; ++k) ordered.codes[k] = ordered.group_index(values[k]);
      attrs.push_back(ordered);
      aj["kind"] = "one-hot";
      aj["columns"] = cols;
    } else {
      const auto& col = table.strings(p);
      if (bins.count(p)) {
        const auto& spec = bins.at(p);
        std::vector<double> v(n);
        for (size_t k = 0; k < n; ++k) v[k] = number_at(table, p, col[rows[k]], rows[k]);
        std::vector<double> edges = spec.quantiles ? fairness::quantile_edges(p, v, spec.quantiles) : spec.edges;
        attrs.push_back(fairness::binned_attribute(p, v, edges));
        aj["kind"] = "binned";
        aj["bins"] = {{"rule", spec.quantiles ? fmt::format("{} quantile bins: edges at the k/{} quantiles (numpy linear "
                                                            "interpolation) of the evaluated rows, repeated edges merged",
                                                            spec.quantiles, spec.quantiles)
                                              : std::string("fixed edges")},
                      {"origin", spec.origin},
                      {"edges", edges},
                      {"intervals", "left-closed: e[k-1] <= value < e[k]; empty bins dropped"}};
      } else {
        std::vector<std::string> v(n);
        for (size_t k = 0; k < n; ++k) v[k] = col[rows[k]];
        fairness::check_numeric_groups(p, v, size_t(max_numeric_groups));
        attrs.push_back(fairness::categorical_attribute(p, v));
        aj["kind"] = "categorical";
      }
    }
    aj["groups"] = attrs.back().groups;
    attributes_json.push_back(aj);
  }

  // ---- options
  fairness::Options opts;
  opts.bootstrap = vm["bootstrap"].as<int>();
  opts.ci = vm["ci"].as<double>();
  opts.seed = vm["seed"].as<uint64_t>();
  opts.threads = global.threads;
  opts.min_group_size = vm["min-group-size"].as<int64_t>();
  opts.ece_bins = vm["ece-bins"].as<int>();
  opts.intersection = !vm.count("no-intersection");
  opts.positive = positive;
  opts.labels_only = labels_only;
  if (vm.count("reference")) {
    for (const auto& item : split_list(vm["reference"].as<std::string>())) {
      auto eq = item.find('=');
      if (eq == std::string::npos) {
        if (attrs.size() != 1)
          throw fairness_error(fmt::format("--reference '{}': name the attribute (ATTRIBUTE=GROUP) when there are several", item));
        opts.reference[attrs[0].name] = item;
      } else {
        opts.reference[item.substr(0, eq)] = item.substr(eq + 1);
      }
    }
    // The intersection's reference: the combination of the singles' references.
    if (attrs.size() > 1 && opts.intersection) {
      std::string name, group;
      bool all = true;
      for (const auto& a : attrs) {
        auto it = opts.reference.find(a.name);
        all = all && it != opts.reference.end();
        if (it == opts.reference.end()) break;
        name += (name.empty() ? "" : "&") + a.name;
        group += (group.empty() ? "" : "&") + it->second;
      }
      if (all) {
        auto inter = fairness::intersect(attrs);
        bool present = false;
        for (const auto& g : inter.groups) present = present || g == group;
        if (present) opts.reference[name] = group;
      }
    }
  }

  auto ev = fairness::evaluate(d, attrs, opts);

  // ---- report
  nlohmann::json j = fairness::evaluation_json(ev);
  j["schema"] = "mlaudit.fairness/1";
  j["tool_version"] = MLAUDIT_VERSION;
  j["inputs"] = {{"data", datasets::file_provenance(data_path)}};
  if (vm.count("model")) j["inputs"]["model"] = datasets::file_provenance(vm["model"].as<std::string>());
  nlohmann::json dropped = nlohmann::json::array();
  int64_t dropped_total = 0;
  for (const auto& [why, count] : lt.dropped) {
    dropped.push_back({{"reason", why}, {"rows", count}});
    dropped_total += count;
  }
  j["data"] = {{"source", data_path},
               {"format", format},
               {"rows_read", lt.rows_read},
               {"rows", int64_t(n)},
               {"rows_dropped", dropped_total},
               {"dropped", dropped},
               {"label", label},
               {"favorable", favorable},
               {"favorable_label", favorable},
               {"favorable_prediction", vm.count("prediction") ? nlohmann::json(favorable_prediction) : nlohmann::json(nullptr)},
               {"decision", decision_desc},
               {"scores", d.scores.empty() ? "none" : (vm.count("model") ? "model softmax of the favorable class" : vm["score"].as<std::string>())},
               {"score_direction", vm.count("score") ? nlohmann::json(higher_favorable ? "higher-is-favorable" : "higher-is-unfavorable")
                                                     : nlohmann::json(nullptr)},
               {"positive", {{"class", positive_favorable ? "favorable" : "unfavorable"},
                             {"origin", positive_origin},
                             {"label", positive_label},
                             {"decision", labels_only ? nlohmann::json(nullptr) : nlohmann::json(positive_decision)}}},
               {"protected", protected_cols},
               {"attributes", attributes_json}};
  if (vm.count("score")) {
    j["data"]["score_direction_origin"] = direction_origin;
    if (!higher_favorable)
      j["data"]["score_transform"] = fmt::format("1 - {}: the metrics take the score of the favorable outcome", vm["score"].as<std::string>());
  }

  // Individual fairness: kNN consistency over numeric features.
  std::vector<std::string> cfeat = vm.count("consistency-features") ? split_list(vm["consistency-features"].as<std::string>()) : features;
  if (labels_only) {
    j["individual"]["consistency"] = {{"value", nullptr}, {"reason", "no decisions given (labels only)"}};
  } else if (!cfeat.empty()) {
    const int64_t max_rows = vm["consistency-max-rows"].as<int64_t>();
    if (int64_t(n) > max_rows) {
      j["individual"]["consistency"] = {{"value", nullptr}, {"k", 5}, {"features", cfeat},
                                        {"reason", fmt::format("{} rows exceed --consistency-max-rows {} (brute-force kNN is O(n^2))", n, max_rows)}};
    } else {
      std::vector<double> fx(n * cfeat.size());
      for (size_t c = 0; c < cfeat.size(); ++c) {
        const auto& col = table.strings(cfeat[c]);
        for (size_t k = 0; k < n; ++k) fx[k * cfeat.size() + c] = number_at(table, cfeat[c], col[rows[k]], rows[k]);
      }
      double v = fairness::consistency(fx, cfeat.size(), d.y_pred, 5, global.threads);
      j["individual"]["consistency"] = {{"value", v}, {"k", 5}, {"features", cfeat},
                                        {"formula", "1 - mean_i |yhat_i - mean_{j in 5NN(x_i), i included} yhat_j| (AIF360)"}};
    }
  } else {
    j["individual"]["consistency"] = {{"value", nullptr}, {"reason", "no numeric features given (--features or --consistency-features)"}};
  }

  // Counterfactual flip test.
  if (vm.count("counterfactual")) {
    j["counterfactual"] = nlohmann::json::array();
    for (const auto& a : attrs) {
      fairness::FeatureEncoding enc;
      enc.attribute = a.name;
      enc.groups = a.groups;
      std::string skip;
      if (onehot.count(a.name)) {
        for (const auto& c : onehot.at(a.name)) {
          auto it = std::find(features.begin(), features.end(), c);
          if (it == features.end()) skip = fmt::format("one-hot column '{}' is not a model feature", c);
          else enc.columns.push_back(it - features.begin());
        }
      } else if (bins.count(a.name)) {
        skip = "binned numeric attribute: no single counterfactual value per group";
      } else {
        auto it = std::find(features.begin(), features.end(), a.name);
        if (it == features.end()) {
          skip = "not a model feature";
        } else {
          enc.columns.push_back(it - features.begin());
          for (const auto& g : a.groups) {
            double v;
            if (!parse_number(g, v)) {
              skip = fmt::format("group '{}' is not a number, so it has no feature value", g);
              break;
            }
            enc.values.push_back(float(v));
          }
        }
      }
      if (!skip.empty()) {
        j["counterfactual"].push_back({{"attribute", a.name}, {"flip_rate", nullptr}, {"reason", skip}});
        continue;
      }
      auto r = fairness::flip_test(*model, x, enc, rule, vm["flip-examples"].as<int64_t>());
      auto rec = fairness::counterfactual_json(r);
      // Report table rows (1-based data rows of the file) next to the evaluated row index.
      for (auto& f : rec["flipped"]) f["data_row"] = int64_t(rows[f["row"].get<int64_t>()]) + 1;
      j["counterfactual"].push_back(rec);
    }
  }
  for (const auto& w : ev.warnings) warnings.push_back(w);
  j["warnings"] = warnings;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  j["timing"] = {{"seconds", secs}, {"threads", global.threads}};
  datasets::write_file_atomic(out_path, j.dump(2));

  // Warnings go to stderr even with --quiet: an interval that excludes its estimate must not pass unseen.
  const size_t shown = 5;
  for (size_t i = 0; i < warnings.size() && i < shown; ++i) std::cerr << "mlaudit: warning: fairness: " << warnings[i] << "\n";
  if (warnings.size() > shown)
    std::cerr << fmt::format("mlaudit: warning: fairness: {} more warnings in the report's \"warnings\"\n", warnings.size() - shown);
  if (!global.quiet) {
    std::cout << fmt::format("fairness: {} rows ({} dropped), {} attributes, {} bootstrap resamples, {:.2f} s\n", n,
                             dropped_total, ev.attributes.size(), opts.bootstrap, secs);
    std::cout << fmt::format("  label {} (favorable {}); decision {}; base_rate and selection_rate are the rates of the "
                             "favorable label and decision\n", label, favorable, decision_desc);
    if (!labels_only)
      std::cout << fmt::format("  positive class: {} ({}; {}): TPR, FPR, TNR, FNR, PPV, NPV count it as positive\n",
                               positive_favorable ? "favorable" : "unfavorable", positive_label, positive_decision);
    // Per-group rates of the single attributes (the intersection is in the report).
    for (const auto& g : j["groups"]) {
      if (g["attribute"].get<std::string>().find('&') != std::string::npos) continue;
      auto v = [&](const char* key) {
        const auto& e = g[key];
        return e["value"].is_null() ? std::string("null") : fmt::format("{:.4f}", e["value"].get<double>());
      };
      std::string line = fmt::format("  {:<16} {:<20} n={:<6} base_rate {}", g["attribute"].get<std::string>(),
                                     g["group"].get<std::string>(), g["count"].get<int64_t>(), v("base_rate"));
      if (!labels_only)
        line += fmt::format(" selection_rate {} fpr {} fnr {}", v("selection_rate"), v("fpr"), v("fnr"));
      std::cout << line << "\n";
    }
    for (const auto& dp : ev.disparities) {
      if (!dp.reference.empty()) continue;
      if (dp.name != "demographic_parity_difference" && dp.name != "demographic_parity_ratio" &&
          dp.name != "equalized_odds_difference" && dp.name != "base_rate_difference" && dp.name != "base_rate_ratio")
        continue;
      const auto& e = dp.estimate;
      std::string v = e.defined() ? fmt::format("{:.4f}", e.value) : "null (" + e.reason + ")";
      std::string ci = std::isnan(e.lo) ? "" : fmt::format(" [{:.4f}, {:.4f}]", e.lo, e.hi);
      std::string und = e.defined() && e.undefined_resamples ? fmt::format(" ({} of {} resamples undefined)", e.undefined_resamples, e.resamples) : "";
      std::string ex = e.interval_note.empty() ? "" : " (interval excludes the estimate: see warning)";
      std::string ff = dp.four_fifths_rule.empty() ? "" : " four-fifths rule: " + dp.four_fifths_rule;
      std::cout << fmt::format("  {:<16} {:<30} {}{}{}{}{}\n", dp.attribute, dp.name, v, ci, und, ex, ff);
    }
    if (ev.estimates_with_undefined_resamples)
      std::cout << fmt::format("  bootstrap: {} estimates had resamples where they were undefined (at most {} of {}), left out "
                               "of their intervals; see undefined_resamples in the report\n",
                               ev.estimates_with_undefined_resamples, ev.max_undefined_resamples, opts.bootstrap);
    if (j.contains("counterfactual"))
      for (const auto& c : j["counterfactual"])
        std::cout << fmt::format("  counterfactual {:<10} flip rate {}\n", c["attribute"].get<std::string>(),
                                 c["flip_rate"].is_null() ? "n/a (" + c["reason"].get<std::string>() + ")"
                                                          : fmt::format("{:.4f}", c["flip_rate"].get<double>()));
    std::cout << "  report: " << out_path << "\n";
  }
  return 0;
}

}  // namespace

MLAUDIT_COMMAND("fairness", "group fairness metrics with bootstrap intervals, intersections and counterfactual flips",
                cmd_fairness);

}  // namespace mlaudit::cli
#endif  // MLAUDIT_HAVE_fairness
