// Fused PGD, APGD (CE, DLR, APGD-T), Square and smoothing loops on the CUDA executor (see accelerated.h).
// The loops run on the Session's own CUDA executor (Session::device_session()), so the
// weights uploaded at load are reused and nothing is rebuilt per call.
// This file is compiled only into mlaudit_engine_cuda, which does not itself carry the
// PUBLIC MLAUDIT_WITH_CUDA definition it gives mlaudit_engine: select the device declarations.
#ifndef MLAUDIT_WITH_CUDA
#define MLAUDIT_WITH_CUDA 1
#endif
#include "mlaudit/engine/accelerated.h"
#include "mlaudit/engine/square_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "cuda_executor.h"
#include "kernels.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {

using cuda::DValue;

bool on_cuda(const Session& s) { return s.backend_name() == "cuda" && cuda::device_count() > 0; }

// Input checks shared by the loops: x a float32 batch of rank >= min_rank ("<what>: x must be a
// float32 batch [<n>,...]"), and one label per row; returns the batch size.
void require_float_batch(const Tensor& x, const char* what, const char* n = "B", size_t min_rank = 1) {
  if (x.rank() < min_rank || x.dtype() != DType::Float32)
    throw InputError("engine", fmt::format("{}: x must be a float32 batch [{},...]", what, n));
}
int64_t require_labelled_batch(const Tensor& x, const Tensor& labels, const char* what, size_t min_rank = 1) {
  require_float_batch(x, what, "N", min_rank);
  const int64_t n = x.shape()[0];
  if (labels.numel() != n) throw InputError("engine", fmt::format("{}: {} labels for {} inputs", what, labels.numel(), n));
  return n;
}

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

// f(executor) for a session on the CUDA backend (its executor, or one bound to its graph);
// nullopt when the session is not on CUDA or no executor could be bound: the public
// device_* entry points, which then leave the work to the CPU.
template <class F>
auto on_device(const Session& session, const char* what, F f)
    -> std::optional<decltype(f(std::declval<const cuda::CudaExecutor&>()))> {
  if (!on_cuda(session)) return std::nullopt;
  BoundExecutor b = bind_executor(session, what);
  if (!b.ex) return std::nullopt;
  return f(*b.ex);
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
  return on_device(session, "pgd", [&](const cuda::CudaExecutor& ex) { return cuda::pgd_on(ex, x, labels, o); });
}

DevicePgdResult cuda::pgd_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels, const DevicePgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("engine", fmt::format("pgd: norm '{}' is not linf or l2", o.norm));
  if (!(o.eps >= 0) || !(o.alpha > 0) || o.steps < 0)
    throw InputError("engine", "pgd: eps must be >= 0, alpha > 0 and steps >= 0");
  int64_t n = require_labelled_batch(x, labels, "pgd");
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
  return on_device(session, "apgd", [&](const cuda::CudaExecutor& ex) { return cuda::apgd_ce_on(ex, x, labels, o); });
}

std::optional<DevicePgdResult> device_apgd(const Session& session, const Tensor& x, const Tensor& labels,
                                           const DeviceApgdOptions& o) {
  return on_device(session, "apgd", [&](const cuda::CudaExecutor& ex) { return cuda::apgd_on(ex, x, labels, o); });
}

DevicePgdResult cuda::apgd_ce_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels,
                                 const DeviceApgdOptions& o) {
  DeviceApgdOptions ce = o;
  ce.loss = "ce";
  return apgd_on(ex, x, labels, ce);
}

