#pragma once
// NumPy .npy reader and writer (format versions 1.0-3.0, C order).
#include <string>

#include "mlaudit/common/tensor.h"

namespace mlaudit::datasets {

/// Read a .npy file: float32/64, int32/64, uint8 and bool, little or big endian,
/// C order. Throws InputError naming the file and the problem (bad magic,
/// Fortran order, object arrays, unsupported dtype, truncated data).
engine::Tensor read_npy(const std::string& path);
/// Read a .npy file and convert it to float32.
engine::Tensor read_npy_float(const std::string& path);
/// Read a .npy file of integer labels (any integer/bool dtype, or floats holding integers).
engine::Tensor read_npy_labels(const std::string& path);
/// Write a tensor as .npy (version 1.0). Written to a temporary file and renamed,
/// so a failure never leaves a half-written file.
void write_npy(const std::string& path, const engine::Tensor& t);
/// Decode .npy bytes already in memory; `source` names them in error messages.
engine::Tensor parse_npy(const std::string& bytes, const std::string& source);
/// Encode a tensor as .npy bytes (version 1.0, or 2.0 when the header needs it).
std::string encode_npy(const engine::Tensor& t);

}  // namespace mlaudit::datasets
