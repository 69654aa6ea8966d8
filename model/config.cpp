#include "model/config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace ropelab::model {

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  auto need = [](bool ok, const std::string& msg) { if (!ok) throw Error("model config: " + msg); };
  need(c.vocab_size > 0, "vocab_size must be > 0");
  need(c.d_model > 0 && c.n_layers > 0 && c.n_heads > 0, "d_model, n_layers and n_heads must be > 0");
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  need(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0,
       "n_heads (" + std::to_string(c.n_heads) + ") must be a multiple of n_kv_heads (" +
           std::to_string(c.n_kv_heads) + ")");
  if (c.d_head == 0) {
    need(c.d_model % c.n_heads == 0, "d_model must be divisible by n_heads when d_head is not given");
    c.d_head = c.d_model / c.n_heads;
  }
  need(c.d_head > 0 && c.d_head % 2 == 0, "d_head must be a positive even number");
  if (c.d_ff == 0) c.d_ff = c.mlp == "gelu" ? 4 * c.d_model : ((8 * c.d_model / 3 + 63) / 64) * 64;
  need(c.rope_theta > 0, "rope_theta must be > 0");
  need(c.rotary_fraction > 0 && c.rotary_fraction <= 1, "rotary_fraction must be in (0, 1]");
  need(c.T_train > 0, "T_train must be > 0");
  need(c.norm == "rmsnorm" || c.norm == "layernorm", "norm must be rmsnorm or layernorm, got " + c.norm);
  need(c.mlp == "swiglu" || c.mlp == "gelu", "mlp must be swiglu or gelu, got " + c.mlp);
  need(c.rotary_dim() >= 2, "rotary_fraction * d_head leaves no dimension pair to rotate");
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

nlohmann::json to_json(const ModelConfig& c) {
  return {{"vocab_size", c.vocab_size}, {"d_model", c.d_model}, {"n_layers", c.n_layers},
          {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"d_head", c.d_head},
          {"d_ff", c.d_ff}, {"rope_theta", c.rope_theta}, {"rotary_fraction", c.rotary_fraction},
          {"T_train", c.T_train}, {"norm", c.norm}, {"mlp", c.mlp},
          {"tie_embeddings", c.tie_embeddings}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  try {
    c.vocab_size = j.at("vocab_size"); c.d_model = j.at("d_model"); c.n_layers = j.at("n_layers");
    c.n_heads = j.at("n_heads"); c.n_kv_heads = j.at("n_kv_heads"); c.d_head = j.at("d_head");
    c.d_ff = j.at("d_ff"); c.rope_theta = j.at("rope_theta"); c.rotary_fraction = j.at("rotary_fraction");
    c.T_train = j.at("T_train"); c.norm = j.at("norm"); c.mlp = j.at("mlp");
    c.tie_embeddings = j.at("tie_embeddings");
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("model config: missing or mistyped field (") + e.what() + ")");
  }
  return c.resolved();
}

}  // namespace ropelab::model
