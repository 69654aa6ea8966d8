// Zero-shot context extension: any method of model/rope_methods.h's table
// applied at evaluation time to a model trained with plain RoPE, written
//   KIND[:FACTOR][:KEY=VALUE...]   e.g. pi:4, ntk:8, yarn:4:beta_fast=16, llama3:8:high_freq_factor=2,
//                                  dynamic (factor 1), logn, longrope:2:short_factor=1/1/1.5/2
// (KEY is a parameter of the method, as Hugging Face names it; a list is
// written a/b/c). The model's context (original_max_position_embeddings
// where a method asks for it) is its T_train. For the methods with a closed
// form (ntk, ntk-aware, yarn) FACTOR may be "alpha_opt": α_opt(θ, L, γ_t)
// for the target length, or "alpha_opt_measured": the same with the
// checkpoint's measured γ in place of γ_t.
//   KIND-sweep:LO..HI:xR   for a KIND whose factor is required: KIND:LO,
//                 KIND:LO·R, ... up to HI, e.g. ntk-sweep:0.25..64:x2
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/config.h"

namespace ropelab::model {

struct ScalingMethod {
  std::string kind;          // a method's name or alias, as written (pi, ntk, yarn, ...)
  double factor = 1.0;       // S or α
  std::vector<std::pair<std::string, std::string>> params;  // KEY=VALUE as written, in order
  bool alpha_opt = false;    // factor comes from the closed-form α_opt
  bool measured_gamma = false;  // ... with γ = `gamma` (the checkpoint's measured γ), not γ_t
  std::optional<double> gamma;  // that γ; set by whoever read the checkpoint's γ record
  std::string sweep;         // the KIND-sweep item this method is a point of; "" when listed on its own
  std::string label() const; // as the user wrote it, e.g. "ntk:alpha_opt", "ntk:0.25"
};

// Whether `factor` is in the domain of `kind`'s factor (model/rope_methods.h):
// > 0 for ntk and ntk-aware (θ' = α·θ is a valid base for any α > 0), >= 1 for most.
bool factor_allowed(const std::string& kind, double factor);

// Parses a comma list such as "none,pi:4,ntk:alpha_opt,ntk:8,yarn:4,logn,ntk-sweep:0.25..64:x2"
// (sweeps expanded in place); throws Error naming an unknown method, a bad factor or sweep.
std::vector<ScalingMethod> parse_scaling_methods(const std::string& list);

// The attention settings of `m` for a model `cfg` evaluated on sequences of
// length `seq_len`; `target_length` (L) and `gamma_target` feed α_opt.
AttentionSettings scaling_settings(const ScalingMethod& m, const ModelConfig& cfg, int64_t seq_len,
                                   int64_t target_length, double gamma_target = 0.85);

// The α a method uses (α_opt resolved), for records. Throws Error when α_opt
// is undefined (the γ outside (−1, 1)) or alpha_opt_measured has no γ.
double scaling_factor(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length, double gamma_target);

// Why `m` cannot be applied at `target_length` ("" when it can): α_opt undefined
// for its γ (a measured γ >= 1 has no θ_design), or the resolved factor outside
// the kind's domain (yarn at an α_opt < 1).
std::string scaling_unavailable(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length,
                                double gamma_target);

}  // namespace ropelab::model
