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

// RoPE base and scaling: transformers v5 keeps them in "rope_parameters",
// older configs in "rope_theta" / "rotary_emb_base" and "rope_scaling".
void read_rope(const HfReader& top, ModelConfig& c) {
  const std::string where = top.where;
  const nlohmann::json empty = nlohmann::json::object();
  const bool v5 = top.has("rope_parameters");
  if (v5) top.require(top.j["rope_parameters"].is_object(), "config.json needs an object at \"rope_parameters\"");
  if (top.has("rope_scaling")) top.require(top.j["rope_scaling"].is_object(), "config.json needs an object or null at \"rope_scaling\"");
  const nlohmann::json& params = v5 ? top.j["rope_parameters"] : top.has("rope_scaling") ? top.j["rope_scaling"] : empty;
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
  std::string type = rope.text_or("rope_type", rope.text_or("type", "default"));
  if (type == "default") type = "none";
  static const char* known[] = {"none", "linear", "dynamic", "yarn", "llama3", "longrope"};
  rope.require(std::find(std::begin(known), std::end(known), type) != std::end(known),
               "rope type " + text::quoted(type) + " is not one ropelab applies (default, linear, dynamic, yarn, llama3, longrope)");
  c.rope_scaling = type;
  if (type == "none") return;
  // original_max_position_embeddings: in the scaling's own keys, or at the top level (Phi-3's longrope).
  c.rope_original_max_positions = rope.whole_or("original_max_position_embeddings",
                                                top.whole_or("original_max_position_embeddings", 0));
  if (type != "longrope") c.rope_scaling_factor = rope.number("factor");
  if (type == "yarn") {
    for (const char* k : {"mscale", "mscale_all_dim"})
      rope.require(!rope.has(k), std::string(k) + " is set (DeepSeek's YaRN variant): not applied by ropelab");
    rope.require(rope.flag_or("truncate", true), "truncate false: ropelab's YaRN floors and ceils the ramp's ends as HF's default");
    c.rope_beta_fast = rope.number_or("beta_fast", 32.0);
    c.rope_beta_slow = rope.number_or("beta_slow", 1.0);
    c.rope_attention_factor = rope.number_or("attention_factor", 0.0);
  } else if (type == "llama3") {
    rope.require(c.rope_original_max_positions > 0, "llama3 needs \"original_max_position_embeddings\"");
    c.rope_low_freq_factor = rope.number("low_freq_factor");
    c.rope_high_freq_factor = rope.number("high_freq_factor");
  } else if (type == "longrope") {
    c.rope_long_factor = rope.numbers("long_factor");
    c.rope_short_factor = rope.numbers("short_factor");
    c.rope_attention_factor = rope.number_or("attention_factor", 0.0);
    // As HF: with a top-level original_max_position_embeddings the factor is
    // the ratio of the two contexts; otherwise the scaling's own "factor".
    if (top.has("original_max_position_embeddings")) {
      c.rope_scaling_factor = double(c.T_train) / double(std::max<int64_t>(c.rope_original_max_positions, 1));
    } else {
      c.rope_original_max_positions = c.T_train;
      c.rope_scaling_factor = rope.number_or("factor", 1.0);
    }
  }
}

}  // namespace

std::string hf_architecture_of(const nlohmann::json& hf) {
  if (hf.is_object() && hf.contains("architectures") && hf["architectures"].is_array() &&
      !hf["architectures"].empty() && hf["architectures"][0].is_string())
    return hf["architectures"][0].get<std::string>();
  static const std::map<std::string, std::string> by_type = {{"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"},
                                                             {"mistral", "MistralForCausalLM"}, {"gpt_neox", "GPTNeoXForCausalLM"}};
  if (hf.is_object() && hf.contains("model_type") && hf["model_type"].is_string()) {
    const auto it = by_type.find(hf["model_type"].get<std::string>());
    return it == by_type.end() ? hf["model_type"].get<std::string>() : it->second;
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
  const bool neox = arch == "GPTNeoXForCausalLM", qwen2 = arch == "Qwen2ForCausalLM",
             mistral = arch == "MistralForCausalLM", llama = arch == "LlamaForCausalLM";
  r.require(neox || qwen2 || mistral || llama,
            "config.json describes " + text::quoted(arch) +
                "; ropelab loads LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM and GPTNeoXForCausalLM");

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
  } else {
    c.norm = "rmsnorm";
    c.mlp = "swiglu";
    r.require(act == "silu", "hidden_act " + text::quoted(act) + ": ropelab's SwiGLU uses silu");
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.n_kv_heads = r.whole_or("num_key_value_heads", c.n_heads);
    c.d_head = r.whole_or("head_dim", c.d_model / std::max<int64_t>(c.n_heads, 1));
    r.require(r.number_or("partial_rotary_factor", 1.0) == 1.0,
              "partial_rotary_factor below 1: the Llama family rotates whole heads in ropelab");
    if (qwen2) {
      c.qkv_bias = true;  // Qwen2's q, k, v projections have biases; o_proj does not
      r.require(!r.flag_or("use_sliding_window", false),
                "use_sliding_window is true: Qwen2's per-layer windows (max_window_layers) are not implemented");
      if (r.has("layer_types"))
        for (const auto& t : hf["layer_types"])
          r.require(t == "full_attention", "layer_types holds a layer that is not full_attention: not implemented");
    } else {
      c.qkv_bias = c.out_bias = r.flag_or("attention_bias", false);
      c.mlp_bias = r.flag_or("mlp_bias", false);
    }
    if (mistral) c.attention_window = r.whole_or("sliding_window", 0);
  }
  if (r.has("rope_parameters") && hf["rope_parameters"].is_object()) {
    const HfReader rp{hf["rope_parameters"], where + " rope_parameters"};
    if (rp.has("partial_rotary_factor")) {
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
