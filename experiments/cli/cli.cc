#include "experiments/cli/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include "core/cluster.h"
#include "core/experiment.h"
#include "experiments/cli/backend.h"
#include "experiments/cli/calibrate.h"
#include "experiments/cli/compare.h"
#include "experiments/cli/plans.h"
#include "experiments/cli/sim_inputs.h"
#include "planner/planner.h"
#include "sim/topology.h"
#include "sim/trace.h"

namespace spattn::experiments {

int fail(std::ostream& err, const Status& s) {
  std::string m = s.message();
  for (char& c : m)
    if (c == '\n') c = ' ';  // a library's multi-line message stays one line
  err << "spattn: " << m << "\n";
  return exit_code(s);
}

Status for_option(const std::string& option, const Status& s) {
  return s.ok() ? s : Status(s.code(), option + ": " + s.message());
}

Status file_not_folder(const std::string& option, const std::string& path, const char* example) {
  // With an error_code: a name the system refuses (a component past 255 bytes) threw
  // std::filesystem::filesystem_error (an abort).
  // (A missing path is not_found, with ec set too: only none is an error.)
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (st.type() == std::filesystem::file_type::none)
    return invalid_argument(option + ": " + path + ": " + ec.message());
  const bool folder = std::filesystem::is_directory(st);
  if (std::filesystem::path(path).has_filename() && !folder) return {};
  return invalid_argument(option + ": " + path + ": is a folder; give a file name such as " +
                          (std::filesystem::path(path) / example).string());
}

namespace {

struct GlobalArgs {
  int nodes = 0;  // --nodes: replaces `nodes` of a generated cluster file
};

struct PlanArgs {
  std::string experiment;
  std::string format = "table";
  bool no_rank = false;
};

struct RunArgs {
  std::string experiment;
  std::string backends;  // "" = the experiment's `backends`
  std::string format = "table";
  std::string trace;    // --trace FILE.json
  std::string out_dir;  // --out DIR
  std::string profile;  // --profile FILE: replaces the experiment's `profile`
  bool resume = false;
  std::string cuda_option;  // "--warmup", "--iters", ... when given (they apply to cuda only)
  RunOptions options;
};

struct TopoArgs {
  std::string xml;
  std::string out;  // "" = stdout
  sim::NcclImportOptions options;
};

int cmd_plan(const PlanArgs& a, const GlobalArgs& g, std::ostream& out, std::ostream& err) {
  Expected<core::Experiment> e = core::load_experiment(a.experiment);
  if (!e) return fail(err, e.status());
  std::optional<SimInputs> sim;
  if (!a.no_rank) {
    Expected<SimInputs> in = SimInputs::load(*e, g.nodes);
    if (in) {
      sim = std::move(*in);
    } else if (!e->profile_path.empty() || !e->cluster_path.empty()) {
      return fail(err, in.status());  // the experiment's own files are broken
    } else {
      err << "spattn: note: not ranking by predicted time (" << in.status().message() << ")\n";
    }
  }
  const Listing l = list_plans(*e, sim ? &*sim : nullptr);
  if (a.format == "json")
    out << to_json(l).dump(2) << "\n";
  else
    out << format_table(l);
  if (Status s = explicit_failure(l); !s.ok()) return fail(err, s);
  if (Status s = internal_failure(l); !s.ok()) return fail(err, s);
  return 0;
}

// "DIR/NAME", or "" when there is no output folder.
std::string out_path(const std::string& dir, const std::string& name) {
  return dir.empty() ? "" : (std::filesystem::path(dir) / name).string();
}

nlohmann::json report_file_json(const Report& r, const core::Experiment& e, const RunArgs& a) {
  nlohmann::json j = to_json(r);
  j["experiment"] = e.name;
  j["source"] = e.source;
  j["seed"] = a.options.seed;
  j["scale_down"] = a.options.scale_down;
  return j;
}

// --trace FILE.json -> FILE.<case>.<plan>.json: every kept timeline of that (case, plan), the
// predicted (sim) one first; only for (case, plan)s with at least `min_timelines` of them (a
// comparison asks for both: a measurement resumed from cuda.json has no timeline, and its earlier
// trace, which has one, stays).
Status write_traces(const std::string& trace, const std::vector<Report>& reports,
                    std::vector<std::string>& written, std::size_t min_timelines = 1) {
  std::filesystem::path base(trace);
  if (base.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(base.parent_path(), ec);
    if (ec) return not_found(base.parent_path().string() + ": cannot create: " + ec.message());
  }
  const std::string ext = base.has_extension() ? base.extension().string() : ".json";
  base.replace_extension();
  std::map<std::pair<std::string, std::string>, std::vector<const ReportRow*>> rows;
  std::map<std::pair<std::string, std::string>, const ReportCase*> cases;
  std::vector<std::pair<std::string, std::string>> order;
  std::vector<const Report*> sorted;
  for (const Report& r : reports) sorted.push_back(&r);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Report* x, const Report* y) {
    return (x->backend == Backend::kSim) > (y->backend == Backend::kSim);
  });
  for (const Report* r : sorted)
    for (const ReportCase& c : r->cases)
      for (const ReportRow& row : c.rows) {
        if (!row.timeline) continue;
        const auto key = std::make_pair(c.label, row.plan);
        if (rows.find(key) == rows.end()) order.push_back(key);
        rows[key].push_back(&row);
        cases[key] = &c;
      }
  for (const auto& key : order) {
    if (rows[key].size() < min_timelines) continue;
    const ReportCase& c = *cases[key];
    const ReportRow& first = *rows[key][0];
    Expected<core::Plan> plan = planner::make_plan(c.problem, first.choice, first.plan_options);
    if (!plan) return plan.status();
    std::vector<const core::Timeline*> tls;  // of the same plan (a rank-symmetric one differs)
    for (const ReportRow* row : rows[key])
      if (row->plan_options.symmetric_unit == first.plan_options.symmetric_unit)
        tls.push_back(row->timeline.get());
    const std::string name = base.string() + (c.label.empty() ? "" : "." + file_safe(c.label)) +
                             "." + file_safe(key.second) + ext;
    SPATTN_RETURN_IF_ERROR(write_file_atomic(name, sim::chrome_trace(*plan, tls)));
    written.push_back(name);
  }
  return {};
}

