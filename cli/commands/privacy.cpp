// mlaudit privacy: membership inference attacks (loss, confidence, modified entropy,
// offline LiRA, label-only) against a model, given known members and non-members.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <tuple>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/privacy/membership.h"
#include "mlaudit/privacy/report.h"
#include "shard.h"
#include "version.h"
#ifdef MLAUDIT_HAVE_robustness
#include "mlaudit/robustness/attacks.h"
#endif

namespace mlaudit::cli {
namespace {

namespace fs = std::filesystem;

// Samples and labels from .npy (x and labels files) or from a CSV table (feature
// columns from --features or every column but the label column).
void load_set(const std::string& x_path, const std::string& y_option, const po::variables_map& vm,
              const std::string& label_column, engine::Tensor& x, std::vector<int64_t>& y) {
  if (x_path.size() > 4 && x_path.substr(x_path.size() - 4) == ".csv") {
    datasets::CsvTable t = datasets::read_csv(x_path);
    std::vector<std::string> features;
    if (vm.count("features")) {
      features = parse_name_list("features", vm["features"].as<std::string>());
    } else {
      for (const auto& c : t.columns)
        if (c != label_column) features.push_back(c);
    }
    x = t.matrix(features);
    std::vector<double> lab = t.numbers(label_column);
    y.clear();
    for (size_t i = 0; i < lab.size(); ++i) {
      if (lab[i] != std::floor(lab[i]))
        throw InputError("privacy", fmt::format("{}: label column '{}' row {} is not an integer ({})", x_path,
                                                label_column, i + 1, lab[i]));
      y.push_back(int64_t(lab[i]));
    }
    return;
  }
  if (!vm.count(y_option)) throw InputError("privacy", "--" + y_option + " is required with the .npy input " + x_path);
  x = datasets::read_npy_float(x_path);
  y = datasets::read_npy_labels(vm[y_option].as<std::string>()).to_int64s();
  if (x.rank() == 0 || x.dim(0) != int64_t(y.size()))
    throw InputError("privacy", fmt::format("{} holds {} samples but {} holds {} labels", x_path,
                                            x.rank() ? x.dim(0) : 0, vm[y_option].as<std::string>(), y.size()));
}

#ifndef MLAUDIT_HAVE_robustness
// Distance to the decision boundary by bisection along the normalised loss gradient
// (a simple upper bound on the minimal L2 perturbation) when the robustness module is absent.
privacy::BoundaryDistanceFn gradient_bisection(const engine::Model& model, double lo, double hi) {
  return [&model, lo, hi](const engine::Tensor& x, const std::vector<int64_t>& y) {
    const engine::Tensor g = engine::cross_entropy_gradient(model, x, y);
    const int64_t n = x.dim(0), d = x.numel() / n;
    std::vector<double> dist(size_t(n), std::numeric_limits<double>::infinity());
    for (int64_t i = 0; i < n; ++i) {
      const engine::Tensor xi = x.slice_rows(i, i + 1);
      double norm = 0;
      for (int64_t k = 0; k < d; ++k) norm += double(g.f32()[i * d + k]) * g.f32()[i * d + k];
      norm = std::sqrt(norm);
      if (norm == 0) continue;
      auto moved = [&](double t) {
        engine::Tensor z = xi.clone();
        for (int64_t k = 0; k < d; ++k)
          z.f32()[k] = float(std::clamp(double(xi.f32()[k]) + t * g.f32()[i * d + k] / norm, lo, hi));
        return z;
      };
      auto flips = [&](double t) { return engine::argmax_rows(model.forward(moved(t)))[0] != y[size_t(i)]; };
      double a = 0, b = 1e-3;
      while (!flips(b) && b < 1e6) a = b, b *= 2;
      if (!flips(b)) continue;
      for (int it = 0; it < 30; ++it) {
        const double m = 0.5 * (a + b);
        (flips(m) ? b : a) = m;
      }
      // Report the realised L2 distance of the (clipped) point that flips.
      const engine::Tensor z = moved(b);
      double l2 = 0;
      for (int64_t k = 0; k < d; ++k) l2 += std::pow(double(z.f32()[k]) - xi.f32()[k], 2);
      dist[size_t(i)] = std::sqrt(l2);
    }
    return dist;
  };
}
#endif

int cmd_privacy(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("privacy options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model under audit (logits output)")
      ("members", po::value<std::string>(), "samples known to be in the training data (.npy, or .csv with --label-column)")
      ("member-labels", po::value<std::string>(), "labels of the members (.npy, integers)")
      ("non-members", po::value<std::string>(), "samples from the same distribution not trained on")
      ("non-member-labels", po::value<std::string>(), "labels of the non-members (.npy)")
      ("limit", po::value<int64_t>()->default_value(0), "use only the first N members and N non-members (0: all)")
      ("label-column", po::value<std::string>()->default_value("label"), "label column of .csv inputs")
      ("features", po::value<std::string>(), "the model's feature columns (.csv inputs): FILE or @FILE with one per line, or a,b,c")
      ("attacks", po::value<std::string>(), "comma list of loss,confidence,entropy,lira,label-only "
                                             "(default loss,confidence,entropy, plus lira with --reference-models)")
      ("reference-models", po::value<std::string>(), "folder of ONNX reference models trained without the targets (LiRA)")
      ("fixed-variance", po::value<std::string>()->default_value("auto"), "LiRA variance: auto, global or per-example")
      ("clip-min", po::value<double>()->default_value(0.0), "input domain lower bound (label-only attack)")
      ("clip-max", po::value<double>()->default_value(1.0), "input domain upper bound (label-only attack)")
      ("label-only-steps", po::value<int>()->default_value(50), "DeepFool iterations for the label-only attack")
      ("batch", po::value<int>()->default_value(256), "samples per model call and per label-only DeepFool block (with "
                                                       "--shard a shard runs whole blocks: keep it well under the slice size)")
      ("out,o", po::value<std::string>(), "write the report JSON here (mlaudit.privacy/1)");
  shard::add_option(desc);
  po::variables_map vm;
  const std::string usage =
      "mlaudit privacy --model M.onnx --members Xm.npy --member-labels ym.npy --non-members Xn.npy "
      "--non-member-labels yn.npy [--attacks loss,confidence,entropy,lira,label-only] [--reference-models DIR] [--shard I/N] "
      "--out P.json   (--shard: the samples are the members then the non-members, after --limit)";
  if (!parse_options("privacy", usage, desc, args, vm, {"model", "members", "non-members", "out"})) return 0;

  shard::Shard part = shard::parse("privacy", vm);
  const int batch = vm["batch"].as<int>();
  if (batch < 1) throw InputError("privacy", fmt::format("--batch must be >= 1, got {}", batch));
  privacy::MembershipOptions opts;
  opts.batch = batch;
  if (vm.count("attacks")) opts.attacks = split_list(vm["attacks"].as<std::string>());
  else if (vm.count("reference-models")) opts.attacks.push_back("lira");
  const auto& known = privacy::membership_attack_names();
  for (const auto& a : opts.attacks)
    if (std::find(known.begin(), known.end(), a) == known.end())
      throw InputError("privacy", "--attacks: unknown attack '" + a + "' (expected loss, confidence, entropy, lira, label-only)");
  const bool want_lira = std::count(opts.attacks.begin(), opts.attacks.end(), "lira") > 0;
  const bool want_label_only = std::count(opts.attacks.begin(), opts.attacks.end(), "label-only") > 0;
  const std::string fv = vm["fixed-variance"].as<std::string>();
  if (fv == "auto") opts.lira.fixed_variance = -1;
  else if (fv == "global") opts.lira.fixed_variance = 1;
  else if (fv == "per-example") opts.lira.fixed_variance = 0;
  else throw InputError("privacy", "--fixed-variance must be auto, global or per-example, got '" + fv + "'");
  const double clip_min = vm["clip-min"].as<double>(), clip_max = vm["clip-max"].as<double>();
  if (!(clip_max > clip_min)) throw InputError("privacy", "--clip-max must be greater than --clip-min");

  const std::string label_column = vm["label-column"].as<std::string>();
  engine::Tensor xm, xn;
  std::vector<int64_t> ym, yn;
  load_set(vm["members"].as<std::string>(), "member-labels", vm, label_column, xm, ym);
  load_set(vm["non-members"].as<std::string>(), "non-member-labels", vm, label_column, xn, yn);
  if (vm["limit"].as<int64_t>() < 0) throw InputError("privacy", "--limit must be >= 0");
  if (const int64_t limit = vm["limit"].as<int64_t>(); limit > 0)
    for (auto [xs, ys] : {std::pair{&xm, &ym}, std::pair{&xn, &yn}})
      if (xs->rank() >= 1 && limit < xs->dim(0)) {
        *xs = xs->slice_rows(0, limit);
        ys->resize(size_t(limit));
      }
  auto model = load_model(vm["model"].as<std::string>(), global);
  // The same file as members and non-members measures nothing (every attack's AUC is 0.5).
  // Each input file is hashed once: the hashes both compare the two sets and go into the JSON.
  const nlohmann::json members_file = datasets::file_provenance(vm["members"].as<std::string>());
  const nlohmann::json non_members_file = datasets::file_provenance(vm["non-members"].as<std::string>());
  if (members_file["sha256"] == non_members_file["sha256"])
    throw InputError("privacy", fmt::format("--members {} and --non-members {} hold the same bytes: membership inference "
                                            "needs the training members and samples the model never saw",
                                            vm["members"].as<std::string>(), vm["non-members"].as<std::string>()));
  // The one input contract: finite data, labels that are classes of the model.
  for (auto [xs, ys, xo, yo] : {std::tuple{&xm, &ym, "members", "member-labels"}, std::tuple{&xn, &yn, "non-members", "non-member-labels"}}) {
    const std::string xp = vm[xo].as<std::string>();
    datasets::check_finite("privacy: --" + std::string(xo) + " " + xp, *xs);
    const std::string yp = vm.count(yo) ? vm[yo].as<std::string>() : xp + " (column " + label_column + ")";
    datasets::check_labels("privacy: --" + std::string(vm.count(yo) ? yo : xo) + " " + yp, *ys, model_classes("privacy", *model, *xs));
  }

  std::vector<std::unique_ptr<engine::Session>> refs;
  std::vector<std::string> ref_paths;
  if (want_lira) {
    if (!vm.count("reference-models"))
      throw InputError("privacy", "attack 'lira' needs --reference-models DIR (ONNX models trained without the targets)");
    const std::string dir = vm["reference-models"].as<std::string>();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw InputError("privacy", "--reference-models: '" + dir + "' is not a folder");
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() == ".onnx") ref_paths.push_back(e.path().string());
    std::sort(ref_paths.begin(), ref_paths.end());
    if (ref_paths.size() < 2)
      throw InputError("privacy", fmt::format("--reference-models: '{}' holds {} .onnx files, LiRA needs at least 2",
                                              dir, ref_paths.size()));
    for (const auto& p : ref_paths) {
      refs.push_back(load_model(p, global));
      opts.reference_models.push_back(refs.back().get());
    }
  }
  std::string boundary_method;
  if (want_label_only) {
#ifdef MLAUDIT_HAVE_robustness
    // Minimal L2 perturbation by DeepFool (Moosavi-Dezfooli et al. 2016) from the robustness module.
    boundary_method = "deepfool-l2";
    const int steps = vm["label-only-steps"].as<int>();
    if (steps < 1) throw InputError("privacy", "--label-only-steps must be >= 1");
    const engine::Model& m = *model;
    opts.boundary_distance = [&m, clip_min, clip_max, steps, batch](const engine::Tensor& x,
                                                                   const std::vector<int64_t>& y) {
      robustness::AttackConfig cfg;
      cfg.norm = robustness::Norm::L2;
      cfg.steps = steps;
      cfg.clip_min = clip_min;
      cfg.clip_max = clip_max;
      cfg.batch = batch;
      const robustness::AttackResult r = robustness::run_attack("deepfool", m, x, y, cfg);
      std::vector<double> d(y.size());
      for (size_t i = 0; i < y.size(); ++i)
        // No boundary found within the step budget: farther than any found one.
        d[i] = r.success[i] ? r.perturbation_norm[i] : std::numeric_limits<double>::infinity();
      return d;
    };
    // run_attack runs DeepFool on blocks of --batch samples, and on a conv model a sample's bits
    // depend on its block: a shard runs the whole run's blocks that hold its samples.
    opts.distance_batch = batch;
#else
    boundary_method = "gradient-bisection-l2";
    // The fallback takes every sample's gradient in one call, whose rounding depends on the rows in it.
    if (part.on || shard::count_only_mode())
      throw InputError("privacy", "--shard: the label-only attack needs the robustness module (DeepFool) to shard; this "
                                  "build scores it by gradient bisection over all samples at once: run it without --shard");
    opts.boundary_distance = gradient_bisection(*model, clip_min, clip_max);
#endif
  }

