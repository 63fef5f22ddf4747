// UTF-8 validation (RFC 3629 section 4's table of well-formed byte sequences).
#include "mlaudit/common/utf8.h"

#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace mlaudit::engine {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, s + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: the sequence length and the allowed range of the second byte
    // (RFC 3629: E0 A0..BF, ED 80..9F, F0 90..BF, F4 80..8F exclude overlongs and surrogates).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return i;
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string printable(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && out.size() < max_bytes) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02X}", c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += char(c);
      ++i;
      continue;
    }
    // One character: keep it when it is well-formed, else escape the byte.
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (i + len <= text.size() && find_invalid_utf8(text.substr(i, len)) == std::string_view::npos) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += fmt::format("\\x{:02X}", c);
      ++i;
    }
  }
  if (i < text.size()) out += "...";
  return out;
}

std::string escape_invalid_utf8(std::string_view text) {
  size_t bad = find_invalid_utf8(text);
  if (bad == std::string_view::npos) return std::string(text);
  std::string out;
  while (bad != std::string_view::npos) {
    out.append(text.substr(0, bad));
    out += fmt::format("\\x{:02X}", static_cast<unsigned char>(text[bad]));
    text.remove_prefix(bad + 1);
    bad = find_invalid_utf8(text);
  }
  out.append(text);
  return out;
}

std::string latin1_to_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

std::string not_utf8_message(std::string_view text, size_t bad_offset, const std::string& path) {
  const unsigned byte = bad_offset < text.size() ? static_cast<unsigned char>(text[bad_offset]) : 0;
  return fmt::format("byte 0x{:02X} is not UTF-8 (mlaudit reads text as UTF-8; convert the file, e.g. "
                     "iconv -f latin1 -t utf-8 {} > {}.utf8)",
                     byte, path, path);
}

}  // namespace mlaudit::engine
