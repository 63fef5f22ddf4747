// mlaudit attack: adversarial robustness (FGSM, PGD, APGD, Square, FAB, CW-L2, DeepFool, HopSkipJump,
// Boundary, AutoAttack).
#ifdef MLAUDIT_HAVE_robustness
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "mlaudit/robustness/report.h"
#include "shard.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/progress.h"
#include "mlaudit/robustness/attacks.h"
#include "version.h"
#ifdef MLAUDIT_HAVE_verify
#include "mlaudit/engine/trees.h"
#include "mlaudit/verify/trees.h"
#endif

namespace mlaudit::cli {

std::vector<std::string> attack_command_names() {
  std::vector<std::string> names = robustness::attack_names();
#ifdef MLAUDIT_HAVE_verify
  names.push_back("exact-tree");
#endif
  return names;
}

namespace {

#ifdef MLAUDIT_HAVE_verify
// `--attack exact-tree`: the exact minimal adversarial L-inf distance of a tree ensemble
// (verify/trees.h: threshold-cell search, every counterexample re-checked by the engine), as a
// minimal-perturbation attack. Per point: "found" (the minimum, with the point), "none" (no
// float32 point of the domain within max_eps changes the decision: robust, proved) or "timeout"
// (lower <= minimum <= upper; the point at `upper` is reported as the adversarial).
robustness::AttackResult exact_tree_attack(const engine::Session& model, const engine::TreeEnsemble& tree,
                                           const engine::Tensor& x, const std::vector<int64_t>& y,
                                           const robustness::AttackConfig& cfg, double max_eps, double timeout_s,
                                           nlohmann::json& per_point) {
  const int64_t n = x.dim(0), width = x.numel() / std::max<int64_t>(n, 1);
  if (width != tree.features)
    throw InputError("attack", fmt::format("exact-tree: {} values per sample, the trees read {} features", width, tree.features));
  robustness::AttackResult r;
  r.attack = "exact-tree";
  r.labels = y;
  r.adversarial = x;
  r.clean_prediction = engine::argmax_rows(model.forward(x));
  r.adv_prediction = r.clean_prediction;
  r.clean_correct.assign(size_t(n), 0);
  r.success.assign(size_t(n), 0);
  r.perturbation_norm.assign(size_t(n), 0.0);
  r.gradient_calls.assign(size_t(n), 0);
  r.queries.assign(size_t(n), 0);
  r.stage.assign(size_t(n), "");
  per_point = nlohmann::json::array();
  verify::TreeMinimalOptions mo;
  mo.clip_min = cfg.clip_min;
  mo.clip_max = cfg.clip_max;
  mo.max_eps = max_eps;
  mo.verify.timeout_s = timeout_s;
  mo.verify.concrete = [&model, &tree](const std::vector<float>& in) {
    engine::Tensor t = engine::Tensor::from_floats({1, tree.features}, in);
    engine::Tensor out = model.forward(t);
    return std::vector<float>(out.f32(), out.f32() + out.numel());
  };
  int64_t correct_total = 0, done = 0;
  for (int64_t i = 0; i < n; ++i) correct_total += r.clean_prediction[size_t(i)] == y[size_t(i)];
  for (int64_t i = 0; i < n; ++i) {
    nlohmann::json p = {{"index", i}};
    r.clean_correct[size_t(i)] = r.clean_prediction[size_t(i)] == y[size_t(i)];
    if (!r.clean_correct[size_t(i)]) {
      per_point.push_back(p);
      continue;
    }
    verify::TreeMinimalResult m = verify::minimal_adversarial_linf(tree, x.f32() + i * width, mo);
    r.queries[size_t(i)] = m.exact_queries;
    p["status"] = m.status;
    p["lower_bound"] = m.lower;
    p["upper_bound"] = std::isfinite(m.upper) ? nlohmann::json(m.upper) : nlohmann::json(nullptr);
    p["seconds"] = m.seconds;
    if ((m.status == "found" || m.status == "timeout") && !m.counterexample.empty()) {
      std::copy(m.counterexample.begin(), m.counterexample.end(), r.adversarial.f32() + i * width);
      r.success[size_t(i)] = 1;
      r.perturbation_norm[size_t(i)] = m.status == "found" ? m.distance : m.upper;
    }
    per_point.push_back(p);
    if (cfg.progress) cfg.progress(++done, correct_total);
  }
  // Every counterexample re-checked here as for every attack: a fresh forward, inside the domain,
  // label changed, and its L-inf distance is the one reported.
  std::vector<int64_t> pred;
  std::vector<uint8_t> ok = robustness::verify_adversarial(model, x, r.adversarial, y, robustness::Norm::Linf, -1,
                                                           cfg.clip_min, cfg.clip_max, cfg.batch, &pred);
  for (int64_t i = 0; i < n; ++i) {
    if (!r.success[size_t(i)]) continue;
    double d = 0;
    for (int64_t k = 0; k < width; ++k)
      d = std::max(d, std::abs(double(r.adversarial.f32()[i * width + k]) - double(x.f32()[i * width + k])));
    if (!ok[size_t(i)] || d > r.perturbation_norm[size_t(i)] * (1 + 1e-9) + 1e-12)
      throw Error("attack", fmt::format("exact-tree: the counterexample of point {} did not re-check (label {}, distance {} "
                                        "vs {}): please report this",
                                        i, pred[size_t(i)], d, r.perturbation_norm[size_t(i)]));
    r.adv_prediction[size_t(i)] = pred[size_t(i)];
  }
  r.notes.push_back("exact-tree: minimal L-inf distances by exact search over the trees' threshold cells (verify/trees.h); "
                    "status per point: found (the minimum), none (robust over the domain" +
                    std::string(std::isfinite(max_eps) ? " within the largest eps" : "") + "), timeout (bounds)");
  return r;
}
#endif

// Rows [first, end) of a result over rows [0, end): the part one shard reports.
robustness::AttackResult slice_result(const robustness::AttackResult& r, int64_t first, int64_t end) {
  robustness::AttackResult s = r;
  auto cut = [&](auto& v) { v.assign(v.begin() + first, v.begin() + end); };
  cut(s.labels), cut(s.clean_prediction), cut(s.adv_prediction), cut(s.clean_correct), cut(s.success);
  cut(s.perturbation_norm), cut(s.gradient_calls), cut(s.queries), cut(s.stage);
  s.adversarial = r.adversarial.slice_rows(first, end);
  return s;
}

int cmd_attack(const std::vector<std::string>& args, const GlobalOptions& global) {
  po::options_description desc("attack options");
  desc.add_options()
      ("model,m", po::value<std::string>(), "ONNX model (one input, logits output)")
      ("data,d", po::value<std::string>(), "inputs .npy [N,...]")
      ("labels,l", po::value<std::string>(), "integer labels .npy [N]")
      ("attack", po::value<std::string>()->default_value("pgd"), "fgsm|pgd|apgd-ce|apgd-dlr|apgd-t|square|fab|fab-t|cw-l2|deepfool|hsja|boundary|autoattack|exact-tree "
       "(hsja, boundary: decision-based, labels only; hop-skip-jump, boundary-attack accepted; exact-tree: tree ensembles, "
       "the exact minimal L-inf distance)")
      ("norm", po::value<std::string>()->default_value("linf"), "linf|l2")
      ("eps", po::value<std::string>(), "radius list E[,E...] in input units (minimal attacks: thresholds, optional)")
      ("steps", po::value<int>()->default_value(0), "iterations (0: attack default; hsja 50, boundary 25000)")
      ("restarts", po::value<int>()->default_value(1), "restarts (PGD, APGD, FAB)")
      ("step-size", po::value<double>()->default_value(0), "PGD step size (0: 2.5*eps/steps)")
      ("queries", po::value<int>()->default_value(5000),
       "Square query budget per point; hsja, boundary: a cap on queries per point when given (default: none, --steps bounds them)")
      ("clip-min", po::value<double>()->default_value(0.0), "input domain lower bound")
      ("clip-max", po::value<double>()->default_value(1.0), "input domain upper bound")
      ("seed", po::value<uint64_t>()->default_value(0), "random seed")
      ("batch", po::value<int>()->default_value(256), "samples per model call")
      ("limit", po::value<int64_t>()->default_value(0), "attack only the first N samples (0: all)")
      ("timeout", po::value<double>()->default_value(60), "exact-tree: seconds per point")
      ("out,o", po::value<std::string>(), "report JSON")
      ("save-adv", po::value<std::string>(), "write the adversarial batch (last eps) as .npy");
  shard::add_option(desc);
  po::variables_map vm;
  if (!parse_options("attack",
                     "mlaudit attack --model M --data X.npy --labels y.npy --attack NAME --norm linf|l2 --eps E[,E...] "
                     "[--steps N] [--restarts R] [--queries Q] [--shard I/N] --out R.json [--save-adv ADV.npy]",
                     desc, args, vm, {"model", "data", "labels", "out"}))
    return 0;
  shard::Shard part = shard::parse("attack", vm);
  // PGD, AutoAttack as papers write them; aliases (hop-skip-jump) to their name.
  const std::string attack = robustness::canonical_attack_name(to_lower(vm["attack"].as<std::string>()));
  robustness::AttackConfig cfg;
  cfg.norm = robustness::parse_norm(to_lower(vm["norm"].as<std::string>()));
  cfg.steps = vm["steps"].as<int>();
  cfg.restarts = vm["restarts"].as<int>();
  cfg.step_size = vm["step-size"].as<double>();
  cfg.queries = vm["queries"].as<int>();
  cfg.clip_min = vm["clip-min"].as<double>();
  cfg.clip_max = vm["clip-max"].as<double>();
  cfg.seed = vm["seed"].as<uint64_t>();
  cfg.batch = vm["batch"].as<int>();
  if (robustness::is_decision_attack(attack) && !vm["queries"].defaulted()) {
    if (cfg.queries < 1) throw InputError("cli", fmt::format("attack: --queries must be >= 1, got {}", cfg.queries));
    cfg.max_queries = cfg.queries;
  }
  const bool exact_tree = attack == "exact-tree";
  const bool minimal = exact_tree || robustness::is_minimal_attack(attack);
  const std::vector<std::string> known = attack_command_names();
  if (std::find(known.begin(), known.end(), attack) == known.end())
    throw InputError("cli", fmt::format("attack: unknown --attack '{}'{}", vm["attack"].as<std::string>(),
                                        datasets::did_you_mean(attack, known)));
  if (exact_tree && cfg.norm != robustness::Norm::Linf)
    throw InputError("cli", "attack: exact-tree finds the minimal L-inf distance: use --norm linf");
  std::vector<double> eps_list;
  if (vm.count("eps")) eps_list = parse_double_list("eps", vm["eps"].as<std::string>());
  else if (!minimal) throw InputError("cli", "attack: the option '--eps' is required for " + attack + " (see 'mlaudit attack --help')");
  for (double e : eps_list)
    if (!(e >= 0)) throw InputError("cli", fmt::format("attack: --eps values must be >= 0, got {}", e));

  auto model = load_model(vm["model"].as<std::string>(), global);
  // Square, HopSkipJump and Boundary are black-box; every other one needs input gradients. AutoAttack
  // on a model without them runs its black-box subset (Square, HopSkipJump, and Boundary under L2) and says so.
  if (attack == "autoattack" && !model->gradient_blockers().empty()) {
    cfg.gradients_available = false;
    if (!global.quiet)
      std::cerr << "mlaudit: note: attack: the model has no input gradients; autoattack runs its black-box subset ("
                << robustness::autoattack_black_box_text(cfg.norm) << ") instead of apgd-ce, apgd-t, fab-t, square\n";
  } else if (!exact_tree && !robustness::is_black_box_attack(attack)) {
    model->require_gradients(fmt::format("input gradients (needed by --attack {})", attack));
  }
#ifdef MLAUDIT_HAVE_verify
  engine::TreeEnsemble tree;
  if (exact_tree) {
    try {
      tree = engine::extract_tree_ensemble(engine::load_onnx(vm["model"].as<std::string>()), global.model_output);
    } catch (const UnsupportedError& e) {
      throw UnsupportedError("cli", fmt::format("attack: --attack exact-tree needs a tree ensemble it can read exactly ({}); "
                                                "hsja and boundary attack any model",
                                                e.what()));
    }
    if (tree.head == engine::TreeEnsemble::Head::Regression)
      throw InputError("cli", fmt::format("attack: {} is a regressor: exact-tree changes a decision", vm["model"].as<std::string>()));
  }
#endif
  nlohmann::json exact_points = nlohmann::json::array();
  const Domain domain{cfg.clip_min, cfg.clip_max};
  if (!(domain.lo < domain.hi))
    throw InputError("attack", fmt::format("--clip-min ({}) must be below --clip-max ({})", domain.lo, domain.hi));
  LabeledData in = read_labeled_data("attack", vm["data"].as<std::string>(), vm["labels"].as<std::string>(), *model,
                                     vm["limit"].as<int64_t>(), &domain);
  // --shard I/N: the attack runs on rows [0, end) so that every random stream stays keyed by
  // the sample's global index (detail::RowRngs); rows before the slice get a label the model
  // does not predict, so they count as misclassified and are never attacked. Then only the
  // slice [first, end) is reported.
  shard::set_total(part, "attack", in.x.dim(0));
  engine::Tensor x_run = in.x;
  std::vector<int64_t> y_run = in.y;
  if (part.on) {
    if (in.classes < 2) throw InputError("attack", "--shard needs a model with at least two classes");
    x_run = in.x.slice_rows(0, part.end);
    y_run.resize(size_t(part.end));
    const int64_t step = std::max(cfg.batch, 1);
    for (int64_t b = 0; b < part.first; b += step) {
      const std::vector<int64_t> pred = engine::argmax_rows(model->forward(in.x.slice_rows(b, std::min(part.first, b + step))));
      for (size_t k = 0; k < pred.size(); ++k) y_run[size_t(b) + k] = (pred[k] + 1) % in.classes;
    }
    in.x = in.x.slice_rows(part.first, part.end);
    in.y.assign(in.y.begin() + part.first, in.y.begin() + part.end);
  }
  auto own_rows = [&](const robustness::AttackResult& r) { return part.on ? slice_result(r, part.first, part.end) : r; };
  engine::Tensor& x = in.x;
  std::vector<int64_t>& y = in.y;
  const int64_t n = x.dim(0);

  const nlohmann::json inputs = {{"model", datasets::file_provenance(vm["model"].as<std::string>())},
                                  {"data", datasets::file_provenance(vm["data"].as<std::string>())},
                                  {"labels", datasets::file_provenance(vm["labels"].as<std::string>())}};
  robustness::AttackRun run;
  run.attack = attack;
  run.model = vm["model"].as<std::string>();
  run.data = vm["data"].as<std::string>();
  run.labels = vm["labels"].as<std::string>();
  run.inputs = &inputs;
  run.exact_tree = exact_tree;
  run.exact_timeout_s = exact_tree ? vm["timeout"].as<double>() : 0.0;
  run.tool_version = MLAUDIT_VERSION;
  nlohmann::json j = robustness::attack_report_head(run, cfg, y, part.first);
  engine::Tensor last_adv;
  const auto t0 = std::chrono::steady_clock::now();

  robustness::AttackResult last;
  if (minimal) {
    cfg.eps = 0;
    {
      engine::ProgressLine progress("attack " + attack, "points", global.show_progress());
      cfg.progress = progress.fn();
      if (exact_tree) {
#ifdef MLAUDIT_HAVE_verify
        const double timeout = vm["timeout"].as<double>();
        if (!(timeout > 0)) throw InputError("cli", fmt::format("attack: --timeout must be > 0, got {}", timeout));
        double max_eps = std::numeric_limits<double>::infinity();
        if (!eps_list.empty()) max_eps = *std::max_element(eps_list.begin(), eps_list.end());
        last = own_rows(exact_tree_attack(*model, tree, x_run, y_run, cfg, max_eps, timeout, exact_points));
        if (part.on) {
          nlohmann::json mine = nlohmann::json::array();
          for (int64_t i = part.first; i < part.end && i < int64_t(exact_points.size()); ++i) mine.push_back(exact_points[size_t(i)]);
          exact_points = mine;
        }
#endif
      } else {
        last = own_rows(robustness::run_attack(attack, *model, x_run, y_run, cfg));
      }
      cfg.progress = nullptr;
    }
    robustness::attack_report_add_minimal(j, last, eps_list, exact_points);
    last_adv = last.adversarial;
  } else {
    for (double eps : eps_list) {
      cfg.eps = eps;
      {
        engine::ProgressLine progress(fmt::format("attack {} eps {}", attack, eps), "points", global.show_progress());
        cfg.progress = progress.fn();
        last = own_rows(robustness::run_attack(attack, *model, x_run, y_run, cfg));
        cfg.progress = nullptr;
      }
      robustness::attack_report_add_eps(j, eps, last);
    }
    last_adv = last.adversarial;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  robustness::attack_report_finish(j, last, seconds);
  if (part.on) shard::make_part(j, "attack", part, vm, global);
  if (vm.count("save-adv")) datasets::write_npy(vm["save-adv"].as<std::string>(), last_adv);
  datasets::write_file_atomic(vm["out"].as<std::string>(), j.dump(1) + "\n");
  if (!global.quiet) {
    const auto& cci = j["clean_accuracy_ci"];
    std::cout << fmt::format("attack {} ({}) on {} samples: clean accuracy {:.4f} (95% CI {:.3f}-{:.3f})\n", attack,
                             j["norm"].get<std::string>(), n, last.clean_accuracy(), cci["lower"].get<double>(),
                             cci["upper"].get<double>());
    for (const auto& e : j["by_eps"]) {
      const auto& ci = e["robust_accuracy_ci"];
      std::cout << fmt::format("  eps {:<8g} robust accuracy {:.4f} (95% CI {:.3f}-{:.3f}, n = {})  success rate {:.4f}  "
                               "median norm {:.4g}\n",
                               e["eps"].get<double>(), e["robust_accuracy"].get<double>(), ci["lower"].get<double>(),
                               ci["upper"].get<double>(), n, e["attack_success_rate"].get<double>(),
                               e["median_perturbation_norm"].get<double>());
    }
    if (minimal) std::cout << fmt::format("  minimal norms: {} found, median {:.4g}\n", j["minimal_norms"]["found"].get<size_t>(), j["minimal_norms"]["median"].get<double>());
    for (const auto& w : j["warnings"]) std::cerr << "mlaudit: warning: attack: " << w.get<std::string>() << "\n";
    for (const auto& note : last.notes) std::cout << "  note: " << note << "\n";
    std::cout << "report: " << vm["out"].as<std::string>() << "\n";
  }
  return 0;
}

}  // namespace
MLAUDIT_COMMAND("attack", "adversarial attacks (FGSM, PGD, APGD, Square, FAB, CW-L2, DeepFool, HopSkipJump, Boundary, AutoAttack): robust accuracy vs eps", cmd_attack);
}  // namespace mlaudit::cli
#endif  // MLAUDIT_HAVE_robustness
