// Section kind "backdoor": `mlaudit backdoor`, Neural Cleanse trigger reversal per class
// and STRIP screening of suspicious inputs. Result: mlaudit.backdoor/1.
#include "context.h"

using namespace mlaudit::reports;

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
      .render = [](SectionRender& r) { detail::backdoor_blocks(r.d, r.report, nullptr); },
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
