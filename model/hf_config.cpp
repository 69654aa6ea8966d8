#include "model/hf_config.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/text.h"

namespace ropelab::model {
namespace {

// Typed readers of config.json values that name the key on a bad value
// (nlohmann's value() throws its own type_error; a cast of 1e300 to int64 is undefined).
struct HfReader {
  const nlohmann::json& j;
  std::string where;

  void require(bool ok, const std::string& msg) const {
    if (!ok) throw Error(where + ": " + msg);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  double number(const std::string& key) const {
    require(has(key) && j[key].is_number(), "config.json needs a number at \"" + key + "\"");
    return j[key].get<double>();
  }
  double number_or(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }
  int64_t whole(const std::string& key) const { return whole_value(number(key), key); }
  int64_t whole_or(const std::string& key, int64_t fallback) const {
    return has(key) ? whole(key) : fallback;
  }
  int64_t whole_value(double v, const std::string& key) const {
    require(v >= 0 && v <= 9007199254740992.0 && v == std::floor(v),
            "config.json needs a whole number >= 0 at \"" + key + "\"");
    return static_cast<int64_t>(v);
  }
  std::string text_or(const std::string& key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    require(j[key].is_string(), "config.json needs a string at \"" + key + "\"");
    return j[key].get<std::string>();
  }
  bool flag_or(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    require(j[key].is_boolean(), "config.json needs true or false at \"" + key + "\"");
    return j[key].get<bool>();
  }
  std::vector<double> numbers(const std::string& key) const {
    require(has(key) && j[key].is_array() &&
                std::all_of(j[key].begin(), j[key].end(), [](const nlohmann::json& x) { return x.is_number(); }),
            "config.json needs a list of numbers at \"" + key + "\"");
    return j[key].get<std::vector<double>>();
  }
};

// One rope-parameters object's method and keys (rope_type or type, "default"
// when absent), every key through the one table (model/rope_methods.h),
// which names a key the type does not take; the model-level keys (θ, the
// rotary fraction) are the caller's.
RopeParams read_rope_params(const HfReader& rope, const std::string& type) {
  const bool hf_type = std::any_of(rope_methods().begin(), rope_methods().end(),
                                   [&](const RopeMethod& m) { return type == m.hf_type; });
  rope.require(hf_type && !type.empty(), "rope type " + text::quoted(type) + " is not one of transformers' (ropelab rope list)");
  RopeParams p;
  p.type = rope_method(type).name;
  for (const auto& [key, value] : rope.j.items()) {
    if (key == "rope_type" || key == "type" || key == "rope_theta" || key == "partial_rotary_factor") continue;
    if (value.is_null()) continue;
    // transformers reads no original context for dynamic (it warns the key is unused): neither does ropelab.
    if (key == "original_max_position_embeddings" && p.type == "dynamic") continue;
    set_rope_param(p, key, value, rope.where);
  }
  return p;
}

// transformers 5's sliding_attention rope parameters (Gemma 3): the sliding
// layers' θ and method (sliding_rope_theta, sliding_rope), and proportional's p.
void read_sliding_rope(const HfReader& local, ModelConfig& c) {
  const RopeParams p = read_rope_params(local, local.text_or("rope_type", local.text_or("type", "default")));
  local.require(!rope_method(p.type).factor_required || local.has("factor"), p.type + " needs \"factor\"");
  c.sliding_rope_theta = local.number_or("rope_theta", 0.0);
  c.sliding_rope = p.type == "default" ? "" : rope_spec(p);
  if (p.type == "proportional") c.sliding_rotary_fraction = local.number_or("partial_rotary_factor", 1.0);
  else local.require(local.number_or("partial_rotary_factor", 1.0) == 1.0,
                     "partial_rotary_factor below 1 on sliding layers: Gemma 3 rotates whole heads");
}

// RoPE base and scaling: transformers v5 keeps them in "rope_parameters",
// older configs in "rope_theta" / "rotary_emb_base" and "rope_scaling".
void read_rope(const HfReader& top, ModelConfig& c) {
  const std::string where = top.where;
  const nlohmann::json empty = nlohmann::json::object();
  const bool v5 = top.has("rope_parameters");
  if (v5) top.require(top.j["rope_parameters"].is_object(), "config.json needs an object at \"rope_parameters\"");
  if (top.has("rope_scaling")) top.require(top.j["rope_scaling"].is_object(), "config.json needs an object or null at \"rope_scaling\"");
  const nlohmann::json* chosen = v5 ? &top.j["rope_parameters"] : top.has("rope_scaling") ? &top.j["rope_scaling"] : &empty;
  // transformers 5's per-layer-type parameters (Gemma 3): the full layers' are
  // the model's method; the sliding layers' θ and method are theirs.
  if (v5 && chosen->contains("full_attention")) {
    const nlohmann::json& nested = *chosen;
    for (const auto& [key, value] : nested.items())
      top.require(key == "full_attention" || key == "sliding_attention",
                  "rope_parameters." + key + ": ropelab's layer types are full_attention and sliding_attention");
    top.require(nested["full_attention"].is_object(), "config.json needs an object at \"rope_parameters.full_attention\"");
    if (nested.contains("sliding_attention")) {
      const HfReader local{nested["sliding_attention"], where + " rope_parameters.sliding_attention"};
      if (c.layer_pattern.find("sliding") != std::string::npos) read_sliding_rope(local, c);
    }
    chosen = &nested["full_attention"];
  }
  const nlohmann::json& params = *chosen;
  if (v5 && top.has("rope_scaling")) {
    // Both present (a config converted between transformers versions): they must say the same.
    auto type_of = [](const nlohmann::json& j) {
      for (const char* k : {"rope_type", "type"})
        if (j.contains(k) && j[k].is_string()) return j[k].get<std::string>();
      return std::string("default");
    };
    top.require(type_of(top.j["rope_scaling"]) == type_of(params),
                "rope_scaling says " + text::quoted(type_of(top.j["rope_scaling"])) + " but rope_parameters says " +
                    text::quoted(type_of(params)) + "; which one the model was trained with is unclear");
  }
  const HfReader rope{params, where + " " + (v5 ? "rope_parameters" : "rope_scaling")};

  c.rope_theta = rope.number_or("rope_theta", top.number_or("rope_theta", top.number_or("rotary_emb_base", 10000.0)));
  // "rope_type" (newer) or "type" (older); "default" and absent mean plain RoPE.
  RopeParams p = read_rope_params(rope, rope.text_or("rope_type", rope.text_or("type", "default")));
  // transformers 5: a top-level original_max_position_embeddings (Phi-3's
  // layout) wins over the one in the rope parameters; without either, the
  // original context is max_position_embeddings.
  if (top.has("original_max_position_embeddings") && p.type != "dynamic")
    p.original_max_position_embeddings = top.whole("original_max_position_embeddings");
  const bool factor_given = params.contains("factor") && !params["factor"].is_null();
  const RopeMethod& method = rope_method(p.type);
  rope.require(factor_given || !method.factor_required, p.type + " needs \"factor\"");
  if (p.type == "longrope" && !factor_given) {
    // As transformers: without a factor, the ratio of the context to the original one.
    const double original = double(p.original_max_position_embeddings > 0 ? p.original_max_position_embeddings : c.T_train);
    p.factor = double(c.T_train) / original;
  }
  if (p.type == "proportional")  // p-RoPE's p is the rotary fraction of the rope parameters
    c.rotary_fraction = rope.number_or("partial_rotary_factor", 1.0);
  c.set_rope_params(p);
}

// Gemma 3 (text): GeGLU with the tanh gelu, RMSNorm (its 1 + w gain is
// stored as ropelab's w: model/hf_format.cpp adds the 1), four norms a layer,
// q/k norms, embeddings × √d_model, scores × query_pre_attn_scalar^(-1/2),
// sliding layers at rope_local_base_freq.
void read_layer_types(const HfReader& r, ModelConfig& c);
void read_gemma3(const HfReader& r, ModelConfig& c) {
  const std::string act = r.text_or("hidden_activation", r.text_or("hidden_act", "gelu_pytorch_tanh"));
  r.require(act == "gelu_pytorch_tanh", "hidden_activation " + text::quoted(act) + ": Gemma 3's MLP uses gelu_pytorch_tanh");
  for (const char* k : {"final_logit_softcapping", "attn_logit_softcapping"})
    r.require(!r.has(k), std::string(k) + " is set: logit soft-capping is not implemented");
  c.norm = "rmsnorm";
  c.mlp = "geglu";
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.n_kv_heads = r.whole_or("num_key_value_heads", c.n_heads);
  c.d_head = r.whole_or("head_dim", 256);
  c.qkv_bias = c.out_bias = r.flag_or("attention_bias", false);
  c.qk_norm = c.embed_scale = c.sandwich_norms = true;
  c.tie_embeddings = r.flag_or("tie_word_embeddings", true);  // Gemma 3's default
  c.query_pre_attn_scalar = r.number_or("query_pre_attn_scalar", 256);
  c.sliding_rope_theta = r.number_or("rope_local_base_freq", 10000.0);
  if (!r.has("layer_types") && r.has("sliding_window_pattern")) {
    // Older configs: every sliding_window_pattern-th layer is global.
    const int64_t every = r.whole("sliding_window_pattern");
    r.require(every > 0, "config.json needs a whole number > 0 at \"sliding_window_pattern\"");
    std::string pattern;
    for (int64_t i = 0; i < c.n_layers; ++i) pattern += (i ? "," : "") + std::string((i + 1) % every ? "sliding" : "full");
    c.layer_pattern = pattern;
    c.sliding_window = r.whole("sliding_window");
  }
  read_layer_types(r, c);
  if (c.layer_pattern.empty()) c.sliding_rope_theta = 0;  // no sliding layer to take it
}

// transformers' layer_types (full_attention, sliding_attention) as ropelab's
// layer_pattern: all full is no pattern; otherwise the whole list, with the
// sliding layers' window from sliding_window.
void read_layer_types(const HfReader& r, ModelConfig& c) {
  if (!r.has("layer_types")) return;
  r.require(r.j["layer_types"].is_array() && int64_t(r.j["layer_types"].size()) == c.n_layers,
            "config.json needs a list of num_hidden_layers layer types at \"layer_types\"");
  std::string pattern;
  bool any_sliding = false;
  for (const auto& t : r.j["layer_types"]) {
    r.require(t == "full_attention" || t == "sliding_attention",
              "layer_types holds " + t.dump() + ": ropelab builds full_attention and sliding_attention layers");
    any_sliding = any_sliding || t == "sliding_attention";
    pattern += (pattern.empty() ? "" : ",") + std::string(t == "full_attention" ? "full" : "sliding");
  }
  if (!any_sliding) return;
  c.layer_pattern = pattern;
  c.sliding_window = r.whole("sliding_window");
  c.attention_window = 0;
}
}  // namespace

const std::vector<std::pair<std::string, std::string>>& hf_model_types() {
  static const std::vector<std::pair<std::string, std::string>> types = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
      {"mistral", "MistralForCausalLM"}, {"gpt_neox", "GPTNeoXForCausalLM"}, {"gemma3_text", "Gemma3ForCausalLM"}};
  return types;
}

std::string hf_architecture_of(const nlohmann::json& hf) {
  if (hf.is_object() && hf.contains("architectures") && hf["architectures"].is_array() &&
      !hf["architectures"].empty() && hf["architectures"][0].is_string())
    return hf["architectures"][0].get<std::string>();
  if (hf.is_object() && hf.contains("model_type") && hf["model_type"].is_string()) {
    for (const auto& [type, arch] : hf_model_types())
      if (type == hf["model_type"].get<std::string>()) return arch;
    return hf["model_type"].get<std::string>();
  }
  return "";
}

ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& where) {
  const HfReader r{hf, where};
  r.require(hf.is_object(), "config.json is not a JSON object");
  if (r.has("architectures"))
    r.require(hf["architectures"].is_array() && (hf["architectures"].empty() || hf["architectures"][0].is_string()),
              "config.json needs a list of strings at \"architectures\"");
  const std::string arch = hf_architecture_of(hf);
  const bool neox = arch == "GPTNeoXForCausalLM", qwen2 = arch == "Qwen2ForCausalLM", qwen3 = arch == "Qwen3ForCausalLM",
             mistral = arch == "MistralForCausalLM", llama = arch == "LlamaForCausalLM", gemma3 = arch == "Gemma3ForCausalLM";
  r.require(neox || qwen2 || qwen3 || mistral || llama || gemma3,
            "config.json describes " + text::quoted(arch) +
                "; ropelab loads LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, "
                "Gemma3ForCausalLM (text) and GPTNeoXForCausalLM");

  ModelConfig c;
  c.vocab_size = r.whole("vocab_size");
  c.d_model = r.whole("hidden_size");
  c.d_ff = r.whole("intermediate_size");
  c.n_layers = r.whole("num_hidden_layers");
  c.n_heads = r.whole("num_attention_heads");
  c.T_train = r.whole("max_position_embeddings");
  c.tie_embeddings = r.flag_or("tie_word_embeddings", false);
  const std::string act = r.text_or("hidden_act", "");
  if (neox) {
    c.norm = "layernorm";
    c.mlp = "gelu";
    r.require(act == "gelu", "hidden_act " + text::quoted(act) + ": ropelab's GPT-NeoX MLP uses exact gelu");
    c.norm_eps = r.number_or("layer_norm_eps", 1e-5);
    c.rotary_fraction = r.number_or("rotary_pct", r.number_or("partial_rotary_factor", 0.25));
    c.parallel_residual = r.flag_or("use_parallel_residual", true);  // absent counts as true, as in HF
    c.qkv_bias = c.out_bias = r.flag_or("attention_bias", true);
    c.mlp_bias = true;  // GPT-NeoX's MLP always has biases
  } else if (gemma3) {
    read_gemma3(r, c);
  } else {
    c.norm = "rmsnorm";
    c.mlp = "swiglu";
    r.require(act == "silu", "hidden_act " + text::quoted(act) + ": ropelab's SwiGLU uses silu");
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.n_kv_heads = r.whole_or("num_key_value_heads", c.n_heads);
    c.d_head = r.whole_or("head_dim", c.d_model / std::max<int64_t>(c.n_heads, 1));
    r.require(r.number_or("partial_rotary_factor", 1.0) == 1.0,
              "partial_rotary_factor below 1: the Llama family rotates whole heads in ropelab");
    if (qwen2 || qwen3)
      r.require(!r.flag_or("use_sliding_window", false) || r.has("layer_types"),
                "use_sliding_window is true without layer_types: the per-layer windows (max_window_layers) are not implemented");
    if (qwen2) {
      c.qkv_bias = true;  // Qwen2's q, k, v projections have biases; o_proj does not
    } else {
      c.qkv_bias = c.out_bias = r.flag_or("attention_bias", false);
      c.mlp_bias = r.flag_or("mlp_bias", false);
    }
    if (mistral) c.attention_window = r.whole_or("sliding_window", 0);
    if (qwen3) c.qk_norm = true;  // Qwen3: RMSNorm over each head's q and k
    read_layer_types(r, c);
  }
  if (r.has("rope_parameters") && hf["rope_parameters"].is_object()) {
    const HfReader rp{hf["rope_parameters"], where + " rope_parameters"};
    const bool proportional = rp.text_or("rope_type", rp.text_or("type", "")) == "proportional";
    if (rp.has("partial_rotary_factor") && !proportional) {  // proportional's p: read with the method
      if (neox) c.rotary_fraction = rp.number("partial_rotary_factor");
      else rp.require(rp.number("partial_rotary_factor") == 1.0,
                      "partial_rotary_factor below 1: the Llama family rotates whole heads in ropelab");
    }
  }
  read_rope(r, c);
  try {
    return c.resolved();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

}  // namespace ropelab::model
