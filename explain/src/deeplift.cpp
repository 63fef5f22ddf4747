// DeepLIFT with the rescale rule (Shrikumar et al. 2017, "Learning Important Features Through
// Propagating Activation Differences", sec. 3.3) in the gradient formulation of Ancona et al.
// 2018, exactly as Captum's DeepLift (multiply_by_inputs=True, eps=1e-10):
//
//  * the input batch and its baselines run forward as one batch [x; b] of 2c rows;
//  * the backward pass starts from the target output of every row of both halves (Captum's
//    forward_fn concatenates model_out[:,0] and model_out[:,1] before selecting the targets);
//  * elementwise nonlinearities (Relu, Sigmoid, Tanh, Elu, LeakyRelu, Softplus) replace their
//    gradient by the multiplier m = g * (y - y_b) / (x - x_b), the same for both halves, falling
//    back to the ordinary gradient where |x - x_b| < eps (captum deep_lift.nonlinear);
//  * MaxPool uses Captum's rule (deep_lift.maxpool): with M = max(y, y_b),
//    u = unpool_x(g_x * (M - y_b)) + unpool_b(g_b * (y - M)) routed to each half's argmax, and
//    m = u / (x - x_b) for both halves (ordinary gradient where |x - x_b| < eps);
//  * every other op keeps its own vector-Jacobian product (the engine's, at each row's point);
//  * attributions = (x - b) * (multiplier-gradient of the x half).
//
// The engine's op table is private, so the backward walks engine::Graph and evaluates each
// node's VJP through a one-node Session (the public Session::gradient API).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "detail.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"
#include "mlaudit/explain/attribution.h"

namespace mlaudit::explain {

using detail::row_size;

namespace {

bool is_rescale_op(const std::string& op) {
  // Captum's SUPPORTED_NON_LINEAR elementwise entries (nn.ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus).
  return op == "Relu" || op == "Elu" || op == "LeakyRelu" || op == "Sigmoid" || op == "Tanh" || op == "Softplus";
}

// Pads (begin) of one spatial axis of a MaxPool node: explicit pads or ONNX auto_pad.
int64_t pool_pad_begin(const engine::Node& node, int axis, int64_t in, int64_t out, int64_t k, int64_t s, int64_t d) {
  const std::string ap = node.get_string("auto_pad", "NOTSET");
  if (ap == "NOTSET" || ap.empty()) {
    auto pads = node.get_ints("pads", {0, 0, 0, 0});
    return pads.size() == 4 ? pads[axis] : 0;
  }
  if (ap == "VALID") return 0;
  // SAME_UPPER / SAME_LOWER: total = max(0, (out - 1) s + (k - 1) d + 1 - in), extra on the end (upper) or begin.
  const int64_t total = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
  return ap == "SAME_LOWER" ? total - total / 2 : total / 2;
}

// Geometry of a 2-D MaxPool node for an input [N,C,H,W] and its output [N,C,OH,OW].
struct PoolGeom {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
};

PoolGeom pool_geom(const engine::Node& node, const Tensor& in, const Tensor& out) {
  if (in.rank() != 4 || out.rank() != 4)
    throw UnsupportedError("explain", fmt::format("deeplift: {}: only 2-D MaxPool is supported", node.describe()));
  if (node.outputs.size() > 1 && !node.outputs[1].empty())
    throw UnsupportedError("explain",
                                   fmt::format("deeplift: {}: the Indices output of MaxPool is not supported", node.describe()));
  PoolGeom g;
  g.planes = in.shape()[0] * in.shape()[1];
  g.h = in.shape()[2];
  g.w = in.shape()[3];
  g.oh = out.shape()[2];
  g.ow = out.shape()[3];
  auto ks = node.get_ints("kernel_shape");
  auto st = node.get_ints("strides", {1, 1});
  auto dl = node.get_ints("dilations", {1, 1});
  if (ks.size() != 2 || st.size() != 2 || dl.size() != 2)
    throw InputError("explain", fmt::format("deeplift: {}: kernel_shape/strides/dilations must have 2 entries", node.describe()));
  g.kh = ks[0], g.kw = ks[1], g.sh = st[0], g.sw = st[1], g.dh = dl[0], g.dw = dl[1];
  g.pt = pool_pad_begin(node, 0, g.h, g.oh, g.kh, g.sh, g.dh);
  g.pl = pool_pad_begin(node, 1, g.w, g.ow, g.kw, g.sw, g.dw);
  return g;
}

// Flat argmax (within its plane) of every output window; the first maximum in scan order, as
// torch.nn.functional.max_pool2d(return_indices=True) picks it.
std::vector<int64_t> pool_argmax(const PoolGeom& g, const float* x) {
  std::vector<int64_t> idx(g.planes * g.oh * g.ow, -1);
#pragma omp parallel for if (g.planes * g.oh * g.ow > 16384) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* xp = x + p * g.h * g.w;
    for (int64_t oi = 0; oi < g.oh; ++oi)
      for (int64_t oj = 0; oj < g.ow; ++oj) {
        float best = -INFINITY;
        int64_t at = -1;
        for (int64_t a = 0; a < g.kh; ++a) {
          const int64_t i = oi * g.sh - g.pt + a * g.dh;
          if (i < 0 || i >= g.h) continue;
          for (int64_t b = 0; b < g.kw; ++b) {
            const int64_t j = oj * g.sw - g.pl + b * g.dw;
            if (j < 0 || j >= g.w) continue;
            const float v = xp[i * g.w + j];
            if (at < 0 || v > best || std::isnan(v)) {
              best = v;
              at = i * g.w + j;
              if (std::isnan(v)) break;
            }
          }
        }
        idx[(p * g.oh + oi) * g.ow + oj] = at;
      }
  }
  return idx;
}

// One node evaluated alone: a Session over a graph holding just this node and its initializers.
struct NodeRunner {
  const engine::Node* node = nullptr;
  std::vector<std::string> runtime_inputs;  // distinct non-initializer input names, in order
  std::unique_ptr<engine::Session> session;
};

}  // namespace

