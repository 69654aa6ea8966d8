// The one attention implementation: causal mask, GQA equivalence, probe rows,
// KV-cache decoding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/transformer.h"

using namespace ropelab::model;

namespace {
ModelConfig tiny(int64_t kv = 4) {
  ModelConfig c;
  c.vocab_size = 50; c.d_model = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = kv; c.T_train = 16;
  return c.resolved();
}
}  // namespace

TEST(Attention, CausalMaskFutureTokensDoNotChangeThePast) {
  auto m = make_model(tiny(), 1);
  auto a = torch::randint(0, 50, {2, 12}, at::kLong);
  auto b = a.clone();
  b.narrow(1, 8, 4).random_(0, 50);
  torch::NoGradGuard ng;
  auto la = m->forward(a), lb = m->forward(b);
  EXPECT_TRUE(torch::allclose(la.narrow(1, 0, 8), lb.narrow(1, 0, 8), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(la.narrow(1, 8, 4), lb.narrow(1, 8, 4), 1e-5, 1e-6));
}

TEST(Attention, ProbeRowsAreCausalDistributions) {
  auto m = make_model(tiny(), 2);
  AttentionProbe probe;
  probe.rows = torch::tensor({0, 5, 11}, at::kLong);
  torch::NoGradGuard ng;
  m->forward(torch::randint(0, 50, {3, 12}, at::kLong), nullptr, &probe);
  ASSERT_EQ(probe.probs.size(), 2u);
  for (const auto& p : probe.probs) {
    ASSERT_EQ(p.sizes(), (std::vector<int64_t>{3, 4, 3, 12}));
    EXPECT_TRUE(torch::allclose(p.sum(-1), torch::ones({3, 4, 3}), 1e-5, 1e-6));
    EXPECT_EQ(p.select(2, 0).narrow(-1, 1, 11).abs().max().item<float>(), 0.0f);  // row 0 sees only key 0
    EXPECT_EQ(p.select(2, 1).narrow(-1, 6, 6).abs().max().item<float>(), 0.0f);   // row 5 sees keys 0..5
  }
}

// Probing every row reuses the probabilities for the output (one score
// computation instead of two): the logits must not change, in a full forward
// or a decode step, and neither must a probe of some rows only.
TEST(Attention, ProbingEveryRowLeavesTheOutputUnchanged) {
  auto m = make_model(tiny(2), 4);
  auto ids = torch::randint(0, 50, {2, 10}, at::kLong);
  torch::NoGradGuard ng;
  const auto plain = m->forward(ids);
  AttentionProbe all, some;
  all.rows = torch::arange(10, at::kLong);
  some.rows = torch::tensor({1, 7}, at::kLong);
  EXPECT_TRUE(torch::allclose(m->forward(ids, nullptr, &all), plain, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(m->forward(ids, nullptr, &some), plain, 1e-5, 1e-6));
  KVCache with_probe, without;
  m->forward(ids.narrow(1, 0, 9), &with_probe);
  m->forward(ids.narrow(1, 0, 9), &without);
  AttentionProbe step;
  step.rows = torch::tensor({0}, at::kLong);
  EXPECT_TRUE(torch::allclose(m->forward(ids.narrow(1, 9, 1), &with_probe, &step), m->forward(ids.narrow(1, 9, 1), &without),
                              1e-5, 1e-6));
}

TEST(Attention, GroupedQueryEqualsRepeatedHeads) {
  // 4 query heads sharing 2 KV heads == 4 heads whose K/V weights repeat each group.
  auto gqa = Attention(tiny(2), 0);
  auto mha = Attention(tiny(4), 0);
  torch::NoGradGuard ng;
  mha->wq->weight.copy_(gqa->wq->weight);
  mha->wo->weight.copy_(gqa->wo->weight);
  const int64_t dh = 8;
  auto rep = [&](const at::Tensor& w) { return w.view({2, dh, 32}).repeat_interleave(2, 0).reshape({4 * dh, 32}); };
  mha->wk->weight.copy_(rep(gqa->wk->weight));
  mha->wv->weight.copy_(rep(gqa->wv->weight));
  auto x = torch::randn({2, 10, 32});
  auto pos = torch::arange(10, at::kLong);
  AttentionSettings s;
  EXPECT_TRUE(torch::allclose(gqa->forward(x, pos, s, nullptr, nullptr), mha->forward(x, pos, s, nullptr, nullptr),
                              1e-5, 1e-6));
}

TEST(Attention, IncrementalDecodeMatchesFullForward) {
  auto m = make_model(tiny(2), 3);
  auto idx = torch::randint(0, 50, {2, 14}, at::kLong);
  torch::NoGradGuard ng;
  auto full = m->forward(idx);
  KVCache cache;
  std::vector<at::Tensor> steps{m->forward(idx.narrow(1, 0, 6), &cache)};  // prefill 6 tokens
  for (int64_t t = 6; t < 14; ++t) steps.push_back(m->forward(idx.narrow(1, t, 1), &cache));
  EXPECT_EQ(cache.next_pos, 14);
  EXPECT_EQ(cache.layers[0].k.size(2), 14);
  EXPECT_TRUE(torch::allclose(torch::cat(steps, 1), full, 1e-4, 1e-5));
}

TEST(Attention, ChunkedAttendEqualsOneShotSoftmax) {
  // A long sequence forces several query chunks; compare with a direct float64 softmax.
  const int64_t T = 3000;
  auto q = torch::randn({1, 6, T, 8}), k = torch::randn({1, 6, T, 8}), v = torch::randn({1, 6, T, 8});
  auto pos = torch::arange(T, at::kLong);
  auto got = attend(q, k, v, pos, pos, 0.35);
  auto s = torch::matmul(q.to(at::kDouble), k.to(at::kDouble).transpose(-2, -1)) * 0.35;
  s = s.masked_fill(torch::ones({T, T}, at::kBool).triu(1), -INFINITY);
  auto ref = torch::matmul(torch::softmax(s, -1), v.to(at::kDouble));
  EXPECT_LT((got.to(at::kDouble) - ref).abs().max().item<double>(), 1e-4);
}
