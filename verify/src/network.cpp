// ONNX graph -> chain of affine layers and ReLUs.
#include "mlaudit/verify/network.h"

#include <fmt/format.h>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "conv_products.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::verify {

void AffineLayer::compress(double max_density) {
  csr_row.clear();
  csr_col.clear();
  csr_val.clear();
  int64_t nnz = 0;
  for (double w : weight) nnz += w != 0;
  if (double(nnz) > max_density * double(weight.size()) || nnz > int64_t(std::numeric_limits<int>::max()) ||
      in > int64_t(std::numeric_limits<int>::max()))
    return;
  csr_row.reserve(size_t(out + 1));
  csr_col.reserve(size_t(nnz));
  csr_val.reserve(size_t(nnz));
  csr_row.push_back(0);
  for (int64_t i = 0; i < out; ++i) {
    const double* w = &weight[size_t(i * in)];
    for (int64_t j = 0; j < in; ++j)
      if (w[j] != 0) {
        csr_col.push_back(int(j));
        csr_val.push_back(w[j]);
      }
    csr_row.push_back(int(csr_col.size()));
  }
}

std::vector<double> AffineLayer::apply(const std::vector<double>& x) const {
  std::vector<double> y(bias);
  if (conv) {
    std::vector<double> wx(static_cast<size_t>(out));
    detail::layer_conv_forward(*this, x.data(), 1, wx.data());
    for (int64_t i = 0; i < out; ++i) y[size_t(i)] += wx[size_t(i)];
    return y;
  }
  if (!sparse()) {
    using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<Eigen::VectorXd>(y.data(), out) +=
        Eigen::Map<const RowMat>(weight.data(), out, in) * Eigen::Map<const Eigen::VectorXd>(x.data(), in);
    return y;
  }
  for (int64_t i = 0; i < out; ++i) {
    double s = 0;
    for (int p = csr_row[size_t(i)]; p < csr_row[size_t(i + 1)]; ++p) s += csr_val[size_t(p)] * x[size_t(csr_col[size_t(p)])];
    y[size_t(i)] += s;
  }
  return y;
}

std::vector<double> AffineLayer::apply_transpose(const std::vector<double>& g) const {
  std::vector<double> gi(size_t(in), 0.0);
  if (conv) {
    detail::layer_conv_transpose(*this, g.data(), 1, gi.data());
    return gi;
  }
  for (int64_t i = 0; i < out; ++i) {
    double gv = g[size_t(i)];
    if (gv == 0) continue;
    if (sparse()) {
      for (int p = csr_row[size_t(i)]; p < csr_row[size_t(i + 1)]; ++p) gi[size_t(csr_col[size_t(p)])] += gv * csr_val[size_t(p)];
    } else {
      const double* w = &weight[size_t(i * in)];
      for (int64_t j = 0; j < in; ++j) gi[size_t(j)] += gv * w[j];
    }
  }
  return gi;
}

std::vector<double> MaxPool::apply(const std::vector<double>& r) const {
  std::vector<double> p(windows.size());
  for (size_t i = 0; i < windows.size(); ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j : windows[i]) m = std::max(m, r[size_t(j)]);
    p[i] = m;
  }
  return p;
}

int64_t Network::relu_count() const {
  int64_t n = 0;
  for (size_t k = 0; k + 1 < layers.size(); ++k) n += layers[k].out;
  return n;
}

bool Network::has_pooling() const {
  for (const auto& p : pools)
    if (p) return true;
  return false;
}

std::vector<double> Network::activate(size_t k, const std::vector<double>& z) const {
  std::vector<double> r(z.size());
  for (size_t j = 0; j < z.size(); ++j) r[j] = z[j] > 0 ? z[j] : 0;
  if (const MaxPool* mp = pool(k)) return mp->apply(r);
  return r;
}

std::vector<double> Network::forward(const std::vector<double>& x) const {
  std::vector<double> a = x;
  for (size_t k = 0; k < layers.size(); ++k) {
    a = layers[k].apply(a);
    if (k + 1 < layers.size()) a = activate(k, a);
  }
  return a;
}

std::vector<std::vector<double>> Network::pre_activations(const std::vector<double>& x) const {
  std::vector<std::vector<double>> out;
  std::vector<double> a = x;
  for (size_t k = 0; k < layers.size(); ++k) {
    a = layers[k].apply(a);
    out.push_back(a);
    if (k + 1 < layers.size()) a = activate(k, a);
  }
  return out;
}

std::vector<float> Network::forward_f32(const std::vector<float>& x) const {
  std::vector<float> a = x;
  for (size_t k = 0; k < layers.size(); ++k) {
    const AffineLayer& L = layers[k];
    std::vector<float> y(static_cast<size_t>(L.out));
    for (int64_t i = 0; i < L.out; ++i) {
      float s = 0;
      // Zero weights are skipped in the sparse form: adding 0 * a is exact for finite a.
      if (L.sparse()) {
        for (int p = L.csr_row[size_t(i)]; p < L.csr_row[size_t(i + 1)]; ++p)
          s += float(L.csr_val[size_t(p)]) * a[size_t(L.csr_col[size_t(p)])];
      } else {
        for (int64_t j = 0; j < L.in; ++j) s += float(L.weight[size_t(i * L.in + j)]) * a[size_t(j)];
      }
      s += float(L.bias[size_t(i)]);
      y[size_t(i)] = (k + 1 < layers.size() && s < 0) ? 0.0f : s;
    }
    if (const MaxPool* mp = k + 1 < layers.size() ? pool(k) : nullptr) {
      std::vector<float> p(mp->windows.size());
      for (size_t i = 0; i < p.size(); ++i) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j : mp->windows[i]) m = std::max(m, y[size_t(j)]);
        p[i] = m;
      }
      y = std::move(p);
    }
    a = std::move(y);
  }
  return a;
}

