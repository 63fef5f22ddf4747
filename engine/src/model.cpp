#include "mlaudit/engine/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "mlaudit/engine/error.h"

namespace mlaudit::engine {

namespace {
void check_rows(const Tensor& out, size_t n, const char* what) {
  if (out.rank() != 2 || out.shape()[0] != static_cast<int64_t>(n))
    throw InputError("engine", fmt::format("{}: expected model output [N={},C], got {}", what, n, shape_str(out.shape())));
}
}  // namespace

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  if (logits.rank() != 2) throw InputError("engine", fmt::format("argmax: expected [N,C], got {}", shape_str(logits.shape())));
  const int64_t n = logits.shape()[0], c = logits.shape()[1];
  std::vector<int64_t> out(n, 0);
  const float* p = logits.f32();
  for (int64_t i = 0; i < n; ++i) out[i] = std::max_element(p + i * c, p + (i + 1) * c) - (p + i * c);
  return out;
}

Tensor softmax_rows(const Tensor& logits) {
  if (logits.rank() != 2) throw InputError("engine", fmt::format("softmax: expected [N,C], got {}", shape_str(logits.shape())));
  const int64_t n = logits.shape()[0], c = logits.shape()[1];
  Tensor out(logits.shape());
  const float* p = logits.f32();
  float* q = out.f32();
  for (int64_t i = 0; i < n; ++i) {
    float m = *std::max_element(p + i * c, p + (i + 1) * c);
    double s = 0;
    for (int64_t j = 0; j < c; ++j) s += std::exp(double(p[i * c + j] - m));
    for (int64_t j = 0; j < c; ++j) q[i * c + j] = float(std::exp(double(p[i * c + j] - m)) / s);
  }
  return out;
}

void check_mixtures(const std::vector<Mixtures>& batch, int64_t row_size) {
  for (const Mixtures& m : batch) {
    if (m.rows.size() != m.masks.size() || !m.x || !m.groups)
      throw InputError("engine", "mixtures: one mask per row, a row x and groups are required");
    for (const std::vector<int64_t>& g : *m.groups)
      for (int64_t f : g)
        if (f < 0 || f >= row_size)
          throw InputError("engine", fmt::format("mixtures: feature {} outside rows of {}", f, row_size));
    const size_t ng = m.groups->size();
    for (uint64_t mask : m.masks)
      if (__builtin_popcountll(mask) > 24 || (ng < 64 && (mask >> ng) != 0))
        throw InputError("engine", fmt::format("mixtures: mask {:#x} names groups beyond the {} given, or more than 24",
                                               mask, ng));
  }
}

void Model::forward_mixtures(const std::vector<Mixtures>& batch, const Shape& row_shape, int64_t max_rows, bool ends,
                             MixtureOutputs& out) const {
  const int64_t d = shape_numel(row_shape);
  check_mixtures(batch, d);
  const int64_t cap = std::max<int64_t>(1, max_rows);
  out.outputs = 0;
  out.values.clear();
  out.offsets.assign(batch.size(), {});
  int64_t total = 0;
  for (size_t i = 0; i < batch.size(); ++i)
    for (uint64_t mask : batch[i].masks) {
      out.offsets[i].push_back(total);
      total += int64_t(1) << __builtin_popcountll(mask);
    }
  Shape bs{cap};
  bs.insert(bs.end(), row_shape.begin(), row_shape.end());
  Tensor stage = Tensor::uninitialized(DType::Float32, bs);
  std::vector<int64_t> dest;  // output row of each staged row
  dest.reserve(cap);
  auto flush = [&]() {
    if (dest.empty()) return;
    const int64_t fill = static_cast<int64_t>(dest.size());
    const Tensor y = forward(fill == cap ? stage : stage.first_rows(fill));
    if (y.rank() != 2 || y.shape()[0] != fill)
      throw InputError("engine", fmt::format("mixtures: expected model output [N={},C], got {}", fill, shape_str(y.shape())));
    const int64_t C = y.shape()[1];
    if (out.outputs == 0) {
      out.outputs = C;
      out.values.assign(static_cast<size_t>(total * C), 0.f);
    } else if (C != out.outputs) {
      throw InputError("engine", fmt::format("mixtures: model output width changed from {} to {}", out.outputs, C));
    }
    const float* yp = y.f32();
    for (int64_t r = 0; r < fill; ++r) std::memcpy(out.values.data() + dest[r] * C, yp + r * C, sizeof(float) * C);
    dest.clear();
  };
  std::vector<int> bits;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Mixtures& m = batch[i];
    for (size_t k = 0; k < m.rows.size(); ++k) {
      bits.clear();
      for (uint64_t g = m.masks[k]; g; g &= g - 1) bits.push_back(__builtin_ctzll(g));
      const int64_t full = (int64_t(1) << bits.size()) - 1;
      for (int64_t p = 0; p <= full; ++p) {
        if (!ends && (p == 0 || p == full)) continue;
        if (static_cast<int64_t>(dest.size()) == cap) flush();
        float* row = stage.f32() + static_cast<int64_t>(dest.size()) * d;
        std::memcpy(row, m.rows[k], sizeof(float) * d);
        for (size_t q = 0; q < bits.size(); ++q)
          if ((p >> q) & 1)
            for (int64_t f : (*m.groups)[bits[q]]) row[f] = m.x[f];
        dest.push_back(out.offsets[i][k] + p);
      }
    }
  }
  flush();
}

Tensor logit_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& classes, Tensor* logits) {
  return m.input_gradient(
      x,
      [&](const Tensor& out) {
        check_rows(out, classes.size(), "logit_gradient");
        Tensor seed(out.shape());
        const int64_t c = out.shape()[1];
        for (size_t i = 0; i < classes.size(); ++i) {
          if (classes[i] < 0 || classes[i] >= c)
            throw InputError("engine", fmt::format("class {} out of range for {} outputs", classes[i], c));
          seed.f32()[i * c + classes[i]] = 1.0f;
        }
        return seed;
      },
      logits);
}

Tensor cross_entropy_gradient(const Model& m, const Tensor& x, const std::vector<int64_t>& labels, Tensor* logits,
                              std::vector<float>* losses) {
  return m.input_gradient(
      x,
      [&](const Tensor& out) {
        check_rows(out, labels.size(), "cross_entropy_gradient");
        // d CE / d z = softmax(z) - onehot(y)
        Tensor seed = softmax_rows(out);
        const int64_t c = out.shape()[1];
        if (losses) losses->assign(labels.size(), 0.f);
        for (size_t i = 0; i < labels.size(); ++i) {
          if (labels[i] < 0 || labels[i] >= c)
            throw InputError("engine", fmt::format("label {} out of range for {} outputs", labels[i], c));
          float& s = seed.f32()[i * c + labels[i]];
          if (losses) (*losses)[i] = -std::log(std::max(s, 1e-30f));
          s -= 1.0f;
        }
        return seed;
      },
      logits);
}

}  // namespace mlaudit::engine
