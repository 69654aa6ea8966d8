#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "eval/kv_eval.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

TEST(KVEval, RefusesBadArgumentsBeforeAnyWork) {
  eval::KVEvalOptions o;
  auto refuses = [&](const eval::KVEvalOptions& opt, const std::string& needle) {
    try {
      eval::check_kv_options(opt, 256);
      ADD_FAILURE() << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  o.ratios = {0.5, 0.0};
  refuses(o, "outside (0, 1]");
  o.ratios = {1.5};
  refuses(o, "outside (0, 1]");
  o = {};
  o.policies = "full,lru";
  refuses(o, "\"lru\"");
  o = {};
  o.ratios = {0.01};  // 0.01 x 224 = 2 tokens, below the 8-token observation window
  refuses(o, "sink/observation");
  o = {};
  o.context = 300;
  refuses(o, "must fit in T_train");
  EXPECT_NO_THROW(eval::check_kv_options(eval::KVEvalOptions{}, 256));
}

TEST(KVEval, FullCacheIsTheReferenceAndEveryPolicyIsMeasured) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.max_steps = 20;
  cfg.model.n_kv_heads = 1;  // grouped heads: 2 query heads share one KV head
  train::train_new(cfg, dir + "/run");
  eval::KVEvalOptions o;
  o.policies = "full,recent,streaming,h2o,tova,snapkv,pyramidkv,keynorm,expected,df";
  o.ratios = {0.5, 1.0};
  o.context = 24;
  o.decode = 6;
  o.windows = 2;
  o.sinks = 2;
  o.obs_window = 4;
  o.gamma = 0.9;
  o.gmm_max_k = 3;
  o.out = dir + "/kv.jsonl";
  const auto recs = eval::eval_kv(train::checkpoints_dir(dir + "/run") + "/step_00000020.pt", o);
  int kv = 0, summaries = 0, df = 0, gmm = 0;
  for (const auto& r : recs) {
    if (r["kind"] == "query_gmm") {
      ++gmm;
      EXPECT_GE(r["best_K"].get<int>(), 1);
      EXPECT_GE(r["delta_BIC_vs_K1"].get<double>(), 0.0);
      EXPECT_EQ(r["n_samples"], 2 * 2 * 24);  // windows x heads per KV head x N
      continue;
    }
    if (r["kind"] == "kv_summary") {
      ++summaries;
      EXPECT_TRUE(r["D_f"].contains("0.90"));
      continue;
    }
    ++kv;
    const double mass = r["retained_mass"];
    EXPECT_GT(mass, 0.0);
    EXPECT_LE(mass, 1.0 + 1e-9);
    if (r["policy"] == "pyramidkv" && r["ratio"] == 1.0)  // shallow layers cap at N: deep ones still evict
      EXPECT_LT(r["kept_mean"].get<double>(), 24.0);
    else if (r["policy"] == "full" || r["ratio"] == 1.0) {  // everything kept: identical to the reference
      EXPECT_EQ(r["kept_mean"].get<double>(), 24.0);
      EXPECT_NEAR(r["rel_loss_increase"].get<double>(), 0.0, 1e-6) << r.dump();
      EXPECT_NEAR(mass, 1.0, 1e-6);
    }
    if (r["policy"] == "df") {
      ++df;
      EXPECT_EQ(r["budget"].get<int64_t>(), std::min<int64_t>(24, 2 + r["D_f_discrete"].get<int64_t>()));
      EXPECT_TRUE(r.contains("predicted_mass"));
    }
  }
  EXPECT_EQ(kv, 9 * 2 + 3);
  EXPECT_EQ(df, 3);
  EXPECT_EQ(summaries, 9);
  EXPECT_EQ(gmm, 2 * 1);  // layers x KV heads
  for (const auto& r : recs)
    if (r["kind"] == "kv_summary" && r["policy"] == "full") EXPECT_EQ(r["smallest_ratio_within_epsilon"], 0.5);
  EXPECT_NE(eval::kv_table(recs).find("snapkv"), std::string::npos);
}
