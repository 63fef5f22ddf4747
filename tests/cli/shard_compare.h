// Comparing a merged (sharded or MPI) report with one process's: everything but the timings.
#pragma once

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace mlaudit::test {

// Text lines that are not timings: every other byte must match.
inline std::vector<std::string> untimed_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find("seconds") == std::string::npos) out.push_back(line);
  return out;
}

// The same JSON without timings (for a readable first difference).
inline nlohmann::json untimed(nlohmann::json j) {
  if (j.is_object()) {
    for (const char* k : {"seconds", "seconds_per_sample", "mean_seconds_per_sample", "total_seconds", "median_seconds",
                          "attribution_seconds", "cpu_seconds", "cpu_seconds_per_sample"})  // explain's timing block
      j.erase(k);
    for (auto& [k, v] : j.items()) v = untimed(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = untimed(v);
  }
  return j;
}

}  // namespace mlaudit::test
