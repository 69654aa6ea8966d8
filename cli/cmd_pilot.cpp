// `ropelab pilot --config STUDY.toml`: reads the study file, checks each
// stage's keys against its command's flags, and hands it to study/runner.h,
// which runs it stage by stage (resumable; `--jobs N` runs side by side).
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

void run_pilot(CLI::App& root, const std::string& file, const std::string& out, int jobs, double status_every,
               bool dry_run) {
  auto s = study::load_study(file);
  if (!out.empty()) s.out = out;
  check_keys(root, s);
  study::run_study(s, {jobs, status_every, dry_run, out});
}

}  // namespace

void add_pilot_command(CLI::App& root) {
  auto* cmd = root.add_subcommand("pilot", "run a whole study (train per θ (and seed) -> γ-flow -> NIAH -> KV -> report), resumable");
  auto file = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dry = std::make_shared<bool>(false);
  auto jobs = std::make_shared<int>(1);
  auto status_every = std::make_shared<double>(60);
  cmd->add_option("--config", *file, "study file (TOML; see recipes/pilot-*.toml)")->required();
  cmd->add_option("--out", *out, "study directory (overrides the file's `out`)");
  cmd->add_option("--jobs", *jobs,
                  "runs (θ, or θ × seed) side by side (each stage's output then goes to RUN/STAGE.log, and the threads are "
                  "shared out unless OMP_NUM_THREADS is set)")
      ->check(in_range(1, 256))
      ->capture_default_str();
  cmd->add_option("--status-every", *status_every,
                  "with --jobs: seconds between lines showing each running stage's progress (its log's last line)")
      ->check(in_range(0.1, 86400))
      ->capture_default_str();
  cmd->add_flag("--dry-run", *dry, "print what would run (and what is already complete), run nothing");
  cmd->callback([&root, file, out, jobs, status_every, dry] { run_pilot(root, *file, *out, *jobs, *status_every, *dry); });
}

}  // namespace ropelab::cli
