// Hugging Face export/import: the files are read back here by a safetensors
// reader written independently of common/safetensors.cpp, the fused GPT-NeoX
// q/k/v rows are checked against Hugging Face's documented per-head layout,
// and export -> import must give identical weights and logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "common/io.h"
#include "common/safetensors.h"
#include "model/hf_format.h"
#include "test_util.h"

using namespace ropelab::model;
using ropelab::test::error_of;
using ropelab::test::scratch_dir;

namespace {

ModelConfig llama_cfg() {
  ModelConfig c;
  c.vocab_size = 41; c.d_model = 24; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.d_head = 8;
  c.rope_theta = 500.0; c.T_train = 16;
  return c.resolved();
}
// ropelab's own GPT-NeoX-style model: no biases, sequential residual.
ModelConfig neox_cfg() {
  ModelConfig c = llama_cfg();
  c.norm = "layernorm"; c.mlp = "gelu"; c.n_kv_heads = 4; c.d_head = 6; c.rotary_fraction = 2.0 / 3.0;
  c.tie_embeddings = false;
  return c.resolved();
}
// Pythia's: biases everywhere, parallel residual.
ModelConfig pythia_cfg() {
  ModelConfig c = neox_cfg();
  c.qkv_bias = c.out_bias = c.mlp_bias = c.parallel_residual = true;
  return c.resolved();
}
// Qwen2's: q/k/v biases, grouped KV heads, tied head.
ModelConfig qwen2_cfg() {
  ModelConfig c = llama_cfg();
  c.qkv_bias = true; c.norm_eps = 1e-6;
  return c.resolved();
}
// Biases start at zero; random ones make a round trip mean something.
void randomize_biases(TransformerImpl& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters())
    if (p.key().find(".bias") != std::string::npos) p.value().normal_(0, 0.5);
}

// The test's own reader: 8-byte little-endian length, JSON header, raw data.
struct Raw {
  nlohmann::json header;
  std::string data;
  uint64_t file_size = 0, header_len = 0;
};
Raw read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Raw r;
  r.file_size = all.size();
  unsigned char len[8];
  std::memcpy(len, all.data(), 8);
  for (int i = 0; i < 8; ++i) r.header_len |= uint64_t(len[i]) << (8 * i);
  r.header = nlohmann::json::parse(all.substr(8, r.header_len));
  r.data = all.substr(8 + r.header_len);
  return r;
}
// Tensor NAME of a raw file (F32) as a tensor of its shape.
at::Tensor raw_tensor(const Raw& r, const std::string& name) {
  const auto& e = r.header.at(name);
  const uint64_t b = e["data_offsets"][0], end = e["data_offsets"][1];
  auto shape = e["shape"].get<std::vector<int64_t>>();
  auto t = at::empty(shape, at::kFloat);
  std::memcpy(t.data_ptr(), r.data.data() + b, end - b);
  return t;
}

