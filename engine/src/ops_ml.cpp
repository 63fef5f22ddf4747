// ops_ml.cpp: the ai.onnx.ml domain, forward only (every op is registered not differentiable).
//
// Semantics follow onnxruntime's CPU kernels (onnxruntime/core/providers/cpu/ml/), the reference
// the fixtures are generated with (tools/ml_goldens.py), including its quirks: the binary
// classifier cases that turn one score into two columns, post transforms that a single score
// skips (only PROBIT applies to one target), the SVM's one-vs-one voting and Platt/pairwise
// coupling path, and the tree ensembles' "has a score" bookkeeping. Where onnxruntime would read
// out of bounds on a malformed model (an index or a count from the file), we raise InputError
// naming the node instead: every attribute array is validated before any loop reads through it.
//
// Versions (onnx_op_versions.inc): every op is at version 1 except LabelEncoder (1, 2, 4: typed
// keys/values at 2, tensor-valued keys/values/default and NaN keys matching NaN at 4),
// TreeEnsembleClassifier/Regressor (1, 3: the *_as_tensor attributes; 5 deprecates them and
// onnxruntime refuses it, so do we) and TreeEnsemble (5, whose post_transform codes 1 and 2 are
// read as onnxruntime reads them: 1 LOGISTIC, 2 SOFTMAX, the reverse of the ONNX spec's list).
// Attributes given as doubles (the *_as_tensor of opset 3, TreeEnsemble's tensors) were narrowed
// to float32 at load, so comparisons and sums run in float32 (onnxruntime runs a double-typed
// model in double).
//
// Strings: the engine holds no string tensors. A string-valued output (labels of a classifier
// with classlabels_strings, LabelEncoder values_strings) is left empty (Tensor()); the loader lists
// such graph outputs as opaque and never asks for them. Ops that would need string inputs are
// refused by name. ZipMap, CastMap, DictVectorizer and CategoryMapper (maps and strings) are not
// registered.
#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "mlaudit/engine/error.h"
#include "mlaudit/engine/trees.h"
#include "ops.h"

namespace mlaudit::engine::detail {

namespace {

[[noreturn]] void op_unsupported(const OpContext& ctx, const std::string& message) {
  throw UnsupportedError("engine", fmt::format("{} at node '{}': {}", ctx.node.op_type, ctx.node.name, message));
}

// ---------------------------------------------------------------- attributes

const Attribute* find_attr(const OpContext& ctx, const std::string& name) {
  auto it = ctx.node.attributes.find(name);
  return it == ctx.node.attributes.end() ? nullptr : &it->second;
}

std::vector<float> attr_floats(const OpContext& ctx, const std::string& name) {
  const Attribute* a = find_attr(ctx, name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::Floats) return a->floats;
  if (a->kind == Attribute::Kind::Float) return {a->f};
  op_error(ctx, fmt::format("attribute '{}' must be a list of floats", name));
}

std::vector<int64_t> attr_ints(const OpContext& ctx, const std::string& name) {
  const Attribute* a = find_attr(ctx, name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::Ints) return a->ints;
  if (a->kind == Attribute::Kind::Int) return {a->i};
  op_error(ctx, fmt::format("attribute '{}' must be a list of integers", name));
}

std::vector<std::string> attr_strings(const OpContext& ctx, const std::string& name) {
  const Attribute* a = find_attr(ctx, name);
  if (!a) return {};
  if (a->kind == Attribute::Kind::Strings) return a->strings;
  if (a->kind == Attribute::Kind::String) return {a->s};
  op_error(ctx, fmt::format("attribute '{}' must be a list of strings", name));
}

const Tensor* attr_tensor(const OpContext& ctx, const std::string& name) {
  const Attribute* a = find_attr(ctx, name);
  if (!a) return nullptr;
  if (a->kind != Attribute::Kind::Tensor) op_error(ctx, fmt::format("attribute '{}' must be a tensor", name));
  return &a->t;
}

// Values of a float attribute that ml opset 3 also offers as a tensor (`<name>_as_tensor`,
// float or double; doubles were narrowed to float32 at load). At most one of the two may be set.
std::vector<float> attr_floats_or_tensor(const OpContext& ctx, const std::string& name, const std::string& tensor_name) {
  std::vector<float> v = attr_floats(ctx, name);
  const Tensor* t = attr_tensor(ctx, tensor_name);
  if (!t) return v;
  if (!v.empty()) op_error(ctx, fmt::format("attributes '{}' and '{}' are both set", name, tensor_name));
  if (t->dtype() != DType::Float32)
    op_error(ctx, fmt::format("attribute '{}' is a {} tensor, expected float or double", tensor_name, dtype_name(t->dtype())));
  return std::vector<float>(t->f32(), t->f32() + t->numel());
}

// ---------------------------------------------------------------- inputs

// A classifier/regressor input viewed as N rows of `width` float features: [F] is one row,
// [N, F] is N rows. int64 features are converted to float (as onnxruntime casts them).
struct Rows {
  int64_t n = 0, width = 0;
  Tensor values;  // float32, [n * width]
  const float* row(int64_t i) const { return values.f32() + i * width; }
};

Rows rows_of(const OpContext& ctx, const Tensor& x) {
  if (x.rank() < 1 || x.rank() > 2)
    op_error(ctx, fmt::format("input X must be 1-D [F] or 2-D [N, F], got shape {}", shape_str(x.shape())));
  Rows r;
  r.n = x.rank() == 1 ? 1 : x.shape()[0];
  r.width = x.shape().back();
  if (x.dtype() == DType::Float32) r.values = x;
  else if (x.dtype() == DType::Int64) r.values = x.to(DType::Float32);
  else op_error(ctx, fmt::format("input X is {}, expected float or int64 features", dtype_name(x.dtype())));
  return r;
}

// float32 copy of a float or int64 input.
Tensor float_values(const OpContext& ctx, const Tensor& x, const char* what) {
  if (x.dtype() == DType::Float32) return x;
  if (x.dtype() == DType::Int64) return x.to(DType::Float32);
  op_error(ctx, fmt::format("{} is {}, expected float or int64", what, dtype_name(x.dtype())));
}

// Large loops run in parallel; small ones stay serial (thread start-up dominates).
constexpr int64_t kParallelWork = 1 << 15;

// ---------------------------------------------------------------- post transforms
// onnxruntime ml_common.h: the score transforms and its float arithmetic, kept operation for
// operation so results agree to float rounding.

enum class PostTransform { None, Logistic, Softmax, SoftmaxZero, Probit };

PostTransform parse_post_transform(const OpContext& ctx, const std::string& s) {
  if (s == "NONE") return PostTransform::None;
  if (s == "LOGISTIC") return PostTransform::Logistic;
  if (s == "SOFTMAX") return PostTransform::Softmax;
  if (s == "SOFTMAX_ZERO") return PostTransform::SoftmaxZero;
  if (s == "PROBIT") return PostTransform::Probit;
  op_error(ctx, fmt::format("unknown post_transform '{}' (NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT)", s));
}

// Winitzki's approximation of erf^-1 (a = 0.147), as onnxruntime's ErfInv.
float erf_inv(float x) {
  float sgn = x < 0 ? -1.0f : 1.0f;
  x = (1 - x) * (1 + x);
  float log = std::log(x);
  float v = 2 / (static_cast<float>(M_PI) * 0.147f) + 0.5f * log;
  float v2 = 1 / (0.147f) * log;
  float v3 = -v + std::sqrt(v * v - v2);
  return sgn * std::sqrt(v3);
}

float logistic(float v) {
  float e = 1 / (1 + std::exp(-std::abs(v)));
  return v < 0 ? 1 - e : e;
}

// probit(p) = sqrt(2) erf^-1(2p - 1), the standard normal quantile.
float probit(float v) { return static_cast<float>(M_SQRT2) * erf_inv(2 * v - 1); }

void softmax(float* v, int64_t n) {
  float vmax = -std::numeric_limits<float>::max();
  for (int64_t i = 0; i < n; ++i) vmax = std::max(vmax, v[i]);
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    v[i] = std::exp(v[i] - vmax);
    sum += v[i];
  }
  for (int64_t i = 0; i < n; ++i) v[i] /= sum;
}

// Softmax that leaves (near-)zero scores out of the exponentials.
void softmax_zero(float* v, int64_t n) {
  float vmax = -std::numeric_limits<float>::max();
  for (int64_t i = 0; i < n; ++i) vmax = std::max(vmax, v[i]);
  float exp_neg_vmax = std::exp(-vmax);
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] > 0.0000001f || v[i] < -0.0000001f) {
      v[i] = std::exp(v[i] - vmax);
      sum += v[i];
    } else {
      v[i] *= exp_neg_vmax;
    }
  }
  for (int64_t i = 0; i < n; ++i) v[i] /= sum;
}

void transform_all(float* v, int64_t n, PostTransform pt) {
  switch (pt) {
    case PostTransform::Probit:
      for (int64_t i = 0; i < n; ++i) v[i] = probit(v[i]);
      break;
    case PostTransform::Logistic:
      for (int64_t i = 0; i < n; ++i) v[i] = logistic(v[i]);
      break;
    case PostTransform::Softmax: softmax(v, n); break;
    case PostTransform::SoftmaxZero: softmax_zero(v, n); break;
    case PostTransform::None: break;
  }
}

// One score expanded to the two columns of a binary classifier (onnxruntime's add_second_class):
// 0/1 (weights all positive): [1 - s, s]; 2/3 (mixed signs): [-s, s]; under LOGISTIC both give
// [1 - sigmoid(s), sigmoid(s)] (onnxruntime 1.2x applies the logistic before expanding).
void second_class(float s, PostTransform pt, int add_second_class, float* out) {
  if (pt == PostTransform::Logistic) {
    if (add_second_class <= 1) {
      float v = logistic(s);
      out[0] = 1.f - v;
      out[1] = v;
    } else {
      out[0] = logistic(-s);
      out[1] = logistic(s);
    }
  } else if (add_second_class <= 1) {
    out[0] = 1.f - s;
    out[1] = s;
  } else {
    out[0] = -s;
    out[1] = s;
  }
}

// onnxruntime's batched_update_scores_inplace for one row of `len` scores at `s`: with several
// scores the transform applies to all of them; a single score gets only PROBIT, or (when
// add_second_class >= 0, and `s` has room for two) is expanded to two columns.
void update_scores(float* s, int64_t len, PostTransform pt, int add_second_class) {
  if (len < 1) return;
  if (len > 1) {
    transform_all(s, len, pt);
  } else if (pt == PostTransform::Probit) {
    s[0] = probit(s[0]);
  } else if (add_second_class >= 0) {
    second_class(s[0], pt, add_second_class, s);
  }
}

// ---------------------------------------------------------------- Scaler, Normalizer, Binarizer, Imputer

// Scaler: y = (x - offset) * scale along the feature axis (axis 1, or 0 for 1-D input), or with
// one offset and scale for every element.
void scaler_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "input X must have at least one dimension");
  Tensor xf = float_values(ctx, x, "input X");
  std::vector<float> scale = attr_floats(ctx, "scale"), offset = attr_floats(ctx, "offset");
  if (scale.empty()) op_error(ctx, "attribute 'scale' is empty");
  if (scale.size() != offset.size())
    op_error(ctx, fmt::format("attributes 'scale' ({} values) and 'offset' ({} values) differ in length", scale.size(),
                              offset.size()));
  int64_t stride = x.rank() == 1 ? x.shape()[0] : x.shape()[1];
  bool per_feature = static_cast<int64_t>(scale.size()) == stride;
  if (!per_feature && scale.size() != 1)
    op_error(ctx, fmt::format("scale and offset have {} values: expected 1 or the feature count {}", scale.size(), stride));
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = xf.f32();
  float* py = y.f32();
  const int64_t n = y.numel();
  for (int64_t i = 0; i < n; ++i) {
    size_t k = per_feature ? static_cast<size_t>(i % stride) : 0;
    py[i] = (px[i] - offset[k]) * scale[k];
  }
  out[0] = std::move(y);
}

