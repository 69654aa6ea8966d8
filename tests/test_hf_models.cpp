// Released Hugging Face architectures, loaded exactly. Each test writes a tiny
// random model in the HF layout itself (its own safetensors writer, its own
// bf16 rounding, its own shards and index), and compares ropelab's logits
// with a float64 forward written here from the HF modeling code's
// definitions, by the HF tensor names (not through ropelab's model):
//   GPT-NeoX/Pythia: fused per-head q|k|v with biases, partial rotary,
//                    LayerNorm with bias, parallel residual, exact gelu,
//                    untied embed_out
//   Qwen2:           q/k/v biases (no o bias), grouped KV heads, RMSNorm
//                    eps 1e-6, SwiGLU, tied head
//   Mistral:         the sliding window
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "bpe_fixture.h"
#include "common/io.h"
#include "common/safetensors.h"
#include "data/prepare.h"
#include "eval/gamma_eval.h"
#include "eval/kv_eval.h"
#include "eval/niah.h"
#include "model/hf_format.h"
#include "model/trained_rope.h"
#include "reference_model.h"
#include "test_util.h"

using namespace ropelab;
using json = nlohmann::json;
using test::error_of;
using test::scratch_dir;

namespace {

using Weights = std::map<std::string, at::Tensor>;  // HF name -> float64 values

// ---- The test's own writer of the HF layout ----

// float -> bfloat16 bits, round to nearest even (the weights are stored so).
uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}
double from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Rounds every weight to what `dtype` stores, so the float64 reference sees the stored values.
void round_to(Weights& w, const std::string& dtype) {
  for (auto& [name, t] : w) {
    auto f = t.to(at::kFloat).contiguous();
    if (dtype == "BF16") {
      auto out = at::empty_like(t);
      for (int64_t i = 0; i < f.numel(); ++i) out.data_ptr<double>()[i] = from_bf16(bf16_bits(f.data_ptr<float>()[i]));
      t = out;
    } else {
      t = f.to(at::kDouble);
    }
  }
}

// One safetensors file: 8-byte length, JSON header padded with spaces, data in name order.
void write_safetensors(const std::string& path, const Weights& w, const std::string& dtype) {
  json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const auto& [name, t] : w) {
    auto f = t.to(at::kFloat).contiguous();
    const size_t begin = data.size();
    for (int64_t i = 0; i < f.numel(); ++i) {
      const float v = f.data_ptr<float>()[i];
      if (dtype == "BF16") {
        const uint16_t b = bf16_bits(v);
        data.append(reinterpret_cast<const char*>(&b), 2);
      } else {
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
    }
    header[name] = {{"dtype", dtype}, {"shape", t.sizes().vec()}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t n = h.size();
  std::ofstream out(path, std::ios::binary);
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xFF));
  out << h << data;
}

// config.json, the weights (one file, or `shards` files and the index), and a byte-level tokenizer.json.
void write_hf_dir(const std::string& dir, const json& config, const Weights& w, const std::string& dtype, int shards) {
  std::filesystem::create_directories(dir);
  io::write_json_atomic(dir + "/config.json", config);
  if (shards == 1) {
    write_safetensors(dir + "/model.safetensors", w, dtype);
  } else {
    std::vector<Weights> parts(shards);
    json map = json::object();
    int i = 0;
    for (const auto& [name, t] : w) {
      const int s = i++ % shards;
      parts[s][name] = t;
      map[name] = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors";
    }
    for (int s = 0; s < shards; ++s)
      write_safetensors(dir + "/model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards) + ".safetensors",
                        parts[s], dtype);
    io::write_json_atomic(dir + "/model.safetensors.index.json", {{"metadata", {{"total_size", 0}}}, {"weight_map", map}});
  }
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[test::byte_char(b)] = b;
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", json::array({{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false},
                                     {"single_word", false}, {"lstrip", false}, {"rstrip", false}}})},
      {"normalizer", nullptr}, {"pre_tokenizer", byte_level}, {"post_processor", byte_level}, {"decoder", byte_level},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                 {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
                 {"merges", json::array()}}}};
  io::write_json_atomic(dir + "/tokenizer.json", tokenizer);
}

at::Tensor rnd(std::vector<int64_t> shape, double std, at::Generator& g) {
  return at::normal(0.0, std, shape, g, at::TensorOptions().dtype(at::kDouble));
}

// ---- Tiny models of each architecture: config.json and random weights ----

constexpr int64_t V = 260, D = 32, L = 2, H = 4, DH = 8, FF = 48;

