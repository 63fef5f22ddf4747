// mlaudit explain: attributions of a model's outputs (gradient family and perturbation
// family), with a JSON summary, heatmaps for images and sanity checks usable as gates.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "command.h"
#include "mlaudit/explain/report.h"
#include "mlaudit/explain/summary.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/engine/trees.h"
#include "mlaudit/explain/attribution.h"
#include "mlaudit/explain/device.h"
#include "mlaudit/explain/tree_shap.h"
#include "shard.h"
#include "version.h"

namespace mlaudit::cli {
namespace {

using engine::Tensor;
using json = nlohmann::json;

const std::string kMethods = [] {
  std::string out;
  for (const auto& m : explain::method_names()) out += (out.empty() ? "" : ", ") + m;
  return out;
}();

std::vector<int64_t> parse_int_list(const std::string& option, const std::string& text) {
  std::vector<int64_t> out;
  for (double v : parse_double_list(option, text)) {
    if (v != std::floor(v) || v < 1) throw InputError("cli", fmt::format("--{}: '{}' is not a positive integer", option, v));
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

struct Setup {
  std::string method;
  std::vector<int64_t> targets;
  Tensor background;
  Tensor baseline;
  std::vector<int64_t> groups;  // per element of one sample (perturbation methods on images)
  explain::IgOptions ig;
  explain::DeepLiftOptions dl;
  explain::SmoothGradOptions sg;
  explain::OcclusionOptions occ;
  explain::KernelShapOptions shap;
  explain::LimeOptions lime;
  explain::TreeShapOptions tree;
  std::shared_ptr<const engine::TreeEnsemble> ensemble;  // tree-shap: the recovered trees
  int64_t batch_rows = 256;
};

// Per-method extras for the JSON summary.
using Extras = explain::MethodExtras;

// `graph` is the model's graph (deeplift walks its nodes); the other methods only use `model`.
Tensor run_method(const Setup& s, const engine::Model& model, const engine::Graph& graph, const Tensor& x,
                  Extras* extras) {
  const auto& t = s.targets;
  if (s.method == "gradient") return explain::gradient(model, x, t, s.batch_rows);
  if (s.method == "saliency") return explain::saliency(model, x, t, s.batch_rows);
  if (s.method == "input-x-gradient") return explain::input_x_gradient(model, x, t, s.batch_rows);
  if (s.method == "integrated-gradients") {
    const Tensor base = s.baseline.shape() == x.shape() ? s.baseline : Tensor(x.shape());
    // --device cuda: explain's device loop (path points, gradients and sums on the GPU) when the
    // model's Session is on the device; the CPU function otherwise (same checks and results).
    auto dev = explain::device_integrated_gradients(model, x, base, t, s.ig);
    auto r = dev ? std::move(*dev) : explain::integrated_gradients(model, x, base, t, s.ig);
    if (extras) extras->ig = r;
    return r.attributions;
  }
  if (s.method == "deeplift") {
    const Tensor base = s.baseline.shape() == x.shape() ? s.baseline : Tensor(x.shape());
    auto r = explain::deeplift(graph, x, base, t, s.dl);
    if (extras) extras->dl = r;
    return r.attributions;
  }
  if (s.method == "smoothgrad" || s.method == "smoothgrad-sq") {
    // --device cuda: the device loop on the same noise samples (drawn on the host as the CPU path draws them).
    if (auto dev = explain::device_smoothgrad(model, x, t, s.sg)) return std::move(*dev);
    return explain::smoothgrad(model, x, t, s.sg);
  }
  if (s.method == "occlusion") return explain::occlusion(model, x, t, s.occ);
  if (s.method == "kernel-shap") {
    auto r = explain::kernel_shap(model, x, s.background, t, s.shap);
    if (extras) extras->shap = r;
    return r.attributions;
  }
  if (s.method == "lime") {
    auto r = explain::lime(model, x, s.background, t, s.lime);
    if (extras) extras->lime = r;
    return r.attributions;
  }
  if (s.method == "tree-shap") {
    // exact TreeSHAP on the recovered trees; the target column of each row as attributions
    auto r = explain::TreeExplainer(*s.ensemble, s.background, s.tree).shap_values(x.reshape({x.shape()[0], x.numel() / x.shape()[0]}));
    const int64_t n = r.rows, f = r.features;
    std::vector<float> a(static_cast<size_t>(n * f));
    for (int64_t i = 0; i < n; ++i) {
      const auto col = explain::tree_shap_column(*s.ensemble, r, i, t[i]);
      for (int64_t j = 0; j < f; ++j) a[i * f + j] = static_cast<float>(col[j]);
    }
    if (extras) extras->tree = std::move(r);
    return Tensor::from_floats(x.shape(), a);
  }
  throw InputError("cli", fmt::format("explain: unknown --method '{}' (methods: {})", s.method, kMethods));
}

int cmd_explain(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("explain options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model file")
      ("data,d", po::value<std::string>(), "inputs X.npy (batch first)")
      ("labels,l", po::value<std::string>(), "labels y.npy (needed by --target label and permutation)")
      ("method", po::value<std::string>()->default_value("integrated-gradients"), kMethods.c_str())
      ("target", po::value<std::string>()->default_value("predicted"), "label | predicted | K (output index)")
      ("output", po::value<std::string>()->default_value("logit"), "explain the raw output (logit) or softmax")
      ("out,o", po::value<std::string>(), "report JSON (mlaudit.explain/1); an --out ending in .npy is the old form of "
       "--attributions")
      ("attributions", po::value<std::string>(), "attributions .npy (input's shape; one sample's shape for permutation)")
      ("json", po::value<std::string>(), "old spelling of --out (the report JSON)")
      ("heatmap-dir", po::value<std::string>(), "write heatmap_<i>.png per image row")
      ("max-heatmaps", po::value<int>()->default_value(32), "at most this many heatmaps")
      ("background", po::value<std::string>(), "background rows B.npy (kernel-shap, lime, mean baseline; tree-shap: "
       "the references, or for tree-path-dependent the rows counted into node covers, ideally the training data)")
      ("feature-perturbation", po::value<std::string>()->default_value("interventional"),
       "tree-shap: interventional (against each --background row, as shap with data) | tree-path-dependent "
       "(node covers counted from --background)")
      ("shap-model-output", po::value<std::string>()->default_value("raw"),
       "tree-shap: raw (margins) | probability (interventional only; shap's per-reference rescaling)")
      ("interactions", po::value<std::string>(), "tree-shap, tree-path-dependent: SHAP interaction values of the target "
       "output, FILE.npy [N, F, F]")
      ("baseline", po::value<std::string>()->default_value("zeros"), "IG baseline: zeros | mean | blur | FILE.npy")
      ("blur-sigma", po::value<double>()->default_value(5.0), "Gaussian sigma (pixels) of --baseline blur")
      ("rule", po::value<std::string>()->default_value("gausslegendre"),
       "IG rule: gausslegendre | riemann_left | riemann_right | riemann_middle | riemann_trapezoid")
      ("steps", po::value<int>()->default_value(50), "IG steps")
      ("deeplift-captum", "deeplift: reproduce Captum's DeepLift hook order (a ReLU feeding a MaxPool sees the "
       "ordinary gradient), which breaks summation-to-delta on such nets; default: chain rule of multipliers")
      ("nsamples", po::value<int64_t>()->default_value(0),
       "smoothgrad noise samples (50), kernel-shap coalitions (2M+2048), lime samples (5000/1000); 0 = default "
       "(the audit YAML's nsamples; rows are --limit)")
      ("noise-level", po::value<double>()->default_value(0.15, "0.15"), "smoothgrad sigma / (max - min) of each input (Smilkov et al.)")
      ("stdevs", po::value<double>(), "smoothgrad sigma in input units, as Captum's NoiseTunnel stdevs (replaces --noise-level)")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("window", po::value<std::string>(), "occlusion window per sample axis, e.g. 1,4,4 (default: C,4,4 for images, 1)")
      ("stride", po::value<std::string>(), "occlusion stride per axis (default: the window)")
      ("occlusion-value", po::value<float>()->default_value(0.0f), "value written into the occluded window")
      ("superpixel", po::value<int64_t>()->default_value(4), "kernel-shap/lime/permutation on images: grid cell size")
      ("repeats", po::value<int>()->default_value(5), "permutation repeats")
      ("top-k", po::value<int>()->default_value(10), "features listed per sample")
      ("features", po::value<std::string>(), "feature names (tabular data): FILE or @FILE with one per line, or a,b,c")
      ("limit", po::value<int64_t>()->default_value(0), "explain only the first N rows (0 = all)")
      ("batch-rows", po::value<int64_t>()->default_value(0),
       "rows per forward/backward call; 0 = auto: about 32768 input values per call, 1 to 256 rows "
       "(small calls keep a CNN's activations in cache); kernel-shap: 1 to 4096 rows")
      ("max-gap", po::value<double>()->default_value(0.05, "0.05"), "IG completeness / DeepLIFT summation-to-delta: warn above this relative gap")
      ("check-randomization", "model-randomization check (Adebayo et al. 2018)")
      ("randomization-threshold", po::value<double>()->default_value(0.5),
       "flag rows whose rank correlation with the randomized model exceeds this")
      ("check-stability", "max-sensitivity under uniform noise (Yeh et al. 2019)")
      ("stability-radius", po::value<double>()->default_value(0.02), "max-sensitivity L_inf radius")
      ("stability-samples", po::value<int>()->default_value(10), "max-sensitivity perturbations")
      ("gate", "exit 1 when a sanity check warns");
  shard::add_option(desc);
  po::variables_map vm;
  if (!parse_options("explain",
                     "mlaudit explain --model M.onnx --data X.npy [--labels y.npy] --method M [--target T] --out R.json "
                     "[--attributions A.npy] [--heatmap-dir DIR] [--shard I/N]",
                     desc, args, vm, {"model", "data"}))
    return 0;
  // --out is the report JSON as in every command; the attributions array is --attributions.
  // Old forms: --json for the report, an --out ending in .npy for the array.
  std::string json_path, npy_path;
  if (vm.count("out")) {
    const std::string out = vm["out"].as<std::string>();
    (std::filesystem::path(out).extension() == ".npy" ? npy_path : json_path) = out;
  }
  if (vm.count("attributions")) {
    if (!npy_path.empty()) throw InputError("cli", "explain: give --attributions only (an --out ending in .npy is its old form)");
    npy_path = vm["attributions"].as<std::string>();
  }
  if (vm.count("json")) {
    if (!json_path.empty()) throw InputError("cli", "explain: give --out only (--json is its old spelling)");
    json_path = vm["json"].as<std::string>();
  }
  if (json_path.empty() && npy_path.empty())
    throw InputError("cli", "explain: give --out R.json and/or --attributions A.npy (see 'mlaudit explain --help')");
  shard::Shard part = shard::parse("explain", vm);
  if (part.on && json_path.empty())
    throw InputError("explain", "--shard writes a part for 'mlaudit merge': give --out PART.json");
  if (part.on && vm.count("interactions"))
    throw InputError("explain",
                     "--interactions with --shard: merge does not join interaction arrays; run it in one process");
  const int64_t nsamples = vm["nsamples"].as<int64_t>();

  Setup s;
  s.method = to_lower(vm["method"].as<std::string>());  // IG, KernelSHAP-style spellings
  const auto& methods = explain::method_names();
  if (std::find(methods.begin(), methods.end(), s.method) == methods.end()) {
    const std::string hint = datasets::did_you_mean(s.method, methods);
    throw InputError("cli", fmt::format("explain: unknown --method '{}' (methods: {}){}", vm["method"].as<std::string>(),
                                        kMethods, hint.find("did you mean") != std::string::npos
                                                      ? hint.substr(0, hint.find("? ") + 1) + ")"
                                                      : ""));
  }
  const std::string output_kind = vm["output"].as<std::string>();
  if (output_kind != "logit" && output_kind != "softmax")
    throw InputError("cli", fmt::format("explain: --output '{}' is not logit or softmax", output_kind));
  s.batch_rows = vm["batch-rows"].as<int64_t>();
  if (s.batch_rows < 0) throw InputError("cli", "explain: --batch-rows must be 0 (auto) or positive");
  if (s.method == "deeplift" && output_kind == "softmax")
    throw InputError("cli", "explain: --method deeplift explains the raw outputs; --output softmax is not supported "
                            "(Captum's softmax rule normalises over the whole batch)");
  const explain::Target target = explain::parse_target(vm["target"].as<std::string>());
  const int top_k = std::max(1, vm["top-k"].as<int>());

  // TreeSHAP reads the trees' raw scores itself: the notes load_model gives for probability
  // outputs (audited through their logarithm) do not apply to it.
  GlobalOptions load_global = global;
  if ((s.method == "shap" || s.method == "tree-shap") &&
      engine::has_tree_ensemble(engine::load_onnx(vm["model"].as<std::string>())))
    load_global.quiet = true;
  auto session = load_model(vm["model"].as<std::string>(), load_global);
  // --method shap: exact TreeSHAP on a tree ensemble, KernelSHAP on anything else
  const std::string requested_method = s.method;
  std::string method_choice;
  if (s.method == "shap" || s.method == "tree-shap") {
    const bool trees = engine::has_tree_ensemble(session->graph());
    if (s.method == "tree-shap" && !trees)
      throw InputError("cli", "explain: --method tree-shap needs a tree-ensemble model (ONNX-ML TreeEnsembleClassifier / "
                              "TreeEnsembleRegressor); this model has none: use --method kernel-shap (or --method shap, "
                              "which picks it)");
    if (trees) {
      try {
        // from the file's graph: the session's may end in the Log that explain puts after probabilities
        s.ensemble = std::make_shared<const engine::TreeEnsemble>(
            engine::extract_tree_ensemble(engine::load_onnx(vm["model"].as<std::string>()), global.model_output));
        if (s.method == "shap")
          method_choice = fmt::format("tree ensemble ({} trees): exact TreeSHAP instead of KernelSHAP", s.ensemble->tree_count());
        s.method = "tree-shap";
      } catch (const UnsupportedError& e) {
        if (s.method == "tree-shap")
          throw InputError("cli", fmt::format("explain: --method tree-shap cannot read the trees exactly ({}); "
                                              "--method kernel-shap works on any model", e.what()));
        method_choice = fmt::format("the tree ensemble cannot be read exactly ({}): KernelSHAP", e.what());
      }
    } else {
      method_choice = "not a tree ensemble: KernelSHAP";
    }
    if (s.method == "shap") s.method = "kernel-shap";
  }
  if (s.method != "tree-shap") {
    for (const char* opt : {"feature-perturbation", "shap-model-output"})
      if (!vm[opt].defaulted())
        throw InputError("cli", fmt::format("explain: --{} applies to --method tree-shap only (this run: {})", opt, s.method));
    if (vm.count("interactions"))
      throw InputError("cli", fmt::format("explain: --interactions needs --method tree-shap (this run: {})", s.method));
  }
  if (s.method == "tree-shap" && output_kind == "softmax")
    throw InputError("cli", "explain: --method tree-shap explains raw margins; for probabilities use --shap-model-output "
                            "probability instead of --output softmax");
  {
    const std::string& m = s.method;
    if (m != "occlusion" && m != "kernel-shap" && m != "lime" && m != "permutation" && m != "tree-shap")
      session->require_gradients(fmt::format("input gradients (needed by --method {})", m));
  }
  const std::string data_path = vm["data"].as<std::string>();
  Tensor x = datasets::read_npy_float(data_path);
  if (x.rank() < 2 || x.shape()[0] < 1)
    throw InputError("cli", fmt::format("explain: {}: expected a batch [N,...], got {}", data_path, engine::shape_str(x.shape())));
  const int64_t limit = vm["limit"].as<int64_t>();
  if (limit < 0) throw InputError("explain", "--limit must be >= 0");
  if (limit > 0 && limit < x.shape()[0]) x = x.slice_rows(0, limit);
  datasets::check_finite("explain: --data " + data_path, x);
  int64_t n = x.shape()[0];  // the rows explained: after --shard, the slice's
  const engine::Shape sample_shape(x.shape().begin() + 1, x.shape().end());
  const int64_t d = x.numel() / n;
  const bool is_image = sample_shape.size() >= 2;
  // Auto batch: measured on the fmnist CNN (IG, 50 steps, 1 thread): 25-50 rows per call run
  // 1.6x faster than 256 rows, whose activations no longer fit in cache.
  if (s.batch_rows == 0) s.batch_rows = std::clamp<int64_t>(32768 / std::max<int64_t>(d, 1), 1, 256);
  Tensor labels;
  if (vm.count("labels")) {
    labels = datasets::read_npy_labels(vm["labels"].as<std::string>());
    // a longer label file is cut to the rows kept by --limit; a shorter one is refused
    if (labels.numel() < n) datasets::check_label_count("explain: --labels " + vm["labels"].as<std::string>(), labels.numel(), n, data_path);
    if (labels.numel() > n) labels = labels.reshape({labels.numel()}).slice_rows(0, n);
    datasets::check_labels("explain: --labels " + vm["labels"].as<std::string>(), labels.to_int64s(),
                           model_classes("explain", *session, x));
  }
  if (vm.count("background")) {
    s.background = datasets::read_npy_float(vm["background"].as<std::string>());
    if (s.background.rank() < 1 || s.background.shape()[0] < 1 || s.background.numel() / s.background.shape()[0] != d)
      throw InputError("cli", fmt::format("explain: background {} has shape {}, rows must match the data's {}",
                                          vm["background"].as<std::string>(), engine::shape_str(s.background.shape()),
                                          engine::shape_str(sample_shape)));
    engine::Shape bs{s.background.shape()[0]};
    bs.insert(bs.end(), sample_shape.begin(), sample_shape.end());
    s.background = s.background.reshape(bs);
  }
  std::vector<std::string> names;
  if (vm.count("features")) {
    names = parse_name_list("features", vm["features"].as<std::string>());
    if (static_cast<int64_t>(names.size()) != d)
      throw InputError("cli", fmt::format("explain: {} lists {} names for {} features",
                                          vm["features"].as<std::string>(), names.size(), d));
  }
  auto feature_name = [&](int64_t j) { return names.empty() ? fmt::format("f{}", j) : names[j]; };

  explain::SoftmaxModel softmax(*session);
  const engine::Model& model = output_kind == "softmax" ? static_cast<const engine::Model&>(softmax) : *session;

  json summary;
  summary["schema"] = "mlaudit.explain/1";
  summary["tool_version"] = MLAUDIT_VERSION;
  summary["model"] = vm["model"].as<std::string>();
  summary["data"] = data_path;
  summary["inputs"] = {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
                       {"data", datasets::file_provenance(data_path)}};
  if (vm.count("labels")) summary["inputs"]["labels"] = datasets::file_provenance(vm["labels"].as<std::string>());
  if (vm.count("background")) summary["inputs"]["background"] = datasets::file_provenance(vm["background"].as<std::string>());
  summary["method"] = s.method;
  if (!method_choice.empty()) {
    summary["method_requested"] = requested_method;
    summary["method_choice"] = method_choice;
  }
  summary["output"] = output_kind;
  summary["rows"] = n;
  summary["input_shape"] = x.shape();
  json warnings = json::array();
  bool gate_failed = false;
  const int64_t seed = static_cast<int64_t>(vm["seed"].as<uint64_t>());

  // ---------------------------------------------------------------- permutation (global)
  if (s.method == "permutation") {
    if (part.on || shard::count_only_mode())
      throw InputError("explain", "--method permutation is global over the data set (each feature is shuffled across all "
                                  "rows): it cannot be split with --shard or --mpi; run it in one process");
    if (labels.empty()) throw InputError("cli", "explain: --method permutation needs --labels");
    explain::PermutationOptions po_;
    po_.repeats = vm["repeats"].as<int>();
    po_.seed = vm["seed"].as<uint64_t>();
    po_.batch_rows = s.batch_rows;
    if (is_image) po_.groups = explain::grid_superpixels(sample_shape, vm["superpixel"].as<int64_t>());
    auto r = explain::permutation_importance(*session, x, labels.to_int64s(), po_);
    summary["options"] = {{"repeats", po_.repeats}, {"seed", seed}, {"metric", "accuracy"}};
    summary["baseline_accuracy"] = r.baseline_accuracy;
    std::vector<size_t> order(r.importance_mean.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return r.importance_mean[a] > r.importance_mean[b]; });
    json ranking = json::array();
    for (size_t g : order) {
      json e{{"feature", g}, {"importance_mean", r.importance_mean[g]}, {"importance_std", r.importance_std[g]}};
      if (!is_image) e["name"] = feature_name(static_cast<int64_t>(g));
      ranking.push_back(e);
    }
    summary["global_ranking"] = ranking;
    summary["warnings"] = warnings;
    summary["passed"] = true;
    if (!npy_path.empty()) {
      datasets::write_npy(npy_path, r.importance);
      summary["attributions_file"] = npy_path;
    }
    if (!json_path.empty()) datasets::write_file_atomic(json_path, summary.dump(2) + "\n");
    if (!global.quiet)
      std::cout << fmt::format("explain: permutation importance over {} rows (baseline accuracy {:.4f})\n", n,
                               r.baseline_accuracy);
    return 0;
  }

  // ---------------------------------------------------------------- per-sample methods
  s.targets = explain::resolve_targets(model, x, target, labels.empty() ? nullptr : &labels);
  json options;
  if (s.method == "integrated-gradients") {
    s.ig.rule = explain::parse_ig_rule(vm["rule"].as<std::string>());
    s.ig.steps = vm["steps"].as<int>();
    s.ig.batch_rows = s.batch_rows;
    s.baseline = explain::make_baseline(vm["baseline"].as<std::string>(), x, s.background.empty() ? nullptr : &s.background,
                                        vm["blur-sigma"].as<double>());
    options = {{"rule", vm["rule"].as<std::string>()}, {"steps", s.ig.steps}, {"baseline", vm["baseline"].as<std::string>()}};
  } else if (s.method == "deeplift") {
    s.dl.batch_rows = s.batch_rows;
    s.dl.captum_compat = vm.count("deeplift-captum") != 0;
    s.baseline = explain::make_baseline(vm["baseline"].as<std::string>(), x, s.background.empty() ? nullptr : &s.background,
                                        vm["blur-sigma"].as<double>());
    options = {{"rule", "rescale"}, {"baseline", vm["baseline"].as<std::string>()},
               {"multipliers", s.dl.captum_compat ? "captum" : "chain-rule"}, {"eps", s.dl.eps}};
  } else if (s.method == "smoothgrad" || s.method == "smoothgrad-sq") {
    s.sg.samples = nsamples > 0 ? static_cast<int>(nsamples) : 50;
    s.sg.noise_level = vm["noise-level"].as<double>();
    if (vm.count("stdevs")) {
      if (!vm["noise-level"].defaulted())
        throw InputError("cli", "explain: give --stdevs (absolute sigma) or --noise-level (relative to each input's range), not both");
      s.sg.stdevs = vm["stdevs"].as<double>();
      if (!(s.sg.stdevs >= 0)) throw InputError("cli", "explain: --stdevs must be non-negative");
    }
    s.sg.squared = s.method == "smoothgrad-sq";
    s.sg.seed = vm["seed"].as<uint64_t>();
    s.sg.batch_rows = s.batch_rows;
    options = {{"samples", s.sg.samples}, {"seed", seed}};
    if (s.sg.stdevs >= 0) options["stdevs"] = s.sg.stdevs;
    else options["noise_level"] = s.sg.noise_level;
  } else if (s.method == "occlusion") {
    if (vm.count("window")) {
      s.occ.window = parse_int_list("window", vm["window"].as<std::string>());
    } else {
      s.occ.window.assign(sample_shape.size(), 1);
      if (is_image) {
        s.occ.window = engine::Shape(sample_shape.begin(), sample_shape.end() - 2);
        s.occ.window.push_back(std::min<int64_t>(4, sample_shape[sample_shape.size() - 2]));
        s.occ.window.push_back(std::min<int64_t>(4, sample_shape.back()));
      }
    }
    if (vm.count("stride")) s.occ.stride = parse_int_list("stride", vm["stride"].as<std::string>());
    s.occ.baseline = vm["occlusion-value"].as<float>();
    s.occ.batch_rows = s.batch_rows;
    options = {{"window", s.occ.window}, {"stride", s.occ.stride.empty() ? s.occ.window : s.occ.stride},
               {"baseline", s.occ.baseline}};
  } else if (s.method == "kernel-shap") {
    if (s.background.empty()) throw InputError("cli", "explain: --method kernel-shap needs --background B.npy");
    s.shap.samples = nsamples;
    s.shap.seed = vm["seed"].as<uint64_t>();
    if (!vm["batch-rows"].defaulted()) s.shap.batch_rows = s.batch_rows;
    if (is_image) s.shap.groups = explain::grid_superpixels(sample_shape, vm["superpixel"].as<int64_t>());
    options = {{"samples", s.shap.samples > 0 ? json(s.shap.samples) : json("auto")},
               {"background_rows", s.background.shape()[0]}, {"seed", seed}};
    if (is_image) options["superpixel"] = vm["superpixel"].as<int64_t>();
  } else if (s.method == "lime") {
    s.lime.samples = static_cast<int>(nsamples);
    s.lime.seed = vm["seed"].as<uint64_t>();
    s.lime.batch_rows = s.batch_rows * 16;
    if (is_image) {
      s.lime.groups = explain::grid_superpixels(sample_shape, vm["superpixel"].as<int64_t>());
    } else if (s.background.empty()) {
      throw InputError("cli", "explain: --method lime on tabular data needs --background B.npy (feature scales)");
    }
    options = {{"samples", s.lime.samples > 0 ? json(s.lime.samples) : json("default")}, {"seed", seed}};
  } else if (s.method == "tree-shap") {
    if (s.background.empty())
      throw InputError("cli", "explain: --method tree-shap needs --background B.npy: the reference rows (interventional) "
                              "or, for --feature-perturbation tree-path-dependent, the rows whose counts at each node are "
                              "the covers (ONNX stores none; give the training data)");
    if (is_image || d != s.ensemble->features)
      throw InputError("cli", fmt::format("explain: --method tree-shap needs rows of the model's {} features, got {}",
                                          s.ensemble->features, engine::shape_str(sample_shape)));
    s.tree.perturbation = explain::parse_feature_perturbation(vm["feature-perturbation"].as<std::string>());
    s.tree.model_output = explain::parse_tree_model_output(vm["shap-model-output"].as<std::string>());
    if (vm.count("interactions") && s.tree.perturbation != explain::FeaturePerturbation::TreePathDependent)
      throw InputError("cli", "explain: --interactions needs --feature-perturbation tree-path-dependent (shap computes "
                              "interaction values on the path-dependent game only)");
    s.background = s.background.reshape({s.background.shape()[0], d});
    const bool pd = s.tree.perturbation == explain::FeaturePerturbation::TreePathDependent;
    options = {{"feature_perturbation", explain::to_string(s.tree.perturbation)},
               {"model_output", explain::to_string(s.tree.model_output)},
               {"background_rows", s.background.shape()[0]},
               {"trees", s.ensemble->tree_count()},
               {"algorithm", pd ? "path-dependent TreeSHAP (Lundberg et al. 2020, Algorithm 2)"
                                : "interventional TreeSHAP (shap's tree_shap_indep), averaged over the background rows"}};
    if (pd)
      options["covers"] = fmt::format("node covers = rows of --background reaching each node ({} rows); ONNX stores no "
                                      "covers (nodes_hitrates is not one). On the unweighted training data these equal "
                                      "scikit-learn's weighted_n_node_samples and LightGBM's internal_count without "
                                      "bagging; XGBoost's own covers are hessian sums",
                                      s.background.shape()[0]);
    if (s.tree.model_output == explain::TreeModelOutput::Probability)
      options["probability"] = s.ensemble->link == engine::TreeEnsemble::Link::Softmax
                                   ? "softmax head: per background row, the mean softmax Jacobian on the segment from "
                                     "its margins to x's times the raw attributions (shap has no softmax probability)"
                                   : "per background row, raw attributions times (p(x) - p(r)) / (m(x) - m(r)) "
                                     "(shap's rescaling)";
  }
  summary["options"] = options;
  summary["target"] = vm["target"].as<std::string>();

  // --shard I/N: rows [first, end) of the rows --limit kept. What depends on several rows is
  // fixed above on all of them (targets, a per-row or blurred baseline; a mean baseline is the
  // background's), and every random stream is keyed by the row's global index (row_offset), so
  // the slice's numbers are the whole run's.
  if (vm.count("heatmap-dir") && !is_image)
    throw InputError("cli", "explain: --heatmap-dir needs image inputs [N,C,H,W] or [N,H,W]");
  shard::set_total(part, "explain", n);
  if (part.on) {
    x = x.slice_rows(part.first, part.end);
    if (!labels.empty()) labels = labels.reshape({labels.numel()}).slice_rows(part.first, part.end);
    s.targets.assign(s.targets.begin() + part.first, s.targets.begin() + part.end);
    if (s.baseline.rank() >= 1 && s.baseline.shape()[0] == part.total)
      s.baseline = s.baseline.slice_rows(part.first, part.end);
    n = x.shape()[0];
    summary["rows"] = n;
    summary["input_shape"] = x.shape();
  }
  s.sg.row_offset = s.shap.row_offset = s.lime.row_offset = part.first;

  Extras extras;
  const auto t_start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  Tensor attributions;
  {
    // rows done, rate and ETA on stderr for the methods that take long (IG, SmoothGrad,
    // occlusion, KernelSHAP, LIME); the sanity checks below re-run quietly
    engine::ProgressLine line("explain " + s.method, "rows", global.show_progress());
    s.ig.progress = s.sg.progress = s.occ.progress = s.shap.progress = s.lime.progress = s.tree.progress = line.fn();
    attributions = run_method(s, model, session->graph(), x, &extras);
    s.ig.progress = s.sg.progress = s.occ.progress = s.shap.progress = s.lime.progress = s.tree.progress = nullptr;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  // Process CPU time (all threads): steadier than wall time on a shared machine.
  const double cpu = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  summary["timing"] = {{"attribution_seconds", seconds}, {"seconds_per_sample", seconds / n},
                       {"cpu_seconds", cpu}, {"cpu_seconds_per_sample", cpu / n}};
  const std::vector<double> fx = explain::target_outputs(model, x, s.targets);

  // Per-sample summary; the aggregates (global ranking, checks) from what mlaudit/explain/summary.h
  // keeps per row, which a part carries for merge.
  explain::summary::Aggregates agg;
  agg.method = s.method;
  agg.rows = n;
  agg.first_row = part.first;
  agg.is_image = is_image;
  agg.top_k = top_k;
  if (!is_image)
    for (int64_t j = 0; j < d; ++j) agg.names.push_back(feature_name(j));
  agg.abs_sum.resize(size_t(d));
  agg.max_gap_threshold = vm["max-gap"].as<double>();
  agg.deeplift_captum = s.dl.captum_compat;
  json samples = json::array();
  double max_gap = 0;
  const std::vector<int64_t> label_values = labels.empty() ? std::vector<int64_t>() : labels.to_int64s();
  for (int64_t i = 0; i < n; ++i) {
    const float* a = attributions.f32() + i * d;
    for (int64_t j = 0; j < d; ++j) agg.abs_sum[size_t(j)].add(std::fabs(a[j]));
    double gap = 0;
    samples.push_back(explain::sample_record(s.method, a, d, i, part.first, s.targets[i], fx[i],
                                             label_values.empty() ? nullptr : &label_values[size_t(i)], extras,
                                             s.ensemble.get(), agg.names, top_k, &gap));
    max_gap = std::max(max_gap, gap);
  }
  summary["samples"] = samples;
  agg.max_gap = max_gap;
  if (s.method == "tree-shap") summary["expected_value"] = extras.tree.expected_value;
  if (s.method == "kernel-shap")
    for (double g : extras.shap.efficiency_gap)
      agg.max_abs_efficiency_gap = std::max(agg.max_abs_efficiency_gap, std::fabs(g));
  if (vm.count("check-randomization")) {
    // The same options (seeds keyed by the global row) on the randomized model.
    engine::Graph rg = explain::randomize_last_layer(session->graph(), vm["seed"].as<uint64_t>() + 1, &agg.layer);
    engine::SessionOptions so;
    so.threads = global.threads;
    engine::Session randomized(std::move(rg), so);
    explain::SoftmaxModel rsoft(randomized);
    const engine::Model& rmodel = output_kind == "softmax" ? static_cast<const engine::Model&>(rsoft) : randomized;
    const Tensor ra = run_method(s, rmodel, randomized.graph(), x, nullptr);
    agg.randomization = true;
    agg.rank_correlation = explain::randomization_correlation(attributions, ra);
    agg.randomization_threshold = vm["randomization-threshold"].as<double>();
  }
  if (vm.count("check-stability")) {
    agg.stability = true;
    agg.stability_radius = vm["stability-radius"].as<double>();
    agg.stability_samples = vm["stability-samples"].as<int>();
    agg.max_sensitivity = explain::max_sensitivity(
        model, x,
        [&](const engine::Model& mm, const Tensor& xx) {
          // max_sensitivity passes the same model back, so the session's graph fits deeplift.
          return run_method(s, mm, session->graph(), xx, nullptr);
        },
        agg.stability_radius, agg.stability_samples, vm["seed"].as<uint64_t>() + 2, part.first);
  }
  gate_failed = explain::summary::write_aggregates(summary, agg);
  warnings = summary["warnings"];

  // Outputs: everything computed first, then each file written atomically.
  std::vector<std::pair<std::string, std::string>> heatmaps;
  if (vm.count("heatmap-dir")) {
    // heatmap_<global row>.png for the global rows below --max-heatmaps (a shard writes its own)
    const int64_t count = std::clamp<int64_t>(vm["max-heatmaps"].as<int>() - part.first, 0, n);
    const engine::Shape one(sample_shape);
    for (int64_t i = 0; i < count; ++i) {
      const std::string path = (std::filesystem::path(vm["heatmap-dir"].as<std::string>()) /
                                fmt::format("heatmap_{}.png", part.first + i)).string();
      heatmaps.emplace_back(path, explain::encode_heatmap_png(x.slice_rows(i, i + 1).reshape(one),
                                                              attributions.slice_rows(i, i + 1).reshape(one)));
    }
    summary["heatmaps"] = [&] {
      json h = json::array();
      for (auto& p : heatmaps) h.push_back(p.first);
      return h;
    }();
  }
  Tensor interactions;
  if (vm.count("interactions")) {
    // the target column of each row, as the attributions: [N, F, F]
    auto r = explain::TreeExplainer(*s.ensemble, s.background, s.tree).shap_interaction_values(x.reshape({n, d}));
    const bool binary = s.ensemble->head == engine::TreeEnsemble::Head::BinaryMargin && r.outputs == 1;
    std::vector<float> v(static_cast<size_t>(n * d * d));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = binary ? 0 : s.targets[i];
      const double sign = binary && s.targets[i] == 0 ? -1.0 : 1.0;
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) v[(i * d + a) * d + b] = static_cast<float>(sign * r.at(i, a, b, k));
    }
    interactions = Tensor::from_floats({n, d, d}, v);
    summary["interactions_file"] = vm["interactions"].as<std::string>();
    summary["interactions_max_local_accuracy_gap"] = r.max_local_accuracy_gap;
  }
  if (!interactions.empty()) datasets::write_npy(vm["interactions"].as<std::string>(), interactions);
  std::string npy_bytes;
  if (!npy_path.empty()) {
    npy_bytes = datasets::encode_npy(attributions);
    summary["attributions_file"] = npy_path;
  }
  if (part.on) {
    shard::make_part(summary, "explain", part, vm, global);
    // What merge needs for the aggregates of the whole run, and the slice's attributions file
    // (its hash, so that merge --attributions takes no stale file for it).
    summary["shard"]["explain"] = agg.to_json();
    if (!npy_path.empty())
      summary["shard"]["explain"]["attributions"] = {{"file", npy_path}, {"sha256", datasets::sha256_hex(npy_bytes)},
                                                    {"shape", attributions.shape()}};
  }
  if (!npy_path.empty()) datasets::write_file_atomic(npy_path, npy_bytes);
  for (auto& [path, bytes] : heatmaps) datasets::write_file_atomic(path, bytes);
  if (!json_path.empty()) datasets::write_file_atomic(json_path, summary.dump(2) + "\n");
  if (!global.quiet) {
    std::cout << fmt::format("explain: {} attributions for {} rows of {}", s.method, n, engine::shape_str(sample_shape));
    if (s.method == "integrated-gradients") std::cout << fmt::format(", max completeness gap {:.4g}", max_gap);
    if (s.method == "deeplift") std::cout << fmt::format(", max summation-to-delta gap {:.4g}", max_gap);
    if (s.method == "tree-shap")
      std::cout << fmt::format(" (exact, {}, {} output, {} background rows), max local-accuracy gap {:.3g}",
                               explain::to_string(s.tree.perturbation), explain::to_string(s.tree.model_output),
                               s.background.shape()[0], max_gap);
    std::cout << "\n";
    if (!method_choice.empty()) std::cout << "explain: --method " << requested_method << ": " << method_choice << "\n";
    for (const auto& w : warnings) std::cerr << "mlaudit: warning: " << w.get<std::string>() << "\n";
  }
  return gate_failed && vm.count("gate") ? 1 : 0;
}

}  // namespace

MLAUDIT_COMMAND("explain", "attributions (IG, SHAP, LIME, ...) with sanity checks and heatmaps", cmd_explain);

}  // namespace mlaudit::cli