// Normalizer: each row divided by its max, L1 norm or L2 norm (left as is when that is zero).
void normalizer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() < 1 || x.rank() > 2)
    op_error(ctx, fmt::format("input X must be 1-D or 2-D, got shape {}", shape_str(x.shape())));
  std::string norm = ctx.node.get_string("norm", "MAX");
  if (norm != "MAX" && norm != "L1" && norm != "L2") op_error(ctx, fmt::format("unknown norm '{}' (MAX, L1, L2)", norm));
  Tensor xf = float_values(ctx, x, "input X");
  int64_t rows = x.rank() == 1 ? 1 : x.shape()[0], cols = x.shape().back();
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  const float* px = xf.f32();
  float* py = y.f32();
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = px + r * cols;
    float* b = py + r * cols;
    if (norm == "MAX") {
      float m = std::numeric_limits<float>::lowest();
      for (int64_t i = 0; i < cols; ++i) m = std::max(m, a[i]);
      for (int64_t i = 0; i < cols; ++i) b[i] = m != 0.f ? a[i] / m : a[i];
    } else if (norm == "L1") {
      float sum = 0.f;
      for (int64_t i = 0; i < cols; ++i) sum += std::abs(a[i]);
      for (int64_t i = 0; i < cols; ++i) b[i] = sum != 0.f ? a[i] / sum : a[i];
    } else {
      float sum = 0.f;
      for (int64_t i = 0; i < cols; ++i) sum += a[i] * a[i];
      for (int64_t i = 0; i < cols; ++i) {
        if (sum == 0.f) {
          b[i] = a[i];
        } else {
          float v = std::sqrt(a[i] * a[i] / sum);
          b[i] = a[i] < 0 ? -v : v;
        }
      }
    }
  }
  out[0] = std::move(y);
}

// Binarizer: 1 where x > threshold, else 0 (same type as x). NaN input is an error, as in onnxruntime.
void binarizer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  float threshold = ctx.node.get_float("threshold", 0.f);
  if (x.dtype() == DType::Float32) {
    Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = x.f32()[i];
      if (std::isnan(v)) op_error(ctx, fmt::format("input value at index {} is NaN", i));
      y.f32()[i] = v > threshold ? 1.f : 0.f;
    }
    out[0] = std::move(y);
  } else if (x.dtype() == DType::Int64) {
    Tensor y = Tensor::uninitialized(DType::Int64, x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.i64()[i] = static_cast<float>(x.i64()[i]) > threshold ? 1 : 0;
    out[0] = std::move(y);
  } else {
    op_error(ctx, fmt::format("input X is {}, expected float or int64", dtype_name(x.dtype())));
  }
}

// Imputer: values equal to the replaced value (NaN matching NaN) become the imputed value of
// their feature (or the single imputed value).
void imputer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  if (x.rank() == 0) op_error(ctx, "input X must have at least one dimension");
  std::vector<float> fvals = attr_floats(ctx, "imputed_value_floats");
  std::vector<int64_t> ivals = attr_ints(ctx, "imputed_value_int64s");
  if (fvals.empty() == ivals.empty())
    op_error(ctx, "exactly one of 'imputed_value_floats' and 'imputed_value_int64s' must be set");
  int64_t stride = x.rank() == 1 ? x.shape()[0] : x.shape()[1];
  Tensor y = Tensor::uninitialized(x.dtype(), x.shape());
  if (x.dtype() == DType::Float32) {
    if (fvals.empty()) op_error(ctx, "float input needs 'imputed_value_floats'");
    float replaced = ctx.node.get_float("replaced_value_float", 0.f);
    bool per_feature = static_cast<int64_t>(fvals.size()) == stride;
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = x.f32()[i];
      bool hit = (std::isnan(v) && std::isnan(replaced)) || v == replaced;
      y.f32()[i] = hit ? fvals[per_feature ? static_cast<size_t>(i % stride) : 0] : v;
    }
  } else if (x.dtype() == DType::Int64) {
    if (ivals.empty()) op_error(ctx, "int64 input needs 'imputed_value_int64s'");
    int64_t replaced = ctx.node.get_int("replaced_value_int64", 0);
    bool per_feature = static_cast<int64_t>(ivals.size()) == stride;
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t v = x.i64()[i];
      y.i64()[i] = v == replaced ? ivals[per_feature ? static_cast<size_t>(i % stride) : 0] : v;
    }
  } else {
    op_error(ctx, fmt::format("input X is {}, expected float or int64", dtype_name(x.dtype())));
  }
  out[0] = std::move(y);
}

// ---------------------------------------------------------------- OneHotEncoder, ArrayFeatureExtractor, FeatureVectorizer

// OneHotEncoder: [..] -> [.., categories], one 1 at the input's category (int64 categories;
// float input is truncated to int64). Unknown values give all zeros, or an error with zeros=0.
void one_hot_encoder_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  std::vector<int64_t> cats = attr_ints(ctx, "cats_int64s");
  if (cats.empty()) {
    if (!attr_strings(ctx, "cats_strings").empty())
      op_unsupported(ctx, "string categories (cats_strings) are not supported: the engine has no string tensors");
    op_error(ctx, "attribute 'cats_int64s' is empty");
  }
  if (x.rank() > 2) op_error(ctx, fmt::format("input X must have rank <= 2, got shape {}", shape_str(x.shape())));
  bool zeros = ctx.node.get_int("zeros", 1) != 0;
  std::unordered_map<int64_t, int64_t> index;
  for (size_t k = 0; k < cats.size(); ++k) index[cats[k]] = static_cast<int64_t>(k);  // last duplicate wins
  const int64_t ncat = static_cast<int64_t>(cats.size());
  Shape shape = x.shape();
  shape.push_back(ncat);
  Tensor y(DType::Float32, shape);
  for (int64_t i = 0; i < x.numel(); ++i) {
    bool known = false;
    int64_t v = 0;
    if (x.dtype() == DType::Int64) {
      v = x.i64()[i];
      known = true;
    } else if (x.dtype() == DType::Float32) {
      float f = x.f32()[i];
      known = std::isfinite(f) && f > -9.2e18f && f < 9.2e18f;
      if (known) v = static_cast<int64_t>(f);
    } else {
      op_error(ctx, fmt::format("input X is {}, expected int64 or float", dtype_name(x.dtype())));
    }
    auto it = known ? index.find(v) : index.end();
    if (it != index.end()) y.f32()[i * ncat + it->second] = 1.f;
    else if (!zeros) op_error(ctx, fmt::format("input value at index {} is not a known category and zeros = 0", i));
  }
  out[0] = std::move(y);
}

// ArrayFeatureExtractor: the given indices of X's last axis ([F] input gives [1, k]).
void array_feature_extractor_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const Tensor& ind = input(ctx, in, 1);
  if (x.rank() == 0) op_error(ctx, "input X must have at least one dimension");
  if (ind.dtype() != DType::Int64) op_error(ctx, fmt::format("indices are {}, expected int64", dtype_name(ind.dtype())));
  const int64_t stride = x.shape().back();
  const int64_t k = ind.numel();
  if (k == 0) op_error(ctx, "indices are empty");
  const int64_t* idx = ind.i64();
  for (int64_t j = 0; j < k; ++j)
    if (idx[j] < 0 || idx[j] >= stride)
      op_error(ctx, fmt::format("indices value {} out of range [0, {})", idx[j], stride));
  Shape shape = x.shape();
  if (x.rank() == 1) shape = {1, k};
  else shape.back() = k;
  Tensor y = Tensor::uninitialized(x.dtype(), shape);
  const int64_t rows = stride == 0 ? 0 : x.numel() / stride;
  const size_t es = dtype_size(x.dtype());
  const auto* px = static_cast<const uint8_t*>(x.raw());
  auto* py = static_cast<uint8_t*>(y.raw());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j)
      std::memcpy(py + (r * k + j) * es, px + (r * stride + idx[j]) * es, es);
  out[0] = std::move(y);
}

// FeatureVectorizer: inputs concatenated along the feature axis, each cut or zero-padded to its
// `inputdimensions` entry.
void feature_vectorizer_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  std::vector<int64_t> dims = attr_ints(ctx, "inputdimensions");
  size_t present = 0;
  for (const Tensor* t : in) present += t != nullptr;
  if (dims.size() != in.size() || present != in.size())
    op_error(ctx, fmt::format("{} inputs given, 'inputdimensions' has {} entries", present, dims.size()));
  if (in.empty()) op_error(ctx, "no inputs");
  int64_t total = 0;
  for (int64_t d : dims) {
    if (d < 0 || d > (int64_t(1) << 31)) op_error(ctx, fmt::format("inputdimensions value {} is invalid", d));
    total += d;
  }
  const Tensor& first = input(ctx, in, 0);
  if (first.rank() == 0) op_error(ctx, "input 0 must have at least one dimension");
  const int64_t n = first.rank() == 1 ? 1 : first.shape()[0];
  Tensor y(DType::Float32, {n, total});
  int64_t offset = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    const Tensor& t = input(ctx, in, k);
    if (t.rank() == 0) op_error(ctx, fmt::format("input {} must have at least one dimension", k));
    int64_t rows = t.rank() == 1 ? 1 : t.shape()[0];
    if (rows != n) op_error(ctx, fmt::format("input {} has {} rows, input 0 has {}", k, rows, n));
    Tensor tf = float_values(ctx, t, "an input");
    int64_t size = rows == 0 ? 0 : t.numel() / rows;
    int64_t copy = std::min(size, dims[k]);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < copy; ++j) y.f32()[r * total + offset + j] = tf.f32()[r * size + j];
    offset += dims[k];
  }
  out[0] = std::move(y);
}

// ---------------------------------------------------------------- LabelEncoder

enum class LabelKind { None, Int64, Float, String };

const char* kind_name(LabelKind k) {
  switch (k) {
    case LabelKind::Int64: return "int64";
    case LabelKind::Float: return "float";
    case LabelKind::String: return "string";
    default: return "none";
  }
}

struct LabelSide {
  LabelKind kind = LabelKind::None;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  size_t size() const { return kind == LabelKind::Int64 ? ints.size() : floats.size(); }
};

// Keys or values of a LabelEncoder (version >= 2): `<side>_int64s`, `<side>_floats`,
// `<side>_strings` or (version 4) `<side>_tensor`.
LabelSide label_side(const OpContext& ctx, const std::string& side, size_t& string_count) {
  LabelSide s;
  int set = 0;
  if (find_attr(ctx, side + "_int64s")) {
    s.kind = LabelKind::Int64;
    s.ints = attr_ints(ctx, side + "_int64s");
    ++set;
  }
  if (find_attr(ctx, side + "_floats")) {
    s.kind = LabelKind::Float;
    s.floats = attr_floats(ctx, side + "_floats");
    ++set;
  }
  if (find_attr(ctx, side + "_strings")) {
    s.kind = LabelKind::String;
    string_count = attr_strings(ctx, side + "_strings").size();
    ++set;
  }
  if (ctx.node.since_version >= 4) {
    if (const Tensor* t = attr_tensor(ctx, side + "_tensor")) {
      ++set;
      if (t->dtype() == DType::Int64) {
        s.kind = LabelKind::Int64;
        s.ints = t->to_int64s();
      } else if (t->dtype() == DType::Float32) {
        s.kind = LabelKind::Float;
        s.floats.assign(t->f32(), t->f32() + t->numel());
      } else {
        op_error(ctx, fmt::format("attribute '{}_tensor' is {}, expected int64, float or double", side,
                                  dtype_name(t->dtype())));
      }
    }
  }
  if (set != 1) op_error(ctx, fmt::format("exactly one '{}_*' attribute must be set, found {}", side, set));
  return s;
}

