#include "core/plan_builder.h"

#include <algorithm>

namespace spattn::core {

BufferId PlanBuilder::buffer(int rank, std::string name, BufferRole role, TensorKind tensor,
                             ElemType elem, std::int64_t tokens, std::int64_t heads,
                             std::int64_t width) {
  Buffer b;
  b.name = std::move(name);
  b.rank = rank;
  b.role = role;
  b.tensor = tensor;
  b.elem = elem;
  b.batch = plan_.problem.batch;
  b.tokens = tokens;
  b.heads = heads;
  b.width = width;
  b.pass = pass_;
  plan_.buffers.push_back(std::move(b));
  return static_cast<BufferId>(plan_.buffers.size() - 1);
}

TaskId PlanBuilder::task(int rank, Stream stream, std::string label, Op op,
                         std::vector<TaskId> deps, std::int64_t collective) {
  if (pass_ > 0 && static_cast<std::size_t>(rank) < pass_entry_.size()) {
    const std::vector<TaskId>& entry = pass_entry_[static_cast<std::size_t>(rank)];
    deps.insert(deps.end(), entry.begin(), entry.end());
  }
  deps.erase(std::remove(deps.begin(), deps.end(), TaskId{-1}), deps.end());
  std::sort(deps.begin(), deps.end());
  deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
  Task t;
  t.id = static_cast<TaskId>(plan_.tasks.size());
  t.rank = rank;
  t.stream = stream;
  t.deps = std::move(deps);
  t.collective = collective;
  t.label = std::move(label);
  t.pass = std::max(pass_, 0);
  t.op = std::move(op);
  plan_.tasks.push_back(std::move(t));
  return plan_.tasks.back().id;
}

void PlanBuilder::set_pass(int pass) {
  if (pass > 0 && pass > pass_) {
    const int prev = std::max(pass_, 0);
    std::vector<char> waited_on(plan_.tasks.size(), 0);
    for (const Task& t : plan_.tasks)
      if (t.pass == prev)
        for (TaskId d : t.deps) waited_on[static_cast<std::size_t>(d)] = 1;
    pass_entry_.assign(static_cast<std::size_t>(plan_.world), {});
    for (const Task& t : plan_.tasks)
      if (t.pass == prev && !waited_on[static_cast<std::size_t>(t.id)])
        pass_entry_[static_cast<std::size_t>(t.rank)].push_back(t.id);
  }
  pass_ = pass;
}

int PlanBuilder::group(std::vector<int> ranks) {
  plan_.groups.push_back(std::move(ranks));
  return static_cast<int>(plan_.groups.size() - 1);
}

}  // namespace spattn::core
