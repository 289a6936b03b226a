// experiments/cli/cli.h: the `spattn` command line (plan, run) as a function, so tests can call it
// in-process; main.cc only forwards to it. Results go to `out`; an error is one line on `err`.
// Exit codes: 0 ok; 2 bad input (InvalidArgument, NotFound, Infeasible for an explicit choice, bad
// command line); 1 any other failure (a backend not built, an error over tolerance, a planner bug).
#pragma once

#include <ostream>

#include "core/status.h"

namespace spattn::experiments {

int exit_code(const Status& s);
// Writes `s` as one line on `err` ("spattn: ...", newlines folded) and returns exit_code(s).
int fail(std::ostream& err, const Status& s);

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace spattn::experiments
