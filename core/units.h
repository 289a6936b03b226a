// core/units.h: the units every module shares. Time is integer picoseconds so the simulator's
// event order is exact; sizes are integer bytes; rates are named with their unit.
#pragma once

#include <cstdint>

namespace spattn {

using TimePs = std::int64_t;  // picoseconds
using Bytes = std::int64_t;   // bytes

inline constexpr TimePs kPsPerNs = 1'000;
inline constexpr TimePs kPsPerUs = 1'000'000;
inline constexpr TimePs kPsPerMs = 1'000'000'000;
inline constexpr Bytes kKiB = 1024;
inline constexpr Bytes kMiB = 1024 * kKiB;
inline constexpr Bytes kGiB = 1024 * kMiB;

inline constexpr double ps_to_ms(TimePs t) { return static_cast<double>(t) * 1e-9; }
inline constexpr double ps_to_us(TimePs t) { return static_cast<double>(t) * 1e-6; }

}  // namespace spattn
