// Every RoPE method ropelab knows, in one table: its name and Hugging Face
// rope_type, the parameters it takes (with their domains), whether the
// closed-form α_opt applies to it, and the function that turns (θ, head
// geometry, sequence length) into inverse frequencies and an attention
// factor. Training (ModelConfig's rope_scaling), evaluation (--scaling),
// config.json (rope_scaling / rope_parameters), `ropelab rope` and the docs
// all read it. Plain C++ in float64 (no torch), so the formulas can be
// tested and printed without a model.
//
// The formulas are those of transformers' modeling_rope_utils (version 5):
//   default       θ^(−2i/rd)
//   linear        θ^(−2i/rd) / factor                      (alias: pi)
//   dynamic       base θ·α^(rd/(rd−2)), α = f·n/C − (f−1) once n > C, C = the
//                 model's context (max_position_embeddings), as transformers
//   yarn          the ramp over the dimension index between the dims that turn
//                 beta_fast and beta_slow times in the original context (ends
//                 floored/ceiled unless truncate = false); attention factor
//                 0.1·ln f + 1, or mscale/mscale_all_dim's ratio (DeepSeek)
//   llama3        long wavelengths / factor, short kept, smoothed in between
//   longrope      θ^(−2i/rd) / short_factor[i], or long_factor[i] once n >
//                 original; attention factor √(1 + ln f / ln original)
//   proportional  Gemma 4's p-RoPE: the first ⌊p·d/2⌋ pairs of the whole head
//                 at θ^(−2i/d), the rest frequency 0; p = the rotary fraction
// and ropelab's own, which transformers does not have:
//   ntk           θ' = α·θ (the TAF tool's NTK scaling, where α_opt applies)
//   ntk-aware     θ' = θ·α^(rd/(rd−2)) (the slowest pair stretches by α)
//   logn          plain RoPE; queries at n > C sharpen by log n / log C
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace ropelab::model {

// One method's parameters, under Hugging Face's names.
struct RopeParams {
  std::string type = "default";
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;  // 0: the model's context
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double beta_fast = 32.0, beta_slow = 1.0;              // yarn
  double mscale = 0.0, mscale_all_dim = 0.0;             // yarn (DeepSeek's variant); 0 = unset
  bool truncate = true;                                  // yarn: floor/ceil the ramp's ends
  double attention_factor = 0.0;                         // yarn, longrope: 0 = the method's default
  std::vector<double> long_factor, short_factor;         // longrope: one divisor per rotated pair
};

// The head the method rotates.
struct RopeGeometry {
  double theta = 10000.0;
  int64_t head_dim = 64;
  double rotary_fraction = 1.0;  // partial rotary (GPT-NeoX), or proportional's p
  int64_t context = 0;           // max_position_embeddings (ropelab: T_train)
};

struct RopeFrequencies {
  std::vector<double> inv_freq;  // one per rotated pair: pair i is (x_i, x_{i+rd/2}), rd = 2·size
  double attention_factor = 1.0; // cos and sin are multiplied by it (transformers' attention_scaling)
  int64_t logn_length = 0;       // logn: queries at positions n > this scaled by log n / log this
};

struct RopeParam {
  const char* name;    // Hugging Face's key
  const char* domain;  // what a value must be, for messages and `rope list`
};

struct RopeMethod {
  const char* name;
  const char* hf_type;               // transformers' rope_type; "" when transformers has none
  std::vector<const char*> aliases;  // other names accepted for it
  const char* summary;
  std::vector<RopeParam> params;     // the keys it takes (RopeParams members by Hugging Face's name)
  bool factor_required;              // a factor must be given (and a sweep may run over it)
  bool factor_any_positive;          // factor > 0 allowed (else >= 1)
  bool closed_form;                  // α_opt (theory/closed_forms.h) gives its factor
  bool length_dependent;             // the frequencies change with the sequence length
  RopeFrequencies (*frequencies)(const RopeParams&, const RopeGeometry&, int64_t seq_len);
};

const std::vector<RopeMethod>& rope_methods();

// The method called `name` (or an alias); throws Error listing the names.
const RopeMethod& rope_method(const std::string& name);
bool is_rope_method(const std::string& name);
// "default, linear (pi), dynamic, ..." for messages and help.
std::string rope_method_names();

// Sets parameter `key` of `p` from a JSON value; throws Error "WHERE: ..."
// naming the key when `p.type` does not take it or the value is outside its domain.
void set_rope_param(RopeParams& p, const std::string& key, const nlohmann::json& value, const std::string& where);
// A parameter's value as written on a command line (true/false, a number, or
// for long_factor/short_factor a list separated by `list_sep`), as the JSON
// set_rope_param takes; what is none of these stays text, for set_rope_param
// to refuse by name.
nlohmann::json rope_param_from_text(const std::string& key, const std::string& text, char list_sep);

// A method with its parameters written as one string, as --scaling and the
// per-layer-type config fields take it: KIND[:FACTOR][:KEY=VALUE...], a list
// value written a/b/c (e.g. "yarn:4:beta_fast=16", "linear:2", "default").
struct RopeSpecText {
  std::string kind;
  std::string factor;  // "" when not given
  std::vector<std::pair<std::string, std::string>> params;  // KEY=VALUE as written, in order
};
// Splits `text` (syntax only: the caller reads the factor); throws Error
// "WHERE: ..." naming a part that is no KEY=VALUE, or a factor given as KEY=VALUE.
RopeSpecText split_rope_spec(const std::string& text, const std::string& where);
// The parameters `text` names: a method of the table, a numeric factor, each
// KEY=VALUE by set_rope_param; throws Error "WHERE: ..." naming what is wrong
// (check_rope_params then checks the whole against a geometry).
RopeParams rope_params_from_spec(const std::string& text, const std::string& where);
// The reverse: the method's name, its factor when it takes one, and every
// other parameter that differs from its default.
std::string rope_spec(const RopeParams& p);

// Checks every parameter of `p` against its method's domains (and the
// combinations: beta_fast > beta_slow, low < high freq factor, longrope's
// factor lists one per rotated pair); throws Error "WHERE: ...".
void check_rope_params(const RopeParams& p, const RopeGeometry& g, const std::string& where);

// The rotated dimensions: the whole head for proportional, else
// ⌊fraction·head_dim/2⌋·2 (GPT-NeoX's partial rotary).
int64_t rotary_dims(const RopeParams& p, const RopeGeometry& g);

// The inverse frequencies and attention factor of a forward over `seq_len`
// positions (0: none yet, e.g. at initialisation).
RopeFrequencies rope_frequencies(const RopeParams& p, const RopeGeometry& g, int64_t seq_len);

// The parameters `p` holds that its method takes, as Hugging Face writes them
// ({"rope_type": ..., "factor": ..., ...}); defaults included.
nlohmann::json rope_params_json(const RopeParams& p);

}  // namespace ropelab::model
