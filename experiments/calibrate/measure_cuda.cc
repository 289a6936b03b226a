#include "experiments/calibrate/measure_cuda.h"

#include "cuda/executor.h"
#include "cuda/runtime.h"

namespace spattn::calibrate {

Expected<int> cuda_gpus() {
  Expected<int> n = cuda::device_count();
  if (!n) return n.status();
  if (*n == 0) return unavailable("no CUDA GPU is available (cudaGetDeviceCount() = 0)");
  return *n;
}

std::string cuda_device() {
  Expected<std::string> d = cuda::device_description();
  return d ? *d : "unknown GPU (" + d.status().message() + ")";
}

MeasureFn cuda_measure(const CudaMeasureOptions& options) {
  return [options](const Point& p) -> Expected<double> {
    const MicroBench mb = build_microbench(p);
    cuda::ExecOptions o;
    o.warmup = options.warmup;
    o.iterations = options.iterations;
    o.warmup_ms = kWarmupMs;  // a short point runs long enough to be warm and steady
    o.timed_ms = kTimedMs;
    o.check = false;
    o.watchdog_s = 60;
    Expected<cuda::ExecResult> r = cuda::execute(mb.plan, o);
    if (!r) return r.status();
    return timed_us(mb, r->timeline);
  };
}

}  // namespace spattn::calibrate