namespace {
// Key of run `run` of a seed (splitmix64 finaliser): distinct, well-mixed Philox keys per restart/target.
uint64_t run_key(uint64_t seed, uint64_t run) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (run + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

// APGD (Croce & Hein 2020, Algorithm 1) with every row's state on the device: the loop
// mirrors robustness/src/apgd.cpp (checkpoints p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
// momentum 0.75 after the first step, eta^(0) = 2 eps, rho = 0.75, restart from the best point
// with its gradient); rows leave the optimisation once misclassified, their breaking iterate kept.
// Loss CE, DLR (eq. 6) or targeted DLR (eq. 7), value and logit gradient from one kernel.
// Runs: `restarts` per target (APGD-T: targets = clean ranks 2 .. n_target_classes + 1, as
// apgd_targeted), each from a fresh Philox start on the rows no earlier run broke (gathered into
// compact device batches, as the reference runs each target on the still-robust points).
// The checkpoint schedule is fixed in advance, so within a run no host decision depends on device
// data except the early stop when every row is broken (checked at checkpoints).
DevicePgdResult cuda::apgd_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels,
                              const DeviceApgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("engine", fmt::format("apgd: norm '{}' is not linf or l2", o.norm));
  if (o.loss != "ce" && o.loss != "dlr" && o.loss != "dlr-targeted")
    throw InputError("engine", fmt::format("apgd: loss '{}' is not ce, dlr or dlr-targeted", o.loss));
  if (!(o.eps >= 0) || o.steps < 0) throw InputError("engine", "apgd: eps must be >= 0 and steps >= 0");
  if (o.restarts < 1 || o.n_target_classes < 1) throw InputError("engine", "apgd: restarts and n_target_classes must be >= 1");
  const int64_t n = require_labelled_batch(x, labels, "apgd");
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
  const cuda::ApgdLoss loss_kind = o.loss == "ce" ? cuda::ApgdLoss::CrossEntropy
                                   : o.loss == "dlr" ? cuda::ApgdLoss::Dlr
                                                     : cuda::ApgdLoss::DlrTargeted;
  const bool targeted = loss_kind == cuda::ApgdLoss::DlrTargeted;

  DevicePgdResult res;
  res.batch = o.batch > 0 ? std::min(o.batch, std::max<int64_t>(n, 1)) : auto_batch(ex, sample, std::max<int64_t>(n, 1));
  res.x_adv = x.clone();
  res.robust.assign(size_t(n), 1);
  if (n == 0) return res;

  // Clean logits, in device batches: the number of classes and (APGD-T) the target ranking, a
  // stable descending sort per row as apgd_targeted's.
  int64_t k = 0;
  std::vector<float> clean;
  for (int64_t b0 = 0; b0 < n; b0 += res.batch) {
    const int64_t m = std::min(res.batch, n - b0);
    auto out = ex.outputs_of(ex.forward_values({cuda::to_device(x.slice_rows(b0, b0 + m), st)}, false)).at(0);
    if (out.shape.size() != 2 || out.shape[0] != m)
      throw InputError("engine", fmt::format("apgd: the model output {} is not [N, classes]", shape_str(out.shape)));
    k = out.shape[1];
    if (!targeted) break;
    clean.resize(size_t(n * k));
    cuda::download(clean.data() + b0 * k, out.f(), size_t(m * k) * sizeof(float), st);
  }
  const int64_t min_classes = loss_kind == cuda::ApgdLoss::Dlr ? 3 : targeted ? 4 : 2;
  if (k < min_classes)
    throw InputError("engine", fmt::format("apgd: the {} loss needs at least {} classes, the model has {}",
                                           targeted ? "targeted DLR" : o.loss == "dlr" ? "DLR" : "CE", min_classes, k));
  const int n_targets = targeted ? int(std::min<int64_t>(o.n_target_classes, k - 1)) : 1;
  std::vector<std::vector<int64_t>> order;
  if (targeted) {
    order.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
      auto& ord = order[size_t(i)];
      ord.resize(size_t(k));
      for (int64_t j = 0; j < k; ++j) ord[size_t(j)] = j;
      const float* z = clean.data() + i * k;
      std::stable_sort(ord.begin(), ord.end(), [z](int64_t a, int64_t b) { return z[a] > z[b]; });
    }
  }

