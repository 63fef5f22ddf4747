// Section kind "backdoor": `mlaudit backdoor`, Neural Cleanse trigger reversal per class
// and STRIP screening of suspicious inputs. Result: mlaudit.backdoor/1.
#include <limits>

#include "blocks.h"
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// Backdoor sections: the neural_cleanse object (absent when only STRIP ran).
Lookup neural_cleanse_value(const json& s, const std::function<Lookup(const json&)>& read) {
  if (!section_ok(s)) return s.value("params", json::object()).value("neural_cleanse", true) ? failed_section(s) : Lookup{};
  const json& r = result_of(s);
  if (!r.contains("neural_cleanse") || !r["neural_cleanse"].is_object()) return {};
  return read(r["neural_cleanse"]);
}

// The gate metrics read from the section's result (mlaudit.backdoor/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  auto plan = [&m](const std::string& name, Planner p) { m.plan(name, std::move(p)); };
  t.push_back({{"backdoor_flagged_classes", "backdoor", {}, "backdoor: len(neural_cleanse.flagged)",
                "number of classes Neural Cleanse flags (anomaly index above the threshold, small-norm side)"},
               [](const json& s, const auto&) {
                 return neural_cleanse_value(s, [](const json& nc) {
                   if (!nc.contains("flagged") || !nc["flagged"].is_array())
                     return value_or_missing(std::nullopt, "neural_cleanse.flagged");
                   return value_or_missing(double(nc["flagged"].size()), "neural_cleanse.flagged");
                 });
               }});
  t.push_back({{"backdoor_max_anomaly_index", "backdoor", {},
                "backdoor: max of neural_cleanse.classes[].anomaly_index over classes with l1_norm <= median_l1",
                "largest Neural Cleanse anomaly index on the small-mask side (the side a backdoor shows on); flagged above 2"},
               [](const json& s, const auto&) {
                 return neural_cleanse_value(s, [](const json& nc) {
                   auto median = number(nc, "median_l1");
                   if (!median || !nc.contains("classes") || !nc["classes"].is_array())
                     return value_or_missing(std::nullopt, "neural_cleanse.classes / median_l1");
                   std::optional<double> worst;
                   for (const auto& c : nc["classes"]) {
                     auto l1 = number(c, "l1_norm");
                     if (!l1 || *l1 > *median) continue;
                     // null: MAD 0 with the value off the median, i.e. an infinite index
                     double v = c.contains("anomaly_index") && c["anomaly_index"].is_number()
                                    ? c["anomaly_index"].get<double>()
                                    : std::numeric_limits<double>::infinity();
                     worst = std::max(worst.value_or(v), v);
                   }
                   return value_or_missing(worst, "neural_cleanse.classes[].anomaly_index");
                 });
               }});
  t.push_back({{"strip_flagged_fraction", "backdoor", {}, "backdoor: strip.flagged_fraction",
                "fraction of the screened inputs STRIP flags as trojaned"},
               [](const json& s, const auto&) {
                 if (!section_ok(s)) return s.value("params", json::object()).contains("suspicious") ? failed_section(s) : Lookup{};
                 const json& r = result_of(s);
                 if (!r.contains("strip") || !r["strip"].is_object()) return Lookup{};
                 return value_or_missing(number(r["strip"], "flagged_fraction"), "strip.flagged_fraction");
               }});
  const Planner neural_cleanse = [](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
    return s.params.value("neural_cleanse", true) ? "" : "runs STRIP only ('neural_cleanse: false')";
  };
  plan("backdoor_flagged_classes", neural_cleanse);
  plan("backdoor_max_anomaly_index", neural_cleanse);
  plan("strip_flagged_fraction", [](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
    return s.params.contains("suspicious") ? "" : "screens no inputs with STRIP (set 'suspicious')";
  });
}

}  // namespace

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

// Order statistics of a list of numbers: count, min, p5, median, p95, max.
std::vector<std::string> distribution_row(const std::string& label, const json& values, const std::string& flagged) {
  std::vector<double> v;
  for (const auto& x : values)
    if (x.is_number()) v.push_back(x.get<double>());
  std::sort(v.begin(), v.end());
  auto q = [&](double f) -> std::string {
    if (v.empty()) return "n/a";
    double pos = f * double(v.size() - 1);  // linear interpolation (numpy's default)
    size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
    return num(json(v[lo] + (pos - double(lo)) * (v[hi] - v[lo])));
  };
  return {label, std::to_string(v.size()), q(0), q(0.05), q(0.5), q(0.95), q(1), flagged};
}

