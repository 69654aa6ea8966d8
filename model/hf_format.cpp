#include "model/hf_format.h"

#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarTypeToTypeMeta.h>
#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include <torch/version.h>

#include <cmath>
#include <iostream>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "common/error.h"
#include "common/io.h"
#include "common/safetensors.h"
#include "common/text.h"

namespace ropelab::model {
namespace fs = std::filesystem;

namespace {
bool is_llama_family(const ModelConfig& c) { return c.norm == "rmsnorm" && c.mlp == "swiglu"; }
bool is_gemma(const ModelConfig& c) { return c.norm == "rmsnorm" && c.mlp == "geglu"; }

// One HF tensor and the ropelab parameters it is made of.
struct Binding {
  enum Kind {
    kPlain,     // one parameter
    kFusedQKV,  // GPT-NeoX's query_key_value weight or bias: q, k, v interleaved per head
    kZero,      // a tensor the HF layout has and m lacks: written as zeros, must be zero (or absent) on import
    kPlusOne,   // Gemma's RMSNorm gain: HF stores w, the norm multiplies by 1 + w (ropelab's parameter)
  } kind;
  std::string hf;
  std::vector<at::Tensor> params;  // kPlain: 1; kFusedQKV: q, k, v
  std::vector<int64_t> zero_shape;
};

class Bindings {
 public:
  explicit Bindings(TransformerImpl& m) : c_(m.cfg) {
    if (is_gemma(c_)) gemma(m);
    else if (is_llama_family(c_)) llama(m);
    else neox(m);
  }
  std::vector<Binding> list;

