// Section kind "explanations": `mlaudit explain` (one section per method of `methods`):
// attributions, their sanity checks and heatmaps of image rows. Result: mlaudit.explain/1.
#include <filesystem>

#include "blocks.h"
#include "mlaudit/datasets/npy.h"
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

// ---- the kind's report blocks (its `render`) ----

namespace {

using namespace mlaudit::reports::detail;
using nlohmann::json;

// Mean |attribution| per pixel over the images and channels of an attributions file
// [N, C, H, W] or [N, H, W] (the explain command's .npy); empty when it cannot be read.
std::vector<double> mean_abs_map(const std::string& path, const std::string& asset_dir, int& rows, int& cols, int64_t& images) {
  namespace fs = std::filesystem;
  fs::path p = path;
  if (p.is_relative() && !asset_dir.empty()) p = fs::path(asset_dir) / p;
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(p, ec) || fs::file_size(p, ec) > (uint64_t(256) << 20)) return {};
  try {
    mlaudit::engine::Tensor t = mlaudit::datasets::read_npy_float(p.string());
    if (t.rank() != 3 && t.rank() != 4) return {};
    images = t.dim(0);
    rows = int(t.dim(-2)), cols = int(t.dim(-1));
    const int64_t plane = int64_t(rows) * cols, per_image = t.numel() / std::max<int64_t>(images, 1);
    if (images < 1 || plane < 1 || rows > 512 || cols > 512) return {};
    std::vector<double> mean(size_t(plane), 0.0);
    const std::vector<double> v = t.to_doubles();
    for (int64_t i = 0; i < images; ++i)
      for (int64_t k = 0; k < per_image; ++k) mean[size_t(k % plane)] += std::fabs(v[size_t(i * per_image + k)]);
    for (double& m : mean) m /= double(per_image / plane * images);
    return mean;
  } catch (const std::exception&) {
    return {};
  }
}

void explain_blocks(Document& d, const json& report, const std::string& asset_dir) {
  kind_chapter(d, report, "explanations", "Explanations", "explanations", [&](const json& s, const json& r) {
    std::string method = str(obj(s, "params"), "method", str(r, "method"));
    std::vector<double> gaps;
    for (const char* key : {"samples", "per_sample"})
      for (const auto& e : arr(r, key))
        for (const char* gk : {"completeness_gap", "efficiency_gap", "local_accuracy_gap"}) {
          if (auto g = dbl(e, gk)) gaps.push_back(std::fabs(*g));
          else if (gk == std::string("completeness_gap"))
            if (auto g2 = dbl(obj(e, "completeness"), "relative_gap")) gaps.push_back(std::fabs(*g2));
        }
    std::string gap_text = "no per-sample gaps reported";
    if (!gaps.empty()) {
      double worst = *std::max_element(gaps.begin(), gaps.end()), mean = 0;
      for (double g : gaps) mean += g / double(gaps.size());
      const char* what = method == "kernel-shap" ? "efficiency" : method == "tree-shap" ? "local accuracy" : "completeness";
      gap_text = fmt::format("{} gap over {} samples: mean {}, worst {}", what, gaps.size(), num(json(mean)), num(json(worst)));
    }
    d.push_back(para(fmt::format("Method {}; {}.", method, gap_text)));
    // image inputs ([N, C, H, W] or [N, H, W]): features are pixels, named by their position
    const json& shape = arr(r, "input_shape");
    // every dimension after the batch an integer in [1, 2^20] (so plane sizes cannot overflow)
    auto dim_ok = [&](size_t i) {
      return shape[i].is_number_integer() && shape[i].get<int64_t>() >= 1 && shape[i].get<int64_t>() <= (int64_t(1) << 20);
    };
    const bool image = (shape.size() == 4 || shape.size() == 3) && dim_ok(shape.size() - 1) &&
                       shape.back().get<int64_t>() > 1 && dim_ok(shape.size() - 2) && (shape.size() == 3 || dim_ok(1));
    const int64_t width = image ? shape.back().get<int64_t>() : 0, height = image ? shape[shape.size() - 2].get<int64_t>() : 0;
    std::vector<Bar> bars;
    std::vector<std::vector<std::string>> rows;
    for (const auto& g : arr(r, "global_ranking")) {
      std::string f = str(g, "name", str(g, "feature"));
      if (image && at(g, "feature").is_number_integer() && width > 0 && height > 0) {
        const int64_t k = at(g, "feature").get<int64_t>(), plane = width * height;
        f = fmt::format("pixel (row {}, column {}{})", (k % plane) / width, k % width,
                        shape.size() == 4 && shape[1].get<int64_t>() > 1 ? fmt::format(", channel {}", k / plane) : "");
      }
      if (auto v = dbl(g, "mean_abs_attribution")) {
        if (bars.size() < 20) bars.push_back({f, *v, std::nullopt});
        rows.push_back({f, num(json(*v))});
      }
    }
    int map_rows = 0, map_cols = 0;
    int64_t map_images = 0;
    const std::vector<double> mean_map =
        image ? mean_abs_map(str(r, "attributions_file"), asset_dir, map_rows, map_cols, map_images) : std::vector<double>{};
    if (!rows.empty()) {
      if (rows.size() > 20) rows.resize(20);
      if (image) d.push_back(para("Pixels with the largest mean |attribution| (rows and columns counted from 0 at the top left):"));
      d.push_back(table({image ? "Pixel" : "Feature", "Mean |attribution|"}, rows));
      // a heatmap of pixels says more than bars named by pixel positions
      if (mean_map.empty())
        d.push_back(chart(svg_bar_chart("Global importance (mean |attribution|): " + str(s, "model"), bars), "global-importance"));
    } else {
      d.push_back(note("Global ranking not available."));
    }
    const json& sc = at(r, "checks").is_null() ? at(r, "sanity_checks") : at(r, "checks");
    rows.clear();
    if (sc.is_object()) {
      for (auto it = sc.begin(); it != sc.end(); ++it)
        rows.push_back({it.key(), brief(it.value())});
    } else if (sc.is_array()) {
      for (const auto& c : sc)
        rows.push_back({str(c, "name", str(c, "check")), brief(c)});
    }
    if (!rows.empty()) {
      d.push_back(para("Sanity checks:"));
      d.push_back(table({"Check", "Result"}, rows));
    }
    // the average heatmap first, the per-image heatmaps beside it
    if (!mean_map.empty())
      d.push_back(chart(svg_heatmap(fmt::format("Average |attribution|, {} images: {}", map_images, str(s, "model")),
                                    "mean |attribution| per pixel (image row x column)", map_rows, map_cols, mean_map),
                        "attribution-heatmap"));
    std::vector<std::string> pngs;
    collect_pngs(r, pngs);
    if (pngs.size() > 8) pngs.resize(8);
    for (const auto& p : pngs) {
      Block b;
      b.kind = K::Image;
      b.image_path = p;
      b.text = "Attribution heatmap " + p.substr(p.find_last_of('/') + 1);
      d.push_back(b);
    }
  });
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
      .render = [](SectionRender& r) { explain_blocks(r.d, r.report, r.asset_dir); },
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
