// Context-extension methods against hand-computed frequencies, and which of
// them leave positions inside T_train untouched.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "model/rope.h"
#include "model/rope_scaling.h"
#include "model/transformer.h"

using namespace ropelab;
using namespace ropelab::model;

namespace {
ModelConfig cfg4() {  // d_head 4: two rotated pairs, easy to do by hand
  ModelConfig c;
  c.vocab_size = 30; c.d_model = 8; c.n_layers = 1; c.n_heads = 2; c.T_train = 256; c.rope_theta = 10000;
  return c.resolved();
}
// The base θ a two-pair table stands for: inv_freq[1] = θ^(−2/4).
double base_of(const AttentionSettings& s) {
  return s.inv_freq.defined() ? std::pow(s.inv_freq[1].item<double>(), -2.0) : s.rope_theta;
}

AttentionSettings settings(const std::string& spec, int64_t seq_len = 100, int64_t L = 4096) {
  return scaling_settings(parse_scaling_methods(spec).at(0), cfg4(), seq_len, L);
}
}  // namespace

TEST(RopeScaling, ParsesTheListAndRefusesBadEntriesByName) {
  auto ms = parse_scaling_methods("none,pi:4,ntk:alpha_opt,ntk:8,ntk-aware:2,yarn:4,logn,dynamic");
  ASSERT_EQ(ms.size(), 8u);
  EXPECT_EQ(ms[2].label(), "ntk:alpha_opt");
  EXPECT_EQ(ms[5].label(), "yarn:4");
  for (const char* bad : {"ntk", "pi:0.5", "pi:x", "rope:2", "logn:2", "pi:alpha_opt", "ntk:0", "ntk:-2", "yarn:0.5"}) {
    try {
      parse_scaling_methods(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(bad).substr(0, 3)), std::string::npos) << e.what();
    }
  }
}

