// The table of RoPE methods (model/rope_methods.h) against transformers'
// definitions, each re-derived here line by line from modeling_rope_utils
// (version 5) in plain float64, with hand-computed values where they are
// short; how config.json's keys reach it (dynamic and longrope as
// transformers reads them); and the refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "model/hf_config.h"
#include "model/rope_methods.h"

using namespace ropelab;
using namespace ropelab::model;
using json = nlohmann::json;

namespace {

// transformers: 1 / base^(arange(0, dim, 2) / dim)
std::vector<double> hf_default(double base, int64_t dim) {
  std::vector<double> inv;
  for (int64_t j = 0; j < dim; j += 2) inv.push_back(1.0 / std::pow(base, double(j) / double(dim)));
  return inv;
}

RopeFrequencies freqs(const std::string& type, const RopeGeometry& g, int64_t seq_len, const json& params = json::object()) {
  RopeParams p;
  p.type = type;
  for (const auto& [k, v] : params.items()) set_rope_param(p, k, v, "test");
  check_rope_params(p, g, "test");
  return rope_frequencies(p, g, seq_len);
}

void expect_same(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-15 * std::max(1.0, std::abs(want[i]))) << what << " " << i;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 50}, {"hidden_size", 32}, {"intermediate_size", 48},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"max_position_embeddings", 128},
          {"rope_theta", 1e4}, {"hidden_act", "silu"}, {"rms_norm_eps", 1e-6}};
}

}  // namespace

TEST(RopeMethods, TheTableHoldsTransformersSevenTypesAndRopelabsOwn) {
  std::set<std::string> hf, names;
  for (const auto& m : rope_methods()) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name;
    if (*m.hf_type) hf.insert(m.hf_type);
  }
  EXPECT_EQ(hf, (std::set<std::string>{"default", "linear", "dynamic", "yarn", "longrope", "llama3", "proportional"}));
  EXPECT_EQ(std::string(rope_method("pi").name), "linear");
  EXPECT_EQ(std::string(rope_method("none").name), "default");
  for (const char* closed : {"ntk", "ntk-aware", "yarn"}) EXPECT_TRUE(rope_method(closed).closed_form) << closed;
  EXPECT_FALSE(rope_method("llama3").closed_form);
  EXPECT_NE(error_of([] { rope_method("rope2"); }).find("unknown RoPE method \"rope2\" (expected one of: default (none), linear (pi)"),
            std::string::npos);
}

TEST(RopeMethods, DefaultLinearNtkAndDynamicAsTransformersDefinesThem) {
  const RopeGeometry g{1e4, 16, 0.5, 64};  // GPT-NeoX's partial rotary: 8 of 16 dims rotate
  expect_same(freqs("default", g, 0).inv_freq, hf_default(1e4, 8), "default");
  EXPECT_NEAR(freqs("default", g, 0).inv_freq[1], 0.1, 1e-16);  // 1e4^(−2/8)
  auto lin = hf_default(1e4, 8);
  for (auto& x : lin) x /= 4;
  expect_same(freqs("linear", g, 0, {{"factor", 4}}).inv_freq, lin, "linear");
  expect_same(freqs("ntk", g, 0, {{"factor", 8}}).inv_freq, hf_default(8e4, 8), "ntk");
  expect_same(freqs("ntk-aware", g, 0, {{"factor", 4}}).inv_freq, hf_default(1e4 * std::pow(4.0, 8.0 / 6.0), 8), "ntk-aware");
  // dynamic: seq_len = max(n, max_position_embeddings); base·(f·n/C − (f − 1))^(dim/(dim−2)).
  expect_same(freqs("dynamic", g, 40, {{"factor", 2}}).inv_freq, hf_default(1e4, 8), "dynamic within C");
  expect_same(freqs("dynamic", g, 256, {{"factor", 2}}).inv_freq,
              hf_default(1e4 * std::pow(2.0 * 256 / 64 - 1, 8.0 / 6.0), 8), "dynamic at 4C");
}

