#include "experiments/cli/cli.h"

#include <CLI/CLI.hpp>
#include <string>

#include "core/experiment.h"
#include "experiments/cli/backend.h"
#include "experiments/cli/calibrate.h"
#include "experiments/cli/plans.h"

namespace spattn::experiments {
namespace {

// One line on stderr; a message with a newline (from a library) is folded onto one line.
int fail(std::ostream& err, const Status& s) {
  std::string m = s.message();
  for (char& c : m)
    if (c == '\n') c = ' ';
  err << "spattn: " << m << "\n";
  return exit_code(s);
}

struct PlanArgs {
  std::string experiment;
  std::string format = "table";
};

struct RunArgs {
  std::string experiment;
  std::string backends;  // "" = the experiment's `backends`
  std::string format = "table";
  RunOptions options;
};

int cmd_plan(const PlanArgs& a, std::ostream& out, std::ostream& err) {
  Expected<core::Experiment> e = core::load_experiment(a.experiment);
  if (!e) return fail(err, e.status());
  const Listing l = list_plans(*e);
  if (a.format == "json")
    out << to_json(l).dump(2) << "\n";
  else
    out << format_table(l);
  if (Status s = explicit_failure(l); !s.ok()) return fail(err, s);
  if (Status s = internal_failure(l); !s.ok()) return fail(err, s);
  return 0;
}

int cmd_run(const RunArgs& a, std::ostream& out, std::ostream& err) {
  if (a.options.scale_down < 1)
    return fail(err, invalid_argument("--scale-down: must be >= 1, got " +
                                      std::to_string(a.options.scale_down)));
  Expected<core::Experiment> e = core::load_experiment(a.experiment);
  if (!e) return fail(err, e.status());
  std::string list = a.backends;
  if (list.empty())
    for (const std::string& b : e->backends) list += (list.empty() ? "" : ",") + b;
  Expected<std::vector<Backend>> backends = parse_backends(list);
  if (!backends) return fail(err, backends.status());

  nlohmann::json runs = nlohmann::json::array();
  Status first;  // the first failure; every backend still runs and is reported
  for (Backend b : *backends) {
    Expected<Report> r = run_backend(b, *e, a.options);
    if (!r) {
      if (first.ok()) first = r.status();
      continue;
    }
    if (a.format == "json")
      runs.push_back(to_json(*r));
    else
      out << format_table(*r) << "\n";
    if (Status s = report_status(*r); !s.ok() && first.ok()) first = s;
  }
  if (a.format == "json") {
    out << nlohmann::json{{"experiment", e->name},
                          {"source", e->source},
                          {"seed", a.options.seed},
                          {"scale_down", a.options.scale_down},
                          {"runs", std::move(runs)}}
               .dump(2)
        << "\n";
  }
  if (!first.ok()) return fail(err, first);
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

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "spattn: plans, simulates and runs sequence-parallel attention (Ulysses, Ring, Hybrid).\n"
      "Exit codes: 0 ok, 2 bad input (file, key, infeasible explicit plan, command line), 1 other "
      "failures."};
  app.require_subcommand(1);

  PlanArgs plan_args;
  CLI::App* plan = app.add_subcommand(
      "plan",
      "List the experiment's plans for each sweep case: structure, padding, task counts, "
      "communication bytes, peak memory; infeasible choices with the reason.");
  plan->add_option("experiment", plan_args.experiment,
                   "Experiment YAML file (docs/experiment_format.md)")
      ->required();
  plan->add_option("--format", plan_args.format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  RunArgs run_args;
  CLI::App* run = app.add_subcommand(
      "run",
      "Run every plan of the experiment with the given backends and check the results.\n"
      "host: the plan computed on the CPU (double precision) against the reference "
      "attention; fails (exit 1) when a relative error exceeds 1e-9.");
  run->add_option("experiment", run_args.experiment,
                  "Experiment YAML file (docs/experiment_format.md)")
      ->required();
  run->add_option(
      "--backend", run_args.backends,
      "Comma-separated backends: host, sim, cuda (default: the experiment's `backends`)");
  run->add_option(
         "--scale-down", run_args.options.scale_down,
         "Divide seq_len and joint_len by N (keeping a few tokens per rank); the host backend "
         "is quadratic in seq_len in double precision")
      ->capture_default_str();
  run->add_option("--warmup", run_args.options.warmup, "cuda: untimed iterations before timing")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--iters", run_args.options.iterations, "cuda: timed iterations (median reported)")
      ->check(CLI::PositiveNumber);
  run->add_option("--seed", run_args.options.seed, "Seed of the random inputs")
      ->capture_default_str();
  run->add_option("--format", run_args.format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  CalibrateArgs cal_args;
  for (int i = 0; i < argc; ++i) cal_args.command_line += (i ? " " : "") + std::string(argv[i]);
  CLI::App* cal = app.add_subcommand(
      "calibrate",
      "Measure this machine's GPUs with microbenchmarks (NCCL send/recv and all-to-all, the attention "
      "kernel, copy/merge, compute under communication), fit the profile the simulator reads and write it "
      "to --out, with the raw measurements beside it as NAME.measurements.csv. An interrupted run "
      "resumes from that file. Progress on stderr. Needs a GPU (exit 1 without one). "
      "See docs/calibration.md.");
  cal->add_option("--out", cal_args.out, "Profile to write, e.g. experiments/profiles/NAME.yaml")->required();
  cal->add_option("--cluster", cal_args.cluster, "Cluster the profile is fitted for (link bandwidths)")
      ->capture_default_str();
  cal->add_option("--base", cal_args.base, "Profile giving the numbers calibrate does not measure")
      ->capture_default_str();
  cal->add_flag("--quick", cal_args.quick, "Fewer points (a fast check)");
  cal->add_flag("--restart", cal_args.restart, "Ignore measurements already in NAME.measurements.csv");
  cal->add_option("--warmup", cal_args.warmup, "Untimed iterations per point")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cal->add_option("--iters", cal_args.iterations, "Timed iterations per point (median used)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cal->add_option("--synthetic", cal_args.synthetic,
                  "Measure with the simulator and this profile instead of GPUs (checks the pipeline: the "
                  "fit should give this profile back)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, out, err);  // --help
    return fail(err, invalid_argument(e.what()));
  }
  if (plan->parsed()) return cmd_plan(plan_args, out, err);
  if (run->parsed()) return cmd_run(run_args, out, err);
  if (cal->parsed()) return cmd_calibrate(cal_args, out, err);
  return fail(err, internal_error("no subcommand"));
}

}  // namespace spattn::experiments