// LabelEncoder: each input value looked up in keys -> values, the default when absent.
// Version 1 maps int64 <-> string (classes_strings); 2 and 4 map typed keys to typed values.
void label_encoder_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  const Tensor& x = input(ctx, in, 0);
  const int64_t version = ctx.node.since_version;
  if (version < 2) {
    // int64 -> string (the index into classes_strings): the strings are not computed.
    if (x.dtype() != DType::Int64)
      op_unsupported(ctx, "version 1 maps strings to int64: string inputs are not supported");
    out[0] = Tensor();
    return;
  }
  size_t key_strings = 0, value_strings = 0;
  LabelSide keys = label_side(ctx, "keys", key_strings);
  LabelSide values = label_side(ctx, "values", value_strings);
  size_t nkeys = keys.kind == LabelKind::String ? key_strings : keys.size();
  size_t nvalues = values.kind == LabelKind::String ? value_strings : values.size();
  if (nkeys != nvalues)
    op_error(ctx, fmt::format("{} keys but {} values: the key and value lists must have the same length", nkeys, nvalues));
  if (keys.kind == LabelKind::String)
    op_unsupported(ctx, "string keys are not supported: the engine has no string tensors");
  DType want = keys.kind == LabelKind::Int64 ? DType::Int64 : DType::Float32;
  if (x.dtype() != want)
    op_error(ctx, fmt::format("input is {}, but the keys are {}", dtype_name(x.dtype()), kind_name(keys.kind)));
  if (values.kind == LabelKind::String) {
    out[0] = Tensor();  // string values: not computed (the loader lists such outputs as opaque)
    return;
  }
  // Default value: default_tensor (version 4) or default_int64 / default_float.
  int64_t default_int = ctx.node.get_int("default_int64", -1);
  float default_float = ctx.node.get_float("default_float", -0.0f);
  if (version >= 4) {
    if (const Tensor* d = attr_tensor(ctx, "default_tensor")) {
      if (d->numel() < 1) op_error(ctx, "attribute 'default_tensor' is empty");
      if (values.kind == LabelKind::Int64 && d->dtype() == DType::Int64) default_int = d->i64()[0];
      else if (values.kind == LabelKind::Float && d->dtype() == DType::Float32) default_float = d->f32()[0];
      else op_error(ctx, fmt::format("attribute 'default_tensor' is {}, the values are {}", dtype_name(d->dtype()),
                                     kind_name(values.kind)));
    }
  }
  // Version 4 matches a NaN input to a NaN key (onnxruntime's NaN-aware hash); version 2 never does.
  const bool nan_matches = version >= 4;
  Tensor y = Tensor::uninitialized(values.kind == LabelKind::Int64 ? DType::Int64 : DType::Float32, x.shape());
  auto write = [&](int64_t i, size_t k) {
    if (values.kind == LabelKind::Int64) y.i64()[i] = values.ints[k];
    else y.f32()[i] = values.floats[k];
  };
  auto write_default = [&](int64_t i) {
    if (values.kind == LabelKind::Int64) y.i64()[i] = default_int;
    else y.f32()[i] = default_float;
  };
  if (keys.kind == LabelKind::Int64) {
    std::unordered_map<int64_t, size_t> map;
    for (size_t k = 0; k < keys.ints.size(); ++k) map.emplace(keys.ints[k], k);  // first duplicate wins
    for (int64_t i = 0; i < x.numel(); ++i) {
      auto it = map.find(x.i64()[i]);
      if (it == map.end()) write_default(i);
      else write(i, it->second);
    }
  } else {
    std::unordered_map<float, size_t> map;
    size_t nan_key = SIZE_MAX;
    for (size_t k = 0; k < keys.floats.size(); ++k) {
      if (std::isnan(keys.floats[k])) {
        if (nan_key == SIZE_MAX) nan_key = k;
      } else {
        map.emplace(keys.floats[k], k);
      }
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      float v = x.f32()[i];
      if (std::isnan(v)) {
        if (nan_matches && nan_key != SIZE_MAX) write(i, nan_key);
        else write_default(i);
        continue;
      }
      auto it = map.find(v);
      if (it == map.end()) write_default(i);
      else write(i, it->second);
    }
  }
  out[0] = std::move(y);
}

// ---------------------------------------------------------------- class labels

// classlabels_<ints attr> / classlabels_strings of a classifier: the int64 labels, or (strings)
// the label indices 0..n-1 with `strings` set (the label output is then not computed).
struct ClassLabels {
  std::vector<int64_t> ints;
  bool strings = false;
  size_t size() const { return ints.size(); }
};

ClassLabels class_labels(const OpContext& ctx, const std::string& ints_attr) {
  ClassLabels c;
  c.ints = attr_ints(ctx, ints_attr);
  std::vector<std::string> s = attr_strings(ctx, "classlabels_strings");
  if (!s.empty()) {
    if (!c.ints.empty()) op_error(ctx, fmt::format("attributes '{}' and 'classlabels_strings' are both set", ints_attr));
    c.strings = true;
    c.ints.resize(s.size());
    for (size_t k = 0; k < s.size(); ++k) c.ints[k] = static_cast<int64_t>(k);
  }
  return c;
}

// Label output: int64 [N], or empty when the labels are strings.
Tensor label_tensor(const ClassLabels& labels, int64_t n) {
  return labels.strings ? Tensor() : Tensor(DType::Int64, {n});
}

// ---------------------------------------------------------------- LinearClassifier, LinearRegressor

// LinearClassifier: scores = X W^T + b (one row of W per class), label = argmax (one class: the
// sign of its score picks between the two labels, and scores get a second column [1 - s, s]).
void linear_classifier_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  std::vector<float> coef = attr_floats(ctx, "coefficients"), intercepts = attr_floats(ctx, "intercepts");
  ClassLabels labels = class_labels(ctx, "classlabels_ints");
  PostTransform pt = parse_post_transform(ctx, ctx.node.get_string("post_transform", "NONE"));
  const int64_t classes = static_cast<int64_t>(intercepts.size());
  if (classes == 0) op_error(ctx, "attribute 'intercepts' is empty (one intercept per class)");
  if (static_cast<int64_t>(coef.size()) != classes * x.width)
    op_error(ctx, fmt::format("{} coefficients for {} classes and {} input features (expected {})", coef.size(), classes,
                              x.width, classes * x.width));
  if (classes > 1 && static_cast<int64_t>(labels.size()) < classes)
    op_error(ctx, fmt::format("{} class labels for {} classes", labels.size(), classes));
  const bool add_second_class = classes == 1 && labels.size() == 2;
  const int64_t cols = add_second_class ? 2 : classes;
  Tensor label = label_tensor(labels, x.n);
  Tensor scores(DType::Float32, {x.n, cols});
  const int64_t pos = labels.size() == 2 ? labels.ints[1] : 1, neg = labels.size() == 2 ? labels.ints[0] : 0;
#pragma omp parallel for schedule(static) if (x.n * classes * x.width > kParallelWork)
  for (int64_t r = 0; r < x.n; ++r) {
    const float* row = x.row(r);
    float* s = scores.f32() + r * cols;
    for (int64_t c = 0; c < classes; ++c) {
      double acc = intercepts[c];
      for (int64_t f = 0; f < x.width; ++f) acc += double(row[f]) * coef[c * x.width + f];
      s[c] = static_cast<float>(acc);
    }
    int64_t chosen;
    if (classes == 1) {
      chosen = s[0] > 0 ? pos : neg;
    } else {
      int64_t best = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (s[c] > s[best]) best = c;
      chosen = labels.ints[best];
    }
    if (!label.empty()) label.i64()[r] = chosen;
    if (add_second_class && pt == PostTransform::Probit) continue;  // laid out below
    if (pt != PostTransform::None || add_second_class) update_scores(s, classes, pt, add_second_class ? 1 : -1);
  }
  if (add_second_class && pt == PostTransform::Probit) {
    // onnxruntime keeps the N scores packed at the start of the [N, 2] buffer and applies PROBIT
    // without expanding them (the rest of its buffer is left unset; zero here).
    std::vector<float> raw(x.n);
    for (int64_t r = 0; r < x.n; ++r) raw[r] = scores.f32()[r * 2];
    scores.zero();
    for (int64_t r = 0; r < x.n; ++r) scores.f32()[r] = probit(raw[r]);
  }
  out[0] = std::move(label);
  if (out.size() > 1) out[1] = std::move(scores);
}

// LinearRegressor: Y = X W^T + b, [N, targets]; the post transform applies to rows of 2+ targets
// (one target: PROBIT only).
void linear_regressor_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  std::vector<float> coef = attr_floats(ctx, "coefficients"), intercepts = attr_floats(ctx, "intercepts");
  PostTransform pt = parse_post_transform(ctx, ctx.node.get_string("post_transform", "NONE"));
  const int64_t targets = ctx.node.get_int("targets", 1);
  if (targets < 1 || targets > (int64_t(1) << 24)) op_error(ctx, fmt::format("targets = {} is invalid", targets));
  if (static_cast<int64_t>(coef.size()) != targets * x.width)
    op_error(ctx, fmt::format("{} coefficients for {} targets and {} input features (expected {})", coef.size(), targets,
                              x.width, targets * x.width));
  const bool use_intercepts = static_cast<int64_t>(intercepts.size()) == targets;
  Tensor y(DType::Float32, {x.n, targets});
#pragma omp parallel for schedule(static) if (x.n * targets * x.width > kParallelWork)
  for (int64_t r = 0; r < x.n; ++r) {
    const float* row = x.row(r);
    float* s = y.f32() + r * targets;
    for (int64_t t = 0; t < targets; ++t) {
      double acc = use_intercepts ? intercepts[t] : 0.0;
      for (int64_t f = 0; f < x.width; ++f) acc += double(row[f]) * coef[t * x.width + f];
      s[t] = static_cast<float>(acc);
    }
    if (pt != PostTransform::None) update_scores(s, targets, pt, -1);
  }
  out[0] = std::move(y);
}

// ---------------------------------------------------------------- SVMClassifier, SVMRegressor

enum class Kernel { Linear, Poly, Rbf, Sigmoid };

struct SvmKernel {
  Kernel type = Kernel::Linear;
  float gamma = 0, coef0 = 0, degree = 0;
};

SvmKernel svm_kernel(const OpContext& ctx) {
  SvmKernel k;
  std::string t = ctx.node.get_string("kernel_type", "LINEAR");
  if (t == "LINEAR") k.type = Kernel::Linear;
  else if (t == "POLY") k.type = Kernel::Poly;
  else if (t == "RBF") k.type = Kernel::Rbf;
  else if (t == "SIGMOID") k.type = Kernel::Sigmoid;
  else op_error(ctx, fmt::format("unknown kernel_type '{}' (LINEAR, POLY, RBF, SIGMOID)", t));
  std::vector<float> p = attr_floats(ctx, "kernel_params");
  if (!p.empty()) {
    if (p.size() < 3) op_error(ctx, fmt::format("attribute 'kernel_params' has {} values, expected 3 (gamma, coef0, degree)", p.size()));
    k.gamma = p[0];
    k.coef0 = p[1];
    k.degree = p[2];
  }
  return k;
}

