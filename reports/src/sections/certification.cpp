// Section kind "certification": `mlaudit certify` (randomized smoothing, certified
// accuracy per radius). Result: mlaudit.certify/1. Shown in the report's "Robustness" section.
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// The gate metrics read from the section's result (mlaudit.certify/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  t.push_back({{"certified_accuracy", "certification", {"radius"}, "certify: certified_accuracy[radius].accuracy",
                "randomized-smoothing certified accuracy at an L2 radius"},
               [](const json& s, const std::vector<std::string>& a) {
                 if (!section_ok(s)) return failed_section(s);
                 const json* e = find_by_number(result_of(s), "certified_accuracy", "radius", to_double(a[0]));
                 if (!e) return value_or_missing(std::nullopt, fmt::format("certified_accuracy[radius={}]", a[0]));
                 return proportion_field(*e, "accuracy", "certified_accuracy[].accuracy", sample_count(s));
               },
               [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
                 // without `radii` the command's default radii apply (checked when the result is read)
                 if (!s.params.contains("radii") || listed_number(s.params, "radii", to_double(a[0]))) return "";
                 return fmt::format("certifies radii {}, not {}", list_text(s.params["radii"]), a[0]);
               }});
  t.back().info.interval = true;
}

}  // namespace

MLAUDIT_SECTION_KIND(certification) {
  static const SectionKindDef def{
      .kind = SectionKind::Certification,
      .name = "certification",
      .order = 40,
      .command = "certify",
      .result_schema = "mlaudit.certify",
      .keys = {{.name = "sigma", .type = KeyType::Num, .required = true, .rule = KeyRule::Positive},
               {.name = "n0", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "n", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "alpha", .type = KeyType::Num, .rule = KeyRule::OpenUnit},
               {.name = "batch", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "seed", .type = KeyType::Int},
               {.name = "radii", .type = KeyType::NumList}},
      .validate = [](SectionParse& v) { v.need_npy(); },
      .args =
          [](SectionArgs& a) {
            a.npy_inputs();
            a.pass("sigma", "sigma");
            a.pass("n0", "n0");
            a.pass("n", "n");
            a.pass("alpha", "alpha");
            a.pass("batch", "batch");
            if (a.p.contains("radii")) a.flag("radii", SectionArgs::join_numbers(a.p["radii"]));
            a.seed();
          },
      .metrics = {"certified_accuracy"},
      // one line for the compliance table and the diff (the section ran: status ok)
      .read_metrics = read_metrics,
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            std::string out = "certified accuracy";
            for (const auto& e : arr(r, "certified_accuracy")) out += fmt::format("; r {}: {}", num(at(e, "radius")), num(at(e, "accuracy")));
            return out;
          },
      .compliance_title = "Robustness: certification",
      .references = {"EU AI Act Art. 15(1), 15(4)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.7",
                     "ISO/IEC 24029-2 (statistical certificate; not a formal proof)"},
      .limitation = "Randomized-smoothing certificates hold for the smoothed classifier with probability 1 - alpha, not for "
                    "the base model itself.",
      .example = "model: m\ndata: images\nsigma: 0.25\n",
  };
  return def;
}
