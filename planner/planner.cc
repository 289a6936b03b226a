// planner/planner.cc: placeholder until the planner lands.
#include "planner/planner.h"
