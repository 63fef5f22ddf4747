// Fused PGD and smoothing loops on the CUDA executor (see accelerated.h).
// The loops run on the Session's own CUDA executor (Session::device_session()), so the
// weights uploaded at load are reused and nothing is rebuilt per call.
// This file is compiled only into mlaudit_engine_cuda, which does not itself carry the
// PUBLIC MLAUDIT_WITH_CUDA definition it gives mlaudit_engine: select the device declarations.
#ifndef MLAUDIT_WITH_CUDA
#define MLAUDIT_WITH_CUDA 1
#endif
#include "mlaudit/engine/accelerated.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "cuda_executor.h"
#include "kernels.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {

using cuda::DValue;

bool on_cuda(const Session& s) { return s.backend_name() == "cuda" && cuda::device_count() > 0; }

// The session's own CUDA executor (weights already resident); a fresh one bound to its graph
// when the session's device session is another implementation (e.g. the host emulation's tests).
struct BoundExecutor {
  std::unique_ptr<DeviceSession> owned;
  const cuda::CudaExecutor* ex = nullptr;
};
BoundExecutor bind_executor(const Session& session, const char* what) {
  const Graph& g = session.graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1)
    throw InputError("engine", fmt::format("{}: {} needs a single-input, single-output model", g.source, what));
  BoundExecutor b;
  b.ex = dynamic_cast<const cuda::CudaExecutor*>(session.device_session());
  if (!b.ex) {
    b.owned = make_cuda_session(g);
    b.ex = dynamic_cast<const cuda::CudaExecutor*>(b.owned.get());
  }
  return b;
}

Shape with_batch(const Shape& sample, int64_t n) {
  Shape s{n};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

// Samples per batch so that a forward+backward fits in half the free device memory:
// the bytes of every value of a one-sample pass (kept for the backward) times 3 (values,
// gradients, temporaries), capped at `cap`.
int64_t auto_batch(const cuda::CudaExecutor& ex, const Shape& sample, int64_t cap) {
  const cuda::Stream& st = ex.stream();
  DValue one = cuda::device_zeros(with_batch(sample, 1), st);
  auto values = ex.forward_values({one}, true);
  int64_t bytes = 0;
  for (const auto& v : values)
    if (v.on_device()) bytes += v.numel() * int64_t(sizeof(float));
  values.clear();
  st.synchronize();
  size_t free_b = 0, total_b = 0;
  cuda::memory_info(free_b, total_b);
  int64_t per = std::max<int64_t>(1, 3 * bytes);
  return std::clamp<int64_t>(int64_t(free_b / 2) / per, 1, cap);
}

DValue view_rows(const DValue& v, int64_t rows, const Shape& sample) {
  DValue a = v;
  a.shape = with_batch(sample, rows);
  return a;
}

}  // namespace

std::optional<DevicePgdResult> device_pgd(const Session& session, const Tensor& x, const Tensor& labels,
                                          const DevicePgdOptions& o) {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, "pgd");
  if (!b.ex) return std::nullopt;
  return cuda::pgd_on(*b.ex, x, labels, o);
}

