// The ropelab binary refuses bad input with a named error (exit 2), as a user sees it.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

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

// `ropelab rope list | freqs`: the table as text, one configuration as JSON
// (its numbers are those of model/rope_methods.h, tested against
// transformers' definitions in test_rope_methods.cpp), bad input exit 2.
TEST(Cli, RopeListAndFreqs) {
  auto r = run_ropelab("rope list");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"default (alias none)", "linear (alias pi)", "ntk", "ntk-aware", "dynamic", "yarn", "llama3",
                           "longrope", "proportional", "logn", "mscale_all_dim", "low_freq_factor", "short_factor"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
  r = run_ropelab("rope freqs --type proportional --theta 1e6 --head-dim 16 --rotary-fraction 0.25 --factor 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["rotary_dim"], 16);
  ASSERT_EQ(j["inv_freq"].size(), 8u);
  EXPECT_DOUBLE_EQ(j["inv_freq"][0].get<double>(), 0.5);
  EXPECT_NEAR(j["inv_freq"][1].get<double>(), std::pow(1e6, -0.125) / 2, 1e-16);
  EXPECT_EQ(j["inv_freq"][2], 0.0);
  EXPECT_EQ(j["attention_factor"], 1.0);
  r = run_ropelab("rope freqs --type longrope --theta 1e4 --head-dim 8 --context 64 --original-max-position-embeddings 16 "
                  "--short-factor 1,1,1.5,2 --long-factor 2,3,5,8 --length 17");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto lr = nlohmann::json::parse(r.output);
  EXPECT_DOUBLE_EQ(lr["parameters"]["factor"].get<double>(), 4.0);  // 64 / 16, as transformers without a factor
  EXPECT_NEAR(lr["inv_freq"][3].get<double>(), std::pow(1e4, -0.75) / 8, 1e-18);  // the long factors past 16
  EXPECT_NEAR(lr["attention_factor"].get<double>(), std::sqrt(1 + std::log(4.0) / std::log(16.0)), 1e-15);
  expect_refusal("rope freqs --type llama3 --mscale 1", "llama3 takes no parameter \"mscale\"");
  expect_refusal("rope freqs --type rope9", "unknown RoPE method \"rope9\"");
  expect_refusal("rope freqs --type dynamic --factor 2", "needs the model's context");
  expect_refusal("rope freqs --type yarn --factor 0.5", "factor must be a number >= 1");
}
