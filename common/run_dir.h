// The layout of a run directory and a study directory, in one place, for
// every reader and writer (plain C++, no torch).
#pragma once
#include <string>

namespace ropelab::rundir {

// "1e4", "2.5e5", "500": θ as it appears in run directory names.
std::string theta_label(double theta);

}  // namespace ropelab::rundir