int cmd_run(const RunArgs& a, const GlobalArgs& g, std::ostream& out, std::ostream& err) {
  Expected<core::Experiment> e = core::load_experiment(a.experiment);
  if (!e) return fail(err, e.status());
  if (!a.profile.empty()) {
    e->profile_path = a.profile;
    e->where.erase("profile");  // a bad --profile is the command line's, not the file's key
  }
  // --trace: its folder is made and written to now, not after every plan has run.
  if (!a.trace.empty()) {
    // A folder ("out/", or one that exists) gave hidden files "out/.<plan>.json", or files by it.
    if (Status s = file_not_folder("--trace", a.trace, "trace.json"); !s.ok()) return fail(err, s);
    const std::filesystem::path parent = std::filesystem::path(a.trace).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    const std::filesystem::path probe =
        (parent.empty() ? std::filesystem::path(".") : parent) / ".spattn_trace_probe";
    if (ec || !std::ofstream(probe))
      return fail(err, invalid_argument("--trace: " + a.trace + ": cannot write into " +
                                        (parent.empty() ? std::string(".") : parent.string()) +
                                        (ec ? ": " + ec.message() : std::string())));
    std::filesystem::remove(probe, ec);
  }
  std::string list = a.backends;
  if (list.empty())
    for (const std::string& b : e->backends) list += (list.empty() ? "" : ",") + b;
  Expected<std::vector<Backend>> backends = parse_backends(list);
  if (!backends) return fail(err, backends.status());
  auto has = [&](Backend b) {
    return std::find(backends->begin(), backends->end(), b) != backends->end();
  };
  const bool comparing = has(Backend::kSim) && has(Backend::kCuda);
  if (a.options.one_gpu && !has(Backend::kCuda))
    return fail(err, invalid_argument("--one-gpu: applies to the cuda backend, which is not among "
                                      "the backends (" +
                                      list + ")"));
  // --warmup, --iters, --warmup-ms and --timed-ms time the cuda backend: given without it they
  // changed nothing (exit 0).
  if (!a.cuda_option.empty() && !has(Backend::kCuda))
    return fail(err, invalid_argument(a.cuda_option +
                                      ": applies to the cuda backend, which is not among the "
                                      "backends (" +
                                      list + ")"));
  if (a.options.one_gpu && comparing)
    return fail(err,
                invalid_argument("--one-gpu: its ranks share one GPU, so its times are not the "
                                 "plan's and cannot be compared with sim; run --backend cuda "
                                 "alone"));
  // Refused at load time: nothing runs when an explicit plan cannot be built in any case, nor
  // when the simulator's files are bad or its cluster is too small (a backend listed before sim
  // would run first otherwise).
  if (Status s = check_explicit_plans(*e, a.options.scale_down); !s.ok()) return fail(err, s);
  if (has(Backend::kSim))
    if (Expected<SimInputs> in = SimInputs::load(*e, g.nodes); !in) {
      const std::string m = in.status().message();
      if (!a.profile.empty() && m.rfind(a.profile + ":", 0) == 0)
        return fail(err, for_option("--profile", in.status()));
      return fail(err, in.status());
    }

  // Results go to --out, else to the experiment's `outputs` when a measuring backend runs
  // (measurements are expensive; host and sim runs are cheap to repeat and write nothing).
  const std::string dir = !a.out_dir.empty()                           ? a.out_dir
                          : has(Backend::kCuda) && !e->outputs.empty() ? e->outputs
                                                                       : "";
  if (a.resume && dir.empty())
    return fail(err, invalid_argument("--resume: needs --out DIR (or `outputs` with cuda)"));
  // --out: a path under a file is refused now, not after every plan has run (the folder itself is
  // made on the first write).
  if (!a.out_dir.empty())
    for (std::filesystem::path p = a.out_dir; !p.empty(); p = p.parent_path()) {
      std::error_code ec;
      const std::filesystem::file_status st = std::filesystem::status(p, ec);
      if (std::filesystem::exists(st)) {
        if (!std::filesystem::is_directory(st))
          return fail(err, invalid_argument("--out: " + a.out_dir +
                                            ": cannot be a folder: " + p.string() + " is a file"));
        break;
      }
      if (p == p.parent_path()) break;
    }
  // Created on the first write, so a run that writes nothing (cuda not built) leaves no folder.
  auto make_dir = [&dir]() -> Status {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return not_found(dir + ": cannot create: " + ec.message());
    return {};
  };

  RunOptions opt = a.options;
  opt.nodes = g.nodes;
  opt.keep_timelines = !a.trace.empty() || (comparing && !dir.empty());
  // Progress on stderr, at most one line a second (short runs print none).
  auto last = std::chrono::steady_clock::now();
  opt.progress = [&err, &last](const std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(1)) return;
    last = now;
    err << "spattn: " << line << "\n";
    err.flush();
  };

  nlohmann::json runs = nlohmann::json::array();
  std::vector<Report> reports;
  std::vector<std::string> written;
  Status first;  // the first failure; every backend still runs and is reported
  for (Backend b : *backends) {
    const std::string file = out_path(dir, std::string(to_string(b)) + ".json");
    std::optional<Report> earlier;
    // The simulator is cheap and its rows depend on the profile (which --profile may change): it
    // always runs again; measured rows (host, cuda) are the ones worth keeping.
    if (a.resume && b != Backend::kSim) {
      Expected<nlohmann::json> j = read_json_file(file);
      if (j) {
        Expected<Report> r = report_from_json(*j);
        if (!r) return fail(err, Status(r.status().code(), file + ": " + r.status().message()));
        if (r->backend != b)
          return fail(err, invalid_argument(file + ": a " + to_string(r->backend) +
                                            " report, not " + to_string(b) + "'s: not resumed"));
        earlier = std::move(*r);
      } else if (j.status().code() != StatusCode::kNotFound) {
        return fail(err, j.status());
      }
    }
    RunOptions bo = opt;
    bo.resume = earlier ? &*earlier : nullptr;
    Status checkpoint;
    if (!file.empty())
      bo.on_case_done = [&](const Report& partial) {
        nlohmann::json j = report_file_json(partial, *e, a);
        j["complete"] = false;
        Status s = make_dir();
        if (s.ok()) s = write_file_atomic(file, j.dump(2) + "\n");
        if (!s.ok() && checkpoint.ok()) checkpoint = s;
      };
    Expected<Report> r = run_backend(b, *e, bo);
    if (!r) {
      if (first.ok()) first = r.status();
      continue;
    }
    r->complete = true;
    if (!file.empty()) {
      if (checkpoint.ok()) checkpoint = make_dir();
      if (checkpoint.ok())
        checkpoint = write_file_atomic(file, report_file_json(*r, *e, a).dump(2) + "\n");
      if (!checkpoint.ok()) return fail(err, checkpoint);
      written.push_back(file);
    }
    if (a.format == "json")
      runs.push_back(to_json(*r));
    else
      out << format_table(*r) << "\n";
    if (Status s = report_status(*r); !s.ok() && first.ok()) first = s;
    reports.push_back(std::move(*r));
  }

  const Report* predicted = nullptr;
  const Report* measured = nullptr;
  for (const Report& r : reports) {
    if (r.backend == Backend::kSim) predicted = &r;
    if (r.backend == Backend::kCuda) measured = &r;
  }
  if (predicted != nullptr && measured != nullptr && !dir.empty()) {
    std::vector<CompareRow> earlier;
    if (a.resume)
      if (Expected<nlohmann::json> j = read_json_file(out_path(dir, "compare.json")); j)
        if (Expected<std::vector<CompareRow>> c = compare_from_json(*j); c) earlier = std::move(*c);
    const std::vector<CompareRow> rows = compare_reports(*predicted, *measured, earlier);
    for (const auto& [name, text] :
         {std::pair{std::string("compare.csv"), compare_csv(rows)},
          std::pair{std::string("compare.json"), compare_json(rows).dump(2) + "\n"}}) {
      if (Status s = write_file_atomic(out_path(dir, name), text); !s.ok()) return fail(err, s);
      written.push_back(out_path(dir, name));
    }
    std::vector<Report> pair;
    for (const Report* r : {predicted, measured}) pair.push_back(*r);
    std::vector<std::string> traces;
    if (Status s = write_traces(out_path(dir, "trace.json"), pair, traces, 2); !s.ok())
      return fail(err, s);
    // "trace.<case>.<plan>.json" -> "<case>.<plan>.trace.json"
    for (const std::string& t : traces) {
      const std::filesystem::path p(t);
      std::string stem = p.stem().string().substr(std::string("trace.").size());
      const std::filesystem::path to = p.parent_path() / (stem + ".trace.json");
      std::error_code ec;
      std::filesystem::rename(p, to, ec);
      if (ec) return fail(err, internal_error(t + ": rename failed: " + ec.message()));
      written.push_back(to.string());
    }
  }
  if (!a.trace.empty())
    if (Status s = write_traces(a.trace, reports, written); !s.ok()) return fail(err, s);

  if (a.format == "json") {
    out << nlohmann::json{{"experiment", e->name},  {"source", e->source},
                          {"seed", a.options.seed}, {"scale_down", a.options.scale_down},
                          {"written", written},     {"runs", std::move(runs)}}
               .dump(2)
        << "\n";
  } else if (!written.empty()) {
    out << "wrote " << written.size() << " files:";
    for (const std::string& w : written) out << " " << w;
    out << "\n";
  }
  if (!first.ok()) return fail(err, first);
  return 0;
}

