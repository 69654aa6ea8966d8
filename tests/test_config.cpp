// Each config field is declared once (train_fields(), model_fields()); these
// tests hold every declared field to it: a JSON round trip and the
// config.json that --resume reads give it back, and it is a flag.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <variant>

#include "common/config_fields.h"
#include "common/io.h"
#include "common/run_dir.h"
#include "test_util.h"
#include "train/train_config.h"

using namespace ropelab;

namespace {

// Every field away from its default (and still valid): a field added without
// a line here fails NothingIsAtItsDefault.
train::TrainConfig all_set() {
  train::TrainConfig c;
  c.data_dir = "d";
  c.data_inputs = {"a.txt", "b.jsonl"};
  c.vocab_size = 512;
  c.tokenizer_type = "unigram";
  c.data_mix = "passkey:0.25";
  c.init_from = "hf";
  c.max_steps = 7;
  c.batch_size = 3;
  c.grad_accum = 2;
  c.lr = 1e-2;
  c.min_lr = 1e-3;
  c.warmup_steps = 5;
  c.weight_decay = 0.01;
  c.beta1 = 0.8;
  c.beta2 = 0.99;
  c.grad_clip = 0.5;
  c.seed = 99;
  c.eval_every = 9;
  c.eval_batches = 2;
  c.checkpoints = "every:3";
  c.log_every = 4;
  c.device = "cuda";
  c.threads = 3;
  c.fault_nan_step = 6;
  c.fault_kill_at = "1:8:TERM";
  c.world_size = 2;
  c.dist_timeout_s = 30;
  c.dist_bucket_mb = 1.5;
  c.autocast = "bf16";
  c.fused_adamw = false;
  c.ce_chunk = 64;
  c.cuda_graph = false;
  c.profile_steps = "3:4";
  auto& m = c.model;
  m.vocab_size = 300;
  m.d_model = 96;
  m.n_layers = 3;
  m.n_heads = 6;
  m.n_kv_heads = 2;
  m.d_head = 32;
  m.d_ff = 200;
  m.rope_theta = 5e5;
  m.rotary_fraction = 0.5;
  m.T_train = 64;
  m.norm = "layernorm";
  m.mlp = "gelu";
  m.tie_embeddings = false;
  m.qkv_bias = m.out_bias = m.mlp_bias = m.parallel_residual = true;
  m.norm_eps = 1e-6;
  m.attention_window = 48;
  m.rope_scaling = "longrope";  // rotary_dim 16: 8 factors each
  m.rope_scaling_factor = 3;
  m.rope_original_max_positions = 32;
  m.rope_low_freq_factor = 2;
  m.rope_high_freq_factor = 8;
  m.rope_beta_fast = 16;
  m.rope_beta_slow = 2;
  m.rope_attention_factor = 1.2;
  m.rope_long_factor = {1, 1.5, 2, 3, 4, 6, 8, 10};
  m.rope_short_factor = {1, 1, 1, 1.2, 1.4, 1.6, 1.8, 2};
  m.rope_mscale = 1;
  m.rope_mscale_all_dim = 0.5;
  m.rope_truncate = false;
  m.qk_norm = true;
  m.embed_scale = m.sandwich_norms = true;
  m.query_pre_attn_scalar = 24;
  m.layer_pattern = "sliding,full,full";
  m.sliding_window = 16;
  m.sliding_rope_theta = 100;
  m.sliding_rope = "yarn:2";
  m.sliding_rotary_fraction = 0.5;
  m.nope_attn_scale = 0.1;  // (acts on nope layers only: none here)
  m.nope_floor_scale = 100;
  return c;
}

// Names the fields of `fields` in which a and b differ (or agree, with `same` false).
template <class C>
std::vector<std::string> fields_where(const C& a, const C& b, const std::vector<config::Field<C>>& fields, bool same) {
  std::vector<std::string> out;
  for (const auto& f : fields)
    std::visit([&](auto m) { if ((a.*m == b.*m) == same) out.push_back(f.key); }, f.member);
  return out;
}

}  // namespace

TEST(Config, NothingIsAtItsDefault) {
  const auto c = all_set();
  const train::TrainConfig d;
  EXPECT_EQ(fields_where(c, d, train::train_fields(), true), std::vector<std::string>{});
  EXPECT_EQ(fields_where(c.model, d.model, model::model_fields(), true), std::vector<std::string>{});
}

TEST(Config, EveryFieldSurvivesAJsonRoundTrip) {
  const auto c = all_set();
  const auto back = train::train_config_from_json(train::to_json(c));
  EXPECT_EQ(fields_where(c, back, train::train_fields(), false), std::vector<std::string>{});
  EXPECT_EQ(fields_where(c.model, back.model, model::model_fields(), false), std::vector<std::string>{});
}

// --resume reads RUN_DIR/config.json (train_resume: train_config_from_json of it).
TEST(Config, EveryFieldSurvivesResumesConfigFile) {
  const auto run = test::scratch_dir();
  const auto c = all_set();
  io::write_json_atomic(rundir::config_path(run), train::to_json(c));
  const auto back = train::train_config_from_json(io::read_json(rundir::config_path(run)));
  EXPECT_EQ(fields_where(c, back, train::train_fields(), false), std::vector<std::string>{});
  EXPECT_EQ(fields_where(c.model, back.model, model::model_fields(), false), std::vector<std::string>{});
}

TEST(Config, OlderRunsKeepDefaultsForLaterFields) {
  auto j = train::to_json(train::TrainConfig{});
  for (const auto& f : train::train_fields())
    if (f.optional_in_json) j.erase(f.key);
  EXPECT_EQ(train::train_config_from_json(j).dist_timeout_s, train::TrainConfig{}.dist_timeout_s);
  j.erase("max_steps");
  EXPECT_NE(test::error_of([&] { train::train_config_from_json(j); }).find("max_steps"), std::string::npos);
}

TEST(Config, RulesNameTheFlag) {
  auto c = train::TrainConfig{};
  c.fault_kill_at = "1";
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("fault-kill-at must be RANK:STEP"), std::string::npos);
  EXPECT_EQ(train::parse_fault_kill("1:8:TERM")->step, 8);
  EXPECT_TRUE(train::parse_fault_kill("1:8:TERM")->term);
  EXPECT_FALSE(train::parse_fault_kill("1:8:HUP"));
  c = train::TrainConfig{};
  c.max_steps = 0;
  EXPECT_NE(test::error_of([&] { c.validate(); }).find("train config: max-steps must be > 0"), std::string::npos);
}

TEST(Config, EveryFlaggedFieldIsATrainFlag) {
  const auto help = test::run_ropelab("train --help").output;
  for (const auto& f : train::train_fields())
    if (f.flag) EXPECT_NE(help.find(std::string("--") + f.flag), std::string::npos) << f.flag;
  for (const auto& f : model::model_fields())
    if (f.flag) EXPECT_NE(help.find(std::string("--") + f.flag), std::string::npos) << f.flag;
}
