// ops_rnn.cpp: RNN, GRU, LSTM (every since-version: 1, 7, 14, 22; GRU also 3), forward and
// vector-Jacobian product by backpropagation through time.
//
// Shapes (ONNX spec, layout 0; layout 1, from opset 14, swaps the first two axes of X, Y,
// initial_h/c and Y_h/c): X [T, B, I], W [D, G H, I], R [D, G H, H], B [D, 2 G H],
// sequence_lens [B], initial_h/c [D, B, H], P [D, 3 H]; Y [T, D, B, H], Y_h/c [D, B, H]. G is the
// number of gates: 1 (RNN), 3 (GRU: z r h), 4 (LSTM: i o f c); D is 2 for bidirectional.
//
// Per direction the input projection X W^T + Wb (+ Rb) of all time steps is one sgemm; the
// recurrent product H_{t-1} R^T is one sgemm per step. With sequence_lens, batch row b runs
// steps 0..len_b-1 (the reverse direction visits t = len_b-1 down to 0), Y is zero past len_b and
// Y_h/Y_c hold the state after the last valid step.
//
// Cells (f, g, h are the direction's activations; clip(.) clamps a pre-activation to
// [-clip, clip] when the attribute is set):
//   RNN:  H = f(clip(x Wi^T + Hp Ri^T + Wbi + Rbi))
//   GRU:  z = f(clip(x Wz^T + Hp Rz^T + Wbz + Rbz)), r likewise,
//         linear_before_reset 0: h~ = g(clip(x Wh^T + (r . Hp) Rh^T + Rbh + Wbh))
//         linear_before_reset 1: h~ = g(clip(x Wh^T + r . (Hp Rh^T + Rbh) + Wbh))
//         H = (1 - z) . h~ + z . Hp
//   LSTM: i = f(clip(x Wi^T + Hp Ri^T + Pi . Cp + Wbi + Rbi)),
//         f = f(clip(... Pf . Cp ...)) (or 1 - i with input_forget = 1),
//         c~ = g(clip(x Wc^T + Hp Rc^T + Wbc + Rbc)), C = f . Cp + i . c~,
//         o = f(clip(x Wo^T + Hp Ro^T + Po . C + Wbo + Rbo)), H = o . h(C)
// The backward pass recomputes the forward with a trace of every step (previous states,
// pre-activations, gate values) and runs the chain rule of these formulas from the last step to
// the first; a clamped pre-activation passes no gradient (clip's derivative is 0 outside).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "mlaudit/engine/error.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

enum class Cell { Rnn, Gru, Lstm };

enum class ActKind { Sigmoid, Tanh, Relu, LeakyRelu, HardSigmoid, Elu, Softsign, Softplus };

/// One of the activation functions an RNN node may name, with its alpha/beta.
struct Activation {
  ActKind kind = ActKind::Tanh;
  float alpha = 0.f, beta = 0.f;

  float value(float x) const {
    switch (kind) {
      case ActKind::Sigmoid: return sigmoid_value(x);
      case ActKind::Tanh: return std::tanh(x);
      case ActKind::Relu: return x > 0.f ? x : 0.f;
      case ActKind::LeakyRelu: return x >= 0.f ? x : alpha * x;
      case ActKind::HardSigmoid: return std::max(0.f, std::min(1.f, alpha * x + beta));
      case ActKind::Elu: return x >= 0.f ? x : alpha * (std::exp(x) - 1.f);
      case ActKind::Softsign: return x / (1.f + std::fabs(x));
      case ActKind::Softplus: return x > 0.f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    }
    return x;
  }
  /// Derivative at the pre-activation x, given y = value(x).
  float slope(float x, float y) const {
    switch (kind) {
      case ActKind::Sigmoid: return y * (1.f - y);
      case ActKind::Tanh: return 1.f - y * y;
      case ActKind::Relu: return x > 0.f ? 1.f : 0.f;
      case ActKind::LeakyRelu: return x >= 0.f ? 1.f : alpha;
      case ActKind::HardSigmoid: {
        float u = alpha * x + beta;
        return (u > 0.f && u < 1.f) ? alpha : 0.f;
      }
      case ActKind::Elu: return x >= 0.f ? 1.f : y + alpha;
      case ActKind::Softsign: {
        float d = 1.f + std::fabs(x);
        return 1.f / (d * d);
      }
      case ActKind::Softplus: return sigmoid_value(x);
    }
    return 1.f;
  }
};

/// Everything the node's attributes and input shapes fix.
struct RnnSpec {
  Cell cell = Cell::Rnn;
  int64_t gates = 1;  ///< G
  int64_t dirs = 1, seq = 0, batch = 0, input = 0, hidden = 0;
  int64_t layout = 0;
  bool reverse = false;  ///< direction = "reverse" (bidirectional: direction 1 is reverse)
  bool has_clip = false;
  float clip = 0.f;
  bool input_forget = false;
  bool linear_before_reset = false;
  std::vector<std::array<Activation, 3>> acts;  ///< per direction: f, g, h
  std::vector<int64_t> lens;                    ///< per batch row

