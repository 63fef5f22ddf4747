// Times forward and forward+input-gradient (cross-entropy against label 0) of a model at the
// given batch sizes; prints lines in the same format as peer.py and panel.py read.
//
//   bench_engine MODEL.onnx [threads] [batch ...] [--input X.npy] [--modes fwd,fwdgrad]
//                [--max-seconds S] [--save-output PREFIX]
//   bench_engine --sgemm-peak [threads]
//
// threads   worker threads (default 2); batches default to 1 and 256.
// --input   rows of this .npy (float32) instead of uniform [0,1) noise; a batch takes the
//           file's rows cyclically. With --input and no batch, the batch is the file's row count.
// --modes   which of fwd, fwdgrad to time (default both).
// --max-seconds  stop repeating a measurement once its timed runs add up to S seconds (at
//           least 5 runs); default: no limit (200 runs at batch 1, 20 otherwise, after 3 warm-ups).
//           With it, the lines also give the number of timed runs and the fastest one (runs=, min=).
// --save-output  write the forward output at batch b to PREFIX<b>.npy (for a peer to check).
// --sgemm-peak   the machine's measured peak instead: oneDNN's sgemm on 2048 x 2048 x 2048 at the
//           thread count, the best of 10 runs, as "peer=mlaudit sgemm_peak_gflops=<G>".
//
// Output: "peer=mlaudit flops_per_row=<F>" (engine/cost.h's estimate of a batch-1 forward; 0 when
// it cannot infer the shapes), one line per measurement
//   peer=mlaudit mode=<fwd|fwdgrad> batch=<b> [runs=<n> min=<fastest>] ms=<median>
// and at the end "peer=mlaudit peak_rss_mb=<MB>" (the process's peak resident set).
// A model the engine cannot load or run prints "peer=mlaudit unsupported: <first error line>"
// (exit code 3); a mode that fails alone prints
// "peer=mlaudit mode=<m> batch=<b> unsupported: <first error line>" and the others go on.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <dnnl.h>

#include <cstdio>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/cost.h"
#include "mlaudit/engine/session.h"

using namespace mlaudit;

namespace {

double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Options {
  std::string model;
  int threads = 2;
  std::vector<int> batches;
  std::string input;
  bool fwd = true;
  bool fwdgrad = true;
  double max_seconds = 0;  ///< 0: fixed repeat counts (the historical behaviour run.sh relies on)
  std::string save_output;
};

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(fmt::format("option {} needs a value", a));
      return argv[++i];
    };
    if (a == "--input") o.input = value();
    else if (a == "--modes") {
      o.fwd = o.fwdgrad = false;
      std::string m = value() + ",";
      for (size_t start = 0, comma; (comma = m.find(',', start)) != std::string::npos; start = comma + 1) {
        std::string mode = m.substr(start, comma - start);
        if (mode == "fwd") o.fwd = true;
        else if (mode == "fwdgrad") o.fwdgrad = true;
        else throw std::runtime_error(fmt::format("unknown mode '{}' (fwd, fwdgrad)", mode));
      }
    } else if (a == "--max-seconds") o.max_seconds = std::atof(value().c_str());
    else if (a == "--save-output") o.save_output = value();
    else if (a.rfind("--", 0) == 0) throw std::runtime_error(fmt::format("unknown option {}", a));
    else positional.push_back(a);
  }
  if (positional.empty()) throw std::runtime_error("no model given");
  o.model = positional[0];
  if (positional.size() > 1) o.threads = std::atoi(positional[1].c_str());
  for (size_t i = 2; i < positional.size(); ++i) o.batches.push_back(std::atoi(positional[i].c_str()));
  return o;
}

/// Rows 0..b-1 of `data` taken cyclically (data's axis 0 is the batch).
engine::Tensor cyclic_rows(const engine::Tensor& data, int b) {
  engine::Shape s = data.shape();
  int64_t rows = s[0];
  int64_t row = rows ? data.numel() / rows : 0;
  s[0] = b;
  engine::Tensor x(s);
  for (int i = 0; i < b; ++i) std::copy_n(data.f32() + (i % rows) * row, row, x.f32() + int64_t(i) * row);
  return x;
}

}  // namespace

// oneDNN's sgemm on n x n x n floats at `threads`: the best GFLOP/s of 10 runs after a warm-up.
double sgemm_peak_gflops(int threads, int64_t n = 2048) {
  engine::set_num_threads(threads);
  std::vector<float> a(size_t(n * n), 1.f), b(size_t(n * n), 0.5f), c(size_t(n * n), 0.f);
  double best = 0;
  for (int r = 0; r < 11; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) best = std::max(best, 2.0 * double(n) * double(n) * double(n) / s / 1e9);
  }
  return best;
}

