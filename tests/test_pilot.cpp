// The study planner behind `ropelab pilot`: the study file's checks, θ
// labels, and the stage decisions made from what is on disk (no torch: the
// run directories here are hand-made).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/io.h"
#include "study/pilot.h"
#include "test_util.h"

using namespace ropelab;
using test::error_of;
using test::scratch_dir;
using test::write_text;

namespace {
const std::string kRecipe = std::string(ROPELAB_SOURCE_DIR) + "/recipes/smoke.toml";

std::string study_file(const std::string& dir, const std::string& extra) {
  const std::string path = dir + "/study.toml";
  write_text(path, "study = \"t\"\nout = \"" + dir + "/out\"\ntrain-recipe = \"" + kRecipe +
                       "\"\nthetas = [1e4, 2.5e5]\n" + extra);
  return path;
}

// A run directory as the trainer leaves it: config.json and a manifest.
void fake_run(const std::string& dir, int64_t max_steps, const std::vector<int64_t>& steps) {
  io::make_dirs(dir + "/checkpoints");
  io::write_json_atomic(dir + "/config.json", {{"max_steps", max_steps}});
  nlohmann::json list = nlohmann::json::array();
  for (auto s : steps) list.push_back({{"step", s}, {"file", "step_" + std::to_string(s) + ".pt"}, {"tokens_seen", 0}});
  io::write_json_atomic(dir + "/checkpoints/manifest.json", {{"checkpoints", list}});
}
}  // namespace

TEST(Pilot, ThetaLabelsAreShortAndExact) {
  EXPECT_EQ(study::theta_label(1e4), "1e4");
  EXPECT_EQ(study::theta_label(2.5e5), "2.5e5");
  EXPECT_EQ(study::theta_label(1e6), "1e6");
  EXPECT_EQ(study::theta_label(500), "500");
  EXPECT_EQ(study::theta_label(1234567), "1.234567e6");
}

TEST(Pilot, StudyFileChecksNameTheKey) {
  const auto dir = scratch_dir();
  const auto s = study::load_study(study_file(dir, "[niah]\nlengths = \"1x,2x\"\n[kv]\nskip = true\n"));
  EXPECT_EQ(s.thetas, (std::vector<double>{1e4, 2.5e5}));
  EXPECT_EQ(s.flags.at("niah").at(0), (std::pair<std::string, std::string>{"lengths", "1x,2x"}));
  EXPECT_TRUE(s.skip.at("kv"));

  auto err = [&](const std::string& extra) { return error_of([&] { study::load_study(study_file(dir, extra)); }); };
  EXPECT_NE(err("[niah]\nckpt = \"x\"\n").find("key \"niah.ckpt\": is set by the pilot"), std::string::npos);
  EXPECT_NE(err("[gama]\nprompts = 3\n").find("key \"gama.prompts\": unknown section"), std::string::npos);
  EXPECT_NE(err("epochs = 3\n").find("key \"epochs\": unknown top-level key"), std::string::npos);
  EXPECT_NE(err("[kv]\nskip = maybe\n").find("key \"kv.skip\": expected true or false"), std::string::npos);
  write_text(dir + "/bad.toml", "study = \"t\"\nout = \"o\"\ntrain-recipe = \"" + kRecipe + "\"\nthetas = [1e4, 10000]\n");
  EXPECT_NE(error_of([&] { study::load_study(dir + "/bad.toml"); }).find("1e4 is listed twice"), std::string::npos);
  write_text(dir + "/bad.toml", "study = \"t\"\nout = \"o\"\ntrain-recipe = \"" + kRecipe + "\"\nthetas = [0]\n");
  EXPECT_NE(error_of([&] { study::load_study(dir + "/bad.toml"); }).find("\"0\" is not a θ > 0"), std::string::npos);
  EXPECT_NE(error_of([&] { study::load_study(kRecipe); }).find("not a study file"), std::string::npos);
}

