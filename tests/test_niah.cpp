#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/io.h"
#include "eval/niah.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(Niah, WilsonIntervalByHand) {
  // k=5, n=10, z=1.96: centre (0.5 + 0.19208)/1.38415 = 0.5; half = 1.96·sqrt(0.025 + 0.0096040)/1.38415 = 0.26343
  auto a = eval::wilson95(5, 10);
  EXPECT_NEAR(a.first, 0.23659, 1e-4);
  EXPECT_NEAR(a.second, 0.76341, 1e-4);
  auto b = eval::wilson95(0, 50);  // upper = z²/n / (1 + z²/n) = 0.076829/1.076829 = 0.07135
  EXPECT_EQ(b.first, 0.0);
  EXPECT_NEAR(b.second, 0.07135, 1e-4);
}

TEST(Niah, RefusesBadArgumentsBeforeAnyWork) {
  model::ModelConfig c;
  c = c.resolved();
  auto refuses = [&](eval::NiahOptions o, const std::string& needle) {
    try {
      eval::plan_niah(o, c);
      ADD_FAILURE() << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  eval::NiahOptions o;
  o.depths = {0.5, 1.5};
  refuses(o, "1.5");
  o = {};
  o.lengths = {"abc"};
  refuses(o, "\"abc\"");
  o = {};
  o.lengths = {"1000000000000"};
  refuses(o, "memory");
  o = {};
  o.scaling = "none,rope:2";
  refuses(o, "rope:2");
  o = {};
  EXPECT_EQ(eval::plan_niah(o, c).lengths, (std::vector<int64_t>{128, 256, 512, 1024, 2048}));  // T_train 256
}

TEST(Niah, RunsEveryMethodLengthAndDepthAndWritesRecords) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.T_train = 192;  // room for two labelled needles with a byte-heavy 300-piece tokenizer
  cfg.max_steps = 5;
  cfg.data_mix = "passkey:0.5";
  train::train_new(cfg, dir + "/run");
  eval::NiahOptions o;
  o.lengths = {"1x", "2x"};
  o.depths = {0.0, 1.0};
  o.trials = 3;
  o.scaling = "none,ntk:alpha_opt,yarn:2";
  o.ppl_windows = 2;
  o.out = dir + "/niah.jsonl";
  const auto recs = eval::eval_niah(train::checkpoints_dir(dir + "/run") + "/step_00000005.pt", o);
  ASSERT_EQ(recs.size(), 3u * 2u * 2u + 3u * 2u);
  int niah = 0;
  for (const auto& r : recs) {
    if (r["kind"] != "niah") {
      EXPECT_GT(r["perplexity"].get<double>(), 1.0);
      continue;
    }
    ++niah;
    const double acc = r["rank_accuracy"];
    EXPECT_GE(acc, r["rank_ci95"][0].get<double>());
    EXPECT_LE(acc, r["rank_ci95"][1].get<double>());
    EXPECT_TRUE(r.contains("exact_accuracy"));
    if (r["method"] == "ntk:alpha_opt") EXPECT_GT(r["scaling_factor"].get<double>(), 0.0);
  }
  EXPECT_EQ(niah, 12);
  EXPECT_EQ(io::read_jsonl(o.out).size(), recs.size());
  EXPECT_NE(eval::niah_table(recs).find("yarn:2"), std::string::npos);
}
