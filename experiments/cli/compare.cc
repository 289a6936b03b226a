#include "experiments/cli/compare.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/yaml_util.h"
#include "experiments/cli/plans.h"
#include "planner/planner.h"

namespace spattn::experiments {

std::vector<TaskDiff> largest_task_differences(const core::Plan& plan,
                                               const core::Timeline& predicted,
                                               const core::Timeline& measured, int n) {
  // Spans are indexed by task id, but look them up by id in case a timeline holds a subset.
  std::vector<const core::TaskSpan*> meas(plan.tasks.size(), nullptr);
  for (const core::TaskSpan& sp : measured.spans)
    if (sp.task >= 0 && static_cast<std::size_t>(sp.task) < meas.size() && sp.end > sp.start)
      meas[static_cast<std::size_t>(sp.task)] = &sp;
  std::vector<TaskDiff> all;
  for (const core::TaskSpan& sp : predicted.spans) {
    if (sp.task < 0 || static_cast<std::size_t>(sp.task) >= meas.size()) continue;
    const core::TaskSpan* m = meas[static_cast<std::size_t>(sp.task)];
    if (m == nullptr) continue;
    const core::Task& t = plan.tasks[static_cast<std::size_t>(sp.task)];
    all.push_back(
        {t.label, t.rank, t.id, ps_to_us(sp.end - sp.start), ps_to_us(m->end - m->start)});
  }
  auto gap = [](const TaskDiff& d) { return std::abs(d.predicted_us - d.measured_us); };
  const std::size_t k = std::min<std::size_t>(all.size(), static_cast<std::size_t>(std::max(n, 0)));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end(),
                    [&](const TaskDiff& a, const TaskDiff& b) {
                      if (gap(a) != gap(b)) return gap(a) > gap(b);
                      return a.task < b.task;
                    });
  all.resize(k);
  return all;
}

namespace {

const ReportRow* find_row(const Report& r, const std::string& label, const std::string& plan) {
  for (const ReportCase& c : r.cases) {
    if (c.label != label) continue;
    for (const ReportRow& row : c.rows)
      if (row.plan == plan && row.status.ok()) return &row;
  }
  return nullptr;
}

}  // namespace

