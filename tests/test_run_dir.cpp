// The run-directory layout (common/run_dir.h) that every reader and writer
// uses: paths, the manifest, and a study's run directories (no torch).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/io.h"
#include "common/run_dir.h"
#include "study/pilot.h"
#include "test_util.h"

using namespace ropelab;
using test::error_of;
using test::scratch_dir;
using test::write_text;

TEST(RunDir, PathsAreTheDocumentedLayout) {
  EXPECT_EQ(rundir::config_path("r"), "r/config.json");
  EXPECT_EQ(rundir::metrics_path("r"), "r/metrics.jsonl");
  EXPECT_EQ(rundir::manifest_path("r"), "r/checkpoints/manifest.json");
  EXPECT_EQ(rundir::checkpoint_file_name(42), "step_00000042.pt");
  EXPECT_EQ(rundir::checkpoint_path("r", "step_00000042.pt"), "r/checkpoints/step_00000042.pt");
  EXPECT_EQ(rundir::run_of_checkpoint("runs/a/checkpoints/step_00000042.pt"), "runs/a");
  EXPECT_EQ(rundir::result_path("r", "gamma"), "r/gamma.jsonl");
  EXPECT_EQ(rundir::partial_path("r/niah.jsonl"), "r/niah.jsonl.partial");
  EXPECT_EQ(rundir::study_run_dir("out", 1e4, std::nullopt), "out/theta-1e4");
  EXPECT_EQ(rundir::study_run_dir("out", 2.5e5, 7), "out/theta-2.5e5-seed-7");
  EXPECT_EQ(rundir::study_log_path("out"), "out/pilot.jsonl");
  EXPECT_EQ(rundir::study_report_dir("out"), "out/report");
}

TEST(RunDir, ManifestIsSortedAndReplacesAStep) {
  const auto run = scratch_dir();
  EXPECT_TRUE(rundir::read_manifest(run).empty());
  rundir::add_to_manifest(run, {8, rundir::checkpoint_file_name(8), 800});
  rundir::add_to_manifest(run, {2, rundir::checkpoint_file_name(2), 200});
  rundir::add_to_manifest(run, {8, "again.pt", 801});
  const auto listed = rundir::read_manifest(run);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].step, 2);
  EXPECT_EQ(listed[1].file, "again.pt");
  EXPECT_EQ(listed[1].tokens_seen, 801);
  EXPECT_FALSE(rundir::is_run_dir(run));
  write_text(rundir::config_path(run), "{}");
  write_text(rundir::metrics_path(run), "");
  EXPECT_TRUE(rundir::is_run_dir(run));
}

// The study's planner reads the manifest through the same reader, so a
// malformed one is named instead of misread.
TEST(RunDir, StudyNamesAMalformedManifest) {
  const auto dir = scratch_dir();
  write_text(dir + "/study.toml", "study = \"t\"\nout = \"" + dir + "/out\"\ntrain-recipe = \"" + ROPELAB_SOURCE_DIR +
                                      "/recipes/smoke.toml\"\nthetas = [1e4]\n");
  const auto s = study::load_study(dir + "/study.toml");
  const std::string run = study::run_dir(s, {1e4});
  io::make_dirs(rundir::checkpoints_dir(run));
  io::write_json_atomic(rundir::config_path(run), {{"max_steps", 8}});
  write_text(rundir::manifest_path(run), "{\"checkpoints\": [{\"step\": 4}]}");
  EXPECT_NE(error_of([&] { study::plan_step(s, "train", {1e4}); }).find("malformed manifest"), std::string::npos);
}
