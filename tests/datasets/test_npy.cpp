// .npy reader/writer against files written by numpy (tools/datasets_fixtures.py).
#include <cmath>
#include <cstring>
#include <filesystem>

#include "datasets_test_util.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using namespace mlaudit::datasets;
using engine::DType;
using engine::Shape;
using engine::Tensor;
using mlaudit::test::expected_json;
using mlaudit::test::fixture;

namespace {

/// Compare a tensor with a golden entry {dtype, shape, values}. Decoding is a
/// byte copy (plus exact widening / half-to-float), so equality is exact: a
/// golden value is the float the file holds, printed by Python's round-trip repr.
void check_against_golden(const Tensor& t, const nlohmann::json& golden) {
  CHECK(std::string(engine::dtype_name(t.dtype())) == golden["dtype"].get<std::string>());
  CHECK(t.shape() == golden["shape"].get<engine::Shape>());
  const auto& values = golden["values"];
  REQUIRE(int64_t(values.size()) == t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    INFO("element " << i);
    switch (t.dtype()) {
      case DType::Float32: CHECK(t.data<float>()[i] == static_cast<float>(values[i].get<double>())); break;
      case DType::Float64: CHECK(t.data<double>()[i] == values[i].get<double>()); break;
      case DType::Int32: CHECK(t.data<int32_t>()[i] == values[i].get<int64_t>()); break;
      case DType::Int64: CHECK(t.data<int64_t>()[i] == values[i].get<int64_t>()); break;
      case DType::UInt8: CHECK(int64_t(t.data<uint8_t>()[i]) == values[i].get<int64_t>()); break;
      case DType::Bool: CHECK(int64_t(static_cast<const uint8_t*>(t.raw())[i]) == values[i].get<int64_t>()); break;
    }
  }
}

}  // namespace

TEST_CASE("read_npy decodes every numpy dtype, byte order, shape and header version", "[datasets][npy]") {
  const auto& cases = expected_json()["npy"];
  REQUIRE(cases.size() >= 25);
  for (const auto& [name, golden] : cases.items()) {
    SECTION(name) {
      INFO(name);
      check_against_golden(read_npy(fixture(name)), golden);
    }
  }
}

TEST_CASE("read_npy error paths name the file and the problem", "[datasets][npy]") {
  const auto& cases = expected_json()["npy_errors"];
  REQUIRE(cases.size() >= 11);  // Fortran order is read since session 10, no longer an error
  for (const auto& [name, message] : cases.items()) {
    SECTION(name) {
      const std::string path = fixture(name);
      MLAUDIT_REQUIRE_INPUT_ERROR(read_npy(path), "datasets: " + path + ": " + message.get<std::string>());
    }
  }
  MLAUDIT_REQUIRE_INPUT_ERROR(read_npy(fixture("no_such_file.npy")), "cannot open '" + fixture("no_such_file.npy") + "'");
}

TEST_CASE("parse_npy rejects hostile headers without allocating", "[datasets][npy]") {
  const std::string v1("\x93NUMPY\x01\x00", 8);
  auto with_header = [&](const std::string& dict) {
    std::string out = v1;
    out += char(dict.size() & 0xff);
    out += char(dict.size() >> 8);
    return out + dict;
  };
  // Element count overflows int64.
  MLAUDIT_REQUIRE_INPUT_ERROR(
      parse_npy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }"), "big.npy"),
      "big.npy: shape [4294967296,4294967296,4] is too large (element count overflows)");
  // Count fits but the byte count does not.
  MLAUDIT_REQUIRE_INPUT_ERROR(
      parse_npy(with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }"), "bytes.npy"),
      "bytes.npy: shape [2305843009213693952] is too large (byte count overflows)");
  // A plausible but absent payload is reported as truncation, not allocated.
  MLAUDIT_REQUIRE_INPUT_ERROR(
      parse_npy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000,), }"), "huge.npy"),
      "huge.npy: truncated data: expected 400000000000 bytes of data, found 0");
  MLAUDIT_REQUIRE_INPUT_ERROR(
      parse_npy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), "neg.npy"),
      "'shape' must hold non-negative integers");
  MLAUDIT_REQUIRE_INPUT_ERROR(
      parse_npy(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"), "digits.npy"),
      "malformed .npy header (integer too large");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_npy(with_header(std::string(200, '(')), "deep.npy"), "nesting too deep");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_npy(with_header("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }"), "f.npy"),
                              "'fortran_order' is not True/False");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_npy(with_header("{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }"), "ld.npy"),
                              "unsupported dtype '<f16'");
  MLAUDIT_REQUIRE_INPUT_ERROR(parse_npy(with_header("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }") +
                                            std::string(7, '\0') + '\x80',
                                        "u64.npy"),
                              "uint64 element 0 (9223372036854775808) does not fit in int64");
}