void backdoor_blocks(Document& d, const json& report) {
  kind_chapter(d, report, "backdoor", "Backdoor scan", "backdoor", [&](const json& s, const json& r) {
    d.push_back(para(fmt::format("Verdict: {}.", str(r, "verdict", "n/a"))));
    const json& nc = at(r, "neural_cleanse");
    if (nc.is_object()) {
      const json& c = obj(nc, "config");
      std::string flagged;
      for (const auto& f : arr(nc, "flagged")) flagged += (flagged.empty() ? "" : ", ") + num(f);
      d.push_back(heading("Neural Cleanse", 4));
      d.push_back(para(fmt::format(
          "For every class, the smallest mask and pattern that send the clean images to that class (Wang et al. 2019; "
          "{} epochs over the clean set per class, batch {}, initial cost {}). A class whose mask L1 norm is an outlier "
          "on the small side (anomaly index |L1 - median| / (1.4826 MAD) above {}) is flagged. Median L1 {}, MAD {}. "
          "Flagged classes: {}.",
          str(c, "epochs", "n/a"), str(c, "batch", "n/a"), num(at(c, "init_cost")), num(at(nc, "anomaly_threshold")),
          num(at(nc, "median_l1")), num(at(nc, "mad_l1")), flagged.empty() ? "none" : flagged)));
      std::vector<std::vector<std::string>> rows;
      std::vector<Bar> bars;
      for (const auto& e : arr(nc, "classes")) {
        rows.push_back({str(e, "class"), num(at(e, "l1_norm")),
                        at(e, "anomaly_index").is_null() ? "inf" : num(at(e, "anomaly_index"), 3),
                        num(at(e, "attack_success")), num(at(e, "reached_success_threshold")),
                        at(e, "flagged") == true ? "FLAGGED" : "no"});
        // small-norm side drawn negative, so the flagged side is visible at a glance
        if (auto ai = dbl(e, "anomaly_index"); ai && dbl(e, "l1_norm"))
          bars.push_back({"class " + str(e, "class"), *dbl(e, "l1_norm") < dbl(nc, "median_l1").value_or(0) ? *ai : -*ai,
                          std::nullopt});
      }
      d.push_back(short_table({{"Class", ""}, {"Mask L1 norm", "Mask L1"}, {"Anomaly index", "Anomaly"},
                               {"Trigger success on clean set", "Success"}, {"Reached 0.99 success", "≥ 0.99"}, {"Flagged", ""}},
                              rows,
                              {"Mask L1: L1 norm of the reversed trigger's mask; Anomaly: anomaly index",
                               "Success: trigger success on the clean set; ≥ 0.99: whether it reached 0.99 success"}));
      if (!bars.empty())
        d.push_back(chart(svg_bar_chart("Neural Cleanse anomaly index (> 0: mask below the median)",
                                        bars, dbl(nc, "anomaly_threshold"), "flag threshold"),
                          "backdoor-anomaly"));
      for (const auto& e : arr(nc, "classes")) {
        std::string png = str(e, "trigger_png");
        if (png.empty()) continue;
        Block b;
        b.kind = K::Image;
        b.image_path = png;
        b.text = fmt::format("Reversed trigger (mask x pattern), class {}{}", str(e, "class"),
                             at(e, "flagged") == true ? " - FLAGGED" : "");
        d.push_back(b);
      }
    }
    const json& st = at(r, "strip");
    if (st.is_object()) {
      d.push_back(heading("STRIP", 4));
      std::string idx;
      const json& fl = arr(st, "flagged");
      for (size_t i = 0; i < std::min<size_t>(fl.size(), 20); ++i) idx += (idx.empty() ? "" : ", ") + num(fl[i]);
      if (fl.size() > 20) idx += fmt::format(", ... ({} in all)", fl.size());
      std::string file = str(st, "file");
      d.push_back(para(fmt::format(
          "Each screened input ({}) is superimposed with {} clean images; a trojaned input keeps its prediction, so its "
          "mean prediction entropy is low (Gao et al. 2019). Threshold {} bits: the {} quantile of a normal fit to the "
          "clean pool's entropies (mean {}, std {}). Flagged: {} of {} inputs ({}){}.",
          file.substr(file.find_last_of('/') + 1), str(st, "overlays", "n/a"), num(at(st, "threshold")),
          num(at(st, "false_rejection_rate")), num(at(st, "clean_mean")), num(at(st, "clean_std")), fl.size(),
          arr(st, "entropy").size(), num(at(st, "flagged_fraction")), idx.empty() ? "" : ": inputs " + idx)));
      d.push_back(table({"Entropy (bits)", "Inputs", "Min", "5th pct", "Median", "95th pct", "Max", "Flagged"},
                        {distribution_row("Clean pool (sets the threshold)", arr(st, "clean_entropy"), "-"),
                         distribution_row("Screened inputs", arr(st, "entropy"), std::to_string(fl.size()))}));
    }
  });
}

}  // namespace

