// A persistent child mlaudit that runs one command line after another under a hard time limit
// (verify --benchmark's instances and, with --split-after, the many short pieces of one
// instance). Starting a process per task costs 10-20 ms (exec, the dynamic linker relocating
// oneDNN/Z3/protobuf/CUDA/MPI, thread pools); a split ACAS Xu instance runs hundreds of tasks of
// 10-40 ms, so the start-up was a third of the work (docs/scale-out.md). The limit still holds
// whatever a task does: the child is killed when a task outlives it and a fresh one starts at the
// next task.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace mlaudit::cli {

class TaskServer {
 public:
  /// `exe`: the mlaudit executable the child runs (this process's own by default; tests name it).
  explicit TaskServer(std::string exe = "/proc/self/exe") : exe_(std::move(exe)) {}
  TaskServer(const TaskServer&) = delete;
  TaskServer& operator=(const TaskServer&) = delete;
  ~TaskServer();

  /// The task's exit code, as `mlaudit ARGS...` would return it (its stdout is discarded, its
  /// stderr is this process's); kKilled when it ran past `limit_s` seconds (the child is killed),
  /// kDied when the child ended without answering (a crash: the next task starts a new one).
  static constexpr int kKilled = -1, kDied = -2;
  int run(const std::vector<std::string>& args, double limit_s);

  /// How many child processes were started (tests: one for many tasks).
  int starts() const { return starts_; }

  /// Split on demand (docs/scale-out.md): while a task runs, run() calls `ask` every millisecond;
  /// when it returns true the task is asked, once, to split now (SIGUSR1 to the child, which sets
  /// split_requested(); a verify --split-after query then hands out its open branches at once).
  /// The MPI worker ranks set it; empty: never.
  void set_split_poll(std::function<bool()> ask) { ask_ = std::move(ask); }

  /// The server one process shares: verify --benchmark's tasks, and every chunk an MPI worker
  /// rank runs, go to the same child. It runs this process's executable, or $MLAUDIT_EXE when
  /// set (a host that is not mlaudit: the Python module).
  static TaskServer& shared();

 private:
  void start();
  void stop(bool kill);
  std::string exe_;
  pid_t pid_ = -1;
  int sock_ = -1;  // the socket to the child (both directions)
  int starts_ = 0;
  int task_ = 0;  // tasks sent to this child (the number a split request names)
  std::function<bool()> ask_;
};

/// True in the task child (`mlaudit --task-server`): its tasks read the same files over and over.
bool in_task_child();

/// Set when this process was asked to split its running query now (SIGUSR1, sent by the process
/// that handed out the task, or by a user: `kill -USR1 PID` makes a running `verify --vnnlib
/// --split-after S --branches-out B.json` write its open branches at once).
std::atomic<bool>& split_requested();
/// Install the SIGUSR1 handler that sets split_requested() (the default action would end the
/// process): called by each query that can split.
void listen_for_split_requests();

/// The child's side (`mlaudit --task-server`, started by TaskServer only): reads one request per
/// line on stdin (a JSON array of mlaudit's arguments), runs it with `run`, and answers the exit
/// code on file descriptor 3; returns at end of input.
int serve_tasks(int (*run)(const std::vector<std::string>& args));

}  // namespace mlaudit::cli
