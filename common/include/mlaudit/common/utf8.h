#pragma once
// The encoding rule for every text mlaudit reads (CSV, VNN-LIB, YAML, JSON, feature
// lists, ONNX names): UTF-8 (RFC 3629) or an InputError naming the place, because every
// string may end up in a result JSON, and JSON text is UTF-8 (RFC 8259 section 8.1).
#include <cstddef>
#include <string>
#include <string_view>

namespace mlaudit::engine {

/// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629 section 4:
/// no overlong forms, no surrogates, nothing above U+10FFFF), or std::string_view::npos.
size_t find_invalid_utf8(std::string_view text);
/// True when `text` is well-formed UTF-8.
inline bool is_utf8(std::string_view text) { return find_invalid_utf8(text) == std::string_view::npos; }
/// `text` for an error message: bytes that are not UTF-8 written as \xE7, control characters
/// as \x0A, cut to about max_bytes with "..." so a hostile value cannot flood the line.
std::string printable(std::string_view text, size_t max_bytes = 60);
/// `text` with each byte that is not UTF-8 written as \xE7 (nothing else changed or cut):
/// what every mlaudit::Error message goes through, so messages can go into result JSON.
std::string escape_invalid_utf8(std::string_view text);
/// Latin-1 (ISO 8859-1) bytes as UTF-8 (each byte is the code point of the same value).
std::string latin1_to_utf8(std::string_view text);
/// "byte 0xE7 is not UTF-8 (mlaudit reads text as UTF-8; convert the file, e.g.
/// iconv -f latin1 -t utf-8 PATH > PATH.utf8)": the tail of every not-UTF-8 message.
std::string not_utf8_message(std::string_view text, size_t bad_offset, const std::string& path);

}  // namespace mlaudit::engine
