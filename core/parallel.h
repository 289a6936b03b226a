// core/parallel.h: parallel_for, the one way host code here splits a loop over threads (input
// generation, reference rows). Plain std::thread: each call starts and joins its own workers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace spattn::core {

// Calls f(begin, end) on disjoint ranges covering [0, n), on up to hardware_concurrency threads,
// each range at least `grain` long; returns when all have finished. f must not throw.
template <typename F>
void parallel_for(std::int64_t n, std::int64_t grain, F f) {
  const auto hw = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  const std::int64_t parts = std::clamp<std::int64_t>(n / std::max<std::int64_t>(grain, 1), 1, hw);
  if (parts == 1) {
    if (n > 0) f(std::int64_t{0}, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(static_cast<std::size_t>(parts));
  for (std::int64_t i = 0; i < parts; ++i)
    workers.emplace_back([&f, i, n, parts] { f(n * i / parts, n * (i + 1) / parts); });
  for (std::thread& t : workers) t.join();
}

}  // namespace spattn::core