std::vector<CompareRow> compare_reports(const Report& predicted, const Report& measured,
                                        const std::vector<CompareRow>& earlier) {
  std::vector<CompareRow> out;
  for (const ReportCase& c : predicted.cases) {
    for (const ReportRow& p : c.rows) {
      if (!p.status.ok()) continue;
      const ReportRow* m = find_row(measured, c.label, p.plan);
      if (m == nullptr) continue;
      CompareRow row;
      row.label = c.label;
      row.gpus = c.gpus;
      row.problem = c.problem;
      row.plan = p.plan;
      row.choice = p.choice;
      row.predicted_ms = p.metric("predicted_ms");
      row.measured_ms = m->metric("median_ms", m->metric("measured_ms"));
      row.rel_error = row.measured_ms > 0 ? (row.predicted_ms - row.measured_ms) / row.measured_ms
                                          : std::nan("");
      row.predicted_gib = p.metric("predicted_gib");
      row.measured_gib = m->metric("measured_gib");
      if (p.timeline && m->timeline &&
          p.plan_options.symmetric_unit == m->plan_options.symmetric_unit) {
        Expected<core::Plan> plan = planner::make_plan(c.problem, p.choice, p.plan_options);
        if (plan) row.top = largest_task_differences(*plan, *p.timeline, *m->timeline, 3);
      } else {
        for (const CompareRow& e : earlier)
          if (e.label == row.label && e.plan == row.plan) row.top = e.top;
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string num(double x) { return std::isfinite(x) ? fmt::format("{:.6g}", x) : ""; }

}  // namespace

std::string compare_csv(const std::vector<CompareRow>& rows) {
  std::string s =
      "case,gpus,seq_len,joint_len,q_heads,kv_heads,head_dim,causal,plan,scheme,ulysses,ring,"
      "layout,predicted_ms,measured_ms,rel_error,predicted_gib,measured_gib";
  for (int i = 1; i <= 3; ++i)
    s += fmt::format(",task{0}_label,task{0}_rank,task{0}_predicted_us,task{0}_measured_us", i);
  s += "\n";
  for (const CompareRow& r : rows) {
    const core::PlanChoice& c = r.choice;
    s += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}", csv_field(r.label),
                     r.gpus, r.problem.seq_len, r.problem.joint_len, r.problem.q_heads,
                     r.problem.kv_heads, r.problem.head_dim, r.problem.causal ? 1 : 0,
                     csv_field(r.plan), core::to_string(c.scheme), c.ulysses_degree, c.ring_degree,
                     c.scheme == core::Scheme::kUlysses ? "-" : core::to_string(c.layout),
                     num(r.predicted_ms), num(r.measured_ms), num(r.rel_error),
                     num(r.predicted_gib), num(r.measured_gib));
    for (std::size_t i = 0; i < 3; ++i) {
      if (i < r.top.size())
        s += fmt::format(",{},{},{},{}", csv_field(r.top[i].label), r.top[i].rank,
                         num(r.top[i].predicted_us), num(r.top[i].measured_us));
      else
        s += ",,,,";
    }
    s += "\n";
  }
  return s;
}

nlohmann::json compare_json(const std::vector<CompareRow>& rows) {
  nlohmann::json a = nlohmann::json::array();
  for (const CompareRow& r : rows) {
    nlohmann::json top = nlohmann::json::array();
    for (const TaskDiff& d : r.top)
      top.push_back({{"label", d.label},
                     {"rank", d.rank},
                     {"task", d.task},
                     {"predicted_us", d.predicted_us},
                     {"measured_us", d.measured_us}});
    nlohmann::json j = {{"case", r.label},
                        {"gpus", r.gpus},
                        {"problem", problem_json(r.problem)},
                        {"plan", r.plan},
                        {"choice", choice_json(r.choice)},
                        {"predicted_ms", r.predicted_ms},
                        {"measured_ms", r.measured_ms},
                        {"predicted_gib", r.predicted_gib},
                        {"measured_gib", r.measured_gib},
                        {"largest_task_differences", std::move(top)}};
    // JSON has no NaN: a missing relative error is null.
    j["rel_error"] = std::isfinite(r.rel_error) ? nlohmann::json(r.rel_error) : nlohmann::json();
    a.push_back(std::move(j));
  }
  return {{"rows", std::move(a)}};
}

Expected<std::vector<CompareRow>> compare_from_json(const nlohmann::json& j) {
  try {
    std::vector<CompareRow> out;
    for (const nlohmann::json& jr : j.at("rows")) {
      CompareRow r;
      r.label = jr.at("case").get<std::string>();
      r.gpus = jr.value("gpus", 0);
      r.problem = problem_from_json(jr.at("problem"));
      r.plan = jr.at("plan").get<std::string>();
      Expected<core::PlanChoice> ch = choice_from_json(jr.at("choice"));
      if (!ch) return ch.status();
      r.choice = *ch;
      r.predicted_ms = jr.value("predicted_ms", 0.0);
      r.measured_ms = jr.value("measured_ms", 0.0);
      r.rel_error =
          jr.at("rel_error").is_number() ? jr.at("rel_error").get<double>() : std::nan("");
      r.predicted_gib = jr.value("predicted_gib", 0.0);
      r.measured_gib = jr.value("measured_gib", 0.0);
      for (const nlohmann::json& d : jr.at("largest_task_differences"))
        r.top.push_back({d.at("label").get<std::string>(), d.at("rank").get<int>(),
                         d.at("task").get<core::TaskId>(), d.at("predicted_us").get<double>(),
                         d.at("measured_us").get<double>()});
      out.push_back(std::move(r));
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("not a spattn comparison: ") + e.what());
  }
}

Status write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return not_found(tmp + ": cannot open for writing");
    f << content;
    f.flush();
    if (!f) return internal_error(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code removed;  // rename's error is the one to report ("Success" was remove's)
    std::filesystem::remove(tmp, removed);
    return internal_error(path + ": rename failed: " + ec.message());
  }
  return {};
}

Expected<nlohmann::json> read_json_file(const std::string& path) {
  // A regular file of a bounded size (a folder named host.json threw std::ios_failure: abort).
  Expected<std::string> text = core::read_input_file(path);
  if (!text) return text.status();
  try {
    return nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(path + ": " + e.what());
  }
}

std::string file_safe(const std::string& s) {
  std::string o;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '=' || c == '.';
    o += ok ? c : '_';
  }
  return o;
}

}  // namespace spattn::experiments
