#pragma once
// Readers for the standard fairness data sets: UCI Adult, Statlog German credit,
// ProPublica COMPAS (two-years file). Each returns a string table plus a record
// of which rows were used and why the others were dropped.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/fairness/metrics.h"

namespace mlaudit::fairness {

/// A table read for a fairness evaluation and the bookkeeping of its rows.
struct LoadedTable {
  datasets::CsvTable table;
  int64_t rows_read = 0;                                   ///< data rows in the file
  std::string format;  ///< reader (set by load_table, table.h): "adult", "german", "compas", "npy" or "csv"
  std::vector<std::pair<std::string, int64_t>> dropped;    ///< reason -> rows dropped for it
  std::string label;                                       ///< label column
  std::string favorable;                                   ///< favorable label value
  std::vector<std::string> protected_attributes;           ///< usual protected columns
  std::vector<int64_t> source_rows;                        ///< 0-based data row in the file of every kept row
  /// Favourable value of known decision columns (COMPAS: score_text -> "Low").
  std::map<std::string, std::string> favorable_predictions;
  /// Direction of known score columns (COMPAS: decile_score is a risk score, higher = unfavourable).
  std::map<std::string, ScoreDirection> score_directions;
  /// The data set's usual positive class (COMPAS: recidivism, as ProPublica's analysis counts it).
  PositiveClass positive = PositiveClass::Favorable;
  /// Usual bin edges of numeric protected columns (German credit: age cut at 25, as AIF360 does).
  std::map<std::string, std::vector<double>> default_bins;
};

/// UCI Adult (adult.data or adult.test): headerless, ", " separators, '?' for
/// missing, test labels ending in '.', test file's "|1x3 Cross validator" line
/// skipped. Columns named as in adult.names; label `income` is "1" for >50K and
/// "0" for <=50K. Rows with a '?' are dropped when drop_missing (as AIF360 does).
LoadedTable read_adult(const std::string& path, bool drop_missing = true);

/// Statlog German credit (german.data): 20 attributes in AIF360's column names
/// with their A-codes as values, `sex` derived from personal_status as AIF360
/// does (A91, A93, A94 male; A92, A95 female), label `credit` "1" good / "0" bad.
/// Protected `sex` and `age`, age cut at 25 by default (groups age<25, age>=25; AIF360's
/// privileged test is age > 25, which puts 25-year-olds in the other group).
LoadedTable read_german(const std::string& path);

/// ProPublica compas-scores-two-years.csv. The second `decile_score` and
/// `priors_count` columns are named `decile_score.1` and `priors_count.1`. With
/// propublica_filter, keeps the rows of ProPublica's analysis
/// (|days_b_screening_arrest| <= 30, is_recid != -1, c_charge_degree != 'O',
/// score_text != 'N/A'). Label `two_year_recid` (1 = reoffended), favourable label 0;
/// decile_score, decile_score.1 and v_decile_score are risk scores (higher = unfavourable);
/// score_text and v_score_text have favourable decision "Low"; the positive class is the
/// unfavourable one (recidivism, "Medium"/"High"), as in ProPublica's analysis.
LoadedTable read_compas(const std::string& path, bool propublica_filter = true);

/// The same readers over text already in memory; `source` names it in messages.
LoadedTable parse_adult(const std::string& text, const std::string& source, bool drop_missing = true);
LoadedTable parse_german(const std::string& text, const std::string& source);
LoadedTable parse_compas(const std::string& text, const std::string& source, bool propublica_filter = true);

/// Dispatch by name ("adult", "german", "compas"); throws InputError for another name.
LoadedTable read_builtin(const std::string& name, const std::string& path, bool propublica_filter = true);

}  // namespace mlaudit::fairness
