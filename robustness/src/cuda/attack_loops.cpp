// The robustness module's device loops: PGD, APGD (CE, DLR, APGD-T), Square and randomized-smoothing
// sampling with every row's state on the CUDA device. They run on a Program (the Session's graph on
// the device, mlaudit/engine/device.h: forward and input gradient on device arrays, weights uploaded
// at load) and launch this module's kernels (attack_kernels.cu) on its stream; device_entry.cpp finds
// the Program of a Session. tests/cuda runs them on the host emulation of the device runtime.
#include "attack_loops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <utility>

#include "attack_kernels.h"
#include "mlaudit/engine/error.h"
#include "square_schedule.h"

namespace mlaudit::robustness::cuda {

namespace ec = ::mlaudit::engine::cuda;
using ec::DeviceArray;
using ec::with_batch;
using engine::DType;
using engine::Shape;
using engine::Tensor;
using engine::shape_numel;
using engine::shape_str;

namespace {

// Input checks shared by the loops (ec::require_float_batch) and one label per row; returns
// the batch size.
int64_t require_labelled_batch(const Tensor& x, const Tensor& labels, const char* what, size_t min_rank = 1) {
  ec::require_float_batch(x, "robustness", what, "N", min_rank);
  const int64_t n = x.shape()[0];
  if (labels.numel() != n) throw InputError("robustness", fmt::format("{}: {} labels for {} inputs", what, labels.numel(), n));
  return n;
}


int64_t auto_batch(const ec::Program& ex, const Shape& sample, int64_t cap) { return ex.fitting_batch(sample, cap); }

DeviceArray view_rows(const DeviceArray& v, int64_t rows, const Shape& sample) {
  DeviceArray a = v;
  a.shape = with_batch(sample, rows);
  return a;
}

}  // namespace

DevicePgdResult pgd_on(const ec::Program& ex, const Tensor& x, const Tensor& labels, const DevicePgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("robustness", fmt::format("pgd: norm '{}' is not linf or l2", o.norm));
  if (!(o.eps >= 0) || !(o.alpha > 0) || o.steps < 0)
    throw InputError("robustness", "pgd: eps must be >= 0, alpha > 0 and steps >= 0");
  int64_t n = require_labelled_batch(x, labels, "pgd");
  std::lock_guard<std::mutex> lock(ex.lock());
  const ec::Stream& st = ex.stream();
  ec::StreamScope scope(st);
  void* s = st.get();
  Shape sample(x.shape().begin() + 1, x.shape().end());
  int64_t d = shape_numel(sample);
  std::vector<int64_t> lab = labels.to_int64s();

  DevicePgdResult res;
  res.batch = o.batch > 0 ? std::min(o.batch, std::max<int64_t>(n, 1)) : auto_batch(ex, sample, std::max<int64_t>(n, 1));
  res.x_adv = Tensor(x.shape());
  res.robust.assign(n, 0);
  ec::Rng rng(o.seed, st);
  const bool linf = o.norm == "linf";

  for (int64_t b0 = 0; b0 < n; b0 += res.batch) {
    int64_t m = std::min(res.batch, n - b0);
    Shape bs = with_batch(sample, m);
    Tensor xb = x.slice_rows(b0, b0 + m);
    Tensor lb = Tensor::from_ints({m}, std::vector<int64_t>(lab.begin() + b0, lab.begin() + b0 + m));
    DeviceArray x0 = ec::upload_array(xb, st);
    DeviceArray xa = ec::device_array(bs);
    ec::BufferPtr labels_d = ec::allocate(size_t(m) * sizeof(int64_t));
    ec::upload(labels_d->get(), lb.raw(), size_t(m) * sizeof(int64_t), st);
    const int64_t* ld = static_cast<const int64_t*>(labels_d->get());
    ec::BufferPtr norms = ec::allocate(size_t(m) * sizeof(float));
    ec::BufferPtr tmp = ec::allocate(size_t(m * d + m) * sizeof(float));

    // Random start (Madry et al. 2018, Sec. 5): uniform in the L-inf ball; for L2 a Gaussian
    // direction scaled to radius eps * u, u ~ U(0,1) (torchattacks PGDL2's start).
    ec::copy_device(xa.f(), x0.f(), size_t(m * d) * sizeof(float), st);
    if (o.random_start && o.eps > 0) {
      if (linf) {
        rng.uniform(tmp->f32(), size_t(m * d));
        launch_uniform_start(xa.f(), x0.f(), tmp->f32(), m * d, o.eps, o.clip_min, o.clip_max, s);
      } else {
        rng.normal(tmp->f32(), size_t(m * d));
        ec::BufferPtr radius = ec::allocate(size_t(m) * sizeof(float));
        rng.uniform(radius->f32(), size_t(m));
        launch_row_norms(tmp->f32(), norms->f32(), m, d, s);
        // gnorm_i = ||z_i|| / u_i so that the step eps * z_i / gnorm_i has norm eps * u_i.
        launch_divide(norms->f32(), radius->f32(), norms->f32(), m, s);
        launch_l2_step(xa.f(), tmp->f32(), norms->f32(), m, d, o.eps, s);
        launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, o.eps, o.clip_min, o.clip_max, s);
      }
    }
    DeviceArray seed = ec::device_array({m, 1});  // reshaped once the output shape is known
    auto iteration = [&] {
      ec::Tape tape;
      DeviceArray logits = ex.forward(xa, &tape);
      if (logits.shape.size() != 2 || logits.shape[0] != m)
        throw InputError("robustness", fmt::format("pgd: the model output {} is not [N, classes]", shape_str(logits.shape)));
      int64_t k = logits.shape[1];
      if (seed.numel() != m * k) seed = ec::device_array(logits.shape);
      seed.shape = logits.shape;
      // d/dlogits of sum_i CE = softmax - onehot.
      launch_ce_seed(logits.f(), ld, seed.f(), m, k, s);
      DeviceArray grad = ex.input_gradient(tape, seed);
      if (linf) {
        // x <- Proj_{B_inf(x0, eps) ∩ box}(x + alpha sign(grad))
        launch_pgd_step_linf(xa.f(), x0.f(), grad.f(), m * d, o.alpha, o.eps, o.clip_min, o.clip_max, s);
      } else {
        // x <- Proj_{B_2(x0, eps) ∩ box}(x + alpha grad / ||grad||)
        launch_row_norms(grad.f(), norms->f32(), m, d, s);
        launch_l2_step(xa.f(), grad.f(), norms->f32(), m, d, o.alpha, s);
        launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, o.eps, o.clip_min, o.clip_max, s);
      }
    };
    int step = 0;
    if (o.steps > 0) {
      iteration();  // eager warm-up: fills the executor's caches and the memory pool
      ++step;
    }
    void* graph = nullptr;
    if (o.use_cuda_graph && o.steps > 1 && !ec::profiling()) {
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
          ec::Stream::destroy_graph(graph);
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
        ec::Stream::destroy_graph(graph);
        throw;
      }
      st.synchronize();
      ec::Stream::destroy_graph(graph);
    } else {
      for (; step < o.steps; ++step) iteration();
    }
    // Robustness flags on the final iterate.
    auto out = ex.forward(xa);
    ec::BufferPtr correct = ec::allocate(size_t(m) * sizeof(float));
    launch_correct(out.f(), ld, correct->f32(), m, out.shape[1], s);
    std::vector<float> ok(m);
    ec::download(ok.data(), correct->get(), size_t(m) * sizeof(float), st);
    ec::download(res.x_adv.f32() + b0 * d, xa.f(), size_t(m * d) * sizeof(float), st);
    for (int64_t i = 0; i < m; ++i) {
      res.robust[b0 + i] = ok[i] > 0.5f;
      res.robust_count += res.robust[b0 + i];
    }
  }
  return res;
}

