// Allocator tuning for the executable (declared in mlaudit/engine/session.h): called by
// main(), never at static initialisation, so a library user keeps glibc's defaults.
#include <malloc.h>

#include "mlaudit/engine/session.h"

namespace mlaudit::engine {

void tune_process_allocator() {
  // Keep freed activation buffers in the heap instead of returning them to the OS: attacks
  // and attributions run the same shapes thousands of times, and fresh mmap'd pages cost a
  // page fault per 4 KiB on every call.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

}  // namespace mlaudit::engine