json pythia_config() {
  return {{"architectures", {"GPTNeoXForCausalLM"}}, {"model_type", "gpt_neox"}, {"vocab_size", V}, {"hidden_size", D},
          {"intermediate_size", FF}, {"num_hidden_layers", L}, {"num_attention_heads", H},
          {"max_position_embeddings", 64}, {"rotary_pct", 0.25}, {"rotary_emb_base", 10000}, {"hidden_act", "gelu"},
          {"layer_norm_eps", 1e-5}, {"use_parallel_residual", true}, {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}
Weights pythia_weights(uint64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  Weights w;
  w["gpt_neox.embed_in.weight"] = rnd({V, D}, 1.0, g);
  for (int l = 0; l < L; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm"}) {
      w[p + n + ".weight"] = 1.0 + rnd({D}, 0.1, g);
      w[p + n + ".bias"] = rnd({D}, 0.1, g);
    }
    w[p + "attention.query_key_value.weight"] = rnd({3 * D, D}, 0.2, g);
    w[p + "attention.query_key_value.bias"] = rnd({3 * D}, 0.2, g);
    w[p + "attention.dense.weight"] = rnd({D, D}, 0.2, g);
    w[p + "attention.dense.bias"] = rnd({D}, 0.1, g);
    w[p + "mlp.dense_h_to_4h.weight"] = rnd({FF, D}, 0.2, g);
    w[p + "mlp.dense_h_to_4h.bias"] = rnd({FF}, 0.1, g);
    w[p + "mlp.dense_4h_to_h.weight"] = rnd({D, FF}, 0.2, g);
    w[p + "mlp.dense_4h_to_h.bias"] = rnd({D}, 0.1, g);
  }
  w["gpt_neox.final_layer_norm.weight"] = 1.0 + rnd({D}, 0.1, g);
  w["gpt_neox.final_layer_norm.bias"] = rnd({D}, 0.1, g);
  w["embed_out.weight"] = rnd({V, D}, 0.2, g);
  return w;
}

constexpr int64_t KV = 2;  // Qwen2's grouped KV heads
json qwen2_config() {
  return {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"vocab_size", V}, {"hidden_size", D},
          {"intermediate_size", FF}, {"num_hidden_layers", L}, {"num_attention_heads", H},
          {"num_key_value_heads", KV}, {"max_position_embeddings", 64}, {"rope_theta", 1e6}, {"hidden_act", "silu"},
          {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true}, {"use_sliding_window", false},
          {"sliding_window", 32768}, {"max_window_layers", 2}, {"torch_dtype", "float32"}};
}
Weights llama_family_weights(uint64_t seed, bool qkv_bias) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed);
  Weights w;
  w["model.embed_tokens.weight"] = rnd({V, D}, 1.0, g);
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w[p + "input_layernorm.weight"] = 1.0 + rnd({D}, 0.1, g);
    w[p + "post_attention_layernorm.weight"] = 1.0 + rnd({D}, 0.1, g);
    w[p + "self_attn.q_proj.weight"] = rnd({H * DH, D}, 0.2, g);
    w[p + "self_attn.k_proj.weight"] = rnd({KV * DH, D}, 0.2, g);
    w[p + "self_attn.v_proj.weight"] = rnd({KV * DH, D}, 0.2, g);
    if (qkv_bias) {
      w[p + "self_attn.q_proj.bias"] = rnd({H * DH}, 0.2, g);
      w[p + "self_attn.k_proj.bias"] = rnd({KV * DH}, 0.2, g);
      w[p + "self_attn.v_proj.bias"] = rnd({KV * DH}, 0.2, g);
    }
    w[p + "self_attn.o_proj.weight"] = rnd({D, H * DH}, 0.2, g);
    w[p + "mlp.gate_proj.weight"] = rnd({FF, D}, 0.2, g);
    w[p + "mlp.up_proj.weight"] = rnd({FF, D}, 0.2, g);
    w[p + "mlp.down_proj.weight"] = rnd({D, FF}, 0.2, g);
  }
  w["model.norm.weight"] = 1.0 + rnd({D}, 0.1, g);
  return w;
}

// ---- The float64 reference, from the HF definitions ----

at::Tensor linear(const Weights& w, const std::string& name, const at::Tensor& x) {
  auto y = x.matmul(w.at(name + ".weight").t());
  return w.count(name + ".bias") ? y + w.at(name + ".bias") : y;
}
at::Tensor layer_norm(const Weights& w, const std::string& name, const at::Tensor& x, double eps) {
  auto mu = x.mean(-1, true), var = (x - mu).pow(2).mean(-1, true);
  return (x - mu) / at::sqrt(var + eps) * w.at(name + ".weight") + w.at(name + ".bias");
}
at::Tensor rms_norm(const Weights& w, const std::string& name, const at::Tensor& x, double eps) {
  return x / at::sqrt(x.pow(2).mean(-1, true) + eps) * w.at(name + ".weight");
}
// softmax(q k^T / sqrt(dh)) v per head, query t seeing keys s <= t (and t - s < window when window > 0).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window = 0) {
  const int64_t T = q.size(0), heads = q.size(1), group = heads / k.size(1), dh = q.size(2);
  auto out = at::zeros_like(q);
  for (int64_t h = 0; h < heads; ++h) {
    auto s = q.select(1, h).matmul(k.select(1, h / group).t()) / std::sqrt(double(dh));
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j)
        if (j > i || (window > 0 && i - j >= window)) s[i][j] = -INFINITY;
    out.select(1, h).copy_(at::softmax(s, -1).matmul(v.select(1, h / group)));
  }
  return out;
}

at::Tensor pythia_reference(const Weights& w, const std::vector<int64_t>& ids) {
  const int64_t T = ids.size(), rd = int64_t(DH * 0.25);
  auto x = w.at("gpt_neox.embed_in.weight").index_select(0, at::tensor(ids, at::kLong));
  for (int l = 0; l < L; ++l) {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    auto h = layer_norm(w, p + "input_layernorm", x, 1e-5);
    auto qkv = linear(w, p + "attention.query_key_value", h).view({T, H, 3 * DH});  // HF: [T, heads, q|k|v]
    auto q = test::rope_ref(qkv.narrow(2, 0, DH), 10000, rd), k = test::rope_ref(qkv.narrow(2, DH, DH), 10000, rd);
    auto a = linear(w, p + "attention.dense", attention(q, k, qkv.narrow(2, 2 * DH, DH)).reshape({T, D}));
    auto up = linear(w, p + "mlp.dense_h_to_4h", layer_norm(w, p + "post_attention_layernorm", x, 1e-5));
    auto m = linear(w, p + "mlp.dense_4h_to_h", 0.5 * up * (1 + at::erf(up / std::sqrt(2.0))));
    x = x + a + m;  // parallel residual: both branches read x
  }
  return linear(w, "embed_out", layer_norm(w, "gpt_neox.final_layer_norm", x, 1e-5));
}