 private:
  const ModelConfig& c_;
  void plain(std::string hf, const at::Tensor& p) { list.push_back({Binding::kPlain, std::move(hf), {p}, {}}); }
  void norm(const std::string& hf, torch::nn::AnyModule& mod) {
    for (const auto& p : mod.ptr()->named_parameters()) plain(hf + "." + p.key(), p.value());
  }
  // A Linear's weight, and its bias: the parameter, or zeros of its size when
  // the HF layout has one and m does not.
  void linear(const std::string& hf, torch::nn::Linear& l, bool hf_has_bias) {
    plain(hf + ".weight", l->weight);
    if (l->bias.defined()) plain(hf + ".bias", l->bias);
    else if (hf_has_bias) list.push_back({Binding::kZero, hf + ".bias", {}, {l->weight.size(0)}});
  }
  void llama(TransformerImpl& m) {
    plain("model.embed_tokens.weight", m.tok_emb->weight);
    for (int64_t i = 0; i < c_.n_layers; ++i) {
      auto* blk = m.blocks[i]->as<BlockImpl>();
      const std::string L = "model.layers." + std::to_string(i) + ".";
      norm(L + "input_layernorm", blk->norm1);
      linear(L + "self_attn.q_proj", blk->attn->wq, false);
      linear(L + "self_attn.k_proj", blk->attn->wk, false);
      linear(L + "self_attn.v_proj", blk->attn->wv, false);
      linear(L + "self_attn.o_proj", blk->attn->wo, false);
      if (blk->attn->q_norm) {  // Qwen3
        plain(L + "self_attn.q_norm.weight", blk->attn->q_norm->weight);
        plain(L + "self_attn.k_norm.weight", blk->attn->k_norm->weight);
      }
      norm(L + "post_attention_layernorm", blk->norm2);
      linear(L + "mlp.gate_proj", blk->mlp->gate, false);
      linear(L + "mlp.up_proj", blk->mlp->up, false);
      linear(L + "mlp.down_proj", blk->mlp->down, false);
    }
    norm("model.norm", m.norm_f);
    if (m.lm_head) plain("lm_head.weight", m.lm_head->weight);
  }
  void plus_one(const std::string& hf, const at::Tensor& p) { list.push_back({Binding::kPlusOne, hf, {p}, {}}); }
  void gemma(TransformerImpl& m) {
    auto gain = [&](const std::string& hf, torch::nn::AnyModule& mod) { plus_one(hf + ".weight", mod.ptr()->named_parameters()["weight"]); };
    plain("model.embed_tokens.weight", m.tok_emb->weight);
    for (int64_t i = 0; i < c_.n_layers; ++i) {
      auto* blk = m.blocks[i]->as<BlockImpl>();
      const std::string L = "model.layers." + std::to_string(i) + ".";
      gain(L + "input_layernorm", blk->norm1);
      linear(L + "self_attn.q_proj", blk->attn->wq, false);
      linear(L + "self_attn.k_proj", blk->attn->wk, false);
      linear(L + "self_attn.v_proj", blk->attn->wv, false);
      linear(L + "self_attn.o_proj", blk->attn->wo, false);
      plus_one(L + "self_attn.q_norm.weight", blk->attn->q_norm->weight);
      plus_one(L + "self_attn.k_norm.weight", blk->attn->k_norm->weight);
      gain(L + "post_attention_layernorm", blk->attn_out_norm);
      gain(L + "pre_feedforward_layernorm", blk->norm2);
      gain(L + "post_feedforward_layernorm", blk->mlp_out_norm);
      linear(L + "mlp.gate_proj", blk->mlp->gate, false);
      linear(L + "mlp.up_proj", blk->mlp->up, false);
      linear(L + "mlp.down_proj", blk->mlp->down, false);
    }
    gain("model.norm", m.norm_f);
    if (m.lm_head) plain("lm_head.weight", m.lm_head->weight);
  }
  void neox(TransformerImpl& m) {
    plain("gpt_neox.embed_in.weight", m.tok_emb->weight);
    for (int64_t i = 0; i < c_.n_layers; ++i) {
      auto* blk = m.blocks[i]->as<BlockImpl>();
      auto& a = *blk->attn;
      const std::string L = "gpt_neox.layers." + std::to_string(i) + ".";
      norm(L + "input_layernorm", blk->norm1);
      list.push_back({Binding::kFusedQKV, L + "attention.query_key_value.weight", {a.wq->weight, a.wk->weight, a.wv->weight}, {}});
      if (a.wq->bias.defined())
        list.push_back({Binding::kFusedQKV, L + "attention.query_key_value.bias", {a.wq->bias, a.wk->bias, a.wv->bias}, {}});
      else
        list.push_back({Binding::kZero, L + "attention.query_key_value.bias", {}, {3 * c_.n_heads * c_.d_head}});
      linear(L + "attention.dense", a.wo, true);
      norm(L + "post_attention_layernorm", blk->norm2);
      linear(L + "mlp.dense_h_to_4h", blk->mlp->up, true);
      linear(L + "mlp.dense_4h_to_h", blk->mlp->down, true);
    }
    norm("gpt_neox.final_layer_norm", m.norm_f);
    if (m.lm_head) plain("embed_out.weight", m.lm_head->weight);
  }
};

// GPT-NeoX fuses q, k, v per head: rows [h][q|k|v][d_head] (weights and biases alike).
at::Tensor fuse_qkv(const std::vector<at::Tensor>& p, int64_t heads) {
  auto per_head = [&](const at::Tensor& t) {
    auto shape = t.sizes().vec();
    shape[0] = -1;
    shape.insert(shape.begin(), heads);
    return t.view(shape);
  };
  auto shape = p[0].sizes().vec();
  shape[0] *= 3;
  return at::stack({per_head(p[0]), per_head(p[1]), per_head(p[2])}, 1).reshape(shape);
}
void split_qkv(const at::Tensor& fused, const std::vector<at::Tensor>& p, int64_t heads) {
  auto shape = p[0].sizes().vec();
  shape[0] = p[0].size(0) / heads;
  shape.insert(shape.begin(), {heads, 3});
  auto parts = fused.reshape(shape);
  for (int j = 0; j < 3; ++j) p[j].copy_(parts.select(1, j).reshape(p[j].sizes()));
}

const std::map<std::string, at::ScalarType>& float_dtypes() {
  static const std::map<std::string, at::ScalarType> types = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble}};
  return types;
}
std::string dtype_name(at::ScalarType t) {
  for (const auto& [name, type] : float_dtypes())
    if (type == t) return name;
  throw Error(std::string("export hf: no safetensors name for dtype ") + c10::toString(t));
}

using text::ends_with;
using text::quoted;

}  // namespace

