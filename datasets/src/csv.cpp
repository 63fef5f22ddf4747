// CSV reader: RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180) fields, quoted
// fields with doubled quotes, CRLF or LF line ends, parsed by one scan of the buffer.
#include "mlaudit/datasets/csv.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"
#include "mlaudit/common/utf8.h"

namespace mlaudit::datasets {

namespace {

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw InputError("datasets", fmt::format("{}: {}", source, message));
}

// Hostile-size guards: a record or field this large is not a table (a binary file, a missing
// newline convention); refused before the column vectors are sized by it. 1M columns of empty
// strings already take ~56 MB of vectors; 16 MiB is far beyond any categorical or numeric cell.
constexpr size_t kMaxColumns = 1'000'000;
constexpr size_t kMaxFieldBytes = size_t(16) << 20;

/// Single-pass record scanner over the whole text.
class Scanner {
 public:
  Scanner(const std::string& text, const std::string& source, const CsvOptions& opts)
      : p_(text.data()), end_(text.data() + text.size()), source_(source), opts_(opts) {
    if (text.size() >= 3 && std::memcmp(p_, "\xEF\xBB\xBF", 3) == 0) p_ += 3;  // UTF-8 byte-order mark
  }

  /// Physical line (1-based) where the last record returned by next() started.
  size_t record_line() const { return record_line_; }

  /// Parse the next non-empty record into fields[0..count); false at end of text.
  bool next(std::vector<std::string>& fields, size_t& count) {
    // Skip empty lines (including the trailing newline of the file).
    while (p_ < end_ && (*p_ == '\n' || *p_ == '\r')) consume_line_end();
    if (p_ >= end_) return false;
    record_line_ = line_;
    count = 0;
    for (;;) {
      if (count == kMaxColumns)
        fail(source_, fmt::format("line {}: more than {} fields in one record (is this a CSV file? delimiter '{}')",
                                  record_line_, kMaxColumns, engine::printable(std::string_view(&opts_.delimiter, 1))));
      if (count == fields.size()) fields.emplace_back();
      std::string& field = fields[count++];
      parse_field(field);
      if (p_ < end_ && *p_ == opts_.delimiter) {
        ++p_;
        continue;
      }
      if (p_ < end_) consume_line_end();
      return true;
    }
  }

 private:
  bool is_blank(char c) const { return (c == ' ' || c == '\t') && c != opts_.delimiter; }

  void consume_line_end() {
    if (*p_ == '\r' && p_ + 1 < end_ && p_[1] == '\n') ++p_;
    ++p_;
    ++line_;
  }

  void parse_field(std::string& field) {
    if (opts_.trim_spaces)
      while (p_ < end_ && is_blank(*p_)) ++p_;
    if (p_ < end_ && *p_ == '"') {
      parse_quoted(field);
      return;
    }
    const char* start = p_;
    const char delim = opts_.delimiter;
    while (p_ < end_ && *p_ != delim && *p_ != '\n' && *p_ != '\r') ++p_;
    const char* stop = p_;
    if (opts_.trim_spaces)
      while (stop > start && is_blank(stop[-1])) --stop;
    if (size_t(stop - start) > kMaxFieldBytes) too_long(size_t(stop - start));
    field.assign(start, stop);
  }

  // RFC 4180 section 2, rules 5-7: a quoted field may hold delimiters, line breaks and "" for a quote.
  void parse_quoted(std::string& field) {
    const size_t start_line = line_;
    ++p_;
    field.clear();
    for (;;) {
      const char* quote = static_cast<const char*>(std::memchr(p_, '"', size_t(end_ - p_)));
      if (!quote) fail(source_, fmt::format("line {}: unterminated quoted field (no closing '\"')", start_line));
      for (const char* c = p_; c < quote; ++c)
        if (*c == '\n' || (*c == '\r' && (c + 1 == quote || c[1] != '\n'))) ++line_;
      if (field.size() + size_t(quote - p_) > kMaxFieldBytes) too_long(field.size() + size_t(quote - p_));
      field.append(p_, quote);
      p_ = quote + 1;
      if (p_ < end_ && *p_ == '"') {
        field += '"';
        ++p_;
        continue;
      }
      break;
    }
    while (p_ < end_ && is_blank(*p_)) ++p_;
    if (p_ < end_ && *p_ != opts_.delimiter && *p_ != '\n' && *p_ != '\r')
      fail(source_, fmt::format("line {}: unexpected '{}' after a closing quote (a quote inside a quoted field is written \"\")",
                                line_, *p_));
  }