DevicePgdResult cuda::pgd_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels, const DevicePgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("engine", fmt::format("pgd: norm '{}' is not linf or l2", o.norm));
  if (!(o.eps >= 0) || !(o.alpha > 0) || o.steps < 0)
    throw InputError("engine", "pgd: eps must be >= 0, alpha > 0 and steps >= 0");
  if (x.rank() < 1 || x.dtype() != DType::Float32) throw InputError("engine", "pgd: x must be a float32 batch [N,...]");
  int64_t n = x.shape()[0];
  if (labels.numel() != n) throw InputError("engine", fmt::format("pgd: {} labels for {} inputs", labels.numel(), n));
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  void* s = st.get();
  Shape sample(x.shape().begin() + 1, x.shape().end());
  int64_t d = shape_numel(sample);
  std::vector<int64_t> lab = labels.to_int64s();

  DevicePgdResult res;
  res.batch = o.batch > 0 ? std::min(o.batch, std::max<int64_t>(n, 1)) : auto_batch(ex, sample, std::max<int64_t>(n, 1));
  res.x_adv = Tensor(x.shape());
  res.robust.assign(n, 0);
  cuda::Rng rng(o.seed, st);
  const bool linf = o.norm == "linf";

  for (int64_t b0 = 0; b0 < n; b0 += res.batch) {
    int64_t m = std::min(res.batch, n - b0);
    Shape bs = with_batch(sample, m);
    Tensor xb = x.slice_rows(b0, b0 + m);
    Tensor lb = Tensor::from_ints({m}, std::vector<int64_t>(lab.begin() + b0, lab.begin() + b0 + m));
    DValue x0 = cuda::to_device(xb, st);
    DValue xa = cuda::device_tensor(bs);
    cuda::BufferPtr labels_d = cuda::allocate(size_t(m) * sizeof(int64_t));
    cuda::upload(labels_d->get(), lb.raw(), size_t(m) * sizeof(int64_t), st);
    const int64_t* ld = static_cast<const int64_t*>(labels_d->get());
    cuda::BufferPtr norms = cuda::allocate(size_t(m) * sizeof(float));
    cuda::BufferPtr tmp = cuda::allocate(size_t(m * d + m) * sizeof(float));

    // Random start (Madry et al. 2018, Sec. 5): uniform in the L-inf ball; for L2 a Gaussian
    // direction scaled to radius eps * u, u ~ U(0,1) (torchattacks PGDL2's start).
    cuda::copy_device(xa.f(), x0.f(), size_t(m * d) * sizeof(float), st);
    if (o.random_start && o.eps > 0) {
      if (linf) {
        rng.uniform(tmp->f32(), size_t(m * d));
        cuda::launch_uniform_start(xa.f(), x0.f(), tmp->f32(), m * d, o.eps, o.clip_min, o.clip_max, s);
      } else {
        rng.normal(tmp->f32(), size_t(m * d));
        cuda::BufferPtr radius = cuda::allocate(size_t(m) * sizeof(float));
        rng.uniform(radius->f32(), size_t(m));
        cuda::launch_row_norms(tmp->f32(), norms->f32(), m, d, s);
        // gnorm_i = ||z_i|| / u_i so that the step eps * z_i / gnorm_i has norm eps * u_i.
        cuda::BroadcastDesc bd;
        bd.rank = 1;
        bd.out_dims[0] = m;
        bd.a_strides[0] = 1;
        bd.b_strides[0] = 1;
        cuda::launch_binary(cuda::BinaryOp::Div, norms->f32(), radius->f32(), norms->f32(), bd, s);
        cuda::launch_l2_step(xa.f(), tmp->f32(), norms->f32(), m, d, o.eps, s);
        cuda::launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, o.eps, o.clip_min, o.clip_max, s);
      }
    }
    DValue seed = cuda::device_tensor({m, 1});  // reshaped once the output shape is known
    auto iteration = [&] {
      auto values = ex.forward_values({xa}, true);
      DValue logits = ex.outputs_of(values).at(0);
      if (logits.shape.size() != 2 || logits.shape[0] != m)
        throw InputError("engine", fmt::format("pgd: the model output {} is not [N, classes]", shape_str(logits.shape)));
      int64_t k = logits.shape[1];
      if (seed.numel() != m * k) seed = cuda::device_tensor(logits.shape);
      seed.shape = logits.shape;
      // d/dlogits of sum_i CE = softmax - onehot.
      cuda::launch_ce_seed(logits.f(), ld, seed.f(), m, k, s);
      DValue grad = ex.backward_values(values, {seed}).at(0);
      if (linf) {
        // x <- Proj_{B_inf(x0, eps) ∩ box}(x + alpha sign(grad))
        cuda::launch_pgd_step_linf(xa.f(), x0.f(), grad.f(), m * d, o.alpha, o.eps, o.clip_min, o.clip_max, s);
      } else {
        // x <- Proj_{B_2(x0, eps) ∩ box}(x + alpha grad / ||grad||)
        cuda::launch_row_norms(grad.f(), norms->f32(), m, d, s);
        cuda::launch_l2_step(xa.f(), grad.f(), norms->f32(), m, d, o.alpha, s);
        cuda::launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, o.eps, o.clip_min, o.clip_max, s);
      }
    };
    int step = 0;
    if (o.steps > 0) {
      iteration();  // eager warm-up: fills the executor's caches and the memory pool
      ++step;
    }
    void* graph = nullptr;
    if (o.use_cuda_graph && o.steps > 1 && !profiling()) {
      // Capture one iteration; any operation that cannot be captured (a host sync, an upload)
      // aborts the capture and the loop runs eagerly.
      st.synchronize();
      try {
        st.begin_capture();
        bool complete = true;
        try {
          iteration();
        } catch (const std::exception&) {
          complete = false;  // never replay a partially captured iteration
        }
        graph = st.end_capture();
        if (!complete && graph) {
          cuda::Stream::destroy_graph(graph);
          graph = nullptr;
        }
      } catch (const std::exception&) {
        graph = nullptr;
      }
    }
    if (graph) {
      res.cuda_graph = true;
      try {
        for (; step < o.steps; ++step) st.launch_graph(graph);
      } catch (...) {
        cuda::Stream::destroy_graph(graph);
        throw;
      }
      st.synchronize();
      cuda::Stream::destroy_graph(graph);
    } else {
      for (; step < o.steps; ++step) iteration();
    }
    // Robustness flags on the final iterate.
    auto out = ex.outputs_of(ex.forward_values({xa}, false)).at(0);
    cuda::BufferPtr correct = cuda::allocate(size_t(m) * sizeof(float));
    cuda::launch_correct(out.f(), ld, correct->f32(), m, out.shape[1], s);
    std::vector<float> ok(m);
    cuda::download(ok.data(), correct->get(), size_t(m) * sizeof(float), st);
    cuda::download(res.x_adv.f32() + b0 * d, xa.f(), size_t(m * d) * sizeof(float), st);
    for (int64_t i = 0; i < m; ++i) {
      res.robust[b0 + i] = ok[i] > 0.5f;
      res.robust_count += res.robust[b0 + i];
    }
  }
  return res;
}

