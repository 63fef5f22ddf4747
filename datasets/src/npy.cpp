// NumPy .npy reader and writer.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// (magic "\x93NUMPY", major/minor version, little-endian header length of 2 bytes
// for 1.0 or 4 bytes for 2.0/3.0, a Python dict literal with 'descr',
// 'fortran_order' and 'shape', then the raw array data).
#include "mlaudit/datasets/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"

namespace mlaudit::datasets {

using engine::DType;
using engine::Shape;
using engine::Tensor;

static_assert(std::endian::native == std::endian::little, "the .npy reader assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw InputError("datasets", fmt::format("{}: {}", source, message));
}

// ---------------------------------------------------------------------------
// A tiny parser for the Python literal subset numpy writes in the header:
// dicts with string keys, strings, ints, True/False/None, tuples and lists.

struct PyValue {
  enum class Kind { Str, Int, Bool, None, Seq, Dict } kind = Kind::None;
  std::string str;
  int64_t integer = 0;
  bool boolean = false;
  std::vector<PyValue> items;                           // Seq
  // Dict: keys[k] -> items[k] (two vectors, not pairs: std::pair of an incomplete type does not
  // compile with clang's libstdc++ checks)
  std::vector<std::string> keys;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  PyValue parse_document() {
    PyValue v = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error(fmt::format("unexpected '{}' after the header dict", text_[pos_]));
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(source_, fmt::format("malformed .npy header ({} at offset {})", what, pos_));
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  char peek() {
    skip_space();
    if (pos_ >= text_.size()) error("unexpected end");
    return text_[pos_];
  }

  bool consume_word(const char* word) {
    size_t n = std::strlen(word);
    if (text_.compare(pos_, n, word) == 0) {
      pos_ += n;
      return true;
    }
    return false;
  }

  PyValue parse_value(int depth) {
    // Headers are flat; deep nesting only comes from corrupt or hostile files.
    if (depth > 16) error("nesting too deep");
    char c = peek();
    PyValue v;
    if (c == '\'' || c == '"') {
      v.kind = PyValue::Kind::Str;
      v.str = parse_string();
    } else if (c == '{') {
      v.kind = PyValue::Kind::Dict;
      ++pos_;
      while (peek() != '}') {
        if (peek() != '\'' && peek() != '"') error("dict key is not a string");
        std::string key = parse_string();
        if (peek() != ':') error("expected ':'");
        ++pos_;
        v.keys.push_back(std::move(key));
        v.items.push_back(parse_value(depth + 1));
        if (peek() == ',') ++pos_;
        else if (peek() != '}') error("expected ',' or '}'");
      }
      ++pos_;
    } else if (c == '(' || c == '[') {
      const char close = c == '(' ? ')' : ']';
      v.kind = PyValue::Kind::Seq;
      ++pos_;
      while (peek() != close) {
        v.items.push_back(parse_value(depth + 1));
        if (peek() == ',') ++pos_;
        else if (peek() != close) error(fmt::format("expected ',' or '{}'", close));
      }
      ++pos_;
    } else if ((c >= '0' && c <= '9') || c == '-') {
      v.kind = PyValue::Kind::Int;
      v.integer = parse_int();
    } else if (consume_word("True")) {
      v.kind = PyValue::Kind::Bool;
      v.boolean = true;
    } else if (consume_word("False")) {
      v.kind = PyValue::Kind::Bool;
      v.boolean = false;
    } else if (consume_word("None")) {
      v.kind = PyValue::Kind::None;
    } else {
      error(fmt::format("unexpected '{}'", c));
    }
    return v;
  }

  std::string parse_string() {
    const char quote = text_[pos_++];
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) error("unterminated string");
    ++pos_;
    return out;
  }

  int64_t parse_int() {
    bool negative = false;
    if (text_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') error("expected a digit");
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      int digit = text_[pos_] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) error("integer too large");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long suffix, written by old numpy
    return negative ? -value : value;
  }