namespace {

[[noreturn]] void unsupported(const engine::Node& n, const std::string& why = "") {
  throw UnsupportedError("verify", fmt::format("unsupported op '{}' at node '{}'{}", n.op_type, n.name,
                                               why.empty() ? "" : " (" + why + ")"));
}

struct Constant {
  std::vector<double> values;
  engine::Shape shape;
};

// The affine map from the current base (the last ReLU layer's outputs, or the model input) to
// a value of the graph: value = M base + c. While `selection` holds, M is rows [offset, offset + n)
// of the identity and is not materialised.
struct Pending {
  bool selection = true;
  int64_t offset = 0;
  int64_t base = 0;
  std::vector<double> M;  // [n, base] when !selection
  std::vector<double> c;  // [n]
  int64_t n = 0;
  std::optional<ConvGeometry> conv;  // the last convolution composed in, when the map may be just that
};

Pending selection_of(int64_t base, int64_t offset, int64_t n) {
  Pending p;
  p.base = base;
  p.offset = offset;
  p.n = n;
  p.c.assign(size_t(n), 0.0);
  return p;
}

bool full_identity(const Pending& p) { return p.selection && p.offset == 0 && p.n == p.base; }

void materialise(Pending& p) {
  if (!p.selection) return;
  p.M.assign(size_t(p.n * p.base), 0.0);
  for (int64_t i = 0; i < p.n; ++i) p.M[size_t(i * p.base + p.offset + i)] = 1.0;
  p.selection = false;
}

// value >= 0 for every input when the base is (ReLU outputs): non-negative weights and offsets.
bool nonnegative_map(const Pending& p) {
  for (double v : p.c)
    if (!(v >= 0)) return false;
  if (p.selection) return true;
  for (double v : p.M)
    if (!(v >= 0)) return false;
  return true;
}

// Apply a dense linear map L [rows, p.n] plus offset d to the pending map: M' = L M, c' = L c + d.
void compose_dense(Pending& p, const std::vector<double>& L, int64_t rows, const std::vector<double>& d) {
  std::vector<double> c2(d);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < p.n; ++j) c2[size_t(i)] += L[size_t(i * p.n + j)] * p.c[size_t(j)];
  if (full_identity(p)) {
    p.M = L;
  } else if (p.selection) {
    std::vector<double> M2(size_t(rows * p.base), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(&L[size_t(i * p.n)], p.n, &M2[size_t(i * p.base + p.offset)]);
    p.M = std::move(M2);
  } else {
    std::vector<double> M2(size_t(rows * p.base), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double l = L[size_t(i * p.n + j)];
        if (l == 0) continue;
        const double* src = &p.M[size_t(j * p.base)];
        double* dst = &M2[size_t(i * p.base)];
        for (int64_t k = 0; k < p.base; ++k) dst[k] += l * src[k];
      }
    p.M = std::move(M2);
  }
  p.selection = false;
  p.c = std::move(c2);
  p.n = rows;
  p.conv.reset();
}

// Elementwise live' = s .* live + d.
void compose_elementwise(Pending& p, const std::vector<double>& s, const std::vector<double>& d) {
  materialise(p);
  for (int64_t i = 0; i < p.n; ++i) {
    for (int64_t k = 0; k < p.base; ++k) p.M[size_t(i * p.base + k)] *= s[size_t(i)];
    p.c[size_t(i)] = s[size_t(i)] * p.c[size_t(i)] + d[size_t(i)];
  }
}

// live'[o] = live[src[o]], or the constant fill[o] where src[o] < 0 (Transpose, Slice, Pad).
void compose_gather(Pending& p, const std::vector<int64_t>& src, const std::vector<double>& fill) {
  const int64_t rows = int64_t(src.size());
  std::vector<double> M2(size_t(rows * p.base), 0.0), c2(size_t(rows), 0.0);
  for (int64_t o = 0; o < rows; ++o) {
    const int64_t i = src[size_t(o)];
    if (i < 0) {
      c2[size_t(o)] = fill[size_t(o)];
      continue;
    }
    c2[size_t(o)] = p.c[size_t(i)];
    if (p.selection) M2[size_t(o * p.base + p.offset + i)] = 1.0;
    else std::copy_n(&p.M[size_t(i * p.base)], p.base, &M2[size_t(o * p.base)]);
  }
  p.M = std::move(M2);
  p.c = std::move(c2);
  p.n = rows;
  p.selection = false;
  p.conv.reset();
}

// Row-major strides of a shape.
std::vector<int64_t> strides_of(const engine::Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int64_t i = int64_t(s.size()) - 2; i >= 0; --i) st[size_t(i)] = st[size_t(i + 1)] * s[size_t(i + 1)];
  return st;
}

// Broadcast a constant (numpy rules) to the live shape; throws when it would grow the live shape.
std::vector<double> broadcast_to(const Constant& k, const engine::Shape& live, const engine::Node& n) {
  if (k.shape.size() > live.size()) unsupported(n, "constant operand has more dims than the data");
  size_t off = live.size() - k.shape.size();
  for (size_t i = 0; i < k.shape.size(); ++i)
    if (k.shape[i] != 1 && k.shape[i] != live[off + i]) unsupported(n, "constant does not broadcast to the data shape");
  int64_t total = engine::shape_numel(live);
  std::vector<double> out(static_cast<size_t>(total));
  std::vector<int64_t> idx(live.size(), 0);
  for (int64_t f = 0; f < total; ++f) {
    int64_t ki = 0;
    for (size_t i = 0; i < k.shape.size(); ++i) {
      int64_t d = k.shape[i] == 1 ? 0 : idx[off + i];
      ki = ki * k.shape[i] + d;
    }
    out[size_t(f)] = k.values[size_t(ki)];
    for (int i = int(live.size()) - 1; i >= 0; --i) {
      if (++idx[size_t(i)] < live[size_t(i)]) break;
      idx[size_t(i)] = 0;
    }
  }
  return out;
}

}  // namespace

