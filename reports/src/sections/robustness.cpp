// Section kind "robustness": `mlaudit attack` (one section per attack of `attacks`),
// robust accuracy per eps. Result: mlaudit.attack/1.
#include "blocks.h"
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

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

void robustness_blocks(Document& d, const json& report) {
  auto attacks = sections_of(report, "robustness");
  auto certs = sections_of(report, "certification");
  auto corrs = sections_of(report, "corruption");
  if (attacks.empty() && certs.empty() && corrs.empty()) return;
  d.push_back(heading("Robustness", 2, "robustness"));
  if (!attacks.empty()) {
    d.push_back(heading("Adversarial attacks", 3));
    std::map<std::string, std::vector<Series>> curves;  // per model and norm
    each_completed(d, attacks, 4, [&](const json& s, const json& r) {
      const json& p = obj(s, "params");
      std::string attack = str(p, "attack", str(r, "attack")), norm = str(p, "norm", str(r, "norm"));
      d.push_back(para(fmt::format("Attack {} ({} norm); clean accuracy {}.", attack, norm,
                                   with_ci(r, "clean_accuracy", result_sample_count(r)))));
      std::vector<std::vector<std::string>> rows;
      Series ser{attack, {}};
      if (auto c = dbl(r, "clean_accuracy")) add_point(ser, 0.0, *c, ci_pair(r, "clean_accuracy", result_sample_count(r)));
      for (const auto& e : arr(r, "by_eps")) {
        std::string calls = !at(e, "gradient_calls").is_null() ? num(at(e, "gradient_calls"), 8) : num(at(e, "queries"), 8);
        rows.push_back({num(at(e, "eps")), with_ci(e, "robust_accuracy", result_sample_count(r)), num(at(e, "attack_success_rate")),
                        num(at(e, "mean_perturbation_norm")), num(at(e, "median_perturbation_norm")), calls});
        if (auto x = dbl(e, "eps"), y = dbl(e, "robust_accuracy"); x && y && *x > 0)
          add_point(ser, *x, *y, ci_pair(e, "robust_accuracy", result_sample_count(r)));
      }
      if (rows.empty()) d.push_back(note("Not available: the result has no 'by_eps' records."));
      else d.push_back(short_table({{"eps", ""}, {"Robust accuracy", ""}, {"Attack success rate", "ASR"},
                                    {"Mean perturbation norm", "Mean norm"}, {"Median perturbation norm", "Median norm"},
                                    {"Gradient calls / queries", "Calls"}},
                                   rows,
                                   {"ASR: attack success rate, the share of clean-correct samples the attack flips",
                                    "Mean norm / Median norm: mean / median norm of the perturbations found",
                                    "Calls: gradient calls (white-box attacks) or model queries (black-box attacks)"}));
      if (!ser.points.empty()) curves[str(s, "model") + " (" + norm + ")"].push_back(ser);
    });
    for (const auto& [key, series] : curves)
      d.push_back(chart(svg_line_chart("Robust accuracy vs eps: " + key, "eps (0 = clean)", "accuracy (95 % CI shaded)", series),
                        "robust-eps"));
  }
  if (!certs.empty()) {
    d.push_back(heading("Certified robustness (randomized smoothing)", 3));
    each_completed(d, certs, 4, [&](const json& s, const json& r) {
      const json& p = obj(s, "params");
      const json& cfgj = at(r, "config").is_object() ? at(r, "config") : r;  // mlaudit certify nests its settings
      int abstain = 0, total = 0;
      for (const auto& e : arr(r, "per_sample")) {
        ++total;
        if (dbl(e, "prediction").value_or(0) < 0) ++abstain;
      }
      d.push_back(para(fmt::format("sigma {}, N0 {}, N {}, alpha {}: {} samples, {} abstentions. Certified radii are L2 "
                                   "and hold with probability at least 1 - alpha (Cohen et al. 2019); they are "
                                   "statistical, not formal, guarantees.",
                                   str(cfgj, "sigma", str(p, "sigma", "n/a")), str(cfgj, "n0", str(p, "n0", "default")),
                                   str(cfgj, "n", str(p, "n", "default")), str(cfgj, "alpha", str(p, "alpha", "default")),
                                   total, abstain)));
      std::vector<std::vector<std::string>> rows;
      Series ser{str(s, "model"), {}};
      for (const auto& e : arr(r, "certified_accuracy")) {
        rows.push_back({num(at(e, "radius")), with_ci(e, "accuracy", result_sample_count(r))});
        if (auto x = dbl(e, "radius"), y = dbl(e, "accuracy"); x && y) add_point(ser, *x, *y, ci_pair(e, "accuracy", result_sample_count(r)));
      }
      if (rows.empty()) d.push_back(note("Not available: the result has no 'certified_accuracy' records."));
      else {
        d.push_back(table({"L2 radius", "Certified accuracy"}, rows));
        d.push_back(chart(svg_line_chart("Certified accuracy vs radius: " + str(s, "model"), "L2 radius", "certified accuracy", {ser}),
                          "certified-radius"));
      }
    });
  }
  if (!corrs.empty()) {
    d.push_back(heading("Common corruptions", 3));
    each_completed(d, corrs, 4, [&](const json& s, const json& r) {
      d.push_back(para(fmt::format("Clean accuracy {}; mean corruption accuracy {}.", with_ci(r, "clean_accuracy", result_sample_count(r)),
                                   num(at(r, "mean_corruption_accuracy")))));
      std::vector<std::vector<std::string>> rows;
      std::map<std::string, Series> lines;  // one line per corruption, severity 0 = clean
      std::vector<std::string> order;
      auto point = [&](const std::string& name, const json& e) {
        auto sev = dbl(e, "severity");
        auto acc = dbl(e, "accuracy");
        if (!sev || !acc) return;
        if (!lines.count(name)) {
          order.push_back(name);
          lines[name].name = name;
          if (auto c = dbl(r, "clean_accuracy")) add_point(lines[name], 0.0, *c, ci_pair(r, "clean_accuracy", result_sample_count(r)));
        }
        add_point(lines[name], *sev, *acc, ci_pair(e, "accuracy", result_sample_count(r)));
      };
      for (const char* key : {"results", "corruptions", "by_corruption"}) {
        for (const auto& e : arr(r, key)) {
          std::string name = str(e, "corruption", str(e, "name"));
          if (!at(e, "severity").is_null()) {
            rows.push_back({name, str(e, "severity"), with_ci(e, "accuracy", result_sample_count(r))});
            point(name, e);
          }
          for (const char* nested : {"by_severity", "severities"})
            for (const auto& sv : arr(e, nested)) {
              rows.push_back({name, str(sv, "severity"), with_ci(sv, "accuracy", result_sample_count(r))});
              point(name, sv);
            }
        }
        if (!rows.empty()) break;
      }
      if (rows.empty()) d.push_back(scalars_table(r));
      else d.push_back(table({"Corruption", "Severity", "Accuracy"}, rows));
      if (!lines.empty()) {
        std::vector<Series> series;
        for (const auto& name : order) {
          series.push_back(lines[name]);
          series.back().band.clear();  // seven overlapping bands hide the lines; the table has every interval
        }
        d.push_back(chart(svg_line_chart("Accuracy vs corruption severity: " + str(s, "model"), "severity (0 = clean)", "accuracy",
                                         series),
                          "corruption-severity"));
      }
    });
  }
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
      .render = [](SectionRender& r) { robustness_blocks(r.d, r.report); },
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
