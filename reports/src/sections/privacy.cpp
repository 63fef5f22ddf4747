// Section kind "privacy": `mlaudit privacy`, membership inference on a member and a
// non-member data set (each .npy with labels, or a CSV). Result: mlaudit.privacy/1.
#include <tuple>

#include "blocks.h"
#include "context.h"
#include "metrics.h"
#include "mlaudit/privacy/names.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// Privacy sections: the attacks[] record named `attack`; a section that did
// not run that attack does not provide the metric.
Lookup membership_field(const json& s, const std::string& attack, const std::string& field) {
  if (!section_ok(s)) {
    // a failed section provides the metric when it was asked to run the attack
    const json& p = s.value("params", json::object());
    const json attacks = p.contains("attacks") ? p["attacks"] : json::array({"loss", "confidence", "entropy"});
    for (const auto& a : attacks)
      if (a == attack) return failed_section(s);
    return {};
  }
  const json& r = result_of(s);
  if (!r.contains("attacks") || !r["attacks"].is_array()) return value_or_missing(std::nullopt, "attacks");
  for (const auto& a : r["attacks"])
    if (text(a, "name") == attack) return value_or_missing(number(a, field), fmt::format("attacks[{}].{}", attack, field));
  return {};
}

// The gate metrics read from the section's result (mlaudit.privacy/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  auto plan = [&m](const std::string& name, Planner p) { m.plan(name, std::move(p)); };
  t.push_back({{"membership_auc", "privacy", {"attack"}, "privacy: attacks[name=attack].auc",
                "ROC AUC of a membership-inference attack (0.5: no leakage)"},
               [](const json& s, const std::vector<std::string>& a) { return membership_field(s, a[0], "auc"); }});
  t.push_back({{"membership_tpr_at_fpr", "privacy", {"attack", "fpr"}, "privacy: attacks[name=attack].tpr_at_fpr_<fpr> (fpr 0.001 or 0.01)",
                "true-positive rate of the attack at a false-positive rate of 0.1 % or 1 % (Carlini et al. 2022)"},
               [](const json& s, const std::vector<std::string>& a) {
                 // only the two FPRs mlaudit privacy records exactly (parse_gate_check enforces it)
                 const std::string field = same_number(to_double(a[1]), 0.001) ? "tpr_at_fpr_0.001" : "tpr_at_fpr_0.01";
                 return membership_field(s, a[0], field);
               }});
  t.push_back({{"membership_balanced_accuracy", "privacy", {"attack"}, "privacy: attacks[name=attack].balanced_accuracy",
                "best balanced accuracy of the attack (threshold chosen on the evaluated samples: an upper bound)"},
               [](const json& s, const std::vector<std::string>& a) { return membership_field(s, a[0], "balanced_accuracy"); }});
  t.push_back({{"max_membership_auc", "privacy", {}, "privacy: max over attacks[].auc",
                "ROC AUC of the strongest attack the section ran"},
               [](const json& s, const auto&) {
                 if (!section_ok(s)) return failed_section(s);
                 const json& r = result_of(s);
                 std::optional<double> best;
                 if (r.contains("attacks") && r["attacks"].is_array())
                   for (const auto& a : r["attacks"])
                     if (auto v = number(a, "auc")) best = std::max(best.value_or(*v), *v);
                 return value_or_missing(best, "attacks[].auc");
               }});
  const Planner by_membership_attack = [](const SectionSpec& s, const std::vector<std::string>& a) -> std::string {
    // the attacks mlaudit privacy runs when none are named (membership_field reads the same default)
    const json attacks = s.params.contains("attacks") ? s.params["attacks"] : json::array({"loss", "confidence", "entropy"});
    for (const auto& x : attacks)
      if (x == a[0]) return "";
    return fmt::format("runs membership attacks {}, not {}", list_text(attacks), a[0]);
  };
  for (const char* name : {"membership_auc", "membership_tpr_at_fpr", "membership_balanced_accuracy"}) plan(name, by_membership_attack);
}

}  // namespace

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

// ROC points for a chart: the curve from the section JSON with points closer than
// `step` (in FPR + TPR) to the last kept one dropped; the first and last are kept,
// so the drawn curve stays within `step` of the recorded one.
std::vector<std::pair<double, double>> chart_roc(const json& roc, double step = 0.004) {
  std::vector<std::pair<double, double>> pts, out;
  const json& fpr = arr(roc, "fpr");
  const json& tpr = arr(roc, "tpr");
  for (size_t i = 0; i < std::min(fpr.size(), tpr.size()); ++i)
    if (fpr[i].is_number() && tpr[i].is_number()) pts.emplace_back(fpr[i].get<double>(), tpr[i].get<double>());
  for (size_t i = 0; i < pts.size(); ++i) {
    if (i == 0 || i + 1 == pts.size() ||
        std::fabs(pts[i].first - out.back().first) + std::fabs(pts[i].second - out.back().second) >= step)
      out.push_back(pts[i]);
  }
  return out;
}

