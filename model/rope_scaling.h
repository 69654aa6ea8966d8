// Zero-shot context extension as values of AttentionSettings: every method
// is a different θ, position scale, per-frequency table, temperature or
// query scale fed to the one attention implementation.
//
//   none          the trained model
//   pi:S          linear position interpolation: positions / S
//   ntk:A         NTK base scaling as the TAF tool applies α: θ' = α·θ (any α > 0:
//                 α_opt itself falls below 1 where L is small against θ)
//   ntk-aware:A   NTK-aware: θ' = θ·α^(d/(d−2)), d = rotary dims
//                 (A of ntk, ntk-aware and yarn may be "alpha_opt": the closed form
//                 α_opt(θ, L, γ_t) for the target length, or "alpha_opt_measured":
//                 the same with the checkpoint's measured γ in place of γ_t)
//   dynamic[:S]   dynamic NTK: NTK-aware with α = S·n/T_train − (S−1) once n > T_train
//   yarn:S        YaRN: per-frequency ramp between interpolation (long
//                 wavelengths) and extrapolation (short ones), logits × (0.1·ln S + 1)²
//   logn          queries at position n > T_train scaled by log(n)/log(T_train)
//   KIND-sweep:LO..HI:xR   for KIND in pi, ntk, ntk-aware, yarn: KIND:LO, KIND:LO·R,
//                 KIND:LO·R², ... up to HI, e.g. ntk-sweep:0.25..64:x2 (one method per α)
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/config.h"

namespace ropelab::model {

struct ScalingMethod {
  std::string kind;          // none, pi, ntk, ntk-aware, dynamic, yarn, logn
  double factor = 1.0;       // S or α
  bool alpha_opt = false;    // factor comes from the closed-form α_opt
  bool measured_gamma = false;  // ... with γ = `gamma` (the checkpoint's measured γ), not γ_t
  std::optional<double> gamma;  // that γ; set by whoever read the checkpoint's γ record
  std::string sweep;         // the KIND-sweep item this method is a point of; "" when listed on its own
  std::string label() const; // as the user wrote it, e.g. "ntk:alpha_opt", "ntk:0.25"
};

// Whether `factor` is in the domain of `kind`: > 0 for ntk and ntk-aware
// (θ' = α·θ is a valid base for any α > 0), >= 1 for the others.
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
