// Protected attributes: categorical, binned and intersected group codes.
#include "mlaudit/fairness/attributes.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <string_view>
#include <unordered_map>

#include "mlaudit/engine/error.h"

namespace mlaudit::fairness {
namespace {

bool parse_number(const std::string& s, double& v) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  return r.ec == std::errc() && r.ptr == e;
}

std::string format_edge(double e) {
  if (std::floor(e) == e && std::fabs(e) < 1e15) return fmt::format("{}", static_cast<int64_t>(e));
  return fmt::format("{}", e);
}

}  // namespace

int32_t Attribute::group_index(const std::string& group) const {
  for (size_t i = 0; i < groups.size(); ++i)
    if (groups[i] == group) return static_cast<int32_t>(i);
  std::string names;
  for (const auto& g : groups) names += (names.empty() ? "" : ", ") + g;
  throw InputError("fairness", fmt::format("attribute '{}' has no group '{}' (groups: {})", name, group, names));
}

Attribute categorical_attribute(const std::string& name, const std::vector<std::string>& values) {
  Attribute a;
  a.name = name;
  a.parts = {name};
  a.codes.resize(values.size());
  // First pass: distinct values in order of appearance (cheap for millions of rows).
  std::unordered_map<std::string, int32_t> first;
  std::vector<std::string> distinct;
  std::vector<int32_t> raw(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    auto [it, inserted] = first.try_emplace(values[i], static_cast<int32_t>(distinct.size()));
    if (inserted) distinct.push_back(values[i]);
    raw[i] = it->second;
  }
  // Sort the groups: numerically when all are numbers, else by name.
  std::vector<double> num(distinct.size());
  bool all_numeric = true;
  for (size_t i = 0; i < distinct.size(); ++i) all_numeric = all_numeric && parse_number(distinct[i], num[i]);
  std::vector<int32_t> order(distinct.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {
    if (all_numeric && num[x] != num[y]) return num[x] < num[y];
    return distinct[x] < distinct[y];
  });
  std::vector<int32_t> rank(distinct.size());
  for (size_t r = 0; r < order.size(); ++r) {
    rank[order[r]] = static_cast<int32_t>(r);
    a.groups.push_back(distinct[order[r]]);
  }
  for (size_t i = 0; i < values.size(); ++i) a.codes[i] = rank[raw[i]];
  return a;
}

void check_numeric_groups(const std::string& name, const std::vector<std::string>& values, size_t max_groups) {
  if (max_groups == 0) return;
  std::unordered_map<std::string_view, int> distinct;
  std::vector<double> numbers;
  numbers.reserve(values.size());
  for (const auto& v : values) {
    double x;
    if (!parse_number(v, x)) return;  // categorical: any number of groups is the user's call
    numbers.push_back(x);
    distinct.emplace(v, 0);
    if (distinct.size() > 100000) break;  // enough to know it is over the limit
  }
  if (distinct.size() <= max_groups) return;
  // Hint with the quartile edges of this very column.
  std::string quartiles;
  for (double e : quantile_edges(name, numbers, 4)) quartiles += (quartiles.empty() ? "" : ",") + format_edge(e);
  throw InputError("fairness",
                   fmt::format("--protected '{}' is numeric with {}{} distinct values (more than --max-numeric-groups {}): "
                               "bin it, e.g. --bins '{}:{}' (its quartiles) or --bins '{}:q4'",
                               name, distinct.size() > 100000 ? "over " : "", distinct.size(), max_groups, name,
                               quartiles, name));
}

std::vector<double> quantile_edges(const std::string& name, std::vector<double> values, int q) {
  if (q < 2) throw InputError("fairness", fmt::format("--bins for '{}': q{} needs at least 2 quantile bins", name, q));
  if (values.empty()) throw InputError("fairness", fmt::format("--bins for '{}': no values", name));
  for (double v : values)
    if (std::isnan(v)) throw InputError("fairness", fmt::format("--bins for '{}': a value is not a number", name));
  std::sort(values.begin(), values.end());
  std::vector<double> edges;
  for (int k = 1; k < q; ++k) {
    // numpy.quantile(method="linear"): position k/q (n-1), interpolated between neighbours.
    double pos = double(k) / q * double(values.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, values.size() - 1);
    double e = values[lo] + (values[hi] - values[lo]) * (pos - double(lo));
    if (e > values.front() && (edges.empty() || e > edges.back())) edges.push_back(e);
  }
  if (edges.empty())
    throw InputError("fairness", fmt::format("--bins for '{}': q{} gives no edge (the values are nearly all equal)", name, q));
  return edges;
}