// The process's peak resident set: VmHWM of /proc/self/status (getrusage's ru_maxrss would also
// count the parent's memory at fork, which Linux carries across exec: 855 MB under panel.py).
double peak_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb / 1024.0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--sgemm-peak") {
    const int threads = argc >= 3 ? std::atoi(argv[2]) : 2;
    fmt::print("peer=mlaudit sgemm_peak_gflops={:.1f}\n", sgemm_peak_gflops(threads > 0 ? threads : 2));
    return 0;
  }
  Options opt;
  try {
    opt = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_engine: {}\nusage: bench_engine MODEL.onnx [threads] [batch ...] [--input X.npy] "
                       "[--modes fwd,fwdgrad] [--max-seconds S] [--save-output PREFIX]\n", e.what());
    return 2;
  }
  engine::tune_process_allocator();
  engine::set_num_threads(opt.threads);
  std::unique_ptr<engine::Session> session;
  engine::Tensor data;
  try {
    session = engine::Session::load(opt.model);
    if (!opt.input.empty()) {
      data = datasets::read_npy_float(opt.input);
      if (data.shape().empty() || data.shape()[0] == 0) throw std::runtime_error(opt.input + ": no rows");
    }
  } catch (const std::exception& e) {
    fmt::print("peer=mlaudit unsupported: {}\n", first_line(e.what()));
    return 3;
  }
  double flops = 0;
  try {
    flops = engine::estimate_flops(session->graph());
  } catch (const std::exception&) {
    flops = 0;  // shapes the estimate cannot infer
  }
  fmt::print("peer=mlaudit flops_per_row={:.6g}\n", flops);
  std::vector<int> batches = opt.batches;
  if (batches.empty()) batches = opt.input.empty() ? std::vector<int>{1, 256} : std::vector<int>{int(data.shape()[0])};
  engine::Shape shape = session->input_shape();
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  int status = 0;
  for (int b : batches) {
    engine::Tensor x;
    if (!opt.input.empty()) {
      x = cyclic_rows(data, b);
    } else {
      engine::Shape s = shape;
      s[0] = b;
      if (std::any_of(s.begin(), s.end(), [](int64_t d) { return d < 0; })) {
        fmt::print("peer=mlaudit unsupported: input shape has dynamic dims beyond the batch; pass --input\n");
        return 3;
      }
      x = engine::Tensor(s);
      for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = u(rng);
    }
    std::vector<int64_t> labels(b, 0);
    int reps = b == 1 ? 200 : 20;
    for (int mode = 0; mode < 2; ++mode) {
      if ((mode == 0 && !opt.fwd) || (mode == 1 && !opt.fwdgrad)) continue;
      const char* name = mode == 0 ? "fwd" : "fwdgrad";
      try {
        if (mode == 0 && !opt.save_output.empty())
          datasets::write_npy(fmt::format("{}{}.npy", opt.save_output, b), session->forward(x));
        std::vector<double> times;
        double total_ms = 0;
        for (int r = 0; r < reps + 3; ++r) {
          auto t0 = std::chrono::steady_clock::now();
          if (mode == 0) session->forward(x);
          else engine::cross_entropy_gradient(*session, x, labels);
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (r >= 3) {
            times.push_back(ms);
            total_ms += ms;
            if (opt.max_seconds > 0 && times.size() >= 5 && total_ms > 1e3 * opt.max_seconds) break;
          } else if (opt.max_seconds > 0 && ms > 200 * opt.max_seconds) {
            r = 2;  // a slow model: one warm-up run is enough
          }
        }
        if (opt.max_seconds > 0)  // panel mode: the fastest run too (robust on a shared machine)
          fmt::print("peer=mlaudit mode={} batch={} runs={} min={:.4f} ms={:.4f}\n", name, b, times.size(),
                     *std::min_element(times.begin(), times.end()), median_ms(times));
        else
          fmt::print("peer=mlaudit mode={} batch={} ms={:.4f}\n", name, b, median_ms(times));
      } catch (const std::exception& e) {
        fmt::print("peer=mlaudit mode={} batch={} unsupported: {}\n", name, b, first_line(e.what()));
        status = 3;
      }
      std::fflush(stdout);
    }
  }
  fmt::print("peer=mlaudit peak_rss_mb={:.1f}\n", peak_rss_mb());
  return status;
}