  int64_t gh() const { return gates * hidden; }
  bool dir_reverse(int64_t d) const { return dirs == 2 ? d == 1 : reverse; }
  float clamp(float x) const { return has_clip ? std::min(std::max(x, -clip), clip) : x; }
  /// 0 where clip clamps x (no gradient flows through the clamp), else 1.
  float clip_pass(float x) const { return (has_clip && std::fabs(x) > clip) ? 0.f : 1.f; }
};

/// Float operands of one node in layout 0 ([T, B, I], [D, B, H]), contiguous.
struct Operands {
  std::vector<float> x;                          ///< [T, B, I]
  const float *w = nullptr, *r = nullptr;        ///< [D, G H, I], [D, G H, H]
  const float *bias = nullptr, *peep = nullptr;  ///< [D, 2 G H], [D, 3 H] or nullptr
  std::vector<float> h0, c0;                     ///< [D, B, H] (empty: zeros)
};

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

int64_t gates_of(Cell c) { return c == Cell::Rnn ? 1 : (c == Cell::Gru ? 3 : 4); }

/// Activations per direction from `activations`, `activation_alpha`, `activation_beta`.
std::vector<std::array<Activation, 3>> parse_activations(const OpContext& ctx, Cell cell, int64_t dirs) {
  const int64_t per_dir = cell == Cell::Rnn ? 1 : (cell == Cell::Gru ? 2 : 3);
  std::vector<std::string> names;
  auto it = ctx.node.attributes.find("activations");
  if (it != ctx.node.attributes.end()) {
    if (it->second.kind != Attribute::Kind::Strings) op_error(ctx, "attribute 'activations' must be a list of strings");
    names = it->second.strings;
    if (static_cast<int64_t>(names.size()) != per_dir * dirs)
      op_error(ctx, fmt::format("activations lists {} functions; {} directions of {} need {}", names.size(), dirs,
                                per_dir, per_dir * dirs));
  } else {
    const std::vector<std::string> def = cell == Cell::Rnn   ? std::vector<std::string>{"Tanh"}
                                         : cell == Cell::Gru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                             : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), def.begin(), def.end());
  }
  const std::vector<float> alphas = ctx.node.get_floats("activation_alpha");
  const std::vector<float> betas = ctx.node.get_floats("activation_beta");
  size_t ai = 0, bi = 0;
  auto next = [](const std::vector<float>& v, size_t& i, float def) { return i < v.size() ? v[i++] : def; };
  std::vector<std::array<Activation, 3>> acts(static_cast<size_t>(dirs));
  for (int64_t k = 0; k < static_cast<int64_t>(names.size()); ++k) {
    Activation a;
    const std::string n = lower(names[static_cast<size_t>(k)]);
    if (n == "sigmoid") a.kind = ActKind::Sigmoid;
    else if (n == "tanh") a.kind = ActKind::Tanh;
    else if (n == "relu") a.kind = ActKind::Relu;
    else if (n == "leakyrelu") a = {ActKind::LeakyRelu, next(alphas, ai, 0.01f), 0.f};
    else if (n == "hardsigmoid") {
      a.kind = ActKind::HardSigmoid;
      a.alpha = next(alphas, ai, 0.2f);
      a.beta = next(betas, bi, 0.5f);
    } else if (n == "elu") a = {ActKind::Elu, next(alphas, ai, 1.f), 0.f};
    else if (n == "softsign") a.kind = ActKind::Softsign;
    else if (n == "softplus") a.kind = ActKind::Softplus;
    else
      op_error(ctx, fmt::format("activation '{}' is not supported (supported: Sigmoid, Tanh, Relu, LeakyRelu, "
                                "HardSigmoid, Elu, Softsign, Softplus)",
                                names[static_cast<size_t>(k)]));
    acts[static_cast<size_t>(k / per_dir)][static_cast<size_t>(k % per_dir)] = a;
  }
  // RNN has one function per direction: f. Unused slots stay Tanh.
  return acts;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

void expect_shape(const OpContext& ctx, const Tensor& t, const Shape& want, const char* what) {
  if (t.shape() != want)
    op_error(ctx, fmt::format("{} has shape {}, expected {}", what, shape_str(t.shape()), shape_str(want)));
}

