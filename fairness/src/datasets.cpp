// Readers for UCI Adult, Statlog German credit and ProPublica COMPAS.
#include "mlaudit/fairness/datasets.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <map>
#include <string_view>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::fairness {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Split text into lines without copying (handles \n and \r\n).
std::vector<std::string_view> lines_of(const std::string& text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    start = end + 1;
  }
  return out;
}

void add_drop(LoadedTable& t, const std::string& reason, int64_t n = 1) {
  for (auto& [r, c] : t.dropped)
    if (r == reason) {
      c += n;
      return;
    }
  t.dropped.emplace_back(reason, n);
}

void init_columns(LoadedTable& t, const std::vector<std::string>& names, const std::string& source) {
  t.table.source = source;
  t.table.columns = names;
  t.table.cells.assign(names.size(), {});
}

bool to_double(std::string_view s, double& v) {
  s = trim(s);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

constexpr size_t kMaxRecordFields = 10'000;

// RFC 4180 fields of one CSV record starting at `pos`; advances pos past the record.
bool next_record(const std::string& text, size_t& pos, std::vector<std::string>& fields, const std::string& source,
                 int64_t line) {
  fields.clear();
  if (pos >= text.size()) return false;
  std::string field;
  bool quoted = false;
  while (pos < text.size()) {
    char c = text[pos];
    if (quoted) {
      if (c == '"') {
        if (pos + 1 < text.size() && text[pos + 1] == '"') {
          field += '"';
          pos += 2;
          continue;
        }
        quoted = false;
        ++pos;
        continue;
      }
      field += c;
      ++pos;
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = true;
      ++pos;
    } else if (c == ',') {
      // A hostile record (one line of commas) must not size the field list: the ProPublica file has 53 columns.
      if (fields.size() >= kMaxRecordFields)
        throw InputError("fairness", fmt::format("{}: line {}: more than {} fields in one record", source, line, kMaxRecordFields));
      fields.push_back(std::move(field));
      field.clear();
      ++pos;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n') ++pos;
      ++pos;
      break;
    } else {
      field += c;
      ++pos;
    }
  }
  if (quoted) throw InputError("fairness", fmt::format("{}: line {}: unterminated quoted field", source, line));
  fields.push_back(std::move(field));
  return true;
}

}  // namespace

