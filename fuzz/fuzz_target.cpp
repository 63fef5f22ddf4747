// libFuzzer target for one input format (MLAUDIT_FUZZ_FORMAT, set per executable by
// fuzz/CMakeLists.txt): bytes in, the format's entry point (entries.h) runs them; an
// InputError is a clean rejection, anything else escapes and libFuzzer reports it.
#include <cstring>

#include "entries.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace {
void (*entry)(const uint8_t*, size_t) = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mlaudit::engine::set_num_threads(1);
  for (const auto& t : mlaudit::fuzz::targets())
    if (std::strcmp(t.format, MLAUDIT_FUZZ_FORMAT) == 0) entry = t.run;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    entry(data, size);
  } catch (const mlaudit::InputError&) {
  }
  return 0;
}
