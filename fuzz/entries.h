#pragma once
// One entry point per input format that mlaudit reads from untrusted files. Each takes the
// file's bytes and runs them through the same code the CLI runs: it returns normally on
// accepted input and throws mlaudit::InputError (exit 2 in the CLI) on bad input. Any other
// exception, crash, leak or sanitizer report is a bug. The libFuzzer targets (fuzz_*.cpp)
// and the regression test over tests/fixtures/fuzz/<format>/ call these same functions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mlaudit::fuzz {

/// ONNX model: load (protobuf, names, initializers), shape inference through Session, and one
/// forward pass on zeros when every input has at most 4096 elements (dynamic dims set to 1).
void onnx_model(const uint8_t* data, size_t size);
/// .npy: decode, then the float and label conversions the commands apply.
void npy(const uint8_t* data, size_t size);
/// CSV: the first byte picks the reader (generic CSV with every column read as numbers and as
/// categories, or the fairness presets adult, german, compas); the rest is the file.
void csv(const uint8_t* data, size_t size);
/// IDX, plain or gzip-compressed.
void idx(const uint8_t* data, size_t size);
/// VNN-LIB property.
void vnnlib(const uint8_t* data, size_t size);
/// Audit YAML, parsed and validated as `audit --check` does (files not opened).
void audit_yaml(const uint8_t* data, size_t size);
/// Result JSON: an imported section result or a saved report.json, parsed, looked up by every
/// gate metric and rendered (Markdown, HTML, JUnit) as `mlaudit report` does.
void result_json(const uint8_t* data, size_t size);
/// `mlaudit merge` inputs: the first byte picks JSON or results-CSV output, the rest is up to 16
/// part files separated by the byte 0x1E, merged as `mlaudit merge` and `--mpi` do.
void merge_parts(const uint8_t* data, size_t size);

/// Open branches of a split query (`verify --branches`, mlaudit.branches/1's "branches"
/// array): read against a fixed 2-4-2 ReLU network and a two-disjunct property, then decided by
/// verify_branches (one thread, 20 ms; the falsifier's rounds shrunk), as the CLI does.
void open_branches(const uint8_t* data, size_t size);

/// A named entry point ("onnx", "npy", "csv", "idx", "vnnlib", "yaml", "json", "merge", "branches").
struct Target {
  const char* format;
  void (*run)(const uint8_t*, size_t);
};
const std::vector<Target>& targets();

}  // namespace mlaudit::fuzz
