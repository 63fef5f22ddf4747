// KernelSHAP timed the way bench/explain/peer.py times shap.KernelExplainer: one warm-up call on
// the first row, then the best of three measurements on ROWS rows, in one process. Prints
// "wall cpu" seconds per sample (cpu: the process's CPU time, all threads), as peer.py does.
// One call on 200 rows takes about 12 ms here against shap's 0.6 s, and this machine's speed
// drifts within seconds, so a measurement repeats the call for at least 0.5 s: each side's
// figure then averages over a comparable stretch of time instead of picking our fastest 12 ms.
// (The CLI's own JSON timing is of one cold call per process: thread start-up and first-touch
// page faults included.)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"

using namespace mlaudit;

int main(int argc, char** argv) {
  if (argc != 8) {
    fmt::print(stderr, "usage: bench_explain MODEL.onnx DATA.npy BACKGROUND.npy ROWS SAMPLES TARGET THREADS\n");
    return 2;
  }
  try {
    const int64_t rows = std::atoll(argv[4]);
    const int64_t target = std::atoll(argv[6]);
    engine::set_num_threads(std::atoi(argv[7]));
    auto session = engine::Session::load(argv[1]);
    const engine::Tensor all = datasets::read_npy_float(argv[2]);
    const engine::Tensor x = all.slice_rows(0, std::min<int64_t>(rows, all.shape()[0]));
    const engine::Tensor bg = datasets::read_npy_float(argv[3]);
    const int64_t n = x.shape()[0];
    explain::KernelShapOptions opts;
    opts.samples = std::atoll(argv[5]);
    explain::kernel_shap(*session, x.slice_rows(0, 1), bg, {target}, opts);  // warm-up
    double wall = std::numeric_limits<double>::infinity(), cpu = wall;
    const std::vector<int64_t> targets(n, target);
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t c0 = std::clock();
      int64_t calls = 0;
      double elapsed = 0;
      do {
        explain::kernel_shap(*session, x, bg, targets, opts);
        ++calls;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < 0.5);
      const double w = elapsed / double(calls * n);
      const double c = double(std::clock() - c0) / CLOCKS_PER_SEC / double(calls * n);
      if (w < wall) wall = w, cpu = c;
    }
    fmt::print("{:.8f} {:.8f}\n", wall, cpu);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_explain: {}\n", e.what());
    return 2;
  }
  return 0;
}
