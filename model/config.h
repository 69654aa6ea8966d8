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