MLAUDIT_SECTION_KIND(backdoor) {
  static const SectionKindDef def{
      .kind = SectionKind::Backdoor,
      .name = "backdoor",
      .order = 100,
      .command = "backdoor",
      .result_schema = "mlaudit.backdoor",
      // `data` is the clean image set (Neural Cleanse data, STRIP overlay pool)
      .keys = {{.name = "classes", .type = KeyType::IntList},
               {.name = "epochs", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "nc_batch", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "init_cost", .type = KeyType::Num},
               {.name = "anomaly_threshold", .type = KeyType::Num, .rule = KeyRule::Positive},
               {.name = "neural_cleanse", .type = KeyType::Bool},
               {.name = "suspicious", .type = KeyType::Path},
               {.name = "strip_overlays", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "frr", .type = KeyType::Num, .rule = KeyRule::OpenUnit},
               {.name = "all_triggers", .type = KeyType::Bool},
               {.name = "seed", .type = KeyType::Int}},
      .reads_labels = false,
      .validate =
          [](SectionParse& v) {
            const auto& p = v.s.params;
            v.need_npy();
            if (p.contains("classes"))
              for (const auto& x : p["classes"])
                if (!x.is_number_integer() || x.get<int64_t>() < 0) v.fail("classes", "'classes' must be non-negative class indices");
            if (p.contains("init_cost") && p["init_cost"].get<double>() < 0) v.fail("init_cost", "'init_cost' must be >= 0");
            if (!p.value("neural_cleanse", true) && !p.contains("suspicious"))
              v.fail_entry(fmt::format("{}: 'neural_cleanse: false' leaves only STRIP, which needs 'suspicious' (an .npy of inputs to screen)", v.what));
          },
      .args =
          [](SectionArgs& a) {
            a.flag("data", a.npy_rows(a.ds->data, a.ds->id + "-x"));
            if (a.p.contains("classes")) a.flag("classes", SectionArgs::join_numbers(a.p["classes"]));
            a.pass("epochs", "epochs");
            a.pass("nc_batch", "nc-batch");
            a.pass("init_cost", "init-cost");
            a.pass("anomaly_threshold", "anomaly-threshold");
            if (!a.p.value("neural_cleanse", true)) a.push("--no-neural-cleanse");
            a.pass("suspicious", "suspicious");
            a.pass("strip_overlays", "strip-overlays");
            a.pass("frr", "frr");
            // The report shows every class's reversed trigger unless turned off.
            a.flag("trigger-dir", fmt::format("{}/{}-triggers", a.work_dir, a.s.id));
            if (a.p.value("all_triggers", true)) a.push("--all-triggers");
            a.domain();
            a.seed();
          },
      .metrics = {"backdoor_flagged_classes", "backdoor_max_anomaly_index", "strip_flagged_fraction"},
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { backdoor_blocks(r.d, r.report); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            std::string out = "verdict " + str(r, "verdict", "n/a");
            if (const json& nc = at(r, "neural_cleanse"); nc.is_object()) {
              std::string flagged;
              for (const auto& f : arr(nc, "flagged")) flagged += (flagged.empty() ? "" : ",") + num(f);
              out += fmt::format("; Neural Cleanse flagged classes: {}", flagged.empty() ? "none" : flagged);
            }
            if (const json& st = at(r, "strip"); st.is_object())
              out += fmt::format("; STRIP flagged {} of {} inputs", arr(st, "flagged").size(), arr(st, "entropy").size());
            return out;
          },
      .compliance_title = "Security: backdoor scan",
      .references = {"EU AI Act Art. 15(5) (data poisoning, model poisoning)", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.7"},
      .limitation = "Neural Cleanse looks for small input-space triggers with a reduced step budget and STRIP screens only "
                    "the given inputs; an unflagged model is not proven free of backdoors.",
      .example = "model: m\ndata: images\n",
  };
  return def;
}
