// experiments/calibrate/measure_cuda.h: measuring a calibration point on this machine's GPUs:
// its microbenchmark plan run by cuda::execute (one process, rank r on GPU r, no numerical
// check), the point's time read from the measured timeline of the median iteration. Defined only
// where cuda/ is built (SPATTN_HAVE_CUDA).
#pragma once

#include <string>

#include "core/status.h"
#include "experiments/calibrate/sweep.h"

namespace spattn::calibrate {

struct CudaMeasureOptions {
  int warmup = 2;
  int iterations = 5;  // the median iteration's spans are used
};

// Number of usable GPUs; Unavailable with the reason when there is none.
Expected<int> cuda_gpus();
// "NVIDIA H200, cc 9.0, 132 SMs, driver ..., runtime ...".
std::string cuda_device();
MeasureFn cuda_measure(const CudaMeasureOptions& options);

}  // namespace spattn::calibrate
