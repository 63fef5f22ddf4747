#include "backend.h"

#ifdef MLAUDIT_WITH_CUDA
extern "C" int mlaudit_cuda_device_count();
#endif

namespace mlaudit::engine {

int cuda_device_count() {
#ifdef MLAUDIT_WITH_CUDA
  return mlaudit_cuda_device_count();
#else
  return 0;
#endif
}

}  // namespace mlaudit::engine
