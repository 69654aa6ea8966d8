// The layout of a run directory and of a study directory, in one place, for
// every reader and writer (plain C++, no torch):
//   RUN/config.json                  the resolved configuration
//   RUN/metrics.jsonl                one record per step
//   RUN/builds.jsonl                 one record per start or resume: {step, world_size, build}
//                                    (train/fingerprint.h), so a run says what computed each stretch
//   RUN/profile.json                 with train --profile-steps A:B: the op-level profile (Chrome trace)
//   RUN/checkpoints/step_XXXXXXXX.pt the checkpoints, listed (sorted by step) in
//   RUN/checkpoints/manifest.json    {"checkpoints": [{step, file, tokens_seen}, ...]}
//   RUN/NAME.jsonl                   evaluation results (gamma, niah, kv), written
//                                    as NAME.jsonl.partial and renamed when complete
//   RUN/STAGE.log                    a study stage's output when runs go side by side
//   STUDY/theta-1e4[-seed-7]/        one run per θ (and seed)
//   STUDY/pilot.jsonl                the study's stage log
//   STUDY/report/                    the study's report
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ropelab::rundir {

std::string config_path(const std::string& run);      // RUN/config.json
std::string metrics_path(const std::string& run);     // RUN/metrics.jsonl
std::string builds_path(const std::string& run);      // RUN/builds.jsonl
std::string profile_path(const std::string& run);     // RUN/profile.json (train --profile-steps)
std::string checkpoints_dir(const std::string& run);  // RUN/checkpoints
std::string manifest_path(const std::string& run);    // RUN/checkpoints/manifest.json
std::string checkpoint_file_name(int64_t step);       // step_00000042.pt
std::string checkpoint_path(const std::string& run, const std::string& file);  // RUN/checkpoints/FILE
// The run a checkpoint file belongs to: RUN for RUN/checkpoints/step_X.pt.
std::string run_of_checkpoint(const std::string& ckpt_path);
// A run directory: config.json and metrics.jsonl are there.
bool is_run_dir(const std::string& dir);
std::string result_path(const std::string& run, const std::string& name);     // RUN/NAME.jsonl
std::string partial_path(const std::string& result);                          // RESULT.partial
std::string stage_log_path(const std::string& run, const std::string& stage);  // RUN/STAGE.log

// One checkpoint the manifest lists.
struct CheckpointEntry {
  int64_t step = 0;
  std::string file;  // relative to RUN/checkpoints
  int64_t tokens_seen = 0;
};
// The manifest's checkpoints, sorted by step; none when there is no manifest.
// Throws Error naming the file when it is malformed.
std::vector<CheckpointEntry> read_manifest(const std::string& run);
// Lists a checkpoint (replacing one at the same step), replacing the manifest
// atomically (RUN/checkpoints is made if missing).
void add_to_manifest(const std::string& run, const CheckpointEntry& entry);

// "1e4", "2.5e5", "500": θ as it appears in run directory names.
std::string theta_label(double theta);
std::string study_run_dir(const std::string& study, double theta, std::optional<uint64_t> seed);  // STUDY/theta-1e4[-seed-7]
std::string study_log_path(const std::string& study);    // STUDY/pilot.jsonl
std::string study_report_dir(const std::string& study);  // STUDY/report

}  // namespace ropelab::rundir
