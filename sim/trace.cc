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
    const int base = static_cast<int>(k) * plan.world;
    for (int r = 0; r < plan.world; ++r) {
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
