// Merging the parts of a sharded run (commands/merge.cpp): used by `mlaudit merge` on files and
// by `mlaudit --mpi` (mpi.cpp) on the parts its workers send back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlaudit::cli {

/// One part: a name for messages (its file, or "chunk 3 of 16") and its JSON text.
struct PartText {
  std::string name;
  std::string text;
};

/// What one process would have written, and what was merged.
struct MergedReport {
  std::string text;      ///< the report (JSON; results CSV for verify --benchmark when out ends in .csv)
  std::string attributions_npy;  ///< explain: the joined attributions .npy bytes, when asked for
  std::string command;   ///< attack, certify, corrupt, explain or verify
  int64_t shards = 0;
  int64_t samples = 0;   ///< items covered (samples, or benchmark instances)
  bool device_sampler = false;  ///< certify parts drew noise on a GPU (slice-dependent)
};

/// Check that the parts are all the shards of one run and merge them. `out` (the output path)
/// chooses JSON or CSV. `attributions` (explain parts only; a path, or empty): join the parts'
/// attribution arrays into the array one process writes (MergedReport::attributions_npy), each
/// read from the path its part recorded or, failing that, the file of that name beside the part
/// (PartText::name), checked against the hash the part recorded. Throws InputError("merge", ...)
/// naming the part and the problem.
MergedReport merge_parts(const std::vector<PartText>& parts, const std::string& out, const std::string& attributions = "");

}  // namespace mlaudit::cli
