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
        auto ids = eval::gamma_prompts(nullptr, 40, n, d, seed, i, 1)[0];
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

// A real model with exactly uniform attention (q = 0: every score is 0):
// under fixed it reads |γ| < 0.02 raw and normalised; under taf the raw γ
// equals the protocol's uniform baseline and the normalised γ reads 0.
TEST(GammaMeasure, UniformAttentionReadsZeroUnderFixedAndTheBaselineUnderTaf) {
  auto m = model::make_model(small(), 4);
  {
    torch::NoGradGuard ng;
    for (auto& item : m->named_parameters())
      if (item.key().find("attn.wq") != std::string::npos) item.value().zero_();
  }
  fit::FitOptions o{2, 200, 1};
  eval::GammaProtocol p;
  p.distances = {2, 4, 8, 16, 32, 48};
  p.prompts = 3;
  p.seeds = {1};
  p.name = "fixed";
  p.prompt_length = 60;
  auto fixed = eval::measure_attention_decay(m, p, o.fit_min_d);
  for (double a : fixed.curve.A) EXPECT_NEAR(a, 1.0 / 60, 1e-6);
  const auto ff = fit::fit_gamma(fixed.curve, o);
  EXPECT_LT(std::fabs(ff.gamma), 0.02);
  EXPECT_LT(std::fabs(ff.gamma_intrinsic), 0.02);
  // Under taf (length d + tail) the same model "decays" as 1/(d + tail).
  p.name = "taf";
  p.prompt_length = 0;
  p.tail = 10;
  auto var = eval::measure_attention_decay(m, p, o.fit_min_d);
  for (size_t i = 0; i < var.curve.A.size(); ++i) EXPECT_NEAR(var.curve.A[i], 1.0 / (p.distances[i] + 10), 1e-6);
  const auto ft = fit::fit_gamma(var.curve, o);
  EXPECT_NEAR(ft.gamma, eval::uniform_baseline_gamma(p, 64, var.curve.distances), 1e-4);
  EXPECT_GT(ft.gamma, 0.3);  // far from 0: the protocol's own decay
  EXPECT_LT(std::fabs(ft.gamma_intrinsic), 0.02);
}

// A planted source whose attention over the n positions of a prompt is
// exactly ∝ max(j, 1)^−γ₀ (j = distance from the query; the query itself
// weighs as j = 1), in every layer and head: the measurement and the fit,
// end to end, under both protocols at γ₀ = 0, 0.5, 1.
eval::AttentionSource planted_source(double gamma0) {
  eval::AttentionSource s;
  s.n_layers = 2, s.n_heads = 3, s.vocab = 50, s.T_train = 256;
  s.last_row = [gamma0, s](const at::Tensor& ids) {
    const int64_t B = ids.size(0), n = ids.size(1);
    auto j = torch::arange(n - 1, -1, -1, at::kDouble).clamp_min(1);  // position p is n-1-p back
    auto w = j.pow(-gamma0);
    w = (w / w.sum()).to(at::kFloat).expand({B, s.n_heads, n});
    return std::vector<at::Tensor>(s.n_layers, w);
  };
  return s;
}

TEST(GammaMeasure, PlantedDecayIsRecoveredUnderBothProtocols) {
  fit::FitOptions o;
  o.bootstrap_resamples = 100;
  for (double g0 : {0.0, 0.5, 1.0}) {
    const auto src = planted_source(g0);
    eval::GammaProtocol p;
    p.prompts = 2;
    p.seeds = {1, 2};
    // taf: prompts d + 50 inside the context of 256, on the default grid.
    const auto taf = eval::measure_attention_decay(src, p, o.fit_min_d);
    ASSERT_GE(taf.curve.distances.size(), 8u);
    const auto ft = fit::fit_gamma(taf.curve, o);
    EXPECT_NEAR(ft.gamma_intrinsic, g0, 0.02) << "taf intrinsic, γ₀ = " << g0;
    // The raw slope reads what the normaliser model predicts: OLS of −γ₀ log d − log Z(d + 50, γ₀) on log d.
    std::vector<double> x, y;
    for (double d : taf.curve.distances) {
      x.push_back(std::log(d));
      y.push_back(-g0 * std::log(d) - std::log(fit::prompt_normaliser(d + 50, g0)));
    }
    EXPECT_NEAR(ft.gamma, -fit::ols(x, y).slope, 1e-5) << "taf raw, γ₀ = " << g0;
    if (g0 == 0.0) EXPECT_NEAR(ft.gamma, eval::uniform_baseline_gamma(p, 256, taf.curve.distances), 1e-6);
    else EXPECT_GT(ft.gamma - g0, 0.05);  // inflated
    // fixed: one prompt length (the context), γ recovered raw.
    p.name = "fixed";
    const auto fx = eval::measure_attention_decay(src, p, o.fit_min_d);
    const auto ff = fit::fit_gamma(fx.curve, o);
    EXPECT_NEAR(ff.gamma, g0, 0.02) << "fixed, γ₀ = " << g0;
    EXPECT_NEAR(ff.gamma_intrinsic, g0, 0.02) << "fixed intrinsic, γ₀ = " << g0;
  }
}

TEST(GammaMeasure, UniformBaselineOfTheProtocol) {
  // By hand: OLS slope of -log(d+50) on log d for d = 30, 50, 100, 200 is -0.60274.
  eval::GammaProtocol p;
  EXPECT_NEAR(eval::uniform_baseline_gamma(p, 4096, {30, 50, 100, 200}), 0.60274, 1e-4);
  p.name = "fixed";
  p.prompt_length = 4096;
  EXPECT_NEAR(eval::uniform_baseline_gamma(p, 4096, {30, 50, 100, 200}), 0.0, 1e-12);
}

