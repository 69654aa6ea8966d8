// Per-layer attention (ModelConfig::layer_pattern): full, sliding and nope
// layers, each type's θ and window, QK-norm, Llama 4's query temperature —
// against the float64 reference written from the definitions
// (tests/reference_model.h), through the KV cache, and the refusals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "model/transformer.h"
#include "reference_model.h"

using namespace ropelab;
using namespace ropelab::model;
using ropelab::test::reference_forward;

namespace {

ModelConfig hybrid() {
  ModelConfig c;
  c.vocab_size = 41; c.d_model = 24; c.n_layers = 4; c.n_heads = 4; c.n_kv_heads = 2; c.d_head = 8;
  c.rope_theta = 1e4;
  c.layer_pattern = "sliding,nope,sliding,full";  // one of each, the sliding ones twice
  c.sliding_window = 5;
  c.sliding_rope_theta = 30;  // small: rotations at T = 20 large enough to matter
  c.qk_norm = true;
  c.nope_attn_scale = 0.4;
  c.nope_floor_scale = 4;  // the temperature moves within T = 20
  return c.resolved();
}

at::Tensor ids_of(int64_t T) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < T; ++i) v.push_back((i * 13 + 5) % 41);
  return torch::tensor(v, at::kLong);
}

// Norm gains (q/k norms included) away from 1, so a mix-up shows.
Transformer randomised(const ModelConfig& c, uint64_t seed) {
  auto m = make_model(c, seed);
  torch::NoGradGuard ng;
  for (auto& p : m->parameters())
    if (p.dim() == 1) p.uniform_(0.5, 1.5);
  return m;
}

double rel(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref).norm().item<double>() / ref.norm().item<double>();
}

std::string error_of(const ModelConfig& c) {
  try {
    c.resolved();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(LayerTypes, HybridModelMatchesTheFloat64Reference) {
  auto m = randomised(hybrid(), 3);
  EXPECT_EQ(m->cfg.layer_type(0), "sliding");
  EXPECT_EQ(m->cfg.layer_type(1), "nope");
  EXPECT_EQ(m->cfg.layer_type(3), "full");
  torch::NoGradGuard ng;
  const auto ids = ids_of(20);
  const auto got = m->forward(ids.unsqueeze(0))[0];
  const auto ref = reference_forward(m, ids).logits;
  EXPECT_LT(rel(got, ref), 1e-5);
  // Each ingredient matters at this size: the reference without it differs.
  const ModelConfig as_built = m->cfg;
  for (const std::string change : {"window", "sliding theta", "temperature", "qk norm"}) {
    m->cfg = as_built;  // the reference reads m->cfg; the module keeps what it was built with
    if (change == "window") m->cfg.sliding_window = 50;
    if (change == "sliding theta") m->cfg.sliding_rope_theta = 0;
    if (change == "temperature") m->cfg.nope_attn_scale = 0;
    if (change == "qk norm") m->cfg.qk_norm = false;
    EXPECT_GT(rel(got, reference_forward(m, ids).logits), 1e-3) << change;
  }
  m->cfg = as_built;
}

TEST(LayerTypes, AnAllFullPatternIsTheModelWithoutOne) {
  ModelConfig plain = hybrid();
  plain.layer_pattern = "";
  plain.sliding_window = 0;
  plain.sliding_rope_theta = 0;
  plain.nope_attn_scale = 0;
  ModelConfig full = plain;
  full.layer_pattern = "full,full";
  auto a = make_model(plain.resolved(), 5), b = make_model(full.resolved(), 5);
  torch::NoGradGuard ng;
  const auto ids = ids_of(12).unsqueeze(0);
  EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
}

TEST(LayerTypes, NopeLayersIgnoreTheta) {
  // A model of nope layers only: θ changes nothing (without the temperature,
  // positions reach it through the causal mask alone).
  ModelConfig c = hybrid();
  c.layer_pattern = "nope";
  c.sliding_window = 0;
  c.sliding_rope_theta = 0;
  c.nope_attn_scale = 0;
  auto a = make_model(c.resolved(), 8);
  c.rope_theta = 17;
  auto b = make_model(c.resolved(), 8);
  torch::NoGradGuard ng;
  const auto ids = ids_of(15).unsqueeze(0);
  EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
}

TEST(LayerTypes, TheKvCacheGivesTheOnePassLogitsAndSlidingLayersKeepTheirWindow) {
  auto m = randomised(hybrid(), 4);
  torch::NoGradGuard ng;
  const auto ids = ids_of(20).unsqueeze(0);
  const auto one_pass = m->forward(ids)[0];
  KVCache cache;
  std::vector<at::Tensor> rows;
  rows.push_back(m->forward(ids.narrow(1, 0, 7), &cache)[0]);  // a prefill longer than the window
  for (int64_t t = 7; t < 20; ++t) rows.push_back(m->forward(ids.narrow(1, t, 1), &cache)[0]);
  const auto stepped = at::cat(rows, 0);
  EXPECT_LT((stepped - one_pass).abs().max().item<double>(), 1e-5);
  // A sliding layer holds only the keys a later query can see; the others hold every key.
  for (int64_t l = 0; l < 4; ++l) {
    const int64_t held = cache.layers[size_t(l)].k.size(2);
    if (m->cfg.layer_type(l) == "sliding") {
      EXPECT_EQ(held, m->cfg.sliding_window - 1) << l;
    } else {
      EXPECT_EQ(held, 20) << l;
    }
  }
}

TEST(LayerTypes, BadPatternsAndSettingsAreRefusedByName) {
  auto with = [](auto change) {
    ModelConfig c = hybrid();
    change(c);
    return error_of(c);
  };
  EXPECT_NE(with([](ModelConfig& c) { c.layer_pattern = "sliding,local,full,full"; }).find("\"local\""), std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.layer_pattern = "sliding,full,full"; }).find("does not divide n_layers 4"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_window = 0; }).find("sliding_window must be > 0"), std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.attention_window = 8; }).find("a window on a NoPE layer"), std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.rotary_fraction = 1.5; }).find("rotary-fraction must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.layer_pattern = "full"; c.nope_attn_scale = 0; c.sliding_rope_theta = 0; })
                .find("sliding_window is set but layer_pattern has no sliding layer"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.rope_scaling = "yarn-ish"; }).find("must name a RoPE method"), std::string::npos);
  EXPECT_EQ(with([](ModelConfig&) {}), "");
}
