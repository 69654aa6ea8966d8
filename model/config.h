// The architecture of a ropelab decoder, as plain data (no torch here, so
// the CLI, the eval records and the tests can read it cheaply).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "model/rope_methods.h"

namespace ropelab::config { template <class C> struct Field; }

namespace ropelab::model {

struct ModelConfig {
  int64_t vocab_size = 2048;
  int64_t d_model = 128;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;        // 0: = n_heads (no grouping)
  int64_t d_head = 0;            // 0: d_model / n_heads
  int64_t d_ff = 0;              // 0: 4*d_model (gelu) or 8/3*d_model rounded up to 64 (swiglu)
  double rope_theta = 10000.0;
  double rotary_fraction = 1.0;  // Pythia rotates 25% of each head
  int64_t T_train = 256;
  std::string norm = "rmsnorm";  // "rmsnorm" | "layernorm"
  std::string mlp = "swiglu";    // "swiglu" | "gelu" | "geglu" (Gemma: tanh-gelu gate)
  bool tie_embeddings = true;
  // What released models add (GPT-NeoX/Pythia, Qwen2, Mistral); ropelab's own
  // runs keep the defaults, which are the architecture it has always had.
  bool qkv_bias = false;           // biases on the q, k, v projections
  bool out_bias = false;           // bias on the attention output projection
  bool mlp_bias = false;           // biases on the MLP's linears
  bool parallel_residual = false;  // x + attn(norm1 x) + mlp(norm2 x) (GPT-NeoX)
  double norm_eps = 1e-5;
  int64_t attention_window = 0;    // >0: a query sees the last this-many keys (Mistral's sliding_window)
  bool qk_norm = false;            // RMSNorm over each head's q and k before RoPE (Qwen3, Gemma 3)
  // Gemma 3 (text): embeddings × √d_model; a norm on the attention output and
  // on the MLP output too (sandwich norms); queries scaled by
  // query_pre_attn_scalar^(-1/2) instead of d_head^(-1/2).
  bool embed_scale = false;
  bool sandwich_norms = false;
  double query_pre_attn_scalar = 0;  // 0: d_head
  // Per-layer attention: a pattern of layer types repeated over the depth
  // ("" = every layer full). full: RoPE at rope_theta with the model's RoPE
  // method and rotary_fraction, causal over everything; sliding: its own RoPE
  // (sliding_rope at sliding_rope_theta, sliding_rotary_fraction), the last
  // sliding_window keys (Gemma 3's local layers); nope: no position encoding,
  // causal over everything (Llama 4, Command A), optionally with Llama 4's
  // query temperature.
  std::string layer_pattern;
  int64_t sliding_window = 0;      // the window of sliding layers
  double sliding_rope_theta = 0;   // θ of sliding layers (0: rope_theta)
  std::string sliding_rope;        // their RoPE method, KIND[:FACTOR][:KEY=VALUE...] as --scaling ("": default RoPE)
  double sliding_rotary_fraction = 0;  // the share of their heads that rotates (0: rotary_fraction)
  double nope_attn_scale = 0;      // >0: nope layers scale queries by 1 + s·log(⌊(n+1)/floor⌋ + 1)
  int64_t nope_floor_scale = 8192; // that floor
  // The RoPE method the model was trained with (model/rope_methods.h; HF
  // rope_scaling / rope_parameters), applied by every forward of its full layers:
  std::string rope_scaling = "none";   // a name of model/rope_methods.h's table ("none" = default)
  double rope_scaling_factor = 1.0;
  int64_t rope_original_max_positions = 0;  // the pre-extension context (0: T_train)
  double rope_low_freq_factor = 1.0;   // llama3
  double rope_high_freq_factor = 4.0;  // llama3
  double rope_beta_fast = 32.0;        // yarn
  double rope_beta_slow = 1.0;         // yarn
  double rope_attention_factor = 0.0;  // yarn, longrope: 0 = the method's default
  double rope_mscale = 0.0, rope_mscale_all_dim = 0.0;  // yarn (DeepSeek's variant): 0 = unset
  bool rope_truncate = true;           // yarn: floor/ceil the ramp's ends
  std::vector<double> rope_long_factor, rope_short_factor;  // longrope: per-frequency divisors

  // Fills the derived fields and throws Error naming the first bad field.
  ModelConfig resolved() const;
  int64_t rotary_dim() const;       // even; the first rotary_dim dims of a head rotate (all of it for proportional)
  RopeParams rope_params() const;   // the method and its parameters, as model/rope_methods.h takes them
  void set_rope_params(const RopeParams& p);  // the reverse ("default" stored as "none")
  RopeGeometry rope_geometry() const;
  bool plain_rope() const;          // the method is default RoPE
  // The RoPE of a layer type: full (and nope, which applies none) the
  // model's method and geometry above; sliding its own.
  RopeParams rope_params_of(const std::string& layer_type) const;
  RopeGeometry rope_geometry_of(const std::string& layer_type) const;
  int64_t rotary_dim_of(const std::string& layer_type) const;
  bool plain_rope_of(const std::string& layer_type) const;
  // The type of layer i (full, sliding or nope), from layer_pattern.
  std::string layer_type(int64_t i) const;
  std::vector<std::string> layer_types() const;  // the pattern's distinct types, in order of first use
  int64_t parameter_count() const;  // exact, from the shapes (no module needed)
};

// Each field once: its JSON key, flag, default (above), help and rule. The
// JSON, the `ropelab train` model flags and --init-from's mapping follow it.
const std::vector<config::Field<ModelConfig>>& model_fields();

nlohmann::json to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);  // names missing fields

}  // namespace ropelab::model