TEST(Pilot, StagesFollowWhatIsOnDisk) {
  const auto dir = scratch_dir();
  const auto s = study::load_study(study_file(dir, "[train]\nmax-steps = 8\n[niah]\nlengths = \"1x\"\n"));
  const std::string run = dir + "/out/theta-1e4";
  EXPECT_EQ(study::run_dir(s, {1e4}), run);

  // Nothing yet: a new run, with the θ and the study's flags after the recipe.
  auto st = study::plan_step(s, "train", {1e4});
  EXPECT_EQ(st.args, (std::vector<std::string>{"train", "--config", kRecipe, "--rope-theta=1e4", "--max-steps=8", "--out", run}));

  fake_run(run, 8, {0, 4});  // interrupted at step 4
  EXPECT_EQ(study::plan_step(s, "train", {1e4}).args, (std::vector<std::string>{"train", "--resume", run}));
  fake_run(run, 8, {0, 4, 8});
  EXPECT_NE(study::plan_step(s, "train", {1e4}).skipped.find("complete (step 8 of 8)"), std::string::npos);

  // γ: runs until every checkpoint has a record.
  io::append_jsonl(run + "/gamma.jsonl", {{"step", 0}});
  io::append_jsonl(run + "/gamma.jsonl", {{"step", 4}});
  EXPECT_EQ(study::plan_step(s, "gamma", {1e4}).args,
            (std::vector<std::string>{"eval", "gamma", "--run", run, "--out", run + "/gamma.jsonl"}));
  io::append_jsonl(run + "/gamma.jsonl", {{"step", 8}});
  EXPECT_NE(study::plan_step(s, "gamma", {1e4}).skipped.find("3 checkpoints measured"), std::string::npos);

  // NIAH and KV: the final checkpoint, into a .partial file renamed when complete.
  st = study::plan_step(s, "niah", {1e4});
  EXPECT_EQ(st.args, (std::vector<std::string>{"eval", "niah", "--ckpt", run + "/checkpoints/step_8.pt", "--lengths=1x",
                                               "--out", run + "/niah.jsonl.partial"}));
  EXPECT_EQ(st.final, run + "/niah.jsonl");
  st = study::plan_step(s, "kv", {1e4});
  EXPECT_EQ(st.args, (std::vector<std::string>{"eval", "kv", "--ckpt", run + "/checkpoints/step_8.pt", "--gamma-from",
                                               run + "/gamma.jsonl", "--out", run + "/kv.jsonl.partial"}));
  // A sweep compares α_opt with the measured γ too: the gamma stage's records come along.
  auto swept = s;
  swept.flags["niah"].push_back({"scaling", "none,ntk-sweep:0.25..64:x2"});
  EXPECT_EQ(study::plan_step(swept, "niah", {1e4}).args,
            (std::vector<std::string>{"eval", "niah", "--ckpt", run + "/checkpoints/step_8.pt", "--lengths=1x",
                                      "--scaling=none,ntk-sweep:0.25..64:x2", "--gamma-from", run + "/gamma.jsonl",
                                      "--out", run + "/niah.jsonl.partial"}));
  write_text(run + "/niah.jsonl", "{}\n");
  EXPECT_NE(study::plan_step(s, "niah", {1e4}).skipped.find("exists"), std::string::npos);

  EXPECT_EQ(study::plan_step(s, "report", {}).args,
            (std::vector<std::string>{"report", dir + "/out", "--out", dir + "/out/report"}));
}

// `seeds = [...]`: every θ once per seed, in its own run directory, with
// `--seed` on its train command; the checks name the key.
TEST(Pilot, SeedsMakeOneRunPerThetaAndSeed) {
  const auto dir = scratch_dir();
  const auto s = study::load_study(study_file(dir, "seeds = [7, 3]\n[train]\nmax-steps = 8\n"));
  EXPECT_EQ(s.seeds, (std::vector<uint64_t>{7, 3}));
  const auto runs = study::members(s);
  ASSERT_EQ(runs.size(), 4u);  // θ-major: 1e4 seed 7, 1e4 seed 3, 2.5e5 seed 7, 2.5e5 seed 3
  EXPECT_EQ(runs[1].theta, 1e4);
  EXPECT_EQ(runs[1].seed, std::optional<uint64_t>(3));
  EXPECT_EQ(runs[2].theta, 2.5e5);
  EXPECT_EQ(study::member_label(runs[2]), "θ=2.5e5 seed=7");
  const std::string run = dir + "/out/theta-2.5e5-seed-7";
  EXPECT_EQ(study::run_dir(s, runs[2]), run);
  const auto st = study::plan_step(s, "train", runs[2]);
  EXPECT_EQ(st.args, (std::vector<std::string>{"train", "--config", kRecipe, "--rope-theta=2.5e5", "--seed=7",
                                               "--max-steps=8", "--out", run}));
  EXPECT_EQ(st.label, "θ=2.5e5 seed=7");
  EXPECT_EQ(study::plan_step(s, "gamma", runs[2]).args,
            (std::vector<std::string>{"eval", "gamma", "--run", run, "--out", run + "/gamma.jsonl"}));

  // Without seeds: one run per θ, named as before, at the recipe's seed.
  const auto plain = study::load_study(study_file(dir, ""));
  ASSERT_EQ(study::members(plain).size(), 2u);
  EXPECT_FALSE(study::members(plain)[0].seed.has_value());
  EXPECT_EQ(study::run_dir(plain, study::members(plain)[0]), dir + "/out/theta-1e4");

  auto err = [&](const std::string& extra) { return error_of([&] { study::load_study(study_file(dir, extra)); }); };
  EXPECT_NE(err("seeds = [1, 1]\n").find("key \"seeds\": 1 is listed twice"), std::string::npos);
  EXPECT_NE(err("seeds = [-1]\n").find("key \"seeds\": \"-1\" is not a seed"), std::string::npos);
  EXPECT_NE(err("seeds = [1.5]\n").find("\"1.5\" is not a seed"), std::string::npos);
  EXPECT_NE(err("seeds = [1]\n[train]\nseed = 2\n").find("key \"train.seed\": conflicts with the top-level `seeds`"),
            std::string::npos);
  EXPECT_NE(err("seeds = []\n").find("key \"seeds\": is an empty list"), std::string::npos) << err("seeds = []\n");
}

