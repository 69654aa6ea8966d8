#include "model/hf_format.h"

#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/io.h"
#include "common/safetensors.h"

namespace ropelab::model {
namespace fs = std::filesystem;

namespace {
constexpr double kNormEps = 1e-5;  // ropelab's RMSNorm and LayerNorm

bool is_llama(const ModelConfig& c) { return c.norm == "rmsnorm" && c.mlp == "swiglu"; }

// One HF tensor and the ropelab parameters it is made of.
struct Binding {
  enum Kind { kPlain, kFusedQKV, kZeroBias } kind;
  std::string hf;
  std::vector<at::Tensor> params;  // kPlain: 1; kFusedQKV: wq, wk, wv
  int64_t zero_len = 0;            // kZeroBias: its length
};

std::vector<Binding> bindings(TransformerImpl& m) {
  const auto& c = m.cfg;
  const bool llama = is_llama(c);
  std::vector<Binding> b;
  auto plain = [&](std::string hf, const at::Tensor& p) { b.push_back({Binding::kPlain, std::move(hf), {p}}); };
  auto norm = [&](std::string hf, torch::nn::AnyModule& mod) {
    for (const auto& p : mod.ptr()->named_parameters()) plain(hf + "." + p.key(), p.value());
  };
  if (llama) {
    plain("model.embed_tokens.weight", m.tok_emb->weight);
    for (int64_t i = 0; i < c.n_layers; ++i) {
      auto* blk = m.blocks[i]->as<BlockImpl>();
      const std::string L = "model.layers." + std::to_string(i) + ".";
      norm(L + "input_layernorm", blk->norm1);
      plain(L + "self_attn.q_proj.weight", blk->attn->wq->weight);
      plain(L + "self_attn.k_proj.weight", blk->attn->wk->weight);
      plain(L + "self_attn.v_proj.weight", blk->attn->wv->weight);
      plain(L + "self_attn.o_proj.weight", blk->attn->wo->weight);
      norm(L + "post_attention_layernorm", blk->norm2);
      plain(L + "mlp.gate_proj.weight", blk->mlp->gate->weight);
      plain(L + "mlp.up_proj.weight", blk->mlp->up->weight);
      plain(L + "mlp.down_proj.weight", blk->mlp->down->weight);
    }
    norm("model.norm", m.norm_f);
    if (m.lm_head) plain("lm_head.weight", m.lm_head->weight);
    return b;
  }
  plain("gpt_neox.embed_in.weight", m.tok_emb->weight);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto* blk = m.blocks[i]->as<BlockImpl>();
    const std::string L = "gpt_neox.layers." + std::to_string(i) + ".";
    norm(L + "input_layernorm", blk->norm1);
    b.push_back({Binding::kFusedQKV, L + "attention.query_key_value.weight",
                 {blk->attn->wq->weight, blk->attn->wk->weight, blk->attn->wv->weight}});
    b.push_back({Binding::kZeroBias, L + "attention.query_key_value.bias", {}, 3 * c.n_heads * c.d_head});
    plain(L + "attention.dense.weight", blk->attn->wo->weight);
    b.push_back({Binding::kZeroBias, L + "attention.dense.bias", {}, c.d_model});
    norm(L + "post_attention_layernorm", blk->norm2);
    plain(L + "mlp.dense_h_to_4h.weight", blk->mlp->up->weight);
    b.push_back({Binding::kZeroBias, L + "mlp.dense_h_to_4h.bias", {}, c.d_ff});
    plain(L + "mlp.dense_4h_to_h.weight", blk->mlp->down->weight);
    b.push_back({Binding::kZeroBias, L + "mlp.dense_4h_to_h.bias", {}, c.d_model});
  }
  norm("gpt_neox.final_layer_norm", m.norm_f);
  if (m.lm_head) plain("embed_out.weight", m.lm_head->weight);
  return b;
}

// GPT-NeoX fuses q, k, v per head: rows [h][q|k|v][d_head].
at::Tensor fuse_qkv(const std::vector<at::Tensor>& p, int64_t heads) {
  auto per_head = [&](const at::Tensor& w) { return w.view({heads, -1, w.size(1)}); };
  return at::stack({per_head(p[0]), per_head(p[1]), per_head(p[2])}, 1).reshape({-1, p[0].size(1)});
}

}  // namespace

