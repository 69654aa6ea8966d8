#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/config_fields.h"
#include "common/error.h"
#include "common/text.h"

namespace ropelab::model {

namespace {
using C = ModelConfig;
using F = config::Field<C>;

const char* const kLayerTypes[] = {"full", "sliding", "nope"};

// Why c.layer_pattern is no pattern over c.n_layers ("" when it is one).
std::string pattern_problem(const ModelConfig& c) {
  if (c.layer_pattern.empty()) return "";
  const auto types = text::split(c.layer_pattern);
  for (const auto& t : types)
    if (std::find(std::begin(kLayerTypes), std::end(kLayerTypes), t) == std::end(kLayerTypes))
      return "layer type " + text::quoted(t) + " is none of full, sliding, nope";
  if (types.empty() || c.n_layers % int64_t(types.size()) != 0)
    return "a pattern of " + std::to_string(types.size()) + " layers does not divide n_layers " + std::to_string(c.n_layers);
  return "";
}
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
      {"mlp", "mlp", &C::mlp, "model", "swiglu, gelu or geglu",
       {[](const C& c) { return c.mlp == "swiglu" || c.mlp == "gelu" || c.mlp == "geglu"; }, "must be swiglu, gelu or geglu"}},
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
      {"qk_norm", "qk-norm", &C::qk_norm, "model", "RMSNorm over each head's q and k before RoPE (Qwen3)", {}, true},
      {"embed_scale", "embed-scale", &C::embed_scale, "model", "embeddings × sqrt(d-model) (Gemma)", {}, true},
      {"sandwich_norms", "sandwich-norms", &C::sandwich_norms, "model",
       "norms on the attention and MLP outputs too (Gemma 3)", {}, true},
      {"query_pre_attn_scalar", "query-pre-attn-scalar", &C::query_pre_attn_scalar, "model",
       "scores scaled by this^(-1/2) (0: d-head; Gemma 3)",
       {[](const C& c) { return c.query_pre_attn_scalar >= 0 && std::isfinite(c.query_pre_attn_scalar); }, "must be >= 0"}, true},
      {"layer_pattern", "layer-pattern", &C::layer_pattern, "model",
       "layer types repeated over the depth, e.g. sliding,sliding,sliding,full (full, sliding, nope; empty: all full)",
       {}, true},  // checked in resolved(), naming the bad type or the depth
      {"sliding_window", "sliding-window", &C::sliding_window, "model", "keys a sliding layer sees (the last N)",
       {[](const C& c) { return c.sliding_window >= 0; }, "must be >= 0"}, true},
      {"sliding_rope_theta", "sliding-rope-theta", &C::sliding_rope_theta, "model", "θ of sliding layers (0: rope-theta)",
       {[](const C& c) { return c.sliding_rope_theta >= 0 && std::isfinite(c.sliding_rope_theta); }, "must be >= 0"}, true},
      {"sliding_rope", "sliding-rope", &C::sliding_rope, "model",
       "RoPE method of sliding layers, KIND[:FACTOR][:KEY=VALUE...] as --scaling (e.g. linear:2, yarn:4:beta_fast=16; "
       "empty: default RoPE)",
       {[](const C& c) { return c.sliding_rope.empty() || (rope_params_from_spec(c.sliding_rope, "model config: sliding_rope"), true); }},
       true},
      {"sliding_rotary_fraction", "sliding-rotary-fraction", &C::sliding_rotary_fraction, "model",
       "share of each sliding layer's head that rotates (0: rotary-fraction)",
       {[](const C& c) { return c.sliding_rotary_fraction >= 0 && c.sliding_rotary_fraction <= 1; },
        "must be in (0, 1] (or 0: rotary_fraction)"},
       true},
      {"nope_attn_scale", "nope-attn-scale", &C::nope_attn_scale, "model",
       "nope layers: queries at n scaled by 1 + s*log(floor((n+1)/nope-floor-scale) + 1) (Llama 4; 0: off)",
       {[](const C& c) { return c.nope_attn_scale >= 0 && std::isfinite(c.nope_attn_scale); }, "must be >= 0"}, true},
      {"nope_floor_scale", "nope-floor-scale", &C::nope_floor_scale, "model", "the floor of nope-attn-scale",
       {[](const C& c) { return c.nope_floor_scale > 0; }, "must be > 0"}, true},
      // The RoPE method of the full layers and its parameters (model/rope_methods.h; `ropelab rope list`).
      {"rope_scaling", "rope-scaling", &C::rope_scaling, "rope", "RoPE method (ropelab rope list): default, linear, yarn, ...",
       {[](const C& c) { return is_rope_method(c.rope_scaling); }, "must name a RoPE method (ropelab rope list)"}, true},
      {"rope_scaling_factor", "rope-factor", &C::rope_scaling_factor, "rope", "the method's factor",
       {[](const C& c) { return c.rope_scaling_factor > 0 && std::isfinite(c.rope_scaling_factor); }, "must be a finite number > 0"}, true},
      {"rope_original_max_positions", "rope-original-max-positions", &C::rope_original_max_positions, "rope",
       "the pre-extension context (0: T-train)",
       {[](const C& c) { return c.rope_original_max_positions >= 0; }, "must be >= 0"}, true},
      {"rope_low_freq_factor", "rope-low-freq-factor", &C::rope_low_freq_factor, "rope", "llama3",
       {[](const C& c) { return c.rope_low_freq_factor > 0 && c.rope_low_freq_factor < c.rope_high_freq_factor; },
        "must be > 0 and below rope_high_freq_factor"}, true},
      {"rope_high_freq_factor", "rope-high-freq-factor", &C::rope_high_freq_factor, "rope", "llama3", {}, true},
      {"rope_beta_fast", "rope-beta-fast", &C::rope_beta_fast, "rope", "yarn",
       {[](const C& c) { return c.rope_beta_fast > c.rope_beta_slow && c.rope_beta_slow > 0; }, "must exceed rope_beta_slow > 0"}, true},
      {"rope_beta_slow", "rope-beta-slow", &C::rope_beta_slow, "rope", "yarn", {}, true},
      {"rope_attention_factor", "rope-attention-factor", &C::rope_attention_factor, "rope", "yarn, longrope (0: the method's own)",
       {[](const C& c) { return c.rope_attention_factor >= 0 && std::isfinite(c.rope_attention_factor); }, "must be >= 0"}, true},
      {"rope_mscale", "rope-mscale", &C::rope_mscale, "rope", "yarn (0: unset)",
       {[](const C& c) { return c.rope_mscale >= 0 && std::isfinite(c.rope_mscale); }, "must be >= 0"}, true},
      {"rope_mscale_all_dim", "rope-mscale-all-dim", &C::rope_mscale_all_dim, "rope", "yarn (0: unset)",
       {[](const C& c) { return c.rope_mscale_all_dim >= 0 && std::isfinite(c.rope_mscale_all_dim); }, "must be >= 0"}, true},
      {"rope_truncate", "rope-truncate", &C::rope_truncate, "rope", "yarn: floor/ceil the ramp's ends", {}, true},
      {"rope_long_factor", "rope-long-factor", &C::rope_long_factor, "rope", "longrope: one divisor per rotated pair", {}, true},
      {"rope_short_factor", "rope-short-factor", &C::rope_short_factor, "rope", "longrope: one divisor per rotated pair", {}, true},
  };
  return fields;
}

