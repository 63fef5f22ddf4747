// Section kind "explanations": `mlaudit explain` (one section per method of `methods`):
// attributions, their sanity checks and heatmaps of image rows. Result: mlaudit.explain/1.
#include "context.h"
#include "metrics.h"

using namespace mlaudit::reports;

namespace {

using namespace mlaudit::reports::gate_metrics;

// Worst (largest |value|) sanity gap of an explain run: the summary's
// checks.<check>.<summary_field> when present, else the maximum over the
// per-sample records (samples[].<nested>.<field> or samples[].<field>).
Lookup worst_sample_field(const json& s, const std::string& method, const std::string& check,
                          const std::string& summary_field, const std::string& nested, const std::string& field) {
  const json& p = s.value("params", json::object());
  std::string m = text(p, "method");
  if (m.empty()) m = text(result_of(s), "method");
  if (m != method) return {};
  if (!section_ok(s)) return failed_section(s);
  const json& r = result_of(s);
  if (r.contains("checks") && r["checks"].is_object() && r["checks"].contains(check))
    if (auto v = number(r["checks"][check], summary_field)) return value_or_missing(std::fabs(*v), "checks." + check);
  std::optional<double> worst;
  for (const char* key : {"samples", "per_sample"}) {
    if (!r.contains(key) || !r[key].is_array()) continue;
    for (const auto& e : r[key]) {
      std::optional<double> v = number(e, field);
      if (!v && !nested.empty() && e.contains(nested)) v = number(e[nested], "relative_gap");
      if (v) worst = std::max(worst.value_or(0.0), std::fabs(*v));
    }
  }
  return value_or_missing(worst, fmt::format("per-sample {}", field));
}

// The gate metrics read from the section's result (mlaudit.explain/1), and which configured
// sections will produce them (sections/metrics.h).
void read_metrics(SectionMetrics& m) {
  auto& t = m.t;
  auto plan = [&m](const std::string& name, Planner p) { m.plan(name, std::move(p)); };
  t.push_back({{"ig_completeness_gap", "explanations", {}, "explain: checks.completeness.max_relative_gap (else max over samples[].completeness.relative_gap)",
                "integrated-gradients completeness: worst relative gap between sum of attributions and f(x)-f(baseline)"},
               [](const json& s, const auto&) {
                 return worst_sample_field(s, "integrated-gradients", "completeness", "max_relative_gap", "completeness", "completeness_gap");
               }});
  t.push_back({{"kernel_shap_efficiency_gap", "explanations", {}, "explain: checks.efficiency.max_abs_gap (else max over samples[].efficiency_gap)",
                "KernelSHAP efficiency: worst gap between sum of phi and f(x)-E[f(background)]"},
               [](const json& s, const auto&) {
                 return worst_sample_field(s, "kernel-shap", "efficiency", "max_abs_gap", "", "efficiency_gap");
               }});
  t.push_back({{"tree_shap_local_accuracy_gap", "explanations", {}, "explain: checks.local_accuracy.max_relative_gap (else max over samples[].local_accuracy_gap)",
                "TreeSHAP local accuracy: worst relative gap between sum of phi and f(x) - E f"},
               [](const json& s, const auto&) {
                 return worst_sample_field(s, "tree-shap", "local_accuracy", "max_relative_gap", "", "local_accuracy_gap");
               }});
  auto by_method = [](const std::string& method) -> Planner {
    return [method](const SectionSpec& s, const std::vector<std::string>&) -> std::string {
      std::string m = s.params.value("method", "");
      return m == method ? "" : fmt::format("explains with {}, not {}", m, method);
    };
  };
  plan("ig_completeness_gap", by_method("integrated-gradients"));
  plan("kernel_shap_efficiency_gap", by_method("kernel-shap"));
  plan("tree_shap_local_accuracy_gap", by_method("tree-shap"));
}

}  // namespace

