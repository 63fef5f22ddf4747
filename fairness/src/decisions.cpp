// From a loaded table and the options to the inputs of evaluate() (decisions.h).
#include "mlaudit/fairness/decisions.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::fairness {
namespace {

InputError fairness_error(const std::string& msg) { return InputError("fairness", msg); }

// "a, b,,c" -> {a, b, c}: items trimmed of blanks and tabs, empty ones skipped.
std::vector<std::string> split(const std::string& text, char sep = ',') { return datasets::split_list(text, sep); }

// Comma-separated numbers or fractions "a/b" (the CLI's number lists).
std::vector<double> parse_edges(const std::string& parameter, const std::string& text) {
  return datasets::parse_number_list("fairness", parameter, text);
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

}  // namespace

std::map<std::string, BinSpec> parse_bins(const std::string& text, const ParameterSpelling& spell) {
  const std::string bins = spell("bins");
  std::map<std::string, BinSpec> out;
  for (const auto& item : split(text, ';')) {
    auto colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      throw fairness_error(fmt::format("{}: '{}' is not COLUMN:EDGE[,EDGE...] or COLUMN:qN", bins, item));
    BinSpec b;
    b.origin = bins;
    std::string spec = item.substr(colon + 1);
    if (!spec.empty() && (spec[0] == 'q' || spec[0] == 'Q')) {
      double q;
      if (!parse_number(spec.substr(1), q) || q != std::floor(q) || q < 2 || q > 100)
        throw fairness_error(fmt::format("{}: '{}': qN needs a whole number of quantile bins N in 2..100", bins, item));
      b.quantiles = int(q);
    } else {
      b.edges = parse_edges(bins, spec);
    }
    out[item.substr(0, colon)] = b;
  }
  return out;
}

std::map<std::string, std::vector<std::string>> parse_onehot(const std::string& text, const ParameterSpelling& spell) {
  const std::string onehot = spell("onehot");
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& item : split(text, ';')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw fairness_error(fmt::format("{}: '{}' is not ATTRIBUTE=COL,COL,...", onehot, item));
    auto cols = split(item.substr(eq + 1));
    if (cols.size() < 2) throw fairness_error(fmt::format("{}: '{}' needs at least two columns", onehot, item));
    out[item.substr(0, eq)] = cols;
  }
  return out;
}

