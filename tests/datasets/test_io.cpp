// read_file, write_file_atomic and SHA-256.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>

#include "datasets_test_util.h"
#include "mlaudit/datasets/io.h"

namespace fs = std::filesystem;
using namespace mlaudit;
using namespace mlaudit::datasets;
using mlaudit::test::put_file;

namespace {

std::vector<std::string> folder_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string pattern_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char(i % 251);
  return s;
}

}  // namespace

TEST_CASE("sha256 matches the FIPS 180-2 test vectors", "[datasets][sha256]") {
  // FIPS 180-2 appendix B.1-B.3 (one block, two blocks, one million 'a').
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Empty message (NIST example value; also `printf '' | sha256sum`).
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("sha256 padding boundaries match hashlib", "[datasets][sha256]") {
  // Lengths around the 55/56/64-byte padding edges; goldens from Python
  // hashlib.sha256(bytes(i % 251 for i in range(n))).hexdigest().
  CHECK(sha256_hex(pattern_bytes(55)) == "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59");
  CHECK(sha256_hex(pattern_bytes(56)) == "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562");
  CHECK(sha256_hex(pattern_bytes(63)) == "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488");
  CHECK(sha256_hex(pattern_bytes(64)) == "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108");
  CHECK(sha256_hex(pattern_bytes(119)) == "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6");
  CHECK(sha256_hex(pattern_bytes(120)) == "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c");
}

TEST_CASE("sha256_file streams large files and matches sha256_hex", "[datasets][sha256]") {
  const std::string dir = test::temp_dir("sha");
  const std::string path = dir + "/big.bin";
  // 3 MiB + 5 bytes crosses the 1 MiB read-chunk boundary three times.
  const std::string bytes = pattern_bytes(3 * 1048576 + 5);
  put_file(path, bytes);
  const std::string golden = "b01669d77761c4dfdfc8fb927821087bcf5c9ef1f917c4f1f8504e529f19edab";  // hashlib
  CHECK(sha256_file(path) == golden);
  CHECK(sha256_hex(bytes) == golden);
  MLAUDIT_REQUIRE_INPUT_ERROR(sha256_file(dir + "/missing.bin"), "cannot open '" + dir + "/missing.bin'");
  fs::remove_all(dir);
}

TEST_CASE("sha256_file's cache (the task child's) keeps a digest until the file changes", "[datasets][sha256]") {
  const std::string dir = test::temp_dir("sha-cache");
  const std::string path = dir + "/m.bin";
  put_file(path, pattern_bytes(120));
  const std::string first = "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c";  // as sha256_hex above
  set_file_hash_cache(true);
  CHECK(sha256_file(path) == first);
  CHECK(sha256_file(path) == first);
  // Replaced (a new file under the name, as write_file_atomic does): hashed again.
  write_file_atomic(path, pattern_bytes(121));
  CHECK(sha256_file(path) == sha256_hex(pattern_bytes(121)));
  set_file_hash_cache(false);
  CHECK(sha256_file(path) == sha256_hex(pattern_bytes(121)));
  // Writes without the sync to disk are still whole, atomic files.
  set_sync_writes(false);
  write_file_atomic(path, "scratch");
  set_sync_writes(true);
  CHECK(read_file(path) == "scratch");
  fs::remove_all(dir);
}

TEST_CASE("sha256_file of the shared Adult data matches its published digest", "[datasets][sha256]") {
  const std::string path = test::shared_dataset("adult/adult.data");
  if (!fs::exists(path)) {
    WARN("shared dataset missing, skipped: " << path);
    return;
  }
  // Digest from `sha256sum` (shared/datasets/SOURCES.md lists its prefix 5b002646).
  CHECK(sha256_file(path) == "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d");
}

TEST_CASE("read_file returns the bytes and names the file in errors", "[datasets][io]") {
  const std::string dir = test::temp_dir("readfile");
  const std::string path = dir + "/data.bin";
  std::string bytes = pattern_bytes(200000);
  bytes[7] = '\0';
  put_file(path, bytes);
  CHECK(read_file(path) == bytes);
  CHECK(read_file(path, 200000) == bytes);  // exactly at the limit is allowed

  MLAUDIT_REQUIRE_INPUT_ERROR(read_file(path, 199999),
                              "datasets: '" + path + "' is 200000 bytes, larger than the limit of 199999 bytes");
  MLAUDIT_REQUIRE_INPUT_ERROR(read_file(dir + "/nope.npy"), "datasets: cannot open '" + dir + "/nope.npy': No such file or directory");
  MLAUDIT_REQUIRE_INPUT_ERROR(read_file(dir), "datasets: '" + dir + "' is a directory, not a file");

  put_file(dir + "/empty.bin", "");
  CHECK(read_file(dir + "/empty.bin").empty());
  fs::remove_all(dir);
}

TEST_CASE("write_file_atomic creates folders, replaces files and leaves no temporary behind", "[datasets][io]") {
  const std::string dir = test::temp_dir("atomic");
  const std::string path = dir + "/a/b/c/out.txt";
  write_file_atomic(path, "first");
  CHECK(read_file(path) == "first");
  write_file_atomic(path, "second, longer content");
  CHECK(read_file(path) == "second, longer content");
  write_file_atomic(path, "");
  CHECK(read_file(path).empty());
  CHECK(folder_entries(dir + "/a/b/c") == std::vector<std::string>{"out.txt"});
  fs::remove_all(dir);
}

TEST_CASE("write_file_atomic reports an unwritable target and creates nothing", "[datasets][io]") {
  // /proc refuses new files even for root, so this works under any user.
  MLAUDIT_REQUIRE_INPUT_ERROR(write_file_atomic("/proc/self/mlaudit-out.npy", "x"), "cannot write '/proc/self/mlaudit-out.npy'");
  CHECK_FALSE(fs::exists("/proc/self/mlaudit-out.npy"));
  MLAUDIT_REQUIRE_INPUT_ERROR(write_file_atomic("/proc/self/mlaudit-dir/out.npy", "x"),
                              "cannot create folder '/proc/self/mlaudit-dir' for '/proc/self/mlaudit-dir/out.npy'");

  // A parent "folder" that is a regular file.
  const std::string dir = test::temp_dir("atomic-file-parent");
  put_file(dir + "/plain", "not a folder");
  MLAUDIT_REQUIRE_INPUT_ERROR(write_file_atomic(dir + "/plain/out.npy", "x"), "cannot create folder '" + dir + "/plain'");
  CHECK(read_file(dir + "/plain") == "not a folder");

  if (geteuid() != 0) {
    fs::create_directory(dir + "/readonly");
    fs::permissions(dir + "/readonly", fs::perms::owner_read | fs::perms::owner_exec);
    MLAUDIT_REQUIRE_INPUT_ERROR(write_file_atomic(dir + "/readonly/out.npy", "x"), "Permission denied");
    CHECK(folder_entries(dir + "/readonly").empty());
    fs::permissions(dir + "/readonly", fs::perms::owner_all);
  } else {
    WARN("running as root: read-only folder case skipped (the /proc cases above cover it)");
  }
  fs::remove_all(dir);
}

TEST_CASE("write_file_atomic never leaves a partial file when a write fails midway", "[datasets][io]") {
  const std::string dir = test::temp_dir("atomic-partial");
  const std::string path = dir + "/model_outputs.npy";
  write_file_atomic(path, "previous complete content");

  // Limit file size to 4 KiB so the 1 MiB write fails with EFBIG part-way through
  // (SIGXFSZ ignored so write() returns the error instead of killing the process).
  struct rlimit old_limit {};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  bool thrown = false;
  std::string message;
  try {
    write_file_atomic(path, pattern_bytes(1 << 20));
  } catch (const InputError& e) {
    thrown = true;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);

  CHECK(thrown);
  CHECK_THAT(message, Catch::Contains("cannot write '" + path + "': write failed: File too large"));
  CHECK(read_file(path) == "previous complete content");
  CHECK(folder_entries(dir) == std::vector<std::string>{"model_outputs.npy"});
  fs::remove_all(dir);
}