  [[noreturn]] void too_long(size_t bytes) const {
    fail(source_, fmt::format("line {}: a field of {} bytes, above the {} MiB limit (is this a CSV file?)", line_, bytes,
                              kMaxFieldBytes >> 20));
  }

  const char* p_;
  const char* end_;
  const std::string& source_;
  const CsvOptions& opts_;
  size_t line_ = 1;
  size_t record_line_ = 1;
};

}  // namespace

TextEncoding parse_encoding(const std::string& option, const std::string& name) {
  std::string lower;
  for (char c : name) lower += char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "utf-8" || lower == "utf8") return TextEncoding::Utf8;
  if (lower == "latin1" || lower == "latin-1" || lower == "iso-8859-1" || lower == "iso8859-1") return TextEncoding::Latin1;
  throw InputError("datasets", fmt::format("{}: '{}' is not an encoding mlaudit reads (expected one of: utf-8, latin1)",
                                           option, engine::printable(name)));
}

CsvTable parse_csv(const std::string& raw_text, const std::string& source, const CsvOptions& opts) {
  if (opts.encoding == TextEncoding::Latin1) {
    CsvOptions utf8 = opts;
    utf8.encoding = TextEncoding::Utf8;
    return parse_csv(engine::latin1_to_utf8(raw_text), source, utf8);
  }
  const std::string& text = raw_text;
  // Checked once over the whole text; fields are checked one by one only to name the bad one.
  const bool all_utf8 = engine::is_utf8(text);
  if (opts.delimiter == '"' || opts.delimiter == '\n' || opts.delimiter == '\r')
    throw InputError("datasets", fmt::format("{}: invalid CSV delimiter", source));
  CsvTable table;
  table.source = source;
  Scanner scanner(text, source, opts);
  std::vector<std::string> fields;
  size_t count = 0;

  bool have_record = scanner.next(fields, count);
  if (!have_record) fail(source, opts.has_header ? "empty CSV file (no header row)" : "empty CSV file");
  const size_t ncols = count;
  auto check_fields = [&](bool header) {
    if (all_utf8) return;
    for (size_t c = 0; c < count; ++c) {
      const size_t bad = engine::find_invalid_utf8(fields[c]);
      if (bad == std::string_view::npos) continue;
      const std::string column = header || c >= table.columns.size() ? fmt::format("{}", c + 1)
                                                                      : "'" + engine::printable(table.columns[c]) + "'";
      fail(source, fmt::format("line {}{}, column {}: '{}': {}", scanner.record_line(),
                               header ? " (header)" : "", column, engine::printable(fields[c]),
                               engine::not_utf8_message(fields[c], bad, source)));
    }
  };
  check_fields(opts.has_header);
  if (opts.has_header) {
    table.columns.assign(fields.begin(), fields.begin() + long(count));
    // Repeated names (ProPublica's COMPAS file has two 'decile_score' columns) are
    // renamed as pandas does (io/parsers, _dedup_names): a later 'x' becomes 'x.1',
    // 'x.2', ..., skipping names already taken.
    std::unordered_map<std::string, size_t> counts;
    for (std::string& name : table.columns) {
      size_t current = counts[name];
      while (current > 0) {
        counts[name] = current + 1;
        name = fmt::format("{}.{}", name, current);
        current = counts[name];
      }
      counts[name] = current + 1;
    }
  } else {
    for (size_t c = 0; c < ncols; ++c) table.columns.push_back(fmt::format("c{}", c));
  }

  // One newline per row is a good upper bound for the reservation.
  const size_t estimated_rows = size_t(std::count(text.begin(), text.end(), '\n')) + 1;
  table.cells.resize(ncols);
  for (auto& column : table.cells) column.reserve(estimated_rows);

  auto append_row = [&] {
    if (count != ncols)
      fail(source, fmt::format("line {}: {} fields, expected {}{}", scanner.record_line(), count, ncols,
                               opts.has_header ? " (as in the header)" : " (as in the first row)"));
    check_fields(false);
    for (size_t c = 0; c < ncols; ++c) table.cells[c].push_back(std::move(fields[c]));
  };
  if (!opts.has_header) append_row();
  while (scanner.next(fields, count)) append_row();
  return table;
}