/// Reads and checks attributes and input shapes; fills the layout-0 operands.
RnnSpec parse(const OpContext& ctx, Cell cell, const Inputs& in, Operands& ops) {
  RnnSpec s;
  s.cell = cell;
  s.gates = gates_of(cell);
  const int64_t version = ctx.node.since_version > 0 ? ctx.node.since_version : ctx.opset;
  const Tensor& x = float_input(ctx, in, 0);
  const Tensor& w = float_input(ctx, in, 1);
  const Tensor& r = float_input(ctx, in, 2);
  if (version >= 14) {
    s.layout = ctx.node.get_int("layout", 0);
    if (s.layout != 0 && s.layout != 1) op_error(ctx, fmt::format("layout must be 0 or 1, got {}", s.layout));
  } else if (ctx.node.has("layout")) {
    op_error(ctx, fmt::format("attribute 'layout' exists only from opset 14 (node resolves to version {})", version));
  }
  const std::string direction = ctx.node.get_string("direction", "forward");
  if (direction == "bidirectional") s.dirs = 2;
  else if (direction == "reverse") s.reverse = true;
  else if (direction != "forward")
    op_error(ctx, fmt::format("direction must be forward, reverse or bidirectional, got '{}'", direction));
  if (x.rank() != 3) op_error(ctx, fmt::format("X must have rank 3, got shape {}", shape_str(x.shape())));
  if (w.rank() != 3) op_error(ctx, fmt::format("W must have rank 3, got shape {}", shape_str(w.shape())));
  if (r.rank() != 3) op_error(ctx, fmt::format("R must have rank 3, got shape {}", shape_str(r.shape())));
  s.seq = s.layout == 0 ? x.dim(0) : x.dim(1);
  s.batch = s.layout == 0 ? x.dim(1) : x.dim(0);
  s.input = x.dim(2);
  s.hidden = r.dim(2);
  if (ctx.node.has("hidden_size") && ctx.node.get_int("hidden_size", 0) != s.hidden)
    op_error(ctx, fmt::format("hidden_size {} does not match R's last dimension {}", ctx.node.get_int("hidden_size", 0),
                              s.hidden));
  const int64_t gh = s.gh();
  expect_shape(ctx, w, {s.dirs, gh, s.input}, "W");
  expect_shape(ctx, r, {s.dirs, gh, s.hidden}, "R");
  // The input projection and the backward trace hold T B G H floats per direction: refuse sizes
  // no machine holds rather than fail inside the allocator.
  const double work = double(s.seq) * double(s.batch) * double(gh);
  if (work > double(int64_t(1) << 32))
    op_error(ctx, fmt::format("sequence {} x batch {} x {} gate units needs {:.3g} floats per direction; refusing",
                              s.seq, s.batch, gh, work));
  ops.w = w.f32();
  ops.r = r.f32();
  if (in.size() > 3 && in[3]) {
    const Tensor& b = float_input(ctx, in, 3);
    expect_shape(ctx, b, {s.dirs, 2 * gh}, "B");
    ops.bias = b.f32();
  }
  s.lens.assign(static_cast<size_t>(s.batch), s.seq);
  if (in.size() > 4 && in[4]) {
    const Tensor& l = *in[4];
    if (l.dtype() != DType::Int64) op_error(ctx, "sequence_lens must be an integer tensor");
    expect_shape(ctx, l, {s.batch}, "sequence_lens");
    for (int64_t b = 0; b < s.batch; ++b) {
      const int64_t v = l.i64()[b];
      if (v < 0 || v > s.seq)
        op_error(ctx, fmt::format("sequence_lens[{}] = {} is outside [0, {}] (the sequence length)", b, v, s.seq));
      s.lens[static_cast<size_t>(b)] = v;
    }
  }
  // Layout-1 tensors are transposed to layout 0 ([B, T|D, *] -> [T|D, B, *]).
  auto to_layout0 = [&](const Tensor& t, int64_t outer, int64_t inner) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    const float* p = t.f32();
    if (s.layout == 0) {
      std::copy(p, p + t.numel(), v.begin());
    } else {
      for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t o = 0; o < outer; ++o)
          std::copy(p + (b * outer + o) * inner, p + (b * outer + o + 1) * inner, v.begin() + (o * s.batch + b) * inner);
    }
    return v;
  };
  ops.x = to_layout0(x, s.seq, s.input);
  const Shape state_shape =
      s.layout == 0 ? Shape{s.dirs, s.batch, s.hidden} : Shape{s.batch, s.dirs, s.hidden};
  if (in.size() > 5 && in[5]) {
    const Tensor& h0 = float_input(ctx, in, 5);
    expect_shape(ctx, h0, state_shape, "initial_h");
    ops.h0 = to_layout0(h0, s.dirs, s.hidden);
  }
  if (cell == Cell::Lstm) {
    if (in.size() > 6 && in[6]) {
      const Tensor& c0 = float_input(ctx, in, 6);
      expect_shape(ctx, c0, state_shape, "initial_c");
      ops.c0 = to_layout0(c0, s.dirs, s.hidden);
    }
    if (in.size() > 7 && in[7]) {
      const Tensor& p = float_input(ctx, in, 7);
      expect_shape(ctx, p, {s.dirs, 3 * s.hidden}, "P");
      ops.peep = p.f32();
    }
    const int64_t fi = ctx.node.get_int("input_forget", 0);
    if (fi != 0 && fi != 1) op_error(ctx, fmt::format("input_forget must be 0 or 1, got {}", fi));
    s.input_forget = fi == 1;
  } else if (in.size() > 6) {
    op_error(ctx, fmt::format("{} takes at most 6 inputs, got {}", ctx.node.op_type, in.size()));
  }
  if (cell == Cell::Gru && version >= 3) {
    const int64_t lbr = ctx.node.get_int("linear_before_reset", 0);
    if (lbr != 0 && lbr != 1) op_error(ctx, fmt::format("linear_before_reset must be 0 or 1, got {}", lbr));
    s.linear_before_reset = lbr == 1;
  }
  if (ctx.node.has("clip")) {
    s.clip = ctx.node.get_float("clip", 0.f);
    if (!(s.clip > 0.f)) op_error(ctx, fmt::format("clip must be positive, got {}", s.clip));
    s.has_clip = true;
  }
  s.acts = parse_activations(ctx, cell, s.dirs);
  return s;
}

