// `--shard I/N` (attack, certify, corrupt, explain, privacy, verify --data and --benchmark): one process
// runs the I-th of N contiguous slices of the samples (after --limit) and writes a *part*: the
// command's usual JSON over its slice, sample indices global, plus a "shard" block naming the
// slice and the run (hashes of the model and data, the options that affect results, the tool
// version). `mlaudit merge` (commands/merge.cpp) checks the parts belong to one run and writes
// the JSON one process writes.
// Header-only: shared by the commands and merge without another source in the build.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <boost/any.hpp>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "command.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/validate.h"
#include "mlaudit/engine/error.h"
#include "version.h"

namespace mlaudit::cli::shard {

inline constexpr const char* kSchema = "mlaudit.part/1";

/// A benchmark row's `correct`: whether a solved result (sat / unsat) agrees with expected.csv's
/// answer; null when unsolved or no answer is known. The benchmark and the MPI coordinator's
/// split instances both write it.
inline nlohmann::json benchmark_correct(const std::string& result, const std::string& expected) {
  const bool solved = result == "sat" || result == "unsat";
  if (!solved || expected.empty()) return nullptr;
  return result == expected;
}

/// `verify --benchmark`'s summary from its instance rows (result, correct, seconds): solved,
/// sat, unsat, wrong (a solved instance whose answer contradicts expected.csv), unsolved, total
/// and median seconds. The benchmark writes it from its run, merge from the parts' rows in order.
inline void benchmark_summary(nlohmann::json& j) {
  int64_t sat = 0, unsat = 0, wrong = 0, other = 0;
  double total = 0;
  std::vector<double> times;
  for (auto& r : j["instances"]) {  // non-const: a missing key reads as null (and get<> throws), never past the end
    const std::string res = r["result"].get<std::string>();
    if (r["correct"].is_boolean() && !r["correct"].get<bool>()) ++wrong;
    else if (res == "sat") ++sat;
    else if (res == "unsat") ++unsat;
    else ++other;
    total += r["seconds"].get<double>();
    times.push_back(r["seconds"].get<double>());
  }
  std::sort(times.begin(), times.end());
  const double median = times.empty() ? 0 : times[times.size() / 2];
  j["summary"] = {{"instances", times.size()}, {"solved", sat + unsat}, {"sat", sat},        {"unsat", unsat},
                  {"wrong", wrong},            {"unsolved", other},     {"total_seconds", total}, {"median_seconds", median}};
}

/// `verify --benchmark`'s results.csv (VNN-COMP style columns) from its instance rows.
inline std::string benchmark_csv(nlohmann::json rows) {
  std::string out = "onnx,vnnlib,result,expected,correct,seconds\n";
  for (auto& r : rows)
    out += fmt::format("{},{},{},{},{},{:.3f}\n", r["onnx"].get<std::string>(), r["vnnlib"].get<std::string>(),
                       r["result"].get<std::string>(), r["expected"].is_string() ? r["expected"].get<std::string>() : "",
                       r["correct"].is_boolean() ? (r["correct"].get<bool>() ? "yes" : "no") : "", r["seconds"].get<double>());
  return out;
}

/// The slice one process runs: samples [first, end) of `total`.
struct Shard {
  bool on = false;
  int64_t index = 0, count = 1;
  int64_t total = 0, first = 0, end = 0;
  int64_t size() const { return end - first; }
};

inline void add_option(po::options_description& desc) {
  desc.add_options()("shard", po::value<std::string>(),
                     "I/N: run only the I-th of N contiguous slices of the samples (after --limit; 0 <= I < N) and "
                     "write a part for 'mlaudit merge' (results equal one process's)");
}

/// --shard I/N as given (validated: integers, 0 <= I < N).
inline Shard parse(const std::string& command, const po::variables_map& vm) {
  Shard s;
  if (!vm.count("shard")) return s;
  const std::string t = vm["shard"].as<std::string>();
  const auto bad = [&] {
    return InputError(command, fmt::format("--shard '{}': expected I/N with integers 0 <= I < N (e.g. 0/4)", t));
  };
  const size_t slash = t.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == t.size()) throw bad();
  auto number = [&](const std::string& part) {
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos) throw bad();
    return int64_t(std::stoll(part));
  };
  s.index = number(t.substr(0, slash));
  s.count = number(t.substr(slash + 1));
  if (s.count < 1 || s.index >= s.count) throw bad();
  s.on = true;
  return s;
}

/// Thrown by set_total in count-only mode: the number of items the command would process.
struct ItemCount {
  int64_t total = 0;
};