TEST_CASE("parse_npy accepts spacing, key order and Fortran flags that do not change the layout", "[datasets][npy]") {
  auto make = [](const std::string& dict, const std::string& payload) {
    std::string out("\x93NUMPY\x01\x00", 8);
    out += char(dict.size() & 0xff);
    out += char(dict.size() >> 8);
    return out + dict + payload;
  };
  float values[3] = {1.0f, -2.0f, 0.5f};
  const std::string payload(reinterpret_cast<const char*>(values), sizeof values);
  for (const std::string& dict : {
           std::string("{'shape':(3,),'fortran_order':False,'descr':'<f4'}\n"),
           std::string("{ \"descr\" : \"<f4\" ,\n 'fortran_order' : False , 'shape' : ( 3 , ) , }   \n"),
           std::string("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }\n"),      // 1-D: same layout
           std::string("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3, 1), }\n"), // one non-unit dim
           std::string("{'descr': '<f4', 'fortran_order': False, 'shape': (3L,), }\n"),    // Python 2 long
       }) {
    INFO(dict);
    Tensor t = parse_npy(make(dict, payload), "mem.npy");
    REQUIRE(t.numel() == 3);
    CHECK(t.data<float>()[0] == 1.0f);
    CHECK(t.data<float>()[1] == -2.0f);
    CHECK(t.data<float>()[2] == 0.5f);
  }
  // Fortran order with two non-unit dimensions really is a different layout: element (i, 0, k)
  // is stored at i + 3 k, and comes back in C order.
  float six[6] = {0, 1, 2, 3, 4, 5};
  Tensor f = parse_npy(make("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 1, 2), }\n",
                            std::string(reinterpret_cast<const char*>(six), sizeof six)),
                       "f.npy");
  REQUIRE(f.shape() == Shape{3, 1, 2});
  const float want[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; ++i) CHECK(f.data<float>()[i] == want[i]);
}

TEST_CASE("read_npy reorders a Fortran-order file as numpy writes it (pandas' to_numpy())", "[datasets][npy]") {
  // tests/fixtures/trees/credit_train_x.npy was saved from DataFrame.to_numpy() (F-contiguous:
  // fortran_order True); tests/fixtures/trees/shap/credit_train_x.npy is its C-order copy.
  Tensor f = read_npy(test::source_path("tests/fixtures/trees/credit_train_x.npy"));
  Tensor c = read_npy(test::source_path("tests/fixtures/trees/shap/credit_train_x.npy"));
  REQUIRE(f.shape() == c.shape());
  REQUIRE(f.shape() == Shape{4000, 7});
  CHECK(std::memcmp(f.raw(), c.raw(), c.nbytes()) == 0);
  // The same through parse_npy (bytes in memory) and read_npy_float.
  Tensor g = parse_npy(test::read_text(test::source_path("tests/fixtures/trees/credit_train_x.npy")), "mem.npy");
  CHECK(std::memcmp(g.raw(), c.raw(), c.nbytes()) == 0);
  CHECK(read_npy_float(test::source_path("tests/fixtures/trees/credit_train_x.npy")).data<float>()[7] == c.data<float>()[7]);
}