// K(x, v): LINEAR x.v, POLY (gamma x.v + coef0)^degree, RBF exp(-gamma |x - v|^2),
// SIGMOID tanh(gamma x.v + coef0).
float kernel_value(const SvmKernel& k, const float* x, const float* v, int64_t n) {
  if (k.type == Kernel::Rbf) {
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      float d = x[i] - v[i];
      sum += d * d;
    }
    return std::exp(-k.gamma * sum);
  }
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += double(x[i]) * v[i];
  if (k.type == Kernel::Linear) return static_cast<float>(dot);
  float z = k.gamma * static_cast<float>(dot) + k.coef0;
  if (k.type == Kernel::Poly) return std::pow(z, k.degree);
  return std::tanh(z);
}

// libsvm's pairwise coupling (Wu, Lin & Weng 2004, "Probability estimates for multi-class
// classification by pairwise coupling", method 2) from the pairwise probabilities r (k x k),
// in float as onnxruntime's multiclass_probability.
void multiclass_probability(int64_t k, const std::vector<float>& r, float* p) {
  std::vector<float> q(k * k, 0.f), qp(k, 0.f);
  float eps = 0.005f / static_cast<float>(k);
  for (int64_t i = 0; i < k; ++i) {
    p[i] = 1.0f / static_cast<float>(k);
    for (int64_t j = 0; j < i; ++j) {
      q[i * k + i] += r[j * k + i] * r[j * k + i];
      q[i * k + j] = q[j * k + i];
    }
    for (int64_t j = i + 1; j < k; ++j) {
      q[i * k + i] += r[j * k + i] * r[j * k + i];
      q[i * k + j] = -r[j * k + i] * r[i * k + j];
    }
  }
  for (int loop = 0; loop < 100; ++loop) {
    float pqp = 0;
    for (int64_t i = 0; i < k; ++i) {
      qp[i] = 0;
      for (int64_t j = 0; j < k; ++j) qp[i] += q[i * k + j] * p[j];
      pqp += p[i] * qp[i];
    }
    float max_error = 0;
    for (int64_t i = 0; i < k; ++i) max_error = std::max(max_error, std::fabs(qp[i] - pqp));
    if (max_error < eps) break;
    for (int64_t i = 0; i < k; ++i) {
      float diff = (-qp[i] + pqp) / q[i * k + i];
      p[i] += diff;
      pqp = (pqp + diff * (diff * q[i * k + i] + 2 * qp[i])) / (1 + diff) / (1 + diff);
      for (int64_t j = 0; j < k; ++j) {
        qp[j] = (qp[j] + diff * q[i * k + j]) / (1 + diff);
        p[j] /= (1 + diff);
      }
    }
  }
}

// SVMClassifier. With support vectors (libsvm SVC): one-vs-one decision values
// d_ij = sum_{v in i} a_{j-1,v} K(x,v) + sum_{v in j} a_{i,v} K(x,v) + rho_ij, one vote for i when
// d_ij > 0 else for j, label = most votes; scores are the d_ij (two classes: two columns), or with
// prob_a/prob_b the Platt probabilities 1 - sigmoid(A d + B) coupled into class probabilities.
// Without support vectors (liblinear): scores_c = x.w_c + rho_0, label = argmax.
void svm_classifier_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  SvmKernel kernel = svm_kernel(ctx);
  std::vector<int64_t> per_class = attr_ints(ctx, "vectors_per_class");
  std::vector<float> sv = attr_floats(ctx, "support_vectors"), coef = attr_floats(ctx, "coefficients");
  std::vector<float> rho = attr_floats(ctx, "rho"), prob_a = attr_floats(ctx, "prob_a"), prob_b = attr_floats(ctx, "prob_b");
  ClassLabels labels = class_labels(ctx, "classlabels_ints");
  PostTransform pt = parse_post_transform(ctx, ctx.node.get_string("post_transform", "NONE"));
  const int64_t classes = static_cast<int64_t>(labels.size());
  if (classes < 1) op_error(ctx, "no class labels (classlabels_ints or classlabels_strings)");
  if (classes >= 65536) op_error(ctx, fmt::format("{} classes: at most 65535 are supported", classes));
  if (coef.empty()) op_error(ctx, "attribute 'coefficients' is empty");
  if (prob_a.size() != prob_b.size())
    op_error(ctx, fmt::format("prob_a has {} values, prob_b {}", prob_a.size(), prob_b.size()));
  int64_t vectors = 0;
  std::vector<int64_t> start;
  for (int64_t c : per_class) {
    if (c < 0 || c > (int64_t(1) << 31)) op_error(ctx, fmt::format("vectors_per_class value {} is invalid", c));
    start.push_back(vectors);
    vectors += c;
  }
  const bool svc = vectors > 0;
  const int64_t pairs = classes * (classes - 1) / 2;
  const bool have_proba = !prob_a.empty();
  if (rho.empty()) op_error(ctx, "attribute 'rho' is empty");
  if (svc) {
    if (static_cast<int64_t>(per_class.size()) != classes)
      op_error(ctx, fmt::format("vectors_per_class has {} entries for {} classes", per_class.size(), classes));
    if (static_cast<int64_t>(sv.size()) != vectors * x.width)
      op_error(ctx, fmt::format("{} support vector values for {} vectors of the input's {} features", sv.size(), vectors,
                                x.width));
    if (static_cast<int64_t>(coef.size()) < (classes - 1) * vectors)
      op_error(ctx, fmt::format("{} coefficients, expected (classes - 1) x vectors = {}", coef.size(), (classes - 1) * vectors));
    if (static_cast<int64_t>(rho.size()) < pairs)
      op_error(ctx, fmt::format("rho has {} values for {} class pairs", rho.size(), pairs));
    if (have_proba && static_cast<int64_t>(prob_a.size()) < pairs)
      op_error(ctx, fmt::format("prob_a has {} values for {} class pairs", prob_a.size(), pairs));
  } else if (static_cast<int64_t>(coef.size()) != classes * x.width) {
    op_error(ctx, fmt::format("{} coefficients for {} classes and {} input features (expected {})", coef.size(), classes,
                              x.width, classes * x.width));
  }
  const bool all_positive = std::all_of(coef.begin(), coef.end(), [](float v) { return v >= 0.f; });
  int64_t cols = classes;
  if (svc && !have_proba) cols = classes > 2 ? pairs : 2;
  // One score expanded to two columns in the two-class SVC without probabilities.
  int add_second_class = -1;
  int64_t raw_scores = classes;
  if (svc && !have_proba) {
    raw_scores = pairs;
    if (classes <= 2) add_second_class = pt == PostTransform::None ? 2 : 0;
  }
  Tensor label = label_tensor(labels, x.n);
  Tensor scores(DType::Float32, {x.n, cols});
#pragma omp parallel for schedule(static) if (x.n * std::max<int64_t>(vectors, classes) * x.width > kParallelWork)
  for (int64_t r = 0; r < x.n; ++r) {
    const float* row = x.row(r);
    float* s = scores.f32() + r * cols;
    std::vector<int64_t> votes;
    float max_weight = 0;
    int64_t best = 0;
    if (!svc) {
      // liblinear: a linear kernel against each class's coefficient row, plus rho[0].
      for (int64_t c = 0; c < classes; ++c) {
        double dot = 0;
        for (int64_t f = 0; f < x.width; ++f) dot += double(row[f]) * coef[c * x.width + f];
        s[c] = static_cast<float>(dot) + rho[0];
      }
      for (int64_t c = 1; c < classes; ++c)
        if (s[c] > s[best]) best = c;
      max_weight = s[best];
    } else {
      std::vector<float> k(vectors);
      for (int64_t v = 0; v < vectors; ++v) k[v] = kernel_value(kernel, row, sv.data() + v * x.width, x.width);
      std::vector<float> decision(pairs);
      votes.assign(classes, 0);
      int64_t idx = 0;
      for (int64_t i = 0; i < classes - 1; ++i) {
        for (int64_t j = i + 1; j < classes; ++j) {
          double sum = 0;
          for (int64_t m = 0; m < per_class[i]; ++m) sum += coef[(j - 1) * vectors + start[i] + m] * k[start[i] + m];
          for (int64_t m = 0; m < per_class[j]; ++m) sum += coef[i * vectors + start[j] + m] * k[start[j] + m];
          sum += rho[idx];
          decision[idx++] = static_cast<float>(sum);
          ++votes[sum > 0 ? i : j];
        }
      }
      if (have_proba) {
        // Platt: P(i beats j) = 1 - sigmoid(A d_ij + B), clipped to [1e-7, 1 - 1e-7].
        std::vector<float> r2(classes * classes, 0.f);
        int64_t index = 0;
        for (int64_t i = 0; i < classes - 1; ++i) {
          for (int64_t j = i + 1; j < classes; ++j, ++index) {
            float val1 = 1 - logistic(decision[index] * prob_a[index] + prob_b[index]);
            float val2 = std::min(std::max(val1, 1.0e-7f), 1 - 1.0e-7f);
            r2[i * classes + j] = val2;
            r2[j * classes + i] = 1 - val2;
          }
        }
        multiclass_probability(classes, r2, s);
      } else {
        std::copy(decision.begin(), decision.end(), s);
      }
      best = std::max_element(votes.begin(), votes.end()) - votes.begin();
    }
    int64_t chosen;
    if (pairs == 1) {
      // Two classes (onnxruntime's ChooseClass).
      if (!have_proba && ((all_positive && max_weight >= 0.5f) || (max_weight > 0 && !all_positive)))
        chosen = labels.ints[1];
      else
        chosen = labels.ints[best];
    } else {
      chosen = labels.ints[best];
    }
    if (!label.empty()) label.i64()[r] = chosen;
    // Two classes without probabilities under PROBIT: [probit(d), 0] (onnxruntime leaves the
    // second column unset).
    update_scores(s, raw_scores, pt, add_second_class);
  }
  out[0] = std::move(label);
  if (out.size() > 1) out[1] = std::move(scores);
}

// SVMRegressor: y = sum_v a_v K(x, v) + rho_0 (liblinear without support vectors: x.w + rho_0);
// one_class maps y to +-1. [N, 1].
void svm_regressor_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  SvmKernel kernel = svm_kernel(ctx);
  std::vector<float> sv = attr_floats(ctx, "support_vectors"), coef = attr_floats(ctx, "coefficients");
  std::vector<float> rho = attr_floats(ctx, "rho");
  const int64_t vectors = ctx.node.get_int("n_supports", 0);
  const bool one_class = ctx.node.get_int("one_class", 0) != 0;
  if (coef.empty()) op_error(ctx, "attribute 'coefficients' is empty");
  if (rho.empty()) op_error(ctx, "attribute 'rho' is empty");
  if (vectors < 0 || vectors > (int64_t(1) << 31)) op_error(ctx, fmt::format("n_supports = {} is invalid", vectors));
  const bool svc = vectors > 0;
  if (svc) {
    if (static_cast<int64_t>(sv.size()) != vectors * x.width)
      op_error(ctx, fmt::format("{} support vector values for {} vectors of the input's {} features", sv.size(), vectors,
                                x.width));
    if (static_cast<int64_t>(coef.size()) < vectors)
      op_error(ctx, fmt::format("{} coefficients for {} support vectors", coef.size(), vectors));
  } else if (static_cast<int64_t>(coef.size()) != x.width) {
    op_error(ctx, fmt::format("{} coefficients for {} input features", coef.size(), x.width));
  }
  Tensor y(DType::Float32, {x.n, 1});
