// γ measurement on real models: the batched probe path against the
// independent float64 reference, the uniform-attention controls, and a
// γ-flow sweep over a trained run that resumes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/io.h"
#include "eval/gamma_eval.h"
#include "eval/gamma_measure.h"
#include "reference_model.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train_fixture.h"

using namespace ropelab;

namespace {
model::ModelConfig small() {
  model::ModelConfig c;
  c.vocab_size = 40; c.d_model = 16; c.n_layers = 2; c.n_heads = 2; c.n_kv_heads = 1; c.T_train = 64;
  c.rope_theta = 50.0;
  return c.resolved();
}
}  // namespace

TEST(GammaMeasure, BatchedProbeEqualsFloat64ReferenceForward) {
  auto m = model::make_model(small(), 3);
  eval::GammaProtocol p;
  p.distances = {3, 5, 10, 20};
  p.prompts = 5;
  p.batch = 2;  // uneven batches on purpose
  p.seeds = {42, 7};
  p.tail = 4;
  const auto meas = eval::measure_attention_decay(m, p);
  ASSERT_EQ(meas.curve.A.size(), 4u);
  for (size_t di = 0; di < p.distances.size(); ++di) {
    const int64_t d = p.distances[di], n = d + p.tail;
    double total = 0;
    for (int64_t seed : p.seeds) {
      double seed_sum = 0;
      for (int64_t i = 0; i < p.prompts; ++i) {
        auto ids = eval::gamma_prompts(p, nullptr, 40, d, seed, i, 1)[0];
        auto ref = ropelab::test::reference_forward(m, ids);
        double a = 0;  // mean over heads, then layers, of P(query n-1 -> key n-1-d)
        for (const auto& probs : ref.attention) a += probs.select(1, n - 1).select(1, n - 1 - d).mean().item<double>();
        seed_sum += a / ref.attention.size();
      }
      total += seed_sum / p.prompts;
    }
    EXPECT_NEAR(meas.curve.A[di], total / p.seeds.size(), 1e-6) << "d=" << d;
  }
}

TEST(GammaMeasure, UniformAttentionGivesGammaZeroAtFixedLengthAndTheBaselineOtherwise) {
  auto m = model::make_model(small(), 4);
  {
    torch::NoGradGuard ng;
    for (auto& item : m->named_parameters())  // q = 0: every score is 0, attention uniform
      if (item.key().find("attn.wq") != std::string::npos) item.value().zero_();
  }
  eval::GammaProtocol p;
  p.distances = {2, 4, 8, 16, 32, 48};
  p.prompts = 3;
  p.seeds = {1};
  p.prompt_length = 60;
  auto fixed = eval::measure_attention_decay(m, p);
  for (double a : fixed.curve.A) EXPECT_NEAR(a, 1.0 / 60, 1e-6);
  EXPECT_NEAR(fit::fit_gamma(fixed.curve, {2, 200, 1}).gamma, 0.0, 1e-4);
  // Under the public protocol (length d + tail) the same model "decays" as 1/(d + tail).
  p.prompt_length = 0;
  p.tail = 10;
  auto var = eval::measure_attention_decay(m, p);
  for (size_t i = 0; i < var.curve.A.size(); ++i) EXPECT_NEAR(var.curve.A[i], 1.0 / (p.distances[i] + 10), 1e-6);
}

TEST(GammaMeasure, UniformBaselineOfTheProtocol) {
  // By hand: OLS slope of -log(d+50) on log d for d = 30, 50, 100, 200 is -0.60274.
  eval::GammaProtocol p;
  EXPECT_NEAR(eval::uniform_baseline_gamma(p, {30, 50, 100, 200}), 0.60274, 1e-4);
  p.prompt_length = 4096;
  EXPECT_NEAR(eval::uniform_baseline_gamma(p, {30, 50, 100, 200}), 0.0, 1e-12);
}

TEST(GammaMeasure, SkipsDistancesBeyondContext) {
  auto m = model::make_model(small(), 5);
  eval::GammaProtocol p;
  p.distances = {10, 20, 30, 64, 100};
  p.prompts = 2;
  p.seeds = {1};
  auto meas = eval::measure_attention_decay(m, p);
  EXPECT_EQ(meas.skipped, (std::vector<int64_t>{64, 100}));
  EXPECT_EQ(meas.curve.distances, (std::vector<double>{10, 20, 30}));
}

TEST(GammaFlow, MeasuresEveryCheckpointOnceAndWritesTafRecords) {
  const auto dir = ropelab::test::scratch_dir();
  auto cfg = ropelab::test::tiny_config(ropelab::test::tiny_data(dir));
  cfg.max_steps = 20;
  cfg.checkpoints = "every:10";
  train::train_new(cfg, dir + "/run");
  eval::GammaEvalOptions o;
  o.protocol.distances = {2, 4, 8, 16, 24};
  o.protocol.prompts = 4;
  o.protocol.tail = 6;
  o.fit.fit_min_d = 2;
  o.fit.bootstrap_resamples = 100;
  o.per_layer = true;
  o.out = dir + "/gamma.jsonl";
  auto recs = eval::eval_gamma_run(dir + "/run", o);
  ASSERT_EQ(recs.size(), 3u);  // steps 0, 10, 20
  EXPECT_EQ(recs[2]["step"], 20);
  const auto& r = recs[1];
  for (const char* k : {"gamma", "gamma_ci95_lo", "gamma_ci95_hi", "fit", "T_eval", "corpus", "distances", "seeds"})
    EXPECT_TRUE(r["measurement"].contains(k)) << k;
  EXPECT_EQ(r["arch"]["rope_theta"], 10000.0);
  EXPECT_EQ(r["ropelab"]["per_layer"].size(), 2u);
  EXPECT_EQ(r["measurement"]["T_eval"], 24);  // the largest fitted distance
  EXPECT_TRUE(r["predictions"]["gamma_pade"].is_number());
  EXPECT_TRUE(r["ropelab"]["uniform_baseline_gamma"].is_number());
  // A second sweep finds nothing new to measure.
  eval::eval_gamma_run(dir + "/run", o);
  EXPECT_EQ(io::read_jsonl(o.out).size(), 3u);
}
