// IDX reader. Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero
// bytes, a type byte, the number of dimensions, one big-endian uint32 per
// dimension, then the big-endian payload in row-major order.
#include "mlaudit/datasets/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cstring>

#include <fmt/format.h>

#include "mlaudit/datasets/io.h"
#include "mlaudit/common/error.h"

namespace mlaudit::datasets {

using engine::DType;
using engine::Shape;
using engine::Tensor;

namespace {

/// Decompressed IDX data larger than this is refused (guards against gzip bombs;
/// the largest MNIST-family file, Fashion-MNIST train images, is 47 MB).
constexpr uint64_t kMaxInflatedBytes = uint64_t(2) << 30;

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw InputError("datasets", fmt::format("{}: {}", source, message));
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b;
}

/// Inflate a gzip stream (RFC 1952), including concatenated members.
std::string gunzip(const std::string& compressed, const std::string& source) {
  z_stream zs{};
  // windowBits 15 + 16: expect a gzip wrapper (zlib manual, inflateInit2).
  if (inflateInit2(&zs, 15 + 16) != Z_OK) fail(source, "cannot initialise zlib");
  struct Cleanup {
    z_stream* zs;
    ~Cleanup() { inflateEnd(zs); }
  } cleanup{&zs};

  std::string out;
  // Size hint: the gzip trailer's ISIZE (input size mod 2^32), capped by deflate's
  // maximum ratio of about 1032:1 since the trailer itself is untrusted.
  const auto* tail = reinterpret_cast<const unsigned char*>(compressed.data() + compressed.size() - 4);
  const uint64_t isize = compressed.size() >= 18
                             ? uint64_t(tail[0]) | uint64_t(tail[1]) << 8 | uint64_t(tail[2]) << 16 | uint64_t(tail[3]) << 24
                             : 0;
  const uint64_t hint = std::min<uint64_t>(isize, uint64_t(compressed.size()) * 1032) + 1;
  out.resize(std::min<uint64_t>(std::max<uint64_t>(hint, 1 << 16), kMaxInflatedBytes));
  size_t produced = 0;
  size_t consumed = 0;
  for (;;) {
    if (produced == out.size()) {
      if (out.size() >= kMaxInflatedBytes)
        fail(source, fmt::format("gzip data inflates to more than {} bytes; refusing", kMaxInflatedBytes));
      out.resize(std::min<uint64_t>(uint64_t(out.size()) * 2, kMaxInflatedBytes));
    }
    const size_t in_chunk = std::min<size_t>(compressed.size() - consumed, 1u << 30);
    const size_t out_chunk = std::min<size_t>(out.size() - produced, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + consumed));
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    consumed += in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (as `cat a.gz b.gz` makes); anything else is ignored, like gzip does.
      const std::string rest_magic = compressed.substr(consumed, 2);
      if (!is_gzip(rest_magic)) break;
      if (inflateReset(&zs) != Z_OK) fail(source, "cannot reset zlib");
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR)
      fail(source, fmt::format("corrupt gzip data ({})", zs.msg ? zs.msg : "zlib error"));
    if (rc == Z_BUF_ERROR || rc == Z_OK) {
      // No progress possible with all input consumed: the stream ended early.
      if (consumed == compressed.size() && zs.avail_out != 0) fail(source, "truncated gzip data (stream ends early)");
      continue;
    }
    fail(source, fmt::format("corrupt gzip data (zlib code {})", rc));
  }
  out.resize(produced);
  return out;
}

uint32_t be32(const unsigned char* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]); }

