// Times the datasets readers on the files bench/datasets/run.sh prepares; prints
// lines in the same format as peer.py ("task=... ms=...", median of repeats).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "mlaudit/datasets/csv.h"
#include "mlaudit/datasets/idx.h"
#include "mlaudit/datasets/npy.h"
#include "mlaudit/common/error.h"

using namespace mlaudit;

namespace {

double median_ms(int repeats, const std::function<void()>& work) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    work();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_datasets WORK_DIR (made by bench/datasets/run.sh)\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    const std::string npy = dir + "/images.npy";
    engine::Tensor images;
    fmt::print("task=npy_read ms={:.2f}\n", median_ms(5, [&] { images = datasets::read_npy(npy); }));
    fmt::print("task=npy_write ms={:.2f}\n", median_ms(5, [&] { datasets::write_npy(dir + "/images_out.npy", images); }));
    const std::string csv = dir + "/table.csv";
    fmt::print("task=csv_read ms={:.2f}\n", median_ms(3, [&] {
                 datasets::CsvTable t = datasets::read_csv(csv);
                 engine::Tensor m = t.matrix({"a", "b", "c", "d"});
                 if (m.dim(0) != 1000000) std::abort();
               }));
    engine::Tensor x, y;
    fmt::print("task=fmnist_t10k ms={:.2f}\n", median_ms(5, [&] { datasets::load_fashion_mnist("t10k", x, y); }));
    fmt::print("task=fmnist_train ms={:.2f}\n", median_ms(3, [&] { datasets::load_fashion_mnist("train", x, y); }));
  } catch (const Error& e) {
    fmt::print(stderr, "{}\n", e.what());
    return 2;
  }
  return 0;
}
