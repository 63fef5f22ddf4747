// File helpers: bounded reads, atomic writes, SHA-256 (FIPS 180-4).
#include "mlaudit/datasets/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "mlaudit/common/error.h"
#include "mlaudit/common/utf8.h"

namespace mlaudit::datasets {

namespace {

[[noreturn]] void fail(const std::string& message) { throw InputError("datasets", message); }

std::string errno_text(int err) { return std::generic_category().message(err); }

/// Closes a POSIX file descriptor on scope exit.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string read_file(const std::string& path, int64_t max_bytes) {
  FdGuard f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail(fmt::format("cannot open '{}': {}", path, errno_text(errno)));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(fmt::format("cannot stat '{}': {}", path, errno_text(errno)));
  if (S_ISDIR(st.st_mode)) fail(fmt::format("'{}' is a directory, not a file", path));

  std::string bytes;
  if (S_ISREG(st.st_mode)) {
    if (st.st_size > max_bytes)
      fail(fmt::format("'{}' is {} bytes, larger than the limit of {} bytes", path, int64_t(st.st_size), max_bytes));
    bytes.resize(static_cast<size_t>(st.st_size));
  }
  // Read until EOF (the size may change under us, and pipes/devices report no size).
  size_t filled = 0;
  for (;;) {
    if (filled == bytes.size()) {
      if (static_cast<int64_t>(bytes.size()) >= max_bytes) {
        char probe;
        ssize_t n = ::read(f.fd, &probe, 1);
        if (n == 0) break;
        fail(fmt::format("'{}' is larger than the limit of {} bytes", path, max_bytes));
      }
      size_t grow = std::max<size_t>(bytes.size(), 1 << 16);
      bytes.resize(static_cast<size_t>(std::min<int64_t>(int64_t(bytes.size() + grow), max_bytes)));
    }
    ssize_t n = ::read(f.fd, bytes.data() + filled, bytes.size() - filled);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("cannot read '{}': {}", path, errno_text(errno)));
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  bytes.resize(filled);
  return bytes;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic(path, std::string_view(content), std::string_view());
}

namespace {
std::atomic<bool> g_sync_writes{true};
}  // namespace

void set_sync_writes(bool sync) { g_sync_writes.store(sync); }

void write_file_atomic(const std::string& path, std::string_view head, std::string_view body) {
  namespace fs = std::filesystem;
  if (path.empty()) fail("cannot write a file with an empty name");
  fs::path target(path);
  fs::path parent = target.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) fail(fmt::format("cannot create folder '{}' for '{}': {}", parent.string(), path, ec.message()));
  }
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  FdGuard f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) fail(fmt::format("cannot write '{}': {}", path, errno_text(errno)));

  auto abandon = [&](const std::string& what, int err) {
    ::close(f.fd);
    f.fd = -1;
    ::unlink(tmp.c_str());
    fail(fmt::format("cannot write '{}': {}: {}", path, what, errno_text(err)));
  };
  for (std::string_view part : {head, body}) {
    size_t written = 0;
    while (written < part.size()) {
      ssize_t n = ::write(f.fd, part.data() + written, part.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        abandon("write failed", errno);
      }
      written += static_cast<size_t>(n);
    }
  }
  if (g_sync_writes.load(std::memory_order_relaxed) && ::fsync(f.fd) != 0 && errno != EINVAL && errno != EROFS)
    abandon("fsync failed", errno);
  int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(fmt::format("cannot write '{}': close failed: {}", path, errno_text(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(fmt::format("cannot write '{}': rename failed: {}", path, errno_text(err)));
  }
}

// ---------------------------------------------------------------------------
// SHA-256, FIPS 180-4 (Secure Hash Standard), sections 4.1.2, 4.2.2, 5.1.1, 6.2.
namespace {

class Sha256 {
 public:
  void update(const unsigned char* data, size_t n) {
    total_bits_ += uint64_t(n) * 8;
    while (n > 0) {
      size_t take = std::min(n, size_t(64) - used_);
      std::memcpy(block_.data() + used_, data, take);
      used_ += take;
      data += take;
      n -= take;
      if (used_ == 64) {
        compress(block_.data());
        used_ = 0;
      }
    }
  }

  std::string hex_digest() {
    // 5.1.1 padding: a 1 bit, zeros up to 448 mod 512, then the 64-bit big-endian bit length.
    const uint64_t bits = total_bits_;
    const unsigned char one = 0x80;
    update(&one, 1);
    const unsigned char zero = 0;
    while (used_ != 56) update(&zero, 1);
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
    update(length, 8);
    std::string out;
    out.reserve(64);
    for (uint32_t word : h_) out += fmt::format("{:08x}", word);
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress(const unsigned char* p) {
    // 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    // 6.2.2 step 1: message schedule with sigma0(x) = ROTR7 ^ ROTR18 ^ SHR3, sigma1(x) = ROTR17 ^ ROTR19 ^ SHR10.
    for (int t = 0; t < 16; ++t)
      w[t] = uint32_t(p[4 * t]) << 24 | uint32_t(p[4 * t + 1]) << 16 | uint32_t(p[4 * t + 2]) << 8 | uint32_t(p[4 * t + 3]);
    for (int t = 16; t < 64; ++t) {
      uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    // 6.2.2 step 3: Sigma1(e) = ROTR6 ^ ROTR11 ^ ROTR25, Ch(e,f,g); Sigma0(a) = ROTR2 ^ ROTR13 ^ ROTR22, Maj(a,b,c).
    for (int t = 0; t < 64; ++t) {
      uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = h + big_s1 + ch + k[t] + w[t];
      uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = big_s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h_[0] += a; h_[1] += b; h_[2] += c; h_[3] += d;
    h_[4] += e; h_[5] += f; h_[6] += g; h_[7] += h;
  }

  // 5.3.3: initial hash value, fractional parts of the square roots of the first 8 primes.
  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<unsigned char, 64> block_{};
  size_t used_ = 0;
  uint64_t total_bits_ = 0;
};

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  Sha256 h;
  h.update(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return h.hex_digest();
}

namespace {
// set_file_hash_cache: digests by (path, file_stamp).
std::atomic<bool> g_hash_cache{false};
std::mutex g_hash_mu;
std::map<std::pair<std::string, std::string>, std::string> g_hashes;

std::string stamp_of(const struct stat& st) {
  return fmt::format("{}:{}:{}:{}.{:09d}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}
}  // namespace

std::string file_stamp(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? stamp_of(st) : std::string();
}

void set_file_hash_cache(bool on) {
  g_hash_cache.store(on);
  std::lock_guard<std::mutex> lk(g_hash_mu);
  g_hashes.clear();
}

std::string sha256_file(const std::string& path) {
  FdGuard f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) fail(fmt::format("cannot open '{}': {}", path, errno_text(errno)));
  struct stat st {};
  const bool have_stat = ::fstat(f.fd, &st) == 0;
  if (have_stat && S_ISDIR(st.st_mode)) fail(fmt::format("'{}' is a directory, not a file", path));
  const bool cached = g_hash_cache.load() && have_stat;
  const std::pair<std::string, std::string> key{path, cached ? stamp_of(st) : std::string()};
  if (cached) {
    std::lock_guard<std::mutex> lk(g_hash_mu);
    if (auto it = g_hashes.find(key); it != g_hashes.end()) return it->second;
  }
  // Streamed in chunks of at most 1 MiB so large model files are never held in memory.
  Sha256 h;
  std::string buffer(size_t(std::clamp<int64_t>(have_stat ? int64_t(st.st_size) : 0, 4096, 1 << 20)), '\0');
  for (;;) {
    ssize_t n = ::read(f.fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("cannot read '{}': {}", path, errno_text(errno)));
    }
    if (n == 0) break;
    h.update(reinterpret_cast<const unsigned char*>(buffer.data()), static_cast<size_t>(n));
  }
  std::string digest = h.hex_digest();
  if (cached) {
    std::lock_guard<std::mutex> lk(g_hash_mu);
    if (g_hashes.size() >= 1024) g_hashes.clear();
    g_hashes[key] = digest;
  }
  return digest;
}

void require_utf8(std::string_view text, const std::string& source, const std::string& module) {
  const size_t bad = engine::find_invalid_utf8(text);
  if (bad == std::string_view::npos) return;
  const size_t line_start = bad == 0 ? std::string_view::npos : text.rfind('\n', bad - 1);
  const size_t line = size_t(std::count(text.begin(), text.begin() + long(bad), '\n')) + 1;
  const size_t column = bad - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
  throw InputError(module, fmt::format("{}: line {}, column {}: {}", source, line, column,
                                       engine::not_utf8_message(text, bad, source)));
}

}  // namespace mlaudit::datasets
