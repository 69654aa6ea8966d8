// SLURM's client commands as the pilot's SLURM launcher uses them: sbatch,
// squeue, scontrol, scancel, run as child processes (argument vectors, no
// shell) and their output read. Job state comes from `squeue` (pending,
// running) and `scontrol show job` (how a finished job ended), which works
// with and without accounting; `sacct` is not needed. Plain C++.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ropelab::study::slurm {

// A command's exit code (-1: it could not start or was killed) and its output.
struct Output {
  int exit_code = -1;
  std::string out, err;
};
Output run_command(const std::vector<std::string>& argv);

// The full path of `name` on PATH, or "".
std::string find_on_path(const std::string& name);

// Throws Error (exit 2) naming the first of sbatch, squeue, scontrol and
// scancel that is not on PATH.
void require_commands();

// A job as squeue shows it while it is queued.
struct Queued {
  std::string state;   // PENDING, RUNNING, COMPLETING, CONFIGURING, SUSPENDED, ...
  std::string reason;  // e.g. Dependency, Priority, None
};
// Which of these job ids are queued now (absent: finished, or unknown to SLURM).
// Throws Error when squeue fails for another reason than an unknown id.
std::map<long, Queued> queued(const std::vector<long>& ids);

// How a job ended (or stands), from `scontrol show job -o ID`; nothing when
// SLURM no longer knows the id.
struct JobInfo {
  std::string state;       // JobState: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
  std::string reason;      // Reason
  std::string exit_code;   // ExitCode, "CODE:SIGNAL"
  std::string dependency;  // Dependency, e.g. "afterok:12(failed)"
  std::string std_out;     // StdOut
};
std::optional<JobInfo> job_info(long id);

// `sbatch --test-only [EXTRA...] SCRIPT`: "" when SLURM would take it, else
// sbatch's own words.
std::string test_submission(const std::string& script, const std::vector<std::string>& extra = {});
// `sbatch --parsable [EXTRA...] SCRIPT`: the new job's id; throws Error with
// sbatch's words when it refuses.
long submit(const std::string& script, const std::vector<std::string>& extra);
// `scancel ID...`; throws Error with scancel's words when it fails.
void cancel(const std::vector<long>& ids);

}  // namespace ropelab::study::slurm