  const std::string& text_;
  const std::string& source_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// dtype descriptors ('<f4', '>i8', '|u1', '|b1', ...).

enum class Source { F16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, Bool };

struct DtypeInfo {
  Source source;
  size_t itemsize;
  bool big_endian;
  DType target;
};

DtypeInfo parse_descr(const std::string& descr, const std::string& source) {
  if (descr.empty()) fail(source, "empty dtype descriptor");
  size_t i = 0;
  bool big = false;
  if (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' || descr[0] == '=') {
    big = descr[0] == '>';
    i = 1;
  }
  if (i >= descr.size()) fail(source, fmt::format("unsupported dtype '{}'", descr));
  const char kind = descr[i];
  if (kind == 'O') fail(source, "object arrays are not supported (dtype '" + descr + "'); save a numeric array");
  const std::string size_text = descr.substr(i + 1);
  int size = 0;
  if (size_text.size() == 1 || size_text.size() == 2) {
    for (char c : size_text) {
      if (c < '0' || c > '9') { size = -1; break; }
      size = size * 10 + (c - '0');
    }
  } else {
    size = -1;
  }
  auto unsupported = [&]() -> DtypeInfo {
    fail(source, fmt::format("unsupported dtype '{}' (supported: float16/32/64, int8/16/32/64, uint8/16/32/64, bool)", descr));
  };
  switch (kind) {
    case 'f':
      if (size == 2) return {Source::F16, 2, big, DType::Float32};
      if (size == 4) return {Source::F32, 4, big, DType::Float32};
      if (size == 8) return {Source::F64, 8, big, DType::Float64};
      return unsupported();
    case 'i':
      if (size == 1) return {Source::I8, 1, big, DType::Int32};
      if (size == 2) return {Source::I16, 2, big, DType::Int32};
      if (size == 4) return {Source::I32, 4, big, DType::Int32};
      if (size == 8) return {Source::I64, 8, big, DType::Int64};
      return unsupported();
    case 'u':
      if (size == 1) return {Source::U8, 1, big, DType::UInt8};
      if (size == 2) return {Source::U16, 2, big, DType::Int32};
      if (size == 4) return {Source::U32, 4, big, DType::Int64};
      if (size == 8) return {Source::U64, 8, big, DType::Int64};
      return unsupported();
    case 'b':
      if (size == 1) return {Source::Bool, 1, big, DType::Bool};
      return unsupported();
    default:
      return unsupported();
  }
}

template <class T>
T load(const unsigned char* p, bool big_endian) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if (big_endian && sizeof(T) > 1) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    std::reverse(b, b + sizeof(T));
    std::memcpy(&v, b, sizeof(T));
  }
  return v;
}

/// IEEE 754 binary16 to binary32 (exact: every half value is representable).
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal: m * 2^-24
  } else if (exponent == 31) {
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), int(exponent) - 25);  // (1024+m) * 2^(e-15-10)
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

template <class Dst, class Src>
void convert_into(Dst* dst, const unsigned char* src, int64_t n, bool big) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(load<Src>(src + i * sizeof(Src), big));
}

/// Decode `n` elements of the file's dtype into a tensor of info.target.
void decode(const DtypeInfo& info, const unsigned char* src, int64_t n, Tensor& out, const std::string& source) {
  const bool big = info.big_endian;
  switch (info.source) {
    case Source::F16: {
      float* d = out.data<float>();
      for (int64_t i = 0; i < n; ++i) d[i] = half_to_float(load<uint16_t>(src + 2 * i, big));
      return;
    }
    case Source::F32: convert_into<float, float>(out.data<float>(), src, n, big); return;
    case Source::F64: convert_into<double, double>(out.data<double>(), src, n, big); return;
    case Source::I8: convert_into<int32_t, int8_t>(out.data<int32_t>(), src, n, big); return;
    case Source::I16: convert_into<int32_t, int16_t>(out.data<int32_t>(), src, n, big); return;
    case Source::I32: convert_into<int32_t, int32_t>(out.data<int32_t>(), src, n, big); return;
    case Source::I64: convert_into<int64_t, int64_t>(out.data<int64_t>(), src, n, big); return;
    case Source::U8: convert_into<uint8_t, uint8_t>(out.data<uint8_t>(), src, n, big); return;
    case Source::U16: convert_into<int32_t, uint16_t>(out.data<int32_t>(), src, n, big); return;
    case Source::U32: convert_into<int64_t, uint32_t>(out.data<int64_t>(), src, n, big); return;
    case Source::U64: {
      int64_t* d = out.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = load<uint64_t>(src + 8 * i, big);
        if (v > uint64_t(std::numeric_limits<int64_t>::max()))
          fail(source, fmt::format("uint64 element {} ({}) does not fit in int64", i, v));
        d[i] = static_cast<int64_t>(v);
      }
      return;
    }
    case Source::Bool: {
      // numpy treats any non-zero byte as True; normalise so the bool storage holds only 0/1.
      uint8_t* d = static_cast<uint8_t*>(out.raw());
      for (int64_t i = 0; i < n; ++i) d[i] = src[i] != 0;
      return;
    }
  }
}