Attribute binned_attribute(const std::string& name, const std::vector<double>& values,
                           const std::vector<double>& edges) {
  if (edges.empty()) throw InputError("fairness", fmt::format("--bins for '{}': no bin edges given", name));
  for (size_t i = 1; i < edges.size(); ++i)
    if (!(edges[i] > edges[i - 1]))
      throw InputError("fairness", fmt::format("--bins for '{}': edges must increase strictly", name));
  Attribute a;
  a.name = name;
  a.parts = {name};
  a.groups.push_back(fmt::format("{}<{}", name, format_edge(edges[0])));
  for (size_t i = 1; i < edges.size(); ++i)
    a.groups.push_back(fmt::format("{}<={}<{}", format_edge(edges[i - 1]), name, format_edge(edges[i])));
  a.groups.push_back(fmt::format("{}>={}", name, format_edge(edges.back())));
  a.codes.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    if (std::isnan(v)) throw InputError("fairness", fmt::format("attribute '{}': row {} is not a number", name, i));
    // Group k holds edges[k-1] <= v < edges[k].
    a.codes[i] = static_cast<int32_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
  }
  // Drop bins no row falls in, keeping the order (an empty group has no metrics).
  std::vector<int64_t> counts(a.groups.size(), 0);
  for (int32_t c : a.codes) ++counts[c];
  std::vector<int32_t> remap(a.groups.size(), -1);
  std::vector<std::string> kept;
  for (size_t g = 0; g < a.groups.size(); ++g)
    if (counts[g] > 0) {
      remap[g] = static_cast<int32_t>(kept.size());
      kept.push_back(a.groups[g]);
    }
  a.groups = kept;
  for (auto& c : a.codes) c = remap[c];
  return a;
}

Attribute intersect(const std::vector<Attribute>& parts) {
  if (parts.empty()) throw InputError("fairness", "intersection of no attributes");
  if (parts.size() == 1) return parts[0];
  size_t n = parts[0].rows();
  Attribute a;
  for (const auto& p : parts) {
    if (p.rows() != n)
      throw InputError("fairness", fmt::format("attribute '{}' has {} rows, '{}' has {}", p.name, p.rows(),
                                               parts[0].name, n));
    a.name += (a.name.empty() ? "" : "&") + p.name;
    a.parts.push_back(p.name);
  }
  // Mixed-radix key of the combination; groups ordered by that key (parts' orders, first part slowest).
  std::vector<uint64_t> key(n, 0);
  for (const auto& p : parts) {
    uint64_t radix = p.groups.size();
    for (size_t i = 0; i < n; ++i) key[i] = key[i] * radix + static_cast<uint64_t>(p.codes[i]);
  }
  std::map<uint64_t, int32_t> seen;
  for (size_t i = 0; i < n; ++i) seen.emplace(key[i], 0);
  int32_t next = 0;
  for (auto& [k, code] : seen) {
    code = next++;
    uint64_t rest = k;
    std::vector<std::string> names(parts.size());
    for (size_t j = parts.size(); j-- > 0;) {
      uint64_t radix = parts[j].groups.size();
      names[j] = parts[j].groups[rest % radix];
      rest /= radix;
    }
    std::string g;
    for (const auto& s : names) g += (g.empty() ? "" : "&") + s;
    a.groups.push_back(g);
  }
  a.codes.resize(n);
  std::unordered_map<uint64_t, int32_t> lookup(seen.begin(), seen.end());
  for (size_t i = 0; i < n; ++i) a.codes[i] = lookup[key[i]];
  return a;
}

}  // namespace mlaudit::fairness