int cmd_topo_import(const TopoArgs& a, std::ostream& out, std::ostream& err) {
  Expected<core::Cluster> c = sim::import_nccl_topology(a.xml, a.options);
  if (!c) return fail(err, c.status());
  if (a.out.empty()) {
    out << core::cluster_yaml(*c);
    return 0;
  }
  // A folder was renamed over (exit 1, "rename failed"); any other failure names --out too.
  if (Status s = file_not_folder("--out", a.out, "cluster.yaml"); !s.ok()) return fail(err, s);
  std::string yaml = core::cluster_yaml(*c);
  if (Status s = write_file_atomic(a.out, yaml); !s.ok()) return fail(err, for_option("--out", s));
  out << fmt::format("imported {}: {} GPUs, {} devices, {} links -> {}\n", a.xml, c->num_gpus(),
                     c->devices.size(), c->links.size(), a.out);
  return 0;
}

}  // namespace

int exit_code(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kInfeasible:
      return 2;
    case StatusCode::kUnavailable:
    case StatusCode::kInternal:
      return 1;
  }
  return 1;
}

// An int option's bounds, said plainly ("--iters: must be >= 1, got 0"; CLI11's PositiveNumber
// printed its range up to 1.8e308, and past an int it said "Could not convert: --nodes = ...").
static CLI::Validator at_least(long long lo) {
  return CLI::Validator(
      [lo](std::string& s) -> std::string {
        long long v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "must be an integer, got '" + s + "'";
        if (v > std::numeric_limits<int>::max())
          return "must be at most " + std::to_string(std::numeric_limits<int>::max()) + ", got " +
                 s;
        return v >= lo ? std::string() : "must be >= " + std::to_string(lo) + ", got " + s;
      },
      "INT>=" + std::to_string(lo));
}