// HF's rotary: q·cos·a + rotate_half(q)·sin·a with angles t·inv_freq[i] over the pairs (i, i + rd/2).
at::Tensor rope_with(at::Tensor x /*[T,H,D]*/, const std::vector<double>& inv, double a) {
  x = x.clone();
  auto acc = x.accessor<double, 3>();
  const int64_t half = int64_t(inv.size());
  for (int64_t t = 0; t < x.size(0); ++t)
    for (int64_t h = 0; h < x.size(1); ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double c = std::cos(t * inv[size_t(i)]) * a, s = std::sin(t * inv[size_t(i)]) * a;
        const double x1 = acc[t][h][i], x2 = acc[t][h][i + half];
        acc[t][h][i] = x1 * c - x2 * s;
        acc[t][h][i + half] = x2 * c + x1 * s;
      }
  return x;
}
std::vector<double> plain_inv(double base) {
  std::vector<double> inv;
  for (int64_t j = 0; j < DH; j += 2) inv.push_back(1.0 / std::pow(base, double(j) / DH));
  return inv;
}

// What varies among the Llama-family references: the rotation (inv_freq and
// attention factor, per layer when layer types differ), windows, Qwen3's q/k norm.
struct LlamaRef {
  std::vector<double> inv;       // the full layers' frequencies
  double attention_factor = 1.0;
  double eps = 1e-6;
  bool tied = true;
  int64_t window = 0;            // every layer's (Mistral)
  std::vector<int64_t> layer_windows;  // per layer, when given (sliding layers)
  bool qk_norm = false;
};

at::Tensor llama_family_reference(const Weights& w, const std::vector<int64_t>& ids, const LlamaRef& r) {
  const int64_t T = ids.size();
  auto x = w.at("model.embed_tokens.weight").index_select(0, at::tensor(ids, at::kLong));
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto h = rms_norm(w, p + "input_layernorm", x, r.eps);
    auto q = linear(w, p + "self_attn.q_proj", h).view({T, H, DH});
    auto k = linear(w, p + "self_attn.k_proj", h).view({T, KV, DH});
    if (r.qk_norm) {
      q = rms_norm(w, p + "self_attn.q_norm", q, r.eps);
      k = rms_norm(w, p + "self_attn.k_norm", k, r.eps);
    }
    q = rope_with(q, r.inv, r.attention_factor);
    k = rope_with(k, r.inv, r.attention_factor);
    auto v = linear(w, p + "self_attn.v_proj", h).view({T, KV, DH});
    const int64_t window = r.layer_windows.empty() ? r.window : r.layer_windows[size_t(l)];
    x = x + linear(w, p + "self_attn.o_proj", attention(q, k, v, window).reshape({T, H * DH}));
    auto h2 = rms_norm(w, p + "post_attention_layernorm", x, r.eps);
    auto gate = linear(w, p + "mlp.gate_proj", h2);
    x = x + linear(w, p + "mlp.down_proj", gate / (1 + at::exp(-gate)) * linear(w, p + "mlp.up_proj", h2));
  }
  x = rms_norm(w, "model.norm", x, r.eps);
  return x.matmul((r.tied ? w.at("model.embed_tokens.weight") : w.at("lm_head.weight")).t());
}

at::Tensor llama_family_reference(const Weights& w, const std::vector<int64_t>& ids, double base, double eps,
                                  bool tied, int64_t window = 0) {
  LlamaRef r;
  r.inv = plain_inv(base);
  r.eps = eps;
  r.tied = tied;
  r.window = window;
  return llama_family_reference(w, ids, r);
}

std::vector<int64_t> some_ids(int64_t n) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % V);
  return ids;
}

at::Tensor logits_of(model::Transformer& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard ng;
  return m->forward(at::tensor(ids, at::kLong).unsqueeze(0))[0].to(at::kDouble);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The γ protocol at the tiny models' scale (distances within T_train 64).
eval::GammaEvalOptions tiny_gamma(const std::string& out) {
  eval::GammaEvalOptions g;
  g.protocol.distances = {4, 8, 16};
  g.protocol.prompts = 4;
  g.protocol.seeds = {1};
  g.protocol.tail = 4;
  g.fit.bootstrap_resamples = 10;
  g.fit.fit_min_d = 1;
  g.out = out;
  return g;
}

}  // namespace

TEST(HfModels, PythiaShapedBf16TwoShardsEqualsTheFloat64Reference) {
  const auto dir = scratch_dir() + "/pythia-tiny";
  auto w = pythia_weights(1);
  round_to(w, "BF16");
  write_hf_dir(dir, pythia_config(), w, "BF16", 2);
  const auto ids = some_ids(24);
  const auto ref = pythia_reference(w, ids);
  ASSERT_GT(ref.abs().max().item<double>(), 1.0);  // logits of a size where 1e-5 means something

  // Computed in float32 from the stored bf16 values: the reference to float32 rounding.
  auto m32 = model::import_hf(dir, "float32");
  EXPECT_TRUE(m32->cfg.parallel_residual && m32->cfg.qkv_bias && m32->cfg.mlp_bias);
  EXPECT_EQ(m32->cfg.rotary_dim(), 2);
  EXPECT_LT(max_diff(logits_of(m32, ids), ref), 1e-5);

  // Kept in bf16 (auto): every parameter stays bf16, and the logits follow within bf16's precision.
  auto m16 = model::import_hf(dir, "auto");
  for (const auto& p : m16->parameters()) ASSERT_EQ(p.scalar_type(), at::kBFloat16);
  EXPECT_LT(max_diff(logits_of(m16, ids), ref), 0.05 * ref.abs().max().item<double>());
}

TEST(HfModels, Qwen2ShapedEqualsTheFloat64Reference) {
  const auto dir = scratch_dir() + "/qwen2-tiny";
  auto w = llama_family_weights(2, /*qkv_bias=*/true);
  round_to(w, "F32");
  write_hf_dir(dir, qwen2_config(), w, "F32", 1);
  const auto ids = some_ids(20);
  auto m = model::import_hf(dir, "auto");
  EXPECT_EQ(m->cfg.n_kv_heads, KV);
  EXPECT_TRUE(m->cfg.qkv_bias && !m->cfg.out_bias && m->cfg.tie_embeddings);
  EXPECT_LT(max_diff(logits_of(m, ids), llama_family_reference(w, ids, 1e6, 1e-6, true)), 1e-5);
}