const PyValue* field(const PyValue& dict, const char* key) {
  if (dict.kind != PyValue::Kind::Dict) return nullptr;
  for (size_t k = 0; k < dict.keys.size(); ++k)
    if (dict.keys[k] == key) return &dict.items[k];
  return nullptr;
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::UInt8: return "|u1";
    case DType::Bool: return "|b1";
  }
  return "?";
}

}  // namespace

namespace {

/// What the header says about the data that follows it.
struct NpyLayout {
  DtypeInfo info;
  Shape shape;
  int64_t numel = 0;
  uint64_t data_offset = 0;     ///< bytes before the array data
  int64_t data_bytes = 0;       ///< numel * itemsize
  bool fortran = false;         ///< column-major data with two or more dimensions above 1
};

/// Size of magic + version + header-length field + header, from the first bytes
/// (at least 12 or the whole file); validates magic and version.
uint64_t header_end(const unsigned char* data, size_t have, const std::string& source) {
  if (have < kMagicLen + 2 || std::memcmp(data, kMagic, kMagicLen) != 0)
    fail(source, "not a .npy file (bad magic bytes; expected \\x93NUMPY)");
  const int major = data[6], minor = data[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    fail(source, fmt::format("unsupported .npy format version {}.{} (supported: 1.0, 2.0, 3.0)", major, minor));
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_bytes;
  if (have < prefix) fail(source, "truncated .npy header");
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= uint64_t(data[8 + i]) << (8 * i);
  return prefix + header_len;
}

/// Parse the header held in data[0, end) (end from header_end); file_size is the
/// whole input's length, used for the truncation checks.
NpyLayout parse_layout(const unsigned char* data, uint64_t end, uint64_t file_size, const std::string& source) {
  const uint64_t prefix = data[6] == 1 ? kMagicLen + 4 : kMagicLen + 6;
  if (end > file_size)
    fail(source, fmt::format("truncated .npy header: header length {} but only {} bytes follow", end - prefix,
                             file_size - prefix));
  const std::string header(reinterpret_cast<const char*>(data) + prefix, size_t(end - prefix));
  const PyValue dict = HeaderParser(header, source).parse_document();
  if (dict.kind != PyValue::Kind::Dict) fail(source, "malformed .npy header (not a dict)");

  const PyValue* descr = field(dict, "descr");
  const PyValue* fortran = field(dict, "fortran_order");
  const PyValue* shape_value = field(dict, "shape");
  if (!descr || !fortran || !shape_value)
    fail(source, "malformed .npy header (needs the keys 'descr', 'fortran_order' and 'shape')");
  if (descr->kind == PyValue::Kind::Seq)
    fail(source, "structured (record) dtypes are not supported; save a plain numeric array");
  if (descr->kind != PyValue::Kind::Str) fail(source, "malformed .npy header ('descr' is not a string)");
  if (fortran->kind != PyValue::Kind::Bool) fail(source, "malformed .npy header ('fortran_order' is not True/False)");
  if (shape_value->kind != PyValue::Kind::Seq) fail(source, "malformed .npy header ('shape' is not a tuple)");

  NpyLayout layout;
  layout.info = parse_descr(descr->str, source);
  int non_unit_dims = 0;
  for (const PyValue& d : shape_value->items) {
    if (d.kind != PyValue::Kind::Int || d.integer < 0) fail(source, "malformed .npy header ('shape' must hold non-negative integers)");
    layout.shape.push_back(d.integer);
    if (d.integer > 1) ++non_unit_dims;
  }
  if (layout.shape.size() > 32) fail(source, fmt::format("shape has {} dimensions; at most 32 are supported", layout.shape.size()));
  int64_t numel = 1;
  for (int64_t extent : layout.shape)
    if (__builtin_mul_overflow(numel, extent, &numel))
      fail(source, fmt::format("shape {} is too large (element count overflows)", engine::shape_str(layout.shape)));
  // Fortran order only changes the layout when two or more dimensions exceed 1 (np.save writes
  // it for F-contiguous arrays, e.g. many DataFrame.to_numpy() results); read_npy reorders it.
  layout.fortran = fortran->boolean && non_unit_dims >= 2;

  int64_t expected = 0;
  if (__builtin_mul_overflow(numel, int64_t(layout.info.itemsize), &expected))
    fail(source, fmt::format("shape {} is too large (byte count overflows)", engine::shape_str(layout.shape)));
  const uint64_t available = file_size - end;
  if (uint64_t(expected) > available)
    fail(source, fmt::format("truncated data: expected {} bytes of data, found {}", expected, available));
  layout.numel = numel;
  layout.data_offset = end;
  layout.data_bytes = expected;
  return layout;
}

/// True when the file's bytes are already the tensor's bytes (little-endian, same width).
bool is_native(const DtypeInfo& info) {
  if (info.big_endian && info.itemsize > 1) return false;
  switch (info.source) {
    case Source::F32: case Source::F64: case Source::I32: case Source::I64: case Source::U8: return true;
    default: return false;
  }
}

/// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Read exactly n bytes at offset; returns how many were read (less at end of file).
size_t read_at(int fd, void* dst, size_t n, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, static_cast<char*>(dst) + done, n - done, off_t(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(path, fmt::format("read failed: {}", std::generic_category().message(errno)));
    }
    if (got == 0) break;
    done += size_t(got);
  }
  return done;
}

/// A tensor decoded from column-major data (the shape read as C order holds the elements in
/// Fortran order) reordered to row-major, any element size.
Tensor to_c_order(const Tensor& f) {
  Tensor c(f.dtype(), f.shape());
  const Shape& shape = f.shape();
  const size_t rank = shape.size(), elem = engine::dtype_size(f.dtype());
  const int64_t n = f.numel();
  std::vector<int64_t> c_stride(rank, 1), f_stride(rank, 1), idx(rank, 0);
  for (size_t d = rank; d-- > 1;) c_stride[d - 1] = c_stride[d] * shape[d];
  for (size_t d = 1; d < rank; ++d) f_stride[d] = f_stride[d - 1] * shape[d - 1];
  const auto* src = static_cast<const unsigned char*>(f.raw());
  auto* dst = static_cast<unsigned char*>(c.raw());
  for (int64_t i = 0; i < n; ++i) {  // i walks the C order; idx is its multi-index
    int64_t fi = 0;
    for (size_t d = 0; d < rank; ++d) fi += idx[d] * f_stride[d];
    std::memcpy(dst + size_t(i) * elem, src + size_t(fi) * elem, elem);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return c;
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& source) {
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const uint64_t end = header_end(data, bytes.size(), source);
  const NpyLayout layout = parse_layout(data, end, bytes.size(), source);
  Tensor out(layout.info.target, layout.shape);
  decode(layout.info, data + layout.data_offset, layout.numel, out, source);
  return layout.fortran ? to_c_order(out) : out;
}

Tensor read_npy(const std::string& path) {
  // Regular files are read header first, then straight into the tensor's storage
  // (no whole-file buffer); anything else (pipes, devices) goes through read_file.
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (f.fd < 0 || ::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) return parse_npy(read_file(path), path);
  const uint64_t file_size = uint64_t(st.st_size);

  std::string head(size_t(std::min<uint64_t>(file_size, 4096)), '\0');
  head.resize(read_at(f.fd, head.data(), head.size(), 0, path));
  const uint64_t end = header_end(reinterpret_cast<const unsigned char*>(head.data()), head.size(), path);
  if (end > head.size() && end <= file_size) {
    head.resize(size_t(end));
    head.resize(read_at(f.fd, head.data(), head.size(), 0, path));
  }
  if (end <= file_size && head.size() < end) fail(path, "truncated .npy header (the file changed while being read)");
  const NpyLayout layout = parse_layout(reinterpret_cast<const unsigned char*>(head.data()), end, file_size, path);

  Tensor out(layout.info.target, layout.shape);
  const size_t n = size_t(layout.data_bytes);
  size_t got = 0;
  if (is_native(layout.info)) {
    got = n ? read_at(f.fd, out.raw(), n, layout.data_offset, path) : 0;
  } else {
    std::string buffer(n, '\0');
    got = n ? read_at(f.fd, buffer.data(), n, layout.data_offset, path) : 0;
    if (got == n) decode(layout.info, reinterpret_cast<const unsigned char*>(buffer.data()), layout.numel, out, path);
  }
  if (got != n)  // the file shrank after fstat
    fail(path, fmt::format("truncated data: expected {} bytes of data, found {}", n, got));
  return layout.fortran ? to_c_order(out) : out;
}

Tensor read_npy_float(const std::string& path) {
  Tensor t = read_npy(path);
  if (t.dtype() == DType::Float32) return t;
  Tensor out(DType::Float32, t.shape());
  float* d = out.f32();
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::Float64: { const double* s = t.data<double>(); for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]); break; }
    case DType::Int32: { const int32_t* s = t.data<int32_t>(); for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]); break; }
    case DType::Int64: { const int64_t* s = t.data<int64_t>(); for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]); break; }
    case DType::UInt8: { const uint8_t* s = t.data<uint8_t>(); for (int64_t i = 0; i < n; ++i) d[i] = s[i]; break; }
    case DType::Bool: { const uint8_t* s = static_cast<const uint8_t*>(t.raw()); for (int64_t i = 0; i < n; ++i) d[i] = s[i]; break; }
    case DType::Float32: break;
  }
  return out;
}