struct DeepLift::Impl {
  std::mutex mutex;  // guards the lazy creation of node sessions
  engine::Graph graph;
  std::string input_name, output_name;
  std::vector<NodeRunner> nodes;
};

DeepLift::DeepLift(const engine::Graph& graph) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.graph = graph;
  const engine::Graph& g = im.graph;
  if (g.inputs.size() != 1)
    throw InputError("explain", fmt::format("deeplift: {}: the model has {} inputs; deeplift needs a single-input model",
                                            g.source, g.inputs.size()));
  if (g.outputs.empty()) throw InputError("explain", fmt::format("deeplift: {}: the model has no output", g.source));
  im.input_name = g.inputs[0].name;
  im.output_name = g.outputs[0].name;
  for (const auto& node : g.nodes) {
    if (node.op_type == "Softmax" || node.op_type == "LogSoftmax")
      throw UnsupportedError(
          "explain", fmt::format("deeplift: {}: attributions are of the raw outputs; give a model without the {} "
                                 "(Captum's softmax rule normalises over the whole batch)",
                                 node.describe(), node.op_type));
    NodeRunner r;
    r.node = &node;
    std::set<std::string> seen;
    for (const auto& name : node.inputs) {
      if (name.empty() || seen.count(name) || g.initializer(name)) continue;
      seen.insert(name);
      r.runtime_inputs.push_back(name);
    }
    // The node's Session is built at its first use (it needs the dtypes of the values).
    im.nodes.push_back(std::move(r));
  }
}

DeepLift::~DeepLift() = default;

