// Running a study (study/pilot.h plans it): each stage an ordinary ropelab
// command in its own process, printed so it can be reproduced by hand.
// Re-running continues where an interrupted study stopped. `jobs` > 1 runs
// that many runs (θ, or θ × seed) side by side (a CPU's cores, or small
// models sharing a GPU); the report waits for all of them. Plain C++.
#pragma once
#include <string>
#include <vector>

#include "study/pilot.h"

namespace ropelab::study {

struct RunOptions {
  int jobs = 1;               // runs side by side
  double status_every = 60;   // with jobs > 1: seconds between progress lines
  bool dry_run = false;       // print what would run (and what is complete), run nothing
  std::string out_flag;       // the --out the study was given ("" = the file's), for the rerun hint
};

// Runs every stage of `s` that is not complete yet (its flags already
// checked against their commands); throws Error when a stage failed or a
// signal stopped the study, saying how to continue.
void run_study(const Study& s, const RunOptions& options);

// `ropelab ARGS` as a shell line (arguments with spaces or quotes quoted).
std::string shell_line(const std::vector<std::string>& args);

}  // namespace ropelab::study
