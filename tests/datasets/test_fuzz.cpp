// Robustness: seeded random mutations of valid .npy and IDX files must either
// decode or throw InputError; nothing else (no crash, no other exception type).
// Run under ASan+UBSan with -DMLAUDIT_SANITIZE=ON to catch memory errors too.
#include <filesystem>
#include <random>

#include "datasets_test_util.h"
#include "mlaudit/datasets/idx.h"
#include "mlaudit/datasets/io.h"
#include "mlaudit/datasets/npy.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using namespace mlaudit::datasets;
using mlaudit::test::fixture;

namespace {

/// One random edit of the kind corrupt downloads and hostile files show.
std::string mutate(const std::string& original, std::mt19937& rng, size_t header_bytes) {
  std::string s = original;
  auto pick = [&](size_t n) { return n == 0 ? size_t(0) : size_t(rng() % n); };
  // Most edits land in the header, where the parsing logic lives.
  auto position = [&]() { return (rng() % 4 != 0 && header_bytes > 0) ? pick(std::min(header_bytes, s.size() + 1)) : pick(s.size() + 1); };
  const int edits = 1 + int(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 8) {
      case 0:  // flip a bit
        if (!s.empty()) s[std::min(position(), s.size() - 1)] ^= char(1u << (rng() % 8));
        break;
      case 1:  // random byte
        if (!s.empty()) s[std::min(position(), s.size() - 1)] = char(rng());
        break;
      case 2:  // truncate
        s.resize(pick(s.size() + 1));
        break;
      case 3:  // insert random bytes
        s.insert(std::min(position(), s.size()), std::string(1 + pick(8), char(rng())));
        break;
      case 4:  // delete a run
        if (!s.empty()) {
          size_t at = std::min(position(), s.size() - 1);
          s.erase(at, 1 + pick(8));
        }
        break;
      case 5: {  // plant a digit-heavy or punctuation token (shape and dict syntax)
        static const char* tokens[] = {"9999999999", "-1", "(", ")", ",", "'", "{", "}", "True", "0", "((((", "'<f8'", "'|O'", "L", ":"};
        s.insert(std::min(position(), s.size()), tokens[pick(std::size(tokens))]);
        break;
      }
      case 6:  // max out a byte (lengths, dims)
        if (!s.empty()) s[std::min(position(), s.size() - 1)] = char(0xff);
        break;
      default:  // duplicate a chunk
        if (!s.empty()) {
          size_t at = pick(s.size());
          s.insert(pick(s.size() + 1), s.substr(at, 1 + pick(32)));
        }
        break;
    }
  }
  return s;
}

struct Outcome {
  int decoded = 0;
  int rejected = 0;
};

template <class Reader>
Outcome fuzz(const std::string& seed_file, uint32_t seed, int count, size_t header_bytes, Reader reader) {
  std::mt19937 rng(seed);
  Outcome outcome;
  for (int i = 0; i < count; ++i) {
    const std::string bytes = mutate(seed_file, rng, header_bytes);
    try {
      engine::Tensor t = reader(bytes);
      // A decoded tensor must be self-consistent.
      REQUIRE(t.numel() == engine::shape_numel(t.shape()));
      ++outcome.decoded;
    } catch (const InputError&) {
      ++outcome.rejected;
    } catch (const std::exception& e) {
      FAIL("mutation " << i << " (seed " << seed << ") threw a non-InputError: " << e.what());
    }
  }
  return outcome;
}

}  // namespace

TEST_CASE("fuzz: 2000 mutated .npy files decode or throw InputError", "[datasets][fuzz]") {
  const std::string v1 = read_file(fixture("rank4_f4.npy"));
  const std::string v2 = read_file(fixture("v2_f4.npy"));
  const std::string be = read_file(fixture("be_i8.npy"));
  auto reader = [](const std::string& bytes) { return parse_npy(bytes, "fuzz.npy"); };
  Outcome a = fuzz(v1, 20261127, 1000, 128, reader);
  Outcome b = fuzz(v2, 7, 500, 128, reader);
  Outcome c = fuzz(be, 99, 500, 128, reader);
  WARN(".npy fuzz: " << a.decoded + b.decoded + c.decoded << " decoded, " << a.rejected + b.rejected + c.rejected << " rejected");
  // Both outcomes must occur, or the mutations are not exercising the parser.
  CHECK(a.decoded + b.decoded + c.decoded > 25);
  CHECK(a.rejected + b.rejected + c.rejected > 500);

  // The file path route: a sample through read_npy / read_npy_float / read_npy_labels.
  const std::string dir = test::temp_dir("fuzz-npy");
  std::mt19937 rng(5);
  for (int i = 0; i < 100; ++i) {
    const std::string path = dir + "/m" + std::to_string(i) + ".npy";
    mlaudit::test::put_file(path, mutate(v1, rng, 128));
    for (int which = 0; which < 3; ++which) {
      try {
        if (which == 0) (void)read_npy(path);
        if (which == 1) (void)read_npy_float(path);
        if (which == 2) (void)read_npy_labels(path);
      } catch (const InputError& e) {
        CHECK_THAT(std::string(e.what()), Catch::StartsWith("datasets: " + path + ": "));
      } catch (const std::exception& e) {
        FAIL("file mutation " << i << " threw a non-InputError: " << e.what());
      }
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("fuzz: 2000 mutated IDX files (plain and gzip) decode or throw InputError", "[datasets][fuzz]") {
  const std::string plain = read_file(fixture("i16.idx"));
  const std::string plain_u8 = read_file(fixture("u8.idx"));
  const std::string gz = read_file(fixture("f64.idx.gz"));
  auto reader = [](const std::string& bytes) { return parse_idx(bytes, "fuzz.idx"); };
  Outcome a = fuzz(plain, 1, 700, 16, reader);
  Outcome b = fuzz(plain_u8, 2, 600, 16, reader);
  Outcome c = fuzz(gz, 3, 700, 24, reader);  // gzip header + start of the deflate stream
  WARN("IDX fuzz: " << a.decoded + b.decoded + c.decoded << " decoded, " << a.rejected + b.rejected + c.rejected << " rejected");
  CHECK(a.decoded + b.decoded > 25);
  CHECK(a.rejected + b.rejected + c.rejected > 500);
  CHECK(c.rejected > 100);  // corrupt deflate data must be caught, not decoded into garbage silently
}
