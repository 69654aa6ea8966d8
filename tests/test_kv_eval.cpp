#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "eval/kv_eval.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "reference_model.h"
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
  refuses(o, "--ratios must list fractions in (0, 1]");
  o.ratios = {1.5};
  refuses(o, "--ratios must list fractions in (0, 1]");
  o = {};
  o.policies = "full,lru";
  refuses(o, "\"lru\"");
  o = {};
  o.ratios = {0.01};  // 0.01 x 224 = 2 tokens, below the 8-token observation window
  refuses(o, "not above the 8 sink/observation tokens");
  o.ratios = {0.5};
  o.budgets = {300};  // token counts: within the context of 224
  refuses(o, "--budgets: 300 tokens is outside 1..224");
  o.budgets = {6};
  refuses(o, "sink/observation");
  o = {};
  o.context = 300;
  refuses(o, "must fit in T_train");
  o = {};
  o.eviction = "lazy";
  refuses(o, "--eviction must be step or prefill (got \"lazy\")");
  o = {};
  o.niah_trials = -1;
  refuses(o, "--niah-trials must be >= 0");
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
  o.eviction = "prefill";  // ratio 1.0 then keeps everything (per step, the window would slide: tested below)
  o.niah_trials = 0;       // 24 tokens cannot hold a passkey prompt (tested below)
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

// Per-step eviction against an independent float64 forward with the mask it
// should amount to: the recent window evicting at every decoded token is
// sliding-window attention for the decoded queries (prefill queries saw
// everything before compression); streaming adds the sinks; compressing once
// after prefill leaves the decoded tokens all visible.
TEST(KVEval, PerStepEvictionIsTheSlidingWindowItShouldBe) {
  model::ModelConfig c;
  c.vocab_size = 53; c.d_model = 16; c.n_layers = 2; c.n_heads = 2; c.n_kv_heads = 1; c.rope_theta = 50; c.T_train = 32;
  auto m = model::make_model(c, 21);
  m->eval();
  const int64_t N = 12, b = 5, decode = 6;
  auto ids = torch::randint(0, c.vocab_size, {N + decode}, at::kLong);
  std::vector<int64_t> all(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + N + decode);
  const std::vector<int64_t> prefix(all.begin(), all.begin() + N), tail(all.begin() + N, all.end());
  auto reference_loss = [&](const std::function<bool(int64_t, int64_t)>& visible) {
    const auto logits = test::reference_forward(m, ids.narrow(0, 0, N + decode - 1), visible).logits;
    double nll = 0;
    for (int64_t t = 0; t + 1 < decode; ++t) nll -= torch::log_softmax(logits[N + t], -1)[tail[t + 1]].item<double>();
    return nll / double(decode - 1);
  };
  eval::KVEvalOptions o;
  o.sinks = 2;
  o.obs_window = 3;
  o.eviction = "step";
  EXPECT_NEAR(eval::compressed_decode_loss(m, prefix, tail, "recent", b, o),
              reference_loss([&](int64_t i, int64_t j) { return i < N || j >= i - b; }), 1e-4);
  EXPECT_NEAR(eval::compressed_decode_loss(m, prefix, tail, "streaming", b, o),
              reference_loss([&](int64_t i, int64_t j) { return i < N || j < 2 || j >= i - (b - 2); }), 1e-4);
  // A budget that holds everything: TOVA and H2O never evict; equal to the full cache.
  for (const char* p : {"tova", "h2o"})
    EXPECT_NEAR(eval::compressed_decode_loss(m, prefix, tail, p, N + decode, o), reference_loss(nullptr), 1e-4) << p;
  o.eviction = "prefill";
  EXPECT_NEAR(eval::compressed_decode_loss(m, prefix, tail, "recent", b, o),
              reference_loss([&](int64_t i, int64_t j) { return i < N || j >= N - b; }), 1e-4);
}

// Evicting in place (the newest token moved into the evicted slot, per KV
// head for TOVA) decodes exactly as re-gathering the kept cache every step,
// for every per-step policy, on a model whose two KV heads evict differently.
TEST(KVEval, InPlaceEvictionEqualsRegatheringTheCache) {
  model::ModelConfig c;
  c.vocab_size = 61; c.d_model = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.rope_theta = 100; c.T_train = 64;
  auto m = model::make_model(c, 5);
  m->eval();
  auto ids = torch::randint(0, c.vocab_size, {40}, at::kLong);
  std::vector<int64_t> all(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + 40);
  const std::vector<int64_t> prefix(all.begin(), all.begin() + 24), tail(all.begin() + 24, all.end());
  eval::KVEvalOptions o;
  o.sinks = 2;
  o.obs_window = 4;
  o.eviction = "step";
  for (const char* p : {"recent", "streaming", "df", "h2o", "tova"}) {
    o.evict_in_place = false;
    const double gathered = eval::compressed_decode_loss(m, prefix, tail, p, 9, o);
    o.evict_in_place = true;
    const double in_place = eval::compressed_decode_loss(m, prefix, tail, p, 9, o);
    EXPECT_NEAR(in_place, gathered, 1e-5) << p;
  }
  // The budget makes a difference (else the test could not tell the paths apart).
  o.evict_in_place = true;
  EXPECT_GT(std::abs(eval::compressed_decode_loss(m, prefix, tail, "tova", 9, o) -
                     eval::compressed_decode_loss(m, prefix, tail, "tova", 24, o)), 1e-4);
}

// Passkey retrieval scored on compressed caches: each record carries it, and a
// cache compressed to everything scores exactly as the full cache.
TEST(KVEval, ScoresPasskeyRetrievalOnEachCompressedCache) {
  const auto dir = test::scratch_dir();
  auto cfg = test::tiny_config(test::tiny_data(dir));
  cfg.model.T_train = 192;
  cfg.max_steps = 5;
  train::train_new(cfg, dir + "/run");
  eval::KVEvalOptions o;
  o.policies = "full,recent,tova";
  o.budgets = {80, 160};  // as token counts: ratios 0.5 and 1.0 of the context
  o.context = 160;
  o.decode = 4;
  o.windows = 1;
  o.gamma = 0.9;
  o.gmm_max_k = 0;
  o.eviction = "prefill";
  o.niah_trials = 4;
  const auto recs = eval::eval_kv(train::checkpoints_dir(dir + "/run") + "/step_00000005.pt", o);
  int scored = 0;
  for (const auto& r : recs) {
    if (r["kind"] != "kv") continue;
    ++scored;
    const double acc = r["niah_rank_accuracy"];
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    EXPECT_EQ(r["niah_trials"], 4);
    EXPECT_GT(r["decode_tok_per_s"].get<double>(), 0.0);
    EXPECT_EQ(r["budget"].get<int64_t>(), r["ratio"] == 1.0 ? 160 : 80);
    if (r["ratio"] == 1.0) EXPECT_EQ(acc, r["niah_rank_accuracy_full"].get<double>()) << r.dump();
  }
  EXPECT_EQ(scored, 3 * 2);
}