// [design.NAME] sections: each design is trained at every θ and seed with its
// own train flags, in a run directory named after it.
TEST(Pilot, DesignsMakeOneRunPerDesignThetaAndSeed) {
  const auto dir = scratch_dir();
  const auto s = study::load_study(study_file(
      dir, "seeds = [1]\n[train]\nmax-steps = 8\n[design.uniform]\n[design.local-global]\nlayer-pattern = "
           "\"sliding,full\"\nsliding-window = 64\nsliding-rope-theta = 1e4\n"));
  ASSERT_EQ(s.designs.size(), 2u);  // a design without keys (uniform: the recipe as it is) counts
  EXPECT_EQ(s.designs[0].first, "uniform");
  EXPECT_TRUE(s.designs[0].second.empty());
  const auto two = study::load_study(study_file(
      dir, "seeds = [1]\n[train]\nmax-steps = 8\n[design.uniform]\nn-layers = 2\n[design.local-global]\n"
           "n-layers = 2\nlayer-pattern = \"sliding,full\"\nsliding-window = 64\n"));
  const auto runs = study::members(two);
  ASSERT_EQ(runs.size(), 4u);  // design-major: uniform 1e4, uniform 2.5e5, local-global 1e4, local-global 2.5e5
  EXPECT_EQ(runs[0].design, "uniform");
  EXPECT_EQ(runs[3].design, "local-global");
  EXPECT_EQ(study::member_label(runs[3]), "local-global θ=2.5e5 seed=1");
  const std::string run = dir + "/out/local-global-theta-2.5e5-seed-1";
  EXPECT_EQ(study::run_dir(two, runs[3]), run);
  EXPECT_EQ(study::plan_step(two, "train", runs[3]).args,
            (std::vector<std::string>{"train", "--config", kRecipe, "--rope-theta=2.5e5", "--seed=1", "--max-steps=8",
                                      "--n-layers=2", "--layer-pattern=sliding,full", "--sliding-window=64", "--out",
                                      run}));
  auto err = [&](const std::string& extra) { return error_of([&] { study::load_study(study_file(dir, extra)); }); };
  EXPECT_NE(err("[train]\nn-layers = 4\n[design.a]\nn-layers = 2\n").find("key \"design.a.n-layers\": is also in [train]"),
            std::string::npos);
  EXPECT_NE(err("[design.A]\nn-layers = 2\n").find("lowercase letters, digits and dashes"), std::string::npos);
  EXPECT_NE(err("[design.a]\nrope-theta = 5\n").find("is set by the pilot itself"), std::string::npos);
}

// With two γ protocols asked for, the gamma stage is complete only when every
// checkpoint has a record of each (a record without one counts as taf).
TEST(Pilot, GammaIsCompleteWhenEveryProtocolMeasuredEveryCheckpoint) {
  const auto dir = scratch_dir();
  const auto s = study::load_study(study_file(dir, "[gamma]\nprotocol = \"taf,fixed\"\n"));
  const std::string run = dir + "/out/theta-1e4";
  fake_run(run, 8, {0, 8});
  for (int step : {0, 8}) io::append_jsonl(run + "/gamma.jsonl", {{"step", step}});  // taf, before protocols
  EXPECT_TRUE(study::plan_step(s, "gamma", {1e4}).skipped.empty());
  io::append_jsonl(run + "/gamma.jsonl", {{"step", 0}, {"measurement", {{"protocol", "fixed"}}}});
  EXPECT_TRUE(study::plan_step(s, "gamma", {1e4}).skipped.empty());
  io::append_jsonl(run + "/gamma.jsonl", {{"step", 8}, {"measurement", {{"protocol", "fixed"}}}});
  EXPECT_NE(study::plan_step(s, "gamma", {1e4}).skipped.find("complete"), std::string::npos);
}
