// planner/streaming.cc: placeholder replaced below.
#include "planner/builder.h"
namespace spattn::planner {
Status build_streaming(core::Plan& plan) { return infeasible("plan " + plan.name() + ": streaming is not planned yet"); }
}  // namespace spattn::planner
