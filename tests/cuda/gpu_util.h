// tests/cuda/gpu_util.h: what the GPU tests share: the skip-without-GPU guard and 16-bit host
// conversions by dtype (device buffers: cuda::DeviceBuffer, cuda/runtime.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/problem.h"
#include "cuda/half.h"
#include "cuda/runtime.h"

namespace spattn::cuda::testing {

// GTEST_SKIP()s the calling test when no GPU can be used.
#define SPATTN_REQUIRE_GPU()                                                                       \
  do {                                                                                             \
    auto _n = ::spattn::cuda::device_count();                                                      \
    if (!_n.ok() || *_n == 0)                                                                      \
      GTEST_SKIP() << "no GPU: "                                                                   \
                   << (_n.ok() ? std::string("cudaGetDeviceCount() = 0") : _n.status().message()); \
  } while (0)

#define SPATTN_ASSERT_OK(expr)            \
  do {                                    \
    const ::spattn::Status _s = (expr);   \
    ASSERT_TRUE(_s.ok()) << _s.message(); \
  } while (0)

inline std::uint16_t to_half_bits(float x, core::DType t) {
  return t == core::DType::kBF16 ? float_to_bf16(x) : float_to_fp16(x);
}
inline float from_half_bits(std::uint16_t x, core::DType t) {
  return t == core::DType::kBF16 ? bf16_to_float(x) : fp16_to_float(x);
}
// x rounded to the dtype (fp32: to float).
inline float round_to(double x, core::DType t) {
  return t == core::DType::kF32 ? static_cast<float>(x)
                                : from_half_bits(to_half_bits(static_cast<float>(x), t), t);
}

}  // namespace spattn::cuda::testing