FairnessInputs prepare_inputs(LoadedTable& lt, const DecisionOptions& o, const ModelLoader& load_model) {
  const auto& sp = o.spell;
  const auto& table = lt.table;
  const std::string& format = lt.format;
  FairnessInputs in;
  in.label = o.label_column ? *o.label_column : lt.label;
  const std::string& label = in.label;
  if (label.empty()) throw fairness_error(fmt::format("{} is required (the true label column)", sp("label_column")));

  // Favorable values: `favorable` sets both; `favorable_label` / `favorable_prediction` set one each.
  if (o.favorable && (o.favorable_label || o.favorable_prediction))
    throw fairness_error(fmt::format("{} sets both the label's and the decision's favorable value: give it alone, or "
                                     "{} and {}",
                                     sp("favorable"), sp("favorable_label"), sp("favorable_prediction")));
  if (o.favorable_prediction && !o.prediction)
    throw fairness_error(o.model ? fmt::format("{} applies to {} COL; with {} the favorable decision is {}",
                                               sp("favorable_prediction"), sp("prediction"), sp("model"), sp("favorable_class"))
                                 : fmt::format("{} needs {} COL (the decision column)", sp("favorable_prediction"),
                                               sp("prediction")));
  std::string favorable_origin;
  if (o.favorable_label) in.favorable = *o.favorable_label, favorable_origin = sp("favorable_label");
  else if (o.favorable) in.favorable = *o.favorable, favorable_origin = sp("favorable");
  else if (!lt.favorable.empty() && label == lt.label)
    in.favorable = lt.favorable, favorable_origin = fmt::format("the {} preset's favorable label", format);
  else in.favorable = "1", favorable_origin = "the default favorable label";
  const std::string& favorable = in.favorable;

  in.protected_columns = o.protected_columns ? *o.protected_columns : lt.protected_attributes;
  const auto& protected_cols = in.protected_columns;
  if (protected_cols.empty()) throw fairness_error(fmt::format("{} is required (protected attribute columns)", sp("protected")));
  in.bins = o.bins;
  in.onehot = o.onehot;
  auto& bins = in.bins;
  const auto& onehot = in.onehot;
  for (const auto& [col, e] : bins) {
    bool listed = false;
    for (const auto& p : protected_cols) listed = listed || p == col;
    if (!listed) throw fairness_error(fmt::format("{} names '{}', which is not in {}", sp("bins"), col, sp("protected")));
  }
  // A preset's usual cut (German credit: age at 25) unless `bins` or `onehot` says otherwise.
  for (const auto& p : protected_cols)
    if (!bins.count(p) && !onehot.count(p) && lt.default_bins.count(p)) bins[p] = BinSpec{lt.default_bins.at(p), 0, "preset"};
  if (o.max_numeric_groups < 0) throw fairness_error(fmt::format("{} must be >= 0", sp("max_numeric_groups")));

  const int decision_sources = int(bool(o.prediction)) + int(bool(o.score)) + int(bool(o.model));
  in.labels_only = decision_sources == 0;
  if (o.model && (o.prediction || o.score))
    throw fairness_error(fmt::format("{} cannot be combined with {} or {}", sp("model"), sp("prediction"), sp("score")));
  if (o.score && !o.prediction && !o.threshold)
    throw fairness_error(fmt::format("{} needs {} (decision = score >= threshold) or a {} column", sp("score"),
                                     sp("threshold"), sp("prediction")));
  if (o.score_direction && !o.score)
    throw fairness_error(fmt::format("{} needs {} (a model's softmax is always the favorable-class probability)",
                                     sp("score_direction"), sp("score")));
  if (o.model && !o.features)
    throw fairness_error(fmt::format("{} needs {} (model input columns in order)", sp("model"), sp("features")));
  if (o.counterfactual && !o.model) throw fairness_error(fmt::format("{} needs {}", sp("counterfactual"), sp("model")));

  in.direction = ScoreDirection::HigherIsFavorable;
  in.direction_origin = "default";
  if (o.score_direction) {
    const std::string& v = *o.score_direction;
    if (v == "higher-is-favorable") in.direction = ScoreDirection::HigherIsFavorable;
    else if (v == "higher-is-unfavorable") in.direction = ScoreDirection::HigherIsUnfavorable;
    else
      throw fairness_error(
          fmt::format("{} '{}' is not higher-is-favorable or higher-is-unfavorable", sp("score_direction"), v));
    in.direction_origin = sp("score_direction");
  } else if (o.score && lt.score_directions.count(*o.score)) {
    in.direction = lt.score_directions.at(*o.score);
    in.direction_origin = format + " preset";
  }
  const bool higher_favorable = in.higher_favorable();

  in.positive = lt.positive;
  in.positive_origin = lt.positive == PositiveClass::Unfavorable ? format + " preset" : "default";
  if (o.positive) {
    const std::string& v = *o.positive;
    const auto& names = positive_class_names();
    if (v == names[0]) in.positive = PositiveClass::Favorable;
    else if (v == names[1]) in.positive = PositiveClass::Unfavorable;
    else throw fairness_error(fmt::format("{} '{}' is not favorable or unfavorable", sp("positive"), v));
    in.positive_origin = sp("positive");
  }
  const bool positive_favorable = in.positive_favorable();

  // Columns must exist (CsvTable::index names the available ones).
  std::vector<std::string> needed = {label};
  if (o.prediction) needed.push_back(*o.prediction);
  if (o.score) needed.push_back(*o.score);
  if (o.features) in.features = *o.features;
  const auto& features = in.features;
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
  if (o.prediction) check_missing.push_back(*o.prediction);
  if (o.score) check_missing.push_back(*o.score);
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
  auto& rows = in.rows;
  for (size_t i = 0; i < n_all; ++i)
    if (keep[i]) rows.push_back(i);
  if (rows.empty()) throw fairness_error(fmt::format("{}: no rows left to evaluate", table.source));
  const size_t n = rows.size();

  // ---- favorable values must occur in their columns
  auto& warnings = in.warnings;
  const std::string both_hint =
      o.favorable ? fmt::format("; {} sets the label's and the decision's value alike: give them apart with "
                                "{} and {}",
                                sp("favorable"), sp("favorable_label"), sp("favorable_prediction"))
                  : "";
  check_favorable(favorable_origin, favorable, "label", label, table.strings(label), rows, both_hint, warnings);
  if (o.prediction) {
    const std::string& pc = *o.prediction;
    std::string origin;
    if (o.favorable_prediction) in.favorable_prediction = *o.favorable_prediction, origin = sp("favorable_prediction");
    else if (o.favorable) in.favorable_prediction = *o.favorable, origin = sp("favorable");
    else if (lt.favorable_predictions.count(pc))
      in.favorable_prediction = lt.favorable_predictions.at(pc),
      origin = fmt::format("the {} preset's favorable decision", format);
    else in.favorable_prediction = favorable, origin = "the favorable label (the decision's default)";
    check_favorable(origin, in.favorable_prediction, "decision", pc, table.strings(pc), rows,
                    o.favorable ? both_hint
                                : fmt::format("; give the decision's favorable value with {}", sp("favorable_prediction")),
                    warnings);
  }
  const std::string& favorable_prediction = in.favorable_prediction;

  // ---- decisions
  Decisions& d = in.decisions;
  d.y_true.resize(n);
  {
    const auto& y = table.strings(label);
    for (size_t k = 0; k < n; ++k) d.y_true[k] = same_value(y[rows[k]], favorable);
  }
  auto& rule = in.rule;
  rule.favorable_class = o.favorable_class;
  if (o.threshold) rule.threshold = *o.threshold;
  // With a model the threshold is on a probability: outside (0, 1] every decision is the same
  // (selection rate 0 or 1 in every group), which would print plausible-looking disparities of 0.
  if (o.model && o.threshold && !(rule.threshold > 0 && rule.threshold <= 1))
    throw fairness_error(fmt::format("{} {} is not a probability in (0, 1]: with {} it thresholds "
                                     "softmax[:, {}] (a score column's threshold goes with {})",
                                     sp("threshold"), rule.threshold, sp("model"), rule.favorable_class, sp("score")));
  if (in.labels_only) {
    in.decision = fmt::format("none: no {}, {} or {}, so only the labels' base rates are reported", sp("prediction"),
                              sp("score"), sp("model"));
  } else if (o.model) {
    const std::string& model_path = *o.model;
    if (!load_model) throw fairness_error(fmt::format("{} '{}' given without a model loader", sp("model"), model_path));
    in.model = load_model(model_path);
    // Features of the kept rows, in order, as float32 [n, F].
    std::vector<std::vector<std::string> const*> cols;
    for (const auto& f : features) cols.push_back(&table.strings(f));
    in.x = engine::Tensor(engine::Shape{int64_t(n), int64_t(features.size())});
    float* xp = in.x.f32();
    for (size_t k = 0; k < n; ++k)
      for (size_t c = 0; c < features.size(); ++c)
        xp[k * features.size() + c] = float(number_at(table, features[c], (*cols[c])[rows[k]], rows[k]));
    model_decisions(*in.model, in.x, rule, d.y_pred, d.scores);
    in.decision = std::isnan(rule.threshold)
                      ? fmt::format("model {}: argmax == class {}", model_path, rule.favorable_class)
                      : fmt::format("model {}: softmax[:, {}] >= {}", model_path, rule.favorable_class, rule.threshold);
    in.positive_decision =
        std::isnan(rule.threshold)
            ? fmt::format("argmax {} class {}", positive_favorable ? "==" : "!=", rule.favorable_class)
            : fmt::format("softmax[:, {}] {} {}", rule.favorable_class, positive_favorable ? ">=" : "<", rule.threshold);
  } else {
    if (o.score) {
      // The evaluation takes the score of the favorable outcome: a risk score s becomes 1 - s
      // (same order reversed, so AUC is that of -s; a probability of the unfavorable outcome
      // becomes the favorable one's, so Brier and ECE stay meaningful).
      const std::string& sc = *o.score;
      const auto& s = table.strings(sc);
      d.scores.resize(n);
      for (size_t k = 0; k < n; ++k) {
        double v = number_at(table, sc, s[rows[k]], rows[k]);
        d.scores[k] = higher_favorable ? v : 1.0 - v;
      }
    }
    d.y_pred.resize(n);
    if (o.prediction) {
      const std::string& pc = *o.prediction;
      const auto& p = table.strings(pc);
      for (size_t k = 0; k < n; ++k) d.y_pred[k] = same_value(p[rows[k]], favorable_prediction);
      in.decision = fmt::format("column '{}' == {}", pc, favorable_prediction);
      in.positive_decision = fmt::format("{} {} {}", pc, positive_favorable ? "==" : "!=", favorable_prediction);
    } else {
      const std::string& sc = *o.score;
      const double thr = *o.threshold;
      const auto& s = table.strings(sc);
      for (size_t k = 0; k < n; ++k) {
        double v = number_at(table, sc, s[rows[k]], rows[k]);
        d.y_pred[k] = higher_favorable ? v >= thr : v < thr;
      }
      in.decision = higher_favorable ? fmt::format("column '{}' >= {}", sc, thr)
                                     : fmt::format("column '{}' < {} (higher is unfavorable)", sc, thr);
      // The positive decision in words: the favorable side or its complement.
      in.positive_decision = fmt::format("{} {} {}", sc, (higher_favorable == positive_favorable) ? ">=" : "<", thr);
    }
  }
  in.positive_label = fmt::format("{} {} {}", label, positive_favorable ? "==" : "!=", favorable);

  // ---- protected attributes
  auto& attrs = in.attributes;
  in.attributes_json = nlohmann::json::array();
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
            if (hot >= 0)
              throw fairness_error(
                  fmt::format("{}: row {}: several one-hot columns of '{}' are 1", table.source, rows[k] + 1, p));
            hot = int(j);
          }
        if (hot < 0)
          throw fairness_error(fmt::format("{}: row {}: no one-hot column of '{}' is 1", table.source, rows[k] + 1, p));
        values[k] = cols[hot];
      }
      // Keep every listed column as a group, in the listed order, even one no row holds.
      Attribute ordered;
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
        std::vector<double> edges = spec.quantiles ? quantile_edges(p, v, spec.quantiles) : spec.edges;
        attrs.push_back(binned_attribute(p, v, edges));
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
        check_numeric_groups(p, v, size_t(o.max_numeric_groups));
        attrs.push_back(categorical_attribute(p, v));
        aj["kind"] = "categorical";
      }
    }
    aj["groups"] = attrs.back().groups;
    in.attributes_json.push_back(aj);
  }
  return in;
}

