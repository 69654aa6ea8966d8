// The ropelab binary refuses bad input with a named error (exit 2), as a user sees it.
#include <gtest/gtest.h>

#include "test_util.h"

using ropelab::test::run_ropelab;

namespace {
void expect_refusal(const std::string& args, const std::string& needle, int code = 2) {
  const auto r = run_ropelab(args);
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
}
}  // namespace

TEST(Cli, DataPrepareNamesTheBadFile) {
  const auto dir = ropelab::test::scratch_dir();
  expect_refusal("data prepare --input " + dir + "/missing.txt --out " + dir + "/o", "missing.txt: no such file");
  ropelab::test::write_text(dir + "/e.txt", "");
  expect_refusal("data prepare --input " + dir + "/e.txt --out " + dir + "/o", "e.txt: empty file");
  EXPECT_FALSE(std::filesystem::exists(dir + "/o"));
}

TEST(Cli, TrainRefusesBadRecipesAndFlags) {
  const auto dir = ropelab::test::scratch_dir();
  ropelab::test::write_text(dir + "/r.toml", "max-steps = 10\nlearning-rate = 0.1\n");
  const auto r = run_ropelab("train --config " + dir + "/r.toml --out " + dir + "/run");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("learning-rate"), std::string::npos) << r.output;  // the unknown key is named
  expect_refusal("train --out " + dir + "/run --checkpoints hourly", "checkpoint schedule \"hourly\"");
  expect_refusal("train --out " + dir + "/run --n-heads 3 --n-kv-heads 2", "n_kv_heads");
  expect_refusal("train --resume " + dir + "/nothing", "no run to resume");
  expect_refusal("train --max-steps 5", "--out RUN_DIR is required");
}

TEST(Cli, EvalRefusesMissingCheckpointAndBadCorpus) {
  const auto dir = ropelab::test::scratch_dir();
  expect_refusal("eval gamma --ckpt " + dir + "/none.pt", "none.pt: no such checkpoint");
  expect_refusal("eval gamma --ckpt x.pt --corpus wiki", "--corpus must be random");
  expect_refusal("eval gamma", "exactly one of --ckpt, --hf, --run or --hf-run");
}
