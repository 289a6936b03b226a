#include "experiments/cli/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/documents.h"
#include "experiments/cli/plans.h"

namespace spattn::experiments {

Expected<std::vector<Backend>> parse_backends(const std::string& list) {
  std::vector<Backend> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    Expected<Backend> b = parse_backend(list.substr(pos, comma - pos));
    if (!b) return b.status();
    if (std::find(out.begin(), out.end(), *b) == out.end()) out.push_back(*b);
    pos = comma + 1;
  }
  return out;
}

core::Problem scale_down(const core::Problem& p, std::int64_t n, int world) {
  core::Problem s = p;
  if (n <= 1) return s;
  s.seq_len = std::max(p.seq_len / n, std::min<std::int64_t>(p.seq_len, 2 * world));
  s.joint_len = std::max(p.joint_len / n, std::min<std::int64_t>(p.joint_len, 4));
  if (!p.doc_bounds.empty()) {  // every document scaled, none below one token
    std::vector<std::int64_t> lengths = core::document_lengths(p.doc_bounds);
    for (std::int64_t& l : lengths) l = std::max<std::int64_t>(1, l / n);
    s.doc_bounds = core::document_bounds(lengths);
    s.seq_len = s.doc_bounds.back();
  }
  return s;
}

Expected<Report> run_backend(Backend b, const core::Experiment& e, const RunOptions& o) {
  switch (b) {
    case Backend::kHost:
      return run_host(e, o);
    case Backend::kSim:
      return run_sim(e, o);
    case Backend::kCuda:
#ifdef SPATTN_HAVE_CUDA
      return run_cuda(e, o);
#else
      return unavailable(
          "backend 'cuda' is not built into this spattn (nvcc was not found when it was "
          "configured, or -DSPATTN_CUDA=OFF)");
#endif
  }
  return internal_error("unknown backend");
}

double ReportRow::metric(const std::string& name, double fallback) const {
  for (const auto& [k, v] : metrics)
    if (k == name) return v;
  return fallback;
}

bool ReportRow::has_metric(const std::string& name) const {
  for (const auto& [k, v] : metrics)
    if (k == name) return true;
  return false;
}

namespace {

// A case of the report being resumed must have run this case's problem (after scale_down) on as
// many GPUs: its rows are matched by label and plan name alone, so an edited file (another
// seq_len, no sweep) would otherwise pass old rows off as the new problem's.
Status check_resumed_case(const RunOptions& o, const ReportCase& now) {
  if (o.resume == nullptr) return {};
  for (const ReportCase& was : o.resume->cases) {
    if (was.label != now.label) continue;
    const nlohmann::json a = problem_json(was.problem), b = problem_json(now.problem);
    std::string what;
    if (was.gpus > 0 && was.gpus != now.gpus)
      what = fmt::format("{} GPUs where this run has {}", was.gpus, now.gpus);
    for (const auto& [key, value] : b.items())
      if (const nlohmann::json old = a.value(key, nlohmann::json()); what.empty() && old != value)
        what = fmt::format("{} {} where this run has {}", key, old.dump(), value.dump());
    if (!what.empty())
      return invalid_argument(
          fmt::format("--resume: the earlier report's case{} ran {}: its rows are another "
                      "problem's (run without --resume, or into another --out)",
                      now.label.empty() ? "" : " '" + now.label + "'", what));
  }
  return {};
}

const ReportRow* resumed_row(const RunOptions& o, const std::string& label,
                             const std::string& plan) {
  if (o.resume == nullptr) return nullptr;
  for (const ReportCase& c : o.resume->cases) {
    if (c.label != label) continue;
    for (const ReportRow& row : c.rows)
      if (row.plan == plan && row.status.ok()) return &row;
  }
  return nullptr;
}

void report_progress(const RunOptions& o, Backend b, std::size_t case_index, std::size_t cases,
                     const std::string& label, const std::string& plan, std::size_t plan_index,
                     std::size_t plans) {
  if (!o.progress) return;
  o.progress(fmt::format("{} [case {}/{}]{}{} plan {}/{}: {}", to_string(b), case_index + 1, cases,
                         label.empty() ? "" : " ", label, plan_index + 1, plans, plan));
}

}  // namespace

