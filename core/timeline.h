// core/timeline.h: when each task of a plan ran, predicted by the simulator or measured on GPUs, in
// one format so the two line up task by task.
#pragma once

#include <string>
#include <vector>

#include "core/plan.h"
#include "core/units.h"

namespace spattn::core {

struct TaskSpan {
  TaskId task = 0;
  TimePs start = 0, end = 0;  // from the start of the plan (time 0)
};

struct Timeline {
  std::string source;              // "sim" or "cuda"
  std::vector<TaskSpan> spans;     // one per task of the plan, indexed by task id
  TimePs total = 0;                // end of the last task, max over ranks
  std::vector<Bytes> peak_memory;  // per rank
};

}  // namespace spattn::core
