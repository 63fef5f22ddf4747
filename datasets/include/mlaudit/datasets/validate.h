#pragma once
// One input contract for every command: each kind of input (labels, data,
// input domain) is checked by one function here, so every command refuses the
// same bad input with the same message (exit 2). Also the statistics every
// report shares (binomial confidence intervals) and input provenance (the
// SHA-256 of each file a result was computed from).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mlaudit/common/tensor.h"

namespace mlaudit::datasets {

/// Labels must be class indices of the model: every y[i] in [0, classes).
/// `where` names the command and file, e.g. "certify: --labels y.npy".
/// -1 (an abstention) and labels past the last class are refused with the
/// first offending row, the observed range and the model's class count.
void check_labels(const std::string& where, const std::vector<int64_t>& y, int64_t classes);

/// One label per row: throws "<where>: L labels for the R rows of --data PATH" unless
/// labels == rows. `where` names the command and labels file, as for check_labels.
void check_label_count(const std::string& where, int64_t labels, int64_t rows, const std::string& data_path);

/// Every element finite (no NaN/Inf); names the first bad element's row.
void check_finite(const std::string& where, const engine::Tensor& x);

/// Every element inside [lo, hi] (the input domain of --clip-min/--clip-max);
/// names the first element outside, the observed range and how to change the domain.
/// `hint` ends the message (default: the command-line flags that set the domain).
void check_in_domain(const std::string& where, const engine::Tensor& x, double lo, double hi,
                     const std::string& hint = "set --clip-min/--clip-max to the domain the model's inputs live in");

/// Lower and upper bounds of the two-sided Clopper-Pearson ("exact") interval
/// for k successes in n trials at the given confidence (0.95: a 95 % interval).
/// Equals statsmodels proportion_confint(k, n, alpha=1-confidence, method="beta").
struct Proportion {
  int64_t k = 0, n = 0;
  double value = 0, lower = 0, upper = 1;
};
Proportion clopper_pearson(int64_t k, int64_t n, double confidence = 0.95);
/// {"k", "n", "lower", "upper", "confidence", "method"} for a result JSON.
nlohmann::json proportion_json(int64_t k, int64_t n, double confidence = 0.95);

/// Optimal string alignment distance: insertions, deletions, substitutions and transpositions
/// of adjacent characters ("setps" -> "steps") cost 1.
size_t edit_distance(const std::string& a, const std::string& b);
/// " (did you mean 'x'? expected one of: a, b, c)" for a near miss of `value` among `options`,
/// else " (expected one of: a, b, c)": the tail of every unknown-name message.
std::string did_you_mean(const std::string& value, const std::vector<std::string>& options);

/// {"path", "sha256", "bytes"} of an input file, for a result JSON's "inputs"
/// block (imports into an audit are checked against the model's hash).
nlohmann::json file_provenance(const std::string& path);

/// "a, b,,c" -> {a, b, c}: items split at `sep`, trimmed of blanks and tabs, empty ones skipped.
std::vector<std::string> split_list(const std::string& text, char sep = ',');

/// Comma-separated numbers, each a number or a fraction "a/b" (8/255: image radii as papers
/// and AutoAttack write them). A bad item, a zero denominator or an empty list throws
/// InputError(`origin`, "`what`: ...") naming the item.
std::vector<double> parse_number_list(const std::string& origin, const std::string& what, const std::string& text);

}  // namespace mlaudit::datasets