/// Count-only mode (`mlaudit --mpi`'s coordinator): the command reads and checks its inputs as
/// usual and stops at set_total, before any work, throwing ItemCount. Every sharded command
/// calls set_total exactly once, after its inputs are validated.
inline bool& count_only_mode() {
  static bool on = false;
  return on;
}

/// Fix the slice of `total` samples: block I is [total*I/N, total*(I+1)/N), so blocks differ
/// in size by at most one and their concatenation is the whole set in order.
inline void set_total(Shard& s, const std::string& command, int64_t total) {
  if (count_only_mode()) throw ItemCount{total};
  s.total = total;
  if (!s.on) {
    s.first = 0, s.end = total;
    return;
  }
  if (s.count > total)
    throw InputError(command, fmt::format("--shard {}/{}: {} shards of {} samples would leave a shard empty: use at most {}",
                                          s.index, s.count, s.count, total, total));
  s.first = total * s.index / s.count;
  s.end = total * (s.index + 1) / s.count;
}

/// Options that can change results, as given: every option but the file and folder paths
/// (hashed instead: a benchmark by its instances.csv, explain's background rows), the output
/// paths and --shard itself. A value that names an existing regular file, FILE or @FILE (a `--features` list,
/// a `--domain` CSV, often in an audit's per-process work folder) is recorded by its content,
/// {"sha256": ...}, not its path: shards reading copies at other paths are one run.
inline nlohmann::json canonical_options(const po::variables_map& vm) {
  static const std::set<std::string> skip = {"model",  "data",         "labels",      "out",         "save-adv",
                                             "shard",  "help",         "quiet",       "result",      "benchmark",
                                             "background", "attributions", "json",    "heatmap-dir", "interactions",
                                             // privacy's files (its reference models are hashed one by one)
                                             "members", "member-labels", "non-members", "non-member-labels",
                                             "reference-models"};
  nlohmann::json o = nlohmann::json::object();
  for (const auto& [name, value] : vm) {
    if (skip.count(name)) continue;
    const boost::any& a = value.value();
    if (a.empty()) o[name] = true;  // a switch (--minimal-distance)
    else if (auto p = boost::any_cast<std::string>(&a)) {
      // FILE, or @FILE (a list option's file form)
      const std::string file = p->size() > 1 && (*p)[0] == '@' ? p->substr(1) : *p;
      std::error_code ec;
      if (!file.empty() && std::filesystem::is_regular_file(file, ec)) o[name] = {{"sha256", datasets::sha256_file(file)}};
      else o[name] = *p;
    }
    else if (auto d = boost::any_cast<double>(&a)) o[name] = *d;
    else if (auto i = boost::any_cast<int>(&a)) o[name] = *i;
    else if (auto l = boost::any_cast<int64_t>(&a)) o[name] = *l;
    else if (auto u = boost::any_cast<uint64_t>(&a)) o[name] = *u;
    else if (auto b = boost::any_cast<bool>(&a)) o[name] = *b;
    else o[name] = "(set)";
  }
  return o;
}

/// The "shard" block of a part. `inputs` is the report's inputs block ({role: {path, sha256,
/// bytes}}): the run is identified by the files' hashes, not their paths, so shards may read
/// copies at other paths.
inline nlohmann::json part_block(const std::string& command, const Shard& s, const po::variables_map& vm,
                                 const GlobalOptions& g, const nlohmann::json& inputs) {
  nlohmann::json run;
  run["command"] = command;
  run["tool_version"] = MLAUDIT_VERSION;
  run["sha256"] = nlohmann::json::object();
  for (const auto& [role, file] : inputs.items())
    if (file.is_object() && file.contains("sha256")) run["sha256"][role] = file["sha256"];
  run["options"] = canonical_options(vm);
  run["model_output"] = g.model_output;
  run["device"] = int(g.device);
  run["samples_total"] = s.total;
  run["id"] = datasets::sha256_hex(run.dump());
  return {{"schema", kSchema}, {"index", s.index}, {"count", s.count},
          {"first", s.first},  {"end", s.end},     {"run", run}};
}

/// Turn a command's report over its slice into a part: the "shard" block added and the schema
/// set to mlaudit.part/1 (the report's own schema kept as shard.report_schema), so a part is
/// never read as a whole run (an audit's `result:` import refuses it); merge restores it.
inline void make_part(nlohmann::json& report, const std::string& command, const Shard& s, const po::variables_map& vm,
                      const GlobalOptions& g) {
  nlohmann::json block = part_block(command, s, vm, g, report["inputs"]);
  block["report_schema"] = report["schema"];
  report["schema"] = kSchema;
  report["shard"] = block;
}

}  // namespace mlaudit::cli::shard