MLAUDIT_SECTION_KIND(explanations) {
  static const SectionKindDef def{
      .kind = SectionKind::Explanations,
      .name = "explanations",
      .order = 70,
      .command = "explain",
      .result_schema = "mlaudit.explain",
      .keys = {{.name = "method", .type = KeyType::Str},
               {.name = "methods", .type = KeyType::StrList, .audit_only = true},  // one section per method
               {.name = "steps", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "target", .type = KeyType::Str},
               {.name = "baseline", .type = KeyType::Str},
               {.name = "background", .type = KeyType::Path},  // a data set id (.npy rows), or an .npy file
               {.name = "nsamples", .type = KeyType::Int, .rule = KeyRule::Positive},
               {.name = "seed", .type = KeyType::Int},
               {.name = "heatmaps", .type = KeyType::Bool},
               {.name = "check_randomization", .type = KeyType::Bool},
               {.name = "check_stability", .type = KeyType::Bool}},
      .variant_key = "method",
      .validate =
          [](SectionParse& v) {
            v.split_variants("method");
            v.need_npy();
          },
      .check =
          [](SectionCheck& c) {
            // the methods `mlaudit explain --method` takes (explain::method_names())
            const std::string method = c.s.params.value("method", "");
            const std::string key = c.written_key("method");
            if (!c.vocab.explain_methods.empty() && !c.contains(c.vocab.explain_methods, method))
              c.fail(c.s.mark_of("method"), fmt::format("'{}' cannot be '{}': mlaudit explain has no such method{}", key, method,
                                                        c.suggest(method, c.vocab.explain_methods)));
            if (c.s.params.contains("result") || !c.shape) return;
            // heatmaps are drawn per image row; the arguments ask for them on image data only
            if (c.s.params.value("heatmaps", false) && !c.images())
              c.fail(c.s.mark_of("heatmaps"), fmt::format("'heatmaps: true' needs image inputs [N,C,H,W] or [N,H,W], but data set "
                                                          "'{}' is {}; remove it (tabular attributions are listed per feature)",
                                                          c.s.data, mlaudit::engine::shape_str(*c.shape)));
            if ((method == "kernel-shap" || method == "tree-shap" || (method == "lime" && !c.images())) &&
                !c.s.params.contains("background"))
              c.fail(c.s.mark_of("method"),
                     fmt::format("'{}' needs 'background' (a data set id, or an .npy of reference rows) for method '{}'", key, method));
          },
      .args =
          [](SectionArgs& a) {
            a.npy_inputs();
            a.pass("method", "method");
            a.pass("steps", "steps");
            a.pass("target", "target");
            a.pass("baseline", "baseline");
            a.pass("background", "background");
            a.pass("nsamples", "nsamples");
            if (a.ds && !a.ds->features_file.empty()) a.flag("features", a.ds->features_file);
            a.flag("attributions", fmt::format("{}/{}.npy", a.work_dir, a.s.id));
            a.out();
            // heatmaps for image data ([N,C,H,W] or [N,H,W], read from the .npy header) unless
            // turned off; tabular rows get none (explain refuses --heatmap-dir on them)
            bool images = false;
            if (a.ds && !a.ds->is_csv()) {
              const size_t rank = npy_shape(a.ds->data).size();
              images = rank == 3 || rank == 4;
            }
            if (a.p.value("heatmaps", images)) {
              a.flag("heatmap-dir", fmt::format("{}/{}-heatmaps", a.work_dir, a.s.id));
              a.flag("max-heatmaps", "8");
            }
            if (a.p.value("check_randomization", false)) a.push("--check-randomization");
            if (a.p.value("check_stability", false)) a.push("--check-stability");
            a.seed();
          },
      .metrics = {"ig_completeness_gap", "kernel_shap_efficiency_gap", "tree_shap_local_accuracy_gap"},
      .read_metrics = read_metrics,
      .render = [](SectionRender& r) { detail::explain_blocks(r.d, r.report, nullptr, r.asset_dir); },
      // one line for the compliance table and the diff (the section ran: status ok)
      .headline =
          [](const nlohmann::json& s) -> std::string {
            using namespace detail;
            using json = nlohmann::json;
            const json& r = obj(s, "result");
            const json& p = obj(s, "params");
            return fmt::format("{} attributions; global ranking of {} features", str(p, "method"), arr(r, "global_ranking").size());
          },
      .compliance_title = "Explanations",
      .references = {"EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.9"},
      .limitation = "Attributions describe the model's sensitivity, not causal effects in the world.",
      .example = "model: m\ndata: images\nmethod: saliency\n",
  };
  return def;
}
