#include "sim/trace.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace spattn::sim {

std::string chrome_trace(const core::Plan& plan,
                         const std::vector<const core::Timeline*>& timelines) {
  using nlohmann::json;
  json events = json::array();
  for (std::size_t k = 0; k < timelines.size(); ++k) {
    const core::Timeline& tl = *timelines[k];
    const int base = static_cast<int>(k) * plan.ranks_held();
    for (int r = 0; r < plan.ranks_held(); ++r) {
      events.push_back({{"ph", "M"},
                        {"name", "process_name"},
                        {"pid", base + r},
                        {"args", {{"name", tl.source + " rank " + std::to_string(r)}}}});
      events.push_back({{"ph", "M"},
                        {"name", "process_sort_index"},
                        {"pid", base + r},
                        {"args", {{"sort_index", base + r}}}});
      for (int s = 0; s < 2; ++s)
        events.push_back({{"ph", "M"},
                          {"name", "thread_name"},
                          {"pid", base + r},
                          {"tid", s},
                          {"args", {{"name", s == 0 ? "compute" : "comm"}}}});
    }
    for (const core::TaskSpan& sp : tl.spans) {
      const core::Task& t = plan.tasks[static_cast<std::size_t>(sp.task)];
      events.push_back({{"ph", "X"},
                        {"name", t.label},
                        {"pid", base + t.rank},
                        {"tid", static_cast<int>(t.stream)},
                        {"ts", ps_to_us(sp.start)},
                        {"dur", ps_to_us(sp.end - sp.start)},
                        {"args", {{"task", t.id}}}});
    }
  }
  // Streaming plans: a counter per rank with the working set of each chunk from when it starts.
  const std::vector<std::vector<Bytes>> mem = core::memory_by_pass(plan);
  for (std::size_t k = 0; k < timelines.size() && mem.size() > 1; ++k) {
    const int base = static_cast<int>(k) * plan.ranks_held();
    std::vector<std::vector<TimePs>> start(
        mem.size(), std::vector<TimePs>(static_cast<std::size_t>(plan.world), -1));
    for (const core::TaskSpan& sp : timelines[k]->spans) {
      const core::Task& t = plan.tasks[static_cast<std::size_t>(sp.task)];
      TimePs& s0 = start[static_cast<std::size_t>(t.pass)][static_cast<std::size_t>(t.rank)];
      if (s0 < 0 || sp.start < s0) s0 = sp.start;
    }
    for (std::size_t c = 0; c < mem.size(); ++c)
      for (int r = 0; r < plan.ranks_held(); ++r) {
        const TimePs at = start[c][static_cast<std::size_t>(r)];
        if (at < 0) continue;
        events.push_back(
            {{"ph", "C"},
             {"name", "working set"},
             {"pid", base + r},
             {"ts", ps_to_us(at)},
             {"args",
              {{"MiB", static_cast<double>(mem[c][static_cast<std::size_t>(r)]) / (1 << 20)}}}});
      }
  }
  json doc = {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ns"}};
  return doc.dump(1);
}

Status write_chrome_trace(const core::Plan& plan,
                          const std::vector<const core::Timeline*>& timelines,
                          const std::string& path) {
  std::ofstream f(path);
  if (!f) return not_found(path + ": cannot open the file for writing");
  f << chrome_trace(plan, timelines);
  if (!f) return internal_error(path + ": write failed");
  return {};
}

}  // namespace spattn::sim