#pragma omp parallel for schedule(static) if (x.n * std::max<int64_t>(vectors, 1) * x.width > kParallelWork)
  for (int64_t r = 0; r < x.n; ++r) {
    const float* row = x.row(r);
    float v;
    if (svc) {
      double sum = rho[0];
      for (int64_t s = 0; s < vectors; ++s) sum += double(coef[s]) * kernel_value(kernel, row, sv.data() + s * x.width, x.width);
      v = static_cast<float>(sum);
    } else {
      double dot = 0;
      for (int64_t f = 0; f < x.width; ++f) dot += double(row[f]) * coef[f];
      v = static_cast<float>(dot) + rho[0];
    }
    y.f32()[r] = one_class ? (v > 0.f ? 1.f : -1.f) : v;
  }
  out[0] = std::move(y);
}

// ---------------------------------------------------------------- tree ensembles
//
// The attribute arrays describe nodes by (tree id, node id) with child node ids; they are
// flattened per call into an array of nodes whose children are array indices, after every id,
// feature index and class/target id has been checked (so evaluation reads nothing it has not
// validated) and the trees checked for cycles. Building costs O(nodes) next to O(rows x depth x
// trees) for evaluation; nothing is cached across calls (a cache keyed by node address could
// outlive its graph).

enum class Mode : uint8_t { Leq, Lt, Gte, Gt, Eq, Neq, Member, Leaf };
enum class Aggregate { Average, Sum, Min, Max };

struct TreeNode {
  Mode mode = Mode::Leaf;
  bool missing_true = false;    ///< NaN feature takes the true branch
  int64_t feature = 0;
  float threshold = 0;
  int32_t true_child = -1, false_child = -1;
  int32_t set_begin = 0, set_size = 0;        ///< Member: values in Ensemble::sets
  int32_t weight_begin = 0, weight_count = 0;  ///< Leaf: entries of Ensemble::weights
  float single = 0;                           ///< Leaf: value used with one target (first weight)
};

struct LeafWeight {
  int64_t target;
  float value;
};

struct Ensemble {
  std::vector<TreeNode> nodes;
  std::vector<int32_t> roots;
  std::vector<LeafWeight> weights;
  std::vector<float> sets;
  std::vector<float> base_values;
  int64_t targets = 0;
  int64_t max_feature = -1;
  PostTransform post = PostTransform::None;
  Aggregate aggregate = Aggregate::Sum;
  /// The comparison every branch node uses when they all use one of Leq, Lt, Gte, Gt (as
  /// scikit-learn's, XGBoost's and LightGBM's exports do); Member otherwise.
  Mode uniform = Mode::Member;
  /// With a uniform comparison: the nodes in a compact form for walking (a leaf's children are
  /// itself) and each tree's depth, its longest root-to-leaf path in branch steps.
  struct WalkNode {
    int32_t feature = 0;
    float threshold = 0;
    int32_t child[2] = {0, 0};  ///< [false, true]
    int32_t missing_true = 0;   ///< NaN takes the true child
  };
  std::vector<WalkNode> walk;
  std::vector<int32_t> depth;  ///< per root
};

// Sets Ensemble::uniform and, when there is one, the walk nodes and tree depths.
void prepare_block_walk(Ensemble& e) {
  Mode m = Mode::Leaf;
  for (const TreeNode& nd : e.nodes) {
    if (nd.mode == Mode::Leaf) continue;
    if (m == Mode::Leaf) m = nd.mode;
    if (nd.mode != m) {
      e.uniform = Mode::Member;
      return;
    }
  }
  e.uniform = (m == Mode::Leq || m == Mode::Lt || m == Mode::Gte || m == Mode::Gt) ? m : Mode::Member;
  if (e.uniform == Mode::Member) return;
  e.walk.resize(e.nodes.size());
  for (size_t i = 0; i < e.nodes.size(); ++i) {
    const TreeNode& nd = e.nodes[i];
    Ensemble::WalkNode& w = e.walk[i];
    if (nd.mode == Mode::Leaf) {
      w.child[0] = w.child[1] = int32_t(i);
      continue;
    }
    w.feature = int32_t(nd.feature);
    w.threshold = nd.threshold;
    w.child[0] = nd.false_child;
    w.child[1] = nd.true_child;
    w.missing_true = nd.missing_true;
  }
  // Depths by a walk from each root (the trees were checked acyclic when built).
  e.depth.assign(e.roots.size(), 0);
  std::vector<std::pair<int32_t, int32_t>> stack;
  for (size_t t = 0; t < e.roots.size(); ++t) {
    stack.assign(1, {e.roots[t], 0});
    while (!stack.empty()) {
      const auto [i, d] = stack.back();
      stack.pop_back();
      const TreeNode& nd = e.nodes[size_t(i)];
      if (nd.mode == Mode::Leaf) {
        e.depth[t] = std::max(e.depth[t], d);
        continue;
      }
      stack.push_back({nd.true_child, d + 1});
      stack.push_back({nd.false_child, d + 1});
    }
  }
}

Mode parse_mode(const OpContext& ctx, const std::string& s) {
  if (s == "BRANCH_LEQ") return Mode::Leq;
  if (s == "BRANCH_LT") return Mode::Lt;
  if (s == "BRANCH_GTE") return Mode::Gte;
  if (s == "BRANCH_GT") return Mode::Gt;
  if (s == "BRANCH_EQ") return Mode::Eq;
  if (s == "BRANCH_NEQ") return Mode::Neq;
  if (s == "LEAF") return Mode::Leaf;
  op_error(ctx, fmt::format("unknown node mode '{}'", s));
}

Aggregate parse_aggregate(const OpContext& ctx, const std::string& s) {
  if (s == "AVERAGE") return Aggregate::Average;
  if (s == "SUM") return Aggregate::Sum;
  if (s == "MIN") return Aggregate::Min;
  if (s == "MAX") return Aggregate::Max;
  op_error(ctx, fmt::format("unknown aggregate_function '{}' (AVERAGE, SUM, MIN, MAX)", s));
}

// Every tree reachable from the roots must be acyclic (shared subtrees are allowed:
// converters point several branches at one child). Iterative DFS with colours.
void check_acyclic(const OpContext& ctx, const Ensemble& e, const std::function<std::string(int32_t)>& name_of) {
  std::vector<uint8_t> colour(e.nodes.size(), 0);  // 0 new, 1 on the stack, 2 done
  std::vector<std::pair<int32_t, int>> stack;
  for (int32_t root : e.roots) {
    if (colour[root] == 2) continue;
    stack.push_back({root, 0});
    colour[root] = 1;
    while (!stack.empty()) {
      auto& [i, next] = stack.back();
      const TreeNode& nd = e.nodes[i];
      if (nd.mode == Mode::Leaf || next == 2) {
        colour[i] = 2;
        stack.pop_back();
        continue;
      }
      int32_t child = next == 0 ? nd.false_child : nd.true_child;
      ++next;
      if (colour[child] == 1) op_error(ctx, fmt::format("the trees contain a cycle through {}", name_of(child)));
      if (colour[child] == 0) {
        colour[child] = 1;
        stack.push_back({child, 0});
      }
    }
  }
}

struct PairHash {
  size_t operator()(const std::pair<int64_t, int64_t>& p) const {
    return std::hash<int64_t>()(p.first) * 1000003u ^ std::hash<int64_t>()(p.second);
  }
};

// TreeEnsembleClassifier / TreeEnsembleRegressor (ml opset 1 and 3): nodes_* arrays keyed by
// (tree id, node id); leaf weights in class_* (classifier) or target_* (regressor) arrays.
Ensemble build_ensemble_v3(const OpContext& ctx, bool classifier, int64_t targets) {
  Ensemble e;
  std::vector<std::string> modes = attr_strings(ctx, "nodes_modes");
  std::vector<int64_t> node_ids = attr_ints(ctx, "nodes_nodeids"), tree_ids = attr_ints(ctx, "nodes_treeids");
  std::vector<int64_t> features = attr_ints(ctx, "nodes_featureids");
  std::vector<int64_t> true_ids = attr_ints(ctx, "nodes_truenodeids"), false_ids = attr_ints(ctx, "nodes_falsenodeids");
  std::vector<int64_t> missing = attr_ints(ctx, "nodes_missing_value_tracks_true");
  std::vector<float> values = attr_floats_or_tensor(ctx, "nodes_values", "nodes_values_as_tensor");
  const size_t n = modes.size();
  auto same_length = [&](size_t size, const char* name) {
    if (size != n)
      op_error(ctx, fmt::format("attribute '{}' has {} entries, nodes_modes has {}: the nodes_* arrays must have the same length",
                                name, size, n));
  };
  same_length(node_ids.size(), "nodes_nodeids");
  same_length(tree_ids.size(), "nodes_treeids");
  same_length(features.size(), "nodes_featureids");
  same_length(true_ids.size(), "nodes_truenodeids");
  same_length(false_ids.size(), "nodes_falsenodeids");
  same_length(values.size(), "nodes_values");
  if (!missing.empty()) same_length(missing.size(), "nodes_missing_value_tracks_true");
  if (n == 0) op_error(ctx, "the ensemble has no nodes");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) op_error(ctx, "too many nodes");

  const std::string prefix = classifier ? "class_" : "target_";
  std::vector<int64_t> w_ids = attr_ints(ctx, prefix + "ids"), w_nodes = attr_ints(ctx, prefix + "nodeids");
  std::vector<int64_t> w_trees = attr_ints(ctx, prefix + "treeids");
  std::vector<float> w_values = attr_floats_or_tensor(ctx, prefix + "weights", prefix + "weights_as_tensor");
  if (w_nodes.size() != w_ids.size() || w_trees.size() != w_ids.size() || w_values.size() != w_ids.size())
    op_error(ctx, fmt::format("{}ids, {}nodeids, {}treeids and {}weights have {}, {}, {} and {} entries: they must have the "
                              "same length",
                              prefix, prefix, prefix, prefix, w_ids.size(), w_nodes.size(), w_trees.size(), w_values.size()));

  e.targets = targets;
  e.base_values = attr_floats_or_tensor(ctx, "base_values", "base_values_as_tensor");
  e.post = parse_post_transform(ctx, ctx.node.get_string("post_transform", "NONE"));
  e.aggregate = classifier ? Aggregate::Sum : parse_aggregate(ctx, ctx.node.get_string("aggregate_function", "SUM"));
  if (classifier) {
    if (targets > 2 && !e.base_values.empty() && static_cast<int64_t>(e.base_values.size()) != targets)
      op_error(ctx, fmt::format("base_values has {} values for {} classes (expected 0 or {})", e.base_values.size(), targets,
                                targets));
    if (targets <= 2 && e.base_values.size() > 2)
      op_error(ctx, fmt::format("base_values has {} values for a binary classifier (expected at most 2)", e.base_values.size()));
  } else if (!e.base_values.empty() && static_cast<int64_t>(e.base_values.size()) != targets) {
    op_error(ctx, fmt::format("base_values has {} values for {} targets (expected 0 or {})", e.base_values.size(), targets,
                              targets));
  }

  std::unordered_map<std::pair<int64_t, int64_t>, int32_t, PairHash> index;
  index.reserve(n);
  auto name_of = [&](int32_t i) { return fmt::format("node {} of tree {}", node_ids[i], tree_ids[i]); };
  for (size_t i = 0; i < n; ++i) {
    if (!index.emplace(std::make_pair(tree_ids[i], node_ids[i]), static_cast<int32_t>(i)).second)
      op_error(ctx, fmt::format("{} is defined twice", name_of(i)));
  }
  e.nodes.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TreeNode& nd = e.nodes[i];
    nd.mode = parse_mode(ctx, modes[i]);
    nd.threshold = values[i];
    nd.single = values[i];
    nd.missing_true = !missing.empty() && missing[i] == 1;
    if (nd.mode == Mode::Leaf) continue;
    nd.feature = features[i];
    if (nd.feature < 0) op_error(ctx, fmt::format("{} has a negative feature index {}", name_of(i), nd.feature));
    e.max_feature = std::max(e.max_feature, nd.feature);
    auto child = [&](int64_t id, const char* which) {
      auto it = index.find({tree_ids[i], id});
      if (it == index.end())
        op_error(ctx, fmt::format("{}: {} branch points to node id {}, which tree {} does not have", name_of(i), which, id,
                                  tree_ids[i]));
      if (it->second == static_cast<int32_t>(i)) op_error(ctx, fmt::format("{}: {} branch points to itself", name_of(i), which));
      return it->second;
    };
    nd.true_child = child(true_ids[i], "true");
    nd.false_child = child(false_ids[i], "false");
  }
  // A tree starts wherever the tree id changes along the arrays (onnxruntime's convention).
  for (size_t i = 0; i < n; ++i)
    if (i == 0 || tree_ids[i] != tree_ids[i - 1]) e.roots.push_back(static_cast<int32_t>(i));

  // Leaf weights, each leaf's in attribute order; weights on a non-leaf are ignored (old
  // onnxmltools wrote some), as onnxruntime does.
  std::vector<std::vector<LeafWeight>> per_leaf(n);
  for (size_t j = 0; j < w_ids.size(); ++j) {
    auto it = index.find({w_trees[j], w_nodes[j]});
    if (it == index.end())
      op_error(ctx, fmt::format("{}weights entry {} refers to node {} of tree {}, which does not exist", prefix, j, w_nodes[j],
                                w_trees[j]));
    if (w_ids[j] < 0 || w_ids[j] >= targets)
      op_error(ctx, fmt::format("{}ids value {} out of range [0, {})", prefix, w_ids[j], targets));
    if (e.nodes[it->second].mode != Mode::Leaf) continue;
    per_leaf[it->second].push_back({w_ids[j], w_values[j]});
  }
  for (size_t i = 0; i < n; ++i) {
    TreeNode& nd = e.nodes[i];
    nd.weight_begin = static_cast<int32_t>(e.weights.size());
    nd.weight_count = static_cast<int32_t>(per_leaf[i].size());
    if (!per_leaf[i].empty()) nd.single = per_leaf[i][0].value;
    e.weights.insert(e.weights.end(), per_leaf[i].begin(), per_leaf[i].end());
  }
  check_acyclic(ctx, e, name_of);
  prepare_block_walk(e);
  return e;
}

