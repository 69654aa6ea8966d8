// `ropelab pilot` end to end on a tiny study: two θ, every stage, then a
// re-run that finds everything complete, and a resume after a lost stage.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/io.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

using namespace ropelab;
using test::run_ropelab;

namespace {
int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// DIR/study.toml: a study of these θ whose only stage is a training that runs
// until it is stopped (a million steps of a tiny model), into DIR/study.
void write_endless_training_study(const std::string& dir, const std::string& thetas) {
  const auto data = test::tiny_data(dir);
  test::write_text(dir + "/long.toml", "data-dir = \"" + data + "\"\nd-model = 32\nn-layers = 2\nn-heads = 2\nT-train = 32\n"
                   "max-steps = 1000000\nbatch-size = 2\ncheckpoints = \"list:1000000\"\neval-every = 1000000\n"
                   "log-every = 1000000\nthreads = 1\n");
  test::write_text(dir + "/study.toml", "study = \"long\"\nout = \"" + dir + "/study\"\ntrain-recipe = \"" + dir +
                                            "/long.toml\"\nthetas = " + thetas + "\n[gamma]\nskip = true\n[niah]\nskip = true\n"
                                            "[kv]\nskip = true\n[report]\nskip = true\n");
}
}  // namespace

TEST(PilotRun, RunsEveryStagePerThetaAndResumesWhatIsMissing) {
  const auto dir = test::scratch_dir();
  const auto data = test::tiny_data(dir);
  test::write_text(dir + "/tiny.toml", "data-dir = \"" + data + "\"\nd-model = 32\nn-layers = 2\nn-heads = 2\nT-train = 128\n"
                   "max-steps = 4\nbatch-size = 2\ncheckpoints = \"list:2,4\"\neval-every = 4\neval-batches = 1\nthreads = 1\n");
  test::write_text(dir + "/study.toml",
                   "study = \"tiny\"\nout = \"" + dir + "/study\"\ntrain-recipe = \"" + dir + "/tiny.toml\"\n"
                   "thetas = [1e4, 1e6]\n"
                   "[gamma]\ndistances = \"2,4,8,16,32\"\nprompts = 2\nseeds = \"1\"\nfit-min-d = 2\nbootstrap = 20\n"
                   "[niah]\nlengths = \"1x\"\ndepths = \"0.5\"\ntrials = 2\nscaling = [\"none\", \"yarn:2\"]\nppl-windows = 1\n"
                   "[kv]\ncontext = 24\ndecode = 6\nwindows = 1\nratios = \"0.5\"\ngmm-max-k = 0\nniah-trials = 0\n"
                   "[report]\nskip = true\n");
  auto r = run_ropelab("pilot --config " + dir + "/study.toml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* theta : {"1e4", "1e6"}) {
    const std::string run = dir + "/study/theta-" + theta;
    EXPECT_EQ(io::read_json(run + "/config.json")["model"]["rope_theta"], std::stod(theta));
    EXPECT_EQ(io::read_jsonl(run + "/gamma.jsonl").size(), 2u) << theta;  // checkpoints at steps 2 and 4
    EXPECT_EQ(io::read_jsonl(run + "/niah.jsonl").size(), 4u * 2u) << theta;  // 2 methods: niah, niah_pooled, perplexity, reach
    EXPECT_FALSE(io::read_jsonl(run + "/kv.jsonl").empty()) << theta;
    EXPECT_FALSE(std::filesystem::exists(run + "/niah.jsonl.partial"));
  }
  EXPECT_EQ(io::read_jsonl(dir + "/study/pilot.jsonl").size(), 2u * 4u);

  // Everything complete: a re-run does nothing.
  r = run_ropelab("pilot --config " + dir + "/study.toml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "skipped, complete"), 8) << r.output;

  // A stage lost mid-way (its .partial left behind) is redone, and only it.
  const std::string run = dir + "/study/theta-1e6";
  std::filesystem::rename(run + "/niah.jsonl", run + "/niah.jsonl.partial");
  r = run_ropelab("pilot --config " + dir + "/study.toml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(count(r.output, "skipped, complete"), 7) << r.output;
  EXPECT_EQ(io::read_jsonl(run + "/niah.jsonl").size(), 8u);

  // A key no stage command has is refused before any work, naming it.
  test::write_text(dir + "/typo.toml", "study = \"t\"\nout = \"" + dir + "/typo\"\ntrain-recipe = \"" + dir +
                                           "/tiny.toml\"\nthetas = [1e4]\n[niah]\nlenghts = \"1x\"\n");
  r = run_ropelab("pilot --config " + dir + "/typo.toml");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("key \"niah.lenghts\": `ropelab eval niah` has no flag --lenghts"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir + "/typo"));

  // --jobs and --status-every out of range are refused by name, in ropelab's
  // own words (cli/range_check.h), whichever CLI11 version parsed them.
  r = run_ropelab("pilot --jobs 0 --config " + dir + "/study.toml");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--jobs: expected a number from 1 to 256, got 0"), std::string::npos) << r.output;
  r = run_ropelab("pilot --jobs 2 --status-every 0 --config " + dir + "/study.toml");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--status-every: expected a number from 0.1 to 86400, got 0"), std::string::npos) << r.output;
}

// SIGTERM to the pilot reaches the running stage: training saves a checkpoint
// and stops, the pilot says it was interrupted, and the plan then resumes it.
TEST(PilotRun, AnInterruptedStudyStopsTheStageCleanlyAndResumes) {
  const auto dir = test::scratch_dir();
  write_endless_training_study(dir, "[1e4]");
  const std::string run = dir + "/study/theta-1e4";
  const pid_t pid = test::spawn_ropelab("pilot --config " + dir + "/study.toml", dir + "/pilot.log");
  test::wait_until([&] { return test::jsonl_records(run + "/metrics.jsonl") >= 5; }, 60);  // some steps logged
  const int status = test::terminate_and_wait(pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const std::string log = io::read_file(dir + "/pilot.log");
  EXPECT_NE(log.find("interrupted during θ=1e4 train"), std::string::npos) << log;
  const auto manifest = io::read_json(run + "/checkpoints/manifest.json")["checkpoints"];
  ASSERT_FALSE(manifest.empty());
  EXPECT_GE(manifest.back()["step"].get<int64_t>(), 5);  // saved on SIGTERM, not by the schedule
  const auto r = run_ropelab("pilot --config " + dir + "/study.toml --dry-run");
  EXPECT_NE(r.output.find("train --resume " + run), std::string::npos) << r.output;
}

// --jobs 2: both θ train at once (the second starts before the first ends),
// each stage's output goes to its run's STAGE.log, and a SIGTERM reaches both
// trainings, which save and stop; the re-run resumes both.
TEST(PilotRun, ThetasRunSideBySideAndStopTogether) {
  const auto dir = test::scratch_dir();
  write_endless_training_study(dir, "[1e4, 1e6]");
  const pid_t pid = test::spawn_ropelab("pilot --jobs 2 --status-every 0.5 --config " + dir + "/study.toml", dir + "/pilot.log");
  auto logged_steps = [&](const char* theta) { return test::jsonl_records(dir + "/study/theta-" + theta + "/metrics.jsonl"); };
  auto status_lines = [&] {  // the pilot's periodic lines showing θ=1e4's log
    const std::string log = std::filesystem::exists(dir + "/pilot.log") ? io::read_file(dir + "/pilot.log") : "";
    return log.find("pilot: θ=1e4 train: == ") != std::string::npos ||
           log.find("pilot: θ=1e4 train: model: ") != std::string::npos;
  };
  // Until both trainings have logged some steps and a status line came.
  test::wait_until([&] { return logged_steps("1e4") >= 5 && logged_steps("1e6") >= 5 && status_lines(); }, 90);
  ASSERT_GE(logged_steps("1e4"), 5u);
  ASSERT_GE(logged_steps("1e6"), 5u);  // the second θ runs while the first has not finished
  const int status = test::terminate_and_wait(pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const std::string log = io::read_file(dir + "/pilot.log");
  EXPECT_NE(log.find("pilot: interrupted during θ=1e"), std::string::npos) << log;
  for (const char* theta : {"1e4", "1e6"}) {
    const std::string run = dir + "/study/theta-" + theta;
    const auto manifest = io::read_json(run + "/checkpoints/manifest.json")["checkpoints"];
    ASSERT_FALSE(manifest.empty()) << theta;
    EXPECT_GE(manifest.back()["step"].get<int64_t>(), 5) << theta;  // saved on SIGTERM
    // The stage's own output went to its log, not the pilot's.
    const std::string train_log = io::read_file(run + "/train.log");
    EXPECT_EQ(train_log.rfind("== ", 0), 0u) << train_log;  // the attempt's header line
    EXPECT_NE(train_log.find("parameters"), std::string::npos) << theta;
    EXPECT_NE(log.find("(output: " + run + "/train.log)"), std::string::npos) << log;
  }
  EXPECT_EQ(log.find("\nmodel: "), std::string::npos) << log;  // only inside the status lines
  // Status lines (every 0.5 s) show the stage's log: its header line or the training's own output.
  EXPECT_TRUE(status_lines()) << log;
  EXPECT_EQ(io::read_jsonl(dir + "/study/pilot.jsonl").size(), 2u);
  const auto r = run_ropelab("pilot --jobs 2 --config " + dir + "/study.toml --dry-run");
  EXPECT_NE(r.output.find("train --resume " + dir + "/study/theta-1e4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train --resume " + dir + "/study/theta-1e6"), std::string::npos) << r.output;
}

// --jobs 2 over three θ (one queued): a stage that fails (θ=1e5's run
// directory cannot be resumed) and a run directory the pilot cannot read
// (θ=1e6) each stop only their θ; θ=1e4 trains to the end, the failures are
// named, no report is made, and the pilot exits non-zero.
TEST(PilotRun, AFailedThetaStopsOnlyItselfAndNoReportIsMade) {
  const auto dir = test::scratch_dir();
  const auto data = test::tiny_data(dir);
  test::write_text(dir + "/tiny.toml", "data-dir = \"" + data + "\"\nd-model = 32\nn-layers = 2\nn-heads = 2\nT-train = 32\n"
                   "max-steps = 4\nbatch-size = 2\ncheckpoints = \"list:4\"\neval-every = 4\neval-batches = 1\nthreads = 1\n");
  test::write_text(dir + "/study.toml", "study = \"three\"\nout = \"" + dir + "/study\"\ntrain-recipe = \"" + dir +
                                            "/tiny.toml\"\nthetas = [1e5, 1e6, 1e4]\n[gamma]\nskip = true\n[niah]\nskip = true\n"
                                            "[kv]\nskip = true\n");
  std::filesystem::create_directories(dir + "/study/theta-1e5");
  test::write_text(dir + "/study/theta-1e5/config.json", "{\"max_steps\": 4}\n");  // a run that cannot resume
  std::filesystem::create_directories(dir + "/study/theta-1e6");
  test::write_text(dir + "/study/theta-1e6/config.json", "not json\n");  // the pilot itself cannot plan it
  const auto r = run_ropelab("pilot --jobs 2 --config " + dir + "/study.toml");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("pilot: θ=1e5 train exited with status"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pilot: θ=1e6: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("theta-1e6/config.json"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("θ=1e4 train done"), std::string::npos) << r.output;
  EXPECT_EQ(train::read_manifest(dir + "/study/theta-1e4").back().step, 4);
  EXPECT_FALSE(std::filesystem::exists(dir + "/study/report"));
}

// `seeds = [1, 2]`: one θ trained twice, side by side, each run with its own
// seed (different initial weights, so a different first loss) in its own
// directory; the stage log names the seed.
TEST(PilotRun, EachSeedTrainsItsOwnRun) {
  const auto dir = test::scratch_dir();
  const auto data = test::tiny_data(dir);
  test::write_text(dir + "/tiny.toml", "data-dir = \"" + data + "\"\nd-model = 32\nn-layers = 2\nn-heads = 2\nT-train = 32\n"
                   "max-steps = 2\nbatch-size = 2\ncheckpoints = \"list:2\"\neval-every = 2\neval-batches = 1\n"
                   "log-every = 1\nthreads = 1\n");
  test::write_text(dir + "/study.toml", "study = \"seeds\"\nout = \"" + dir + "/study\"\ntrain-recipe = \"" + dir +
                                            "/tiny.toml\"\nthetas = [1e4]\nseeds = [1, 2]\n[gamma]\nskip = true\n"
                                            "[niah]\nskip = true\n[kv]\nskip = true\n[report]\nskip = true\n");
  const auto r = run_ropelab("pilot --jobs 2 --config " + dir + "/study.toml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  double first_loss[2] = {0, 0};
  for (int seed : {1, 2}) {
    const std::string run = dir + "/study/theta-1e4-seed-" + std::to_string(seed);
    EXPECT_EQ(io::read_json(run + "/config.json")["seed"], seed) << r.output;
    EXPECT_EQ(train::read_manifest(run).back().step, 2);
    first_loss[seed - 1] = io::read_jsonl(run + "/metrics.jsonl").at(0).at("loss").get<double>();
    EXPECT_NE(r.output.find("θ=1e4 seed=" + std::to_string(seed) + " train done"), std::string::npos) << r.output;
  }
  EXPECT_NE(first_loss[0], first_loss[1]);
  const auto stages = io::read_jsonl(dir + "/study/pilot.jsonl");
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0]["seed"].get<int>() + stages[1]["seed"].get<int>(), 3);
}

// Every study file in recipes/ parses and names only flags its commands
// have (`--dry-run` checks every key before it plans), run from the source
// directory, where the files' relative paths point.
TEST(PilotRun, EveryRecipeStudyPlans) {
  const std::string src = ROPELAB_SOURCE_DIR;
  const auto dir = test::scratch_dir();
  int studies = 0;
  for (const auto& f : std::filesystem::directory_iterator(src + "/recipes")) {
    if (f.path().extension() != ".toml" || io::read_file(f.path().string()).find("\nstudy = ") == std::string::npos) continue;
    ++studies;
    const std::string cmd = "cd '" + src + "' && " + ROPELAB_BIN + " pilot --config recipes/" +
                            f.path().filename().string() + " --out " + dir + "/" + f.path().stem().string() +
                            " --dry-run 2>&1";
    const auto r = test::run_shell(cmd);
    EXPECT_EQ(r.exit_code, 0) << f.path() << "\n" << r.output;
    EXPECT_NE(r.output.find("study report: ropelab report"), std::string::npos) << f.path() << "\n" << r.output;
  }
  EXPECT_GE(studies, 6);  // pilot-theta, gamma-flow, alpha-opt, pilot-smoke, pilot-theta-cpu, theta-sweep-cpu
}