// A time option in milliseconds: a finite number >= 0 (an hour at most).
static CLI::Validator milliseconds() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v))
          return "must be a number of milliseconds, got '" + s + "'";
        if (v < 0 || v > 3.6e6) return "must be in [0, 3600000] ms, got " + s;
        return {};
      },
      "MS>=0");
}

// A path option given as '' names nothing: refused rather than taken as not given.
static CLI::Validator names(const char* what) {
  return CLI::Validator(
      [what](std::string& v) {
        return v.empty() ? "must name " + std::string(what) : std::string();
      },
      "PATH");
}

// An unsigned 64-bit option read whole: CLI11 alone turned "-1" and 99999999999999999999 into
// 18446744073709551615 without a word.
static CLI::Validator unsigned_64() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        std::uint64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size())
          return "must be an integer in 0.." +
                 std::to_string(std::numeric_limits<std::uint64_t>::max()) + ", got '" + s + "'";
        return std::string();
      },
      "UINT64");
}

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "spattn: plans, simulates and runs sequence-parallel attention (Ulysses, Ring, Hybrid).\n"
      "Exit codes: 0 ok, 2 bad input (file, key, infeasible explicit plan, a run with no feasible "
      "plan, command line), 1 other failures."};
  app.require_subcommand(1);
  GlobalArgs global;
  app.add_option("--nodes", global.nodes,
                 "Nodes of a generated (multinode) cluster file, replacing its `nodes` (sim and "
                 "plan ranking)")
      ->check(at_least(1));
  app.fallthrough();

  PlanArgs plan_args;
  CLI::App* plan = app.add_subcommand(
      "plan",
      "List the experiment's plans for each sweep case: structure, padding, task counts, "
      "communication bytes, peak memory; infeasible choices with the reason. Ranked by the "
      "simulator's predicted time on the experiment's cluster and profile (defaults: H200s on "
      "one NVSwitch, experiments/profiles/h200_default.yaml), best first, with why.");
  plan->add_option("experiment", plan_args.experiment,
                   "Experiment YAML file (docs/experiment_format.md)")
      ->required();
  plan->add_option("--format", plan_args.format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  plan->add_flag("--no-rank", plan_args.no_rank, "List in candidate order without simulating");

  RunArgs run_args;
  CLI::App* run = app.add_subcommand(
      "run",
      "Run every plan of the experiment with the given backends and check the results.\n"
      "host: the plan computed on the CPU (double precision) against the reference "
      "attention; fails (exit 1) when a relative error exceeds 1e-9.\n"
      "sim: the plan timed by the simulator on the experiment's cluster and profile (or the "
      "defaults): predicted_ms, predicted_gib, events, comm_gib.\n"
      "cuda: the plan on this machine's GPUs (built with CUDA only).\n"
      "Results: --out DIR (or the experiment's `outputs` when cuda runs) gets <backend>.json; "
      "with sim and cuda also compare.csv, compare.json and <case>.<plan>.trace.json.");
  run->add_option("experiment", run_args.experiment,
                  "Experiment YAML file (docs/experiment_format.md)")
      ->required();
  run->add_option(
         "--backend", run_args.backends,
         "Comma-separated backends: host, sim, cuda (default: the experiment's `backends`)")
      ->check(names("a backend"));
  run->add_option(
         "--scale-down", run_args.options.scale_down,
         "Divide seq_len and joint_len by N (keeping a few tokens per rank); the host backend "
         "is quadratic in seq_len in double precision")
      ->capture_default_str()
      ->check(at_least(1));
  run->add_option("--warmup", run_args.options.warmup, "cuda: untimed iterations before timing")
      ->check(at_least(0))
      ->each([&run_args](const std::string&) { run_args.cuda_option = "--warmup"; });
  run->add_option("--iters", run_args.options.iterations,
                  "cuda: timed iterations (median reported)")
      ->check(at_least(1))
      ->each([&run_args](const std::string&) { run_args.cuda_option = "--iters"; });
  run->add_option("--warmup-ms", run_args.options.warmup_ms,
                  "cuda: more warm-up iterations until this much GPU time (ms) has run, counted "
                  "from the first one's time (short plans reach the GPU's steady clock)")
      ->check(milliseconds())
      ->each([&run_args](const std::string&) { run_args.cuda_option = "--warmup-ms"; });
  run->add_option("--timed-ms", run_args.options.timed_ms,
                  "cuda: more timed iterations (beyond --iters) until they make this much GPU "
                  "time (ms)")
      ->check(milliseconds())
      ->each([&run_args](const std::string&) { run_args.cuda_option = "--timed-ms"; });
  run->add_flag("--one-gpu", run_args.options.one_gpu,
                "cuda: run every rank of each plan on GPU 0, transfers as device copies instead "
                "of NCCL: checks plans of any GPU count with the real kernels on one GPU (reports "
                "the errors, no times or memory: the ranks share the GPU)");
  run->add_option("--seed", run_args.options.seed, "Seed of the random inputs")
      ->check(unsigned_64())
      ->capture_default_str();
  run->add_option("--format", run_args.format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  run->add_option(
         "--profile", run_args.profile,
         "Profile for the sim backend, instead of the experiment's `profile` (e.g. to "
         "re-predict measured results with a newly calibrated profile: --resume keeps them)")
      ->check(names("a profile file"));
  run->add_option("--trace", run_args.trace,
                  "Chrome trace per plan: FILE.json -> FILE[.<case>].<plan>.json (sim, and cuda "
                  "timelines side by side when both run)")
      ->check(names("a trace file"));
  run->add_option("--out", run_args.out_dir,
                  "Results folder: <backend>.json per backend (written atomically, after every "
                  "case), compare.csv/json and traces when sim and cuda both run")
      ->check(names("a results folder"));
  run->add_flag("--resume", run_args.resume,
                "Reuse the finished (case, plan) rows of the host and cuda <backend>.json already "
                "in the results folder instead of running them again (sim always runs again)");

  TopoArgs topo_args;
  CLI::App* topo = app.add_subcommand("topo", "Cluster topology tools");
  topo->require_subcommand(1);
  CLI::App* topo_import = topo->add_subcommand(
      "import", "Turn an NCCL topology dump (NCCL_TOPO_DUMP_FILE XML) into a cluster YAML file");
  topo_import->add_option("xml", topo_args.xml, "NCCL topology XML")->required();
  topo_import->add_option("--out", topo_args.out, "Cluster YAML to write (default: stdout)")
      ->check(names("a file"));
  topo_import
      ->add_option("--nvlink-gbps", topo_args.options.nvlink_gbps,
                   "GB/s per NVLink per direction (the XML has link counts only)")
      ->capture_default_str();

  CalibrateArgs cal_args;
  for (int i = 0; i < argc; ++i) cal_args.command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App* cal = app.add_subcommand(
      "calibrate",
      "Measure this machine's GPUs with microbenchmarks (NCCL send/recv and all-to-all, the "
      "attention "
      "kernel, copy/merge, compute under communication), fit the profile the simulator reads and "
      "write it "
      "to --out, with the raw measurements beside it as NAME.measurements.csv. An interrupted run "
      "resumes from that file. Progress on stderr. Needs a GPU (exit 1 without one). "
      "See docs/calibration.md.");
  cal->add_option("--out", cal_args.out, "Profile to write, e.g. experiments/profiles/NAME.yaml")
      ->required();
  cal->add_option("--cluster", cal_args.cluster,
                  "Cluster the profile is fitted for (link bandwidths)")
      ->capture_default_str();
  cal->add_option("--base", cal_args.base, "Profile giving the numbers calibrate does not measure")
      ->capture_default_str();
  cal->add_flag("--quick", cal_args.quick, "Fewer points (a fast check)");
  cal->add_flag("--restart", cal_args.restart,
                "Ignore measurements already in NAME.measurements.csv");
  cal->add_option("--warmup", cal_args.warmup, "Untimed iterations per point")
      ->check(at_least(0))
      ->capture_default_str();
  cal->add_option("--iters", cal_args.iterations, "Timed iterations per point (median used)")
      ->check(at_least(1))
      ->capture_default_str();
  cal->add_option(
      "--synthetic", cal_args.synthetic,
      "Measure with the simulator and this profile instead of GPUs (checks the pipeline: the "
      "fit should give this profile back)");
  cal->add_option("--refit", cal_args.refit,
                  "Fit the points of this measurements CSV again (a model change, another "
                  "--cluster or --base), measuring nothing: no GPU needed")
      ->check(CLI::ExistingFile)
      ->excludes(cal->get_option("--synthetic"));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, out, err);  // --help
    return fail(err, invalid_argument(e.what()));
  }
  if (plan->parsed()) return cmd_plan(plan_args, global, out, err);
  if (run->parsed()) return cmd_run(run_args, global, out, err);
  if (topo_import->parsed()) return cmd_topo_import(topo_args, out, err);
  if (cal->parsed()) return cmd_calibrate(cal_args, out, err);
  return fail(err, internal_error("no subcommand"));
}

}  // namespace spattn::experiments
