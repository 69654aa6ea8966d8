// Readers for attention-decay curves A(d) measured elsewhere, so `ropelab fit
// gamma` can refit them with the same code as our own measurements:
//   taf_json      the public TAF tool's result files: "attn_by_distance" maps a
//                 distance string to {"mean_across_seeds": x, "per_seed_means":
//                 [..] or {seed: x}}; optional "theta", "model", "seeds",
//                 "corpus", "n_prompts_per_distance".
//   taf_cli_json  the TAF CLI's output: "attn_by_distance" maps distance → number.
//   csv           header with "distance" and "A" (and optionally "seed"), any
//                 order, case-insensitive; '#' lines and blank lines are skipped.
// Every refusal names the file (and for CSV the line).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

#include "theory/fit.h"

namespace ropelab::decay_input {

struct DecayInput {
  fit::DecayCurve curve;              // distances ascending
  std::string model;                  // "" when the file does not say
  std::optional<double> theta;        // RoPE base, when the file says
  std::string corpus;                 // "" when the file does not say
  int n_prompts_per_distance = 0;     // 0 when the file does not say
  std::string format;                 // "taf_json", "taf_cli_json" or "csv"
  std::string path;
};

// Detects the format by extension (.json / .csv), else by content.
DecayInput read_decay_curve(const std::string& path);

// The parsers behind it; `source` names the input in error messages.
DecayInput parse_decay_json(const nlohmann::json& j, const std::string& source);
DecayInput parse_decay_csv(const std::string& text, const std::string& source);

}  // namespace ropelab::decay_input
