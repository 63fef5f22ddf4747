#pragma once
// A cache of what is derived from a constant weight tensor once and reused on every run: a
// oneDNN convolution's weights reordered into its blocked layout (ops_nn.cpp), a GEMM's packed
// panels (cpu/row_gemm.cpp). Entries are keyed by the tensor's storage (its address and a weak
// reference, so freed storage is never matched again, even when a new tensor reuses the
// address) plus what the caller compares; only nodes whose weight is a graph initializer
// (kConstWeightsAttribute) use it: their storage is immutable while the executor holds it. The
// cache holds at most 1 GiB: past that, entries of freed storage go first, then all.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "mlaudit/engine/tensor.h"

namespace mlaudit::engine::detail {

template <class Value>
class WeightCache {
 public:
  /// The value cached for `w` that `same(value)` accepts; else `make()`, cached with `bytes(value)`.
  template <class Same, class Make, class Bytes>
  Value get(const Tensor& w, Same same, Make make, Bytes bytes) {
    const void* key = w.raw();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto range = entries_.equal_range(key);
      for (auto it = range.first; it != range.second;) {
        auto owner = it->second.owner.lock();
        if (!owner || owner.get() != key) {  // storage freed: the address may now hold other data
          bytes_ -= it->second.bytes;
          it = entries_.erase(it);
          continue;
        }
        if (same(it->second.value)) return it->second.value;
        ++it;
      }
    }
    Value v = make();
    const size_t size = bytes(v);
    std::lock_guard<std::mutex> lock(mu_);
    if (bytes_ + size > kLimit) {
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (!it->second.owner.expired()) {
          ++it;
          continue;
        }
        bytes_ -= it->second.bytes;
        it = entries_.erase(it);
      }
      if (bytes_ + size > kLimit) entries_.clear(), bytes_ = 0;
    }
    entries_.emplace(key, Entry{w.storage(), v, size});
    bytes_ += size;
    return v;
  }

 private:
  static constexpr size_t kLimit = size_t(1) << 30;
  struct Entry {
    std::weak_ptr<uint8_t> owner;
    Value value;
    size_t bytes;
  };
  std::mutex mu_;
  std::multimap<const void*, Entry> entries_;
  size_t bytes_ = 0;
};

}  // namespace mlaudit::engine::detail
