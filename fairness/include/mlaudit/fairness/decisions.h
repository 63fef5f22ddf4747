#pragma once
// From a loaded table (table.h) and the choice of label, decision source and protected
// attributes to the inputs of evaluate() (metrics.h): the rows used, the favourable label and
// decision of every row (a decision column, a score against a threshold, or a model's softmax),
// the protected attributes (categorical, binned or one-hot) and the reference groups.
// Error messages name parameters through DecisionOptions::spell (table.h's ParameterSpelling).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mlaudit/engine/model.h"
#include "mlaudit/fairness/attributes.h"
#include "mlaudit/fairness/counterfactual.h"
#include "mlaudit/fairness/metrics.h"
#include "mlaudit/fairness/table.h"

namespace mlaudit::fairness {

/// How a numeric protected column is cut: fixed edges, or q quantile bins of the evaluated rows.
struct BinSpec {
  std::vector<double> edges;  ///< fixed edges (empty with quantiles)
  int quantiles = 0;          ///< q of "COL:qQ"
  std::string origin;         ///< spell("bins") for parse_bins' specs, "preset" for a data set's usual cut
};

/// "age:25,45;income:q4" -> {age: edges [25, 45], income: 4 quantile bins}; edges may be
/// fractions "a/b". Throws InputError naming the parameter `bins` and the bad item.
std::map<std::string, BinSpec> parse_bins(const std::string& text, const ParameterSpelling& spell = parameter_name);

/// "race=race_a,race_b,race_c;..." -> attribute -> its one-hot columns (two or more).
/// Throws InputError naming the parameter `onehot` and the bad item.
std::map<std::string, std::vector<std::string>> parse_onehot(const std::string& text,
                                                             const ParameterSpelling& spell = parameter_name);

/// Loads the ONNX classifier named by DecisionOptions::model (the CLI's loader picks the device).
using ModelLoader = std::function<std::unique_ptr<engine::Model>(const std::string& path)>;

/// The label, favourable values, decision source and protected attributes of an evaluation.
/// Fields are named after `mlaudit fairness`'s flags; an empty optional is a flag not given.
struct DecisionOptions {
  std::optional<std::string> label_column;          ///< true label column (default: the data set's label)
  std::optional<std::string> favorable;             ///< favourable value of the label and the prediction column alike
  std::optional<std::string> favorable_label;       ///< favourable label value (default: the data set's, else "1")
  std::optional<std::string> favorable_prediction;  ///< favourable value of `prediction` (default: the label's)
  std::optional<std::string> prediction;            ///< decision column
  std::optional<std::string> score;                 ///< score column (decision from `threshold` and `score_direction`)
  std::optional<std::string> score_direction;       ///< "higher-is-favorable" (default) | "higher-is-unfavorable"
  std::optional<double> threshold;                  ///< on `score`, or on the model's favourable-class probability
  std::optional<std::string> positive;              ///< positive class of TPR/FPR/...: "favorable" | "unfavorable"
  std::optional<std::string> model;                 ///< ONNX classifier run on `features` (logits [N,C])
  std::optional<std::vector<std::string>> features; ///< model input columns in order
  int64_t favorable_class = 1;                      ///< model output class of the favourable decision
  std::optional<std::vector<std::string>> protected_columns;  ///< parameter `protected` (default: the data set's)
  std::map<std::string, BinSpec> bins;                        ///< parse_bins
  std::map<std::string, std::vector<std::string>> onehot;     ///< parse_onehot
  int64_t max_numeric_groups = 10;  ///< refuse an unbinned numeric protected column with more values (0: no limit)
  bool counterfactual = false;      ///< a flip test will follow (needs `model`)
  ParameterSpelling spell = parameter_name;
};

/// Everything prepare_inputs() decided, ready for evaluate() and the report.
struct FairnessInputs {
  std::string label;                 ///< label column
  std::string favorable;             ///< favourable label value
  std::string favorable_prediction;  ///< favourable value of the prediction column (empty without one)
  std::vector<std::string> protected_columns;
  std::vector<std::string> features;                       ///< model input columns (empty without)
  std::map<std::string, BinSpec> bins;                     ///< the options' bins plus the data set's usual cuts
  std::map<std::string, std::vector<std::string>> onehot;  ///< the options' one-hot attributes
  std::vector<size_t> rows;          ///< table rows evaluated (0-based), in order
  bool labels_only = false;          ///< no decision source: base rates of the labels only
  ScoreDirection direction = ScoreDirection::HigherIsFavorable;
  std::string direction_origin;      ///< "default", spell("score_direction") or "<format> preset"
  PositiveClass positive = PositiveClass::Favorable;
  std::string positive_origin;       ///< "default", spell("positive") or "<format> preset"
  Decisions decisions;               ///< y_true, y_pred and scores of the evaluated rows
  std::string decision;              ///< the decision in words ("column 'p' == 1", "model M: argmax == class 1")
  std::string positive_label;        ///< the positive label in words ("y == 1")
  std::string positive_decision;     ///< the positive decision in words (empty with labels_only)
  DecisionRule rule;                 ///< how a model's decisions are read
  std::unique_ptr<engine::Model> model;  ///< the loaded model (null without `model`)
  engine::Tensor x;                  ///< model input features of the evaluated rows, float32 [n, F]
  std::vector<Attribute> attributes;    ///< protected attributes over the evaluated rows
  nlohmann::json attributes_json;       ///< their report records: name, kind, groups (and bins or columns)
  std::vector<std::string> warnings;    ///< e.g. a favourable value that no row holds while all rows agree

  bool higher_favorable() const { return direction == ScoreDirection::HigherIsFavorable; }
  bool positive_favorable() const { return positive == PositiveClass::Favorable; }
  size_t rows_used() const { return rows.size(); }
};

/// Check the options against the table, drop rows with a missing label, decision or protected
/// value (appending the reasons to lt.dropped), check that the favourable values occur, read the
/// decisions (loading the model with `load_model` when `model` is given) and build the protected
/// attributes. Throws InputError naming the parameter at fault.
FairnessInputs prepare_inputs(LoadedTable& lt, const DecisionOptions& o, const ModelLoader& load_model = {});

/// Reference groups from items "ATTRIBUTE=GROUP" (or "GROUP" when there is one attribute), plus
/// the intersection's reference (the combination of the singles' ones) when `intersection`, there
/// are several attributes, all have one and the combination occurs. Throws InputError for a bare
/// GROUP among several attributes.
std::map<std::string, std::string> reference_groups(const std::vector<std::string>& items,
                                                    const std::vector<Attribute>& attributes, bool intersection,
                                                    const ParameterSpelling& spell = parameter_name);

/// Numeric columns of the given rows, row-major [rows, columns] (consistency's features).
/// Throws InputError for a cell that is not a finite number.
std::vector<double> numeric_columns(const datasets::CsvTable& t, const std::vector<std::string>& columns,
                                    const std::vector<size_t>& rows);

/// How attribute `a` is encoded among the model's features `in.features` for the flip test.
/// Returns why it cannot be flipped (empty when `enc` is ready): a one-hot column that is not a
/// feature, a binned attribute, an attribute that is not a feature or a group that is not a number.
std::string counterfactual_encoding(const Attribute& a, const FairnessInputs& in, FeatureEncoding& enc);

}  // namespace mlaudit::fairness
