// The measured best α of a sweep beside the closed-form α_opt (issue 15).
// Per (family, length): the factor whose NIAH rank accuracy (pooled over
// depths) is highest, the factors statistically as good, and how the closed
// form's α_opt, with γ_t and with the checkpoint's measured γ, fared on the
// same prompts. Plain C++: a fake scorer can drive it (tests/test_alpha_star.cpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ropelab::eval {

// One (method, length) of `eval niah`, its prompts pooled over depths.
struct AlphaPoint {
  std::string family;       // the method's kind: ntk, ntk-aware, yarn, pi (none and logn: one factor, no curve)
  std::string source;       // "fixed" (a listed or swept factor), "alpha_opt" or "alpha_opt_measured"
  double factor = NAN;      // the α (or YaRN / PI scale) applied; NaN when undefined
  int64_t length = 0;
  int64_t hits = 0, n = 0;  // prompts whose true key ranked first, of n
  double gamma = NAN;       // the γ α_opt was computed with (closed-form points)
  std::string unavailable;  // why the point was not run (n = 0); "" when it was
  std::string method;       // the method's label (ntk:4, ntk:alpha_opt, none, ...)
};

// The near-best rule: a factor is near the best when its accuracy lies inside
// the best factor's Wilson 95% interval (equivalently, at or above its lower
// bound, since no accuracy exceeds the best). It says which factors this many
// prompts cannot tell from the best, not that they are equal.
struct AlphaStar {
  std::string family;
  int64_t length = 0;
  std::vector<AlphaPoint> curve;         // the fixed factors, ascending
  double best_factor = NAN;              // argmax accuracy; on a tie the smallest factor
  double best_accuracy = NAN, best_lo = NAN, best_hi = NAN;
  int ties = 1;                          // factors sharing the best accuracy
  std::vector<double> near_best;         // factors within the best's interval, ascending
  // The best at an end of the swept range says only that the optimum lies at
  // or beyond it: "upper" (best = largest factor swept), "lower" (smallest),
  // "" inside the range.
  std::string censored;
  std::vector<AlphaPoint> closed_forms;  // the alpha_opt / alpha_opt_measured points at this length
};

// Groups the points by (family, length); every group with at least two
// distinct fixed factors gets an AlphaStar. Order: first-seen family, then ascending length.
std::vector<AlphaStar> find_alpha_star(const std::vector<AlphaPoint>& points);

// One "alpha_star" record: the curve's best, alpha_star_censored ("upper",
// "lower" or null), whether the near-best factors cover the whole sweep (then
// it cannot tell factors apart), the near-best factors and their span, and per closed form {gamma, value, accuracy, ci95, n, ratio_best_to_value,
// within_best_interval, inside_near_best_span, unavailable}.
nlohmann::json alpha_star_record(const AlphaStar& a);

// α* as text: "≥ 128" when censored above, "≤ 0.0625" below, else the value.
std::string alpha_star_text(const nlohmann::json& alpha_star_record);

// The RoPE a model was trained with, for the other published forms
// (theory/extrapolation_laws.h): θ, the rotated dimensions per head, T_train.
struct RopeShape {
  double theta = 0;
  int rotary_dim = 0;
  int64_t T_train = 0;
};

// Liu's and Men's NTK factors for this length (family ntk only: θ' = α·θ),
// set beside α* in its record under "other_forms": {liu_ntk_factor,
// men_ntk_factor (null when no base holds), and for each
// inside_near_best_span}. Nothing for other families.
void add_other_forms(nlohmann::json& alpha_star_record, const RopeShape& rope);

// One "niah_reach" record per method: its pooled accuracy per length, the
// longest length whose Wilson 95% lower bound is above chance (null when
// none is), and, for none and a fixed NTK α (θ' = α·θ), the longest context
// Liu's T_extra and Men's B(m) >= 0 bound predict at θ'.
std::vector<nlohmann::json> reach_records(const std::vector<AlphaPoint>& points, const RopeShape& rope,
                                          double chance = 0.1);

// Terminal view of "alpha_star" records; "" when there are none.
std::string alpha_star_table(const std::vector<nlohmann::json>& records);

}  // namespace ropelab::eval
