// The closed forms of the TAF papers (Marín 2026), in ONE place, so that every
// command (predict, eval gamma, fit gamma) compares measurements against the
// same formulas. θ = RoPE base, T = evaluation length, z = T·√2/θ.
// These are claims to test, not truths. Every function throws ropelab::Error
// on input outside its domain instead of returning NaN or inf.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace ropelab::closed_forms {

inline constexpr double kDefaultGammaTarget = 0.85;  // the tool's α_opt target
inline constexpr double kDefaultMassFraction = 0.9;  // f of D_f
inline constexpr double kFineTuneAlpha = 8.0;        // α above this: "fine-tuning required"
// Exact discrete sums above this N take seconds; predict() then omits D_f_discrete.
inline constexpr int64_t kMaxDiscreteN = 100'000'000;

// γ(θ, T) and its hierarchy of approximations of e^(−z).
double gamma_pade(double theta, double T);    // (2 − z)/(2 + z)
double gamma_linear(double theta, double T);  // 1 − z
double gamma_lerch(double theta, double T);   // 1/(1 + z)
double gamma_exp(double theta, double T);     // e^(−z)

// Inverse of Padé: the θ whose γ_Padé at T equals γ. Needs γ ∈ (−1, 1).
double theta_design(double gamma, double T);
// The T at which γ_Padé(θ, T) = γ. Needs θ > 0, γ ∈ (−1, 1).
double d_horizon(double theta, double gamma);

// Context-extension factor: θ' = α·θ makes γ_Padé(θ', L) = γ_target.
double alpha_opt(double theta, double L, double gamma_target = kDefaultGammaTarget);
double theta_ntk_plain(double theta, double alpha);                // α·θ
double theta_ntk_aware(double theta, double alpha, int d_head);    // θ·α^(d/(d−2))

// KV window keeping a fraction f ∈ (0,1) of the attention mass d^−γ over N positions.
int64_t D_f_discrete(double gamma, int64_t N, double f = kDefaultMassFraction);
double D_f_continuum(double gamma, double N, double f = kDefaultMassFraction);

// The share of the mass Σ_{d=1..N} d^−γ that a cache keeping the last D
// tokens (distances 1..D) and the first `sinks` tokens (distances N−sinks+1..N)
// holds: what D_f's window keeps under the power law, counted over the same
// tokens as a measurement that keeps sinks (sinks = 0: the window alone, ≥ f
// by D_f's construction). Needs 1 <= D <= N, 0 <= sinks <= N.
double power_law_mass(double gamma, int64_t N, int64_t D, int64_t sinks = 0);

// "Imprint" prediction for random-token γ from model size P_M (millions of parameters).
double gamma_random_pred(double gamma_pade_value, double params_M);

struct Regime {
  std::string code;         // "A", "B" or "boundary" (the tool's CLI bands)
  std::string description;
};
Regime regime(double gamma);

struct PredictInputs {
  std::optional<double> theta, T, L, gamma_target, gamma, N, f, params_M, d_head, T_train;
};

// Evaluates every closed form whose inputs are present; a key whose inputs are
// absent is absent. Which γ each key uses:
//   gamma_pade/linear/lerch/exp  θ, T
//   theta_design                 --gamma if given, else gamma_target (default 0.85); T
//   d_horizon                    θ; --gamma if given, else gamma_pade(θ, T)
//   alpha_opt, alpha_needs_finetuning, theta_ntk
//                                θ, L, gamma_target (default 0.85)
//   theta_ntk_aware              as alpha_opt, plus d_head
//   D_f_discrete, D_f_continuum  --gamma if given, else gamma_pade(θ, T); N; f (default 0.9)
//                                (D_f_discrete omitted when N > kMaxDiscreteN)
//   gamma_random_pred            θ, T, params_M (always from gamma_pade)
//   regime                       --gamma if given, else gamma_pade(θ, T)
// and the other published forms (theory/extrapolation_laws.h):
//   liu_critical_dim, liu_T_extra          θ, d_head, T_train
//   liu_base_for_L, liu_ntk_factor         the same and L
//   men_least_base_for_L                   d_head, L (null, with a note, when no base holds)
//   men_theta_holds_at_L, men_first_violation   θ, d_head, L (the first m with B(m) < 0, or null)
// Inputs that are themselves invalid (θ ≤ 0, f ∉ (0,1), ...) throw. When given
// inputs are valid but a formula is undefined for them (θ_design or d_horizon at
// a measured γ ≥ 1), the key is null and "notes" says why.
// "inputs" echoes what was given plus the defaults that were applied.
nlohmann::json predict(const PredictInputs& in);

}  // namespace ropelab::closed_forms
