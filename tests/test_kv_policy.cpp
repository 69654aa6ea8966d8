// Which tokens each KV policy keeps, on hand-made caches of 10 tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <torch/torch.h>

#include "common/error.h"
#include "model/kv_policy.h"

using namespace ropelab;
using namespace ropelab::model;

namespace {
std::vector<int64_t> kept(const std::string& name, const KVView& v, int64_t budget, KVPolicySpec spec = {}) {
  if (spec.name.empty()) spec = parse_kv_policy(name);
  auto idx = kv_keep(spec, v, budget)[0][0];
  return std::vector<int64_t>(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
}
KVView view10() {
  KVView v;
  // Key norms 5,1,4,2,3,6,7,8,9,10 (second coordinate 0).
  v.keys = torch::tensor({5., 1., 4., 2., 3., 6., 7., 8., 9., 10.}).view({1, 1, 10, 1});
  v.keys = torch::cat({v.keys, torch::zeros({1, 1, 10, 1})}, -1);
  return v;
}
using V = std::vector<int64_t>;
}  // namespace

TEST(KVPolicy, WindowsKeepPositionsByRule) {
  auto v = view10();
  EXPECT_EQ(kept("full", v, 4), (V{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(kept("recent", v, 3), (V{7, 8, 9}));
  EXPECT_EQ(kept("streaming", v, 6), (V{0, 1, 2, 3, 8, 9}));  // 4 sinks + 2 recent
  EXPECT_EQ(kept("df", v, 7), (V{0, 1, 2, 3, 7, 8, 9}));
  EXPECT_THROW(kept("streaming", v, 4), Error);  // no room beyond the sinks
  EXPECT_EQ(kept("recent", v, 20), (V{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));  // budget above T keeps all
}

// A cache out of position order (per-step eviction moves the newest token
// into the evicted slot): the windows and H2O's recent half choose by the
// positions given, so they keep the same tokens as on the ordered cache.
TEST(KVPolicy, WindowsAndH2OChooseByPositionNotIndex) {
  // Slot i holds the token at position perm[i]; everything per slot moves with it.
  const std::vector<int64_t> perm = {3, 9, 0, 7, 1, 8, 2, 6, 4, 5};
  const auto perm_t = torch::tensor(perm, at::kLong);
  auto ordered = view10();
  ordered.accum_attn = torch::tensor({.1, .9, .2, .8, .05, .3, .01, .02, .03, .04}).view({1, 1, 10});
  KVView shuffled;
  shuffled.keys = ordered.keys.index_select(2, perm_t);
  shuffled.accum_attn = ordered.accum_attn.index_select(2, perm_t);
  shuffled.positions = perm_t;
  auto positions_kept = [&](const std::string& name, int64_t budget) {
    V slots = kept(name, shuffled, budget), pos;
    for (int64_t i : slots) pos.push_back(perm[i]);
    std::sort(pos.begin(), pos.end());
    return pos;
  };
  EXPECT_EQ(positions_kept("recent", 3), (V{7, 8, 9}));
  EXPECT_EQ(positions_kept("streaming", 6), (V{0, 1, 2, 3, 8, 9}));
  EXPECT_EQ(positions_kept("df", 7), (V{0, 1, 2, 3, 7, 8, 9}));
  EXPECT_EQ(positions_kept("h2o", 4), (V{1, 3, 8, 9}));
  EXPECT_EQ(positions_kept("keynorm", 3), (V{1, 3, 4}));  // by score: order never mattered
}

TEST(KVPolicy, KeyNormDropsTheLargestKeys) {
  EXPECT_EQ(kept("keynorm", view10(), 3), (V{1, 3, 4}));  // norms 1, 2, 3
}

TEST(KVPolicy, H2OKeepsHeavyHittersAndARecentHalf) {
  auto v = view10();
  v.accum_attn = torch::tensor({.1, .9, .2, .8, .05, .3, .01, .02, .03, .04}).view({1, 1, 10});
  EXPECT_EQ(kept("h2o", v, 4), (V{1, 3, 8, 9}));  // recent 2 (8, 9) + heaviest 2 (1, 3)
}

TEST(KVPolicy, TovaKeepsWhatTheNewestQueryAttends) {
  auto v = view10();
  v.recent_attn = torch::zeros({1, 1, 2, 10});
  v.recent_attn[0][0][0] = torch::tensor({.9, 0., 0., 0., 0., 0., 0., 0., 0., .1});  // older query: ignored
  v.recent_attn[0][0][1] = torch::tensor({0., .5, 0., 0., .3, 0., 0., .2, 0., 0.});
  EXPECT_EQ(kept("tova", v, 3), (V{1, 4, 7}));
}

TEST(KVPolicy, SnapKVVotesOverTheObservationWindowAndPools) {
  auto v = view10();
  v.recent_attn = torch::zeros({1, 1, 3, 10});
  v.recent_attn[0][0][0][5] = 1.0;  // outside the 2-query window: no vote
  v.recent_attn[0][0][1][2] = 0.6;
  v.recent_attn[0][0][2][2] = 0.3;
  v.recent_attn[0][0][2][6] = 0.5;
  KVPolicySpec s = parse_kv_policy("snapkv");
  s.window = 2;
  s.pool = 1;
  EXPECT_EQ(kept("", v, 4, s), (V{2, 6, 8, 9}));  // votes 0.9 (2), 0.5 (6) + the window's own 2 tokens
  s.pool = 3;  // pooling spreads token 2's vote to 1 and 3, which then outrank 6
  EXPECT_EQ(kept("", v, 5, s), (V{1, 2, 3, 8, 9}));
}

TEST(KVPolicy, PyramidBudgetsShrinkWithDepthKeepingTheMean) {
  KVPolicySpec s = parse_kv_policy("pyramidkv");
  s.window = 2;
  EXPECT_EQ(layer_budget(s, 10, 0, 3), 15);
  EXPECT_EQ(layer_budget(s, 10, 1, 3), 10);
  EXPECT_EQ(layer_budget(s, 10, 2, 3), 5);
  EXPECT_EQ(layer_budget(parse_kv_policy("snapkv"), 10, 2, 3), 10);
}

TEST(KVPolicy, ExpectedAttentionUsesTheQueryMeanAndCovariance) {
  KVView v;
  // keys (x, y): 0:(3,0) 1:(0,0) 2:(1,3) 3:(2,1)
  v.keys = torch::tensor({3., 0., 0., 0., 1., 3., 2., 1.}).view({1, 1, 4, 2});
  v.query_mean = torch::tensor({1., 0.}).view({1, 1, 2});
  v.query_cov = torch::zeros({1, 1, 2, 2});
  EXPECT_EQ(kept("expected", v, 2), (V{0, 3}));  // μ·k: 3, 0, 1, 2
  v.query_cov = torch::tensor({0., 0., 0., 4.}).view({1, 1, 2, 2});
  // + kᵀΣk/(2·2) = 4y²/4 = y²: scores 3/√2 = 2.12, 0, 1/√2 + 9 = 9.71, 2/√2 + 1 = 2.41 -> keys 2 and 3
  EXPECT_EQ(kept("expected", v, 2), (V{2, 3}));
}

TEST(KVPolicy, PerHeadSelectionsAndUnknownNames) {
  KVView v;
  v.keys = torch::tensor({1., 5., 2., 5., 1., 2.}).view({1, 2, 3, 1});  // head 0 norms 1,5,2; head 1 norms 5,1,2
  auto idx = kv_keep(parse_kv_policy("keynorm"), v, 2);
  EXPECT_TRUE(torch::equal(idx[0][0], torch::tensor({0, 2}, at::kLong)));
  EXPECT_TRUE(torch::equal(idx[0][1], torch::tensor({1, 2}, at::kLong)));
  try {
    parse_kv_policy("lru");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"lru\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("snapkv"), std::string::npos);
  }
}

// The traits are declared with the policies: one entry per name, and the
// ones eval kv and the per-step eviction decide by.
TEST(KVPolicy, TraitsAreDeclaredWithEachPolicy) {
  EXPECT_EQ(kv_policies().size(), kv_policy_names().size());
  for (const auto& name : kv_policy_names()) EXPECT_EQ(std::string(kv_policy_traits(parse_kv_policy(name)).name), name);
  EXPECT_TRUE(kv_policy_traits({"df"}).closed_form_window);
  EXPECT_FALSE(kv_policy_traits({"recent"}).closed_form_window);
  EXPECT_TRUE(kv_policy_traits({"tova"}).evicts_each_step);
  EXPECT_FALSE(kv_policy_traits({"tova"}).uses_positions);
  EXPECT_TRUE(kv_policy_traits({"snapkv"}).uses_positions);
  EXPECT_FALSE(kv_policy_traits({"snapkv"}).evicts_each_step);
  EXPECT_THROW(kv_policy_traits({"lru"}), Error);
}