TEST(HfModels, MistralSlidingWindowIsHonoured) {
  const auto dir = scratch_dir() + "/mistral-tiny";
  auto w = llama_family_weights(3, false);
  round_to(w, "F32");
  json cfg = qwen2_config();
  cfg.update({{"architectures", {"MistralForCausalLM"}}, {"model_type", "mistral"}, {"sliding_window", 5},
              {"rope_theta", 1e4}, {"tie_word_embeddings", true}, {"rms_norm_eps", 1e-5}});
  cfg.erase("use_sliding_window");
  write_hf_dir(dir, cfg, w, "F32", 1);
  const auto ids = some_ids(16);
  auto m = model::import_hf(dir);
  EXPECT_EQ(m->cfg.attention_window, 5);
  const auto windowed = llama_family_reference(w, ids, 1e4, 1e-5, true, 5);
  EXPECT_LT(max_diff(logits_of(m, ids), windowed), 1e-5);
  // The window matters at this length: the full-causal reference differs.
  EXPECT_GT(max_diff(windowed, llama_family_reference(w, ids, 1e4, 1e-5, true, 0)), 1e-3);
  // Incremental decoding sees the same window through the cache.
  torch::NoGradGuard ng;
  model::KVCache cache;
  auto t = at::tensor(ids, at::kLong).unsqueeze(0);
  m->forward(t.narrow(1, 0, 10), &cache);
  auto last = m->forward(t.narrow(1, 10, 6), &cache)[0][-1].to(at::kDouble);
  EXPECT_LT(max_diff(last, windowed[-1]), 1e-5);
}

TEST(HfModels, ExportWritesBiasesAndParallelResidualBack) {
  const auto root = scratch_dir();
  auto w = pythia_weights(4);
  round_to(w, "F32");
  write_hf_dir(root + "/in", pythia_config(), w, "F32", 1);
  auto m = model::import_hf(root + "/in");
  model::export_hf(*m, root + "/out", root + "/in/tokenizer.json");
  const auto cfg = io::read_json(root + "/out/config.json");
  EXPECT_EQ(cfg["use_parallel_residual"], true);
  EXPECT_EQ(cfg["attention_bias"], true);
  EXPECT_TRUE(io::exists(root + "/out/tokenizer.json"));
  // The written tensors are the reference's, name by name (biases included).
  auto back = safetensors::read(root + "/out/model.safetensors");
  for (const auto& [name, t] : w) {
    ASSERT_TRUE(back.tensors.count(name)) << name;
    const auto& b = back.tensors.at(name);
    auto got = at::from_blob(const_cast<char*>(b.bytes.data()), b.shape, at::kFloat).to(at::kDouble);
    EXPECT_EQ(max_diff(got, t), 0.0) << name;
  }
  auto again = model::import_hf(root + "/out");
  const auto ids = some_ids(12);
  EXPECT_LT(max_diff(logits_of(again, ids), pythia_reference(w, ids)), 1e-5);
}

TEST(HfModels, TrainedRopeScalingFollowsTheHfFormulas) {
  // Llama 3.1's: factor 8, low 1, high 4, original 8192, θ 5e5, head 128 — the
  // frequencies written out here from the HF definition, one at a time.
  model::ModelConfig c;
  c.d_model = 512; c.n_heads = 4; c.rope_theta = 5e5; c.T_train = 131072;
  c.rope_scaling = "llama3"; c.rope_scaling_factor = 8; c.rope_low_freq_factor = 1; c.rope_high_freq_factor = 4;
  c.rope_original_max_positions = 8192;
  c = c.resolved();
  auto inv = model::trained_attention(c, 100).inv_freq;
  ASSERT_EQ(inv.numel(), 64);
  for (int i = 0; i < 64; ++i) {
    const double f = std::pow(5e5, -2.0 * i / 128), wavelen = 2 * M_PI / f;
    double want = f;
    if (wavelen > 8192.0 / 1) want = f / 8;
    else if (wavelen >= 8192.0 / 4) {
      const double smooth = (8192.0 / wavelen - 1) / (4 - 1);
      want = (1 - smooth) * f / 8 + smooth * f;
    }
    EXPECT_NEAR(inv[i].item<double>(), want, 1e-12 * std::max(1.0, want)) << i;
  }
  // YaRN (factor 4, original 64, dims 16, θ 1e4, β 32/1): the ramp over dim index between
  // floor/ceil of dim·ln(L/(2πβ))/(2 ln θ), and logits scaled by (0.1 ln 4 + 1)².
  model::ModelConfig y;
  y.d_model = 64; y.n_heads = 4; y.rope_theta = 1e4; y.T_train = 256;
  y.rope_scaling = "yarn"; y.rope_scaling_factor = 4; y.rope_original_max_positions = 64;
  y = y.resolved();
  const auto s = model::trained_attention(y, 10);
  const double lo = std::floor(16 * std::log(64 / (32 * 2 * M_PI)) / (2 * std::log(1e4)));
  const double hi = std::ceil(16 * std::log(64 / (1 * 2 * M_PI)) / (2 * std::log(1e4)));
  for (int i = 0; i < 8; ++i) {
    const double f = std::pow(1e4, -2.0 * i / 16);
    const double ramp = std::min(1.0, std::max(0.0, (i - std::max(lo, 0.0)) / (std::min(hi, 15.0) - std::max(lo, 0.0))));
    EXPECT_NEAR(s.inv_freq[i].item<double>(), f / 4 * ramp + f * (1 - ramp), 1e-15) << i;
  }
  EXPECT_NEAR(s.rope_attention_factor, 0.1 * std::log(4.0) + 1, 1e-15);
  // Evaluation-time scaling on top of a trained one is refused by name.
  EXPECT_NE(error_of([&] { model::scaling_settings(model::parse_scaling_methods("ntk:4")[0], y, 10, 10); })
                .find("own RoPE method (yarn)"),
            std::string::npos);
}

