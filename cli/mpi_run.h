// `mlaudit --mpi <command> ...` under mpirun (mpi.cpp; built when CMake finds MPI).
#pragma once

#include <string>
#include <vector>

#include "command.h"

namespace mlaudit::cli {

/// Rank 0 hands out chunks of the command's items (each what `--shard c/M` runs) to ranks
/// 1..K-1 as they become idle and writes the merged report to the command's --out; the other
/// ranks run chunks. One rank alone runs the command as is. Returns the exit code.
int run_mpi(const std::string& command, const std::vector<std::string>& args, const GlobalOptions& global);

}  // namespace mlaudit::cli
