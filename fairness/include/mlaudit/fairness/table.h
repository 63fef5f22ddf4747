#pragma once
// The table of a fairness evaluation: a CSV with a header, a 2-D .npy with named columns or
// a built-in data set (datasets.h), cut to its first rows. Cells stay strings; the helpers
// below read them as numbers and compare favourable values.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/fairness/datasets.h"

namespace mlaudit::fairness {

/// How messages (and the origins a report records) name a parameter of these APIs. Parameters
/// are named after their options fields with the flag's words: "threshold", "label_column",
/// "favorable_label", "protected". The default, parameter_name, writes the name as is;
/// `mlaudit fairness` passes one that writes its flag ("--threshold", "--label-column").
using ParameterSpelling = std::function<std::string(const std::string& parameter)>;
std::string parameter_name(const std::string& parameter);

/// Where the table comes from and which of its rows are used.
struct TableOptions {
  std::string data;     ///< path of the table
  std::optional<std::string> dataset;  ///< built-in reader of `data`: adult | german | compas (none: .npy by extension, else CSV)
  std::optional<std::vector<std::string>> columns;  ///< column names of a .npy table (required there)
  bool keep_missing = false;      ///< adult: keep rows with '?' (default: drop them, as AIF360 does)
  bool propublica_filter = true;  ///< compas: ProPublica's analysis filter
  /// Text encoding of a CSV table: a name datasets::parse_encoding reads (utf-8, latin1, ...),
  /// checked only when the table is a CSV.
  std::string encoding = "utf-8";
  int64_t limit = 0;              ///< use only the first N rows (after a preset's filter; 0: all); < 0 throws
  ParameterSpelling spell = parameter_name;
};

/// Read the table `o` names and keep its first `limit` rows. LoadedTable::format says which
/// reader read it: the data set's name, "npy" or "csv". Throws InputError.
LoadedTable load_table(const TableOptions& o);

/// A 2-D .npy array [rows, columns] as a string table with the given column names (NaN: an
/// empty cell, which counts as missing). Throws InputError for another rank or column count.
LoadedTable read_npy_table(const std::string& path, const std::vector<std::string>& columns,
                           const ParameterSpelling& spell = parameter_name);

/// A cell as a number: the whole string (an optional leading '+' allowed), as std::from_chars reads it.
bool parse_number(const std::string& s, double& v);
/// Values equal as numbers when both are numbers ("1" == "1.0"), else as strings.
bool same_value(const std::string& a, const std::string& b);
/// A missing cell: empty, "?", "NA", "NaN" or "nan".
bool is_missing(const std::string& s);
/// Cell `s` of column `col` at 0-based data row `row` as a finite number; throws InputError
/// naming the table, row (1-based) and column otherwise.
double number_at(const datasets::CsvTable& t, const std::string& col, const std::string& s, size_t row);

}  // namespace mlaudit::fairness