/// Per-step record of one direction's forward pass (for backpropagation through time).
struct Trace {
  std::vector<float> hprev, cprev;  ///< [T, B, H]: state entering step s
  std::vector<float> pre, gate;     ///< [T, B, G H]: raw pre-activations and gate values
  std::vector<float> aux;           ///< [T, B, H]: GRU r . Hp (lbr 0) or Hp Rh^T + Rbh (lbr 1)
  std::vector<float> cnew;          ///< [T, B, H]: LSTM cell state after step s
};

/// Time index of batch row b at step s, or -1 when the row has finished.
inline int64_t time_of(const RnnSpec& s, int64_t d, int64_t step, int64_t b) {
  const int64_t len = s.lens[static_cast<size_t>(b)];
  if (step >= len) return -1;
  return s.dir_reverse(d) ? len - 1 - step : step;
}

/// Forward of direction d: y [T, B, H] (zero-initialised, or nullptr), final h and c [B, H].
void run_direction(const RnnSpec& s, const Operands& ops, int64_t d, float* y, std::vector<float>& h,
                   std::vector<float>& c, Trace* tr) {
  const int64_t T = s.seq, B = s.batch, H = s.hidden, I = s.input, GH = s.gh();
  const float* w = ops.w + d * GH * I;
  const float* r = ops.r + d * GH * H;
  const float* wb = ops.bias ? ops.bias + d * 2 * GH : nullptr;
  const float* rb = ops.bias ? wb + GH : nullptr;
  const float* peep = ops.peep ? ops.peep + d * 3 * H : nullptr;
  const auto& act = s.acts[static_cast<size_t>(d)];
  const bool gru_lbr = s.cell == Cell::Gru && s.linear_before_reset;

  // Input projection of every time step at once: [T B, G H] = X [T B, I] W^T + biases.
  std::vector<float> xproj(static_cast<size_t>(T * B * GH), 0.f);
  sgemm(false, true, T * B, GH, I, 1.f, ops.x.data(), I, w, I, 0.f, xproj.data(), GH);
  if (wb) {
    for (int64_t row = 0; row < T * B; ++row) {
      float* p = xproj.data() + row * GH;
      for (int64_t j = 0; j < GH; ++j) p[j] += wb[j] + ((gru_lbr && j >= 2 * H) ? 0.f : rb[j]);
    }
  }
  h.assign(static_cast<size_t>(B * H), 0.f);
  c.assign(static_cast<size_t>(B * H), 0.f);
  if (!ops.h0.empty()) std::copy(ops.h0.begin() + d * B * H, ops.h0.begin() + (d + 1) * B * H, h.begin());
  if (!ops.c0.empty()) std::copy(ops.c0.begin() + d * B * H, ops.c0.begin() + (d + 1) * B * H, c.begin());
  if (tr) {
    tr->hprev.assign(static_cast<size_t>(T * B * H), 0.f);
    tr->cprev.assign(s.cell == Cell::Lstm ? static_cast<size_t>(T * B * H) : 0u, 0.f);
    tr->pre.assign(static_cast<size_t>(T * B * GH), 0.f);
    tr->gate.assign(static_cast<size_t>(T * B * GH), 0.f);
    tr->aux.assign(s.cell == Cell::Gru ? static_cast<size_t>(T * B * H) : 0u, 0.f);
    tr->cnew.assign(s.cell == Cell::Lstm ? static_cast<size_t>(T * B * H) : 0u, 0.f);
  }
  std::vector<float> rec(static_cast<size_t>(B * GH)), pre_buf(static_cast<size_t>(B * GH)),
      gate_buf(static_cast<size_t>(B * GH)), aux_buf(static_cast<size_t>(B * H)), cnew_buf(static_cast<size_t>(B * H));
  for (int64_t step = 0; step < T; ++step) {
    float* pre = tr ? tr->pre.data() + step * B * GH : pre_buf.data();
    float* gate = tr ? tr->gate.data() + step * B * GH : gate_buf.data();
    float* aux = tr && !tr->aux.empty() ? tr->aux.data() + step * B * H : aux_buf.data();
    float* cnew = tr && !tr->cnew.empty() ? tr->cnew.data() + step * B * H : cnew_buf.data();
    if (tr) {
      std::copy(h.begin(), h.end(), tr->hprev.begin() + step * B * H);
      if (s.cell == Cell::Lstm) std::copy(c.begin(), c.end(), tr->cprev.begin() + step * B * H);
    }
    // Recurrent product Hp R^T (GRU with linear_before_reset 0: z and r rows only here).
    const int64_t rec_cols = (s.cell == Cell::Gru && !gru_lbr) ? 2 * H : GH;
    sgemm(false, true, B, rec_cols, H, 1.f, h.data(), H, r, H, 0.f, rec.data(), GH);
    if (s.cell == Cell::Rnn) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t t = time_of(s, d, step, b);
        if (t < 0) continue;
        const float* xw = xproj.data() + (t * B + b) * GH;
        for (int64_t j = 0; j < H; ++j) {
          const float a = xw[j] + rec[b * GH + j];
          pre[b * GH + j] = a;
          const float v = act[0].value(s.clamp(a));
          gate[b * GH + j] = v;
          h[b * H + j] = v;
          if (y) y[(t * B + b) * H + j] = v;
        }
      }
    } else if (s.cell == Cell::Gru) {
      // z and r, then the candidate's recurrent term.
      for (int64_t b = 0; b < B; ++b) {
        if (time_of(s, d, step, b) < 0) continue;
        const int64_t t = time_of(s, d, step, b);
        const float* xw = xproj.data() + (t * B + b) * GH;
        for (int64_t j = 0; j < 2 * H; ++j) {
          const float a = xw[j] + rec[b * GH + j];
          pre[b * GH + j] = a;
          gate[b * GH + j] = act[0].value(s.clamp(a));
        }
      }
      std::vector<float> cand(static_cast<size_t>(B * H), 0.f);
      if (!gru_lbr) {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < H; ++j) aux[b * H + j] = gate[b * GH + H + j] * h[b * H + j];
        sgemm(false, true, B, H, H, 1.f, aux, H, r + 2 * H * H, H, 0.f, cand.data(), H);
      } else {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < H; ++j) {
            aux[b * H + j] = rec[b * GH + 2 * H + j] + (rb ? rb[2 * H + j] : 0.f);
            cand[b * H + j] = gate[b * GH + H + j] * aux[b * H + j];
          }
      }
      for (int64_t b = 0; b < B; ++b) {
        const int64_t t = time_of(s, d, step, b);
        if (t < 0) continue;
        const float* xw = xproj.data() + (t * B + b) * GH;
        for (int64_t j = 0; j < H; ++j) {
          const float a = xw[2 * H + j] + cand[b * H + j];
          pre[b * GH + 2 * H + j] = a;
          const float hh = act[1].value(s.clamp(a));
          gate[b * GH + 2 * H + j] = hh;
          const float z = gate[b * GH + j];
          const float hn = (1.f - z) * hh + z * h[b * H + j];
          h[b * H + j] = hn;
          if (y) y[(t * B + b) * H + j] = hn;
        }
      }
    } else {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t t = time_of(s, d, step, b);
        if (t < 0) continue;
        const float* xw = xproj.data() + (t * B + b) * GH;
        const float* rc = rec.data() + b * GH;
        float* pr = pre + b * GH;
        float* gt = gate + b * GH;
        for (int64_t j = 0; j < H; ++j) {
          const float cp = c[b * H + j];
          const float ai = xw[j] + rc[j] + (peep ? peep[j] * cp : 0.f);
          const float af = xw[2 * H + j] + rc[2 * H + j] + (peep ? peep[2 * H + j] * cp : 0.f);
          const float ac = xw[3 * H + j] + rc[3 * H + j];
          const float ig = act[0].value(s.clamp(ai));
          const float fg = s.input_forget ? 1.f - ig : act[0].value(s.clamp(af));
          const float cc = act[1].value(s.clamp(ac));
          const float cn = fg * cp + ig * cc;
          const float ao = xw[H + j] + rc[H + j] + (peep ? peep[H + j] * cn : 0.f);
          const float og = act[0].value(s.clamp(ao));
          const float hn = og * act[2].value(cn);
          pr[j] = ai, pr[H + j] = ao, pr[2 * H + j] = af, pr[3 * H + j] = ac;
          gt[j] = ig, gt[H + j] = og, gt[2 * H + j] = fg, gt[3 * H + j] = cc;
          cnew[b * H + j] = cn;
          c[b * H + j] = cn;
          h[b * H + j] = hn;
          if (y) y[(t * B + b) * H + j] = hn;
        }
      }
    }
  }
}