Network network_from_graph(const engine::Graph& g) {
  if (g.inputs.size() != 1)
    throw UnsupportedError("verify", fmt::format("{}: the verifier needs exactly one graph input, found {}", g.source,
                                                 g.inputs.size()));
  if (g.outputs.empty()) throw InputError("verify", g.source + ": graph has no output");
  Network net;
  engine::Shape shape = g.inputs[0].shape;
  if (shape.empty()) throw UnsupportedError("verify", g.source + ": scalar model input");
  for (auto& d : shape)
    if (d < 0) d = 1;
  shape[0] = 1;
  net.input_shape = shape;

  std::map<std::string, Constant> constants;
  for (const auto& [name, t] : g.initializers) constants[name] = Constant{t.to_doubles(), t.shape()};

  // Every value of the graph computed from the input is an affine map of the current base
  // (the model input, then the outputs of the last ReLU layer). A ReLU starts a new layer; values
  // read after it (skip connections) ride through that layer as extra rows (see carry below).
  struct Value {
    Pending p;
    engine::Shape shape;
  };
  std::map<std::string, Value> values;
  int64_t base = engine::shape_numel(shape);
  bool base_nonnegative = false;  // the base is ReLU (or pooled ReLU) outputs
  std::vector<int64_t> base_tag;  // per base entry on a ReLU base: its input_copy tag (empty: all 0)
  values[g.inputs[0].name] = Value{selection_of(base, 0, base), shape};
  // The last node reading each value (graph outputs: never dropped).
  constexpr size_t kForever = std::numeric_limits<size_t>::max();
  std::map<std::string, size_t> last_use;
  for (size_t t = 0; t < g.nodes.size(); ++t)
    for (const auto& in : g.nodes[t].inputs)
      if (!in.empty()) last_use[in] = t;
  for (const auto& o : g.outputs) last_use[o.name] = kForever;

  auto constant_of = [&](const std::string& name) -> const Constant* {
    auto it = constants.find(name);
    return it == constants.end() ? nullptr : &it->second;
  };
  std::vector<std::optional<ConvGeometry>> conv_of_layer;  // candidate structure, checked after compress()
  // Appends the layer `rows` (each a pending map of the base, in order) with a ReLU after it unless
  // it is the output; `nonneg` marks rows >= 0 by construction.
  auto add_layer = [&](const std::vector<const Pending*>& rows, const std::vector<char>& nonneg, const engine::Node* at) {
    int64_t out_n = 0;
    for (const Pending* r : rows) out_n += r->n;
    if (double(out_n) * double(base) > 4e8) {
      if (at) unsupported(*at, "layer too large for the dense verifier");
      throw UnsupportedError("verify", g.source + ": output layer too large for the dense verifier");
    }
    // The first rows (the value under the ReLU) may be a convolution; carried rows join its rest rows.
    conv_of_layer.push_back(!rows.empty() && !rows[0]->selection ? rows[0]->conv : std::nullopt);
    AffineLayer L;
    L.in = base;
    L.out = out_n;
    L.weight.assign(size_t(out_n * base), 0.0);
    int64_t at_row = 0;
    for (const Pending* r : rows) {
      if (r->selection) {
        for (int64_t i = 0; i < r->n; ++i) L.weight[size_t((at_row + i) * base + r->offset + i)] = 1.0;
      } else {
        std::copy(r->M.begin(), r->M.end(), L.weight.begin() + at_row * base);
      }
      L.bias.insert(L.bias.end(), r->c.begin(), r->c.end());
      at_row += r->n;
    }
    bool any = false;
    for (char c : nonneg) any |= c != 0;
    if (any) L.nonneg = nonneg;
    net.layers.push_back(std::move(L));
  };

  for (size_t t = 0; t < g.nodes.size(); ++t) {
    const engine::Node& n = g.nodes[t];
    const std::string& op = n.op_type;
    // The node's operands computed from the input (each once).
    std::vector<std::string> data_in;
    for (const auto& in : n.inputs)
      if (!in.empty() && values.count(in) && std::find(data_in.begin(), data_in.end(), in) == data_in.end())
        data_in.push_back(in);
    // Nodes that read no such value are constant folding we can do or ignore.
    if (data_in.empty()) {
      if (op == "Constant" && n.has("value")) {
        const auto& t = n.attributes.at("value").t;
        constants[n.outputs.at(0)] = Constant{t.to_doubles(), t.shape()};
        continue;
      }
      bool all_const = true;
      for (const auto& in : n.inputs)
        if (!in.empty() && !constant_of(in)) all_const = false;
      if (all_const) {
        // A constant subgraph (e.g. weight reshapes); fold the few ops exporters emit.
        if ((op == "Identity" || op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze") &&
            constant_of(n.inputs.at(0))) {
          Constant c = *constant_of(n.inputs[0]);
          if (op == "Reshape" && n.inputs.size() > 1) {
            std::vector<int64_t> dims;
            for (double v : constant_of(n.inputs[1])->values) dims.push_back(int64_t(v));
            c.shape.clear();
            int64_t known = 1, neg = -1;
            for (size_t i = 0; i < dims.size(); ++i) {
              int64_t d = dims[i] == 0 && i < constant_of(n.inputs[0])->shape.size() ? constant_of(n.inputs[0])->shape[i] : dims[i];
              if (d == -1) neg = int64_t(i); else known *= d;
              c.shape.push_back(d);
            }
            if (neg >= 0) c.shape[size_t(neg)] = int64_t(c.values.size()) / std::max<int64_t>(known, 1);
          } else if (op == "Transpose") {
            unsupported(n, "transpose of a constant");
          }
          constants[n.outputs.at(0)] = c;
          continue;
        }
        continue;  // e.g. Shape arithmetic; its outputs are unknown constants (checked on use)
      }
      continue;  // unreachable branch of the graph
    }
    const std::string& out = n.outputs.at(0);
    auto other_input = [&](size_t i) -> const Constant* {
      const std::string& name = n.inputs.at(i);
      const Constant* c = constant_of(name);
      if (!c) unsupported(n, "operand '" + name + "' is not a constant");
      return c;
    };
    // The operand's map: moved out when this node is its last reader, else copied.
    auto take = [&](const std::string& name) -> Value {
      auto it = values.find(name);
      if (last_use[name] != t) return it->second;
      Value v = std::move(it->second);
      values.erase(it);
      return v;
    };
    auto keep = [&](Value v) {
      if (last_use.count(out)) values[out] = std::move(v);
    };
    const bool two_data = (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && n.inputs.size() == 2 &&
                          values.count(n.inputs[0]) && values.count(n.inputs[1]);
    if (op == "Concat") {
      // Along an axis with only 1s before it (channels of a batch-1 tensor): the operands' rows stacked.
      const size_t rank = values.at(data_in[0]).shape.size();
      int64_t axis = n.get_int("axis", 0);
      if (axis < 0) axis += int64_t(rank);
      if (axis < 0 || axis >= int64_t(rank)) unsupported(n, "axis out of range");
      std::vector<Value> parts;
      for (const auto& in : n.inputs) {
        if (in.empty()) continue;
        if (values.count(in)) {
          parts.push_back(values.at(in));
        } else {
          const Constant* k = other_input(size_t(&in - n.inputs.data()));
          Pending cp;
          cp.selection = false;
          cp.base = base;
          cp.n = int64_t(k->values.size());
          cp.M.assign(size_t(cp.n * base), 0.0);
          cp.c = k->values;
          parts.push_back(Value{std::move(cp), k->shape});
        }
      }
      engine::Shape ns = parts[0].shape;
      for (const auto& v : parts) {
        if (v.shape.size() != rank) unsupported(n, "operands of different ranks");
        for (size_t i = 0; i < rank; ++i)
          if (int64_t(i) != axis && v.shape[i] != ns[i]) unsupported(n, "operand shapes differ off the axis");
      }
      for (int64_t i = 0; i < axis; ++i)
        if (ns[size_t(i)] != 1) unsupported(n, "only concatenation along the first axis longer than 1");
      ns[size_t(axis)] = 0;
      Pending r;
      r.selection = false;
      r.base = base;
      for (auto& v : parts) {
        ns[size_t(axis)] += v.shape[size_t(axis)];
        materialise(v.p);
        r.M.insert(r.M.end(), v.p.M.begin(), v.p.M.end());
        r.c.insert(r.c.end(), v.p.c.begin(), v.p.c.end());
        r.n += v.p.n;
      }
      for (const auto& in : data_in) take(in);
      keep(Value{std::move(r), ns});
      continue;
    }
    if (two_data) {
      // A sum or difference of two values computed from the input (a skip connection).
      if (op == "Mul" || op == "Div") unsupported(n, "a product of two data values is not affine");
      Value a = take(n.inputs[0]);
      Value b = n.inputs[1] == n.inputs[0] ? a : take(n.inputs[1]);
      if (a.shape != b.shape || a.p.n != b.p.n)
        unsupported(n, fmt::format("operands of shapes {} and {} (broadcasting between data values)",
                                   engine::shape_str(a.shape), engine::shape_str(b.shape)));
      materialise(a.p);
      materialise(b.p);
      const double sign = op == "Sub" ? -1.0 : 1.0;
      for (size_t i = 0; i < a.p.M.size(); ++i) a.p.M[i] += sign * b.p.M[i];
      for (size_t i = 0; i < a.p.c.size(); ++i) a.p.c[i] += sign * b.p.c[i];
      // A shortcut added to a convolution's rows keeps the convolution's structure (its other
      // columns go to the rest rows). Of two convolutions (a projection shortcut) the one with more
      // taps per output keeps it; the other's entries join the rest rows (when their columns overlap,
      // the check at load finds no convolution and the compressed rows serve the layer).
      auto taps_of = [](const std::optional<ConvGeometry>& c) {
        return c ? c->channels / std::max<int64_t>(c->groups, 1) * c->kernel_h * c->kernel_w : int64_t(-1);
      };
      if (taps_of(b.p.conv) > taps_of(a.p.conv)) a.p.conv = std::move(b.p.conv);
      keep(std::move(a));
      continue;
    }
    if (data_in.size() > 1) unsupported(n, "more than one operand computed from the input");
    const std::string live = data_in[0];
    Value cur = take(live);
    Pending& p = cur.p;
    engine::Shape& live_shape = cur.shape;

    if (op == "Relu" || op == "LeakyRelu" || op == "PRelu") {
      // LeakyRelu / PRelu with slope a: a x + (1 - a) relu(x), exactly, for any a; x rides through the
      // ReLU layer as a skip connection does (CROWN's relaxation of this sum is the leaky ReLU's own:
      // the chord through (l, a l) and (u, u), lower lines of slope in [a, 1]).
      std::vector<double> slope;
      if (op == "LeakyRelu") slope.assign(size_t(p.n), double(n.get_float("alpha", 0.01f)));
      if (op == "PRelu") slope = broadcast_to(*other_input(1), live_shape, n);
      bool linear = !slope.empty(), plain = true;
      for (double a : slope) {
        if (!std::isfinite(a)) unsupported(n, "a slope that is not finite");
        linear &= a == 1.0;
        plain &= a == 0.0;
      }
      if (plain) slope.clear();
      if (base_nonnegative && nonnegative_map(p)) {  // relu(v) = leaky(v) = v: v >= 0 already (relu(relu(x)), ...)
        keep(std::move(cur));
        continue;
      }
      if (linear) {  // a slope of 1 everywhere: the identity
        keep(std::move(cur));
        continue;
      }
      static const std::string kSelf = "\x01leaky input";  // not an ONNX value name
      if (!slope.empty()) {
        values[kSelf] = cur;
        last_use[kSelf] = t + 1;
      }
      // A new layer: this value's rows under the ReLU, then the values still read after this node
      // (skip connections) carried through it exactly. On a ReLU base a value that is >= 0 by
      // construction rides as its own rows (relu is the identity on them); any other carries the base
      // entries it reads (ReLU outputs, >= 0), re-expressed over the new base. On the model input the
      // entries x ride as relu(x) and relu(-x) (x = relu(x) - relu(-x)).
      std::vector<const Pending*> rows = {&p};
      std::vector<char> nonneg(size_t(p.n), 0);
      std::vector<std::pair<std::string, int64_t>> as_rows;  // value -> its first row
      std::vector<char> used(size_t(base), 0);
      std::vector<std::string> by_columns;
      int64_t next_row = p.n;
      for (auto& [name, w] : values) {
        if (last_use[name] <= t) continue;
        if (base_nonnegative && nonnegative_map(w.p)) {
          rows.push_back(&w.p);
          as_rows.push_back({name, next_row});
          next_row += w.p.n;
          nonneg.resize(size_t(next_row), 1);
        } else {
          by_columns.push_back(name);
          if (w.p.selection) {
            std::fill_n(used.begin() + w.p.offset, w.p.n, 1);
          } else {
            for (int64_t i = 0; i < w.p.n; ++i)
              for (int64_t j = 0; j < base; ++j)
                if (w.p.M[size_t(i * base + j)] != 0) used[size_t(j)] = 1;
          }
        }
      }
      // Columns carried: row e_j (and -e_j on the model input) for each base entry j read.
      std::vector<int64_t> position(size_t(base), -1);
      std::vector<int64_t> cols;
      for (int64_t j = 0; j < base; ++j)
        if (used[size_t(j)]) cols.push_back(j);
      const int64_t copies = base_nonnegative ? 1 : 2;
      Pending carry;
      carry.selection = false;
      carry.base = base;
      carry.n = int64_t(cols.size()) * copies;
      carry.M.assign(size_t(carry.n * base), 0.0);
      carry.c.assign(size_t(carry.n), 0.0);
      for (size_t q = 0; q < cols.size(); ++q) {
        position[size_t(cols[q])] = next_row + int64_t(q);
        carry.M[size_t(int64_t(q) * base + cols[q])] = 1.0;
        if (copies == 2) carry.M[size_t((int64_t(cols.size()) + int64_t(q)) * base + cols[q])] = -1.0;
      }
      if (carry.n > 0) rows.push_back(&carry);
      nonneg.resize(size_t(next_row + carry.n), base_nonnegative ? 1 : 0);
      const int64_t negative_offset = int64_t(cols.size());
      add_layer(rows, nonneg, &n);
      const int64_t new_base = net.layers.back().out;
      // Which rows carry a model input (as relu(x) / relu(-x), or a later copy of one).
      std::vector<int64_t> tags(size_t(new_base), 0);
      bool tagged = false;
      for (size_t q = 0; q < cols.size(); ++q) {
        const int64_t j = cols[q], at = next_row + int64_t(q);
        if (!base_nonnegative) {
          tags[size_t(at)] = j + 1;
          tags[size_t(at + negative_offset)] = -(j + 1);
        } else if (size_t(j) < base_tag.size()) {
          tags[size_t(at)] = base_tag[size_t(j)];
        }
        tagged |= tags[size_t(at)] != 0;
      }
      if (tagged) net.layers.back().input_copy = tags;
      base_tag = tagged ? std::move(tags) : std::vector<int64_t>{};
      // The carried values over the new base.
      for (const auto& [name, first] : as_rows) {
        Value& w = values.at(name);
        w.p = selection_of(new_base, first, w.p.n);
      }
      for (const auto& name : by_columns) {
        Value& w = values.at(name);
        Pending q;
        q.base = new_base;
        q.n = w.p.n;
        q.c = w.p.c;
        if (w.p.selection && copies == 1) {
          q.offset = position[size_t(w.p.offset)];
        } else {
          materialise(w.p);
          q.selection = false;
          q.M.assign(size_t(q.n * new_base), 0.0);
          for (int64_t i = 0; i < q.n; ++i)
            for (int64_t j = 0; j < base; ++j) {
              const double m = w.p.M[size_t(i * base + j)];
              if (m == 0) continue;
              q.M[size_t(i * new_base + position[size_t(j)])] += m;
              if (copies == 2) q.M[size_t(i * new_base + position[size_t(j)] + negative_offset)] -= m;
            }
        }
        w.p = std::move(q);
      }
      base = new_base;
      base_nonnegative = true;
      Value r{selection_of(base, 0, p.n), live_shape};
      if (!slope.empty()) {
        Value x = std::move(values.at(kSelf));
        values.erase(kSelf);
        last_use.erase(kSelf);
        materialise(r.p);
        materialise(x.p);
        for (int64_t i = 0; i < r.p.n; ++i) {
          const double a = slope[size_t(i)];
          double* mr = &r.p.M[size_t(i * base)];
          const double* mx = &x.p.M[size_t(i * base)];
          for (int64_t j = 0; j < base; ++j) mr[j] = (1 - a) * mr[j] + a * mx[j];
          r.p.c[size_t(i)] = a * x.p.c[size_t(i)];
        }
      }
      keep(std::move(r));
      continue;
    } else if (op == "MaxPool") {
      // Kept as its own step after the ReLU (relu then max over each window).
      // A MaxPool anywhere else is not supported (relu o maxpool = maxpool o relu,
      // but exporters put it after the ReLU, as the bundled CNN does).
      const size_t hidden = net.layers.size();
      for (const auto& [name, w] : values)
        if (last_use[name] > t) unsupported(n, "a MaxPool inside a skip connection");
      if (hidden == 0 || !full_identity(p) || !base_nonnegative || (hidden <= net.pools.size() && net.pools[hidden - 1]))
        unsupported(n, "MaxPool must directly follow a Relu");
      if (live_shape.size() != 4 || engine::shape_numel(live_shape) != p.n) unsupported(n, "only 2-D pooling on NCHW data");
      if (n.outputs.size() > 1 && !n.outputs[1].empty()) unsupported(n, "the Indices output");
      if (n.get_int("ceil_mode", 0) != 0) unsupported(n, "ceil_mode=1");
      std::string autopad = n.get_string("auto_pad", "NOTSET");
      if (autopad != "NOTSET" && autopad != "VALID") unsupported(n, "auto_pad=" + autopad);
      std::vector<int64_t> ks = n.get_ints("kernel_shape", {});
      if (ks.size() != 2) unsupported(n, "kernel_shape must be 2-D");
      std::vector<int64_t> st = n.get_ints("strides", {1, 1});
      std::vector<int64_t> dil = n.get_ints("dilations", {1, 1});
      std::vector<int64_t> pads = n.get_ints("pads", {0, 0, 0, 0});
      if (st.size() != 2 || dil.size() != 2 || pads.size() != 4) unsupported(n, "strides/dilations/pads must be 2-D");
      int64_t C = live_shape[1], H = live_shape[2], Wd = live_shape[3];
      int64_t OH = (H + pads[0] + pads[2] - dil[0] * (ks[0] - 1) - 1) / st[0] + 1;
      int64_t OW = (Wd + pads[1] + pads[3] - dil[1] * (ks[1] - 1) - 1) / st[1] + 1;
      if (OH <= 0 || OW <= 0) unsupported(n, "empty output");
      MaxPool mp;
      mp.in = p.n;
      mp.node = n.name;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            std::vector<int64_t> w;  // row-major window order (first index wins ties, as in PyTorch)
            for (int64_t ky = 0; ky < ks[0]; ++ky)
              for (int64_t kx = 0; kx < ks[1]; ++kx) {
                int64_t iy = oy * st[0] - pads[0] + ky * dil[0], ix = ox * st[1] - pads[1] + kx * dil[1];
                if (iy >= 0 && iy < H && ix >= 0 && ix < Wd) w.push_back((c * H + iy) * Wd + ix);
              }
            if (w.empty()) unsupported(n, "a window lies entirely in the padding");
            mp.windows.push_back(std::move(w));
          }
      net.pools.resize(hidden);
      net.pools[hidden - 1] = std::move(mp);
      base = C * OH * OW;
      base_tag.clear();
      p = selection_of(base, 0, base);
      live_shape = {1, C, OH, OW};
    } else if (op == "Identity" || op == "Dropout") {
    } else if (op == "Flatten") {
      int64_t axis = n.get_int("axis", 1);
      if (axis < 0) axis += int64_t(live_shape.size());
      int64_t a = 1, b = 1;
      for (int64_t i = 0; i < int64_t(live_shape.size()); ++i) (i < axis ? a : b) *= live_shape[size_t(i)];
      live_shape = {a, b};
    } else if (op == "Reshape") {
      const Constant* s = other_input(1);
      engine::Shape ns;
      int64_t known = 1, neg = -1;
      for (size_t i = 0; i < s->values.size(); ++i) {
        int64_t d = int64_t(s->values[i]);
        if (d == 0 && i < live_shape.size()) d = live_shape[i];
        if (d == -1) neg = int64_t(i); else known *= d;
        ns.push_back(d);
      }
      if (neg >= 0) ns[size_t(neg)] = p.n / std::max<int64_t>(known, 1);
      if (engine::shape_numel(ns) != p.n) unsupported(n, "reshape changes the element count (batch folding)");
      live_shape = ns;
    } else if (op == "Squeeze" || op == "Unsqueeze") {
      std::vector<int64_t> axes = n.get_ints("axes", {});
      if (axes.empty() && n.inputs.size() > 1) for (double v : other_input(1)->values) axes.push_back(int64_t(v));
      engine::Shape ns;
      if (op == "Squeeze") {
        for (size_t i = 0; i < live_shape.size(); ++i) {
          bool drop = false;
          for (auto a : axes) if ((a < 0 ? a + int64_t(live_shape.size()) : a) == int64_t(i)) drop = true;
          if (axes.empty() && live_shape[i] == 1 && i > 0) drop = true;
          if (!drop) ns.push_back(live_shape[i]);
        }
      } else {
        ns = live_shape;
        for (auto a : axes) {
          int64_t r = int64_t(ns.size()) + 1;
          if (a < 0) a += r;
          ns.insert(ns.begin() + a, 1);
        }
      }
      live_shape = ns;
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      bool live_first = n.inputs.at(0) == live;
      const Constant* k = other_input(live_first ? 1 : 0);
      std::vector<double> kv = broadcast_to(*k, live_shape, n);
      std::vector<double> s(size_t(p.n), 1.0), d(size_t(p.n), 0.0);
      for (int64_t i = 0; i < p.n; ++i) {
        double v = kv[size_t(i)];
        if (op == "Add") d[size_t(i)] = v;
        else if (op == "Sub") { if (live_first) d[size_t(i)] = -v; else { s[size_t(i)] = -1; d[size_t(i)] = v; } }
        else if (op == "Mul") s[size_t(i)] = v;
        else {
          if (!live_first) unsupported(n, "division by the data is not affine");
          if (v == 0) throw InputError("verify", fmt::format("division by zero at node '{}'", n.name));
          s[size_t(i)] = 1.0 / v;
        }
      }
      compose_elementwise(p, s, d);
    } else if (op == "MatMul" || op == "Gemm") {
      if (n.inputs.at(0) != live) unsupported(n, "the data must be the first operand");
      const Constant* W = other_input(1);
      bool transB = op == "Gemm" && n.get_int("transB", 0) != 0;
      if (op == "Gemm" && n.get_int("transA", 0) != 0) unsupported(n, "transA=1");
      double alpha = op == "Gemm" ? n.get_float("alpha", 1.0f) : 1.0;
      double beta = op == "Gemm" ? n.get_float("beta", 1.0f) : 1.0;
      if (W->shape.size() != 2) unsupported(n, "weight must be 2-D");
      int64_t K = transB ? W->shape[1] : W->shape[0];
      int64_t N = transB ? W->shape[0] : W->shape[1];
      if (live_shape.empty() || live_shape.back() != K)
        throw InputError("verify", fmt::format("node '{}': data shape {} does not match weight {}", n.name,
                                               engine::shape_str(live_shape), engine::shape_str(W->shape)));
      int64_t rows = p.n / K;  // leading dims (batch 1 and any others)
      int64_t out_n = rows * N;
      std::vector<double> L(size_t(out_n * p.n), 0.0), d(size_t(out_n), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < N; ++o)
          for (int64_t k = 0; k < K; ++k) {
            double w = transB ? W->values[size_t(o * K + k)] : W->values[size_t(k * N + o)];
            L[size_t((r * N + o) * p.n + r * K + k)] = alpha * w;
          }
      engine::Shape ns = live_shape;
      ns.back() = N;
      if (op == "Gemm" && n.inputs.size() > 2 && !n.inputs[2].empty()) {
        std::vector<double> cv = broadcast_to(*other_input(2), ns, n);
        for (int64_t i = 0; i < out_n; ++i) d[size_t(i)] = beta * cv[size_t(i)];
      }
      compose_dense(p, L, out_n, d);
      live_shape = ns;
    } else if (op == "Conv" || op == "AveragePool") {
      if (live_shape.size() != 4) unsupported(n, "only 2-D convolution/pooling on NCHW data");
      int64_t C = live_shape[1], H = live_shape[2], Wd = live_shape[3];
      bool conv = op == "Conv";
      const Constant* Wt = conv ? other_input(1) : nullptr;
      std::vector<int64_t> ks = n.get_ints("kernel_shape", {});
      if (conv && Wt->shape.size() != 4) unsupported(n, "weight must be 4-D");
      if (ks.empty() && conv) ks = {Wt->shape[2], Wt->shape[3]};
      if (ks.size() != 2) unsupported(n, "kernel_shape must be 2-D");
      std::vector<int64_t> st = n.get_ints("strides", {1, 1});
      std::vector<int64_t> dil = n.get_ints("dilations", {1, 1});
      std::vector<int64_t> pads = n.get_ints("pads", {0, 0, 0, 0});
      std::string autopad = n.get_string("auto_pad", "NOTSET");
      if (autopad != "NOTSET" && autopad != "VALID") unsupported(n, "auto_pad=" + autopad);
      if (!conv && n.get_int("ceil_mode", 0) != 0) unsupported(n, "ceil_mode=1");
      int64_t group = conv ? n.get_int("group", 1) : 1;
      if (st.size() != 2 || dil.size() != 2 || pads.size() != 4) unsupported(n, "strides/dilations/pads must be 2-D");
      if (st[0] <= 0 || st[1] <= 0 || dil[0] <= 0 || dil[1] <= 0 || group <= 0 || ks[0] <= 0 || ks[1] <= 0)
        unsupported(n, "strides, dilations, group and kernel_shape must be positive");
      int64_t M = conv ? Wt->shape[0] : C;
      int64_t Cg = conv ? Wt->shape[1] : 1;
      if (conv && Cg * group != C) unsupported(n, "weight channels do not match the data");
      if (conv && (M <= 0 || M % group != 0)) unsupported(n, "output channels are not a multiple of group");
      int64_t OH = (H + pads[0] + pads[2] - dil[0] * (ks[0] - 1) - 1) / st[0] + 1;
      int64_t OW = (Wd + pads[1] + pads[3] - dil[1] * (ks[1] - 1) - 1) / st[1] + 1;
      int64_t out_n = M * OH * OW;
      // The dense map (out x in) and the folding below (out x taps) must both stay bounded.
      if (double(out_n) * double(p.n) > 4e8 || double(out_n) * double(Cg) * double(ks[0] * ks[1]) > 4e8)
        unsupported(n, "layer too large for the dense verifier");
      bool include_pad = n.get_int("count_include_pad", 0) != 0;
      std::vector<double> L(size_t(out_n * p.n), 0.0), d(size_t(out_n), 0.0);
      for (int64_t m = 0; m < M; ++m) {
        int64_t g0 = conv ? (m / (M / group)) * Cg : m;
        for (int64_t oy = 0; oy < OH; ++oy)
          for (int64_t ox = 0; ox < OW; ++ox) {
            int64_t o = (m * OH + oy) * OW + ox;
            int64_t count = 0;
            for (int64_t ky = 0; ky < ks[0]; ++ky)
              for (int64_t kx = 0; kx < ks[1]; ++kx) {
                int64_t iy = oy * st[0] - pads[0] + ky * dil[0], ix = ox * st[1] - pads[1] + kx * dil[1];
                if (iy >= 0 && iy < H && ix >= 0 && ix < Wd) ++count;
              }
            if (include_pad) count = ks[0] * ks[1];
            for (int64_t c = 0; c < (conv ? Cg : 1); ++c)
              for (int64_t ky = 0; ky < ks[0]; ++ky)
                for (int64_t kx = 0; kx < ks[1]; ++kx) {
                  int64_t iy = oy * st[0] - pads[0] + ky * dil[0], ix = ox * st[1] - pads[1] + kx * dil[1];
                  if (iy < 0 || iy >= H || ix < 0 || ix >= Wd) continue;
                  int64_t i = ((g0 + c) * H + iy) * Wd + ix;
                  double w = conv ? Wt->values[size_t(((m * Cg + c) * ks[0] + ky) * ks[1] + kx)] : 1.0 / double(count);
                  L[size_t(o * p.n + i)] += w;
                }
            if (conv && n.inputs.size() > 2 && !n.inputs[2].empty()) d[size_t(o)] = other_input(2)->values[size_t(m)];
          }
      }
      // The convolution reads base entries [offset, offset + C H W) when the data is a slice of the base.
      const int64_t in_offset = p.selection ? p.offset : 0;
      compose_dense(p, L, out_n, d);
      // A layer that stays this convolution (up to per-channel scales the check reads off W, plus
      // a skip connection's rows and columns) gets its products as GEMMs (conv_products.h).
      if (OH > 0 && OW > 0) {
        ConvGeometry cg;
        cg.channels = C, cg.height = H, cg.width = Wd, cg.maps = M, cg.out_height = OH, cg.out_width = OW;
        cg.kernel_h = ks[0], cg.kernel_w = ks[1], cg.stride_h = st[0], cg.stride_w = st[1];
        cg.pad_top = pads[0], cg.pad_left = pads[1], cg.dilation_h = dil[0], cg.dilation_w = dil[1];
        cg.groups = conv ? group : C;
        cg.in_offset = in_offset;
        p.conv = std::move(cg);
      }
      live_shape = {1, M, OH, OW};
    } else if (op == "BatchNormalization") {
      if (live_shape.size() < 2) unsupported(n, "data needs a channel axis");
      const Constant *scale = other_input(1), *B = other_input(2), *mean = other_input(3), *var = other_input(4);
      double eps = n.get_float("epsilon", 1e-5f);
      int64_t C = live_shape[1], inner = p.n / C;
      std::vector<double> s(static_cast<size_t>(p.n)), d(static_cast<size_t>(p.n));
      // y = scale (x - mean) / sqrt(var + eps) + B  (ONNX BatchNormalization, inference mode)
      for (int64_t c = 0; c < C; ++c) {
        double k = scale->values[size_t(c)] / std::sqrt(var->values[size_t(c)] + eps);
        for (int64_t i = 0; i < inner; ++i) {
          s[size_t(c * inner + i)] = k;
          d[size_t(c * inner + i)] = B->values[size_t(c)] - k * mean->values[size_t(c)];
        }
      }
      compose_elementwise(p, s, d);
    } else if (op == "Transpose" || op == "Slice" || op == "Pad") {
      // Index maps: each output element is one input element (or Pad's constant).
      const int64_t rank = int64_t(live_shape.size());
      auto ints_of = [&](const char* attr, size_t input) {
        std::vector<int64_t> v = n.get_ints(attr, {});
        if (v.empty() && n.inputs.size() > input && !n.inputs[input].empty())
          for (double d : other_input(input)->values) v.push_back(int64_t(d));
        return v;
      };
      engine::Shape ns(live_shape);
      std::vector<int64_t> start(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1);
      std::vector<int64_t> perm(static_cast<size_t>(rank), 0);
      for (int64_t i = 0; i < rank; ++i) perm[size_t(i)] = i;
      double fill = 0;
      if (op == "Transpose") {
        std::vector<int64_t> pa = n.get_ints("perm", {});
        if (pa.empty())
          for (int64_t i = 0; i < rank; ++i) pa.push_back(rank - 1 - i);
        if (int64_t(pa.size()) != rank) unsupported(n, "perm does not match the data's rank");
        std::vector<char> seen(size_t(rank), 0);
        for (int64_t i = 0; i < rank; ++i) {
          if (pa[size_t(i)] < 0 || pa[size_t(i)] >= rank || seen[size_t(pa[size_t(i)])]) unsupported(n, "perm is not a permutation");
          seen[size_t(pa[size_t(i)])] = 1;
          perm[size_t(i)] = pa[size_t(i)];
          ns[size_t(i)] = live_shape[size_t(pa[size_t(i)])];
        }
      } else if (op == "Slice") {
        std::vector<int64_t> starts = ints_of("starts", 1), ends = ints_of("ends", 2), axes = ints_of("axes", 3),
                             steps = ints_of("steps", 4);
        if (starts.size() != ends.size() || (!axes.empty() && axes.size() != starts.size()) ||
            (!steps.empty() && steps.size() != starts.size()))
          unsupported(n, "starts, ends, axes and steps differ in length");
        for (size_t q = 0; q < starts.size(); ++q) {
          int64_t a = axes.empty() ? int64_t(q) : axes[q];
          if (a < 0) a += rank;
          if (a < 0 || a >= rank) unsupported(n, "axis out of range");
          const int64_t d = live_shape[size_t(a)], st = steps.empty() ? 1 : steps[q];
          if (st == 0) unsupported(n, "a zero step");
          // numpy semantics: negative indices count from the end, then clamp
          auto norm = [&](int64_t v, int64_t lo, int64_t hi) {
            if (v < 0) v += d;
            return std::clamp(v, lo, hi);
          };
          const int64_t b = st > 0 ? norm(starts[q], 0, d) : norm(starts[q], -1, d - 1);
          const int64_t e = st > 0 ? norm(ends[q], 0, d) : norm(ends[q], -1, d - 1);
          const int64_t len = st > 0 ? std::max<int64_t>(0, (e - b + st - 1) / st) : std::max<int64_t>(0, (b - e - st - 1) / -st);
          start[size_t(a)] = b;
          step[size_t(a)] = st;
          ns[size_t(a)] = len;
        }
      } else {  // Pad
        if (n.get_string("mode", "constant") != "constant") unsupported(n, "mode " + n.get_string("mode", "constant"));
        std::vector<int64_t> pads = ints_of("pads", 1), axes = ints_of("axes", 3);
        if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
          const Constant* v = other_input(2);
          if (v->values.size() != 1) unsupported(n, "constant_value must be a scalar");
          fill = v->values[0];
        } else {
          fill = n.get_float("value", 0.0f);
        }
        if (axes.empty())
          for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
        if (pads.size() != 2 * axes.size()) unsupported(n, "pads do not match the axes");
        for (size_t q = 0; q < axes.size(); ++q) {
          int64_t a = axes[q] < 0 ? axes[q] + rank : axes[q];
          if (a < 0 || a >= rank) unsupported(n, "axis out of range");
          start[size_t(a)] = -pads[q];  // negative pads crop
          ns[size_t(a)] = live_shape[size_t(a)] + pads[q] + pads[q + axes.size()];
          if (ns[size_t(a)] < 0) unsupported(n, "pads remove more than the axis holds");
        }
      }
      const int64_t out_n = engine::shape_numel(ns);
      if (double(out_n) * double(p.base) > 4e8) unsupported(n, "layer too large for the dense verifier");
      const std::vector<int64_t> in_st = strides_of(live_shape);
      std::vector<int64_t> src(size_t(out_n), -1), idx(size_t(rank), 0);
      for (int64_t o = 0; o < out_n; ++o) {
        int64_t i = 0;
        bool inside = true;
        for (int64_t k = 0; k < rank; ++k) {
          const int64_t a = perm[size_t(k)];  // output axis k reads input axis a
          const int64_t v = start[size_t(a)] + idx[size_t(k)] * step[size_t(a)];
          if (v < 0 || v >= live_shape[size_t(a)]) inside = false;
          i += v * in_st[size_t(a)];
        }
        if (inside) src[size_t(o)] = i;
        for (int64_t k = rank - 1; k >= 0; --k) {
          if (++idx[size_t(k)] < ns[size_t(k)]) break;
          idx[size_t(k)] = 0;
        }
      }
      compose_gather(p, src, std::vector<double>(size_t(out_n), fill));
      live_shape = ns;
    } else if (op == "GlobalAveragePool" || op == "ReduceMean") {
      // The mean over the reduced axes (GlobalAveragePool: every axis after the channels), a linear map.
      const int64_t rank = int64_t(live_shape.size());
      std::vector<char> reduce(size_t(rank), 0);
      bool keepdims = true;
      if (op == "GlobalAveragePool") {
        if (rank < 3) unsupported(n, "data needs spatial axes");
        for (int64_t i = 2; i < rank; ++i) reduce[size_t(i)] = 1;
      } else {
        keepdims = n.get_int("keepdims", 1) != 0;
        std::vector<int64_t> axes = n.get_ints("axes", {});
        if (axes.empty() && n.inputs.size() > 1 && !n.inputs[1].empty())
          for (double v : other_input(1)->values) axes.push_back(int64_t(v));
        if (axes.empty()) {
          if (n.get_int("noop_with_empty_axes", 0) != 0) {
            keep(std::move(cur));
            continue;
          }
          std::fill(reduce.begin(), reduce.end(), 1);
        }
        for (int64_t a : axes) {
          if (a < 0) a += rank;
          if (a < 0 || a >= rank) unsupported(n, "axis out of range");
          reduce[size_t(a)] = 1;
        }
      }
      if (reduce[0] && live_shape[0] != 1) unsupported(n, "a mean over the batch axis");
      engine::Shape ns;
      int64_t count = 1;
      for (int64_t i = 0; i < rank; ++i) {
        if (reduce[size_t(i)]) count *= live_shape[size_t(i)];
        if (!reduce[size_t(i)]) ns.push_back(live_shape[size_t(i)]);
        else if (keepdims) ns.push_back(1);
      }
      if (count <= 0) unsupported(n, "a mean over an empty axis");
      const int64_t out_n = engine::shape_numel(ns);
      if (double(out_n) * double(p.n) > 4e8) unsupported(n, "layer too large for the dense verifier");
      std::vector<double> L(size_t(out_n * p.n), 0.0), d(size_t(out_n), 0.0);
      std::vector<int64_t> idx(size_t(rank), 0);
      for (int64_t f = 0; f < p.n; ++f) {
        int64_t o = 0;  // the output element: the kept axes' indices
        for (int64_t i = 0; i < rank; ++i)
          if (!reduce[size_t(i)]) o = o * live_shape[size_t(i)] + idx[size_t(i)];
        L[size_t(o * p.n + f)] = 1.0 / double(count);
        for (int64_t i = rank - 1; i >= 0; --i) {
          if (++idx[size_t(i)] < live_shape[size_t(i)]) break;
          idx[size_t(i)] = 0;
        }
      }
      compose_dense(p, L, out_n, d);
      live_shape = ns;
    } else {
      unsupported(n);
    }
    keep(std::move(cur));
  }
  auto result = values.find(g.outputs[0].name);
  if (result == values.end())
    throw UnsupportedError("verify", fmt::format("{}: output '{}' is not computed from the input by supported ops",
                                                 g.source, g.outputs[0].name));
  // The output's map becomes the last layer (an identity when the graph ends in a ReLU,
  // so that ReLU is kept).
  add_layer({&result->second.p}, {}, nullptr);
  // Convolutions become sparse matrices; keep a compressed copy for the bound
  // propagation and the forward passes.
  for (size_t k = 0; k < net.layers.size(); ++k) {
    AffineLayer& L = net.layers[k];
    L.compress();
    if (k < conv_of_layer.size() && conv_of_layer[k]) L.conv = detail::match_convolution(std::move(*conv_of_layer[k]), L);
  }
  return net;
}

