// Merging the parts of a sharded run (merge.h): `mlaudit merge` (commands/merge.cpp) on files and
// `mlaudit --mpi` (mpi.cpp) on the parts its workers send back. Per-sample records in global
// order, every aggregate recomputed from the merged records with the command's own formulas.
// Parts of different runs (model, data, options, version), missing or repeated shards and mixed
// commands are refused (exit 2); so is any part with a field missing or of another type (the
// part data is only read through non-const JSON access, which never reads past a missing key).
// A library of its own (mlaudit_cli_merge) so the merge fuzz target (fuzz/entries.cpp) runs it.
#include "merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "mlaudit/explain/summary.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/tensor.h"
#ifdef MLAUDIT_HAVE_privacy
#include "mlaudit/privacy/report.h"
#endif
#ifdef MLAUDIT_HAVE_robustness
#include "mlaudit/robustness/report.h"
#endif
#ifdef MLAUDIT_HAVE_verify
#include "mlaudit/verify/verify.h"
#endif
#include "shard.h"

namespace mlaudit::cli {
namespace {

using nlohmann::json;

struct Part {
  std::string path;
  json j;
  int64_t index = 0;
};

// An integer field of a part, checked: converting a JSON float such as 3e70 to an integer type
// is undefined behaviour (found by fuzz_merge), so anything but an integer is malformed.
int64_t integer(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  throw InputError("merge", fmt::format("a part is malformed (an integer field holds {}): merge reads the files that "
                                        "--shard I/N writes", v.dump().substr(0, 40)));
}

// Distinct strings of parts[k][key] (an array) in part order.
void add_distinct(std::vector<std::string>& out, json& list) {
  for (auto& w : list)
    if (std::find(out.begin(), out.end(), w.get<std::string>()) == out.end()) out.push_back(w.get<std::string>());
}

json concat(std::vector<Part>& parts, const char* key) {
  json all = json::array();
  for (auto& p : parts)
    for (auto& e : p.j.at(key)) all.push_back(e);
  return all;
}

double total_seconds(std::vector<Part>& parts) {
  double s = 0;
  for (const auto& p : parts) s += p.j.value("seconds", 0.0);
  return s;
}

// attack: the by_eps entries, minimal norms, clean accuracy as cmd_attack computes them.
json merge_attack(std::vector<Part>& parts) {
#ifndef MLAUDIT_HAVE_robustness
  throw InputError("merge", fmt::format("{}: merging attack parts needs the robustness module, which this build lacks", parts.front().path));
#else
  json j = parts.front().j;
  json per = concat(parts, "per_sample");
  const int64_t n = int64_t(per.size());
  const bool minimal = j.contains("minimal_norms");
  j["n_samples"] = n;
  json by_eps = json::array();
  for (size_t k = 0; k < j["by_eps"].size(); ++k) {
    const double eps = j["by_eps"][k]["eps"].get<double>();
    std::vector<uint8_t> correct, broken;
    std::vector<double> norm;
    int64_t gcalls = 0, queries = 0, rejected = 0;
    for (auto& p : per) {
      bool success;
      double nm;
      if (minimal) {
        success = !p["minimal_norm"].is_null();
        nm = success ? p["minimal_norm"].get<double>() : 0.0;
        success = success && nm <= eps * (1 + 1e-6);
        gcalls += integer(p["gradient_calls"]);
        queries += integer(p["queries"]);
      } else {
        json& e = p["by_eps"][k];
        success = e["success"].get<bool>();
        nm = e["perturbation_norm"].get<double>();
        gcalls += integer(e["gradient_calls"]);
        queries += integer(e["queries"]);
      }
      correct.push_back(p["correct"].get<bool>());
      broken.push_back(success);
      norm.push_back(nm);
    }
    std::vector<std::string> warnings;
    for (auto& part : parts) {
      json& e = part.j["by_eps"][k];
      rejected += integer(e["rejected_candidates"]);
      if (e.contains("warnings")) add_distinct(warnings, e["warnings"]);
    }
    json e = robustness::attack_eps_entry(eps, correct, broken, norm, gcalls, queries, rejected, warnings);
    by_eps.push_back(e);
  }
  j["by_eps"] = by_eps;
  if (minimal) {
    std::vector<double> norms;
    int64_t queries_total = 0;
    for (auto& p : per) {
      if (!p["minimal_norm"].is_null()) norms.push_back(p["minimal_norm"].get<double>());
      queries_total += integer(p["queries"]);
    }
    j["minimal_norms"] = robustness::minimal_norms_json(norms, queries_total);
  }
  int64_t k = 0;
  for (auto& p : per) k += p["correct"].get<bool>();
  j["clean_accuracy"] = n ? double(k) / double(size_t(n)) : 0.0;
  j["clean_accuracy_ci"] = datasets::proportion_json(k, n);
  std::vector<std::string> notes, warnings;
  for (auto& p : parts) {
    add_distinct(notes, p.j["execution"]);
    add_distinct(warnings, p.j["warnings"]);
  }
  j["execution"] = notes;
  j["warnings"] = warnings;
  const double seconds = total_seconds(parts);
  j["seconds"] = seconds;
  j["seconds_per_sample"] = n ? seconds / double(n) : 0.0;
  j["per_sample"] = per;
  return j;
#endif
}

// certify: certified accuracy per radius (robustness::certified_accuracy's count), abstain rate.
// certify: the parts' per-sample records in order, the aggregates recomputed with certify's own
// function (robustness::certify_aggregates) at the run's radii.
json merge_certify(std::vector<Part>& parts) {
#ifndef MLAUDIT_HAVE_robustness
  throw InputError("merge", fmt::format("{}: merging certify parts needs the robustness module, which this build lacks", parts.front().path));
#else
  json j = parts.front().j;
  json per = concat(parts, "per_sample");
  // Each record's fields are checked first: a float such as 3e70 read as an integer is
  // undefined behaviour (integer() refuses it), a missing field a malformed part.
  for (auto& r : per) {
    (void)integer(r["prediction"]);
    if (!r["correct"].is_boolean() || !r["radius"].is_number())
      throw InputError("merge", "a part is malformed (a certify record without a boolean 'correct' or a numeric 'radius')");
  }
  std::vector<double> radii;
  for (auto& entry : j["certified_accuracy"]) radii.push_back(entry["radius"].get<double>());
  j["per_sample"] = per;
  robustness::certify_aggregates(j, radii, total_seconds(parts));
  return j;
#endif
}

// corrupt: the parts' counts summed per (corruption, severity), the aggregates recomputed with
// corrupt's own function (robustness::corrupt_aggregates).
json merge_corrupt(std::vector<Part>& parts) {
#ifndef MLAUDIT_HAVE_robustness
  throw InputError("merge", fmt::format("{}: merging corrupt parts needs the robustness module, which this build lacks", parts.front().path));
#else
  json j = parts.front().j;
  int64_t n = 0, clean = 0;
  std::vector<std::string> names;
  std::vector<robustness::CorruptCount> counts;
  for (auto& c : j["corruptions"]) {
    names.push_back(c["name"].get<std::string>());
    for (auto& s : c["by_severity"]) counts.push_back({names.back(), int(integer(s["severity"])), 0});
  }
  for (auto& p : parts) {
    n += integer(p.j["n_samples"]);
    clean += integer(p.j["clean_correct"]);
    size_t k = 0;
    for (auto& c : p.j["corruptions"])
      for (auto& s : c["by_severity"]) {
        if (k >= counts.size() || c["name"] != counts[k].corruption || s["severity"] != counts[k].severity)
          throw InputError("merge", fmt::format("{}: its corruptions and severities differ from the first part's", p.path));
        counts[k++].correct += integer(s["correct"]);
      }
    if (k != counts.size()) throw InputError("merge", fmt::format("{}: its corruptions and severities differ from the first part's", p.path));
  }
  robustness::corrupt_aggregates(j, n, clean, names, counts);
  return j;
#endif
}

// verify --data: records ordered eps by eps, then by sample (verify::robustness_report); the
// by_eps counts, intervals and mean seconds recomputed; tree models' clique-bound counts and
// minimal distances.
json merge_verify(std::vector<Part>& parts) {
#ifndef MLAUDIT_HAVE_verify
  throw InputError("merge", fmt::format("{}: merging verify parts needs the verify module, which this build lacks", parts.front().path));
#else
  json j = parts.front().j;
  json per = json::array();
  json by_eps = json::array();
  for (auto& entry : j["by_eps"]) {
    const double eps = entry["eps"].get<double>();
    std::map<std::string, int64_t> c;
    double time = 0;
    int64_t n = 0, bound = 0;
    for (auto& p : parts)
      for (auto& s : p.j["per_sample"]) {
        if (s["eps"].get<double>() != eps) continue;
        per.push_back(s);
        c[s["verdict"].get<std::string>()]++;
        time += s["seconds"].get<double>();
        ++n;
        bound += s.contains("method") && s["method"] == "clique-bound";
      }
    json e = verify::robustness_eps_row(eps, n, c["verified"], c["falsified"], c["unknown"], c["timeout"], time);
    if (entry.contains("decided_by_clique_bound")) e["decided_by_clique_bound"] = bound;
    by_eps.push_back(e);
  }
  j["by_eps"] = by_eps;
  j["per_eps"] = by_eps;
  j["per_sample"] = per;
  if (j.contains("minimal_distance")) j["minimal_distance"] = concat(parts, "minimal_distance");
  return j;
#endif
}

// verify --vnnlib --branches B.json --shard I/N: one property's handed-out branches in slices. The
// verdict over all of them: sat when a slice found a counterexample (the first in shard order),
// timeout or unknown when a slice ended so, unsat when every slice is unsat. Unsat here is the
// property's verdict only together with the run that wrote B.json (it stopped with its closed
// part proved: open_undecided false; otherwise the merge says unknown).
json merge_vnnlib(std::vector<Part>& parts) {
  json j = parts.front().j;
  std::string result = "unsat", reason;
  json cex = nullptr;
  double seconds = 0;
  int64_t branches = 0, bounded = 0, z3 = 0;
  bool undecided = false;
  for (auto& p : parts) {
    const std::string r = p.j["result"].get<std::string>();
    seconds += p.j["seconds"].get<double>();
    branches += integer(p.j["branches_in"]["branches"]);
    bounded += integer(p.j["branches"]);
    z3 += integer(p.j["z3_calls"]);
    undecided |= p.j["branches_in"]["open_undecided"].get<bool>();
    if (r == "sat" && result != "sat") result = "sat", cex = p.j["counterexample"];
    else if (r == "timeout" && result != "sat") result = "timeout";
    else if (r != "unsat" && r != "sat" && result == "unsat") {
      result = r;
      if (p.j.contains("reason")) reason = p.j["reason"].get<std::string>();
    }
  }
  if (result == "unsat" && undecided) {
    result = "unknown";
    reason = "the run that handed these branches out left an undecided leaf in its own part";
  }
  j["result"] = result;
  j["verdict"] = result == "unsat" ? "verified" : result == "sat" ? "falsified" : result == "timeout" ? "timeout" : "unknown";
  j["counterexample"] = cex;
  j["seconds"] = seconds;
  j["branches"] = bounded;
  j["z3_calls"] = z3;
  if (reason.empty()) j.erase("reason");
  else j["reason"] = reason;
  j["branches_in"]["branches"] = branches;
  j["branches_in"]["open_undecided"] = undecided;
  j.erase("method");
  return j;
}

// verify --benchmark: the instance rows in order, the summary recomputed (shard::benchmark_summary).
json merge_benchmark(std::vector<Part>& parts) {
  json j = parts.front().j;
  j["instances"] = concat(parts, "instances");
  shard::benchmark_summary(j);
  return j;
}

// The parts' attribution arrays joined in shard order: the array one process writes. Each part
// recorded its file (path as given to its shard, SHA-256, shape); the file is taken from that
// path, or from the file of that name beside the part when the path is missing or holds another
// file (shards run in other folders, parts copied together).
std::string join_attributions(std::vector<Part>& parts) {
  namespace fs = std::filesystem;
  std::vector<engine::Tensor> arrays;
  std::string first_name;
  engine::Shape first_shape;
  for (auto& p : parts) {
    json& e = p.j["shard"]["explain"];
    if (!e.contains("attributions"))
      throw InputError("merge", fmt::format("--attributions: {} was run without --attributions (its rows' attributions "
                                            "were not written)", p.path));
    json& a = e["attributions"];
    const std::string recorded = a["file"].get<std::string>();
    const std::string beside = (fs::path(p.path).parent_path() / fs::path(recorded).filename()).string();
    const std::string sha = a["sha256"].get<std::string>();
    std::string bytes, path;
    for (const std::string& candidate : {recorded, beside}) {
      std::error_code ec;
      if (!fs::is_regular_file(candidate, ec)) continue;
      bytes = datasets::read_file(candidate);
      if (datasets::sha256_hex(bytes) == sha) {
        path = candidate;
        break;
      }
    }
    if (path.empty())
      throw InputError("merge", fmt::format("--attributions: the attributions of {} are missing: neither {} nor {} is the "
                                            "file its shard wrote (absent, or SHA-256 differs)",
                                            p.path, recorded, beside));
    engine::Tensor t = datasets::parse_npy(bytes, path);
    const int64_t rows = integer(p.j["shard"]["end"]) - integer(p.j["shard"]["first"]);
    if (t.rank() < 1 || t.shape()[0] != rows)
      throw InputError("merge", fmt::format("--attributions: {} has shape {}, but {} holds {} rows", path,
                                            engine::shape_str(t.shape()), p.path, rows));
    if (arrays.empty()) {
      first_name = path;
      first_shape = t.shape();
    } else if (t.dtype() != arrays.front().dtype() || t.rank() != first_shape.size() ||
               !std::equal(t.shape().begin() + 1, t.shape().end(), first_shape.begin() + 1)) {
      throw InputError("merge", fmt::format("--attributions: the arrays' shapes disagree: {} is {}, {} is {}", first_name,
                                            engine::shape_str(first_shape), path, engine::shape_str(t.shape())));
    }
    arrays.push_back(std::move(t));
  }
  return datasets::encode_npy(engine::concat_rows(arrays));
}

// explain: samples (and heatmap paths) in global order; global_ranking, the checks, warnings and
// passed recomputed with explain's own functions (mlaudit/explain/summary.h) from the parts' aggregates
// (exact per-feature sums of |attribution|, largest gaps, per-row correlations and
// sensitivities); timing: the parts' compute time summed.
json merge_explain(std::vector<Part>& parts, const std::string& attributions, std::string* npy) {
  json j = parts.front().j;
  auto agg = explain::summary::Aggregates::from_json(parts.front().j["shard"]["explain"]);
  for (size_t k = 1; k < parts.size(); ++k)
    if (!explain::summary::combine(agg, explain::summary::Aggregates::from_json(parts[k].j["shard"]["explain"])))
      throw InputError("merge", fmt::format("{}: its rows do not follow {}'s (a part is malformed)", parts[k].path,
                                            parts[k - 1].path));
  j["samples"] = concat(parts, "samples");
  if (int64_t(j["samples"].size()) != agg.rows || agg.first_row != 0)
    throw InputError("merge", fmt::format("{}: its samples and its row count disagree (a part is malformed)", parts.front().path));
  j["rows"] = agg.rows;
  j["input_shape"][0] = agg.rows;
  if (j.contains("heatmaps")) j["heatmaps"] = concat(parts, "heatmaps");
  explain::summary::write_aggregates(j, agg);
  double seconds = 0, cpu = 0;
  for (auto& p : parts) {
    seconds += p.j["timing"]["attribution_seconds"].get<double>();
    cpu += p.j["timing"]["cpu_seconds"].get<double>();
  }
  const double n = double(agg.rows);
  j["timing"] = {{"attribution_seconds", seconds}, {"seconds_per_sample", seconds / n},
                 {"cpu_seconds", cpu},             {"cpu_seconds_per_sample", cpu / n}};
  // Each part names its own slice's file; the merged report names the joined one, if any.
  j.erase("attributions_file");
  if (!attributions.empty()) {
    *npy = join_attributions(parts);
    j["attributions_file"] = attributions;
  }
  return j;
}

// privacy: the samples' scores joined in global order (members, then non-members) and every
// attack's metrics computed from them by privacy::evaluate_attack, as privacy does; the
// part's per-sample records are not in the report (one process writes none); timing summed.
json merge_privacy(std::vector<Part>& parts) {
#ifndef MLAUDIT_HAVE_privacy
  throw InputError("merge", fmt::format("{}: merging privacy parts needs the privacy module, which this build lacks", parts.front().path));
#else
  json j = parts.front().j;
  json samples = concat(parts, "samples");
  const int64_t members = integer(j["members"]["count"]), non_members = integer(j["non_members"]["count"]);
  if (int64_t(samples.size()) != members + non_members)
    throw InputError("merge", fmt::format("{}: the parts hold {} samples for {} members and {} non-members (a part is malformed)",
                                          parts.front().path, samples.size(), members, non_members));
  std::vector<int64_t> ym, yn;
  std::vector<std::vector<double>> scores(j["attacks"].size());
  for (int64_t g = 0; g < int64_t(samples.size()); ++g) {
    json& s = samples[size_t(g)];
    if (integer(s["index"]) != g || s["member"].get<bool>() != (g < members))
      throw InputError("merge", fmt::format("{}: sample {} is out of order (a part is malformed)", parts.front().path, g));
    (g < members ? ym : yn).push_back(integer(s["label"]));
    for (size_t k = 0; k < scores.size(); ++k)
      scores[k].push_back(privacy::score_value(s["scores"][j["attacks"][k]["name"].get<std::string>()]));
  }
  json attacks = json::array();
  for (size_t k = 0; k < scores.size(); ++k) {
    const std::string name = j["attacks"][k]["name"].get<std::string>();
    try {
      attacks.push_back(privacy::attack_json(privacy::evaluate_attack(name, scores[k], ym, yn)));
    } catch (const InputError& e) {  // what --shard writes always evaluates (both sets non-empty)
      throw InputError("merge", fmt::format("{}: attack '{}' cannot be evaluated on the parts' scores ({}): a part is malformed",
                                            parts.front().path, name, e.what()));
    }
  }
  j["attacks"] = attacks;
  j.erase("samples");
  double seconds = 0;
  for (auto& p : parts) seconds += p.j["timing"]["seconds"].get<double>();
  j["timing"]["seconds"] = seconds;
  return j;
#endif
}

// The first difference between two parts' run blocks, in words.
std::string run_difference(json& a, json& b) {
  if (a.value("command", "") != b.value("command", ""))
    return fmt::format("parts of different commands ({} and {})", a.value("command", ""), b.value("command", ""));
  if (a.value("tool_version", "") != b.value("tool_version", ""))
    return fmt::format("tool versions differ ({} and {})", a.value("tool_version", ""), b.value("tool_version", ""));
  for (const auto& [role, hash] : a["sha256"].items()) {
    if (!b["sha256"].contains(role)) return fmt::format("only some parts read a {} file", role);
    if (b["sha256"][role] != hash) return fmt::format("the {} files differ (SHA-256)", role);
  }
  for (const auto& [role, hash] : b["sha256"].items())
    if (!a["sha256"].contains(role)) return fmt::format("only some parts read a {} file", role);
  for (const auto& [name, value] : a["options"].items())
    if (!b["options"].contains(name) || b["options"][name] != value)
      return fmt::format("option --{} differs ({} and {})", name, value.dump(),
                         b["options"].contains(name) ? b["options"][name].dump() : std::string("not given"));
  for (const auto& [name, value] : b["options"].items())
    if (!a["options"].contains(name)) return fmt::format("option --{} differs (not given and {})", name, value.dump());
  for (const char* key : {"model_output", "device", "samples_total"})
    if (a[key] != b[key]) return fmt::format("{} differs ({} and {})", key, a[key].dump(), b[key].dump());
  return "their run ids differ";
}

MergedReport merge_checked(std::vector<Part>& parts, const std::string& out, const std::string& attributions);

}  // namespace

MergedReport merge_parts(const std::vector<PartText>& texts, const std::string& out, const std::string& attributions) {
  std::vector<Part> parts;
  for (const auto& t : texts) {
    Part p;
    p.path = t.name;
    const std::string& path = t.name;
    try {
      p.j = json::parse(t.text);
    } catch (const json::exception& e) {
      throw InputError("merge", fmt::format("{}: not JSON ({})", path, e.what()));
    }
    // Comparisons only (json == string never throws, where value("schema", "") does on a number).
    if (!p.j.is_object() || !p.j.contains("schema") || p.j["schema"] != shard::kSchema || !p.j.contains("shard") ||
        !p.j["shard"].is_object() || !p.j["shard"].contains("schema") || p.j["shard"]["schema"] != shard::kSchema)
      throw InputError("merge", fmt::format("{}: not a part (write parts with --shard I/N)", path));
    parts.push_back(std::move(p));
  }
  if (parts.empty()) throw InputError("merge", "no parts given");
  try {
    return merge_checked(parts, out, attributions);
  } catch (const json::exception& e) {
    // A field missing or of another type: parts are the files --shard I/N writes, unedited.
    throw InputError("merge", fmt::format("a part is malformed ({}): merge reads the files that --shard I/N writes", e.what()));
  }
}

namespace {

MergedReport merge_checked(std::vector<Part>& parts, const std::string& out, const std::string& attributions) {
  for (auto& p : parts) p.index = integer(p.j["shard"]["index"]);
  json run0 = parts.front().j["shard"]["run"];
  if (!attributions.empty() && run0["command"] != "explain")
    throw InputError("merge", fmt::format("--attributions: only explain parts carry attributions ({} is a part of {})",
                                          parts.front().path, run0["command"].get<std::string>()));
  const int64_t count = integer(parts.front().j["shard"]["count"]);
  if (count < 1 || count > (int64_t(1) << 40))
    throw InputError("merge", fmt::format("{}: a shard count of {} is not one --shard I/N writes", parts.front().path, count));
  for (auto& p : parts) {
    if (p.index < 0 || p.index >= count)
      throw InputError("merge", fmt::format("{}: shard index {} is outside 0..{}", p.path, p.index, count - 1));
    json& run = p.j["shard"]["run"];
    if (run["id"] != run0["id"])
      throw InputError("merge", fmt::format("{} and {} are parts of different runs: {}", parts.front().path, p.path,
                                            run_difference(run0, run)));
    if (integer(p.j["shard"]["count"]) != count)
      throw InputError("merge", fmt::format("{} is shard {}/{} but {} is of {} shards", p.path, p.index,
                                            integer(p.j["shard"]["count"]), parts.front().path, count));
  }
  std::stable_sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.index < b.index; });
  for (size_t k = 1; k < parts.size(); ++k)
    if (parts[k].index == parts[k - 1].index)
      throw InputError("merge", fmt::format("shard {}/{} given twice ({} and {})", parts[k].index, count, parts[k - 1].path,
                                            parts[k].path));
  // Indices are distinct and in range, so count - parts missing; the first 10 are listed.
  const int64_t n_missing = count - int64_t(parts.size());
  std::string missing;
  for (int64_t i = 0, k = 0, listed = 0; i < count && listed < 10 && n_missing > 0; ++i) {
    if (k < int64_t(parts.size()) && parts[size_t(k)].index == i) {
      ++k;
      continue;
    }
    ++listed;
    missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  }
  if (n_missing)
    throw InputError("merge", fmt::format("{} of {} shards missing: {}{}", n_missing, count, missing, n_missing > 10 ? ", ..." : ""));
  // Slices must tile the samples in order (the parts say which rows they hold).
  int64_t next = 0;
  for (auto& p : parts) {
    if (integer(p.j["shard"]["first"]) != next)
      throw InputError("merge", fmt::format("{}: shard {} starts at sample {}, expected {}", p.path, p.index,
                                            integer(p.j["shard"]["first"]), next));
    next = integer(p.j["shard"]["end"]);
  }
  if (next != integer(run0["samples_total"]))
    throw InputError("merge", fmt::format("the shards cover {} of {} samples", next, integer(run0["samples_total"])));

