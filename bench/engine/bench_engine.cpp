// Times forward and forward+input-gradient (cross-entropy) of a model at the
// given batch sizes; prints lines in the same format as peer.py.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mlaudit/engine/session.h"

using namespace mlaudit;

namespace {
double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_engine MODEL.onnx [threads] [batch ...]\n");
    return 2;
  }
  std::string model = argv[1];
  int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  std::vector<int> batches;
  for (int i = 3; i < argc; ++i) batches.push_back(std::atoi(argv[i]));
  if (batches.empty()) batches = {1, 256};
  engine::set_num_threads(threads);
  auto session = engine::Session::load(model);
  engine::Shape shape = session->input_shape();
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int b : batches) {
    engine::Shape s = shape;
    s[0] = b;
    engine::Tensor x(s);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = u(rng);
    std::vector<int64_t> labels(b, 0);
    int reps = b == 1 ? 200 : 20;
    for (int mode = 0; mode < 2; ++mode) {
      std::vector<double> times;
      for (int r = 0; r < reps + 3; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        if (mode == 0) session->forward(x);
        else engine::cross_entropy_gradient(*session, x, labels);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (r >= 3) times.push_back(ms);
      }
      fmt::print("peer=mlaudit mode={} batch={} ms={:.4f}\n", mode == 0 ? "fwd" : "fwdgrad", b, median_ms(times));
    }
  }
  return 0;
}
