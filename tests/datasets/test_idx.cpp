// IDX reader (plain and gzip) and the Fashion-MNIST loader.
#include <zlib.h>

#include <filesystem>

#include "datasets_test_util.h"
#include "mlaudit/datasets/idx.h"
#include "mlaudit/datasets/io.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using namespace mlaudit::datasets;
using engine::DType;
using engine::Tensor;
using mlaudit::test::expected_json;
using mlaudit::test::fixture;

namespace {

/// gzip-compress with zlib (test set-up for multi-member streams).
std::string gzip_bytes(const std::string& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, uLong(raw.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = uInt(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string idx_u8(const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string out = {'\0', '\0', '\x08', char(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out += char((d >> s) & 0xff);
  return out + payload;
}

}  // namespace

TEST_CASE("read_idx decodes every payload type, plain and gzipped", "[datasets][idx]") {
  const auto& cases = expected_json()["idx"];
  REQUIRE(cases.size() == 12);
  for (const auto& [name, golden] : cases.items()) {
    SECTION(name) {
      Tensor t = read_idx(fixture(name));
      CHECK(std::string(engine::dtype_name(t.dtype())) == golden["dtype"].get<std::string>());
      CHECK(t.shape() == golden["shape"].get<engine::Shape>());
      const auto& values = golden["values"];
      REQUIRE(int64_t(values.size()) == t.numel());
      // Exact: big-endian decode is a byte permutation; f64 -> f32 is one rounding, and the
      // golden holds numpy's float32 rounding of the same value.
      for (int64_t i = 0; i < t.numel(); ++i) {
        INFO("element " << i);
        switch (t.dtype()) {
          case DType::UInt8: CHECK(int64_t(t.data<uint8_t>()[i]) == values[i].get<int64_t>()); break;
          case DType::Int32: CHECK(int64_t(t.data<int32_t>()[i]) == values[i].get<int64_t>()); break;
          case DType::Float32: CHECK(t.data<float>()[i] == static_cast<float>(values[i].get<double>())); break;
          default: FAIL("unexpected dtype");
        }
      }
    }
  }
}

TEST_CASE("read_idx error paths name the file and the problem", "[datasets][idx]") {
  for (const auto& [name, message] : expected_json()["idx_errors"].items()) {
    SECTION(name) {
      const std::string path = fixture(name);
      MLAUDIT_REQUIRE_INPUT_ERROR(read_idx(path), "datasets: " + path + ": " + message.get<std::string>());
    }
  }
  MLAUDIT_REQUIRE_INPUT_ERROR(read_idx(fixture("absent.idx")), "cannot open '" + fixture("absent.idx") + "'");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_idx(std::string("\0\0\x08\0", 4), "zero.idx"), "zero.idx: IDX header declares 0 dimensions");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_idx(idx_u8({0xffffffffu, 0xffffffffu, 0xffffffffu}, ""), "big.idx"),
                              "big.idx: IDX shape [4294967295,4294967295,4294967295] is too large (element count overflows)");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_idx(idx_u8({100000, 100000}, "abc"), "short.idx"),
                              "short.idx: truncated data: expected 10000000000 bytes of data, found 3");
}

TEST_CASE("read_idx inflates concatenated gzip members and zero-length arrays", "[datasets][idx]") {
  const std::string raw = idx_u8({2, 3}, "\x01\x02\x03\x04\x05\x06");
  // `cat a.gz b.gz` is a valid gzip file; gzip -d yields the concatenation.
  Tensor t = parse_idx(gzip_bytes(raw.substr(0, 7)) + gzip_bytes(raw.substr(7)), "two-members.gz");
  CHECK(t.shape() == engine::Shape{2, 3});
  CHECK(std::vector<uint8_t>(t.data<uint8_t>(), t.data<uint8_t>() + 6) == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
  Tensor empty = parse_idx(gzip_bytes(idx_u8({0, 28, 28}, "")), "empty.gz");
  CHECK(empty.shape() == engine::Shape{0, 28, 28});
  CHECK(empty.dtype() == DType::UInt8);
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_idx(std::string("\x1f\x8b", 2), "stub.gz"), "stub.gz: truncated gzip data");
}

TEST_CASE("Fashion-MNIST t10k loads from the Debian package", "[datasets][idx][fashion]") {
  const std::string dir = fashion_mnist_dir();
  CHECK(dir == "/usr/share/datasets/fashion-mnist");
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist not installed, skipped: " << dir);
    return;
  }
  Tensor images, labels;
  load_fashion_mnist("t10k", images, labels);
  CHECK(images.dtype() == DType::Float32);
  CHECK(images.shape() == engine::Shape{10000, 1, 28, 28});
  CHECK(labels.dtype() == DType::Int64);
  CHECK(labels.shape() == engine::Shape{10000});
  // Goldens from Python (gzip + numpy on the same files): first labels 9 2 1 1 6 (9 = ankle boot),
  // 1000 images per class, first image's pixel sum 33456, whole-set pixel sum 573469082.
  CHECK(std::vector<int64_t>(labels.i64(), labels.i64() + 5) == std::vector<int64_t>{9, 2, 1, 1, 6});
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < 10000; ++i) per_class[size_t(labels.i64()[i])]++;
  CHECK(per_class == std::vector<int64_t>(10, 1000));
  const float* x = images.f32();
  float lo = 1, hi = 0;
  double first_sum = 0, total = 0;
  for (int64_t i = 0; i < images.numel(); ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    total += std::round(double(x[i]) * 255.0);
    if (i < 784) first_sum += std::round(double(x[i]) * 255.0);
  }
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);  // 255 / 255 exactly
  CHECK(first_sum == 33456.0);
  CHECK(total == 573469082.0);
  CHECK(x[28 * 14 + 14] == 110.0f / 255.0f);  // centre pixel of image 0, same division as the loader

  Tensor test_images, test_labels;
  load_fashion_mnist("test", test_images, test_labels);  // alias
  CHECK(test_labels.numel() == 10000);
}

