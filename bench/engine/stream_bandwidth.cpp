// Memory bandwidth of this machine, STREAM-like (issue #20's "measured peak" for the arithmetic in
// docs/dev/performance.md): a read (sum) and a triad (c = a + 3 b) over float arrays of 48 MB
// (the size of ResNet-18's weights: what a batch-1 forward streams) and of 256 MB (past most
// caches), the best of repeated runs, at the OpenMP thread count (OMP_NUM_THREADS).
// Usage: stream_bandwidth   (a benchmark: prints, always exits 0)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  for (size_t mb : {size_t(48), size_t(256)}) {
    const size_t n = mb * (size_t(1) << 20) / sizeof(float);
    std::vector<float> a(n, 1.f), b(n, 2.f), c(n, 0.f);
    double best_read = 1e30, best_triad = 1e30;
    float sink = 0;
    for (int r = 0; r < (mb < 100 ? 40 : 6); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      float s = 0;
#pragma omp parallel for reduction(+ : s)
      for (size_t i = 0; i < n; ++i) s += a[i];
      const auto t1 = std::chrono::steady_clock::now();
#pragma omp parallel for
      for (size_t i = 0; i < n; ++i) c[i] = a[i] + 3.f * b[i];
      const auto t2 = std::chrono::steady_clock::now();
      best_read = std::min(best_read, std::chrono::duration<double>(t1 - t0).count());
      best_triad = std::min(best_triad, std::chrono::duration<double>(t2 - t1).count());
      sink += s + c[r];
    }
    std::printf("%zu MB arrays, %d threads: read %.1f GB/s, triad %.1f GB/s%s\n", mb, omp_get_max_threads(),
                double(n) * 4 / best_read / 1e9, double(n) * 12 / best_triad / 1e9, sink < 0 ? " " : "");
  }
  return 0;
}
