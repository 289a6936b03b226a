// cuda/tools/bench_util.h: what the benchmark tools share: failing on a bad Status, and device
// buffers of random values.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "core/problem.h"
#include "core/status.h"
#include "cuda/half.h"
#include "cuda/runtime.h"

// Prints "<tool>: <message>" and returns 1 from main when `expr` is not ok.
#define BENCH_CHECK(tool, expr)                                     \
  do {                                                              \
    const ::spattn::Status _s = (expr);                             \
    if (!_s.ok()) {                                                 \
      std::fprintf(stderr, "%s: %s\n", tool, _s.message().c_str()); \
      return 1;                                                     \
    }                                                               \
  } while (0)

namespace spattn::cuda::tools {

// `elems` random values in [lo, hi) of dtype t (fp32, bf16 or fp16) at `dev`, tiling a host chunk
// of at most 4M values.
inline Status fill_random(void* dev, std::size_t elems, core::DType t, float lo, float hi,
                          std::uint64_t seed) {
  const std::size_t chunk = std::min<std::size_t>(elems, std::size_t{1} << 22);
  const std::size_t es = t == core::DType::kF32 ? 4 : 2;
  std::vector<float> f(chunk);
  std::vector<std::uint16_t> h(t == core::DType::kF32 ? 0 : chunk);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (float& x : f) x = u(rng);
  for (std::size_t i = 0; i < h.size(); ++i)
    h[i] = t == core::DType::kBF16 ? float_to_bf16(f[i]) : float_to_fp16(f[i]);
  const void* src = t == core::DType::kF32 ? static_cast<const void*>(f.data()) : h.data();
  for (std::size_t off = 0; off < elems; off += chunk) {
    const std::size_t n = std::min(chunk, elems - off);
    SPATTN_RETURN_IF_ERROR(copy_to_device(static_cast<char*>(dev) + off * es, src, n * es));
  }
  return {};
}

}  // namespace spattn::cuda::tools