void expect_same_weights(TransformerImpl& a, TransformerImpl& b) {
  const auto pb = b.named_parameters();
  ASSERT_EQ(a.named_parameters().size(), pb.size());
  for (const auto& p : a.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

}  // namespace

TEST(HfFormat, LlamaFilesFollowTheHuggingFaceLayout) {
  const auto dir = scratch_dir() + "/hf";
  auto m = make_model(llama_cfg(), 3);
  export_hf(*m, dir, "");
  const Raw r = read_raw(dir + "/model.safetensors");
  // Header: 8-aligned, tiles the data exactly, names as transformers' Llama expects.
  EXPECT_EQ(r.header_len % 8, 0u);
  uint64_t bytes = 0;
  std::set<std::string> names;
  for (const auto& [name, e] : r.header.items()) {
    if (name == "__metadata__") continue;
    names.insert(name);
    EXPECT_EQ(e["dtype"], "F32") << name;
    bytes += e["data_offsets"][1].get<uint64_t>() - e["data_offsets"][0].get<uint64_t>();
  }
  EXPECT_EQ(bytes, r.data.size());
  EXPECT_EQ(r.file_size, 8 + r.header_len + bytes);
  std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight"};  // tied: no lm_head
  for (int i = 0; i < 2; ++i)
    for (const char* n : {"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
                          "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      expected.insert("model.layers." + std::to_string(i) + "." + n);
  EXPECT_EQ(names, expected);
  EXPECT_EQ(r.header["model.layers.1.self_attn.k_proj.weight"]["shape"], nlohmann::json({16, 24}));  // 2 KV heads x 8
  EXPECT_TRUE(torch::equal(raw_tensor(r, "model.layers.1.mlp.gate_proj.weight"), m->blocks[1]->as<BlockImpl>()->mlp->gate->weight));

  const auto cfg = ropelab::io::read_json(dir + "/config.json");
  EXPECT_EQ(cfg["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(cfg["num_key_value_heads"], 2);
  EXPECT_EQ(cfg["head_dim"], 8);
  EXPECT_EQ(cfg["rope_theta"], 500.0);
  EXPECT_EQ(cfg["tie_word_embeddings"], true);
}

TEST(HfFormat, GptNeoxFusesQkvPerHeadWithZeroBiases) {
  const auto dir = scratch_dir() + "/hf";
  auto m = make_model(neox_cfg(), 4);
  export_hf(*m, dir, "");
  const Raw r = read_raw(dir + "/model.safetensors");
  // transformers' GPTNeoXAttention: qkv.view(..., heads, 3 * head_size), then q, k, v = chunk(3) per head.
  const int64_t H = 4, hs = 6, d = 24;
  auto qkv = raw_tensor(r, "gpt_neox.layers.1.attention.query_key_value.weight");
  ASSERT_EQ(qkv.sizes(), at::IntArrayRef({3 * H * hs, d}));
  auto* attn = m->blocks[1]->as<BlockImpl>()->attn.get();
  for (int64_t h = 0; h < H; ++h) {
    EXPECT_TRUE(torch::equal(qkv.narrow(0, h * 3 * hs, hs), attn->wq->weight.narrow(0, h * hs, hs))) << h;
    EXPECT_TRUE(torch::equal(qkv.narrow(0, h * 3 * hs + hs, hs), attn->wk->weight.narrow(0, h * hs, hs))) << h;
    EXPECT_TRUE(torch::equal(qkv.narrow(0, h * 3 * hs + 2 * hs, hs), attn->wv->weight.narrow(0, h * hs, hs))) << h;
  }
  EXPECT_EQ(raw_tensor(r, "gpt_neox.layers.0.mlp.dense_h_to_4h.bias").abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(r.header.contains("embed_out.weight"));  // untied
  const auto cfg = ropelab::io::read_json(dir + "/config.json");
  EXPECT_EQ(cfg["architectures"][0], "GPTNeoXForCausalLM");
  EXPECT_EQ(cfg["use_parallel_residual"], false);
  EXPECT_NEAR(cfg["rotary_pct"].get<double>() * hs, 4.0, 1e-12);  // HF: rotary_ndims = int(head_size * rotary_pct)
}

TEST(HfFormat, ExportThenImportGivesIdenticalWeightsAndLogits) {
  int i = 0;
  for (const auto& c : {llama_cfg(), pythia_cfg(), qwen2_cfg()}) {
    const auto dir = scratch_dir(c.norm + std::to_string(i++)) + "/hf";
    auto m = make_model(c, 11);
    randomize_biases(*m);
    m->eval();
    export_hf(*m, dir, "");
    auto back = import_hf(dir);
    EXPECT_EQ(to_json(back->cfg), to_json(m->cfg)) << c.norm;
    // The reference logits written for other loaders are the model's own.
    const auto ref = ropelab::io::read_json(dir + "/ropelab_reference.json");
    auto ref_ids = torch::tensor(ref["input_ids"].get<std::vector<int64_t>>(), at::kLong).unsqueeze(0);
    torch::NoGradGuard ng0;
    auto own = m->forward(ref_ids)[0];
    EXPECT_NEAR(ref["logits"][3][5].get<double>(), own[3][5].item<double>(), 1e-6) << c.norm;
    expect_same_weights(*m, *back);
    auto idx = torch::randint(0, c.vocab_size, {2, 9}, at::kLong);
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(m->forward(idx), back->forward(idx))) << c.norm;
  }
}

TEST(HfFormat, RefusesWhatHasNoExactCounterpart) {
  ModelConfig mixed = llama_cfg();
  mixed.mlp = "gelu";
  EXPECT_NE(error_of([&] { hf_architecture(mixed); }).find("no Hugging Face counterpart"), std::string::npos);
  ModelConfig gqa = neox_cfg();
  gqa.n_kv_heads = 2;
  EXPECT_NE(error_of([&] { hf_architecture(gqa.resolved()); }).find("grouped-query"), std::string::npos);
  ModelConfig partial = llama_cfg();
  partial.rotary_fraction = 0.5;
  EXPECT_NE(error_of([&] { hf_architecture(partial.resolved()); }).find("rotary_fraction"), std::string::npos);

  const auto root = scratch_dir();
  auto m = make_model(neox_cfg(), 5);
  export_hf(*m, root + "/hf", "");
  EXPECT_NE(error_of([&] { export_hf(*m, root + "/hf", ""); }).find("already exists"), std::string::npos);

  // What the model cannot compute exactly is refused by its key.
  auto cfg = ropelab::io::read_json(root + "/hf/config.json");
  EXPECT_EQ(cfg["attention_bias"], false);  // ropelab's bias-free model says so (zero biases are written too)
  auto bad = cfg;
  bad["hidden_act"] = "gelu_new";
  EXPECT_NE(error_of([&] { model_config_from_hf(bad, "c.json"); }).find("hidden_act \"gelu_new\""), std::string::npos);
  bad = cfg;
  bad["rope_scaling"] = {{"rope_type", "mrope"}, {"factor", 2.0}};
  EXPECT_NE(error_of([&] { model_config_from_hf(bad, "c.json"); }).find("but rope_parameters says"), std::string::npos);
  bad.erase("rope_parameters");
  EXPECT_NE(error_of([&] { model_config_from_hf(bad, "c.json"); }).find("rope type \"mrope\""), std::string::npos);
  bad = cfg;
  bad["architectures"] = {"Qwen2ForCausalLM"};
  bad.update({{"hidden_act", "silu"}, {"use_sliding_window", true}, {"partial_rotary_factor", 1.0}});
  bad.erase("rope_parameters");
  EXPECT_NE(error_of([&] { model_config_from_hf(bad, "c.json"); }).find("use_sliding_window"), std::string::npos);
  bad = cfg;
  bad["architectures"] = {"PhiForCausalLM"};
  EXPECT_NE(error_of([&] { model_config_from_hf(bad, "c.json"); }).find("\"PhiForCausalLM\""), std::string::npos);
  auto file = ropelab::safetensors::read(root + "/hf/model.safetensors");
  auto& bias = file.tensors.at("gpt_neox.layers.0.attention.dense.bias");
  const float one = 1.0f;
  std::memcpy(bias.bytes.data(), &one, 4);
  ropelab::safetensors::write(root + "/hf/model.safetensors", file.tensors);
  EXPECT_NE(error_of([&] { import_hf(root + "/hf"); }).find("gpt_neox.layers.0.attention.dense.bias\" is not zero"),
            std::string::npos);
  // Absent biases (attention_bias = false) count as zero; an absent weight is named.
  file.tensors.erase("gpt_neox.layers.0.attention.dense.bias");
  ropelab::safetensors::write(root + "/hf/model.safetensors", file.tensors);
  EXPECT_NO_THROW(import_hf(root + "/hf"));
  file.tensors.erase("gpt_neox.layers.0.attention.dense.weight");
  ropelab::safetensors::write(root + "/hf/model.safetensors", file.tensors);
  EXPECT_NE(error_of([&] { import_hf(root + "/hf"); }).find("\"gpt_neox.layers.0.attention.dense.weight\" is missing"),
            std::string::npos);
  // transformers v5 keeps θ in rope_parameters: it wins over the legacy keys; its scaling type is read.
  cfg = ropelab::io::read_json(root + "/hf/config.json");
  cfg["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}, {"partial_rotary_factor", 0.5}};
  const auto v5 = model_config_from_hf(cfg, "c.json");
  EXPECT_EQ(v5.rope_theta, 5e5);
  EXPECT_EQ(v5.rotary_fraction, 0.5);
  cfg["rope_parameters"].update({{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 8}});
  const auto yarn = model_config_from_hf(cfg, "c.json");
  EXPECT_EQ(yarn.rope_scaling, "yarn");
  EXPECT_EQ(yarn.rope_scaling_factor, 4.0);
  EXPECT_EQ(yarn.rope_original_max_positions, 8);
  cfg["rope_parameters"]["mscale"] = 1.0;  // DeepSeek's YaRN variant: honoured
  EXPECT_EQ(model_config_from_hf(cfg, "c.json").rope_mscale, 1.0);
  cfg["rope_parameters"]["low_freq_factor"] = 1.0;  // a key YaRN does not take: named
  EXPECT_NE(error_of([&] { model_config_from_hf(cfg, "c.json"); }).find("yarn takes no parameter \"low_freq_factor\""),
            std::string::npos);
}

TEST(HfFormat, SafetensorsReaderNamesTheFault) {
  const auto dir = scratch_dir();
  const std::string path = dir + "/t.safetensors";
  ropelab::safetensors::Tensor t{"F32", {2, 3}, std::string(24, '\0')};
  ropelab::safetensors::write(path, {{"a", t}});
  auto raw = ropelab::io::read_file(path);
  ropelab::io::write_atomic(path, raw.substr(0, raw.size() - 4));  // truncated data
  EXPECT_NE(error_of([&] { ropelab::safetensors::read(path); }).find("tensor \"a\" has data_offsets outside the data"),
            std::string::npos);
  ropelab::io::write_atomic(path, raw.substr(0, 12));  // truncated header
  EXPECT_NE(error_of([&] { ropelab::safetensors::read(path); }).find("exceeds the file"), std::string::npos);
  t.shape = {5};
  EXPECT_NE(error_of([&] { ropelab::safetensors::write(path, {{"a", t}}); }).find("its shape needs 20"), std::string::npos);
}