TEST_CASE("Fashion-MNIST train split has 60000 balanced images", "[datasets][idx][fashion]") {
  if (!fs::exists(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist not installed, skipped");
    return;
  }
  Tensor images, labels;
  load_fashion_mnist("train", images, labels);
  CHECK(images.shape() == engine::Shape{60000, 1, 28, 28});
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < labels.numel(); ++i) per_class[size_t(labels.i64()[i])]++;
  CHECK(per_class == std::vector<int64_t>(10, 6000));  // Python: np.bincount(train labels)
  CHECK(labels.i64()[0] == 9);
}

TEST_CASE("load_fashion_mnist rejects bad splits, folders and mismatched files", "[datasets][idx][fashion]") {
  Tensor images, labels;
  MLAUDIT_REQUIRE_INPUT_ERROR(load_fashion_mnist("validation", images, labels),
                              "datasets: Fashion-MNIST split 'validation' is unknown (use 'train' or 't10k')");
  const std::string dir = test::temp_dir("fmnist");
  MLAUDIT_REQUIRE_INPUT_ERROR(load_fashion_mnist("t10k", images, labels, dir),
                              "Fashion-MNIST file '" + dir + "/t10k-images-idx3-ubyte.gz' not found");
  // Plain (not gzipped) files are found too; two images but three labels.
  write_file_atomic(dir + "/t10k-images-idx3-ubyte", idx_u8({2, 28, 28}, std::string(2 * 784, '\x80')));
  write_file_atomic(dir + "/t10k-labels-idx1-ubyte", idx_u8({3}, "\x01\x02\x03"));
  MLAUDIT_REQUIRE_INPUT_ERROR(load_fashion_mnist("t10k", images, labels, dir), "3 labels for 2 images");
  write_file_atomic(dir + "/t10k-labels-idx1-ubyte", idx_u8({2}, "\x01\x0c"));
  MLAUDIT_REQUIRE_INPUT_ERROR(load_fashion_mnist("t10k", images, labels, dir), "label 12 at index 1 is outside the 10 classes");
  write_file_atomic(dir + "/t10k-labels-idx1-ubyte", idx_u8({2}, "\x01\x07"));
  load_fashion_mnist("t10k", images, labels, dir);
  CHECK(images.shape() == engine::Shape{2, 1, 28, 28});
  CHECK(images.f32()[0] == 128.0f / 255.0f);
  CHECK(std::vector<int64_t>(labels.i64(), labels.i64() + 2) == std::vector<int64_t>{1, 7});
  write_file_atomic(dir + "/t10k-images-idx3-ubyte", idx_u8({2, 28, 27}, std::string(2 * 28 * 27, '\0')));
  MLAUDIT_REQUIRE_INPUT_ERROR(load_fashion_mnist("t10k", images, labels, dir), "expected uint8 images [N,28,28], got uint8 [2,28,27]");
  fs::remove_all(dir);
}
