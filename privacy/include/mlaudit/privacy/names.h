#pragma once
// The names `mlaudit privacy` takes, header-only so that code which does not link this
// module (the audit's section registration, reports/src/sections/privacy.cpp) reads the
// same lists. membership_attack_names() (membership.h) returns the same attacks in the same
// order; tests/reports/test_section_vocabulary.cpp holds the two together.
#include <string>
#include <vector>

namespace mlaudit::privacy::names {

/// `--attacks`: the membership-inference attacks.
inline const std::vector<std::string>& membership_attacks() {
  static const std::vector<std::string> names = {"loss", "confidence", "entropy", "lira", "label-only"};
  return names;
}

/// `--fixed-variance`: LiRA's variance estimate.
inline const std::vector<std::string>& lira_variances() {
  static const std::vector<std::string> names = {"auto", "global", "per-example"};
  return names;
}

}  // namespace mlaudit::privacy::names