TEST_CASE("read_npy reads headers longer than its first read and reports a cut header", "[datasets][npy]") {
  // read_npy reads 4 KiB first, then the rest of a longer header; version 2.0 allows long headers.
  std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";
  dict.append(9000 - dict.size() - 12 - 1, ' ');
  dict += '\n';
  std::string file("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) file += char((dict.size() >> (8 * i)) & 0xff);
  file += dict;
  const int64_t values[2] = {-3, 1LL << 40};
  file.append(reinterpret_cast<const char*>(values), sizeof values);
  const std::string dir = test::temp_dir("npy-long");
  test::put_file(dir + "/long.npy", file);
  Tensor t = read_npy(dir + "/long.npy");
  REQUIRE(t.shape() == engine::Shape{2});
  CHECK(t.i64()[0] == -3);
  CHECK(t.i64()[1] == (1LL << 40));
  CHECK(parse_npy(file, "mem").i64()[1] == (1LL << 40));  // the in-memory route agrees
  test::put_file(dir + "/cut.npy", file.substr(0, 5000));
  MLAUDIT_REQUIRE_INPUT_ERROR(read_npy(dir + "/cut.npy"),
                              dir + "/cut.npy: truncated .npy header: header length 8988 but only 4988 bytes follow");
  test::put_file(dir + "/short_data.npy", file.substr(0, file.size() - 3));
  MLAUDIT_REQUIRE_INPUT_ERROR(read_npy(dir + "/short_data.npy"), "truncated data: expected 16 bytes of data, found 13");
  fs::remove_all(dir);
}

TEST_CASE("write_npy output is byte-identical to numpy's np.save", "[datasets][npy]") {
  // numpy 2.x wrote these fixtures with np.lib.format.write_array (version 1.0);
  // decoding and re-encoding must reproduce every byte (header text, padding, data).
  for (const char* name : {"f4.npy", "f8.npy", "i4.npy", "i8.npy", "u1.npy", "b1.npy", "scalar_f4.npy", "scalar_i8.npy",
                           "empty_f4.npy", "empty_i8.npy", "empty_mid_u1.npy", "rank4_f4.npy"}) {
    INFO(name);
    const std::string original = read_file(fixture(name));
    CHECK(encode_npy(read_npy(fixture(name))) == original);
  }
}

TEST_CASE("write_npy round-trips every dtype and shape", "[datasets][npy]") {
  const std::string dir = test::temp_dir("npy-roundtrip");
  const std::vector<engine::Shape> shapes = {{}, {0}, {1}, {7}, {2, 3}, {3, 0, 2}, {1, 2, 1, 3, 2}};
  int file_index = 0;
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::Bool}) {
    for (const auto& shape : shapes) {
      Tensor t(dtype, shape);
      auto* bytes = static_cast<uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = uint8_t(i * 37 + 11);
      if (dtype == DType::Bool)
        for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] &= 1;
      if (dtype == DType::Float32 || dtype == DType::Float64)  // keep the pattern free of NaNs so == works
        for (int64_t i = 0; i < t.numel(); ++i) {
          if (dtype == DType::Float32) t.data<float>()[i] = float(i) * 0.75f - 3.0f;
          else t.data<double>()[i] = double(i) / 3.0 - 1e200;
        }
      const std::string path = dir + "/t" + std::to_string(file_index++) + ".npy";
      write_npy(path, t);
      const std::string file = read_file(path);
      const uint16_t header_len = uint16_t(uint8_t(file[8]) | uint8_t(file[9]) << 8);
      CHECK((10 + header_len) % 64 == 0);  // format spec: data aligned to 64 bytes
      CHECK(file[10 + header_len - 1] == '\n');
      Tensor back = read_npy(path);
      INFO(engine::dtype_name(dtype) << " " << engine::shape_str(shape));
      CHECK(back.dtype() == dtype);
      CHECK(back.shape() == shape);
      REQUIRE(back.nbytes() == t.nbytes());
      if (t.nbytes() > 0) CHECK(std::memcmp(back.raw(), t.raw(), t.nbytes()) == 0);
    }
  }
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == file_index);  // no temporaries left
  MLAUDIT_REQUIRE_INPUT_ERROR(write_npy(dir + "/unset.npy", Tensor()), "cannot write a tensor that holds no data");
  CHECK_FALSE(fs::exists(dir + "/unset.npy"));
  fs::remove_all(dir);
}

TEST_CASE("read_npy_float converts every numeric dtype to float32", "[datasets][npy]") {
  const auto& cases = expected_json()["npy"];
  for (const char* name : {"f4.npy", "f8.npy", "f2.npy", "i1.npy", "i4.npy", "i8.npy", "u1.npy", "u4.npy", "b1.npy",
                           "be_f8.npy", "be_i8.npy", "scalar_i8.npy", "empty_i8.npy"}) {
    INFO(name);
    Tensor t = read_npy_float(fixture(name));
    const auto& golden = cases[name];
    CHECK(t.dtype() == DType::Float32);
    CHECK(t.shape() == golden["shape"].get<engine::Shape>());
    REQUIRE(t.numel() == int64_t(golden["values"].size()));
    // The conversion is a single rounding of the exact value to float32, so compare with the same rounding.
    for (int64_t i = 0; i < t.numel(); ++i) {
      const auto& v = golden["values"][size_t(i)];
      const float want = v.is_number_float() ? static_cast<float>(v.get<double>()) : static_cast<float>(v.get<int64_t>());
      CHECK(t.f32()[i] == want);
    }
  }
}

TEST_CASE("read_npy_labels returns int64 [N] and rejects non-integer labels", "[datasets][npy]") {
  for (const auto& [name, golden] : expected_json()["labels"].items()) {
    SECTION(name) {
      const std::string path = fixture(name);
      if (golden.contains("error")) {
        MLAUDIT_REQUIRE_INPUT_ERROR(read_npy_labels(path), "datasets: " + path + ": " + golden["error"].get<std::string>());
      } else {
        Tensor t = read_npy_labels(path);
        const auto want = golden["values"].get<std::vector<int64_t>>();
        CHECK(t.dtype() == DType::Int64);
        CHECK(t.shape() == engine::Shape{int64_t(want.size())});
        CHECK(std::vector<int64_t>(t.i64(), t.i64() + t.numel()) == want);
      }
    }
  }
}