TEST(RopeMethods, YarnAsTransformersDefinesIt) {
  const RopeGeometry g{1e4, 16, 1.0, 256};
  // transformers' _compute_yarn_parameters, step by step.
  auto reference = [&](double factor, double original, bool truncate, double beta_fast = 32, double beta_slow = 1) {
    const double dim = 16, base = 1e4;
    auto correction_dim = [&](double rot) { return dim * std::log(original / (rot * 2 * M_PI)) / (2 * std::log(base)); };
    double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
    if (truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0), high = std::min(high, dim - 1);
    if (low == high) high += 0.001;
    std::vector<double> inv;
    for (int j = 0; j < 8; ++j) {
      const double pos_freq = std::pow(base, 2.0 * j / dim);
      const double extrapolation_factor = 1 - std::clamp((j - low) / (high - low), 0.0, 1.0);
      inv.push_back(1 / (factor * pos_freq) * (1 - extrapolation_factor) + 1 / pos_freq * extrapolation_factor);
    }
    return inv;
  };
  auto y = freqs("yarn", g, 0, {{"factor", 4}, {"original_max_position_embeddings", 64}});
  expect_same(y.inv_freq, reference(4, 64, true), "yarn");
  EXPECT_NEAR(y.attention_factor, 0.1 * std::log(4.0) + 1, 1e-15);
  // Hand-computed: the ramp runs from dim 0 to 3 (floor(−0.99) → 0, ceil(2.02) = 3), so pair 1 is
  // 2/3 kept: 1e4^(−1/8)·(2/3 + 1/12) = 0.316228·0.75.
  EXPECT_NEAR(y.inv_freq[1], std::pow(1e4, -0.125) * 0.75, 1e-15);
  expect_same(freqs("yarn", g, 0, {{"factor", 4}, {"original_max_position_embeddings", 64}, {"truncate", false}}).inv_freq,
              reference(4, 64, false), "yarn truncate false");
  expect_same(freqs("yarn", g, 0, {{"factor", 8}, {"beta_fast", 16}, {"beta_slow", 2}}).inv_freq,
              reference(8, 256, true, 16, 2), "yarn betas, original = the context");
  // DeepSeek's mscale pair: get_mscale(f, mscale) / get_mscale(f, mscale_all_dim).
  auto ds = freqs("yarn", g, 0, {{"factor", 40}, {"mscale", 1.0}, {"mscale_all_dim", 0.707}});
  EXPECT_NEAR(ds.attention_factor, (0.1 * std::log(40.0) + 1) / (0.1 * 0.707 * std::log(40.0) + 1), 1e-15);
  // Only one of them set: transformers falls back to get_mscale(f).
  EXPECT_NEAR(freqs("yarn", g, 0, {{"factor", 40}, {"mscale", 1.0}}).attention_factor, 0.1 * std::log(40.0) + 1, 1e-15);
  EXPECT_DOUBLE_EQ(freqs("yarn", g, 0, {{"factor", 4}, {"attention_factor", 0.5}}).attention_factor, 0.5);
}

TEST(RopeMethods, Llama3SmoothsTheBandBetweenItsFactors) {
  // Llama 3.1: θ 5e5, head 128, factor 8, low 1, high 4, original 8192.
  const RopeGeometry g{5e5, 128, 1.0, 131072};
  auto got = freqs("llama3", g, 0, {{"factor", 8}, {"low_freq_factor", 1}, {"high_freq_factor", 4},
                                    {"original_max_position_embeddings", 8192}}).inv_freq;
  int kept = 0, smoothed = 0, divided = 0;
  const auto plain = hf_default(5e5, 128);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * M_PI / plain[i], low_wavelen = 8192.0 / 1, high_wavelen = 8192.0 / 4;
    double want = wavelen > low_wavelen ? plain[i] / 8 : plain[i];
    if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * want / 8 + smooth * want;
      ++smoothed;
    } else {
      (wavelen > low_wavelen ? divided : kept)++;
    }
    EXPECT_NEAR(got[i], want, 1e-15 * std::max(1.0, want)) << i;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(smoothed, 0);  // the band is exercised
  EXPECT_GT(divided, 0);
}

TEST(RopeMethods, LongropeSwitchesFactorsPastTheOriginalContext) {
  const RopeGeometry g{1e4, 8, 1.0, 64};
  const json p = {{"factor", 4}, {"original_max_position_embeddings", 16}, {"short_factor", {1.0, 1.5, 2.0, 3.0}},
                  {"long_factor", {2.0, 4.0, 8.0, 16.0}}};
  const auto plain = hf_default(1e4, 8);
  auto divided = [&](std::vector<double> by) {
    for (size_t i = 0; i < by.size(); ++i) by[i] = plain[i] / by[i];
    return by;
  };
  const auto at16 = freqs("longrope", g, 16, p), at17 = freqs("longrope", g, 17, p);
  expect_same(at16.inv_freq, divided({1.0, 1.5, 2.0, 3.0}), "short at n = original");
  expect_same(at17.inv_freq, divided({2.0, 4.0, 8.0, 16.0}), "long at n = original + 1");
  EXPECT_NEAR(at17.attention_factor, std::sqrt(1 + std::log(4.0) / std::log(16.0)), 1e-15);  // √1.5
  EXPECT_NEAR(at17.attention_factor, std::sqrt(1.5), 1e-15);
}

