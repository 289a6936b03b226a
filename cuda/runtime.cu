#include "cuda/check.h"
#include "cuda/runtime.h"

namespace spattn::cuda {

Expected<int> device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return Status(StatusCode::kUnavailable,
                  std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e));
  }
  return n;
}

Expected<std::string> device_description() {
  int dev = 0, drv = 0, rt = 0;
  SPATTN_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  SPATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  SPATTN_CUDA_CHECK(cudaDriverGetVersion(&drv));
  SPATTN_CUDA_CHECK(cudaRuntimeGetVersion(&rt));
  return std::string(prop.name) + ", cc " + std::to_string(prop.major) + "." +
         std::to_string(prop.minor) + ", " + std::to_string(prop.multiProcessorCount) +
         " SMs, driver API " + std::to_string(drv) + ", runtime " + std::to_string(rt);
}

Expected<void*> device_malloc(std::size_t bytes) {
  void* p = nullptr;
  SPATTN_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}
Status device_free(void* p) {
  SPATTN_CUDA_CHECK(cudaFree(p));
  return {};
}
Status copy_to_device(void* dst, const void* src, std::size_t bytes) {
  SPATTN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return {};
}
Status copy_to_host(void* dst, const void* src, std::size_t bytes) {
  SPATTN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  return {};
}
Status device_memset(void* p, int byte, std::size_t bytes) {
  SPATTN_CUDA_CHECK(cudaMemset(p, byte, bytes));
  return {};
}
Status device_synchronize() {
  SPATTN_CUDA_CHECK(cudaDeviceSynchronize());
  return {};
}

namespace {
Status make_events(void** a, void** b) {
  cudaEvent_t ea, eb;
  SPATTN_CUDA_CHECK(cudaEventCreate(&ea));
  SPATTN_CUDA_CHECK(cudaEventCreate(&eb));
  *a = ea;
  *b = eb;
  return {};
}
}  // namespace

EventTimer::EventTimer() : init_(make_events(&start_, &stop_)) {}
EventTimer::~EventTimer() {
  if (start_) cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  if (stop_) cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}
Status EventTimer::start(void* stream) {
  SPATTN_RETURN_IF_ERROR(init_);
  SPATTN_CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(start_), static_cast<cudaStream_t>(stream)));
  return {};
}
Status EventTimer::stop(void* stream) {
  SPATTN_RETURN_IF_ERROR(init_);
  SPATTN_CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(stop_), static_cast<cudaStream_t>(stream)));
  return {};
}
Expected<float> EventTimer::elapsed_ms() {
  SPATTN_RETURN_IF_ERROR(init_);
  SPATTN_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  SPATTN_CUDA_CHECK(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

}  // namespace spattn::cuda
