// cuda/runtime.h: the few CUDA runtime services that code outside cuda/ needs (tests, benchmarks,
// the executor's host side), behind Status-returning functions so no CUDA header leaks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace spattn::cuda {

// Number of usable GPUs; Unavailable (with the CUDA error) when the driver or device is missing.
Expected<int> device_count();
// "NVIDIA H200, cc 9.0, 132 SMs, driver 13000, runtime 13000".
Expected<std::string> device_description();

Expected<void*> device_malloc(std::size_t bytes);
Status device_free(void* p);
Status copy_to_device(void* dst, const void* src, std::size_t bytes);
Status copy_to_host(void* dst, const void* src, std::size_t bytes);
Status device_memset(void* p, int byte, std::size_t bytes);
Status device_synchronize();

// Elapsed device time between two points recorded on a stream (CUDA events).
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  Status start(void* stream = nullptr);
  Status stop(void* stream = nullptr);
  Expected<float> elapsed_ms();  // synchronizes on the stop event

 private:
  void* start_ = nullptr;  // cudaEvent_t
  void* stop_ = nullptr;
  Status init_;
};

}  // namespace spattn::cuda