  // --shard I/N: the items are the members, then the non-members, each a per-sample score of
  // every attack; the metrics are global over all scores, so a part holds its slice's scores and
  // merge computes the metrics (privacy::evaluate_attack, as below) from all of them. Nothing is
  // random; LiRA's reference statistics and every model output come from all samples on every
  // shard (privacy::membership_scores), so a slice's scores are the whole run's.
  shard::set_total(part, "privacy", int64_t(ym.size() + yn.size()));
  // A shard runs the whole run's DeepFool blocks that hold its samples (exact on any model): with
  // blocks as large as the slice most of that work is the neighbours'. Results stay exact; say so.
  if (part.on && want_label_only && 2 * int64_t(batch) > part.size() && batch > 1 && !global.quiet)
    std::cerr << fmt::format("mlaudit: warning: privacy: label-only under --shard runs DeepFool on the whole run's blocks of "
                             "--batch {} samples that hold this slice's {}, so it also scores other shards' samples: a "
                             "--batch of about {} saves that work\n",
                             batch, part.size(), std::max<int64_t>(1, part.size() / 4));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<double>> scores;
  {
    engine::ProgressLine progress("privacy (LiRA reference models, label-only sets)", "steps", global.show_progress());
    opts.progress = progress.fn();
    scores = privacy::membership_scores(*model, xm, ym, xn, yn, opts, part.first, part.end);
    opts.progress = nullptr;
  }
  std::vector<privacy::AttackReport> reports;
  if (!part.on)
    for (size_t k = 0; k < opts.attacks.size(); ++k) reports.push_back(privacy::evaluate_attack(opts.attacks[k], scores[k], ym, yn));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const nlohmann::json inputs = [&] {
    nlohmann::json in = {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
                         {"members", members_file},
                         {"non_members", non_members_file}};
    for (const char* o : {"member-labels", "non-member-labels"})
      if (vm.count(o)) in[std::string(o) == "member-labels" ? "member_labels" : "non_member_labels"] = datasets::file_provenance(vm[o].as<std::string>());
    return in;
  }();
  privacy::PrivacyRun run;
  run.model = vm["model"].as<std::string>();
  run.members_file = vm["members"].as<std::string>();
  run.non_members_file = vm["non-members"].as<std::string>();
  run.members = int64_t(ym.size());
  run.non_members = int64_t(yn.size());
  run.inputs = &inputs;
  run.lira = want_lira;
  run.reference_models = ref_paths;
  run.lira_options = opts.lira;
  if (want_label_only) run.label_only_distance = boundary_method;
  run.tool_version = MLAUDIT_VERSION;
  nlohmann::json j = privacy::privacy_report(run, reports, seconds);
  if (part.on) {
    // A part: the attacks by name (metrics need every sample: merge computes them) and one
    // record per sample of the slice, index global over members then non-members.
    for (const auto& a : opts.attacks) j["attacks"].push_back({{"name", a}});
    j["samples"] = privacy::privacy_part_samples(opts.attacks, scores, ym, yn, part.first, part.end);
    // The run is identified by its files' hashes: the reference models too (not in the report's inputs).
    nlohmann::json files = j["inputs"];
    for (size_t k = 0; k < ref_paths.size(); ++k)
      files["reference_model_" + std::to_string(k)] = datasets::file_provenance(ref_paths[k]);
    nlohmann::json block = shard::part_block("privacy", part, vm, global, files);
    block["report_schema"] = j["schema"];
    j["schema"] = shard::kSchema;
    j["shard"] = block;
  }
  datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(1) + "\n");
  if (!global.quiet && part.on) {
    std::cout << fmt::format("privacy shard {}/{}: samples {}..{} of {} members and {} non-members scored: {}\n", part.index,
                             part.count, part.first, part.end - 1, ym.size(), yn.size(), vm["out"].as<std::string>());
  } else if (!global.quiet) {
    std::cout << fmt::format("membership inference: {} members, {} non-members\n", ym.size(), yn.size());
    std::cout << fmt::format("{:<12} {:>7} {:>9} {:>13} {:>12}\n", "attack", "AUC", "bal.acc", "TPR@0.1%FPR", "TPR@1%FPR");
    for (const auto& r : reports)
      std::cout << fmt::format("{:<12} {:>7.4f} {:>9.4f} {:>13.4f} {:>12.4f}\n", r.name, r.auc, r.balanced_accuracy,
                               r.tpr_at_fpr_0_001, r.tpr_at_fpr_0_01);
    std::cout << "wrote " << vm["out"].as<std::string>() << "\n";
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("privacy", "membership inference attacks: loss, confidence, entropy, LiRA, label-only", cmd_privacy);
}  // namespace mlaudit::cli