  // One APGD run on the rows `idx` (all unbroken), in device batches of at most res.batch rows:
  // every row's state on the device; afterwards broken rows get their breaking iterate and
  // found = 1, the others the run's best-loss point.
  int run = 0;
  auto one_run = [&](const std::vector<int64_t>& idx, int target_rank) {
    const uint64_t key = run_key(o.seed, uint64_t(run));
    for (size_t c0 = 0; c0 < idx.size(); c0 += size_t(res.batch)) {
      std::vector<int64_t> rows_i(idx.begin() + c0, idx.begin() + std::min(idx.size(), c0 + size_t(res.batch)));
      // Device batches are padded to a multiple of batch/8 (copies of the first row, inactive from
      // the start): at most 8 distinct forward shapes whatever the runs leave, so the executor's
      // per-shape caches stay small; the padding costs at most an eighth of a batch.
      const int64_t m_real = int64_t(rows_i.size());
      const int64_t quantum = std::max<int64_t>(1, res.batch / 8);
      const int64_t m = std::min(res.batch, (m_real + quantum - 1) / quantum * quantum);
      rows_i.resize(size_t(m), rows_i.front());
      const Shape bs = with_batch(sample, m);
      DValue x0 = cuda::to_device(x.gather_rows(rows_i), st);
      std::vector<int64_t> lb(static_cast<size_t>(m)), tb(static_cast<size_t>(m), 0);
      for (int64_t i = 0; i < m; ++i) {
        lb[size_t(i)] = lab[size_t(rows_i[size_t(i)])];
        if (targeted) tb[size_t(i)] = order[size_t(rows_i[size_t(i)])][size_t(target_rank)];
      }
      cuda::BufferPtr ints = cuda::allocate(size_t(3 * m) * sizeof(int64_t));
      int64_t* ld = static_cast<int64_t*>(ints->get());
      int64_t* td = ld + m;
      int64_t* rd = ld + 2 * m;
      cuda::upload(ld, lb.data(), size_t(m) * sizeof(int64_t), st);
      cuda::upload(td, tb.data(), size_t(m) * sizeof(int64_t), st);
      cuda::upload(rd, rows_i.data(), size_t(m) * sizeof(int64_t), st);
      auto rows = [&](float init) {
        DValue v = cuda::device_tensor({m});
        cuda::launch_fill(v.f(), m, init, s);
        return v;
      };
      DValue xa = cuda::device_tensor(bs), x_old = cuda::device_tensor(bs), x_best = cuda::device_tensor(bs);
      DValue grad_best = cuda::device_tensor(bs), adv = cuda::device_tensor(bs), z = cuda::device_tensor(bs);
      DValue step = rows(2.f * eps), loss = rows(0.f), loss_prev = rows(0.f), loss_best = rows(0.f), loss_best_last = rows(0.f);
      DValue inc = rows(0.f), reduced_last = rows(1.f), active = rows(1.f), found = rows(0.f), correct = rows(0.f);
      DValue improve = rows(0.f), broke = rows(0.f), restart = rows(0.f), norms = rows(0.f);
      if (m > m_real) cuda::launch_fill(active.f() + m_real, m - m_real, 0.f, s);  // padding rows never run
      cuda::BufferPtr tmp = cuda::allocate(size_t(m * d + m) * sizeof(float));

      // Random start: L-inf x + eps t / ||t||_inf, t ~ U[-1, 1]^d; L2 x + eps t / ||t||_2, t ~ N(0, I);
      // clamped to the box. Philox keyed by (seed, run), counter = (original row, element): a row's
      // start depends neither on the batch split nor on which rows earlier runs broke.
      cuda::launch_philox_rows(z.f(), rd, m, d, key, !linf, s);
      if (linf) cuda::launch_row_absmax(z.f(), norms.f(), m, d, s);
      else cuda::launch_row_norms(z.f(), norms.f(), m, d, s);
      cuda::launch_scaled_start(xa.f(), x0.f(), z.f(), norms.f(), m, d, eps, lo, hi, s);
      cuda::copy_device(x_old.f(), xa.f(), size_t(m * d) * sizeof(float), st);

      DValue grad, seed;
      // One evaluation: logits, per-row loss and its logit gradient, input gradient; then tracking and copies.
      auto evaluate = [&](bool first) {
        auto values = ex.forward_values({xa}, true);
        DValue logits = ex.outputs_of(values).at(0);
        if (seed.empty() || seed.numel() != m * k) seed = cuda::device_tensor(logits.shape);
        cuda::launch_apgd_loss_seed(loss_kind, logits.f(), ld, targeted ? td : nullptr, seed.f(), loss.f(), correct.f(), m,
                                    k, s);
        grad = ex.backward_values(values, {seed}).at(0);
        cuda::launch_apgd_track(loss.f(), loss_prev.f(), loss_best.f(), inc.f(), active.f(), correct.f(), found.f(),
                                improve.f(), broke.f(), first, m, s);
        cuda::launch_masked_row_copy(xa.f(), x_best.f(), improve.f(), m, d, s);
        cuda::launch_masked_row_copy(grad.f(), grad_best.f(), improve.f(), m, d, s);
        cuda::launch_masked_row_copy(xa.f(), adv.f(), broke.f(), m, d, s);
      };
      auto all_inactive = [&] {
        std::vector<float> a(static_cast<size_t>(m));
        cuda::download(a.data(), active.f(), size_t(m) * sizeof(float), st);
        return std::all_of(a.begin(), a.end(), [](float e) { return e == 0.f; });
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
          if (all_inactive()) break;
        }
      }
      // Rows never broken report this run's best-loss point; broken rows keep the iterate that broke them.
      cuda::launch_masked_row_copy(x_best.f(), adv.f(), active.f(), m, d, s);
      std::vector<float> f(static_cast<size_t>(m));
      Tensor adv_h(bs);
      cuda::download(f.data(), found.f(), size_t(m) * sizeof(float), st);
      cuda::download(adv_h.f32(), adv.f(), size_t(m * d) * sizeof(float), st);
      for (int64_t i = 0; i < m_real; ++i) {
        const int64_t r = rows_i[size_t(i)];
        std::copy_n(adv_h.f32() + i * d, d, res.x_adv.f32() + r * d);
        if (f[size_t(i)] != 0.f) res.robust[size_t(r)] = 0;
      }
    }
  };

  // Runs: `restarts` per target (APGD-T: clean ranks 2 .. n_targets + 1, as apgd_targeted), each on
  // the rows no earlier run broke, so every batch holds unbroken rows only.
  for (int t = 0; t < n_targets; ++t) {
    for (int rs = 0; rs < o.restarts; ++rs, ++run) {
      std::vector<int64_t> idx;
      for (int64_t i = 0; i < n; ++i)
        if (res.robust[size_t(i)]) idx.push_back(i);
      if (idx.empty()) break;
      one_run(idx, t + 1);
    }
  }
  for (auto r : res.robust) res.robust_count += r;
  return res;
}

