#pragma once
// Dense, contiguous, row-major host tensor with shared storage.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace mlaudit::engine {

/// Element types. The engine computes in Float32 (values) and Int64 (shapes,
/// indices); the other types exist so readers (.npy) can hand data over unchanged.
enum class DType : uint8_t { Float32, Float64, Int32, Int64, UInt8, Bool };

using Shape = std::vector<int64_t>;

/// Size in bytes of one element.
size_t dtype_size(DType t);
/// Lower-case name ("float32", "int64", ...).
const char* dtype_name(DType t);
/// Number of elements of a shape (1 for a scalar); throws InputError on negative dims or overflow.
int64_t shape_numel(const Shape& s);
/// "[N,1,28,28]" style rendering.
std::string shape_str(const Shape& s);

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::Float32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::Float64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::Bool; };

/// A tensor: dtype, shape and a reference-counted, 64-byte aligned buffer.
/// Copies share storage; use clone() for a deep copy.
class Tensor {
 public:
  Tensor() = default;
  /// Zero-initialised tensor of the given shape.
  Tensor(DType dtype, Shape shape);
  /// Float32 tensor, zero-initialised.
  explicit Tensor(Shape shape) : Tensor(DType::Float32, std::move(shape)) {}

  /// Tensor whose contents are unspecified (for outputs that are fully overwritten).
  static Tensor uninitialized(DType dtype, Shape shape);
  /// Float32 tensor from values (size must match the shape).
  static Tensor from_floats(Shape shape, const std::vector<float>& values);
  /// Int64 tensor from values.
  static Tensor from_ints(Shape shape, const std::vector<int64_t>& values);
  /// Float32 tensor filled with a value.
  static Tensor full(Shape shape, float value);
  /// Scalar float.
  static Tensor scalar(float v) { return from_floats({}, {v}); }
  /// A tensor over memory someone else owns (the Python bindings: a NumPy array, no copy).
  /// `storage` must hold numel x dtype_size bytes, 64-byte aligned as the engine's own
  /// buffers are (kernels may use aligned loads), and keeps the owner alive; throws
  /// InputError when it is not aligned. The caller keeps another reference to the storage
  /// while the engine runs, so copy-on-write never writes into the borrowed memory.
  static Tensor wrap(DType dtype, Shape shape, std::shared_ptr<uint8_t> storage);
  /// The storage (shared), for handing a result to another owner without a copy.
  const std::shared_ptr<uint8_t>& storage() const { return storage_; }

  bool empty() const { return !storage_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  /// Dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  /// Typed access; throws if T does not match dtype().
  template <class T> T* data() { check_type(DTypeOf<T>::value); return reinterpret_cast<T*>(raw()); }
  template <class T> const T* data() const { check_type(DTypeOf<T>::value); return reinterpret_cast<const T*>(raw()); }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }
  int64_t* i64() { return data<int64_t>(); }
  const int64_t* i64() const { return data<int64_t>(); }
  void* raw() { return storage_ ? storage_.get() : nullptr; }
  const void* raw() const { return storage_ ? storage_.get() : nullptr; }

  /// Deep copy.
  Tensor clone() const;
  /// Same storage, new shape (element counts must match; one dim may be -1).
  Tensor reshape(Shape shape) const;
  /// Converted copy (or *this when the dtype already matches).
  Tensor to(DType dtype) const;
  /// Copy of rows [begin, end) along axis 0.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  /// The first n rows along axis 0, sharing this tensor's storage (no copy; writes show in both).
  Tensor first_rows(int64_t n) const;
  /// Copy of the given rows along axis 0.
  Tensor gather_rows(const std::vector<int64_t>& rows) const;
  /// Values as doubles (any dtype), for tests and reports.
  std::vector<double> to_doubles() const;
  /// Values as int64 (any integer or bool dtype; floats are truncated).
  std::vector<int64_t> to_int64s() const;
  /// Fill with zeros.
  void zero();
  /// Whether no other tensor shares this storage (for copy-on-write).
  bool unique_storage() const { return storage_.use_count() <= 1; }

 private:
  void check_type(DType t) const;
  DType dtype_ = DType::Float32;
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<uint8_t> storage_;
};

/// Stack equally-shaped tensors along a new (or existing, when concat is true) axis 0.
Tensor concat_rows(const std::vector<Tensor>& parts);

}  // namespace mlaudit::engine
