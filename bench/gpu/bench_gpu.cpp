// GPU benchmark: PGD-50, APGD-CE, APGD-T and Square (L-inf) at a large batch and randomized-smoothing sampling
// on the bundled CNN with the fused device loops of mlaudit/robustness/device.h.
// Prints one `key=value` line per measurement (bench/gpu/device_check.sh parses them):
// throughput, and the fraction of the card's fp32 FLOP rate and memory bandwidth reached.
// Usage: bench_gpu MODEL.onnx X.npy Y.npy [batch=4096] [steps=50] [smooth_n=100000] [smooth_images=10]
//        [peak_tflops=67] [peak_tbps=3.35]
// Never fails: without a CUDA device it prints a note and exits 0. Env BENCH_GPU_MODES=tapgd,square
// (default) selects the optional APGD-T / Square measurements; "none" skips both.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "mlaudit/datasets/npy.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/robustness/device.h"
#include "mlaudit/engine/session.h"

using namespace mlaudit;
using engine::Tensor;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Per-sample forward FLOPs (2 per multiply-add) of Conv/Gemm/MatMul and the bytes of every
// value of a one-sample forward, from the shapes the engine infers.
void model_costs(const engine::Graph& g, const engine::Shape& sample, double& flops, double& act_bytes) {
  engine::Shape one{1};
  one.insert(one.end(), sample.begin(), sample.end());
  auto shapes = engine::infer_shapes(g, {one});
  flops = 0;
  act_bytes = 0;
  for (const auto& [name, s] : shapes)
    if (!g.initializer(name)) act_bytes += 4.0 * double(engine::shape_numel(s));
  for (const auto& n : g.nodes) {
    if (n.op_type == "Conv") {
      const auto& y = shapes.at(n.outputs[0]);
      const Tensor* w = g.initializer(n.inputs[1]);
      if (!w) continue;
      flops += 2.0 * double(engine::shape_numel(y)) * double(w->shape()[1] * w->shape()[2] * w->shape()[3]);
    } else if (n.op_type == "Gemm" || n.op_type == "MatMul") {
      const auto& y = shapes.at(n.outputs[0]);
      const auto& a = shapes.at(n.inputs[0]);
      int64_t k = n.op_type == "Gemm" && n.get_int("transA", 0) ? a[0] : a.back();
      flops += 2.0 * double(engine::shape_numel(y)) * double(k);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: bench_gpu MODEL.onnx X.npy Y.npy [batch] [steps] [smooth_n] [smooth_images] [peak_tflops] [peak_tbps]\n");
    return 0;
  }
  auto arg = [&](int i, double def) { return argc > i ? std::atof(argv[i]) : def; };
  const int64_t batch = int64_t(arg(4, 4096));
  const int steps = int(arg(5, 50));
  const int64_t smooth_n = int64_t(arg(6, 100000));
  const int64_t smooth_images = int64_t(arg(7, 10));
  const double peak_flops = arg(8, 67.0) * 1e12, peak_bw = arg(9, 3.35) * 1e12;
  if (engine::cuda_device_count() == 0) {
    fmt::print("no CUDA device: GPU benchmark skipped\n");
    return 0;
  }
  try {
    engine::SessionOptions so;
    so.device = engine::Device::Cuda;
    auto session = engine::Session::load(argv[1], so);
    Tensor x = datasets::read_npy(argv[2]).to(engine::DType::Float32);
    Tensor y = datasets::read_npy(argv[3]).to(engine::DType::Int64);
    engine::Shape sample(x.shape().begin() + 1, x.shape().end());
    double fwd_flops, act_bytes;
    model_costs(session->graph(), sample, fwd_flops, act_bytes);
    // Tile the demo images up to the batch.
    std::vector<int64_t> rows(batch);
    for (int64_t i = 0; i < batch; ++i) rows[i] = i % x.shape()[0];
    Tensor xb = x.gather_rows(rows), yb = y.gather_rows(rows);

    robustness::DevicePgdOptions o;
    o.eps = 0.1f;
    o.alpha = 0.01f;
    o.steps = steps;
    o.batch = batch;
    o.seed = 1;
    // Warm-up run (cuBLAS heuristics, pool, caches), then the timed run.
    robustness::DevicePgdOptions warm = o;
    warm.steps = 2;
    robustness::device_pgd(*session, xb, yb, warm);
    auto t0 = Clock::now();
    auto res = robustness::device_pgd(*session, xb, yb, o);
    double sec = seconds_since(t0);
    // One PGD step = forward + input-gradient backward (~2x forward FLOPs: backward-data of
    // each Conv/Gemm costs its forward; no weight gradients), plus one final forward.
    double flops = double(batch) * fwd_flops * (2.0 * steps + 1.0);
    // Memory traffic estimate: each activation written and read once forward and once backward.
    double bytes = double(batch) * act_bytes * 4.0 * (steps + 1.0);
    fmt::print("mlaudit mode=pgd{} batch={} ms={:.2f} images_per_s={:.0f} robust_acc={:.4f} cuda_graph={} tflops={:.3f} "
               "frac_fp32_peak={:.4f} frac_hbm_bw={:.4f}\n",
               steps, batch, sec * 1e3, double(batch) / sec, double(res->robust_count) / double(batch),
               res->cuda_graph ? 1 : 0, flops / sec / 1e12, flops / sec / peak_flops, bytes / sec / peak_bw);

    // APGD-CE (AutoAttack's n_iter = 100, one restart), eps 0.03 so that part of the batch stays
    // robust and every iteration runs (the peer optimises every row for all iterations too).
    {
      robustness::DeviceApgdOptions ao;
      ao.eps = 0.03f;
      ao.steps = 100;
      ao.batch = batch;
      ao.seed = 1;
      robustness::DeviceApgdOptions awarm = ao;
      awarm.steps = 2;
      robustness::device_apgd_ce(*session, xb, yb, awarm);
      auto ta = Clock::now();
      auto ares = robustness::device_apgd_ce(*session, xb, yb, ao);
      double asec = seconds_since(ta);
      double aflops = double(batch) * fwd_flops * (2.0 * (ao.steps + 1));
      fmt::print("mlaudit mode=apgd{} batch={} ms={:.2f} images_per_s={:.0f} robust_acc={:.4f} tflops={:.3f} frac_fp32_peak={:.4f}\n",
                 ao.steps, batch, asec * 1e3, double(batch) / asec, double(ares->robust_count) / double(batch),
                 aflops / asec / 1e12, aflops / asec / peak_flops);
    }

    // BENCH_GPU_MODES (comma list, default all): lets the im2col and profiling runs of device_check.sh
    // skip the long APGD-T / Square loops.
    const char* modes_env = std::getenv("BENCH_GPU_MODES");
    const std::string modes = modes_env ? std::string(",") + modes_env + "," : std::string(",tapgd,square,");
    auto want = [&](const char* mode) { return modes.find(std::string(",") + mode + ",") != std::string::npos; };
    // APGD-T (AutoAttack standard: targeted DLR, 9 targets x 100 iterations, 1 restart each), eps 0.03.
    if (want("tapgd")) {
      robustness::DeviceApgdOptions ao;
      ao.loss = "dlr-targeted";
      ao.n_target_classes = 9;
      ao.eps = 0.03f;
      ao.steps = 100;
      ao.batch = batch;
      ao.seed = 1;
      robustness::DeviceApgdOptions awarm = ao;
      awarm.steps = 2;
      awarm.n_target_classes = 1;
      robustness::device_apgd(*session, xb, yb, awarm);
      auto ta = Clock::now();
      auto ares = robustness::device_apgd(*session, xb, yb, ao);
      double asec = seconds_since(ta);
      fmt::print("mlaudit mode=tapgd{}x{} batch={} ms={:.2f} images_per_s={:.0f} robust_acc={:.4f}\n", ao.n_target_classes,
                 ao.steps, batch, asec * 1e3, double(batch) / asec, double(ares->robust_count) / double(batch));
    }

    // Square L-inf (AutoAttack defaults: 5000 queries, p_init 0.8), eps 0.03, forward passes only.
    if (want("square")) {
      robustness::DeviceSquareOptions so;
      so.eps = 0.03f;
      so.n_queries = 5000;
      so.batch = batch;
      so.seed = 1;
      robustness::DeviceSquareOptions swarm = so;
      swarm.n_queries = 20;
      robustness::device_square(*session, xb, yb, swarm);
      auto ts = Clock::now();
      auto sres = robustness::device_square(*session, xb, yb, so);
      double ssec = seconds_since(ts);
      double q = 0;
      for (auto v : sres->queries) q += double(v);
      fmt::print("mlaudit mode=square{} batch={} ms={:.2f} images_per_s={:.0f} robust_acc={:.4f} queries_per_s={:.0f} "
                 "mean_queries={:.1f}\n",
                 so.n_queries, batch, ssec * 1e3, double(batch) / ssec, double(sres->robust_count) / double(batch), q / ssec,
                 q / double(batch));
    }

    // Randomized smoothing: smooth_n noisy samples per image (Cohen et al. 2019, sigma 0.25).
    Tensor xs = x.slice_rows(0, std::min<int64_t>(smooth_images, x.shape()[0]));
    robustness::device_smoothing_counts(*session, xs.slice_rows(0, 1), 0.25f, 1000, 0, 3);  // warm-up
    t0 = Clock::now();
    auto counts = robustness::device_smoothing_counts(*session, xs, 0.25f, smooth_n, 0, 3);
    sec = seconds_since(t0);
    double samples = double(smooth_n) * double(xs.shape()[0]);
    double sflops = samples * fwd_flops, sbytes = samples * act_bytes * 2.0;
    int64_t top = 0;
    for (int64_t c = 0; c < counts->shape()[1]; ++c) top = std::max(top, counts->i64()[c]);
    fmt::print("mlaudit mode=smoothing n={} images={} ms_per_image={:.2f} samples_per_s={:.0f} top_count_image0={} tflops={:.3f} "
               "frac_fp32_peak={:.4f} frac_hbm_bw={:.4f}\n",
               smooth_n, xs.shape()[0], sec * 1e3 / double(xs.shape()[0]), samples / sec, top, sflops / sec / 1e12,
               sflops / sec / peak_flops, sbytes / sec / peak_bw);
  } catch (const std::exception& e) {
    fmt::print("bench_gpu: {}\n", e.what());
  }
  return 0;
}
