// The header-only name lists the audit's section registrations take their allowed values
// from (mlaudit/<module>/names.h; reports links no analysis module) against the lists the
// modules use themselves.
#include <catch2/catch.hpp>

#include "mlaudit/privacy/membership.h"
#include "mlaudit/privacy/names.h"
#include "mlaudit/reports/sections.h"

using namespace mlaudit;

namespace {

const reports::SectionKey& key_of(const std::string& kind, const std::string& key) {
  const reports::SectionKindDef* def = reports::find_section_kind(kind);
  REQUIRE(def);
  for (const auto& k : def->keys)
    if (key == k.name) return k;
  FAIL("no key " << key << " in " << kind);
  return def->keys.front();
}

}  // namespace

TEST_CASE("section vocabulary: the privacy section allows exactly the module's membership attacks", "[reports][sections]") {
  CHECK(privacy::names::membership_attacks() == privacy::membership_attack_names());
  CHECK(key_of("privacy", "attacks").choices == privacy::names::membership_attacks());
  CHECK(key_of("privacy", "fixed_variance").choices == privacy::names::lira_variances());
}