std::string hf_architecture(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  auto refuse = [](const std::string& why) { throw Error("export hf: " + why); };
  if (!*rope_method(c.rope_scaling).hf_type)
    refuse("rope_scaling " + c.rope_scaling + " is ropelab's own RoPE method: transformers has no rope_type for it");
  if (c.layer_types().size() > 1 || c.layer_type(0) != "full") {
    if (c.layer_pattern.find("nope") != std::string::npos) refuse("layer_pattern has nope layers: no exported family has them");
    if (c.sliding_rope_theta > 0 && c.sliding_rope_theta != c.rope_theta && !is_gemma(c))
      refuse("sliding_rope_theta: a per-layer-type θ is Gemma 3's (mlp geglu); the other exported families have one θ");
    if ((!c.sliding_rope.empty() || c.sliding_rotary_fraction > 0) && !is_gemma(c))
      refuse("sliding_rope / sliding_rotary_fraction: per-layer-type RoPE is Gemma 3's (mlp geglu); the other exported "
             "families rotate every layer alike");
    if (!*rope_method(c.rope_params_of("sliding").type).hf_type)
      refuse("sliding_rope " + c.sliding_rope + " is ropelab's own RoPE method: transformers has no rope_type for it");
    if (c.rotary_dim_of("sliding") != c.d_head)
      refuse("sliding_rotary_fraction: Gemma3ForCausalLM's sliding layers rotate whole heads (or take proportional's p)");
  }
  if (is_gemma(c)) {
    if (!c.qk_norm || !c.embed_scale || !c.sandwich_norms || c.qkv_bias != c.out_bias || c.mlp_bias ||
        c.parallel_residual || c.rotary_dim() != c.d_head || c.attention_window > 0)
      refuse("mlp geglu is Gemma 3's: it needs qk_norm, embed_scale and sandwich_norms, whole-head rotary, no MLP "
             "biases, no parallel residual and no attention_window");
    if (!c.layer_pattern.empty() && c.layer_pattern.find("nope") != std::string::npos)
      refuse("layer_pattern has nope layers: Gemma3ForCausalLM has none");
    return "Gemma3ForCausalLM";
  }
  if (c.embed_scale || c.sandwich_norms || c.query_pre_attn_scalar > 0)
    refuse("embed_scale, sandwich_norms and query_pre_attn_scalar are Gemma 3's: they need mlp geglu");
  if (is_llama_family(c)) {
    if (c.qk_norm) {
      if (c.qkv_bias != c.out_bias || c.mlp_bias || c.parallel_residual || c.rotary_dim() != c.d_head)
        refuse("qk_norm with biases, parallel residual or partial rotary: Qwen3ForCausalLM has none of them");
      return "Qwen3ForCausalLM";
    }
    if (!c.layer_pattern.empty()) refuse("layer_pattern without qk_norm: of the Llama family only Qwen3 exports layer_types");
    if (c.rotary_dim() != c.d_head)
      refuse("rotary_fraction " + std::to_string(c.rotary_fraction) +
             ": LlamaForCausalLM rotates whole heads (use rotary_fraction 1, or the Pythia-style layernorm + gelu)");
    if (c.parallel_residual) refuse("parallel_residual: the Llama family's blocks are sequential");
    if (c.qkv_bias && !c.out_bias && !c.mlp_bias && c.attention_window == 0) return "Qwen2ForCausalLM";
    if (c.qkv_bias != c.out_bias)
      refuse("qkv_bias without out_bias (or the reverse): Llama's attention_bias covers q, k, v and o together");
    if (c.attention_window > 0) {
      if (c.qkv_bias || c.mlp_bias) refuse("attention_window with biases: MistralForCausalLM has no biases");
      return "MistralForCausalLM";
    }
    return "LlamaForCausalLM";
  }
  if (c.norm == "layernorm" && c.mlp == "gelu") {
    if (c.n_kv_heads != c.n_heads)
      refuse("n_kv_heads " + std::to_string(c.n_kv_heads) + " != n_heads " + std::to_string(c.n_heads) +
             ": GPTNeoXForCausalLM has no grouped-query attention");
    if (c.d_head * c.n_heads != c.d_model) refuse("d_head * n_heads must equal d_model for GPTNeoXForCausalLM");
    if (static_cast<int64_t>(c.d_head * c.rotary_fraction) != c.rotary_dim())
      refuse("rotary_fraction * d_head must be an even whole number for GPTNeoXForCausalLM");
    if (c.qkv_bias != c.out_bias) refuse("qkv_bias != out_bias: GPT-NeoX's attention_bias covers both");
    if (c.attention_window > 0) refuse("attention_window: GPTNeoXForCausalLM has no sliding window");
    if (!c.layer_pattern.empty()) refuse("layer_pattern: GPTNeoXForCausalLM has one layer type");
    if (c.qk_norm) refuse("qk_norm: GPTNeoXForCausalLM has no q/k norm");
    return "GPTNeoXForCausalLM";
  }
  refuse("norm " + c.norm + " with mlp " + c.mlp +
         " has no Hugging Face counterpart (rmsnorm + swiglu is Llama, layernorm + gelu is GPT-NeoX)");
  return "";
}