std::string set_text(const json& set) {
  std::string file = str(set, "file");
  return fmt::format("{}{}", str(set, "count", "n/a"), file.empty() ? "" : " (" + file.substr(file.find_last_of('/') + 1) + ")");
}

void privacy_blocks(Document& d, const json& report) {
  auto secs = sections_of(report, "privacy");
  if (secs.empty()) return;
  d.push_back(heading("Privacy: membership inference", 2, "privacy"));
  d.push_back(para("Each attack scores every sample (higher = more likely a training member) and is judged by ROC AUC "
                   "(0.5 = no leakage) and by the true-positive rate at a low false-positive rate, the measure "
                   "Carlini et al. 2022 argue for. Balanced accuracy uses the best threshold on the evaluated "
                   "samples themselves, so it is an upper bound on what a deployed attacker achieves."));
  for (const json* sp : secs) {
    const json& s = *sp;
    const json& p = obj(s, "params");
    if (str(s, "status") != "ok") {
      failed(d, s);
      continue;
    }
    const json& r = obj(s, "result");
    d.push_back(heading(fmt::format("{} (model {}, members {}, non-members {})", str(s, "id"), str(s, "model"),
                                    str(p, "members"), str(p, "non_members")) + (is_imported(s) ? " (imported)" : ""),
                        3));
    if (std::string t = import_text(s); !t.empty()) d.push_back(note(t));
    std::string extra;
    if (!str(r, "lira_variance").empty())
      extra += fmt::format(" LiRA (offline) used {} reference models with {} variance.", arr(r, "reference_models").size(),
                           str(r, "lira_variance"));
    if (!str(r, "label_only_distance").empty())
      extra += fmt::format(" Label-only distance to the boundary: {}.", str(r, "label_only_distance"));
    d.push_back(para(fmt::format("Members (training samples): {}; non-members (held out): {}.{}", set_text(at(r, "members")),
                                 set_text(at(r, "non_members")), extra)));
    std::vector<std::vector<std::string>> rows;
    std::vector<Series> curves;
    for (const auto& a : arr(r, "attacks")) {
      std::string rule = str(a, "threshold_mode") == "per_class" ? "per-class" : str(a, "threshold_mode");
      rows.push_back({str(a, "name"), num(at(a, "auc")),
                      num(at(a, "balanced_accuracy")) + (rule.empty() ? "" : " (" + rule + " threshold)"),
                      num(at(a, "tpr_at_fpr_0.001")), num(at(a, "tpr_at_fpr_0.01"))});
      Series ser{str(a, "name"), chart_roc(at(a, "roc"))};
      ser.markers = false;
      if (!ser.points.empty()) curves.push_back(ser);
    }
    if (rows.empty()) {
      d.push_back(note("Not available: the result has no 'attacks' records."));
      continue;
    }
    d.push_back(short_table({{"Attack", ""}, {"ROC AUC", "AUC"}, {"Best balanced accuracy", "Best bal. acc."},
                             {"TPR at 0.1% FPR", "TPR@0.1%"}, {"TPR at 1% FPR", "TPR@1%"}},
                            rows,
                            {"AUC: ROC AUC (0.5 = no leakage); Best bal. acc.: best balanced accuracy over thresholds",
                             "TPR@0.1% / TPR@1%: true-positive rate at a false-positive rate of 0.1 % / 1 %"}));
    if (!curves.empty()) {
      Series chance{"chance", {{0.0, 0.0}, {1.0, 1.0}}};
      chance.markers = false;
      chance.dashed = true;
      curves.push_back(chance);
      d.push_back(chart(svg_line_chart("Membership inference ROC: " + str(s, "model"), "false-positive rate (non-members flagged)",
                                       "true-positive rate", curves),
                        "privacy-roc"));
    }
  }
}

}  // namespace