TEST(RopeMethods, ProportionalRotatesTheFirstPairsOfTheWholeHead) {
  // Gemma 4: p = 0.25 of a 16-dim head: ⌊0.25·16/2⌋ = 2 pairs at θ^(−2i/16), 6 pairs still.
  const RopeGeometry g{1e6, 16, 0.25, 0};
  const auto f = freqs("proportional", g, 0);
  EXPECT_EQ(rotary_dims(RopeParams{"proportional"}, g), 16);
  expect_same(f.inv_freq, {1.0, 0.17782794100389226, 0, 0, 0, 0, 0, 0}, "proportional");  // 1e6^(−1/8)
  expect_same(freqs("proportional", g, 0, {{"factor", 2}}).inv_freq, {0.5, 0.17782794100389226 / 2, 0, 0, 0, 0, 0, 0},
              "proportional / factor");
  // The GPT-NeoX partial rotary of the same fraction: 4 dims, exponent over 4.
  EXPECT_EQ(rotary_dims(RopeParams{"default"}, g), 4);
}

TEST(RopeMethods, ParametersAreCheckedByName) {
  RopeParams p;
  p.type = "llama3";
  EXPECT_NE(error_of([&] { set_rope_param(p, "mscale", 1.0, "where"); })
                .find("where: llama3 takes no parameter \"mscale\" (it takes factor, original_max_position_embeddings, "
                      "low_freq_factor, high_freq_factor)"),
            std::string::npos);
  p.type = "linear";
  EXPECT_NE(error_of([&] { set_rope_param(p, "factor", 0.5, "where"); }).find("factor must be a number >= 1"), std::string::npos);
  p.type = "ntk";
  EXPECT_EQ(error_of([&] { set_rope_param(p, "factor", 0.5, "where"); }), "");  // θ' = 0.5·θ is a base
  p.type = "yarn";
  EXPECT_NE(error_of([&] { set_rope_param(p, "truncate", 1, "where"); }).find("truncate must be true or false"), std::string::npos);
  p.factor = 2;
  p.beta_fast = 1;
  EXPECT_NE(error_of([&] { check_rope_params(p, {1e4, 16, 1, 64}, "where"); }).find("beta_fast > beta_slow"), std::string::npos);
  RopeParams lr;
  lr.type = "longrope";
  lr.long_factor = lr.short_factor = {1, 1};
  EXPECT_NE(error_of([&] { check_rope_params(lr, {1e4, 16, 1, 64}, "where"); })
                .find("long_factor and short_factor of rotary_dim/2 = 8 numbers each (given 2 and 2)"),
            std::string::npos);
  RopeParams dyn;
  dyn.type = "dynamic";
  EXPECT_NE(error_of([&] { check_rope_params(dyn, {1e4, 16, 1, 0}, "where"); }).find("max_position_embeddings"),
            std::string::npos);
}