Network load_network(const std::string& onnx_path) { return network_from_graph(engine::load_onnx(onnx_path)); }

std::shared_ptr<const Network> specialise_input_copies(const Network& net, const std::vector<double>& lower) {
  bool any = false;
  for (const auto& L : net.layers) any |= !L.input_copy.empty();
  if (!any || int64_t(lower.size()) != net.input_size()) return nullptr;
  auto known = [&](int64_t tag) {
    const int64_t j = (tag > 0 ? tag : -tag) - 1;
    return tag != 0 && j >= 0 && size_t(j) < lower.size() && std::isfinite(lower[size_t(j)]);
  };
  auto s = std::make_shared<Network>(net);
  s->product_state.reset();  // device copies of the weights are per network
  for (size_t k = 0; k < s->layers.size(); ++k) {
    AffineLayer& L = s->layers[k];
    const std::vector<int64_t>* in_tags = k > 0 && !s->layers[k - 1].input_copy.empty() ? &s->layers[k - 1].input_copy : nullptr;
    bool changed = false;
    for (int64_t i = 0; i < L.out; ++i) {
      const int64_t tag = i < int64_t(L.input_copy.size()) ? L.input_copy[size_t(i)] : 0;
      double* row = &L.weight[size_t(i * L.in)];
      if (k == 0 && known(tag)) {
        const double lo = lower[size_t((tag > 0 ? tag : -tag) - 1)];
        if (tag > 0) {  // relu(x_j - lo_j) = x_j - lo_j on the boxes
          L.bias[size_t(i)] = -lo;
          if (L.nonneg.empty()) L.nonneg.assign(size_t(L.out), 0);
          L.nonneg[size_t(i)] = 1;
        } else {  // relu(-x_j) becomes the constant 0: the pair's difference is x_j - lo_j
          std::fill(row, row + L.in, 0.0);
          L.bias[size_t(i)] = 0.0;
        }
        changed = true;
      } else if (tag == 0 && in_tags) {
        // A row reading the pair (coefficient m on relu(x_j), -m on relu(-x_j)) now reads x_j - lo_j:
        // + m lo_j restores its value. Copies (tag != 0) carry the shifted pair on unchanged.
        double add = 0;
        for (int64_t c = 0; c < L.in; ++c) {
          const int64_t t = (*in_tags)[size_t(c)];
          if (t > 0 && known(t) && row[c] != 0) add += row[c] * lower[size_t(t - 1)];
        }
        if (add != 0) {
          L.bias[size_t(i)] += add;
          changed = true;
        }
      }
    }
    if (changed && k == 0) {
      L.compress();
      if (L.conv) {
        ConvGeometry g = *L.conv;
        g.kernel.clear();
        g.abs_kernel.clear();
        g.tap_index.clear();
        g.rest_row.clear();
        g.rest_col.clear();
        g.rest_val.clear();
        L.conv = detail::match_convolution(std::move(g), L);
      }
    }
  }
  return s;
}

}  // namespace mlaudit::verify