std::map<std::string, std::string> reference_groups(const std::vector<std::string>& items,
                                                    const std::vector<Attribute>& attrs, bool intersection,
                                                    const ParameterSpelling& spell) {
  std::map<std::string, std::string> reference;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      if (attrs.size() != 1)
        throw fairness_error(
            fmt::format("{} '{}': name the attribute (ATTRIBUTE=GROUP) when there are several", spell("reference"), item));
      reference[attrs[0].name] = item;
    } else {
      reference[item.substr(0, eq)] = item.substr(eq + 1);
    }
  }
  // The intersection's reference: the combination of the singles' references.
  if (attrs.size() > 1 && intersection) {
    std::string name, group;
    bool all = true;
    for (const auto& a : attrs) {
      auto it = reference.find(a.name);
      all = all && it != reference.end();
      if (it == reference.end()) break;
      name += (name.empty() ? "" : "&") + a.name;
      group += (group.empty() ? "" : "&") + it->second;
    }
    if (all) {
      auto inter = intersect(attrs);
      bool present = false;
      for (const auto& g : inter.groups) present = present || g == group;
      if (present) reference[name] = group;
    }
  }
  return reference;
}

std::vector<double> numeric_columns(const datasets::CsvTable& t, const std::vector<std::string>& columns,
                                    const std::vector<size_t>& rows) {
  const size_t n = rows.size(), dims = columns.size();
  std::vector<double> fx(n * dims);
  for (size_t c = 0; c < dims; ++c) {
    const auto& col = t.strings(columns[c]);
    for (size_t k = 0; k < n; ++k) fx[k * dims + c] = number_at(t, columns[c], col[rows[k]], rows[k]);
  }
  return fx;
}

std::string counterfactual_encoding(const Attribute& a, const FairnessInputs& in, FeatureEncoding& enc) {
  const auto& features = in.features;
  enc.attribute = a.name;
  enc.groups = a.groups;
  std::string skip;
  if (in.onehot.count(a.name)) {
    for (const auto& c : in.onehot.at(a.name)) {
      auto it = std::find(features.begin(), features.end(), c);
      if (it == features.end()) skip = fmt::format("one-hot column '{}' is not a model feature", c);
      else enc.columns.push_back(it - features.begin());
    }
  } else if (in.bins.count(a.name)) {
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
  return skip;
}

}  // namespace mlaudit::fairness