DevicePgdResult apgd_ce_on(const ec::Program& ex, const Tensor& x, const Tensor& labels,
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
DevicePgdResult apgd_on(const ec::Program& ex, const Tensor& x, const Tensor& labels,
                              const DeviceApgdOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("robustness", fmt::format("apgd: norm '{}' is not linf or l2", o.norm));
  if (o.loss != "ce" && o.loss != "dlr" && o.loss != "dlr-targeted")
    throw InputError("robustness", fmt::format("apgd: loss '{}' is not ce, dlr or dlr-targeted", o.loss));
  if (!(o.eps >= 0) || o.steps < 0) throw InputError("robustness", "apgd: eps must be >= 0 and steps >= 0");
  if (o.restarts < 1 || o.n_target_classes < 1) throw InputError("robustness", "apgd: restarts and n_target_classes must be >= 1");
  const int64_t n = require_labelled_batch(x, labels, "apgd");
  std::lock_guard<std::mutex> lock(ex.lock());
  const ec::Stream& st = ex.stream();
  ec::StreamScope scope(st);
  void* s = st.get();
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t d = shape_numel(sample);
  const std::vector<int64_t> lab = labels.to_int64s();
  const bool linf = o.norm == "linf";
  const float eps = o.eps, lo = o.clip_min, hi = o.clip_max;
  const int n_iter = o.steps;
  const ApgdLoss loss_kind = o.loss == "ce" ? ApgdLoss::CrossEntropy
                                   : o.loss == "dlr" ? ApgdLoss::Dlr
                                                     : ApgdLoss::DlrTargeted;
  const bool targeted = loss_kind == ApgdLoss::DlrTargeted;

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
    auto out = ex.forward(ec::upload_array(x.slice_rows(b0, b0 + m), st));
    if (out.shape.size() != 2 || out.shape[0] != m)
      throw InputError("robustness", fmt::format("apgd: the model output {} is not [N, classes]", shape_str(out.shape)));
    k = out.shape[1];
    if (!targeted) break;
    clean.resize(size_t(n * k));
    ec::download(clean.data() + b0 * k, out.f(), size_t(m * k) * sizeof(float), st);
  }
  const int64_t min_classes = loss_kind == ApgdLoss::Dlr ? 3 : targeted ? 4 : 2;
  if (k < min_classes)
    throw InputError("robustness", fmt::format("apgd: the {} loss needs at least {} classes, the model has {}",
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
      DeviceArray x0 = ec::upload_array(x.gather_rows(rows_i), st);
      std::vector<int64_t> lb(static_cast<size_t>(m)), tb(static_cast<size_t>(m), 0);
      for (int64_t i = 0; i < m; ++i) {
        lb[size_t(i)] = lab[size_t(rows_i[size_t(i)])];
        if (targeted) tb[size_t(i)] = order[size_t(rows_i[size_t(i)])][size_t(target_rank)];
      }
      ec::BufferPtr ints = ec::allocate(size_t(3 * m) * sizeof(int64_t));
      int64_t* ld = static_cast<int64_t*>(ints->get());
      int64_t* td = ld + m;
      int64_t* rd = ld + 2 * m;
      ec::upload(ld, lb.data(), size_t(m) * sizeof(int64_t), st);
      ec::upload(td, tb.data(), size_t(m) * sizeof(int64_t), st);
      ec::upload(rd, rows_i.data(), size_t(m) * sizeof(int64_t), st);
      auto rows = [&](float init) {
        DeviceArray v = ec::device_array({m});
        launch_fill(v.f(), m, init, s);
        return v;
      };
      DeviceArray xa = ec::device_array(bs), x_old = ec::device_array(bs), x_best = ec::device_array(bs);
      DeviceArray grad_best = ec::device_array(bs), adv = ec::device_array(bs), z = ec::device_array(bs);
      DeviceArray step = rows(2.f * eps), loss = rows(0.f), loss_prev = rows(0.f), loss_best = rows(0.f), loss_best_last = rows(0.f);
      DeviceArray inc = rows(0.f), reduced_last = rows(1.f), active = rows(1.f), found = rows(0.f), correct = rows(0.f);
      DeviceArray improve = rows(0.f), broke = rows(0.f), restart = rows(0.f), norms = rows(0.f);
      if (m > m_real) launch_fill(active.f() + m_real, m - m_real, 0.f, s);  // padding rows never run
      ec::BufferPtr tmp = ec::allocate(size_t(m * d + m) * sizeof(float));

      // Random start: L-inf x + eps t / ||t||_inf, t ~ U[-1, 1]^d; L2 x + eps t / ||t||_2, t ~ N(0, I);
      // clamped to the box. Philox keyed by (seed, run), counter = (original row, element): a row's
      // start depends neither on the batch split nor on which rows earlier runs broke.
      launch_philox_rows(z.f(), rd, m, d, key, !linf, s);
      if (linf) launch_row_absmax(z.f(), norms.f(), m, d, s);
      else launch_row_norms(z.f(), norms.f(), m, d, s);
      launch_scaled_start(xa.f(), x0.f(), z.f(), norms.f(), m, d, eps, lo, hi, s);
      ec::copy_device(x_old.f(), xa.f(), size_t(m * d) * sizeof(float), st);

      DeviceArray grad, seed;
      // One evaluation: logits, per-row loss and its logit gradient, input gradient; then tracking and copies.
      auto evaluate = [&](bool first) {
        ec::Tape tape;
        DeviceArray logits = ex.forward(xa, &tape);
        if (seed.empty() || seed.numel() != m * k) seed = ec::device_array(logits.shape);
        launch_apgd_loss_seed(loss_kind, logits.f(), ld, targeted ? td : nullptr, seed.f(), loss.f(), correct.f(), m,
                                    k, s);
        grad = ex.input_gradient(tape, seed);
        launch_apgd_track(loss.f(), loss_prev.f(), loss_best.f(), inc.f(), active.f(), correct.f(), found.f(),
                                improve.f(), broke.f(), first, m, s);
        launch_masked_row_copy(xa.f(), x_best.f(), improve.f(), m, d, s);
        launch_masked_row_copy(grad.f(), grad_best.f(), improve.f(), m, d, s);
        launch_masked_row_copy(xa.f(), adv.f(), broke.f(), m, d, s);
      };
      auto all_inactive = [&] {
        std::vector<float> a(static_cast<size_t>(m));
        ec::download(a.data(), active.f(), size_t(m) * sizeof(float), st);
        return std::all_of(a.begin(), a.end(), [](float e) { return e == 0.f; });
      };

      evaluate(true);
      ec::copy_device(loss_best_last.f(), loss_best.f(), size_t(m) * sizeof(float), st);
      int k_period = std::max(int(0.22 * n_iter), 1);
      const int size_decr = std::max(int(0.03 * n_iter), 1), n_iter_min = std::max(int(0.06 * n_iter), 1);
      int counter = 0;
      constexpr float rho = 0.75f;
      for (int i = 0; i < n_iter; ++i) {
        const float a = i > 0 ? 0.75f : 1.f;
        if (linf) {
          launch_apgd_step_linf(xa.f(), x_old.f(), x0.f(), grad.f(), step.f(), active.f(), m, d, a, eps, lo, hi, s);
        } else {
          launch_row_norms(grad.f(), norms.f(), m, d, s);
          launch_apgd_l2_grad_step(xa.f(), grad.f(), norms.f(), step.f(), active.f(), z.f(), m, d, s);
          launch_l2_project(z.f(), x0.f(), tmp->f32(), m, d, eps, lo, hi, s);
          launch_apgd_momentum(xa.f(), x_old.f(), z.f(), active.f(), m, d, a, s);
          launch_l2_project(xa.f(), x0.f(), tmp->f32(), m, d, eps, lo, hi, s);
        }
        evaluate(false);
        if (++counter == k_period) {
          launch_apgd_checkpoint(inc.f(), reduced_last.f(), loss_best_last.f(), loss_best.f(), step.f(), active.f(),
                                       restart.f(), float(k_period), rho, m, s);
          launch_masked_row_copy(x_best.f(), xa.f(), restart.f(), m, d, s);
          launch_masked_row_copy(grad_best.f(), grad.f(), restart.f(), m, d, s);
          k_period = std::max(k_period - size_decr, n_iter_min);
          counter = 0;
          if (all_inactive()) break;
        }
      }
      // Rows never broken report this run's best-loss point; broken rows keep the iterate that broke them.
      launch_masked_row_copy(x_best.f(), adv.f(), active.f(), m, d, s);
      std::vector<float> f(static_cast<size_t>(m));
      Tensor adv_h(bs);
      ec::download(f.data(), found.f(), size_t(m) * sizeof(float), st);
      ec::download(adv_h.f32(), adv.f(), size_t(m * d) * sizeof(float), st);
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
DevicePgdResult square_on(const ec::Program& ex, const Tensor& x, const Tensor& labels,
                                const DeviceSquareOptions& o) {
  if (o.norm != "linf" && o.norm != "l2") throw InputError("robustness", fmt::format("square: norm '{}' is not linf or l2", o.norm));
  const bool linf = o.norm == "linf";
  if (!(o.eps >= 0) || o.n_queries < 1 || !(o.p_init > 0 && o.p_init <= 1) || o.check_every < 1)
    throw InputError("robustness", "square: eps must be >= 0, n_queries >= 1, 0 < p_init <= 1 and check_every >= 1");
  const int64_t n = require_labelled_batch(x, labels, "square", 2);
  std::lock_guard<std::mutex> lock(ex.lock());
  const ec::Stream& st = ex.stream();
  ec::StreamScope scope(st);
  void* s = st.get();
  const Shape sample(x.shape().begin() + 1, x.shape().end());
  const int64_t d = shape_numel(sample);
  // Image layout [N,C,H,W]; other inputs are one-row images (square.cpp).
  SquareGeom g{1, 1, d, d};
  if (x.rank() == 4) g = {x.shape()[1], x.shape()[2], x.shape()[3], d};
  else if (x.rank() == 3) g = {1, x.shape()[1], x.shape()[2], d};
  if (!linf && (g.h < 5 || g.w < 5))
    throw InputError("robustness", "square: --norm l2 needs image inputs [N,C,H,W] with H,W >= 5, got " + shape_str(x.shape()));
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
  ec::BufferPtr pattern;
  int64_t pattern_side = -1;
  auto use_pattern = [&](int64_t side) {
    if (side == pattern_side) return;
    std::vector<float> pat = meta_pattern(int(side));
    pattern = ec::allocate(pat.size() * sizeof(float));
    ec::upload(pattern->get(), pat.data(), pat.size() * sizeof(float), st);
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
    DeviceArray x0 = ec::upload_array(x.slice_rows(b0, b0 + m), st);
    Tensor lb = Tensor::from_ints({m}, std::vector<int64_t>(lab.begin() + b0, lab.begin() + b0 + m));
    ec::BufferPtr labels_d = ec::allocate(size_t(m) * sizeof(int64_t));
    ec::upload(labels_d->get(), lb.raw(), size_t(m) * sizeof(int64_t), st);
    const int64_t* ld = static_cast<const int64_t*>(labels_d->get());
    std::vector<int64_t> ids(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) ids[size_t(i)] = i;
    ec::BufferPtr rowid_d = ec::allocate(size_t(m) * sizeof(int64_t));
    ec::upload(rowid_d->get(), ids.data(), size_t(m) * sizeof(int64_t), st);
    const int64_t* rid = static_cast<const int64_t*>(rowid_d->get());
    DeviceArray xb = ec::device_array(bs), xn = ec::device_array(bs);
    DeviceArray margin = ec::device_array({m}), queries = ec::device_array({m}), accept = ec::device_array({m});
    ec::BufferPtr params = ec::allocate(size_t(3 * m) * sizeof(int));
    ec::BufferPtr signs = ec::allocate(size_t(m * g.c * (linf ? 1 : 3)) * sizeof(float));
    ec::BufferPtr rowp = linf ? nullptr : ec::allocate(size_t(8 * m) * sizeof(float));

    // Init (L-inf: vertical stripes; L2: the tile grid scaled to norm eps), one forward, margins.
    if (linf) {
      launch_square_init_linf(xb.f(), x0.f(), g, m, eps, lo, hi, o.seed, b0, s);
    } else {
      use_pattern(s0);
      launch_square_init_l2(xn.f(), pattern->f32(), g, m, s0, sp, ntr, ntc, o.seed, b0, s);
      launch_row_norms(xn.f(), margin.f(), m, d, s);  // margin as scratch for the norms
      launch_scaled_start(xb.f(), x0.f(), xn.f(), margin.f(), m, d, eps, lo, hi, s);
    }
    int64_t k = 0;
    {
      auto out = ex.forward(xb);
      if (out.shape.size() != 2 || out.shape[0] != m)
        throw InputError("robustness", fmt::format("square: the model output {} is not [N, classes]", shape_str(out.shape)));
      k = out.shape[1];
      if (k < 2) throw InputError("robustness", "square: the margin loss needs at least 2 classes");
      launch_square_margin(out.f(), ld, rid, margin.f(), queries.f(), accept.f(), m, k, true, s);
    }
    int64_t w = m;
    std::vector<float> mh(static_cast<size_t>(m));
    for (int it = 1; it < o.n_queries; ++it) {
      if ((it - 1) % o.check_every == 0) {
        ec::download(mh.data(), margin.f(), size_t(m) * sizeof(float), st);
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
          ec::upload(rowid_d->get(), ids.data(), size_t(w) * sizeof(int64_t), st);
        }
      }
      const double p = square_p_selection(o.p_init, it, o.n_queries);
      const int64_t side0 = int64_t(std::lround(std::sqrt(p * double(d) / double(g.c))));
      if (linf) {
        // Window side s = round(sqrt(p * d / c)), at least 1, at most min(h, w) (square.cpp).
        const int64_t side = std::min(std::max<int64_t>(side0, 1), std::min(g.h, g.w));
        launch_square_propose_linf(xb.f(), x0.f(), rid, margin.f(), static_cast<int*>(params->get()), signs->f32(),
                                         xn.f(), g, w, side, eps, lo, hi, o.seed, b0, uint32_t(it), s);
      } else {
        // L2: at least 3, odd, at most min(h, w) - 1 (square.cpp).
        int64_t side = std::max<int64_t>(side0, 3);
        if (side % 2 == 0) ++side;
        side = std::min(side, std::min(g.h, g.w) - 1);
        use_pattern(side);
        launch_square_propose_l2(xb.f(), x0.f(), rid, margin.f(), pattern->f32(), rowp->f32(), signs->f32(), xn.f(), g, w,
                                       side, eps, lo, hi, o.seed, b0, uint32_t(it), s);
      }
      auto out = ex.forward(view_rows(xn, w, sample));
      launch_square_margin(out.f(), ld, rid, margin.f(), queries.f(), accept.f(), w, k, false, s);
      launch_square_accept_copy(xn.f(), xb.f(), rid, accept.f(), w, d, s);
    }
    std::vector<float> qh(static_cast<size_t>(m));
    ec::download(mh.data(), margin.f(), size_t(m) * sizeof(float), st);
    ec::download(qh.data(), queries.f(), size_t(m) * sizeof(float), st);
    ec::download(res.x_adv.f32() + b0 * d, xb.f(), size_t(m * d) * sizeof(float), st);
    for (int64_t i = 0; i < m; ++i) {
      res.robust[size_t(b0 + i)] = mh[size_t(i)] > 0.f;
      res.robust_count += res.robust[size_t(b0 + i)];
      res.queries[size_t(b0 + i)] = int64_t(qh[size_t(i)]);
    }
  }
  return res;
}

Tensor smoothing_on(const ec::Program& ex, const Tensor& x, float sigma, int64_t n, int64_t batch,
                          uint64_t seed) {
  if (!(sigma >= 0) || n < 0) throw InputError("robustness", "smoothing: sigma must be >= 0 and n >= 0");
  ec::require_float_batch(x, "robustness", "smoothing");
  std::lock_guard<std::mutex> lock(ex.lock());
  const ec::Stream& st = ex.stream();
  ec::StreamScope scope(st);
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
    DeviceArray one = ec::device_array_zeros(with_batch(sample, 1), st);
    auto out = ex.forward(one);
    if (out.shape.size() != 2) throw InputError("robustness", fmt::format("smoothing: the model output {} is not [N, classes]", shape_str(out.shape)));
    k = out.shape[1];
  }
  DeviceArray xd = ec::upload_array(x, st);
  ec::BufferPtr counts = ec::allocate(size_t(images * k) * sizeof(unsigned long long));
  ec::memset_zero(counts->get(), size_t(images * k) * sizeof(unsigned long long), st);
  DeviceArray samples = ec::device_array(with_batch(sample, bsz));
  for (int64_t b = 0; b < images; ++b) {
    auto* cb = static_cast<unsigned long long*>(counts->get()) + b * k;
    for (int64_t done = 0; done < n; done += bsz) {
      int64_t m = std::min(bsz, n - done);
      // Noise drawn in the sampling kernel (counter-based Philox: no noise buffer, and sample j of
      // image b gets the same noise whatever the batch size).
      launch_noisy_samples(xd.f() + b * d, samples.f(), m, d, sigma, seed, (b * n + done) * d, s);
      auto out = ex.forward(view_rows(samples, m, sample));
      launch_argmax_histogram(out.f(), m, k, cb, s);
    }
  }
  std::vector<unsigned long long> host(size_t(images * k));
  ec::download(host.data(), counts->get(), host.size() * sizeof(unsigned long long), st);
  Tensor result(DType::Int64, {images, k});
  for (size_t i = 0; i < host.size(); ++i) result.i64()[i] = static_cast<int64_t>(host[i]);
  return result;
}

}  // namespace mlaudit::robustness::cuda
