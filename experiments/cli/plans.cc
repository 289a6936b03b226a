#include "experiments/cli/plans.h"

#include <fmt/format.h>

#include <algorithm>

#include "planner/planner.h"

namespace spattn::experiments {

std::vector<Candidate> candidates(const core::Experiment& e, int world) {
  std::vector<Candidate> out;
  if (e.auto_plans) {
    for (const core::PlanChoice& c : planner::enumerate_choices(world))
      out.push_back({c, false, "", ""});
    return out;
  }
  for (std::size_t i = 0; i < e.plans.size(); ++i) {
    const core::ChoiceSpec& s = e.plans[i];
    out.push_back({s.resolve(world), true, s.where, "plans[" + std::to_string(i) + "]"});
  }
  return out;
}

Built build_plan(const core::Problem& problem, const Candidate& c) {
  Built b{c, {}, {}};
  Expected<core::Plan> p = planner::make_plan(problem, c.choice);
  if (!p) {
    b.status = p.status();
    return b;
  }
  b.plan = std::move(*p);
  b.status = core::validate(b.plan);
  return b;
}

PlanRow plan_row(const Built& b) {
  PlanRow r;
  r.name = b.candidate.choice.name();
  r.choice = b.candidate.choice;
  r.explicit_choice = b.candidate.explicit_choice;
  r.where = b.candidate.where;
  r.key = b.candidate.key;
  r.status = b.status;
  if (!b.status.ok()) return r;
  const core::Plan& p = b.plan;
  r.padded_len = p.padded_len;
  r.pad_tokens = p.pad_tokens;
  r.shard_tokens = p.shard_tokens;
  r.ring_steps = p.ring_steps;
  r.summary = core::summarize(p);
  const std::vector<Bytes> peak = core::peak_memory(p);
  r.peak_memory_max_rank = peak.empty() ? 0 : *std::max_element(peak.begin(), peak.end());
  r.notes = p.notes;
  return r;
}

Listing list_plans(const core::Experiment& e) {
  Listing l{e.name, e.source, {}};
  for (const core::ExperimentCase& c : core::expand_cases(e)) {
    CaseListing cl{c, {}};
    for (const Candidate& cand : candidates(e, c.gpus))
      cl.rows.push_back(plan_row(build_plan(c.problem, cand)));
    l.cases.push_back(std::move(cl));
  }
  return l;
}

Status explicit_failure(const Listing& l) {
  for (const CaseListing& c : l.cases) {
    for (const PlanRow& r : c.rows) {
      const StatusCode code = r.status.code();
      if (!r.explicit_choice ||
          (code != StatusCode::kInfeasible && code != StatusCode::kInvalidArgument))
        continue;
      std::string msg = r.where + ": key '" + r.key + "' (" + r.name + "): " + r.status.message();
      if (!c.c.label.empty()) msg += " (sweep case " + c.c.label + ")";
      return {code, msg};
    }
  }
  return {};
}

Status internal_failure(const Listing& l) {
  for (const CaseListing& c : l.cases)
    for (const PlanRow& r : c.rows)
      if (r.status.code() == StatusCode::kInternal) return r.status;
  return {};
}

std::string human_bytes(Bytes b) {
  const double x = static_cast<double>(b);
  if (b < kKiB) return fmt::format("{} B", b);
  if (b < kMiB) return fmt::format("{:.1f} KiB", x / kKiB);
  if (b < kGiB) return fmt::format("{:.1f} MiB", x / kMiB);
  return fmt::format("{:.2f} GiB", x / kGiB);
}

std::string describe(const core::Problem& p) {
  std::string s = fmt::format("B={} Hq={} Hkv={} D={} S={} J={}", p.batch, p.q_heads, p.kv_heads,
                              p.head_dim, p.seq_len, p.joint_len);
  if (p.joint_len > 0) s += fmt::format(" ({})", core::to_string(p.joint_strategy));
  s += p.causal ? " causal" : " non-causal";
  if (!p.window.none()) s += fmt::format(" window=({},{})", p.window.left, p.window.right);
  if (p.softcap > 0) s += fmt::format(" softcap={}", p.softcap);
  s += fmt::format(" {}", core::to_string(p.dtype));
  return s;
}

nlohmann::json problem_json(const core::Problem& p) {
  return {{"batch", p.batch},
          {"q_heads", p.q_heads},
          {"kv_heads", p.kv_heads},
          {"head_dim", p.head_dim},
          {"dtype", core::to_string(p.dtype)},
          {"seq_len", p.seq_len},
          {"joint_len", p.joint_len},
          {"joint_strategy", core::to_string(p.joint_strategy)},
          {"causal", p.causal},
          {"window", {{"left", p.window.left}, {"right", p.window.right}}},
          {"softcap", p.softcap},
          {"scale", p.scale}};
}

namespace {

const char* status_word(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInfeasible:
      return "infeasible";
    case StatusCode::kInvalidArgument:
      return "invalid";
    default:
      return "error";
  }
}

nlohmann::json choice_json(const core::PlanChoice& c) {
  return {{"scheme", core::to_string(c.scheme)},
          {"ulysses_degree", c.ulysses_degree},
          {"ring_degree", c.ring_degree},
          {"layout", core::to_string(c.layout)},
          {"placement", core::to_string(c.placement)}};
}

}  // namespace

