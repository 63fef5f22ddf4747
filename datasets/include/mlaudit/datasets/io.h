#pragma once
// Small file helpers shared by readers and report writers.
#include <cstdint>
#include <string>
#include <string_view>

namespace mlaudit::datasets {

/// Whole file as bytes; throws InputError (file named) when missing, unreadable or larger than max_bytes.
std::string read_file(const std::string& path, int64_t max_bytes = int64_t(4) << 30);
/// Write to `path.tmp.<pid>` then rename, so readers never see a half-written file.
/// Creates missing parent folders. Throws InputError when the folder is not writable.
void write_file_atomic(const std::string& path, const std::string& content);
/// Same, for content given as two pieces (a header and a large body written in place, no copy).
void write_file_atomic(const std::string& path, std::string_view head, std::string_view body);
/// Text files are UTF-8 (see mlaudit/common/utf8.h): throws InputError(module,
/// "<source>: line L, column C: byte 0xE7 is not UTF-8 (... iconv ...)") otherwise.
void require_utf8(std::string_view text, const std::string& source, const std::string& module = "datasets");
/// Hex SHA-256 of a file's bytes (for run manifests).
std::string sha256_file(const std::string& path);
/// Hex SHA-256 of bytes.
std::string sha256_hex(const std::string& bytes);

}  // namespace mlaudit::datasets