TEST(HfModels, BadDirectoriesAreRefusedNamingFileAndField) {
  const auto root = scratch_dir();
  auto w = pythia_weights(5);
  write_hf_dir(root + "/m", pythia_config(), w, "F32", 2);
  const std::string index = root + "/m/model.safetensors.index.json";
  const auto good_index = io::read_json(index);

  // A shard the index names that is not there.
  std::filesystem::rename(root + "/m/model-00002-of-00002.safetensors", root + "/m/moved");
  auto e = error_of([&] { model::import_hf(root + "/m"); });
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("is missing"), std::string::npos) << e;
  std::filesystem::rename(root + "/m/moved", root + "/m/model-00002-of-00002.safetensors");

  // The index places a tensor in a shard that does not hold it.
  auto bad = good_index;
  const std::string moved = "gpt_neox.embed_in.weight";
  const std::string other = bad["weight_map"][moved] == "model-00001-of-00002.safetensors"
                                ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  bad["weight_map"][moved] = other;
  io::write_json_atomic(index, bad);
  e = error_of([&] { model::import_hf(root + "/m"); });
  EXPECT_NE(e.find(moved), std::string::npos) << e;
  io::write_json_atomic(index, good_index);

  // A shape that disagrees with config.json names the file and the tensor.
  auto cfg = pythia_config();
  cfg["intermediate_size"] = FF + 8;
  io::write_json_atomic(root + "/m/config.json", cfg);
  e = error_of([&] { model::import_hf(root + "/m"); });
  EXPECT_NE(e.find("mlp.dense_h_to_4h"), std::string::npos) << e;
  EXPECT_NE(e.find(".safetensors"), std::string::npos) << e;

  // An unknown architecture, and a config key ropelab cannot compute.
  cfg = pythia_config();
  cfg["architectures"] = {"FalconForCausalLM"};
  io::write_json_atomic(root + "/m/config.json", cfg);
  e = error_of([&] { model::import_hf(root + "/m"); });
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("FalconForCausalLM"), std::string::npos) << e;

  // No weights at all.
  std::filesystem::create_directories(root + "/empty");
  io::write_json_atomic(root + "/empty/config.json", pythia_config());
  EXPECT_NE(error_of([&] { model::import_hf(root + "/empty"); }).find("no model.safetensors"), std::string::npos);
}

TEST(HfModels, EvalGammaNiahAndKvRunOnAHfDirectory) {
  const auto root = scratch_dir();
  auto w = pythia_weights(6);
  write_hf_dir(root + "/pythia-tiny", pythia_config(), w, "BF16", 2);
  auto qw = llama_family_weights(7, /*qkv_bias=*/true);
  write_hf_dir(root + "/qwen2-tiny", qwen2_config(), qw, "F32", 1);
  // Held-out text in the models' tokenizer (both use the same), from a small
  // corpus (the default is the embedded one).
  std::string docs;
  for (int d = 0; d < 40; ++d) docs += json({{"text", test::synthetic_text(200, d + 1)}}).dump() + "\n";
  test::write_text(root + "/text.jsonl", docs);
  data::PrepareOptions prep;
  prep.inputs = {root + "/text.jsonl"};
  prep.tokenizer_path = root + "/pythia-tiny/tokenizer.json";
  prep.out_dir = root + "/data";
  data::prepare_data(prep);

  const std::map<std::string, std::pair<std::string, std::string>> models = {
      {"pythia-tiny", {"GPTNeoXForCausalLM", "BFloat16"}}, {"qwen2-tiny", {"Qwen2ForCausalLM", "Float"}}};
  for (const auto& [name, arch] : models) {
    SCOPED_TRACE(name);
    const std::string dir = root + "/" + name;
    const auto rec = eval::eval_gamma_checkpoint(dir, tiny_gamma(root + "/gamma.jsonl"));
    EXPECT_EQ(rec["model_id"], name);
    EXPECT_EQ(rec["arch"]["family"], "huggingface");
    EXPECT_EQ(rec["arch"]["architecture"], arch.first);
    EXPECT_EQ(rec["arch"]["dtype"], arch.second);
    EXPECT_TRUE(rec["measurement"].contains("gamma"));

    eval::NiahOptions n;
    n.lengths = {"128"};  // byte-level tokens: the question and needle alone take ~80
    n.depths = {0.5};
    n.trials = 2;
    n.scaling = "none,ntk:4";
    n.ppl_windows = 1;
    n.open.data_dir = root + "/data";
    n.open.model_id = "org/" + name;
    const auto niah = eval::eval_niah(dir, n);
    ASSERT_EQ(niah.size(), 8u);  // 2 methods x (1 cell + the cells pooled + perplexity + reach)
    EXPECT_EQ(niah[0]["model_id"], "org/" + name);
    EXPECT_TRUE(std::isfinite(niah[2]["perplexity"].get<double>()));

    eval::KVEvalOptions k;
    k.open.data_dir = root + "/data";
    k.policies = "full,streaming";
    k.ratios = {0.5};
    k.context = 40;
    k.decode = 8;
    k.windows = 1;
    k.niah_trials = 0;
    k.gmm_max_k = 0;
    const auto kv = eval::eval_kv(dir, k);
    ASSERT_FALSE(kv.empty());
    EXPECT_EQ(kv[0]["model_id"], name);
  }

  // A data directory of another tokenizer is refused, not silently used.
  std::filesystem::create_directories(root + "/other");
  write_hf_dir(root + "/other", pythia_config(), w, "F32", 1);
  auto tok = io::read_json(root + "/other/tokenizer.json");
  tok["added_tokens"][0]["content"] = "<|end_of_text|>";
  io::write_json_atomic(root + "/other/tokenizer.json", tok);
  eval::NiahOptions n;
  n.lengths = {"128"};
  n.open.data_dir = root + "/data";
  EXPECT_NE(error_of([&] { eval::eval_niah(root + "/other", n); }).find("prepared with another tokenizer"), std::string::npos);
}

