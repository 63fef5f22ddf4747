// One verification instance across processes (docs/scale-out.md, "One instance across
// workers"): `verify --split-after S` stops a query still open after S seconds and writes its
// open branches (mlaudit.branches/1); the branches are cut into pieces, each run again with
// --split-after, and the instance is unsat iff every task is. `verify --benchmark --split-after`
// runs the pieces one after another in one process (the task tree is recorded for
// tools/scaleout_sim.py); under `--mpi` rank 0 hands them to idle ranks (mpi.cpp). Both use this
// bookkeeping, so both reach the same verdict.
// Header-only: shared by verify's benchmark mode and the MPI coordinator.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlaudit::cli::split {

/// Pieces of a list of branches: branch i goes to piece i mod `pieces` (neighbouring branches of a
/// depth-first stack are alike, so interleaving balances the pieces); fewer pieces when there
/// are fewer branches.
template <class Items>
std::vector<Items> deal(const Items& items, int pieces) {
  const size_t n = items.size();
  const size_t k = std::max<size_t>(1, std::min<size_t>(n, size_t(std::max(1, pieces))));
  std::vector<Items> out(k);
  for (size_t i = 0; i < n; ++i) out[i % k].push_back(items[i]);
  return out;
}
/// deal() of a JSON array of branches: JSON arrays.
inline std::vector<nlohmann::json> cut(const nlohmann::json& branches, int pieces) {
  std::vector<nlohmann::json> out = deal(branches, pieces);
  for (auto& p : out)
    if (p.is_null()) p = nlohmann::json::array();
  return out;
}

/// The pieces a piece's own split is cut into: it holds about 1/pieces of the instance's work.
inline int resplit_pieces(int pieces) { return std::max(2, pieces / 4); }

/// A handed-out falsification round (a branch {"case", "falsify": true}).
inline bool falsify_round(const nlohmann::json& branch) { return branch.is_object() && branch.value("falsify", false); }

/// A piece that holds only falsification rounds: it can find a counterexample but never closes
/// a branch, so the instance does not wait for it.
inline bool falsify_only(const nlohmann::json& piece) {
  return piece.is_array() && !piece.empty() && std::all_of(piece.begin(), piece.end(), falsify_round);
}

/// The mlaudit.branches/1 text of one piece: the split file's header (schema, model, property,
/// their hashes) with the piece's branches and the time left to the instance.
inline std::string piece_text(const nlohmann::json& file, const nlohmann::json& piece, double timeout_s) {
  nlohmann::json j = file;
  j["branches"] = piece;
  j["timeout_s"] = timeout_s;
  return j.dump() + "\n";
}

/// The verdict of one instance from its tasks: the root task (the whole query) and the pieces
/// of every split. sat as soon as a task finds a counterexample; timeout when a task ran out of
/// the instance's time; unsat when every task has answered unsat; otherwise the first other
/// word (unknown, error).
struct Instance {
  int64_t pending = 1;  ///< tasks handed out (or queued) and not answered; the root first
  bool sat = false, timeout = false;
  std::string other;  ///< unknown / error from some task (the instance cannot be unsat)
  nlohmann::json tasks = nlohmann::json::array();  ///< {parent, seconds, result, branches_in, branches_out} per answer
  int64_t branches_handed_out = 0;

  bool decided() const { return sat || timeout || pending == 0; }
  std::string result() const { return sat ? "sat" : timeout ? "timeout" : !other.empty() ? other : "unsat"; }

  /// Record a task's answer: `res` is the child's verdict word ("split" when it wrote open
  /// branches, `file` being that mlaudit.branches/1 JSON), `parent` the task whose split made it
  /// (-1: the root), `branches_in` its branch count (0: the root), `falsify` whether it was a
  /// falsify_only() piece (its sat counts, nothing else: the instance never waited for it).
  /// Returns the pieces to run next (each a branches array; a split's falsification rounds
  /// first, each a piece of its own), whose parent is this answer's index in `tasks`.
  std::vector<nlohmann::json> answer(int64_t parent, const std::string& res, double seconds, int64_t branches_in,
                                     const nlohmann::json* file, int pieces, bool falsify = false) {
    if (falsify) {
      tasks.push_back({{"parent", parent}, {"seconds", seconds}, {"result", res}, {"branches_in", branches_in},
                       {"branches_out", 0}, {"falsify", true}});
      if (res == "sat") sat = true;
      return {};
    }
    --pending;
    const bool split = res == "split" && file && file->contains("branches") && (*file)["branches"].is_array() &&
                       !(*file)["branches"].empty();
    int64_t branches_out = split ? int64_t((*file)["branches"].size()) : 0;
    tasks.push_back({{"parent", parent}, {"seconds", seconds}, {"result", split ? "split" : res},
                     {"branches_in", branches_in}, {"branches_out", branches_out}});
    if (res == "sat") sat = true;
    else if (res == "timeout") timeout = true;
    else if (split) {
      // The closed part of a split task may hold an undecided leaf: the instance cannot be unsat.
      if (file->value("open_undecided", false) && other.empty()) other = "unknown";
    } else if (res != "unsat" && other.empty()) other = res.empty() ? "unknown" : res;
    // (Not decided(): with the root answered, pending is 0 until the pieces are counted.)
    if (!split || sat || timeout) return {};
    // The root's split goes to every worker; a piece that split again holds about 1/pieces of
    // the work, so its own split is cut 4 times less finely (resplit_pieces).
    nlohmann::json search = nlohmann::json::array();
    std::vector<nlohmann::json> out;
    for (const auto& b : (*file)["branches"]) {
      if (falsify_round(b)) out.push_back(nlohmann::json::array({b}));
      else search.push_back(b);
    }
    const size_t rounds = out.size();
    if (!search.empty())
      for (auto& p : cut(search, parent < 0 && tasks.size() == 1 ? pieces : resplit_pieces(pieces)))
        out.push_back(std::move(p));
    pending += int64_t(out.size() - rounds);
    branches_handed_out += branches_out;
    return out;
  }

  /// The row's "split" block: how the instance was divided.
  nlohmann::json summary() const {
    double worker_seconds = 0;
    for (const auto& t : tasks) worker_seconds += t["seconds"].get<double>();
    return {{"tasks", tasks.size()}, {"branches_handed_out", branches_handed_out}, {"worker_seconds", worker_seconds},
            {"task_tree", tasks}};
  }
};

}  // namespace mlaudit::cli::split