Tensor read_npy_labels(const std::string& path) {
  Tensor t = read_npy(path);
  Shape shape = t.shape();
  if (shape.size() == 2 && shape[1] == 1) shape = {shape[0]};
  if (shape.size() != 1)
    fail(path, fmt::format("labels must have shape [N] or [N,1], got {} (one-hot labels? save np.argmax(y, axis=1))",
                           engine::shape_str(t.shape())));
  const int64_t n = t.numel();
  Tensor out(DType::Int64, shape);
  int64_t* d = out.i64();
  switch (t.dtype()) {
    case DType::Int64: if (n > 0) std::memcpy(d, t.raw(), size_t(n) * 8); break;
    case DType::Int32: { const int32_t* s = t.data<int32_t>(); for (int64_t i = 0; i < n; ++i) d[i] = s[i]; break; }
    case DType::UInt8:
    case DType::Bool: { const uint8_t* s = static_cast<const uint8_t*>(t.raw()); for (int64_t i = 0; i < n; ++i) d[i] = s[i]; break; }
    case DType::Float32:
    case DType::Float64: {
      // Floats are accepted only when they hold exact integers (e.g. labels saved from a float DataFrame).
      // 2^63 is the first double beyond int64; anything at or past it would overflow the cast.
      constexpr double kLimit = 9223372036854775808.0;
      for (int64_t i = 0; i < n; ++i) {
        double v = t.dtype() == DType::Float32 ? double(t.data<float>()[i]) : t.data<double>()[i];
        if (!std::isfinite(v) || v != std::floor(v) || v >= kLimit || v < -kLimit)
          fail(path, fmt::format("labels must be integers, but element {} is {}", i, v));
        d[i] = static_cast<int64_t>(v);
      }
      break;
    }
  }
  return out;
}