Status run_plans(const core::Experiment& e, const RunOptions& o, const BackendSteps& m,
                 Report& report) {
  if (o.scale_down < 1)
    return invalid_argument(fmt::format("--scale-down must be >= 1, got {}", o.scale_down));
  report.complete = false;
  if (o.resume != nullptr && report.device.empty()) report.device = o.resume->device;
  const std::vector<core::ExperimentCase> cases = core::expand_cases(e);
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const core::ExperimentCase& c = cases[ci];
    ReportCase rc;
    rc.label = c.label;
    rc.gpus = c.gpus;
    rc.problem = scale_down(c.problem, o.scale_down, c.gpus);
    if (rc.problem.seq_len != c.problem.seq_len || rc.problem.joint_len != c.problem.joint_len)
      rc.shape_note = fmt::format("scaled down by {} from seq_len={} joint_len={}", o.scale_down,
                                  c.problem.seq_len, c.problem.joint_len);
    SPATTN_RETURN_IF_ERROR(check_resumed_case(o, rc));
    if (m.setup) SPATTN_RETURN_IF_ERROR(m.setup(c, rc));
    const std::vector<Candidate> cands = candidates(e, c.gpus);
    for (std::size_t pi = 0; pi < cands.size(); ++pi) {
      const Candidate& cand = cands[pi];
      ReportRow row;
      row.plan = cand.choice.name();
      row.choice = cand.choice;
      row.explicit_choice = cand.explicit_choice;
      row.where = cand.where;
      row.key = cand.key;
      if (const ReportRow* done = resumed_row(o, c.label, row.plan)) {
        row.metrics = done->metrics;
        row.pass = done->pass;
        row.resumed = true;
      } else {
        report_progress(o, report.backend, ci, cases.size(), c.label, row.plan, pi, cands.size());
        if (m.plan_options) row.plan_options = m.plan_options(c);
        const Built b = build_plan(rc.problem, cand, row.plan_options);
        if (b.status.ok())
          SPATTN_RETURN_IF_ERROR(m.measure(b.plan, rc, row));
        else
          row.status = b.status;
      }
      rc.rows.push_back(std::move(row));
    }
    report.cases.push_back(std::move(rc));
    if (o.on_case_done) o.on_case_done(report);
  }
  report.complete = true;
  return {};
}

Status check_explicit_plans(const core::Experiment& e, std::int64_t scale_down_by) {
  if (e.auto_plans) return {};
  const std::vector<core::ExperimentCase> cases = core::expand_cases(e);
  for (std::size_t i = 0; i < e.plans.size(); ++i) {
    Status first;
    bool somewhere = false;
    for (const core::ExperimentCase& c : cases) {
      const core::PlanChoice choice = e.plans[i].resolve(c.gpus);
      Status s = planner::check_plan(scale_down(c.problem, scale_down_by, c.gpus), choice);
      if (s.ok() || !refused(s.code())) {
        somewhere = true;
        break;
      }
      if (first.ok())
        first = {s.code(), e.plans[i].where + ": key 'plans[" + std::to_string(i) + "]' (" +
                               choice.name() + (c.label.empty() ? "" : " [" + c.label + "]") +
                               "): " + s.message()};
    }
    if (!somewhere) return first;
  }
  return {};
}

Status report_status(const Report& r) {
  auto where = [](const ReportCase& c, const ReportRow& row) {
    return row.plan + (c.label.empty() ? "" : " [" + c.label + "]");
  };
  const std::set<std::string> built = explicit_built(
      r.cases, [](const ReportCase& c) -> const auto& { return c.rows; });
  for (const ReportCase& c : r.cases) {
    for (const ReportRow& row : c.rows) {
      const StatusCode code = row.status.code();
      if (row.explicit_choice && !built.count(row.key) && refused(code))
        return {code, row.where + ": key '" + row.key + "' (" + where(c, row) +
                          "): " + row.status.message()};
    }
  }
  SPATTN_RETURN_IF_ERROR(nothing_planned(
      r.cases, [](const ReportCase& c) -> const auto& { return c.rows; },
      [](const ReportCase& c) { return std::pair(c.label, c.gpus); },
      [](const ReportRow& row) -> const std::string& { return row.plan; }));
  int failed = 0, total = 0;
  std::string first;
  for (const ReportCase& c : r.cases) {
    for (const ReportRow& row : c.rows) {
      if (refused(row.status.code())) continue;
      ++total;
      if (row.status.ok() && row.pass) continue;
      ++failed;
      if (!first.empty()) continue;
      first = where(c, row) + ": ";
      if (!row.status.ok()) {
        first += row.status.message();
      } else {
        first += "failed the check (" + r.check + "):";
        for (const auto& [k, v] : row.metrics) first += fmt::format(" {}={:.3g}", k, v);
      }
    }
  }
  if (failed == 0) return {};
  return internal_error(fmt::format("backend {}: {} of {} plans failed; first: {}",
                                    to_string(r.backend), failed, total, first));
}

void add_chunk_metrics(const core::Plan& plan, const core::Timeline& timeline, ReportRow& row) {
  const std::vector<std::vector<Bytes>> set = core::memory_by_pass(plan);
  if (set.size() < 2) return;
  std::vector<TimePs> end(set.size(), 0);
  for (const core::TaskSpan& sp : timeline.spans) {
    if (sp.end == 0) continue;  // a task of a rank this timeline does not hold
    const int pass = plan.tasks[static_cast<std::size_t>(sp.task)].pass;
    end[static_cast<std::size_t>(pass)] = std::max(end[static_cast<std::size_t>(pass)], sp.end);
  }
  for (std::size_t c = 0; c < set.size(); ++c) {
    const TimePs from = c == 0 ? 0 : end[c - 1];
    row.metrics.push_back({fmt::format("chunk{}_ms", c), ps_to_ms(end[c] - from)});
  }
  for (std::size_t c = 0; c < set.size(); ++c)
    row.metrics.push_back({fmt::format("chunk{}_set_gib", c),
                           static_cast<double>(*std::max_element(set[c].begin(), set[c].end())) /
                               static_cast<double>(kGiB)});
}