// The default grid lies inside the context: at T_train 128 taf fits 10
// log-spaced distances in [30, 78] (prompts up to 128), and fixed the same
// ones (prompts of 128, the farthest key at position 49, where taf's are).
TEST(GammaMeasure, DefaultGridFitsTheContext) {
  eval::GammaProtocol p;
  const auto taf = eval::default_distances(p, 128, 30);
  // round(30·(78/30)^(i/9)), i = 0..9
  EXPECT_EQ(taf, (std::vector<int64_t>{30, 33, 37, 41, 46, 51, 57, 63, 70, 78}));
  p.name = "fixed";
  EXPECT_EQ(eval::default_distances(p, 128, 30), taf);
  p.prompt_length = 100;  // a shorter fixed prompt: d <= 100 - 50
  EXPECT_EQ(eval::default_distances(p, 128, 30).back(), 50);
  p.prompt_length = 0;
  p.name = "taf";
  try {
    eval::default_distances(p, 64, 30);  // d + 50 <= 64 leaves d <= 14 < 30
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no distance >= 30"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("give --distances"), std::string::npos) << e.what();
  }
}

TEST(GammaMeasure, SkipsPromptsLongerThanTheContextWithTheReason) {
  auto m = model::make_model(small(), 5);
  eval::GammaProtocol p;
  p.distances = {10, 20, 30, 64, 100};
  p.prompts = 2;
  p.seeds = {1};
  p.tail = 10;  // prompts 20, 30, 40, 74, 110 against T_train 64
  auto meas = eval::measure_attention_decay(m, p, 10);
  ASSERT_EQ(meas.skipped.size(), 2u);
  EXPECT_EQ(meas.skipped[0].distance, 64);
  EXPECT_EQ(meas.skipped[0].prompt_length, 74);
  EXPECT_NE(meas.skipped[0].reason.find("longer than the context of 64"), std::string::npos) << meas.skipped[0].reason;
  EXPECT_EQ(meas.curve.distances, (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(meas.curve.prompt_lengths, (std::vector<double>{20, 30, 40}));
  // Raising the context on purpose measures them.
  p.context = 128;
  EXPECT_TRUE(eval::measure_attention_decay(m, p, 10).skipped.empty());
  // Under fixed (prompt = the context, 64) the key of d = 64 lies before the prompt.
  p.context = 0;
  p.name = "fixed";
  meas = eval::measure_attention_decay(m, p, 10);
  EXPECT_EQ(meas.curve.distances, (std::vector<double>{10, 20, 30}));
  EXPECT_NE(meas.skipped[0].reason.find("before the start"), std::string::npos);
  // Contradicting fields are refused by name.
  p.name = "taf";
  p.prompt_length = 50;
  EXPECT_THROW(eval::measure_attention_decay(m, p, 10), Error);
  p.prompt_length = 0;
  p.distances = {100, 200};
  EXPECT_THROW(eval::measure_attention_decay(m, p, 10), Error);  // nothing inside the context
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
  for (const char* k : {"gamma", "gamma_ci95_lo", "gamma_ci95_hi", "fit", "T_eval", "corpus", "distances", "seeds",
                        "protocol", "gamma_intrinsic", "gamma_intrinsic_ci95_lo", "uniform_baseline_gamma", "status"})
    EXPECT_TRUE(r["measurement"].contains(k)) << k;
  EXPECT_EQ(r["measurement"]["protocol"], "taf");
  EXPECT_TRUE(r["measurement"]["gamma_intrinsic"].is_number());
  EXPECT_EQ(r["arch"]["rope_theta"], 10000.0);
  EXPECT_EQ(r["ropelab"]["per_layer"].size(), 2u);
  EXPECT_TRUE(r["ropelab"]["per_layer"][0]["gamma_intrinsic"].is_number());
  EXPECT_EQ(r["measurement"]["T_eval"], 24);  // the largest fitted distance
  EXPECT_TRUE(r["predictions"]["gamma_pade"].is_number());
  EXPECT_TRUE(r["measurement"]["uniform_baseline_gamma"].is_number());
  // The build fingerprint of the evaluation and of the training.
  for (const char* b : {"build", "train_build"}) {
    const auto& f = r["ropelab"][b];
    for (const char* k : {"commit", "libtorch", "blas", "device", "threads", "cpu", "compiler"})
      EXPECT_TRUE(f.contains(k)) << b << "." << k;
  }
  EXPECT_EQ(r["ropelab"]["train_build"]["threads"], 1);
  // A second sweep finds nothing new to measure; the fixed protocol is measured apart, once.
  eval::eval_gamma_run(dir + "/run", o);
  EXPECT_EQ(io::read_jsonl(o.out).size(), 3u);
  o.protocol.name = "fixed";
  o.protocol.tail = 50;
  auto fixed = eval::eval_gamma_run(dir + "/run", o);
  ASSERT_EQ(fixed.size(), 3u);
  EXPECT_EQ(fixed[0]["measurement"]["protocol"], "fixed");
  EXPECT_EQ(fixed[0]["ropelab"]["prompt_length"], 32);
  EXPECT_NEAR(fixed[0]["measurement"]["uniform_baseline_gamma"].get<double>(), 0.0, 1e-12);
  eval::eval_gamma_run(dir + "/run", o);
  EXPECT_EQ(io::read_jsonl(o.out).size(), 6u);
  // Too few fitted distances: a record that says so, never a γ.
  o.fit.fit_min_d = 16;
  auto few = eval::eval_gamma_checkpoint(dir + "/run/checkpoints/step_00000020.pt", o);
  EXPECT_EQ(few["measurement"]["status"], "insufficient_points");
  EXPECT_TRUE(few["measurement"]["gamma"].is_null());
  EXPECT_EQ(few["measurement"]["fit"]["n_points"], 2);
}