Cell cell_of(const OpContext& ctx) {
  const std::string& op = ctx.node.op_type;
  return op == "LSTM" ? Cell::Lstm : (op == "GRU" ? Cell::Gru : Cell::Rnn);
}

void rnn_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Cell cell = cell_of(ctx);
  Operands ops;
  const RnnSpec s = parse(ctx, cell, in, ops);
  const int64_t T = s.seq, B = s.batch, H = s.hidden, D = s.dirs;
  const size_t n_out = std::min<size_t>(out.size(), cell == Cell::Lstm ? 3 : 2);
  if (out.size() > n_out) op_error(ctx, fmt::format("{} has at most {} outputs", ctx.node.op_type, n_out));
  const bool want_y = n_out > 0;
  std::vector<std::vector<float>> ys(static_cast<size_t>(D)), hs(static_cast<size_t>(D)), cs(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) {
    if (want_y) ys[static_cast<size_t>(d)].assign(static_cast<size_t>(T * B * H), 0.f);
    run_direction(s, ops, d, want_y ? ys[static_cast<size_t>(d)].data() : nullptr, hs[static_cast<size_t>(d)],
                  cs[static_cast<size_t>(d)], nullptr);
  }
  if (n_out > 0) {
    Tensor y(s.layout == 0 ? Shape{T, D, B, H} : Shape{B, T, D, H});
    float* p = y.f32();
    for (int64_t d = 0; d < D; ++d)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < B; ++b) {
          const float* src = ys[static_cast<size_t>(d)].data() + (t * B + b) * H;
          float* dst = p + (s.layout == 0 ? ((t * D + d) * B + b) * H : ((b * T + t) * D + d) * H);
          std::copy(src, src + H, dst);
        }
    out[0] = std::move(y);
  }
  auto state_out = [&](const std::vector<std::vector<float>>& st) {
    Tensor o(s.layout == 0 ? Shape{D, B, H} : Shape{B, D, H});
    float* p = o.f32();
    for (int64_t d = 0; d < D; ++d)
      for (int64_t b = 0; b < B; ++b) {
        const float* src = st[static_cast<size_t>(d)].data() + b * H;
        std::copy(src, src + H, p + (s.layout == 0 ? (d * B + b) * H : (b * D + d) * H));
      }
    return o;
  };
  if (n_out > 1) out[1] = state_out(hs);
  if (n_out > 2) out[2] = state_out(cs);
}

