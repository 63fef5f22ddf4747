#include "mlaudit/common/tensor.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "mlaudit/common/error.h"

namespace mlaudit::engine {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "?";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw InputError("engine", fmt::format("negative dimension in shape {}", shape_str(s)));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw InputError("engine", fmt::format("shape {} is too large", shape_str(s)));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

namespace {
// 64-byte aligned by hand from malloc (64 bytes more, the start moved up), not aligned_alloc:
// glibc's memalign asks its heap for size + alignment + a header, so a freed buffer of a
// tensor is never large enough for the next tensor of the same size, and a loop over one
// shape (an executor's activations, run after run) grew the heap and faulted in fresh pages
// on every pass (24 MB of page faults per run of a [64,96,32,32] Sigmoid; measured 11.9 ms a
// run with them, 4.4 ms without).
std::shared_ptr<uint8_t> allocate(size_t bytes, bool zero = true) {
  size_t rounded = ((bytes + 63) / 64) * 64;
  if (rounded == 0) rounded = 64;
  void* base = std::malloc(rounded + 64);
  if (!base) throw std::bad_alloc();
  auto* p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + 63) & ~uintptr_t(63));
  if (zero) std::memset(p, 0, rounded);
  return std::shared_ptr<uint8_t>(p, [base](uint8_t*) { std::free(base); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  numel_ = shape_numel(shape_);
  if (numel_ > (int64_t(1) << 40) / int64_t(dtype_size(dtype_)))
    throw InputError("engine", fmt::format("tensor of shape {} is too large", shape_str(shape_)));
  storage_ = allocate(nbytes());
}

Tensor Tensor::uninitialized(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  if (t.numel_ > (int64_t(1) << 40) / int64_t(dtype_size(dtype)))
    throw InputError("engine", fmt::format("tensor of shape {} is too large", shape_str(t.shape_)));
  t.storage_ = allocate(t.nbytes(), false);
  return t;
}

Tensor Tensor::wrap(DType dtype, Shape shape, std::shared_ptr<uint8_t> storage) {
  if (reinterpret_cast<uintptr_t>(storage.get()) % 64 != 0)
    throw InputError("engine", "Tensor::wrap: the memory is not 64-byte aligned");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  t.storage_ = std::move(storage);
  return t;
}

Tensor Tensor::from_floats(Shape shape, const std::vector<float>& values) {
  Tensor t(DType::Float32, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw InputError("engine", fmt::format("{} values for shape {}", values.size(), shape_str(t.shape())));
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_ints(Shape shape, const std::vector<int64_t>& values) {
  Tensor t(DType::Int64, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel())
    throw InputError("engine", fmt::format("{} values for shape {}", values.size(), shape_str(t.shape())));
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(int64_t));
  return t;
}

Tensor Tensor::full(Shape shape, float value) {
  Tensor t(DType::Float32, std::move(shape));
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
  return t;
}

int64_t Tensor::dim(int i) const {
  int r = static_cast<int>(shape_.size());
  int k = i < 0 ? i + r : i;
  if (k < 0 || k >= r) throw InputError("engine", fmt::format("axis {} out of range for shape {}", i, shape_str(shape_)));
  return shape_[k];
}

void Tensor::check_type(DType t) const {
  if (t != dtype_)
    throw Error("engine", fmt::format("tensor holds {} but was accessed as {}", dtype_name(dtype_), dtype_name(t)));
}

Tensor Tensor::clone() const {
  if (empty()) return {};
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw InputError("engine", "reshape: more than one -1 dimension");
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw InputError("engine", fmt::format("reshape: bad dimension in {}", shape_str(shape)));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0)
      throw InputError("engine", fmt::format("cannot reshape {} to {}", shape_str(shape_), shape_str(shape)));
    shape[infer] = numel_ / known;
  }
  if (shape_numel(shape) != numel_)
    throw InputError("engine", fmt::format("cannot reshape {} to {}", shape_str(shape_), shape_str(shape)));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

namespace {
template <class From, class To>
void convert(const From* src, To* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<To>(src[i]);
}
template <class To>
void convert_from(const Tensor& src, To* dst) {
  int64_t n = src.numel();
  switch (src.dtype()) {
    case DType::Float32: convert(src.data<float>(), dst, n); break;
    case DType::Float64: convert(src.data<double>(), dst, n); break;
    case DType::Int32: convert(src.data<int32_t>(), dst, n); break;
    case DType::Int64: convert(src.data<int64_t>(), dst, n); break;
    case DType::UInt8: convert(src.data<uint8_t>(), dst, n); break;
    case DType::Bool: convert(src.data<bool>(), dst, n); break;
  }
}
}  // namespace

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_ || empty()) return *this;
  Tensor t(dtype, shape_);
  switch (dtype) {
    case DType::Float32: convert_from(*this, t.data<float>()); break;
    case DType::Float64: convert_from(*this, t.data<double>()); break;
    case DType::Int32: convert_from(*this, t.data<int32_t>()); break;
    case DType::Int64: convert_from(*this, t.data<int64_t>()); break;
    case DType::UInt8: convert_from(*this, t.data<uint8_t>()); break;
    case DType::Bool: {
      std::vector<double> v = to_doubles();
      bool* p = t.data<bool>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = v[i] != 0;
      break;
    }
  }
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  if (shape_.empty()) throw InputError("engine", "slice_rows on a scalar");
  if (begin < 0 || end > shape_[0] || begin > end)
    throw InputError("engine", fmt::format("rows [{},{}) out of range for shape {}", begin, end, shape_str(shape_)));
  Shape s = shape_;
  s[0] = end - begin;
  Tensor t(dtype_, s);
  size_t row = shape_[0] ? nbytes() / shape_[0] : 0;
  if (t.nbytes()) std::memcpy(t.raw(), static_cast<const uint8_t*>(raw()) + begin * row, t.nbytes());
  return t;
}

