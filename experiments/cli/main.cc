// experiments/cli/main.cc: the `spattn` command; everything is in cli.cc (run_cli) so it can be
// tested.
#include <iostream>

#include "experiments/cli/cli.h"

int main(int argc, char** argv) {
  return spattn::experiments::run_cli(argc, argv, std::cout, std::cerr);
}
