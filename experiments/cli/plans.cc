#include "experiments/cli/plans.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/documents.h"
#include "planner/planner.h"
#include "sim/simulate.h"

namespace spattn::experiments {

std::vector<Candidate> candidates(const core::Experiment& e, int world) {
  std::vector<Candidate> out;
  if (e.auto_plans) {
    const auto at = e.where.find("plans");
    const std::string where = at != e.where.end() ? at->second : e.source;
    for (const core::PlanChoice& c : planner::enumerate_choices(world))
      out.push_back({c, false, where, "plans"});
    return out;
  }
  for (std::size_t i = 0; i < e.plans.size(); ++i) {
    const core::ChoiceSpec& s = e.plans[i];
    out.push_back({s.resolve(world), true, s.where, "plans[" + std::to_string(i) + "]"});
  }
  return out;
}

Built build_plan(const core::Problem& problem, const Candidate& c,
                 const planner::PlanOptions& options) {
  Built b{c, {}, {}};
  Expected<core::Plan> p = planner::make_plan(problem, c.choice, options);
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

namespace {

struct Prediction {
  double ms = 0;
  Bytes peak = 0;
  Bytes gpu_memory = 0;  // of the cluster's GPUs; 0 = not stated
  Breakdown breakdown;
};

// The simulator as the planner's cost function (seconds); the details of every plan it costs go
// to `seen`, by plan name.
planner::CostFn simulator_cost(SimInputs& sim, int gpus, std::map<std::string, Prediction>& seen) {
  return [&sim, gpus, &seen](const core::Plan& plan) -> Expected<double> {
    SPATTN_RETURN_IF_ERROR(core::validate(plan));
    Expected<const core::Cluster*> cluster = sim.cluster(gpus);
    if (!cluster) return cluster.status();
    Expected<sim::SimResult> r = sim::simulate(plan, **cluster, sim.profile());
    if (!r) return r.status();
    Prediction p;
    p.ms = ps_to_ms(r->timeline.total);
    for (Bytes b : r->timeline.peak_memory) p.peak = std::max(p.peak, b);
    p.gpu_memory = (*cluster)->gpu_memory;
    p.breakdown = breakdown(plan, r->timeline);
    if (r->timeline.total > 0) {
      p.breakdown.host_issue =
          static_cast<double>(r->host_issue) / static_cast<double>(r->timeline.total);
      p.breakdown.host_issue_tasks = r->host_issue_tasks;
      const int per_node = (*cluster)->num_gpus() / std::max((*cluster)->nodes, 1);
      p.breakdown.host_shared =
          sim.profile().host_one_process && std::min(plan.world, per_node) > 1;
    }
    seen[plan.name()] = p;
    return p.ms * 1e-3;
  };
}

PlanRow predicted_row(const Built& b, const Prediction& p) {
  PlanRow r = plan_row(b);
  r.predicted = true;
  r.predicted_ms = p.ms;
  r.predicted_peak_max_rank = p.peak;
  r.breakdown = p.breakdown;
  r.gpu_memory = p.gpu_memory;
  r.fits = fit_note(p.peak, p.gpu_memory).empty();
  return r;
}

CaseListing ranked_case(const core::Experiment& e, const core::ExperimentCase& c, SimInputs& sim) {
  CaseListing cl{c, {}, ""};
  std::map<std::string, Prediction> seen;
  const planner::CostFn cost = simulator_cost(sim, c.gpus, seen);
  // Each plan is built, timed and dropped before the next (a listing of hundreds of large plans
  // holds their rows only); ranked by cost as planner::search ranks, ties in candidate order.
  std::vector<PlanRow> failed;
  std::vector<std::pair<double, PlanRow>> ok;
  for (const Candidate& cand : candidates(e, c.gpus)) {
    Built b = build_plan(c.problem, cand, sim.plan_options(c.gpus));
    if (b.status.ok()) {
      Expected<double> x = cost(b.plan);
      if (x) {
        ok.emplace_back(*x, predicted_row(b, seen.at(b.plan.name())));
        continue;
      }
      b.status = x.status();
    }
    failed.push_back(plan_row(b));
  }
  std::stable_sort(ok.begin(), ok.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [x, row] : ok) cl.rows.push_back(std::move(row));
  // Plans that fit the GPU memory first, each group by predicted time.
  std::stable_partition(cl.rows.begin(), cl.rows.end(), [](const PlanRow& r) { return r.fits; });
  cl.why = why_first(cl.rows);
  for (PlanRow& r : failed) cl.rows.push_back(std::move(r));
  // The ideal: one GPU's time on the whole problem, shared perfectly by c.gpus.
  Expected<core::Plan> one = planner::make_plan(c.problem, {core::Scheme::kUlysses, 1, 1});
  Expected<const core::Cluster*> cluster1 = sim.cluster(1);
  if (one && cluster1)
    if (Expected<sim::SimResult> r = sim::simulate(*one, **cluster1, sim.profile()))
      cl.ideal_ms = ps_to_ms(r->timeline.total) / c.gpus;
  return cl;
}

}  // namespace

std::string fit_note(Bytes peak, Bytes gpu_memory) {
  if (gpu_memory <= 0 || peak <= gpu_memory) return "";
  return fmt::format("does not fit: peak {} per rank > {} of GPU memory", human_bytes(peak),
                     human_bytes(gpu_memory));
}

// From this share of the predicted time spent issuing on one host thread, the why line says so.
constexpr double kHostBoundShare = 0.25;

std::string why_first(const std::vector<PlanRow>& rows) {
  if (rows.empty() || !rows[0].predicted) return "no plan could be simulated";
  const PlanRow& a = rows[0];
  std::string s =
      fmt::format("{}{} is first: {:.3f} ms predicted",
                  a.fits ? "" : "no plan fits the GPU memory; ", a.name, a.predicted_ms);
  if (rows.size() > 1 && rows[1].predicted && rows[1].fits != a.fits) {
    s += ", the only plan that fits the GPU memory";
  } else if (rows.size() > 1 && rows[1].predicted) {
    const PlanRow& b = rows[1];
    if (b.predicted_ms > a.predicted_ms)
      s += fmt::format(", {:.1f}% faster than {} ({:.3f} ms)",
                       100.0 * (b.predicted_ms - a.predicted_ms) / b.predicted_ms, b.name,
                       b.predicted_ms);
    else
      s += fmt::format(", tied with {} (kept in enumeration order)", b.name);
  } else {
    s += ", the only plan the simulator could time";
  }
  const Breakdown& d = a.breakdown;
  s += fmt::format(
      "; its rank time is {:.0f}% attention compute, {:.0f}% other compute, {:.0f}% exposed "
      "communication, {:.0f}% idle: dominated by {}",
      100 * d.attention, 100 * d.other_compute, 100 * d.exposed_comm, 100 * d.idle, d.dominant());
  // A plan whose GPUs wait for the host: say so, and what would split the issuing.
  if (d.host_issue >= kHostBoundShare)
    s += fmt::format(
        "; its busiest host thread issues {} tasks for {:.0f}% of that time{}", d.host_issue_tasks,
        100 * d.host_issue,
        d.host_shared ? " (one thread per node drives its GPUs; one process per GPU, mpirun with "
                        "the profile's host.one_process: false, gives each GPU its own)"
                      : "");
  return s;
}

Listing list_plans(const core::Experiment& e, SimInputs* sim) {
  Listing l{e.name, e.source, sim != nullptr, "", "", {}};
  if (sim != nullptr) {
    l.cluster = sim->cluster_description();
    l.profile = sim->profile_description();
  }
  for (const core::ExperimentCase& c : core::expand_cases(e)) {
    if (sim != nullptr) {
      l.cases.push_back(ranked_case(e, c, *sim));
      continue;
    }
    CaseListing cl{c, {}, ""};
    for (const Candidate& cand : candidates(e, c.gpus))
      cl.rows.push_back(plan_row(build_plan(c.problem, cand)));
    l.cases.push_back(std::move(cl));
  }
  return l;
}

Status explicit_failure(const Listing& l) {
  const std::set<std::string> built = explicit_built(
      l.cases, [](const CaseListing& c) -> const auto& { return c.rows; });
  for (const CaseListing& c : l.cases) {
    for (const PlanRow& r : c.rows) {
      const StatusCode code = r.status.code();
      if (!r.explicit_choice || built.count(r.key) || !refused(code)) continue;
      std::string msg = r.where + ": key '" + r.key + "' (" + r.name + "): " + r.status.message();
      if (!c.c.label.empty()) msg += " (sweep case " + c.c.label + ")";
      return {code, msg};
    }
  }
  return nothing_planned(
      l.cases, [](const CaseListing& c) -> const auto& { return c.rows; },
      [](const CaseListing& c) { return std::pair(c.c.label, c.c.gpus); },
      [](const PlanRow& r) -> const std::string& { return r.name; });
}

Status internal_failure(const Listing& l) {
  for (const CaseListing& c : l.cases)
    for (const PlanRow& r : c.rows)
      if (r.status.code() == StatusCode::kInternal) return r.status;
  return {};
}

nlohmann::json choice_json(const core::PlanChoice& c) {
  return {{"scheme", core::to_string(c.scheme)},
          {"ulysses_degree", c.ulysses_degree},
          {"ring_degree", c.ring_degree},
          {"layout", core::to_string(c.layout)},
          {"placement", core::to_string(c.placement)}};
}

Expected<core::PlanChoice> choice_from_json(const nlohmann::json& j) {
  try {
    core::PlanChoice c;
    Expected<core::Scheme> s = core::parse_scheme(j.at("scheme").get<std::string>());
    if (!s) return s.status();
    c.scheme = *s;
    c.ulysses_degree = j.at("ulysses_degree").get<int>();
    c.ring_degree = j.at("ring_degree").get<int>();
    Expected<core::RingLayout> l = core::parse_ring_layout(j.at("layout").get<std::string>());
    if (!l) return l.status();
    c.layout = *l;
    Expected<core::Placement> p = core::parse_placement(j.at("placement").get<std::string>());
    if (!p) return p.status();
    c.placement = *p;
    return c;
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(std::string("bad plan choice in JSON: ") + e.what());
  }
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
  if (!p.doc_bounds.empty()) {
    const std::vector<std::int64_t> l = core::document_lengths(p.doc_bounds);
    s += fmt::format(" documents={} (longest {}, shortest {})", l.size(),
                     *std::max_element(l.begin(), l.end()), *std::min_element(l.begin(), l.end()));
  }
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
          {"scale", p.scale},
          {"documents", core::document_lengths(p.doc_bounds)}};
}

core::Problem problem_from_json(const nlohmann::json& j) {
  core::Problem p;
  p.batch = j.value("batch", p.batch);
  p.q_heads = j.value("q_heads", p.q_heads);
  p.kv_heads = j.value("kv_heads", p.kv_heads);
  p.head_dim = j.value("head_dim", p.head_dim);
  if (Expected<core::DType> d = core::parse_dtype(j.value("dtype", std::string("bf16"))))
    p.dtype = *d;
  p.seq_len = j.value("seq_len", p.seq_len);
  p.joint_len = j.value("joint_len", p.joint_len);
  if (Expected<core::JointStrategy> js =
          core::parse_joint_strategy(j.value("joint_strategy", std::string("front"))))
    p.joint_strategy = *js;
  p.causal = j.value("causal", p.causal);
  if (j.contains("window")) {
    p.window.left = j["window"].value("left", p.window.left);
    p.window.right = j["window"].value("right", p.window.right);
  }
  p.softcap = j.value("softcap", p.softcap);
  p.scale = j.value("scale", p.scale);
  if (j.contains("documents") && !j["documents"].empty())
    p.doc_bounds = core::document_bounds(j["documents"].get<std::vector<std::int64_t>>());
  return p;
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

}  // namespace

std::string format_table(const Listing& l) {
  std::string s = fmt::format("experiment {} ({})\n", l.experiment, l.source);
  if (l.ranked)
    s += fmt::format("ranked by predicted time (sim::simulate)\ncluster: {}\nprofile: {}\n",
                     l.cluster, l.profile);
  for (const CaseListing& c : l.cases) {
    s += fmt::format("\n{}{} GPUs, {}\n", c.c.label.empty() ? "" : "[" + c.c.label + "] ", c.c.gpus,
                     describe(c.c.problem));
    if (l.ranked) s += fmt::format("  why: {}\n", c.why);
    if (l.ranked && c.ideal_ms > 0)
      s +=
          fmt::format("  ideal: {:.3f} ms (one GPU's predicted time / {})\n", c.ideal_ms, c.c.gpus);
    if (l.ranked)
      s += fmt::format("  {:>4} {:>11} {:>7} {:>11} {:>16} {:>7}", "rank", "predicted", "/ideal",
                       "peak(sim)", "attn/comm/idle", "t-imbal");
    s += fmt::format(
        "  {:<32} {:<8} {:>7} {:<10} {:>9} {:>5} {:>8} {:>5} {:>6} {:>21} {:>11} {:>11}\n", "plan",
        "scheme", "UxR", "layout", "padded", "pad", "shard", "steps", "imbal",
        "attn/mrg/cpy/fil/comm", "comm/rank", "peak/rank");
    int rank = 0;
    for (const PlanRow& r : c.rows) {
      if (l.ranked) {
        if (r.predicted) {
          const Breakdown& d = r.breakdown;
          s += fmt::format("  {:>4} {:>8.3f} ms {:>7} {:>11} {:>16} {:>7.3f}", ++rank,
                           r.predicted_ms,
                           c.ideal_ms > 0 ? fmt::format("{:.3f}", r.predicted_ms / c.ideal_ms)
                                          : std::string("-"),
                           human_bytes(r.predicted_peak_max_rank),
                           fmt::format("{:.0f}/{:.0f}/{:.0f}%", 100 * d.attention,
                                       100 * d.exposed_comm, 100 * d.idle),
                           d.attention_imbalance);
        } else {
          s +=
              fmt::format("  {:>4} {:>11} {:>7} {:>11} {:>16} {:>7}", "-", "-", "-", "-", "-", "-");
        }
      }
      if (!r.status.ok()) {
        s += fmt::format("  {:<32} {}: {}\n", r.name, status_word(r.status), r.status.message());
        continue;
      }
      const core::PlanSummary& m = r.summary;
      s += fmt::format(
          "  {:<32} {:<8} {:>7} {:<10} {:>9} {:>5} {:>8} {:>5} {:>6.3f} {:>21} {:>11} {:>11}\n",
          r.name, core::to_string(r.choice.scheme),
          fmt::format("{}x{}", r.choice.ulysses_degree, r.choice.ring_degree),
          r.choice.scheme == core::Scheme::kUlysses ? "-" : core::to_string(r.choice.layout),
          r.padded_len, r.pad_tokens, r.shard_tokens, r.ring_steps, m.work_imbalance,
          fmt::format("{}/{}/{}/{}/{}", m.attn_blocks, m.merges, m.copies, m.fills, m.comms),
          human_bytes(m.comm_bytes_max_rank), human_bytes(r.peak_memory_max_rank));
      for (const std::string& n : r.notes) s += fmt::format("      note: {}\n", n);
      if (!r.fits)
        s += fmt::format("      {}\n", fit_note(r.predicted_peak_max_rank, r.gpu_memory));
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
        j["work_imbalance"] = m.work_imbalance;
        j["comm_bytes_max_rank"] = m.comm_bytes_max_rank;
        j["peak_memory_bytes_max_rank"] = r.peak_memory_max_rank;
        j["notes"] = r.notes;
        if (r.predicted) {
          j["fits"] = r.fits;
          if (r.gpu_memory > 0) j["gpu_memory_bytes"] = r.gpu_memory;
          j["predicted_ms"] = r.predicted_ms;
          j["predicted_peak_bytes_max_rank"] = r.predicted_peak_max_rank;
          j["predicted_breakdown"] = {{"attention", r.breakdown.attention},
                                      {"other_compute", r.breakdown.other_compute},
                                      {"exposed_comm", r.breakdown.exposed_comm},
                                      {"idle", r.breakdown.idle},
                                      {"attention_imbalance", r.breakdown.attention_imbalance},
                                      {"host_issue", r.breakdown.host_issue},
                                      {"host_issue_tasks", r.breakdown.host_issue_tasks},
                                      {"dominant", r.breakdown.dominant()}};
        }
      }
      plans.push_back(std::move(j));
    }
    nlohmann::json jc = {{"label", c.c.label},
                         {"gpus", c.c.gpus},
                         {"problem", problem_json(c.c.problem)},
                         {"plans", std::move(plans)}};
    if (l.ranked) {
      jc["best"] = !c.rows.empty() && c.rows[0].predicted ? nlohmann::json(c.rows[0].name)
                                                          : nlohmann::json();
      jc["why"] = c.why;
      jc["ideal_ms"] = c.ideal_ms;
    }
    cases.push_back(std::move(jc));
  }
  nlohmann::json j = {{"experiment", l.experiment},
                      {"source", l.source},
                      {"ranked", l.ranked},
                      {"cases", std::move(cases)}};
  if (l.ranked) {
    j["cluster"] = l.cluster;
    j["profile"] = l.profile;
  }
  return j;
}

}  // namespace spattn::experiments