std::optional<DevicePgdResult> device_square(const Session& session, const Tensor& x, const Tensor& labels,
                                             const DeviceSquareOptions& o) {
  return on_device(session, "square", [&](const cuda::CudaExecutor& ex) { return cuda::square_on(ex, x, labels, o); });
}

namespace {

// The meta pseudo-Gaussian pattern of side s before its random transposition: +eta on the top
// half, -eta on the bottom half, unit L2 norm (Andriushchenko et al. 2020, Sec. 3.2; square.cpp).
std::vector<float> meta_pattern(int s) {
  std::vector<double> m = square_meta_pattern(s);
  return std::vector<float>(m.begin(), m.end());
}

}  // namespace

// Square (Andriushchenko et al. 2020, Alg. 2), L-inf and L2, following robustness/src/square.cpp: per row
// x_best, margin and query count stay on the device; each iteration proposes a window update for
// every working row (kernel), runs one forward on the working rows and accepts lower margins
// (kernel). Working rows are batch rows addressed through `rowid`; every check_every iterations
// the host downloads the margins, stops when none is > 0 and otherwise uploads the shorter list
// (forwards shrink as rows break; results do not depend on when this happens).
DevicePgdResult cuda::square_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& labels,
                                const DeviceSquareOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("engine", fmt::format("square: norm '{}' is not linf or l2", o.norm));
  const bool linf = o.norm == "linf";
  if (!(o.eps >= 0) || o.n_queries < 1 || !(o.p_init > 0 && o.p_init <= 1) || o.check_every < 1)
    throw InputError("engine", "square: eps must be >= 0, n_queries >= 1, 0 < p_init <= 1 and check_every >= 1");
  const int64_t n = require_labelled_batch(x, labels, "square", 2);
  std::lock_guard<std::mutex> lock(ex.lock());
  const cuda::Stream& st = ex.stream();
  cuda::StreamScope scope(st);
  void* s = st.get();
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t d = shape_numel(sample);
  // Image layout [N,C,H,W]; other inputs are one-row images (square.cpp).
  cuda::SquareGeom g{1, 1, d, d};
  if (x.rank() == 4) g = {x.shape()[1], x.shape()[2], x.shape()[3], d};
  else if (x.rank() == 3) g = {1, x.shape()[1], x.shape()[2], d};
  if (!linf && (g.h < 5 || g.w < 5))
    throw InputError("engine", "square: --norm l2 needs image inputs [N,C,H,W] with H,W >= 5, got " + shape_str(x.shape()));
  const std::vector<int64_t> lab = labels.to_int64s();
  const float eps = o.eps, lo = o.clip_min, hi = o.clip_max;
  // L2 init tiles (square.cpp): side h / 5 from (sp, sp), as many as fit.
  const int64_t s0 = g.h / 5, sp = linf ? 0 : (g.h - s0 * 5) / 2;
  int64_t ntr = 0, ntc = 0;
  if (!linf) {
    for (int64_t vh = sp; vh + s0 <= g.h && vh < sp + (g.h / s0) * s0; vh += s0) ++ntr;
    for (int64_t vw = sp; vw + s0 <= g.w && vw < sp + (g.h / s0) * s0; vw += s0) ++ntc;
  }
  // Device copy of the meta pattern of side s (recomputed when the schedule changes s).
  cuda::BufferPtr pattern;
  int64_t pattern_side = -1;
  auto use_pattern = [&](int64_t side) {
    if (side == pattern_side) return;
    std::vector<float> pat = meta_pattern(int(side));
    pattern = cuda::allocate(pat.size() * sizeof(float));
    cuda::upload(pattern->get(), pat.data(), pat.size() * sizeof(float), st);
    pattern_side = side;
  };

  DevicePgdResult res;
  res.batch = o.batch > 0 ? std::min(o.batch, std::max<int64_t>(n, 1)) : auto_batch(ex, sample, std::max<int64_t>(n, 1));
  res.x_adv = Tensor(x.shape());
  res.robust.assign(size_t(n), 0);
  res.queries.assign(size_t(n), 0);
  for (int64_t b0 = 0; b0 < n; b0 += res.batch) {
    const int64_t m = std::min(res.batch, n - b0);
    const Shape bs = with_batch(sample, m);
    DValue x0 = cuda::to_device(x.slice_rows(b0, b0 + m), st);
    Tensor lb = Tensor::from_ints({m}, std::vector<int64_t>(lab.begin() + b0, lab.begin() + b0 + m));
    cuda::BufferPtr labels_d = cuda::allocate(size_t(m) * sizeof(int64_t));
    cuda::upload(labels_d->get(), lb.raw(), size_t(m) * sizeof(int64_t), st);
    const int64_t* ld = static_cast<const int64_t*>(labels_d->get());
    std::vector<int64_t> ids(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) ids[size_t(i)] = i;
    cuda::BufferPtr rowid_d = cuda::allocate(size_t(m) * sizeof(int64_t));
    cuda::upload(rowid_d->get(), ids.data(), size_t(m) * sizeof(int64_t), st);
    const int64_t* rid = static_cast<const int64_t*>(rowid_d->get());
    DValue xb = cuda::device_tensor(bs), xn = cuda::device_tensor(bs);
    DValue margin = cuda::device_tensor({m}), queries = cuda::device_tensor({m}), accept = cuda::device_tensor({m});
    cuda::BufferPtr params = cuda::allocate(size_t(3 * m) * sizeof(int));
    cuda::BufferPtr signs = cuda::allocate(size_t(m * g.c * (linf ? 1 : 3)) * sizeof(float));
    cuda::BufferPtr rowp = linf ? nullptr : cuda::allocate(size_t(8 * m) * sizeof(float));

    // Init (L-inf: vertical stripes; L2: the tile grid scaled to norm eps), one forward, margins.
    if (linf) {
      cuda::launch_square_init_linf(xb.f(), x0.f(), g, m, eps, lo, hi, o.seed, b0, s);
    } else {
      use_pattern(s0);
      cuda::launch_square_init_l2(xn.f(), pattern->f32(), g, m, s0, sp, ntr, ntc, o.seed, b0, s);
      cuda::launch_row_norms(xn.f(), margin.f(), m, d, s);  // margin as scratch for the norms
      cuda::launch_scaled_start(xb.f(), x0.f(), xn.f(), margin.f(), m, d, eps, lo, hi, s);
    }
    int64_t k = 0;
    {
      auto out = ex.outputs_of(ex.forward_values({xb}, false)).at(0);
      if (out.shape.size() != 2 || out.shape[0] != m)
        throw InputError("engine", fmt::format("square: the model output {} is not [N, classes]", shape_str(out.shape)));
      k = out.shape[1];
      if (k < 2) throw InputError("engine", "square: the margin loss needs at least 2 classes");
      cuda::launch_square_margin(out.f(), ld, rid, margin.f(), queries.f(), accept.f(), m, k, true, s);
    }
    int64_t w = m;
    std::vector<float> mh(static_cast<size_t>(m));
    for (int it = 1; it < o.n_queries; ++it) {
      if ((it - 1) % o.check_every == 0) {
        cuda::download(mh.data(), margin.f(), size_t(m) * sizeof(float), st);
        ids.clear();
        std::vector<int64_t> done;
        for (int64_t i = 0; i < m; ++i) (mh[size_t(i)] > 0.f ? ids : done).push_back(i);
        if (ids.empty()) break;
        // Working-set sizes are m or powers of two (padded with broken rows, which the kernels skip):
        // few distinct forward shapes, so the executor's per-shape caches stay small.
        int64_t bucket = m;
        if (int64_t(ids.size()) <= m / 2) {
          bucket = 1;
          while (bucket < int64_t(ids.size())) bucket *= 2;
        }
        if (bucket < w) {
          for (size_t q = 0; int64_t(ids.size()) < bucket; ++q) ids.push_back(done[q]);
          w = bucket;
          cuda::upload(rowid_d->get(), ids.data(), size_t(w) * sizeof(int64_t), st);
        }
      }
      const double p = square_p_selection(o.p_init, it, o.n_queries);
      const int64_t side0 = int64_t(std::lround(std::sqrt(p * double(d) / double(g.c))));
      if (linf) {
        // Window side s = round(sqrt(p * d / c)), at least 1, at most min(h, w) (square.cpp).
        const int64_t side = std::min(std::max<int64_t>(side0, 1), std::min(g.h, g.w));
        cuda::launch_square_propose_linf(xb.f(), x0.f(), rid, margin.f(), static_cast<int*>(params->get()), signs->f32(),
                                         xn.f(), g, w, side, eps, lo, hi, o.seed, b0, uint32_t(it), s);
      } else {
        // L2: at least 3, odd, at most min(h, w) - 1 (square.cpp).
        int64_t side = std::max<int64_t>(side0, 3);
        if (side % 2 == 0) ++side;
        side = std::min(side, std::min(g.h, g.w) - 1);
        use_pattern(side);
        cuda::launch_square_propose_l2(xb.f(), x0.f(), rid, margin.f(), pattern->f32(), rowp->f32(), signs->f32(), xn.f(), g, w,
                                       side, eps, lo, hi, o.seed, b0, uint32_t(it), s);
      }
      auto out = ex.outputs_of(ex.forward_values({view_rows(xn, w, sample)}, false)).at(0);
      cuda::launch_square_margin(out.f(), ld, rid, margin.f(), queries.f(), accept.f(), w, k, false, s);
      cuda::launch_square_accept_copy(xn.f(), xb.f(), rid, accept.f(), w, d, s);
    }
    std::vector<float> qh(static_cast<size_t>(m));
    cuda::download(mh.data(), margin.f(), size_t(m) * sizeof(float), st);
    cuda::download(qh.data(), queries.f(), size_t(m) * sizeof(float), st);
    cuda::download(res.x_adv.f32() + b0 * d, xb.f(), size_t(m * d) * sizeof(float), st);
    for (int64_t i = 0; i < m; ++i) {
      res.robust[size_t(b0 + i)] = mh[size_t(i)] > 0.f;
      res.robust_count += res.robust[size_t(b0 + i)];
      res.queries[size_t(b0 + i)] = int64_t(qh[size_t(i)]);
    }
  }
  return res;
}