/// Backward of direction d. dy [T, B, H] (or empty), dh / dc [B, H] on entry the gradients of
/// the final state, on exit those of the initial state. Accumulates dx [T, B, I] and the
/// direction's parameter gradients (dw [G H, I], dr [G H, H], db [2 G H], dp [3 H]).
void backprop_direction(const RnnSpec& s, const Operands& ops, int64_t d, const std::vector<float>& dy,
                        std::vector<float>& dh, std::vector<float>& dc, float* dx, float* dw, float* dr, float* db,
                        float* dp) {
  const int64_t T = s.seq, B = s.batch, H = s.hidden, I = s.input, GH = s.gh();
  const float* w = ops.w + d * GH * I;
  const float* r = ops.r + d * GH * H;
  const float* peep = ops.peep ? ops.peep + d * 3 * H : nullptr;
  const auto& act = s.acts[static_cast<size_t>(d)];
  const bool gru_lbr = s.cell == Cell::Gru && s.linear_before_reset;
  Trace tr;
  std::vector<float> h_last, c_last;
  run_direction(s, ops, d, nullptr, h_last, c_last, &tr);

  std::vector<float> dxproj(static_cast<size_t>(T * B * GH), 0.f);
  std::vector<float> dpre(static_cast<size_t>(B * GH)), dhp(static_cast<size_t>(B * H)),
      dcp(static_cast<size_t>(B * H)), dhr(static_cast<size_t>(B * H)), drh(static_cast<size_t>(B * H));
  std::vector<float> drb_h(static_cast<size_t>(H), 0.f);  // GRU lbr 1: gradient of Rbh
  for (int64_t step = T - 1; step >= 0; --step) {
    const float* hp = tr.hprev.data() + step * B * H;
    const float* pre = tr.pre.data() + step * B * GH;
    const float* gate = tr.gate.data() + step * B * GH;
    std::fill(dpre.begin(), dpre.end(), 0.f);
    std::fill(dhp.begin(), dhp.end(), 0.f);
    std::fill(dcp.begin(), dcp.end(), 0.f);
    std::fill(dhr.begin(), dhr.end(), 0.f);
    // dh of active rows: the carried gradient plus Y's at this row's time.
    for (int64_t b = 0; b < B; ++b) {
      const int64_t t = time_of(s, d, step, b);
      if (t < 0 || dy.empty()) continue;
      for (int64_t j = 0; j < H; ++j) dh[b * H + j] += dy[(t * B + b) * H + j];
    }
    if (s.cell == Cell::Rnn) {
      for (int64_t b = 0; b < B; ++b) {
        if (time_of(s, d, step, b) < 0) continue;
        for (int64_t j = 0; j < H; ++j) {
          const float a = pre[b * GH + j];
          dpre[b * GH + j] = dh[b * H + j] * act[0].slope(s.clamp(a), gate[b * GH + j]) * s.clip_pass(a);
        }
      }
      sgemm(false, false, B, H, GH, 1.f, dpre.data(), GH, r, H, 0.f, dhp.data(), H);
      sgemm(true, false, GH, H, B, 1.f, dpre.data(), GH, hp, H, 1.f, dr, H);
    } else if (s.cell == Cell::Gru) {
      const float* aux = tr.aux.data() + step * B * H;
      // Candidate and update gate: H = (1 - z) h~ + z Hp.
      for (int64_t b = 0; b < B; ++b) {
        if (time_of(s, d, step, b) < 0) continue;
        for (int64_t j = 0; j < H; ++j) {
          const float g = dh[b * H + j];
          const float z = gate[b * GH + j], hh = gate[b * GH + 2 * H + j];
          const float az = pre[b * GH + j], ah = pre[b * GH + 2 * H + j];
          dpre[b * GH + j] = g * (hp[b * H + j] - hh) * act[0].slope(s.clamp(az), z) * s.clip_pass(az);
          dpre[b * GH + 2 * H + j] = g * (1.f - z) * act[1].slope(s.clamp(ah), hh) * s.clip_pass(ah);
          dhp[b * H + j] = g * z;
        }
      }
      if (!gru_lbr) {
        // ah = ... + (r . Hp) Rh^T: d(r . Hp) = dah Rh.
        sgemm(false, false, B, H, H, 1.f, dpre.data() + 2 * H, GH, r + 2 * H * H, H, 0.f, drh.data(), H);
        sgemm(true, false, H, H, B, 1.f, dpre.data() + 2 * H, GH, aux, H, 1.f, dr + 2 * H * H, H);
      }
      for (int64_t b = 0; b < B; ++b) {
        if (time_of(s, d, step, b) < 0) continue;
        for (int64_t j = 0; j < H; ++j) {
          const float dah = dpre[b * GH + 2 * H + j];
          const float rg = gate[b * GH + H + j], ar = pre[b * GH + H + j];
          float drg;
          if (!gru_lbr) {
            drg = drh[b * H + j] * hp[b * H + j];
            dhp[b * H + j] += drh[b * H + j] * rg;
          } else {
            // ah = ... + r . (Hp Rh^T + Rbh).
            drg = dah * aux[b * H + j];
            dhr[b * H + j] = dah * rg;
          }
          dpre[b * GH + H + j] = drg * act[0].slope(s.clamp(ar), rg) * s.clip_pass(ar);
        }
      }
      sgemm(false, false, B, H, 2 * H, 1.f, dpre.data(), GH, r, H, 1.f, dhp.data(), H);
      sgemm(true, false, 2 * H, H, B, 1.f, dpre.data(), GH, hp, H, 1.f, dr, H);
      if (gru_lbr) {
        sgemm(false, false, B, H, H, 1.f, dhr.data(), H, r + 2 * H * H, H, 1.f, dhp.data(), H);
        sgemm(true, false, H, H, B, 1.f, dhr.data(), H, hp, H, 1.f, dr + 2 * H * H, H);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t j = 0; j < H; ++j) drb_h[static_cast<size_t>(j)] += dhr[b * H + j];
      }
    } else {
      const float* cp = tr.cprev.data() + step * B * H;
      const float* cn = tr.cnew.data() + step * B * H;
      for (int64_t b = 0; b < B; ++b) {
        if (time_of(s, d, step, b) < 0) continue;
        const float* pr = pre + b * GH;
        const float* gt = gate + b * GH;
        float* da = dpre.data() + b * GH;
        for (int64_t j = 0; j < H; ++j) {
          const float ig = gt[j], og = gt[H + j], fg = gt[2 * H + j], cc = gt[3 * H + j];
          const float c_new = cn[b * H + j], c_prev = cp[b * H + j];
          const float hc = act[2].value(c_new);
          const float g = dh[b * H + j];
          const float dao = g * hc * act[0].slope(s.clamp(pr[H + j]), og) * s.clip_pass(pr[H + j]);
          float dcell = dc[b * H + j] + g * og * act[2].slope(c_new, hc) + (peep ? dao * peep[H + j] : 0.f);
          float di = dcell * cc;
          const float dfg = dcell * c_prev;
          float daf = 0.f;
          if (s.input_forget) di -= dfg;
          else daf = dfg * act[0].slope(s.clamp(pr[2 * H + j]), fg) * s.clip_pass(pr[2 * H + j]);
          const float dai = di * act[0].slope(s.clamp(pr[j]), ig) * s.clip_pass(pr[j]);
          const float dac = dcell * ig * act[1].slope(s.clamp(pr[3 * H + j]), cc) * s.clip_pass(pr[3 * H + j]);
          da[j] = dai, da[H + j] = dao, da[2 * H + j] = daf, da[3 * H + j] = dac;
          dcp[b * H + j] = dcell * fg + (peep ? dai * peep[j] + daf * peep[2 * H + j] : 0.f);
          if (dp) {
            dp[j] += dai * c_prev;
            dp[H + j] += dao * c_new;
            dp[2 * H + j] += daf * c_prev;
          }
        }
      }
      sgemm(false, false, B, H, GH, 1.f, dpre.data(), GH, r, H, 0.f, dhp.data(), H);
      sgemm(true, false, GH, H, B, 1.f, dpre.data(), GH, hp, H, 1.f, dr, H);
    }
    // Active rows take the gradient of the state entering this step; finished rows carry theirs.
    for (int64_t b = 0; b < B; ++b) {
      const int64_t t = time_of(s, d, step, b);
      if (t < 0) continue;
      std::copy(dhp.begin() + b * H, dhp.begin() + (b + 1) * H, dh.begin() + b * H);
      if (s.cell == Cell::Lstm) std::copy(dcp.begin() + b * H, dcp.begin() + (b + 1) * H, dc.begin() + b * H);
      std::copy(dpre.begin() + b * GH, dpre.begin() + (b + 1) * GH, dxproj.begin() + (t * B + b) * GH);
    }
  }
  // Input projection: xproj = X W^T + Wb + Rb.
  sgemm(false, false, T * B, I, GH, 1.f, dxproj.data(), GH, w, I, 1.f, dx, I);
  sgemm(true, false, GH, I, T * B, 1.f, dxproj.data(), GH, ops.x.data(), I, 1.f, dw, I);
  for (int64_t row = 0; row < T * B; ++row)
    for (int64_t j = 0; j < GH; ++j) {
      const float g = dxproj[static_cast<size_t>(row * GH + j)];
      db[j] += g;
      if (!(gru_lbr && j >= 2 * H)) db[GH + j] += g;
    }
  if (gru_lbr)
    for (int64_t j = 0; j < H; ++j) db[GH + 2 * H + j] += drb_h[static_cast<size_t>(j)];
}