namespace {

/// The .npy header (magic through the padded dict) for a tensor.
std::string npy_header(const Tensor& t) {
  if ((t.empty() && t.numel() != 0) || engine::shape_numel(t.shape()) != t.numel())
    throw InputError("datasets", "cannot write a tensor that holds no data");
  std::string shape_text = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape_text += fmt::format("{}{}", i ? ", " : "", t.shape()[i]);
  if (t.rank() == 1) shape_text += ",";
  shape_text += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr_of(t.dtype()), shape_text);
  // numpy (>= 1.23, format._write_array_header) leaves room for the first axis to grow to
  // 21 digits; doing the same makes our files byte-identical to np.save's.
  if (t.rank() > 0) header.append(21 - std::min<size_t>(21, fmt::formatted_size("{}", t.shape()[0])), ' ');
  // Pad with spaces and a final newline so the data starts on a 64-byte boundary (format spec);
  // version 2.0 (4-byte length) only when the header outgrows 1.0's 2-byte length.
  int major = 1;
  size_t prefix = kMagicLen + 2 + 2;
  if (header.size() + 1 + (64 - 1) > 65535) {
    major = 2;
    prefix = kMagicLen + 2 + 4;
  }
  const size_t total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';

  std::string out(kMagic, kMagicLen);
  out += char(major);
  out += char(0);
  const uint64_t len = header.size();
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out += char((len >> (8 * i)) & 0xff);
  return out + header;
}

std::string_view tensor_bytes(const Tensor& t) {
  return t.numel() > 0 ? std::string_view(static_cast<const char*>(t.raw()), t.nbytes()) : std::string_view();
}

}  // namespace

std::string encode_npy(const Tensor& t) {
  std::string out = npy_header(t);
  out += tensor_bytes(t);
  return out;
}

void write_npy(const std::string& path, const Tensor& t) { write_file_atomic(path, npy_header(t), tensor_bytes(t)); }

}  // namespace mlaudit::datasets
