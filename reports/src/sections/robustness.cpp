// Section kind "robustness": `mlaudit attack` (one section per attack of `attacks`),
// robust accuracy per eps. Result: mlaudit.attack/1.
#include "context.h"

using namespace mlaudit::reports;

MLAUDIT_SECTION_KIND(robustness) {
  static const SectionKindDef def{
      .kind = SectionKind::Robustness,
      .name = "robustness",
      .order = 30,
      .command = "attack",
      .result_schema = "mlaudit.attack",
      .keys = {{.name = "attack", .type = KeyType::Str},
               {.name = "attacks", .type = KeyType::StrList, .audit_only = true},  // one section per attack
               {.name = "norm", .type = KeyType::Str, .choices = {"linf", "l2"}},
               {.name = "eps", .type = KeyType::NumList, .required = true, .rule = KeyRule::NonNegative},
               {.name = "steps", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "restarts", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "queries", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "seed", .type = KeyType::Int}},
      .variant_key = "attack",
      .validate =
          [](SectionParse& v) {
            v.need_npy();
            v.split_variants("attack");
            if (!v.s.params.contains("norm")) v.s.params["norm"] = "linf";
          },
      .check =
          [](SectionCheck& c) {
            // the attack and norm names `mlaudit attack` knows (robustness::attack_names(), parse_norm)
            const std::string attack = c.s.params.value("attack", std::string());
            const std::string key = c.written_key("attack");
            if (!c.vocab.attacks.empty() && !c.contains(c.vocab.attacks, attack))
              c.fail(c.s.mark_of("attack"), fmt::format("'{}' cannot contain '{}': mlaudit attack has no such attack{}", key, attack,
                                                        c.suggest(attack, c.vocab.attacks)));
            const std::string norm = c.s.params.value("norm", "linf");
            if (!c.vocab.attack_norms.empty() && !c.contains(c.vocab.attack_norms, norm))
              c.fail(c.s.mark_of("norm"), fmt::format("'norm' cannot be '{}' for an attack{}", norm, c.suggest(norm, c.vocab.attack_norms)));
          },
      .args =
          [](SectionArgs& a) {
            a.npy_inputs();
            a.pass("attack", "attack");
            a.pass("norm", "norm");
            a.flag("eps", SectionArgs::join_numbers(a.p["eps"]));
            a.pass("steps", "steps");
            a.pass("restarts", "restarts");
            a.pass("queries", "queries");
            a.domain();
            a.seed();
          },
      .searches_domain = [](const SectionSpec&) { return true; },
      .metrics = {"clean_accuracy", "robust_accuracy", "attack_success_rate"},
      // attacks, certification and corruptions share the report's "Robustness" section
      .render = [](SectionRender& r) { detail::robustness_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            const json& p = obj(s, "params");
            std::string out = fmt::format("{} {}: clean {}", str(p, "attack"), str(p, "norm"), num(at(r, "clean_accuracy")));
            for (const auto& e : arr(r, "by_eps")) out += fmt::format("; eps {}: {}", num(at(e, "eps")), num(at(e, "robust_accuracy")));
            return out;
          },
      .compliance_title = "Robustness: adversarial attacks",
      .references = {"EU AI Act Art. 15(1), 15(4)-(5) (robustness, adversarial examples)", "EU AI Act Annex IV 2(g)",
                     "NIST AI RMF MEASURE 2.5, 2.7"},
      .limitation = "Robust accuracy under attack is an upper bound on true robust accuracy: a stronger attack may find more "
                    "adversarial examples.",
      .example = "model: m\ndata: images\nattack: fgsm\neps: [0.03]\n",
  };
  return def;
}
