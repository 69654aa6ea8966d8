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

// The refusal of hybrid() with one change made ("" when it resolves).
template <class Change>
std::string with(Change change) {
  ModelConfig c = hybrid();
  change(c);
  return error_of(c);
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

// Sliding layers take their own RoPE method and rotated share (sliding_rope,
// sliding_rotary_fraction): against the float64 reference, and through the KV cache.
TEST(LayerTypes, SlidingLayersTakeTheirOwnRopeMethodAndRotaryFraction) {
  ModelConfig c = hybrid();
  c.sliding_rope = "linear:3";
  c.sliding_rotary_fraction = 0.5;
  auto m = randomised(c.resolved(), 6);
  EXPECT_EQ(m->cfg.rotary_dim_of("sliding"), 4);
  EXPECT_EQ(m->cfg.rotary_dim_of("full"), 8);
  torch::NoGradGuard ng;
  const auto ids = ids_of(20);
  const auto got = m->forward(ids.unsqueeze(0))[0];
  EXPECT_LT(rel(got, reference_forward(m, ids).logits), 1e-5);
  // Each of the two matters: the reference without it differs.
  const ModelConfig as_built = m->cfg;
  m->cfg.sliding_rope = "";
  EXPECT_GT(rel(got, reference_forward(m, ids).logits), 1e-3);
  m->cfg = as_built;
  m->cfg.sliding_rotary_fraction = 0;
  EXPECT_GT(rel(got, reference_forward(m, ids).logits), 1e-3);
  m->cfg = as_built;
  KVCache cache;
  std::vector<at::Tensor> rows;
  rows.push_back(m->forward(ids.unsqueeze(0).narrow(1, 0, 7), &cache)[0]);
  for (int64_t t = 7; t < 20; ++t) rows.push_back(m->forward(ids.unsqueeze(0).narrow(1, t, 1), &cache)[0]);
  EXPECT_LT((at::cat(rows, 0) - got).abs().max().item<double>(), 1e-5);
}

// A sliding layer whose window holds the whole sequence is a full layer: with
// any method of the table it gives the logits of a model whose full layers
// take that method (same weights), including the length-dependent ones past T_train.
TEST(LayerTypes, ASlidingLayerWithAMethodIsAFullLayerWithIt) {
  struct Case { std::string spec; double fraction; };
  for (const Case& k : {Case{"yarn:4:beta_fast=16", 0}, Case{"dynamic:2", 0}, Case{"llama3:8:original_max_position_embeddings=8", 0},
                        Case{"proportional", 0.5}, Case{"linear:2", 0.5}, Case{"ntk-aware:3", 0}}) {
    ModelConfig base;
    base.vocab_size = 41; base.d_model = 32; base.n_layers = 2; base.n_heads = 2; base.d_head = 16;
    base.rope_theta = 500;
    base.T_train = 16;
    ModelConfig sliding = base;
    sliding.layer_pattern = "sliding";
    sliding.sliding_window = 64;
    sliding.sliding_rope = k.spec;
    sliding.sliding_rotary_fraction = k.fraction;
    ModelConfig full = base;
    full.set_rope_params(rope_params_from_spec(k.spec, "test"));
    if (k.fraction > 0) full.rotary_fraction = k.fraction;
    auto a = randomised(sliding.resolved(), 11), b = make_model(full.resolved(), 12);
    torch::NoGradGuard ng;
    for (auto& p : a->named_parameters())  // sharp attention, so positions show in the logits
      if (p.key().find("wq") != std::string::npos || p.key().find("wk") != std::string::npos) p.value().mul_(8);
    auto from = a->named_parameters();
    for (auto& p : b->named_parameters()) p.value().copy_(from[p.key()]);
    const auto ids = ids_of(40).unsqueeze(0);  // past T_train = 16: dynamic's α moves
    const auto la = a->forward(ids), lb = b->forward(ids);
    const double scale = la.abs().max().item<double>();
    EXPECT_LT((la - lb).abs().max().item<double>(), 1e-5 * scale) << k.spec;
    EXPECT_EQ(a->cfg.rotary_dim_of("sliding"), b->cfg.rotary_dim()) << k.spec;
    // ... and differs from the same sliding layer without the method.
    ModelConfig plain = sliding;
    plain.sliding_rope = "";
    plain.sliding_rotary_fraction = 0;
    auto c = make_model(plain.resolved(), 13);
    for (auto& p : c->named_parameters()) p.value().copy_(from[p.key()]);
    EXPECT_GT((c->forward(ids) - la).abs().max().item<double>(), 1e-2 * scale) << k.spec;
  }
}

TEST(LayerTypes, BadSlidingRopeSettingsAreRefusedByName) {
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rope = "rotate"; }).find("sliding_rope: \"rotate\" names no RoPE method"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rope = "linear:0.5"; }).find("sliding_rope: factor must be"), std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rope = "linear:2:beta_fast=3"; }).find("takes no parameter \"beta_fast\""),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rope = "longrope:2"; }).find("sliding_rope: longrope needs long_factor"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rotary_fraction = 1.5; }).find("sliding-rotary-fraction must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) { c.sliding_rotary_fraction = 0.1; }).find("sliding_rope: default leaves too few rotated"),
            std::string::npos);
  EXPECT_NE(with([](ModelConfig& c) {
              c.layer_pattern = "full";
              c.sliding_window = 0;
              c.sliding_rope_theta = 0;
              c.nope_attn_scale = 0;
              c.sliding_rope = "linear:2";
            }).find("sliding_rope or sliding_rotary_fraction is set but layer_pattern has no sliding layer"),
            std::string::npos);
  EXPECT_EQ(with([](ModelConfig& c) { c.sliding_rope = "yarn:4"; c.sliding_rotary_fraction = 0.5; }), "");
}
