// `ropelab pilot --config STUDY.toml`: reads the study file, checks each
// stage's keys against its command's flags, and hands it to study/runner.h,
// which runs it stage by stage (resumable; `--jobs N` runs side by side), or
// with `--launcher slurm` to study/slurm_launcher.h, which submits each stage
// as a SLURM job (`--status`, `--cancel`; `--job-plan`/`--job-finish` are the
// job scripts' own steps).
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/range_check.h"
#include "common/error.h"
#include "study/pilot.h"
#include "study/runner.h"
#include "study/slurm_launcher.h"

namespace ropelab::cli {
namespace {

// The subcommand a stage runs, to check the study file's keys before any work.
CLI::App* stage_command(CLI::App& root, const std::string& stage) {
  if (stage == "train" || stage == "report") return root.get_subcommand(stage);
  return root.get_subcommand("eval")->get_subcommand(stage);
}

// Checks every key against its command's flags, and turns a TOML array into
// what the flag takes: repeated for options that collect several values
// (e.g. --data-input), one comma list otherwise (e.g. --scaling, --ratios).
void check_keys(CLI::App& root, study::Study& s) {
  for (auto& [stage, flags] : s.flags) {
    std::vector<std::pair<std::string, std::string>> merged;
    for (size_t i = 0; i < flags.size(); ++i) {
      const auto& [key, value] = flags[i];
      const CLI::Option* opt = stage_command(root, stage)->get_option_no_throw("--" + key);
      if (opt == nullptr)
        throw Error(s.file + ": key \"" + stage + "." + key + "\": `ropelab " +
                    (stage == "train" || stage == "report" ? stage : "eval " + stage) + "` has no flag --" + key);
      const bool same_array = i > 0 && flags[i - 1].first == key;
      if (same_array && opt->get_items_expected_max() <= 1) merged.back().second += "," + value;
      else merged.push_back({key, value});
    }
    flags = merged;
  }
}

struct PilotFlags {
  std::string file, out, launcher = "local";
  int jobs = 1;
  double status_every = 60;
  bool dry_run = false, status = false, cancel = false;
  // --launcher slurm: settings as (key, value), in slurm_settings' words
  std::vector<std::pair<std::string, std::string>> slurm;
  std::string partition, account, qos, mem, ropelab_bin;
  std::vector<std::string> time, sbatch_args;
  int nodes = 0, gpus_per_node = -1, cpus_per_task = 0;
  // inside a job
  std::string job_plan, job_finish, args_file;
  int exit_code = 0;
  double seconds = 0;
};

void run_pilot(CLI::App& root, CLI::App& cmd, PilotFlags& f) {
  auto s = study::load_study(f.file);
  if (!f.out.empty()) s.out = f.out;
  check_keys(root, s);
  if (!f.job_plan.empty()) return study::job_plan(s, f.job_plan, f.args_file);
  if (!f.job_finish.empty()) {
    const int code = study::job_finish(s, f.job_finish, f.args_file, f.exit_code, f.seconds);
    if (code != 0) throw CLI::RuntimeError(code);  // the job's exit status, without another message
    return;
  }
  const bool slurm = f.launcher == "slurm" || f.status || f.cancel;
  auto& flags = f.slurm;
  for (const char* opt : {"--partition", "--account", "--qos", "--mem", "--ropelab-bin", "--time", "--sbatch-arg",
                          "--nodes", "--gpus-per-node", "--cpus-per-task"})
    if (cmd.count(opt) > 0 && !slurm) throw Error(std::string(opt) + " is a setting of --launcher slurm");
  if (slurm && (cmd.count("--jobs") > 0 || cmd.count("--status-every") > 0))
    throw Error("--jobs and --status-every are the local launcher's; on SLURM every stage is its own job");
  if (f.status && f.cancel) throw Error("--status and --cancel: one at a time");
  if (!f.partition.empty()) flags.push_back({"partition", f.partition});
  if (!f.account.empty()) flags.push_back({"account", f.account});
  if (!f.qos.empty()) flags.push_back({"qos", f.qos});
  if (!f.mem.empty()) flags.push_back({"mem", f.mem});
  if (!f.ropelab_bin.empty()) flags.push_back({"ropelab-bin", f.ropelab_bin});
  for (const auto& t : f.time) {  // LIMIT, or STAGE=LIMIT
    const size_t eq = t.find('=');
    if (eq == std::string::npos) flags.push_back({"time", t});
    else flags.push_back({"time-" + t.substr(0, eq), t.substr(eq + 1)});
  }
  for (const auto& a : f.sbatch_args) flags.push_back({"sbatch-args", a});
  if (f.nodes > 0) flags.push_back({"nodes", std::to_string(f.nodes)});
  if (f.gpus_per_node >= 0) flags.push_back({"gpus-per-node", std::to_string(f.gpus_per_node)});
  if (f.cpus_per_task > 0) flags.push_back({"cpus-per-task", std::to_string(f.cpus_per_task)});
  const auto settings = study::slurm_settings(s, flags);  // the [slurm] section is checked in any case
  if (!slurm) return study::run_study(s, {f.jobs, f.status_every, f.dry_run, f.out});
  if (f.status) {
    study::study_status(s);
    return;
  }
  if (f.cancel) return study::cancel_study(s);
  const std::string rerun = "ropelab pilot --config " + f.file + (f.out.empty() ? "" : " --out " + f.out);
  study::submit_study(s, settings, rerun + " --launcher slurm", f.dry_run);
}

}  // namespace

void add_pilot_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("pilot", "run a whole study (train per θ (and seed) -> γ-flow -> NIAH -> KV -> report), resumable");
  auto f = std::make_shared<PilotFlags>();
  cmd->add_option("--config", f->file, "study file (TOML; see recipes/pilot-*.toml)")->required();
  cmd->add_option("--out", f->out, "study directory (overrides the file's `out`)");
  cmd->add_option("--jobs", f->jobs,
                  "runs (θ, or θ × seed) side by side (each stage's output then goes to RUN/STAGE.log, and the threads are "
                  "shared out unless OMP_NUM_THREADS is set)")
      ->check(in_range(1, 256))
      ->capture_default_str();
  cmd->add_option("--status-every", f->status_every,
                  "with --jobs: seconds between lines showing each running stage's progress (its log's last line)")
      ->check(in_range(0.1, 86400))
      ->capture_default_str();
  cmd->add_flag("--dry-run", f->dry_run, "print what would run (and what is already complete), run nothing");
  // SLURM (docs/cluster.md).
  const std::string g = "SLURM (--launcher slurm; also the study file's [slurm] section)";
  cmd->add_option("--launcher", f->launcher,
                  "local: run the stages here (default); slurm: submit each stage as a SLURM job, in order "
                  "(docs/cluster.md)")
      ->check(CLI::IsMember({"local", "slurm"}))
      ->capture_default_str();
  cmd->add_flag("--status", f->status, "every stage of the study on SLURM: done, running, pending, failed (job, exit code, log)")
      ->group(g);
  cmd->add_flag("--cancel", f->cancel, "cancel the study's queued and running SLURM jobs (trainings save a checkpoint)")
      ->group(g);
  cmd->add_option("--partition", f->partition, "sbatch --partition for every job")->group(g);
  cmd->add_option("--account", f->account, "sbatch --account")->group(g);
  cmd->add_option("--qos", f->qos, "sbatch --qos")->group(g);
  cmd->add_option("--mem", f->mem, "sbatch --mem (per node)")->group(g);
  cmd->add_option("--time", f->time, "time limit: LIMIT for every stage, or STAGE=LIMIT (train, gamma, niah, kv, report); "
                                     "repeatable")
      ->group(g);
  cmd->add_option("--nodes", f->nodes, "nodes per training")->check(in_range(1, 100000))->group(g);
  cmd->add_option("--gpus-per-node", f->gpus_per_node,
                  "GPUs per training node, one task each (0: the CPU, one task); evaluations take one GPU")
      ->check(in_range(0, 1024))
      ->group(g);
  cmd->add_option("--cpus-per-task", f->cpus_per_task, "sbatch --cpus-per-task (and OMP_NUM_THREADS)")
      ->check(in_range(1, 100000))
      ->group(g);
  cmd->add_option("--sbatch-arg", f->sbatch_args, "one more sbatch argument for every job, e.g. --sbatch-arg=--constraint=h100; "
                                                  "repeatable")
      ->group(g);
  cmd->add_option("--ropelab-bin", f->ropelab_bin, "the ropelab the jobs run (default: this executable)")->group(g);
  // The generated job scripts' own steps (hidden).
  cmd->add_option("--job-plan", f->job_plan)->group("");
  cmd->add_option("--job-finish", f->job_finish)->group("");
  cmd->add_option("--args-file", f->args_file)->group("");
  cmd->add_option("--exit-code", f->exit_code)->group("");
  cmd->add_option("--seconds", f->seconds)->group("");
  cmd->callback([&root, cmd, f] { run_pilot(root, *cmd, *f); });
}

}  // namespace ropelab::cli
