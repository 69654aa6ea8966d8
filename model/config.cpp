#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/config_fields.h"
#include "common/error.h"

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
      // Added with released models: older config.json files lack them and keep the defaults.
      {"qkv_bias", "qkv-bias", &C::qkv_bias, "model", "biases on q, k, v (Qwen2, GPT-NeoX)", {}, true},
      {"out_bias", "out-bias", &C::out_bias, "model", "bias on the attention output (GPT-NeoX)", {}, true},
      {"mlp_bias", "mlp-bias", &C::mlp_bias, "model", "biases on the MLP (GPT-NeoX)", {}, true},
      {"parallel_residual", "parallel-residual", &C::parallel_residual, "model",
       "x + attn(norm1 x) + mlp(norm2 x) (GPT-NeoX)", {}, true},
      {"norm_eps", "norm-eps", &C::norm_eps, "model", "epsilon of RMSNorm / LayerNorm",
       {[](const C& c) { return c.norm_eps > 0 && c.norm_eps < 1; }, "must be in (0, 1)"}, true},
      {"attention_window", "attention-window", &C::attention_window, "model",
       "0 = full causal; N = each query sees the last N keys (sliding window)",
       {[](const C& c) { return c.attention_window >= 0; }, "must be >= 0"}, true},
      {"rope_scaling", nullptr, &C::rope_scaling, "", "",
       {[](const C& c) {
          for (const char* k : {"none", "linear", "dynamic", "yarn", "llama3", "longrope"})
            if (c.rope_scaling == k) return true;
          return false;
        }, "must be none, linear, dynamic, yarn, llama3 or longrope"}, true},
      {"rope_scaling_factor", nullptr, &C::rope_scaling_factor, "", "",
       {[](const C& c) { return c.rope_scaling_factor > 0 && std::isfinite(c.rope_scaling_factor); }, "must be a finite number > 0"}, true},
      {"rope_original_max_positions", nullptr, &C::rope_original_max_positions, "", "",
       {[](const C& c) { return c.rope_original_max_positions >= 0; }, "must be >= 0"}, true},
      {"rope_low_freq_factor", nullptr, &C::rope_low_freq_factor, "", "",
       {[](const C& c) { return c.rope_low_freq_factor > 0 && c.rope_low_freq_factor < c.rope_high_freq_factor; },
        "must be > 0 and below rope_high_freq_factor"}, true},
      {"rope_high_freq_factor", nullptr, &C::rope_high_freq_factor, "", "", {}, true},
      {"rope_beta_fast", nullptr, &C::rope_beta_fast, "", "",
       {[](const C& c) { return c.rope_beta_fast > c.rope_beta_slow && c.rope_beta_slow > 0; }, "must exceed rope_beta_slow > 0"}, true},
      {"rope_beta_slow", nullptr, &C::rope_beta_slow, "", "", {}, true},
      {"rope_attention_factor", nullptr, &C::rope_attention_factor, "", "",
       {[](const C& c) { return c.rope_attention_factor >= 0 && std::isfinite(c.rope_attention_factor); }, "must be >= 0"}, true},
      {"rope_long_factor", nullptr, &C::rope_long_factor, "", "", {}, true},
      {"rope_short_factor", nullptr, &C::rope_short_factor, "", "", {}, true},
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
  if (c.rope_scaling == "longrope")
    for (const auto* f : {&c.rope_long_factor, &c.rope_short_factor})
      need(int64_t(f->size()) == c.rotary_dim() / 2 &&
               std::all_of(f->begin(), f->end(), [](double x) { return x > 0 && std::isfinite(x); }),
           "model config: longrope's rope_long_factor and rope_short_factor need rotary_dim/2 = " +
               std::to_string(c.rotary_dim() / 2) + " positive numbers each");
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
  const int64_t attn = c.d_model * c.d_head * (2 * c.n_heads + 2 * c.n_kv_heads) +
                       (c.qkv_bias ? c.d_head * (c.n_heads + 2 * c.n_kv_heads) : 0) + (c.out_bias ? c.d_model : 0);
  const int64_t mlp = (c.mlp == "swiglu" ? 3 : 2) * c.d_model * c.d_ff +
                      (c.mlp_bias ? (c.mlp == "swiglu" ? 2 : 1) * c.d_ff + c.d_model : 0);
  const int64_t embed = c.vocab_size * c.d_model;
  return embed + c.n_layers * (2 * norm + attn + mlp) + norm + (c.tie_embeddings ? 0 : embed);
}

nlohmann::json to_json(const ModelConfig& c) { return config::to_json(c, model_fields()); }

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  config::from_json(j, c, model_fields(), "model config");
  return c.resolved();
}

}  // namespace ropelab::model