// TreeEnsemble (ml opset 5): interior nodes in nodes_*, leaves in leaf_*; a child is a node or
// (nodes_trueleafs / nodes_falseleafs) a leaf index; trees start at tree_roots.
Ensemble build_ensemble_v5(const OpContext& ctx) {
  Ensemble e;
  auto tensor_values = [&](const std::string& name, bool required) -> std::vector<double> {
    const Tensor* t = attr_tensor(ctx, name);
    if (!t) {
      if (required) op_error(ctx, fmt::format("attribute '{}' is missing", name));
      return {};
    }
    if (t->dtype() != DType::Float32 && t->dtype() != DType::Int64)
      op_error(ctx, fmt::format("attribute '{}' is a {} tensor", name, dtype_name(t->dtype())));
    return t->to_doubles();
  };
  std::vector<double> modes = tensor_values("nodes_modes", true);
  std::vector<double> splits = tensor_values("nodes_splits", false);
  std::vector<double> leaf_weights = tensor_values("leaf_weights", true);
  std::vector<double> members = tensor_values("membership_values", false);
  std::vector<int64_t> features = attr_ints(ctx, "nodes_featureids");
  std::vector<int64_t> true_ids = attr_ints(ctx, "nodes_truenodeids"), false_ids = attr_ints(ctx, "nodes_falsenodeids");
  std::vector<int64_t> true_leafs = attr_ints(ctx, "nodes_trueleafs"), false_leafs = attr_ints(ctx, "nodes_falseleafs");
  std::vector<int64_t> missing = attr_ints(ctx, "nodes_missing_value_tracks_true");
  std::vector<int64_t> leaf_targets = attr_ints(ctx, "leaf_targetids");
  std::vector<int64_t> roots = attr_ints(ctx, "tree_roots");
  const size_t n = modes.size(), leaves = leaf_weights.size();
  auto same_length = [&](size_t size, const char* name) {
    if (size != n)
      op_error(ctx, fmt::format("attribute '{}' has {} entries, nodes_modes has {}: the nodes_* arrays must have the same length",
                                name, size, n));
  };
  same_length(features.size(), "nodes_featureids");
  same_length(true_ids.size(), "nodes_truenodeids");
  same_length(false_ids.size(), "nodes_falsenodeids");
  same_length(true_leafs.size(), "nodes_trueleafs");
  same_length(false_leafs.size(), "nodes_falseleafs");
  if (!missing.empty()) same_length(missing.size(), "nodes_missing_value_tracks_true");
  if (leaf_targets.size() != leaves)
    op_error(ctx, fmt::format("leaf_targetids has {} entries, leaf_weights {}: they must have the same length",
                              leaf_targets.size(), leaves));
  if (n + leaves > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) op_error(ctx, "too many nodes");
  e.targets = ctx.node.get_int("n_targets", 0);
  if (e.targets < 1 || e.targets > (int64_t(1) << 24)) op_error(ctx, fmt::format("n_targets = {} is invalid", e.targets));
  // Enumerations of version 5: aggregate 0 AVERAGE, 1 SUM, 2 MIN, 3 MAX. post_transform as
  // onnxruntime reads it (its own enum order): 0 NONE, 1 LOGISTIC, 2 SOFTMAX, 3 SOFTMAX_ZERO,
  // 4 PROBIT. The ONNX spec lists 1 as SOFTMAX and 2 as LOGISTIC; onnxruntime, the reference
  // these kernels follow, swaps them (checked by tree_ensemble_v5_post1/post2).
  switch (ctx.node.get_int("aggregate_function", 1)) {
    case 0: e.aggregate = Aggregate::Average; break;
    case 1: e.aggregate = Aggregate::Sum; break;
    case 2: e.aggregate = Aggregate::Min; break;
    case 3: e.aggregate = Aggregate::Max; break;
    default: op_error(ctx, fmt::format("aggregate_function = {} is invalid (0..3)", ctx.node.get_int("aggregate_function", 1)));
  }
  switch (ctx.node.get_int("post_transform", 0)) {
    case 0: e.post = PostTransform::None; break;
    case 1: e.post = PostTransform::Logistic; break;
    case 2: e.post = PostTransform::Softmax; break;
    case 3: e.post = PostTransform::SoftmaxZero; break;
    case 4: e.post = PostTransform::Probit; break;
    default: op_error(ctx, fmt::format("post_transform = {} is invalid (0..4)", ctx.node.get_int("post_transform", 0)));
  }
  // Interior nodes at [0, n), leaves at [n, n + leaves).
  e.nodes.resize(n + leaves);
  size_t member_pos = 0;
  for (size_t i = 0; i < n; ++i) {
    TreeNode& nd = e.nodes[i];
    double m = modes[i];
    if (!(m >= 0 && m <= 6) || m != std::floor(m)) op_error(ctx, fmt::format("node {} has an invalid mode {}", i, m));
    nd.mode = static_cast<Mode>(static_cast<int>(m));
    nd.missing_true = !missing.empty() && missing[i] == 1;
    nd.feature = features[i];
    if (nd.feature < 0) op_error(ctx, fmt::format("node {} has a negative feature index {}", i, nd.feature));
    e.max_feature = std::max(e.max_feature, nd.feature);
    if (nd.mode == Mode::Member) {
      // This node's set: the next run of membership_values up to a NaN separator.
      nd.set_begin = static_cast<int32_t>(e.sets.size());
      while (member_pos < members.size() && !std::isnan(members[member_pos]))
        e.sets.push_back(static_cast<float>(members[member_pos++]));
      ++member_pos;
      nd.set_size = static_cast<int32_t>(e.sets.size()) - nd.set_begin;
    } else {
      if (splits.size() != n)
        op_error(ctx, fmt::format("nodes_splits has {} entries for {} nodes", splits.size(), n));
      nd.threshold = static_cast<float>(splits[i]);
    }
    auto child = [&](int64_t id, int64_t is_leaf, const char* which) -> int32_t {
      if (is_leaf) {
        if (id < 0 || id >= static_cast<int64_t>(leaves))
          op_error(ctx, fmt::format("node {}: {} leaf index {} out of range [0, {})", i, which, id, leaves));
        return static_cast<int32_t>(n + id);
      }
      if (id < 0 || id >= static_cast<int64_t>(n))
        op_error(ctx, fmt::format("node {}: {} node index {} out of range [0, {})", i, which, id, n));
      if (id == static_cast<int64_t>(i)) op_error(ctx, fmt::format("node {}: {} branch points to itself", i, which));
      return static_cast<int32_t>(id);
    };
    nd.true_child = child(true_ids[i], true_leafs[i], "true");
    nd.false_child = child(false_ids[i], false_leafs[i], "false");
  }
  for (size_t l = 0; l < leaves; ++l) {
    if (leaf_targets[l] < 0 || leaf_targets[l] >= e.targets)
      op_error(ctx, fmt::format("leaf_targetids value {} out of range [0, {})", leaf_targets[l], e.targets));
    TreeNode& nd = e.nodes[n + l];
    nd.mode = Mode::Leaf;
    nd.weight_begin = static_cast<int32_t>(l);
    nd.weight_count = 1;
    nd.single = static_cast<float>(leaf_weights[l]);
    e.weights.push_back({leaf_targets[l], static_cast<float>(leaf_weights[l])});
  }
  if (roots.empty()) op_error(ctx, "attribute 'tree_roots' is empty");
  for (int64_t r : roots) {
    if (r < 0 || r >= static_cast<int64_t>(n))
      op_error(ctx, fmt::format("tree_roots value {} out of range [0, {})", r, n));
    const TreeNode& nd = e.nodes[r];
    // A one-leaf tree: a node whose two branches are the same leaf.
    bool leaf_tree = true_leafs[r] && false_leafs[r] && true_ids[r] == false_ids[r];
    e.roots.push_back(leaf_tree ? nd.true_child : static_cast<int32_t>(r));
  }
  check_acyclic(ctx, e, [n](int32_t i) {
    return i < static_cast<int32_t>(n) ? fmt::format("node {}", i) : fmt::format("leaf {}", i - static_cast<int32_t>(n));
  });
  prepare_block_walk(e);
  return e;
}

