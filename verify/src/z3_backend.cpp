// Exact leaf checks with Z3 (QF_LRA) under a watchdog the tool controls.
//
// Encoding (the standard Reluplex/Planet-style MILP/SMT encoding, Ehlers ATVA 2017):
//   inputs x_i in [l_i, u_i];
//   z_k = W_k a_{k-1} + b_k as linear terms;
//   stable active (l >= 0):   a = z                        (substituted, no variable)
//   stable inactive (u <= 0): a = 0                        (dropped)
//   unstable:                 (z <= 0 and a = 0) or (z >= 0 and a = z),
//                             plus the implied triangle a >= 0, a >= z, a <= u (z - l)/(u - l)
//   max pool after a ReLU:    p >= a_j for all j, and p <= a_j for some j (p = max exactly)
//   the unsafe output region: one push/pop scope per conjunction.
// Numbers are exact rationals of the double values (no rounding in Z3).
#include <z3++.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mlaudit/verify/solver.h"

namespace mlaudit::verify {
namespace {

// Decimal string of 2^k.
std::string pow2_decimal(int k) {
  std::vector<int> digits{1};  // little-endian base 10
  for (int i = 0; i < k; ++i) {
    int carry = 0;
    for (int& d : digits) {
      int v = d * 2 + carry;
      d = v % 10;
      carry = v / 10;
    }
    if (carry) digits.push_back(carry);
  }
  std::string s;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) s += char('0' + *it);
  return s;
}

// Exact rational value of a double: v = M 2^e with integer M.
z3::expr exact(z3::context& ctx, double v) {
  if (v == 0) return ctx.real_val(0);
  int e = 0;
  double m = std::frexp(v, &e);  // v = m 2^e, 0.5 <= |m| < 1
  auto M = int64_t(std::ldexp(m, 53));
  e -= 53;
  while (M % 2 == 0 && e < 0) {
    M /= 2;
    ++e;
  }
  std::string num = std::to_string(M);
  if (e >= 0) return ctx.real_val(num.c_str()) * ctx.real_val(pow2_decimal(e).c_str());
  std::string frac = num + "/" + pow2_decimal(-e);
  return ctx.real_val(frac.c_str());
}

double to_double(const z3::expr& v) {
  // Numerals from models are rationals "p/q" (or decimals with '?' when algebraic).
  std::string s = v.get_decimal_string(30);
  if (!s.empty() && s.back() == '?') s.pop_back();
  return std::strtod(s.c_str(), nullptr);
}

// Interrupts the Z3 context at the time limit or when the deadline stops.
class Watchdog {
 public:
  Watchdog(z3::context& ctx, double seconds, const Deadline& deadline)
      : ctx_(ctx), end_(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(std::min(seconds, 1e7)))), deadline_(deadline) {
    thread_ = std::thread([this] { run(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() const { return fired_.load(); }

 private:
  void run() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!done_) {
      if (std::chrono::steady_clock::now() >= end_ || deadline_.stop()) {
        fired_ = true;
        ctx_.interrupt();
        // Keep interrupting until Z3 returns: an interrupt that lands between
        // two solver phases can be missed.
        cv_.wait_for(lk, std::chrono::milliseconds(20));
        continue;
      }
      cv_.wait_for(lk, std::chrono::milliseconds(20));
    }
  }
  z3::context& ctx_;
  std::chrono::steady_clock::time_point end_;
  const Deadline& deadline_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

}  // namespace

namespace {
VerifyResult z3_check_in_process(const Network& net, const InputBox& box, const LayerBounds& bounds,
                                 const std::vector<OutputConjunction>& unsafe, double timeout_s,
                                 const Deadline& deadline, const ConcreteForward& concrete) {
  auto t0 = std::chrono::steady_clock::now();
  VerifyResult res;
  res.method = "z3";
  res.z3_calls = 1;
  z3::context ctx;
  z3::solver solver(ctx, "QF_LRA");
  Watchdog dog(ctx, timeout_s, deadline);
  try {
    const int64_t n0 = net.input_size();
    std::vector<z3::expr> xs;
    for (int64_t i = 0; i < n0; ++i) {
      z3::expr x = ctx.real_const(fmt::format("x{}", i).c_str());
      solver.add(x >= exact(ctx, box.lower[size_t(i)]));
      solver.add(x <= exact(ctx, box.upper[size_t(i)]));
      xs.push_back(x);
    }
    // a: values feeding the next layer; an inactive neuron is a null entry.
    std::vector<std::optional<z3::expr>> a;
    for (auto& x : xs) a.emplace_back(x);
    std::vector<z3::expr> outputs;
    for (size_t k = 0; k < net.layers.size(); ++k) {
      const AffineLayer& L = net.layers[k];
      bool last = k + 1 == net.layers.size();
      std::vector<std::optional<z3::expr>> next;
      for (int64_t j = 0; j < L.out; ++j) {
        double l = bounds.lower[k][size_t(j)], u = bounds.upper[k][size_t(j)];
        z3::expr_vector terms(ctx);
        for (int64_t i = 0; i < L.in; ++i) {
          double w = L.weight[size_t(j * L.in + i)];
          if (w != 0 && a[size_t(i)]) terms.push_back(exact(ctx, w) * *a[size_t(i)]);
        }
        terms.push_back(exact(ctx, L.bias[size_t(j)]));
        z3::expr zexpr = z3::sum(terms);
        if (!last && u <= 0) {
          // Inactive (by bounds or by a split decision): a = 0, and z <= u keeps
          // the check inside this branch.
          solver.add(zexpr <= exact(ctx, u));
          next.emplace_back(std::nullopt);
          continue;
        }
        if (last) {
          outputs.push_back(zexpr);
          continue;
        }
        z3::expr z = ctx.real_const(fmt::format("z{}_{}", k, j).c_str());
        solver.add(z == zexpr);
        if (l >= 0) {
          solver.add(z >= exact(ctx, l));
          solver.add(z <= exact(ctx, u));
          next.emplace_back(z);
          continue;
        }
        z3::expr act = ctx.real_const(fmt::format("a{}_{}", k, j).c_str());
        solver.add(z >= exact(ctx, l));
        solver.add(z <= exact(ctx, u));
        solver.add((z <= 0 && act == 0) || (z >= 0 && act == z));
        solver.add(act >= 0);
        solver.add(act >= z);
        // a <= u (z - l) / (u - l), multiplied through by u - l > 0 (exact in Z3).
        z3::expr zl = exact(ctx, l), zu = exact(ctx, u);
        solver.add(act * (zu - zl) <= zu * (z - zl));
        next.emplace_back(act);
      }
      if (const MaxPool* mp = last ? nullptr : net.pool(k)) {
        // p = max_j a_j exactly: p >= a_j for every j, and p <= a_j for some j
        // (an inactive input is 0).
        std::vector<std::optional<z3::expr>> pooled;
        for (size_t i = 0; i < mp->windows.size(); ++i) {
          const auto& w = mp->windows[i];
          bool any = false;
          for (int64_t j : w) any = any || bool(next[size_t(j)]);
          if (!any) {
            pooled.emplace_back(std::nullopt);
            continue;
          }
          if (w.size() == 1) {
            pooled.push_back(next[size_t(w[0])]);
            continue;
          }
          z3::expr pv = ctx.real_const(fmt::format("p{}_{}", k, i).c_str());
          z3::expr_vector some(ctx);
          for (int64_t j : w) {
            z3::expr aj = next[size_t(j)] ? *next[size_t(j)] : ctx.real_val(0);
            solver.add(pv >= aj);
            some.push_back(pv <= aj);
          }
          solver.add(z3::mk_or(some));
          pooled.emplace_back(pv);
        }
        next = std::move(pooled);
      }
      a = std::move(next);
    }
    bool any_unknown = false;
    for (const OutputConjunction& conj : unsafe) {
      if (deadline.stop() || dog.fired()) {
        any_unknown = true;
        break;
      }
      // Exact check of the conjunction. Z3's models sit on vertices, often with
      // the unsafe constraint tight (margin exactly 0), which float32 rounding
      // can push either way; when the first model is not confirmed we ask for
      // one at least `slack` inside the region before giving up.
      double ymag = 0;
      for (size_t j = 0; j < bounds.lower.back().size(); ++j)
        ymag = std::max({ymag, std::fabs(bounds.lower.back()[j]), std::fabs(bounds.upper.back()[j])});
      bool decided = false;
      for (int attempt = 0; attempt < 2 && !decided; ++attempt) {
        solver.push();
        for (const OutputConstraint& c : conj) {
          z3::expr_vector terms(ctx);
          double scale = std::fabs(c.constant);
          for (size_t j = 0; j < c.coef.size(); ++j)
            if (c.coef[j] != 0) {
              terms.push_back(exact(ctx, c.coef[j]) * outputs[j]);
              scale += std::fabs(c.coef[j]) * ymag;
            }
          terms.push_back(exact(ctx, c.constant));
          double slack = attempt == 0 ? 0.0 : 1e-6 * (1 + scale);
          solver.add(z3::sum(terms) <= exact(ctx, -slack));
        }
        z3::check_result r = solver.check();
        if (r == z3::unsat) {
          // Refuted exactly (attempt 0), or no margin-inside model (attempt 1: boundary-only, undecided).
          if (attempt == 1) {
            any_unknown = true;
            res.reason = "counterexamples only on the boundary of the unsafe region (not reproducible in float32)";
          }
          decided = true;
        } else if (r == z3::sat) {
          z3::model model = solver.get_model();
          std::vector<double> x(static_cast<size_t>(n0));
          for (int64_t i = 0; i < n0; ++i)
            x[size_t(i)] = std::clamp(to_double(model.eval(xs[size_t(i)], true)), box.lower[size_t(i)], box.upper[size_t(i)]);
          // Round to float32 inside the box, as the falsifier's confirm() does: a vertex model on a
          // face whose bound is not a float32 (0.7) would otherwise round out of the box and be dropped.
          auto point = float_point_in_box(x, box);
          const bool inside = point.has_value();
          std::vector<float> xf = inside ? *point : std::vector<float>(x.begin(), x.end());
          std::vector<float> yf = concrete ? concrete(xf) : net.forward_f32(xf);
          std::vector<double> y(yf.begin(), yf.end());
          if (inside && violates({conj}, y)) {
            res.verdict = Verdict::Sat;
            res.counterexample = Counterexample{std::vector<double>(xf.begin(), xf.end()), y};
            decided = true;
          } else if (attempt == 1) {
            res.reason = "z3 model not confirmed by the float32 forward pass";
            any_unknown = true;
            decided = true;
          }
        } else {
          any_unknown = true;
          res.reason = solver.reason_unknown();
          decided = true;
        }
        solver.pop();
      }
      if (res.verdict == Verdict::Sat) break;
    }
    if (res.verdict != Verdict::Sat) {
      if (!any_unknown) res.verdict = Verdict::Unsat;
      else res.verdict = (dog.fired() || deadline.stop()) ? Verdict::Timeout : Verdict::Unknown;
    }
  } catch (const z3::exception& e) {
    // Interrupted (canceled) or resource errors: never a proof.
    res.verdict = dog.fired() ? Verdict::Timeout : Verdict::Unknown;
    res.reason = std::string("z3: ") + e.msg();
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}


// ---- process isolation ----------------------------------------------------
// Z3 4.8.12 does not always honour interrupts (measured here: 413 s at a 60 s
// limit, and a query that ignored the in-process watchdog for minutes), so each
// query runs in a forked child that the parent kills at the limit. The child
// uses the network's own float32 forward (no thread pools after fork); a `sat`
// is re-confirmed in the parent with the caller's concrete forward.

void put_bytes(std::string& buf, const void* p, size_t n) { buf.append(static_cast<const char*>(p), n); }
template <class T>
void put(std::string& buf, const T& v) { put_bytes(buf, &v, sizeof v); }
void put_vec(std::string& buf, const std::vector<double>& v) {
  put<uint64_t>(buf, v.size());
  put_bytes(buf, v.data(), v.size() * sizeof(double));
}
void put_str(std::string& buf, const std::string& s) {
  put<uint64_t>(buf, s.size());
  put_bytes(buf, s.data(), s.size());
}

struct Reader {
  const std::string& b;
  size_t pos = 0;
  bool ok = true;
  template <class T>
  T get() {
    T v{};
    if (pos + sizeof v > b.size()) { ok = false; return v; }
    std::memcpy(&v, b.data() + pos, sizeof v);
    pos += sizeof v;
    return v;
  }
  std::vector<double> vec() {
    uint64_t n = get<uint64_t>();
    if (!ok || n > (b.size() - pos) / sizeof(double)) { ok = false; return {}; }
    std::vector<double> v(n);
    std::memcpy(v.data(), b.data() + pos, n * sizeof(double));
    pos += n * sizeof(double);
    return v;
  }
  std::string str() {
    uint64_t n = get<uint64_t>();
    if (!ok || n > b.size() - pos) { ok = false; return {}; }
    std::string s = b.substr(pos, n);
    pos += n;
    return s;
  }
};

std::string encode(const VerifyResult& r) {
  std::string buf;
  put<int32_t>(buf, static_cast<int32_t>(r.verdict));
  put_str(buf, r.reason);
  put<uint8_t>(buf, r.counterexample ? 1 : 0);
  if (r.counterexample) {
    put_vec(buf, r.counterexample->input);
    put_vec(buf, r.counterexample->output);
  }
  return buf;
}

}  // namespace

VerifyResult z3_check(const Network& net, const InputBox& box, const LayerBounds& bounds,
                      const std::vector<OutputConjunction>& unsafe, double timeout_s, const Deadline& deadline,
                      const ConcreteForward& concrete) {
  auto t0 = std::chrono::steady_clock::now();
  VerifyResult res;
  res.method = "z3";
  res.z3_calls = 1;
  double limit = std::min(timeout_s, deadline.remaining_s());
  if (!(limit > 0)) {
    res.verdict = Verdict::Timeout;
    res.reason = "no time left for z3";
    return res;
  }
  int fds[2];
  if (pipe(fds) != 0) return z3_check_in_process(net, box, bounds, unsafe, timeout_s, deadline, concrete);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return z3_check_in_process(net, box, bounds, unsafe, timeout_s, deadline, concrete);
  }
  if (pid == 0) {
    close(fds[0]);
    Deadline child_deadline(limit);
    VerifyResult r = z3_check_in_process(net, box, bounds, unsafe, limit, child_deadline, ConcreteForward{});
    std::string buf = encode(r);
    size_t off = 0;
    while (off < buf.size()) {
      ssize_t w = write(fds[1], buf.data() + off, buf.size() - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    _exit(0);
  }
  close(fds[1]);
  // Parent: read the answer while the child runs; kill it 0.5 s after the limit
  // (its own watchdog interrupts Z3 at the limit) or when the caller stops.
  const auto kill_at = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(std::min(limit, 1e7) + 0.5));
  std::string buf;
  bool eof = false, killed = false;
  char chunk[65536];
  while (!eof) {
    if (std::chrono::steady_clock::now() >= kill_at || deadline.cancelled()) {
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    int pr = poll(&pfd, 1, 20);
    if (pr > 0) {
      ssize_t n = read(fds[0], chunk, sizeof chunk);
      if (n > 0) buf.append(chunk, size_t(n));
      else if (n == 0) eof = true;
      else if (errno != EINTR) eof = true;
    } else if (pr < 0 && errno != EINTR) {
      eof = true;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (killed) {
    res.verdict = Verdict::Timeout;
    res.reason = "z3 stopped at the time limit";
    return res;
  }
  Reader rd{buf};
  auto verdict = static_cast<Verdict>(rd.get<int32_t>());
  std::string reason = rd.str();
  bool has_cex = rd.get<uint8_t>() != 0;
  std::vector<double> cx, cy;
  if (has_cex) {
    cx = rd.vec();
    cy = rd.vec();
  }
  if (!rd.ok || !WIFEXITED(status)) {
    res.verdict = Verdict::Unknown;
    res.reason = "z3 worker process failed";
    return res;
  }
  res.verdict = verdict;
  res.reason = reason;
  if (verdict == Verdict::Sat) {
    // Re-confirm with the caller's concrete forward (the engine's float32 pass).
    std::vector<float> xf(cx.begin(), cx.end());
    std::vector<float> yf = concrete ? concrete(xf) : net.forward_f32(xf);
    std::vector<double> y(yf.begin(), yf.end());
    bool confirmed = false;
    for (const OutputConjunction& conj : unsafe)
      if (violates({conj}, y)) confirmed = true;
    if (confirmed) {
      res.counterexample = Counterexample{cx, y};
    } else {
      res.verdict = Verdict::Unknown;
      res.reason = "z3 model not confirmed by the concrete float32 forward pass";
    }
  }
  return res;
}

}  // namespace mlaudit::verify
