// Placeholder until the CUDA kernels land: reports no supported ops, so
// --device auto stays on the CPU and --device cuda says the backend is unavailable.
#include "device_session.h"

namespace mlaudit::engine {

std::vector<std::string> cuda_supported_ops() { return {}; }
std::unique_ptr<DeviceSession> make_cuda_session(const Graph&) { return nullptr; }

}  // namespace mlaudit::engine