// The leaf a row reaches from `root` (onnxruntime's ProcessTreeNodeLeave: a NaN feature takes
// the true branch when the node says so, otherwise the comparison decides).
inline const TreeNode& leaf_of(const Ensemble& e, int32_t root, const float* x) {
  const TreeNode* nd = &e.nodes[root];
  while (nd->mode != Mode::Leaf) {
    float v = x[nd->feature];
    bool t;
    switch (nd->mode) {
      case Mode::Leq: t = v <= nd->threshold; break;
      case Mode::Lt: t = v < nd->threshold; break;
      case Mode::Gte: t = v >= nd->threshold; break;
      case Mode::Gt: t = v > nd->threshold; break;
      case Mode::Eq: t = v == nd->threshold; break;
      case Mode::Neq: t = v != nd->threshold; break;
      case Mode::Member:
        t = std::find(e.sets.begin() + nd->set_begin, e.sets.begin() + nd->set_begin + nd->set_size, v) !=
            e.sets.begin() + nd->set_begin + nd->set_size;
        break;
      default: t = false;
    }
    if (!t && nd->missing_true && std::isnan(v)) t = true;
    nd = &e.nodes[t ? nd->true_child : nd->false_child];
  }
  return *nd;
}

// The leaves of `k` (<= kTreeBlock) rows in one tree whose branch nodes all compare with M: the
// rows walk the tree side by side, each step an index into the node's two children rather than a
// branch on the comparison (a random forest's walks mispredicted about every other node). Each
// row reaches the leaf leaf_of gives (the same comparisons, NaN to the true side where
// missing_true).
constexpr int kTreeBlock = 8;

template <Mode M>
inline bool branch_true(float v, float threshold) {
  if constexpr (M == Mode::Leq) return v <= threshold;
  else if constexpr (M == Mode::Lt) return v < threshold;
  else if constexpr (M == Mode::Gte) return v >= threshold;
  else return v > threshold;
}

template <Mode M>
void leaves_of_block(const Ensemble& e, size_t tree, const float* const* rows, int k, const TreeNode** out) {
  // Every row takes the tree's depth in steps; one that reaches its leaf early stays there (a
  // leaf's children are itself), so the walk has no branch on the data.
  int32_t at[kTreeBlock];
  for (int i = 0; i < k; ++i) at[i] = e.roots[tree];
  const Ensemble::WalkNode* walk = e.walk.data();
  for (int32_t step = 0; step < e.depth[tree]; ++step)
    for (int i = 0; i < k; ++i) {
      const Ensemble::WalkNode& w = walk[at[i]];
      const float v = rows[i][w.feature];
      const int t = int(branch_true<M>(v, w.threshold)) | (w.missing_true & int(std::isnan(v)));
      at[i] = w.child[t];
    }
  for (int i = 0; i < k; ++i) out[i] = &e.nodes[size_t(at[i])];
}

// Calls visit(i, tree_index, leaf) for every row i < k of `rows` and every tree, trees in order
// for each row (so a row's scores add up in the same order as one leaf_of per tree).
template <class Visit>
void for_each_leaf(const Ensemble& e, const float* const* rows, int k, Visit visit) {
  const TreeNode* leaves[kTreeBlock];
  for (size_t t = 0; t < e.roots.size(); ++t) {
    const int32_t root = e.roots[t];
    switch (k == 1 ? Mode::Member : e.uniform) {  // one row: the walk that stops at its leaf
      case Mode::Leq: leaves_of_block<Mode::Leq>(e, t, rows, k, leaves); break;
      case Mode::Lt: leaves_of_block<Mode::Lt>(e, t, rows, k, leaves); break;
      case Mode::Gte: leaves_of_block<Mode::Gte>(e, t, rows, k, leaves); break;
      case Mode::Gt: leaves_of_block<Mode::Gt>(e, t, rows, k, leaves); break;
      default:
        for (int i = 0; i < k; ++i) leaves[i] = &leaf_of(e, root, rows[i]);
    }
    for (int i = 0; i < k; ++i) visit(i, t, *leaves[i]);
  }
}

// A per-target accumulator with onnxruntime's "has a score" flag: a target no leaf reached
// is written as 0.
struct Score {
  float value = 0;
  bool has = false;
  float effective() const { return has ? value : 0.f; }
};

void accumulate(const Ensemble& e, const TreeNode& leaf, std::vector<Score>& p) {
  for (int32_t k = 0; k < leaf.weight_count; ++k) {
    const LeafWeight& w = e.weights[leaf.weight_begin + k];
    Score& s = p[w.target];
    switch (e.aggregate) {
      case Aggregate::Sum:
      case Aggregate::Average: s.value += w.value; break;
      case Aggregate::Min: s.value = !s.has || w.value < s.value ? w.value : s.value; break;
      case Aggregate::Max: s.value = !s.has || w.value > s.value ? w.value : s.value; break;
    }
    s.has = true;
  }
}

// onnxruntime's write_scores for tree scores: several scores get the post transform; one score
// gets PROBIT or is expanded to two columns (add_second_class), else is written alone.
void write_tree_scores(const std::vector<Score>& p, PostTransform pt, float* z, int add_second_class) {
  if (p.size() >= 2) {
    for (size_t k = 0; k < p.size(); ++k) z[k] = p[k].effective();
    transform_all(z, static_cast<int64_t>(p.size()), pt);
  } else if (p.size() == 1) {
    float v = p[0].effective();
    if (pt == PostTransform::Probit) z[0] = probit(v);
    else if (add_second_class >= 0 && add_second_class <= 3) second_class(v, pt, add_second_class, z);
    else z[0] = v;
  }
}

// Regressor output [N, targets]: one target sums each tree's leaf value (first weight) and
// applies only PROBIT; several targets accumulate every leaf weight into its target.
Tensor evaluate_regressor(const OpContext& ctx, const Ensemble& e, const Rows& x) {
  if (e.max_feature >= x.width)
    op_error(ctx, fmt::format("feature index {} beyond the input width {}", e.max_feature, x.width));
  Tensor y(DType::Float32, {x.n, e.targets});
  const int64_t trees = static_cast<int64_t>(e.roots.size());
  const float origin = e.base_values.size() == 1 ? e.base_values[0] : 0.f;
  const bool use_base = static_cast<int64_t>(e.base_values.size()) == e.targets;
  // Blocks of kTreeBlock rows walk each tree side by side (for_each_leaf).
  const int64_t blocks = (x.n + kTreeBlock - 1) / kTreeBlock;
#pragma omp parallel for schedule(dynamic, 2) if (x.n * trees > 4096)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * kTreeBlock;
    const int k = int(std::min<int64_t>(kTreeBlock, x.n - r0));
    const float* rows[kTreeBlock];
    for (int i = 0; i < k; ++i) rows[i] = x.row(r0 + i);
    std::vector<Score> single(static_cast<size_t>(k));
    std::vector<std::vector<Score>> ps(e.targets == 1 ? 0 : static_cast<size_t>(k), std::vector<Score>(static_cast<size_t>(e.targets)));
    for_each_leaf(e, rows, k, [&](int i, size_t, const TreeNode& leaf) {
      if (e.targets != 1) return accumulate(e, leaf, ps[size_t(i)]);
      Score& s = single[size_t(i)];
      const float v = leaf.single;
      switch (e.aggregate) {
        case Aggregate::Sum:
        case Aggregate::Average: s.value += v; break;
        case Aggregate::Min: s.value = !s.has || v < s.value ? v : s.value; break;
        case Aggregate::Max: s.value = !s.has || v > s.value ? v : s.value; break;
      }
      s.has = true;
    });
    for (int i = 0; i < k; ++i) {
    const int64_t r = r0 + i;
    float* z = y.f32() + r * e.targets;
    if (e.targets == 1) {
      const Score& s = single[size_t(i)];
      float val;
      if (e.aggregate == Aggregate::Sum) val = s.value + origin;
      else if (e.aggregate == Aggregate::Average) val = s.value / static_cast<float>(trees) + origin;
      else val = s.has ? s.value + origin : origin;
      z[0] = e.post == PostTransform::Probit ? probit(val) : val;
      continue;
    }
    std::vector<Score>& p = ps[size_t(i)];
    for (int64_t t = 0; t < e.targets; ++t) {
      Score& s = p[t];
      float base = use_base ? e.base_values[t] : 0.f;
      switch (e.aggregate) {
        case Aggregate::Sum: s.value += base; break;
        case Aggregate::Average: s.value = s.value / static_cast<float>(trees) + base; break;
        case Aggregate::Min:
        case Aggregate::Max: s.value = base + (s.has ? s.value : 0.f); break;
      }
    }
    write_tree_scores(p, e.post, z, -1);
    }
  }
  return y;
}

// The validated ensemble of a node, built on its first run and kept in Node::kernel_state
// (building costs O(nodes) with hash lookups: 10x a batch-1 evaluation on a 40-tree model).
std::mutex kernel_state_mutex;

template <class T, class Build>
std::shared_ptr<const T> node_state(const OpContext& ctx, Build build) {
  {
    std::lock_guard<std::mutex> lock(kernel_state_mutex);
    if (ctx.node.kernel_state) return std::static_pointer_cast<const T>(ctx.node.kernel_state);
  }
  std::shared_ptr<const T> made = std::make_shared<const T>(build());
  std::lock_guard<std::mutex> lock(kernel_state_mutex);
  if (!ctx.node.kernel_state) ctx.node.kernel_state = made;
  return std::static_pointer_cast<const T>(ctx.node.kernel_state);
}

// TreeEnsembleRegressor: [N, F] -> [N, n_targets].
void tree_ensemble_regressor_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  const int64_t targets = ctx.node.get_int("n_targets", 0);
  if (targets < 1 || targets > (int64_t(1) << 24)) op_error(ctx, fmt::format("n_targets = {} is invalid", targets));
  auto e = node_state<Ensemble>(ctx, [&] { return build_ensemble_v3(ctx, false, targets); });
  out[0] = evaluate_regressor(ctx, *e, x);
}

// TreeEnsemble (ml opset 5): [N, F] -> [N, n_targets].
void tree_ensemble_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  auto e = node_state<Ensemble>(ctx, [&] { return build_ensemble_v5(ctx); });
  out[0] = evaluate_regressor(ctx, *e, x);
}

// TreeEnsembleClassifier: (label [N], scores [N, classes]) as onnxruntime's
// TreeAggregatorClassifier: class scores are sums of leaf weights (+ base_values); the label is
// the best scored class; a binary model whose weights all go to one class turns that single
// score into two columns (see second_class).
struct ClassifierState {
  Ensemble e;
  ClassLabels labels;
  bool binary_case = false, all_positive = true;
};

