// cuda/kernels/copy_view/traits.h: unit types of the strided copy and fill.
#pragma once

#include <cstdint>
#include <type_traits>

namespace spattn::cuda::ops {

template <typename U>
struct CopyTraits {
  using Unit = U;
  static constexpr int kThreads = 256;
  static_assert(sizeof(U) == 2 || sizeof(U) == 4 || sizeof(U) == 16, "2-, 4- or 16-byte units");
};

}  // namespace spattn::cuda::ops