std::optional<DevicePgdResult> device_apgd_ce(const Session& session, const Tensor& x, const Tensor& labels,
                                              const DeviceApgdOptions& o) {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, "apgd");
  if (!b.ex) return std::nullopt;
  return cuda::apgd_ce_on(*b.ex, x, labels, o);
}

// APGD-CE (Croce & Hein 2020, Algorithm 1) with every row's state on the device: the loop
// mirrors robustness/src/apgd.cpp (checkpoints p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
// momentum 0.75 after the first step, eta^(0) = 2 eps, rho = 0.75, restart from the best point
// with its gradient); rows leave the optimisation once misclassified, their breaking iterate kept.
// The checkpoint schedule is fixed in advance, so no host decision depends on device data
// except the early stop when every row is broken (checked at checkpoints).
DevicePgdResult cuda::apgd_ce_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels,
                                 const DeviceApgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("engine", fmt::format("apgd: norm '{}' is not linf or l2", o.norm));
  if (!(o.eps >= 0) || o.steps < 0) throw InputError("engine", "apgd: eps must be >= 0 and steps >= 0");
  if (x.rank() < 1 || x.dtype() != DType::Float32) throw InputError("engine", "apgd: x must be a float32 batch [N,...]");
  const int64_t n = x.shape()[0];
  if (labels.numel() != n) throw InputError("engine", fmt::format("apgd: {} labels for {} inputs", labels.numel(), n));
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  void* s = st.get();
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t d = shape_numel(sample);
  const std::vector<int64_t> lab = labels.to_int64s();
  const bool linf = o.norm == "linf";
  const float eps = o.eps, lo = o.clip_min, hi = o.clip_max;
  const int n_iter = o.steps;

  DevicePgdResult res;
  res.batch = o.batch > 0 ? std::min(o.batch, std::max<int64_t>(n, 1)) : auto_batch(ex, sample, std::max<int64_t>(n, 1));
  res.x_adv = Tensor(x.shape());
  res.robust.assign(size_t(n), 0);
  cuda::Rng rng(o.seed, st);

  for (int64_t b0 = 0; b0 < n; b0 += res.batch) {
    const int64_t m = std::min(res.batch, n - b0);
    const Shape bs = with_batch(sample, m);
    DValue x0 = cuda::to_device(x.slice_rows(b0, b0 + m), st);
    Tensor lb = Tensor::from_ints({m}, std::vector<int64_t>(lab.begin() + b0, lab.begin() + b0 + m));
    cuda::BufferPtr labels_d = cuda::allocate(size_t(m) * sizeof(int64_t));
    cuda::upload(labels_d->get(), lb.raw(), size_t(m) * sizeof(int64_t), st);
    const int64_t* ld = static_cast<const int64_t*>(labels_d->get());
    auto rows = [&](float init) {
      DValue v = cuda::device_tensor({m});
      cuda::launch_fill(v.f(), m, init, s);
      return v;
    };
    DValue xa = cuda::device_tensor(bs), x_old, x_best, grad_best, adv = cuda::device_tensor(bs), z = cuda::device_tensor(bs);
    DValue step = rows(2.f * eps), loss = rows(0.f), loss_prev = rows(0.f), loss_best = rows(0.f), loss_best_last = rows(0.f);
    DValue inc = rows(0.f), reduced_last = rows(1.f), active = rows(1.f), found = rows(0.f), correct = rows(0.f);
    DValue improve = rows(0.f), broke = rows(0.f), restart = rows(0.f), norms = rows(0.f);
    cuda::BufferPtr tmp = cuda::allocate(size_t(m * d + m) * sizeof(float));

    // Random start: L-inf x + eps t / ||t||_inf, t ~ U[-1, 1]^d; L2 x + eps t / ||t||_2, t ~ N(0, I); clamped to the box.
    if (linf) {
      // t = 2u - 1 for u uniform in (0, 1].
      rng.uniform(z.f(), size_t(m * d));
      cuda::launch_axpby(z.f(), z.f(), m * d, 2.f, 0.f, s);
      DValue one = cuda::device_tensor({1});
      cuda::launch_fill(one.f(), 1, 1.f, s);
      cuda::BroadcastDesc bd;
      bd.rank = 1;
      bd.out_dims[0] = m * d;
      bd.a_strides[0] = 1;
      bd.b_strides[0] = 0;
      cuda::launch_binary(cuda::BinaryOp::Sub, z.f(), one.f(), z.f(), bd, s);
      cuda::launch_row_absmax(z.f(), norms.f(), m, d, s);
    } else {
      rng.normal(z.f(), size_t(m * d));
      cuda::launch_row_norms(z.f(), norms.f(), m, d, s);
    }
    cuda::launch_scaled_start(xa.f(), x0.f(), z.f(), norms.f(), m, d, eps, lo, hi, s);
    x_old = cuda::device_tensor(bs);
    cuda::copy_device(x_old.f(), xa.f(), size_t(m * d) * sizeof(float), st);
    x_best = cuda::device_tensor(bs);
    cuda::copy_device(x_best.f(), xa.f(), size_t(m * d) * sizeof(float), st);
    grad_best = cuda::device_tensor(bs);

    DValue grad;
    DValue seed;
    // One evaluation: logits, per-row CE and its gradient at xa; then tracking and copies.
    auto evaluate = [&](bool first) {
      auto values = ex.forward_values({xa}, true);
      DValue logits = ex.outputs_of(values).at(0);
      if (logits.shape.size() != 2 || logits.shape[0] != m)
        throw InputError("engine", fmt::format("apgd: the model output {} is not [N, classes]", shape_str(logits.shape)));
      const int64_t k = logits.shape[1];
      if (seed.empty() || seed.numel() != m * k) seed = cuda::device_tensor(logits.shape);
      cuda::launch_ce_loss_seed(logits.f(), ld, seed.f(), loss.f(), correct.f(), m, k, s);
      grad = ex.backward_values(values, {seed}).at(0);
      cuda::launch_apgd_track(loss.f(), loss_prev.f(), loss_best.f(), inc.f(), active.f(), correct.f(), found.f(),
                              improve.f(), broke.f(), first, m, s);
      cuda::launch_masked_row_copy(xa.f(), x_best.f(), improve.f(), m, d, s);
      cuda::launch_masked_row_copy(grad.f(), grad_best.f(), improve.f(), m, d, s);
      cuda::launch_masked_row_copy(xa.f(), adv.f(), broke.f(), m, d, s);
    };
    auto all_broken = [&] {
      std::vector<float> a(static_cast<size_t>(m));
      cuda::download(a.data(), active.f(), size_t(m) * sizeof(float), st);
      return std::all_of(a.begin(), a.end(), [](float v) { return v == 0.f; });
    };

    evaluate(true);
    cuda::copy_device(loss_best_last.f(), loss_best.f(), size_t(m) * sizeof(float), st);
    int k_period = std::max(int(0.22 * n_iter), 1);
    const int size_decr = std::max(int(0.03 * n_iter), 1), n_iter_min = std::max(int(0.06 * n_iter), 1);
    int counter = 0;
    constexpr float rho = 0.75f;
    for (int i = 0; i < n_iter; ++i) {
      const float a = i > 0 ? 0.75f : 1.f;
      if (linf) {
        cuda::launch_apgd_step_linf(xa.f(), x_old.f(), x0.f(), grad.f(), step.f(), active.f(), m, d, a, eps, lo, hi, s);
      } else {
        cuda::launch_row_norms(grad.f(), norms.f(), m, d, s);
        cuda::launch_apgd_l2_grad_step(xa.f(), grad.f(), norms.f(), step.f(), active.f(), z.f(), m, d, s);
        cuda::launch_l2_project(z.f(), x0.f(), tmp->f32(), m, d, eps, lo, hi, s);
        cuda::launch_apgd_momentum(xa.f(), x_old.f(), z.f(), active.f(), m, d, a, s);
        cuda::launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, eps, lo, hi, s);
      }
      evaluate(false);
      if (++counter == k_period) {
        cuda::launch_apgd_checkpoint(inc.f(), reduced_last.f(), loss_best_last.f(), loss_best.f(), step.f(), active.f(),
                                     restart.f(), float(k_period), rho, m, s);
        cuda::launch_masked_row_copy(x_best.f(), xa.f(), restart.f(), m, d, s);
        cuda::launch_masked_row_copy(grad_best.f(), grad.f(), restart.f(), m, d, s);
        k_period = std::max(k_period - size_decr, n_iter_min);
        counter = 0;
        if (all_broken()) break;
      }
    }
    // Rows never broken report their best-loss point; broken rows the iterate that broke them.
    cuda::launch_masked_row_copy(x_best.f(), adv.f(), active.f(), m, d, s);
    std::vector<float> f(static_cast<size_t>(m));
    cuda::download(f.data(), found.f(), size_t(m) * sizeof(float), st);
    cuda::download(res.x_adv.f32() + b0 * d, adv.f(), size_t(m * d) * sizeof(float), st);
    for (int64_t i = 0; i < m; ++i) {
      res.robust[size_t(b0 + i)] = f[size_t(i)] == 0.f;
      res.robust_count += res.robust[size_t(b0 + i)];
    }
  }
  return res;
}

