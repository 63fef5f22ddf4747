// The section-kind registry (sections.h): every reports/src/sections/<name>.cpp
// registers one kind; the build writes the list of those files into
// section_kinds.inc, so adding a file adds the kind.
#include "mlaudit/reports/sections.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#define MLAUDIT_SECTION_KIND_FILE(name) MLAUDIT_SECTION_KIND(name);
#include "section_kinds.inc"
#undef MLAUDIT_SECTION_KIND_FILE

namespace mlaudit::reports {

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Str: return "string";
    case KeyType::Int: return "integer";
    case KeyType::Num: return "number";
    case KeyType::Bool: return "boolean";
    case KeyType::StrList: return "list of strings";
    case KeyType::NumList: return "list of numbers";
    case KeyType::IntList: return "list of integers";
    case KeyType::Path: return "file";
  }
  return "?";
}

const std::vector<SectionKey>& common_section_keys() {
  static const std::vector<SectionKey> keys = {
      {.name = "model", .type = KeyType::Str, .required = true, .audit_only = true},
      {.name = "data", .type = KeyType::Str, .audit_only = true},
      {.name = "id", .type = KeyType::Str, .audit_only = true},
      // use the first N rows of the data set (the CLI's --limit)
      {.name = "limit", .type = KeyType::Int, .rule = KeyRule::Positive, .audit_only = true},
      // old spelling of 'limit', kept as an alias
      {.name = "samples", .type = KeyType::Int, .rule = KeyRule::Positive, .old_spelling = true, .audit_only = true},
      // extra command-line flags passed verbatim
      {.name = "args", .type = KeyType::StrList, .audit_only = true},
      // import a result JSON produced earlier instead of running the command
      {.name = "result", .type = KeyType::Path, .audit_only = true},
      // accept an import whose inputs.model.sha256 is not this model's
      {.name = "allow_foreign_model", .type = KeyType::Bool, .audit_only = true},
  };
  return keys;
}

const std::vector<const SectionKindDef*>& section_kinds() {
  static const std::vector<const SectionKindDef*> kinds = [] {
    std::vector<const SectionKindDef*> all = {
#define MLAUDIT_SECTION_KIND_FILE(name) &mlaudit_section_kind_##name(),
#include "section_kinds.inc"
#undef MLAUDIT_SECTION_KIND_FILE
    };
    std::stable_sort(all.begin(), all.end(), [](const SectionKindDef* a, const SectionKindDef* b) { return a->order < b->order; });
    for (size_t i = 1; i < all.size(); ++i)
      if (all[i]->kind == all[i - 1]->kind || std::string(all[i]->name) == all[i - 1]->name)
        throw std::logic_error(fmt::format("section kinds '{}' and '{}' share a value or a name", all[i - 1]->name, all[i]->name));
    return all;
  }();
  return kinds;
}

const SectionKindDef& section_kind_def(SectionKind kind) {
  for (const auto* d : section_kinds())
    if (d->kind == kind) return *d;
  throw std::out_of_range(fmt::format("section kind {} is not registered", static_cast<int>(kind)));
}

const SectionKindDef* find_section_kind(const std::string& name) {
  for (const auto* d : section_kinds())
    if (name == d->name) return d;
  return nullptr;
}

const char* section_kind_name(SectionKind k) {
  for (const auto* d : section_kinds())
    if (d->kind == k) return d->name;
  return "?";
}

const std::vector<SectionKind>& all_section_kinds() {
  static const std::vector<SectionKind> kinds = [] {
    std::vector<SectionKind> out;
    for (const auto* d : section_kinds()) out.push_back(d->kind);
    return out;
  }();
  return kinds;
}

std::string result_schema_name(SectionKind kind) {
  for (const auto* d : section_kinds())
    if (d->kind == kind) return d->result_schema;
  return "?";
}

}  // namespace mlaudit::reports
