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

#ifndef MLAUDIT_WITH_CUDA
std::vector<std::string> cuda_supported_ops() { return {}; }
std::unique_ptr<DeviceSession> make_cuda_session(const Graph&) { return nullptr; }
std::unique_ptr<Backend> make_cuda_backend() { return nullptr; }
#endif

}  // namespace mlaudit::engine
