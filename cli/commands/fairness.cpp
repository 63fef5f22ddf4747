// mlaudit fairness: group fairness metrics with bootstrap intervals, intersectional
// groups, individual indices and counterfactual flip probes (docs/fairness.md).
// The table is read by fairness/table.h, decisions and attributes come from fairness/decisions.h:
// this command turns its flags into their options, runs the evaluation and writes the report.
#ifdef MLAUDIT_HAVE_fairness
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/fairness/counterfactual.h"
#include "mlaudit/fairness/decisions.h"
#include "mlaudit/fairness/metrics.h"
#include "mlaudit/fairness/report.h"
#include "mlaudit/fairness/table.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

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
  auto text = [&](const char* flag) {
    return vm.count(flag) ? std::optional<std::string>(vm[flag].as<std::string>()) : std::nullopt;
  };

  // ---- read the table
  fairness::TableOptions table_options;
  table_options.data = data_path;
  table_options.dataset = text("dataset");
  if (vm.count("columns")) table_options.columns = split_list(vm["columns"].as<std::string>());
  table_options.keep_missing = vm.count("keep-missing") > 0;
  table_options.propublica_filter = !vm.count("no-propublica-filter");
  table_options.encoding = vm["encoding"].as<std::string>();
  table_options.limit = vm["limit"].as<int64_t>();
  table_options.spell = flag_spelling;
  fairness::LoadedTable lt = fairness::load_table(table_options);
  const std::string& format = lt.format;

  // ---- label, decisions and protected attributes
  fairness::DecisionOptions o;
  o.label_column = text("label-column");
  o.favorable = text("favorable");
  o.favorable_label = text("favorable-label");
  o.favorable_prediction = text("favorable-prediction");
  o.prediction = text("prediction");
  o.score = text("score");
  o.score_direction = text("score-direction");
  if (vm.count("threshold")) o.threshold = vm["threshold"].as<double>();
  o.positive = text("positive");
  o.model = text("model");
  if (vm.count("features")) o.features = parse_name_list("features", vm["features"].as<std::string>());
  o.favorable_class = vm["favorable-class"].as<int64_t>();
  if (vm.count("protected")) o.protected_columns = split_list(vm["protected"].as<std::string>());
  if (vm.count("bins")) o.bins = fairness::parse_bins(vm["bins"].as<std::string>(), flag_spelling);
  if (vm.count("onehot")) o.onehot = fairness::parse_onehot(vm["onehot"].as<std::string>(), flag_spelling);
  o.max_numeric_groups = vm["max-numeric-groups"].as<int64_t>();
  o.counterfactual = vm.count("counterfactual") > 0;
  o.spell = flag_spelling;
  fairness::FairnessInputs in = fairness::prepare_inputs(
      lt, o, [&](const std::string& path) -> std::unique_ptr<engine::Model> { return load_model(path, global); });
  const auto& table = lt.table;
  const auto& label = in.label;
  const auto& favorable = in.favorable;
  const auto& favorable_prediction = in.favorable_prediction;
  const auto& protected_cols = in.protected_columns;
  const auto& features = in.features;
  const auto& rows = in.rows;
  const auto& attrs = in.attributes;
  const auto& d = in.decisions;
  const auto& decision_desc = in.decision;
  const auto& direction_origin = in.direction_origin;
  const auto& positive_origin = in.positive_origin;
  const auto& positive_label = in.positive_label;
  const auto& positive_decision = in.positive_decision;
  const bool labels_only = in.labels_only;
  const bool higher_favorable = in.higher_favorable();
  const bool positive_favorable = in.positive_favorable();
  const size_t n = rows.size();
  std::vector<std::string> warnings = in.warnings;

  // ---- options
  fairness::Options opts;
  opts.bootstrap = vm["bootstrap"].as<int>();
  opts.ci = vm["ci"].as<double>();
  opts.seed = vm["seed"].as<uint64_t>();
  opts.threads = global.threads;
  opts.min_group_size = vm["min-group-size"].as<int64_t>();
  opts.ece_bins = vm["ece-bins"].as<int>();
  opts.intersection = !vm.count("no-intersection");
  opts.positive = in.positive;
  opts.labels_only = labels_only;
  if (vm.count("reference"))
    opts.reference =
        fairness::reference_groups(split_list(vm["reference"].as<std::string>()), attrs, opts.intersection, flag_spelling);

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
               {"attributes", in.attributes_json}};
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
      double v = fairness::consistency(fairness::numeric_columns(table, cfeat, rows), cfeat.size(), d.y_pred, 5,
                                       global.threads);
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
      const std::string skip = fairness::counterfactual_encoding(a, in, enc);
      if (!skip.empty()) {
        j["counterfactual"].push_back({{"attribute", a.name}, {"flip_rate", nullptr}, {"reason", skip}});
        continue;
      }
      auto r = fairness::flip_test(*in.model, in.x, enc, in.rule, vm["flip-examples"].as<int64_t>());
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
