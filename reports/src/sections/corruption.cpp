// Section kind "corruption": `mlaudit corrupt` (common corruptions of images or tabular
// rows, accuracy per severity). Result: mlaudit.corrupt/1. Shown in the report's "Robustness" section.
#include "context.h"

using namespace mlaudit::reports;

MLAUDIT_SECTION_KIND(corruption) {
  static const SectionKindDef def{
      .kind = SectionKind::Corruption,
      .name = "corruption",
      .order = 50,
      .command = "corrupt",
      .result_schema = "mlaudit.corrupt",
      .keys = {{.name = "corruptions", .type = KeyType::StrList},
               {.name = "severities", .type = KeyType::IntList},
               {.name = "seed", .type = KeyType::Int}},
      .validate =
          [](SectionParse& v) {
            v.need_npy();
            if (v.s.params.contains("severities"))
              for (const auto& x : v.s.params["severities"])
                if (!x.is_number_integer() || x.get<int64_t>() < 1 || x.get<int64_t>() > 5)
                  v.fail("severities", "'severities' must lie in 1..5");
          },
      .check =
          [](SectionCheck& c) {
            // the corruptions `mlaudit corrupt` has for the data's layout
            // (robustness::image_corruptions(), robustness::tabular_corruptions())
            if (!c.shape || !c.s.params.contains("corruptions")) return;
            const int64_t rank = c.rank();
            if (rank != 2 && rank != 4)
              c.fail(c.s.mark_of("data"), fmt::format("data set '{}' is {}; mlaudit corrupt takes images [N,C,H,W] or tabular rows [N,F]",
                                                      c.s.data, mlaudit::engine::shape_str(*c.shape)));
            const auto& known = rank == 4 ? c.vocab.image_corruptions : c.vocab.tabular_corruptions;
            const auto& other = rank == 4 ? c.vocab.tabular_corruptions : c.vocab.image_corruptions;
            if (known.empty()) return;
            for (size_t i = 0; i < c.s.params["corruptions"].size(); ++i) {
              const std::string name = c.s.params["corruptions"][i].get<std::string>();
              if (c.contains(known, name)) continue;
              const std::string layout = rank == 4 ? "images" : "tabular rows";
              if (c.contains(other, name))
                c.fail(c.s.mark_of(fmt::format("corruptions[{}]", i)),
                       fmt::format("'corruptions' cannot contain '{}': it applies to {}, and data set '{}' holds {} {}{}", name,
                                   rank == 4 ? "tabular rows" : "images", c.s.data, layout, mlaudit::engine::shape_str(*c.shape),
                                   c.suggest(name, known)));
              c.fail(c.s.mark_of(fmt::format("corruptions[{}]", i)),
                     fmt::format("'corruptions' cannot contain '{}': mlaudit corrupt has no such corruption for {}{}", name, layout,
                                 c.suggest(name, known)));
            }
          },
      .args =
          [](SectionArgs& a) {
            a.npy_inputs();
            if (a.p.contains("corruptions")) a.flag("corruptions", SectionArgs::join_strings(a.p["corruptions"]));
            if (a.p.contains("severities")) a.flag("severities", SectionArgs::join_numbers(a.p["severities"]));
            a.seed();
          },
      .metrics = {"mean_corruption_accuracy", "corruption_accuracy"},
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            return fmt::format("mean corruption accuracy {} (clean {})", num(at(r, "mean_corruption_accuracy")), num(at(r, "clean_accuracy")));
          },
      .compliance_title = "Robustness: corruptions",
      .references = {"EU AI Act Art. 15(4) (errors, faults, inconsistencies)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.5"},
      .example = "model: m\ndata: images\n",
  };
  return def;
}
