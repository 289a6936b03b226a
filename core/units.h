// core/units.h: the units every module shares. Time is integer picoseconds so the simulator's
// event order is exact; sizes are integer bytes; rates are named with their unit.
#pragma once

#include <cmath>
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

// The longest time the simulator models (2^61 ps, about 27 days): durations saturate here, and
// sim::simulate refuses a run whose clock passes it, so time sums never overflow 64 bits.
inline constexpr TimePs kMaxTimePs = TimePs{1} << 61;
// A duration in picoseconds given as a double (e.g. bytes / rate * 1e12), rounded up, in
// [0, kMaxTimePs]; NaN and anything above the limit give kMaxTimePs.
inline TimePs ceil_ps(double ps) {
  if (!(ps < static_cast<double>(kMaxTimePs))) return kMaxTimePs;
  return ps <= 0 ? 0 : static_cast<TimePs>(std::ceil(ps));
}

inline constexpr double ps_to_ms(TimePs t) { return static_cast<double>(t) * 1e-9; }
inline constexpr double ps_to_us(TimePs t) { return static_cast<double>(t) * 1e-6; }

}  // namespace spattn