void rnn_bwd(const OpContext& ctx, const Inputs& in, const Inputs&, const Inputs& gout, const std::vector<bool>& need,
             std::vector<Tensor>& gin) {
  const Cell cell = cell_of(ctx);
  Operands ops;
  const RnnSpec s = parse(ctx, cell, in, ops);
  const int64_t T = s.seq, B = s.batch, H = s.hidden, I = s.input, D = s.dirs, GH = s.gh();
  auto grad_out = [&](size_t k) -> const Tensor* { return k < gout.size() ? gout[k] : nullptr; };
  const Tensor* gy = grad_out(0);
  const Tensor* gh = grad_out(1);
  const Tensor* gc = cell == Cell::Lstm ? grad_out(2) : nullptr;
  const Shape y_shape = s.layout == 0 ? Shape{T, D, B, H} : Shape{B, T, D, H};
  const Shape st_shape = s.layout == 0 ? Shape{D, B, H} : Shape{B, D, H};
  if (gy && gy->shape() != y_shape) op_error(ctx, "gradient of Y has the wrong shape");
  if (gh && gh->shape() != st_shape) op_error(ctx, "gradient of Y_h has the wrong shape");
  if (gc && gc->shape() != st_shape) op_error(ctx, "gradient of Y_c has the wrong shape");
  auto state_index = [&](int64_t d, int64_t b) { return s.layout == 0 ? (d * B + b) * H : (b * D + d) * H; };

  std::vector<float> dx(static_cast<size_t>(T * B * I), 0.f), dw(static_cast<size_t>(D * GH * I), 0.f),
      dr(static_cast<size_t>(D * GH * H), 0.f), db(static_cast<size_t>(D * 2 * GH), 0.f),
      dp(static_cast<size_t>(D * 3 * H), 0.f), dh0(static_cast<size_t>(D * B * H), 0.f),
      dc0(static_cast<size_t>(D * B * H), 0.f);
  for (int64_t d = 0; d < D; ++d) {
    std::vector<float> dy;
    if (gy) {
      dy.assign(static_cast<size_t>(T * B * H), 0.f);
      const float* p = gy->f32();
      for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < B; ++b) {
          const float* src = p + (s.layout == 0 ? ((t * D + d) * B + b) * H : ((b * T + t) * D + d) * H);
          std::copy(src, src + H, dy.begin() + (t * B + b) * H);
        }
    }
    std::vector<float> dh(static_cast<size_t>(B * H), 0.f), dc(static_cast<size_t>(B * H), 0.f);
    for (int64_t b = 0; b < B; ++b) {
      if (gh) std::copy(gh->f32() + state_index(d, b), gh->f32() + state_index(d, b) + H, dh.begin() + b * H);
      if (gc) std::copy(gc->f32() + state_index(d, b), gc->f32() + state_index(d, b) + H, dc.begin() + b * H);
    }
    backprop_direction(s, ops, d, dy, dh, dc, dx.data(), dw.data() + d * GH * I, dr.data() + d * GH * H,
                       db.data() + d * 2 * GH, ops.peep ? dp.data() + d * 3 * H : nullptr);
    std::copy(dh.begin(), dh.end(), dh0.begin() + d * B * H);
    std::copy(dc.begin(), dc.end(), dc0.begin() + d * B * H);
  }
  auto need_k = [&](size_t k) { return k < need.size() && need[k] && k < in.size() && in[k]; };
  auto from = [](const Shape& shape, const std::vector<float>& v) {
    Tensor t(shape);
    std::copy(v.begin(), v.end(), t.f32());
    return t;
  };
  // Layout-0 [T|D, B, *] back to the node's layout.
  auto to_layout = [&](const std::vector<float>& v, int64_t outer, int64_t inner, const Shape& shape) {
    Tensor t(shape);
    float* p = t.f32();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t b = 0; b < B; ++b) {
        const float* src = v.data() + (o * B + b) * inner;
        std::copy(src, src + inner, p + (s.layout == 0 ? (o * B + b) * inner : (b * outer + o) * inner));
      }
    return t;
  };
  if (need_k(0)) gin[0] = to_layout(dx, T, I, in[0]->shape());
  if (need_k(1)) gin[1] = from(in[1]->shape(), dw);
  if (need_k(2)) gin[2] = from(in[2]->shape(), dr);
  if (need_k(3)) gin[3] = from(in[3]->shape(), db);
  if (need_k(4)) gin[4] = Tensor(in[4]->shape());
  if (need_k(5)) gin[5] = to_layout(dh0, D, H, in[5]->shape());
  if (cell == Cell::Lstm) {
    if (need_k(6)) gin[6] = to_layout(dc0, D, H, in[6]->shape());
    if (need_k(7)) gin[7] = from(in[7]->shape(), dp);
  }
}

}  // namespace

void register_rnn_ops() {
  register_op("RNN", OpDef{rnn_fwd, rnn_bwd});
  register_op("GRU", OpDef{rnn_fwd, rnn_bwd});
  register_op("LSTM", OpDef{rnn_fwd, rnn_bwd});
}

}  // namespace mlaudit::engine::detail