LoadedTable parse_adult(const std::string& text, const std::string& path, bool drop_missing) {
  static const std::vector<std::string> names = {
      "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
      "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income"};
  datasets::require_utf8(text, path, "fairness");
  LoadedTable t;
  init_columns(t, names, path);
  t.label = "income";
  t.favorable = "1";
  t.protected_attributes = {"sex", "race"};
  auto lines = lines_of(text);
  std::vector<std::string_view> f;
  int64_t data_row = -1;
  for (size_t ln = 0; ln < lines.size(); ++ln) {
    std::string_view line = trim(lines[ln]);
    if (line.empty()) continue;
    if (line.front() == '|') continue;  // adult.test's "|1x3 Cross validator" line
    ++data_row;
    ++t.rows_read;
    f.clear();
    size_t start = 0;
    while (true) {
      size_t comma = line.find(',', start);
      f.push_back(trim(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
      if (comma == std::string_view::npos || f.size() > names.size()) break;  // too many: reported below
      start = comma + 1;
    }
    if (f.size() != names.size())
      throw InputError("fairness", fmt::format("{}: line {}: {} fields, expected {} (UCI Adult format)", path, ln + 1,
                                               f.size(), names.size()));
    std::string_view label = f.back();
    if (!label.empty() && label.back() == '.') label.remove_suffix(1);  // adult.test writes ">50K."
    std::string y;
    if (label == ">50K") y = "1";
    else if (label == "<=50K") y = "0";
    else throw InputError("fairness", fmt::format("{}: line {}: income '{}' is neither >50K nor <=50K", path, ln + 1, label));
    bool missing = false;
    for (auto v : f) missing = missing || v == "?";
    if (missing && drop_missing) {
      add_drop(t, "missing value ('?') in workclass, occupation or native-country");
      continue;
    }
    for (size_t c = 0; c + 1 < names.size(); ++c) t.table.cells[c].emplace_back(f[c]);
    t.table.cells.back().push_back(y);
    t.source_rows.push_back(data_row);
  }
  if (t.table.rows() == 0) throw InputError("fairness", fmt::format("{}: no data rows", path));
  return t;
}

LoadedTable parse_german(const std::string& text, const std::string& path) {
  // AIF360 GermanDataset column names, in file order.
  static const std::vector<std::string> names = {
      "status", "month", "credit_history", "purpose", "credit_amount", "savings", "employment",
      "investment_as_income_percentage", "personal_status", "other_debtors", "residence_since", "property", "age",
      "installment_plans", "housing", "number_of_credits", "skill_level", "people_liable_for", "telephone",
      "foreign_worker", "credit"};
  datasets::require_utf8(text, path, "fairness");
  LoadedTable t;
  std::vector<std::string> cols = names;
  cols.push_back("sex");
  init_columns(t, cols, path);
  t.label = "credit";
  t.favorable = "1";
  t.protected_attributes = {"sex", "age"};
  t.default_bins["age"] = {25};
  auto lines = lines_of(text);
  int64_t data_row = -1;
  std::vector<std::string_view> f;
  for (size_t ln = 0; ln < lines.size(); ++ln) {
    std::string_view line = trim(lines[ln]);
    if (line.empty()) continue;
    ++data_row;
    ++t.rows_read;
    f.clear();
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      size_t j = i;
      while (j < line.size() && line[j] != ' ') ++j;
      if (j > i) f.push_back(line.substr(i, j - i));
      if (f.size() > names.size()) break;  // too many: reported below
      i = j;
    }
    if (f.size() != names.size())
      throw InputError("fairness", fmt::format("{}: line {}: {} fields, expected {} (Statlog German credit format)", path,
                                               ln + 1, f.size(), names.size()));
    std::string_view ps = f[8];
    std::string sex;
    if (ps == "A91" || ps == "A93" || ps == "A94") sex = "male";
    else if (ps == "A92" || ps == "A95") sex = "female";
    else throw InputError("fairness", fmt::format("{}: line {}: personal_status '{}' is not A91..A95", path, ln + 1, ps));
    std::string y;
    if (f[20] == "1") y = "1";
    else if (f[20] == "2") y = "0";
    else throw InputError("fairness", fmt::format("{}: line {}: credit '{}' is neither 1 (good) nor 2 (bad)", path, ln + 1, f[20]));
    for (size_t c = 0; c < 20; ++c) t.table.cells[c].emplace_back(f[c]);
    t.table.cells[20].push_back(y);
    t.table.cells[21].push_back(sex);
    t.source_rows.push_back(data_row);
  }
  if (t.table.rows() == 0) throw InputError("fairness", fmt::format("{}: no data rows", path));
  return t;
}

LoadedTable parse_compas(const std::string& text, const std::string& path, bool propublica_filter) {
  datasets::require_utf8(text, path, "fairness");
  LoadedTable t;
  t.label = "two_year_recid";
  t.favorable = "0";
  t.protected_attributes = {"race", "sex"};
  // ProPublica's reading: decile scores are risks (1 low .. 10 high), score_text "Low" is the
  // favourable decision, and recidivism / "higher risk" (Medium, High) are the positive class.
  t.score_directions = {{"decile_score", ScoreDirection::HigherIsUnfavorable},
                        {"decile_score.1", ScoreDirection::HigherIsUnfavorable},
                        {"v_decile_score", ScoreDirection::HigherIsUnfavorable}};
  t.favorable_predictions = {{"score_text", "Low"}, {"v_score_text", "Low"}};
  t.positive = PositiveClass::Unfavorable;
  size_t pos = 0;
  std::vector<std::string> header, fields;
  if (!next_record(text, pos, header, path, 1)) throw InputError("fairness", fmt::format("{}: empty file", path));
  std::map<std::string, int> seen;
  for (auto& h : header) {
    int k = seen[h]++;
    if (k > 0) h += fmt::format(".{}", k);  // pandas' naming of repeated columns
  }
  init_columns(t, header, path);
  auto col = [&](const std::string& name) -> int {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    throw InputError("fairness", fmt::format("{}: no column '{}' (not a ProPublica two-years file?)", path, name));
  };
  const int c_days = col("days_b_screening_arrest"), c_recid = col("is_recid"), c_degree = col("c_charge_degree"),
            c_text = col("score_text");
  col("two_year_recid");
  int64_t line = 1, data_row = -1;
  while (next_record(text, pos, fields, path, ++line)) {
    if (fields.size() == 1 && trim(fields[0]).empty()) continue;
    ++data_row;
    ++t.rows_read;
    if (fields.size() != header.size())
      throw InputError("fairness", fmt::format("{}: line {}: {} fields, header has {}", path, line, fields.size(), header.size()));
    if (propublica_filter) {
      double days = 0, recid = 0;
      bool has_days = to_double(fields[c_days], days);
      if (!has_days || days > 30 || days < -30) {
        add_drop(t, "days_b_screening_arrest missing or outside [-30, 30] (ProPublica filter)");
        continue;
      }
      if (to_double(fields[c_recid], recid) && recid == -1) {
        add_drop(t, "is_recid == -1 (ProPublica filter)");
        continue;
      }
      if (trim(fields[c_degree]) == "O") {
        add_drop(t, "c_charge_degree == 'O' (ProPublica filter)");
        continue;
      }
      if (trim(fields[c_text]) == "N/A") {
        add_drop(t, "score_text == 'N/A' (ProPublica filter)");
        continue;
      }
    }
    for (size_t c = 0; c < fields.size(); ++c) t.table.cells[c].push_back(std::move(fields[c]));
    t.source_rows.push_back(data_row);
  }
  if (t.table.rows() == 0) throw InputError("fairness", fmt::format("{}: no data rows kept", path));
  return t;
}

LoadedTable read_adult(const std::string& path, bool drop_missing) {
  return parse_adult(datasets::read_file(path), path, drop_missing);
}
LoadedTable read_german(const std::string& path) { return parse_german(datasets::read_file(path), path); }
LoadedTable read_compas(const std::string& path, bool propublica_filter) {
  return parse_compas(datasets::read_file(path), path, propublica_filter);
}

LoadedTable read_builtin(const std::string& name, const std::string& path, bool propublica_filter) {
  if (name == "adult") return read_adult(path);
  if (name == "german") return read_german(path);
  if (name == "compas") return read_compas(path, propublica_filter);
  throw InputError("fairness", fmt::format("--dataset '{}' is not one of adult, german, compas", name));
}

}  // namespace mlaudit::fairness
