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
/// write_file_atomic syncs each file to disk before the rename (a report survives a crash right
/// after it was written). A process whose files are all another process's scratch (the task child
/// of verify --benchmark: result and branch files read back at once and deleted) turns that
/// off: on ACAS Xu's split pieces the syncs were a quarter of a 5 ms task. Process-wide.
void set_sync_writes(bool sync);
/// Text files are UTF-8 (see mlaudit/common/utf8.h): throws InputError(module,
/// "<source>: line L, column C: byte 0xE7 is not UTF-8 (... iconv ...)") otherwise.
void require_utf8(std::string_view text, const std::string& source, const std::string& module = "datasets");
/// Hex SHA-256 of a file's bytes (for run manifests).
std::string sha256_file(const std::string& path);
/// A file's identity for caches: "device:inode:size:mtime" (a file replaced or rewritten gets
/// another), empty when it cannot be stat'ed.
std::string file_stamp(const std::string& path);
/// sha256_file remembers each file's digest by (path, device, inode, size, modification time)
/// in this process: for a process that hashes the same inputs task after task (verify
/// --benchmark's task child: the model and property of every piece of a split instance).
/// Off by default (a file rewritten in place with the same size within the clock's granularity
/// would keep its old digest). Process-wide; turning it on or off empties it.
void set_file_hash_cache(bool on);
/// Hex SHA-256 of bytes.
std::string sha256_hex(const std::string& bytes);

}  // namespace mlaudit::datasets
