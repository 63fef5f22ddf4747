// Section kind "robustness": `mlaudit attack` (one section per attack of `attacks`),
// robust accuracy per eps. Result: mlaudit.attack/1.
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// Robustness sections: params.attack and params.norm name the run.
bool attack_matches(const json& s, const std::string& attack, const std::string& norm) {
  const json& p = s.value("params", json::object());
  std::string a = text(p, "attack"), n = text(p, "norm");
  if (a.empty()) a = text(result_of(s), "attack");
  if (n.empty()) n = text(result_of(s), "norm");
  return a == attack && (norm.empty() || n == norm);
}

Lookup by_eps_field(const json& s, const std::vector<std::string>& args, const std::string& field) {
  if (!attack_matches(s, args[0], args[1])) return {};
  if (!section_ok(s)) return failed_section(s);
  double eps = to_double(args[2]);
  const json& r = result_of(s);
  const json* e = find_by_number(r, "by_eps", "eps", eps);
  if (!e) return value_or_missing(std::nullopt, fmt::format("by_eps[eps={}]", args[2]));
  // robust accuracy counts over every sample; the success rate over the clean-correct ones
  std::optional<int64_t> n = sample_count(s);
  if (field == "attack_success_rate") {
    auto clean = number(r, "clean_accuracy");
    n = n && clean ? std::optional<int64_t>(std::llround(*clean * double(*n))) : std::nullopt;
  }
  return proportion_field(*e, field, fmt::format("by_eps[eps={}].{}", args[2], field), n);
}

// Config time: a robustness section runs one attack at one norm over its eps list.
std::string plan_attack(const SectionSpec& s, const std::vector<std::string>& a) {
  const json& p = s.params;
  std::string attack = p.value("attack", ""), norm = p.value("norm", "linf");
  if (attack != a[0]) return fmt::format("runs attack {}", attack);
  if (a.size() < 3) return "";
  if (norm != a[1]) return fmt::format("runs {} under norm {}, not {}", attack, norm, a[1]);
  if (!listed_number(p, "eps", to_double(a[2]))) return fmt::format("runs {} at eps {}, not {}", attack, list_text(p.value("eps", json::array())), a[2]);
  return "";
}

// The gate metrics read from the section's result (mlaudit.attack/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  t.push_back({{"clean_accuracy", "robustness", {"attack"}, "attack: clean_accuracy", "accuracy before the attack"},
               [](const json& s, const std::vector<std::string>& a) {
                 if (!attack_matches(s, a[0], "")) return Lookup{};
                 if (!section_ok(s)) return failed_section(s);
                 return proportion_field(result_of(s), "clean_accuracy", "clean_accuracy", sample_count(s));
               },
               plan_attack});
  t.back().info.interval = true;
  t.push_back({{"robust_accuracy", "robustness", {"attack", "norm", "eps"}, "attack: by_eps[eps].robust_accuracy",
                "accuracy under the attack at radius eps"},
               [](const json& s, const std::vector<std::string>& a) { return by_eps_field(s, a, "robust_accuracy"); },
               plan_attack});
  t.back().info.interval = true;
  t.push_back({{"attack_success_rate", "robustness", {"attack", "norm", "eps"},
                "attack: by_eps[eps].attack_success_rate", "fraction of correctly classified samples the attack flips"},
               [](const json& s, const std::vector<std::string>& a) { return by_eps_field(s, a, "attack_success_rate"); },
               plan_attack});
  t.back().info.interval = true;
}

}  // namespace

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
      .read_metrics = read_metrics,
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