CsvTable read_csv(const std::string& path, const CsvOptions& opts) { return parse_csv(read_file(path), path, opts); }

size_t CsvTable::index(const std::string& name) const {
  for (size_t c = 0; c < columns.size(); ++c)
    if (columns[c] == name) return c;
  std::string available;
  const size_t shown = std::min<size_t>(columns.size(), 40);
  for (size_t c = 0; c < shown; ++c) available += fmt::format("{}'{}'", c ? ", " : "", columns[c]);
  if (columns.size() > shown) available += fmt::format(", ... ({} more)", columns.size() - shown);
  fail(source, fmt::format("no column '{}'; available columns: {}", name, available));
}

bool CsvTable::has(const std::string& name) const {
  return std::find(columns.begin(), columns.end(), name) != columns.end();
}

const std::vector<std::string>& CsvTable::strings(const std::string& name) const { return cells[index(name)]; }

std::vector<double> CsvTable::numbers(const std::string& name) const {
  const auto& column = cells[index(name)];
  std::vector<double> out(column.size());
  for (size_t r = 0; r < column.size(); ++r) {
    const std::string& text = column[r];
    const char* first = text.data();
    const char* last = text.data() + text.size();
    while (first < last && (*first == ' ' || *first == '\t')) ++first;
    while (last > first && (last[-1] == ' ' || last[-1] == '\t')) --last;
    if (first == last) fail(source, fmt::format("row {}, column '{}': empty field where a number is expected", r + 1, name));
    if (*first == '+' && last - first > 1 && first[1] != '-') ++first;
    double value = 0;
    auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec == std::errc::result_out_of_range) {
      // from_chars reports under/overflow without a value; strtod gives the IEEE result (0 or +-inf).
      value = std::strtod(std::string(first, last).c_str(), nullptr);
    } else if (ec != std::errc() || ptr != last) {
      fail(source, fmt::format("row {}, column '{}': '{}' is not a number", r + 1, name, text));
    }
    out[r] = value;
  }
  return out;
}

std::vector<int64_t> CsvTable::codes(const std::string& name, std::vector<std::string>& levels) const {
  const auto& column = cells[index(name)];
  std::unordered_map<std::string, int64_t> code_of;
  for (const std::string& value : column) code_of.emplace(value, 0);
  levels.clear();
  levels.reserve(code_of.size());
  for (const auto& entry : code_of) levels.push_back(entry.first);
  std::sort(levels.begin(), levels.end());
  for (size_t i = 0; i < levels.size(); ++i) code_of[levels[i]] = int64_t(i);
  std::vector<int64_t> out(column.size());
  for (size_t r = 0; r < column.size(); ++r) out[r] = code_of.at(column[r]);
  return out;
}

engine::Tensor CsvTable::matrix(const std::vector<std::string>& names) const {
  for (const std::string& name : names) (void)index(name);  // report a missing column before any parse error
  const int64_t n = int64_t(rows()), k = int64_t(names.size());
  engine::Tensor out(engine::DType::Float32, {n, k});
  float* d = out.f32();
  for (int64_t j = 0; j < k; ++j) {
    const std::vector<double> column = numbers(names[size_t(j)]);
    for (int64_t i = 0; i < n; ++i) d[i * k + j] = static_cast<float>(column[size_t(i)]);
  }
  return out;
}

}  // namespace mlaudit::datasets
