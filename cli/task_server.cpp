#include "task_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "mlaudit/datasets/io.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::cli {
namespace {

// One socket carries both directions (a socket, not pipes, so that a write to a child that died
// fails with EPIPE instead of raising SIGPIPE here: send(..., MSG_NOSIGNAL)).
constexpr int kChildFd = 3;

bool send_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

// Split requests. The parent numbers its tasks (1, 2, ... per child) and sends SIGUSR1 with the
// task's number (sigqueue); the handler keeps the highest number asked, and the flag is set only
// for the task running now, so a request that arrives after its task ended never splits the next
// one, and one that arrives before its task started is not lost.
std::atomic<bool> g_split_requested{false};
std::atomic<int> g_task{0};        // the task running now (serve_tasks; 0 outside the server)
std::atomic<int> g_split_task{0};  // the highest task asked to split
static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "used from a signal handler");

extern "C" void on_split_signal(int, siginfo_t* info, void*) {
  // sigqueue carries the task's number; a plain kill -USR1 (a user) means the task running now.
  const int task = info && info->si_code == SI_QUEUE ? info->si_value.sival_int : g_task.load();
  if (task > g_split_task.load()) g_split_task.store(task);
  if (task == g_task.load()) g_split_requested.store(true);
}

// Task `n` starts: the flag says whether it was asked already.
void begin_task(int n) {
  g_task.store(n);
  g_split_requested.store(g_split_task.load() == n);
}

std::atomic<bool> g_task_child{false};  // serve_tasks runs in this process

}  // namespace

bool in_task_child() { return g_task_child.load(); }

std::atomic<bool>& split_requested() { return g_split_requested; }

void listen_for_split_requests() {
  struct sigaction sa {};
  sa.sa_sigaction = on_split_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  ::sigaction(SIGUSR1, &sa, nullptr);
}

TaskServer::~TaskServer() { stop(false); }

TaskServer& TaskServer::shared() {
  // MLAUDIT_EXE names the executable where this process is not mlaudit (the Python module).
  static TaskServer server(std::getenv("MLAUDIT_EXE") && *std::getenv("MLAUDIT_EXE") ? std::getenv("MLAUDIT_EXE")
                                                                                     : "/proc/self/exe");
  return server;
}

void TaskServer::start() {
  if (exe_ == "/proc/self/exe") {
    // The child is this executable run with --task-server: a host that is not mlaudit (python3
    // with the mlaudit module) must name the mlaudit executable.
    std::error_code ec;
    const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).filename().string();
    if (!ec && self.find("mlaudit") == std::string::npos)
      throw InputError("cli", fmt::format("this command runs its tasks in a child mlaudit process, and this process ({}) "
                                          "is not mlaudit: set MLAUDIT_EXE to the mlaudit executable",
                                          self));
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw Error("cli", "socketpair failed");
  const pid_t parent = ::getpid();
  // Everything the child needs is built before fork: between fork and exec only system calls.
  std::string exe = exe_;
  char flag[] = "--task-server";
  char* argv[] = {exe.data(), flag, nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    throw Error("cli", "fork failed");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the process that hands out the tasks
    if (::getppid() != parent) ::_exit(127);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
    }
    if (::dup2(sv[1], kChildFd) < 0) ::_exit(127);
    ::execv(argv[0], argv);
    ::_exit(127);
  }
  ::close(sv[1]);
  pid_ = pid;
  task_ = 0;
  sock_ = sv[0];
  ++starts_;
}

void TaskServer::stop(bool kill) {
  if (pid_ < 0) return;
  if (kill) ::kill(pid_, SIGKILL);
  ::close(sock_);  // an idle child reads end of input and exits
  sock_ = -1;
  int status = 0;
  for (int waited = 0;; ++waited) {
    const pid_t w = ::waitpid(pid_, &status, WNOHANG);
    if (w == pid_ || (w < 0 && errno != EINTR)) break;
    if (waited == 2000) ::kill(pid_, SIGKILL);  // 2 s: it was not idle after all
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  pid_ = -1;
}

int TaskServer::run(const std::vector<std::string>& args, double limit_s) {
  const std::string line = nlohmann::json(args).dump() + "\n";
  if (pid_ < 0) start();
  ++task_;
  if (!send_all(sock_, line)) {
    // The child died while idle (killed from outside): one fresh start.
    stop(true);
    start();
    ++task_;
    if (!send_all(sock_, line)) {
      stop(true);
      return kDied;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(std::max(0.0, limit_s));
  std::string answer;
  bool asked = false;
  for (;;) {
    const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      stop(true);
      return kKilled;
    }
    if (ask_ && !asked && ask_()) {
      sigval v{};
      v.sival_int = task_;
      ::sigqueue(pid_, SIGUSR1, v);
      asked = true;
    }
    pollfd p{sock_, POLLIN, 0};
    const int r = ::poll(&p, 1, int(std::ceil(std::min(left, ask_ && !asked ? 0.001 : 1.0) * 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[64];
    const ssize_t n = ::recv(sock_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      stop(true);
      return kDied;
    }
    answer.append(buf, size_t(n));
    if (const auto eol = answer.find('\n'); eol != std::string::npos) {
      try {
        return std::stoi(answer.substr(0, eol));
      } catch (const std::exception&) {
        stop(true);
        return kDied;
      }
    }
  }
}

int serve_tasks(int (*run)(const std::vector<std::string>& args)) {
  listen_for_split_requests();  // a request that comes between tasks must not end the server
  datasets::set_sync_writes(false);  // every file a task writes is the parent's scratch, read back at once
  datasets::set_file_hash_cache(true);  // the same model and property, task after task
  g_task_child.store(true);
  std::string pending;
  int task = 0;
  char buf[4096];
  for (;;) {
    const auto eol = pending.find('\n');
    if (eol == std::string::npos) {
      const ssize_t n = ::recv(kChildFd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;  // the parent closed the socket (or is gone)
      pending.append(buf, size_t(n));
      continue;
    }
    const std::string line = pending.substr(0, eol);
    pending.erase(0, eol + 1);
    int code = 3;
    begin_task(++task);
    try {
      code = run(nlohmann::json::parse(line).get<std::vector<std::string>>());
    } catch (const std::exception&) {
      code = 3;
    }
    if (!send_all(kChildFd, std::to_string(code) + "\n")) return 0;
  }
}

}  // namespace mlaudit::cli
