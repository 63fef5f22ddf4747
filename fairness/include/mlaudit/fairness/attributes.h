#pragma once
// Protected attributes: one group code per row, categorical, binned or intersected.
#include <cstdint>
#include <string>
#include <vector>

namespace mlaudit::fairness {

/// A protected attribute: a group code per row and the names of the groups.
struct Attribute {
  std::string name;                 ///< "sex", or "sex&race" for an intersection
  std::vector<std::string> groups;  ///< group names; index = code
  std::vector<int32_t> codes;       ///< group code of every row
  std::vector<std::string> parts;   ///< the single attributes it is made of ({name} for a single one)

  size_t rows() const { return codes.size(); }
  /// Index of a group by name; throws InputError listing the groups.
  int32_t group_index(const std::string& group) const;
};

/// Categorical attribute from raw values. Groups are ordered numerically when
/// every value is a number, else lexicographically (Fairlearn sorts the same way).
Attribute categorical_attribute(const std::string& name, const std::vector<std::string>& values);

/// Refuse (InputError with a hint to bin) a column whose values are all numbers and that has
/// more than max_groups distinct values: one group per value of age or income gives tiny groups,
/// undefined metrics and bootstrap intervals that do not mean much. max_groups 0 = no limit.
void check_numeric_groups(const std::string& name, const std::vector<std::string>& values, size_t max_groups);

/// Edges of q quantile bins: the k/q quantiles (k = 1..q-1, numpy's linear interpolation) of
/// the values, repeated edges and edges at or below the minimum dropped (they would give
/// empty bins), so ties can give fewer than q groups. Throws InputError for q < 2 or NaN values.
std::vector<double> quantile_edges(const std::string& name, std::vector<double> values, int q);

/// Numeric attribute cut at increasing edges e1 < e2 < ...: groups "name<e1",
/// "e1<=name<e2", ..., "name>=ek". Throws InputError for NaN values or unsorted edges.
Attribute binned_attribute(const std::string& name, const std::vector<double>& values,
                           const std::vector<double>& edges);

/// Intersection of several attributes over the same rows: one group per observed
/// combination, named "g1&g2&..." and ordered by the parts' orders; name "a1&a2&...".
Attribute intersect(const std::vector<Attribute>& parts);

}  // namespace mlaudit::fairness
