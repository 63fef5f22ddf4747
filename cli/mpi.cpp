// `mpirun -n K mlaudit --mpi <command> ...` (docs/scale-out.md): rank 0 coordinates, ranks
// 1..K-1 work. The command's items (samples, or benchmark instances) are cut into M chunks,
// chunk c being exactly what `--shard c/M` runs; rank 0 hands the next chunk to whichever worker
// is idle (verification instances take milliseconds to minutes, so fixed slices balance
// badly), keeps every part it receives in OUT.parts/, and merges them with `mlaudit merge`'s
// code into the report one process writes. A rank that fails, a chunk that fails, or SIGINT /
// SIGTERM (mpirun forwards Ctrl-C and kills the job when a rank dies) end the run with the
// chunks not done named on stderr, the finished parts kept for a rerun of the missing shards
// and a merge: nothing is dropped silently.
#include "mpi_run.h"

#include <fmt/format.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <deque>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "merge.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/progress.h"
#include "shard.h"
#include "split.h"
#include "task_server.h"

namespace mlaudit::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kTagWork = 11;    // rank 0 -> worker: int64 {chunk, chunks, task, branches bytes}; chunk < 0: stop
constexpr int kTagBranches = 14;  // rank 0 -> worker: the task's open branches (mlaudit.branches/1), when bytes > 0
constexpr int kTagHeader = 12;  // worker -> rank 0: int64 {task, exit code, text bytes}
constexpr int kTagText = 13;    // worker -> rank 0: the part (exit 0) or the error message
constexpr int kTagSplit = 15;   // rank 0 -> worker: int64 task; split it now (workers idle, queue empty)

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

// The value of --out / -o in a command's arguments, and the arguments without it.
std::string take_out(std::vector<std::string>& args) {
  std::string out;
  std::vector<std::string> rest;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if ((a == "--out" || a == "-o") && k + 1 < args.size()) out = args[++k];
    else if (a.rfind("--out=", 0) == 0) out = a.substr(6);
    else rest.push_back(a);
  }
  args = rest;
  return out;
}

bool has(const std::vector<std::string>& args, const std::string& name) {
  for (const auto& a : args)
    if (a == name || a.rfind(name + "=", 0) == 0) return true;
  return false;
}

// One chunk on this rank: the command with --shard c/M into a temporary part file, read back.
// Returns {exit code, part text or the one-line error}.
// `branches`: a split instance's piece (verify --benchmark --split-after; split.h), run by the
// chunk's one instance with --hand-out --branches.
std::pair<int64_t, std::string> run_chunk(const std::string& command, const std::vector<std::string>& args,
                                          const GlobalOptions& global, int64_t chunk, int64_t chunks, const fs::path& tmp,
                                          const std::string& branches) {
  const fs::path part = tmp / fmt::format("chunk-{}.json", chunk);
  std::vector<std::string> a = args;
  a.insert(a.end(), {"--shard", fmt::format("{}/{}", chunk, chunks), "--out", part.string()});
  if (has(args, "--split-after")) a.push_back("--hand-out");
  if (!branches.empty()) {
    const fs::path file = tmp / fmt::format("branches-{}.json", chunk);
    datasets::write_file_atomic(file.string(), branches);
    a.insert(a.end(), {"--branches", file.string()});
  }
  GlobalOptions g = global;
  g.quiet = true;
  try {
    const int code = run_command(command, a, g);
    if (code != 0) return {code, fmt::format("{} exited with {}", command, code)};
    std::string text = datasets::read_file(part.string(), int64_t(4) << 30);
    fs::remove(part);
    return {0, text};
  } catch (const InputError& e) {
    return {2, e.what()};
  } catch (const std::exception& e) {
    return {3, std::string("internal error: ") + e.what()};
  }
}

void send_work(int rank, int64_t chunk, int64_t chunks, int64_t task = -1, const std::string& branches = "") {
  int64_t msg[4] = {chunk, chunks, task < 0 ? chunk : task, int64_t(branches.size())};
  MPI_Send(msg, 4, MPI_INT64_T, rank, kTagWork, MPI_COMM_WORLD);
  if (!branches.empty()) MPI_Send(branches.data(), int(branches.size()), MPI_CHAR, rank, kTagBranches, MPI_COMM_WORLD);
}

// A worker's answer: which task, its exit code, and the part (or the error message).
struct Reply {
  int rank = 0;
  int64_t chunk = 0, code = 0;  // chunk: the task's index (tasks below `chunks` are the chunks themselves)
  std::string text;
};