TEST(RopeScaling, SweepsExpandGeometricallyAndClosedFormsTakeAMeasuredGamma) {
  auto ms = parse_scaling_methods("none,ntk-sweep:0.25..64:x2,yarn-sweep:1..8:x2,ntk:alpha_opt_measured,ntk:0.5");
  ASSERT_EQ(ms.size(), 1u + 9u + 4u + 2u);
  EXPECT_EQ(ms[1].label(), "ntk:0.25");
  EXPECT_EQ(ms[9].label(), "ntk:64");
  EXPECT_EQ(ms[9].sweep, "ntk-sweep:0.25..64:x2");
  EXPECT_EQ(ms[13].label(), "yarn:8");
  EXPECT_TRUE(ms[0].sweep.empty());
  EXPECT_EQ(ms[14].label(), "ntk:alpha_opt_measured");
  EXPECT_DOUBLE_EQ(ms[15].factor, 0.5);  // α < 1 is a valid NTK base scaling
  EXPECT_EQ(parse_scaling_methods("ntk-aware-sweep:1..3:x1.5").size(), 3u);  // 1, 1.5, 2.25
  EXPECT_EQ(parse_scaling_methods("yarn:alpha_opt")[0].label(), "yarn:alpha_opt");
  for (const char* bad : {"ntk-sweep:1..4", "ntk-sweep:4..1:x2", "ntk-sweep:0..4:x2", "yarn-sweep:0.5..4:x2",
                          "ntk-sweep:1..4:x1", "logn-sweep:1..4:x2", "ntk-sweep:1..1e9:x1.01"}) {
    try {
      parse_scaling_methods(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  // α_opt with the measured γ in place of γ_t, and where it is undefined.
  auto measured = parse_scaling_methods("ntk:alpha_opt_measured")[0];
  EXPECT_THROW(scaling_factor(measured, cfg4(), 4096, 0.85), Error);  // no γ read yet
  measured.gamma = 0.6;
  EXPECT_NEAR(scaling_factor(measured, cfg4(), 4096, 0.85), 4096 * std::sqrt(2.0) * 1.6 / (2 * 1e4 * 0.4), 1e-9);
  EXPECT_EQ(scaling_unavailable(measured, cfg4(), 4096, 0.85), "");
  measured.gamma = 1.09;
  EXPECT_NE(scaling_unavailable(measured, cfg4(), 4096, 0.85).find("undefined"), std::string::npos);
  // YaRN at an α_opt < 1 (θ = 1e4, L = 128: 0.11) is no YaRN factor.
  const auto yarn_opt = parse_scaling_methods("yarn:alpha_opt")[0];
  EXPECT_NE(scaling_unavailable(yarn_opt, cfg4(), 128, 0.85).find("domain"), std::string::npos);
  EXPECT_EQ(scaling_unavailable(yarn_opt, cfg4(), 4096, 0.85), "");
}

TEST(RopeScaling, HandComputedBasesAndFrequencies) {
  EXPECT_DOUBLE_EQ(settings("none").rope_theta, 10000.0);
  EXPECT_NEAR(base_of(settings("ntk:8")), 80000.0, 1e-7);             // plain: 8 * 1e4
  EXPECT_NEAR(base_of(settings("ntk-aware:4")), 160000.0, 1e-6);      // 1e4 * 4^(4/(4-2))
  // α_opt(1e4, 4096, 0.85) = 4096·√2·1.85 / (2·1e4·0.15) = 3.5721...
  EXPECT_NEAR(base_of(settings("ntk:alpha_opt")), 35721.3, 0.5);
  // Linear (pi): every frequency / 4 (transformers divides inv_freq; positions / 4 is the same map).
  const auto pi = settings("pi:4");
  ASSERT_TRUE(pi.inv_freq.defined());
  EXPECT_NEAR(pi.inv_freq[0].item<double>(), 0.25, 1e-15);
  EXPECT_NEAR(pi.inv_freq[1].item<double>(), 0.01 / 4, 1e-15);
  // YaRN s=4, T_train 256: pair 0 (ω=1) turns 256/2π = 40.7 times -> kept (ramp 1);
  // pair 1 (ω=0.01) turns 0.41 times -> interpolated: 0.01/4 = 0.0025.
  auto y = settings("yarn:4");
  ASSERT_TRUE(y.inv_freq.defined());
  EXPECT_NEAR(y.inv_freq[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(y.inv_freq[1].item<double>(), 0.0025, 1e-12);
  EXPECT_NEAR(y.rope_attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);  // cos, sin × 1.13863
  // Dynamic NTK: nothing changes up to T_train; at n = 2·T_train, α = 2 -> θ·2^2.
  EXPECT_NEAR(base_of(settings("dynamic", 256)), 10000.0, 1e-8);
  EXPECT_NEAR(base_of(settings("dynamic", 512)), 40000.0, 1e-7);
  EXPECT_EQ(settings("logn").logn_train_length, 256);
}

TEST(RopeScaling, DynamicAndLognLeavePositionsInsideTrainingLengthUnchanged) {
  auto m = make_model(cfg4(), 9);
  auto ids = torch::randint(0, 30, {1, 200}, at::kLong);
  torch::NoGradGuard ng;
  // Sharpen attention (random init is near uniform), so a 3% query scale shows in the logits.
  for (auto& p : m->named_parameters())
    if (p.key().find("attn.wq") != std::string::npos) p.value().mul_(50.0);
  const auto base = m->forward(ids);
  auto logits_with = [&](const std::string& spec) {
    m->attention = scaling_settings(parse_scaling_methods(spec)[0], m->cfg, 200, 1024);
    return m->forward(ids);
  };
  EXPECT_TRUE(torch::allclose(logits_with("dynamic:2"), base, 0, 0));
  EXPECT_TRUE(torch::allclose(logits_with("logn"), base, 0, 0));
  // The others change the model inside T_train too, by design.
  for (const char* spec : {"pi:2", "ntk:4", "ntk-aware:4", "yarn:4"})
    EXPECT_FALSE(torch::allclose(logits_with(spec), base, 1e-4, 1e-5)) << spec;
  // log-n does act beyond T_train: a 300-token sequence's last rows change.
  auto longer = torch::randint(0, 30, {1, 300}, at::kLong);
  m->attention = scaling_settings(parse_scaling_methods("none")[0], m->cfg, 300, 1024);
  auto plain = m->forward(longer);
  m->attention = scaling_settings(parse_scaling_methods("logn")[0], m->cfg, 300, 1024);
  auto scaled = m->forward(longer);
  EXPECT_TRUE(torch::allclose(scaled.narrow(1, 0, 256), plain.narrow(1, 0, 256), 0, 0));
  EXPECT_FALSE(torch::allclose(scaled.narrow(1, 256, 44), plain.narrow(1, 256, 44), 1e-4, 1e-5));
}