nlohmann::json hf_config(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  const std::string arch = hf_architecture(c);
  // The RoPE method as transformers 5 writes it (rope_parameters) and as 4.x reads it (rope_scaling).
  nlohmann::json rope_parameters = rope_params_json(c.rope_params());
  rope_parameters["rope_theta"] = c.rope_theta;
  rope_parameters["partial_rotary_factor"] = c.rotary_fraction;
  nlohmann::json rope_scaling = nullptr;
  if (!c.plain_rope()) {
    rope_scaling = rope_params_json(c.rope_params());
    rope_scaling["type"] = rope_scaling["rope_type"];  // 4.x's older key
  }
  nlohmann::json j = {{"architectures", {arch}}, {"vocab_size", c.vocab_size}, {"hidden_size", c.d_model},
                      {"intermediate_size", c.d_ff}, {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads}, {"max_position_embeddings", c.T_train},
                      {"rope_theta", c.rope_theta}, {"tie_word_embeddings", c.tie_embeddings},
                      {"rope_parameters", rope_parameters},
                      {"initializer_range", 0.02}, {"use_cache", true}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  if (arch == "GPTNeoXForCausalLM") {
    // Both the classic keys (rotary_pct, rotary_emb_base) and the newer ones.
    j.update({{"model_type", "gpt_neox"}, {"rotary_pct", c.rotary_fraction}, {"partial_rotary_factor", c.rotary_fraction},
              {"rotary_emb_base", c.rope_theta}, {"hidden_act", "gelu"}, {"layer_norm_eps", c.norm_eps},
              {"use_parallel_residual", c.parallel_residual}, {"attention_bias", c.qkv_bias}});
  } else {
    std::string model_type;
    for (const auto& [type, a] : hf_model_types())
      if (a == arch) model_type = type;
    j.update({{"model_type", model_type}, {"num_key_value_heads", c.n_kv_heads}, {"head_dim", c.d_head},
              {"hidden_act", "silu"}, {"rms_norm_eps", c.norm_eps}, {"rope_scaling", rope_scaling}});
    if (arch == "LlamaForCausalLM") j.update({{"attention_bias", c.qkv_bias}, {"mlp_bias", c.mlp_bias}});
    if (arch == "MistralForCausalLM") j["sliding_window"] = c.attention_window;
    if (arch == "Qwen2ForCausalLM") j.update({{"use_sliding_window", false}, {"sliding_window", nullptr}});
    if (arch == "Qwen3ForCausalLM") {
      j.update({{"attention_bias", c.qkv_bias}, {"use_sliding_window", !c.layer_pattern.empty()},
                {"sliding_window", c.layer_pattern.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.sliding_window)},
                {"max_window_layers", c.n_layers}});
      nlohmann::json types = nlohmann::json::array();
      for (int64_t i = 0; i < c.n_layers; ++i)
        types.push_back(c.layer_type(i) == "sliding" ? "sliding_attention" : "full_attention");
      j["layer_types"] = types;
    }
    if (arch == "Gemma3ForCausalLM") {
      // transformers 5's per-layer-type rope parameters, and 4.x's keys beside them.
      const double local = c.rope_geometry_of("sliding").theta;
      nlohmann::json sliding_parameters = rope_params_json(c.rope_params_of("sliding"));
      sliding_parameters["rope_theta"] = local;
      if (sliding_parameters["rope_type"] == "proportional")
        sliding_parameters["partial_rotary_factor"] = c.rope_geometry_of("sliding").rotary_fraction;
      nlohmann::json types = nlohmann::json::array();
      for (int64_t i = 0; i < c.n_layers; ++i)
        types.push_back(c.layer_type(i) == "sliding" ? "sliding_attention" : "full_attention");
      j.erase("hidden_act");
      j.update({{"hidden_activation", "gelu_pytorch_tanh"}, {"attention_bias", c.qkv_bias},
                {"query_pre_attn_scalar", c.query_pre_attn_scalar > 0 ? c.query_pre_attn_scalar : double(c.d_head)},
                {"sliding_window", c.layer_pattern.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.sliding_window)},
                {"layer_types", types}, {"rope_local_base_freq", local},
                {"final_logit_softcapping", nullptr}, {"attn_logit_softcapping", nullptr},
                {"rope_parameters", {{"full_attention", rope_parameters},
                                     {"sliding_attention", sliding_parameters}}}});
    }
  }
  return j;
}