TEST(RopeMethods, HfConfigReadsDynamicAsTransformersDoes) {
  // transformers reads no original context for dynamic: C is max_position_embeddings (128), not 32.
  json hf = llama_config();
  hf["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}, {"original_max_position_embeddings", 32}};
  const auto c = model_config_from_hf(hf, "config.json");
  EXPECT_EQ(c.rope_scaling, "dynamic");
  EXPECT_EQ(c.rope_original_max_positions, 0);
  const auto f = rope_frequencies(c.rope_params(), c.rope_geometry(), 512);
  expect_same(f.inv_freq, hf_default(1e4 * std::pow(2.0 * 512 / 128 - 1, 8.0 / 6.0), 8), "dynamic, C = 128");
  expect_same(rope_frequencies(c.rope_params(), c.rope_geometry(), 100).inv_freq, hf_default(1e4, 8), "dynamic within C");
}

TEST(RopeMethods, HfConfigReadsLongropeWhereverItsOriginalContextSits) {
  const json lists = {{"short_factor", {1.0, 1.0, 1.5, 2.0}}, {"long_factor", {2.0, 3.0, 5.0, 8.0}}};
  auto read = [&](const json& rope, const json& top) {
    json hf = llama_config();
    hf["rope_parameters"] = rope;
    hf["rope_parameters"].update(lists);
    hf.update(top);
    return model_config_from_hf(hf, "config.json");
  };
  // transformers 5's layout: original inside rope_parameters, no factor -> factor = 128 / 32.
  auto inner = read({{"rope_type", "longrope"}, {"rope_theta", 1e4}, {"original_max_position_embeddings", 32}}, json::object());
  EXPECT_EQ(inner.rope_original_max_positions, 32);
  EXPECT_DOUBLE_EQ(inner.rope_scaling_factor, 4.0);
  auto f = rope_frequencies(inner.rope_params(), inner.rope_geometry(), 33);
  EXPECT_NEAR(f.attention_factor, std::sqrt(1 + std::log(4.0) / std::log(32.0)), 1e-15);
  EXPECT_NEAR(f.inv_freq[3], hf_default(1e4, 8)[3] / 8.0, 1e-18);  // the long factors past 32
  EXPECT_NEAR(rope_frequencies(inner.rope_params(), inner.rope_geometry(), 32).inv_freq[3], hf_default(1e4, 8)[3] / 2.0, 1e-18);
  // Phi-3's layout: original at the top level, which wins over an inner one.
  auto top = read({{"rope_type", "longrope"}, {"original_max_position_embeddings", 8}}, {{"original_max_position_embeddings", 16}});
  EXPECT_EQ(top.rope_original_max_positions, 16);
  EXPECT_DOUBLE_EQ(top.rope_scaling_factor, 8.0);
  // An explicit factor is used as given.
  auto given = read({{"rope_type", "longrope"}, {"original_max_position_embeddings", 32}, {"factor", 2.0}}, json::object());
  EXPECT_DOUBLE_EQ(given.rope_scaling_factor, 2.0);
  EXPECT_NEAR(rope_frequencies(given.rope_params(), given.rope_geometry(), 40).attention_factor,
              std::sqrt(1 + std::log(2.0) / std::log(32.0)), 1e-15);
}

TEST(RopeMethods, HfConfigRefusesWhatATypeDoesNotTakeByName) {
  json hf = llama_config();
  hf["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1}, {"high_freq_factor", 4},
                        {"beta_fast", 32}};
  EXPECT_NE(error_of([&] { model_config_from_hf(hf, "config.json"); }).find("llama3 takes no parameter \"beta_fast\""),
            std::string::npos);
  hf["rope_scaling"] = {{"rope_type", "ntk"}, {"factor", 2.0}};  // ropelab's own: no transformers type
  EXPECT_NE(error_of([&] { model_config_from_hf(hf, "config.json"); }).find("rope type \"ntk\" is not one of transformers'"),
            std::string::npos);
  hf["rope_scaling"] = {{"rope_type", "yarn"}};
  EXPECT_NE(error_of([&] { model_config_from_hf(hf, "config.json"); }).find("yarn needs \"factor\""), std::string::npos);
  // YaRN's mscale, mscale_all_dim and truncate are honoured, not refused.
  hf["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}, {"truncate", false}};
  const auto c = model_config_from_hf(hf, "config.json");
  EXPECT_FALSE(c.rope_truncate);
  EXPECT_DOUBLE_EQ(c.rope_mscale, 1.0);
  EXPECT_DOUBLE_EQ(rope_frequencies(c.rope_params(), c.rope_geometry(), 10).attention_factor, 1.0);  // equal mscales
}

// The docs' table lists every method of the one table, under its name.
TEST(RopeMethods, TheDocsListEveryMethod) {
  std::ifstream f(std::string(ROPELAB_SOURCE_DIR) + "/docs/rope-methods.md");
  ASSERT_TRUE(f.good());
  const std::string doc((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const auto& m : rope_methods()) EXPECT_NE(doc.find("| `" + std::string(m.name) + "`"), std::string::npos) << m.name;
}

// One reader of a parameter written as text (--scaling's KEY=VALUE, rope freqs' flags).
TEST(RopeMethods, ParameterTextIsReadOneWay) {
  EXPECT_EQ(rope_param_from_text("long_factor", "1,2.5", ','), json({1.0, 2.5}));
  EXPECT_EQ(rope_param_from_text("short_factor", "1/3", '/'), json({1.0, 3.0}));
  EXPECT_EQ(rope_param_from_text("truncate", "false", ','), json(false));
  EXPECT_EQ(rope_param_from_text("factor", "4", '/'), json(4.0));
  EXPECT_EQ(rope_param_from_text("factor", "four", '/'), json("four"));  // left for set_rope_param to refuse
  RopeParams p;
  p.type = "yarn";
  EXPECT_NE(error_of([&] { set_rope_param(p, "factor", rope_param_from_text("factor", "four", '/'), "w"); })
                .find("w: factor must be a number >= 1"),
            std::string::npos);
}

// A method written as one string (--scaling's form, the sliding layers'
// sliding_rope) reads into the parameters it names, and back.
TEST(RopeMethods, ASpecReadsIntoItsParametersAndBack) {
  const RopeParams yarn = rope_params_from_spec("yarn:4:beta_fast=16:truncate=false", "here");
  EXPECT_EQ(yarn.type, "yarn");
  EXPECT_DOUBLE_EQ(yarn.factor, 4.0);
  EXPECT_DOUBLE_EQ(yarn.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(yarn.beta_slow, 1.0);
  EXPECT_FALSE(yarn.truncate);
  EXPECT_EQ(rope_spec(yarn), "yarn:4.0:beta_fast=16.0:truncate=false");
  EXPECT_EQ(rope_params_from_spec("pi:2", "here").type, "linear");  // the alias
  EXPECT_EQ(rope_spec(rope_params_from_spec("default", "here")), "default");
  const RopeParams lr = rope_params_from_spec("longrope:2:long_factor=1/2.5:short_factor=1/1", "here");
  EXPECT_EQ(lr.long_factor, (std::vector<double>{1.0, 2.5}));
  // Every parameter survives the round trip, lists included.
  for (const std::string spec : {"yarn:4:beta_fast=16:truncate=false", "longrope:2:long_factor=1/2.5:short_factor=1/1",
                                 "llama3:8:low_freq_factor=2:original_max_position_embeddings=64", "dynamic:3", "logn"}) {
    const RopeParams p = rope_params_from_spec(spec, "here");
    EXPECT_EQ(rope_params_json(rope_params_from_spec(rope_spec(p), "again")), rope_params_json(p)) << spec;
  }
  EXPECT_NE(error_of([] { rope_params_from_spec("rotate:2", "here"); }).find("here: \"rotate:2\" names no RoPE method"),
            std::string::npos);
  EXPECT_NE(error_of([] { rope_params_from_spec("yarn:4:beta", "here"); }).find("here: \"beta\" is no KEY=VALUE"),
            std::string::npos);
  EXPECT_NE(error_of([] { rope_params_from_spec("yarn:factor=4", "here"); }).find("give the factor as yarn:F"),
            std::string::npos);
  EXPECT_NE(error_of([] { rope_params_from_spec("linear:0.5", "here"); }).find("here: factor must be"), std::string::npos);
  EXPECT_NE(error_of([] { rope_params_from_spec("default:2", "here"); }).find("default takes no parameter \"factor\""),
            std::string::npos);
}

// transformers 5's per-layer-type rope parameters give the sliding layers their own method.
TEST(RopeMethods, HfConfigReadsTheSlidingLayersOwnMethod) {
  json hf = {{"architectures", {"Gemma3ForCausalLM"}}, {"model_type", "gemma3_text"}, {"vocab_size", 64}, {"hidden_size", 32},
             {"intermediate_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
             {"head_dim", 16}, {"max_position_embeddings", 64}, {"sliding_window", 8},
             {"layer_types", {"sliding_attention", "full_attention"}}, {"query_pre_attn_scalar", 16},
             {"hidden_activation", "gelu_pytorch_tanh"},
             {"rope_parameters", {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e6}}},
                                  {"sliding_attention", {{"rope_type", "yarn"}, {"factor", 4.0}, {"beta_fast", 16.0},
                                                         {"rope_theta", 500.0}}}}}};
  const auto c = model_config_from_hf(hf, "config.json");
  EXPECT_EQ(c.sliding_rope_theta, 500.0);
  const RopeParams p = c.rope_params_of("sliding");
  EXPECT_EQ(p.type, "yarn");
  EXPECT_DOUBLE_EQ(p.factor, 4.0);
  EXPECT_DOUBLE_EQ(p.beta_fast, 16.0);
  EXPECT_EQ(c.rope_params_of("full").type, "default");
  hf["rope_parameters"]["sliding_attention"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"partial_rotary_factor", 0.5}};
  EXPECT_NE(error_of([&] { model_config_from_hf(hf, "config.json"); }).find("partial_rotary_factor below 1 on sliding layers"),
            std::string::npos);
  hf["rope_parameters"]["sliding_attention"] = {{"rope_type", "linear"}, {"beta_fast", 2.0}};
  EXPECT_NE(error_of([&] { model_config_from_hf(hf, "config.json"); }).find("linear takes no parameter \"beta_fast\""),
            std::string::npos);
}
