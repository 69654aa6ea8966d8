// `ropelab pilot`: a controlled-θ study as a sequence of ordinary ropelab
// commands, one run directory per θ, resumable stage by stage.
//
// A study file (TOML):
//   study = "pilot-theta"                 # marks the file as a study, names it
//   out = "runs/pilot-theta"              # study directory
//   train-recipe = "recipes/pilot-model.toml"
//   thetas = [1e4, 1e5, 1e6]              # only θ differs between the runs
//   seeds = [1, 2, 3]                     # optional: each θ trained once per seed
//   [design.NAME]                         # optional, repeatable: a model design compared at each θ and
//                                         # seed (extra `ropelab train` flags, e.g. layer-pattern); its
//                                         # runs are OUT/NAME-theta-<θ>[-seed-<s>]
//   [train]   extra `ropelab train` flags (override the recipe)
//   [gamma]   `ropelab eval gamma` flags      (the pilot sets --run, --out)
//   [niah]    `ropelab eval niah` flags       (the pilot sets --ckpt, --out, and --gamma-from when
//                                              scaling has a sweep or alpha_opt_measured)
//   [kv]      `ropelab eval kv` flags         (the pilot sets --ckpt, --out, and --gamma-from
//                                              unless the section gives --gamma or --gamma-from)
//   [report]  `ropelab report` flags          (the pilot sets the inputs and --out)
//   [slurm]   cluster settings for `--launcher slurm` (study/slurm_launcher.h reads them;
//             the local launcher ignores them)
// Any section may say `skip = true`. Keys are flags without the dashes; an
// array becomes one comma list, or repeated flags for options that collect
// several values (ropelab pilot decides, knowing each flag).
//
// For each θ (and seed), in OUT/theta-<θ>/ (OUT/theta-<θ>-seed-<s>/): train
// (new, resumed, or skipped when the manifest reaches max_steps) -> gamma over every checkpoint (skipped when
// each has a record) -> niah and kv on the final checkpoint (written to
// NAME.jsonl.partial, renamed when complete; skipped when NAME.jsonl exists)
// -> then one report over the study. Plain C++ (no torch).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/run_dir.h"

namespace ropelab::study {

struct Study {
  std::string file;                 // where it was read from (for messages)
  std::string name, out, train_recipe;
  std::vector<double> thetas;
  std::vector<uint64_t> seeds;      // empty: one run per θ at the recipe's seed
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> flags;  // section -> (key, value)
  std::map<std::string, bool> skip;                                                // section -> skip
  std::vector<std::pair<std::string, std::string>> slurm;  // [slurm] (key, value), arrays as repeated keys
  // [design.NAME] sections in file order: each a name and its train flags.
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> designs;
};

// The stages of one run (a θ, or a θ and a seed), in the order they run.
const std::vector<std::string>& run_stages();   // train, gamma, niah, kv
// The stage sections: run_stages(), then the study's report.
const std::vector<std::string>& stage_names();  // train, gamma, niah, kv, report
// Flags each stage's command line gets from the pilot, never from the file.
const std::vector<std::string>& reserved_flags(const std::string& stage);

// Parses and checks a study file; throws Error naming the file and key.
Study load_study(const std::string& path);

using rundir::theta_label;  // θ as it appears in run directory names

// One training run of a study: a θ, a seed when the file lists seeds, a
// design when it has [design.NAME] sections.
struct Member {
  double theta = 0;
  std::optional<uint64_t> seed;
  std::string design;  // "" without designs
};
// Every run of the study, design-major, then θ (a θ's seeds together), in the file's order.
std::vector<Member> members(const Study& s);
std::string member_label(const Member& m);             // "θ=1e4", "θ=1e4 seed=7", "local-global θ=1e4 seed=7"
std::string run_dir(const Study& s, const Member& m);  // OUT/theta-1e4, OUT/theta-1e4-seed-7, OUT/NAME-theta-1e4-seed-7

// Whether the study file says `skip = true` for this stage.
bool skipped_by_file(const Study& s, const std::string& stage);

// One stage's next action, decided from what is on disk now.
struct Step {
  std::string stage;               // train | gamma | niah | kv | report
  std::string label;               // member_label, or "study"
  std::vector<std::string> args;   // ropelab's arguments (empty when skipped)
  std::string skipped;             // why nothing needs doing ("" = run it)
  std::string partial, final;      // niah/kv: write `partial`, rename to `final` on success
};
// The member is ignored for the report stage.
Step plan_step(const Study& s, const std::string& stage, const Member& m);

}  // namespace ropelab::study