std::optional<Tensor> device_smoothing_counts(const Session& session, const Tensor& x, float sigma, int64_t n,
                                              int64_t batch, uint64_t seed) {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, "smoothing");
  if (!b.ex) return std::nullopt;
  return cuda::smoothing_on(*b.ex, x, sigma, n, batch, seed);
}

Tensor cuda::smoothing_on(const cuda::CudaExecutor& ex, const Tensor& x, float sigma, int64_t n, int64_t batch,
                          uint64_t seed) {
  if (!(sigma >= 0) || n < 0) throw InputError("engine", "smoothing: sigma must be >= 0 and n >= 0");
  if (x.rank() < 1 || x.dtype() != DType::Float32) throw InputError("engine", "smoothing: x must be a float32 batch [B,...]");
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  void* s = st.get();
  int64_t images = x.shape()[0];
  Shape sample(x.shape().begin() + 1, x.shape().end());
  int64_t d = shape_numel(sample);
  int64_t bsz = batch > 0 ? batch : auto_batch(ex, sample, 131072);
  bsz = std::max<int64_t>(1, std::min(bsz, std::max<int64_t>(n, 1)));
  // Equal batches (100000 -> 4 x 25000 rather than 3 x 32768 + 1696): no small, inefficient tail.
  if (batch <= 0 && n > 0) {
    const int64_t parts = (n + bsz - 1) / bsz;
    bsz = (n + parts - 1) / parts;
  }
  // Number of classes from a one-sample forward.
  int64_t k = 0;
  {
    DValue one = cuda::device_zeros(with_batch(sample, 1), st);
    auto out = ex.outputs_of(ex.forward_values({one}, false)).at(0);
    if (out.shape.size() != 2) throw InputError("engine", fmt::format("smoothing: the model output {} is not [N, classes]", shape_str(out.shape)));
    k = out.shape[1];
  }
  DValue xd = cuda::to_device(x, st);
  cuda::BufferPtr counts = cuda::allocate(size_t(images * k) * sizeof(unsigned long long));
  cuda::memset_zero(counts->get(), size_t(images * k) * sizeof(unsigned long long), st);
  DValue samples = cuda::device_tensor(with_batch(sample, bsz));
  for (int64_t b = 0; b < images; ++b) {
    auto* cb = static_cast<unsigned long long*>(counts->get()) + b * k;
    for (int64_t done = 0; done < n; done += bsz) {
      int64_t m = std::min(bsz, n - done);
      // Noise drawn in the sampling kernel (counter-based Philox: no noise buffer, and sample j of
      // image b gets the same noise whatever the batch size).
      cuda::launch_noisy_samples(xd.f() + b * d, samples.f(), m, d, sigma, seed, (b * n + done) * d, s);
      auto out = ex.outputs_of(ex.forward_values({view_rows(samples, m, sample)}, false)).at(0);
      cuda::launch_argmax_histogram(out.f(), m, k, cb, s);
    }
  }
  std::vector<unsigned long long> host(size_t(images * k));
  cuda::download(host.data(), counts->get(), host.size() * sizeof(unsigned long long), st);
  Tensor result(DType::Int64, {images, k});
  for (size_t i = 0; i < host.size(); ++i) result.i64()[i] = static_cast<int64_t>(host[i]);
  return result;
}

