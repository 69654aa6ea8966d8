#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/config_fields.h"
#include "common/error.h"
#include "model/hf_config.h"

namespace ropelab::model {

namespace {
using C = ModelConfig;
using F = config::Field<C>;
}  // namespace

const std::vector<config::Field<ModelConfig>>& model_fields() {
  static const std::vector<F> fields = {
      // key, flag (nullptr: none), member, flag group, help, {rule, what it says}
      {"vocab_size", nullptr, &C::vocab_size, "model", "", {[](const C& c) { return c.vocab_size > 0; }, "must be > 0"}},
      {"d_model", "d-model", &C::d_model, "model", "", {[](const C& c) { return c.d_model > 0; }, "must be > 0"}},
      {"n_layers", "n-layers", &C::n_layers, "model", "", {[](const C& c) { return c.n_layers > 0; }, "must be > 0"}},
      {"n_heads", "n-heads", &C::n_heads, "model", "", {[](const C& c) { return c.n_heads > 0; }, "must be > 0"}},
      {"n_kv_heads", "n-kv-heads", &C::n_kv_heads, "model", "0 = n-heads",
       {[](const C& c) { return c.n_kv_heads >= 0; }, "must be >= 0"}},
      {"d_head", "d-head", &C::d_head, "model", "0 = d-model / n-heads", {[](const C& c) { return c.d_head >= 0; }, "must be >= 0"}},
      {"d_ff", "d-ff", &C::d_ff, "model", "0 = derived from d-model and mlp", {[](const C& c) { return c.d_ff >= 0; }, "must be >= 0"}},
      {"rope_theta", "rope-theta", &C::rope_theta, "model", "RoPE base θ",
        {[](const C& c) { return c.rope_theta > 0 && std::isfinite(c.rope_theta); }, "must be a finite number > 0"}},
      {"rotary_fraction", "rotary-fraction", &C::rotary_fraction, "model", "share of each head that rotates",
       {[](const C& c) { return c.rotary_fraction > 0 && c.rotary_fraction <= 1; }, "must be in (0, 1]"}},
      {"T_train", "T-train", &C::T_train, "model", "training sequence length", {[](const C& c) { return c.T_train > 0; }, "must be > 0"}},
      {"norm", "norm", &C::norm, "model", "rmsnorm or layernorm",
       {[](const C& c) { return c.norm == "rmsnorm" || c.norm == "layernorm"; }, "must be rmsnorm or layernorm"}},
      {"mlp", "mlp", &C::mlp, "model", "swiglu or gelu", {[](const C& c) { return c.mlp == "swiglu" || c.mlp == "gelu"; }, "must be swiglu or gelu"}},
      {"tie_embeddings", "tie-embeddings", &C::tie_embeddings, "model", "share embedding and LM head"},
  };
  return fields;
}

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  config::validate(c, model_fields(), "model config");
  // Sizes beyond 2^24 are no model ropelab can build, and their products would overflow int64.
  constexpr int64_t kMaxSize = int64_t(1) << 24;
  for (const auto& [name, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size}, {"d_model", c.d_model},
                                {"n_layers", c.n_layers}, {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads},
                                {"d_head", c.d_head}, {"d_ff", c.d_ff}, {"T_train", c.T_train}})
    need(v <= kMaxSize, "model config: " + std::string(name) + " " + std::to_string(v) + " exceeds 2^24");
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  need(c.n_heads % c.n_kv_heads == 0,
       "model config: n_heads (" + std::to_string(c.n_heads) + ") must be a multiple of n_kv_heads (" +
           std::to_string(c.n_kv_heads) + ")");
  if (c.d_head == 0) {
    need(c.d_model % c.n_heads == 0, "model config: d_model must be divisible by n_heads when d_head is not given");
    c.d_head = c.d_model / c.n_heads;
  }
  need(c.d_head > 0 && c.d_head % 2 == 0, "model config: d_head must be a positive even number");
  if (c.d_ff == 0) c.d_ff = c.mlp == "gelu" ? 4 * c.d_model : ((8 * c.d_model / 3 + 63) / 64) * 64;
  need(c.rotary_dim() >= 2, "model config: rotary_fraction * d_head leaves no dimension pair to rotate");
  // parameter_count() sums int64 products; every one of them is at most this total.
  const double params = double(c.vocab_size) * double(c.d_model) * 2 +
                        double(c.n_layers) * (4.0 * c.d_model + double(c.d_model) * double(c.d_head) *
                                                                     (2.0 * c.n_heads + 2.0 * c.n_kv_heads) +
                                              3.0 * double(c.d_model) * double(c.d_ff));
  need(params < 1e15, "model config: a model of about " + std::to_string(params) + " parameters is beyond what ropelab builds");
  return c;
}