std::string hf_architecture(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  if (is_llama(c)) {
    if (c.rotary_dim() != c.d_head)
      throw Error("export hf: rotary_fraction " + std::to_string(c.rotary_fraction) +
                  ": LlamaForCausalLM rotates whole heads (use rotary_fraction 1, or the Pythia-style layernorm + gelu)");
    return "LlamaForCausalLM";
  }
  if (c.norm == "layernorm" && c.mlp == "gelu") {
    if (c.n_kv_heads != c.n_heads)
      throw Error("export hf: n_kv_heads " + std::to_string(c.n_kv_heads) + " != n_heads " + std::to_string(c.n_heads) +
                  ": GPTNeoXForCausalLM has no grouped-query attention");
    if (c.d_head * c.n_heads != c.d_model)
      throw Error("export hf: d_head * n_heads must equal d_model for GPTNeoXForCausalLM");
    if (static_cast<int64_t>(c.d_head * c.rotary_fraction) != c.rotary_dim())
      throw Error("export hf: rotary_fraction * d_head must be an even whole number for GPTNeoXForCausalLM");
    return "GPTNeoXForCausalLM";
  }
  throw Error("export hf: norm " + c.norm + " with mlp " + c.mlp +
              " has no Hugging Face counterpart (rmsnorm + swiglu is Llama, layernorm + gelu is GPT-NeoX)");
}

nlohmann::json hf_config(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  const std::string arch = hf_architecture(c);
  nlohmann::json j = {{"architectures", {arch}}, {"vocab_size", c.vocab_size}, {"hidden_size", c.d_model},
                      {"intermediate_size", c.d_ff}, {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads}, {"max_position_embeddings", c.T_train},
                      {"rope_theta", c.rope_theta}, {"tie_word_embeddings", c.tie_embeddings},
                      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", c.rope_theta},
                                           {"partial_rotary_factor", c.rotary_fraction}}},
                      {"torch_dtype", "float32"}, {"initializer_range", 0.02}, {"use_cache", true},
                      {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (arch == "LlamaForCausalLM") {
    j.update({{"model_type", "llama"}, {"num_key_value_heads", c.n_kv_heads}, {"head_dim", c.d_head},
              {"hidden_act", "silu"}, {"rms_norm_eps", kNormEps}, {"rope_scaling", nullptr},
              {"attention_bias", false}, {"mlp_bias", false}});
  } else {
    // Both the classic keys (rotary_pct, rotary_emb_base) and the newer ones.
    j.update({{"model_type", "gpt_neox"}, {"rotary_pct", c.rotary_fraction}, {"partial_rotary_factor", c.rotary_fraction},
              {"rotary_emb_base", c.rope_theta}, {"hidden_act", "gelu"}, {"layer_norm_eps", kNormEps},
              {"use_parallel_residual", false}, {"attention_bias", true}});
  }
  return j;
}

std::map<std::string, at::Tensor> to_hf_tensors(TransformerImpl& m) {
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> out;
  for (const auto& b : bindings(m)) {
    at::Tensor t;
    if (b.kind == Binding::kPlain) t = b.params[0];
    else if (b.kind == Binding::kFusedQKV) t = fuse_qkv(b.params, m.cfg.n_heads);
    else t = at::zeros({b.zero_len});
    out[b.hf] = t.detach().to(at::kCPU, at::kFloat).contiguous();
  }
  return out;
}

void load_hf_tensors(TransformerImpl& m, const std::map<std::string, at::Tensor>& tensors, const std::string& where) {
  torch::NoGradGuard no_grad;
  const auto bound = bindings(m);
  std::map<std::string, bool> known;
  for (const auto& b : bound) known[b.hf] = true;
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const auto& [name, t] : tensors) {
    // Buffers some checkpoints carry (GPT-NeoX's causal mask, rotary tables): not weights.
    if (ends_with(name, "rotary_emb.inv_freq") || ends_with(name, "attention.bias") ||
        ends_with(name, "attention.masked_bias"))
      continue;
    if (!known.count(name) && !(m.cfg.tie_embeddings && (name == "lm_head.weight" || name == "embed_out.weight")))
      throw Error(where + ": tensor \"" + name + "\" has no place in a " + hf_architecture(m.cfg) + " of this config");
  }
  for (const auto& b : bound) {
    const auto it = tensors.find(b.hf);
    if (it == tensors.end() && b.kind == Binding::kZeroBias) continue;  // absent (attention_bias = false): zero
    if (it == tensors.end()) throw Error(where + ": tensor \"" + b.hf + "\" is missing");
    const at::Tensor src = it->second.to(at::kFloat);
    auto shape_of = [](const at::Tensor& t) { return std::vector<int64_t>(t.sizes().begin(), t.sizes().end()); };
    auto check_shape = [&](const std::vector<int64_t>& want) {
      if (shape_of(src) != want)
        throw Error(where + ": tensor \"" + b.hf + "\" has shape " + c10::str(src.sizes()) + ", expected " +
                    c10::str(at::IntArrayRef(want)));
    };
    if (b.kind == Binding::kZeroBias) {
      check_shape({b.zero_len});
      if (src.abs().max().item<double>() != 0)
        throw Error(where + ": bias \"" + b.hf + "\" is not zero; ropelab's linear layers have no biases, so these "
                    "weights cannot be loaded exactly");
    } else if (b.kind == Binding::kPlain) {
      check_shape(shape_of(b.params[0]));
      b.params[0].copy_(src);
    } else {
      const int64_t hs = m.cfg.d_head, H = m.cfg.n_heads;
      check_shape({3 * H * hs, m.cfg.d_model});
      auto split = src.view({H, 3, hs, m.cfg.d_model});
      for (int j = 0; j < 3; ++j) b.params[j].copy_(split.select(1, j).reshape({H * hs, m.cfg.d_model}));
    }
  }
}

