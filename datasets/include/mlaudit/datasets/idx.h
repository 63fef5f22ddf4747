#pragma once
// IDX files (the MNIST family), plain or gzip-compressed.
#include <string>

#include "mlaudit/common/tensor.h"

namespace mlaudit::datasets {

/// Read an IDX file (uint8, int8, int16, int32, float32, float64 payloads; .gz
/// detected by magic bytes). uint8 data stays UInt8; others become Float32/Int32.
engine::Tensor read_idx(const std::string& path);
/// Decode IDX bytes (plain or gzip) already in memory; `source` names them in error messages.
engine::Tensor parse_idx(const std::string& bytes, const std::string& source);

/// Folder of the Debian dataset-fashion-mnist package.
std::string fashion_mnist_dir();
/// Fashion-MNIST split ("train" or "t10k"): images as float32 [N,1,28,28] in [0,1], labels int64 [N].
void load_fashion_mnist(const std::string& split, engine::Tensor& images, engine::Tensor& labels,
                        const std::string& dir = fashion_mnist_dir());

}  // namespace mlaudit::datasets
