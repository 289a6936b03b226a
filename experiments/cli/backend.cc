#include "experiments/cli/backend.h"

#include <fmt/format.h>

#include <algorithm>

#include "experiments/cli/plans.h"

namespace spattn::experiments {

const char* to_string(Backend b) {
  switch (b) {
    case Backend::kHost:
      return "host";
    case Backend::kSim:
      return "sim";
    case Backend::kCuda:
      return "cuda";
  }
  return "?";
}

Expected<Backend> parse_backend(const std::string& s) {
  if (s == "host") return Backend::kHost;
  if (s == "sim") return Backend::kSim;
  if (s == "cuda") return Backend::kCuda;
  return invalid_argument("unknown backend '" + s + "' (expected host, sim or cuda)");
}

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
  return s;
}

Expected<Report> run_backend(Backend b, const core::Experiment& e, const RunOptions& o) {
  switch (b) {
    case Backend::kHost:
      return run_host(e, o);
    case Backend::kSim:
      return unavailable("backend 'sim' (the timing simulator) is not part of this build yet");
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

Status report_status(const Report& r) {
  auto where = [](const ReportCase& c, const ReportRow& row) {
    return row.plan + (c.label.empty() ? "" : " [" + c.label + "]");
  };
  for (const ReportCase& c : r.cases) {
    for (const ReportRow& row : c.rows) {
      const StatusCode code = row.status.code();
      if (row.explicit_choice &&
          (code == StatusCode::kInfeasible || code == StatusCode::kInvalidArgument))
        return {code, row.where + ": key '" + row.key + "' (" + where(c, row) +
                          "): " + row.status.message()};
    }
  }
  int failed = 0, total = 0;
  std::string first;
  for (const ReportCase& c : r.cases) {
    for (const ReportRow& row : c.rows) {
      const StatusCode code = row.status.code();
      if (code == StatusCode::kInfeasible || code == StatusCode::kInvalidArgument) continue;
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

std::string format_table(const Report& r) {
  std::string s = fmt::format("backend {}: check {}\n", to_string(r.backend), r.check);
  if (!r.device.empty()) s += fmt::format("device: {}\n", r.device);
  for (const ReportCase& c : r.cases) {
    s += fmt::format("\n{}{} GPUs, ran {}\n", c.label.empty() ? "" : "[" + c.label + "] ", c.gpus,
                     describe(c.problem));
    if (!c.shape_note.empty()) s += fmt::format("  ({})\n", c.shape_note);
    std::string head = fmt::format("  {:<32}", "plan");
    if (!c.rows.empty())
      for (const ReportRow& row : c.rows)
        if (!row.metrics.empty()) {
          for (const auto& [k, v] : row.metrics) head += fmt::format(" {:>14}", k);
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
      for (const auto& [k, v] : row.metrics) line += fmt::format(" {:>14.3e}", v);
      s += line + (row.pass ? "  PASS\n" : "  FAIL\n");
    }
  }
  return s;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json cases = nlohmann::json::array();
  for (const ReportCase& c : r.cases) {
    nlohmann::json rows = nlohmann::json::array();
    for (const ReportRow& row : c.rows) {
      nlohmann::json j = {{"plan", row.plan}, {"explicit", row.explicit_choice}};
      if (row.status.ok()) {
        j["status"] = "ok";
        for (const auto& [k, v] : row.metrics) j["metrics"][k] = v;
        j["pass"] = row.pass;
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
          {"ok", report_status(r).ok()},
          {"cases", std::move(cases)}};
}

}  // namespace spattn::experiments
