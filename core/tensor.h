// core/tensor.h: a small host tensor in double precision, [batch, tokens, heads, width] row-major,
// used by the reference attention and the functional executor.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace spattn::core {

struct HostTensor {
  std::int64_t batch = 0, tokens = 0, heads = 0, width = 0;
  std::vector<double> data;

  HostTensor() = default;
  HostTensor(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w, double fill = 0.0)
      : batch(b),
        tokens(t),
        heads(h),
        width(w),
        data(static_cast<std::size_t>(b * t * h * w), fill) {}

  std::int64_t index(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w = 0) const {
    return ((b * tokens + t) * heads + h) * width + w;
  }
  double& at(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w = 0) {
    return data[static_cast<std::size_t>(index(b, t, h, w))];
  }
  double at(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w = 0) const {
    return data[static_cast<std::size_t>(index(b, t, h, w))];
  }
  double* row(std::int64_t b, std::int64_t t, std::int64_t h) { return &at(b, t, h, 0); }
  const double* row(std::int64_t b, std::int64_t t, std::int64_t h) const {
    return &data[static_cast<std::size_t>(index(b, t, h, 0))];
  }
};

}  // namespace spattn::core