  const std::string command = run0["command"].get<std::string>();
  MergedReport r;
  json merged;
  int indent = 1;
  if (command == "attack") merged = merge_attack(parts);
  else if (command == "certify") merged = merge_certify(parts);
  else if (command == "corrupt") merged = merge_corrupt(parts);
  else if (command == "verify" && parts.front().j.value("kind", "") == "vnncomp_benchmark") merged = merge_benchmark(parts), indent = 2;
  else if (command == "verify" && parts.front().j.value("kind", "") == "vnnlib_property") merged = merge_vnnlib(parts), indent = 2;
  else if (command == "verify") merged = merge_verify(parts), indent = 2;
  else if (command == "explain") merged = merge_explain(parts, attributions, &r.attributions_npy), indent = 2;
  else if (command == "privacy") merged = merge_privacy(parts);
  else throw InputError("merge", fmt::format("{}: parts of '{}' cannot be merged (attack, certify, corrupt, explain, privacy, verify --data, verify --benchmark, verify --vnnlib --branches)", parts.front().path, command));
  merged["schema"] = parts.front().j["shard"]["report_schema"];
  merged.erase("shard");
  const bool csv = out.size() >= 4 && out.compare(out.size() - 4, 4, ".csv") == 0;
  if (csv && merged.value("kind", "") != "vnncomp_benchmark")
    throw InputError("merge", fmt::format("--out {}: only verify --benchmark parts merge into a results CSV; give a .json", out));
  r.text = csv ? shard::benchmark_csv(merged["instances"]) : merged.dump(indent) + "\n";
  r.command = command;
  r.shards = count;
  r.samples = next;
  r.device_sampler = parts.front().j["shard"].value("device_sampler", false);
  return r;
}

}  // namespace

}  // namespace mlaudit::cli