std::optional<Tensor> device_smoothing_counts(const Session& session, const Tensor& x, float sigma, int64_t n,
                                              int64_t batch, uint64_t seed) {
  return on_device(session, "smoothing", [&](const cuda::CudaExecutor& ex) {
    return cuda::smoothing_on(ex, x, sigma, n, batch, seed);
  });
}

Tensor cuda::smoothing_on(const cuda::CudaExecutor& ex, const Tensor& x, float sigma, int64_t n, int64_t batch,
                          uint64_t seed) {
  if (!(sigma >= 0) || n < 0) throw InputError("engine", "smoothing: sigma must be >= 0 and n >= 0");
  require_float_batch(x, "smoothing");
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
  return on_device(session, "integrated gradients", [&](const cuda::CudaExecutor& ex) {
    return cuda::integrated_gradients_on(ex, x, baseline, targets, alphas, weights, batch);
  });
}

Tensor cuda::integrated_gradients_on(const cuda::CudaExecutor& ex, const Tensor& x, const Tensor& baseline,
                                     const std::vector<int64_t>& targets, const std::vector<double>& alphas,
                                     const std::vector<double>& weights, int64_t batch) {
  require_float_batch(x, "integrated gradients");
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
  return on_device(session, "SmoothGrad", [&](const cuda::CudaExecutor& ex) {
    return cuda::smoothgrad_on(ex, x, targets, sigma, n, squared, batch, seed);
  });
}

Tensor cuda::smoothgrad_on(const cuda::CudaExecutor& ex, const Tensor& x, const std::vector<int64_t>& targets, float sigma,
                           int64_t n, bool squared, int64_t batch, uint64_t seed) {
  if (!(sigma >= 0) || n < 1) throw InputError("engine", "SmoothGrad: sigma must be >= 0 and n >= 1");
  require_float_batch(x, "SmoothGrad");
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