void export_hf(TransformerImpl& m, const std::string& dir, const std::string& tokenizer_model) {
  const nlohmann::json config = hf_config(m.cfg);  // refuses configs with no HF counterpart first
  if (fs::exists(dir)) throw Error("export hf: " + dir + " already exists; choose a new --out");
  const std::string tmp = io::temp_name(dir);
  fs::remove_all(tmp);
  io::make_dirs(tmp);
  std::map<std::string, safetensors::Tensor> st;
  for (const auto& [name, t] : to_hf_tensors(m)) {
    safetensors::Tensor s{"F32", std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), {}};
    s.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));  // x86-64: little-endian
    st.emplace(name, std::move(s));
  }
  safetensors::write(tmp + "/model.safetensors", st, {{"format", "pt"}, {"producer", "ropelab"}});
  io::write_json_atomic(tmp + "/config.json", config);
  // ropelab's own logits on a fixed input, so any loader can be checked
  // against them (scripts/hf-check.py does it with transformers).
  {
    torch::NoGradGuard no_grad;
    const bool was_training = m.is_training();
    m.eval();
    const int64_t n = std::min<int64_t>(8, m.cfg.T_train);
    auto ids = (at::arange(n, at::kLong) * 7 + 3) % m.cfg.vocab_size;
    const auto device = m.tok_emb->weight.device();
    auto logits = m.forward(ids.unsqueeze(0).to(device))[0].to(at::kCPU, at::kDouble).contiguous();
    if (was_training) m.train();
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t t = 0; t < n; ++t)
      rows.push_back(std::vector<double>(logits[t].data_ptr<double>(), logits[t].data_ptr<double>() + logits.size(1)));
    io::write_json_atomic(tmp + "/ropelab_reference.json",
                          {{"input_ids", std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + n)},
                           {"logits", rows}, {"note", "ropelab's float32 logits for input_ids at export"}});
  }
  if (!tokenizer_model.empty()) {
    io::write_atomic(tmp + "/tokenizer.model", io::read_file(tokenizer_model));
    // The slow SentencePiece tokenizer encodes exactly as ropelab does; no BOS/EOS added (ropelab trains without).
    io::write_json_atomic(tmp + "/tokenizer_config.json",
                          {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", false},
                           {"legacy", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                           {"model_max_length", m.cfg.T_train}});
  }
  io::commit_atomic(tmp, dir);
}

Transformer import_hf(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json", st_path = dir + "/model.safetensors";
  if (!io::exists(cfg_path)) throw Error(dir + ": no config.json (expected a Hugging Face model directory)");
  if (!io::exists(st_path))
    throw Error(dir + ": no model.safetensors (sharded or .bin checkpoints are not read; save with safe_serialization)");
  Transformer m(model_config_from_hf(io::read_json(cfg_path), cfg_path));
  auto file = safetensors::read(st_path);
  static const std::map<std::string, at::ScalarType> types = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble}};
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, t] : file.tensors) {
    const auto ty = types.find(t.dtype);
    if (ty == types.end()) throw Error(st_path + ": tensor \"" + name + "\" has dtype " + t.dtype + ", not a float type");
    auto x = at::empty(t.shape, at::TensorOptions().dtype(ty->second));
    std::memcpy(x.data_ptr(), t.bytes.data(), t.bytes.size());
    std::string().swap(t.bytes);  // freed as it is converted: one copy of the weights at a time
    tensors[name] = x;
  }
  load_hf_tensors(*m, tensors, st_path);
  m->eval();
  return m;
}

}  // namespace ropelab::model