namespace {

// Row b of x as a device tensor [1, sample...].
DValue row_on_device(const Tensor& x, int64_t b, const cuda::Stream& st) { return cuda::to_device(x.slice_rows(b, b + 1), st); }

// Seed rows [m, k] with `weight[r]` at column `target` (d/dlogits of sum_r weight_r * logits[r, target]).
DValue target_seed(int64_t m, int64_t k, int64_t target, const std::vector<float>& weight, const cuda::Stream& st) {
  Tensor seed(Shape{m, k});
  for (int64_t r = 0; r < m; ++r) seed.f32()[r * k + target] = weight[size_t(r)];
  return cuda::to_device(seed, st);
}

void check_targets(const std::vector<int64_t>& targets, int64_t images, int64_t k, const char* what) {
  if (static_cast<int64_t>(targets.size()) != images)
    throw InputError("engine", fmt::format("{}: {} targets for {} inputs", what, targets.size(), images));
  for (int64_t t : targets)
    if (t < 0 || t >= k) throw InputError("engine", fmt::format("{}: target {} out of range for {} outputs", what, t, k));
}

int64_t output_classes(const cuda::CudaExecutor& ex, const Shape& sample, const char* what) {
  DValue one = cuda::device_zeros(with_batch(sample, 1), ex.stream());
  auto out = ex.outputs_of(ex.forward_values({one}, false)).at(0);
  if (out.shape.size() != 2)
    throw InputError("engine", fmt::format("{}: the model output {} is not [N, classes]", what, shape_str(out.shape)));
  return out.shape[1];
}

}  // namespace