TEST(HfModels, GammaFlowOverStepFoldersResumes) {
  const auto root = scratch_dir() + "/pythia-tiny";
  for (int step : {1000, 0, 143000}) {
    auto w = pythia_weights(10 + step);
    write_hf_dir(root + "/step" + std::to_string(step), pythia_config(), w, "F32", 1);
  }
  const auto g = tiny_gamma(root + "/../gamma.jsonl");
  auto recs = eval::eval_gamma_hf_run(root, g);
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0]["step"], 0);
  EXPECT_EQ(recs[1]["step"], 1000);
  EXPECT_EQ(recs[2]["step"], 143000);
  EXPECT_EQ(recs[2]["model_id"], "pythia-tiny");
  // A second call finds every step done: nothing is measured or appended again.
  const auto lines_before = io::read_jsonl(g.out).size();
  recs = eval::eval_gamma_hf_run(root + "/", g);
  EXPECT_EQ(recs.size(), 3u);
  EXPECT_EQ(io::read_jsonl(g.out).size(), lines_before);
  // A folder whose name states no step is refused by name.
  write_hf_dir(root + "/final", pythia_config(), pythia_weights(1), "F32", 1);
  EXPECT_NE(error_of([&] { eval::eval_gamma_hf_run(root, g); }).find("final"), std::string::npos);
}

