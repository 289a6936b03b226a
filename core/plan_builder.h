// core/plan_builder.h: the one way a plan is built, buffer by buffer and task by task. Buffer and
// task ids are their indices, in the order made, so every dependency points back; a task's
// dependencies are kept sorted, without repeats and without -1 (nothing to wait for). The planner,
// the calibration microbenchmarks and the tests' hand-built plans all build through it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/plan.h"

namespace spattn::core {

class PlanBuilder {
 public:
  explicit PlanBuilder(Plan& plan) : plan_(plan) {}

  // A buffer [plan.problem.batch, tokens, heads, width] on `rank`, created in the current pass.
  BufferId buffer(int rank, std::string name, BufferRole role, TensorKind tensor, ElemType elem,
                  std::int64_t tokens, std::int64_t heads, std::int64_t width);
  BufferId scratch(int rank, std::string name, ElemType elem, std::int64_t tokens,
                   std::int64_t heads, std::int64_t width) {
    return buffer(rank, std::move(name), BufferRole::kScratch, TensorKind::kOther, elem, tokens,
                  heads, width);
  }
  Buffer& at(BufferId b) { return plan_.buffers[static_cast<std::size_t>(b)]; }

  // A task on `rank` and `stream` after `deps` (and, from pass 1 on, after the rank's last tasks
  // of the previous pass); `collective` >= 0 joins the comm tasks of one collective.
  TaskId task(int rank, Stream stream, std::string label, Op op, std::vector<TaskId> deps = {},
              std::int64_t collective = -1);
  TaskId copy(int rank, CopyKind kind, std::string label, View src, View dst,
              std::vector<TaskId> deps = {}) {
    return task(rank, Stream::kCompute, std::move(label), Copy{kind, src, dst}, std::move(deps));
  }
  // A fresh collective id (0, 1, ...).
  std::int64_t collective() { return next_collective_++; }
  // A communicator of `ranks`; returns its index in plan.groups.
  int group(std::vector<int> ranks);

  View whole(BufferId b) { return {b, 0, at(b).tokens, 0, at(b).heads}; }
  View rows(BufferId b, std::int64_t offset, std::int64_t n) {
    return {b, offset, n, 0, at(b).heads};
  }

  // Tasks from here on belong to `pass` (a streamed chunk; -1: buffers every pass shares). Passes
  // run one after another on each rank, as chunks do in generation: every task of a new pass
  // waits for the rank's last tasks of the previous pass (those no task of that pass waits for),
  // which also lets an executor reuse the memory of buffers whose pass is over.
  void set_pass(int pass);

  const Problem& problem() const { return plan_.problem; }
  Plan& plan() { return plan_; }

 private:
  Plan& plan_;
  std::int64_t next_collective_ = 0;
  int pass_ = 0;
  std::vector<std::vector<TaskId>> pass_entry_;  // per rank: what a new pass's tasks wait for
};

}  // namespace spattn::core
