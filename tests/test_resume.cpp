// Kill a training run with SIGKILL mid-way, then resume it: no listed
// checkpoint may be corrupt, and the resumed losses must equal, step for
// step, those of a run that was never interrupted.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "common/io.h"
#include "train/checkpoint.h"
#include "train_fixture.h"

using namespace ropelab;

using ropelab::test::spawn_ropelab;

TEST(Resume, SigkillThenResumeReproducesTheUninterruptedLosses) {
  const auto dir = ropelab::test::scratch_dir();
  const auto data = ropelab::test::tiny_data(dir);
  // A constant learning rate after warm-up, so the schedule does not depend on max-steps.
  const std::string flags = ropelab::test::tiny_flags(data) + " --min-lr 3e-3 --checkpoints every:1";

  auto ref = ropelab::test::run_ropelab("train " + flags + " --max-steps 60 --out " + dir + "/ref");
  ASSERT_EQ(ref.exit_code, 0) << ref.output;

  const pid_t pid = spawn_ropelab("train " + flags + " --max-steps 100000 --out " + dir + "/killed", dir + "/killed.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (io::read_jsonl(dir + "/killed/metrics.jsonl").size() < 25) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the run made no progress";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  const auto listed = train::read_manifest(dir + "/killed");
  ASSERT_GE(listed.size(), 20u);
  for (const auto& e : listed) {  // every listed checkpoint is whole and loadable
    auto m = train::load_model(train::checkpoints_dir(dir + "/killed") + "/" + e.file);
    EXPECT_EQ(m.state["step"], e.step);
  }

  auto res = ropelab::test::run_ropelab("train --resume " + dir + "/killed --max-steps 60");
  ASSERT_EQ(res.exit_code, 0) << res.output;
  const auto a = io::read_jsonl(dir + "/ref/metrics.jsonl"), b = io::read_jsonl(dir + "/killed/metrics.jsonl");
  ASSERT_EQ(a.size(), 60u);
  ASSERT_EQ(b.size(), 60u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i]["step"], a[i]["step"]);
    EXPECT_DOUBLE_EQ(b[i]["loss"].get<double>(), a[i]["loss"].get<double>()) << "step " << a[i]["step"];
  }
}
