// `ropelab pilot --launcher slurm`: the study's stages (study/pilot.h plans
// them) as SLURM jobs, wired in order with --dependency. Plain C++.
//
// In the study directory OUT:
//   OUT/slurm/KEY.sbatch          one job script per stage (KEY: theta-1e4-seed-1.train, ..., report),
//                                 readable and resubmittable by hand (`sbatch OUT/slurm/KEY.sbatch`)
//   OUT/slurm/jobs.json           each stage's latest job id (and the ones before), written atomically
//   OUT/slurm/logs/KEY.JOB.log    each job's output
//   OUT/slurm/run/KEY.JOB.args    the command the job planned (NUL-separated), for its finish step
//   OUT/slurm/report.json         what the last report job covered ({"missing": [...]})
//   OUT/slurm/lock                held while a submission or cancel drives the directory
//
// A job script plans its stage when it starts, from what is on disk then
// (`ropelab pilot ... --job-plan KEY`: a training resumes from its last
// checkpoint, an evaluation reads the final one), runs it under `srun` (a
// training: one task per GPU over the nodes asked for; otherwise one task),
// and finishes it (`--job-finish KEY`): commits an evaluation's .partial,
// appends to OUT/pilot.jsonl, and exits non-zero when the stage is not
// complete (a training stopped at the time limit ends COMPLETED in SLURM but
// is not done), so its dependants are cancelled, not run.
//
// Stage order: gamma after train; niah and kv after train and gamma (afterok,
// --kill-on-invalid-dep=yes, so a failed stage cancels only its own
// dependants); the report after every other job has ended (afterany), on what
// completed. Submitting again submits only the stages that are neither
// complete (the pilot's own checks) nor queued (squeue), and wires their
// dependencies only to jobs squeue shows queued just then.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "study/pilot.h"

namespace ropelab::study {

// Cluster settings: the study file's [slurm] section, then flags (later wins;
// sbatch-args and setup add up). Keys:
//   partition, account, qos, mem         sbatch's --partition/--account/--qos/--mem (per node)
//   time, time-train, time-gamma, time-niah, time-kv, time-report
//                                        --time for every stage / one stage kind (SLURM's formats)
//   nodes                                nodes per training (default 1)
//   gpus-per-node                        GPUs per training node, one task each (default 0: the CPU,
//                                        one task); evaluations take one GPU, the report none
//   cpus-per-task                        --cpus-per-task (and OMP_NUM_THREADS) for every task
//   signal-seconds                       SIGTERM to the stage this long before its time limit (120)
//   sbatch-args                          more sbatch arguments, e.g. ["--constraint=h100"]
//   setup                                shell lines each job runs first (e.g. "module load cuda")
//   ropelab-bin                          the ropelab the jobs run (default: this executable)
struct SlurmSettings {
  std::string partition, account, qos, mem;
  std::map<std::string, std::string> time;  // "" = every stage; else a stage name
  int nodes = 1, gpus_per_node = 0, cpus_per_task = 0, signal_seconds = 120;
  std::vector<std::string> sbatch_args, setup;
  std::string ropelab_bin;
};
// Checks the [slurm] keys (errors name the file and key) and the flags' (named `--KEY`).
SlurmSettings slurm_settings(const Study& s, const std::vector<std::pair<std::string, std::string>>& flags = {});
const std::vector<std::string>& slurm_keys();

// Submits every stage that is neither complete nor queued. `rerun` is the
// pilot's command line for hints. Throws Error (exit 2) before submitting
// anything when sbatch is missing, SLURM refuses a job script (--test-only),
// or another submission holds OUT/slurm/lock; a refusal part-way cancels
// what this call submitted. `dry_run`: writes the job scripts, says what
// would be submitted, submits nothing.
void submit_study(const Study& s, const SlurmSettings& settings, const std::string& rerun, bool dry_run);

// Every stage: done, running, pending, failed (job id, exit code, log),
// cancelled (and why), stopped (a job ended but the stage is not complete),
// not submitted, or skipped. Returns the text it prints.
std::string study_status(const Study& s);

// Cancels the study's queued and running jobs and waits (up to `wait_seconds`)
// until they have left the queue (a training saves a checkpoint on SIGTERM).
void cancel_study(const Study& s, double wait_seconds = 180);

// Inside a job: plans stage KEY now and writes its ropelab arguments
// (NUL-separated) to `args_file`, empty when the stage is complete already.
void job_plan(const Study& s, const std::string& key, const std::string& args_file);
// Inside a job, after the stage ran with `exit_code`: commits, records, and
// returns the job's exit code (0 only when the stage is complete).
int job_finish(const Study& s, const std::string& key, const std::string& args_file, int exit_code, double seconds);

}  // namespace ropelab::study