namespace {

// Build (once) the node's Session with input dtypes taken from the values.
const engine::Session& node_session(std::mutex& mutex, const engine::Graph& g, NodeRunner& r,
                                    const std::vector<Tensor>& ins) {
  std::lock_guard<std::mutex> lock(mutex);
  if (r.session) return *r.session;
  engine::Graph one;
  one.source = fmt::format("{} [{}]", g.source, r.node->describe());
  one.opset = g.opset;
  one.producer = g.producer;
  for (size_t k = 0; k < r.runtime_inputs.size(); ++k) {
    engine::ValueInfo vi;
    vi.name = r.runtime_inputs[k];
    vi.dtype = ins[k].dtype();
    one.inputs.push_back(vi);
  }
  for (const auto& name : r.node->inputs)
    if (!name.empty())
      if (const Tensor* init = g.initializer(name)) one.initializers[name] = *init;
  for (const auto& name : r.node->outputs) {
    engine::ValueInfo vi;
    vi.name = name;
    one.outputs.push_back(vi);
  }
  one.nodes.push_back(*r.node);
  engine::SessionOptions so;  // threads = 0: keep the process-wide setting
  r.session = std::make_unique<engine::Session>(std::move(one), so);
  return *r.session;
}

}  // namespace

DeepLiftResult DeepLift::attribute(const Tensor& x, const Tensor& baseline, const std::vector<int64_t>& targets,
                                   const DeepLiftOptions& opts) const {
  detail::check_batch(x, "deeplift");
  const int64_t n = x.shape()[0], d = row_size(x);
  if (static_cast<int64_t>(targets.size()) != n)
    throw InputError("explain", fmt::format("deeplift: {} targets for {} rows", targets.size(), n));
  if (baseline.shape() != x.shape())
    throw InputError("explain", fmt::format("deeplift: baseline shape {} differs from the input's {}",
                                            engine::shape_str(baseline.shape()), engine::shape_str(x.shape())));
  if (baseline.dtype() != engine::DType::Float32) throw InputError("explain", "deeplift: the baseline must be float32");
  Impl& im = *impl_;
  const engine::Graph& g = im.graph;
  const float eps = static_cast<float>(opts.eps);
  const engine::Shape rs = detail::row_shape(x);

  DeepLiftResult res;
  res.attributions = Tensor(x.shape());
  res.output_x.resize(n);
  res.output_baseline.resize(n);
  res.attribution_sum.assign(n, 0.0);
  res.gap.resize(n);
  res.relative_gap.resize(n);
  const int64_t chunk = std::max<int64_t>(1, opts.batch_rows);

  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t r1 = std::min(n, r0 + chunk), c = r1 - r0;
    // ---- forward on [x; b] (2c rows), keeping every value
    Tensor batch = Tensor::uninitialized(engine::DType::Float32, detail::batch_shape(2 * c, rs));
    std::memcpy(batch.f32(), x.f32() + r0 * d, sizeof(float) * c * d);
    std::memcpy(batch.f32() + c * d, baseline.f32() + r0 * d, sizeof(float) * c * d);
    std::map<std::string, Tensor> values;
    std::set<std::string> dep;  // values that depend on the input (the backward follows only these)
    values[im.input_name] = batch;
    dep.insert(im.input_name);
    for (auto& r : im.nodes) {
      std::vector<Tensor> ins;
      bool depends = false;
      for (const auto& name : r.runtime_inputs) {
        auto it = values.find(name);
        if (it == values.end())
          throw InputError("explain", fmt::format("deeplift: {}: input '{}' is not produced by the graph", r.node->describe(), name));
        ins.push_back(it->second);
        depends = depends || dep.count(name);
      }
      auto outs = node_session(im.mutex, g, r, ins).run(ins);
      for (size_t k = 0; k < r.node->outputs.size() && k < outs.size(); ++k) {
        if (r.node->outputs[k].empty()) continue;
        values[r.node->outputs[k]] = outs[k];
        if (depends) dep.insert(r.node->outputs[k]);
      }
    }
    const Tensor out = values.at(im.output_name);
    if (out.rank() != 2 || out.shape()[0] != 2 * c || out.dtype() != engine::DType::Float32)
      throw InputError("explain", fmt::format("deeplift: model output must be float [N,C], got {}", engine::shape_str(out.shape())));
    const int64_t classes = out.shape()[1];
    // ---- seed: the target output of every row of both halves
    std::map<std::string, Tensor> grads;
    {
      Tensor seed(out.shape());
      for (int64_t i = 0; i < c; ++i) {
        const int64_t t = targets[r0 + i];
        if (t < 0 || t >= classes)
          throw InputError("explain", fmt::format("deeplift: target {} out of range for {} outputs", t, classes));
        seed.f32()[i * classes + t] = 1.f;
        seed.f32()[(c + i) * classes + t] = 1.f;
        res.output_x[r0 + i] = out.f32()[i * classes + t];
        res.output_baseline[r0 + i] = out.f32()[(c + i) * classes + t];
      }
      grads[im.output_name] = seed;
    }
    // grads: the effective gradient G(v) that flows on; raw: R(v), the sum of the consumers'
    // ordinary VJPs (what Captum's hook on a nonlinearity's output records, before the hook of a
    // following nonlinearity replaces it). They differ only at the input of a rescaled node.
    std::map<std::string, Tensor> raw;
    raw[im.output_name] = grads[im.output_name];
    auto accumulate = [&](std::map<std::string, Tensor>& into, const std::string& name, const Tensor& gr) {
      auto it = into.find(name);
      if (it == into.end()) {
        into.emplace(name, gr);
        return;
      }
      if (!it->second.unique_storage()) it->second = it->second.clone();
      float* a = it->second.f32();
      const float* b = gr.f32();
      for (int64_t k = 0; k < gr.numel(); ++k) a[k] += b[k];
    };
    // ---- backward in reverse topological order
    for (auto it = im.nodes.rbegin(); it != im.nodes.rend(); ++it) {
      NodeRunner& r = *it;
      const engine::Node& node = *r.node;
      bool any_dep_input = false;
      for (const auto& name : r.runtime_inputs) any_dep_input = any_dep_input || dep.count(name);
      if (!any_dep_input) continue;
      std::vector<Tensor> seeds(node.outputs.size());
      bool any_grad = false;
      for (size_t k = 0; k < node.outputs.size(); ++k) {
        auto git = grads.find(node.outputs[k]);
        if (git != grads.end()) {
          seeds[k] = git->second;
          any_grad = true;
        }
      }
      if (!any_grad) continue;
      std::vector<Tensor> ins;
      for (const auto& name : r.runtime_inputs) ins.push_back(values.at(name));
      const engine::Session& sess = node_session(im.mutex, g, r, ins);

      if (is_rescale_op(node.op_type) || node.op_type == "MaxPool") {
        const std::string& in_name = node.inputs.at(0);
        if (!dep.count(in_name) || seeds[0].empty()) continue;
        const Tensor& vin = values.at(in_name);
        const Tensor& vout = values.at(node.outputs.at(0));
        const Tensor& gout = seeds[0];
        // The multiplier's grad_output: G(o) (chain rule of multipliers) or R(o) (Captum).
        const Tensor& gmul = opts.captum_compat && raw.count(node.outputs[0]) ? raw.at(node.outputs[0]) : gout;
        const int64_t half = vin.numel() / 2;
        const float* xin = vin.f32();
        const float* go = gmul.f32();
        Tensor gin = Tensor::uninitialized(engine::DType::Float32, vin.shape());
        float* gi = gin.f32();
        Tensor orig;  // ordinary gradient at each row's own point (the fallback where |dx| < eps)
        if (node.op_type != "MaxPool") {
          std::vector<Tensor> vjp_seeds(node.outputs.size());
          vjp_seeds[0] = gout;
          orig = sess.gradient(ins, vjp_seeds).at(0);
          const float* og = orig.f32();
          const float* yo = vout.f32();
#pragma omp parallel for if (half > 65536) schedule(static)
          for (int64_t k = 0; k < half; ++k) {
            const float din = xin[k] - xin[half + k];
            const float dout = yo[k] - yo[half + k];
            if (std::fabs(din) < eps) {
              gi[k] = og[k];
              gi[half + k] = og[half + k];
            } else {
              // Captum: grad_output * delta_out / delta_in, evaluated left to right in float32.
              gi[k] = go[k] * dout / din;
              gi[half + k] = go[half + k] * dout / din;
            }
          }
        } else {
          const PoolGeom pg = pool_geom(node, vin, vout);
          const std::vector<int64_t> idx = pool_argmax(pg, xin);
          const int64_t ohalf = vout.numel() / 2, plane_in = pg.h * pg.w, plane_out = pg.oh * pg.ow;
          const int64_t half_planes = pg.planes / 2;
          const float* yo = vout.f32();
          const float* ge = gout.f32();
          orig = Tensor(vin.shape());  // ordinary max-pool VJP: G(o) routed to each window's argmax
          float* og = orig.f32();
          for (int64_t p = 0; p < pg.planes; ++p)
            for (int64_t o = 0; o < plane_out; ++o)
              if (idx[p * plane_out + o] >= 0) og[p * plane_in + idx[p * plane_out + o]] += ge[p * plane_out + o];
          // u: unpool of g_x (M - y_b) at the x argmax plus g_b (y - M) at the baseline argmax, M = max(y, y_b).
          std::vector<float> u(half, 0.f);
          for (int64_t p = 0; p < half_planes; ++p)
            for (int64_t o = 0; o < plane_out; ++o) {
              const int64_t ox = p * plane_out + o, ob = ohalf + ox;
              const float m = std::max(yo[ox], yo[ob]);
              const int64_t ix = idx[ox], ib = idx[ob];
              if (ix >= 0) u[p * plane_in + ix] += go[ox] * (m - yo[ob]);
              if (ib >= 0) u[p * plane_in + ib] += go[ob] * (yo[ox] - m);
            }
          // Captum's fallback takes grad_input[0], the x row's gradient, for both halves.
          const int64_t fb_ref = opts.captum_compat ? 0 : half;
#pragma omp parallel for if (half > 65536) schedule(static)
          for (int64_t k = 0; k < half; ++k) {
            const float din = xin[k] - xin[half + k];
            if (std::fabs(din) < eps) {
              gi[k] = og[k];
              gi[half + k] = og[fb_ref + k];
            } else {
              gi[k] = gi[half + k] = u[k] / din;
            }
          }
        }
        accumulate(grads, in_name, gin);
        accumulate(raw, in_name, orig);
        continue;
      }
      // Every other op: its own VJP (the same for G and R).
      auto gin = sess.gradient(ins, seeds);
      for (size_t k = 0; k < r.runtime_inputs.size(); ++k)
        if (!gin[k].empty() && dep.count(r.runtime_inputs[k]) && gin[k].dtype() == engine::DType::Float32) {
          accumulate(grads, r.runtime_inputs[k], gin[k]);
          accumulate(raw, r.runtime_inputs[k], gin[k]);
        }
    }
    auto git = grads.find(im.input_name);
    const float* gx = git == grads.end() ? nullptr : git->second.f32();
    for (int64_t i = 0; i < c; ++i) {
      float* a = res.attributions.f32() + (r0 + i) * d;
      const float* xi = x.f32() + (r0 + i) * d;
      const float* bi = baseline.f32() + (r0 + i) * d;
      double sum = 0;
      for (int64_t j = 0; j < d; ++j) {
        a[j] = gx ? (xi[j] - bi[j]) * gx[i * d + j] : 0.f;
        sum += a[j];
      }
      res.attribution_sum[r0 + i] = sum;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const double diff = res.output_x[i] - res.output_baseline[i];
    res.gap[i] = res.attribution_sum[i] - diff;
    res.relative_gap[i] = std::fabs(res.gap[i]) / std::max(std::fabs(diff), 1e-12);
  }
  return res;
}

DeepLiftResult deeplift(const engine::Graph& graph, const Tensor& x, const Tensor& baseline,
                        const std::vector<int64_t>& targets, const DeepLiftOptions& opts) {
  return DeepLift(graph).attribute(x, baseline, targets, opts);
}

}  // namespace mlaudit::explain