std::string format_table(const Listing& l) {
  std::string s = fmt::format("experiment {} ({})\n", l.experiment, l.source);
  for (const CaseListing& c : l.cases) {
    s += fmt::format("\n{}{} GPUs, {}\n", c.c.label.empty() ? "" : "[" + c.c.label + "] ", c.c.gpus,
                     describe(c.c.problem));
    s += fmt::format("  {:<32} {:<8} {:>7} {:<10} {:>9} {:>5} {:>8} {:>5} {:>21} {:>11} {:>11}\n",
                     "plan", "scheme", "UxR", "layout", "padded", "pad", "shard", "steps",
                     "attn/mrg/cpy/fil/comm", "comm/rank", "peak/rank");
    for (const PlanRow& r : c.rows) {
      if (!r.status.ok()) {
        s += fmt::format("  {:<32} {}: {}\n", r.name, status_word(r.status), r.status.message());
        continue;
      }
      const core::PlanSummary& m = r.summary;
      s += fmt::format(
          "  {:<32} {:<8} {:>7} {:<10} {:>9} {:>5} {:>8} {:>5} {:>21} {:>11} {:>11}\n", r.name,
          core::to_string(r.choice.scheme),
          fmt::format("{}x{}", r.choice.ulysses_degree, r.choice.ring_degree),
          r.choice.scheme == core::Scheme::kUlysses ? "-" : core::to_string(r.choice.layout),
          r.padded_len, r.pad_tokens, r.shard_tokens, r.ring_steps,
          fmt::format("{}/{}/{}/{}/{}", m.attn_blocks, m.merges, m.copies, m.fills, m.comms),
          human_bytes(m.comm_bytes_max_rank), human_bytes(r.peak_memory_max_rank));
      for (const std::string& n : r.notes) s += fmt::format("      note: {}\n", n);
    }
  }
  return s;
}

nlohmann::json to_json(const Listing& l) {
  nlohmann::json cases = nlohmann::json::array();
  for (const CaseListing& c : l.cases) {
    nlohmann::json plans = nlohmann::json::array();
    for (const PlanRow& r : c.rows) {
      nlohmann::json j = {{"name", r.name},
                          {"choice", choice_json(r.choice)},
                          {"explicit", r.explicit_choice},
                          {"status", status_word(r.status)}};
      if (!r.status.ok()) {
        j["reason"] = r.status.message();
      } else {
        const core::PlanSummary& m = r.summary;
        j["padded_len"] = r.padded_len;
        j["pad_tokens"] = r.pad_tokens;
        j["shard_tokens"] = r.shard_tokens;
        j["ring_steps"] = r.ring_steps;
        j["tasks"] = {{"attn_blocks", m.attn_blocks},
                      {"merges", m.merges},
                      {"copies", m.copies},
                      {"fills", m.fills},
                      {"comms", m.comms},
                      {"collectives", m.collectives}};
        j["attn_flops"] = m.attn_flops;
        j["comm_bytes_max_rank"] = m.comm_bytes_max_rank;
        j["peak_memory_bytes_max_rank"] = r.peak_memory_max_rank;
        j["notes"] = r.notes;
      }
      plans.push_back(std::move(j));
    }
    cases.push_back({{"label", c.c.label},
                     {"gpus", c.c.gpus},
                     {"problem", problem_json(c.c.problem)},
                     {"plans", std::move(plans)}});
  }
  return {{"experiment", l.experiment}, {"source", l.source}, {"cases", std::move(cases)}};
}

}  // namespace spattn::experiments