namespace {
// The pattern's layers against the settings that belong to them.
void check_layer_pattern(const ModelConfig& c) {
  const std::string why = pattern_problem(c);
  need(why.empty(), "model config: layer_pattern " + text::quoted(c.layer_pattern) + ": " + why);
  const auto types = c.layer_types();
  const auto has = [&](const char* t) { return std::find(types.begin(), types.end(), t) != types.end(); };
  need(!has("sliding") || c.sliding_window > 0, "model config: layer_pattern has sliding layers: sliding_window must be > 0");
  need(has("sliding") || c.sliding_window == 0, "model config: sliding_window is set but layer_pattern has no sliding layer");
  need(has("sliding") || c.sliding_rope_theta == 0,
       "model config: sliding_rope_theta is set but layer_pattern has no sliding layer");
  need(has("sliding") || (c.sliding_rope.empty() && c.sliding_rotary_fraction == 0),
       "model config: sliding_rope or sliding_rotary_fraction is set but layer_pattern has no sliding layer");
  if (has("sliding"))
    check_rope_params(c.rope_params_of("sliding"), c.rope_geometry_of("sliding"), "model config: sliding_rope");
  need(!has("nope") || c.attention_window == 0,
       "model config: attention_window on a pattern with nope layers: a window on a NoPE layer is not built "
       "(sliding layers take sliding_window)");
}
}  // namespace

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
  check_rope_params(c.rope_params(), c.rope_geometry(), "model config: rope_scaling");
  check_layer_pattern(c);
  // parameter_count() sums int64 products; every one of them is at most this total.
  const double params = double(c.vocab_size) * double(c.d_model) * 2 +
                        double(c.n_layers) * (4.0 * c.d_model + double(c.d_model) * double(c.d_head) *
                                                                     (2.0 * c.n_heads + 2.0 * c.n_kv_heads) +
                                              3.0 * double(c.d_model) * double(c.d_ff));
  need(params < 1e15, "model config: a model of about " + std::to_string(params) + " parameters is beyond what ropelab builds");
  return c;
}

