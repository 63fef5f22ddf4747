// Reading the table of a fairness evaluation (table.h).
#include "mlaudit/fairness/table.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::fairness {

std::string parameter_name(const std::string& parameter) { return parameter; }

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e;
}

bool same_value(const std::string& a, const std::string& b) {
  double x, y;
  if (parse_number(a, x) && parse_number(b, y)) return x == y;
  return a == b;
}

bool is_missing(const std::string& s) { return s.empty() || s == "?" || s == "NA" || s == "NaN" || s == "nan"; }

double number_at(const datasets::CsvTable& t, const std::string& col, const std::string& s, size_t row) {
  double v;
  if (!parse_number(s, v) || !std::isfinite(v))
    throw InputError("fairness", fmt::format("{}: row {}: column '{}' value '{}' is not a number", t.source, row + 1, col, s));
  return v;
}

LoadedTable read_npy_table(const std::string& path, const std::vector<std::string>& columns, const ParameterSpelling& spell) {
  engine::Tensor t = datasets::read_npy(path);
  if (t.rank() != 2)
    throw InputError("fairness",
                     fmt::format("{}: expected a 2-D array [rows, columns], got {}", path, engine::shape_str(t.shape())));
  if (int64_t(columns.size()) != t.dim(1))
    throw InputError("fairness", fmt::format("{}: {} columns but {} names {}", path, t.dim(1), spell("columns"), columns.size()));
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

LoadedTable load_table(const TableOptions& o) {
  const std::string& path = o.data;
  LoadedTable lt;
  std::string format;
  if (o.dataset) {
    if (*o.dataset == "adult") lt = read_adult(path, !o.keep_missing);
    else lt = read_builtin(*o.dataset, path, o.propublica_filter);
    format = *o.dataset;
  } else if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") {
    if (!o.columns)
      throw InputError("fairness", fmt::format("a .npy table needs {} naming its columns", o.spell("columns")));
    lt = read_npy_table(path, *o.columns, o.spell);
    format = "npy";
  } else {
    datasets::CsvOptions csv_options;
    csv_options.encoding = datasets::parse_encoding(o.spell("encoding"), o.encoding);
    lt.table = datasets::read_csv(path, csv_options);
    lt.rows_read = int64_t(lt.table.rows());
    format = "csv";
  }
  lt.format = format;
  if (o.limit < 0) throw InputError("fairness", fmt::format("{} must be >= 0", o.spell("limit")));
  if (o.limit > 0 && size_t(o.limit) < lt.table.rows())
    for (auto& column : lt.table.cells) column.resize(size_t(o.limit));  // the first N rows (after a preset's filter)
  return lt;
}

}  // namespace mlaudit::fairness