MLAUDIT_SECTION_KIND(privacy) {
  static const SectionKindDef def{
      .kind = SectionKind::Privacy,
      .name = "privacy",
      .order = 90,
      .command = "privacy",
      .result_schema = "mlaudit.privacy",
      // members / non_members name data sets (each .npy with labels, or a CSV)
      .keys = {{.name = "members", .type = KeyType::Str, .required = true},
               {.name = "non_members", .type = KeyType::Str, .required = true},
               // the attacks `mlaudit privacy --attacks` runs, from the module's own list
               {.name = "attacks", .type = KeyType::StrList, .choices = mlaudit::privacy::names::membership_attacks()},
               {.name = "reference_models", .type = KeyType::Path},
               {.name = "fixed_variance", .type = KeyType::Str, .choices = mlaudit::privacy::names::lira_variances()},
               {.name = "label_only_steps", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "batch", .type = KeyType::Int, .rule = KeyRule::Positive}},
      .data_optional = true,
      .data_keys = {"members", "non_members"},
      .validate =
          [](SectionParse& v) {
            if (v.has("data")) v.fail("data", fmt::format("{} takes 'members' and 'non_members' (data set ids) instead of 'data'", v.what));
            // Both sets must exist; CSV sets must agree on the label column and the
            // feature columns, since `mlaudit privacy` takes one of each.
            const DatasetSpec* sets[2] = {nullptr, nullptr};
            const char* keys[2] = {"members", "non_members"};
            for (int k = 0; k < 2; ++k) {
              const std::string id = v.s.params[keys[k]].get<std::string>();
              sets[k] = v.cfg.dataset(id);
              if (!sets[k]) {
                std::vector<std::string> ids;
                for (const auto& d : v.cfg.datasets) ids.push_back(d.id);
                v.fail(keys[k], fmt::format("unknown data set '{}'{}", id, v.suggest(id, ids)));
              }
              if (sets[k]->is_csv() && sets[k]->features.empty() && v.check_files)
                v.fail(keys[k], fmt::format("{}: data set '{}' needs 'features' (the model's input columns)", v.what, id));
              if (!sets[k]->is_csv() && sets[k]->labels.empty())
                v.fail(keys[k], fmt::format("data set '{}' has no 'labels' (.npy data needs them; a set without labels can only be a 'background')", id));
            }
            if (sets[0]->id == sets[1]->id)
              v.fail("non_members", fmt::format("{}: 'members' and 'non_members' name the same data set '{}'", v.what, sets[0]->id));
            if (sets[0]->is_csv() && sets[1]->is_csv() &&
                (sets[0]->label != sets[1]->label || sets[0]->features != sets[1]->features))
              v.fail("non_members", fmt::format("{}: CSV data sets '{}' and '{}' must have the same 'label' and 'features'", v.what,
                                                sets[0]->id, sets[1]->id));
            if (v.s.params.contains("attacks"))
              for (const auto& a : v.s.params["attacks"])
                if (a == "lira" && !v.s.params.contains("reference_models"))
                  v.fail("attacks", fmt::format("{}: attack 'lira' needs 'reference_models' (a folder of ONNX models trained without the members)", v.what));
          },
      .args =
          [](SectionArgs& a) {
            // One .npy pair (inputs + labels) or one CSV per set; CSV sets share the
            // label column and feature list (checked when the config was parsed).
            std::string label_column, feature_list;
            for (const auto& [key, x_flag, y_flag] : std::vector<std::tuple<std::string, std::string, std::string>>{
                     {"members", "members", "member-labels"}, {"non_members", "non-members", "non-member-labels"}}) {
              const DatasetSpec* set = a.cfg.dataset(a.p[key].get<std::string>());
              if (set->is_csv()) {
                a.flag(x_flag, a.csv_rows(*set));
                label_column = set->label;
                feature_list = set->features_file.empty() ? a.feature_file(*set) : set->features_file;
              } else {
                a.flag(x_flag, a.npy_rows(set->data, set->id + "-x"));
                a.flag(y_flag, a.npy_rows(set->labels, set->id + "-y"));
              }
            }
            if (!label_column.empty()) {
              a.flag("label-column", label_column);
              a.flag("features", feature_list);
            }
            if (a.p.contains("attacks")) a.flag("attacks", SectionArgs::join_strings(a.p["attacks"]));
            a.pass("reference_models", "reference-models");
            a.pass("fixed_variance", "fixed-variance");
            a.pass("label_only_steps", "label-only-steps");
            a.pass("batch", "batch");
            // the label-only attack's input domain: the member set's declared domain
            if (const DatasetSpec* members = a.cfg.dataset(a.p["members"].get<std::string>()); members && members->domain) {
              a.flag("clip-min", fmt::format("{}", members->domain->first));
              a.flag("clip-max", fmt::format("{}", members->domain->second));
            }
          },
      .metrics = {"membership_auc", "membership_tpr_at_fpr", "membership_balanced_accuracy", "max_membership_auc"},
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { privacy_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            std::string out;
            for (const auto& a : arr(r, "attacks"))
              out += fmt::format("{}{} AUC {}, TPR@0.1%FPR {}", out.empty() ? "" : "; ", str(a, "name"), num(at(a, "auc")),
                                 num(at(a, "tpr_at_fpr_0.001")));
            return out.empty() ? "no attacks reported" : "membership inference: " + out;
          },
      .compliance_title = "Privacy: membership inference",
      .references = {"EU AI Act Art. 15(5) (confidentiality attacks)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.10, 2.7"},
      .limitation = "Membership-inference results show what these attacks achieve on the given members and non-members; "
                    "stronger attacks (e.g. online LiRA with many shadow models) may leak more, so a low AUC is not a "
                    "privacy guarantee (only differential privacy in training gives one).",
      .example = "model: m\nmembers: held_out\nnon_members: images\n",
  };
  return def;
}
