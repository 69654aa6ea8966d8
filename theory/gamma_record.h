// One γ measurement as a record in the public TAF dataset's shape, so results
// from `ropelab eval gamma` (our checkpoints) and `ropelab fit gamma` (curves
// measured elsewhere) land in the same results/*.jsonl and compare directly.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "theory/fit.h"

namespace ropelab {

struct MeasurementInfo {
  std::string model_id;
  std::string corpus;              // "" → null
  int n_prompts_per_distance = 0;  // 0 → null (unknown)
  std::optional<double> T_eval;    // absent → the largest fitted distance (the tool's rule)
  std::string T_eval_rule;         // "" → "largest_fitted_distance" or "given"
  std::string source;              // where the curve came from (file, checkpoint)
  std::string protocol;            // "taf" (prompts d + tail), "fixed" (one prompt length); "" → null (unknown)
  std::optional<double> uniform_baseline_gamma;  // γ that uniform attention reads under the protocol; absent → null
};

// arch: {d_model, n_heads, n_layers, d_head, n_kv_heads, n_params_M, rope_theta,
// T_train}; missing fields become null, extra fields are kept. Output:
//   {model_id, arch{..}, measurement{status: "ok", protocol, gamma, gamma_ci95_lo, gamma_ci95_hi,
//    gamma_intrinsic, gamma_intrinsic_ci95_lo, gamma_intrinsic_ci95_hi (null without prompt
//    lengths), uniform_baseline_gamma, method,
//    fit{log_A, R2, n_points, delta_R2_power_minus_exp, intrinsic{log_A, R2}}, T_eval, T_eval_rule,
//    corpus, n_prompts_per_distance, seeds, distances, prompt_lengths},
//    predictions{gamma_pade, gamma_random_pred, relative_error},
//    ropelab{A, fit_min_d, exp_fit{b, lambda, R2}, per_seed_gamma, per_seed_sd,
//    ci_method, n_resamples, bootstrap_seed, source}}
// gamma_pade needs arch.rope_theta (at T_eval); gamma_random_pred also needs
// arch.n_params_M; relative_error = |γ − γ_Padé| / |γ_Padé|. Anything whose
// inputs are unknown is null, never NaN. Throws Error for a malformed arch.
nlohmann::json make_gamma_record(const nlohmann::json& arch, const fit::DecayCurve& curve,
                                 const fit::GammaFit& fit, const MeasurementInfo& info);

// The record of a curve too short to fit: the same layout with
// measurement.status "insufficient_points", gamma (and everything fitted)
// null, fit{n_points, min_points}, the reason under measurement.reason, and
// the curve under ropelab.A. Never read as a γ (find_gamma_record, report).
nlohmann::json make_insufficient_gamma_record(const nlohmann::json& arch, const fit::DecayCurve& curve,
                                              const fit::InsufficientPoints& why, const MeasurementInfo& info);

// The γ record in `records` that measured one checkpoint: the last record with
// a number at measurement.gamma whose "checkpoint" is the same file, else whose
// model_id and step match, else whose model_id matches and which has no step
// (absent or null: a model-level record). `step` is absent for a model without
// one (a Hugging Face directory not named stepN). With a `protocol` ("taf",
// "fixed"), only records of it count (a record without one counts as taf,
// which it predates). nullopt when none matches; an insufficient record
// (gamma null) never matches.
std::optional<nlohmann::json> find_gamma_record(const std::vector<nlohmann::json>& records,
                                                const std::string& model_id, const std::string& checkpoint,
                                                std::optional<int64_t> step, const std::string& protocol = "");

// An aligned plain-text table of records for the terminal, one row each:
// model/step (model_id, "@step" when the record has a top-level "step"),
// protocol, γ (or "too few points"), CI95, γ intrinsic, the uniform baseline,
// R², ΔR²(pow−exp), n, γ_Padé, rel.err. Unknown values print as "-".
std::string gamma_table(const std::vector<nlohmann::json>& records);

}  // namespace ropelab
