// Zero-shot context extension as values of AttentionSettings: every method
// is a different θ, position scale, per-frequency table, temperature or
// query scale fed to the one attention implementation.
//
//   none          the trained model
//   pi:S          linear position interpolation: positions / S
//   ntk:A         NTK base scaling as the TAF tool applies α: θ' = α·θ
//   ntk-aware:A   NTK-aware: θ' = θ·α^(d/(d−2)), d = rotary dims
//                 (A may be "alpha_opt": the closed form for the target length)
//   dynamic[:S]   dynamic NTK: NTK-aware with α = S·n/T_train − (S−1) once n > T_train
//   yarn:S        YaRN: per-frequency ramp between interpolation (long
//                 wavelengths) and extrapolation (short ones), logits × (0.1·ln S + 1)²
//   logn          queries at position n > T_train scaled by log(n)/log(T_train)
#pragma once
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/config.h"

namespace ropelab::model {

struct ScalingMethod {
  std::string kind;          // none, pi, ntk, ntk-aware, dynamic, yarn, logn
  double factor = 1.0;       // S or α
  bool alpha_opt = false;    // factor comes from the closed-form α_opt
  std::string label() const; // as the user wrote it, e.g. "ntk:alpha_opt"
};

// Parses a comma list such as "none,pi:4,ntk:alpha_opt,ntk:8,yarn:4,logn";
// throws Error naming an unknown method or a bad factor.
std::vector<ScalingMethod> parse_scaling_methods(const std::string& list);

// The attention settings of `m` for a model `cfg` evaluated on sequences of
// length `seq_len`; `target_length` (L) and `gamma_target` feed α_opt.
AttentionSettings scaling_settings(const ScalingMethod& m, const ModelConfig& cfg, int64_t seq_len,
                                   int64_t target_length, double gamma_target = 0.85);

// The α a method uses (α_opt resolved), for records.
double scaling_factor(const ScalingMethod& m, const ModelConfig& cfg, int64_t target_length, double gamma_target);

}  // namespace ropelab::model
