#pragma once
// CSV with a header row: columns by name, numeric or categorical.
#include <string>
#include <vector>

#include "mlaudit/common/tensor.h"

namespace mlaudit::datasets {

/// Character encoding of a text file: UTF-8 (the default, required unless told otherwise)
/// or Latin-1 (ISO 8859-1, transcoded to UTF-8 on reading).
enum class TextEncoding { Utf8, Latin1 };
/// "utf-8"/"utf8" or "latin1"/"latin-1"/"iso-8859-1" (any case); throws InputError naming `option`.
TextEncoding parse_encoding(const std::string& option, const std::string& name);

struct CsvOptions {
  char delimiter = ',';
  bool trim_spaces = true;     ///< strip spaces around fields
  bool has_header = true;      ///< false: columns are named c0, c1, ...
  TextEncoding encoding = TextEncoding::Utf8;  ///< Utf8: a byte that is not UTF-8 is an InputError naming row and column
};

/// A CSV table held column-wise as strings (RFC 4180 quoting supported).
class CsvTable {
 public:
  std::string source;                          ///< file name for messages
  std::vector<std::string> columns;            ///< header names
  std::vector<std::vector<std::string>> cells; ///< cells[column][row]

  size_t rows() const { return cells.empty() ? 0 : cells[0].size(); }
  /// Index of a column; throws InputError listing the available columns.
  size_t index(const std::string& name) const;
  bool has(const std::string& name) const;
  /// Column as strings.
  const std::vector<std::string>& strings(const std::string& name) const;
  /// Column parsed as numbers; throws InputError naming file, row and column for a non-number.
  std::vector<double> numbers(const std::string& name) const;
  /// Categorical column as integer codes into `levels` (its distinct values, sorted).
  std::vector<int64_t> codes(const std::string& name, std::vector<std::string>& levels) const;
  /// Selected numeric columns as a float32 [rows, k] tensor.
  engine::Tensor matrix(const std::vector<std::string>& names) const;
};

/// Read a CSV file; throws InputError on ragged rows (file, line), bad quoting or text that is
/// not UTF-8 (file, line, column name and the iconv command that converts it).
CsvTable read_csv(const std::string& path, const CsvOptions& opts = {});
/// Parse CSV text already in memory.
CsvTable parse_csv(const std::string& text, const std::string& source, const CsvOptions& opts = {});

}  // namespace mlaudit::datasets
