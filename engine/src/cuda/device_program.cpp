// The public device API's Program on the CUDA executor, device arrays, and device_program(session)
// (mlaudit/engine/device.h): how the modules' device loops (robustness/src/cuda, explain/src/cuda)
// reach a Session's graph on the device without seeing the executor.
#include <fmt/format.h>

#include <algorithm>

#include "cuda_executor.h"
#include "mlaudit/engine/device.h"
#include "mlaudit/engine/error.h"
#include "mlaudit/engine/session.h"

namespace mlaudit::engine::cuda {

namespace {

DValue as_value(const DeviceArray& a) {
  DValue v;
  v.shape = a.shape;
  v.dtype = DType::Float32;
  v.buf = a.buf;
  return v;
}

DeviceArray as_array(const DValue& v, const char* what) {
  if (!v.on_device())
    throw Error("engine", fmt::format("device program: the {} is not a float32 device value", what));
  return DeviceArray{v.shape, v.buf};
}

}  // namespace

DeviceArray device_array(const Shape& shape) {
  DValue v = device_tensor(shape);
  return DeviceArray{v.shape, v.buf};
}

DeviceArray device_array_zeros(const Shape& shape, const Stream& s) {
  DValue v = device_zeros(shape, s);
  return DeviceArray{v.shape, v.buf};
}

DeviceArray upload_array(const Tensor& t, const Stream& s) {
  return as_array(to_device(t.dtype() == DType::Float32 ? t : t.to(DType::Float32), s), "upload");
}

Tensor download_array(const DeviceArray& a, const Stream& s) { return to_host(as_value(a), s); }

DeviceArray CudaExecutor::forward(const DeviceArray& x, Tape* tape) const {
  auto values = std::make_shared<std::vector<DValue>>(forward_values({as_value(x)}, tape != nullptr));
  DeviceArray out = as_array(outputs_of(*values).at(0), "model output");
  if (tape) tape->state_ = std::move(values);
  return out;
}

DeviceArray CudaExecutor::input_gradient(const Tape& tape, const DeviceArray& seed) const {
  if (tape.empty()) throw Error("engine", "device program: input_gradient needs the tape of a forward");
  const auto& values = *static_cast<const std::vector<DValue>*>(tape.state_.get());
  return as_array(backward_values(values, {as_value(seed)}).at(0), "input gradient");
}

int64_t CudaExecutor::fitting_batch(const Shape& sample, int64_t cap) const {
  Shape one_shape{1};
  one_shape.insert(one_shape.end(), sample.begin(), sample.end());
  const Stream& st = stream();
  DValue one = device_zeros(one_shape, st);
  auto values = forward_values({one}, true);
  int64_t bytes = 0;
  for (const auto& v : values)
    if (v.on_device()) bytes += v.numel() * int64_t(sizeof(float));
  values.clear();
  st.synchronize();
  size_t free_b = 0, total_b = 0;
  memory_info(free_b, total_b);
  int64_t per = std::max<int64_t>(1, 3 * bytes);
  return std::clamp<int64_t>(int64_t(free_b / 2) / per, 1, cap);
}

const Program* device_program(const Session& session) {
  if (session.backend_name() != "cuda" || device_count() == 0) return nullptr;
  return dynamic_cast<const CudaExecutor*>(session.device_session());
}

}  // namespace mlaudit::engine::cuda
