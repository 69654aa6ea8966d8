// The architecture of a ropelab decoder, as plain data (no torch here, so
// the CLI, the eval records and the tests can read it cheaply).
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

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
  std::string mlp = "swiglu";    // "swiglu" | "gelu"
  bool tie_embeddings = true;
  // What released models add (GPT-NeoX/Pythia, Qwen2, Mistral); ropelab's own
  // runs keep the defaults, which are the architecture it has always had.
  bool qkv_bias = false;           // biases on the q, k, v projections
  bool out_bias = false;           // bias on the attention output projection
  bool mlp_bias = false;           // biases on the MLP's linears
  bool parallel_residual = false;  // x + attn(norm1 x) + mlp(norm2 x) (GPT-NeoX)
  double norm_eps = 1e-5;
  int64_t attention_window = 0;    // >0: a query sees the last this-many keys (Mistral's sliding_window)
  // The RoPE scaling the model was trained with (HF rope_scaling), applied by
  // every forward as the model's own positions (model/trained_rope.h):
  std::string rope_scaling = "none";   // none | linear | dynamic | yarn | llama3 | longrope
  double rope_scaling_factor = 1.0;
  int64_t rope_original_max_positions = 0;  // the pre-extension context (0: T_train)
  double rope_low_freq_factor = 1.0;   // llama3
  double rope_high_freq_factor = 4.0;  // llama3
  double rope_beta_fast = 32.0;        // yarn
  double rope_beta_slow = 1.0;         // yarn
  double rope_attention_factor = 0.0;  // yarn, longrope: 0 = the method's default
  std::vector<double> rope_long_factor, rope_short_factor;  // longrope: per-frequency divisors

  // Fills the derived fields and throws Error naming the first bad field.
  ModelConfig resolved() const;
  int64_t rotary_dim() const;       // even; the first rotary_dim dims of a head rotate
  int64_t parameter_count() const;  // exact, from the shapes (no module needed)
};

// Each field once: its JSON key, flag, default (above), help and rule. The
// JSON, the `ropelab train` model flags and --init-from's mapping follow it.
const std::vector<config::Field<ModelConfig>>& model_fields();

nlohmann::json to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const nlohmann::json& j);  // names missing fields

}  // namespace ropelab::model
