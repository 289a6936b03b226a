// cuda/check.h: one macro turning a CUDA runtime error into a Status that names the call, the file
// and the line. Internal to cuda/ (it includes the CUDA runtime header).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/status.h"

namespace spattn::cuda {

inline Status cuda_status(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return Status::ok_status();
  std::string m = std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " +
                  cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  const bool no_device = e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver;
  return {no_device ? StatusCode::kUnavailable : StatusCode::kInternal, std::move(m)};
}

}  // namespace spattn::cuda

// Evaluates a CUDA runtime call; returns its error as a Status from the enclosing function.
#define SPATTN_CUDA_CHECK(call)                                                               \
  do {                                                                                        \
    const cudaError_t _e = (call);                                                            \
    if (_e != cudaSuccess) return ::spattn::cuda::cuda_status(_e, #call, __FILE__, __LINE__); \
  } while (0)