Tensor Tensor::first_rows(int64_t n) const {
  if (shape_.empty()) throw InputError("engine", "first_rows on a scalar");
  if (n < 0 || n > shape_[0])
    throw InputError("engine", fmt::format("first {} rows out of range for shape {}", n, shape_str(shape_)));
  Tensor t = *this;  // same storage, from its start: the alignment holds
  t.shape_[0] = n;
  t.numel_ = shape_[0] ? numel_ / shape_[0] * n : 0;
  return t;
}

Tensor Tensor::gather_rows(const std::vector<int64_t>& rows) const {
  if (shape_.empty()) throw InputError("engine", "gather_rows on a scalar");
  Shape s = shape_;
  s[0] = static_cast<int64_t>(rows.size());
  Tensor t(dtype_, s);
  size_t row = shape_[0] ? nbytes() / shape_[0] : 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= shape_[0])
      throw InputError("engine", fmt::format("row {} out of range for shape {}", rows[i], shape_str(shape_)));
    std::memcpy(static_cast<uint8_t*>(t.raw()) + i * row, static_cast<const uint8_t*>(raw()) + rows[i] * row, row);
  }
  return t;
}

std::vector<double> Tensor::to_doubles() const {
  std::vector<double> out(numel_);
  if (!empty()) convert_from(*this, out.data());
  return out;
}

std::vector<int64_t> Tensor::to_int64s() const {
  std::vector<int64_t> out(numel_);
  if (!empty()) convert_from(*this, out.data());
  return out;
}

void Tensor::zero() {
  if (!empty()) std::memset(raw(), 0, nbytes());
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  if (parts.empty()) return {};
  Shape s = parts[0].shape();
  if (s.empty()) throw InputError("engine", "concat_rows of scalars");
  int64_t rows = 0;
  for (const auto& p : parts) {
    if (p.dtype() != parts[0].dtype() || p.rank() != s.size() ||
        !std::equal(p.shape().begin() + 1, p.shape().end(), s.begin() + 1))
      throw InputError("engine", fmt::format("concat_rows: shape {} does not match {}", shape_str(p.shape()), shape_str(s)));
    rows += p.shape()[0];
  }
  s[0] = rows;
  Tensor t(parts[0].dtype(), s);
  size_t off = 0;
  for (const auto& p : parts) {
    if (p.nbytes()) std::memcpy(static_cast<uint8_t*>(t.raw()) + off, p.raw(), p.nbytes());
    off += p.nbytes();
  }
  return t;
}

}  // namespace mlaudit::engine