TEST(HfModels, Qwen3ShapedWithSlidingLayersEqualsTheFloat64Reference) {
  // Qwen3: q/k RMSNorm per head before RoPE; layer_types with a sliding layer (transformers 5).
  const auto dir = scratch_dir() + "/qwen3-tiny";
  auto w = llama_family_weights(6, false);
  auto g = at::make_generator<at::CPUGeneratorImpl>(66);
  for (int l = 0; l < L; ++l)
    for (const char* n : {"q_norm", "k_norm"})
      w["model.layers." + std::to_string(l) + ".self_attn." + n + ".weight"] = 1.0 + rnd({DH}, 0.3, g);
  round_to(w, "F32");
  json cfg = qwen2_config();
  cfg.update({{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"head_dim", DH}, {"attention_bias", false},
              {"use_sliding_window", true}, {"sliding_window", 4}, {"layer_types", {"sliding_attention", "full_attention"}}});
  write_hf_dir(dir, cfg, w, "F32", 1);
  auto m = model::import_hf(dir);
  EXPECT_TRUE(m->cfg.qk_norm);
  EXPECT_EQ(m->cfg.layer_pattern, "sliding,full");
  EXPECT_EQ(m->cfg.sliding_window, 4);
  const auto ids = some_ids(14);
  LlamaRef r;
  r.inv = plain_inv(1e6);
  r.qk_norm = true;
  r.layer_windows = {4, 0};
  const auto ref = llama_family_reference(w, ids, r);
  EXPECT_LT(max_diff(logits_of(m, ids), ref), 1e-5);
  r.qk_norm = false;
  EXPECT_GT(max_diff(ref, llama_family_reference(w, ids, r)), 1e-3);  // the norms matter here
  // Exported and loaded again: the same architecture, layer types and logits.
  model::export_hf(*m, dir + "-out", "");
  const auto back = io::read_json(dir + "-out/config.json");
  EXPECT_EQ(back["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(back["layer_types"], json({"sliding_attention", "full_attention"}));
  auto again = model::import_hf(dir + "-out");
  EXPECT_LT(max_diff(logits_of(again, ids), ref), 1e-5);
}

TEST(HfModels, OtherFamiliesAreRefusedByName) {
  const auto dir = scratch_dir() + "/gemma2";
  json cfg = qwen2_config();
  cfg.update({{"architectures", {"Gemma2ForCausalLM"}}, {"model_type", "gemma2"}});
  write_hf_dir(dir, cfg, llama_family_weights(1, false), "F32", 1);
  EXPECT_NE(error_of([&] { model::import_hf(dir); }).find("\"Gemma2ForCausalLM\"; ropelab loads"), std::string::npos);
}

// ---- Gemma 3 (text), from the transformers definition ----

json gemma3_config() {
  return {{"architectures", {"Gemma3ForCausalLM"}}, {"model_type", "gemma3_text"}, {"vocab_size", V}, {"hidden_size", D},
          {"intermediate_size", FF}, {"num_hidden_layers", L}, {"num_attention_heads", H}, {"num_key_value_heads", KV},
          {"head_dim", DH}, {"max_position_embeddings", 64}, {"rope_theta", 1e4}, {"rope_local_base_freq", 100.0},
          {"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}}, {"sliding_window", 4},
          {"layer_types", {"sliding_attention", "full_attention"}}, {"query_pre_attn_scalar", 6},
          {"hidden_activation", "gelu_pytorch_tanh"}, {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", true},
          {"final_logit_softcapping", nullptr}, {"attn_logit_softcapping", nullptr}};
}
Weights gemma3_weights(uint64_t seed) {
  auto w = llama_family_weights(seed, false);
  auto g = at::make_generator<at::CPUGeneratorImpl>(seed + 100);
  for (int l = 0; l < L; ++l) {  // Gemma stores the gains' offsets from 1: small numbers around 0
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      w[p + n + ".weight"] = rnd({D}, 0.2, g);
    w[p + "self_attn.q_norm.weight"] = rnd({DH}, 0.2, g);
    w[p + "self_attn.k_norm.weight"] = rnd({DH}, 0.2, g);
  }
  w["model.norm.weight"] = rnd({D}, 0.2, g);
  return w;
}
// Gemma3RMSNorm: x / sqrt(mean(x²) + eps) · (1 + w).
at::Tensor gemma_norm(const Weights& w, const std::string& name, const at::Tensor& x) {
  return x / at::sqrt(x.pow(2).mean(-1, true) + 1e-6) * (1.0 + w.at(name + ".weight"));
}
// sliding_factor: linear scaling of the sliding layers (transformers 5's per-layer-type rope parameters).
at::Tensor gemma3_reference(const Weights& w, const std::vector<int64_t>& ids, double sliding_factor = 1.0) {
  const int64_t T = ids.size();
  auto x = w.at("model.embed_tokens.weight").index_select(0, at::tensor(ids, at::kLong)) * std::sqrt(double(D));
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const bool sliding = l == 0;  // layer_types: sliding_attention, full_attention
    auto h = gemma_norm(w, p + "input_layernorm", x);
    auto q = gemma_norm(w, p + "self_attn.q_norm", linear(w, p + "self_attn.q_proj", h).view({T, H, DH}));
    auto k = gemma_norm(w, p + "self_attn.k_norm", linear(w, p + "self_attn.k_proj", h).view({T, KV, DH}));
    // Sliding layers: plain RoPE at rope_local_base_freq; full layers: rope_theta with linear scaling ×2.
    auto inv = plain_inv(sliding ? 100.0 : 1e4);
    for (auto& f : inv) f /= sliding ? sliding_factor : 2.0;
    q = rope_with(q, inv, 1.0) * (std::sqrt(double(DH)) / std::sqrt(6.0));  // scores × query_pre_attn_scalar^(-1/2)
    k = rope_with(k, inv, 1.0);
    auto v = linear(w, p + "self_attn.v_proj", h).view({T, KV, DH});
    auto a = linear(w, p + "self_attn.o_proj", attention(q, k, v, sliding ? 4 : 0).reshape({T, H * DH}));
    x = x + gemma_norm(w, p + "post_attention_layernorm", a);
    auto h2 = gemma_norm(w, p + "pre_feedforward_layernorm", x);
    auto gate = linear(w, p + "mlp.gate_proj", h2);
    auto gelu_tanh = 0.5 * gate * (1 + at::tanh(std::sqrt(2.0 / M_PI) * (gate + 0.044715 * gate.pow(3))));
    x = x + gemma_norm(w, p + "post_feedforward_layernorm", linear(w, p + "mlp.down_proj", gelu_tanh * linear(w, p + "mlp.up_proj", h2)));
  }
  return gemma_norm(w, "model.norm", x).matmul(w.at("model.embed_tokens.weight").t());
}

TEST(HfModels, Gemma3ShapedEqualsTheFloat64Reference) {
  const auto dir = scratch_dir() + "/gemma3-tiny";
  auto w = gemma3_weights(9);
  round_to(w, "F32");
  write_hf_dir(dir, gemma3_config(), w, "F32", 1);
  auto m = model::import_hf(dir);
  EXPECT_EQ(m->cfg.layer_pattern, "sliding,full");
  EXPECT_EQ(m->cfg.sliding_rope_theta, 100.0);
  EXPECT_EQ(m->cfg.rope_scaling, "linear");
  EXPECT_TRUE(m->cfg.qk_norm && m->cfg.embed_scale && m->cfg.sandwich_norms);
  const auto ids = some_ids(14);
  const auto ref = gemma3_reference(w, ids);
  ASSERT_GT(ref.abs().max().item<double>(), 1.0);
  EXPECT_LT(max_diff(logits_of(m, ids), ref), 1e-5 * ref.abs().max().item<double>());
  // The older key: every sliding_window_pattern-th layer global (here 2: sliding, full).
  json older = gemma3_config();
  older.erase("layer_types");
  older["sliding_window_pattern"] = 2;
  write_hf_dir(dir + "-older", older, w, "F32", 1);
  auto m2 = model::import_hf(dir + "-older");
  EXPECT_EQ(m2->cfg.layer_pattern, "sliding,full");
  EXPECT_LT(max_diff(logits_of(m2, ids), ref), 1e-5 * ref.abs().max().item<double>());
  // Exported: the gains written back as Gemma stores them, and the same logits loaded again.
  model::export_hf(*m, dir + "-out", "");
  const auto cfg = io::read_json(dir + "-out/config.json");
  EXPECT_EQ(cfg["architectures"][0], "Gemma3ForCausalLM");
  EXPECT_EQ(cfg["rope_parameters"]["sliding_attention"]["rope_theta"], 100.0);
  EXPECT_EQ(cfg["rope_parameters"]["full_attention"]["rope_type"], "linear");
  auto back = safetensors::read(dir + "-out/model.safetensors");
  const auto& b = back.tensors.at("model.layers.1.post_feedforward_layernorm.weight");
  auto got = at::from_blob(const_cast<char*>(b.bytes.data()), b.shape, at::kFloat).to(at::kDouble);
  EXPECT_LT(max_diff(got, w.at("model.layers.1.post_feedforward_layernorm.weight")), 1e-7);
  auto again = model::import_hf(dir + "-out");
  EXPECT_EQ(model::to_json(again->cfg), model::to_json(m->cfg));
  EXPECT_LT(max_diff(logits_of(again, ids), ref), 1e-5 * ref.abs().max().item<double>());
  // Soft-capping is not built: named.
  json capped = gemma3_config();
  capped["final_logit_softcapping"] = 30.0;
  write_hf_dir(dir + "-capped", capped, w, "F32", 1);
  EXPECT_NE(error_of([&] { model::import_hf(dir + "-capped"); }).find("final_logit_softcapping is set"), std::string::npos);
}

// transformers 5's per-layer-type rope_parameters with a method on the sliding
// layers too: loaded exactly, and written back by export.
TEST(HfModels, Gemma3SlidingLayersWithTheirOwnMethodRoundTrip) {
  const auto dir = scratch_dir() + "/gemma3-v5";
  auto w = gemma3_weights(10);
  round_to(w, "F32");
  json cfg = gemma3_config();
  cfg.erase("rope_scaling");
  cfg.erase("rope_local_base_freq");
  cfg["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e4}}},
                            {"sliding_attention", {{"rope_type", "linear"}, {"factor", 3.0}, {"rope_theta", 100.0}}}};
  write_hf_dir(dir, cfg, w, "F32", 1);
  auto m = model::import_hf(dir);
  EXPECT_EQ(m->cfg.sliding_rope, "linear:3.0");
  const auto ids = some_ids(14);
  const auto ref = gemma3_reference(w, ids, 3.0);
  EXPECT_LT(max_diff(logits_of(m, ids), ref), 1e-5 * ref.abs().max().item<double>());
  EXPECT_GT(max_diff(gemma3_reference(w, ids, 1.0), ref), 1e-3 * ref.abs().max().item<double>());  // the factor matters
  model::export_hf(*m, dir + "-out", "");
  const auto out = io::read_json(dir + "-out/config.json");
  EXPECT_EQ(out["rope_parameters"]["sliding_attention"]["rope_type"], "linear");
  EXPECT_EQ(out["rope_parameters"]["sliding_attention"]["factor"], 3.0);
  EXPECT_EQ(out["rope_parameters"]["sliding_attention"]["rope_theta"], 100.0);
  auto again = model::import_hf(dir + "-out");
  EXPECT_EQ(model::to_json(again->cfg), model::to_json(m->cfg));
  EXPECT_LT(max_diff(logits_of(again, ids), ref), 1e-5 * ref.abs().max().item<double>());
}

TEST(HfModels, DynamicNtkAndLongropeMatchTransformersDefinitions) {
  auto w = llama_family_weights(7, false);
  round_to(w, "F32");
  const auto ids = some_ids(40);
  // Dynamic NTK: C = max_position_embeddings (16); the original context key is read by neither.
  {
    const auto dir = scratch_dir() + "/dynamic";
    json cfg = qwen2_config();
    cfg.update({{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"max_position_embeddings", 16},
                {"rope_theta", 1e4}, {"rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0},
                                                       {"original_max_position_embeddings", 8}}}});
    write_hf_dir(dir, cfg, w, "F32", 1);
    auto m = model::import_hf(dir);
    LlamaRef r;
    r.inv = plain_inv(1e4 * std::pow(2.0 * 40 / 16 - 1, double(DH) / (DH - 2)));  // seq_len 40
    const auto ref = llama_family_reference(w, ids, r);
    EXPECT_LT(max_diff(logits_of(m, ids), ref), 1e-5 * ref.abs().max().item<double>());  // float32 against float64
  }
  // LongRoPE with its original context only inside rope_parameters (transformers 5's layout):
  // past 8 tokens the long factors, attention factor √(1 + ln(32/8) / ln 8).
  for (const bool top_level : {false, true}) {
    const auto dir = scratch_dir() + "/longrope" + std::to_string(top_level);
    json cfg = qwen2_config();
    json rope = {{"rope_type", "longrope"}, {"rope_theta", 1e4}, {"short_factor", {1.0, 1.2, 1.5, 2.0}},
                 {"long_factor", {1.0, 2.0, 4.0, 8.0}}};
    if (!top_level) rope["original_max_position_embeddings"] = 8;
    cfg.update({{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"max_position_embeddings", 32},
                {"rope_parameters", rope}});
    cfg.erase("rope_theta");
    if (top_level) cfg["original_max_position_embeddings"] = 8;  // Phi-3's layout
    write_hf_dir(dir, cfg, w, "F32", 1);
    auto m = model::import_hf(dir);
    for (const int64_t T : {6, 12}) {
      const std::vector<int64_t> some(ids.begin(), ids.begin() + T);
      LlamaRef r;
      r.inv = plain_inv(1e4);
      const std::vector<double> ext = T > 8 ? std::vector<double>{1.0, 2.0, 4.0, 8.0} : std::vector<double>{1.0, 1.2, 1.5, 2.0};
      for (size_t i = 0; i < r.inv.size(); ++i) r.inv[i] /= ext[i];
      r.attention_factor = std::sqrt(1 + std::log(32.0 / 8) / std::log(8.0));
      const auto ref = llama_family_reference(w, some, r);
      EXPECT_LT(max_diff(logits_of(m, some), ref), 1e-5 * ref.abs().max().item<double>()) << top_level << " T=" << T;
      ASSERT_GT(ref.abs().max().item<double>(), 1.0);
    }
  }
}

TEST(HfModels, EveryTransformersRopeTypeRoundTripsThroughExport) {
  const std::vector<json> types = {
      {{"rope_type", "default"}},
      {{"rope_type", "linear"}, {"factor", 2.0}},
      {{"rope_type", "dynamic"}, {"factor", 2.0}},
      {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 16}, {"beta_fast", 16.0},
       {"mscale", 1.0}, {"mscale_all_dim", 0.5}, {"truncate", false}},
      {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
       {"original_max_position_embeddings", 16}},
      {{"rope_type", "longrope"}, {"factor", 3.0}, {"original_max_position_embeddings", 16},
       {"short_factor", {1.0, 1.1, 1.2, 1.3}}, {"long_factor", {1.0, 2.0, 3.0, 4.0}}},
      {{"rope_type", "proportional"}, {"partial_rotary_factor", 0.5}},
  };
  auto w = llama_family_weights(8, false);
  round_to(w, "F32");
  const auto ids = some_ids(70);  // past max_position_embeddings 64: dynamic and longrope's long factors act
  for (const auto& rope : types) {
    const std::string type = rope["rope_type"];
    const auto dir = scratch_dir() + "/" + type;
    json cfg = qwen2_config();
    json params = rope;
    params["rope_theta"] = 1e4;
    cfg.update({{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"rope_parameters", params}});
    cfg.erase("rope_theta");
    write_hf_dir(dir, cfg, w, "F32", 1);
    auto m = model::import_hf(dir);
    EXPECT_EQ(m->cfg.rope_params().type, type == "default" ? "default" : type);
    const auto before = logits_of(m, ids);
    model::export_hf(*m, dir + "-out", "");
    auto again = model::import_hf(dir + "-out");
    EXPECT_EQ(model::to_json(again->cfg), model::to_json(m->cfg)) << type;
    EXPECT_EQ(max_diff(logits_of(again, ids), before), 0.0) << type;
    const auto written = io::read_json(dir + "-out/config.json")["rope_parameters"];
    EXPECT_EQ(written["rope_type"], type) << written.dump();
  }
}
