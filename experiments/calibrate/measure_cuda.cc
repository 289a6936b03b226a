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
    o.check = false;
    o.watchdog_s = 60;
    Expected<cuda::ExecResult> r = cuda::execute(mb.plan, o);
    if (!r) return r.status();
    // A short point runs again, long enough to be warm and to time many runs (repetitions_for).
    const Repetitions n = repetitions_for(r->median_ms * 1e3, options.warmup, options.iterations);
    if (n.warmup != o.warmup || n.iterations != o.iterations) {
      o.warmup = n.warmup;
      o.iterations = n.iterations;
      r = cuda::execute(mb.plan, o);
      if (!r) return r.status();
    }
    return timed_us(mb, r->timeline);
  };
}

}  // namespace spattn::calibrate