std::optional<Tensor> device_integrated_gradients(const Session& session, const Tensor& x, const Tensor& baseline,
                                                  const std::vector<int64_t>& targets, const std::vector<double>& alphas,
                                                  const std::vector<double>& weights, int64_t batch) {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, "integrated gradients");
  if (!b.ex) return std::nullopt;
  return cuda::integrated_gradients_on(*b.ex, x, baseline, targets, alphas, weights, batch);
}

Tensor cuda::integrated_gradients_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& baseline,
                                     const std::vector<int64_t>& targets, const std::vector<double>& alphas,
                                     const std::vector<double>& weights, int64_t batch) {
  if (x.rank() < 1 || x.dtype() != DType::Float32) throw InputError("engine", "integrated gradients: x must be a float32 batch [B,...]");
  if (!baseline.empty() && baseline.shape() != x.shape())
    throw InputError("engine", fmt::format("integrated gradients: baseline shape {} differs from the input's {}",
                                           shape_str(baseline.shape()), shape_str(x.shape())));
  if (alphas.empty() || alphas.size() != weights.size())
    throw InputError("engine", "integrated gradients: alphas and weights must be non-empty and of equal length");
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  int64_t images = x.shape()[0];
  Shape sample(x.shape().begin() + 1, x.shape().end());
  int64_t k = output_classes(ex, sample, "integrated gradients");
  check_targets(targets, images, k, "integrated gradients");
  int64_t steps = static_cast<int64_t>(alphas.size());
  int64_t chunk = batch > 0 ? batch : auto_batch(ex, sample, 4096);
  chunk = std::max<int64_t>(1, std::min(chunk, steps));
  Tensor base = baseline.empty() ? Tensor(x.shape()) : baseline.to(DType::Float32);
  Tensor result(x.shape());
  int64_t d = shape_numel(sample);
  Shape alpha_shape(sample.size() + 1, 1);
  for (int64_t b = 0; b < images; ++b) {
    DValue xb = row_on_device(x, b, st), bb = row_on_device(base, b, st);
    DValue diff = cuda::binary(cuda::BinaryOp::Sub, xb, bb, st);  // x - baseline, [1, sample]
    DValue acc = cuda::device_zeros(xb.shape, st);
    for (int64_t s0 = 0; s0 < steps; s0 += chunk) {
      int64_t m = std::min(chunk, steps - s0);
      // Path points base + alpha_k (x - base), built on the device by broadcasting [m,1,..] x [1,sample].
      alpha_shape[0] = m;
      Tensor a(alpha_shape);
      std::vector<float> w(static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r) {
        a.f32()[r] = float(alphas[size_t(s0 + r)]);
        w[size_t(r)] = float(weights[size_t(s0 + r)]);
      }
      DValue points = cuda::binary(cuda::BinaryOp::Add, cuda::binary(cuda::BinaryOp::Mul, cuda::to_device(a, st), diff, st), bb, st);
      auto values = ex.forward_values({points}, true);
      // Weighted one-hot seed: the gradient rows come out already multiplied by w_k.
      DValue grad = ex.backward_values(values, {target_seed(m, k, targets[size_t(b)], w, st)}).at(0);
      acc = cuda::binary(cuda::BinaryOp::Add, acc, cuda::sum_to_shape(grad, xb.shape, st), st);
    }
    DValue attr = cuda::binary(cuda::BinaryOp::Mul, acc, diff, st);
    cuda::download(result.f32() + b * d, attr.f(), size_t(d) * sizeof(float), st);
  }
  return result;
}