int64_t ModelConfig::rotary_dim() const { return rotary_dims(rope_params(), rope_geometry()); }

RopeParams ModelConfig::rope_params() const {
  RopeParams p;
  p.type = rope_method(rope_scaling).name;
  p.factor = rope_scaling_factor;
  p.original_max_position_embeddings = rope_original_max_positions;
  p.low_freq_factor = rope_low_freq_factor;
  p.high_freq_factor = rope_high_freq_factor;
  p.beta_fast = rope_beta_fast;
  p.beta_slow = rope_beta_slow;
  p.mscale = rope_mscale;
  p.mscale_all_dim = rope_mscale_all_dim;
  p.truncate = rope_truncate;
  p.attention_factor = rope_attention_factor;
  p.long_factor = rope_long_factor;
  p.short_factor = rope_short_factor;
  return p;
}

void ModelConfig::set_rope_params(const RopeParams& p) {
  rope_scaling = p.type == "default" ? "none" : p.type;  // ropelab's configs call plain RoPE "none"
  rope_scaling_factor = p.factor;
  rope_original_max_positions = p.original_max_position_embeddings;
  rope_low_freq_factor = p.low_freq_factor;
  rope_high_freq_factor = p.high_freq_factor;
  rope_beta_fast = p.beta_fast;
  rope_beta_slow = p.beta_slow;
  rope_mscale = p.mscale;
  rope_mscale_all_dim = p.mscale_all_dim;
  rope_truncate = p.truncate;
  rope_attention_factor = p.attention_factor;
  rope_long_factor = p.long_factor;
  rope_short_factor = p.short_factor;
}

RopeGeometry ModelConfig::rope_geometry() const {
  return {rope_theta, d_head > 0 ? d_head : d_model / n_heads, rotary_fraction, T_train};
}

bool ModelConfig::plain_rope() const { return std::string(rope_method(rope_scaling).name) == "default"; }

RopeParams ModelConfig::rope_params_of(const std::string& type) const {
  if (type != "sliding") return rope_params();
  return sliding_rope.empty() ? RopeParams{} : rope_params_from_spec(sliding_rope, "model config: sliding_rope");
}

RopeGeometry ModelConfig::rope_geometry_of(const std::string& type) const {
  RopeGeometry g = rope_geometry();
  if (type != "sliding") return g;
  if (sliding_rope_theta > 0) g.theta = sliding_rope_theta;
  if (sliding_rotary_fraction > 0) g.rotary_fraction = sliding_rotary_fraction;
  return g;
}

int64_t ModelConfig::rotary_dim_of(const std::string& type) const {
  return rotary_dims(rope_params_of(type), rope_geometry_of(type));
}

bool ModelConfig::plain_rope_of(const std::string& type) const {
  return std::string(rope_params_of(type).type) == "default";
}

std::string ModelConfig::layer_type(int64_t i) const {
  if (layer_pattern.empty()) return "full";
  const auto types = text::split(layer_pattern);
  return types[size_t(i % int64_t(types.size()))];
}

std::vector<std::string> ModelConfig::layer_types() const {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n_layers; ++i)
    if (std::find(out.begin(), out.end(), layer_type(i)) == out.end()) out.push_back(layer_type(i));
  return out;
}

int64_t ModelConfig::parameter_count() const {
  const ModelConfig c = resolved();
  const int64_t norm = c.norm == "layernorm" ? 2 * c.d_model : c.d_model;
  const int64_t attn = c.d_model * c.d_head * (2 * c.n_heads + 2 * c.n_kv_heads) +
                       (c.qkv_bias ? c.d_head * (c.n_heads + 2 * c.n_kv_heads) : 0) + (c.out_bias ? c.d_model : 0) +
                       (c.qk_norm ? 2 * c.d_head : 0);
  const bool gated = c.mlp != "gelu";
  const int64_t mlp = (gated ? 3 : 2) * c.d_model * c.d_ff + (c.mlp_bias ? (gated ? 2 : 1) * c.d_ff + c.d_model : 0);
  const int64_t embed = c.vocab_size * c.d_model;
  const int64_t norms = (c.sandwich_norms ? 4 : 2) * norm;
  return embed + c.n_layers * (norms + attn + mlp) + norm + (c.tie_embeddings ? 0 : embed);
}

nlohmann::json to_json(const ModelConfig& c) { return config::to_json(c, model_fields()); }

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  config::from_json(j, c, model_fields(), "model config");
  return c.resolved();
}

}  // namespace ropelab::model