int64_t ModelConfig::rotary_dim() const {
  const int64_t dh = d_head > 0 ? d_head : d_model / n_heads;
  return (static_cast<int64_t>(dh * rotary_fraction) / 2) * 2;
}

int64_t ModelConfig::parameter_count() const {
  const ModelConfig c = resolved();
  const int64_t norm = c.norm == "layernorm" ? 2 * c.d_model : c.d_model;
  const int64_t attn = c.d_model * c.d_head * (2 * c.n_heads + 2 * c.n_kv_heads);
  const int64_t mlp = (c.mlp == "swiglu" ? 3 : 2) * c.d_model * c.d_ff;
  const int64_t embed = c.vocab_size * c.d_model;
  return embed + c.n_layers * (2 * norm + attn + mlp) + norm + (c.tie_embeddings ? 0 : embed);
}

nlohmann::json to_json(const ModelConfig& c) { return config::to_json(c, model_fields()); }

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  config::from_json(j, c, model_fields(), "model config");
  return c.resolved();
}

// --- Hugging Face config.json (model/hf_config.h) ---
namespace {
constexpr double kNormEps = 1e-5;  // ropelab's RMSNorm and LayerNorm

double number(const nlohmann::json& hf, const std::string& key, const std::string& where) {
  if (!hf.contains(key) || !hf[key].is_number()) throw Error(where + ": config.json needs a number at \"" + key + "\"");
  return hf[key].get<double>();
}
double number_or(const nlohmann::json& hf, const std::string& key, double fallback, const std::string& where) {
  return hf.contains(key) && !hf[key].is_null() ? number(hf, key, where) : fallback;
}
void require(bool ok, const std::string& where, const std::string& msg) {
  if (!ok) throw Error(where + ": " + msg);
}
// A whole number (a JSON integer or a float like 4096.0) that fits the model's
// sizes; static_cast<int64_t> of 1e300 would be undefined.
int64_t whole(double v, const std::string& key, const std::string& where) {
  require(v >= 0 && v <= 9007199254740992.0 && v == std::floor(v), where,
          "config.json needs a whole number >= 0 at \"" + key + "\"");
  return static_cast<int64_t>(v);
}
// Strings and booleans by type, naming the key (nlohmann's value() throws its own type_error).
std::string text_or(const nlohmann::json& j, const std::string& key, const std::string& fallback,
                    const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  require(j[key].is_string(), where, "config.json needs a string at \"" + key + "\"");
  return j[key].get<std::string>();
}
bool flag_or(const nlohmann::json& j, const std::string& key, bool fallback, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  require(j[key].is_boolean(), where, "config.json needs true or false at \"" + key + "\"");
  return j[key].get<bool>();
}
// A value from the file inside a message, JSON-quoted: one line whatever it holds.
std::string quote(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

ModelConfig model_config_from_hf(const nlohmann::json& hf, const std::string& where) {
  require(hf.is_object(), where, "config.json is not a JSON object");
  std::string arch;
  if (hf.contains("architectures") && hf["architectures"].is_array() && !hf["architectures"].empty()) {
    require(hf["architectures"][0].is_string(), where, "config.json needs a string at \"architectures\"[0]");
    arch = hf["architectures"][0].get<std::string>();
  }
  const std::string type = text_or(hf, "model_type", "", where);
  const bool llama = arch == "LlamaForCausalLM" || (arch.empty() && type == "llama");
  const bool neox = arch == "GPTNeoXForCausalLM" || (arch.empty() && type == "gpt_neox");
  require(llama || neox, where, "config.json describes " + quote(arch.empty() ? type : arch) +
                                    "; ropelab loads LlamaForCausalLM and GPTNeoXForCausalLM");
  auto integer = [&](const std::string& k) { return whole(number(hf, k, where), k, where); };
  // transformers v5 keeps RoPE settings in "rope_parameters"; older configs at the top level.
  nlohmann::json rope = nlohmann::json::object();
  if (hf.contains("rope_parameters") && hf["rope_parameters"].is_object()) {
    rope = hf["rope_parameters"];
    const std::string type = text_or(rope, "rope_type", "default", where + " rope_parameters");
    require(type == "default", where, "rope_parameters.rope_type " + quote(type) +
                                          ": ropelab loads plain RoPE weights and applies scaling at evaluation (--scaling)");
  }
  auto rope_value = [&](const char* key, double fallback) {
    return rope.contains(key) ? number(rope, key, where + " rope_parameters") : fallback;
  };
  ModelConfig c;
  c.vocab_size = integer("vocab_size");
  c.d_model = integer("hidden_size");
  c.d_ff = integer("intermediate_size");
  c.n_layers = integer("num_hidden_layers");
  c.n_heads = integer("num_attention_heads");
  c.T_train = integer("max_position_embeddings");
  const std::string act = text_or(hf, "hidden_act", "", where);
  auto eps_ok = [&](const std::string& k) {
    const double eps = number_or(hf, k, kNormEps, where);
    require(std::abs(eps - kNormEps) < 1e-12, where, k + " " + std::to_string(eps) + ": ropelab's norms use 1e-5");
  };
  if (llama) {
    c.norm = "rmsnorm";
    c.mlp = "swiglu";
    c.n_kv_heads = whole(number_or(hf, "num_key_value_heads", double(c.n_heads), where), "num_key_value_heads", where);
    c.d_head = whole(number_or(hf, "head_dim", double(c.d_model / std::max<int64_t>(c.n_heads, 1)), where), "head_dim", where);
    c.rope_theta = rope_value("rope_theta", number_or(hf, "rope_theta", 10000.0, where));
    require(rope_value("partial_rotary_factor", number_or(hf, "partial_rotary_factor", 1.0, where)) == 1.0, where,
            "partial_rotary_factor below 1: ropelab's Llama-style model rotates whole heads");
    c.tie_embeddings = flag_or(hf, "tie_word_embeddings", false, where);
    require(act == "silu", where, "hidden_act " + quote(act) + ": ropelab's SwiGLU uses silu");
    eps_ok("rms_norm_eps");
    require(!flag_or(hf, "attention_bias", false, where) && !flag_or(hf, "mlp_bias", false, where), where,
            "attention_bias / mlp_bias: ropelab's linear layers have no biases");
    require(!hf.contains("rope_scaling") || hf["rope_scaling"].is_null(), where,
            "rope_scaling is set; ropelab applies scaling at evaluation (--scaling), not in the weights' config");
  } else {
    c.norm = "layernorm";
    c.mlp = "gelu";
    c.rope_theta = rope_value("rope_theta", number_or(hf, "rotary_emb_base", number_or(hf, "rope_theta", 10000.0, where), where));
    c.rotary_fraction = rope_value("partial_rotary_factor",
                                   number_or(hf, "rotary_pct", number_or(hf, "partial_rotary_factor", 0.25, where), where));
    c.tie_embeddings = flag_or(hf, "tie_word_embeddings", false, where);
    require(act == "gelu", where, "hidden_act " + quote(act) + ": ropelab's GPT-NeoX-style MLP uses exact gelu");
    eps_ok("layer_norm_eps");
    require(!flag_or(hf, "use_parallel_residual", true, where), where,
            "use_parallel_residual is true (the GPT-NeoX default, absent counts as true): ropelab's blocks are sequential");
  }
  try {
    return c.resolved();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

}  // namespace ropelab::model