// The next worker's answer, if one has arrived (rank 0 polls so that it can notice signals).
std::optional<Reply> poll_reply() {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(MPI_ANY_SOURCE, kTagHeader, MPI_COMM_WORLD, &flag, &st);
  if (!flag) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::nullopt;
  }
  Reply r;
  r.rank = st.MPI_SOURCE;
  int64_t header[3];
  MPI_Recv(header, 3, MPI_INT64_T, r.rank, kTagHeader, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  r.chunk = header[0];
  r.code = header[1];
  r.text.assign(size_t(header[2]), '\0');
  MPI_Recv(r.text.data(), int(header[2]), MPI_CHAR, r.rank, kTagText, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return r;
}

int worker(const std::string& command, const std::vector<std::string>& args, const GlobalOptions& global, int rank) {
  const char* kill_rank = std::getenv("MLAUDIT_MPI_TEST_KILL_RANK");  // test hook: this rank dies on its first chunk
  const fs::path tmp = fs::temp_directory_path() / fmt::format("mlaudit-mpi-{}-{}", getpid(), rank);
  fs::create_directories(tmp);
  // Everything a worker writes is scratch (its chunks' parts go to rank 0 as messages; rank 0
  // writes the parts folder and the report): no sync to disk per file.
  datasets::set_sync_writes(false);
  // Split on demand: rank 0 asks the task this rank runs to split now; the request reaches the
  // verify query through the task server's child (task_server.h). A request for a task that
  // already ended is dropped.
  int64_t current = -1;
  auto take_split_request = [&] {
    bool now = false;
    for (;;) {
      int flag = 0;
      MPI_Iprobe(0, kTagSplit, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
      if (!flag) return now;
      int64_t task = -1;
      MPI_Recv(&task, 1, MPI_INT64_T, 0, kTagSplit, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      now |= task == current;
    }
  };
  if (has(args, "--split-after")) TaskServer::shared().set_split_poll(take_split_request);
  for (;;) {
    int64_t msg[4];
    MPI_Recv(msg, 4, MPI_INT64_T, 0, kTagWork, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (msg[0] < 0) break;
    take_split_request();  // requests for earlier tasks
    current = msg[2];
    std::string branches(size_t(msg[3]), '\0');
    if (msg[3] > 0)
      MPI_Recv(branches.data(), int(msg[3]), MPI_CHAR, 0, kTagBranches, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (kill_rank && std::atoi(kill_rank) == rank) std::raise(SIGKILL);
    auto [code, text] = run_chunk(command, args, global, msg[0], msg[1], tmp, branches);
    int64_t header[3] = {msg[2], code, int64_t(text.size())};
    MPI_Send(header, 3, MPI_INT64_T, 0, kTagHeader, MPI_COMM_WORLD);
    MPI_Send(text.data(), int(text.size()), MPI_CHAR, 0, kTagText, MPI_COMM_WORLD);
    current = -1;
  }
  take_split_request();
  TaskServer::shared().set_split_poll({});
  fs::remove_all(tmp);
  return 0;
}

// Rank 0 stops early: the chunks not done named, the finished parts left in `parts_dir`.
[[noreturn]] void give_up(const std::string& why, const std::map<int, int64_t>& running, const std::vector<bool>& done,
                          const fs::path& parts_dir, const std::string& command, int exit_code) {
  std::string missing;
  int64_t n_missing = 0, n_done = 0;
  for (size_t c = 0; c < done.size(); ++c) {
    if (done[c]) {
      ++n_done;
      continue;
    }
    if (++n_missing <= 20) missing += (missing.empty() ? "" : ", ") + std::to_string(c);
  }
  std::string where;
  for (const auto& [rank, chunk] : running) where += fmt::format("{}chunk {} on rank {}", where.empty() ? "" : ", ", chunk, rank);
  std::cerr << fmt::format(
      "mlaudit: error: {}: --mpi: {}; {} of {} chunks not done: {}{}{}. The {} finished parts are in {}: run each missing chunk "
      "c with --shard c/{}, then mlaudit merge {}/*.json and the new parts\n",
      command, why, n_missing, done.size(), missing, n_missing > 20 ? ", ..." : "",
      where.empty() ? "" : " (running: " + where + ")", n_done, parts_dir.string(), done.size(), parts_dir.string());
  std::cerr.flush();
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

int coordinator(const std::string& command, const std::vector<std::string>& args, const std::string& out,
                const GlobalOptions& global, int workers, bool gate) {
  // The item count, from the command itself: it reads and checks every input (a bad option or
  // file ends here, exit 2, before any worker starts) and stops where it would fix its slice.
  int64_t total = -1;
  {
    GlobalOptions g = global;
    g.quiet = true;
    shard::count_only_mode() = true;
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--out", out});
    try {
      run_command(command, a, g);
    } catch (const shard::ItemCount& c) {
      total = c.total;
    } catch (...) {
      shard::count_only_mode() = false;
      for (int w = 1; w <= workers; ++w) send_work(w, -1, 0);
      throw;
    }
    shard::count_only_mode() = false;
    if (total < 0) {
      for (int w = 1; w <= workers; ++w) send_work(w, -1, 0);
      throw InputError(command, "--mpi: this mode of the command does not run over items (--mpi runs attack, certify, corrupt, "
                                "explain, verify --data and verify --benchmark)");
    }
  }
  if (total == 0) {
    for (int w = 1; w <= workers; ++w) send_work(w, -1, 0);
    throw InputError(command, "--mpi: no items to run");
  }
  // Benchmark instances vary from milliseconds to minutes: one per chunk. Samples: 8 chunks per
  // worker, enough to balance, few enough that each chunk's model load stays small.
  int64_t chunks = global.mpi_chunks > 0 ? global.mpi_chunks
                                         : (has(args, "--benchmark") ? total : std::min<int64_t>(total, int64_t(workers) * 8));
  chunks = std::min(chunks, total);
  const fs::path parts_dir = out + ".parts";
  fs::remove_all(parts_dir);
  fs::create_directories(parts_dir);
  // verify --benchmark --split-after: an instance still open after S seconds comes back with its
  // open branches; they are cut into pieces that go to idle ranks before the next instance
  // (split.h), and the instance's part is written once it is decided.
  const bool split_mode = command == "verify" && has(args, "--benchmark") && has(args, "--split-after");
  int pieces = workers;
  if (split_mode) {
    for (size_t k = 0; k + 1 < args.size(); ++k)
      if (args[k] == "--split-pieces") pieces = std::max(1, std::atoi(args[k + 1].c_str()));
    if (chunks != total) {
      for (int w = 1; w <= workers; ++w) send_work(w, -1, 0);
      throw InputError(command, "--mpi --split-after runs one instance per chunk: leave out --mpi-chunks");
    }
  }
  std::vector<std::string> texts(static_cast<size_t>(chunks));
  std::vector<bool> done(static_cast<size_t>(chunks), false);
  // Tasks: task c < chunks is chunk c itself; a split adds its pieces as further tasks.
  struct Task {
    int64_t chunk = 0;
    int64_t parent = -1;  // the split.h answer index that made this piece (-1: the chunk itself)
    nlohmann::json piece;  // the piece's branches (null: the chunk itself)
    int copies = 0;
    bool answered = false;
    std::chrono::steady_clock::time_point started;
    bool falsify = false;                            // split::falsify_only(piece): never asked to split
    int rank = 0;                                    // the rank of its first copy
    bool asked = false;                              // asked to split now (split on demand)
    std::chrono::steady_clock::time_point asked_at;
  };
  std::vector<Task> tasks(static_cast<size_t>(chunks));
  for (int64_t c = 0; c < chunks; ++c) tasks[size_t(c)].chunk = c;
  std::deque<int64_t> queue;
  for (int64_t c = 0; c < chunks; ++c) queue.push_back(c);
  std::vector<split::Instance> inst(split_mode ? size_t(chunks) : 0);
  std::vector<nlohmann::json> root_part(inst.size()), split_file(inst.size());
  std::vector<std::chrono::steady_clock::time_point> inst_start(inst.size());
  std::vector<double> inst_timeout(inst.size(), 0);
  std::map<int, int64_t> running;  // rank -> task
  std::vector<int> idle;           // split mode: workers waiting for pieces
  int64_t n_done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  // The piece's text at hand-out, with the time its instance has left.
  auto branches_text = [&](const Task& t) -> std::string {
    if (t.piece.is_null()) return "";
    const double left = inst_timeout[size_t(t.chunk)] -
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - inst_start[size_t(t.chunk)]).count();
    return split::piece_text(split_file[size_t(t.chunk)], t.piece, std::max(0.0, left));
  };
  auto hand = [&](int w, int64_t id) {
    Task& t = tasks[size_t(id)];
    ++t.copies;
    t.started = std::chrono::steady_clock::now();
    if (t.copies == 1) t.rank = w;
    if (split_mode && t.piece.is_null() && t.copies == 1) inst_start[size_t(t.chunk)] = t.started;
    running[w] = id;
    send_work(w, t.chunk, chunks, id, branches_text(t));
  };
  engine::ProgressLine progress(fmt::format("{} on {} MPI workers", command, workers), "chunks", global.show_progress());
  auto on = progress.fn();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  // Once every task is handed out, an idle worker takes a backup copy of the task that has run
  // longest (fewest copies first): a slow or lost rank (under `mpirun --enable-recovery` a dead
  // rank does not stop the job, it just never answers) cannot hold the run, and the first copy
  // to finish counts. Tasks are deterministic, so any copy gives the same part.
  int64_t backups_used = 0;
  // Split on demand (split mode): while workers wait and the queue is empty, rank 0 asks the
  // task that has run longest (at least 10 ms) to split now, one open request per 4 idle workers
  // (a split brings up to `pieces` pieces; tools/scaleout_sim.py measured 1, 4 and 16), rather
  // than letting them wait until its --split-after S.
  constexpr int64_t kIdlePerAsk = 4;
  constexpr double kAskMinAgeS = 0.01;
  int64_t asks_open = 0, asks_sent = 0;
  auto ask_for_work = [&] {
    const auto now = std::chrono::steady_clock::now();
    while (split_mode && queue.empty() && asks_open * kIdlePerAsk < int64_t(idle.size())) {
      int64_t best = -1;
      for (const auto& [rank, id] : running) {
        const Task& t = tasks[size_t(id)];
        if (t.asked || t.answered || done[size_t(t.chunk)] || t.falsify ||
            std::chrono::duration<double>(now - t.started).count() < kAskMinAgeS)
          continue;
        if (best < 0 || t.started < tasks[size_t(best)].started) best = id;
      }
      if (best < 0) return;
      Task& t = tasks[size_t(best)];
      t.asked = true;
      t.asked_at = std::chrono::steady_clock::now();
      ++asks_open;
      ++asks_sent;
      MPI_Send(&best, 1, MPI_INT64_T, t.rank, kTagSplit, MPI_COMM_WORLD);
    }
  };
  // A task asked to split answers within its branch in progress and the expansion (at most
  // 1 s); one silent this long after the request is on a lost rank (or in a long Z3 leaf call).
  constexpr double kBackupAfterAskS = 15;
  auto assign = [&](int w) {
    while (!queue.empty()) {
      const int64_t id = queue.front();
      queue.pop_front();
      if (done[size_t(tasks[size_t(id)].chunk)]) continue;  // its instance was decided meanwhile
      hand(w, id);
      return;
    }
    int64_t best = -1;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [rank, id] : running) {
      const Task& t = tasks[size_t(id)];
      if (done[size_t(t.chunk)] || t.answered) continue;
      // split mode: a task that can still be asked for work, or that was asked lately, is not copied
      if (split_mode && (!t.asked || std::chrono::duration<double>(now - t.asked_at).count() < kBackupAfterAskS)) continue;
      const Task* b = best < 0 ? nullptr : &tasks[size_t(best)];
      if (!b || t.copies < b->copies || (t.copies == b->copies && t.started < b->started)) best = id;
    }
    if (best >= 0 && tasks[size_t(best)].copies < 3) {
      ++backups_used;
      hand(w, best);
    } else if (split_mode) {
      idle.push_back(w);  // a split may bring pieces until the last chunk is done
      ask_for_work();
    } else {
      send_work(w, -1, 0);
    }
  };
  for (int w = 1; w <= workers; ++w) {
    if (!queue.empty()) hand(w, queue.front()), queue.pop_front();
    else send_work(w, -1, 0);
  }
  // The chunk -> running map give_up reports.
  auto running_chunks = [&] {
    std::map<int, int64_t> m;
    for (const auto& [rank, id] : running) m[rank] = tasks[size_t(id)].chunk;
    return m;
  };
  auto finish_chunk = [&](int64_t chunk, std::string text) {
    datasets::write_file_atomic((parts_dir / fmt::format("part-{:05d}-of-{}.json", chunk, chunks)).string(), text);
    texts[size_t(chunk)] = std::move(text);
    done[size_t(chunk)] = true;
    ++n_done;
    if (on) on(n_done, chunks);
  };
  while (n_done < chunks) {
    if (g_signal)
      give_up(g_signal == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM: a rank died or the launcher stopped the job)",
              running_chunks(), done, parts_dir, command, 130);
    auto reply = poll_reply();
    if (!reply) {
      if (split_mode && !idle.empty()) {
        // Idle workers: a backup copy of a task silent long after it was asked, or else (assign
        // puts the worker back) ask for work.
        const int w = idle.back();
        idle.pop_back();
        assign(w);
      }
      continue;
    }
    const int src = reply->rank;
    const int64_t id = reply->chunk;
    Task& task = tasks[size_t(id)];
    if (task.asked && !task.answered) --asks_open;
    const int64_t chunk = task.chunk;
    std::string& text = reply->text;
    running.erase(src);
    if (reply->code != 0) {
      std::string msg = text;
      if (msg.rfind(command + ": ", 0) == 0) msg = msg.substr(command.size() + 2);
      give_up(fmt::format("chunk {} failed on rank {}: {}", chunk, src, msg), running_chunks(), done, parts_dir, command,
              int(reply->code));
    }
    if (!done[size_t(chunk)] && !task.answered) {
      task.answered = true;
      if (!split_mode) {
        finish_chunk(chunk, std::move(text));
      } else {
        // One task of a split instance: its row's result, and the open branches when it split.
        nlohmann::json part = nlohmann::json::parse(text);
        nlohmann::json& row = part["instances"][0];
        const std::string res = row["result"].get<std::string>();
        split::Instance& st = inst[size_t(chunk)];
        if (task.piece.is_null()) {
          root_part[size_t(chunk)] = part;
          inst_timeout[size_t(chunk)] = row["timeout_s"].get<double>();
        }
        const nlohmann::json file = res == "split" ? row["open_branches"] : nlohmann::json();
        if (res == "split") split_file[size_t(chunk)] = file;
        const int64_t me = int64_t(st.tasks.size());
        auto new_pieces = st.answer(task.parent, res, row["seconds"].get<double>(),
                                    task.piece.is_null() ? 0 : int64_t(task.piece.size()), &file, pieces,
                                    task.falsify);
        // Pieces go first (an instance already running ends sooner), in their order.
        for (auto it = new_pieces.rbegin(); it != new_pieces.rend(); ++it) {
          Task p;
          p.chunk = chunk;
          p.parent = me;
          p.piece = std::move(*it);
          p.falsify = split::falsify_only(p.piece);
          tasks.push_back(std::move(p));
          queue.push_front(int64_t(tasks.size()) - 1);
        }
        if (st.decided()) {
          // The chunk's part: its root row with the instance's verdict and wall time.
          nlohmann::json out = root_part[size_t(chunk)];
          nlohmann::json& r = out["instances"][0];
          const std::string result = st.result();
          r["result"] = result;
          r["correct"] = shard::benchmark_correct(result, r["expected"].is_string() ? r["expected"].get<std::string>() : "");
          r["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - inst_start[size_t(chunk)]).count();
          r.erase("open_branches");
          r["split"] = st.summary();
          shard::benchmark_summary(out);
          finish_chunk(chunk, out.dump(2) + "\n");
        }
        // Idle workers take the new pieces.
        while (!idle.empty() && !queue.empty()) {
          const int w = idle.back();
          idle.pop_back();
          assign(w);
        }
      }
    }
    if (n_done < chunks) assign(src);
    else send_work(src, -1, 0);
  }
  for (int w : idle) send_work(w, -1, 0);
  idle.clear();
  std::vector<PartText> parts;
  for (int64_t c = 0; c < chunks; ++c) parts.push_back({fmt::format("chunk {} of {}", c, chunks), std::move(texts[size_t(c)])});
  const MergedReport r = merge_parts(parts, out);
  datasets::write_file_atomic(out, r.text);
  fs::remove_all(parts_dir);
  // explain: the merged report's sanity checks, as one process prints them and gates on them.
  bool gate_failed = false;
  if (command == "explain") {
    const auto j = nlohmann::json::parse(r.text);
    if (!global.quiet)
      for (const auto& w : j.value("warnings", nlohmann::json::array()))
        std::cerr << "mlaudit: warning: " << w.get<std::string>() << "\n";
    gate_failed = gate && !j.value("passed", true);
  }
  // Ranks still running a copy of a finished chunk: let them answer (and stop) for as long as a
  // chunk took so far; a rank that never answers was lost, and the job is ended through
  // MPI_Abort with exit code 0 once the report is written.
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(2.0, elapsed));
  while (!running.empty() && std::chrono::steady_clock::now() < deadline && !g_signal) {
    auto reply = poll_reply();
    if (!reply) continue;
    running.erase(reply->rank);
    send_work(reply->rank, -1, 0);
  }
  if (!running.empty()) {
    std::string lost;
    for (const auto& [rank, chunk] : running) lost += fmt::format("{}{}", lost.empty() ? "" : ", ", rank);
    if (!global.quiet)
      std::cerr << fmt::format("mlaudit: warning: {}: --mpi: rank{} {} never answered (lost); its chunks were run again on other "
                               "ranks ({} backup cop{} in all) and the report is complete: {}\n",
                               command, running.size() == 1 ? "" : "s", lost, backups_used, backups_used == 1 ? "y" : "ies",
                               out);
    std::cerr.flush();
    std::cout.flush();
    MPI_Abort(MPI_COMM_WORLD, gate_failed ? 1 : 0);
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!global.quiet)
    std::cout << fmt::format("{} over {} MPI workers: {} chunks of {} {}{}, {:.2f} s: {}\n", command, workers, chunks, total,
                             has(args, "--benchmark") ? "instances" : "samples",
                             split_mode ? fmt::format(" ({} tasks, {} split on demand)", tasks.size(), asks_sent) : "",
                             seconds, out);
  return gate_failed ? 1 : 0;
}

}  // namespace

int run_mpi(const std::string& command, const std::vector<std::string>& args_in, const GlobalOptions& global) {
  int provided = 0;
  int argc = 0;
  char** argv = nullptr;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  struct Finalize {
    ~Finalize() {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  } finalize;
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<std::string> args = args_in;
  const std::string out = take_out(args);
  // Every rank checks the command line the same way, so they agree on whether to run; rank 0
  // alone reports a refusal.
  try {
    static const char* kShardable[] = {"attack", "certify", "corrupt", "explain", "privacy", "verify"};
    bool ok = false;
    for (const char* c : kShardable) ok |= command == c;
    if (!ok)
      throw InputError(command, "--mpi runs commands that loop over items: attack, certify, corrupt, explain, privacy, verify --data, "
                                "verify --benchmark");
    if (command == "verify" && !has(args, "--data") && !has(args, "--benchmark"))
      throw InputError(command, "--mpi runs verify --data or verify --benchmark (one --vnnlib property is one item)");
    // explain's arrays would be written by every worker to the one path (and merged from files
    // on the workers' disks): under --mpi, rank 0 writes the report only.
    if (command == "explain") {
      if (has(args, "--attributions"))
        throw InputError(command, "--attributions is not supported under --mpi (rank 0 writes the report only): run "
                                  "--shard I/N parts and mlaudit merge --attributions");
      if (has(args, "--interactions"))
        throw InputError(command, "--interactions is not supported under --mpi (merge does not join interaction arrays): "
                                  "run it in one process");
      if (has(args, "--json")) throw InputError(command, "--mpi writes the report to --out (leave out --json, its old spelling)");
      if (fs::path(out).extension() == ".npy")
        throw InputError(command, "--mpi writes the report JSON to --out (an --out ending in .npy, the old form of "
                                  "--attributions, is not supported under --mpi)");
    }
    if (has(args, "--shard")) throw InputError(command, "--mpi hands out the shards itself: leave out --shard");
    if (out.empty()) throw InputError(command, "--mpi needs --out (rank 0 writes the one report)");
  } catch (const InputError&) {
    // The other ranks leave quietly with 0: a nonzero exit would make mpirun kill rank 0
    // before it has printed the one message; mpirun's exit code is rank 0's 2.
    if (rank != 0) return 0;
    throw;
  }
  if (size < 2) {
    // One process: no one to hand work to; run the command as is.
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--out", out});
    return run_command(command, a, global);
  }
  // explain --gate: a chunk that fails a check would end the run as a failed chunk; the gate
  // applies to the merged report instead (every check fails on the whole run iff on some chunk).
  bool gate = false;
  if (command == "explain") {
    const auto it = std::find(args.begin(), args.end(), "--gate");
    gate = it != args.end();
    if (gate) args.erase(it);
  }
  // --split-after: a split's pieces default to one per worker (every rank asks the same).
  if (command == "verify" && has(args, "--split-after") && !has(args, "--split-pieces"))
    args.insert(args.end(), {"--split-pieces", std::to_string(size - 1)});
  if (rank == 0) return coordinator(command, args, out, global, size - 1, gate);
  return worker(command, args, global, rank);
}

}  // namespace mlaudit::cli