std::map<std::string, at::Tensor> to_hf_tensors(TransformerImpl& m) {
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> out;
  const auto dtype = m.tok_emb->weight.scalar_type();
  for (const auto& b : Bindings(m).list) {
    at::Tensor t;
    if (b.kind == Binding::kPlain) t = b.params[0];
    else if (b.kind == Binding::kPlusOne) t = b.params[0] - 1;
    else if (b.kind == Binding::kFusedQKV) t = fuse_qkv(b.params, m.cfg.n_heads);
    else t = at::zeros(b.zero_shape, at::TensorOptions().dtype(dtype));
    out[b.hf] = t.detach().to(at::kCPU).contiguous();
  }
  return out;
}

void load_hf_tensors(TransformerImpl& m, const std::map<std::string, at::Tensor>& tensors, const std::string& where,
                     const std::map<std::string, std::string>& file_of,
                     const std::function<void(const std::string&)>& copied) {
  torch::NoGradGuard no_grad;
  auto file = [&](const std::string& name) {
    const auto it = file_of.find(name);
    return it == file_of.end() ? where : it->second;
  };
  const auto bound = Bindings(m).list;
  std::set<std::string> known;
  for (const auto& b : bound) known.insert(b.hf);
  for (const auto& [name, t] : tensors) {
    // Buffers some checkpoints carry (GPT-NeoX's causal mask, rotary tables): not weights.
    if (ends_with(name, "rotary_emb.inv_freq") || ends_with(name, "attention.bias") ||
        ends_with(name, "attention.masked_bias"))
      continue;
    if (!known.count(name) && !(m.cfg.tie_embeddings && (name == "lm_head.weight" || name == "embed_out.weight")))
      throw Error(file(name) + ": tensor " + quoted(name) + " has no place in a " +
                  (is_gemma(m.cfg) ? "Gemma 3" : is_llama_family(m.cfg) ? "Llama-family" : "GPT-NeoX") +
                  " model of this config.json");
  }
  for (const auto& b : bound) {
    const auto it = tensors.find(b.hf);
    if (it == tensors.end() && b.kind == Binding::kZero) continue;  // absent (attention_bias = false): zero
    if (it == tensors.end()) throw Error(where + ": tensor " + quoted(b.hf) + " is missing");
    const at::Tensor& src = it->second;
    if (!at::isFloatingType(src.scalar_type()))
      throw Error(file(b.hf) + ": tensor " + quoted(b.hf) + " has dtype " + c10::toString(src.scalar_type()) +
                  ", not a float type");
    auto expect = [&](const std::vector<int64_t>& want) {
      if (src.sizes().vec() != want)
        throw Error(file(b.hf) + ": tensor " + quoted(b.hf) + " has shape " + c10::str(src.sizes()) +
                    ", config.json implies " + c10::str(at::IntArrayRef(want)));
    };
    if (b.kind == Binding::kZero) {
      expect(b.zero_shape);
      if (src.abs().max().item<double>() != 0)
        throw Error(file(b.hf) + ": bias " + quoted(b.hf) + " is not zero, but this model has none (config.json's attention_bias)");
    } else if (b.kind == Binding::kPlain) {
      expect(b.params[0].sizes().vec());
      b.params[0].copy_(src);
    } else if (b.kind == Binding::kPlusOne) {
      expect(b.params[0].sizes().vec());
      b.params[0].copy_(src.to(at::kFloat) + 1);  // as Gemma computes it: 1 + w in float32
    } else {
      auto want = b.params[0].sizes().vec();
      want[0] *= 3;
      expect(want);
      split_qkv(src, b.params, m.cfg.n_heads);
    }
    if (copied) copied(b.hf);
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
    safetensors::Tensor s{dtype_name(t.scalar_type()), t.sizes().vec(), {}};
    s.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());  // x86-64: little-endian
    st.emplace(name, std::move(s));
  }
  safetensors::write(tmp + "/model.safetensors", st, {{"format", "pt"}, {"producer", "ropelab"}});
  nlohmann::json with_dtype = config;
  const auto dtype = m.tok_emb->weight.scalar_type();
  with_dtype["torch_dtype"] = dtype == at::kBFloat16 ? "bfloat16" : dtype == at::kHalf ? "float16" : "float32";
  io::write_json_atomic(tmp + "/config.json", with_dtype);
  // ropelab's own logits on a fixed input, so any loader can be checked
  // against them (scripts/hf-check.py does it with transformers); not where
  // the CPU cannot compute in the model's dtype (float16 on libtorch 1.13).
  if (cpu_computes_in(m.tok_emb->weight.scalar_type()) || m.tok_emb->weight.is_cuda()) {
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
                           {"logits", rows}, {"note", "ropelab's logits for input_ids at export"}});
  }
  if (ends_with(tokenizer_model, ".json")) {
    // A byte-level BPE tokenizer.json (a released model's) goes back out as it came.
    io::write_atomic(tmp + "/tokenizer.json", io::read_file(tokenizer_model));
    io::write_json_atomic(tmp + "/tokenizer_config.json",
                          {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", m.cfg.T_train}});
  } else if (!tokenizer_model.empty()) {
    io::write_atomic(tmp + "/tokenizer.model", io::read_file(tokenizer_model));
    // The slow SentencePiece tokenizer encodes exactly as ropelab does; no BOS/EOS added (ropelab trains without).
    io::write_json_atomic(tmp + "/tokenizer_config.json",
                          {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", false}, {"add_eos_token", false},
                           {"legacy", true}, {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                           {"model_max_length", m.cfg.T_train}});
  }
  io::commit_atomic(tmp, dir);
}

at::ScalarType eval_dtype(const std::string& word, const std::string& stored) {
  static const std::map<std::string, at::ScalarType> words = {
      {"float32", at::kFloat}, {"bfloat16", at::kBFloat16}, {"float16", at::kHalf}};
  if (word == "auto") {
    const auto it = float_dtypes().find(stored);
    return it == float_dtypes().end() || it->second == at::kDouble ? at::kFloat : it->second;
  }
  const auto it = words.find(word);
  if (it == words.end()) throw Error("--dtype " + quoted(word) + ": expected auto, float32, bfloat16 or float16");
  return it->second;
}

bool cpu_computes_in(at::ScalarType t) {
  try {
    torch::NoGradGuard no_grad;
    auto x = at::ones({2, 4}, at::TensorOptions().dtype(t));
    auto y = at::layer_norm(x, {4}, at::ones({4}, x.options()), at::zeros({4}, x.options()), 1e-5);
    y = at::gelu(at::matmul(y, x.t())) + at::silu(y.sum());
    (void)at::softmax(y.to(at::kFloat), -1);
    return true;
  } catch (const c10::Error&) {
    return false;
  }
}

namespace {

// The weight files of a HF directory: model.safetensors, or the shards
// model.safetensors.index.json lists, each checked against the index.
std::vector<std::unique_ptr<safetensors::MappedFile>> map_weights(const std::string& dir) {
  std::vector<std::unique_ptr<safetensors::MappedFile>> files;
  const std::string single = dir + "/model.safetensors", index_path = dir + "/model.safetensors.index.json";
  if (!io::exists(index_path)) {
    if (!io::exists(single))
      throw Error(dir + ": no model.safetensors or model.safetensors.index.json (.bin checkpoints are not read; "
                  "save with safe_serialization)");
    files.push_back(std::make_unique<safetensors::MappedFile>(single));
    return files;
  }
  const auto index = io::read_json(index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw Error(index_path + ": needs an object at \"weight_map\" (tensor name -> shard file)");
  std::map<std::string, std::set<std::string>> listed;  // shard -> the tensors the index puts there
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string())
      throw Error(index_path + ": weight_map[" + quoted(name) + "] is not a file name");
    const std::string f = shard.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      throw Error(index_path + ": weight_map[" + quoted(name) + "] = " + quoted(f) + " is not a file name in " + dir);
    listed[f].insert(name);
  }
  for (const auto& [shard, names] : listed) {
    const std::string path = dir + "/" + shard;
    if (!io::exists(path))
      throw Error(index_path + ": shard " + quoted(shard) + " (holding " + quoted(*names.begin()) + ") is missing from " + dir);
    files.push_back(std::make_unique<safetensors::MappedFile>(path));
    std::set<std::string> held;
    for (const auto& [name, e] : files.back()->layout().tensors) held.insert(name);
    for (const auto& name : held)
      if (!names.count(name))
        throw Error(path + ": holds tensor " + quoted(name) + ", which " + index_path + " does not place in this shard");
    for (const auto& name : names)
      if (!held.count(name))
        throw Error(index_path + ": places tensor " + quoted(name) + " in " + quoted(shard) + ", which does not hold it");
  }
  return files;
}

// The model's parameters are made in `t` from the start (not float32 first),
// so a bf16 model never needs its float32 copy's memory.
class DefaultDtypeGuard {
 public:
  explicit DefaultDtypeGuard(at::ScalarType t) : old_(c10::get_default_dtype()) {
    c10::set_default_dtype(c10::scalarTypeToTypeMeta(t));
  }
  ~DefaultDtypeGuard() { c10::set_default_dtype(old_); }

 private:
  caffe2::TypeMeta old_;
};

}  // namespace

Transformer import_hf(const std::string& dir, const std::string& dtype, bool to_compute) {
  const std::string cfg_path = dir + "/config.json";
  if (!io::exists(cfg_path)) throw Error(dir + ": no config.json (expected a Hugging Face model directory)");
  const ModelConfig cfg = model_config_from_hf(io::read_json(cfg_path), cfg_path);
  const auto files = map_weights(dir);

  std::map<std::string, at::Tensor> tensors;  // views of the mapped files: no copy yet
  std::map<std::string, std::string> file_of;
  std::map<std::string, const safetensors::MappedFile*> mapped_in;
  std::string embedding_dtype;
  for (const auto& f : files)
    for (const auto& [name, e] : f->layout().tensors) {
      const auto ty = float_dtypes().find(e.dtype);
      if (ty == float_dtypes().end())
        throw Error(f->path() + ": tensor " + quoted(name) + " has dtype " + e.dtype + ", not a float type");
      if (tensors.count(name)) throw Error(f->path() + ": tensor " + quoted(name) + " is in two shards");
      tensors[name] = at::from_blob(const_cast<char*>(f->data(name)), e.shape, at::TensorOptions().dtype(ty->second));
      file_of[name] = f->path();
      mapped_in[name] = f.get();
      if (name == "model.embed_tokens.weight" || name == "gpt_neox.embed_in.weight") embedding_dtype = e.dtype;
    }
  at::ScalarType t = eval_dtype(dtype, embedding_dtype);
  if (to_compute && !cpu_computes_in(t)) {
    if (dtype != "auto")
      throw Error("--dtype " + dtype + ": this libtorch (" + TORCH_VERSION + ") cannot compute the model in " +
                  c10::toString(t) + " on the CPU; use --dtype float32 or bfloat16");
    std::cerr << dir << ": " << embedding_dtype << " weights, but this libtorch (" << TORCH_VERSION
              << ") cannot compute in them on the CPU: evaluating in float32 (--dtype bfloat16 halves the memory)\n";
    t = at::kFloat;
  }
  Transformer m{nullptr};
  {
    DefaultDtypeGuard guard(t);
    m = Transformer(cfg);
  }
  // Each tensor's file pages are dropped once copied: the resident set stays
  // near the model's own copy instead of the model plus the whole mapped file.
  load_hf_tensors(*m, tensors, dir, file_of, [&](const std::string& name) { mapped_in.at(name)->release(name); });
  m->eval();
  return m;
}

}  // namespace ropelab::model
