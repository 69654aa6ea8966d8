#include "model/config.h"

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
      {"rope_theta", "rope-theta", &C::rope_theta, "model", "RoPE base θ", {[](const C& c) { return c.rope_theta > 0; }, "must be > 0"}},
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
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  need(c.n_heads % c.n_kv_heads == 0,
       "model config: n_heads (" + std::to_string(c.n_heads) + ") must be a multiple of n_kv_heads (" +
           std::to_string(c.n_kv_heads) + ")");
  if (c.d_head == 0) {
    need(c.d_model % c.n_heads == 0, "model config: d_model must be divisible by n_heads when d_head is not given");
    c.d_head = c.d_model / c.n_heads;
  }
  need(c.d_head % 2 == 0, "model config: d_head must be a positive even number");
  if (c.d_ff == 0) c.d_ff = c.mlp == "gelu" ? 4 * c.d_model : ((8 * c.d_model / 3 + 63) / 64) * 64;
  need(c.rotary_dim() >= 2, "model config: rotary_fraction * d_head leaves no dimension pair to rotate");
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

}  // namespace ropelab::model
