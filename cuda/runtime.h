// cuda/runtime.h: the few CUDA runtime services that code outside cuda/ needs (tests, benchmarks,
// the executor's host side), behind Status-returning functions so no CUDA header leaks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

// Device memory freed on scope exit; get() is null and status() says why when the allocation
// failed (a zero-byte buffer takes 16 bytes, so get() is a real pointer).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    Expected<void*> m = device_malloc(bytes == 0 ? 16 : bytes);
    if (m.ok()) {
      ptr_ = *m;
    } else {
      status_ = m.status();
    }
  }
  ~DeviceBuffer() {
    if (ptr_) (void)device_free(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  const Status& status() const { return status_; }
  template <typename T>
  Status upload(const std::vector<T>& h) {
    return copy_to_device(ptr_, h.data(), h.size() * sizeof(T));
  }
  template <typename T>
  Status download(std::vector<T>& h) const {
    return copy_to_host(h.data(), ptr_, h.size() * sizeof(T));
  }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_;
  Status status_;
};

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