template <class T>
T load_be(const unsigned char* p) {
  unsigned char b[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i) b[i] = p[sizeof(T) - 1 - i];
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

template <class Dst, class Src>
void decode_be(Dst* dst, const unsigned char* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(load_be<Src>(src + i * int64_t(sizeof(Src))));
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Tensor parse_idx(const std::string& raw_bytes, const std::string& source) {
  const std::string inflated = is_gzip(raw_bytes) ? gunzip(raw_bytes, source) : std::string();
  const std::string& bytes = is_gzip(raw_bytes) ? inflated : raw_bytes;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || data[0] != 0 || data[1] != 0)
    fail(source, "not an IDX file (bad magic bytes; expected 00 00 <type> <ndim>)");
  const int type = data[2];
  const int ndim = data[3];
  size_t itemsize = 0;
  DType target = DType::Float32;
  switch (type) {
    case 0x08: itemsize = 1; target = DType::UInt8; break;
    case 0x09: itemsize = 1; target = DType::Int32; break;
    case 0x0B: itemsize = 2; target = DType::Int32; break;
    case 0x0C: itemsize = 4; target = DType::Int32; break;
    case 0x0D: itemsize = 4; target = DType::Float32; break;
    case 0x0E: itemsize = 8; target = DType::Float32; break;
    default:
      fail(source, fmt::format("unsupported IDX data type 0x{:02x} (supported: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, "
                               "0x0D f32, 0x0E f64)", type));
  }
  if (ndim == 0) fail(source, "IDX header declares 0 dimensions");
  const size_t header = 4 + 4 * size_t(ndim);
  if (bytes.size() < header)
    fail(source, fmt::format("truncated IDX header: {} dimensions need {} bytes, found {}", ndim, header, bytes.size()));
  Shape shape;
  int64_t numel = 1;
  for (int d = 0; d < ndim; ++d) shape.push_back(int64_t(be32(data + 4 + 4 * d)));
  for (int64_t extent : shape)
    if (__builtin_mul_overflow(numel, extent, &numel))
      fail(source, fmt::format("IDX shape {} is too large (element count overflows)", engine::shape_str(shape)));
  int64_t expected = 0;
  if (__builtin_mul_overflow(numel, int64_t(itemsize), &expected))
    fail(source, fmt::format("IDX shape {} is too large (byte count overflows)", engine::shape_str(shape)));
  const uint64_t available = bytes.size() - header;
  if (uint64_t(expected) > available)
    fail(source, fmt::format("truncated data: expected {} bytes of data, found {}", expected, available));

  Tensor out(target, shape);
  const unsigned char* payload = data + header;
  switch (type) {
    case 0x08: if (numel > 0) std::memcpy(out.raw(), payload, size_t(numel)); break;
    case 0x09: decode_be<int32_t, int8_t>(out.data<int32_t>(), payload, numel); break;
    case 0x0B: decode_be<int32_t, int16_t>(out.data<int32_t>(), payload, numel); break;
    case 0x0C: decode_be<int32_t, int32_t>(out.data<int32_t>(), payload, numel); break;
    case 0x0D: decode_be<float, float>(out.data<float>(), payload, numel); break;
    case 0x0E: decode_be<float, double>(out.data<float>(), payload, numel); break;
  }
  return out;
}

Tensor read_idx(const std::string& path) { return parse_idx(read_file(path), path); }

std::string fashion_mnist_dir() { return MLAUDIT_FASHION_MNIST_DIR; }

void load_fashion_mnist(const std::string& split, Tensor& images, Tensor& labels, const std::string& dir) {
  std::string prefix;
  if (split == "train") prefix = "train";
  else if (split == "t10k" || split == "test") prefix = "t10k";
  else throw InputError("datasets", fmt::format("Fashion-MNIST split '{}' is unknown (use 'train' or 't10k')", split));

  auto locate = [&](const std::string& stem) {
    const std::string base = dir + "/" + stem;
    if (file_exists(base + ".gz")) return base + ".gz";
    if (file_exists(base)) return base;
    throw InputError("datasets", fmt::format("Fashion-MNIST file '{}.gz' not found (install the Debian package "
                                             "dataset-fashion-mnist or pass its folder)", base));
  };
  const std::string image_path = locate(prefix + "-images-idx3-ubyte");
  const std::string label_path = locate(prefix + "-labels-idx1-ubyte");
  Tensor raw_images = read_idx(image_path);
  Tensor raw_labels = read_idx(label_path);
  if (raw_images.dtype() != DType::UInt8 || raw_images.rank() != 3 || raw_images.dim(1) != 28 || raw_images.dim(2) != 28)
    fail(image_path, fmt::format("expected uint8 images [N,28,28], got {} {}", engine::dtype_name(raw_images.dtype()),
                                 engine::shape_str(raw_images.shape())));
  if (raw_labels.dtype() != DType::UInt8 || raw_labels.rank() != 1)
    fail(label_path, fmt::format("expected uint8 labels [N], got {} {}", engine::dtype_name(raw_labels.dtype()),
                                 engine::shape_str(raw_labels.shape())));
  const int64_t n = raw_images.dim(0);
  if (raw_labels.dim(0) != n)
    fail(label_path, fmt::format("{} labels for {} images in '{}'", raw_labels.dim(0), n, image_path));

  Tensor out_images(DType::Float32, {n, 1, 28, 28});
  const uint8_t* pixels = raw_images.data<uint8_t>();
  float* scaled = out_images.f32();
  for (int64_t i = 0; i < n * 28 * 28; ++i) scaled[i] = static_cast<float>(pixels[i]) / 255.0f;

  Tensor out_labels(DType::Int64, {n});
  const uint8_t* classes = raw_labels.data<uint8_t>();
  int64_t* dst = out_labels.i64();
  for (int64_t i = 0; i < n; ++i) {
    if (classes[i] > 9) fail(label_path, fmt::format("label {} at index {} is outside the 10 classes", int(classes[i]), i));
    dst[i] = classes[i];
  }
  images = std::move(out_images);
  labels = std::move(out_labels);
}

}  // namespace mlaudit::datasets
