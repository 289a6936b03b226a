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
// `s` as the fault of a command-line option: "--out: " + its message, same code.
Status for_option(const std::string& option, const Status& s);
// InvalidArgument when `path`, given to a file option, names a folder ("out/" or one that exists):
// "--trace: out/: is a folder; give a file name such as out/trace.json".
Status file_not_folder(const std::string& option, const std::string& path, const char* example);

int run_cli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace spattn::experiments