std::string format_table(const Report& r) {
  std::string s = fmt::format("backend {}: check {}\n", to_string(r.backend), r.check);
  if (!r.device.empty()) s += fmt::format("device: {}\n", r.device);
  if (!r.cluster.empty()) s += fmt::format("cluster: {}\n", r.cluster);
  if (!r.profile.empty()) s += fmt::format("profile: {}\n", r.profile);
  for (const ReportCase& c : r.cases) {
    s += fmt::format("\n{}{} GPUs, ran {}\n", c.label.empty() ? "" : "[" + c.label + "] ", c.gpus,
                     describe(c.problem));
    if (!c.shape_note.empty()) s += fmt::format("  ({})\n", c.shape_note);
    // Output digests (for comparing runs bit for bit) and per-chunk metrics stay in the JSON.
    auto shown = [](const std::string& k) {
      return k.rfind("digest", 0) != 0 && k.rfind("chunk", 0) != 0;
    };
    std::string head = fmt::format("  {:<32}", "plan");
    if (!c.rows.empty())
      for (const ReportRow& row : c.rows)
        if (!row.metrics.empty()) {
          for (const auto& [k, v] : row.metrics)
            if (shown(k)) head += fmt::format(" {:>14}", k);
          break;
        }
    s += head + "  result\n";
    for (const ReportRow& row : c.rows) {
      std::string line = fmt::format("  {:<32}", row.plan);
      if (!row.status.ok()) {
        const char* word = row.status.code() == StatusCode::kInfeasible ? "infeasible" : "error";
        s += line + fmt::format(" {}: {}\n", word, row.status.message());
        continue;
      }
      for (const auto& [k, v] : row.metrics)
        if (shown(k)) line += fmt::format(" {:>14.4g}", v);
      s += line + (row.pass ? "  PASS" : "  FAIL") +
           (row.note.empty() ? "" : " (" + row.note + ")") + "\n";
    }
  }
  return s;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json cases = nlohmann::json::array();
  for (const ReportCase& c : r.cases) {
    nlohmann::json rows = nlohmann::json::array();
    for (const ReportRow& row : c.rows) {
      nlohmann::json j = {{"plan", row.plan},
                          {"explicit", row.explicit_choice},
                          {"choice", choice_json(row.choice)}};
      if (row.status.ok()) {
        j["status"] = "ok";
        for (const auto& [k, v] : row.metrics) j["metrics"][k] = v;
        j["pass"] = row.pass;
        if (!row.note.empty()) j["note"] = row.note;
      } else {
        j["status"] = row.status.code() == StatusCode::kInfeasible ? "infeasible" : "error";
        j["reason"] = row.status.message();
      }
      rows.push_back(std::move(j));
    }
    cases.push_back({{"label", c.label},
                     {"gpus", c.gpus},
                     {"problem", problem_json(c.problem)},
                     {"shape_note", c.shape_note},
                     {"plans", std::move(rows)}});
  }
  return {{"backend", to_string(r.backend)},
          {"check", r.check},
          {"device", r.device},
          {"cluster", r.cluster},
          {"profile", r.profile},
          {"complete", r.complete},
          {"ok", report_status(r).ok()},
          {"cases", std::move(cases)}};
}

Expected<Report> report_from_json(const nlohmann::json& j) {
  try {
    Report r;
    Expected<Backend> b = parse_backend(j.at("backend").get<std::string>());
    if (!b) return b.status();
    r.backend = *b;
    r.check = j.value("check", "");
    r.device = j.value("device", "");
    r.cluster = j.value("cluster", "");
    r.profile = j.value("profile", "");
    r.complete = j.value("complete", true);
    for (const nlohmann::json& jc : j.at("cases")) {
      ReportCase c;
      c.label = jc.value("label", "");
      c.gpus = jc.value("gpus", 0);
      c.shape_note = jc.value("shape_note", "");
      c.problem = problem_from_json(jc.at("problem"));
      for (const nlohmann::json& jr : jc.at("plans")) {
        ReportRow row;
        row.plan = jr.at("plan").get<std::string>();
        row.explicit_choice = jr.value("explicit", false);
        if (jr.contains("choice")) {
          Expected<core::PlanChoice> ch = choice_from_json(jr.at("choice"));
          if (!ch) return ch.status();
          row.choice = *ch;
        }
        const std::string st = jr.value("status", "error");
        if (st == "ok") {
          if (jr.contains("metrics"))
            for (const auto& [k, v] : jr.at("metrics").items())
              row.metrics.emplace_back(k, v.get<double>());
          row.pass = jr.value("pass", false);
          row.note = jr.value("note", std::string());
        } else {
          row.status = {st == "infeasible" ? StatusCode::kInfeasible : StatusCode::kInternal,
                        jr.value("reason", "")};
        }
        c.rows.push_back(std::move(row));
      }
      r.cases.push_back(std::move(c));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("not a spattn report: ") + e.what());
  }
}

}  // namespace spattn::experiments