void tree_ensemble_classifier_fwd(const OpContext& ctx, const Inputs& in, std::vector<Tensor>& out) {
  Rows x = rows_of(ctx, input(ctx, in, 0));
  auto state = node_state<ClassifierState>(ctx, [&] {
    ClassifierState st;
    st.labels = class_labels(ctx, "classlabels_int64s");
    const int64_t classes = static_cast<int64_t>(st.labels.size());
    if (classes < 2) op_error(ctx, fmt::format("{} class labels: a classifier needs at least 2", classes));
    st.e = build_ensemble_v3(ctx, true, classes);
    // Binary case: two classes and every class_ids entry (leaf or not, as onnxruntime counts
    // them) naming the same class.
    std::unordered_set<int64_t> weight_classes;
    for (int64_t id : attr_ints(ctx, "class_ids")) weight_classes.insert(id);
    for (float v : attr_floats_or_tensor(ctx, "class_weights", "class_weights_as_tensor")) st.all_positive &= !(v < 0);
    st.binary_case = classes == 2 && weight_classes.size() == 1;
    return st;
  });
  const Ensemble& e = state->e;
  const ClassLabels& labels = state->labels;
  const int64_t classes = static_cast<int64_t>(labels.size());
  const bool binary_case = state->binary_case, all_positive = state->all_positive;
  if (e.max_feature >= x.width)
    op_error(ctx, fmt::format("feature index {} beyond the input width {}", e.max_feature, x.width));
  Tensor label = label_tensor(labels, x.n);
  Tensor scores(DType::Float32, {x.n, classes});
  const std::vector<float>& base = e.base_values;
  // Blocks of kTreeBlock rows walk each tree side by side (for_each_leaf); then each row's
  // scores are finished on their own.
  const int64_t blocks = (x.n + kTreeBlock - 1) / kTreeBlock;
#pragma omp parallel for schedule(dynamic, 2) if (x.n * static_cast<int64_t>(e.roots.size()) > 4096)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * kTreeBlock;
    const int k = int(std::min<int64_t>(kTreeBlock, x.n - r0));
    const float* rows[kTreeBlock];
    for (int i = 0; i < k; ++i) rows[i] = x.row(r0 + i);
    std::vector<std::vector<Score>> ps(static_cast<size_t>(k), std::vector<Score>(static_cast<size_t>(classes)));
    for_each_leaf(e, rows, k, [&](int i, size_t, const TreeNode& leaf) { accumulate(e, leaf, ps[size_t(i)]); });
    for (int i = 0; i < k; ++i) {
    const int64_t r = r0 + i;
    float* z = scores.f32() + r * classes;
    std::vector<Score>& p = ps[size_t(i)];
    int add_second_class = -1;
    int64_t chosen;
    if (classes > 2) {
      for (size_t k = 0; k < base.size(); ++k) {
        if (!p[k].has) p[k].value = base[k];
        else p[k].value += base[k];
        p[k].has = true;
      }
      int64_t best = -1;
      float best_weight = 0;
      for (int64_t k = 0; k < classes; ++k)
        if (p[k].has && (best == -1 || p[k].value > best_weight)) {
          best = k;
          best_weight = p[k].value;
        }
      chosen = labels.ints[best < 0 ? 0 : best];
    } else {
      if (base.size() == 2) {
        if (p[1].has) {
          // onnxruntime: base_values[0] unused, class 1's score replaced by base_1 + score_0.
          p[1].value = base[1] + p[0].value;
          p[0].value = -p[1].value;
          p[1].has = true;
        } else {
          p[1].value += base[1];
          p[0].value += base[0];
        }
      } else if (base.size() == 1) {
        p[0].value += base[0];
        if (!p[1].has) p.pop_back();
      } else {
        add_second_class = 3;
        if (!p[1].has) p.pop_back();
      }
      // onnxruntime's _set_score_binary: the positive class's score decides.
      float pos_weight = (p.size() == 2 && p[1].has) ? p[1].value : (p[0].has ? p[0].value : 0.f);
      if (binary_case) {
        if (all_positive) {
          add_second_class = pos_weight > 0.5f ? 0 : 1;
          chosen = labels.ints[pos_weight > 0.5f ? 1 : 0];
        } else {
          add_second_class = pos_weight > 0 ? 2 : 3;
          chosen = labels.ints[pos_weight > 0 ? 1 : 0];
        }
      } else {
        chosen = pos_weight > 0 ? 1 : 0;
      }
    }
    if (!label.empty()) label.i64()[r] = chosen;
    write_tree_scores(p, e.post, z, add_second_class);
    }
  }
  out[0] = std::move(label);
  if (out.size() > 1) out[1] = std::move(scores);
}

}  // namespace

void register_ml_ops() {
  auto reg = [](const char* name, ForwardFn fwd, int64_t min_version = 1, std::vector<int64_t> unsupported = {}) {
    OpDef def;
    def.forward = fwd;
    def.backward = nullptr;
    def.differentiable = false;
    def.min_version = min_version;
    def.unsupported_versions = std::move(unsupported);
    register_op(kMlDomain, name, std::move(def));
  };
  reg("ArrayFeatureExtractor", array_feature_extractor_fwd);
  reg("Binarizer", binarizer_fwd);
  reg("FeatureVectorizer", feature_vectorizer_fwd);
  reg("Imputer", imputer_fwd);
  reg("LabelEncoder", label_encoder_fwd);
  reg("LinearClassifier", linear_classifier_fwd);
  reg("LinearRegressor", linear_regressor_fwd);
  reg("Normalizer", normalizer_fwd);
  reg("OneHotEncoder", one_hot_encoder_fwd);
  reg("Scaler", scaler_fwd);
  reg("SVMClassifier", svm_classifier_fwd);
  reg("SVMRegressor", svm_regressor_fwd);
  // Version 5 deprecates these (TreeEnsemble replaces them); onnxruntime refuses it as well.
  reg("TreeEnsembleClassifier", tree_ensemble_classifier_fwd, 1, {5});
  reg("TreeEnsembleRegressor", tree_ensemble_regressor_fwd, 1, {5});
  reg("TreeEnsemble", tree_ensemble_fwd, 5);
}

}  // namespace mlaudit::engine::detail

// ---------------------------------------------------------------- recovered ensembles (trees.h)

namespace mlaudit::engine::detail {
namespace {

[[noreturn]] void refuse(const Node& node, const std::string& why) {
  throw UnsupportedError("engine", fmt::format("{}: {} (exact tree methods need plain threshold splits summed into "
                                               "scores)", node.describe(), why));
}

}  // namespace

TreeEnsemble tree_ensemble_of_node(const Node& node, int64_t opset) {
  const OpContext ctx{node, opset};
  const bool classifier = node.op_type == "TreeEnsembleClassifier";
  Ensemble e;
  int64_t classes = 0;
  bool binary_case = false, all_positive = true;
  if (classifier) {
    classes = static_cast<int64_t>(class_labels(ctx, "classlabels_int64s").size());
    if (classes < 2) op_error(ctx, fmt::format("{} class labels: a classifier needs at least 2", classes));
    e = build_ensemble_v3(ctx, true, classes);
    std::unordered_set<int64_t> weight_classes;
    for (int64_t id : attr_ints(ctx, "class_ids")) weight_classes.insert(id);
    for (float v : attr_floats_or_tensor(ctx, "class_weights", "class_weights_as_tensor")) all_positive &= !(v < 0);
    binary_case = classes == 2 && weight_classes.size() == 1;
    if (binary_case && *weight_classes.begin() != 0)
      refuse(node, "a binary classifier whose weights all name class 1 (onnxruntime drops its base value)");
  } else if (node.op_type == "TreeEnsembleRegressor") {
    const int64_t targets = node.get_int("n_targets", 0);
    if (targets < 1 || targets > (int64_t(1) << 24)) op_error(ctx, fmt::format("n_targets = {} is invalid", targets));
    e = build_ensemble_v3(ctx, false, targets);
  } else if (node.op_type == "TreeEnsemble") {
    e = build_ensemble_v5(ctx);
  } else {
    refuse(node, "not a tree ensemble");
  }
  if (e.aggregate == Aggregate::Min || e.aggregate == Aggregate::Max) refuse(node, "a MIN/MAX aggregate");

  TreeEnsemble t;
  t.node_name = node.name;
  t.op_type = node.op_type;
  t.features = e.max_feature + 1;
  const int64_t trees = static_cast<int64_t>(e.roots.size());
  const double scale = e.aggregate == Aggregate::Average ? 1.0 / static_cast<double>(trees) : 1.0;
  if (classifier) {
    if (binary_case) {
      t.head = TreeEnsemble::Head::BinaryMargin;
      t.outputs = 1;
      t.classes = 2;
      if (e.base_values.size() > 1) refuse(node, "two base values for a one-score binary classifier");
      t.base = {e.base_values.empty() ? 0.0 : static_cast<double>(e.base_values[0])};
    } else {
      t.head = TreeEnsemble::Head::Classes;
      t.outputs = classes;
      t.classes = classes;
      if (classes == 2 && e.base_values.size() == 2)
        refuse(node, "two base values for a two-column binary classifier (onnxruntime rewrites its scores)");
      t.base.assign(classes, 0.0);
      for (size_t k = 0; k < e.base_values.size() && k < t.base.size(); ++k) t.base[k] = e.base_values[k];
    }
    switch (e.post) {
      case PostTransform::None: t.link = TreeEnsemble::Link::Identity; break;
      case PostTransform::Logistic: t.link = TreeEnsemble::Link::Logistic; break;
      case PostTransform::Softmax:
        if (binary_case) refuse(node, "post_transform SOFTMAX on a one-score binary classifier");
        t.link = TreeEnsemble::Link::Softmax;
        break;
      default: refuse(node, "post_transform PROBIT / SOFTMAX_ZERO");
    }
    t.margin_threshold = binary_case && t.link == TreeEnsemble::Link::Identity && all_positive ? 0.5 : 0.0;
  } else {
    t.head = TreeEnsemble::Head::Regression;
    t.outputs = e.targets;
    t.classes = e.targets;
    if (e.post != PostTransform::None) refuse(node, "a regressor with a post_transform");
    t.base.assign(e.targets, 0.0);
    if (e.targets == 1 && e.base_values.size() == 1) t.base[0] = e.base_values[0];
    else
      for (size_t k = 0; k < e.base_values.size() && static_cast<int64_t>(k) < e.targets; ++k) t.base[k] = e.base_values[k];
  }

  // Nodes, renumbered tree by tree in depth-first order (shared subtrees are copied, within a
  // budget: a hostile DAG could otherwise expand exponentially). Iterative: depth is untrusted.
  const int64_t K = t.outputs;
  const size_t budget = size_t(1) << 26;
  auto add = [&](int32_t i) -> int32_t {
    if (t.nodes.size() >= budget) refuse(node, "more than 2^26 nodes once shared subtrees are copied");
    const TreeNode& nd = e.nodes[i];
    const int32_t at = static_cast<int32_t>(t.nodes.size());
    t.nodes.emplace_back();
    if (nd.mode == Mode::Leaf) {
      t.nodes[at].value = static_cast<int32_t>(t.values.size());
      std::vector<double> v(K, 0.0);
      if (!classifier && K == 1) {
        v[0] = nd.single;
      } else {
        for (int32_t k = 0; k < nd.weight_count; ++k) {
          const LeafWeight& w = e.weights[nd.weight_begin + k];
          if (w.target < K) v[w.target] += w.value;
        }
      }
      for (double x : v) t.values.push_back(static_cast<float>(x * scale));
    }
    return at;
  };
  std::vector<std::pair<int32_t, int32_t>> stack;  // (source node, copy)
  for (int32_t r : e.roots) {
    t.roots.push_back(add(r));
    stack.push_back({r, t.roots.back()});
    while (!stack.empty()) {
      auto [src, at] = stack.back();
      stack.pop_back();
      const TreeNode& nd = e.nodes[src];
      if (nd.mode == Mode::Leaf) continue;
      TreeEnsemble::Node out;
      out.feature = static_cast<int32_t>(nd.feature);
      out.threshold = nd.threshold;
      int32_t yes = nd.true_child, no = nd.false_child;
      switch (nd.mode) {
        case Mode::Leq: out.leq = true; break;
        case Mode::Lt: out.leq = false; break;
        case Mode::Gte: out.leq = false; std::swap(yes, no); break;  // x >= t  <=>  !(x < t)
        case Mode::Gt: out.leq = true; std::swap(yes, no); break;   // x > t   <=>  !(x <= t)
        default: refuse(node, "a BRANCH_EQ / BRANCH_NEQ / membership split");
      }
      // A NaN compares false, then takes the true branch when the node says so.
      const int32_t nan_to = nd.missing_true ? nd.true_child : nd.false_child;
      out.missing_yes = nan_to == yes;
      out.yes = add(yes);
      out.no = add(no);
      t.nodes[at] = out;
      stack.push_back({no, out.no});
      stack.push_back({yes, out.yes});
    }
  }
  return t;
}

}  // namespace mlaudit::engine::detail
