// cuda/convert.h: dst = src with a change of element type (fp32 <-> bf16/fp16), for the plan's
// Copy tasks whose views differ in type (the fp32 ring accumulator cast into a bf16 output).
#pragma once

#include "core/status.h"
#include "cuda/attention.h"

namespace spattn::cuda {

// Same extents; any pair of bf16, fp16, fp32 (rounding to nearest even). Asynchronous on `stream`.
Status convert_view(const TensorView& dst, const TensorView& src, void* stream);

}  // namespace spattn::cuda