std::optional<Tensor> device_smoothgrad(const Session& session, const Tensor& x, const std::vector<int64_t>& targets,
                                        float sigma, int64_t n, bool squared, int64_t batch, uint64_t seed) {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, "SmoothGrad");
  if (!b.ex) return std::nullopt;
  return cuda::smoothgrad_on(*b.ex, x, targets, sigma, n, squared, batch, seed);
}

Tensor cuda::smoothgrad_on(const cuda::CudaExecutor& ex, const Tensor& x, const std::vector<int64_t>& targets, float sigma,
                           int64_t n, bool squared, int64_t batch, uint64_t seed) {
  if (!(sigma >= 0) || n < 1) throw InputError("engine", "SmoothGrad: sigma must be >= 0 and n >= 1");
  if (x.rank() < 1 || x.dtype() != DType::Float32) throw InputError("engine", "SmoothGrad: x must be a float32 batch [B,...]");
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  void* s = st.get();
  int64_t images = x.shape()[0];
  Shape sample(x.shape().begin() + 1, x.shape().end());
  int64_t d = shape_numel(sample);
  int64_t k = output_classes(ex, sample, "SmoothGrad");
  check_targets(targets, images, k, "SmoothGrad");
  int64_t chunk = batch > 0 ? batch : auto_batch(ex, sample, 4096);
  chunk = std::max<int64_t>(1, std::min(chunk, n));
  cuda::Rng rng(seed, st);
  cuda::BufferPtr noise = cuda::allocate(size_t(chunk * d + 1) * sizeof(float));
  DValue samples = cuda::device_tensor(with_batch(sample, chunk));
  Tensor result(x.shape());
  for (int64_t b = 0; b < images; ++b) {
    DValue xb = row_on_device(x, b, st);
    DValue acc = cuda::device_zeros(xb.shape, st);
    for (int64_t done = 0; done < n; done += chunk) {
      int64_t m = std::min(chunk, n - done);
      rng.normal(noise->f32(), size_t(m * d));
      cuda::launch_add_noise(xb.f(), noise->f32(), samples.f(), m, d, sigma, s);
      auto values = ex.forward_values({view_rows(samples, m, sample)}, true);
      DValue grad = ex.backward_values(values, {target_seed(m, k, targets[size_t(b)], std::vector<float>(size_t(m), 1.f), st)}).at(0);
      if (squared) grad = cuda::binary(cuda::BinaryOp::Mul, grad, grad, st);
      acc = cuda::binary(cuda::BinaryOp::Add, acc, cuda::sum_to_shape(grad, xb.shape, st, 1.0 / double(n)), st);
    }
    cuda::download(result.f32() + b * d, acc.f(), size_t(d) * sizeof(float), st);
  }
  return result;
}

}  // namespace mlaudit::engine
