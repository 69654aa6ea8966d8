// Whole-model checks: exact parameter count, and logits against a float64
// reference forward written here from the textbook definitions.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/transformer.h"
#include "reference_model.h"

using namespace ropelab::model;
using ropelab::test::reference_forward;

namespace {

ModelConfig llama_like() {
  ModelConfig c;
  c.vocab_size = 37; c.d_model = 24; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.d_head = 8;
  c.rope_theta = 100.0;  // small θ: rotations large enough at T=9 to matter
  return c.resolved();
}
ModelConfig pythia_like() {
  ModelConfig c = llama_like();
  c.norm = "layernorm"; c.mlp = "gelu"; c.tie_embeddings = false; c.rotary_fraction = 0.5; c.n_kv_heads = 4;
  return c.resolved();
}

}  // namespace

TEST(Transformer, ParameterCountIsExact) {
  // By hand for llama_like: emb 37·24=888; per layer: norms 2·24, attn 24·8·(2·4+2·2)=2304,
  // swiglu d_ff = ceil(8·24/3 / 64)·64 = 64 → 3·24·64=4608; total layer 6960; final norm 24.
  EXPECT_EQ(llama_like().parameter_count(), 888 + 2 * 6960 + 24);
  for (const auto& c : {llama_like(), pythia_like()}) {
    Transformer m(c);
    EXPECT_EQ(m->parameter_count(), c.parameter_count()) << c.norm;
  }
}

TEST(Transformer, LogitsMatchFloat64Reference) {
  for (const auto& c : {llama_like(), pythia_like()}) {
    auto m = make_model(c, 7);
    torch::NoGradGuard ng;
    // Randomise the norm gains too, so a mix-up between them would show.
    for (auto& p : m->parameters()) if (p.dim() == 1) p.uniform_(0.5, 1.5);
    auto ids = torch::tensor({3, 17, 0, 36, 5, 5, 21, 9, 30}, at::kLong);
    auto got = m->forward(ids.unsqueeze(0)).squeeze(0).to(at::kDouble);
    auto ref = reference_forward(m, ids).logits;
    const double rel = (got - ref).norm().item<double>() / ref.norm().item<double>();
    EXPECT_LT(rel, 1e-5) << c.norm << "/" << c.mlp;
  }
}

TEST(Transformer, InitialisationIsDeterministicBySeed) {
  auto a = make_model(llama_like(), 11), b = make_model(llama_like(), 11), c = make_model(llama_like(), 12);
  auto ids = torch::tensor({{1, 2, 3, 4}}, at::kLong);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
  EXPECT_FALSE(torch::equal(a->forward(ids), c->forward(ids)));
}

TEST(Transformer, ConfigRefusesBadFieldsByName) {
  ModelConfig c = llama_like();
  c.n_kv_heads = 3;
  try { c.resolved(); FAIL(); } catch (const std::exception& e) { EXPECT_NE(std::string(e.what()).find("n_kv_heads"), std::string::npos); }
  c = llama_like(); c.norm = "batchnorm";
  EXPECT_THROW(c.resolved(), std::exception);
}
