// Attack losses and their gradients w.r.t. the logits.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common.h"
#include "top4.h"
#include "mlaudit/engine/error.h"

namespace mlaudit::robustness {
namespace {

using detail::top4;  // top4.h: shared with the device APGD loss kernel

void check_logits(const engine::Tensor& logits, size_t n, int64_t min_classes, const char* loss) {
  if (logits.rank() != 2 || logits.dim(0) != static_cast<int64_t>(n))
    throw InputError("robustness", std::string(loss) + ": expected logits [N,C], got " + engine::shape_str(logits.shape()));
  if (logits.dim(1) < min_classes)
    throw InputError("robustness", std::string(loss) + " needs at least " + std::to_string(min_classes) +
                                       " classes, the model has " + std::to_string(logits.dim(1)));
}

}  // namespace

namespace detail {

// 1e-12 in the DLR denominators follows the reference implementation
// (fra31/auto-attack, autopgd_base.py) and only guards against 0/0.
void eval_loss(Loss loss, const engine::Tensor& logits, const std::vector<int64_t>& y,
               const std::vector<int64_t>* target, std::vector<float>* values, engine::Tensor* seed) {
  const size_t n = y.size();
  const int64_t min_classes = loss == Loss::Dlr ? 3 : loss == Loss::DlrTargeted ? 4 : 2;
  check_logits(logits, n, min_classes, loss == Loss::Dlr ? "DLR loss" : loss == Loss::DlrTargeted ? "targeted DLR loss" : "loss");
  const int64_t c = logits.dim(1);
  const float* z_all = logits.f32();
  if (values) values->assign(n, 0.f);
  float* g_all = nullptr;
  if (seed) {
    *seed = engine::Tensor(logits.shape());
    g_all = seed->f32();
  }
  for (size_t i = 0; i < n; ++i) {
    const float* z = z_all + i * c;
    float* g = g_all ? g_all + i * c : nullptr;
    const int64_t yi = y[i];
    switch (loss) {
      case Loss::CrossEntropy: {
        // CE = logsumexp(z) - z_y; dCE/dz = softmax(z) - e_y.
        float zmax = *std::max_element(z, z + c);
        double s = 0;
        for (int64_t j = 0; j < c; ++j) s += std::exp(double(z[j] - zmax));
        if (values) (*values)[i] = float(std::log(s) + zmax - z[yi]);
        if (g) {
          for (int64_t j = 0; j < c; ++j) g[j] = float(std::exp(double(z[j] - zmax)) / s);
          g[yi] -= 1.f;
        }
        break;
      }
      case Loss::Margin: {
        // Square attack margin (Andriushchenko et al. 2020): z_y - max_{j != y} z_j.
        float best = -INFINITY;
        for (int64_t j = 0; j < c; ++j)
          if (j != yi) best = std::max(best, z[j]);
        if (values) (*values)[i] = z[yi] - best;
        break;
      }
      case Loss::Dlr: {
        // DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)   (Croce & Hein 2020, Eq. 6)
        int64_t t[4];
        top4(z, c, t);
        const int64_t other = t[0] == yi ? t[1] : t[0];
        const double num = double(z[yi]) - z[other];
        const double den = double(z[t[0]]) - z[t[2]] + 1e-12;
        if (values) (*values)[i] = float(-num / den);
        if (g) {
          g[yi] += float(-1.0 / den);
          g[other] += float(1.0 / den);
          g[t[0]] += float(num / (den * den));
          g[t[2]] -= float(num / (den * den));
        }
        break;
      }
      case Loss::DlrTargeted: {
        // DLR_t = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2 + 1e-12)   (Croce & Hein 2020, Eq. 7)
        int64_t t[4];
        top4(z, c, t);
        const int64_t tgt = (*target)[i];
        const double num = double(z[yi]) - z[tgt];
        const double den = double(z[t[0]]) - 0.5 * (double(z[t[2]]) + z[t[3]]) + 1e-12;
        if (values) (*values)[i] = float(-num / den);
        if (g) {
          const double q = num / (den * den);
          g[yi] += float(-1.0 / den);
          g[tgt] += float(1.0 / den);
          g[t[0]] += float(q);
          g[t[2]] -= float(0.5 * q);
          g[t[3]] -= float(0.5 * q);
        }
        break;
      }
    }
  }
}

engine::Tensor loss_gradient(const engine::Model& model, const engine::Tensor& x, Loss loss,
                             const std::vector<int64_t>& y, const std::vector<int64_t>* target,
                             engine::Tensor* logits, std::vector<float>* values) {
  engine::Tensor out;
  auto seed_fn = [&](const engine::Tensor& z) {
    engine::Tensor s;
    eval_loss(loss, z, y, target, values, &s);
    return s;
  };
  engine::Tensor g = model.input_gradient(x, seed_fn, &out);
  if (logits) *logits = out;
  return g;
}

}  // namespace detail

std::vector<float> dlr_loss(const engine::Tensor& logits, const std::vector<int64_t>& y) {
  std::vector<float> v;
  detail::eval_loss(detail::Loss::Dlr, logits, y, nullptr, &v, nullptr);
  return v;
}

std::vector<float> dlr_targeted_loss(const engine::Tensor& logits, const std::vector<int64_t>& y,
                                     const std::vector<int64_t>& target) {
  std::vector<float> v;
  detail::eval_loss(detail::Loss::DlrTargeted, logits, y, &target, &v, nullptr);
  return v;
}

}  // namespace mlaudit::robustness
